//! The device API: enrollment, check-in, upgrade reports, backups.

use crate::auth::{DeviceAuth, new_device_token, secrets_match, token_hash};
use crate::body::{ApiJson, spool};
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_core::api::{
    BackupRecord, CheckinRequest, CheckinResponse, DeltaFailureRecord, DeltaOffer, EnrollRequest,
    EnrollResponse, Outcome, ReleaseRecord, UpdateOffer, UpgradeReport,
};
use ferry_core::policy::{DeviceState, Offer, offer};
use ferry_core::{Component, DeviceId, Version};
use serde_json::{Value, json};

/// `POST /api/v1/enroll`: trades the enrollment token for a fresh per-device token.
#[utoipa::path(
    post,
    path = "/api/v1/enroll",
    tag = "device",
    request_body(content = ferry_core::api::EnrollRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The per-device token", body = ferry_core::api::EnrollResponse),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Wrong enrollment token", body = ferry_core::api::ApiError),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> AppResult<Json<EnrollResponse>> {
    if !secrets_match(&req.enrollment_token, &state.config.enrollment_token) {
        return Err(AppError::unauthorized(format!(
            "enrollment token for device {} is wrong: use the fleet's enrollment_token from the server operator",
            req.device_id
        )));
    }
    validate_device_type(&req.device_type)?;
    let token = new_device_token();
    state
        .registry
        .enroll_device(
            &req.device_id,
            &req.device_type,
            &token_hash(&token),
            now_ms(),
        )
        .await
        .map_err(|e| AppError::store(&format!("enrolling device {}", req.device_id), e))?;
    tracing::info!(device = %req.device_id, device_type = %req.device_type, "device enrolled");
    Ok(Json(EnrollResponse {
        device_token: token,
    }))
}

fn validate_device_type(device_type: &str) -> AppResult<()> {
    let ok = !device_type.is_empty()
        && device_type.len() <= 64
        && device_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "device_type '{device_type}' is invalid: use 1-64 characters from A-Z a-z 0-9 . _ -"
        )))
    }
}

/// `POST /api/v1/checkin`: records the device's versions and answers with the update decision.
#[utoipa::path(
    post,
    path = "/api/v1/checkin",
    operation_id = "checkin",
    tag = "device",
    security(("device" = [])),
    request_body(content = ferry_core::api::CheckinRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The update decision, tagged by `status`", body = ferry_core::api::CheckinResponse),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn checkin(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(req): ApiJson<CheckinRequest>,
) -> AppResult<Json<CheckinResponse>> {
    auth.require(&req.device_id)?;
    validate_device_type(&req.device_type)?;
    let now = now_ms();
    let id = &req.device_id;
    state
        .registry
        .record_checkin(
            id,
            &req.device_type,
            &req.upgrader_version,
            &req.main_version,
            now,
        )
        .await
        .map_err(|e| AppError::store(&format!("recording the check-in of device {id}"), e))?;
    let releases = state
        .registry
        .releases()
        .await
        .map_err(|e| AppError::store("listing releases", e))?;
    let running = |c: Component| match c {
        Component::Main => req.main_version.clone(),
        Component::Agent => req.upgrader_version.clone(),
    };
    let releases = crate::rollouts::admitted(&state, id, running, releases, now).await?;
    let mut delta_failures = req.delta_failures.clone();
    if req.accepts_deltas {
        let stored = state
            .registry
            .delta_failures(id)
            .await
            .map_err(|e| AppError::store(&format!("reading the delta failures of device {id}"), e))?;
        delta_failures.extend(stored.into_iter().map(|f| f.component));
    }
    let device = DeviceState {
        id: id.clone(),
        device_type: req.device_type.clone(),
        upgrader_version: req.upgrader_version.clone(),
        main_version: req.main_version.clone(),
        accepts_deltas: req.accepts_deltas,
        delta_failures,
    };
    let response = match offer(&device, &releases, now) {
        Offer::NothingNew(reason) => CheckinResponse::NothingNew { reason },
        Offer::Full(release) => CheckinResponse::Update {
            offer: build_offer(&state, id, release).await?,
        },
        Offer::Delta { release, delta } => CheckinResponse::Delta {
            offer: build_offer(&state, id, release).await?,
            delta: DeltaOffer {
                from_version: delta.from_version,
                target_name: delta.target_name,
                length: delta.length,
                sha256: delta.sha256,
            },
        },
    };
    tracing::info!(device = %id, main = %req.main_version, upgrader = %req.upgrader_version, ?response, "check-in");
    crate::metrics::checkin(match &response {
        CheckinResponse::NothingNew { .. } => "nothing_new",
        CheckinResponse::Delta { .. } => "delta",
        _ => "update",
    });
    Ok(Json(response))
}

async fn build_offer(
    state: &AppState,
    id: &DeviceId,
    release: ReleaseRecord,
) -> AppResult<UpdateOffer> {
    let record = state
        .registry
        .device(id)
        .await
        .map_err(|e| AppError::store(&format!("reading device {id}"), e))?
        .ok_or_else(|| {
            AppError::not_found(format!(
                "device {id} is not enrolled; enroll it with POST /api/v1/enroll"
            ))
        })?;
    let chunk_size = state
        .registry
        .group_chunk_size(&record.group)
        .await
        .map_err(|e| {
            AppError::store(
                &format!("reading the chunk size of group {}", record.group),
                e,
            )
        })?
        .unwrap_or(state.config.default_chunk_size);
    Ok(UpdateOffer {
        component: release.component,
        version: release.version,
        target_name: release.target_name,
        file_base_url: format!("{}/files", state.config.files_url()),
        metadata_base_url: format!("{}/tuf", state.config.public_url()),
        chunk_size,
        length: release.length,
        sha256: release.sha256,
    })
}

/// `POST /api/v1/reports`: archives an upgrade result; answers 201 `{ "id": N }`.
#[utoipa::path(
    post,
    path = "/api/v1/reports",
    tag = "device",
    security(("device" = [])),
    request_body(content = ferry_core::api::UpgradeReport, content_type = "application/json"),
    responses(
        (status = 201, description = "Archived; body `{\"id\": N}`", body = Object),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(report): ApiJson<UpgradeReport>,
) -> AppResult<(StatusCode, Json<Value>)> {
    auth.require(&report.device_id)?;
    let id = state
        .registry
        .add_report(&report, now_ms())
        .await
        .map_err(|e| {
            AppError::store(
                &format!(
                    "archiving the report of device {} for {} {}",
                    report.device_id, report.component, report.to_version
                ),
                e,
            )
        })?;
    tracing::info!(device = %report.device_id, component = %report.component, from = %report.from_version,
        to = %report.to_version, outcome = ?report.outcome, reason = %report.reason, "upgrade report archived");
    crate::metrics::report(report.component, report.outcome == Outcome::Success);
    crate::rollouts::after_report(&state, &report).await;
    // A device with a delta-failure record is only offered full packages, so its next
    // successful install of that component is the full install that clears the record.
    if report.outcome == Outcome::Success {
        let cleared = state
            .registry
            .clear_delta_failure(&report.device_id, report.component)
            .await
            .map_err(|e| {
                AppError::store(
                    &format!(
                        "clearing the delta-failure record of device {} for {}",
                        report.device_id, report.component
                    ),
                    e,
                )
            })?;
        if cleared {
            tracing::info!(device = %report.device_id, component = %report.component, to = %report.to_version,
                "delta-failure record cleared after a successful full install");
        }
    }
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

/// `POST /api/v1/delta-failures`: a device could not apply a delta (a file it relies on
/// differs, say); stores the record so the device gets full packages of that component until a
/// successful install clears it. Answers 201 with the stored record.
#[utoipa::path(
    post,
    path = "/api/v1/delta-failures",
    tag = "device",
    security(("device" = [])),
    request_body(content = ferry_core::api::DeltaFailureRecord, content_type = "application/json"),
    responses(
        (status = 201, description = "The stored record", body = ferry_core::api::DeltaFailureRecord),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn report_delta_failure(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(record): ApiJson<DeltaFailureRecord>,
) -> AppResult<(StatusCode, Json<DeltaFailureRecord>)> {
    auth.require(&record.device_id)?;
    state.registry.put_delta_failure(&record).await.map_err(|e| {
        AppError::store(
            &format!(
                "storing the delta-failure record of device {} for {} {} -> {}",
                record.device_id, record.component, record.from_version, record.to_version
            ),
            e,
        )
    })?;
    tracing::warn!(device = %record.device_id, component = %record.component, from = %record.from_version,
        to = %record.to_version, state = %record.state, reason = %record.reason, files = record.files.len(),
        "delta failed on device; it gets full packages until a full install succeeds");
    Ok((StatusCode::CREATED, Json(record)))
}

/// Parses `{component}/{version}` path segments with errors naming the bad value.
pub fn parse_component_version(component: &str, version: &str) -> AppResult<(Component, Version)> {
    let component: Component = component
        .parse()
        .map_err(|e| AppError::bad_request(format!("{e}")))?;
    let version: Version = version
        .parse()
        .map_err(|e| AppError::bad_request(format!("{e}")))?;
    Ok((component, version))
}

/// Artifact-store key of a device's backup.
pub fn backup_key(device: &DeviceId, component: Component, version: &Version) -> String {
    format!("backups/{device}/{component}/{version}")
}

/// `PUT /api/v1/backups/{component}/{version}`: stores the raw bytes the device sends.
#[utoipa::path(
    put,
    path = "/api/v1/backups/{component}/{version}",
    tag = "device",
    security(("device" = [])),
    params(("component" = String, Path, description = "Component: `main` or `agent`"), ("version" = String, Path, description = "Semantic version of the release")),
    request_body(content = crate::openapi::Binary, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "The stored backup record", body = ferry_core::api::BackupRecord),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn put_backup(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path((component, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<(StatusCode, Json<BackupRecord>)> {
    let (component, version) = parse_component_version(&component, &version)?;
    let device = auth.0;
    let what = format!("backup of {component} {version} from device {device}");
    let spooled = spool(
        &headers,
        body,
        &state.tmp_dir,
        state.config.max_backup_bytes,
        &what,
        "max_backup_bytes",
    )
    .await?;
    let key = backup_key(&device, component, &version);
    state
        .store
        .put_file(&key, &spooled.path)
        .await
        .map_err(|e| AppError::store(&format!("storing the {what}"), e))?;
    let record = BackupRecord {
        device_id: device,
        component,
        version,
        length: spooled.length,
        sha256: spooled.sha256,
        created_at: now_ms(),
    };
    state
        .registry
        .add_backup(&record)
        .await
        .map_err(|e| AppError::store(&format!("recording the {what}"), e))?;
    tracing::info!(device = %record.device_id, %component, version = %record.version, length = record.length, "backup stored");
    Ok((StatusCode::CREATED, Json(record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_keys_are_per_device_component_and_version() {
        let d = DeviceId::new("356938035643809").unwrap();
        assert_eq!(
            backup_key(&d, Component::Main, &Version::new(1, 2, 3)),
            "backups/356938035643809/main/1.2.3"
        );
    }

    #[test]
    fn component_and_version_errors_name_the_value() {
        assert!(parse_component_version("main", "1.0.0").is_ok());
        let e = parse_component_version("firmware", "1.0.0").unwrap_err();
        assert!(e.message.contains("'firmware'"), "{}", e.message);
        let e = parse_component_version("main", "v1").unwrap_err();
        assert!(e.message.contains("'v1'"), "{}", e.message);
    }

    #[test]
    fn device_types_are_restricted_to_safe_characters() {
        assert!(validate_device_type("gw-x86_64").is_ok());
        assert!(validate_device_type("").is_err());
        assert!(validate_device_type("a/b").is_err());
    }
}
