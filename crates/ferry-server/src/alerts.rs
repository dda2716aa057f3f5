//! Security alerts: a device's preflight judged a release unsafe. The alert is archived and
//! the release's rollout halted (offered to no device) until an operator resumes it.

use crate::auth::{DeviceAuth, OperatorAuth};
use crate::body::ApiJson;
use crate::device_api::parse_component_version;
use crate::error::{AppError, AppResult};
use crate::management::parse_limit;
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ferry_core::api::{ArchivedAlert, ReleaseRecord, SecurityAlert};
use ferry_store::StoreError;

/// Checks what the server relies on in an alert: a stage and at least one finding.
fn validate(alert: &SecurityAlert) -> AppResult<()> {
    if alert.stage.trim().is_empty() {
        return Err(AppError::unprocessable(
            "the alert names no preflight stage (gate, scan, sandbox or mirror)",
        ));
    }
    if alert.findings.is_empty() {
        return Err(AppError::unprocessable(
            "the alert carries no finding; send what the preflight found",
        ));
    }
    Ok(())
}

/// `POST /api/v1/alerts`: archives the alert and halts the rollout of its release; answers
/// 201 with the archived alert (its id and the operator message).
#[utoipa::path(
    post,
    path = "/api/v1/alerts",
    tag = "alerts",
    security(("device" = [])),
    request_body(content = ferry_core::api::SecurityAlert, content_type = "application/json"),
    responses(
        (status = 201, description = "The archived alert (id and operator message)", body = ferry_core::api::ArchivedAlert),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn post_alert(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(alert): ApiJson<SecurityAlert>,
) -> AppResult<(StatusCode, Json<ArchivedAlert>)> {
    auth.require(&alert.device_id)?;
    validate(&alert)?;
    let message = ArchivedAlert::message_for(&alert);
    let now = now_ms();
    let id = match state.registry.add_alert(&alert, &message, now).await {
        Ok(id) => id,
        Err(StoreError::NotFound(_)) => {
            return Err(AppError::not_found(format!(
                "no release {} {} on this server; an alert can only be about a release it published",
                alert.component, alert.version
            )));
        }
        Err(e) => {
            return Err(AppError::store(
                &format!(
                    "archiving the security alert of device {} about {} {}",
                    alert.device_id, alert.component, alert.version
                ),
                e,
            ));
        }
    };
    tracing::error!(alert = id, device = %alert.device_id, component = %alert.component,
        version = %alert.version, stage = %alert.stage, findings = alert.findings.len(),
        "security alert: rollout of the release halted");
    crate::metrics::alert();
    Ok((
        StatusCode::CREATED,
        Json(ArchivedAlert {
            id,
            received_at: now,
            alert,
            message,
        }),
    ))
}

/// `GET /api/v1/alerts?limit=N`: security alerts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    security(("operator" = [])),
    params(("limit" = Option<u32>, Query, description = "At most this many, newest first")),
    responses(
        (status = 200, description = "Alerts, newest first", body = Vec<ferry_core::api::ArchivedAlert>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    _op: OperatorAuth,
    RawQuery(query): RawQuery,
) -> AppResult<Json<Vec<ArchivedAlert>>> {
    let limit = parse_limit(query.as_deref())?;
    Ok(Json(state.registry.alerts(limit).await.map_err(|e| {
        AppError::store("listing security alerts", e)
    })?))
}

/// `POST /api/v1/releases/{component}/{version}/resume`: lifts the release's halt (the
/// operator cleared it); answers with the release.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{component}/{version}/resume",
    operation_id = "resume_release",
    tag = "alerts",
    security(("operator" = [])),
    params(("component" = String, Path, description = "Component: `main` or `agent`"), ("version" = String, Path, description = "Semantic version of the release")),
    responses(
        (status = 200, description = "The release with its halt lifted", body = ferry_core::api::ReleaseRecord),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path((component, version)): Path<(String, String)>,
) -> AppResult<Json<ReleaseRecord>> {
    Ok(Json(resume_release(&state, &component, &version).await?))
}

/// Lifts the halt of release `component` `version` (API and dashboard); answers the release.
pub(crate) async fn resume_release(
    state: &AppState,
    component: &str,
    version: &str,
) -> AppResult<ReleaseRecord> {
    let (component, version) = parse_component_version(component, version)?;
    let missing = || {
        AppError::not_found(format!(
            "no release {component} {version}; list releases with GET /api/v1/releases"
        ))
    };
    let was_halted = match state.registry.resume_release(component, &version).await {
        Ok(h) => h,
        Err(StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => {
            return Err(AppError::store(
                &format!("resuming release {component} {version}"),
                e,
            ));
        }
    };
    let release = state
        .registry
        .release(component, &version)
        .await
        .map_err(|e| AppError::store(&format!("reading release {component} {version}"), e))?
        .ok_or_else(missing)?;
    tracing::warn!(%component, %version, was_halted, "release rollout resumed by the operator");
    if let Some(push) = &state.push {
        push.release_available(&release, "resumed", crate::state::now_ms());
    }
    Ok(release)
}
