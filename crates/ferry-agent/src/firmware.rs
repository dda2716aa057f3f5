//! Firmware metadata on the device: fetched from the server, verified against the signed TUF
//! target `firmware/{id}.json` (length and sha256), and kept per firmware in
//! `state_dir/firmware/{id}.json`. The preflight takes the vendor key and unpack rule from it.

use crate::agent::Agent;
use crate::error::{AgentError, Result};
use crate::tuf_client::TufClientError;
use ferry_artifact::keys::PublicKey;
use ferry_core::firmware::{FirmwareMetadata, MAX_METADATA_BYTES};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the verified metadata of firmware `id` is kept.
pub fn stored_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("firmware").join(format!("{id}.json"))
}

/// The verified metadata of firmware `id` kept on this device, if any.
pub fn load_stored(state_dir: &Path, id: &str) -> Result<Option<FirmwareMetadata>> {
    let path = stored_path(state_dir, id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::error::io_err(&path, "read firmware metadata", e)),
    };
    FirmwareMetadata::parse_for(id, &bytes)
        .map(Some)
        .map_err(|e| AgentError::CorruptState {
            path,
            reason: e.to_string(),
        })
}

/// The vendor's public key named by the metadata.
pub fn vendor_key(meta: &FirmwareMetadata) -> std::result::Result<PublicKey, String> {
    let key: PublicKey = serde_json::from_value(meta.vendor_public_key.clone()).map_err(|e| {
        format!(
            "firmware '{}': vendor_public_key is not a key object: {e}",
            meta.id
        )
    })?;
    key.check_supported()
        .map_err(|e| format!("firmware '{}': vendor_public_key: {e}", meta.id))?;
    Ok(key)
}

/// Checks fetched `bytes` against the signed length and sha256 of the firmware's target.
pub fn verify_bytes(
    id: &str,
    bytes: &[u8],
    signed_length: u64,
    signed_sha256: &str,
) -> std::result::Result<FirmwareMetadata, String> {
    let sha = hex::encode(Sha256::digest(bytes));
    if bytes.len() as u64 != signed_length || !sha.eq_ignore_ascii_case(signed_sha256) {
        return Err(format!(
            "metadata of firmware '{id}' from the server is {} bytes with sha256 {sha}, but the signed TUF target {} says {signed_length} bytes with sha256 {signed_sha256}; refusing it (the stored copy is kept)",
            bytes.len(),
            FirmwareMetadata::target_name(id)
        ));
    }
    FirmwareMetadata::parse_for(id, bytes).map_err(|e| e.to_string())
}

impl Agent {
    /// Fetches firmware `id`'s metadata from the server, verifies it against the TUF target
    /// `firmware/{id}.json` (refreshed from `metadata_base_url`), checks its vendor key, and
    /// keeps it in the state directory. Tampered or unsigned metadata is refused and the
    /// stored copy stays as it was.
    pub async fn refresh_firmware(
        &mut self,
        id: &str,
        metadata_base_url: &str,
    ) -> Result<FirmwareMetadata> {
        let name = FirmwareMetadata::target_name(id);
        let now = (self.clock)();
        let (_set, found) = self
            .tuf
            .refresh_target(&self.api, metadata_base_url, now, &name)
            .await?;
        let found = found
            .filter(|f| f.name == name)
            .ok_or_else(|| TufClientError::MissingTarget { name: name.clone() })?;
        let signed_sha = found.file.hashes.get("sha256").cloned().unwrap_or_default();
        let token = self.token().await?;
        let bytes = self
            .api
            .get_authed(
                &token,
                &format!("/api/v1/device/firmware/{id}"),
                MAX_METADATA_BYTES as u64,
            )
            .await?;
        let refused = |reason: String| AgentError::Artifact {
            path: PathBuf::from(&name),
            reason,
        };
        let meta = verify_bytes(id, &bytes, found.file.length, &signed_sha).map_err(refused)?;
        vendor_key(&meta).map_err(refused)?;
        let path = stored_path(self.store.dir(), id);
        crate::state::ensure_dir(path.parent().expect("firmware dir"))?;
        crate::state::write_atomic(&path, &bytes, 0o644)?;
        self.store.log(&format!(
            "firmware '{id}' metadata verified against signed target {name}: vendor {}, unpack rule {}, {} hardware interface(s)",
            meta.vendor,
            meta.unpack_rule,
            meta.interfaces.len()
        ));
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_differ_from_the_signed_target_are_refused() {
        let meta = FirmwareMetadata {
            id: "fw".into(),
            name: "n".into(),
            kind: "application".into(),
            vendor: "v".into(),
            vendor_public_key: serde_json::json!({"keytype": "ed25519"}),
            unpack_rule: "tar".into(),
            interfaces: vec![],
        };
        let bytes = meta.canonical_bytes();
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            verify_bytes("fw", &bytes, bytes.len() as u64, &sha).unwrap(),
            meta
        );
        let mut tampered = bytes.clone();
        let at = tampered.iter().position(|b| *b == b't').unwrap();
        tampered[at] = b'T';
        let err = verify_bytes("fw", &tampered, bytes.len() as u64, &sha).unwrap_err();
        assert!(err.contains("refusing"), "{err}");
    }
}
