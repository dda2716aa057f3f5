//! Signature thresholds: how many distinct trusted keys signed a payload.

use super::error::TufError;
use super::metadata::{Root, Signature};
use super::role::Role;
use crate::keys::PublicKey;
use std::collections::{BTreeMap, BTreeSet};

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
    let invalid_root = |reason: String| TufError::InvalidRoot {
        version: authority.version,
        reason,
    };
    let role_keys = authority
        .roles
        .get(role.as_str())
        .ok_or_else(|| invalid_root(format!("it defines no {role} role")))?;
    let valid_keyids = valid_signers(&authority.keys, &role_keys.keyids, canonical, signatures);
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

/// Key ids (of `keyids`, resolved in `keys`) whose signatures over `canonical` verify, each
/// distinct key counted once; invalid signatures and unknown keys are skipped.
pub(crate) fn valid_signers(
    keys: &BTreeMap<String, PublicKey>,
    keyids: &[String],
    canonical: &[u8],
    signatures: &[Signature],
) -> Vec<String> {
    let mut valid_keyids: Vec<String> = Vec::new();
    let mut counted_keys: BTreeSet<String> = BTreeSet::new();
    for sig in signatures {
        if !keyids.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        let material = if key.keytype == "ed25519" {
            key.keyval.public.to_ascii_lowercase()
        } else {
            key.keyval.public.clone()
        };
        if key.verify(canonical, &sig.sig).is_ok() && counted_keys.insert(material) {
            valid_keyids.push(sig.keyid.clone());
        }
    }
    valid_keyids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::tuf::metadata::RoleKeys;
    use chrono::{TimeZone, Utc};
    use serde_json::Map;
    use std::collections::BTreeMap;

    fn root(keys: &[(&str, &SigningKey)], threshold: u64) -> Root {
        let role = RoleKeys {
            keyids: keys.iter().map(|(id, _)| id.to_string()).collect(),
            threshold,
            unrecognized: Map::new(),
        };
        Root {
            role_type: "root".into(),
            spec_version: "1.0.31".into(),
            version: 4,
            expires: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
            consistent_snapshot: Some(true),
            keys: keys
                .iter()
                .map(|(id, k)| (id.to_string(), k.public()))
                .collect(),
            roles: BTreeMap::from([("snapshot".to_string(), role)]),
            unrecognized: Map::new(),
        }
    }

    fn sig(key: &SigningKey, keyid: &str, msg: &[u8]) -> Signature {
        Signature {
            keyid: keyid.into(),
            sig: key.sign(msg).sig,
        }
    }

    #[test]
    fn counts_distinct_valid_keys_only() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let authority = root(&[("a", &a), ("b", &b), ("a2", &a)], 2);
        let msg = b"payload";
        let check = |sigs: &[Signature]| check_threshold(Role::Snapshot, 7, msg, sigs, &authority);
        check(&[sig(&a, "a", msg), sig(&b, "b", msg)]).unwrap();
        for weak in [
            vec![sig(&a, "a", msg), sig(&a, "a", msg)],
            vec![sig(&a, "a", msg), sig(&a, "a2", msg)],
            vec![sig(&a, "a", msg), sig(&b, "b", b"other")],
            vec![sig(&a, "a", msg), sig(&b, "unlisted", msg)],
        ] {
            let err = check(&weak).unwrap_err();
            assert!(
                matches!(err, TufError::ThresholdNotMet { version: 7, root_version: 4, ref valid, .. } if valid.len() == 1),
                "{err}"
            );
        }
    }

    #[test]
    fn role_missing_from_root_is_reported() {
        let a = SigningKey::generate();
        let err = check_threshold(Role::Targets, 1, b"m", &[], &root(&[("a", &a)], 1)).unwrap_err();
        assert!(
            matches!(err, TufError::InvalidRoot { version: 4, .. }),
            "{err}"
        );
    }
}
