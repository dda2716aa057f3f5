//! The agent's errors: each names the device, component, version or file involved,
//! what was expected and what was found, and what to do.

use crate::config::ConfigError;
use crate::download::DownloadError;
use crate::tuf_client::TufClientError;
use ferry_core::install::IllegalStep;
use ferry_core::{Component, Version};
use std::path::{Path, PathBuf};

/// Everything that can stop the agent or an update attempt.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file operation failed.
    #[error("{path}: {op} failed: {source} (check free space and that the agent may write there)")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the agent was doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds something the agent cannot read.
    #[error("state file {path} is corrupt: {reason} (move it aside to let the agent start over)")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// A trusted release key could not be loaded.
    #[error("release key {path}: {reason} (fix `release_keys` in the agent config)")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// The server could not be reached or answered nonsense.
    #[error("device {device}: {url}: {reason}")]
    Http {
        /// This device.
        device: String,
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("device {device}: {url} answered HTTP {status}: {body}")]
    Status {
        /// This device.
        device: String,
        /// The URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The server's error message.
        body: String,
    },
    /// The install state machine refused a step (a bug or a tampered state file).
    #[error(transparent)]
    Illegal(#[from] IllegalStep),
    /// The progress callback asked to stop; the download resumes from the bytes on disk next run.
    #[error(
        "device {device}: download of {component} {version} stopped by the caller at {done} of {total} bytes; the next run resumes from there"
    )]
    Interrupted {
        /// This device.
        device: String,
        /// Component being downloaded.
        component: Component,
        /// Version being downloaded.
        version: Version,
        /// Bytes safely on disk.
        done: u64,
        /// Total length.
        total: u64,
    },
    /// The state observer stopped the run right after this state was persisted.
    #[error(
        "run stopped by the caller right after install state `{state}` was persisted; the next run carries on from there"
    )]
    Stopped {
        /// Name of the state persisted last.
        state: &'static str,
    },
    /// TUF metadata could not be fetched or verified.
    #[error(transparent)]
    Tuf(#[from] TufClientError),
    /// The artifact could not be downloaded or did not match its signed metadata.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The artifact was refused (bad signature, unknown key, corrupt payload, wrong component or version).
    #[error("artifact {path}: {reason}")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// An update was refused before anything was fetched.
    #[error("device {device}: refusing {component} {version}: {reason}")]
    Refused {
        /// This device.
        device: String,
        /// Component offered.
        component: Component,
        /// Version offered.
        version: Version,
        /// Why.
        reason: String,
    },
    /// The release's signed go-live time has not come yet by this device's clock.
    #[error(
        "device {device}: not installing {component} {version} yet: its signed go-live time is {go_live} (Unix ms), this device's clock says {now}"
    )]
    NotLiveYet {
        /// This device.
        device: String,
        /// Component offered.
        component: Component,
        /// Version offered.
        version: Version,
        /// Signed go-live (Unix ms).
        go_live: u64,
        /// The device's clock (Unix ms).
        now: u64,
    },
    /// The secure preflight could not run or refused the release.
    #[error("preflight of {component} {version}: {reason}")]
    Preflight {
        /// Component.
        component: Component,
        /// Version.
        version: Version,
        /// What failed and what to do.
        reason: String,
    },
    /// A storage space is not in the expected layout.
    #[error("storage space {dir}: {reason}")]
    Slot {
        /// The component's directory.
        dir: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A delta does not fit the installed files (a file changed on the device, say); nothing
    /// was written and the full package is requested instead.
    #[error(
        "device {device}: delta {component} {from} -> {to} does not fit the installed release: {}; nothing was written, the full package is requested",
        describe_mismatches(files)
    )]
    DeltaMismatch {
        /// This device.
        device: String,
        /// Component.
        component: Component,
        /// Installed version the delta was built from.
        from: Version,
        /// Version the delta produces.
        to: Version,
        /// Each file whose content is not what the delta expects.
        files: Vec<ferry_core::api::FileMismatch>,
    },
    /// The new version did not become healthy.
    #[error("{component} {version} is unhealthy: {reason}")]
    Unhealthy {
        /// Component.
        component: Component,
        /// Version.
        version: Version,
        /// The health check's outcome and output.
        reason: String,
    },
    /// Another install is in progress; finish it first.
    #[error(
        "{component}: an update to {version} is in progress (state {state}); run `ferry agent --once` to finish it first"
    )]
    Busy {
        /// Component of the update in progress.
        component: Component,
        /// Its target version.
        version: Version,
        /// Its state name.
        state: &'static str,
    },
    /// The new agent binary could not be started.
    #[error("self-update: cannot exec {path}: {source}")]
    Exec {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for an [`AgentError::Io`].
pub fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> AgentError {
    AgentError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Result with [`AgentError`].
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// `path (expected X, found Y); …` for a list of mismatched files.
pub fn describe_mismatches(files: &[ferry_core::api::FileMismatch]) -> String {
    files
        .iter()
        .map(|m| format!("{} (expected sha256 {}, found {})", m.path, m.expected, m.found))
        .collect::<Vec<_>>()
        .join("; ")
}
