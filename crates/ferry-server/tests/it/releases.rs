//! Release upload: signature checks, limits, duplicates, listing, go-live.

use crate::common::*;
use ferry_artifact::keys::SigningKey;
use ferry_core::Component;
use ferry_core::api::{CheckinResponse, NothingNewReason, ReleaseRecord};
use reqwest::StatusCode;

#[tokio::test]
async fn release_upload_rejects_unsigned_artifact() {
    let f = start().await;
    let s = &f.server;
    let unsigned = artifact(&s.dir, Component::Main, "1.0.0", &["gw"], None, 100);
    let resp = s.upload(unsigned).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        TestServer::error_of(resp)
            .await
            .starts_with("artifact rejected: ")
    );

    let stranger = SigningKey::generate();
    let foreign = artifact(
        &s.dir,
        Component::Main,
        "1.0.1",
        &["gw"],
        Some(&stranger),
        100,
    );
    let resp = s.upload(foreign).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let resp = s.upload(b"definitely not a tar file".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let listed: Vec<ReleaseRecord> = s.op_get("/api/v1/releases").await.json().await.unwrap();
    assert!(
        listed.is_empty(),
        "rejected artifacts must not be registered: {listed:?}"
    );
}

#[tokio::test]
async fn release_upload_rejects_oversized_body() {
    let f = start_with(|c| c.max_upload_bytes = 20_000).await;
    let s = &f.server;
    let big = artifact(
        &s.dir,
        Component::Main,
        "1.0.0",
        &["gw"],
        Some(&s.release_key),
        40_000,
    );
    let resp = s.upload(big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg = TestServer::error_of(resp).await;
    assert!(
        msg.contains("20000 bytes") && msg.contains("max_upload_bytes"),
        "{msg}"
    );

    // A streamed body without Content-Length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..30).map(|_| Ok(vec![0u8; 1000])).collect();
    let resp = s
        .client
        .post(format!("{}/api/v1/releases", s.url))
        .bearer_auth(OPERATOR)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn duplicate_release_conflicts() {
    let f = start().await;
    let s = &f.server;
    let first = s.release(Component::Main, "1.0.0", 100).await;
    // Same component and version, different bytes: refused, and the stored artifact is untouched.
    let second = artifact(
        &s.dir,
        Component::Main,
        "1.0.0",
        &["gw"],
        Some(&s.release_key),
        200,
    );
    let resp = s.upload(second).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let msg = TestServer::error_of(resp).await;
    assert!(msg.contains("release main 1.0.0 already exists"), "{msg}");

    let listed: Vec<ReleaseRecord> = s.op_get("/api/v1/releases").await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, sha256_hex(&first));
}

#[tokio::test]
async fn release_upload_requires_the_operator_token() {
    let f = start().await;
    let s = &f.server;
    let bytes = artifact(
        &s.dir,
        Component::Main,
        "1.0.0",
        &["gw"],
        Some(&s.release_key),
        100,
    );
    let resp = s
        .client
        .post(format!("{}/api/v1/releases", s.url))
        .bearer_auth("wrong")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("operator token is wrong")
    );
}

#[tokio::test]
async fn release_is_recorded_from_its_manifest_and_waits_for_go_live() {
    let f = start().await;
    let s = &f.server;
    let token = s.enroll("dev-1").await;
    let bytes = artifact(
        &s.dir,
        Component::Agent,
        "2.0.0",
        &["gw", "camera"],
        Some(&s.release_key),
        100,
    );
    let go_live = 4_102_444_800_000u64; // 2100-01-01
    let resp = s
        .client
        .post(format!("{}/api/v1/releases?go_live={go_live}", s.url))
        .bearer_auth(OPERATOR)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let record: ReleaseRecord = resp.json().await.unwrap();
    assert_eq!(record.component, Component::Agent);
    assert_eq!(record.version, ver("2.0.0"));
    assert_eq!(
        record.device_types,
        vec!["gw".to_string(), "camera".to_string()]
    );
    assert_eq!(record.target_name, "agent/2.0.0.ferry");
    assert_eq!(
        (record.length, record.sha256.clone()),
        (bytes.len() as u64, sha256_hex(&bytes))
    );
    assert_eq!(record.go_live, Some(go_live));

    let answer = s.checkin(&token, "dev-1", "1.0.0", "1.0.0").await;
    assert_eq!(
        answer,
        CheckinResponse::NothingNew {
            reason: NothingNewReason::NotLiveYet { go_live }
        }
    );

    let resp = s
        .client
        .post(format!("{}/api/v1/releases?go_live=soon", s.url))
        .bearer_auth(OPERATOR)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
