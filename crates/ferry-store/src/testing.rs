//! Helpers for tests that need PostgreSQL or an S3-compatible server, shared by every crate's
//! tests: where the services are, whether they answer, and one rule for an absent service —
//! a loud `SKIPPED` line, or a failure when `FERRY_REQUIRE_SERVICES=1` (CI).

use crate::StoreError;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Set to `1` (or `true`) to make an unreachable service fail the test instead of skipping it.
pub const REQUIRE_SERVICES_ENV: &str = "FERRY_REQUIRE_SERVICES";
/// PostgreSQL URL for tests.
pub const POSTGRES_URL_ENV: &str = "FERRY_TEST_POSTGRES_URL";
/// Used when [`POSTGRES_URL_ENV`] is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Endpoint of the S3-compatible server for tests.
pub const S3_ENDPOINT_ENV: &str = "FERRY_TEST_S3_ENDPOINT";
/// Used when [`S3_ENDPOINT_ENV`] is unset (moto: `moto_server -H 127.0.0.1 -p 9000`).
pub const DEFAULT_S3_ENDPOINT: &str = "http://127.0.0.1:9000";

/// Whether `FERRY_REQUIRE_SERVICES` asks for services to be present.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// The rule for a test's external service: returns `true` when it is reachable. Otherwise
/// prints `SKIPPED: SERVICE not reachable at LOCATION (set FERRY_REQUIRE_SERVICES=1 to fail
/// instead)` straight to stderr (visible even though the test harness captures output) and
/// returns `false` — or panics with that message when `FERRY_REQUIRE_SERVICES=1`.
///
/// ```no_run
/// # async fn t() {
/// let url = ferry_store::testing::postgres_url();
/// let up = ferry_store::testing::postgres_reachable(&url).await;
/// if !ferry_store::testing::require_service("PostgreSQL", &url, up) {
///     return;
/// }
/// # }
/// ```
pub fn require_service(service: &str, location: &str, reachable: bool) -> bool {
    if reachable {
        return true;
    }
    let location = crate::redact_url(location);
    if services_required() {
        panic!(
            "{service} not reachable at {location} and {REQUIRE_SERVICES_ENV}=1 is set, so the test fails instead of skipping"
        );
    }
    let line = format!("SKIPPED: {service} not reachable at {location} (set {REQUIRE_SERVICES_ENV}=1 to fail instead)");
    let bar = "!".repeat(line.len().min(100));
    let _ = writeln!(std::io::stderr(), "\n{bar}\n{line}\n{bar}");
    false
}

/// The PostgreSQL URL tests use: `FERRY_TEST_POSTGRES_URL` or [`DEFAULT_POSTGRES_URL`].
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string())
}

/// The S3 endpoint tests use: `FERRY_TEST_S3_ENDPOINT` or [`DEFAULT_S3_ENDPOINT`].
pub fn s3_endpoint() -> String {
    std::env::var(S3_ENDPOINT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_S3_ENDPOINT.to_string())
}

/// Whether a PostgreSQL connection to `url` succeeds within 5 seconds.
pub async fn postgres_reachable(url: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            true
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "postgres not reachable");
            false
        }
        Err(_) => false,
    }
}

/// Whether a TCP connection to the host and port of `endpoint` (an `http(s)://` URL)
/// succeeds within 3 seconds.
pub async fn tcp_reachable(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else { return false };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    matches!(
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((host.as_str(), port))).await,
        Ok(Ok(_))
    )
}

/// A name no other test process or call uses: `PREFIX_PID_MICROS_N`, lowercase ASCII
/// letters, digits and `_` (valid for schemas; replace `_` with `-` for bucket names).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), micros, COUNTER.fetch_add(1, Ordering::Relaxed))
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A fresh, uniquely named PostgreSQL schema for one test, and a URL whose connections use
/// it (`options[search_path]=SCHEMA`), so tests running in parallel processes never see each
/// other's tables. Call [`PostgresSchema::drop_schema`] at the end; if the test panics first,
/// dropping the value removes the schema on a helper thread.
#[derive(Debug)]
pub struct PostgresSchema {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl PostgresSchema {
    /// Creates schema `ferry_test_…` in the database `base_url` names.
    pub async fn create(base_url: &str) -> Result<Self, StoreError> {
        let name = unique_name("ferry_test");
        let mut url = url::Url::parse(base_url).map_err(|e| {
            StoreError::Config(format!("test PostgreSQL URL {} is invalid: {e}", crate::redact_url(base_url)))
        })?;
        url.query_pairs_mut().append_pair("options[search_path]", &name);
        let schema = PostgresSchema { admin_url: base_url.to_string(), name, url: url.to_string(), dropped: false };
        schema.execute(&format!("CREATE SCHEMA \"{}\"", schema.name)).await?;
        Ok(schema)
    }

    /// A URL for [`crate::open_registry`] / [`crate::PostgresRegistry::connect`] confined to this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(mut self) -> Result<(), StoreError> {
        self.dropped = true;
        self.execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name)).await
    }

    async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        let shown = crate::redact_url(&self.admin_url);
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .map_err(|e| StoreError::Config(format!("test PostgreSQL at {shown}: cannot connect: {e}")))?;
        conn.execute(AssertSqlSafe(sql.to_string()))
            .await
            .map_err(|e| StoreError::Config(format!("test PostgreSQL at {shown}: `{sql}` failed: {e}")))?;
        let _ = conn.close().await;
        Ok(())
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let leftover = PostgresSchema {
            admin_url: self.admin_url.clone(),
            name: self.name.clone(),
            url: String::new(),
            dropped: true,
        };
        // A separate thread with its own runtime: this may run inside (or outside) any runtime.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(leftover.execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", leftover.name))).err()
        })
        .join();
        if let Ok(Some(e)) = joined {
            let _ = writeln!(std::io::stderr(), "warning: leftover test schema {} not dropped: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_service_runs_the_test() {
        assert!(require_service("PostgreSQL", "postgres://x@h/db", true));
    }

    #[test]
    fn unique_names_differ_and_are_schema_safe() {
        let a = unique_name("Ferry-Test");
        let b = unique_name("Ferry-Test");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{a}");
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        // Port 1 on loopback: nothing listens there.
        assert!(!tcp_reachable("http://127.0.0.1:1").await);
        assert!(!tcp_reachable("not a url").await);
    }
}
