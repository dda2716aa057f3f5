//! Verified extraction of an artifact into a new directory.

use super::UNPACKED_MANIFEST_NAME;
use super::error::ArtifactError;
use super::manifest::Manifest;
use super::reader::ArtifactFile;
use super::trust::trusted_manifest;
use crate::keys::PublicKey;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Verifies the signature, then extracts every payload into `dest` (which must not exist; it
/// is created), checking each payload's length and sha256 as it streams. Files get the
/// manifest's mode masked to 0o777; only regular files and directories are ever created.
/// Writes the exact signed manifest bytes to `dest/.ferry-manifest.json`.
///
/// On any error `dest` is removed (unless it existed before, which is itself an error).
pub fn unpack_verified(
    path: &Path,
    trusted: &[PublicKey],
    dest: &Path,
) -> Result<Manifest, ArtifactError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(ArtifactError::DestinationExists { dest: dest.into() });
    }
    let dest_io = |action: &'static str| {
        move |source| ArtifactError::Io {
            path: dest.into(),
            action: action.into(),
            source,
        }
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(dest_io("create the destination's parent directory"))?;
    }
    if let Err(source) = fs::create_dir(dest) {
        return Err(match source.kind() {
            io::ErrorKind::AlreadyExists => ArtifactError::DestinationExists { dest: dest.into() },
            _ => dest_io("create the destination directory")(source),
        });
    }
    let result = unpack_into(path, trusted, dest);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn unpack_into(path: &Path, trusted: &[PublicKey], dest: &Path) -> Result<Manifest, ArtifactError> {
    let mut file = ArtifactFile::open(path)?;
    let mut reader = file.reader()?;
    let head = reader.head()?;
    let manifest = trusted_manifest(path, &head, trusted)?;
    reader.payloads(&manifest, |payload, data| {
        let target = dest.join(&payload.path);
        let io_err = |action: &str| {
            let action = format!("{action} for payload {}", payload.path);
            |source| ArtifactError::Io {
                path: target.clone(),
                action,
                source,
            }
        };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create the directory"))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io_err("create the file"))?;
        io::copy(data, &mut out).map_err(io_err("write the file"))?;
        out.flush().map_err(io_err("write the file"))?;
        out.set_permissions(fs::Permissions::from_mode(payload.mode & 0o777))
            .map_err(io_err("set the mode"))?;
        out.sync_all().map_err(io_err("sync the file"))
    })?;
    let manifest_path = dest.join(UNPACKED_MANIFEST_NAME);
    fs::write(&manifest_path, &head.manifest_bytes).map_err(|source| ArtifactError::Io {
        path: manifest_path.clone(),
        action: "write the unpacked manifest".into(),
        source,
    })?;
    File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(|source| ArtifactError::Io {
            path: dest.into(),
            action: "sync the destination directory".into(),
            source,
        })?;
    Ok(manifest)
}
