//! Bad input at the server's edges: a malformed config file, a device speaking for another
//! device, and request bodies beyond the JSON limit. Each gets an error naming what and where,
//! and changes nothing.

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::{ArchivedReport, DeviceRecord, Outcome, UpgradeReport};
use ferry_server::ServerConfig;
use reqwest::StatusCode;

const TOKENS: &str =
    "operator_token = \"op-secret-0123456789\"\nenrollment_token = \"enroll-secret-0123456789\"\n";

fn config_file_error(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, text).unwrap();
    let err = ServerConfig::from_toml_file(&path).unwrap_err().to_string();
    (err, path.display().to_string())
}

#[test]
fn rejects_malformed_toml_config_naming_the_line() {
    // A syntax error on line 4: a unit after the number.
    let (err, path) = config_file_error(&format!(
        "{TOKENS}listen = \"127.0.0.1:8080\"\ndefault_chunk_size = 4096 KiB\n"
    ));
    assert!(
        err.contains(&path) && err.contains("line 4") && err.contains("default_chunk_size"),
        "{err}"
    );

    // An unterminated string on line 3.
    let (err, path) = config_file_error(&format!(
        "{TOKENS}public_url = \"https://updates.example.com\nrole = \"all\"\n"
    ));
    assert!(err.contains(&path) && err.contains("line 3"), "{err}");

    // Well-formed TOML, wrong type on line 5: the line and the key are named.
    let (err, path) = config_file_error(&format!(
        "{TOKENS}role = \"all\"\n\nmax_json_bytes = \"64k\"\n"
    ));
    assert!(
        err.contains(&path) && err.contains("line 5") && err.contains("max_json_bytes"),
        "{err}"
    );
}

fn report_for(device: &str) -> UpgradeReport {
    UpgradeReport {
        device_id: dev(device),
        component: Component::Main,
        from_version: ver("1.0.0"),
        to_version: ver("1.1.0"),
        outcome: Outcome::Failure,
        reason: "health check failed".into(),
        log_tail: vec![],
        bytes_downloaded: 0,
        rolled_back: true,
    }
}

#[tokio::test]
async fn report_for_another_device_is_refused_and_not_archived() {
    let f = start().await;
    let s = &f.server;
    let mallory = s.enroll("dev-mallory").await;
    s.enroll("dev-victim").await;

    let resp = s
        .client
        .post(format!("{}/api/v1/reports", s.url))
        .bearer_auth(&mallory)
        .json(&report_for("dev-victim"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let msg = TestServer::error_of(resp).await;
    assert!(
        msg.contains("device token belongs to dev-mallory, not dev-victim"),
        "{msg}"
    );
    for device in ["dev-victim", "dev-mallory"] {
        let archived: Vec<ArchivedReport> = s
            .op_get(&format!("/api/v1/devices/{device}/reports"))
            .await
            .json()
            .await
            .unwrap();
        assert!(archived.is_empty(), "{device}: {archived:?}");
    }
}

/// A check-in body of `len` bytes: valid JSON up to the point where it is too long.
fn huge_checkin(device: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"device_id":"{device}","device_type":""#);
    let tail = r#"","upgrader_version":"1.0.0","main_version":"1.0.0"}"#;
    let mut body = head.into_bytes();
    body.resize(len - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    body
}

async fn last_seen(s: &TestServer, device: &str) -> Option<u64> {
    let devices: Vec<DeviceRecord> = s.op_get("/api/v1/devices").await.json().await.unwrap();
    devices
        .into_iter()
        .find(|d| d.device_id.as_str() == device)
        .expect("enrolled")
        .last_seen
}

#[tokio::test]
async fn checkin_body_over_the_json_limit_gets_413() {
    let f = start().await;
    let s = &f.server;
    let token = s.enroll("dev-big").await;
    let limit = 64 * 1024;
    let body = huge_checkin("dev-big", limit + 1);

    // Declared up front with Content-Length.
    let resp = s
        .client
        .post(format!("{}/api/v1/checkin", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg = TestServer::error_of(resp).await;
    assert!(
        msg.contains(&format!("JSON request body of {} bytes", limit + 1))
            && msg.contains(&format!("limit of {limit} bytes"))
            && msg.contains("`max_json_bytes`"),
        "{msg}"
    );

    // Streamed without a length (chunked): cut off once it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let resp = s
        .client
        .post(format!("{}/api/v1/checkin", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let msg = TestServer::error_of(resp).await;
    assert!(
        msg.contains(&format!("limit of {limit} bytes")) && msg.contains("`max_json_bytes`"),
        "{msg}"
    );
    assert_eq!(
        last_seen(s, "dev-big").await,
        None,
        "no refused check-in was recorded"
    );

    // One byte less is within the limit and parsed (the device type is then refused by name).
    let resp = s
        .client
        .post(format!("{}/api/v1/checkin", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge_checkin("dev-big", limit))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("device_type 'xxx")
    );
}
