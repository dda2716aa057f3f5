//! Static scan: binaries compiled here, hand-built ELF files, secrets, and the rule database.

mod support;

use ferry_artifact::keys::SigningKey;
use ferry_sandbox::scan::{
    DEFAULT_RULES, ElfKind, Endian, Fortify, Policy, Relro, RuleDb, RuleStore, ScanError, Severity,
    Verdict, default_rules, scan_command, scan_path, scan_target, sign_rules,
};
use support::*;

fn rules() -> RuleDb {
    default_rules().expect("the shipped rule database verifies against the demo key")
}

#[test]
fn scanner_flags_binary_calling_gets_with_rwx_segment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    compile_c(
        &dir.path().join("bin"),
        "vuln",
        VULNERABLE_C,
        VULNERABLE_FLAGS,
    );
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Block, "{report}");
    let elf = &report.elf_files[0];
    assert_eq!(
        (elf.arch.as_str(), elf.class, elf.endian),
        ("x86_64", 64, Endian::Little)
    );
    assert_eq!(elf.kind, ElfKind::Executable);
    assert_eq!(elf.hardening.rwx_segments, 1);
    assert!(!elf.hardening.canary && elf.hardening.pie == Some(false));
    assert!(elf.disassembly.instructions > 10, "{report}");
    let gets: Vec<_> = report.findings_of("import-gets").collect();
    assert_eq!(gets.len(), 1, "{report}");
    assert!(gets[0].blocking && gets[0].severity == Severity::High);
    let ev = gets[0].evidence.as_deref().unwrap_or_default();
    assert!(
        ev.starts_with("called at 0x"),
        "the call site should be found by disassembly: {report}"
    );
    let rwx: Vec<_> = report.findings_of("hardening-rwx").collect();
    assert!(rwx.len() == 1 && rwx[0].blocking, "{report}");
    assert!(report.findings_of("hardening-canary").count() == 1);
    assert!(report.findings_of("hardening-pie").count() == 1);
    let text = report.to_string();
    assert!(
        text.contains("bin/vuln")
            && text.contains("import-gets")
            && text.contains("Verdict: BLOCK"),
        "{text}"
    );
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        serde_json::from_str::<ferry_sandbox::scan::ScanReport>(&json).unwrap(),
        report
    );
}

#[test]
fn scanner_passes_hardened_binary() {
    let dir = tempfile::tempdir().unwrap();
    compile_c(dir.path(), "hard", HARDENED_C, HARDENED_FLAGS);
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Pass, "{report}");
    assert!(report.findings.is_empty(), "{report}");
    let h = &report.elf_files[0].hardening;
    assert!(
        h.nx && h.canary && h.pie == Some(true) && h.rwx_segments == 0,
        "{h:?}"
    );
    assert_eq!(h.relro, Relro::Full);
    assert_eq!(h.fortify, Fortify::Fortified);
    assert_eq!(report.elf_files[0].kind, ElfKind::PieExecutable);
}

#[test]
fn partial_relro_and_missing_fortify_are_warnings_not_blocks() {
    let dir = tempfile::tempdir().unwrap();
    compile_c(
        dir.path(),
        "soft",
        HARDENED_C,
        &[
            "-O0",
            "-fstack-protector-strong",
            "-pie",
            "-fPIE",
            "-Wl,-z,relro,-z,lazy",
        ],
    );
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Warn, "{report}");
    assert_eq!(report.elf_files[0].hardening.relro, Relro::Partial);
    assert_eq!(
        report
            .findings_of("hardening-relro")
            .next()
            .unwrap()
            .severity,
        Severity::Low
    );
    assert_eq!(
        report.findings_of("hardening-fortify").count(),
        1,
        "{report}"
    );
    let strict = Policy {
        block_at: Severity::Low,
        warn_only: vec![],
    };
    assert_eq!(
        scan_path(dir.path(), &rules(), &strict).unwrap().verdict,
        Verdict::Block
    );
}

#[test]
fn elf_header_facts_and_arm_disassembly_from_hand_built_binaries() {
    let dir = tempfile::tempdir().unwrap();
    // movz x8, #0xdd ; svc #0 ; ret
    let a64: Vec<u8> = [0xd2801ba8u32, 0xd4000001, 0xd65f03c0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    std::fs::write(dir.path().join("a64"), tiny_elf(true, true, 183, &a64)).unwrap();
    // ARM A32: mov r0, #0 ; bx lr — big-endian file, BE8 (little-endian) instructions
    let a32: Vec<u8> = [0xe3a00000u32, 0xe12fff1e]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    std::fs::write(dir.path().join("arm-be"), tiny_elf(false, false, 40, &a32)).unwrap();
    std::fs::write(dir.path().join("mips"), tiny_elf(false, false, 8, &[0; 8])).unwrap();
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    let by = |p: &str| report.elf_files.iter().find(|e| e.path == p).unwrap();
    let a = by("a64");
    assert_eq!(
        (a.arch.as_str(), a.class, a.endian),
        ("aarch64", 64, Endian::Little)
    );
    assert_eq!(a.disassembly.instructions, 3, "{report}");
    let b = by("arm-be");
    assert_eq!(
        (b.arch.as_str(), b.class, b.endian),
        ("arm", 32, Endian::Big)
    );
    assert_eq!(b.disassembly.instructions, 2, "{report}");
    let m = by("mips");
    assert_eq!(
        (m.arch.as_str(), m.class, m.endian),
        ("mips", 32, Endian::Big)
    );
    assert!(m.disassembly.disassembler.is_none());
    let execve: Vec<_> = report.findings_of("aarch64-inline-execve").collect();
    assert_eq!(execve.len(), 1, "{report}");
    assert_eq!(execve[0].path, "a64");
    assert!(
        execve[0].evidence.as_deref().unwrap().contains("0x400078"),
        "{report}"
    );
    assert!(
        report.findings_of("hardening-nx").count() == 3,
        "no PT_GNU_STACK means an executable stack: {report}"
    );
}

#[test]
fn x86_code_signatures_match_bytes_and_instructions() {
    // movabs rbx, "/bin//sh" ; int 0x80 ; ret
    let code = [
        0x48, 0xbb, b'/', b'b', b'i', b'n', b'/', b'/', b's', b'h', 0xcd, 0x80, 0xc3,
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sc"), tiny_elf(true, true, 62, &code)).unwrap();
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    assert_eq!(
        report.findings_of("shellcode-binsh-immediate").count(),
        1,
        "{report}"
    );
    assert_eq!(
        report.findings_of("x86-64-int80-syscall").count(),
        1,
        "{report}"
    );
    assert_eq!(report.elf_files[0].disassembly.instructions, 3);
    assert_eq!(report.verdict, Verdict::Block);
}

#[test]
fn detects_embedded_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
    std::fs::write(
        etc.join("device.key"),
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"),
    )
    .unwrap();
    std::fs::write(
        etc.join("cloud.conf"),
        "region = eu\npassword = hunter2secret\naws_key = AKIAIOSFODNN7EXAMPLE\n",
    )
    .unwrap();
    std::fs::write(etc.join("readme.txt"), "set password = in the UI\n").unwrap();
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    let pem: Vec<_> = report.findings_of("pem-private-key").collect();
    assert_eq!(pem.len(), 1, "{report}");
    assert_eq!(
        (pem[0].path.as_str(), pem[0].severity),
        ("etc/device.key", Severity::Critical)
    );
    assert_eq!(
        report
            .findings_of("password-in-config")
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["etc/cloud.conf"]
    );
    assert_eq!(report.findings_of("aws-access-key").count(), 1);
    let text = report.to_string();
    assert!(
        !text.contains("hunter2secret") && !text.contains("AKIAIOSFODNN7EXAMPLE"),
        "secrets must be redacted: {text}"
    );
    assert_eq!(report.verdict, Verdict::Block);
}

#[test]
fn rejects_unsigned_rule_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rules.toml");
    std::fs::write(&db, DEFAULT_RULES).unwrap();
    let demo = ferry_sandbox::scan::demo_rule_key();
    let err = RuleDb::load(&db, std::slice::from_ref(&demo)).unwrap_err();
    assert!(matches!(err, ScanError::UnsignedRules { .. }), "{err}");
    assert!(err.to_string().contains("rules.toml.sig"), "{err}");
    // Signed by a key that is not trusted.
    let rogue = SigningKey::generate();
    std::fs::write(
        dir.path().join("rules.toml.sig"),
        sign_rules(DEFAULT_RULES.as_bytes(), &rogue),
    )
    .unwrap();
    let err = RuleDb::load(&db, std::slice::from_ref(&demo)).unwrap_err();
    assert!(
        matches!(err, ScanError::BadRuleSignature { .. })
            && err.to_string().contains("not a trusted"),
        "{err}"
    );
    // The shipped signature over a modified database.
    std::fs::write(
        dir.path().join("rules.toml.sig"),
        ferry_sandbox::scan::DEFAULT_RULES_SIG,
    )
    .unwrap();
    std::fs::write(
        &db,
        DEFAULT_RULES.replace("severity = \"high\"", "severity = \"info\""),
    )
    .unwrap();
    let err = RuleDb::load(&db, std::slice::from_ref(&demo)).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // `scan_command` refuses it too.
    let err = scan_command(dir.path(), Some(&db)).unwrap_err();
    assert!(matches!(err, ScanError::BadRuleSignature { .. }), "{err}");
}

fn versioned(version: u64, extra: &str) -> String {
    DEFAULT_RULES.replace("version = 1\n", &format!("version = {version}\n")) + extra
}

#[test]
fn rejects_older_rule_db() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let store = RuleStore::open(dir.path(), vec![key.public()], 1).unwrap();
    assert!(store.current().unwrap().is_none());
    let install = |text: &str| {
        store.install(
            text.as_bytes(),
            sign_rules(text.as_bytes(), &key).as_bytes(),
        )
    };
    assert_eq!(install(&versioned(5, "")).unwrap().version, 5);
    let err = install(&versioned(4, "")).unwrap_err();
    assert!(
        matches!(
            err,
            ScanError::Rollback {
                installed: 5,
                offered: 4
            }
        ),
        "{err}"
    );
    install(&versioned(5, "")).expect("re-installing the identical database is harmless");
    let changed = versioned(
        5,
        "\n[[import]]\nid = \"x\"\nsymbols = [\"abort\"]\nseverity = \"low\"\nmessage = \"m\"\n",
    );
    assert!(matches!(
        install(&changed).unwrap_err(),
        ScanError::Rollback { .. }
    ));
    assert_eq!(install(&versioned(6, "")).unwrap().version, 6);
    assert_eq!(store.current().unwrap().unwrap().version, 6);
    let floor = RuleStore::open(&dir.path().join("f"), vec![key.public()], 3).unwrap();
    let text = versioned(2, "");
    let err = floor
        .install(
            text.as_bytes(),
            sign_rules(text.as_bytes(), &key).as_bytes(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ScanError::Rollback {
                installed: 3,
                offered: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn scan_command_unpacks_a_ferry_artifact() {
    use ferry_artifact::artifact::{BuildSpec, Hooks, build};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    compile_c(&src.join("bin"), "vuln", VULNERABLE_C, VULNERABLE_FLAGS);
    let key = SigningKey::generate();
    let spec = BuildSpec {
        component: "main".parse().unwrap(),
        version: "1.2.3".parse().unwrap(),
        device_types: vec![],
        hooks: Hooks::default(),
    };
    let artifact = dir.path().join("fw.ferry");
    build(&src, spec, &artifact, Some(&key)).unwrap();
    let report = scan_command(&artifact, None).unwrap();
    assert_eq!(report.verdict, Verdict::Block, "{report}");
    assert!(report.target.contains("NOT verified"), "{}", report.target);
    assert!(
        report.elf_files.iter().any(|e| e.path == "bin/vuln"),
        "{report}"
    );
    let verified = scan_target(&artifact, &rules(), &Policy::default(), &[key.public()]).unwrap();
    assert!(verified.target.contains("signature verified") && verified.blocks());
    let err = scan_target(
        &artifact,
        &rules(),
        &Policy::default(),
        &[SigningKey::generate().public()],
    )
    .unwrap_err();
    assert!(matches!(err, ScanError::Artifact(_)), "{err}");
}

#[test]
fn warn_only_policy_keeps_findings_but_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "password = correcthorse\n").unwrap();
    let policy = Policy {
        block_at: Severity::High,
        warn_only: vec!["password-in-config".into()],
    };
    let report = scan_path(dir.path(), &rules(), &policy).unwrap();
    assert_eq!(report.verdict, Verdict::Warn, "{report}");
    assert!(!report.findings[0].blocking);
}

fn tar_with(entries: &[(&[u8], &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn archives_inside_the_tree_are_unpacked_safely_and_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let bin = compile_c(dir.path(), "vuln", VULNERABLE_C, VULNERABLE_FLAGS);
    let inner = tar_with(&[(b"bin/vuln", &std::fs::read(&bin).unwrap(), 0o755)]);
    std::fs::remove_file(&bin).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &inner).unwrap();
    std::fs::write(dir.path().join("rootfs.tar.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("evil.tar"),
        tar_with(&[(b"../../etc/cron.d/x", b"x", 0o644)]),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.gz"), b"\x1f\x8b not really gzip").unwrap();
    let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
    let gets: Vec<_> = report.findings_of("import-gets").collect();
    assert_eq!(gets.len(), 1, "{report}");
    assert_eq!(gets[0].path, "rootfs.tar.gz!/bin/vuln");
    let refused: Vec<_> = report.findings_of("archive-refused").collect();
    assert_eq!(refused.len(), 1, "{report}");
    assert_eq!(refused[0].path, "evil.tar");
    assert!(refused[0].message.contains("path traversal"), "{report}");
    assert_eq!(report.files_scanned, 4);
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Truncated and corrupted binaries are reported, never crash the scanner.
        #[test]
        fn corrupted_elf_files_never_crash_the_scanner(cut in 0usize..20_000, flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 0..16)) {
            let code = [0x48u8, 0xbb, b'/', b'b', b'i', b'n', b'/', b'/', b's', b'h', 0xcd, 0x80, 0xc3];
            let mut data = tiny_elf(true, true, 62, &code);
            data.extend(std::iter::repeat_n(0x90, 20_000));
            for (pos, byte) in flips {
                let pos = 4 + pos % (data.len() - 4);
                data[pos] = byte;
            }
            data.truncate(4 + cut % (data.len() - 4));
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("bin"), &data).unwrap();
            let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
            prop_assert_eq!(report.files_scanned, 1);
            prop_assert!(report.elf_files.len() == 1 || report.findings_of("elf-malformed").count() == 1);
        }

        /// Real compiled binaries with corrupted headers, program and section tables.
        #[test]
        fn corrupted_compiled_binaries_never_crash_the_scanner(flips in proptest::collection::vec((any::<bool>(), 0usize..4096, any::<u8>()), 1..12)) {
            let mut data = compiled_vulnerable().to_vec();
            let len = data.len();
            for (tail, pos, byte) in flips {
                let pos = if tail { len - 1 - pos % 2048 } else { 4 + pos % 4000 };
                data[pos] = byte;
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("bin"), &data).unwrap();
            let report = scan_path(dir.path(), &rules(), &Policy::default()).unwrap();
            prop_assert_eq!(report.files_scanned, 1);
        }
    }

    fn compiled_vulnerable() -> &'static [u8] {
        static BIN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BIN.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::read(compile_c(dir.path(), "v", VULNERABLE_C, VULNERABLE_FLAGS)).unwrap()
        })
    }
}
