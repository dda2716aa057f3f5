//! Server-side repository: files, versions, refresh, rotation, reload.

mod common;

use chrono::TimeDelta;
use common::*;
use ferry_artifact::tuf::{Expiry, RepoKeys, Repository, Role, TrustedSet, TufError, target_file};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn names(repo: &Repository) -> BTreeSet<String> {
    repo.files().into_keys().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn load_all(
    files: &BTreeMap<String, Vec<u8>>,
    repo: &Repository,
    now: chrono::DateTime<chrono::Utc>,
) -> TrustedSet {
    let mut client = TrustedSet::new(&files["1.root.json"]).unwrap();
    for v in 2..=repo.root().version {
        client
            .update_root(&files[&format!("{v}.root.json")])
            .unwrap();
    }
    client
        .update_timestamp(&files["timestamp.json"], now)
        .unwrap();
    client
        .update_snapshot(
            &files[&format!(
                "{}.snapshot.json",
                client.timestamp_snapshot_version().unwrap()
            )],
            now,
        )
        .unwrap();
    client
        .update_targets(
            &files[&format!(
                "{}.targets.json",
                client.snapshot_version_for_targets().unwrap()
            )],
            now,
        )
        .unwrap();
    client
}

#[test]
fn new_repository_serves_root_v1_and_empty_targets() {
    let repo = Repository::new(RepoKeys::generate(), Expiry::default(), t0());
    assert_eq!(
        names(&repo),
        set(&[
            "1.root.json",
            "root.json",
            "1.targets.json",
            "1.snapshot.json",
            "timestamp.json"
        ])
    );
    let root = signed_of(&repo.files()["root.json"]);
    assert_eq!(root["consistent_snapshot"], json!(true));
    assert_eq!(root["expires"], json!("2031-01-01T00:00:00Z"));
    assert_eq!(
        signed_of(&repo.files()["timestamp.json"])["expires"],
        json!("2030-01-02T00:00:00Z")
    );
    let client = load_all(&repo.files(), &repo, t0());
    assert!(client.targets().unwrap().targets.is_empty());
}

#[test]
fn set_targets_publishes_new_targets_snapshot_and_timestamp_versions() {
    let f = Fixture::new();
    assert_eq!(
        (
            f.repo.targets().version,
            f.repo.snapshot().version,
            f.repo.timestamp().version
        ),
        (2, 2, 2)
    );
    let snap = signed_of(&f.snapshot());
    assert_eq!(snap["meta"]["targets.json"], meta_entry(2, &f.targets()));
    let ts = signed_of(&f.timestamp());
    assert_eq!(ts["meta"]["snapshot.json"], meta_entry(2, &f.snapshot()));
    let client = load_all(&f.repo.files(), &f.repo, t0());
    client.verify_target_data(TARGET, TARGET_DATA).unwrap();
}

#[test]
fn keeps_only_the_last_two_snapshot_and_targets_versions() {
    let mut f = Fixture::new();
    for _ in 0..3 {
        f.repo
            .set_targets(f.repo.targets().targets.clone(), t0())
            .unwrap();
    }
    assert_eq!(
        names(&f.repo),
        set(&[
            "1.root.json",
            "root.json",
            "4.targets.json",
            "5.targets.json",
            "4.snapshot.json",
            "5.snapshot.json",
            "timestamp.json"
        ])
    );
}

#[test]
fn set_targets_rejects_unsafe_names_and_float_custom_data() {
    let mut f = Fixture::new();
    let before = f.repo.files();
    let t = target_file("x", 1, &"0".repeat(64), Value::Null);
    let err = f
        .repo
        .set_targets([("../escape".to_string(), t.clone())].into(), t0())
        .unwrap_err();
    assert!(
        matches!(err, TufError::InvalidTarget { ref name, .. } if name == "../escape"),
        "{err}"
    );
    let float = target_file("main/a", 1, &"0".repeat(64), json!({"ratio": 0.5}));
    let err = f
        .repo
        .set_targets([("main/a".to_string(), float)].into(), t0())
        .unwrap_err();
    assert!(err.to_string().contains("/custom/ratio"), "{err}");
    assert_eq!(
        f.repo.files(),
        before,
        "a refused change must not publish anything"
    );
}

#[test]
fn refresh_timestamp_only_when_half_its_lifetime_is_left() {
    let mut f = Fixture::new();
    let version = f.repo.timestamp().version;
    assert!(!f.repo.refresh_timestamp(t0() + TimeDelta::hours(11)));
    assert_eq!(f.repo.timestamp().version, version);
    assert!(f.repo.refresh_timestamp(t0() + TimeDelta::hours(13)));
    assert_eq!(f.repo.timestamp().version, version + 1);
    assert_eq!(
        f.repo.snapshot().version,
        2,
        "a fresh snapshot is not re-signed"
    );
    let later = t0() + TimeDelta::hours(30);
    load_all(&f.repo.files(), &f.repo, later)
        .verify_target_data(TARGET, TARGET_DATA)
        .unwrap();
}

#[test]
fn refresh_renews_snapshot_targets_and_root_before_they_expire() {
    let mut f = Fixture::new();
    let mut now = t0();
    // Refresh hourly for 400 days: a client must be able to update at every moment.
    for hour in 0..(400 * 24) {
        now = t0() + TimeDelta::hours(hour);
        f.repo.refresh_timestamp(now);
        if hour % 97 == 0 {
            let client = load_all(&f.repo.files(), &f.repo, now);
            client.check_root_expiry(now).unwrap();
        }
    }
    assert!(f.repo.root().version >= 2, "root was renewed");
    assert!(
        f.repo.targets().version >= 6,
        "targets renewed every ~45 days"
    );
    load_all(&f.repo.files(), &f.repo, now)
        .verify_target_data(TARGET, TARGET_DATA)
        .unwrap();
}

#[test]
fn from_files_reloads_the_same_repository() {
    let f = Fixture::new();
    let mut reloaded =
        Repository::from_files(f.keys.clone(), Expiry::default(), f.repo.files()).unwrap();
    assert_eq!(reloaded.files(), f.repo.files());
    assert_eq!(reloaded.targets(), f.repo.targets());
    reloaded.set_targets(BTreeMap::new(), t0()).unwrap();
    assert_eq!(reloaded.targets().version, 3);
    assert!(
        load_all(&reloaded.files(), &reloaded, t0())
            .target(TARGET)
            .is_none()
    );
}

#[test]
fn from_files_refuses_keys_of_another_repository() {
    let f = Fixture::new();
    let err = Repository::from_files(RepoKeys::generate(), Expiry::default(), f.repo.files())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::KeysDoNotMatchRoot {
                role: Role::Root,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn from_files_reports_the_missing_file() {
    let f = Fixture::new();
    let mut files = f.repo.files();
    files.remove("2.snapshot.json");
    let err = Repository::from_files(f.keys.clone(), Expiry::default(), files).unwrap_err();
    assert!(
        matches!(err, TufError::MissingFile { ref file } if file == "2.snapshot.json"),
        "{err}"
    );
}

#[test]
fn from_files_refuses_tampered_metadata() {
    let f = Fixture::new();
    let mut files = f.repo.files();
    let ts = f.timestamp();
    let mut signed = signed_of(&ts);
    signed["version"] = json!(99);
    files.insert(
        "timestamp.json".into(),
        with_signatures(&signed, signatures_of(&ts)),
    );
    let err = Repository::from_files(f.keys.clone(), Expiry::default(), files).unwrap_err();
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
fn rotating_only_the_timestamp_key_keeps_one_root_signature_and_clients_follow() {
    let mut f = Fixture::new();
    let mut new_keys = f.keys.clone();
    new_keys.timestamp = ferry_artifact::keys::SigningKey::generate();
    f.repo.rotate_keys(new_keys.clone(), t0());
    let files = f.repo.files();
    let sigs = signatures_of(&files["2.root.json"]);
    assert_eq!(sigs.len(), 1, "the kept root key signs the new root once");
    assert_eq!(sigs[0]["keyid"].as_str().unwrap(), f.keys.root.key_id());
    load_all(&files, &f.repo, t0())
        .verify_target_data(TARGET, TARGET_DATA)
        .unwrap();
    Repository::from_files(new_keys, Expiry::default(), files.clone()).unwrap();
    assert!(
        Repository::from_files(f.keys.clone(), Expiry::default(), files).is_err(),
        "the old timestamp key no longer signs this repository"
    );
}

#[test]
fn rotate_keys_signs_the_new_root_with_old_and_new_root_keys() {
    let mut f = Fixture::new();
    let new_keys = RepoKeys::generate();
    f.repo.rotate_keys(new_keys.clone(), t0());
    let files = f.repo.files();
    let keyids: BTreeSet<String> = signatures_of(&files["2.root.json"])
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().into())
        .collect();
    assert_eq!(keyids, set(&[f.keys.root.key_id(), new_keys.root.key_id()]));
    assert_eq!(files["2.root.json"], files["root.json"]);
    load_all(&files, &f.repo, t0())
        .verify_target_data(TARGET, TARGET_DATA)
        .unwrap();
    Repository::from_files(new_keys, Expiry::default(), files).unwrap();
}
