//! Backups of the active release: a tar of its directory, written durably before anything
//! is replaced, and restored when a rollback finds the old release directory missing or damaged.

use crate::error::{AgentError, io_err};
use crate::state::{fsync_dir, fsync_tree, remove_dir_if_exists, remove_if_exists};
use ferry_core::{Component, Version};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// `<backups_dir>/<component>-<version>.tar`.
pub fn backup_path(backups_dir: &Path, component: Component, version: &Version) -> PathBuf {
    backups_dir.join(format!("{component}-{version}.tar"))
}

/// Archives `release_dir` into `out` atomically (temp file, fsync, rename, fsync dir); returns its size.
pub fn create(release_dir: &Path, out: &Path) -> Result<u64, AgentError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let tmp = out.with_extension("tar.tmp");
    let _ = fs::remove_file(&tmp);
    let file = File::create(&tmp).map_err(|e| io_err(&tmp, "create backup", e))?;
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder
        .append_dir_all(".", release_dir)
        .map_err(|e| io_err(release_dir, "archive release directory", e))?;
    let file = builder
        .into_inner()
        .map_err(|e| io_err(&tmp, "finish backup", e))?;
    file.sync_all()
        .map_err(|e| io_err(&tmp, "fsync backup", e))?;
    let size = file
        .metadata()
        .map_err(|e| io_err(&tmp, "stat backup", e))?
        .len();
    drop(file);
    fs::rename(&tmp, out).map_err(|e| io_err(out, "rename backup into place", e))?;
    fsync_dir(dir)?;
    Ok(size)
}

/// Restores a backup tar into `dest` (which is replaced), via `<dest>.restore`, durably.
pub fn restore(tar_path: &Path, dest: &Path) -> Result<(), AgentError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dest.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!("{name}.restore"));
    remove_dir_if_exists(&tmp)?;
    fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, "create directory", e))?;
    let file = File::open(tar_path)
        .map_err(|e| io_err(tar_path, "open backup (no backup to roll back to)", e))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    if let Err(e) = archive.unpack(&tmp) {
        let _ = remove_dir_if_exists(&tmp);
        return Err(io_err(tar_path, "unpack backup", e));
    }
    fsync_tree(&tmp)?;
    remove_dir_if_exists(dest)?;
    fs::rename(&tmp, dest).map_err(|e| io_err(dest, "rename restored release into place", e))?;
    fsync_dir(parent)
}

/// Deletes backups of `component` other than `keep`.
pub fn prune(backups_dir: &Path, component: Component, keep: &Version) -> Result<(), AgentError> {
    let keep_name = backup_path(backups_dir, component, keep);
    let prefix = format!("{component}-");
    for entry in fs::read_dir(backups_dir).map_err(|e| io_err(backups_dir, "list", e))? {
        let entry = entry.map_err(|e| io_err(backups_dir, "list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && entry.path() != keep_name {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn backup_then_restore_reproduces_files_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir.path().join("releases/1.0.0");
        fs::create_dir_all(rel.join("bin")).unwrap();
        fs::write(rel.join("bin/app"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(rel.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/app", rel.join("app")).unwrap();
        let out = backup_path(dir.path(), Component::Main, &Version::new(1, 0, 0));
        let size = create(&rel, &out).unwrap();
        assert!(size > 0);
        assert!(out.ends_with("main-1.0.0.tar"));
        fs::remove_dir_all(&rel).unwrap();
        restore(&out, &rel).unwrap();
        assert_eq!(
            fs::read(rel.join("bin/app")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::metadata(rel.join("bin/app"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(rel.join("app")).unwrap(),
            Path::new("bin/app")
        );
    }

    #[test]
    fn restore_without_a_backup_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = restore(&dir.path().join("main-1.0.0.tar"), &dir.path().join("r"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("main-1.0.0.tar"), "{err}");
    }

    #[test]
    fn prune_keeps_the_latest_backup_of_the_component_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["main-1.0.0.tar", "main-1.1.0.tar", "agent-0.1.0.tar"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        prune(dir.path(), Component::Main, &Version::new(1, 1, 0)).unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["agent-0.1.0.tar", "main-1.1.0.tar"]);
    }
}
