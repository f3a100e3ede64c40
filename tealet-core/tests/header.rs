//! `include/tealet.h` must declare exactly the C ABI that `src/ffi.rs` exports, with the same
//! parameter and return types and the same constant values. Fails on any disagreement.
use std::collections::BTreeMap;

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace("* ", "*").replace(" *", "*")
}

/// Rust FFI type -> C spelling used in the header.
fn c_type(rust: &str) -> String {
    let r = rust.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut ptrs = String::new();
    let mut base = r.as_str();
    let mut cnst = false;
    loop {
        if let Some(rest) = base.strip_prefix("*mut ") {
            ptrs.push('*');
            base = rest;
        } else if let Some(rest) = base.strip_prefix("*const ") {
            ptrs.push('*');
            if ptrs.len() == 1 {
                cnst = true;
            }
            base = rest;
        } else {
            break;
        }
    }
    let b = match base {
        "c_int" => "int",
        "c_void" => "void",
        "c_char" => "char",
        "usize" => "size_t",
        "u64" => "uint64_t",
        other => other,
    };
    format!("{}{}{}", if cnst { "const " } else { "" }, b, ptrs)
}

/// name -> (return type, parameter types) from the Rust source.
fn rust_fns() -> BTreeMap<String, (String, Vec<String>)> {
    let src = include_str!("../src/ffi.rs").replace('\n', " ");
    let mut out = BTreeMap::new();
    for part in src.split("pub unsafe extern \"C\" fn ").skip(1) {
        let name = part[..part.find('(').unwrap()].trim().to_string();
        let open = part.find('(').unwrap();
        let mut depth = 0;
        let mut close = open;
        for (i, ch) in part[open..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let params: Vec<String> = part[open + 1..close]
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let ty = p.split_once(':').unwrap().1.trim();
                if ty == "tealet_run_t" { "tealet_run_t".to_string() } else { c_type(ty) }
            })
            .collect();
        let after = part[close + 1..].trim_start();
        let ret = match after.strip_prefix("->") {
            Some(r) => c_type(r[..r.find('{').unwrap()].trim()),
            None => "void".to_string(),
        };
        out.insert(name, (norm(&ret), params.iter().map(|p| norm(p)).collect()));
    }
    out
}

/// Same from the header's prototypes.
fn header_fns() -> BTreeMap<String, (String, Vec<String>)> {
    let h = include_str!("../include/tealet.h");
    // Drop comments, then split declarations at ';'.
    let mut text = String::new();
    let mut rest = h;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = &rest[rest[i..].find("*/").unwrap() + i + 2..];
    }
    text.push_str(rest);
    let mut out = BTreeMap::new();
    for decl in text.split(';') {
        let d = norm(&decl.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join(" "));
        let Some(open) = d.find("tealet_") .and_then(|_| d.find('(')) else { continue };
        if d.contains("typedef") || d.contains('{') || d.contains('}') {
            continue;
        }
        let head = &d[..open];
        let name_at = head.rfind([' ', '*']).map(|i| i + 1).unwrap_or(0);
        let name = head[name_at..].to_string();
        let ret = norm(&head[..name_at]);
        let inner = &d[open + 1..d.rfind(')').unwrap()];
        let params: Vec<String> = inner
            .split(',')
            .map(|p| p.trim())
            .filter(|p| !p.is_empty() && *p != "void")
            .map(|p| {
                // Strip the parameter name.
                let cut = p.rfind([' ', '*']).unwrap();
                norm(&p[..=cut])
            })
            .collect();
        out.insert(name, (ret, params));
    }
    out
}

#[test]
fn header_prototypes_match_rust_exports() {
    let rust = rust_fns();
    let header = header_fns();
    assert!(rust.len() >= 16, "parsed {} Rust exports", rust.len());
    assert_eq!(
        rust.keys().collect::<Vec<_>>(),
        header.keys().collect::<Vec<_>>(),
        "function sets differ"
    );
    for (name, sig) in &rust {
        assert_eq!(Some(sig), header.get(name), "signature of {name}");
    }
}

#[test]
fn header_constants_match() {
    let h = include_str!("../include/tealet.h");
    let consts: &[(&str, i32)] = &[
        ("TEALET_OK", tealet_core::TEALET_OK),
        ("TEALET_ERR_INVALID", tealet_core::TEALET_ERR_INVALID),
        ("TEALET_ERR_NOMEM", tealet_core::TEALET_ERR_NOMEM),
        ("TEALET_ERR_FINISHED", tealet_core::TEALET_ERR_FINISHED),
        ("TEALET_ERR_THREAD", tealet_core::TEALET_ERR_THREAD),
        ("TEALET_ERR_STACK", tealet_core::TEALET_ERR_STACK),
        ("TEALET_STATUS_NEW", tealet_core::TEALET_STATUS_NEW),
        ("TEALET_STATUS_RUNNING", tealet_core::TEALET_STATUS_RUNNING),
        ("TEALET_STATUS_SUSPENDED", tealet_core::TEALET_STATUS_SUSPENDED),
        ("TEALET_STATUS_FINISHED", tealet_core::TEALET_STATUS_FINISHED),
        ("TEALET_STACK_DEDICATED", tealet_core::TEALET_STACK_DEDICATED),
        ("TEALET_STACK_SHARED", tealet_core::TEALET_STACK_SHARED),
    ];
    let defined = h
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '=' || c == ' '))
        .filter(|s| s.trim_start().starts_with("TEALET_") && s.contains(" = "))
        .count();
    assert_eq!(defined, consts.len(), "header defines constants this test does not know");
    for (name, value) in consts {
        let needle = format!("{name} = {value}");
        assert!(h.contains(&needle), "header lacks `{needle}`");
    }
}

#[test]
fn config_struct_layout() {
    // size_t stack_size; int policy;  (LP64)
    assert_eq!(std::mem::size_of::<tealet_core::tealet_config_t>(), 16);
    assert_eq!(std::mem::offset_of!(tealet_core::tealet_config_t, policy), 8);
    assert!(include_str!("../include/tealet.h").contains("size_t stack_size;"));
}
