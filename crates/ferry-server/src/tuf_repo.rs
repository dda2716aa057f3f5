//! The server's TUF repository: signed metadata kept in the registry, guarded by a mutex.
//!
//! The registry is the source of truth so several stateless instances can share it: before
//! changing anything, an instance reloads the repository when the stored timestamp differs
//! from the one it holds (another instance moved it on).

use crate::error::{AppError, AppResult};
use anyhow::Context;
use chrono::{DateTime, Utc};
use ferry_artifact::tuf::{Expiry, RepoKeys, Repository, TargetFile};
use ferry_core::api::{DeltaRecord, ReleaseRecord};
use ferry_store::Registry;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The repository and where it persists.
pub struct TufRepo {
    repo: Mutex<Repository>,
    registry: Arc<dyn Registry>,
    keys_dir: std::path::PathBuf,
}

/// What a key rotation did.
#[derive(utoipa::ToSchema)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rotation {
    /// Version of the new root (listing the new keys).
    pub root_version: u64,
    /// Roles that got a new key, with the new key ids.
    pub rotated: BTreeMap<String, String>,
    /// Where the retired keys were moved (keep them until every device has the new root).
    pub retired_keys_dir: String,
}

/// `<keys_dir>.next`: the new keys of a rotation, written before its metadata is stored.
fn next_keys_dir(keys_dir: &Path) -> std::path::PathBuf {
    let mut name = keys_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".next");
    keys_dir.with_file_name(name)
}

/// Loads the repository keys, generating and saving a fresh set when `dir` does not exist yet.
pub fn load_or_generate_keys(dir: &Path) -> anyhow::Result<RepoKeys> {
    if dir.exists() {
        return RepoKeys::load_dir(dir)
            .with_context(|| format!("loading TUF repository keys from {}", dir.display()));
    }
    let keys = RepoKeys::generate();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating TUF keys directory {}", dir.display()))?;
    keys.save_dir(dir)
        .with_context(|| format!("saving new TUF repository keys to {}", dir.display()))?;
    tracing::warn!(keys_dir = %dir.display(), "generated new TUF repository keys; back them up (devices trust this root)");
    Ok(keys)
}

/// Moves `keys_dir` aside as `<keys_dir>.retired-<n>` (first free n); the new name.
fn retire_keys(keys_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let base = keys_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let target = (1..)
        .map(|n| keys_dir.with_file_name(format!("{base}.retired-{n}")))
        .find(|p| !p.exists())
        .expect("some retired-N name is free");
    std::fs::rename(keys_dir, &target)
        .with_context(|| format!("moving the old TUF keys {} to {}", keys_dir.display(), target.display()))?;
    Ok(target)
}

/// Whether `name` is a metadata file name the repository can hold.
pub fn is_metadata_name(name: &str) -> bool {
    if name == "root.json" || name == "timestamp.json" {
        return true;
    }
    let Some((version, role)) = name.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && matches!(role, "root.json" | "snapshot.json" | "targets.json")
}

/// The TUF target entry of a release (custom = component, version, device types, and the
/// go-live time in Unix ms when it has one: the agent installs no earlier, by its own clock).
pub fn target_entry(release: &ReleaseRecord) -> TargetFile {
    let mut custom = json!({
        "component": release.component,
        "version": release.version,
        "device_types": release.device_types,
    });
    if let Some(go_live) = release.go_live {
        custom["go_live"] = json!(go_live);
    }
    ferry_artifact::tuf::target_file(
        &release.target_name,
        release.length,
        &release.sha256,
        custom,
    )
}

/// The TUF target entry of a delta package (custom = component, base and target version).
pub fn delta_target_entry(delta: &DeltaRecord) -> TargetFile {
    let custom = json!({
        "component": delta.component,
        "version": delta.to_version,
        "delta_from": delta.from_version,
    });
    ferry_artifact::tuf::target_file(&delta.target_name, delta.length, &delta.sha256, custom)
}

/// The target entries of all `releases` and their delta packages, keyed by target name (a
/// delta carries its release's go-live time too).
pub fn targets_of(releases: &[ReleaseRecord]) -> BTreeMap<String, TargetFile> {
    releases
        .iter()
        .flat_map(|r| {
            std::iter::once((r.target_name.clone(), target_entry(r))).chain(r.deltas.iter().map(
                |d| {
                    let mut entry = delta_target_entry(d);
                    if let (Some(go_live), Some(custom)) = (r.go_live, entry.custom.as_object_mut()) {
                        custom.insert("go_live".into(), json!(go_live));
                    }
                    (d.target_name.clone(), entry)
                },
            ))
        })
        .collect()
}

fn to_files(map: BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    map.into_iter().collect()
}

/// The files of `after` that are new or changed since `before`.
fn changed(
    before: &BTreeMap<String, Vec<u8>>,
    after: BTreeMap<String, Vec<u8>>,
) -> Vec<(String, Vec<u8>)> {
    after
        .into_iter()
        .filter(|(name, bytes)| before.get(name) != Some(bytes))
        .collect()
}

impl TufRepo {
    /// Loads the repository from the registry, or initialises and persists a new one.
    pub async fn open(registry: Arc<dyn Registry>, keys_dir: &Path) -> anyhow::Result<TufRepo> {
        let mut keys = load_or_generate_keys(keys_dir)?;
        let stored = registry
            .all_metadata()
            .await
            .context("reading TUF metadata from the registry")?;
        // A rotation that stored its metadata but stopped before swapping the key directories
        // left the new keys in `<keys_dir>.next`: finish it.
        let next = next_keys_dir(keys_dir);
        if !stored.is_empty() && next.exists() {
            let files: BTreeMap<String, Vec<u8>> = stored.iter().cloned().collect();
            if Repository::from_files(keys.clone(), Expiry::default(), files.clone()).is_err()
                && let Ok(new_keys) = RepoKeys::load_dir(&next)
                && Repository::from_files(new_keys.clone(), Expiry::default(), files).is_ok()
            {
                let retired = retire_keys(keys_dir)?;
                std::fs::rename(&next, keys_dir)
                    .with_context(|| format!("moving the new TUF keys {} into place", next.display()))?;
                tracing::warn!(retired = %retired.display(), "finished an interrupted TUF key rotation");
                keys = new_keys;
            }
        }
        let repo = if stored.is_empty() {
            let repo = Repository::new(keys, Expiry::default(), Utc::now());
            registry
                .put_metadata(&to_files(repo.files()))
                .await
                .context("storing new TUF metadata in the registry")?;
            tracing::info!("initialised a new TUF repository");
            repo
        } else {
            Repository::from_files(keys, Expiry::default(), stored.into_iter().collect()).context(
                "loading the TUF repository stored in the registry (do keys_dir's keys match it?)",
            )?
        };
        Ok(TufRepo {
            repo: Mutex::new(repo),
            registry,
            keys_dir: keys_dir.to_path_buf(),
        })
    }

    /// Reloads from the registry when another instance changed the repository.
    async fn sync(&self, repo: &mut Repository) -> AppResult<()> {
        let stored = self
            .registry
            .metadata("timestamp.json")
            .await
            .map_err(|e| AppError::store("reading timestamp.json", e))?;
        if stored.is_none() || stored.as_ref() == repo.files().get("timestamp.json") {
            return Ok(());
        }
        let all = self
            .registry
            .all_metadata()
            .await
            .map_err(|e| AppError::store("reading TUF metadata", e))?;
        *repo = Repository::from_files(
            repo.keys().clone(),
            *repo.expiry(),
            all.into_iter().collect(),
        )
        .map_err(|e| AppError::internal("reloading the TUF repository from the registry", e))?;
        Ok(())
    }

    /// Stores the files that changed since `before` (older versions stay servable in the registry).
    async fn persist(
        &self,
        before: &BTreeMap<String, Vec<u8>>,
        repo: &Repository,
    ) -> AppResult<()> {
        self.registry
            .put_metadata(&changed(before, repo.files()))
            .await
            .map_err(|e| AppError::store("storing TUF metadata", e))
    }

    /// One metadata file to serve; `timestamp.json` is re-signed first when it nears expiry.
    pub async fn file(&self, name: &str) -> AppResult<Option<Vec<u8>>> {
        self.file_at(name, Utc::now()).await
    }

    async fn file_at(&self, name: &str, now: DateTime<Utc>) -> AppResult<Option<Vec<u8>>> {
        if name == "timestamp.json" {
            let mut repo = self.repo.lock().await;
            self.sync(&mut repo).await?;
            let before = repo.files();
            if repo.refresh_timestamp(now) {
                self.persist(&before, &repo).await?;
                tracing::info!("re-signed timestamp.json");
            }
            return Ok(repo.files().get(name).cloned());
        }
        self.registry
            .metadata(name)
            .await
            .map_err(|e| AppError::store(&format!("reading TUF metadata {name}"), e))
    }

    /// The targets of `releases` plus the firmware metadata documents in the registry.
    async fn wanted(&self, releases: &[ReleaseRecord]) -> AppResult<BTreeMap<String, TargetFile>> {
        let mut targets = targets_of(releases);
        let firmware = self
            .registry
            .all_firmware()
            .await
            .map_err(|e| AppError::store("listing firmware metadata", e))?;
        targets.extend(firmware.iter().map(|(id, bytes)| crate::firmware::target_entry(id, bytes)));
        Ok(targets)
    }

    /// Publishes new targets metadata listing exactly `releases` and the registry's firmware
    /// metadata (new targets, snapshot, timestamp).
    pub async fn publish(&self, releases: &[ReleaseRecord]) -> AppResult<()> {
        let wanted = self.wanted(releases).await?;
        let mut repo = self.repo.lock().await;
        self.sync(&mut repo).await?;
        let before = repo.files();
        repo.set_targets(wanted, Utc::now())
            .map_err(|e| AppError::internal("publishing TUF targets", e))?;
        self.persist(&before, &repo).await?;
        tracing::info!(targets = releases.len(), "published TUF targets");
        Ok(())
    }

    /// Gives `roles` new keys: root v(N+1) lists them, signed by the old and the new root key,
    /// and every role is re-signed. The new keys are saved to `<keys_dir>.next` before the
    /// metadata is stored and swapped into `keys_dir` after (the old directory is kept as
    /// `<keys_dir>.retired-N`); a crash in between is finished at the next start.
    /// Other instances sharing the registry need the new `keys_dir` copied to them.
    pub async fn rotate(&self, roles: &[ferry_artifact::tuf::Role]) -> AppResult<Rotation> {
        use ferry_artifact::keys::SigningKey;
        use ferry_artifact::tuf::Role;
        let mut repo = self.repo.lock().await;
        self.sync(&mut repo).await?;
        let before = repo.files();
        let mut keys = repo.keys().clone();
        let mut rotated = BTreeMap::new();
        for role in roles {
            let key = SigningKey::generate();
            rotated.insert(role.as_str().to_string(), key.key_id().to_string());
            match role {
                Role::Root => keys.root = key,
                Role::Targets => keys.targets = key,
                Role::Snapshot => keys.snapshot = key,
                Role::Timestamp => keys.timestamp = key,
            }
        }
        let next = next_keys_dir(&self.keys_dir);
        let io = |what: &str, e: &dyn std::fmt::Display| AppError::internal(&format!("TUF key rotation: {what}"), e);
        if next.exists() {
            std::fs::remove_dir_all(&next).map_err(|e| io(&format!("removing stale {}", next.display()), &e))?;
        }
        keys.save_dir(&next).map_err(|e| io(&format!("saving new keys to {}", next.display()), &e))?;
        let mut rotated_repo = repo.clone();
        rotated_repo.rotate_keys(keys, Utc::now());
        self.persist(&before, &rotated_repo).await?;
        *repo = rotated_repo;
        let retired = retire_keys(&self.keys_dir).map_err(|e| io("retiring the old keys", &e))?;
        std::fs::rename(&next, &self.keys_dir).map_err(|e| io("moving the new keys into place", &e))?;
        let root_version = repo.root().version;
        tracing::warn!(root_version, ?rotated, retired = %retired.display(), "rotated TUF repository keys");
        Ok(Rotation { root_version, rotated, retired_keys_dir: retired.display().to_string() })
    }

    /// Publishes targets when the stored ones differ from `releases` (a crash between
    /// registering a release and publishing its metadata).
    pub async fn reconcile(&self, releases: &[ReleaseRecord]) -> AppResult<()> {
        let wanted = self.wanted(releases).await?;
        let current = {
            let mut repo = self.repo.lock().await;
            self.sync(&mut repo).await?;
            repo.targets().targets.clone()
        };
        if current == wanted {
            return Ok(());
        }
        tracing::warn!("TUF targets differ from registered releases; republishing");
        self.publish(releases).await
    }
}

/// `POST /api/v1/tuf/rotate` body.
#[derive(utoipa::ToSchema)]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Roles to give new keys: any of `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: Vec<String>,
}

/// `POST /api/v1/tuf/rotate`: rotates the named roles' keys (operator).
#[utoipa::path(
    post,
    path = "/api/v1/tuf/rotate",
    tag = "tuf",
    security(("operator" = [])),
    request_body(content = RotateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What the rotation did", body = Rotation),
        (status = 400, description = "Malformed or invalid request", body = ferry_core::api::ApiError),
        (status = 401, description = "Missing or wrong operator token", body = ferry_core::api::ApiError),
    )
)]
pub async fn rotate_keys(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    _op: crate::auth::OperatorAuth,
    crate::body::ApiJson(req): crate::body::ApiJson<RotateRequest>,
) -> AppResult<axum::Json<Rotation>> {
    use ferry_artifact::tuf::Role;
    let hint = "name the roles to rotate: any of root, targets, snapshot, timestamp";
    if req.roles.is_empty() {
        return Err(AppError::bad_request(hint));
    }
    let mut roles = Vec::new();
    for name in &req.roles {
        let role = Role::from_name(name)
            .ok_or_else(|| AppError::bad_request(format!("unknown TUF role '{name}': {hint}")))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(axum::Json(state.tuf()?.rotate(&roles).await?))
}

/// `GET /tuf/{file}`: serves one metadata file (no auth: metadata is signed and public).
#[utoipa::path(
    get,
    path = "/tuf/{file}",
    operation_id = "get_tuf_metadata",
    tag = "tuf",
    params(("file" = String, Path, description = "Metadata file, e.g. `root.json`, `3.root.json`, `timestamp.json`")),
    responses(
        (status = 200, description = "Signed TUF metadata (public, no auth)", body = Object),
        (status = 404, description = "Not found", body = ferry_core::api::ApiError),
    )
)]
pub async fn get_metadata(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> AppResult<axum::response::Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let missing = || {
        AppError::not_found(format!(
            "no TUF metadata file '{name}'; files are root.json, N.root.json, timestamp.json, N.snapshot.json, N.targets.json"
        ))
    };
    if !is_metadata_name(&name) {
        return Err(missing());
    }
    let bytes = state.tuf()?.file(&name).await?.ok_or_else(missing)?;
    // Versioned files never change; the unversioned ones must always be refetched.
    let cache = if name == "root.json" || name == "timestamp.json" {
        "no-store"
    } else {
        "public, max-age=31536000, immutable"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_artifact::tuf::{Signed, Timestamp};

    fn timestamp_version(bytes: &[u8]) -> u64 {
        serde_json::from_slice::<Signed<Timestamp>>(bytes)
            .unwrap()
            .signed
            .version
    }

    async fn open_in(dir: &Path, registry: Arc<dyn Registry>) -> TufRepo {
        TufRepo::open(registry, &dir.join("keys")).await.unwrap()
    }

    #[tokio::test]
    async fn timestamp_near_expiry_is_re_signed_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ferry_store::open_registry("sqlite::memory:").await.unwrap();
        let repo = open_in(dir.path(), registry.clone()).await;
        let fresh = repo.file("timestamp.json").await.unwrap().unwrap();
        assert_eq!(
            fresh,
            registry.metadata("timestamp.json").await.unwrap().unwrap(),
            "fresh timestamp is not re-signed"
        );

        let later = Utc::now() + chrono::TimeDelta::hours(20);
        let renewed = repo
            .file_at("timestamp.json", later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(timestamp_version(&renewed), timestamp_version(&fresh) + 1);
        assert_eq!(
            registry.metadata("timestamp.json").await.unwrap().unwrap(),
            renewed
        );
    }

    #[tokio::test]
    async fn instances_sharing_a_registry_see_each_others_targets() {
        let dir = tempfile::tempdir().unwrap();
        let registry = ferry_store::open_registry("sqlite::memory:").await.unwrap();
        let a = open_in(dir.path(), registry.clone()).await;
        let b = open_in(dir.path(), registry.clone()).await;
        let release = |version: &str| ReleaseRecord {
            component: ferry_core::Component::Main,
            version: version.parse().unwrap(),
            device_types: vec![],
            target_name: format!("main/{version}.ferry"),
            length: 3,
            sha256: "ab".repeat(32),
            blacklist: vec![],
            go_live: None,
            created_at: 0,
            deltas: vec![],
            halted: None,
        };
        a.publish(&[release("1.0.0")]).await.unwrap();
        let from_b = b.file("timestamp.json").await.unwrap().unwrap();
        assert_eq!(
            from_b,
            registry.metadata("timestamp.json").await.unwrap().unwrap(),
            "b serves a's timestamp"
        );
        b.publish(&[release("1.0.0"), release("1.1.0")])
            .await
            .unwrap();
        let b_targets = b.repo.lock().await.targets().clone();
        assert_eq!(b_targets.targets.len(), 2);
        a.reconcile(&[release("1.0.0"), release("1.1.0")])
            .await
            .unwrap();
        let a_targets = a.repo.lock().await.targets().clone();
        assert_eq!(
            a_targets.version, b_targets.version,
            "a reloaded b's publication instead of republishing"
        );
    }

    #[test]
    fn deltas_are_published_as_targets_beside_their_release() {
        let delta = DeltaRecord {
            component: ferry_core::Component::Main,
            from_version: "1.0.0".parse().unwrap(),
            to_version: "1.1.0".parse().unwrap(),
            target_name: "main/1.0.0_1.1.0.delta".into(),
            length: 7,
            sha256: "cd".repeat(32),
            created_at: 0,
        };
        let release = ReleaseRecord {
            component: ferry_core::Component::Main,
            version: "1.1.0".parse().unwrap(),
            device_types: vec![],
            target_name: "main/1.1.0.ferry".into(),
            length: 3,
            sha256: "ab".repeat(32),
            blacklist: vec![],
            go_live: None,
            created_at: 0,
            deltas: vec![delta],
            halted: None,
        };
        let targets = targets_of(&[release]);
        assert_eq!(targets.keys().collect::<Vec<_>>(), ["main/1.0.0_1.1.0.delta", "main/1.1.0.ferry"]);
        let d = &targets["main/1.0.0_1.1.0.delta"];
        assert_eq!(d.length, 7);
        assert_eq!(d.hashes["sha256"], "cd".repeat(32));
        assert_eq!(d.custom["delta_from"], "1.0.0");
    }

    #[test]
    fn metadata_names_are_the_tuf_file_forms_only() {
        for ok in [
            "root.json",
            "timestamp.json",
            "1.root.json",
            "12.snapshot.json",
            "3.targets.json",
        ] {
            assert!(is_metadata_name(ok), "{ok}");
        }
        for bad in [
            "snapshot.json",
            "targets.json",
            "x.root.json",
            ".root.json",
            "1.timestamp.json",
            "../root.json",
            "1.root.json.bak",
        ] {
            assert!(!is_metadata_name(bad), "{bad}");
        }
    }
}
