//! Reading artifacts entry by entry, enforcing the layout and streaming payload checks.

use super::error::ArtifactError;
use super::hashing_reader::HashingReader;
use super::manifest::{Manifest, PayloadEntry};
use super::payload_path::unsafe_reason;
use super::{
    MANIFEST_NAME, MAX_MANIFEST_BYTES, MAX_SIGNATURES_BYTES, PAYLOAD_PREFIX, SIGNATURES_NAME,
};
use crate::tuf::Signature;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

type TarEntry<'a> = tar::Entry<'a, BufReader<File>>;

/// The first two entries: exact manifest bytes and the (unverified) signatures.
pub(crate) struct Head {
    pub(crate) manifest_bytes: Vec<u8>,
    pub(crate) signatures: Vec<Signature>,
}

/// An open artifact file.
pub(crate) struct ArtifactFile {
    path: PathBuf,
    archive: tar::Archive<BufReader<File>>,
}

impl ArtifactFile {
    pub(crate) fn open(path: &Path) -> Result<ArtifactFile, ArtifactError> {
        let file = File::open(path).map_err(|source| ArtifactError::Io {
            path: path.into(),
            action: "open the artifact".into(),
            source,
        })?;
        Ok(ArtifactFile {
            path: path.into(),
            archive: tar::Archive::new(BufReader::new(file)),
        })
    }

    /// Iterates the raw tar entries: GNU long names and PAX headers are not interpreted, so
    /// they show up as entries of a forbidden type.
    pub(crate) fn reader(&mut self) -> Result<ArtifactReader<'_>, ArtifactError> {
        let path = self.path.as_path();
        let entries = self
            .archive
            .entries()
            .map_err(|e| ArtifactError::Corrupt {
                path: path.into(),
                reason: e.to_string(),
            })?
            .raw(true);
        Ok(ArtifactReader {
            path,
            entries,
            index: 0,
        })
    }
}

/// Sequential access to an artifact's entries.
pub(crate) struct ArtifactReader<'a> {
    path: &'a Path,
    entries: tar::Entries<'a, BufReader<File>>,
    index: usize,
}

fn entry_kind(kind: tar::EntryType) -> Option<String> {
    use tar::EntryType as T;
    Some(match kind {
        T::Regular => return None,
        T::Symlink => "symbolic link".into(),
        T::Link => "hard link".into(),
        T::Char => "character device".into(),
        T::Block => "block device".into(),
        T::Fifo => "FIFO".into(),
        T::Directory => "directory".into(),
        T::GNULongName | T::GNULongLink | T::XHeader | T::XGlobalHeader => {
            "tar extension header (GNU long name or PAX)".into()
        }
        other => format!("non-regular entry (type {:?})", other.as_byte() as char),
    })
}

impl<'a> ArtifactReader<'a> {
    fn corrupt(&self, e: io::Error) -> ArtifactError {
        ArtifactError::Corrupt {
            path: self.path.into(),
            reason: e.to_string(),
        }
    }

    /// The next entry, its position and its name (names must be UTF-8).
    fn next_entry(&mut self) -> Result<Option<(usize, String, TarEntry<'a>)>, ArtifactError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let entry = entry.map_err(|e| self.corrupt(e))?;
        let index = self.index;
        self.index += 1;
        let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            ArtifactError::UnsafePayloadPath {
                path: self.path.into(),
                entry: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "name is not UTF-8".into(),
            }
        })?;
        Ok(Some((index, name, entry)))
    }

    fn require_regular(&self, name: &str, entry: &TarEntry<'a>) -> Result<(), ArtifactError> {
        match entry_kind(entry.header().entry_type()) {
            None => Ok(()),
            Some(kind) => Err(ArtifactError::ForbiddenEntryType {
                path: self.path.into(),
                entry: name.into(),
                kind,
            }),
        }
    }

    /// Reads the manifest and signature entries, which must come first, in that order.
    pub(crate) fn head(&mut self) -> Result<Head, ArtifactError> {
        let manifest_bytes = self.read_small(MANIFEST_NAME, MAX_MANIFEST_BYTES)?;
        let sig_bytes = self.read_small(SIGNATURES_NAME, MAX_SIGNATURES_BYTES)?;
        let signatures =
            serde_json::from_slice(&sig_bytes).map_err(|e| ArtifactError::BadSignatureFile {
                path: self.path.into(),
                reason: e.to_string(),
            })?;
        Ok(Head {
            manifest_bytes,
            signatures,
        })
    }

    fn read_small(&mut self, want: &'static str, limit: u64) -> Result<Vec<u8>, ArtifactError> {
        let expected = format!("'{want}' at this position");
        let Some((index, name, mut entry)) = self.next_entry()? else {
            return Err(ArtifactError::UnexpectedEntry {
                path: self.path.into(),
                index: self.index,
                expected,
                found: "the end of the archive".into(),
            });
        };
        if name != want {
            return Err(ArtifactError::UnexpectedEntry {
                path: self.path.into(),
                index,
                expected,
                found: name,
            });
        }
        self.require_regular(&name, &entry)?;
        let size = entry.size();
        if size > limit {
            return Err(ArtifactError::TooLarge {
                path: self.path.into(),
                entry: want,
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.corrupt(e))?;
        if bytes.len() as u64 != size {
            return Err(self.corrupt(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{want} is cut short: {} of {size} bytes", bytes.len()),
            )));
        }
        Ok(bytes)
    }

    /// Streams every remaining entry as a payload of `manifest`: each must be a regular
    /// `payload/<path>` entry with a safe path listed in the manifest, seen once, with the
    /// listed size. `each` consumes the content (what it leaves is read and discarded); the
    /// length and sha256 are checked once it returns. Finally every listed payload must have
    /// been seen.
    pub(crate) fn payloads(
        &mut self,
        manifest: &Manifest,
        mut each: impl FnMut(&PayloadEntry, &mut dyn Read) -> Result<(), ArtifactError>,
    ) -> Result<(), ArtifactError> {
        let listed: HashMap<&str, &PayloadEntry> = manifest
            .payloads
            .iter()
            .map(|p| (p.path.as_str(), p))
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some((index, name, mut entry)) = self.next_entry()? {
            let path = || self.path.to_path_buf();
            let Some(rel) = name.strip_prefix(PAYLOAD_PREFIX) else {
                return Err(ArtifactError::UnexpectedEntry {
                    path: path(),
                    index,
                    expected: format!("a '{PAYLOAD_PREFIX}<path>' entry"),
                    found: name,
                });
            };
            if let Some(reason) = unsafe_reason(rel) {
                return Err(ArtifactError::UnsafePayloadPath {
                    path: path(),
                    entry: name.clone(),
                    reason: reason.into(),
                });
            }
            self.require_regular(&name, &entry)?;
            let Some(&payload) = listed.get(rel) else {
                return Err(ArtifactError::UnlistedPayload {
                    path: path(),
                    entry: rel.into(),
                });
            };
            if !seen.insert(rel.to_string()) {
                return Err(ArtifactError::DuplicatePayload {
                    path: path(),
                    entry: rel.into(),
                });
            }
            if entry.size() != payload.length {
                return Err(ArtifactError::PayloadLengthMismatch {
                    path: path(),
                    entry: rel.into(),
                    expected: payload.length,
                    found: entry.size(),
                });
            }
            let mut hashing = HashingReader::new(&mut entry);
            each(payload, &mut hashing)?;
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| self.corrupt(e))?;
            let (found_len, found_sha) = hashing.finish();
            if found_len != payload.length {
                return Err(ArtifactError::PayloadLengthMismatch {
                    path: path(),
                    entry: rel.into(),
                    expected: payload.length,
                    found: found_len,
                });
            }
            if found_sha != payload.sha256 {
                return Err(ArtifactError::PayloadHashMismatch {
                    path: path(),
                    entry: rel.into(),
                    expected: payload.sha256.clone(),
                    found: found_sha,
                });
            }
        }
        match manifest.payloads.iter().find(|p| !seen.contains(&p.path)) {
            Some(missing) => Err(ArtifactError::MissingPayload {
                path: self.path.into(),
                entry: missing.path.clone(),
            }),
            None => Ok(()),
        }
    }
}
