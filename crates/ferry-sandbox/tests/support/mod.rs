//! Test helpers: compiling C programs and hand-building minimal ELF files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `source` with `cc` and `flags` into `dir/name`; panics with the compiler output.
pub fn compile_c(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let result = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .expect("a C compiler `cc` is needed by this test (apt-get install gcc)");
    assert!(
        result.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::remove_file(&src).unwrap();
    out
}

/// A program that calls `gets` and carries a writable + executable segment.
pub const VULNERABLE_C: &str = r#"
#include <stdio.h>
char *gets(char *s);
__asm__(".section .rwxcode,\"awx\",@progbits\n.globl rwx_blob\nrwx_blob: .byte 0x90, 0xc3\n.previous");
int main(void) { char buf[32]; gets(buf); puts(buf); return 0; }
"#;

/// Flags for the vulnerable program.
pub const VULNERABLE_FLAGS: &[&str] = &[
    "-Wno-deprecated-declarations",
    "-fno-stack-protector",
    "-no-pie",
    "-O0",
];

/// A program that uses fortifiable calls safely.
pub const HARDENED_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char buf[64];
  ssize_t n = read(0, buf, sizeof buf - 1);
  if (n < 0) return 1;
  buf[n] = 0;
  char out[128];
  memcpy(out, buf, (size_t)n + 1);
  printf("%s %d\n", out, argc);
  return 0;
}
"#;

/// The hardening flags the issue names.
pub const HARDENED_FLAGS: &[&str] = &[
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-O2",
    "-pie",
    "-fPIE",
    "-Wl,-z,relro,-z,now",
];

/// A minimal executable ELF: header, one R+X `PT_LOAD` covering exactly `code`, then `code`.
pub fn tiny_elf(is64: bool, little: bool, machine: u16, code: &[u8]) -> Vec<u8> {
    let (ehsize, phsize) = if is64 { (64usize, 56usize) } else { (52, 32) };
    let base: u64 = 0x400000;
    let start = (ehsize + phsize) as u64;
    let total = code.len() as u64;
    let mut out = Vec::new();
    let u16b = |v: u16| {
        if little {
            v.to_le_bytes().to_vec()
        } else {
            v.to_be_bytes().to_vec()
        }
    };
    let u32b = |v: u32| {
        if little {
            v.to_le_bytes().to_vec()
        } else {
            v.to_be_bytes().to_vec()
        }
    };
    let word = |v: u64| {
        if is64 {
            if little {
                v.to_le_bytes().to_vec()
            } else {
                v.to_be_bytes().to_vec()
            }
        } else {
            u32b(v as u32)
        }
    };
    out.extend_from_slice(&[
        0x7f,
        b'E',
        b'L',
        b'F',
        if is64 { 2 } else { 1 },
        if little { 1 } else { 2 },
        1,
        0,
    ]);
    out.extend_from_slice(&[0; 8]);
    out.extend(u16b(2)); // ET_EXEC
    out.extend(u16b(machine));
    out.extend(u32b(1));
    out.extend(word(base + (ehsize + phsize) as u64)); // entry
    out.extend(word(ehsize as u64)); // phoff
    out.extend(word(0)); // shoff
    out.extend(u32b(0)); // flags
    out.extend(u16b(ehsize as u16));
    out.extend(u16b(phsize as u16));
    out.extend(u16b(1));
    out.extend(u16b(if is64 { 64 } else { 40 }));
    out.extend(u16b(0));
    out.extend(u16b(0));
    assert_eq!(out.len(), ehsize);
    out.extend(u32b(1)); // PT_LOAD
    if is64 {
        out.extend(u32b(5)); // R+X
        out.extend(word(start));
        out.extend(word(base + start));
        out.extend(word(base + start));
        out.extend(word(total));
        out.extend(word(total));
        out.extend(word(0x1000));
    } else {
        out.extend(word(start));
        out.extend(word(base + start));
        out.extend(word(base + start));
        out.extend(word(total));
        out.extend(word(total));
        out.extend(u32b(5));
        out.extend(word(0x1000));
    }
    assert_eq!(out.len(), ehsize + phsize);
    out.extend_from_slice(code);
    out
}

/// The mirror findings of the demo's divergent build: a mismatch at `GET /items/3` showing the
/// "exfiltrated" answer, no other endpoint differing (the nonce is learned noise), and the mirror
/// report as evidence.
pub fn assert_only_items_3_diverged(alert: &ferry_core::api::SecurityAlert) {
    let mismatch = alert
        .findings
        .iter()
        .find(|f| f.rule == "mirror/mismatch")
        .unwrap_or_else(|| panic!("no mismatch finding: {alert:#?}"));
    assert_eq!(mismatch.location, "GET /items/3");
    assert!(mismatch.message.contains("exfiltrated"), "{}", mismatch.message);
    assert!(
        alert.findings.iter().filter(|f| f.rule.starts_with("mirror/")).all(|f| f.location == "GET /items/3"),
        "only /items/3 differs (the nonce is learned noise): {alert:#?}"
    );
    assert!(alert.evidence.iter().any(|e| e.kind == "mirror_report"), "{alert:#?}");
}
