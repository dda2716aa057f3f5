//! The management API (operator token): devices, groups, reports, backups.

use crate::auth::OperatorAuth;
use crate::body::ApiJson;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use ferry_core::DeviceId;
use ferry_core::api::{ArchivedReport, BackupRecord, DeviceRecord};
use ferry_store::StoreError;
use serde::{Deserialize, Serialize};

/// Largest segment size a group may set (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Reports returned when no `limit` is given.
const DEFAULT_REPORT_LIMIT: u32 = 100;
/// Most reports one call returns.
const MAX_REPORT_LIMIT: u32 = 1000;

/// Body of `PUT /api/v1/devices/{id}/group`.
#[derive(utoipa::ToSchema)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupAssignment {
    /// The group to move the device into.
    pub group: String,
}

/// Body of `PUT /api/v1/groups/{group}` and its answer.
#[derive(utoipa::ToSchema)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Download segment size in bytes for the group's devices.
    pub chunk_size: u32,
}

fn parse_device(id: &str) -> AppResult<DeviceId> {
    DeviceId::new(id).map_err(|e| AppError::bad_request(e.to_string()))
}

fn validate_group(group: &str) -> AppResult<()> {
    let ok = !group.is_empty()
        && group.len() <= 64
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "group '{group}' is invalid: use 1-64 characters from A-Z a-z 0-9 . _ -"
        )))
    }
}

fn unknown_device(id: &DeviceId) -> AppError {
    AppError::not_found(format!(
        "device {id} is not enrolled; list devices with GET /api/v1/devices"
    ))
}

/// The device, or 404.
async fn existing_device(state: &AppState, id: &DeviceId) -> AppResult<DeviceRecord> {
    state
        .registry
        .device(id)
        .await
        .map_err(|e| AppError::store(&format!("reading device {id}"), e))?
        .ok_or_else(|| unknown_device(id))
}

/// `GET /api/v1/devices`: every enrolled device.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "management",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Every enrolled device", body = Vec<ferry_core::api::DeviceRecord>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn devices(
    State(state): State<AppState>,
    _op: OperatorAuth,
) -> AppResult<Json<Vec<DeviceRecord>>> {
    Ok(Json(
        state
            .registry
            .devices()
            .await
            .map_err(|e| AppError::store("listing devices", e))?,
    ))
}

/// `PUT /api/v1/devices/{id}/group`: moves a device into a group; answers the updated device.
#[utoipa::path(
    put,
    path = "/api/v1/devices/{id}/group",
    tag = "management",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Device id")),
    request_body(content = GroupAssignment, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated device", body = ferry_core::api::DeviceRecord),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn set_group(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GroupAssignment>,
) -> AppResult<Json<DeviceRecord>> {
    let id = parse_device(&id)?;
    validate_group(&req.group)?;
    match state.registry.set_device_group(&id, &req.group).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => return Err(unknown_device(&id)),
        Err(e) => {
            return Err(AppError::store(
                &format!("moving device {id} to group {}", req.group),
                e,
            ));
        }
    }
    tracing::info!(device = %id, group = %req.group, "device group set");
    Ok(Json(existing_device(&state, &id).await?))
}

/// `PUT /api/v1/groups/{group}`: sets the group's download segment size.
#[utoipa::path(
    put,
    path = "/api/v1/groups/{group}",
    tag = "management",
    security(("operator" = [])),
    params(("group" = String, Path, description = "Group name")),
    request_body(content = GroupSettings, content_type = "application/json"),
    responses(
        (status = 200, description = "The group's settings", body = GroupSettings),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn set_group_settings(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(group): Path<String>,
    ApiJson(req): ApiJson<GroupSettings>,
) -> AppResult<Json<GroupSettings>> {
    validate_group(&group)?;
    if req.chunk_size == 0 || req.chunk_size > MAX_CHUNK_SIZE {
        return Err(AppError::bad_request(format!(
            "chunk_size {} for group {group} is out of range: use 1-{MAX_CHUNK_SIZE} bytes (1024-10240 suits most IoT links)",
            req.chunk_size
        )));
    }
    state
        .registry
        .set_group_chunk_size(&group, req.chunk_size)
        .await
        .map_err(|e| AppError::store(&format!("setting the chunk size of group {group}"), e))?;
    tracing::info!(%group, chunk_size = req.chunk_size, "group chunk size set");
    Ok(Json(req))
}

/// Parses `limit=N` (the only query parameter of report listings).
pub(crate) fn parse_limit(query: Option<&str>) -> AppResult<u32> {
    let mut limit = DEFAULT_REPORT_LIMIT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", value)) => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_REPORT_LIMIT).contains(n))
                    .ok_or_else(|| {
                        AppError::bad_request(format!(
                            "limit '{value}' is invalid: give a number from 1 to {MAX_REPORT_LIMIT}"
                        ))
                    })?;
            }
            _ => {
                return Err(AppError::bad_request(format!(
                    "unknown query parameter '{pair}': the only one is limit=N"
                )));
            }
        }
    }
    Ok(limit)
}

/// `GET /api/v1/reports?limit=N`: newest reports of all devices.
#[utoipa::path(
    get,
    path = "/api/v1/reports",
    tag = "management",
    security(("operator" = [])),
    params(("limit" = Option<u32>, Query, description = "At most this many, newest first")),
    responses(
        (status = 200, description = "Newest reports", body = Vec<ferry_core::api::ArchivedReport>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn all_reports(
    State(state): State<AppState>,
    _op: OperatorAuth,
    RawQuery(query): RawQuery,
) -> AppResult<Json<Vec<ArchivedReport>>> {
    let limit = parse_limit(query.as_deref())?;
    Ok(Json(
        state
            .registry
            .reports(None, limit)
            .await
            .map_err(|e| AppError::store("listing reports", e))?,
    ))
}

/// `GET /api/v1/devices/{id}/reports?limit=N`: newest reports of one device.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/reports",
    tag = "management",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Device id"), ("limit" = Option<u32>, Query, description = "At most this many, newest first")),
    responses(
        (status = 200, description = "Newest reports of the device", body = Vec<ferry_core::api::ArchivedReport>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn device_reports(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> AppResult<Json<Vec<ArchivedReport>>> {
    let id = parse_device(&id)?;
    let limit = parse_limit(query.as_deref())?;
    existing_device(&state, &id).await?;
    let reports = state
        .registry
        .reports(Some(&id), limit)
        .await
        .map_err(|e| AppError::store(&format!("listing reports of device {id}"), e))?;
    Ok(Json(reports))
}

/// `GET /api/v1/devices/{id}/delta-failures`: a device's standing delta-failure records
/// (state, reason, each file with expected vs found hash), by component.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/delta-failures",
    tag = "management",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses(
        (status = 200, description = "Standing delta-failure records", body = Vec<ferry_core::api::DeltaFailureRecord>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn device_delta_failures(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<ferry_core::api::DeltaFailureRecord>>> {
    let id = parse_device(&id)?;
    existing_device(&state, &id).await?;
    let records = state
        .registry
        .delta_failures(&id)
        .await
        .map_err(|e| AppError::store(&format!("listing delta failures of device {id}"), e))?;
    Ok(Json(records))
}

/// `GET /api/v1/devices/{id}/backups`: a device's stored backups, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/backups",
    tag = "management",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Device id")),
    responses(
        (status = 200, description = "Stored backups, newest first", body = Vec<ferry_core::api::BackupRecord>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn device_backups(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<BackupRecord>>> {
    let id = parse_device(&id)?;
    existing_device(&state, &id).await?;
    let backups = state
        .registry
        .backups(&id)
        .await
        .map_err(|e| AppError::store(&format!("listing backups of device {id}"), e))?;
    Ok(Json(backups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_limit_defaults_and_is_bounded() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_REPORT_LIMIT);
        assert_eq!(parse_limit(Some("limit=5")).unwrap(), 5);
        assert!(parse_limit(Some("limit=0")).is_err());
        assert!(parse_limit(Some("limit=100000")).is_err());
        assert!(
            parse_limit(Some("page=2"))
                .unwrap_err()
                .message
                .contains("'page=2'")
        );
    }

    #[test]
    fn group_names_are_restricted_to_safe_characters() {
        assert!(validate_group("site-a_2").is_ok());
        assert!(validate_group("").is_err());
        assert!(validate_group("a b").is_err());
    }
}
