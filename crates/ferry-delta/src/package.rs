//! The delta package: what a server ships instead of a full release artifact.
//!
//! It carries the new release's signed manifest (the exact `ferry-manifest.json` bytes of the
//! full artifact and its `ferry-manifest.sig.json`), the base version it applies to, and the
//! tree delta. The package itself is authenticated by TUF (length and sha256 in the signed
//! targets metadata); the manifest by the release signature, so after applying, a device can
//! check that it holds exactly the files the release-signed manifest lists.
//!
//! ```text
//! "FERRYDPK" | u32 LE version (1)
//! | u32 LE length | manifest bytes        (≤ 1 MiB)
//! | u32 LE length | signature file bytes  (≤ 64 KiB)
//! | u32 LE length | base version text     (≤ 256 bytes)
//! | tree delta ("FERRYTRE" …, see tree::TreeDelta::write_to)
//! ```

use std::io::{Read, Write};

use crate::error::{DeltaError, Result};
use crate::tree::TreeDelta;

const MAGIC: &[u8; 8] = b"FERRYDPK";
const VERSION: u32 = 1;
/// Largest manifest accepted (bytes), as for full artifacts.
pub const MAX_MANIFEST: u32 = 1024 * 1024;
/// Largest signature file accepted (bytes), as for full artifacts.
pub const MAX_SIGNATURES: u32 = 64 * 1024;
const MAX_VERSION_TEXT: u32 = 256;

/// A delta package in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPackage {
    /// Exact bytes of the new release's `ferry-manifest.json` (what the release key signed).
    pub manifest_bytes: Vec<u8>,
    /// Exact bytes of the new release's `ferry-manifest.sig.json`.
    pub signatures_bytes: Vec<u8>,
    /// The version of the release the delta applies to (text, as the manifest writes versions).
    pub from_version: String,
    /// The operations turning the base release's files into the new release's files.
    pub tree: TreeDelta,
}

fn put_section(w: &mut impl Write, what: &str, bytes: &[u8], limit: u32) -> Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l <= limit)
        .ok_or_else(|| {
            DeltaError::Corrupt(format!(
                "delta package {what} of {} bytes exceeds the {limit}-byte limit",
                bytes.len()
            ))
        })?;
    let io = |e| DeltaError::stream("writing the delta package", e);
    w.write_all(&len.to_le_bytes()).map_err(io)?;
    w.write_all(bytes).map_err(io)
}

fn get_section(r: &mut impl Read, what: &'static str, limit: u32) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| DeltaError::stream(what, e))?;
    let len = u32::from_le_bytes(len);
    if len > limit {
        return Err(DeltaError::Corrupt(format!(
            "{what} of {len} bytes exceeds the {limit}-byte limit"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes)
        .map_err(|e| DeltaError::stream(what, e))?;
    Ok(bytes)
}

impl DeltaPackage {
    /// Writes the package.
    pub fn write_to(&self, w: &mut impl Write) -> Result<()> {
        let io = |e| DeltaError::stream("writing the delta package", e);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        put_section(w, "manifest", &self.manifest_bytes, MAX_MANIFEST)?;
        put_section(w, "signature file", &self.signatures_bytes, MAX_SIGNATURES)?;
        put_section(
            w,
            "base version",
            self.from_version.as_bytes(),
            MAX_VERSION_TEXT,
        )?;
        self.tree.write_to(w)
    }

    /// Reads a package written by [`DeltaPackage::write_to`]; nothing in it is trusted yet
    /// (the caller checks the manifest signature and the tree against the manifest).
    pub fn read_from(r: &mut impl Read) -> Result<DeltaPackage> {
        let mut head = [0u8; 12];
        r.read_exact(&mut head)
            .map_err(|e| DeltaError::stream("delta package header", e))?;
        if &head[..8] != MAGIC {
            return Err(DeltaError::Corrupt(
                "not a Ferry delta package (bad magic)".into(),
            ));
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(DeltaError::Corrupt(format!(
                "delta package version {version} is not supported"
            )));
        }
        let manifest_bytes = get_section(r, "delta package manifest", MAX_MANIFEST)?;
        let signatures_bytes = get_section(r, "delta package signature file", MAX_SIGNATURES)?;
        let from = get_section(r, "delta package base version", MAX_VERSION_TEXT)?;
        let from_version = String::from_utf8(from)
            .map_err(|_| DeltaError::Corrupt("delta package base version is not UTF-8".into()))?;
        let tree = TreeDelta::read_from(r)?;
        let mut rest = [0u8; 1];
        match r.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => {
                return Err(DeltaError::Corrupt(
                    "delta package has bytes after the tree delta".into(),
                ));
            }
            Err(e) => return Err(DeltaError::stream("delta package end", e)),
        }
        Ok(DeltaPackage {
            manifest_bytes,
            signatures_bytes,
            from_version,
            tree,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TreeOp;

    fn sample() -> DeltaPackage {
        DeltaPackage {
            manifest_bytes: br#"{"format":"ferry-artifact/1"}"#.to_vec(),
            signatures_bytes: b"[]".to_vec(),
            from_version: "1.0.0".into(),
            tree: TreeDelta {
                ops: vec![TreeOp::Add {
                    path: "bin/app".into(),
                    sha256: "ab".repeat(32),
                    mode: 0o755,
                    blob: 0,
                    replaces: None,
                }],
                blobs: vec![b"new".to_vec()],
            },
        }
    }

    #[test]
    fn package_round_trips() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        assert_eq!(
            DeltaPackage::read_from(&mut bytes.as_slice()).unwrap(),
            sample()
        );
    }

    #[test]
    fn truncated_package_is_refused_at_every_cut() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                DeltaPackage::read_from(&mut &bytes[..cut]).is_err(),
                "cut at {cut} of {} was accepted",
                bytes.len()
            );
        }
    }

    #[test]
    fn trailing_bytes_and_bad_magic_are_refused() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        let mut longer = bytes.clone();
        longer.push(0);
        let err = DeltaPackage::read_from(&mut longer.as_slice())
            .unwrap_err()
            .to_string();
        assert!(err.contains("after the tree delta"), "{err}");
        bytes[0] = b'X';
        let err = DeltaPackage::read_from(&mut bytes.as_slice())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad magic"), "{err}");
    }

    #[test]
    fn oversized_manifest_length_is_refused_before_allocating() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(u32::MAX.to_le_bytes());
        let err = DeltaPackage::read_from(&mut bytes.as_slice())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exceeds"), "{err}");
    }
}
