//! Client-side TUF verification (TrustedSet) against attacks from the TUF threat model.

mod common;

use chrono::TimeDelta;
use common::*;
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::{
    Expiry, RepoKeys, Repository, Role, TrustedSet, TufError, sign_metadata,
};
use serde_json::{Value, json};

#[test]
fn accepts_repository_metadata_end_to_end() {
    let f = Fixture::new();
    let client = f.loaded_client();
    client
        .verify_target(TARGET, TARGET_DATA.len() as u64, &sha256_hex(TARGET_DATA))
        .unwrap();
    client.verify_target_data(TARGET, TARGET_DATA).unwrap();
    client.verify_target_reader(TARGET, TARGET_DATA).unwrap();
    assert_eq!(client.target(TARGET).unwrap().custom["component"], "main");
    assert!(client.consistent_snapshot());
    assert_eq!(client.root_version(), 1);
    assert_eq!(
        client.timestamp_snapshot_version(),
        Some(f.repo.snapshot().version)
    );
    assert_eq!(
        client.snapshot_version_for_targets(),
        Some(f.repo.targets().version)
    );
    assert_eq!(client.raw(Role::Timestamp), Some(f.timestamp().as_slice()));
    assert_eq!(client.raw("targets"), Some(f.targets().as_slice()));
    assert_eq!(client.raw("mirrors"), None);
}

#[test]
fn rejects_expired_timestamp() {
    let f = Fixture::new();
    let mut client = f.client();
    let late = t0() + TimeDelta::days(2);
    let err = client.update_timestamp(&f.timestamp(), late).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                role: Role::Timestamp,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("freeze attack"), "{err}");
    // The snapshot cannot be loaded on top of a stale timestamp.
    assert!(matches!(
        client.update_snapshot(&f.snapshot(), late),
        Err(TufError::Expired { .. })
    ));
}

#[test]
fn rejects_expired_snapshot() {
    let f = Fixture::new();
    let mut client = f.client();
    let mut ts = signed_of(&f.timestamp());
    ts["expires"] = json!("2031-01-01T00:00:00Z");
    client
        .update_timestamp(&f.sign(Role::Timestamp, &ts), t0() + TimeDelta::days(8))
        .unwrap();
    let err = client
        .update_snapshot(&f.snapshot(), t0() + TimeDelta::days(8))
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                role: Role::Snapshot,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_expired_targets() {
    let f = Fixture::new();
    let mut targets = signed_of(&f.targets());
    targets["expires"] = json!("2030-01-01T00:00:01Z");
    let (ts, snap, targets) = f.chain_for_targets(&targets, &[&f.keys.targets]);
    let mut client = f.client();
    let now = t0() + TimeDelta::seconds(1);
    client.update_timestamp(&ts, now).unwrap();
    client.update_snapshot(&snap, now).unwrap();
    let err = client.update_targets(&targets, now).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                role: Role::Targets,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_expired_root() {
    let f = Fixture::new();
    let mut client = f.client();
    let late = t0() + TimeDelta::days(366);
    assert!(matches!(
        client.check_root_expiry(late),
        Err(TufError::Expired {
            role: Role::Root,
            ..
        })
    ));
    let err = client.update_timestamp(&f.timestamp(), late).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                role: Role::Root,
                ..
            }
        ),
        "{err}"
    );
    client.check_root_expiry(t0()).unwrap();
}

fn timestamp_version(f: &Fixture, version: u64, snapshot_version: u64) -> Vec<u8> {
    let mut ts = signed_of(&f.timestamp());
    ts["version"] = json!(version);
    ts["meta"] = json!({"snapshot.json": {"version": snapshot_version}});
    f.sign(Role::Timestamp, &ts)
}

#[test]
fn rejects_older_timestamp_version() {
    let f = Fixture::new();
    let mut client = f.client();
    client
        .update_timestamp(&timestamp_version(&f, 5, 5), t0())
        .unwrap();
    let err = client
        .update_timestamp(&timestamp_version(&f, 4, 5), t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::VersionRollback {
                role: Role::Timestamp,
                trusted: 5,
                found: 4
            }
        ),
        "{err}"
    );
    assert_eq!(
        client.raw(Role::Timestamp),
        Some(timestamp_version(&f, 5, 5).as_slice())
    );
}

#[test]
fn expired_timestamp_still_blocks_rollback() {
    let f = Fixture::new();
    let mut client = f.client();
    let mut old = signed_of(&timestamp_version(&f, 5, 5));
    old["expires"] = json!("2029-01-01T00:00:00Z");
    assert!(matches!(
        client.update_timestamp(&f.sign(Role::Timestamp, &old), t0()),
        Err(TufError::Expired { .. })
    ));
    let err = client
        .update_timestamp(&timestamp_version(&f, 4, 5), t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::VersionRollback {
                trusted: 5,
                found: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_same_version_timestamp_with_new_content() {
    let f = Fixture::new();
    let mut client = f.client();
    client
        .update_timestamp(&timestamp_version(&f, 5, 5), t0())
        .unwrap();
    let err = client
        .update_timestamp(&timestamp_version(&f, 5, 6), t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::SameVersionChanged {
                role: Role::Timestamp,
                version: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn accepts_identical_timestamp_again_as_a_no_op() {
    let f = Fixture::new();
    let mut client = f.client();
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    client.update_snapshot(&f.snapshot(), t0()).unwrap();
}

#[test]
fn rejects_timestamp_naming_older_snapshot() {
    let f = Fixture::new();
    let mut client = f.client();
    client
        .update_timestamp(&timestamp_version(&f, 5, 5), t0())
        .unwrap();
    let err = client
        .update_timestamp(&timestamp_version(&f, 6, 4), t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::SnapshotVersionRollback {
                trusted: 5,
                found: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_snapshot_hash_mismatch() {
    let f = Fixture::new();
    let mut client = f.client();
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    // Same signed content, different bytes (a re-serialization): the hash pins the exact file.
    let snapshot = f.snapshot();
    let reformatted = with_signatures(&signed_of(&snapshot), signatures_of(&snapshot));
    let mut padded = reformatted.clone();
    padded.truncate(snapshot.len());
    padded.resize(snapshot.len(), b' ');
    let err = client.update_snapshot(&padded, t0()).unwrap_err();
    assert!(
        matches!(err, TufError::HashMismatch { ref algorithm, .. } if algorithm == "sha256"),
        "{err}"
    );
}

#[test]
fn rejects_snapshot_length_mismatch() {
    let f = Fixture::new();
    let mut client = f.client();
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    let mut longer = f.snapshot();
    longer.push(b'\n');
    let err = client.update_snapshot(&longer, t0()).unwrap_err();
    assert!(matches!(err, TufError::LengthMismatch { .. }), "{err}");
}

#[test]
fn rejects_snapshot_version_other_than_timestamp_lists() {
    let f = Fixture::new();
    let mut client = f.client();
    let listed = f.repo.snapshot().version + 1;
    client
        .update_timestamp(&timestamp_version(&f, 9, listed), t0())
        .unwrap();
    let err = client.update_snapshot(&f.snapshot(), t0()).unwrap_err();
    assert!(
        matches!(err, TufError::VersionMismatch { role: Role::Snapshot, listed_by: Role::Timestamp, expected, .. } if expected == listed),
        "{err}"
    );
    assert!(matches!(
        client.update_targets(&f.targets(), t0()),
        Err(TufError::VersionMismatch { .. })
    ));
}

#[test]
fn rejects_targets_version_other_than_snapshot_lists() {
    let f = Fixture::new();
    let listed = f.repo.targets().version + 1;
    // Version only (as python-tuf writes by default): no hash pins the file, the version must.
    let snapshot = snapshot_with(&f, 8, json!({"targets.json": {"version": listed}}));
    let mut client = f.client();
    client
        .update_timestamp(&f.timestamp_listing(&snapshot), t0())
        .unwrap();
    client.update_snapshot(&snapshot, t0()).unwrap();
    let err = client.update_targets(&f.targets(), t0()).unwrap_err();
    assert!(
        matches!(err, TufError::VersionMismatch { role: Role::Targets, listed_by: Role::Snapshot, expected, found } if expected == listed && found == listed - 1),
        "{err}"
    );
}

fn snapshot_with(f: &Fixture, version: u64, meta: Value) -> Vec<u8> {
    let mut snap = signed_of(&f.snapshot());
    snap["version"] = json!(version);
    snap["meta"] = meta;
    f.sign(Role::Snapshot, &snap)
}

#[test]
fn rejects_snapshot_rolling_back_targets_version() {
    let f = Fixture::new();
    let mut client = f.client();
    let new_snapshot = snapshot_with(&f, 8, json!({"targets.json": {"version": 2}}));
    client
        .update_timestamp(&f.timestamp_listing(&new_snapshot), t0())
        .unwrap();
    let cached = snapshot_with(&f, 7, json!({"targets.json": {"version": 3}}));
    let err = client.load_cached_snapshot(&cached, t0()).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::VersionMismatch {
                role: Role::Snapshot,
                ..
            }
        ),
        "cached one is not final: {err}"
    );
    let err = client.update_snapshot(&new_snapshot, t0()).unwrap_err();
    assert!(
        matches!(err, TufError::MetaVersionRollback { ref file, trusted: 3, found: 2, .. } if file == "targets.json"),
        "{err}"
    );
}

#[test]
fn rejects_snapshot_dropping_a_listed_file() {
    let f = Fixture::new();
    let mut client = f.client();
    let new_snapshot = snapshot_with(&f, 8, json!({"targets.json": {"version": 3}}));
    client
        .update_timestamp(&f.timestamp_listing(&new_snapshot), t0())
        .unwrap();
    let cached = snapshot_with(
        &f,
        7,
        json!({"targets.json": {"version": 3}, "role1.json": {"version": 1}}),
    );
    let _ = client.load_cached_snapshot(&cached, t0());
    let err = client.update_snapshot(&new_snapshot, t0()).unwrap_err();
    assert!(
        matches!(err, TufError::MetaRemoved { ref file, .. } if file == "role1.json"),
        "{err}"
    );
}

#[test]
fn rejects_targets_signed_by_unknown_key() {
    let f = Fixture::new();
    let intruder = SigningKey::generate();
    let (ts, snap, targets) = f.chain_for_targets(&signed_of(&f.targets()), &[&intruder]);
    let mut client = f.client();
    client.update_timestamp(&ts, t0()).unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    let err = client.update_targets(&targets, t0()).unwrap_err();
    match &err {
        TufError::ThresholdNotMet {
            role: Role::Targets,
            valid,
            trusted,
            threshold: 1,
            ..
        } => {
            assert!(valid.is_empty());
            assert_eq!(trusted, &vec![f.keys.targets.key_id().to_string()]);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(f.keys.targets.key_id()), "{err}");
}

#[test]
fn rejects_targets_signed_with_another_roles_key() {
    let f = Fixture::new();
    let (ts, snap, targets) = f.chain_for_targets(&signed_of(&f.targets()), &[&f.keys.timestamp]);
    let mut client = f.client();
    client.update_timestamp(&ts, t0()).unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    assert!(matches!(
        client.update_targets(&targets, t0()),
        Err(TufError::ThresholdNotMet { .. })
    ));
}

#[test]
fn rejects_timestamp_with_tampered_signed_content() {
    let f = Fixture::new();
    let ts = f.timestamp();
    let mut signed = signed_of(&ts);
    signed["expires"] = json!("2099-01-01T00:00:00Z");
    let forged = with_signatures(&signed, signatures_of(&ts));
    let err = f.client().update_timestamp(&forged, t0()).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                role: Role::Timestamp,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn signature_covers_unknown_fields() {
    let f = Fixture::new();
    let mut targets = signed_of(&f.targets());
    targets["x-ferry-note"] = json!({"b": 1, "a": [true, null, "é\"\\"]});
    let (ts, snap, signed_targets) = f.chain_for_targets(&targets, &[&f.keys.targets]);
    let mut client = f.client();
    client.update_timestamp(&ts, t0()).unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    client
        .clone()
        .update_targets(&signed_targets, t0())
        .unwrap();

    targets["x-ferry-note"]["b"] = json!(2);
    let tampered = with_signatures(&targets, signatures_of(&signed_targets));
    let snap = f.snapshot_listing(&tampered, targets["version"].as_u64().unwrap());
    let mut client = f.client();
    client
        .update_timestamp(&f.timestamp_listing(&snap), t0())
        .unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    let err = client.update_targets(&tampered, t0()).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { .. }), "{err}");
}

#[test]
fn rejects_metadata_served_as_another_role() {
    let f = Fixture::new();
    let err = f.client().update_timestamp(&f.targets(), t0()).unwrap_err();
    assert!(
        matches!(err, TufError::WrongType { expected: Role::Timestamp, ref found } if found == "targets"),
        "{err}"
    );
}

/// A root (version 1, signed by the fixture's root key) whose targets role is `keyids` with `threshold`.
fn root_with_targets_role(f: &Fixture, keys: &[(&str, &SigningKey)], threshold: u64) -> Vec<u8> {
    let mut root = signed_of(&f.root());
    for (keyid, key) in keys {
        root["keys"][*keyid] = key.public().to_json();
    }
    root["roles"]["targets"] = json!({"keyids": keys.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "threshold": threshold});
    f.sign(Role::Root, &root)
}

fn client_at_targets(f: &Fixture, root: &[u8], targets: &[u8]) -> Result<(), TufError> {
    let version = signed_of(targets)["version"].as_u64().unwrap();
    let snap = f.snapshot_listing(targets, version);
    let mut client = TrustedSet::new(root).unwrap();
    client
        .update_timestamp(&f.timestamp_listing(&snap), t0())
        .unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    client.update_targets(targets, t0())
}

fn sig_value(key: &SigningKey, keyid: &str, msg: &[u8]) -> Value {
    json!({"keyid": keyid, "sig": key.sign(msg).sig})
}

#[test]
fn threshold_not_met_by_duplicate_keyids() {
    let f = Fixture::new();
    let (a, b) = (SigningKey::generate(), SigningKey::generate());
    let root = root_with_targets_role(&f, &[(a.key_id(), &a), (b.key_id(), &b)], 2);
    let signed = signed_of(&f.targets());
    let canonical = ferry_artifact::keys::canonical_json(&signed);
    let twice = with_signatures(
        &signed,
        vec![
            sig_value(&a, a.key_id(), &canonical),
            sig_value(&a, a.key_id(), &canonical),
        ],
    );
    let err = client_at_targets(&f, &root, &twice).unwrap_err();
    assert!(
        matches!(err, TufError::ThresholdNotMet { threshold: 2, ref valid, .. } if valid.len() == 1),
        "{err}"
    );

    let both = with_signatures(
        &signed,
        vec![
            sig_value(&a, a.key_id(), &canonical),
            sig_value(&b, b.key_id(), &canonical),
        ],
    );
    client_at_targets(&f, &root, &both).unwrap();
}

#[test]
fn threshold_not_met_by_one_key_listed_under_two_keyids() {
    let f = Fixture::new();
    let a = SigningKey::generate();
    let root = root_with_targets_role(&f, &[(a.key_id(), &a), ("alias-of-a", &a)], 2);
    let signed = signed_of(&f.targets());
    let canonical = ferry_artifact::keys::canonical_json(&signed);
    let targets = with_signatures(
        &signed,
        vec![
            sig_value(&a, a.key_id(), &canonical),
            sig_value(&a, "alias-of-a", &canonical),
        ],
    );
    let err = client_at_targets(&f, &root, &targets).unwrap_err();
    assert!(
        matches!(err, TufError::ThresholdNotMet { ref valid, .. } if valid.len() == 1),
        "{err}"
    );
}

#[test]
fn invalid_extra_signature_does_not_spoil_threshold() {
    let f = Fixture::new();
    let signed = signed_of(&f.targets());
    let canonical = ferry_artifact::keys::canonical_json(&signed);
    let k = &f.keys.targets;
    let intruder = SigningKey::generate();
    let targets = with_signatures(
        &signed,
        vec![
            json!({"keyid": k.key_id(), "sig": "00".repeat(64)}),
            json!({"keyid": k.key_id(), "sig": "not hex"}),
            sig_value(&intruder, intruder.key_id(), &canonical),
            sig_value(k, k.key_id(), &canonical),
        ],
    );
    client_at_targets(&f, &f.root(), &targets).unwrap();
}

#[test]
fn root_rotation_requires_old_and_new_threshold() {
    let f = Fixture::new();
    let new_root_key = SigningKey::generate();
    let mut v2 = signed_of(&f.root());
    v2["version"] = json!(2);
    let old_id = f.keys.root.key_id().to_string();
    v2["keys"].as_object_mut().unwrap().remove(&old_id);
    v2["keys"][new_root_key.key_id()] = new_root_key.public().to_json();
    v2["roles"]["root"] = json!({"keyids": [new_root_key.key_id()], "threshold": 1});

    let only_new = sign_metadata(&v2, &[&new_root_key]);
    let err = f.client().update_root(&only_new).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                role: Role::Root,
                root_version: 1,
                ..
            }
        ),
        "old root must sign: {err}"
    );

    let only_old = sign_metadata(&v2, &[&f.keys.root]);
    let err = f.client().update_root(&only_old).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                role: Role::Root,
                root_version: 2,
                ..
            }
        ),
        "new root must sign: {err}"
    );

    let both = sign_metadata(&v2, &[&f.keys.root, &new_root_key]);
    let mut client = f.client();
    client.update_root(&both).unwrap();
    assert_eq!(client.root_version(), 2);
    assert_eq!(client.raw(Role::Root), Some(both.as_slice()));
}

#[test]
fn rejects_root_version_skip_and_replay() {
    let f = Fixture::new();
    let mut v3 = signed_of(&f.root());
    v3["version"] = json!(3);
    let err = f
        .client()
        .update_root(&f.sign(Role::Root, &v3))
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::RootVersionNotNext {
                expected: 2,
                found: 3
            }
        ),
        "{err}"
    );
    let err = f.client().update_root(&f.root()).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::RootVersionNotNext {
                expected: 2,
                found: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_root_update_after_timestamp() {
    let f = Fixture::new();
    let mut client = f.client();
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    let mut v2 = signed_of(&f.root());
    v2["version"] = json!(2);
    let err = client.update_root(&f.sign(Role::Root, &v2)).unwrap_err();
    assert!(matches!(err, TufError::OutOfOrder { .. }), "{err}");
}

#[test]
fn rejects_root_missing_a_role_or_with_zero_threshold() {
    let f = Fixture::new();
    let mut root = signed_of(&f.root());
    root["roles"].as_object_mut().unwrap().remove("snapshot");
    assert!(matches!(
        TrustedSet::new(&f.sign(Role::Root, &root)),
        Err(TufError::InvalidRoot { .. })
    ));
    let mut root = signed_of(&f.root());
    root["roles"]["targets"]["threshold"] = json!(0);
    assert!(matches!(
        TrustedSet::new(&f.sign(Role::Root, &root)),
        Err(TufError::InvalidRoot { .. })
    ));
}

#[test]
fn rotated_keys_are_trusted_and_old_keys_are_not() {
    let f = Fixture::new();
    let mut repo = f.repo.clone();
    let old_timestamp = f.timestamp();
    repo.rotate_keys(RepoKeys::generate(), t0());
    let files = repo.files();
    let mut client = f.client();
    client.update_root(&files["2.root.json"]).unwrap();
    let err = client
        .clone()
        .update_timestamp(&old_timestamp, t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                role: Role::Timestamp,
                root_version: 2,
                ..
            }
        ),
        "{err}"
    );
    client
        .update_timestamp(&files["timestamp.json"], t0())
        .unwrap();
    let snap = &files[&Role::Snapshot.versioned_file_name(repo.snapshot().version)];
    client.update_snapshot(snap, t0()).unwrap();
    client
        .update_targets(
            &files[&Role::Targets.versioned_file_name(repo.targets().version)],
            t0(),
        )
        .unwrap();
    client.verify_target_data(TARGET, TARGET_DATA).unwrap();
}

#[test]
fn rejects_target_with_wrong_length() {
    let client = Fixture::new().loaded_client();
    let err = client
        .verify_target(
            TARGET,
            TARGET_DATA.len() as u64 + 1,
            &sha256_hex(TARGET_DATA),
        )
        .unwrap_err();
    assert!(matches!(err, TufError::LengthMismatch { .. }), "{err}");
    let err = client
        .verify_target_data(TARGET, &TARGET_DATA[1..])
        .unwrap_err();
    assert!(
        matches!(err, TufError::LengthMismatch { expected, found, .. } if expected == found + 1),
        "{err}"
    );
}

#[test]
fn rejects_target_with_wrong_hash() {
    let client = Fixture::new().loaded_client();
    let mut data = TARGET_DATA.to_vec();
    data[0] ^= 1;
    let err = client
        .verify_target(TARGET, data.len() as u64, &sha256_hex(&data))
        .unwrap_err();
    assert!(matches!(err, TufError::HashMismatch { .. }), "{err}");
    let err = client.verify_target_data(TARGET, &data).unwrap_err();
    assert!(
        err.to_string().contains(&sha256_hex(&data)) && err.to_string().contains(TARGET),
        "{err}"
    );
}

#[test]
fn rejects_unknown_target() {
    let client = Fixture::new().loaded_client();
    let err = client
        .verify_target("main/9.9.9.ferry", 1, &"0".repeat(64))
        .unwrap_err();
    assert!(
        matches!(err, TufError::TargetNotFound { ref name, .. } if name == "main/9.9.9.ferry"),
        "{err}"
    );
    assert!(client.target("main/9.9.9.ferry").is_none());
}

#[test]
fn accepts_sha512_only_target() {
    use sha2::{Digest, Sha512};
    let keys = RepoKeys::generate();
    let mut repo = Repository::new(keys, Expiry::default(), t0());
    let data = b"sha512 only";
    let target = ferry_artifact::tuf::TargetFile {
        length: data.len() as u64,
        hashes: [("sha512".to_string(), hex::encode(Sha512::digest(data)))].into(),
        custom: Value::Null,
        unrecognized: Default::default(),
    };
    repo.set_targets([("fw.bin".to_string(), target)].into(), t0())
        .unwrap();
    let files = repo.files();
    let mut client = TrustedSet::new(&files["root.json"]).unwrap();
    client
        .update_timestamp(&files["timestamp.json"], t0())
        .unwrap();
    client
        .update_snapshot(&files["2.snapshot.json"], t0())
        .unwrap();
    client
        .update_targets(&files["2.targets.json"], t0())
        .unwrap();
    client.verify_target_data("fw.bin", data).unwrap();
    assert!(matches!(
        client.verify_target_data("fw.bin", b"sha512 onlY"),
        Err(TufError::HashMismatch { .. })
    ));
    let err = client
        .verify_target("fw.bin", data.len() as u64, &sha256_hex(data))
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::NoHash {
                needed: "sha256",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_target_listing_only_unsupported_hashes() {
    let f = Fixture::new();
    let mut targets = signed_of(&f.targets());
    targets["targets"][TARGET]["hashes"] = json!({"md5": "00"});
    let (ts, snap, targets) = f.chain_for_targets(&targets, &[&f.keys.targets]);
    let mut client = f.client();
    client.update_timestamp(&ts, t0()).unwrap();
    client.update_snapshot(&snap, t0()).unwrap();
    client.update_targets(&targets, t0()).unwrap();
    let err = client.verify_target_data(TARGET, TARGET_DATA).unwrap_err();
    assert!(
        matches!(err, TufError::UnsupportedHash { ref algorithm, .. } if algorithm == "md5"),
        "{err}"
    );
}

#[test]
fn enforces_the_client_workflow_order() {
    let f = Fixture::new();
    let mut client = f.client();
    assert!(matches!(
        client.update_snapshot(&f.snapshot(), t0()),
        Err(TufError::OutOfOrder { .. })
    ));
    client.update_timestamp(&f.timestamp(), t0()).unwrap();
    assert!(matches!(
        client.update_targets(&f.targets(), t0()),
        Err(TufError::OutOfOrder { .. })
    ));
    client.update_snapshot(&f.snapshot(), t0()).unwrap();
    assert!(matches!(
        client.update_timestamp(&f.timestamp(), t0()),
        Err(TufError::OutOfOrder { .. })
    ));
    assert!(matches!(
        client.verify_target(TARGET, 1, "00"),
        Err(TufError::OutOfOrder { .. })
    ));
    client.update_targets(&f.targets(), t0()).unwrap();
    assert!(matches!(
        client.update_snapshot(&f.snapshot(), t0()),
        Err(TufError::OutOfOrder { .. })
    ));
}
