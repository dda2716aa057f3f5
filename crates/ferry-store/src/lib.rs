//! Ferry's storage: the [`Registry`] (SQLite, PostgreSQL) and the [`ArtifactStore`]
//! (local files, S3-compatible), narrow traits with one conformance suite each.

pub mod artifact_store;
pub mod registry;

pub use artifact_store::{ArtifactStore, ObjectInfo};
pub use registry::Registry;

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
