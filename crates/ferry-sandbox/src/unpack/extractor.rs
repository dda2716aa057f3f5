//! The format-independent half of unpacking: every entry passes through here.

use super::error::UnpackError;
use super::limits::{Limits, Unpacked};
use super::resolve::{lexically_inside, resolve_inside};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// Extracts entries into `root`, enforcing [`Limits`] and the path rules.
pub(crate) struct Extractor {
    root: PathBuf,
    limits: Limits,
    archive_len: u64,
    /// Every path created, explicit or implied, and what it is.
    kinds: HashMap<PathBuf, Kind>,
    /// Paths named by an entry (a directory may be implied first and named later, once).
    named: HashMap<PathBuf, ()>,
    symlinks: Vec<(PathBuf, String)>,
    entries: u64,
    stats: Unpacked,
}

/// The entry name for messages.
pub(crate) fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// A safe relative path from an entry name, or `None` for the root itself (`./`, `/`-only
/// names are refused as absolute).
pub(crate) fn safe_relative(raw: &[u8]) -> Result<Option<PathBuf>, UnpackError> {
    use std::os::unix::ffi::OsStrExt;
    let traversal = |reason| UnpackError::Traversal {
        entry: shown(raw),
        reason,
    };
    if raw.contains(&0) {
        return Err(traversal("the name contains a NUL byte"));
    }
    if raw.first() == Some(&b'/') {
        return Err(traversal("the name is an absolute path"));
    }
    let mut out = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(traversal("the name has a '..' component")),
            p => out.push(std::ffi::OsStr::from_bytes(p)),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

impl Extractor {
    pub(crate) fn new(root: &Path, limits: &Limits, archive_len: u64) -> Extractor {
        Extractor {
            root: root.into(),
            limits: *limits,
            archive_len: archive_len.max(1),
            kinds: HashMap::new(),
            named: HashMap::new(),
            symlinks: Vec::new(),
            entries: 0,
            stats: Unpacked {
                root: root.into(),
                ..Unpacked::default()
            },
        }
    }

    fn io(path: &Path, action: &str) -> impl FnOnce(std::io::Error) -> UnpackError {
        let (path, action) = (path.to_path_buf(), action.to_string());
        move |source| UnpackError::Io {
            path,
            action,
            source,
        }
    }

    /// Validates a new entry's name and prepares its parent directories; `None` for the root.
    fn place(&mut self, raw: &[u8], mode: u32, kind: Kind) -> Result<Option<PathBuf>, UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        if mode & 0o6000 != 0 {
            return Err(UnpackError::Setuid {
                entry: shown(raw),
                mode,
            });
        }
        let Some(rel) = safe_relative(raw)? else {
            return Ok(None);
        };
        if self.named.insert(rel.clone(), ()).is_some() {
            return Err(UnpackError::Duplicate { entry: shown(raw) });
        }
        match self.kinds.get(&rel) {
            Some(Kind::Dir) if kind == Kind::Dir => {}
            Some(_) => return Err(UnpackError::Duplicate { entry: shown(raw) }),
            None => {}
        }
        let mut prefix = PathBuf::new();
        let parents: Vec<_> = rel
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .collect();
        for comp in parents {
            prefix.push(comp);
            match self.kinds.get(&prefix) {
                Some(Kind::Dir) => {}
                Some(other) => {
                    return Err(UnpackError::BadParent {
                        entry: shown(raw),
                        parent: prefix.display().to_string(),
                        parent_kind: if *other == Kind::Symlink {
                            "symlink"
                        } else {
                            "regular file"
                        },
                    });
                }
                None => {
                    let path = self.root.join(&prefix);
                    fs::create_dir(&path).map_err(Self::io(&path, "create a directory"))?;
                    self.kinds.insert(prefix.clone(), Kind::Dir);
                }
            }
        }
        Ok(Some(rel))
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A directory entry.
    pub(crate) fn dir(&mut self, raw: &[u8], mode: u32) -> Result<(), UnpackError> {
        let Some(rel) = self.place(raw, mode, Kind::Dir)? else {
            return Ok(());
        };
        let path = self.root.join(&rel);
        if self.kinds.insert(rel, Kind::Dir).is_none() {
            fs::create_dir(&path).map_err(Self::io(&path, "create a directory"))?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode((mode & 0o777) | 0o700))
            .map_err(Self::io(&path, "set a directory's mode"))?;
        self.stats.dirs += 1;
        Ok(())
    }

    /// A regular file whose content `data` yields; `declared` is the size the archive states.
    pub(crate) fn file(
        &mut self,
        raw: &[u8],
        mode: u32,
        declared: Option<u64>,
        data: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        if let Some(size) = declared {
            self.check_declared(raw, size)?;
        }
        let Some(rel) = self.place(raw, mode, Kind::File)? else {
            return Err(UnpackError::Unsupported {
                entry: shown(raw),
                reason: "a regular file cannot be the root directory".into(),
            });
        };
        let path = self.root.join(&rel);
        self.kinds.insert(rel, Kind::File);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(Self::io(&path, "create a file"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = data.read(&mut buf).map_err(|e| UnpackError::Corrupt {
                archive: self.root.clone(),
                format: "archive",
                reason: format!("reading entry '{}': {e}", shown(raw)),
            })?;
            if n == 0 {
                break;
            }
            written += n as u64;
            self.stats.bytes += n as u64;
            self.check_growth(raw, written)?;
            out.write_all(&buf[..n])
                .map_err(Self::io(&path, "write a file"))?;
        }
        out.set_permissions(fs::Permissions::from_mode(mode & 0o777))
            .map_err(Self::io(&path, "set a file's mode"))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Refuses a declared size over the limits before any byte is read.
    pub(crate) fn check_declared(&self, raw: &[u8], size: u64) -> Result<(), UnpackError> {
        if size > self.limits.max_file_bytes {
            return Err(UnpackError::FileTooLarge {
                entry: shown(raw),
                limit: self.limits.max_file_bytes,
            });
        }
        if self.stats.bytes.saturating_add(size) > self.limits.max_total_bytes {
            return Err(UnpackError::TotalTooLarge {
                entry: shown(raw),
                limit: self.limits.max_total_bytes,
            });
        }
        self.check_ratio(raw, self.stats.bytes.saturating_add(size))
    }

    fn check_growth(&self, raw: &[u8], written: u64) -> Result<(), UnpackError> {
        if written > self.limits.max_file_bytes {
            return Err(UnpackError::FileTooLarge {
                entry: shown(raw),
                limit: self.limits.max_file_bytes,
            });
        }
        if self.stats.bytes > self.limits.max_total_bytes {
            return Err(UnpackError::TotalTooLarge {
                entry: shown(raw),
                limit: self.limits.max_total_bytes,
            });
        }
        self.check_ratio(raw, self.stats.bytes)
    }

    fn check_ratio(&self, raw: &[u8], total: u64) -> Result<(), UnpackError> {
        if total > self.limits.ratio_floor
            && total > self.archive_len.saturating_mul(self.limits.max_ratio)
        {
            return Err(UnpackError::Bomb {
                entry: shown(raw),
                written: total,
                archive_len: self.archive_len,
                limit: self.limits.max_ratio,
            });
        }
        Ok(())
    }

    /// A symbolic link to `target`.
    pub(crate) fn symlink(&mut self, raw: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        use std::os::unix::ffi::OsStrExt;
        let escapes = || UnpackError::LinkEscapes {
            entry: shown(raw),
            target: shown(target),
        };
        if target.is_empty() || target.contains(&0) {
            return Err(escapes());
        }
        let Some(rel) = self.place(raw, 0o777, Kind::Symlink)? else {
            return Err(escapes());
        };
        if !lexically_inside(&rel, target) {
            return Err(escapes());
        }
        let path = self.root.join(&rel);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)
            .map_err(Self::io(&path, "create a symlink"))?;
        self.kinds.insert(rel.clone(), Kind::Symlink);
        self.symlinks.push((rel, shown(target)));
        self.stats.symlinks += 1;
        Ok(())
    }

    /// A hard link to the earlier regular file `target`.
    pub(crate) fn hardlink(&mut self, raw: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let bad_target = || UnpackError::HardlinkTarget {
            entry: shown(raw),
            target: shown(target),
        };
        let target_rel = match safe_relative(target) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(bad_target()),
            Err(_) => {
                return Err(UnpackError::LinkEscapes {
                    entry: shown(raw),
                    target: shown(target),
                });
            }
        };
        if self.kinds.get(&target_rel) != Some(&Kind::File) {
            return Err(bad_target());
        }
        let Some(rel) = self.place(raw, 0o644, Kind::File)? else {
            return Err(bad_target());
        };
        let path = self.root.join(&rel);
        fs::hard_link(self.root.join(&target_rel), &path)
            .map_err(Self::io(&path, "create a hard link"))?;
        self.kinds.insert(rel, Kind::File);
        self.stats.files += 1;
        Ok(())
    }

    /// Refuses a device node, FIFO or socket.
    pub(crate) fn special(&self, raw: &[u8], kind: &'static str) -> UnpackError {
        UnpackError::SpecialFile {
            entry: shown(raw),
            kind,
        }
    }

    /// Follows every symlink chain on disk and returns the summary if none leaves the root.
    pub(crate) fn finish(self) -> Result<Unpacked, UnpackError> {
        for (rel, target) in &self.symlinks {
            if !resolve_inside(&self.root, rel) {
                return Err(UnpackError::LinkEscapes {
                    entry: rel.display().to_string(),
                    target: target.clone(),
                });
            }
        }
        Ok(self.stats)
    }
}
