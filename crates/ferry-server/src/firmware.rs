//! Firmware metadata: managed by operators (`PUT/GET /api/v1/firmware/{id}`), stored in the
//! registry as canonical JSON, published as the TUF target `firmware/{id}.json` (so the targets
//! role signs its length and sha256), and fetched by devices from
//! `GET /api/v1/device/firmware/{id}`.

use crate::auth::{DeviceAuth, OperatorAuth};
use crate::body::ApiJson;
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use ferry_artifact::keys::PublicKey;
use ferry_artifact::tuf::TargetFile;
use ferry_core::firmware::{FirmwareMetadata, valid_id};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The TUF target entry of firmware `id`'s stored document (custom = `{"firmware": id}`).
pub fn target_entry(id: &str, content: &[u8]) -> (String, TargetFile) {
    let name = FirmwareMetadata::target_name(id);
    let sha256 = hex::encode(Sha256::digest(content));
    let entry = ferry_artifact::tuf::target_file(
        &name,
        content.len() as u64,
        &sha256,
        json!({ "firmware": id }),
    );
    (name, entry)
}

fn check_id(id: &str) -> AppResult<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "firmware id '{id}' is invalid: use 1 to 64 of a-z 0-9 . _ - starting with a letter or digit"
        )))
    }
}

fn missing(id: &str) -> AppError {
    AppError::not_found(format!(
        "no firmware '{id}'; create it with PUT /api/v1/firmware/{id}"
    ))
}

/// `PUT /api/v1/firmware/{id}`: validates, stores and publishes (TUF) firmware metadata.
#[utoipa::path(
    put,
    path = "/api/v1/firmware/{id}",
    operation_id = "put_firmware",
    tag = "firmware",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Firmware id")),
    request_body(content = ferry_core::firmware::FirmwareMetadata, content_type = "application/json"),
    responses(
        (status = 200, description = "The stored metadata", body = ferry_core::firmware::FirmwareMetadata),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
    ApiJson(meta): ApiJson<FirmwareMetadata>,
) -> AppResult<Json<FirmwareMetadata>> {
    check_id(&id)?;
    let bytes = meta.canonical_bytes();
    let meta = FirmwareMetadata::parse_for(&id, &bytes)
        .map_err(|e| AppError::unprocessable(e.to_string()))?;
    let key: PublicKey = serde_json::from_value(meta.vendor_public_key.clone()).map_err(|e| {
        AppError::unprocessable(format!(
            "firmware '{id}': vendor_public_key is not a key object ({e}); paste the JSON of the vendor's public key file"
        ))
    })?;
    key.check_supported()
        .map_err(|e| AppError::unprocessable(format!("firmware '{id}': vendor_public_key: {e}")))?;
    state
        .registry
        .put_firmware(&id, &bytes, now_ms())
        .await
        .map_err(|e| AppError::store(&format!("storing firmware '{id}'"), e))?;
    crate::releases::publish_all(&state).await?;
    tracing::info!(firmware = %id, vendor = %meta.vendor, rule = %meta.unpack_rule, "firmware metadata published");
    Ok(Json(meta))
}

async fn stored(state: &AppState, id: &str) -> AppResult<Vec<u8>> {
    check_id(id)?;
    state
        .registry
        .firmware(id)
        .await
        .map_err(|e| AppError::store(&format!("reading firmware '{id}'"), e))?
        .ok_or_else(|| missing(id))
}

/// `GET /api/v1/firmware/{id}`: the firmware's metadata (operators).
#[utoipa::path(
    get,
    path = "/api/v1/firmware/{id}",
    operation_id = "get_firmware",
    tag = "firmware",
    security(("operator" = [])),
    params(("id" = String, Path, description = "Firmware id")),
    responses(
        (status = 200, description = "The firmware's metadata", body = ferry_core::firmware::FirmwareMetadata),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> AppResult<Json<FirmwareMetadata>> {
    let bytes = stored(&state, &id).await?;
    let meta = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::internal(&format!("decoding stored firmware '{id}'"), e))?;
    Ok(Json(meta))
}

/// `GET /api/v1/device/firmware/{id}`: the exact stored bytes a device checks against the TUF
/// target `firmware/{id}.json`.
#[utoipa::path(
    get,
    path = "/api/v1/device/firmware/{id}",
    operation_id = "get_firmware_for_device",
    tag = "firmware",
    security(("device" = [])),
    params(("id" = String, Path, description = "Firmware id")),
    responses(
        (status = 200, description = "The exact stored metadata bytes (TUF target `firmware/{id}.json`)", body = Object),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn get_for_device(
    State(state): State<AppState>,
    _device: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<axum::response::Response> {
    let bytes = stored(&state, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
