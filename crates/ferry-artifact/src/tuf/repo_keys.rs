//! The four repository signing keys and their key directory.

use super::role::Role;
use crate::keys::{KeyError, SigningKey};
use std::path::Path;

/// One signing key per top-level role (threshold 1 each).
#[derive(Debug, Clone)]
pub struct RepoKeys {
    /// Signs root metadata.
    pub root: SigningKey,
    /// Signs targets metadata.
    pub targets: SigningKey,
    /// Signs snapshot metadata.
    pub snapshot: SigningKey,
    /// Signs timestamp metadata.
    pub timestamp: SigningKey,
}

impl RepoKeys {
    /// Four new random keys.
    pub fn generate() -> RepoKeys {
        RepoKeys {
            root: SigningKey::generate(),
            targets: SigningKey::generate(),
            snapshot: SigningKey::generate(),
            timestamp: SigningKey::generate(),
        }
    }

    /// The key of `role`.
    pub fn key(&self, role: Role) -> &SigningKey {
        match role {
            Role::Root => &self.root,
            Role::Targets => &self.targets,
            Role::Snapshot => &self.snapshot,
            Role::Timestamp => &self.timestamp,
        }
    }

    fn file(dir: &Path, role: Role) -> std::path::PathBuf {
        dir.join(format!("{}.key", role.as_str()))
    }

    /// Writes `root.key`, `targets.key`, `snapshot.key` and `timestamp.key` (mode 0600) into
    /// `dir`, creating it if needed.
    pub fn save_dir(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            action: "create the keys directory",
            source,
        })?;
        for role in Role::ALL {
            self.key(role).save(&Self::file(dir, role))?;
        }
        Ok(())
    }

    /// Reads the four key files written by [`RepoKeys::save_dir`].
    pub fn load_dir(dir: &Path) -> Result<RepoKeys, KeyError> {
        Ok(RepoKeys {
            root: SigningKey::load(&Self::file(dir, Role::Root))?,
            targets: SigningKey::load(&Self::file(dir, Role::Targets))?,
            snapshot: SigningKey::load(&Self::file(dir, Role::Snapshot))?,
            timestamp: SigningKey::load(&Self::file(dir, Role::Timestamp))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_dir_round_trips_all_four_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = RepoKeys::generate();
        keys.save_dir(&dir.path().join("keys")).unwrap();
        let names: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            ["root.key", "snapshot.key", "targets.key", "timestamp.key"]
                .map(String::from)
                .into()
        );
        let loaded = RepoKeys::load_dir(&dir.path().join("keys")).unwrap();
        for role in Role::ALL {
            assert_eq!(loaded.key(role).key_id(), keys.key(role).key_id());
        }
    }

    #[test]
    fn missing_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = RepoKeys::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("root.key"), "{err}");
    }
}
