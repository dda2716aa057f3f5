//! The `.ferry` artifact: a POSIX (ustar) tar holding, in this order,
//! `ferry-manifest.json`, `ferry-manifest.sig.json` (a JSON array of `{keyid, sig}` over the
//! exact manifest bytes) and one `payload/<relative path>` regular file per manifest entry.
//!
//! A **live patch** is an artifact like any other (signed by a release key, a TUF target) whose
//! manifest carries `live_patch` {`patches`, `target_build_id`, `new_build_id`, `bundle`}: its
//! version is `<patches>+lpN`, its component `main`, its one payload the signed `ferry-livepatch`
//! bundle, applied to the running process instead of unpacked. Without the field (every
//! earlier manifest) the artifact is a full release.
//!
//! Trust flows one way: [`verify`] and [`unpack_verified`] check a signature by a trusted key
//! over the exact manifest bytes before parsing the manifest, then check every payload's length
//! and sha256 while streaming it. Nothing from an artifact is used before its signature checks.

mod build;
mod error;
mod hashing_reader;
mod inspect;
mod manifest;
mod payload_path;
mod reader;
mod sign;
mod trust;
mod unpack;
mod verify;
mod writer;

pub use build::{build, build_with};
pub use error::ArtifactError;
pub use inspect::inspect;
pub use manifest::{BuildSpec, Hooks, Inspection, LivePatch, Manifest, PayloadEntry};
pub use sign::sign;
pub use unpack::unpack_verified;
pub use verify::verify;

/// The manifest `format` this version writes and reads.
pub const FORMAT: &str = "ferry-artifact/1";
/// Name of the first tar entry.
pub const MANIFEST_NAME: &str = "ferry-manifest.json";
/// Name of the second tar entry.
pub const SIGNATURES_NAME: &str = "ferry-manifest.sig.json";
/// Prefix of every payload entry's name.
pub const PAYLOAD_PREFIX: &str = "payload/";
/// File written into an unpacked artifact's directory: the exact signed manifest bytes.
pub const UNPACKED_MANIFEST_NAME: &str = ".ferry-manifest.json";
/// Largest manifest accepted (larger input is refused before it is read).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest signature file accepted.
pub const MAX_SIGNATURES_BYTES: u64 = 64 * 1024;
