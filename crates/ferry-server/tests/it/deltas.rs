//! Delta packages: built on upload, offered per the core policy, served as TUF targets, and
//! replaced by the full package while a device has a delta-failure record.

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::{CheckinRequest, CheckinResponse, DeltaFailureRecord, FileMismatch, Outcome, ReleaseRecord, UpgradeReport};
use reqwest::StatusCode;

async fn delta_checkin(s: &TestServer, token: &str, main: &str) -> CheckinResponse {
    let req = CheckinRequest {
        device_id: dev("dev-1"),
        device_type: "gw".into(),
        upgrader_version: ver("1.0.0"),
        main_version: ver(main),
        accepts_deltas: true,
        delta_failures: vec![],
    };
    let resp = s
        .client
        .post(format!("{}/api/v1/checkin", s.url))
        .bearer_auth(token)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn failure(to: &str) -> DeltaFailureRecord {
    DeltaFailureRecord {
        device_id: dev("dev-1"),
        component: Component::Main,
        from_version: ver("1.0.0"),
        to_version: ver(to),
        target_name: format!("main/1.0.0_{to}.delta"),
        state: "downloading".into(),
        reason: "pre-verification failed".into(),
        files: vec![FileMismatch { path: "app.bin".into(), expected: "a".repeat(64), found: "b".repeat(64) }],
        failed_at: 1,
    }
}

#[tokio::test]
async fn upload_builds_a_delta_offered_until_the_device_reports_a_delta_failure() {
    let fx = start().await;
    let s = &fx.server;
    let token = s.enroll("dev-1").await;
    s.release(Component::Main, "1.0.0", 300_000).await;
    let full = s.release(Component::Main, "1.1.0", 300_100).await;

    let releases: Vec<ReleaseRecord> = s.op_get("/api/v1/releases").await.json().await.unwrap();
    let rel = releases.iter().find(|r| r.version == ver("1.1.0")).unwrap();
    let delta = rel.delta_from(&ver("1.0.0")).expect("a delta from the previous release was built");
    assert!(delta.length < full.len() as u64 / 10, "delta {} bytes vs full {}", delta.length, full.len());
    assert_eq!(delta.target_name, "main/1.0.0_1.1.0.delta");

    // An agent that does not accept deltas still gets the full package.
    assert!(matches!(s.checkin(&token, "dev-1", "1.0.0", "1.0.0").await, CheckinResponse::Update { .. }));
    let CheckinResponse::Delta { offer, delta: d } = delta_checkin(s, &token, "1.0.0").await else {
        panic!("expected a delta offer")
    };
    assert_eq!((offer.target_name.as_str(), d.target_name.as_str()), ("main/1.1.0.ferry", "main/1.0.0_1.1.0.delta"));
    assert_eq!((d.length, d.sha256.clone()), (delta.length, delta.sha256.clone()));

    // The package is a published TUF target and served by the file service under both names.
    let body = s.client.get(format!("{}/files/{}", s.url, d.target_name)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(body.status(), StatusCode::OK);
    let bytes = body.bytes().await.unwrap();
    assert_eq!((bytes.len() as u64, sha256_hex(&bytes)), (d.length, d.sha256.clone()));
    let hashed = format!("{}/files/main/{}.1.0.0_1.1.0.delta", s.url, d.sha256);
    assert_eq!(s.client.get(hashed).bearer_auth(&token).send().await.unwrap().status(), StatusCode::OK);
    let wrong = format!("{}/files/main/{}.1.0.0_1.1.0.delta", s.url, "0".repeat(64));
    assert_eq!(s.client.get(wrong).bearer_auth(&token).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // The device reports a failure: the record is visible and the answer is the full package.
    let resp = s.client.post(format!("{}/api/v1/delta-failures", s.url)).bearer_auth(&token).json(&failure("1.1.0")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let records: Vec<DeltaFailureRecord> = s.op_get("/api/v1/devices/dev-1/delta-failures").await.json().await.unwrap();
    assert_eq!(records, vec![failure("1.1.0")]);
    assert!(matches!(delta_checkin(s, &token, "1.0.0").await, CheckinResponse::Update { offer } if offer.target_name == "main/1.1.0.ferry"));

    // A successful install clears the record.
    let report = UpgradeReport {
        device_id: dev("dev-1"),
        component: Component::Main,
        from_version: ver("1.0.0"),
        to_version: ver("1.1.0"),
        outcome: Outcome::Success,
        reason: "installed".into(),
        log_tail: vec![],
        bytes_downloaded: full.len() as u64,
        rolled_back: false,
    };
    let resp = s.client.post(format!("{}/api/v1/reports", s.url)).bearer_auth(&token).json(&report).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let records: Vec<DeltaFailureRecord> = s.op_get("/api/v1/devices/dev-1/delta-failures").await.json().await.unwrap();
    assert!(records.is_empty(), "record cleared: {records:?}");
    assert!(matches!(delta_checkin(s, &token, "1.0.0").await, CheckinResponse::Delta { .. }));
}

#[tokio::test]
async fn a_device_cannot_file_a_delta_failure_for_another_device() {
    let fx = start().await;
    let s = &fx.server;
    let _ = s.enroll("dev-1").await;
    let other = s.enroll("dev-2").await;
    let resp = s.client.post(format!("{}/api/v1/delta-failures", s.url)).bearer_auth(&other).json(&failure("1.1.0")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let records: Vec<DeltaFailureRecord> = s.op_get("/api/v1/devices/dev-1/delta-failures").await.json().await.unwrap();
    assert!(records.is_empty());
}
