//! Storage spaces: each component lives in its own directory with `releases/<version>/`
//! and a `current` symlink that is switched atomically.
//!
//! ```text
//! <dir>/releases/1.0.0/            an installed release (with .ferry-manifest.json)
//! <dir>/releases/1.1.0.staging/    being unpacked; never active
//! <dir>/current -> releases/1.0.0  the active release
//! ```

use crate::error::{AgentError, io_err};
use crate::state::{ensure_dir, fsync_dir, fsync_tree, remove_dir_if_exists, remove_if_exists};
use ferry_artifact::keys::PublicKey;
use ferry_core::{Component, Version};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Name of the manifest `unpack_verified` writes into every release directory.
pub const MANIFEST_FILE: &str = ".ferry-manifest.json";

/// What the agent reads back from an installed release's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledManifest {
    /// Component the release belongs to.
    pub component: Component,
    /// Its version.
    pub version: Version,
    /// The files it installed.
    #[serde(default)]
    pub payloads: Vec<InstalledPayload>,
    /// Scripts to run around the switch.
    #[serde(default)]
    pub hooks: InstalledHooks,
}

/// Install hooks of a release: payload paths of executables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InstalledHooks {
    /// Run in the new release's directory before switching to it; failing aborts the update.
    pub pre_install: Option<String>,
    /// Main program only: run in the new release's directory right after switching, before
    /// starting it; failing rolls back.
    pub post_install: Option<String>,
}

/// One installed file as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledPayload {
    /// Path relative to the release directory.
    pub path: String,
    /// sha256 (hex).
    pub sha256: String,
    /// Length in bytes.
    pub length: u64,
}

/// One component's storage space.
#[derive(Debug, Clone)]
pub struct Slot {
    component: Component,
    root: PathBuf,
}

impl Slot {
    /// The storage space of `component` rooted at `root` (created if needed).
    pub fn open(component: Component, root: &Path) -> Result<Slot, AgentError> {
        let slot = Slot {
            component,
            root: root.to_path_buf(),
        };
        ensure_dir(&slot.releases_dir())?;
        Ok(slot)
    }

    /// The component this space holds.
    pub fn component(&self) -> Component {
        self.component
    }
    /// The space's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `<dir>/releases`.
    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }
    /// `<dir>/releases/<version>`.
    pub fn release_dir(&self, v: &Version) -> PathBuf {
        self.releases_dir().join(v.to_string())
    }
    /// `<dir>/releases/<version>.staging`.
    pub fn staging_dir(&self, v: &Version) -> PathBuf {
        self.releases_dir().join(format!("{v}.staging"))
    }
    /// `<dir>/current`.
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    fn bad(&self, reason: String) -> AgentError {
        AgentError::Slot {
            dir: self.root.clone(),
            reason,
        }
    }

    /// The version `current` points at, if any; checks it against the release's manifest.
    pub fn current_version(&self) -> Result<Option<Version>, AgentError> {
        let link = self.current_link();
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&link, "read symlink", e)),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let linked: Version = name.parse().map_err(|e| {
            self.bad(format!(
                "`current` points at {} which is not a release directory ({e}); re-run bootstrap",
                target.display()
            ))
        })?;
        let manifest = self.manifest(&linked)?;
        if manifest.version != linked || manifest.component != self.component {
            return Err(self.bad(format!(
                "releases/{linked} holds {} {} according to its manifest; expected {} {linked}",
                manifest.component, manifest.version, self.component
            )));
        }
        Ok(Some(linked))
    }

    /// Reads `releases/<v>/.ferry-manifest.json`.
    pub fn manifest(&self, v: &Version) -> Result<InstalledManifest, AgentError> {
        let path = self.release_dir(v).join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|e| io_err(&path, "read release manifest", e))?;
        serde_json::from_slice(&bytes).map_err(|e| AgentError::CorruptState {
            path,
            reason: e.to_string(),
        })
    }

    /// Checks every file of `releases/<v>` against the lengths and hashes its manifest lists.
    pub fn verify_release(&self, v: &Version) -> Result<(), AgentError> {
        let dir = self.release_dir(v);
        let manifest = self.manifest(v)?;
        if manifest.version != *v || manifest.component != self.component {
            return Err(self.bad(format!(
                "releases/{v} holds {} {} according to its manifest",
                manifest.component, manifest.version
            )));
        }
        for p in &manifest.payloads {
            let path = dir.join(&p.path);
            let (len, hash) = hash_file(&path)?;
            if len != p.length || hash != p.sha256 {
                return Err(self.bad(format!(
                    "{}: expected {} bytes with sha256 {}, found {len} bytes with sha256 {hash} (the installed release was modified or damaged)",
                    path.display(),
                    p.length,
                    p.sha256
                )));
            }
        }
        Ok(())
    }

    /// Unpacks a signed artifact into `releases/<v>` via `releases/<v>.staging`, durably.
    ///
    /// Nothing is replaced until the artifact unpacked and verified completely; then a
    /// leftover release directory of the same version (from an interrupted attempt) is replaced.
    pub fn install(
        &self,
        artifact: &Path,
        keys: &[PublicKey],
        v: &Version,
    ) -> Result<(), AgentError> {
        let staging = self.staging_dir(v);
        remove_dir_if_exists(&staging)?;
        let manifest = ferry_artifact::artifact::unpack_verified(artifact, keys, &staging)
            .map_err(|e| AgentError::Artifact {
                path: artifact.to_path_buf(),
                reason: e.to_string(),
            })?;
        if manifest.component != self.component || manifest.version != *v {
            let _ = remove_dir_if_exists(&staging);
            return Err(AgentError::Artifact {
                path: artifact.to_path_buf(),
                reason: format!(
                    "holds {} {}, expected {} {v}",
                    manifest.component, manifest.version, self.component
                ),
            });
        }
        fsync_tree(&staging)?;
        let dest = self.release_dir(v);
        remove_dir_if_exists(&dest)?;
        fs::rename(&staging, &dest).map_err(|e| io_err(&dest, "rename staging into place", e))?;
        fsync_dir(&self.releases_dir())
    }

    /// Atomically points `current` at `releases/<v>` (which must exist).
    pub fn switch_to(&self, v: &Version) -> Result<(), AgentError> {
        let dir = self.release_dir(v);
        if !dir.is_dir() {
            return Err(self.bad(format!(
                "cannot switch to {v}: {} does not exist",
                dir.display()
            )));
        }
        let tmp = self.root.join("current.new");
        remove_if_exists(&tmp)?;
        std::os::unix::fs::symlink(Path::new("releases").join(v.to_string()), &tmp)
            .map_err(|e| io_err(&tmp, "create symlink", e))?;
        let link = self.current_link();
        fs::rename(&tmp, &link).map_err(|e| io_err(&link, "replace symlink", e))?;
        fsync_dir(&self.root)
    }

    /// Removes `current` (nothing active: used when rolling back a first install).
    pub fn clear_current(&self) -> Result<(), AgentError> {
        remove_if_exists(&self.current_link())?;
        fsync_dir(&self.root)
    }

    /// The directory commands run in: the active release, or the space's root when none is active.
    pub fn working_dir(&self) -> PathBuf {
        let link = self.current_link();
        if link.is_dir() {
            link
        } else {
            self.root.clone()
        }
    }

    /// Deletes release directories and leftovers except the versions in `keep`.
    pub fn prune(&self, keep: &[&Version]) -> Result<(), AgentError> {
        let dir = self.releases_dir();
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, "list", e))? {
            let entry = entry.map_err(|e| io_err(&dir, "list", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kept = keep.iter().any(|v| v.to_string() == name);
            if !kept {
                remove_dir_if_exists(&entry.path())?;
            }
        }
        fsync_dir(&dir)
    }
}

/// Length and sha256 (hex) of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String), AgentError> {
    let mut f = fs::File::open(path).map_err(|e| io_err(path, "open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_release(slot: &Slot, v: &str, body: &[u8]) {
        let dir = slot.release_dir(&v.parse().unwrap());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("app"), body).unwrap();
        let manifest = serde_json::json!({
            "format": "ferry-artifact/1", "component": "main", "version": v, "device_types": [],
            "payloads": [{"path": "app", "sha256": hex::encode(Sha256::digest(body)), "length": body.len(), "mode": 0o755}],
        });
        fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn switching_moves_current_atomically_and_reads_back_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(Component::Main, dir.path()).unwrap();
        assert_eq!(slot.current_version().unwrap(), None);
        fake_release(&slot, "1.0.0", b"one");
        fake_release(&slot, "1.1.0", b"two");
        slot.switch_to(&"1.0.0".parse().unwrap()).unwrap();
        assert_eq!(
            slot.current_version().unwrap(),
            Some("1.0.0".parse().unwrap())
        );
        slot.switch_to(&"1.1.0".parse().unwrap()).unwrap();
        assert_eq!(fs::read(slot.current_link().join("app")).unwrap(), b"two");
        assert_eq!(
            fs::read_link(slot.current_link()).unwrap(),
            Path::new("releases/1.1.0")
        );
        assert!(!dir.path().join("current.new").exists());
    }

    #[test]
    fn cannot_switch_to_a_missing_release() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(Component::Main, dir.path()).unwrap();
        let err = slot
            .switch_to(&"9.9.9".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("9.9.9"), "{err}");
    }

    #[test]
    fn verify_release_names_the_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(Component::Main, dir.path()).unwrap();
        fake_release(&slot, "1.0.0", b"original");
        let v: Version = "1.0.0".parse().unwrap();
        slot.verify_release(&v).unwrap();
        fs::write(slot.release_dir(&v).join("app"), b"tampered").unwrap();
        let err = slot.verify_release(&v).unwrap_err().to_string();
        assert!(
            err.contains("app") && err.contains("expected 8 bytes"),
            "{err}"
        );
    }

    #[test]
    fn current_pointing_at_a_mislabelled_release_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(Component::Main, dir.path()).unwrap();
        fake_release(&slot, "1.0.0", b"x");
        fs::rename(
            slot.release_dir(&"1.0.0".parse().unwrap()),
            slot.releases_dir().join("2.0.0"),
        )
        .unwrap();
        std::os::unix::fs::symlink("releases/2.0.0", slot.current_link()).unwrap();
        assert!(slot.current_version().is_err());
    }

    #[test]
    fn prune_keeps_only_the_listed_versions() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(Component::Main, dir.path()).unwrap();
        for v in ["1.0.0", "1.1.0", "1.2.0"] {
            fake_release(&slot, v, v.as_bytes());
        }
        fs::create_dir_all(slot.releases_dir().join("1.3.0.staging")).unwrap();
        let (a, b): (Version, Version) = ("1.1.0".parse().unwrap(), "1.2.0".parse().unwrap());
        slot.prune(&[&a, &b]).unwrap();
        let mut left: Vec<_> = fs::read_dir(slot.releases_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["1.1.0", "1.2.0"]);
    }
}
