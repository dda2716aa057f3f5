//! Request authentication: device bearer tokens and the operator token.

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use ferry_core::DeviceId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Hex sha256 of a token: the only form in which device tokens are stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh device token: 32 random bytes, hex.
pub fn new_device_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ (and of their lengths).
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    bool::from(a.ct_eq(&b))
}

/// The token of an `Authorization: Bearer …` header, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A request authenticated by a device token; holds the token's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth(pub DeviceId);

impl DeviceAuth {
    /// Refuses (403) a request whose body names another device than the token's.
    pub fn require(&self, claimed: &DeviceId) -> AppResult<()> {
        if &self.0 == claimed {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "device token belongs to {}, not {claimed}; each device must use its own token from POST /api/v1/enroll",
                self.0
            )))
        }
    }
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthorized(
                "missing device credential: send `Authorization: Bearer <device token>` (enroll with POST /api/v1/enroll to get one)",
            )
        })?;
        match state.registry.device_by_token(&token_hash(token)).await {
            Ok(Some(id)) => Ok(DeviceAuth(id)),
            Ok(None) => Err(AppError::unauthorized(
                "device token is not recognised (revoked, or the device was re-enrolled elsewhere); enroll again with POST /api/v1/enroll",
            )),
            Err(e) => Err(AppError::store("checking the device token", e)),
        }
    }
}

/// A request authenticated by the operator token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorAuth;

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthorized("missing operator credential: send `Authorization: Bearer <operator_token from server.toml>`")
        })?;
        if secrets_match(token, &state.config.operator_token) {
            Ok(OperatorAuth)
        } else {
            Err(AppError::unauthorized(
                "operator token is wrong: use the operator_token configured in server.toml",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_random_64_hex_digits() {
        let (a, b) = (new_device_token(), new_device_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_match("operator-secret", "operator-secret"));
        assert!(!secrets_match("operator-secreT", "operator-secret"));
        assert!(!secrets_match("operator", "operator-secret"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_requires_a_token() {
        let parts = |v: &str| {
            axum::http::Request::builder()
                .header(AUTHORIZATION, v)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(bearer(&parts("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&parts("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&parts("Basic abc")), None);
        assert_eq!(bearer(&parts("Bearer ")), None);
    }
}
