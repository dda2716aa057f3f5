//! Firmware metadata: managed with PUT/GET /api/v1/firmware/{id}, published as the signed TUF
//! target `firmware/{id}.json`, fetched by devices byte for byte; go-live in the release target.

use crate::common::*;
use chrono::Utc;
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::TrustedSet;
use ferry_core::Component;
use ferry_core::firmware::FirmwareMetadata;
use reqwest::StatusCode;
use serde_json::json;

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

async fn trusted(s: &TestServer) -> TrustedSet {
    let now = Utc::now();
    let mut t = TrustedSet::new(&fetch(s, "root.json").await).unwrap();
    t.update_timestamp(&fetch(s, "timestamp.json").await, now)
        .unwrap();
    let snap = format!("{}.snapshot.json", t.timestamp_snapshot_version().unwrap());
    t.update_snapshot(&fetch(s, &snap).await, now).unwrap();
    let targets = format!("{}.targets.json", t.snapshot_version_for_targets().unwrap());
    t.update_targets(&fetch(s, &targets).await, now).unwrap();
    t
}

fn metadata(vendor: &SigningKey) -> serde_json::Value {
    json!({
        "id": "cam-fw",
        "name": "Camera firmware",
        "type": "application",
        "vendor": "Acme",
        "vendor_public_key": vendor.public().to_json(),
        "unpack_rule": "tar.gz",
        "interfaces": [{"kind": "serial", "path": "/dev/ttyS1"}, {"kind": "gpio", "path": "/sys/class/gpio/gpio17"}],
    })
}

#[tokio::test]
async fn firmware_metadata_is_managed_published_through_tuf_and_served_to_devices() {
    let f = start().await;
    let s = &f.server;
    let vendor = SigningKey::generate();
    assert_eq!(
        s.op_get("/api/v1/firmware/cam-fw").await.status(),
        StatusCode::NOT_FOUND
    );

    let resp = s.op_put("/api/v1/firmware/cam-fw", metadata(&vendor)).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let got: FirmwareMetadata = s
        .op_get("/api/v1/firmware/cam-fw")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got.vendor, "Acme");
    assert_eq!(got.unpack_rule, "tar.gz");
    assert_eq!(got.interfaces.len(), 2);

    // Devices get the exact bytes the TUF target signs.
    let token = s.enroll("dev-1").await;
    let resp = s
        .client
        .get(format!("{}/api/v1/device/firmware/cam-fw", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    let t = trusted(s).await;
    t.verify_target(
        "firmware/cam-fw.json",
        bytes.len() as u64,
        &sha256_hex(&bytes),
    )
    .unwrap();
    assert_eq!(FirmwareMetadata::parse_for("cam-fw", &bytes).unwrap(), got);
    let no_auth = s
        .client
        .get(format!("{}/api/v1/device/firmware/cam-fw", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);

    // An update republishes; a release upload keeps the firmware target listed.
    let mut changed = metadata(&vendor);
    changed["unpack_rule"] = json!("zip");
    assert_eq!(
        s.op_put("/api/v1/firmware/cam-fw", changed).await.status(),
        StatusCode::OK
    );
    s.release(Component::Main, "1.0.0", 100).await;
    let t = trusted(s).await;
    let entry = t
        .target("firmware/cam-fw.json")
        .expect("firmware target still listed");
    assert_eq!(entry.custom["firmware"], "cam-fw");
    assert_ne!(
        entry.hashes["sha256"],
        sha256_hex(&bytes),
        "the new document is published"
    );
}

#[tokio::test]
async fn bad_firmware_metadata_is_refused_with_a_reason() {
    let f = start().await;
    let s = &f.server;
    let vendor = SigningKey::generate();
    let mut wrong_id = metadata(&vendor);
    wrong_id["id"] = json!("other");
    let resp = s.op_put("/api/v1/firmware/cam-fw", wrong_id).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(TestServer::error_of(resp).await.contains("other"));
    let mut bad_rule = metadata(&vendor);
    bad_rule["unpack_rule"] = json!("rar");
    let resp = s.op_put("/api/v1/firmware/cam-fw", bad_rule).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(TestServer::error_of(resp).await.contains("rar"));
    let mut bad_key = metadata(&vendor);
    bad_key["vendor_public_key"] = json!({"keytype": "ed25519"});
    let resp = s.op_put("/api/v1/firmware/cam-fw", bad_key).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("vendor_public_key")
    );
    assert_eq!(
        s.op_put("/api/v1/firmware/Bad..id", metadata(&vendor))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let resp = s
        .client
        .put(format!("{}/api/v1/firmware/cam-fw", s.url))
        .json(&metadata(&vendor))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn release_go_live_is_in_its_signed_target() {
    let f = start().await;
    let s = &f.server;
    let go_live = 4_102_444_800_000u64;
    let bytes = artifact(
        &s.dir,
        Component::Main,
        "1.3.0",
        &["gw"],
        Some(&s.release_key),
        50,
    );
    let resp = s
        .client
        .post(format!("{}/api/v1/releases?go_live={go_live}", s.url))
        .bearer_auth(OPERATOR)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let t = trusted(s).await;
    assert_eq!(
        t.target("main/1.3.0.ferry").unwrap().custom["go_live"],
        json!(go_live)
    );
}
