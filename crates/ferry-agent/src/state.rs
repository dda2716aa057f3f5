//! Crash-safe persistence: atomic file writes and the agent's state files.
//!
//! Every state file is replaced atomically (write a temporary file, fsync it, rename it over
//! the old one, fsync the directory), so after a power cut a reader finds either the old or
//! the new content, never a mix.

use crate::error::{AgentError, io_err};
use ferry_core::install::InstallState;
use ferry_core::{Component, DeviceId, Version};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically and durably; `mode` sets the file's permissions (e.g. `0o600`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, "write", e))?;
    f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err(path, "rename into place", e))?;
    fsync_dir(&dir)
}

/// Flushes a directory's entries (renames, creations, removals) to disk.
pub fn fsync_dir(dir: &Path) -> Result<(), AgentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "fsync directory", e))
}

/// Flushes every regular file and directory under `root` to disk (after unpacking a release).
pub fn fsync_tree(root: &Path) -> Result<(), AgentError> {
    let meta = fs::symlink_metadata(root).map_err(|e| io_err(root, "stat", e))?;
    if meta.is_dir() {
        for entry in fs::read_dir(root).map_err(|e| io_err(root, "list", e))? {
            let entry = entry.map_err(|e| io_err(root, "list", e))?;
            fsync_tree(&entry.path())?;
        }
        fsync_dir(root)
    } else if meta.is_file() {
        File::open(root)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(root, "fsync", e))
    } else {
        Ok(())
    }
}

/// Creates `dir` (and parents) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), AgentError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", e))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `value` as pretty JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T, mode: u32) -> Result<(), AgentError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| AgentError::CorruptState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes, mode)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, AgentError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AgentError::CorruptState {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "read", e)),
    }
}

/// The per-device credential obtained at enrollment (`state_dir/device.json`, mode 0600).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCredentials {
    /// The device it was issued to.
    pub device_id: DeviceId,
    /// Bearer token for device API calls.
    pub device_token: String,
}

/// A release that failed its health check on this device; not tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownBad {
    /// Component.
    pub component: Component,
    /// Version.
    pub version: Version,
    /// TUF target name.
    pub target_name: String,
    /// Why it was rolled back.
    pub why: String,
}

/// The agent's state directory and the files in it.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) the state directory and its subdirectories.
    pub fn open(dir: &Path) -> Result<StateStore, AgentError> {
        let store = StateStore {
            dir: dir.to_path_buf(),
        };
        for d in [
            store.dir.clone(),
            store.downloads_dir(),
            store.backups_dir(),
            store.tuf_dir(),
        ] {
            ensure_dir(&d)?;
        }
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Where partial and verified downloads live.
    pub fn downloads_dir(&self) -> PathBuf {
        self.dir.join("downloads")
    }
    /// Where local backups live.
    pub fn backups_dir(&self) -> PathBuf {
        self.dir.join("backups")
    }
    /// Where verified TUF metadata lives.
    pub fn tuf_dir(&self) -> PathBuf {
        self.dir.join("tuf")
    }
    /// The persisted install state.
    pub fn install_path(&self) -> PathBuf {
        self.dir.join("install.json")
    }
    /// The device credential.
    pub fn device_path(&self) -> PathBuf {
        self.dir.join("device.json")
    }
    /// Releases that rolled back here.
    pub fn known_bad_path(&self) -> PathBuf {
        self.dir.join("known-bad.json")
    }
    /// Log lines of the current attempt (sent as the report's log tail).
    pub fn attempt_log_path(&self) -> PathBuf {
        self.dir.join("attempt.log")
    }
    /// Output of the main program's start command.
    pub fn main_log_path(&self) -> PathBuf {
        self.dir.join("main.log")
    }

    /// The persisted install state (`Idle` when none was ever written).
    pub fn load_install(&self) -> Result<InstallState, AgentError> {
        Ok(read_json(&self.install_path())?.unwrap_or(InstallState::Idle))
    }

    /// Persists the install state atomically.
    pub fn save_install(&self, state: &InstallState) -> Result<(), AgentError> {
        write_json(&self.install_path(), state, 0o600)
    }

    /// The device credential, if enrolled.
    pub fn load_credentials(&self) -> Result<Option<DeviceCredentials>, AgentError> {
        read_json(&self.device_path())
    }

    /// Persists the device credential (mode 0600).
    pub fn save_credentials(&self, creds: &DeviceCredentials) -> Result<(), AgentError> {
        write_json(&self.device_path(), creds, 0o600)
    }

    /// Forgets the device credential (it was refused; enroll again).
    pub fn clear_credentials(&self) -> Result<(), AgentError> {
        remove_if_exists(&self.device_path())
    }

    /// Releases that rolled back on this device.
    pub fn known_bad(&self) -> Result<Vec<KnownBad>, AgentError> {
        Ok(read_json(&self.known_bad_path())?.unwrap_or_default())
    }

    /// Remembers a release that rolled back (keeps the 32 most recent).
    pub fn add_known_bad(&self, bad: KnownBad) -> Result<(), AgentError> {
        let mut all = self.known_bad()?;
        all.retain(|b| {
            !(b.component == bad.component
                && b.version == bad.version
                && b.target_name == bad.target_name)
        });
        all.push(bad);
        let skip = all.len().saturating_sub(32);
        write_json(&self.known_bad_path(), &all[skip..].to_vec(), 0o600)
    }

    /// Appends a line to the attempt log.
    pub fn log(&self, line: &str) {
        tracing::info!("{line}");
        let path = self.attempt_log_path();
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
        {
            let _ = writeln!(f, "{stamp} {line}");
        }
    }

    /// The last `n` lines of the attempt log.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = fs::read_to_string(self.attempt_log_path()).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let skip = lines.len().saturating_sub(n);
        lines[skip..].to_vec()
    }

    /// Starts a fresh attempt log.
    pub fn clear_log(&self) -> Result<(), AgentError> {
        remove_if_exists(&self.attempt_log_path())
    }
}

/// Removes a file, ignoring "not found".
pub fn remove_if_exists(path: &Path) -> Result<(), AgentError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove", e)),
    }
}

/// Removes a directory tree, ignoring "not found".
pub fn remove_dir_if_exists(path: &Path) -> Result<(), AgentError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove directory", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::install::{Event, Pending};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one", 0o644).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn atomic_write_survives_a_stale_temp_file_from_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("install.json");
        fs::write(dir.path().join(".install.json.tmp"), b"half-writ").unwrap();
        write_atomic(&p, b"{}", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
    }

    #[test]
    fn credentials_are_private_to_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .save_credentials(&DeviceCredentials {
                device_id: DeviceId::new("d1").unwrap(),
                device_token: "t".into(),
            })
            .unwrap();
        let mode = fs::metadata(store.device_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load_credentials().unwrap().unwrap().device_token, "t");
    }

    #[test]
    fn install_state_round_trips_and_defaults_to_idle() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load_install().unwrap(), InstallState::Idle);
        let pending = Pending {
            component: Component::Main,
            from_version: Version::new(1, 0, 0),
            to_version: Version::new(1, 1, 0),
            target_name: "main/1.1.0.ferry".into(),
            bytes_downloaded: 0,
            delta_from: None,
        };
        let s = InstallState::Idle.next(Event::Begin(pending)).unwrap();
        store.save_install(&s).unwrap();
        assert_eq!(store.load_install().unwrap(), s);
    }

    #[test]
    fn corrupt_state_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(store.install_path(), b"{not json").unwrap();
        let err = store.load_install().unwrap_err().to_string();
        assert!(err.contains("install.json"), "{err}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for i in 0..10 {
            store.log(&format!("line {i}"));
        }
        let tail = store.log_tail(3);
        assert_eq!(tail.len(), 3);
        assert!(tail[2].ends_with("line 9"));
    }
}
