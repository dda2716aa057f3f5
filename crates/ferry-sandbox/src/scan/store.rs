//! The device's installed rule database, replaced only by signed, newer versions.

use super::error::ScanError;
use super::rules::{RuleDb, signature_path};
use ferry_artifact::keys::PublicKey;
use std::path::{Path, PathBuf};

/// A directory holding `rules.toml` and `rules.toml.sig`, updated atomically.
#[derive(Debug, Clone)]
pub struct RuleStore {
    dir: PathBuf,
    trusted: Vec<PublicKey>,
    floor: u64,
}

impl RuleStore {
    /// A store in `dir` (created if missing) accepting databases signed by `trusted`; no
    /// database below version `floor` (e.g. the built-in one's) is ever accepted.
    pub fn open(dir: &Path, trusted: Vec<PublicKey>, floor: u64) -> Result<RuleStore, ScanError> {
        std::fs::create_dir_all(dir).map_err(|source| ScanError::Io {
            path: dir.into(),
            action: "create the rule store directory".into(),
            source,
        })?;
        Ok(RuleStore {
            dir: dir.into(),
            trusted,
            floor,
        })
    }

    fn db_path(&self) -> PathBuf {
        self.dir.join("rules.toml")
    }

    /// The installed database, verified again, or `None` if none was installed.
    pub fn current(&self) -> Result<Option<RuleDb>, ScanError> {
        let path = self.db_path();
        if !path.exists() {
            return Ok(None);
        }
        RuleDb::load(&path, &self.trusted).map(Some)
    }

    /// Verifies `bytes` + `sig_json`, refuses anything not newer than the installed database
    /// (or below the floor), then installs it atomically (signature first, database last).
    pub fn install(&self, bytes: &[u8], sig_json: &[u8]) -> Result<RuleDb, ScanError> {
        let db = RuleDb::from_signed("offered rule update", bytes, sig_json, &self.trusted)?;
        if db.version < self.floor {
            return Err(ScanError::Rollback {
                installed: self.floor,
                offered: db.version,
            });
        }
        if let Some(installed) = self.current()? {
            db.check_replaces(&installed)?;
        }
        let path = self.db_path();
        write_atomic(&signature_path(&path), sig_json)?;
        write_atomic(&path, bytes)?;
        Ok(db)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ScanError> {
    let io = |action: &str| {
        let action = action.to_string();
        move |source| ScanError::Io {
            path: path.into(),
            action,
            source,
        }
    };
    let dir = path.parent().expect("store files live in a directory");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("create a temporary file"))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io("write"))?;
    tmp.as_file().sync_all().map_err(io("sync"))?;
    tmp.persist(path)
        .map_err(|e| io("move into place")(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync the directory"))
}
