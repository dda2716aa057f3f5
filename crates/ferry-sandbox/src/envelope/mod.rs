//! Vendor encryption of firmware packages to a device group (`ferry-envelope/1`).
//!
//! A vendor [`seal`]s a package to a device group's X25519 public key and signs it with its
//! ed25519 key; a device [`open`]s it with the group secret and the vendor keys it trusts. The
//! byte format is documented in `crates/ferry-sandbox/ENVELOPE.md`:
//!
//! - ephemeral X25519 agreement with the group key, HKDF-SHA256 over the shared secret bound to
//!   the whole header, ChaCha20-Poly1305 over fixed-size chunks whose nonce carries the chunk
//!   counter and a "last chunk" flag, so reordering, dropping or truncating chunks is detected;
//! - an ed25519 signature by the vendor over a sha256 of the header and every chunk frame.
//!
//! [`open`] decrypts into a temporary file next to the destination, verifies the vendor
//! signature, and only then moves the plaintext into place: a package with a wrong key, a
//! modified byte, a missing chunk or no valid signature leaves nothing behind.

mod error;
mod format;
mod group_key;
mod open;
mod seal;

pub use error::EnvelopeError;
pub use format::{DEFAULT_CHUNK_SIZE, MAGIC, MAX_CHUNK_SIZE, VERSION};
pub use group_key::{GroupPublicKey, GroupSecret};
pub use open::{Opened, open, open_bytes};
pub use seal::{seal, seal_bytes, seal_file};
