//! The agent's side of TUF: refresh metadata from the server with the full client workflow of
//! [`crate::tuf_updater::Updater`] (root chain, fast-forward recovery, rollback checks, lazy
//! delegation search), and check an offer against the verified target.
//!
//! Each verified file is stored in `state_dir/tuf/` atomically as `<role>.json`; the stored
//! root is the starting point of the next refresh (the factory root until a newer one
//! verified), and the stored timestamp and snapshot are loaded before the fresh ones so
//! versions can never go back.

use crate::client::ApiClient;
use crate::error::{AgentError, io_err};
use crate::tuf_updater::{TargetInfo, UpdateError, Updater};
use chrono::{DateTime, Utc};
use ferry_artifact::tuf::{TargetFile, TrustedSet, target_path_with_hash};
use ferry_core::api::UpdateOffer;
use std::path::{Path, PathBuf};

/// Largest metadata file the agent accepts (endless-data protection).
pub const METADATA_LIMIT: u64 = 4 * 1024 * 1024;
/// Most root versions the agent applies in one refresh (as [`crate::tuf_updater::UpdaterConfig`]).
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
    /// The TUF workflow failed (names the role, version, URL, expected vs found).
    #[error(transparent)]
    Update(#[from] UpdateError),
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
    /// Signed go-live time (`custom.go_live`, Unix ms): not to be installed earlier.
    pub go_live: Option<u64>,
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

    fn updater(
        &self,
        api: &ApiClient,
        base_url: &str,
        now: DateTime<Utc>,
    ) -> Result<Updater, AgentError> {
        let root = self.trusted_root()?;
        let root_path = if self.stored("root").exists() {
            self.stored("root")
        } else {
            self.factory_root.clone()
        };
        let base = api.resolve(base_url);
        Updater::for_agent(api, &self.dir, &base, now, &root, &root_path).map_err(|e| match e {
            UpdateError::TrustedRoot { path, reason } => {
                TufClientError::TrustedRoot { path, reason }.into()
            }
            other => other.into(),
        })
    }

    /// Refreshes all top-level metadata from `base_url` at time `now`; returns the verified set.
    ///
    /// The previously trusted timestamp and snapshot are loaded first (even when expired) so
    /// that the fresh ones cannot roll versions back.
    pub async fn refresh(
        &self,
        api: &ApiClient,
        base_url: &str,
        now: DateTime<Utc>,
    ) -> Result<TrustedSet, AgentError> {
        let mut updater = self.updater(api, base_url, now)?;
        updater.refresh().await?;
        Ok(updater.into_trusted_set())
    }

    /// Refreshes like [`TufClient::refresh`], then searches the delegation tree for target
    /// `name` (fetching delegated roles lazily); returns the verified set and what was found.
    pub async fn refresh_target(
        &self,
        api: &ApiClient,
        base_url: &str,
        now: DateTime<Utc>,
        name: &str,
    ) -> Result<(TrustedSet, Option<TargetInfo>), AgentError> {
        let mut updater = self.updater(api, base_url, now)?;
        updater.refresh().await?;
        let found = updater.get_targetinfo(name).await?;
        Ok((updater.into_trusted_set(), found))
    }

    /// Looks the offered target up in verified metadata; length and hash come from there.
    ///
    /// Refuses a target that is missing, or whose signed component/version differ from the offer.
    pub fn lookup(set: &TrustedSet, offer: &UpdateOffer) -> Result<VerifiedTarget, TufClientError> {
        TufClient::check_offer(set, set.target(&offer.target_name), offer)
    }

    /// Like [`TufClient::lookup`] for a target found by the delegation search
    /// ([`TufClient::refresh_target`]).
    pub fn lookup_found(
        set: &TrustedSet,
        found: Option<&TargetInfo>,
        offer: &UpdateOffer,
    ) -> Result<VerifiedTarget, TufClientError> {
        let target = found
            .filter(|info| info.name == offer.target_name)
            .map(|info| &info.file);
        TufClient::check_offer(set, target, offer)
    }

    fn check_offer(
        set: &TrustedSet,
        target: Option<&TargetFile>,
        offer: &UpdateOffer,
    ) -> Result<VerifiedTarget, TufClientError> {
        let name = &offer.target_name;
        let target = target.ok_or_else(|| TufClientError::MissingTarget { name: name.clone() })?;
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
        let go_live = match custom.get("go_live") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                mismatch("custom.go_live", v.to_string(), "a time in Unix ms".into())
            })?),
        };
        Ok(VerifiedTarget {
            name: name.clone(),
            length,
            sha256,
            fetch_path,
            go_live,
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
