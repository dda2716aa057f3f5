//! The device side of the server's HTTP API: enroll, check-in, reports, backups, and
//! size-limited fetches of TUF metadata.

use crate::error::AgentError;
use ferry_core::api::{
    ApiError, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, UpgradeReport,
};
use ferry_core::{Component, DeviceId, Version};
use reqwest::StatusCode;
use std::time::Duration;

/// An HTTP client bound to one server and one device.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    server_url: String,
    device: DeviceId,
    timeout: Duration,
}

/// Joins a base URL and a path with exactly one slash.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

impl ApiClient {
    /// A client for `server_url`; `timeout` bounds connecting and each read.
    pub fn new(
        server_url: &str,
        device: DeviceId,
        timeout: Duration,
    ) -> Result<ApiClient, AgentError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .user_agent(concat!("ferry-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AgentError::Http {
                device: device.to_string(),
                url: server_url.to_string(),
                reason: format!("building the HTTP client: {e}"),
            })?;
        Ok(ApiClient {
            http,
            server_url: server_url.trim_end_matches('/').to_string(),
            device,
            timeout,
        })
    }

    /// The underlying HTTP client (shared connection pool).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// This device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Resolves a URL from an offer: absolute URLs stay, paths are taken relative to the server.
    pub fn resolve(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            join_url(&self.server_url, url)
        }
    }

    /// Transport failure → [`AgentError::Http`].
    pub fn transport(&self, url: &str, e: impl std::fmt::Display) -> AgentError {
        AgentError::Http {
            device: self.device.to_string(),
            url: url.to_string(),
            reason: format!("{e} (is the server reachable?)"),
        }
    }

    async fn status_error(&self, url: &str, resp: reqwest::Response) -> AgentError {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or(text);
        AgentError::Status {
            device: self.device.to_string(),
            url: url.to_string(),
            status,
            body,
        }
    }

    async fn post_json<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Result<R, AgentError> {
        let url = join_url(&self.server_url, path);
        let mut req = self.http.post(&url).timeout(self.timeout).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| self.transport(&url, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&url, resp).await);
        }
        resp.json::<R>()
            .await
            .map_err(|e| self.transport(&url, format!("unreadable answer: {e}")))
    }

    /// `POST /api/v1/enroll`.
    pub async fn enroll(
        &self,
        enrollment_token: &str,
        device_type: &str,
    ) -> Result<EnrollResponse, AgentError> {
        let req = EnrollRequest {
            enrollment_token: enrollment_token.to_string(),
            device_id: self.device.clone(),
            device_type: device_type.to_string(),
        };
        self.post_json("/api/v1/enroll", None, &req).await
    }

    /// `POST /api/v1/checkin`.
    pub async fn checkin(
        &self,
        token: &str,
        req: &CheckinRequest,
    ) -> Result<CheckinResponse, AgentError> {
        self.post_json("/api/v1/checkin", Some(token), req).await
    }

    /// `POST /api/v1/reports`; returns the archived report's id.
    pub async fn report(&self, token: &str, report: &UpgradeReport) -> Result<i64, AgentError> {
        let v: serde_json::Value = self
            .post_json("/api/v1/reports", Some(token), report)
            .await?;
        Ok(v.get("id")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_default())
    }

    /// `POST /api/v1/delta-failures`: tells the server a delta could not be applied here.
    pub async fn report_delta_failure(
        &self,
        token: &str,
        record: &ferry_core::api::DeltaFailureRecord,
    ) -> Result<(), AgentError> {
        let _: serde_json::Value = self
            .post_json("/api/v1/delta-failures", Some(token), record)
            .await?;
        Ok(())
    }

    /// `POST /api/v1/alerts`: a preflight judged a release unsafe; returns the alert's id.
    pub async fn post_alert(
        &self,
        token: &str,
        alert: &ferry_core::api::SecurityAlert,
    ) -> Result<i64, AgentError> {
        let v: serde_json::Value = self.post_json("/api/v1/alerts", Some(token), alert).await?;
        Ok(v.get("id").and_then(serde_json::Value::as_i64).unwrap_or_default())
    }

    /// `GET path` on the server with the device credential, at most `limit` bytes.
    pub async fn get_authed(&self, token: &str, path: &str, limit: u64) -> Result<Vec<u8>, AgentError> {
        let url = join_url(&self.server_url, path);
        let resp = self
            .http
            .get(&url)
            .timeout(self.timeout)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| self.transport(&url, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&url, resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport(&url, e))?;
        if bytes.len() as u64 > limit {
            return Err(self.transport(&url, format!("answer of {} bytes is over the {limit}-byte limit", bytes.len())));
        }
        Ok(bytes.to_vec())
    }

    /// `PUT /api/v1/backups/{component}/{version}` with the backup's bytes.
    pub async fn upload_backup(
        &self,
        token: &str,
        component: Component,
        version: &Version,
        bytes: Vec<u8>,
    ) -> Result<(), AgentError> {
        let url = join_url(
            &self.server_url,
            &format!("/api/v1/backups/{component}/{version}"),
        );
        let resp = self
            .http
            .put(&url)
            .bearer_auth(token)
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.transport(&url, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&url, resp).await);
        }
        Ok(())
    }

    /// GETs `url` reading at most `limit` bytes; `Ok(None)` on 404.
    pub async fn get_limited(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, AgentError> {
        let mut resp = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(url, e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.status_error(url, resp).await);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(url, e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(AgentError::Http {
                    device: self.device.to_string(),
                    url: url.to_string(),
                    reason: format!("answer exceeds {limit} bytes; refusing endless data"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_urls_with_one_slash() {
        assert_eq!(
            join_url("http://h:1/tuf", "timestamp.json"),
            "http://h:1/tuf/timestamp.json"
        );
        assert_eq!(
            join_url("http://h:1/files/", "/main/1.0.0.ferry"),
            "http://h:1/files/main/1.0.0.ferry"
        );
    }

    #[test]
    fn resolves_relative_offer_urls_against_the_server() {
        let c = ApiClient::new(
            "http://srv:8080/",
            DeviceId::new("d1").unwrap(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.resolve("/files"), "http://srv:8080/files");
        assert_eq!(
            c.resolve("https://cdn.example/files"),
            "https://cdn.example/files"
        );
    }
}
