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
