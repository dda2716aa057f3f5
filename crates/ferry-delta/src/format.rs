//! Constants and the fixed header of the patch format (see `FORMAT.md`).

use std::io::{Read, Write};

use crate::error::{DeltaError, Result};

/// First eight bytes of every Ferry patch.
pub const MAGIC: &[u8; 8] = b"FERRYDLT";
/// Format version written by this crate.
pub const VERSION: u8 = 2;
/// Chunk tag: a chunk of the streams follows.
pub const TAG_CHUNK: u8 = 1;
/// Chunk tag: the end of the patch.
pub const TAG_END: u8 = 0;
/// Chunk diff coding: the add-diff bytes are in the dense diff stream.
pub const DIFF_DENSE: u8 = 0;
/// Chunk diff coding: the add-diff bytes are zero/non-zero runs plus the non-zero values.
pub const DIFF_SPARSE: u8 = 1;
/// Largest window of the copy source used as prefix of a chunk's literal frame.
pub const MAX_LITERAL_PREFIX: usize = 2 << 20;
/// At most this many new-file bytes are described by one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Largest compressed fragment of one stream in one chunk that apply accepts.
pub const MAX_FRAGMENT: u64 = 4 << 20;
/// Largest decoded control stream of one chunk that apply accepts.
pub const MAX_CTRL_CHUNK: usize = 1 << 20;
/// Largest transform plan (decoded) that apply accepts.
pub const MAX_PLAN: u64 = 8 << 20;
/// Largest zstd window (log2) apply accepts; bounds the decoders' memory.
pub const MAX_WINDOW_LOG: u32 = 22;

/// The fixed-size header: what the patch applies to and what it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Size of the old file in bytes.
    pub old_size: u64,
    /// sha256 of the old file.
    pub old_sha256: [u8; 32],
    /// Size of the new file in bytes.
    pub new_size: u64,
    /// sha256 of the new file.
    pub new_sha256: [u8; 32],
}

impl Header {
    /// Serialises the header (magic, version, sizes, hashes).
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&[VERSION, 0])?;
        w.write_all(&self.old_size.to_le_bytes())?;
        w.write_all(&self.old_sha256)?;
        w.write_all(&self.new_size.to_le_bytes())?;
        w.write_all(&self.new_sha256)
    }

    /// Parses and checks the header.
    pub fn read(r: &mut impl Read) -> Result<Header> {
        let mut buf = [0u8; 8 + 2 + 8 + 32 + 8 + 32];
        r.read_exact(&mut buf)
            .map_err(|e| DeltaError::stream("patch header", e))?;
        if &buf[..8] != MAGIC {
            return Err(DeltaError::Corrupt("not a Ferry patch (bad magic)".into()));
        }
        if buf[8] != VERSION {
            return Err(DeltaError::Corrupt(format!(
                "patch format version {} is not supported (this build reads version {VERSION})",
                buf[8]
            )));
        }
        let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
        let arr_at = |o: usize| -> [u8; 32] { buf[o..o + 32].try_into().expect("32 bytes") };
        Ok(Header {
            old_size: u64_at(10),
            old_sha256: arr_at(18),
            new_size: u64_at(50),
            new_sha256: arr_at(58),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_bad_magic() {
        let h = Header {
            old_size: 5,
            old_sha256: [1; 32],
            new_size: 9,
            new_sha256: [2; 32],
        };
        let mut buf = Vec::new();
        h.write(&mut buf).unwrap();
        assert_eq!(Header::read(&mut buf.as_slice()).unwrap(), h);
        buf[0] = b'X';
        assert!(matches!(
            Header::read(&mut buf.as_slice()),
            Err(DeltaError::Corrupt(_))
        ));
        assert!(matches!(
            Header::read(&mut &buf[..20]),
            Err(DeltaError::Truncated { .. })
        ));
    }
}
