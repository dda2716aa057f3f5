//! Shared state of a running server: configuration, storage, TUF repository, trusted keys.

use crate::config::ServerConfig;
use crate::tuf_repo::TufRepo;
use ferry_artifact::keys::PublicKey;
use ferry_store::{ArtifactStore, Registry};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything handlers share; cheap to clone.
pub type AppState = Arc<Shared>;

/// The contents of [`AppState`].
pub struct Shared {
    /// The configuration in effect.
    pub config: ServerConfig,
    /// Devices, releases, reports, backups, TUF metadata.
    pub registry: Arc<dyn Registry>,
    /// Artifact and backup bytes.
    pub store: Arc<dyn ArtifactStore>,
    /// The TUF repository (present for roles that serve queries).
    pub tuf: Option<TufRepo>,
    /// Keys trusted to sign uploaded `.ferry` artifacts.
    pub release_keys: Vec<PublicKey>,
    /// Where uploads are spooled before they are verified and stored.
    pub tmp_dir: PathBuf,
    /// Check-in nudges through the MQTT broker, when `[push]` is configured.
    pub push: Option<crate::push::Push>,
}

impl Shared {
    /// The TUF repository; only called from routes that exist for query roles.
    pub fn tuf(&self) -> Result<&TufRepo, crate::error::AppError> {
        self.tuf.as_ref().ok_or_else(|| {
            crate::error::AppError::not_found(
                "this server runs role `files`; TUF metadata is served by the query service",
            )
        })
    }
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
