//! The file service: release artifacts by TUF target name, with HTTP range support.

use crate::auth::DeviceAuth;
use crate::error::{AppError, AppResult};
use crate::releases::artifact_key;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_core::api::ReleaseRecord;
use ferry_core::segments::{Segment, parse_range};
use ferry_core::{Component, Version};
use ferry_store::ArtifactStore;
use std::sync::Arc;

/// Bytes fetched from the artifact store per read while streaming a response.
const READ_PIECE: u64 = 256 * 1024;

/// A parsed target path: `main/1.2.0.ferry` or the consistent-snapshot form `main/HASH.1.2.0.ferry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath {
    /// Component named by the path.
    pub component: Component,
    /// Version named by the path.
    pub version: Version,
    /// sha256 prefix of the consistent-snapshot form, if used.
    pub sha256: Option<String>,
}

/// Parses a `/files/` path; `None` if it names no possible release artifact.
pub fn parse_target_path(path: &str) -> Option<TargetPath> {
    let (component, rest) = path.split_once('/')?;
    let component: Component = component.parse().ok()?;
    let stem = rest.strip_suffix(".ferry")?;
    let (sha256, version) = match stem.split_once('.') {
        Some((hash, version))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            (Some(hash.to_ascii_lowercase()), version)
        }
        _ => (None, stem),
    };
    let parsed: Version = version.parse().ok()?;
    // Strict: the text must be the canonical form, so one artifact has exactly two names.
    (parsed.to_string() == version).then_some(TargetPath {
        component,
        version: parsed,
        sha256,
    })
}

/// A parsed delta path: `main/1.0.0_1.1.0.delta` or `main/HASH.1.0.0_1.1.0.delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPath {
    /// Component named by the path.
    pub component: Component,
    /// Base version.
    pub from: Version,
    /// Target version.
    pub to: Version,
    /// sha256 of the consistent-snapshot form, if used.
    pub sha256: Option<String>,
}

/// Parses a `/files/` path naming a delta package; `None` if it names none.
pub fn parse_delta_path(path: &str) -> Option<DeltaPath> {
    let (component, rest) = path.split_once('/')?;
    let component: Component = component.parse().ok()?;
    let stem = rest.strip_suffix(".delta")?;
    let (sha256, versions) = match stem.split_once('.') {
        Some((hash, versions))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            (Some(hash.to_ascii_lowercase()), versions)
        }
        _ => (None, stem),
    };
    // Semver never contains '_', so the split is unambiguous.
    let (from, to) = versions.split_once('_')?;
    let (from_v, to_v): (Version, Version) = (from.parse().ok()?, to.parse().ok()?);
    (from_v.to_string() == from && to_v.to_string() == to).then_some(DeltaPath {
        component,
        from: from_v,
        to: to_v,
        sha256,
    })
}

/// What a `/files/` path names: the store key, length and sha256 of a release artifact or of
/// a delta package, and a label for messages.
struct Served {
    key: String,
    length: u64,
    sha256: String,
    label: String,
}

async fn resolve_any(state: &AppState, path: &str) -> AppResult<Served> {
    if let Some(d) = parse_delta_path(path) {
        let unknown = || {
            AppError::not_found(format!(
                "no delta package at /files/{path}; use the delta target_name from a check-in offer (e.g. main/1.0.0_1.1.0.delta)"
            ))
        };
        let release = state
            .registry
            .release(d.component, &d.to)
            .await
            .map_err(|e| AppError::store(&format!("looking up release {} {}", d.component, d.to), e))?
            .ok_or_else(unknown)?;
        let delta = release.delta_from(&d.from).ok_or_else(unknown)?;
        if d.sha256.as_ref().is_some_and(|h| *h != delta.sha256) {
            return Err(unknown());
        }
        return Ok(Served {
            key: crate::deltas::delta_key(delta),
            length: delta.length,
            sha256: delta.sha256.clone(),
            label: format!("delta {} {} -> {}", d.component, d.from, d.to),
        });
    }
    let release = resolve(state, path).await?;
    Ok(Served {
        key: artifact_key(&release),
        length: release.length,
        sha256: release.sha256.clone(),
        label: format!("{} {}", release.component, release.version),
    })
}

async fn resolve(state: &AppState, path: &str) -> AppResult<ReleaseRecord> {
    let unknown = || {
        AppError::not_found(format!(
            "no release artifact at /files/{path}; use the target_name from a check-in offer (e.g. main/1.2.0.ferry)"
        ))
    };
    let target = parse_target_path(path).ok_or_else(unknown)?;
    let release = state
        .registry
        .release(target.component, &target.version)
        .await
        .map_err(|e| {
            AppError::store(
                &format!("looking up release {} {}", target.component, target.version),
                e,
            )
        })?
        .ok_or_else(unknown)?;
    match target.sha256 {
        Some(hash) if hash != release.sha256 => Err(unknown()),
        _ => Ok(release),
    }
}

/// `GET|HEAD /files/{*path}` (device auth): whole artifact, or one byte range.
#[utoipa::path(
    get,
    path = "/files/{path}",
    tag = "files",
    security(("device" = [])),
    params(("path" = String, Path, description = "Artifact path under the file store"), ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`")),
    responses(
        (status = 200, description = "The whole artifact", body = crate::openapi::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "One byte range", body = crate::openapi::Binary, content_type = "application/octet-stream"),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong device token", body = ferry_core::api::ApiError),
    )
)]
pub async fn get_file(
    State(state): State<AppState>,
    _auth: DeviceAuth,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let served = resolve_any(&state, &path).await?;
    let key = served.key.clone();
    let info = state
        .store
        .head(&key)
        .await
        .map_err(|e| AppError::store(&format!("reading artifact {key}"), e))?
        .ok_or_else(|| {
            AppError::internal(
                &format!("serving {}", served.label),
                format!("artifact {key} is missing from the artifact store; restore it from a backup of the store"),
            )
        })?;
    if info.size != served.length {
        return Err(AppError::internal(
            &format!("serving {}", served.label),
            format!(
                "artifact {key} holds {} bytes but the registry records {}; restore it from a backup of the store",
                info.size, served.length
            ),
        ));
    }
    let len = info.size;
    let etag = format!("\"{}\"", served.sha256);
    let range = match requested_range(&headers, &etag, len) {
        Ok(range) => range,
        Err(bad) => return Ok(unsatisfiable(&bad, len)),
    };

    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        );
    let (status, start, end) = match range {
        Some(seg) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{len}", seg.start, seg.end),
            );
            (StatusCode::PARTIAL_CONTENT, seg.start, seg.end + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, end - start);
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        crate::metrics::bytes_served(end - start);
        stream_range(state.store.clone(), key, start, end)
    };
    builder
        .body(body)
        .map_err(|e| AppError::internal("building the file response", e))
}

/// The range to serve: `None` for the whole body; `Err(range header)` if unsatisfiable.
fn requested_range(headers: &HeaderMap, etag: &str, len: u64) -> Result<Option<Segment>, String> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        // Only a matching strong validator keeps the Range; dates and stale tags get the full body.
        if if_range.to_str().ok().map(str::trim) != Some(etag) {
            return Ok(None);
        }
    }
    parse_range(range, len).map_err(|()| range.to_string())
}

/// 416 with `Content-Range: bytes */LEN`, as RFC 9110 asks.
fn unsatisfiable(range: &str, len: u64) -> Response {
    let mut response = AppError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!(
            "range '{range}' is outside the artifact of {len} bytes; request bytes within 0-{}",
            len.saturating_sub(1)
        ),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// Streams bytes `start..end` of `key`, reading the store piece by piece.
fn stream_range(store: Arc<dyn ArtifactStore>, key: String, start: u64, end: u64) -> Body {
    let pieces = futures::stream::try_unfold(start, move |pos| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            if pos >= end {
                return Ok(None);
            }
            let next = (pos + READ_PIECE).min(end);
            let bytes: Bytes = store.get_range(&key, pos..next).await.map_err(|e| {
                tracing::error!(%key, error = %e, "artifact read failed mid-response");
                std::io::Error::other(e.to_string())
            })?;
            Ok::<_, std::io::Error>(Some((bytes, next)))
        }
    });
    Body::from_stream(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn delta_paths_parse_in_plain_and_hashed_form_only_when_canonical() {
        let d = parse_delta_path("main/1.0.0_1.1.0.delta").unwrap();
        assert_eq!((d.component, d.from.to_string(), d.to.to_string(), d.sha256), (Component::Main, "1.0.0".into(), "1.1.0".into(), None));
        let h = parse_delta_path(&format!("agent/{HASH}.1.0.0-rc.1_1.1.0.delta")).unwrap();
        assert_eq!((h.component, h.from.to_string(), h.sha256.as_deref()), (Component::Agent, "1.0.0-rc.1".into(), Some(HASH)));
        for bad in ["main/1.0.0.delta", "main/01.0.0_1.1.0.delta", "main/1.0.0_1.1.0.ferry", "main/../1.0.0_1.1.0.delta", "x/1.0.0_1.1.0.delta"] {
            assert_eq!(parse_delta_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_plain_and_consistent_snapshot_names() {
        let t = parse_target_path("main/1.2.0.ferry").unwrap();
        assert_eq!(
            (t.component, t.version, t.sha256),
            (Component::Main, Version::new(1, 2, 0), None)
        );
        let t = parse_target_path(&format!("agent/{HASH}.1.2.0-rc.1.ferry")).unwrap();
        assert_eq!(t.component, Component::Agent);
        assert_eq!(t.version, "1.2.0-rc.1".parse().unwrap());
        assert_eq!(t.sha256.as_deref(), Some(HASH));
    }

    #[test]
    fn refuses_paths_that_name_no_release() {
        for bad in [
            "backups/dev/main/1.0.0",
            "main/1.2.0",
            "firmware/1.0.0.ferry",
            "main/x.ferry",
            "main/ 1.2.0.ferry",
            "main/../1.0.0.ferry",
        ] {
            assert_eq!(parse_target_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn if_range_with_another_etag_drops_the_range() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        assert_eq!(
            requested_range(&h, "\"e\"", 100),
            Ok(Some(Segment { start: 0, end: 9 }))
        );
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(requested_range(&h, "\"e\"", 100), Ok(None));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"e\""));
        assert_eq!(
            requested_range(&h, "\"e\"", 100),
            Ok(Some(Segment { start: 0, end: 9 }))
        );
        h.insert(header::RANGE, HeaderValue::from_static("bytes=100-"));
        assert_eq!(
            requested_range(&h, "\"e\"", 100),
            Err("bytes=100-".to_string())
        );
    }
}
