//! Reading an artifact's manifest and signers without a trust decision.

use super::error::ArtifactError;
use super::manifest::{Inspection, Manifest};
use super::reader::ArtifactFile;
use std::path::Path;

/// The manifest, the key ids that signed it and the file size — nothing is verified
/// (use [`super::verify`] before trusting any of it).
pub fn inspect(path: &Path) -> Result<Inspection, ArtifactError> {
    let size = std::fs::metadata(path)
        .map_err(|source| ArtifactError::Io {
            path: path.into(),
            action: "read the artifact's size".into(),
            source,
        })?
        .len();
    let mut file = ArtifactFile::open(path)?;
    let head = file.reader()?.head()?;
    let manifest = Manifest::parse(path, &head.manifest_bytes)?;
    let signer_keyids = head.signatures.iter().map(|s| s.keyid.clone()).collect();
    Ok(Inspection {
        manifest,
        signer_keyids,
        size,
    })
}
