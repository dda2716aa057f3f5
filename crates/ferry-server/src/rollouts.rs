//! Staged rollouts on the server: the operator sets a wave plan on a release
//! (`PUT /api/v1/releases/{component}/{version}/rollout`); a check-in is offered the release
//! only once the device's wave is open ([`admitted`]); every report re-judges the failure
//! threshold and halts the rollout when it is crossed ([`after_report`]). The decisions are
//! `ferry_core::rollout`'s; this module gathers their inputs from the registry.

use crate::auth::OperatorAuth;
use crate::body::ApiJson;
use crate::device_api::parse_component_version;
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use ferry_core::api::{ArchivedReport, DeviceRecord, Outcome, ReleaseRecord, UpgradeReport};
use ferry_core::rollout::{self, RolloutPlan, RolloutRecord, WaveProgress};
use ferry_core::{Component, DeviceId, Version};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One wave as operators see it.
#[derive(utoipa::ToSchema)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaveStatus {
    /// Wave name (`(rest)` for the implicit last wave).
    pub name: String,
    /// Devices in it (of the device types the release is for).
    pub members: u32,
    /// Of those, devices that installed the release.
    pub succeeded: u32,
    /// When it opened (Unix ms), if it is open.
    pub opened_at: Option<u64>,
}

/// A rollout plan with its progress (`GET /api/v1/rollouts`).
#[derive(utoipa::ToSchema)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutStatus {
    /// The stored plan and halt.
    #[serde(flatten)]
    pub record: RolloutRecord,
    /// Each wave, the implicit last one included.
    pub waves: Vec<WaveStatus>,
    /// When the next wave opens, if its successes are in but its soak time is not over.
    pub next_opens_at: Option<u64>,
}

/// When a release's waves start counting: the latest of its upload, its go-live and the plan.
fn start_of(release: &ReleaseRecord, record: &RolloutRecord) -> u64 {
    release.created_at.max(release.go_live.unwrap_or(0)).max(record.created_at)
}

fn fits(release: &ReleaseRecord, device: &DeviceRecord) -> bool {
    release.device_types.is_empty() || release.device_types.iter().any(|t| t == &device.device_type)
}

/// Wave members and first-success times per wave, from the fleet and the release's reports.
fn progress(plan: &RolloutPlan, release: &ReleaseRecord, devices: &[DeviceRecord], reports: &[ArchivedReport]) -> Vec<WaveProgress> {
    let mut waves = vec![WaveProgress::default(); plan.wave_count()];
    let mut wave_of: BTreeMap<&DeviceId, usize> = BTreeMap::new();
    for d in devices.iter().filter(|d| fits(release, d)) {
        let w = plan.wave_of(d.device_id.as_str(), &d.group);
        waves[w].members += 1;
        wave_of.insert(&d.device_id, w);
    }
    let mut counted: BTreeSet<&DeviceId> = BTreeSet::new();
    for a in reports.iter().filter(|a| a.report.outcome == Outcome::Success) {
        if let Some(&w) = wave_of.get(&a.report.device_id)
            && counted.insert(&a.report.device_id)
        {
            waves[w].successes.push(a.received_at);
        }
    }
    waves
}

/// The releases a device may be offered now: those without a plan, and those whose plan is
/// not halted and whose wave holding this device is open. Releases the device already runs
/// (or is past) are kept as they are (they decide nothing).
pub async fn admitted(
    state: &AppState,
    id: &DeviceId,
    running: impl Fn(Component) -> Version,
    releases: Vec<ReleaseRecord>,
    now: u64,
) -> AppResult<Vec<ReleaseRecord>> {
    let plans = state.registry.rollouts().await.map_err(|e| AppError::store("listing rollout plans", e))?;
    if plans.is_empty() {
        return Ok(releases);
    }
    let mut devices: Option<Vec<DeviceRecord>> = None;
    let mut out = Vec::with_capacity(releases.len());
    for release in releases {
        let Some(record) = plans.iter().find(|p| p.component == release.component && p.version == release.version) else {
            out.push(release);
            continue;
        };
        if running(release.component) >= release.version {
            out.push(release);
            continue;
        }
        if record.halted.is_some() {
            continue;
        }
        if devices.is_none() {
            devices = Some(state.registry.devices().await.map_err(|e| AppError::store("listing devices for a rollout", e))?);
        }
        let fleet = devices.as_deref().unwrap_or_default();
        let group = fleet.iter().find(|d| &d.device_id == id).map(|d| d.group.as_str()).unwrap_or("default");
        let reports = state
            .registry
            .release_reports(release.component, &release.version)
            .await
            .map_err(|e| AppError::store(&format!("reading the reports of {} {}", release.component, release.version), e))?;
        let waves = progress(&record.plan, &release, fleet, &reports);
        let wave = record.plan.wave_of(id.as_str(), group);
        if rollout::state(&record.plan, start_of(&release, record), &waves, now).admits(wave) {
            out.push(release);
        } else {
            tracing::debug!(device = %id, component = %release.component, version = %release.version, wave, "rollout wave not open yet");
        }
    }
    Ok(out)
}

/// Re-judges the failure threshold of the release a report is about; halts its rollout when
/// crossed. Failures here are logged, never fail the report.
pub async fn after_report(state: &AppState, report: &UpgradeReport) {
    let plans = match state.registry.rollouts().await {
        Ok(p) => p,
        Err(e) => return tracing::error!("rollout check after a report: listing plans: {e}"),
    };
    let Some(record) = plans.iter().find(|p| p.component == report.component && p.version == report.to_version) else {
        return;
    };
    if record.halted.is_some() {
        return;
    }
    let reports = match state.registry.release_reports(report.component, &report.to_version).await {
        Ok(r) => r,
        Err(e) => return tracing::error!("rollout check after a report: reading reports: {e}"),
    };
    // Each device counts once, with its newest outcome (a retry that succeeded is a success).
    let newest: BTreeMap<&DeviceId, Outcome> = reports.iter().map(|a| (&a.report.device_id, a.report.outcome)).collect();
    let failures = newest.values().filter(|o| **o == Outcome::Failure).count() as u32;
    let successes = newest.len() as u32 - failures;
    let Some(reason) = record.plan.failure_halt(successes, failures) else { return };
    match state.registry.halt_rollout(report.component, &report.to_version, &reason, now_ms()).await {
        Ok(true) => tracing::error!(component = %report.component, version = %report.to_version, %reason, "rollout halted by its failure threshold"),
        Ok(false) => {}
        Err(e) => tracing::error!("halting the rollout of {} {}: {e}", report.component, report.to_version),
    }
}

async fn status_of(state: &AppState, record: RolloutRecord, devices: &[DeviceRecord]) -> AppResult<RolloutStatus> {
    let release = state
        .registry
        .release(record.component, &record.version)
        .await
        .map_err(|e| AppError::store("reading a release", e))?
        .ok_or_else(|| AppError::not_found(format!("no release {} {}", record.component, record.version)))?;
    let reports = state
        .registry
        .release_reports(record.component, &record.version)
        .await
        .map_err(|e| AppError::store("reading a release's reports", e))?;
    let waves = progress(&record.plan, &release, devices, &reports);
    let st = rollout::state(&record.plan, start_of(&release, &record), &waves, now_ms());
    let names = record.plan.waves.iter().map(|w| w.name.clone()).chain(std::iter::once("(rest)".to_string()));
    let waves = names
        .zip(&waves)
        .enumerate()
        .map(|(i, (name, p))| WaveStatus {
            name,
            members: p.members,
            succeeded: p.successes.len() as u32,
            opened_at: st.opened_at.get(i).copied(),
        })
        .collect();
    Ok(RolloutStatus { record, waves, next_opens_at: st.next_opens_at })
}

/// `PUT /api/v1/releases/{component}/{version}/rollout`: sets (or replaces) a release's wave
/// plan; answers its status.
#[utoipa::path(
    put,
    path = "/api/v1/releases/{component}/{version}/rollout",
    operation_id = "put_rollout_plan",
    tag = "rollouts",
    security(("operator" = [])),
    params(("component" = String, Path, description = "Component: `main` or `agent`"), ("version" = String, Path, description = "Semantic version of the release")),
    request_body(content = ferry_core::rollout::RolloutPlan, content_type = "application/json"),
    responses(
        (status = 200, description = "The plan and its waves' progress", body = RolloutStatus),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn put_plan(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path((component, version)): Path<(String, String)>,
    ApiJson(plan): ApiJson<RolloutPlan>,
) -> AppResult<Json<RolloutStatus>> {
    let (component, version) = parse_component_version(&component, &version)?;
    plan.validate().map_err(|e| AppError::bad_request(format!("rollout plan for {component} {version}: {e}")))?;
    let record = RolloutRecord { component, version: version.clone(), plan, created_at: now_ms(), halted: None };
    match state.registry.put_rollout(&record).await {
        Ok(()) => {}
        Err(ferry_store::StoreError::NotFound(_)) => {
            return Err(AppError::not_found(format!(
                "no release {component} {version}; upload it first, then set its rollout plan"
            )));
        }
        Err(e) => return Err(AppError::store(&format!("storing the rollout plan of {component} {version}"), e)),
    }
    tracing::info!(%component, %version, waves = record.plan.waves.len(), "rollout plan set");
    let stored = state
        .registry
        .rollouts()
        .await
        .map_err(|e| AppError::store("reading rollout plans", e))?
        .into_iter()
        .find(|r| r.component == component && r.version == version)
        .unwrap_or(record);
    let devices = state.registry.devices().await.map_err(|e| AppError::store("listing devices", e))?;
    Ok(Json(status_of(&state, stored, &devices).await?))
}

/// Every rollout plan with its waves' progress.
pub async fn statuses(state: &AppState) -> AppResult<Vec<RolloutStatus>> {
    let records = state.registry.rollouts().await.map_err(|e| AppError::store("listing rollout plans", e))?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let devices = state.registry.devices().await.map_err(|e| AppError::store("listing devices", e))?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        out.push(status_of(state, record, &devices).await?);
    }
    Ok(out)
}

/// `GET /api/v1/rollouts`: every rollout plan with its waves' progress.
#[utoipa::path(
    get,
    path = "/api/v1/rollouts",
    operation_id = "list_rollouts",
    tag = "rollouts",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Every plan with its waves' progress", body = Vec<RolloutStatus>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn list(State(state): State<AppState>, _op: OperatorAuth) -> AppResult<Json<Vec<RolloutStatus>>> {
    Ok(Json(statuses(&state).await?))
}
