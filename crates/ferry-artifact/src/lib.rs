//! Ferry's trust layer: ed25519 keys in TUF format, the signed `.ferry` artifact format, and
//! TUF 1.0 repository metadata (server-side signing and a pure client-side verifier).
//!
//! - [`keys`]: signing and public keys, key ids and canonical JSON exactly as python-tuf and
//!   securesystemslib compute them.
//! - [`artifact`]: build, sign, inspect, verify and safely unpack `.ferry` files.
//! - [`tuf`]: metadata types, [`tuf::Repository`] (server) and [`tuf::TrustedSet`] (client).

#![deny(missing_docs)]

pub mod artifact;
mod atomic_file;
pub mod keys;
pub mod tuf;
