//! Ferry's storage: the [`Registry`] (SQLite, PostgreSQL) and the [`ArtifactStore`]
//! (local files, S3-compatible), narrow traits with one conformance suite each.
//!
//! Open them from URLs with [`open_registry`] and [`open_artifact_store`], or build a backend
//! directly: [`SqliteRegistry`], [`PostgresRegistry`], [`LocalArtifactStore`], [`S3ArtifactStore`].
//! [`conformance`] holds the behaviour suites every backend passes; [`testing`] the helpers
//! tests use to reach (or loudly skip) PostgreSQL and S3.

#![warn(missing_docs)]

pub mod artifact_store;
pub mod conformance;
mod local;
mod objects;
mod postgres;
pub mod registry;
mod s3;
mod sql;
mod sqlite;
pub mod testing;

pub use artifact_store::{ArtifactStore, ObjectInfo};
pub use local::LocalArtifactStore;
pub use objects::{MAX_KEY_LEN, validate_key, validate_prefix};
pub use postgres::{DEFAULT_MAX_CONNECTIONS, PostgresRegistry};
pub use registry::Registry;
pub use s3::{MULTIPART_PART_SIZE, S3ArtifactStore, S3Config};
pub use sqlite::SqliteRegistry;

use std::sync::Arc;

/// Opens the registry a URL names and applies pending migrations:
/// - `sqlite://PATH` or `sqlite:PATH` — a SQLite file (created if missing; `sqlite:///abs/path`
///   for an absolute path), WAL mode;
/// - `sqlite::memory:` — a private in-memory database (tests, demos);
/// - `postgres://…` or `postgresql://…` — PostgreSQL (see [`PostgresRegistry::connect`]).
///
/// Anything else is [`StoreError::Config`].
pub async fn open_registry(url: &str) -> Result<Arc<dyn Registry>, StoreError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path == ":memory:" {
            return Ok(Arc::new(SqliteRegistry::in_memory().await?));
        }
        if path.is_empty() {
            return Err(StoreError::Config(format!(
                "registry URL '{url}' names no database file; use sqlite://PATH (e.g. sqlite:///var/lib/ferry/registry.db) \
                 or sqlite::memory:"
            )));
        }
        if path.contains('?') {
            return Err(StoreError::Config(format!(
                "registry URL '{url}' has query parameters, which Ferry's SQLite registry does not take; \
                 use sqlite://PATH (WAL mode and a busy timeout are always set)"
            )));
        }
        return Ok(Arc::new(SqliteRegistry::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresRegistry::connect(url).await?));
    }
    Err(StoreError::Config(format!(
        "registry URL '{}' has an unsupported scheme; use sqlite://PATH (e.g. sqlite:///var/lib/ferry/registry.db), \
         sqlite::memory: or postgres://USER@HOST:PORT/DATABASE",
        redact_url(url)
    )))
}

/// Opens the artifact store a URL names:
/// - `file:///ABSOLUTE/DIR` or a plain directory path (`/srv/ferry/artifacts`, `./artifacts`) —
///   [`LocalArtifactStore`], the directory created if missing;
/// - `s3://BUCKET?endpoint=URL&region=REGION&allow_http=true[&access_key_id=…&secret_access_key=…]`
///   — [`S3ArtifactStore`] (see [`S3Config::from_url`]; the bucket must exist).
///
/// Anything else is [`StoreError::Config`].
pub async fn open_artifact_store(url: &str) -> Result<Arc<dyn ArtifactStore>, StoreError> {
    let url = url.trim();
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3ArtifactStore::from_url(url)?));
    }
    if url.starts_with("file:") {
        let parsed = url::Url::parse(url).map_err(|e| {
            StoreError::Config(format!(
                "artifact store URL '{url}' is not a valid file URL: {e}; use file:///ABSOLUTE/DIR"
            ))
        })?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(StoreError::Config(format!(
                "artifact store URL '{url}' has query parameters or a fragment; use file:///ABSOLUTE/DIR"
            )));
        }
        let dir = parsed.to_file_path().map_err(|()| {
            StoreError::Config(format!(
                "artifact store URL '{url}' is not a local absolute path; use file:///ABSOLUTE/DIR (three slashes) \
                 or a plain directory path"
            ))
        })?;
        return Ok(Arc::new(LocalArtifactStore::new(dir)?));
    }
    if url.is_empty() || url.contains("://") {
        return Err(StoreError::Config(format!(
            "artifact store URL '{}' is not supported; use file:///ABSOLUTE/DIR, a directory path, or \
             s3://BUCKET?endpoint=http://HOST:PORT&region=REGION&allow_http=true",
            redact_url(url)
        )));
    }
    Ok(Arc::new(LocalArtifactStore::new(url)?))
}

/// `url` with any password and secret query parameters replaced by `***`, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.split('?').next().unwrap_or(url).to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = matches!(k.as_ref(), "secret_access_key" | "session_token" | "password");
                (k.into_owned(), if secret { "***".to_string() } else { v.into_owned() })
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// A storage failure, naming the backend and the object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The named thing already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A byte range outside the object.
    #[error("invalid range {start}..{end} for {key} of {size} bytes")]
    InvalidRange {
        /// Object key.
        key: String,
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Object size.
        size: u64,
    },
    /// Bad configuration (URL, credentials).
    #[error("storage configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database ({backend}): {source}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// The object store failed.
    #[error("object store: {0}")]
    Object(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_secrets_but_keeps_the_rest() {
        let r = redact_url("postgres://ferry:hunter2@db:5432/ferry");
        assert!(!r.contains("hunter2") && r.contains("db:5432/ferry"), "{r}");
        let r = redact_url("s3://b?endpoint=http://h:9000&access_key_id=AK&secret_access_key=SK");
        assert!(!r.contains("SK") && r.contains("AK") && r.contains("endpoint"), "{r}");
    }

    #[tokio::test]
    async fn unknown_registry_scheme_is_a_config_error_listing_the_supported_ones() {
        let err = open_registry("mysql://root@localhost/ferry").await.err().expect("mysql accepted");
        assert!(matches!(err, StoreError::Config(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("sqlite://PATH") && msg.contains("postgres://"), "{msg}");
    }

    #[tokio::test]
    async fn sqlite_url_with_query_or_without_path_is_refused() {
        for url in ["sqlite://", "sqlite:", "sqlite://x.db?mode=ro"] {
            let err = open_registry(url).await.err().unwrap_or_else(|| panic!("{url} accepted"));
            assert!(matches!(err, StoreError::Config(_)), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn unknown_artifact_store_scheme_is_a_config_error() {
        for url in ["gs://bucket", "", "file://relative/dir"] {
            let err = open_artifact_store(url).await.err().unwrap_or_else(|| panic!("{url:?} accepted"));
            assert!(matches!(err, StoreError::Config(_)), "{url}: {err}");
        }
    }
}
