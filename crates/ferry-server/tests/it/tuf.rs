//! TUF metadata served under /tuf verifies with the client-side TrustedSet.

use crate::common::*;
use chrono::Utc;
use ferry_artifact::tuf::{TrustedSet, target_path_with_hash};
use ferry_core::Component;
use reqwest::StatusCode;

async fn fetch(s: &TestServer, name: &str) -> Vec<u8> {
    let resp = s
        .client
        .get(format!("{}/tuf/{name}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{name}");
    resp.bytes().await.unwrap().to_vec()
}

/// Walks timestamp → snapshot → targets from the server into `trusted`.
async fn refresh(s: &TestServer, trusted: &mut TrustedSet) {
    let now = Utc::now();
    trusted
        .update_timestamp(&fetch(s, "timestamp.json").await, now)
        .unwrap();
    let snapshot = format!(
        "{}.snapshot.json",
        trusted.timestamp_snapshot_version().unwrap()
    );
    trusted
        .update_snapshot(&fetch(s, &snapshot).await, now)
        .unwrap();
    let targets = format!(
        "{}.targets.json",
        trusted.snapshot_version_for_targets().unwrap()
    );
    trusted
        .update_targets(&fetch(s, &targets).await, now)
        .unwrap();
}

#[tokio::test]
async fn tuf_metadata_is_served_and_verifies() {
    let f = start().await;
    let s = &f.server;
    let token = s.enroll("dev-1").await;
    let root = fetch(s, "1.root.json").await;
    assert_eq!(fetch(s, "root.json").await, root);
    let mut trusted = TrustedSet::new(&root).unwrap();
    assert!(trusted.consistent_snapshot());

    let bytes = s.release(Component::Main, "1.2.0", 3000).await;
    let sha = sha256_hex(&bytes);
    refresh(s, &mut trusted).await;
    trusted
        .verify_target("main/1.2.0.ferry", bytes.len() as u64, &sha)
        .unwrap();
    let entry = trusted.target("main/1.2.0.ferry").expect("target listed");
    assert_eq!(entry.custom["component"], "main");
    assert_eq!(entry.custom["version"], "1.2.0");
    assert_eq!(entry.custom["device_types"], serde_json::json!(["gw"]));
    assert!(
        trusted
            .verify_target("main/1.2.0.ferry", bytes.len() as u64, &"0".repeat(64))
            .is_err()
    );

    // A second release publishes new metadata that still lists the first one.
    let first_targets_version = trusted.snapshot_version_for_targets().unwrap();
    let agent = s.release(Component::Agent, "2.0.0", 100).await;
    let mut trusted = TrustedSet::new(&root).unwrap();
    refresh(s, &mut trusted).await;
    assert!(trusted.snapshot_version_for_targets().unwrap() > first_targets_version);
    trusted
        .verify_target("agent/2.0.0.ferry", agent.len() as u64, &sha256_hex(&agent))
        .unwrap();
    trusted
        .verify_target("main/1.2.0.ferry", bytes.len() as u64, &sha)
        .unwrap();

    // The consistent-snapshot target name serves the same verified bytes.
    let hashed = target_path_with_hash("main/1.2.0.ferry", &sha);
    let resp = s
        .client
        .get(format!("{}/files/{hashed}", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);

    for bad in [
        "snapshot.json",
        "9.targets.json",
        "../ferry.db",
        "x.root.json",
    ] {
        let resp = s
            .client
            .get(format!("{}/tuf/{bad}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}

#[tokio::test]
async fn tuf_repository_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ferry_artifact::keys::SigningKey::generate();
    let first = run(
        config_in(tmp.path(), &key),
        listener().await,
        key.clone(),
        tmp.path(),
    )
    .await;
    let root = fetch(&first, "1.root.json").await;
    let bytes = first.release(Component::Main, "1.0.0", 500).await;
    drop(first);

    let second = run(
        config_in(tmp.path(), &key),
        listener().await,
        key,
        tmp.path(),
    )
    .await;
    assert_eq!(
        fetch(&second, "1.root.json").await,
        root,
        "same root after restart"
    );
    let mut trusted = TrustedSet::new(&root).unwrap();
    refresh(&second, &mut trusted).await;
    trusted
        .verify_target("main/1.0.0.ferry", bytes.len() as u64, &sha256_hex(&bytes))
        .unwrap();
}

/// Follows the root chain from the server (N+1.root.json until 404), as clients do.
async fn update_roots(s: &TestServer, trusted: &mut TrustedSet) {
    loop {
        let next = format!("{}.root.json", trusted.root_version() + 1);
        let resp = s.client.get(format!("{}/tuf/{next}", s.url)).send().await.unwrap();
        if resp.status() == StatusCode::NOT_FOUND {
            return;
        }
        trusted.update_root(&resp.bytes().await.unwrap()).unwrap();
    }
}

#[tokio::test]
async fn rotated_keys_are_followed_by_clients_of_the_old_root_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ferry_artifact::keys::SigningKey::generate();
    let first = run(config_in(tmp.path(), &key), listener().await, key.clone(), tmp.path()).await;
    let factory_root = fetch(&first, "1.root.json").await;
    let before = first.release(Component::Main, "1.0.0", 500).await;

    // Online keys first, then the root key itself.
    let resp = first.op_post("/api/v1/tuf/rotate", serde_json::json!({"roles": ["timestamp", "snapshot"]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotation: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(rotation["root_version"], 2);
    assert_eq!(rotation["rotated"].as_object().unwrap().len(), 2);
    let resp = first.op_post("/api/v1/tuf/rotate", serde_json::json!({"roles": ["root", "targets"]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotation: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(rotation["root_version"], 3);
    let keys_dir = tmp.path().join("data").join("keys");
    assert!(keys_dir.join("root.key").exists(), "new keys in place");
    assert!(tmp.path().join("data").join("keys.retired-1").join("root.key").exists(), "old keys kept");
    assert!(!tmp.path().join("data").join("keys.next").exists());

    // A device provisioned with root v1 follows v2 and v3 and trusts what is published now.
    let after = first.release(Component::Main, "1.1.0", 500).await;
    let mut trusted = TrustedSet::new(&factory_root).unwrap();
    update_roots(&first, &mut trusted).await;
    assert_eq!(trusted.root_version(), 3);
    refresh(&first, &mut trusted).await;
    trusted.verify_target("main/1.1.0.ferry", after.len() as u64, &sha256_hex(&after)).unwrap();
    trusted.verify_target("main/1.0.0.ferry", before.len() as u64, &sha256_hex(&before)).unwrap();
    drop(first);

    // The rotated keys are the server's keys from now on.
    let second = run(config_in(tmp.path(), &key), listener().await, key, tmp.path()).await;
    let newest = second.release(Component::Main, "1.2.0", 500).await;
    let mut trusted = TrustedSet::new(&factory_root).unwrap();
    update_roots(&second, &mut trusted).await;
    refresh(&second, &mut trusted).await;
    trusted.verify_target("main/1.2.0.ferry", newest.len() as u64, &sha256_hex(&newest)).unwrap();
}

#[tokio::test]
async fn key_rotation_needs_the_operator_and_known_roles() {
    let f = start().await;
    let s = &f.server;
    let resp = s.client.post(format!("{}/api/v1/tuf/rotate", s.url)).json(&serde_json::json!({"roles": ["root"]})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    for body in [serde_json::json!({"roles": []}), serde_json::json!({"roles": ["mirror"]})] {
        let resp = s.op_post("/api/v1/tuf/rotate", body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.text().await.unwrap().contains("root, targets, snapshot, timestamp"));
    }
    assert_eq!(fetch(s, "root.json").await, fetch(s, "1.root.json").await, "nothing rotated");
}

#[tokio::test]
async fn rotation_interrupted_before_the_key_swap_is_finished_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ferry_artifact::keys::SigningKey::generate();
    let first = run(config_in(tmp.path(), &key), listener().await, key.clone(), tmp.path()).await;
    let factory_root = fetch(&first, "1.root.json").await;
    let resp = first.op_post("/api/v1/tuf/rotate", serde_json::json!({"roles": ["root", "timestamp"]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    drop(first);
    // Put the directories back as a crash after storing the metadata would have left them.
    let data = tmp.path().join("data");
    let new_root_key = std::fs::read(data.join("keys/root.key")).unwrap();
    std::fs::rename(data.join("keys"), data.join("keys.next")).unwrap();
    std::fs::rename(data.join("keys.retired-1"), data.join("keys")).unwrap();

    let second = run(config_in(tmp.path(), &key), listener().await, key, tmp.path()).await;
    assert_eq!(std::fs::read(data.join("keys/root.key")).unwrap(), new_root_key, "the new keys are in place");
    assert!(!data.join("keys.next").exists() && data.join("keys.retired-1").exists());
    let bytes = second.release(Component::Main, "1.0.0", 500).await;
    let mut trusted = TrustedSet::new(&factory_root).unwrap();
    update_roots(&second, &mut trusted).await;
    refresh(&second, &mut trusted).await;
    trusted.verify_target("main/1.0.0.ferry", bytes.len() as u64, &sha256_hex(&bytes)).unwrap();
}
