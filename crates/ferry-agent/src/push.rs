//! Push: the agent listens on the MQTT broker for check-in nudges (its fleet, its device type,
//! itself) and checks in soon after one arrives, after a random jitter so a fleet nudged at
//! once does not check in at once. A nudge only brings the next check-in forward; what gets
//! installed is decided and verified exactly as on a scheduled check-in.

use ferry_core::push::{self, CheckinNudge};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// `[push]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Broker URL, `mqtt://HOST[:PORT]`.
    pub mqtt_url: String,
    /// Topic prefix shared with the server. Default `ferry`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Longest random wait between a nudge and the check-in, in milliseconds. Default 10 000.
    #[serde(default = "default_jitter")]
    pub jitter_ms: u64,
}

fn default_prefix() -> String {
    push::DEFAULT_TOPIC_PREFIX.to_string()
}
fn default_jitter() -> u64 {
    10_000
}

impl PushConfig {
    /// Checks the URL and prefix.
    pub fn validate(&self) -> Result<(), push::PushError> {
        push::parse_mqtt_url(&self.mqtt_url)?;
        push::check_prefix(&self.topic_prefix)
    }
}

/// A running subscription; nudges arrive through [`PushListener::next`]. Dropping it
/// disconnects.
pub struct PushListener {
    nudges: mpsc::Receiver<CheckinNudge>,
    task: JoinHandle<()>,
}

impl Drop for PushListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PushListener {
    /// Connects in the background and subscribes to the fleet, device-type and device topics
    /// (again after every reconnect). An unreachable broker is retried with back-off; only an
    /// unusable URL or prefix is an error.
    pub fn start(config: &PushConfig, device_id: &str, device_type: &str) -> Result<PushListener, push::PushError> {
        let endpoint = push::parse_mqtt_url(&config.mqtt_url)?;
        push::check_prefix(&config.topic_prefix)?;
        let topics = push::agent_topics(&config.topic_prefix, device_id, device_type);
        let mut options = MqttOptions::new(format!("ferry-agent-{device_id}"), endpoint.host.clone(), endpoint.port);
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(push::MAX_NUDGE_BYTES + 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        // One slot: nudges that arrive while one is pending coalesce into it.
        let (tx, nudges) = mpsc::channel(1);
        let broker = format!("{}:{}", endpoint.host, endpoint.port);
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(500);
                        for t in &topics {
                            if let Err(e) = client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                                tracing::warn!(topic = %t, "push: cannot subscribe: {e}");
                            }
                        }
                        tracing::info!(%broker, ?topics, "push: listening for check-in nudges");
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => match CheckinNudge::parse(&p.payload) {
                        Some(nudge) => {
                            tracing::info!(topic = %p.topic, reason = %nudge.reason, "push: check-in nudge received");
                            let _ = tx.try_send(nudge);
                        }
                        None => tracing::warn!(topic = %p.topic, bytes = p.payload.len(), "push: ignored a message that is not a check-in nudge"),
                    },
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%broker, "push: broker connection failed: {e}; retrying in {} ms (scheduled check-ins go on)", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
        Ok(PushListener { nudges, task })
    }

    /// The next nudge (waits until one arrives).
    pub async fn next(&mut self) -> CheckinNudge {
        match self.nudges.recv().await {
            Some(n) => n,
            // The listener task never ends on its own; if it did, wait forever like a broker
            // that sends nothing (the schedule still runs).
            None => std::future::pending().await,
        }
    }
}
