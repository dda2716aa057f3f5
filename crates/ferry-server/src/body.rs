//! Request bodies: size-limited JSON with precise errors, and uploads spooled to disk.

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::path::Path;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// A JSON body parsed as `T`; 400 names the field, line and column, 413 states the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiJson<T>(pub T);

/// The declared `Content-Length`, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Refuses (413) a body whose declared length already exceeds `limit`.
pub fn check_declared_length(
    headers: &HeaderMap,
    limit: u64,
    what: &str,
    key: &str,
) -> AppResult<()> {
    match declared_length(headers) {
        Some(n) if n > limit => Err(AppError::too_large(
            &format!("{what} of {n} bytes"),
            limit,
            key,
        )),
        _ => Ok(()),
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Parses `bytes` as `T`, describing failures by field path, line and column.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> AppResult<T> {
    let what = short_type_name::<T>();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::bad_request(format!(
            "request body is empty: expected a JSON {what} object"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." {
            String::new()
        } else {
            format!(" in field `{path}`")
        };
        AppError::bad_request(format!(
            "request body is not a valid {what}{field}: {inner}"
        ))
    })?;
    de.end().map_err(|e| {
        AppError::bad_request(format!(
            "request body has data after the {what} object: {e}"
        ))
    })?;
    Ok(value)
}

/// Reads a whole body into memory, refusing (413) more than `limit` bytes.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &str,
    key: &str,
) -> AppResult<Vec<u8>> {
    check_declared_length(headers, limit, what, key)?;
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| AppError::bad_request(format!("reading the {what} failed: {e}")))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(AppError::too_large(what, limit, key));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_limited(
            &parts.headers,
            body,
            state.config.max_json_bytes,
            "JSON request body",
            "max_json_bytes",
        )
        .await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An upload written to a temporary file (removed when dropped).
#[derive(Debug)]
pub struct Spooled {
    /// The file.
    pub path: TempPath,
    /// Bytes written.
    pub length: u64,
    /// Hex sha256 of the bytes.
    pub sha256: String,
}

/// Streams a body into a temporary file in `dir`, hashing it and refusing (413) more than `limit` bytes.
pub async fn spool(
    headers: &HeaderMap,
    body: Body,
    dir: &Path,
    limit: u64,
    what: &str,
    key: &str,
) -> AppResult<Spooled> {
    check_declared_length(headers, limit, what, key)?;
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(dir)
        .map_err(|e| {
            AppError::internal(
                &format!("creating a temporary file in {}", dir.display()),
                e,
            )
        })?;
    let std_file = tmp
        .reopen()
        .map_err(|e| AppError::internal("opening the temporary upload file", e))?;
    let path = tmp.into_temp_path();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut length: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::bad_request(format!(
                "reading the {what} failed after {length} bytes: {e}"
            ))
        })?;
        length += chunk.len() as u64;
        if length > limit {
            return Err(AppError::too_large(what, limit, key));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| AppError::internal("writing the upload to a temporary file", e))?;
    }
    file.flush()
        .await
        .map_err(|e| AppError::internal("writing the upload to a temporary file", e))?;
    file.sync_all()
        .await
        .map_err(|e| AppError::internal("syncing the temporary upload file", e))?;
    Ok(Spooled {
        path,
        length,
        sha256: hex::encode(hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::api::CheckinRequest;

    #[test]
    fn bad_field_value_is_named() {
        let body = br#"{"device_id":"d1","device_type":"gw","upgrader_version":"1.0.0","main_version":"one"}"#;
        let err = parse_json::<CheckinRequest>(body).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("CheckinRequest") && err.message.contains("`main_version`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_field_and_syntax_errors_give_line_and_column() {
        let err = parse_json::<CheckinRequest>(b"{\"device_id\":\"d1\"}").unwrap_err();
        assert!(
            err.message.contains("missing field `device_type`"),
            "{}",
            err.message
        );
        let err = parse_json::<CheckinRequest>(b"{\n\"device_id\": d1}").unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = parse_json::<CheckinRequest>(b"  ").unwrap_err();
        assert!(err.message.contains("empty"), "{}", err.message);
    }

    #[tokio::test]
    async fn read_limited_refuses_bodies_over_the_limit() {
        let err = read_limited(
            &HeaderMap::new(),
            Body::from(vec![b'x'; 11]),
            10,
            "JSON request body",
            "max_json_bytes",
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        let ok = read_limited(
            &HeaderMap::new(),
            Body::from(vec![b'x'; 10]),
            10,
            "JSON request body",
            "max_json_bytes",
        )
        .await;
        assert_eq!(ok.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn spool_hashes_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = spool(
            &HeaderMap::new(),
            Body::from("abc"),
            dir.path(),
            100,
            "backup",
            "max_backup_bytes",
        )
        .await
        .unwrap();
        assert_eq!(s.length, 3);
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&s.path).unwrap(), b"abc");
    }
}
