//! Keys in TUF key format (ed25519 signing; ed25519, ECDSA P-256 and RSA-PSS verification), key ids and canonical JSON as python-tuf computes them.
//!
//! A [`PublicKey`] is the TUF key object
//! `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<hex>"}}`; its key id is the hex
//! sha256 of that object's [`canonical_json`]. A [`SigningKey`] signs bytes and yields a
//! [`crate::tuf::Signature`] (`keyid` + hex signature).

mod canonical;
mod error;
mod pem_keys;
mod public_key;
mod signing_key;

pub use canonical::{CanonicalJsonError, canonical_json, try_canonical_json};
pub use error::KeyError;
pub use public_key::{KeyVal, PublicKey};
pub use signing_key::SigningKey;
