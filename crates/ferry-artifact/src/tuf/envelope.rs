//! Reading and writing metadata files: `{"signed": {...}, "signatures": [...]}`.

use super::error::TufError;
use super::metadata::{RoleMetadata, Root, Signature, supported_spec_version};
use super::role::Role;
use crate::keys::{SigningKey, canonical_json, try_canonical_json};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A parsed, not yet trusted metadata file.
#[derive(Debug, Clone)]
pub(crate) struct Envelope<T> {
    /// The typed payload.
    pub(crate) signed: T,
    /// Signatures as listed.
    pub(crate) signatures: Vec<Signature>,
    /// Canonical JSON of the raw `signed` value (unknown fields included): what was signed.
    pub(crate) canonical: Vec<u8>,
}

/// Parses `bytes` as metadata of role `T::ROLE`: shape, `_type`, `spec_version`, version ≥ 1.
/// Signatures are not checked here.
pub(crate) fn parse<T: RoleMetadata>(bytes: &[u8]) -> Result<Envelope<T>, TufError> {
    let role = T::ROLE;
    let malformed = |reason: String| TufError::Malformed { role, reason };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(malformed("the file is not a JSON object".into()));
    };
    let signatures: Vec<Signature> = match top.remove("signatures") {
        Some(sigs) => {
            serde_json::from_value(sigs).map_err(|e| malformed(format!("signatures: {e}")))?
        }
        None => return Err(malformed("no \"signatures\" member".into())),
    };
    let signed = match top.remove("signed") {
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(malformed("\"signed\" is not an object".into())),
        None => return Err(malformed("no \"signed\" member".into())),
    };
    match signed.get("_type") {
        Some(Value::String(t)) if t == role.as_str() => {}
        Some(Value::String(t)) => {
            return Err(TufError::WrongType {
                expected: role,
                found: t.clone(),
            });
        }
        _ => return Err(malformed("\"_type\" is missing or not a string".into())),
    }
    let canonical = try_canonical_json(&signed).map_err(|e| malformed(e.to_string()))?;
    let signed: T = serde_json::from_value(signed).map_err(|e| malformed(e.to_string()))?;
    if signed.version() == 0 {
        return Err(malformed("version must be at least 1".into()));
    }
    if !supported_spec_version(signed.spec_version()) {
        return Err(TufError::SpecVersion {
            role,
            version: signed.version(),
            found: signed.spec_version().into(),
        });
    }
    Ok(Envelope {
        signed,
        signatures,
        canonical,
    })
}

/// Checks that a root's role definitions are usable: all four roles, thresholds ≥ 1, unique key ids.
pub(crate) fn validate_root(root: &Root) -> Result<(), TufError> {
    let invalid = |reason: String| TufError::InvalidRoot {
        version: root.version,
        reason,
    };
    let names: BTreeSet<&str> = root.roles.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    if names != wanted {
        return Err(invalid(format!(
            "roles are {names:?}, expected exactly {wanted:?}"
        )));
    }
    for (name, role) in &root.roles {
        if role.threshold == 0 {
            return Err(invalid(format!(
                "role {name} has threshold 0 (must be at least 1)"
            )));
        }
        let unique: BTreeSet<&String> = role.keyids.iter().collect();
        if unique.len() != role.keyids.len() {
            return Err(invalid(format!(
                "role {name} lists a key id more than once"
            )));
        }
    }
    Ok(())
}

/// Serializes one of the metadata types to JSON.
pub(crate) fn to_json<T: Serialize>(signed: &T) -> Value {
    // The metadata types hold strings, integers, string-keyed maps and JSON values only.
    serde_json::to_value(signed).expect("TUF metadata types always serialize to JSON")
}

/// Signs the `signed` payload with every key and returns the metadata file's bytes.
///
/// The signatures cover `canonical_json(signed)`. A payload holding non-integer numbers can be
/// signed but no TUF client (python-tuf or [`super::TrustedSet`]) will accept it.
pub fn sign_metadata(signed: &Value, keys: &[&SigningKey]) -> Vec<u8> {
    let canonical = canonical_json(signed);
    let signatures: Vec<Value> = keys.iter().map(|k| json!(k.sign(&canonical))).collect();
    let mut file = Map::new();
    file.insert("signatures".into(), Value::Array(signatures));
    file.insert("signed".into(), signed.clone());
    let mut bytes =
        serde_json::to_vec_pretty(&Value::Object(file)).expect("a JSON value always serializes");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::metadata::Timestamp;

    fn ts_value() -> Value {
        json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1,
               "expires": "2030-01-01T00:00:00Z", "meta": {"snapshot.json": {"version": 1}}})
    }

    #[test]
    fn signed_file_parses_with_canonical_bytes_of_signed() {
        let key = SigningKey::generate();
        let bytes = sign_metadata(&ts_value(), &[&key]);
        let env = parse::<Timestamp>(&bytes).unwrap();
        assert_eq!(env.canonical, canonical_json(&ts_value()));
        key.public()
            .verify(&env.canonical, &env.signatures[0].sig)
            .unwrap();
    }

    #[test]
    fn rejects_metadata_of_another_role() {
        let bytes = sign_metadata(&ts_value(), &[&SigningKey::generate()]);
        let err = parse::<Root>(&bytes).unwrap_err();
        assert!(
            matches!(err, TufError::WrongType { expected: Role::Root, ref found } if found == "timestamp"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unsupported_spec_version() {
        let mut v = ts_value();
        v["spec_version"] = "2.0.0".into();
        let err = parse::<Timestamp>(&sign_metadata(&v, &[])).unwrap_err();
        assert!(matches!(err, TufError::SpecVersion { .. }), "{err}");
    }

    #[test]
    fn rejects_float_in_signed_because_it_has_no_canonical_form() {
        let mut v = ts_value();
        v["x-ratio"] = json!(0.5);
        let err = parse::<Timestamp>(&sign_metadata(&v, &[])).unwrap_err();
        assert!(err.to_string().contains("/x-ratio"), "{err}");
    }

    #[test]
    fn rejects_version_zero_and_non_json() {
        let mut v = ts_value();
        v["version"] = 0.into();
        assert!(matches!(
            parse::<Timestamp>(&sign_metadata(&v, &[])),
            Err(TufError::Malformed { .. })
        ));
        assert!(matches!(
            parse::<Timestamp>(b"<html>"),
            Err(TufError::Malformed { .. })
        ));
    }
}
