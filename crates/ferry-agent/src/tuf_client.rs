//! The TUF client workflow: refresh metadata from the server with
//! [`ferry_artifact::tuf::TrustedSet`], persist what verified, and look targets up.
//!
//! Order (TUF 1.0 §5): `N+1.root.json` until 404, `timestamp.json`, `V.snapshot.json`,
//! `V.targets.json` (consistent snapshot). Each verified file is stored in `state_dir/tuf/`
//! atomically; the stored root is the starting point of the next refresh, and the stored
//! timestamp and snapshot are loaded before the fresh ones so versions can never go back.

use crate::client::{ApiClient, join_url};
use crate::error::{AgentError, io_err};
use crate::state::write_atomic;
use chrono::{DateTime, Utc};
use ferry_artifact::tuf::{TrustedSet, target_path_with_hash};
use ferry_core::api::UpdateOffer;
use std::path::{Path, PathBuf};

/// Largest metadata file the agent accepts (endless-data protection).
pub const METADATA_LIMIT: u64 = 4 * 1024 * 1024;
/// Most root versions the agent walks in one refresh.
pub const MAX_ROOT_ROTATIONS: u64 = 256;

/// TUF metadata could not be fetched, verified, or did not vouch for the offer.
#[derive(Debug, thiserror::Error)]
pub enum TufClientError {
    /// The provisioned root could not be read or parsed.
    #[error(
        "trusted root {path}: {reason} (provision the fleet's root.json at the factory and point `trusted_root` at it)"
    )]
    TrustedRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A metadata file failed verification.
    #[error("TUF {file} from {url} was rejected: {reason}")]
    Rejected {
        /// The metadata file name.
        file: String,
        /// Where it came from.
        url: String,
        /// The verifier's error (role, version, expiry, key ids, expected vs found).
        reason: String,
    },
    /// A required metadata file is missing on the server.
    #[error("TUF {file} is missing on the server ({url}); the repository is incomplete")]
    Missing {
        /// The metadata file name.
        file: String,
        /// Where it was looked for.
        url: String,
    },
    /// The server keeps presenting new root versions.
    #[error(
        "more than {MAX_ROOT_ROTATIONS} root versions in one refresh; refusing endless root rotation"
    )]
    TooManyRoots,
    /// The offered target is not in the signed targets metadata.
    #[error(
        "target {name} is not listed in the signed targets metadata; refusing an offer the repository does not vouch for"
    )]
    MissingTarget {
        /// Target name.
        name: String,
    },
    /// The signed targets metadata disagrees with the offer.
    #[error(
        "target {name}: signed targets metadata says {field} = {signed}, but the offer says {offered}"
    )]
    TargetMismatch {
        /// Target name.
        name: String,
        /// Which field.
        field: &'static str,
        /// The signed value.
        signed: String,
        /// The offered value.
        offered: String,
    },
}

/// A target as vouched for by verified TUF metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTarget {
    /// Target name (`main/1.2.0.ferry`).
    pub name: String,
    /// Signed length.
    pub length: u64,
    /// Signed sha256 (hex).
    pub sha256: String,
    /// Path to fetch under the file service (`main/HASH.1.2.0.ferry` with consistent snapshots).
    pub fetch_path: String,
}

/// The device's TUF metadata store and refresh workflow.
#[derive(Debug, Clone)]
pub struct TufClient {
    dir: PathBuf,
    factory_root: PathBuf,
}

impl TufClient {
    /// Metadata kept in `tuf_dir`; `factory_root` is used until a newer root has been verified.
    pub fn new(tuf_dir: &Path, factory_root: &Path) -> TufClient {
        TufClient {
            dir: tuf_dir.to_path_buf(),
            factory_root: factory_root.to_path_buf(),
        }
    }

    fn stored(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.json"))
    }

    /// The newest trusted root: the stored one, else the factory one.
    pub fn trusted_root(&self) -> Result<Vec<u8>, AgentError> {
        let stored = self.stored("root");
        if stored.exists() {
            return std::fs::read(&stored).map_err(|e| io_err(&stored, "read trusted root", e));
        }
        std::fs::read(&self.factory_root).map_err(|e| {
            TufClientError::TrustedRoot {
                path: self.factory_root.clone(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// Checks that the trusted root parses and is self-consistent.
    pub fn check(&self) -> Result<(), AgentError> {
        let bytes = self.trusted_root()?;
        TrustedSet::new(&bytes).map_err(|e| {
            let path = if self.stored("root").exists() {
                self.stored("root")
            } else {
                self.factory_root.clone()
            };
            TufClientError::TrustedRoot {
                path,
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }

    async fn fetch(
        &self,
        api: &ApiClient,
        base: &str,
        file: &str,
    ) -> Result<(String, Option<Vec<u8>>), AgentError> {
        let url = join_url(base, file);
        let bytes = api.get_limited(&url, METADATA_LIMIT).await?;
        Ok((url, bytes))
    }

    async fn fetch_required(
        &self,
        api: &ApiClient,
        base: &str,
        file: &str,
    ) -> Result<(String, Vec<u8>), AgentError> {
        let (url, bytes) = self.fetch(api, base, file).await?;
        match bytes {
            Some(b) => Ok((url, b)),
            None => Err(TufClientError::Missing {
                file: file.to_string(),
                url,
            }
            .into()),
        }
    }

    /// Refreshes all metadata from `base_url` at time `now`; returns the verified set.
    ///
    /// The previously trusted timestamp and snapshot are loaded first (even when expired) so
    /// that the fresh ones cannot roll versions back.
    pub async fn refresh(
        &self,
        api: &ApiClient,
        base_url: &str,
        now: DateTime<Utc>,
    ) -> Result<TrustedSet, AgentError> {
        let base = api.resolve(base_url);
        let rejected = |file: &str, url: &str, e: &dyn std::fmt::Display| -> AgentError {
            TufClientError::Rejected {
                file: file.to_string(),
                url: url.to_string(),
                reason: e.to_string(),
            }
            .into()
        };
        let start_root = self.trusted_root()?;
        let mut set = TrustedSet::new(&start_root).map_err(|e| TufClientError::TrustedRoot {
            path: self.factory_root.clone(),
            reason: e.to_string(),
        })?;

        // 1. Root rotation, one version at a time.
        let mut walked = 0;
        loop {
            let file = format!("{}.root.json", set.root_version() + 1);
            let (url, bytes) = self.fetch(api, &base, &file).await?;
            let Some(bytes) = bytes else { break };
            walked += 1;
            if walked > MAX_ROOT_ROTATIONS {
                return Err(TufClientError::TooManyRoots.into());
            }
            set.update_root(&bytes)
                .map_err(|e| rejected(&file, &url, &e))?;
            write_atomic(&self.stored("root"), &bytes, 0o644)?;
        }
        set.check_root_expiry(now)
            .map_err(|e| rejected("root.json", &join_url(&base, "root.json"), &e))?;

        // 2. Timestamp: the trusted copy first (rollback reference, kept even if expired).
        if let Ok(cached) = std::fs::read(self.stored("timestamp"))
            && let Err(e) = set.update_timestamp(&cached, now)
        {
            tracing::debug!("stored timestamp.json kept as rollback reference only: {e}");
        }
        let (ts_url, ts) = self.fetch_required(api, &base, "timestamp.json").await?;
        set.update_timestamp(&ts, now)
            .map_err(|e| rejected("timestamp.json", &ts_url, &e))?;

        // 3. Snapshot named by the timestamp, after the trusted copy.
        let snap_version = set
            .timestamp_snapshot_version()
            .ok_or_else(|| rejected("timestamp.json", &ts_url, &"lists no snapshot.json"))?;
        if let Ok(cached) = std::fs::read(self.stored("snapshot"))
            && let Err(e) = set.load_cached_snapshot(&cached, now)
        {
            tracing::debug!("stored snapshot.json kept as rollback reference only: {e}");
        }
        let snap_file = format!("{snap_version}.snapshot.json");
        let (snap_url, snap) = self.fetch_required(api, &base, &snap_file).await?;
        set.update_snapshot(&snap, now)
            .map_err(|e| rejected(&snap_file, &snap_url, &e))?;

        // 4. Targets named by the snapshot.
        let targets_version = set
            .snapshot_version_for_targets()
            .ok_or_else(|| rejected(&snap_file, &snap_url, &"lists no targets.json"))?;
        let targets_file = format!("{targets_version}.targets.json");
        let (targets_url, targets) = self.fetch_required(api, &base, &targets_file).await?;
        set.update_targets(&targets, now)
            .map_err(|e| rejected(&targets_file, &targets_url, &e))?;

        write_atomic(&self.stored("timestamp"), &ts, 0o644)?;
        write_atomic(&self.stored("snapshot"), &snap, 0o644)?;
        write_atomic(&self.stored("targets"), &targets, 0o644)?;
        Ok(set)
    }

    /// Looks the offered target up in verified metadata; length and hash come from there.
    ///
    /// Refuses a target that is missing, or whose signed component/version differ from the offer.
    pub fn lookup(set: &TrustedSet, offer: &UpdateOffer) -> Result<VerifiedTarget, TufClientError> {
        let name = &offer.target_name;
        let target = set
            .target(name)
            .ok_or_else(|| TufClientError::MissingTarget { name: name.clone() })?;
        let mismatch =
            |field: &'static str, signed: String, offered: String| TufClientError::TargetMismatch {
                name: name.clone(),
                field,
                signed,
                offered,
            };
        let length = target.length;
        let sha256 = target
            .hashes
            .get("sha256")
            .ok_or_else(|| mismatch("hashes.sha256", "nothing".into(), offer.sha256.clone()))?
            .to_ascii_lowercase();
        let custom = &target.custom;
        let signed_str = |key: &str| {
            custom
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("nothing")
                .to_string()
        };
        if signed_str("component") != offer.component.as_str() {
            return Err(mismatch(
                "custom.component",
                signed_str("component"),
                offer.component.to_string(),
            ));
        }
        let signed_version = signed_str("version");
        if signed_version.parse::<ferry_core::Version>().ok().as_ref() != Some(&offer.version) {
            return Err(mismatch(
                "custom.version",
                signed_version,
                offer.version.to_string(),
            ));
        }
        let fetch_path = if set.consistent_snapshot() {
            target_path_with_hash(name, &sha256)
        } else {
            name.clone()
        };
        Ok(VerifiedTarget {
            name: name.clone(),
            length,
            sha256,
            fetch_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_factory_root_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = TufClient::new(dir.path(), &dir.path().join("root.json.missing"));
        let err = c.trusted_root().unwrap_err().to_string();
        assert!(
            err.contains("root.json.missing") && err.contains("trusted_root"),
            "{err}"
        );
    }
}
