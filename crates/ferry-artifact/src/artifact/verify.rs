//! Verifying an artifact without unpacking it.

use super::error::ArtifactError;
use super::manifest::Manifest;
use super::reader::ArtifactFile;
use super::trust::trusted_manifest;
use crate::keys::PublicKey;
use std::path::Path;

/// Verifies the artifact at `path`: a signature by one of the `trusted` keys over the exact
/// manifest bytes first, then the layout and every payload's length and sha256.
/// Returns the verified manifest.
pub fn verify(path: &Path, trusted: &[PublicKey]) -> Result<Manifest, ArtifactError> {
    let mut file = ArtifactFile::open(path)?;
    let mut reader = file.reader()?;
    let head = reader.head()?;
    let manifest = trusted_manifest(path, &head, trusted)?;
    reader.payloads(&manifest, |_, _| Ok(()))?;
    Ok(manifest)
}
