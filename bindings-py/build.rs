//! Compiles csrc/ (interpreter state, frame capture, bytecode stack analysis) against the internal headers of the Python being built for.
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
        .file("csrc/stackdepth.c")
        .include(&include)
        .include(format!("{include}/internal"))
        .warnings(true)
        // an undeclared internal (a macro of another version) must fail the build, not the import
        .flag_if_supported("-Werror=implicit-function-declaration")
        .compile("tealet_pystate");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
