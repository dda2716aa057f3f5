//! Errors of the delta engine, each naming what went wrong and where.

use std::path::PathBuf;

/// Everything that can go wrong while diffing or applying a delta.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The old file is not the one the patch was made for.
    #[error(
        "patch is for another base file: expected old file of {expected_size} bytes with sha256 {expected}, found {found_size} bytes with sha256 {found}"
    )]
    OldMismatch {
        /// sha256 (hex) recorded in the patch.
        expected: String,
        /// sha256 (hex) of the old file that was given.
        found: String,
        /// Size recorded in the patch.
        expected_size: u64,
        /// Size of the old file that was given.
        found_size: u64,
    },
    /// The rebuilt file does not hash to what the patch promised.
    #[error("output hash mismatch: patch promised sha256 {expected}, rebuilt file has {found}")]
    OutputMismatch {
        /// sha256 (hex) recorded in the patch.
        expected: String,
        /// sha256 (hex) of the bytes produced.
        found: String,
    },
    /// The patch ended before its end marker.
    #[error("truncated patch: ended while reading {what}")]
    Truncated {
        /// The part of the patch being read.
        what: &'static str,
    },
    /// The patch is structurally invalid.
    #[error("corrupt patch: {0}")]
    Corrupt(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An I/O error on a stream that has no path (old/patch/out readers and writers).
    #[error("I/O error while {action}: {source}")]
    Stream {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tree delta or its target directory is not acceptable.
    #[error("tree delta refused: {0}")]
    Tree(String),
    /// Pre-verification of a tree delta failed: existing files differ from what it expects.
    #[error("pre-verification failed for {} file(s): {}", .0.len(), crate::tree::describe(.0))]
    Preverify(Vec<crate::tree::Mismatch>),
    /// The benchmark could not run.
    #[error("benchmark: {0}")]
    Bench(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DeltaError>;

impl DeltaError {
    /// Wraps an I/O error on a file with the action and path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DeltaError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Wraps an I/O error on a stream; an unexpected EOF becomes [`DeltaError::Truncated`].
    pub fn stream(action: &'static str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            DeltaError::Truncated { what: action }
        } else {
            DeltaError::Stream { action, source }
        }
    }
}
