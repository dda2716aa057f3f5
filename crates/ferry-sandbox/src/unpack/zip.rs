//! zip entries: the central directory's sizes are checked (per-entry ratio, per-file and
//! total limits) before an entry is decompressed.

use super::error::UnpackError;
use super::extractor::{Extractor, shown};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;
const S_IFSOCK: u32 = 0o140000;
/// Largest symlink target read from a zip entry.
const MAX_LINK_TARGET: u64 = 4096;

pub(crate) fn extract(file: File, archive: &Path, x: &mut Extractor) -> Result<(), UnpackError> {
    let corrupt = |reason: String| UnpackError::Corrupt {
        archive: archive.into(),
        format: "zip",
        reason,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| corrupt(e.to_string()))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| corrupt(e.to_string()))?;
        let name = entry.name_raw().to_vec();
        let unix = entry.unix_mode().unwrap_or(0);
        let mode = unix & 0o7777;
        match unix & S_IFMT {
            S_IFCHR => return Err(x.special(&name, "character device")),
            S_IFBLK => return Err(x.special(&name, "block device")),
            S_IFIFO => return Err(x.special(&name, "FIFO")),
            S_IFSOCK => return Err(x.special(&name, "socket")),
            _ => {}
        }
        if entry.is_dir() {
            x.dir(&name, if mode == 0 { 0o755 } else { mode })?;
        } else if unix & S_IFMT == S_IFLNK {
            let mut target = Vec::new();
            entry
                .by_ref()
                .take(MAX_LINK_TARGET)
                .read_to_end(&mut target)
                .map_err(|e| corrupt(format!("reading symlink '{}': {e}", shown(&name))))?;
            x.symlink(&name, &target)?;
        } else {
            let size = entry.size();
            let compressed = entry.compressed_size().max(1);
            x.check_declared(&name, size)?;
            if size > x_ratio_floor(x) && size / compressed > x_ratio_limit(x) {
                return Err(UnpackError::Bomb {
                    entry: shown(&name),
                    written: size,
                    archive_len: compressed,
                    limit: x_ratio_limit(x),
                });
            }
            x.file(
                &name,
                if mode == 0 { 0o644 } else { mode },
                Some(size),
                &mut entry,
            )?;
        }
    }
    Ok(())
}

fn x_ratio_limit(x: &Extractor) -> u64 {
    x.limits().max_ratio
}

fn x_ratio_floor(x: &Extractor) -> u64 {
    x.limits().ratio_floor
}
