//! Push through an MQTT broker: when a release becomes available (uploaded, or its halted
//! rollout resumed) the server publishes a check-in nudge on the topics of the device types it
//! is for, so agents check in within seconds instead of at their next scheduled time.
//!
//! The broker connection runs in its own task and reconnects with back-off; publishing never
//! blocks or fails a request (a nudge that cannot be queued is logged and dropped: devices
//! still find the release at their scheduled check-in). Several stateless server instances
//! may share one broker.

use ferry_core::api::ReleaseRecord;
use ferry_core::push::{self, CheckinNudge};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Requests queued towards the broker before new nudges are dropped.
const QUEUE: usize = 256;

/// A connection to the push broker.
pub struct Push {
    client: AsyncClient,
    prefix: String,
    task: JoinHandle<()>,
}

impl Drop for Push {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Push {
    /// Connects (in the background) to the broker at `url` (`mqtt://HOST[:PORT]`), publishing
    /// under `prefix`. Fails only on an unusable URL or prefix; an unreachable broker is retried.
    pub fn start(url: &str, prefix: &str, client_id: &str) -> Result<Push, push::PushError> {
        let endpoint = push::parse_mqtt_url(url)?;
        push::check_prefix(prefix)?;
        let mut options = MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, QUEUE);
        let broker = format!("{}:{}", endpoint.host, endpoint.port);
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(%broker, "push: connected to the MQTT broker");
                        backoff = Duration::from_millis(200);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%broker, "push: MQTT broker connection failed: {e}; retrying in {} ms", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        Ok(Push { client, prefix: prefix.to_string(), task })
    }

    /// Nudges the devices `release` is for to check in (`reason`: `release`, `resumed`); for a
    /// release whose go-live time is still ahead (`now` is the server clock, Unix ms), the
    /// nudge is sent when it goes live.
    pub fn release_available(&self, release: &ReleaseRecord, reason: &str, now: u64) {
        let nudge = CheckinNudge {
            reason: reason.to_string(),
            component: Some(release.component),
            version: Some(release.version.clone()),
        };
        let topics = push::release_topics(&self.prefix, &release.device_types);
        match release.go_live {
            Some(at) if at > now => {
                let client = self.client.clone();
                let wait = Duration::from_millis(at - now);
                tracing::info!(component = %release.component, version = %release.version,
                    "push: nudge scheduled for the release's go-live in {} s", wait.as_secs());
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    for topic in &topics {
                        publish(&client, topic, &nudge);
                    }
                });
            }
            _ => topics.iter().for_each(|topic| publish(&self.client, topic, &nudge)),
        }
    }

    /// Nudges one device to check in.
    pub fn device(&self, device_id: &str, reason: &str) {
        let nudge = CheckinNudge { reason: reason.to_string(), component: None, version: None };
        match push::device_topic(&self.prefix, device_id) {
            Some(topic) => publish(&self.client, &topic, &nudge),
            None => tracing::warn!(device_id, "push: device id cannot be an MQTT topic level; not nudged"),
        }
    }
}

fn publish(client: &AsyncClient, topic: &str, nudge: &CheckinNudge) {
    let payload = serde_json::to_vec(nudge).expect("a nudge serialises");
    match client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
        Ok(()) => tracing::info!(topic, reason = %nudge.reason, "push: check-in nudge queued"),
        Err(e) => tracing::warn!(topic, "push: nudge dropped ({e}); devices will see the change at their next scheduled check-in"),
    }
}

/// `POST /api/v1/devices/{id}/nudge`: asks one device to check in now (202), through the push
/// broker. 409 when the server has no `[push]` configured, 404 for an unknown device.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/nudge",
    tag = "management",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses(
        (status = 202, description = "The nudge was handed to the push broker"),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 409, description = "No `[push]` configured", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn nudge_device(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    _op: crate::auth::OperatorAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> crate::error::AppResult<axum::http::StatusCode> {
    use crate::error::AppError;
    let device = ferry_core::DeviceId::new(id.clone())
        .map_err(|e| AppError::bad_request(format!("device id '{id}': {e}")))?;
    let known = state
        .registry
        .device(&device)
        .await
        .map_err(|e| AppError::store(&format!("reading device {device}"), e))?;
    if known.is_none() {
        return Err(AppError::not_found(format!("no device {device}; list devices with GET /api/v1/devices")));
    }
    let push = state.push.as_ref().ok_or_else(|| {
        AppError::new(
            axum::http::StatusCode::CONFLICT,
            "this server has no [push] section in server.toml (mqtt_url); devices check in on their schedule only",
        )
    })?;
    push.device(device.as_str(), "operator");
    Ok(axum::http::StatusCode::ACCEPTED)
}
