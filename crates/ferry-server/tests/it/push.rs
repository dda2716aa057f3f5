//! Push through a real MQTT broker (Mosquitto on 127.0.0.1:1883): the server publishes a
//! check-in nudge when a release becomes available, at its go-live time, when a halted rollout
//! resumes, and when the operator nudges one device.

use crate::common::*;
use ferry_core::Component;
use ferry_core::push::CheckinNudge;
use ferry_server::config::PushConfig;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BROKER: &str = "127.0.0.1:1883";

async fn broker_up() -> bool {
    let up = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(BROKER))
        .await
        .is_ok_and(|r| r.is_ok());
    ferry_store::testing::require_service("Mosquitto (MQTT broker)", BROKER, up)
}

/// A unique topic prefix per test, so tests sharing the broker do not see each other.
fn prefix() -> String {
    format!("ferry-test-{}", rand::random::<u64>())
}

/// Subscribes to everything under `prefix` and waits for the broker's SubAck.
async fn subscriber(prefix: &str) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(format!("sub-{}", rand::random::<u32>()), "127.0.0.1", 1883);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(opts, 16);
    client.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), events.poll()).await.expect("no SubAck from the broker");
        if let Ok(Event::Incoming(Packet::SubAck(_))) = ev {
            return (client, events);
        }
    }
}

/// The next nudge published on `topic`, if one arrives `within`: (nudge, arrival in Unix ms).
/// Nudges on other topics are skipped.
async fn try_nudge(events: &mut EventLoop, topic: &str, within: Duration) -> Option<(CheckinNudge, u64)> {
    let deadline = Instant::now() + within;
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), events.poll()).await.ok()?;
        if let Ok(Event::Incoming(Packet::Publish(p))) = ev
            && p.topic == topic
        {
            let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            let nudge = CheckinNudge::parse(&p.payload).expect("nudge payload is a CheckinNudge");
            return Some((nudge, at));
        }
    }
}

/// Like [`try_nudge`], failing the test when none arrives.
async fn nudge_on(events: &mut EventLoop, topic: &str, within: Duration) -> (CheckinNudge, u64) {
    try_nudge(events, topic, within).await.unwrap_or_else(|| panic!("no nudge on {topic} within {within:?}"))
}

async fn server_with_push(prefix: &str) -> Fixture {
    let prefix = prefix.to_string();
    start_with(move |c| {
        c.push = Some(PushConfig { mqtt_url: format!("mqtt://{BROKER}"), topic_prefix: prefix });
    })
    .await
}

#[tokio::test]
async fn uploaded_release_nudges_its_device_type_over_mqtt() {
    if !broker_up().await {
        return;
    }
    let p = prefix();
    let (_sub, mut events) = subscriber(&p).await;
    let f = server_with_push(&p).await;
    // The server's broker connection is made in the background: the operator nudge shows
    // the whole path works (it is delivered once the connection is up).
    let token = f.server.enroll("dev-a").await;
    f.server.checkin(&token, "dev-a", "1.0.0", "1.0.0").await;
    let resp = f.server.op_post("/api/v1/devices/dev-a/nudge", serde_json::json!({})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (nudge, _) = nudge_on(&mut events, &format!("{p}/checkin/device/dev-a"), Duration::from_secs(15)).await;
    assert_eq!(nudge.reason, "operator");
    assert_eq!(nudge.version, None);

    f.server.release(Component::Main, "1.1.0", 100).await;
    let (nudge, _) = nudge_on(&mut events, &format!("{p}/checkin/type/gw"), Duration::from_secs(15)).await;
    assert_eq!(nudge.reason, "release");
    assert_eq!(nudge.component, Some(Component::Main));
    assert_eq!(nudge.version, Some(ver("1.1.0")));
}

#[tokio::test]
async fn release_with_a_go_live_time_nudges_when_it_goes_live_not_before() {
    if !broker_up().await {
        return;
    }
    let p = prefix();
    let (_sub, mut events) = subscriber(&p).await;
    let f = server_with_push(&p).await;
    let s = &f.server;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let go_live = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 1_500;
    let bytes = artifact(&s.dir, Component::Main, "1.1.0", &["gw"], Some(&s.release_key), 100);
    let resp = s
        .client
        .post(format!("{}/api/v1/releases?go_live={go_live}", s.url))
        .bearer_auth(OPERATOR)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (nudge, arrived) = nudge_on(&mut events, &format!("{p}/checkin/type/gw"), Duration::from_secs(15)).await;
    assert_eq!(nudge.version, Some(ver("1.1.0")));
    assert!(arrived >= go_live, "nudged at {arrived}, before go-live {go_live}");
}

#[tokio::test]
async fn nudge_without_push_configured_is_a_conflict_that_says_what_to_set() {
    let f = start().await;
    f.server.enroll("dev-a").await;
    let resp = f.server.op_post("/api/v1/devices/dev-a/nudge", serde_json::json!({})).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("[push]"));
    let resp = f.server.op_post("/api/v1/devices/nobody/nudge", serde_json::json!({})).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unusable_push_url_is_refused_at_startup_naming_the_key() {
    let mut config = ferry_server::ServerConfig::new("/tmp/unused", OPERATOR, ENROLL);
    config.push = Some(PushConfig { mqtt_url: "127.0.0.1:1883".into(), topic_prefix: "ferry".into() });
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("push.mqtt_url") && e.contains("mqtt://HOST[:PORT]"), "{e}");
}
