//! Push end to end through a real MQTT broker (Mosquitto on 127.0.0.1:1883): an agent whose
//! schedule says "in an hour" checks in and installs a release within seconds of its upload,
//! because the server nudged it.

mod support;

use ferry_agent::push::PushConfig;
use ferry_core::{Component, Version};
use std::time::{Duration, Instant};
use support::*;

const BROKER: &str = "127.0.0.1:1883";

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// The device's last check-in as the server saw it (`None` before it enrolled or checked in).
async fn last_seen(fx: &Fixture, device: &str) -> Option<u64> {
    let resp = fx.http.get(format!("{}/api/v1/devices", fx.url)).bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
    let devices: Vec<ferry_core::api::DeviceRecord> = resp.json().await.unwrap();
    devices.into_iter().find(|d| d.device_id.as_str() == device)?.last_seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_release_installs_long_before_the_next_scheduled_checkin() {
    let up = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(BROKER))
        .await
        .is_ok_and(|r| r.is_ok());
    if !ferry_store::testing::require_service("Mosquitto (MQTT broker)", BROKER, up) {
        return;
    }
    let prefix = format!("ferry-agent-test-{}", rand::random::<u64>());
    let server_prefix = prefix.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fx = Fixture::start_on_with(listener, ServerOptions::default(), move |c| {
        c.push = Some(ferry_server::config::PushConfig {
            mqtt_url: format!("mqtt://{BROKER}"),
            topic_prefix: server_prefix,
        });
    })
    .await;

    let mut config = fx.device_config("dev-push", &fx.url);
    config.schedule = ferry_core::schedule::Schedule::Interval { every_secs: 3600, jitter_secs: 0 };
    config.push = Some(PushConfig { mqtt_url: format!("mqtt://{BROKER}"), topic_prefix: prefix, jitter_ms: 200 });
    let device = Device::new(config);
    let installed = device.agent().bootstrap(Component::Main, &fx.main_release("1.0.0", true)).await.unwrap();
    assert_eq!(installed, v("1.0.0"));
    device.boot();

    let agent = tokio::spawn(device.agent().run_forever());

    // The first check-in happens at start; then the agent sleeps for an hour unless nudged.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(t) = last_seen(&fx, "dev-push").await {
            break t;
        }
        assert!(Instant::now() < deadline, "the agent never checked in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Its subscription is made in the background: nudge it until it answers with a check-in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = fx
            .http
            .post(format!("{}/api/v1/devices/dev-push/nudge", fx.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        if last_seen(&fx, "dev-push").await.is_some_and(|t| t > first) {
            break;
        }
        assert!(Instant::now() < deadline, "a nudge never brought a check-in");
    }

    // A new release: the server nudges the device type; the agent installs it.
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let installed = |reports: &[ferry_core::api::ArchivedReport]| {
        reports.iter().any(|r| r.report.to_version == v("1.1.0") && r.report.outcome == ferry_core::api::Outcome::Success)
    };
    while !installed(&fx.reports("dev-push").await) {
        assert!(!agent.is_finished(), "the agent loop ended");
        assert!(Instant::now() < deadline, "the pushed release was not installed (schedule is an hour away)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert!(device.healthy());
    agent.abort();
}
