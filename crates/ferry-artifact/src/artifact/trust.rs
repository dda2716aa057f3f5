//! The trust decision: a valid signature by a trusted key over the exact manifest bytes.

use super::error::ArtifactError;
use super::manifest::Manifest;
use super::reader::Head;
use crate::keys::PublicKey;
use std::path::Path;

/// Checks the signatures, then (only then) parses the manifest.
pub(crate) fn trusted_manifest(
    path: &Path,
    head: &Head,
    trusted: &[PublicKey],
) -> Result<Manifest, ArtifactError> {
    check_signature(path, head, trusted)?;
    Manifest::parse(path, &head.manifest_bytes)
}

/// Succeeds if some trusted key signed the exact manifest bytes; returns that key's id.
fn check_signature(
    path: &Path,
    head: &Head,
    trusted: &[PublicKey],
) -> Result<String, ArtifactError> {
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
        Some(keyid) => Err(ArtifactError::BadSignature {
            path: path.into(),
            keyid,
        }),
        None => Err(ArtifactError::UntrustedSigner {
            path: path.into(),
            signers: head.signatures.iter().map(|s| s.keyid.clone()).collect(),
            trusted: trusted.iter().map(PublicKey::key_id).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn head(bytes: &[u8], signers: &[&SigningKey]) -> Head {
        Head {
            manifest_bytes: bytes.to_vec(),
            signatures: signers.iter().map(|k| k.sign(bytes)).collect(),
        }
    }

    #[test]
    fn any_trusted_signer_is_enough_among_others() {
        let (release, other) = (SigningKey::generate(), SigningKey::generate());
        let h = head(b"manifest", &[&other, &release]);
        let trusted = [SigningKey::generate().public(), release.public()];
        assert_eq!(
            check_signature(Path::new("a"), &h, &trusted).unwrap(),
            release.key_id()
        );
    }

    #[test]
    fn a_bad_signature_by_a_trusted_key_is_reported_as_such() {
        let release = SigningKey::generate();
        let mut h = head(b"manifest", &[&release]);
        h.manifest_bytes.push(b' ');
        let err = check_signature(Path::new("a.ferry"), &h, &[release.public()]).unwrap_err();
        assert!(
            matches!(err, ArtifactError::BadSignature { ref keyid, .. } if keyid == release.key_id()),
            "{err}"
        );
        assert!(err.to_string().contains("a.ferry"), "{err}");
    }
}
