//! Listing a release directory: regular files with hash and mode, and symlinks.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{DeltaError, Result};

/// One entry of a release directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// sha256 (hex).
        sha256: String,
        /// Unix permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Link {
        /// The link's target as stored.
        target: String,
    },
}

/// Lists `root` recursively ('/'-separated relative paths), never following symlinks.
pub fn list(root: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Entry>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| DeltaError::io("listing", dir, e))?;
    for item in rd {
        let item = item.map_err(|e| DeltaError::io("listing", dir, e))?;
        let name = item.file_name().into_string().map_err(|n| {
            DeltaError::Tree(format!("file name {n:?} in {} is not UTF-8", dir.display()))
        })?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = item.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| DeltaError::io("inspecting", &path, e))?;
        if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(|e| DeltaError::io("reading link", &path, e))?;
            out.insert(
                rel,
                Entry::Link {
                    target: target.to_string_lossy().into_owned(),
                },
            );
        } else if meta.is_dir() {
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.insert(
                rel,
                Entry::File {
                    sha256: hash_file(&path)?,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Ok(())
}

/// sha256 (hex) of a file's content.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| DeltaError::io("opening", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| DeltaError::io("reading", path, e))?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}
