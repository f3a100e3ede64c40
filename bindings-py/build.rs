//! Compiles csrc/pystate.c and csrc/frames.c against the internal headers of the Python being built for.
use std::process::Command;

fn main() {
    // maturin and pyo3 name the target interpreter in PYO3_PYTHON.
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['include'])"])
        .output()
        .expect("run python to find its include dir");
    assert!(out.status.success(), "{python} failed to report its include dir");
    let include = String::from_utf8(out.stdout).expect("utf-8 path").trim().to_owned();
    cc::Build::new()
        .file("csrc/pystate.c")
        .file("csrc/frames.c")
        .include(&include)
        .include(format!("{include}/internal"))
        .warnings(true)
        .compile("tealet_pystate");
    println!("cargo:rerun-if-changed=csrc/pystate.c");
    println!("cargo:rerun-if-changed=csrc/frames.c");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
