//! Errors of artifact handling; each names the artifact and the entry involved and says what to do.

use crate::keys::KeyError;
use std::path::PathBuf;

/// An artifact could not be built, signed, read, verified or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file operation failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The tar structure is broken (truncated, bad checksum, not a tar).
    #[error("{}: not a readable artifact: {reason}; the file is truncated or corrupt — re-download or rebuild it", path.display())]
    Corrupt {
        /// The artifact.
        path: PathBuf,
        /// What broke.
        reason: String,
    },
    /// An entry is not the one the format requires at this position.
    #[error(
        "{}: tar entry #{index} is '{found}' but the format requires {expected}; the file is not a \
         Ferry artifact or was repacked by another tool — rebuild it with Ferry", path.display()
    )]
    UnexpectedEntry {
        /// The artifact.
        path: PathBuf,
        /// Position of the entry (0-based).
        index: usize,
        /// What must be there.
        expected: String,
        /// What is there.
        found: String,
    },
    /// The manifest or signature file exceeds its size limit.
    #[error("{}: {entry} is {size} bytes, more than the {limit}-byte limit; refusing oversized input", path.display())]
    TooLarge {
        /// The artifact.
        path: PathBuf,
        /// The entry.
        entry: &'static str,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The signature file is not a JSON array of `{keyid, sig}`.
    #[error("{}: ferry-manifest.sig.json is invalid: {reason}; re-sign the artifact", path.display())]
    BadSignatureFile {
        /// The artifact.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is not valid.
    #[error("{}: the manifest is invalid: {reason}; rebuild the artifact", path.display())]
    BadManifest {
        /// The artifact.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest has another format version.
    #[error("{}: manifest format '{found}' is not supported (expected '{}'); build it with a matching Ferry version", path.display(), super::FORMAT)]
    UnsupportedFormat {
        /// The artifact.
        path: PathBuf,
        /// The format found.
        found: String,
    },
    /// Verification was asked with an empty trusted key list.
    #[error("{}: no trusted release keys are configured, so nothing can be verified; add the release public key to the configuration", path.display())]
    NoTrustedKeys {
        /// The artifact.
        path: PathBuf,
    },
    /// The artifact carries no signature.
    #[error("{}: the artifact is unsigned; sign it with a release key before publishing it", path.display())]
    Unsigned {
        /// The artifact.
        path: PathBuf,
    },
    /// No signature is by a trusted key.
    #[error(
        "{}: signed by [{}] but none of these keys is trusted (trusted: [{}]); sign it with a trusted \
         release key or add the signer's public key to the trusted keys", path.display(), signers.join(", "), trusted.join(", ")
    )]
    UntrustedSigner {
        /// The artifact.
        path: PathBuf,
        /// Key ids that signed.
        signers: Vec<String>,
        /// Key ids trusted.
        trusted: Vec<String>,
    },
    /// A trusted key's signature does not verify over the manifest.
    #[error(
        "{}: the signature by trusted key {keyid} does not match the manifest; the manifest was \
         modified after signing or the signature is corrupt — rebuild or re-download the artifact", path.display()
    )]
    BadSignature {
        /// The artifact.
        path: PathBuf,
        /// The trusted key id whose signature failed.
        keyid: String,
    },
    /// A payload entry name that could escape the destination.
    #[error("{}: payload entry '{entry}' is unsafe ({reason}); refusing to extract a path that could escape the destination", path.display())]
    UnsafePayloadPath {
        /// The artifact.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// Why it is unsafe.
        reason: String,
    },
    /// A link, device node, directory or other non-regular entry.
    #[error("{}: entry '{entry}' is a {kind}; artifacts carry regular files only — rebuild the artifact", path.display())]
    ForbiddenEntryType {
        /// The artifact.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// Its type.
        kind: String,
    },
    /// A payload the signed manifest does not list.
    #[error("{}: payload {entry} is not listed in the signed manifest; the artifact was tampered with — re-download or rebuild it", path.display())]
    UnlistedPayload {
        /// The artifact.
        path: PathBuf,
        /// The payload path.
        entry: String,
    },
    /// The same payload twice.
    #[error("{}: payload {entry} appears more than once; the artifact was tampered with — re-download or rebuild it", path.display())]
    DuplicatePayload {
        /// The artifact.
        path: PathBuf,
        /// The payload path.
        entry: String,
    },
    /// A listed payload that is not in the artifact.
    #[error("{}: payload {entry} is listed in the signed manifest but missing from the artifact; the file is truncated or incomplete — re-download or rebuild it", path.display())]
    MissingPayload {
        /// The artifact.
        path: PathBuf,
        /// The payload path.
        entry: String,
    },
    /// A payload whose size differs from the signed manifest.
    #[error("{}: payload {entry} is {found} bytes but the signed manifest says {expected}; the artifact is truncated or was tampered with — rebuild or re-download it", path.display())]
    PayloadLengthMismatch {
        /// The artifact.
        path: PathBuf,
        /// The payload path.
        entry: String,
        /// Length in the manifest.
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// A payload whose sha256 differs from the signed manifest.
    #[error("{}: payload {entry} sha256 {found} does not match {expected} in the signed manifest; the artifact is corrupt or was tampered with — rebuild or re-download it", path.display())]
    PayloadHashMismatch {
        /// The artifact.
        path: PathBuf,
        /// The payload path.
        entry: String,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 found.
        found: String,
    },
    /// The unpack destination already exists.
    #[error("{}: the unpack destination already exists; remove it or choose a new directory", dest.display())]
    DestinationExists {
        /// The destination.
        dest: PathBuf,
    },
    /// A source file cannot be packed.
    #[error("{}: cannot be packed: {reason}", file.display())]
    Source {
        /// The source file or directory.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The output path lies inside the source directory.
    #[error("{}: the output lies inside the source directory {}; write the artifact somewhere else", out.display(), src.display())]
    OutputInsideSource {
        /// The source directory.
        src: PathBuf,
        /// The output path.
        out: PathBuf,
    },
    /// A key problem while signing.
    #[error(transparent)]
    Key(#[from] KeyError),
}
