//! The trust decision: a valid signature by a trusted key over the exact manifest bytes.

use super::error::ArtifactError;
use super::manifest::Manifest;
use super::reader::Head;
use crate::keys::PublicKey;
use std::path::Path;

/// Checks the signatures, then (only then) parses the manifest.
pub(crate) fn trusted_manifest(path: &Path, head: &Head, trusted: &[PublicKey]) -> Result<Manifest, ArtifactError> {
    check_signature(path, head, trusted)?;
    Manifest::parse(path, &head.manifest_bytes)
}

/// Succeeds if some trusted key signed the exact manifest bytes; returns that key's id.
fn check_signature(path: &Path, head: &Head, trusted: &[PublicKey]) -> Result<String, ArtifactError> {
    if trusted.is_empty() {
        return Err(ArtifactError::NoTrustedKeys { path: path.into() });
    }
    if head.signatures.is_empty() {
        return Err(ArtifactError::Unsigned { path: path.into() });
    }
    let mut failed_trusted_key = None;
    for key in trusted {
        let key_id = key.key_id();
        for sig in head.signatures.iter().filter(|s| s.keyid == key_id) {
            if key.verify(&head.manifest_bytes, &sig.sig).is_ok() {
                return Ok(key_id);
            }
            failed_trusted_key = Some(key_id.clone());
        }
    }
    match failed_trusted_key {
        Some(keyid) => Err(ArtifactError::BadSignature { path: path.into(), keyid }),
        None => Err(ArtifactError::UntrustedSigner {
            path: path.into(),
            signers: head.signatures.iter().map(|s| s.keyid.clone()).collect(),
            trusted: trusted.iter().map(PublicKey::key_id).collect(),
        }),
    }
}
