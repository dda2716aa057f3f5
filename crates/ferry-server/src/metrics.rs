//! Prometheus metrics at `GET /metrics` (operator bearer token, as Prometheus'
//! `authorization` scrape setting sends it).
//!
//! Two kinds: **event counters** of this process (check-ins by answer, reports by outcome,
//! security alerts, artifact bytes served), recorded through the `metrics` facade into a
//! Prometheus recorder; and **fleet gauges** computed from the registry at each scrape (devices
//! per running version, rollout progress per release, halted releases), so every stateless
//! instance sharing one registry reports the same fleet.

use crate::auth::OperatorAuth;
use crate::dashboard::view;
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferry_core::Component;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it). When another
/// recorder is already installed (an embedding program's), events go there and `/metrics`
/// shows the fleet gauges only.
pub fn init() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            describe();
            handle
        }
        Err(e) => {
            tracing::warn!("metrics: a recorder is already installed ({e}); /metrics shows fleet gauges only");
            PrometheusBuilder::new().build_recorder().handle()
        }
    })
}

fn describe() {
    metrics::describe_counter!("ferry_checkins_total", "Device check-ins answered, by answer (nothing_new, update, delta).");
    metrics::describe_counter!("ferry_reports_total", "Upgrade reports received, by component and outcome.");
    metrics::describe_counter!("ferry_security_alerts_total", "Security alerts received from device preflights.");
    metrics::describe_counter!("ferry_file_bytes_served_total", "Artifact bytes the file service answered GET requests with (their Content-Length).");
}

/// A check-in was answered (`answer`: `nothing_new`, `update`, `delta`).
pub fn checkin(answer: &'static str) {
    metrics::counter!("ferry_checkins_total", "answer" => answer).increment(1);
}

/// An upgrade report arrived.
pub fn report(component: Component, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!("ferry_reports_total", "component" => component.as_str(), "outcome" => outcome).increment(1);
}

/// A security alert arrived.
pub fn alert() {
    metrics::counter!("ferry_security_alerts_total").increment(1);
}

/// The file service sent `bytes` bytes of an artifact.
pub fn bytes_served(bytes: u64) {
    metrics::counter!("ferry_file_bytes_served_total").increment(bytes);
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The fleet gauges in Prometheus text format.
async fn fleet_gauges(state: &AppState) -> AppResult<String> {
    let store = |what: &'static str| move |e| AppError::store(what, e);
    let devices = state.registry.devices().await.map_err(store("listing devices for /metrics"))?;
    let releases = state.registry.releases().await.map_err(store("listing releases for /metrics"))?;
    let reports = state.registry.reports(None, 500).await.map_err(store("reading reports for /metrics"))?;
    let mut running: BTreeMap<(&str, String), u64> = BTreeMap::new();
    for d in &devices {
        for (component, version) in [(Component::Main, &d.main_version), (Component::Agent, &d.upgrader_version)] {
            if let Some(v) = version {
                *running.entry((component.as_str(), v.to_string())).or_default() += 1;
            }
        }
    }
    let rollouts = view::rollouts(&releases, &devices, &reports, now_ms());
    let mut out = String::new();
    let _ = writeln!(out, "# HELP ferry_devices Enrolled devices.\n# TYPE ferry_devices gauge\nferry_devices {}", devices.len());
    let _ = writeln!(out, "# HELP ferry_devices_running Devices per running version.\n# TYPE ferry_devices_running gauge");
    for ((component, version), n) in &running {
        let _ = writeln!(out, "ferry_devices_running{{component=\"{component}\",version=\"{}\"}} {n}", label(version));
    }
    let _ = writeln!(out, "# HELP ferry_release_devices_eligible Devices a release is for.\n# TYPE ferry_release_devices_eligible gauge");
    for r in &rollouts {
        let _ = writeln!(out, "ferry_release_devices_eligible{{component=\"{}\",version=\"{}\"}} {}", r.component, label(&r.version), r.eligible);
    }
    let _ = writeln!(out, "# HELP ferry_release_devices_done Devices running a release or a newer one.\n# TYPE ferry_release_devices_done gauge");
    for r in &rollouts {
        let _ = writeln!(out, "ferry_release_devices_done{{component=\"{}\",version=\"{}\"}} {}", r.component, label(&r.version), r.done);
    }
    let _ = writeln!(out, "# HELP ferry_release_devices_failed Devices whose newest attempt at a release failed.\n# TYPE ferry_release_devices_failed gauge");
    for r in &rollouts {
        let _ = writeln!(out, "ferry_release_devices_failed{{component=\"{}\",version=\"{}\"}} {}", r.component, label(&r.version), r.failed);
    }
    let _ = writeln!(out, "# HELP ferry_release_halted 1 while a security alert halts the release.\n# TYPE ferry_release_halted gauge");
    for r in &rollouts {
        let _ = writeln!(out, "ferry_release_halted{{component=\"{}\",version=\"{}\"}} {}", r.component, label(&r.version), u8::from(r.halted));
    }
    Ok(out)
}

/// `GET /metrics`: event counters and fleet gauges in Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "scrape_metrics",
    tag = "operations",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn scrape(State(state): State<AppState>, _op: OperatorAuth) -> AppResult<Response> {
    let mut body = init().render();
    body.push_str(&fleet_gauges(&state).await?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("1.2.0-rc.1+build"), "1.2.0-rc.1+build");
    }
}
