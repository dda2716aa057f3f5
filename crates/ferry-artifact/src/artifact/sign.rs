//! Adding a signature to an existing artifact.

use super::PAYLOAD_PREFIX;
use super::error::ArtifactError;
use super::manifest::Manifest;
use super::reader::ArtifactFile;
use super::writer::{append_file, write_head};
use crate::atomic_file::AtomicFile;
use crate::keys::SigningKey;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Adds `key`'s signature over the manifest (replacing an earlier signature by the same key)
/// and atomically rewrites the file. Refuses an artifact whose manifest is invalid or whose
/// payloads do not match it: signing vouches for the content.
pub fn sign(path: &Path, key: &SigningKey) -> Result<(), ArtifactError> {
    let io_err = |action: &str| {
        let action = action.to_string();
        move |source| ArtifactError::Io {
            path: path.into(),
            action,
            source,
        }
    };
    let mode = std::fs::metadata(path)
        .map_err(io_err("read the artifact's permissions"))?
        .permissions()
        .mode()
        & 0o777;
    let mut file = ArtifactFile::open(path)?;
    let mut reader = file.reader()?;
    let head = reader.head()?;
    let manifest = Manifest::parse(path, &head.manifest_bytes)?;
    let mut signatures: Vec<_> = head
        .signatures
        .into_iter()
        .filter(|s| s.keyid != key.key_id())
        .collect();
    signatures.push(key.sign(&head.manifest_bytes));

    let out = AtomicFile::create(path, mode)
        .map_err(io_err("create a temporary file beside the artifact"))?;
    let mut builder = tar::Builder::new(out);
    write_head(&mut builder, &head.manifest_bytes, &signatures)
        .map_err(io_err("write the signed manifest"))?;
    reader.payloads(&manifest, |payload, data| {
        let name = format!("{PAYLOAD_PREFIX}{}", payload.path);
        append_file(&mut builder, &name, payload.length, payload.mode, data).map_err(io_err(
            &format!("copy payload {} into the re-signed artifact", payload.path),
        ))
    })?;
    let out = builder
        .into_inner()
        .map_err(io_err("finish the re-signed artifact"))?;
    out.commit()
        .map_err(io_err("replace the artifact with the re-signed one"))
}
