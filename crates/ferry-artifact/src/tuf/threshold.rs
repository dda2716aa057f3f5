//! Signature thresholds: how many distinct trusted keys signed a payload.

use super::error::TufError;
use super::metadata::{Root, Signature};
use super::role::Role;
use std::collections::BTreeSet;

/// Checks that at least `threshold` distinct keys that `authority` trusts for `role` produced a
/// valid signature over `canonical`.
///
/// A key id listed several times counts once; a key present under two key ids counts once;
/// invalid signatures and signatures by unknown keys are ignored (they neither count nor spoil).
pub(crate) fn check_threshold(
    role: Role,
    version: u64,
    canonical: &[u8],
    signatures: &[Signature],
    authority: &Root,
) -> Result<(), TufError> {
    let invalid_root = |reason: String| TufError::InvalidRoot { version: authority.version, reason };
    let role_keys = authority
        .roles
        .get(role.as_str())
        .ok_or_else(|| invalid_root(format!("it defines no {role} role")))?;
    let mut valid_keyids: Vec<String> = Vec::new();
    let mut counted_keys: BTreeSet<String> = BTreeSet::new();
    for sig in signatures {
        if !role_keys.keyids.contains(&sig.keyid) || valid_keyids.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = authority.keys.get(&sig.keyid) else { continue };
        if key.verify(canonical, &sig.sig).is_ok() && counted_keys.insert(key.keyval.public.to_ascii_lowercase()) {
            valid_keyids.push(sig.keyid.clone());
        }
    }
    if (valid_keyids.len() as u64) < role_keys.threshold {
        return Err(TufError::ThresholdNotMet {
            role,
            version,
            root_version: authority.version,
            threshold: role_keys.threshold,
            valid: valid_keyids,
            trusted: role_keys.keyids.clone(),
        });
    }
    Ok(())
}
