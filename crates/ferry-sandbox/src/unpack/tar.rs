//! tar, tar.gz and tar.zst entries, read with the `tar` crate's entry iterator (GNU long
//! names and pax paths applied) and extracted by the [`Extractor`] alone.

use super::error::UnpackError;
use super::extractor::Extractor;
use std::io::Read;
use std::path::Path;
use tar::EntryType;

pub(crate) fn extract(
    reader: impl Read,
    archive: &Path,
    format: &'static str,
    x: &mut Extractor,
) -> Result<(), UnpackError> {
    let corrupt = |reason: String| UnpackError::Corrupt {
        archive: archive.into(),
        format,
        reason,
    };
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let name = entry.path_bytes().into_owned();
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(|e| corrupt(e.to_string()))?;
        let size = header.size().map_err(|e| corrupt(e.to_string()))?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                x.file(&name, mode, Some(size), &mut entry)?
            }
            EntryType::Directory => x.dir(&name, mode)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                x.symlink(&name, &target)?
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                x.hardlink(&name, &target)?
            }
            EntryType::Char => return Err(x.special(&name, "character device")),
            EntryType::Block => return Err(x.special(&name, "block device")),
            EntryType::Fifo => return Err(x.special(&name, "FIFO")),
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => {
                return Err(UnpackError::Unsupported {
                    entry: String::from_utf8_lossy(&name).into_owned(),
                    reason: format!("tar entry type {other:?} is not supported"),
                });
            }
        }
    }
    Ok(())
}
