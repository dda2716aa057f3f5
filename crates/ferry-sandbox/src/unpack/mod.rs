//! Unpack rules: extracting a vendor package into a fresh directory, safely.
//!
//! Every format goes through one [`extractor`](self) that refuses, with the entry's name:
//! absolute paths and `..` components, links resolving outside the root (symlink chains are
//! followed after extraction), writes through symlinks, device nodes, FIFOs and sockets,
//! setuid/setgid bits, duplicate paths, files or totals over the [`Limits`], too many
//! entries, and output growing more than [`Limits::max_ratio`] times the archive size
//! (decompression bombs). Absolute symlink targets are read as relative to the unpacked root,
//! as they would be inside the firmware's own root filesystem.

mod cpio;
mod error;
mod extractor;
mod limits;
mod resolve;
mod rule;
mod squashfs;
mod tar;
mod zip;

pub use error::UnpackError;
pub use limits::{Limits, Unpacked};
pub use rule::UnpackRule;

use extractor::Extractor;
use std::fs;
use std::path::Path;

/// Unpacks `archive` by `rule` into `dest`, which must not exist (it is created). On any
/// refusal or error, `dest` is removed again and nothing of the archive remains.
pub fn unpack(
    rule: UnpackRule,
    archive: &Path,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(UnpackError::DestinationExists { path: dest.into() });
    }
    let archive_len = fs::metadata(archive)
        .map_err(|source| UnpackError::Io {
            path: archive.into(),
            action: "read the archive's size".into(),
            source,
        })?
        .len();
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| UnpackError::Io {
            path: parent.into(),
            action: "create the destination's parent directory".into(),
            source,
        })?;
    }
    fs::create_dir(dest).map_err(|source| UnpackError::Io {
        path: dest.into(),
        action: "create the destination directory".into(),
        source,
    })?;
    let mut x = Extractor::new(dest, limits, archive_len);
    let result = run(rule, archive, &mut x).and_then(|()| x.finish());
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn run(rule: UnpackRule, archive: &Path, x: &mut Extractor) -> Result<(), UnpackError> {
    let open = || {
        fs::File::open(archive).map_err(|source| UnpackError::Io {
            path: archive.into(),
            action: "open the archive".into(),
            source,
        })
    };
    let buffered = |f| std::io::BufReader::with_capacity(64 * 1024, f);
    match rule {
        UnpackRule::Tar => tar::extract(buffered(open()?), archive, "tar", x),
        UnpackRule::TarGz => {
            let dec = flate2::read::MultiGzDecoder::new(buffered(open()?));
            tar::extract(dec, archive, "tar.gz", x)
        }
        UnpackRule::TarZstd => {
            let dec =
                zstd::stream::read::Decoder::new(open()?).map_err(|e| UnpackError::Corrupt {
                    archive: archive.into(),
                    format: "tar.zst",
                    reason: e.to_string(),
                })?;
            tar::extract(dec, archive, "tar.zst", x)
        }
        UnpackRule::Zip => zip::extract(open()?, archive, x),
        UnpackRule::Cpio => cpio::extract(buffered(open()?), archive, x),
        UnpackRule::Squashfs => squashfs::extract(buffered(open()?), archive, x),
        UnpackRule::Raw => {
            let name = archive
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image.bin".into());
            x.file(name.as_bytes(), 0o644, None, &mut buffered(open()?))
        }
    }
}
