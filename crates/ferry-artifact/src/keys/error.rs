//! Errors of key handling.

use std::io;
use std::path::PathBuf;

/// A key could not be read, written, parsed or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What was attempted ("read the key file", "write the key file").
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The key file is not a TUF key object.
    #[error(
        "{}: not a valid key file ({reason}); expected JSON like \
         {{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\",\"keyval\":{{\"public\":\"<hex>\"}}}} \
         (private key files also hold \"private\")", path.display()
    )]
    Format {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key type or scheme is not one Ferry verifies.
    #[error(
        "key type '{keytype}' with scheme '{scheme}' is not supported: Ferry verifies ed25519 \
         (keytype and scheme \"ed25519\"), ECDSA P-256 (keytype \"ecdsa\" or \
         \"ecdsa-sha2-nistp256\", scheme \"ecdsa-sha2-nistp256\") and RSA-PSS (keytype \"rsa\", \
         scheme \"rsassa-pss-sha256\") keys"
    )]
    Unsupported {
        /// The key's `keytype`.
        keytype: String,
        /// The key's `scheme`.
        scheme: String,
    },
    /// Key or signature bytes are not well formed.
    #[error("invalid {what}: {reason}")]
    Malformed {
        /// What was malformed ("public key", "private key", "signature").
        what: &'static str,
        /// Expected vs found.
        reason: String,
    },
    /// A private key file whose public half does not match its private half.
    #[error(
        "{}: the public key in the file does not belong to its private key; the file is \
         corrupt or was edited — restore it from a backup or generate a new key", path.display()
    )]
    PublicMismatch {
        /// The key file.
        path: PathBuf,
    },
    /// A signature that does not verify with the key.
    #[error(
        "signature by key {keyid} does not verify: the signed data was modified after signing \
         or the signature was made with a different key"
    )]
    BadSignature {
        /// Key id of the key that was checked.
        keyid: String,
    },
}
