//! [`LocalArtifactStore`]: objects as files under one directory.

use crate::objects::{Objects, validate_key};
use crate::{ArtifactStore, ObjectInfo, StoreError};
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Numbers staging files apart within this process.
static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An [`ArtifactStore`] keeping each object as a file `ROOT/KEY` (reads, listing and deletes
/// through object_store's `LocalFileSystem`).
///
/// Writes go to a staging file `NAME#DIGITS` beside the target (object_store's naming for
/// in-progress files, which listings skip), are fsynced, and are renamed over the target,
/// so readers see the old or the new object, never a part. Each write also gives the file a
/// modification time strictly later than the one it replaces, so the entity tag
/// (inode, mtime in µs, size) changes whenever the content does, even if the filesystem's
/// clock is coarse and the inode number is reused.
pub struct LocalArtifactStore {
    root: PathBuf,
    objects: Objects,
}

impl fmt::Debug for LocalArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalArtifactStore").field("root", &self.root).finish()
    }
}

impl LocalArtifactStore {
    /// A store rooted at `root`, which is created (with its parents) if missing.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let given = root.as_ref();
        if given.as_os_str().is_empty() {
            return Err(StoreError::Config(
                "local artifact store: the directory path is empty; use file:///ABSOLUTE/DIR or a directory path"
                    .into(),
            ));
        }
        fs::create_dir_all(given).map_err(|e| {
            StoreError::Config(format!(
                "local artifact store: cannot create directory {}: {e}; create it or choose a writable directory",
                given.display()
            ))
        })?;
        let root = fs::canonicalize(given).map_err(|e| {
            StoreError::Config(format!("local artifact store: cannot resolve directory {}: {e}", given.display()))
        })?;
        if !root.is_dir() {
            return Err(StoreError::Config(format!(
                "local artifact store: {} is not a directory; point the store at a directory",
                root.display()
            )));
        }
        let fs_store = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            StoreError::Config(format!("local artifact store: cannot use directory {}: {e}", root.display()))
        })?;
        let objects = Objects {
            store: Arc::new(fs_store),
            desc: format!("local artifact store {}", root.display()),
            hint: "check the directory's permissions and free space",
        };
        Ok(LocalArtifactStore { root, objects })
    }

    /// The (canonical) root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `source` to `key` through a staging file and a rename.
    async fn write_atomically(&self, key: &str, source: Source) -> Result<(), StoreError> {
        validate_key(key)?;
        let dest = self.root.join(key);
        let desc = self.objects.desc.clone();
        let key_owned = key.to_string();
        tokio::task::spawn_blocking(move || {
            write_file_atomically(&dest, source).map_err(|e| {
                StoreError::Object(format!(
                    "{desc}: writing '{key_owned}' ({}) failed: {e}; check the directory's permissions and free space",
                    dest.display()
                ))
            })
        })
        .await
        .map_err(|e| StoreError::Object(format!("{}: writing '{key}' was interrupted: {e}", self.objects.desc)))?
    }
}

/// What to write.
enum Source {
    Bytes(Bytes),
    File(PathBuf),
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Now, or 1 µs after `previous` if the clock has not moved past it.
fn next_mtime(previous: Option<SystemTime>) -> SystemTime {
    let now = micros(SystemTime::now());
    let floor = previous.map(|p| micros(p) + 1).unwrap_or(0);
    UNIX_EPOCH + Duration::from_micros(now.max(floor))
}

fn write_file_atomically(dest: &Path, source: Source) -> io::Result<()> {
    let dir = dest.parent().ok_or_else(|| io::Error::other("the key has no parent directory"))?;
    let name =
        dest.file_name().ok_or_else(|| io::Error::other("the key has no file name"))?.to_string_lossy().into_owned();
    fs::create_dir_all(dir)?;
    let staging = dir.join(format!(
        "{name}#{:010}{:010}",
        std::process::id(),
        STAGING_COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000_000_000
    ));
    let result = (|| -> io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&staging)?;
        match &source {
            Source::Bytes(bytes) => file.write_all(bytes)?,
            Source::File(path) => {
                let mut input = fs::File::open(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open source file {}: {e}", path.display()))
                })?;
                io::copy(&mut input, &mut file)?;
            }
        }
        let previous = fs::metadata(dest).ok().and_then(|m| m.modified().ok());
        file.set_modified(next_mtime(previous))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&staging, dest)?;
        // Make the rename durable.
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staging);
    }
    result
}

#[async_trait::async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.write_atomically(key, Source::Bytes(bytes)).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        self.write_atomically(key, Source::File(path.to_path_buf())).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.objects.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.objects.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.objects.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.objects.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_mtime_is_strictly_after_the_previous_one() {
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(micros(next_mtime(Some(future))), micros(future) + 1);
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert!(next_mtime(Some(past)) > past + Duration::from_secs(3000));
    }
}
