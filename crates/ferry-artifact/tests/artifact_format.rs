//! The `.ferry` artifact: build, sign, inspect, verify and unpack, including hostile inputs.

mod common;

use common::{RawTar, sha256_hex};
use ferry_artifact::artifact::{
    self, ArtifactError, BuildSpec, Hooks, MANIFEST_NAME, Manifest, PayloadEntry, SIGNATURES_NAME,
    UNPACKED_MANIFEST_NAME, build, inspect, sign, unpack_verified, verify,
};
use ferry_artifact::keys::{PublicKey, SigningKey};
use ferry_core::{Component, Version};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const APP: &[u8] = b"#!/bin/sh\necho hello from app\n";
const CONFIG: &[u8] = b"schema=2\n";

fn spec() -> BuildSpec {
    BuildSpec {
        component: Component::Main,
        version: Version::new(1, 2, 0),
        device_types: vec!["gateway-v2".into()],
        hooks: Hooks {
            pre_install: Some("hooks/pre".into()),
            post_install: None,
        },
    }
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A source tree, a release key and a signed artifact built from it.
struct Built {
    dir: TempDir,
    key: SigningKey,
    artifact: PathBuf,
    manifest: Manifest,
}

impl Built {
    fn new(signed: bool) -> Built {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src.join("bin/app"), APP, 0o755);
        write(&src.join("etc/config"), CONFIG, 0o640);
        write(&src.join("hooks/pre"), b"#!/bin/sh\nexit 0\n", 0o700);
        let key = SigningKey::generate();
        let artifact = dir.path().join("app-1.2.0.ferry");
        let manifest = build(&src, spec(), &artifact, signed.then_some(&key)).unwrap();
        Built {
            dir,
            key,
            artifact,
            manifest,
        }
    }
    fn trusted(&self) -> Vec<PublicKey> {
        vec![self.key.public()]
    }
    fn dest(&self) -> PathBuf {
        self.dir.path().join("out/unpacked")
    }
    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.artifact).unwrap()
    }
    fn rewrite(&self, bytes: &[u8]) {
        fs::write(&self.artifact, bytes).unwrap();
    }
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn artifact_roundtrip_verifies() {
    let b = Built::new(true);
    assert_eq!(verify(&b.artifact, &b.trusted()).unwrap(), b.manifest);
    assert_eq!(b.manifest.format, artifact::FORMAT);
    let paths: Vec<&str> = b
        .manifest
        .payloads
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(paths, ["bin/app", "etc/config", "hooks/pre"]);
    let app = &b.manifest.payloads[0];
    assert_eq!(
        (app.length, app.sha256.as_str(), app.mode),
        (APP.len() as u64, sha256_hex(APP).as_str(), 0o755)
    );

    let dest = b.dest();
    assert_eq!(
        unpack_verified(&b.artifact, &b.trusted(), &dest).unwrap(),
        b.manifest
    );
    assert_eq!(fs::read(dest.join("bin/app")).unwrap(), APP);
    assert_eq!(fs::read(dest.join("etc/config")).unwrap(), CONFIG);
    assert_eq!(
        fs::metadata(dest.join("bin/app"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::metadata(dest.join("etc/config"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    let unpacked_manifest = fs::read(dest.join(UNPACKED_MANIFEST_NAME)).unwrap();
    let listed: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        listed.len(),
        4,
        "bin, etc, hooks and the manifest copy: {listed:?}"
    );
    b.key
        .public()
        .verify(&unpacked_manifest, &inspect_sig(&b))
        .unwrap();
}

fn inspect_sig(b: &Built) -> String {
    let bytes = b.bytes();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = archive.entries().unwrap();
    entries.next().unwrap().unwrap();
    let sigs: Vec<ferry_artifact::tuf::Signature> =
        serde_json::from_reader(entries.next().unwrap().unwrap()).unwrap();
    sigs[0].sig.clone()
}

#[test]
fn artifact_is_a_plain_tar_in_the_documented_order() {
    let b = Built::new(true);
    let bytes = b.bytes();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            MANIFEST_NAME,
            SIGNATURES_NAME,
            "payload/bin/app",
            "payload/etc/config",
            "payload/hooks/pre"
        ]
    );
}

#[test]
fn building_twice_gives_identical_bytes() {
    let b = Built::new(true);
    let again = b.dir.path().join("again.ferry");
    build(&b.dir.path().join("src"), spec(), &again, Some(&b.key)).unwrap();
    assert_eq!(fs::read(again).unwrap(), b.bytes());
}

#[test]
fn rejects_bitflipped_payload() {
    let b = Built::new(true);
    let mut bytes = b.bytes();
    let at = find(&bytes, b"hello from app");
    bytes[at] ^= 0x01;
    b.rewrite(&bytes);
    let err = verify(&b.artifact, &b.trusted()).unwrap_err();
    match &err {
        ArtifactError::PayloadHashMismatch {
            entry, expected, ..
        } => {
            assert_eq!(entry, "bin/app");
            assert_eq!(expected, &sha256_hex(APP));
        }
        other => panic!("unexpected: {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("app-1.2.0.ferry")
            && text.contains("bin/app")
            && text.contains("re-download"),
        "{text}"
    );
}

#[test]
fn rejects_bitflipped_manifest() {
    let b = Built::new(true);
    let mut bytes = b.bytes();
    let at = find(&bytes, b"gateway-v2");
    bytes[at] = b'G';
    b.rewrite(&bytes);
    let err = verify(&b.artifact, &b.trusted()).unwrap_err();
    assert!(
        matches!(err, ArtifactError::BadSignature { ref keyid, .. } if keyid == b.key.key_id()),
        "{err}"
    );
}

#[test]
fn rejects_truncated_artifact() {
    let b = Built::new(true);
    let full = b.bytes();
    let payload_start = find(&full, APP);
    for cut in [
        0,
        100,
        512,
        700,
        payload_start - 1,
        payload_start + 5,
        full.len() - 1536,
        full.len() - 1100,
    ] {
        b.rewrite(&full[..cut]);
        assert!(
            verify(&b.artifact, &b.trusted()).is_err(),
            "truncated at {cut} of {} verified",
            full.len()
        );
    }
    b.rewrite(&full[..payload_start + 5]);
    let err = verify(&b.artifact, &b.trusted()).unwrap_err();
    assert!(
        matches!(err, ArtifactError::PayloadLengthMismatch { found: 5, .. }),
        "{err}"
    );
}

#[test]
fn rejects_unsigned_artifact() {
    let b = Built::new(false);
    let err = verify(&b.artifact, &b.trusted()).unwrap_err();
    assert!(matches!(err, ArtifactError::Unsigned { .. }), "{err}");
    assert!(inspect(&b.artifact).unwrap().signer_keyids.is_empty());
}

#[test]
fn rejects_artifact_signed_by_untrusted_key() {
    let b = Built::new(true);
    let other = SigningKey::generate();
    let err = verify(&b.artifact, &[other.public()]).unwrap_err();
    match &err {
        ArtifactError::UntrustedSigner {
            signers, trusted, ..
        } => {
            assert_eq!(signers, &vec![b.key.key_id().to_string()]);
            assert_eq!(trusted, &vec![other.key_id().to_string()]);
        }
        e => panic!("unexpected: {e}"),
    }
    assert!(matches!(
        verify(&b.artifact, &[]),
        Err(ArtifactError::NoTrustedKeys { .. })
    ));
}

#[test]
fn sign_adds_and_replaces_signatures() {
    let b = Built::new(false);
    sign(&b.artifact, &b.key).unwrap();
    verify(&b.artifact, &b.trusted()).unwrap();
    sign(&b.artifact, &b.key).unwrap();
    assert_eq!(
        inspect(&b.artifact).unwrap().signer_keyids,
        [b.key.key_id()]
    );
    let second = SigningKey::generate();
    sign(&b.artifact, &second).unwrap();
    assert_eq!(
        inspect(&b.artifact).unwrap().signer_keyids,
        [b.key.key_id(), second.key_id()]
    );
    verify(&b.artifact, &[second.public()]).unwrap();
    verify(&b.artifact, &b.trusted()).unwrap();
    let names: Vec<_> = fs::read_dir(b.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
}

#[test]
fn sign_refuses_an_artifact_whose_payload_does_not_match() {
    let b = Built::new(false);
    let mut bytes = b.bytes();
    let at = find(&bytes, b"schema=2");
    bytes[at] = b'S';
    b.rewrite(&bytes);
    let err = sign(&b.artifact, &b.key).unwrap_err();
    assert!(
        matches!(err, ArtifactError::PayloadHashMismatch { ref entry, .. } if entry == "etc/config"),
        "{err}"
    );
    assert_eq!(b.bytes(), bytes, "the artifact is left untouched");
}

#[test]
fn inspect_reports_manifest_signers_and_size_without_trust() {
    let b = Built::new(true);
    let info = inspect(&b.artifact).unwrap();
    assert_eq!(info.manifest, b.manifest);
    assert_eq!(info.signer_keyids, [b.key.key_id()]);
    assert_eq!(info.size, b.bytes().len() as u64);
}

#[test]
fn unpack_failure_leaves_no_destination() {
    let b = Built::new(true);
    let mut bytes = b.bytes();
    let at = find(&bytes, b"exit 0");
    bytes[at] ^= 0x20;
    b.rewrite(&bytes);
    let dest = b.dest();
    let err = unpack_verified(&b.artifact, &b.trusted(), &dest).unwrap_err();
    assert!(
        matches!(err, ArtifactError::PayloadHashMismatch { ref entry, .. } if entry == "hooks/pre"),
        "{err}"
    );
    assert!(!dest.exists(), "dest must be removed after a failed unpack");

    let untrusted =
        unpack_verified(&b.artifact, &[SigningKey::generate().public()], &dest).unwrap_err();
    assert!(matches!(untrusted, ArtifactError::UntrustedSigner { .. }));
    assert!(!dest.exists());
}

#[test]
fn unpack_refuses_an_existing_destination_and_keeps_it() {
    let b = Built::new(true);
    let dest = b.dest();
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep"), b"mine").unwrap();
    let err = unpack_verified(&b.artifact, &b.trusted(), &dest).unwrap_err();
    assert!(
        matches!(err, ArtifactError::DestinationExists { .. }),
        "{err}"
    );
    assert_eq!(fs::read(dest.join("keep")).unwrap(), b"mine");
}

#[test]
fn build_refuses_symlinks_in_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("a"), b"a", 0o644);
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let err = build(
        &src,
        spec_without_hooks(),
        &dir.path().join("x.ferry"),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, ArtifactError::Source { ref file, .. } if file.ends_with("link")),
        "{err}"
    );
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!dir.path().join("x.ferry").exists());
}

fn spec_without_hooks() -> BuildSpec {
    BuildSpec {
        hooks: Hooks::default(),
        ..spec()
    }
}

#[test]
fn build_refuses_output_inside_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("a"), b"a", 0o644);
    let err = build(&src, spec_without_hooks(), &src.join("x.ferry"), None).unwrap_err();
    assert!(
        matches!(err, ArtifactError::OutputInsideSource { .. }),
        "{err}"
    );
}

#[test]
fn build_refuses_a_hook_that_is_not_a_payload() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("a"), b"a", 0o644);
    let err = build(&src, spec(), &dir.path().join("x.ferry"), None).unwrap_err();
    assert!(err.to_string().contains("pre_install"), "{err}");
}

#[test]
fn build_accepts_hooks_written_with_a_leading_dot_slash() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("hooks/pre"), b"#!/bin/sh\n", 0o755);
    let spec = BuildSpec {
        hooks: Hooks {
            pre_install: Some("./hooks/pre".into()),
            post_install: None,
        },
        ..spec()
    };
    let m = build(&src, spec, &dir.path().join("x.ferry"), None).unwrap();
    assert_eq!(m.hooks.pre_install.as_deref(), Some("hooks/pre"));
}

#[test]
fn build_strips_setuid_bits() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("a"), b"a", 0o4755);
    let m = build(
        &src,
        spec_without_hooks(),
        &dir.path().join("x.ferry"),
        None,
    )
    .unwrap();
    assert_eq!(m.payloads[0].mode, 0o755);
}

// ---- hand-made artifacts -------------------------------------------------------------------

fn manifest_for(payloads: &[(&str, &[u8], u32)]) -> Manifest {
    Manifest {
        format: artifact::FORMAT.into(),
        component: Component::Main,
        version: Version::new(1, 0, 0),
        device_types: vec![],
        payloads: payloads
            .iter()
            .map(|(p, data, mode)| PayloadEntry {
                path: p.to_string(),
                sha256: sha256_hex(data),
                length: data.len() as u64,
                mode: *mode,
            })
            .collect(),
        hooks: Hooks::default(),
        live_patch: None,
    }
}

/// A tar starting with `manifest` (serialized) and its signature by `key`.
fn head(manifest_bytes: &[u8], key: &SigningKey) -> RawTar {
    let sigs = serde_json::to_vec(&vec![key.sign(manifest_bytes)]).unwrap();
    let mut tar = RawTar::default();
    tar.file(MANIFEST_NAME, manifest_bytes)
        .file(SIGNATURES_NAME, &sigs);
    tar
}

struct Crafted {
    dir: TempDir,
    key: SigningKey,
}

impl Crafted {
    fn new() -> Crafted {
        Crafted {
            dir: tempfile::tempdir().unwrap(),
            key: SigningKey::generate(),
        }
    }
    fn head(&self, m: &Manifest) -> RawTar {
        head(&serde_json::to_vec(m).unwrap(), &self.key)
    }
    /// Writes the archive, runs unpack_verified into a fresh dest, checks nothing was left behind.
    fn unpack(&self, bytes: Vec<u8>) -> Result<Manifest, ArtifactError> {
        let path = self.dir.path().join("crafted.ferry");
        fs::write(&path, bytes).unwrap();
        let verified = verify(&path, &[self.key.public()]);
        let dest = self.dir.path().join("work/dest");
        let unpacked = unpack_verified(&path, &[self.key.public()], &dest);
        assert_eq!(
            verified.is_ok(),
            unpacked.is_ok(),
            "verify and unpack disagree: {verified:?} / {unpacked:?}"
        );
        if unpacked.is_err() {
            assert!(!dest.exists(), "failed unpack left {dest:?}");
        }
        let escaped: Vec<_> = fs::read_dir(self.dir.path().join("work"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            escaped.iter().all(|p| p == &dest),
            "files escaped the destination: {escaped:?}"
        );
        unpacked
    }
}

#[test]
fn crafted_artifact_control_unpacks() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let bytes = c.head(&m).file("payload/bin/app", APP).finish();
    assert_eq!(c.unpack(bytes).unwrap(), m);
}

#[test]
fn rejects_path_traversal_payload() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let bytes = c
        .head(&m)
        .file("payload/../../escaped", APP)
        .file("payload/bin/app", APP)
        .finish();
    let err = c.unpack(bytes).unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsafePayloadPath { ref entry, .. } if entry == "payload/../../escaped"),
        "{err}"
    );
    assert!(err.to_string().contains("traversal"), "{err}");
}

#[test]
fn rejects_absolute_payload_paths() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let err = c
        .unpack(c.head(&m).file("payload//tmp/x", APP).finish())
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsafePayloadPath { .. }),
        "{err}"
    );
    let err = c
        .unpack(c.head(&m).file("/tmp/x", APP).finish())
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnexpectedEntry { index: 2, .. }),
        "{err}"
    );
}

#[test]
fn rejects_signed_manifest_listing_a_traversal_path() {
    let c = Crafted::new();
    let m = manifest_for(&[("../escaped", APP, 0o644)]);
    let err = c
        .unpack(c.head(&m).file("payload/../escaped", APP).finish())
        .unwrap_err();
    assert!(matches!(err, ArtifactError::BadManifest { .. }), "{err}");
}

#[test]
fn rejects_symlink_hardlink_and_device_payloads() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    for (kind, what) in [
        (b'2', "symbolic link"),
        (b'1', "hard link"),
        (b'3', "character device"),
        (b'4', "block device"),
        (b'6', "FIFO"),
    ] {
        let mut tar = c.head(&m);
        tar.entry_full(b"payload/bin/app", kind, b"", 0, 0o777, Some("/etc/passwd"));
        let err = c.unpack(tar.finish()).unwrap_err();
        assert!(
            matches!(err, ArtifactError::ForbiddenEntryType { ref kind, .. } if kind == what),
            "{what}: {err}"
        );
    }
}

#[test]
fn rejects_gnu_long_name_and_pax_entries() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    for kind in [b'L', b'x'] {
        let mut tar = c.head(&m);
        tar.entry_full(
            b"././@LongLink",
            kind,
            b"payload/bin/app\0",
            16,
            0o644,
            None,
        )
        .file("payload/bin/app", APP);
        let err = c.unpack(tar.finish()).unwrap_err();
        assert!(
            matches!(
                err,
                ArtifactError::UnexpectedEntry { .. } | ArtifactError::ForbiddenEntryType { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn rejects_unlisted_payload() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let err = c
        .unpack(
            c.head(&m)
                .file("payload/bin/app", APP)
                .file("payload/bin/extra", b"x")
                .finish(),
        )
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnlistedPayload { ref entry, .. } if entry == "bin/extra"),
        "{err}"
    );
}

#[test]
fn rejects_duplicate_payload_entries() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let err = c
        .unpack(
            c.head(&m)
                .file("payload/bin/app", APP)
                .file("payload/bin/app", APP)
                .finish(),
        )
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::DuplicatePayload { ref entry, .. } if entry == "bin/app"),
        "{err}"
    );
}

#[test]
fn rejects_missing_payload() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755), ("etc/config", CONFIG, 0o644)]);
    let err = c
        .unpack(c.head(&m).file("payload/bin/app", APP).finish())
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::MissingPayload { ref entry, .. } if entry == "etc/config"),
        "{err}"
    );
}

#[test]
fn rejects_payload_larger_than_the_manifest_says() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let mut bigger = APP.to_vec();
    bigger.extend_from_slice(b"more");
    let err = c
        .unpack(c.head(&m).file("payload/bin/app", &bigger).finish())
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::PayloadLengthMismatch { expected, found, .. } if expected == APP.len() as u64 && found == bigger.len() as u64),
        "{err}"
    );
}

#[test]
fn rejects_payload_before_manifest() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o755)]);
    let manifest_bytes = serde_json::to_vec(&m).unwrap();
    let sigs = serde_json::to_vec(&vec![c.key.sign(&manifest_bytes)]).unwrap();
    let mut tar = RawTar::default();
    tar.file("payload/bin/app", APP)
        .file(MANIFEST_NAME, &manifest_bytes)
        .file(SIGNATURES_NAME, &sigs);
    let err = c.unpack(tar.finish()).unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnexpectedEntry { index: 0, ref found, .. } if found == "payload/bin/app"),
        "{err}"
    );
}

#[test]
fn rejects_oversized_manifest_before_reading_it() {
    let c = Crafted::new();
    let huge = vec![b' '; artifact::MAX_MANIFEST_BYTES as usize + 1];
    let mut tar = RawTar::default();
    tar.file(MANIFEST_NAME, &huge);
    let err = c.unpack(tar.finish()).unwrap_err();
    assert!(
        matches!(
            err,
            ArtifactError::TooLarge {
                entry: MANIFEST_NAME,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_unsupported_format_version() {
    let c = Crafted::new();
    let mut m = manifest_for(&[("bin/app", APP, 0o755)]);
    m.format = "ferry-artifact/2".into();
    let err = c
        .unpack(c.head(&m).file("payload/bin/app", APP).finish())
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsupportedFormat { ref found, .. } if found == "ferry-artifact/2"),
        "{err}"
    );
}

#[test]
fn unpack_masks_setuid_and_sticky_bits() {
    let c = Crafted::new();
    let m = manifest_for(&[("bin/app", APP, 0o6755), ("tmp/x", b"x", 0o1777)]);
    let bytes = c
        .head(&m)
        .file("payload/bin/app", APP)
        .file("payload/tmp/x", b"x")
        .finish();
    c.unpack(bytes).unwrap();
    let dest = c.dir.path().join("work/dest");
    assert_eq!(
        fs::metadata(dest.join("bin/app"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::metadata(dest.join("tmp/x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o777
    );
}

#[test]
fn verify_checks_the_signature_before_parsing_the_manifest() {
    let c = Crafted::new();
    // Garbage manifest signed by an untrusted key: the trust error wins, the JSON is never parsed.
    let untrusted = SigningKey::generate();
    let bytes = head(b"{not json", &untrusted).finish();
    let err = c.unpack(bytes).unwrap_err();
    assert!(
        matches!(err, ArtifactError::UntrustedSigner { .. }),
        "{err}"
    );
}

#[test]
fn live_patch_artifact_is_signed_verified_and_unpacked_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src.join("patch.json"), b"{\"payload\":\"{}\",\"signatures\":[]}", 0o644);
    let key = SigningKey::generate();
    let out = dir.path().join("main-1.0.0+lp1.ferry");
    let lp = artifact::LivePatch {
        patches: Version::new(1, 0, 0),
        target_build_id: "0123abcd".into(),
        new_build_id: "4567ef00".into(),
        bundle: "patch.json".into(),
    };
    let spec = BuildSpec {
        component: Component::Main,
        version: "1.0.0+lp1".parse().unwrap(),
        device_types: vec![],
        hooks: Hooks::default(),
    };
    artifact::build_with(&src, spec.clone(), Some(lp.clone()), &out, Some(&key)).unwrap();
    let m = verify(&out, &[key.public()]).unwrap();
    assert_eq!(m.live_patch, Some(lp.clone()));
    assert_eq!(inspect(&out).unwrap().manifest.live_patch, Some(lp.clone()));
    let dest = dir.path().join("unpacked");
    unpack_verified(&out, &[key.public()], &dest).unwrap();
    assert!(dest.join("patch.json").is_file());
    // A live patch whose version does not name its base is refused at build time.
    let wrong = BuildSpec { version: "1.0.1+lp1".parse().unwrap(), ..spec };
    let err = artifact::build_with(&src, wrong, Some(lp), &dir.path().join("x.ferry"), Some(&key)).unwrap_err();
    assert!(err.to_string().contains("1.0.0+lpN"), "{err}");
}
