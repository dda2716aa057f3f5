//! Errors of sealing and opening envelopes.

use std::io;
use std::path::PathBuf;

/// An envelope could not be sealed or opened. Every variant says what to check.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Reading or writing a file failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The input does not start with the envelope magic.
    #[error(
        "not a Ferry envelope (expected the magic bytes \"FERRYENC\" at the start); was the \
         package encrypted with `ferry-envelope/1`?"
    )]
    NotAnEnvelope,
    /// The envelope format version is not one this build reads.
    #[error(
        "envelope format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// A header field is out of range.
    #[error("malformed envelope header: {0}")]
    BadHeader(String),
    /// The envelope was encrypted to another device group key.
    #[error(
        "the package is encrypted to group key {envelope_key}, but this device holds the secret \
         for group key {our_key}: it was sealed for another device group, or this device has the \
         wrong group secret"
    )]
    WrongRecipient {
        /// Fingerprint of the key the envelope names.
        envelope_key: String,
        /// Fingerprint of the key we hold.
        our_key: String,
    },
    /// A chunk failed authentication.
    #[error(
        "chunk {index} does not decrypt: the ciphertext was modified, chunks were reordered, or \
         the envelope was sealed with a different key"
    )]
    Tampered {
        /// Zero-based chunk index.
        index: u64,
    },
    /// The input ended before the last chunk.
    #[error(
        "the envelope is truncated: it ends after {chunks} chunk(s) without the final chunk \
         (download it again)"
    )]
    Truncated {
        /// Chunks read before the end.
        chunks: u64,
    },
    /// No vendor signature follows the final chunk.
    #[error(
        "the envelope carries no vendor signature after its final chunk: refusing an unsigned \
         package (the vendor must seal it with its signing key)"
    )]
    Unsigned,
    /// Bytes follow the signature.
    #[error("{extra} unexpected byte(s) after the vendor signature: the envelope was modified")]
    TrailingData {
        /// Count of extra bytes (at least 1).
        extra: u64,
    },
    /// No trusted vendor key was given.
    #[error("no trusted vendor keys were given: cannot verify who made the package")]
    NoTrustedKeys,
    /// The signer is not among the trusted vendor keys.
    #[error(
        "the package is signed by key {signer}, which is not a trusted vendor key (trusted: {}); \
         add the vendor's public key to the firmware metadata if this vendor is expected",
        trusted.join(", ")
    )]
    UntrustedSigner {
        /// Key id of the signer.
        signer: String,
        /// Trusted key ids.
        trusted: Vec<String>,
    },
    /// The signature by a trusted key does not verify.
    #[error(
        "the vendor signature by key {keyid} does not verify over the envelope: it was modified \
         after signing"
    )]
    BadSignature {
        /// Key id of the trusted key.
        keyid: String,
    },
    /// The destination already exists.
    #[error("{}: destination already exists; choose a new path or remove it first", path.display())]
    DestinationExists {
        /// The destination path.
        path: PathBuf,
    },
    /// A group key file could not be parsed.
    #[error("{}: not a Ferry group key file ({reason})", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
