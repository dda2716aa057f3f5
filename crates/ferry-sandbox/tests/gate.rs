//! The install gate: nothing is unpacked unless the envelope opens and its vendor signature
//! verifies; a clean package passes, a vulnerable one is blocked by the scan.

mod support;

use ferry_artifact::keys::SigningKey;
use ferry_sandbox::envelope::{GroupSecret, seal_bytes};
use ferry_sandbox::gate::{GateError, GateInput, run};
use ferry_sandbox::scan::{Policy, default_rules};
use ferry_sandbox::unpack::{Limits, UnpackRule};
use std::path::Path;

fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gate<'a>(
    envelope: &'a Path,
    group: &'a GroupSecret,
    vendors: &'a [ferry_artifact::keys::PublicKey],
    work: &'a Path,
) -> GateInput<'a> {
    GateInput {
        envelope,
        group,
        vendor_keys: vendors,
        rule: UnpackRule::Tar,
        limits: Limits::default(),
        work_dir: work,
    }
}

#[test]
fn unsigned_or_wrongly_encrypted_package_rejected_before_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupSecret::generate();
    let vendor = SigningKey::generate();
    // The payload is a traversal tar: had it been unpacked, it would fail differently.
    let mut evil = tar::Header::new_gnu();
    evil.as_mut_bytes()[..7].copy_from_slice(b"../evil");
    evil.set_size(1);
    evil.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&evil, &b"x"[..]).unwrap();
    let payload = b.into_inner().unwrap();
    let rules = default_rules().unwrap();
    let vendors = [vendor.public()];

    let cases: Vec<(&str, Vec<u8>, GroupSecret)> = vec![
        (
            "wrong group key",
            seal_bytes(&payload, &GroupSecret::generate().public(), &vendor),
            group.clone(),
        ),
        (
            "unsigned",
            {
                let env = seal_bytes(&payload, &group.public(), &vendor);
                env[..env.len() - 100].to_vec()
            },
            group.clone(),
        ),
        (
            "untrusted vendor",
            seal_bytes(&payload, &group.public(), &SigningKey::generate()),
            group.clone(),
        ),
        (
            "tampered",
            {
                let mut env = seal_bytes(&payload, &group.public(), &vendor);
                env[120] ^= 1;
                env
            },
            group.clone(),
        ),
    ];
    for (what, envelope, key) in cases {
        let env_path = dir.path().join(format!("{what}.enc"));
        std::fs::write(&env_path, envelope).unwrap();
        let work = dir.path().join(format!("work-{what}"));
        let err = run(
            &gate(&env_path, &key, &vendors, &work),
            &rules,
            &Policy::default(),
        )
        .unwrap_err();
        assert!(matches!(err, GateError::Envelope(_)), "{what}: {err}");
        assert!(
            err.to_string()
                .starts_with("package refused before unpacking"),
            "{err}"
        );
        assert!(
            !work.join("package").exists() && !work.join("rootfs").exists(),
            "{what}: nothing may be unpacked"
        );
    }

    // Correctly sealed, the same payload reaches the unpacker, which refuses it.
    let env_path = dir.path().join("good.enc");
    std::fs::write(&env_path, seal_bytes(&payload, &group.public(), &vendor)).unwrap();
    let work = dir.path().join("work-good");
    let err = run(
        &gate(&env_path, &group, &vendors, &work),
        &rules,
        &Policy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, GateError::Unpack(_)), "{err}");
}

#[test]
fn clean_package_passes_and_vulnerable_package_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupSecret::generate();
    let vendor = SigningKey::generate();
    let vendors = [vendor.public()];
    let rules = default_rules().unwrap();

    let clean = tar_of(&[
        ("etc/motd", b"welcome\n", 0o644),
        ("bin/run.sh", b"#!/bin/sh\nexec app\n", 0o755),
    ]);
    let env_path = dir.path().join("clean.enc");
    std::fs::write(&env_path, seal_bytes(&clean, &group.public(), &vendor)).unwrap();
    let passed = run(
        &gate(&env_path, &group, &vendors, &dir.path().join("w1")),
        &rules,
        &Policy::default(),
    )
    .unwrap();
    assert_eq!(passed.opened.vendor_key_id, vendor.key_id());
    assert_eq!(passed.unpacked.files, 2);
    assert!(!passed.report.blocks());

    let bin = support::compile_c(
        dir.path(),
        "vuln",
        support::VULNERABLE_C,
        support::VULNERABLE_FLAGS,
    );
    let vulnerable = tar_of(&[("bin/vuln", &std::fs::read(bin).unwrap(), 0o755)]);
    let env_path = dir.path().join("vuln.enc");
    std::fs::write(&env_path, seal_bytes(&vulnerable, &group.public(), &vendor)).unwrap();
    let err = run(
        &gate(&env_path, &group, &vendors, &dir.path().join("w2")),
        &rules,
        &Policy::default(),
    )
    .unwrap_err();
    let GateError::Blocked(report) = err else {
        panic!("expected a block, got {err}")
    };
    assert!(report.findings_of("import-gets").count() == 1, "{report}");
}
