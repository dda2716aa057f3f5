//! HTTP errors: every failure becomes a JSON [`ApiError`] with an actionable message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_core::api::ApiError;
use ferry_store::StoreError;

/// A failed request: status code plus a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// HTTP status.
    pub status: StatusCode,
    /// What failed and what to do about it.
    pub message: String,
}

/// Result type of every handler.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }
    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401: missing or unknown credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403: a valid credential used for something it does not cover.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404: the named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 409: the named thing already exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 413: the body exceeds a configured limit.
    pub fn too_large(what: &str, limit: u64, key: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} exceeds the server's limit of {limit} bytes (server.toml `{key}`); send a smaller body or raise the limit"
            ),
        )
    }
    /// 422: well-formed but unacceptable content (bad signature, bad artifact).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    /// 500: the server failed; `context` says what it was doing.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{context}: {err}; check the server log and retry"),
        )
    }
    /// Maps a storage error, with `context` naming what was being done.
    pub fn store(context: &str, err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::not_found(format!("{context}: {what} not found")),
            StoreError::Conflict(what) => {
                Self::conflict(format!("{context}: {what} already exists"))
            }
            other => Self::internal(context, other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        } else {
            tracing::info!(status = %self.status, error = %self.message, "request refused");
        }
        let mut response = (
            self.status,
            Json(ApiError {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_matching_statuses() {
        assert_eq!(
            AppError::store("x", StoreError::NotFound("d".into())).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            AppError::store("x", StoreError::Conflict("d".into())).status,
            StatusCode::CONFLICT
        );
        let e = AppError::store("reading devices", StoreError::Corrupt("bad row".into()));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.message.starts_with("reading devices: "), "{}", e.message);
    }

    #[test]
    fn too_large_names_the_limit_and_the_key() {
        let e = AppError::too_large("release artifact", 1024, "max_upload_bytes");
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("1024 bytes") && e.message.contains("max_upload_bytes"));
    }
}
