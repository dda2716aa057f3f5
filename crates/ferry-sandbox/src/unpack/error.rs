//! Errors of unpacking: every refusal names the archive entry and the limit or rule it broke.

use std::io;
use std::path::PathBuf;

/// Unpacking was refused or failed; the destination directory has been removed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading the archive or writing the destination failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive is not a well-formed archive of the rule's format.
    #[error("{}: not a valid {format} archive: {reason}", archive.display())]
    Corrupt {
        /// The archive file.
        archive: PathBuf,
        /// Format expected by the unpack rule.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An entry's path leaves the destination (absolute path or `..` component).
    #[error("entry '{entry}' is refused: {reason} (path traversal)")]
    Traversal {
        /// The entry name as stored.
        entry: String,
        /// Why the path is unsafe.
        reason: &'static str,
    },
    /// A symbolic or hard link points outside the destination root.
    #[error("entry '{entry}' is a link to '{target}', which resolves outside the unpacked root")]
    LinkEscapes {
        /// The link's name.
        entry: String,
        /// Its target as stored.
        target: String,
    },
    /// An entry would be written through a symlink or under a regular file.
    #[error(
        "entry '{entry}' is placed under '{parent}', which is a {parent_kind} in this archive; \
         writing through it is refused"
    )]
    BadParent {
        /// The entry name.
        entry: String,
        /// The offending parent path.
        parent: String,
        /// "symlink" or "regular file".
        parent_kind: &'static str,
    },
    /// A hard link whose target is not a regular file extracted earlier.
    #[error(
        "entry '{entry}' is a hard link to '{target}', which is not a regular file earlier in \
         the archive"
    )]
    HardlinkTarget {
        /// The link's name.
        entry: String,
        /// Its target.
        target: String,
    },
    /// A device node, FIFO or socket.
    #[error(
        "entry '{entry}' is a {kind}; firmware packages may hold only files, directories and links"
    )]
    SpecialFile {
        /// The entry name.
        entry: String,
        /// "character device", "block device", "FIFO", "socket".
        kind: &'static str,
    },
    /// A setuid or setgid file.
    #[error("entry '{entry}' has mode {mode:o} with the setuid/setgid bit set; refused")]
    Setuid {
        /// The entry name.
        entry: String,
        /// Its mode.
        mode: u32,
    },
    /// The same path appears twice.
    #[error("entry '{entry}' appears more than once in the archive; refused as ambiguous")]
    Duplicate {
        /// The entry name.
        entry: String,
    },
    /// One file is larger than the per-file limit.
    #[error("entry '{entry}' is larger than the per-file limit of {limit} bytes")]
    FileTooLarge {
        /// The entry name.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// The unpacked total exceeds the limit.
    #[error("the unpacked contents exceed the total limit of {limit} bytes (at entry '{entry}')")]
    TotalTooLarge {
        /// The entry being written.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// More entries than allowed.
    #[error("the archive holds more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The output grows far faster than the input: a decompression bomb.
    #[error(
        "entry '{entry}' expands the archive more than {limit}:1 ({written} bytes out of a \
         {archive_len}-byte archive): refused as a decompression bomb"
    )]
    Bomb {
        /// The entry being written.
        entry: String,
        /// Bytes written so far (or declared).
        written: u64,
        /// Size of the archive file.
        archive_len: u64,
        /// The ratio limit.
        limit: u64,
    },
    /// An entry kind this extractor does not handle.
    #[error("entry '{entry}' is refused: {reason}")]
    Unsupported {
        /// The entry name.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The destination already exists.
    #[error("{}: the unpack destination already exists; unpack into a new directory", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
}
