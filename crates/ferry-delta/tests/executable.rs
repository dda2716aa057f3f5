//! The executable-aware mode on real x86-64 ELF files compiled by the test with `cc`.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use ferry_delta::{DiffOptions, apply, diff};

/// C source with `n` functions calling each other; `extra` inserts one more early on, shifting
/// every later function (and so every call and RIP-relative reference across it).
fn source(n: usize, extra: bool) -> String {
    let mut s = String::from("#include <stdio.h>\nint table[64];\n");
    if extra {
        s.push_str("int inserted(int x) { int s = 0; for (int i = 0; i < x; i++) s += table[i & 63] * i; return s; }\n");
    }
    for i in 0..n {
        let callee = if i == 0 {
            "0".to_string()
        } else {
            format!("f{}(x - 1)", i - 1)
        };
        let tweak = if extra && i == 1 { "inserted(x)" } else { "0" };
        s.push_str(&format!(
            "__attribute__((noinline)) int f{i}(int x) {{ table[{m}] += x; return x > 0 ? {callee} + table[{m2}] + {tweak} : {i}; }}\n",
            m = i % 64,
            m2 = (i * 7) % 64
        ));
    }
    s.push_str(&format!(
        "int main(int c, char **v) {{ (void)v; printf(\"%d\\n\", f{}(c)); return 0; }}\n",
        n - 1
    ));
    s
}

fn compile(dir: &Path, name: &str, src: &str) -> Vec<u8> {
    let c = dir.join(format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&c, src).unwrap();
    let status = Command::new("cc")
        .args(["-O1", "-fpie", "-pie", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .expect("cc must be installed to run this test");
    assert!(status.success(), "cc failed");
    std::fs::read(out).unwrap()
}

#[test]
fn x86_64_transform_round_trips_on_real_elf() {
    let dir = tempfile::tempdir().unwrap();
    let old = compile(dir.path(), "old", &source(400, false));
    let new = compile(dir.path(), "new", &source(400, true));
    assert_eq!(&old[..4], b"\x7fELF");
    let opts = DiffOptions {
        level: 19,
        ..DiffOptions::default()
    };
    let mut aware = Vec::new();
    let stats = diff(&old, &new, &opts, &mut aware).unwrap();
    assert!(
        stats.regions_normalised > 0,
        "the x86-64 transform was not used: {stats:?}"
    );
    let mut out = Vec::new();
    apply(Cursor::new(&old), aware.as_slice(), &mut out).unwrap();
    assert_eq!(out, new);

    let mut raw = Vec::new();
    diff(
        &old,
        &new,
        &DiffOptions {
            exec_aware: false,
            ..opts
        },
        &mut raw,
    )
    .unwrap();
    assert!(
        aware.len() < raw.len(),
        "normalised patch {} bytes is not smaller than raw {} bytes",
        aware.len(),
        raw.len()
    );
}

#[test]
fn transform_round_trips_on_a_system_binary() {
    let ls = std::fs::read("/bin/ls").expect("/bin/ls");
    // A new version: a chunk of code moved and a few bytes edited, the headers intact.
    let mut new = ls.clone();
    let mid = new.len() / 2;
    new[mid..mid + 4].copy_from_slice(&[0x90, 0x90, 0x90, 0x90]);
    new[mid + 4096..mid + 4200].rotate_left(13);
    let mut patch = Vec::new();
    diff(
        &ls,
        &new,
        &DiffOptions {
            level: 3,
            ..DiffOptions::default()
        },
        &mut patch,
    )
    .unwrap();
    let mut out = Vec::new();
    apply(Cursor::new(&ls), patch.as_slice(), &mut out).unwrap();
    assert_eq!(out, new);
}
