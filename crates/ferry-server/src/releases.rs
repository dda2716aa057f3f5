//! Releases: upload of signed `.ferry` artifacts, listing, blacklists.

use crate::auth::OperatorAuth;
use crate::body::{ApiJson, spool};
use crate::device_api::parse_component_version;
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_core::api::{BlacklistRequest, ReleaseRecord};
use ferry_core::{Component, Version};
use ferry_store::StoreError;

/// TUF target name of a release: `{component}/{version}.ferry`.
pub fn target_name(component: Component, version: &Version) -> String {
    format!("{component}/{version}.ferry")
}

/// Artifact-store key of a release's bytes: the consistent-snapshot name
/// `{component}/{sha256}.{version}.ferry`, so stored bytes never change under a key.
pub fn artifact_key(release: &ReleaseRecord) -> String {
    format!(
        "{}/{}.{}.ferry",
        release.component, release.sha256, release.version
    )
}

/// Parses `go_live=MS` (the only query parameter of an upload).
fn parse_go_live(query: Option<&str>) -> AppResult<Option<u64>> {
    let mut go_live = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("go_live", value)) => {
                let ms = value.parse::<u64>().map_err(|_| {
                    AppError::bad_request(format!("go_live '{value}' is not a time: give Unix milliseconds, e.g. go_live=1767225600000"))
                })?;
                go_live = Some(ms);
            }
            _ => {
                return Err(AppError::bad_request(format!(
                    "unknown query parameter '{pair}': the only one is go_live=<Unix ms>"
                )));
            }
        }
    }
    Ok(go_live)
}

/// `POST /api/v1/releases?go_live=MS`: verifies and registers a signed `.ferry` artifact.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    operation_id = "upload_release",
    tag = "releases",
    security(("operator" = [])),
    params(("go_live" = Option<u64>, Query, description = "Go-live time in Unix milliseconds")),
    request_body(content = crate::openapi::Binary, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "The registered release", body = ferry_core::api::ReleaseRecord),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    _op: OperatorAuth,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> AppResult<(StatusCode, Json<ReleaseRecord>)> {
    let go_live = parse_go_live(query.as_deref())?;
    if state.release_keys.is_empty() {
        return Err(AppError::unprocessable(
            "this server trusts no release signing keys, so it cannot accept artifacts: list public key files in server.toml `release_keys`",
        ));
    }
    let spooled = spool(
        &headers,
        body,
        &state.tmp_dir,
        state.config.max_upload_bytes,
        "release artifact",
        "max_upload_bytes",
    )
    .await?;
    let (path, keys) = (spooled.path.to_path_buf(), state.release_keys.clone());
    let manifest = tokio::task::spawn_blocking(move || ferry_artifact::artifact::verify(&path, &keys))
        .await
        .map_err(|e| AppError::internal("verifying the artifact", e))?
        .map_err(|e| {
            AppError::unprocessable(format!(
                "artifact rejected: {e}; sign it with a key listed in server.toml `release_keys` (ferry artifact sign)"
            ))
        })?;
    let (component, version) = (manifest.component, manifest.version.clone());
    let exists = |existing: &ReleaseRecord| {
        AppError::conflict(format!(
            "release {component} {version} already exists (sha256 {}); releases are immutable: build the change as a new version",
            existing.sha256
        ))
    };
    if let Some(existing) = state
        .registry
        .release(component, &version)
        .await
        .map_err(|e| AppError::store(&format!("looking up release {component} {version}"), e))?
    {
        return Err(exists(&existing));
    }
    let record = ReleaseRecord {
        component,
        version: version.clone(),
        device_types: manifest.device_types.clone(),
        target_name: target_name(component, &version),
        length: spooled.length,
        sha256: spooled.sha256.clone(),
        blacklist: Vec::new(),
        go_live,
        created_at: now_ms(),
        deltas: Vec::new(),
        halted: None,
    };
    let key = artifact_key(&record);
    state
        .store
        .put_file(&key, &spooled.path)
        .await
        .map_err(|e| AppError::store(&format!("storing artifact {key}"), e))?;
    match state.registry.put_release(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            let existing = state
                .registry
                .release(component, &version)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| record.clone());
            return Err(exists(&existing));
        }
        Err(e) => {
            return Err(AppError::store(
                &format!("registering release {component} {version}"),
                e,
            ));
        }
    }
    // Deltas are published with the release's own target; a failure leaves full packages only.
    let record = match crate::deltas::build_for_release(&state, &record, &spooled.path).await {
        Ok(deltas) => ReleaseRecord { deltas, ..record },
        Err(e) => {
            tracing::warn!(%component, %version, error = %e.message, "no deltas for this release; devices get the full package");
            record
        }
    };
    publish_all(&state).await?;
    if let Some(push) = &state.push {
        push.release_available(&record, "release", now_ms());
    }
    tracing::info!(%component, %version, length = record.length, sha256 = %record.sha256, ?go_live,
        deltas = record.deltas.len(), "release registered");
    Ok((StatusCode::CREATED, Json(record)))
}

/// Republishes the TUF targets from every registered release. Another instance may register a
/// release meanwhile, so it republishes until the list it published is still the whole list.
pub(crate) async fn publish_all(state: &AppState) -> AppResult<()> {
    let list = || async {
        state
            .registry
            .releases()
            .await
            .map_err(|e| AppError::store("listing releases", e))
    };
    let mut releases = list().await?;
    for _ in 0..3 {
        state.tuf()?.publish(&releases).await.map_err(|e| {
            AppError::new(
                e.status,
                format!("{}; the release is registered and its TUF targets are republished on the next upload or server start", e.message),
            )
        })?;
        let now = list().await?;
        if now == releases {
            break;
        }
        releases = now;
    }
    Ok(())
}

/// `GET /api/v1/releases`: every release.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    operation_id = "list_releases",
    tag = "releases",
    security(("operator" = [])),
    responses(
        (status = 200, description = "Every release", body = Vec<ferry_core::api::ReleaseRecord>),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _op: OperatorAuth,
) -> AppResult<Json<Vec<ReleaseRecord>>> {
    let releases = state
        .registry
        .releases()
        .await
        .map_err(|e| AppError::store("listing releases", e))?;
    Ok(Json(releases))
}

/// `POST /api/v1/releases/{component}/{version}/blacklist`: keeps the release from these devices.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{component}/{version}/blacklist",
    operation_id = "blacklist_devices",
    tag = "releases",
    security(("operator" = [])),
    params(("component" = String, Path, description = "Component: `main` or `agent`"), ("version" = String, Path, description = "Semantic version of the release")),
    request_body(content = ferry_core::api::BlacklistRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated release", body = ferry_core::api::ReleaseRecord),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn blacklist(
    State(state): State<AppState>,
    _op: OperatorAuth,
    Path((component, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<BlacklistRequest>,
) -> AppResult<Json<ReleaseRecord>> {
    let (component, version) = parse_component_version(&component, &version)?;
    let missing = || {
        AppError::not_found(format!(
            "no release {component} {version}; list releases with GET /api/v1/releases"
        ))
    };
    match state
        .registry
        .add_to_blacklist(component, &version, &req.devices)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => {
            return Err(AppError::store(
                &format!("blacklisting devices for {component} {version}"),
                e,
            ));
        }
    }
    let release = state
        .registry
        .release(component, &version)
        .await
        .map_err(|e| AppError::store(&format!("reading release {component} {version}"), e))?
        .ok_or_else(missing)?;
    tracing::info!(%component, %version, devices = ?req.devices, "devices blacklisted");
    Ok(Json(release))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_live_is_the_only_query_parameter() {
        assert_eq!(parse_go_live(None).unwrap(), None);
        assert_eq!(
            parse_go_live(Some("go_live=1700000000000")).unwrap(),
            Some(1_700_000_000_000)
        );
        assert!(
            parse_go_live(Some("go_live=tomorrow"))
                .unwrap_err()
                .message
                .contains("'tomorrow'")
        );
        assert!(
            parse_go_live(Some("golive=1"))
                .unwrap_err()
                .message
                .contains("'golive=1'")
        );
    }

    #[test]
    fn stored_bytes_are_keyed_by_content() {
        let r = ReleaseRecord {
            component: Component::Main,
            version: Version::new(1, 2, 0),
            device_types: vec![],
            target_name: target_name(Component::Main, &Version::new(1, 2, 0)),
            length: 1,
            sha256: "ab".into(),
            blacklist: vec![],
            go_live: None,
            created_at: 0,
            deltas: vec![],
            halted: None,
        };
        assert_eq!(r.target_name, "main/1.2.0.ferry");
        assert_eq!(artifact_key(&r), "main/ab.1.2.0.ferry");
    }
}
