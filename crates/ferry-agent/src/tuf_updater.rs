//! The complete TUF 1.0 client workflow (§5.3–5.7) over HTTP, with a metadata directory and a
//! target directory, structured like python-tuf's `ngclient.Updater`.
//!
//! - Root: `N+1.root.json` until 404/403, at most [`UpdaterConfig::max_root_rotations`] versions,
//!   each verified by the old and the new root and stored at once; if the timestamp or snapshot
//!   keys rotated, the stored timestamp and snapshot are deleted (fast-forward recovery, §5.3.11).
//! - Timestamp, snapshot, targets: the stored copy first (rollback reference, or reused when
//!   still final), then the repository's, verified by [`TrustedSet`].
//! - Delegated targets roles are fetched lazily, only when the search for a target reaches them
//!   ([`TargetSearch`]), and only when listed in snapshot; names are percent-encoded in URLs
//!   and file names.
//! - Targets are stored under `target_dir/<percent-encoded name>`, downloaded from
//!   `dir/HASH.basename` with consistent snapshots, written to a temporary file outside the
//!   target directory and renamed into place after their length and hashes verified; a stored
//!   target that already matches is not downloaded again.
//!
//! The metadata directory holds one `<percent-encoded role>.json` per trusted role with the
//! exact bytes received, and nothing else named `*.json`. [`cli_main`] is the `ferry tuf-client`
//! command line (the tuf-conformance client protocol).

use crate::client::ApiClient;
use crate::error::AgentError;
use chrono::{DateTime, TimeZone, Utc};
use ferry_artifact::tuf::{
    MAX_DELEGATIONS, Role, SearchStep, TargetFile, TargetSearch, TrustedSet, TufError,
    check_target_reader,
};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits of one update session (python-tuf 7's `UpdaterConfig` defaults). A root chain longer
/// than `max_root_rotations` is followed that far without an error, as python-tuf does; the
/// next refresh goes on from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdaterConfig {
    /// Most new root versions applied in one refresh (256, python-tuf's `max_root_rotations`).
    pub max_root_rotations: u64,
    /// Most targets roles visited in one target search (32).
    pub max_delegations: usize,
    /// Largest root file (512000 bytes).
    pub root_max_length: u64,
    /// Largest timestamp file (16384 bytes).
    pub timestamp_max_length: u64,
    /// Largest snapshot file when timestamp does not list its length (2000000 bytes).
    pub snapshot_max_length: u64,
    /// Largest targets file when snapshot does not list its length (5000000 bytes).
    pub targets_max_length: u64,
    /// With consistent snapshots, download targets as `dir/HASH.basename` (true).
    pub prefix_targets_with_hash: bool,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            max_root_rotations: 256,
            max_delegations: MAX_DELEGATIONS,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            prefix_targets_with_hash: true,
        }
    }
}

/// A TUF update could not be completed. Each variant names the file, URL and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The trusted root to start from could not be read or does not verify.
    #[error("trusted root {path}: {reason}")]
    TrustedRoot {
        /// Where it was read.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A metadata file failed verification.
    #[error("{file} from {url} was rejected: {source}")]
    Rejected {
        /// The metadata file name as fetched (`3.snapshot.json`).
        file: String,
        /// Where it came from.
        url: String,
        /// The verifier's error (role, version, expected vs found).
        #[source]
        source: TufError,
    },
    /// A metadata file the workflow needs is not on the server.
    #[error("{file} is missing on the server ({url}); the repository is incomplete")]
    Missing {
        /// The metadata file name.
        file: String,
        /// Where it was looked for.
        url: String,
    },
    /// A delegated role the search reached is not listed in snapshot.
    #[error(
        "role '{role}' is delegated by '{delegator}' but snapshot v{snapshot_version} does not list {role}.json; refusing to fetch it"
    )]
    NotInSnapshot {
        /// The delegated role.
        role: String,
        /// Its delegator.
        delegator: String,
        /// The trusted snapshot's version.
        snapshot_version: u64,
    },
    /// An HTTP request failed or was refused.
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong (status, transport error, size limit).
        reason: String,
    },
    /// The agent's HTTP client failed (kept as the agent reports it).
    #[error(transparent)]
    Agent(Box<AgentError>),
    /// A local file operation failed.
    #[error("{path}: {op} failed: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No trusted targets role lists the target.
    #[error(
        "target '{name}' is not listed by any trusted targets role (searched the delegation tree from targets v{targets_version})"
    )]
    TargetNotFound {
        /// The target name.
        name: String,
        /// The top-level targets version searched.
        targets_version: u64,
    },
    /// A downloaded or stored target does not match its signed description.
    #[error("target '{name}' from {url}: {source}")]
    TargetRejected {
        /// The target name.
        name: String,
        /// Where it came from.
        url: String,
        /// Length or hash mismatch, expected vs found.
        #[source]
        source: TufError,
    },
    /// A target name that cannot be stored under the target directory.
    #[error("target name '{name}' cannot be stored: {reason}")]
    BadTargetName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Something needed for the call was not configured.
    #[error("{0}")]
    NotConfigured(&'static str),
    /// The command line could not be understood.
    #[error("{0}\n{USAGE}")]
    Usage(String),
}

impl From<UpdateError> for AgentError {
    fn from(e: UpdateError) -> AgentError {
        match e {
            UpdateError::Agent(inner) => *inner,
            other => AgentError::Tuf(crate::tuf_client::TufClientError::Update(other)),
        }
    }
}

/// The current time read through the C library (`time(2)`), so that time-faking preloads such
/// as libfaketime work; the client keeps no "clock never goes back" state.
pub fn now_from_libc() -> DateTime<Utc> {
    // SAFETY: time(NULL) only returns the current time.
    let secs = unsafe { libc::time(std::ptr::null_mut()) };
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Percent-encodes `name` as Python's `urllib.parse.quote(name, safe="")`: everything but
/// ASCII letters, digits and `_.-~` becomes `%XX` (UTF-8, uppercase hex), `/` included.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The download path of a target: `dir/HASH.basename` (hash prefix on the basename only).
pub fn hash_prefixed_path(name: &str, hash: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{hash}.{base}"),
        None => format!("{hash}.{name}"),
    }
}

fn ensure_trailing_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

fn io_error<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> UpdateError + 'a {
    move |source| UpdateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// How metadata is fetched.
#[derive(Debug, Clone)]
enum Transport {
    /// A plain HTTP client (the command line).
    Plain(reqwest::Client),
    /// The agent's client: every answer capped at [`crate::tuf_client::METADATA_LIMIT`], errors
    /// reported as the agent reports them.
    Agent(ApiClient),
}

impl Transport {
    /// GETs `url`, at most `max_len` bytes; `Ok(None)` when the server answers 404 or 403.
    async fn get(&self, url: &str, max_len: u64) -> Result<Option<Vec<u8>>, UpdateError> {
        match self {
            Transport::Agent(api) => api
                .get_limited(url, crate::tuf_client::METADATA_LIMIT)
                .await
                .map_err(|e| UpdateError::Agent(Box::new(e))),
            Transport::Plain(http) => {
                let http_err = |reason: String| UpdateError::Http {
                    url: url.to_string(),
                    reason,
                };
                let mut resp = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| http_err(format!("request failed: {e}")))?;
                let status = resp.status().as_u16();
                if status == 404 || status == 403 {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    return Err(http_err(format!("answered HTTP {status}")));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| http_err(format!("reading the answer failed: {e}")))?
                {
                    if body.len() as u64 + chunk.len() as u64 > max_len {
                        return Err(http_err(format!(
                            "answer exceeds {max_len} bytes; refusing endless data"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(body))
            }
        }
    }
}

/// A target found by the delegation search.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    /// The target name (path relative to the target base URL).
    pub name: String,
    /// The targets role that lists it.
    pub role: String,
    /// Its signed length, hashes and custom data.
    pub file: TargetFile,
    /// The first hash listed for it (as the metadata lists them): the consistent-snapshot prefix.
    pub prefix_hash: Option<String>,
}

/// One TUF update session: a trusted set started from the stored (or given) root, refreshed
/// once, then used to find and download targets.
#[derive(Debug)]
pub struct Updater {
    transport: Transport,
    metadata_dir: PathBuf,
    metadata_base_url: String,
    target_dir: Option<PathBuf>,
    target_base_url: Option<String>,
    config: UpdaterConfig,
    now: DateTime<Utc>,
    set: TrustedSet,
}

impl Updater {
    /// A session starting from `metadata_dir/root.json`, fetching metadata from
    /// `metadata_base_url` with `http`, judging expiry at `now`.
    pub fn new(
        metadata_dir: &Path,
        metadata_base_url: &str,
        http: reqwest::Client,
        now: DateTime<Utc>,
    ) -> Result<Updater, UpdateError> {
        let path = metadata_dir.join("root.json");
        let root = fs::read(&path).map_err(|e| UpdateError::TrustedRoot {
            path: path.clone(),
            reason: format!("cannot read it ({e}); run `init` with the trusted root first"),
        })?;
        Updater::build(
            Transport::Plain(http),
            metadata_dir,
            metadata_base_url,
            now,
            &root,
            &path,
        )
    }

    /// A session for the agent: starts from `root` (read from `root_path`), fetches with the
    /// agent's HTTP client.
    pub fn for_agent(
        api: &ApiClient,
        metadata_dir: &Path,
        metadata_base_url: &str,
        now: DateTime<Utc>,
        root: &[u8],
        root_path: &Path,
    ) -> Result<Updater, UpdateError> {
        Updater::build(
            Transport::Agent(api.clone()),
            metadata_dir,
            metadata_base_url,
            now,
            root,
            root_path,
        )
    }

    fn build(
        transport: Transport,
        metadata_dir: &Path,
        metadata_base_url: &str,
        now: DateTime<Utc>,
        root: &[u8],
        root_path: &Path,
    ) -> Result<Updater, UpdateError> {
        let set = TrustedSet::new(root).map_err(|e| UpdateError::TrustedRoot {
            path: root_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Updater {
            transport,
            metadata_dir: metadata_dir.to_path_buf(),
            metadata_base_url: ensure_trailing_slash(metadata_base_url),
            target_dir: None,
            target_base_url: None,
            config: UpdaterConfig::default(),
            now,
            set,
        })
    }

    /// Sets where targets are stored and where they are downloaded from.
    pub fn with_targets(mut self, target_dir: &Path, target_base_url: &str) -> Updater {
        self.target_dir = Some(target_dir.to_path_buf());
        self.target_base_url = Some(ensure_trailing_slash(target_base_url));
        self
    }

    /// Replaces the limits.
    pub fn with_config(mut self, config: UpdaterConfig) -> Updater {
        self.config = config;
        self
    }

    /// The verified metadata.
    pub fn trusted_set(&self) -> &TrustedSet {
        &self.set
    }

    /// The verified metadata, ending the session.
    pub fn into_trusted_set(self) -> TrustedSet {
        self.set
    }

    fn stored_path(&self, role: &str) -> PathBuf {
        self.metadata_dir.join(format!("{}.json", quote(role)))
    }

    fn read_stored(&self, role: &str) -> Option<Vec<u8>> {
        fs::read(self.stored_path(role)).ok()
    }

    /// Stores the exact bytes of a verified role as `<role>.json` (temp file, fsync, rename).
    fn persist(&self, role: &str, bytes: &[u8]) -> Result<(), UpdateError> {
        fs::create_dir_all(&self.metadata_dir)
            .map_err(io_error(&self.metadata_dir, "create the metadata directory"))?;
        let path = self.stored_path(role);
        write_atomic(&path, bytes)
    }

    fn remove_stored(&self, role: &str) -> Result<(), UpdateError> {
        let path = self.stored_path(role);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error(&path, "remove the stored metadata")(e))
            }
            _ => Ok(()),
        }
    }

    fn url(&self, file: &str) -> String {
        format!("{}{file}", self.metadata_base_url)
    }

    async fn fetch_required(&self, file: &str, max_len: u64) -> Result<(String, Vec<u8>), UpdateError> {
        let url = self.url(file);
        match self.transport.get(&url, max_len).await? {
            Some(bytes) => Ok((url, bytes)),
            None => Err(UpdateError::Missing {
                file: file.to_string(),
                url,
            }),
        }
    }

    /// Refreshes root, timestamp, snapshot and top-level targets (§5.3–5.6). Every role that
    /// verifies is stored before the next is fetched; a rejected one is not stored.
    pub async fn refresh(&mut self) -> Result<(), UpdateError> {
        self.load_root().await?;
        self.load_timestamp().await?;
        self.load_snapshot().await?;
        self.load_targets(Role::Targets.as_str(), Role::Root.as_str())
            .await
    }

    async fn load_root(&mut self) -> Result<(), UpdateError> {
        let start = self.set.root().clone();
        for _ in 0..self.config.max_root_rotations {
            let file = Role::Root.versioned_file_name(self.set.root_version() + 1);
            let url = self.url(&file);
            let Some(bytes) = self.transport.get(&url, self.config.root_max_length).await? else {
                break;
            };
            self.set
                .update_root(&bytes)
                .map_err(|source| UpdateError::Rejected {
                    file: file.clone(),
                    url: url.clone(),
                    source,
                })?;
            self.persist(Role::Root.as_str(), &bytes)?;
        }
        // §5.3.11: rotated timestamp or snapshot keys make the stored copies useless as
        // rollback references (a fast-forward attack would otherwise lock the client out).
        let end = self.set.root();
        let rotated = |role: &str| {
            let keys = |root: &ferry_artifact::tuf::Root| {
                root.roles.get(role).map(|r| {
                    let mut ids = r.keyids.clone();
                    ids.sort();
                    (ids, r.threshold)
                })
            };
            keys(&start) != keys(end)
        };
        if rotated(Role::Timestamp.as_str()) || rotated(Role::Snapshot.as_str()) {
            self.remove_stored(Role::Timestamp.as_str())?;
            self.remove_stored(Role::Snapshot.as_str())?;
        }
        let root_url = self.url(&Role::Root.file_name());
        self.set
            .check_root_expiry(self.now)
            .map_err(|source| UpdateError::Rejected {
                file: Role::Root.versioned_file_name(self.set.root_version()),
                url: root_url,
                source,
            })
    }

    async fn load_timestamp(&mut self) -> Result<(), UpdateError> {
        if let Some(stored) = self.read_stored(Role::Timestamp.as_str()) {
            // A stored timestamp that does not verify (e.g. after key rotation) is ignored; one
            // that expired stays loaded as the rollback reference.
            let _ = self.set.update_timestamp(&stored, self.now);
        }
        let previous = self.set.timestamp().map(|t| t.version);
        let file = Role::Timestamp.file_name();
        let (url, bytes) = self
            .fetch_required(&file, self.config.timestamp_max_length)
            .await?;
        self.set
            .update_timestamp(&bytes, self.now)
            .map_err(|source| UpdateError::Rejected {
                file: file.clone(),
                url,
                source,
            })?;
        if self.set.timestamp().map(|t| t.version) != previous {
            self.persist(Role::Timestamp.as_str(), &bytes)?;
        }
        Ok(())
    }

    async fn load_snapshot(&mut self) -> Result<(), UpdateError> {
        if let Some(stored) = self.read_stored(Role::Snapshot.as_str())
            && self.set.load_cached_snapshot(&stored, self.now).is_ok()
        {
            return Ok(());
        }
        let meta = self
            .set
            .timestamp()
            .and_then(|t| t.meta.get(&Role::Snapshot.file_name()))
            .cloned()
            .ok_or_else(|| UpdateError::Missing {
                file: "snapshot.json entry of timestamp".into(),
                url: self.url(&Role::Timestamp.file_name()),
            })?;
        let file = if self.set.consistent_snapshot() {
            Role::Snapshot.versioned_file_name(meta.version)
        } else {
            Role::Snapshot.file_name()
        };
        let max = meta.length.unwrap_or(self.config.snapshot_max_length);
        let (url, bytes) = self.fetch_required(&file, max).await?;
        self.set
            .update_snapshot(&bytes, self.now)
            .map_err(|source| UpdateError::Rejected {
                file: file.clone(),
                url,
                source,
            })?;
        self.persist(Role::Snapshot.as_str(), &bytes)
    }

    /// Loads `role` (top-level `targets` with delegator `root`, or a delegated role): the stored
    /// copy if it verifies against the trusted snapshot, else the repository's.
    async fn load_targets(&mut self, role: &str, delegator: &str) -> Result<(), UpdateError> {
        if self.set.is_loaded(role, delegator) {
            return Ok(());
        }
        let top = role == Role::Targets.as_str();
        if let Some(stored) = self.read_stored(role) {
            let ok = if top {
                self.set.update_targets(&stored, self.now)
            } else {
                self.set
                    .update_delegated_targets(&stored, role, delegator, self.now)
            };
            if ok.is_ok() {
                return Ok(());
            }
        }
        let meta = match self.set.snapshot_meta(role) {
            Some(meta) => meta.clone(),
            None => {
                return Err(UpdateError::NotInSnapshot {
                    role: role.to_string(),
                    delegator: delegator.to_string(),
                    snapshot_version: self.set.snapshot().map_or(0, |s| s.version),
                });
            }
        };
        let file = if self.set.consistent_snapshot() {
            format!("{}.{}.json", meta.version, quote(role))
        } else {
            format!("{}.json", quote(role))
        };
        let max = meta.length.unwrap_or(self.config.targets_max_length);
        let (url, bytes) = self.fetch_required(&file, max).await?;
        let verified = if top {
            self.set.update_targets(&bytes, self.now)
        } else {
            self.set
                .update_delegated_targets(&bytes, role, delegator, self.now)
        };
        verified.map_err(|source| UpdateError::Rejected {
            file: file.clone(),
            url,
            source,
        })?;
        self.persist(role, &bytes)
    }

    /// Finds `name` by the pre-order depth-first delegation search, fetching each delegated
    /// role only when the search reaches it. Refreshes first if that was not done yet.
    pub async fn get_targetinfo(&mut self, name: &str) -> Result<Option<TargetInfo>, UpdateError> {
        if self.set.targets().is_none() {
            self.refresh().await?;
        }
        let mut search = TargetSearch::new(name, self.config.max_delegations);
        loop {
            let step = search
                .next(&self.set)
                .map_err(|source| UpdateError::Rejected {
                    file: Role::Targets.file_name(),
                    url: self.url(&Role::Targets.file_name()),
                    source,
                })?;
            match step {
                SearchStep::Found { role, target } => {
                    let prefix_hash = self.set.first_listed_hash(&role, name).map(|(_, h)| h);
                    return Ok(Some(TargetInfo {
                        name: name.to_string(),
                        role,
                        file: target,
                        prefix_hash,
                    }));
                }
                SearchStep::NotFound => return Ok(None),
                SearchStep::Load { role, delegator } => {
                    self.load_targets(&role, &delegator).await?;
                }
            }
        }
    }

    /// Where target `name` is stored: `target_dir/<percent-encoded name>`.
    pub fn target_path(&self, name: &str) -> Result<PathBuf, UpdateError> {
        let dir = self
            .target_dir
            .as_ref()
            .ok_or(UpdateError::NotConfigured("no target directory is set"))?;
        let file = quote(name);
        if file.is_empty() || file == "." || file == ".." {
            return Err(UpdateError::BadTargetName {
                name: name.to_string(),
                reason: "it is empty, '.' or '..'",
            });
        }
        Ok(dir.join(file))
    }

    /// The stored copy of the target if it matches its signed length and hashes.
    pub fn find_cached_target(&self, info: &TargetInfo) -> Result<Option<PathBuf>, UpdateError> {
        let path = self.target_path(&info.name)?;
        let Ok(file) = File::open(&path) else {
            return Ok(None);
        };
        Ok(check_target_reader(&info.name, &info.file, file)
            .is_ok()
            .then_some(path))
    }

    /// The URL target `info` is downloaded from.
    pub fn target_url(&self, info: &TargetInfo) -> Result<String, UpdateError> {
        let base = self
            .target_base_url
            .as_ref()
            .ok_or(UpdateError::NotConfigured("no target base URL is set"))?;
        let path = match (&info.prefix_hash, self.set.consistent_snapshot()) {
            (Some(hash), true) if self.config.prefix_targets_with_hash => {
                hash_prefixed_path(&info.name, hash)
            }
            _ => info.name.clone(),
        };
        Ok(format!("{base}{path}"))
    }

    /// Downloads target `info`, checks its length and every listed hash, and renames it into
    /// `target_dir/<percent-encoded name>`. The partial file lives in a hidden directory beside
    /// the target directory, never inside it.
    pub async fn download_target(&self, info: &TargetInfo) -> Result<PathBuf, UpdateError> {
        let dest = self.target_path(&info.name)?;
        let url = self.target_url(info)?;
        let Transport::Plain(http) = &self.transport else {
            return Err(UpdateError::NotConfigured(
                "the agent downloads targets with its segmented downloader",
            ));
        };
        let target_dir = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
        fs::create_dir_all(&target_dir)
            .map_err(io_error(&target_dir, "create the target directory"))?;
        let staging = staging_dir(&target_dir);
        fs::create_dir_all(&staging).map_err(io_error(&staging, "create the staging directory"))?;
        let temp = staging.join(format!(
            "{}.{}.{}.partial",
            quote(&info.name),
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = self
            .download_into(http, &url, info, &temp, &dest)
            .await;
        let _ = fs::remove_file(&temp);
        let _ = fs::remove_dir(&staging);
        result.map(|()| dest)
    }

    async fn download_into(
        &self,
        http: &reqwest::Client,
        url: &str,
        info: &TargetInfo,
        temp: &Path,
        dest: &Path,
    ) -> Result<(), UpdateError> {
        let http_err = |reason: String| UpdateError::Http {
            url: url.to_string(),
            reason,
        };
        let mut resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| http_err(format!("request failed: {e}")))?;
        if !resp.status().is_success() {
            return Err(http_err(format!("answered HTTP {}", resp.status().as_u16())));
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
            .map_err(io_error(temp, "create the partial target"))?;
        let mut written: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| http_err(format!("reading the answer failed: {e}")))?
        {
            written += chunk.len() as u64;
            if written > info.file.length {
                return Err(UpdateError::TargetRejected {
                    name: info.name.clone(),
                    url: url.to_string(),
                    source: TufError::LengthMismatch {
                        what: format!("target {}", info.name),
                        expected: info.file.length,
                        found: written,
                    },
                });
            }
            file.write_all(&chunk)
                .map_err(io_error(temp, "write the partial target"))?;
        }
        file.sync_all().map_err(io_error(temp, "fsync the partial target"))?;
        drop(file);
        let reader = File::open(temp).map_err(io_error(temp, "reopen the partial target"))?;
        check_target_reader(&info.name, &info.file, reader).map_err(|source| {
            UpdateError::TargetRejected {
                name: info.name.clone(),
                url: url.to_string(),
                source,
            }
        })?;
        fs::rename(temp, dest).map_err(io_error(dest, "rename the target into place"))?;
        if let Some(dir) = dest.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// The hidden directory beside `target_dir` where partial downloads are written.
fn staging_dir(target_dir: &Path) -> PathBuf {
    let name = target_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "targets".into());
    let parent = match target_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.ferry-partial"))
}

/// Writes `bytes` to `path` via a hidden temp file (not named `*.json`), fsync, rename, fsync dir.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io_error(&temp, "create the temporary metadata file"))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temp, "write the temporary metadata file"));
    drop(file);
    if let Err(e) = written.and_then(|()| {
        fs::rename(&temp, path).map_err(io_error(path, "rename the metadata file into place"))
    }) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Usage of the `ferry tuf-client` command line.
pub const USAGE: &str = "usage:
  ferry tuf-client --metadata-dir MD init TRUSTED_ROOT
  ferry tuf-client --metadata-url MU --metadata-dir MD refresh
  ferry tuf-client --metadata-url MU --metadata-dir MD --target-name T [--target-name T2 ...] \\
                   --target-dir TD --target-base-url TU download";

/// A parsed `ferry tuf-client` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliCommand {
    /// Store the trusted root as `MD/root.json` (no network).
    Init {
        /// The metadata directory.
        metadata_dir: PathBuf,
        /// The trusted root file.
        trusted_root: PathBuf,
    },
    /// Refresh the top-level metadata.
    Refresh {
        /// The metadata directory.
        metadata_dir: PathBuf,
        /// The metadata base URL.
        metadata_url: String,
    },
    /// Refresh, then download each target (unless a matching copy is stored).
    Download {
        /// The metadata directory.
        metadata_dir: PathBuf,
        /// The metadata base URL.
        metadata_url: String,
        /// Target names, in order.
        target_names: Vec<String>,
        /// The target directory.
        target_dir: PathBuf,
        /// The target base URL.
        target_base_url: String,
    },
}

/// Parses the arguments after `tuf-client`: options (`--opt VALUE` or `--opt=VALUE`) in any
/// order, then the command and its argument.
pub fn parse_cli(args: &[String]) -> Result<CliCommand, UpdateError> {
    let usage = |m: String| UpdateError::Usage(m);
    let (mut md, mut mu, mut td, mut tu) = (None, None, None, None);
    let mut names = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            let (flag, value) = match flag.split_once('=') {
                Some((f, v)) => (f, v.to_string()),
                None => {
                    let value = it
                        .next()
                        .ok_or_else(|| usage(format!("--{flag} needs a value")))?;
                    (flag, value.clone())
                }
            };
            let slot = match flag {
                "metadata-dir" => &mut md,
                "metadata-url" => &mut mu,
                "target-dir" => &mut td,
                "target-base-url" => &mut tu,
                "target-name" => {
                    names.push(value);
                    continue;
                }
                other => return Err(usage(format!("unknown option --{other}"))),
            };
            if slot.replace(value).is_some() {
                return Err(usage(format!("--{flag} given twice")));
            }
        } else {
            positional.push(arg.clone());
        }
    }
    let need = |v: Option<String>, flag: &str| v.ok_or_else(|| usage(format!("{flag} is required")));
    match positional.first().map(String::as_str) {
        Some("init") => {
            let [_, root] = positional.as_slice() else {
                return Err(usage("init takes exactly one argument, TRUSTED_ROOT".into()));
            };
            Ok(CliCommand::Init {
                metadata_dir: need(md, "--metadata-dir")?.into(),
                trusted_root: root.into(),
            })
        }
        Some("refresh") if positional.len() == 1 => Ok(CliCommand::Refresh {
            metadata_dir: need(md, "--metadata-dir")?.into(),
            metadata_url: need(mu, "--metadata-url")?,
        }),
        Some("download") if positional.len() == 1 => {
            if names.is_empty() {
                return Err(usage("download needs at least one --target-name".into()));
            }
            Ok(CliCommand::Download {
                metadata_dir: need(md, "--metadata-dir")?.into(),
                metadata_url: need(mu, "--metadata-url")?,
                target_names: names,
                target_dir: need(td, "--target-dir")?.into(),
                target_base_url: need(tu, "--target-base-url")?,
            })
        }
        Some(cmd @ ("refresh" | "download")) => {
            Err(usage(format!("{cmd} takes no arguments")))
        }
        Some(other) => Err(usage(format!("unknown command '{other}'"))),
        None => Err(usage("no command given (init, refresh or download)".into())),
    }
}

/// Runs a parsed command at time `now`.
pub async fn run_cli(cmd: CliCommand, now: DateTime<Utc>) -> Result<(), UpdateError> {
    let http = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(30))
            .user_agent(concat!("ferry-tuf-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpdateError::Http {
                url: String::new(),
                reason: format!("building the HTTP client: {e}"),
            })
    };
    match cmd {
        CliCommand::Init {
            metadata_dir,
            trusted_root,
        } => {
            let bytes = fs::read(&trusted_root).map_err(|e| UpdateError::TrustedRoot {
                path: trusted_root.clone(),
                reason: format!("cannot read it: {e}"),
            })?;
            TrustedSet::new(&bytes).map_err(|e| UpdateError::TrustedRoot {
                path: trusted_root.clone(),
                reason: e.to_string(),
            })?;
            fs::create_dir_all(&metadata_dir)
                .map_err(io_error(&metadata_dir, "create the metadata directory"))?;
            write_atomic(&metadata_dir.join("root.json"), &bytes)
        }
        CliCommand::Refresh {
            metadata_dir,
            metadata_url,
        } => {
            let mut updater = Updater::new(&metadata_dir, &metadata_url, http()?, now)?;
            updater.refresh().await
        }
        CliCommand::Download {
            metadata_dir,
            metadata_url,
            target_names,
            target_dir,
            target_base_url,
        } => {
            let mut updater = Updater::new(&metadata_dir, &metadata_url, http()?, now)?
                .with_targets(&target_dir, &target_base_url);
            updater.refresh().await?;
            for name in &target_names {
                let info = updater.get_targetinfo(name).await?.ok_or_else(|| {
                    UpdateError::TargetNotFound {
                        name: name.clone(),
                        targets_version: updater.trusted_set().targets().map_or(0, |t| t.version),
                    }
                })?;
                if updater.find_cached_target(&info)?.is_some() {
                    continue;
                }
                updater.download_target(&info).await?;
            }
            Ok(())
        }
    }
}

/// `ferry tuf-client ARGS…` (`argv` without the program and subcommand names): 0 on success,
/// exactly 1 on any failure, usage errors and panics included. Time is read with
/// [`now_from_libc`]; the error is printed on stderr.
pub fn cli_main(argv: Vec<String>) -> i32 {
    let outcome = std::panic::catch_unwind(move || -> Result<(), UpdateError> {
        let cmd = parse_cli(&argv)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| UpdateError::Io {
                path: PathBuf::new(),
                op: "start the async runtime",
                source: e,
            })?;
        runtime.block_on(run_cli(cmd, now_from_libc()))
    });
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(_) => {
            eprintln!("error: the TUF client failed unexpectedly (panic)");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn quote_matches_python_urllib_quote_with_no_safe_characters() {
        assert_eq!(quote("a/b c.json"), "a%2Fb%20c.json");
        assert_eq!(quote("role-1_x~.y"), "role-1_x~.y");
        assert_eq!(quote("é%"), "%C3%A9%25");
    }

    #[test]
    fn hash_prefix_goes_on_the_basename_only() {
        assert_eq!(hash_prefixed_path("a/b/c.txt", "ff"), "a/b/ff.c.txt");
        assert_eq!(hash_prefixed_path("c.txt", "ff"), "ff.c.txt");
    }

    #[test]
    fn options_come_in_any_order_before_the_command() {
        let cmd = parse_cli(&args(
            "--target-dir td --metadata-url http://h/m --target-name a --metadata-dir md \
             --target-base-url http://h/t --target-name b/c download",
        ))
        .unwrap();
        assert_eq!(
            cmd,
            CliCommand::Download {
                metadata_dir: "md".into(),
                metadata_url: "http://h/m".into(),
                target_names: vec!["a".into(), "b/c".into()],
                target_dir: "td".into(),
                target_base_url: "http://h/t".into(),
            }
        );
        assert_eq!(
            parse_cli(&args("--metadata-dir=md init root.json")).unwrap(),
            CliCommand::Init {
                metadata_dir: "md".into(),
                trusted_root: "root.json".into()
            }
        );
    }

    #[test]
    fn usage_errors_are_errors_not_exits() {
        for bad in [
            "",
            "refresh",
            "--metadata-dir md refresh",
            "--metadata-dir md init",
            "--metadata-dir md init a b",
            "--bogus x --metadata-dir md init r",
            "--metadata-dir md --metadata-dir md2 init r",
            "--metadata-dir md --metadata-url u download",
            "--metadata-dir md frobnicate",
            "--metadata-dir",
        ] {
            assert!(
                matches!(parse_cli(&args(bad)), Err(UpdateError::Usage(_))),
                "{bad:?} parsed"
            );
            assert_eq!(cli_main(args(bad)), 1, "{bad:?}");
        }
    }

    #[test]
    fn the_libc_clock_is_the_system_clock() {
        let libc_now = now_from_libc();
        let std_now = Utc::now();
        assert!((std_now - libc_now).num_seconds().abs() <= 2);
    }
}
