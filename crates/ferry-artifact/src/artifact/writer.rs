//! Writing artifact tar entries: deterministic ustar headers (mtime 0, uid/gid 0).

use super::{MANIFEST_NAME, SIGNATURES_NAME};
use crate::tuf::Signature;
use std::io::{self, Read, Write};

/// A regular-file ustar header for `name`; fails if the name does not fit ustar's name/prefix fields.
pub(crate) fn header(name: &str, size: u64, mode: u32) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(header)
}

/// Appends a regular file entry whose content is `size` bytes read from `data`.
pub(crate) fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    mode: u32,
    data: impl Read,
) -> io::Result<()> {
    builder.append(&header(name, size, mode)?, data)
}

/// The signature file's bytes: a JSON array of `{keyid, sig}`.
pub(crate) fn signatures_json(signatures: &[Signature]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(signatures).expect("signatures always serialize");
    bytes.push(b'\n');
    bytes
}

/// Appends the manifest and signature entries, which open every artifact.
pub(crate) fn write_head<W: Write>(
    builder: &mut tar::Builder<W>,
    manifest_bytes: &[u8],
    signatures: &[Signature],
) -> io::Result<()> {
    append_file(
        builder,
        MANIFEST_NAME,
        manifest_bytes.len() as u64,
        0o644,
        manifest_bytes,
    )?;
    let sigs = signatures_json(signatures);
    append_file(
        builder,
        SIGNATURES_NAME,
        sigs.len() as u64,
        0o644,
        sigs.as_slice(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_deterministic_ustar_regular_files() {
        let h = header("payload/bin/app", 12, 0o755).unwrap();
        assert!(h.as_ustar().is_some());
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        assert_eq!(
            (
                h.size().unwrap(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap()
            ),
            (12, 0o755, 0, 0)
        );
        assert_eq!(
            h.as_bytes(),
            header("payload/bin/app", 12, 0o755).unwrap().as_bytes()
        );
    }

    #[test]
    fn long_paths_use_the_ustar_prefix_and_overlong_names_fail() {
        let long = format!("payload/{}/file", "d".repeat(120));
        let h = header(&long, 0, 0o644).unwrap();
        assert_eq!(h.path_bytes().as_ref(), long.as_bytes());
        assert!(header(&format!("payload/{}", "n".repeat(101)), 0, 0o644).is_err());
    }
}
