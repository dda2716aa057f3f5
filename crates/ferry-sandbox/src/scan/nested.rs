//! Archives inside the scanned tree (a root filesystem image in a package, a tarball in an
//! artifact) are recognised by their magic bytes, unpacked with the same safe unpack rules,
//! and scanned. An archive the unpacker refuses for safety becomes a finding.

use super::error::ScanError;
use super::file_scan::Raw;
use super::severity::Severity;
use crate::unpack::{Limits, UnpackError, UnpackRule, unpack};
use std::path::Path;

/// The unpack rule for `data`'s magic bytes, if it is an archive the scanner opens.
pub(crate) fn archive_rule(data: &[u8]) -> Option<UnpackRule> {
    let at = |off: usize, magic: &[u8]| data.get(off..off + magic.len()) == Some(magic);
    if at(0, b"\x1f\x8b") {
        Some(UnpackRule::TarGz)
    } else if at(0, b"\x28\xb5\x2f\xfd") {
        Some(UnpackRule::TarZstd)
    } else if at(257, b"ustar") {
        Some(UnpackRule::Tar)
    } else if at(0, b"PK\x03\x04") {
        Some(UnpackRule::Zip)
    } else if at(0, b"070701") || at(0, b"070702") {
        Some(UnpackRule::Cpio)
    } else if at(0, b"hsqs") {
        Some(UnpackRule::Squashfs)
    } else {
        None
    }
}

/// Unpacks the archive at `path` into a temporary directory and runs `scan` on it. Refusals
/// for safety reasons are recorded as findings; a compressed file that merely is not an
/// archive of the expected kind (a plain `.gz`) is left alone.
pub(crate) fn scan_archive(
    path: &Path,
    rule: UnpackRule,
    shown: &str,
    raws: &mut Vec<Raw>,
    scan: impl FnOnce(&Path) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let tmp = tempfile::tempdir().map_err(|source| ScanError::Io {
        path: std::env::temp_dir(),
        action: "create a temporary directory for a nested archive".into(),
        source,
    })?;
    let dest = tmp.path().join("x");
    match unpack(rule, path, &dest, &Limits::default()) {
        Ok(_) => scan(&dest),
        Err(UnpackError::Corrupt { .. }) => Ok(()),
        Err(UnpackError::Io {
            path,
            action,
            source,
        }) => Err(ScanError::Io {
            path,
            action,
            source,
        }),
        Err(refusal) => {
            raws.push(Raw {
                rule: "archive-refused".into(),
                severity: Severity::High,
                message: format!("{rule} archive {shown} is unsafe to unpack: {refusal}"),
                evidence: None,
                cve: None,
            });
            Ok(())
        }
    }
}
