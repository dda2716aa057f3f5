//! Vendor encryption: round trip, and every way a package is refused with nothing written.

use ferry_artifact::keys::SigningKey;
use ferry_sandbox::envelope::{
    EnvelopeError, GroupSecret, open, open_bytes, seal, seal_bytes, seal_file,
};
use proptest::prelude::*;
use std::path::Path;

struct Fixture {
    dir: tempfile::TempDir,
    group: GroupSecret,
    vendor: SigningKey,
}

fn fixture(plain: &[u8]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let group = GroupSecret::generate();
    let vendor = SigningKey::generate();
    let mut out = Vec::new();
    seal(&mut &plain[..], &mut out, &group.public(), &vendor, 1024).unwrap();
    std::fs::write(dir.path().join("pkg.enc"), out).unwrap();
    Fixture { dir, group, vendor }
}

fn open_fails(f: &Fixture, envelope: &[u8], group: &GroupSecret) -> EnvelopeError {
    let path = f.dir.path().join("bad.enc");
    std::fs::write(&path, envelope).unwrap();
    let out = f.dir.path().join("plain.out");
    let err = open(&path, group, &[f.vendor.public()], &out).unwrap_err();
    assert!(!out.exists(), "nothing may be written on error ({err})");
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry-open-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary plaintext left behind: {leftovers:?}"
    );
    err
}

fn sealed(f: &Fixture) -> Vec<u8> {
    std::fs::read(f.dir.path().join("pkg.enc")).unwrap()
}

const PLAIN: &[u8] = &[7u8; 5000];

#[test]
fn seal_file_and_open_round_trip_across_chunks() {
    let f = fixture(b"");
    let src = f.dir.path().join("fw.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let enc = f.dir.path().join("fw.enc");
    assert_eq!(
        seal_file(&src, &enc, &f.group.public(), &f.vendor).unwrap(),
        data.len() as u64
    );
    let out = f.dir.path().join("fw.out");
    let opened = open(
        &enc,
        &f.group,
        &[SigningKey::generate().public(), f.vendor.public()],
        &out,
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(opened.vendor_key_id, f.vendor.key_id());
    assert_eq!(opened.plaintext_len, data.len() as u64);
    let err = open(&enc, &f.group, &[f.vendor.public()], &out).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::DestinationExists { .. }),
        "{err}"
    );
}

#[test]
fn wrong_group_key_is_refused_naming_both_keys() {
    let f = fixture(PLAIN);
    let other = GroupSecret::generate();
    let err = open_fails(&f, &sealed(&f), &other);
    assert!(matches!(err, EnvelopeError::WrongRecipient { .. }), "{err}");
    assert!(
        err.to_string().contains(&other.public().to_string()),
        "{err}"
    );
}

#[test]
fn a_forged_recipient_field_still_fails_to_decrypt() {
    let f = fixture(PLAIN);
    let other = GroupSecret::generate();
    let mut env = sealed(&f);
    env[13..45].copy_from_slice(&other.public().0);
    let err = open_fails(&f, &env, &other);
    assert!(matches!(err, EnvelopeError::Tampered { index: 0 }), "{err}");
}

#[test]
fn every_modified_ciphertext_byte_is_detected() {
    let f = fixture(PLAIN);
    let env = sealed(&f);
    for pos in [100, 100 + 1029 * 2, env.len() - 150] {
        let mut bad = env.clone();
        bad[pos] ^= 0x01;
        let err = open_fails(&f, &bad, &f.group);
        assert!(
            matches!(err, EnvelopeError::Tampered { .. }),
            "byte {pos}: {err}"
        );
    }
}

#[test]
fn truncated_envelope_is_refused() {
    let f = fixture(PLAIN);
    let env = sealed(&f);
    // Header 93 bytes, then frames of 5 + 1024 + 16 bytes: cut after the second full chunk.
    let cut = 93 + 2 * (5 + 1024 + 16);
    let err = open_fails(&f, &env[..cut], &f.group);
    assert!(
        matches!(err, EnvelopeError::Truncated { chunks: 2 }),
        "{err}"
    );
    let err = open_fails(&f, &env[..cut + 10], &f.group);
    assert!(matches!(err, EnvelopeError::Truncated { .. }), "{err}");
}

#[test]
fn dropping_a_middle_chunk_is_detected() {
    let f = fixture(PLAIN);
    let env = sealed(&f);
    let frame = 5 + 1024 + 16;
    let mut bad = env[..93 + frame].to_vec();
    bad.extend_from_slice(&env[93 + 2 * frame..]);
    let err = open_fails(&f, &bad, &f.group);
    assert!(matches!(err, EnvelopeError::Tampered { index: 1 }), "{err}");
}

#[test]
fn unsigned_envelope_is_refused() {
    let f = fixture(PLAIN);
    let env = sealed(&f);
    let err = open_fails(&f, &env[..env.len() - 100], &f.group);
    assert!(matches!(err, EnvelopeError::Unsigned), "{err}");
}

#[test]
fn signature_by_untrusted_vendor_or_altered_signature_is_refused() {
    let f = fixture(PLAIN);
    let env = seal_bytes(PLAIN, &f.group.public(), &SigningKey::generate());
    let err = open_fails(&f, &env, &f.group);
    assert!(
        matches!(err, EnvelopeError::UntrustedSigner { .. }),
        "{err}"
    );

    let mut env = sealed(&f);
    let last = env.len() - 1;
    env[last] ^= 0x80;
    let err = open_fails(&f, &env, &f.group);
    assert!(matches!(err, EnvelopeError::BadSignature { .. }), "{err}");

    let mut env = sealed(&f);
    env.push(0);
    let err = open_fails(&f, &env, &f.group);
    assert!(
        matches!(err, EnvelopeError::TrailingData { extra: 1 }),
        "{err}"
    );
}

#[test]
fn no_trusted_keys_and_non_envelopes_are_refused() {
    let f = fixture(PLAIN);
    let err = open_bytes(&sealed(&f), &f.group, &[]).unwrap_err();
    assert!(matches!(err, EnvelopeError::NoTrustedKeys), "{err}");
    let err = open_fails(&f, b"PK\x03\x04 not an envelope", &f.group);
    assert!(matches!(err, EnvelopeError::NotAnEnvelope), "{err}");
}

#[test]
fn group_key_file_round_trips_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.key");
    let key = GroupSecret::generate();
    key.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(GroupSecret::load(&path).unwrap().public(), key.public());
    assert!(!format!("{key:?}").contains("secret\":"));
    assert!(GroupSecret::load(Path::new("/nonexistent/group.key")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn envelope_round_trips(data in proptest::collection::vec(any::<u8>(), 0..700), chunk in 1u32..200) {
        let group = GroupSecret::generate();
        let vendor = SigningKey::generate();
        let mut env = Vec::new();
        seal(&mut &data[..], &mut env, &group.public(), &vendor, chunk).unwrap();
        let (plain, opened) = open_bytes(&env, &group, &[vendor.public()]).unwrap();
        prop_assert_eq!(&plain, &data);
        prop_assert_eq!(opened.plaintext_len, data.len() as u64);
        // Any single-byte change anywhere is refused.
        let pos = (data.len() * 7 + chunk as usize) % env.len();
        let mut bad = env.clone();
        bad[pos] ^= 0x20;
        prop_assert!(open_bytes(&bad, &group, &[vendor.public()]).is_err());
    }
}
