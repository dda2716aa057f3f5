//! `GET /metrics`: Prometheus text with event counters and fleet gauges, for the operator only.

use crate::common::*;
use crate::dashboard::{alert_for, post_alert};
use ferry_core::Component;
use reqwest::StatusCode;

/// The value of the sample `name_and_labels` (e.g. `ferry_devices` or
/// `ferry_checkins_total{answer="update"}`), if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_events_and_describe_the_fleet() {
    let f = start().await;
    let s = &f.server;
    let a = s.enroll("dev-a").await;
    let b = s.enroll("dev-b").await;
    s.checkin(&a, "dev-a", "1.0.0", "1.0.0").await;
    s.release(Component::Main, "1.1.0", 100).await;
    s.checkin(&b, "dev-b", "1.1.0", "1.0.0").await;
    s.checkin(&a, "dev-a", "1.0.0", "1.0.0").await;
    let failure = serde_json::json!({"device_id": "dev-a", "component": "main", "from_version": "1.0.0",
        "to_version": "1.1.0", "outcome": "failure", "reason": "health check failed", "rolled_back": true});
    let resp = s.client.post(format!("{}/api/v1/reports", s.url)).bearer_auth(&a).json(&failure).send().await.unwrap();
    assert!(resp.status().is_success());
    post_alert(s, &a, &alert_for("dev-a", "1.1.0")).await;

    let unauth = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    let resp = s.op_get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();

    // Event counters of this process (other tests run in their own processes under nextest;
    // `>=` keeps this true under `cargo test`'s shared process too).
    assert!(sample(&text, "ferry_checkins_total{answer=\"nothing_new\"}").unwrap() >= 2.0, "{text}");
    assert!(sample(&text, "ferry_checkins_total{answer=\"update\"}").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, "ferry_reports_total{component=\"main\",outcome=\"failure\"}").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, "ferry_security_alerts_total").unwrap() >= 1.0, "{text}");
    // Fleet gauges from this server's registry: exact.
    assert_eq!(sample(&text, "ferry_devices"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "ferry_devices_running{component=\"main\",version=\"1.0.0\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ferry_devices_running{component=\"main\",version=\"1.1.0\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ferry_release_devices_eligible{component=\"main\",version=\"1.1.0\"}"), Some(2.0));
    assert_eq!(sample(&text, "ferry_release_devices_done{component=\"main\",version=\"1.1.0\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferry_release_devices_failed{component=\"main\",version=\"1.1.0\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferry_release_halted{component=\"main\",version=\"1.1.0\"}"), Some(1.0));
}

#[tokio::test]
async fn file_service_counts_the_bytes_it_serves() {
    let f = start().await;
    let s = &f.server;
    let token = s.enroll("dev-a").await;
    s.release(Component::Main, "1.1.0", 5_000).await;
    let ferry_core::api::CheckinResponse::Update { offer } = s.checkin(&token, "dev-a", "1.0.0", "1.0.0").await else {
        panic!("expected an update offer");
    };
    let url = format!("{}/{}", offer.file_base_url.trim_end_matches('/'), offer.target_name);
    let resp = s.client.get(&url).bearer_auth(&token).header("Range", "bytes=0-999").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{url}");
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    let text = s.op_get("/metrics").await.text().await.unwrap();
    assert!(sample(&text, "ferry_file_bytes_served_total").unwrap() >= 1000.0, "{text}");
}
