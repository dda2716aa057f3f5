//! Enrollment, check-in, reports, backups and request validation.

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::{
    ArchivedReport, BackupRecord, CheckinResponse, NothingNewReason, Outcome, UpgradeReport,
};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn enroll_then_checkin_up_to_date() {
    let f = start().await;
    let s = &f.server;
    let token = s.enroll("356938035643809").await;
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    s.release(Component::Main, "1.0.0", 100).await;

    let answer = s.checkin(&token, "356938035643809", "1.0.0", "1.0.0").await;
    assert_eq!(
        answer,
        CheckinResponse::NothingNew {
            reason: NothingNewReason::UpToDate
        }
    );

    let devices: Vec<ferry_core::api::DeviceRecord> =
        s.op_get("/api/v1/devices").await.json().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].main_version, Some(ver("1.0.0")));
    assert_eq!(devices[0].group, "default");
    assert!(devices[0].last_seen.is_some());
}

#[tokio::test]
async fn enrollment_with_wrong_token_is_refused() {
    let f = start().await;
    let body =
        json!({"enrollment_token": "not-the-fleet-secret", "device_id": "d1", "device_type": "gw"});
    let resp = f
        .server
        .client
        .post(format!("{}/api/v1/enroll", f.server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("enrollment token for device d1 is wrong")
    );
}

#[tokio::test]
async fn rejects_anonymous_checkin() {
    let f = start().await;
    let s = &f.server;
    s.enroll("dev-1").await;
    let resp = s.checkin_raw(None, "dev-1", "1.0.0", "1.0.0").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("Authorization: Bearer")
    );
    let resp = s.checkin_raw(Some("0000"), "dev-1", "1.0.0", "1.0.0").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(TestServer::error_of(resp).await.contains("not recognised"));
}

#[tokio::test]
async fn rejects_device_token_of_another_device() {
    let f = start().await;
    let s = &f.server;
    let token_a = s.enroll("dev-a").await;
    s.enroll("dev-b").await;
    let resp = s
        .checkin_raw(Some(&token_a), "dev-b", "1.0.0", "1.0.0")
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("device token belongs to dev-a, not dev-b")
    );
}

#[tokio::test]
async fn re_enrollment_revokes_the_old_token() {
    let f = start().await;
    let s = &f.server;
    let old = s.enroll("dev-1").await;
    let new = s.enroll("dev-1").await;
    assert_eq!(
        s.checkin_raw(Some(&old), "dev-1", "1.0.0", "1.0.0")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.checkin_raw(Some(&new), "dev-1", "1.0.0", "1.0.0")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn blacklisted_device_told_nothing_new() {
    let f = start().await;
    let s = &f.server;
    let bad = s.enroll("dev-bad").await;
    let good = s.enroll("dev-good").await;
    s.release(Component::Main, "1.1.0", 100).await;
    let resp = s
        .op_post(
            "/api/v1/releases/main/1.1.0/blacklist",
            json!({"devices": ["dev-bad"]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let release: ferry_core::api::ReleaseRecord = resp.json().await.unwrap();
    assert_eq!(release.blacklist, vec![dev("dev-bad")]);

    let answer = s.checkin(&bad, "dev-bad", "1.0.0", "1.0.0").await;
    assert_eq!(
        answer,
        CheckinResponse::NothingNew {
            reason: NothingNewReason::Blacklisted {
                component: Component::Main,
                version: ver("1.1.0")
            }
        }
    );
    assert!(matches!(
        s.checkin(&good, "dev-good", "1.0.0", "1.0.0").await,
        CheckinResponse::Update { .. }
    ));

    let resp = s
        .op_post(
            "/api/v1/releases/main/9.9.9/blacklist",
            json!({"devices": ["dev-bad"]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("no release main 9.9.9")
    );
}

#[tokio::test]
async fn newer_release_offered_with_file_service_url_and_group_chunk_size() {
    let f = start_with(|c| c.files_url = Some("http://files.example:9000/".into())).await;
    let s = &f.server;
    let token = s.enroll("dev-1").await;
    let other = s.enroll("dev-2").await;
    let bytes = s.release(Component::Main, "1.2.0", 5000).await;
    assert_eq!(
        s.op_put("/api/v1/groups/slow-link", json!({"chunk_size": 1024}))
            .await
            .status(),
        StatusCode::OK
    );
    let resp = s
        .op_put("/api/v1/devices/dev-1/group", json!({"group": "slow-link"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<ferry_core::api::DeviceRecord>()
            .await
            .unwrap()
            .group,
        "slow-link"
    );

    let CheckinResponse::Update { offer } = s.checkin(&token, "dev-1", "1.0.0", "1.0.0").await
    else {
        panic!("no offer")
    };
    assert_eq!(offer.component, Component::Main);
    assert_eq!(offer.version, ver("1.2.0"));
    assert_eq!(offer.target_name, "main/1.2.0.ferry");
    assert_eq!(offer.file_base_url, "http://files.example:9000/files");
    assert_eq!(offer.metadata_base_url, format!("{}/tuf", s.url));
    assert_eq!(offer.chunk_size, 1024);
    assert_eq!(offer.length, bytes.len() as u64);
    assert_eq!(offer.sha256, sha256_hex(&bytes));

    let CheckinResponse::Update { offer } = s.checkin(&other, "dev-2", "1.0.0", "1.0.0").await
    else {
        panic!("no offer")
    };
    assert_eq!(
        offer.chunk_size, 4096,
        "devices outside the group get default_chunk_size"
    );
}

#[tokio::test]
async fn group_and_chunk_size_changes_are_validated() {
    let f = start().await;
    let s = &f.server;
    let resp = s
        .op_put("/api/v1/groups/g1", json!({"chunk_size": 0}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(TestServer::error_of(resp).await.contains("chunk_size 0"));
    let resp = s
        .op_put("/api/v1/devices/ghost/group", json!({"group": "g1"}))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("device ghost is not enrolled")
    );
}

#[tokio::test]
async fn reports_are_archived_per_device() {
    let f = start().await;
    let s = &f.server;
    let t1 = s.enroll("dev-1").await;
    let t2 = s.enroll("dev-2").await;
    let report = |id: &str, outcome: Outcome| UpgradeReport {
        device_id: dev(id),
        component: Component::Main,
        from_version: ver("1.0.0"),
        to_version: ver("1.1.0"),
        outcome,
        reason: "health check failed: exit 3".into(),
        log_tail: vec!["starting".into()],
        bytes_downloaded: 4096,
        rolled_back: outcome == Outcome::Failure,
    };
    let post = |token: &str, r: &UpgradeReport| {
        s.client
            .post(format!("{}/api/v1/reports", s.url))
            .bearer_auth(token)
            .json(r)
            .send()
    };
    let resp = post(&t1, &report("dev-1", Outcome::Failure)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .expect("id");
    assert_eq!(
        post(&t2, &report("dev-2", Outcome::Success))
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        post(&t2, &report("dev-1", Outcome::Success))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    let mine: Vec<ArchivedReport> = s
        .op_get("/api/v1/devices/dev-1/reports")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, id);
    assert_eq!(mine[0].report, report("dev-1", Outcome::Failure));
    let all: Vec<ArchivedReport> = s.op_get("/api/v1/reports").await.json().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        s.op_get("/api/v1/devices/nobody/reports").await.status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = s
        .client
        .get(format!("{}/api/v1/reports", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let device_as_operator = s
        .client
        .get(format!("{}/api/v1/reports", s.url))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(device_as_operator.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn backups_are_stored_and_listed() {
    let f = start_with(|c| c.max_backup_bytes = 1000).await;
    let s = &f.server;
    let token = s.enroll("dev-1").await;
    let bytes = vec![42u8; 600];
    let put = |path: &str, body: Vec<u8>| {
        s.client
            .put(format!("{}{path}", s.url))
            .bearer_auth(&token)
            .body(body)
            .send()
    };

    let resp = put("/api/v1/backups/main/1.0.0", bytes.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let record: BackupRecord = resp.json().await.unwrap();
    assert_eq!(
        (record.device_id.as_str(), record.component, record.length),
        ("dev-1", Component::Main, 600)
    );
    assert_eq!(record.sha256, sha256_hex(&bytes));
    let stored =
        std::fs::read(f.tmp.path().join("data/artifacts/backups/dev-1/main/1.0.0")).unwrap();
    assert_eq!(stored, bytes);

    let resp = put("/api/v1/backups/main/1.0.1", vec![0u8; 1001])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(TestServer::error_of(resp).await.contains("1000 bytes"));
    let resp = put("/api/v1/backups/firmware/1.0.0", vec![1])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let listed: Vec<BackupRecord> = s
        .op_get("/api/v1/devices/dev-1/backups")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, vec![record]);
}

#[tokio::test]
async fn malformed_json_gets_400_naming_the_problem() {
    let f = start_with(|c| c.max_json_bytes = 512).await;
    let s = &f.server;
    let token = s.enroll("dev-1").await;
    let send = |body: &str| {
        s.client
            .post(format!("{}/api/v1/checkin", s.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let resp = send(r#"{"device_id":"dev-1","device_type":"gw","upgrader_version":"1.0.0","main_version":"one"}"#).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let msg = TestServer::error_of(resp).await;
    assert!(
        msg.contains("`main_version`") && msg.contains("'one'"),
        "{msg}"
    );

    let resp = send("{\"device_id\":\"dev-1\",\n\"device_type\": gw}")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(TestServer::error_of(resp).await.contains("line 2"));

    let resp = send(r#"{"device_id":"dev-1"}"#).await.unwrap();
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("missing field `device_type`")
    );

    let resp = send(&format!(
        r#"{{"device_id":"dev-1","device_type":"{}"}}"#,
        "x".repeat(600)
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(TestServer::error_of(resp).await.contains("512 bytes"));
}

#[tokio::test]
async fn unknown_routes_answer_json_errors() {
    let f = start().await;
    let resp = f
        .server
        .client
        .get(format!("{}/api/v1/nothing", f.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("GET /api/v1/nothing")
    );
    let resp = f
        .server
        .client
        .delete(format!("{}/api/v1/checkin", f.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let health = f
        .server
        .client
        .get(format!("{}/healthz", f.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}
