//! The `ArtifactStore`: artifact and backup bytes, local files or S3-compatible object storage.

use crate::StoreError;
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;

/// Size and entity tag of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Length in bytes.
    pub size: u64,
    /// Strong entity tag (quoted form not included).
    pub etag: String,
}

/// Byte storage keyed by `/`-separated names. Every backend passes [`crate::conformance::artifact_store`].
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores `bytes` under `key` atomically (readers see the old or the new object, never a part).
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError>;
    /// Stores a local file under `key` atomically, streaming it (large artifacts).
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StoreError>;
    /// The whole object. `NotFound` if absent.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Bytes `range` of the object. `NotFound` if absent; `InvalidRange` if outside it.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;
    /// Size and etag, or `None` if absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Removes the object (absent is not an error).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}
