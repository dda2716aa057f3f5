//! Ferry's delta engine: executable-aware binary diffs, streaming apply and tree deltas.
//!
//! - [`diff`] / [`diff_files`]: make a patch (suffix-array matching with approximate extension,
//!   executable-aware normalisation of ELF x86-64 / AArch64 / ARM code and pointers, zstd).
//! - [`apply`] / [`apply_files`]: rebuild the new file in bounded memory, verifying the old file
//!   before and the new file after.
//! - [`tree`]: deltas between release directories, with pre-verification of every file touched.
//! - [`package`]: the delta package a server ships: a tree delta plus the new release's signed
//!   manifest.
//! - [`bench`]: the comparison against bsdiff, xdelta3, zstd and HDiffPatch.
//!
//! The patch format is documented in `FORMAT.md` beside this crate's `Cargo.toml`.

#![deny(missing_docs)]

mod apply;
pub mod bench;
mod diff;
mod error;
pub mod exe;
mod files;
pub mod format;
mod matcher;
pub mod package;
mod streams;
mod suffix;
pub mod tree;
mod varint;

pub use apply::{ApplyStats, apply};
pub use diff::{DiffOptions, DiffStats, diff};
pub use error::{DeltaError, Result};
pub use files::{apply_files, diff_files};
