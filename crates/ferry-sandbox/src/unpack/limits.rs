//! Size limits and the summary of an unpack.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Bounds an unpack must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest total of file bytes written.
    pub max_total_bytes: u64,
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Most entries (files, directories, links).
    pub max_entries: u64,
    /// Largest ratio of bytes written to the archive's size, checked once more than
    /// [`Limits::ratio_floor`] bytes have been written.
    pub max_ratio: u64,
    /// Bytes that may always be written regardless of the ratio (small archives compress well).
    pub ratio_floor: u64,
}

impl Default for Limits {
    /// 4 GiB total, 1 GiB per file, 100 000 entries, 200:1 expansion past the first 4 MiB.
    fn default() -> Self {
        Limits {
            max_total_bytes: 4 << 30,
            max_file_bytes: 1 << 30,
            max_entries: 100_000,
            max_ratio: 200,
            ratio_floor: 4 << 20,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpacked {
    /// The destination directory.
    pub root: PathBuf,
    /// Regular files written (hard links included).
    pub files: u64,
    /// Directories created by entries.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// File bytes written.
    pub bytes: u64,
}
