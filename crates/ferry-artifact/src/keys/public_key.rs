//! The public half of a key, as a TUF key object.

use super::canonical::canonical_json;
use super::error::KeyError;
use crate::atomic_file::write_atomic;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Key type and scheme Ferry signs and verifies with.
pub(crate) const ED25519: &str = "ed25519";
/// Key type of ECDSA keys (securesystemslib's current name).
pub(crate) const ECDSA: &str = "ecdsa";
/// Scheme of ECDSA P-256 / SHA-256 keys; also accepted as the legacy key type.
pub(crate) const ECDSA_P256: &str = "ecdsa-sha2-nistp256";
/// Key type of RSA keys.
pub(crate) const RSA: &str = "rsa";
/// Scheme of RSA keys: RSASSA-PSS with SHA-256.
pub(crate) const RSA_PSS_SHA256: &str = "rsassa-pss-sha256";

/// The signature schemes Ferry verifies.
enum SchemeKind {
    Ed25519,
    EcdsaP256,
    RsaPssSha256,
}

/// A TUF public key object, e.g. `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<hex>"}}`.
///
/// Verification supports `ed25519` (hex key), `ecdsa`/`ecdsa-sha2-nistp256` with scheme
/// `ecdsa-sha2-nistp256` (PEM SubjectPublicKeyInfo) and `rsa` with scheme `rsassa-pss-sha256` (PEM).
///
/// Fields Ferry does not know (such as legacy `keyid_hash_algorithms`) are kept, so the key id
/// of a key read from someone else's metadata is computed over exactly what they wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Key type: `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256` or `rsa`.
    pub keytype: String,
    /// Signature scheme: `ed25519`, `ecdsa-sha2-nistp256` or `rsassa-pss-sha256`.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
    /// Other fields of the key object, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// The `keyval` member of a public key object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key: lowercase hex for ed25519 (32 bytes), PEM for ECDSA and RSA.
    pub public: String,
}

impl PublicKey {
    /// An ed25519 public key object for the 32 raw key bytes.
    pub fn ed25519(bytes: &[u8; 32]) -> PublicKey {
        PublicKey {
            keytype: ED25519.to_string(),
            scheme: ED25519.to_string(),
            keyval: KeyVal {
                public: hex::encode(bytes),
            },
            unrecognized: Map::new(),
        }
    }

    /// The key object as JSON.
    pub fn to_json(&self) -> Value {
        let mut obj = self.unrecognized.clone();
        obj.insert("keytype".into(), Value::String(self.keytype.clone()));
        obj.insert("scheme".into(), Value::String(self.scheme.clone()));
        let mut keyval = Map::new();
        keyval.insert("public".into(), Value::String(self.keyval.public.clone()));
        obj.insert("keyval".into(), Value::Object(keyval));
        Value::Object(obj)
    }

    /// The key id: hex sha256 of the canonical JSON of the key object (as python-tuf computes it).
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(canonical_json(&self.to_json())))
    }

    /// The raw ed25519 verifying key.
    pub fn ed25519_key(&self) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
        if self.keytype != ED25519 || self.scheme != ED25519 {
            return Err(KeyError::Unsupported {
                keytype: self.keytype.clone(),
                scheme: self.scheme.clone(),
            });
        }
        let bytes = decode_fixed::<32>("public key", &self.keyval.public)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::Malformed {
            what: "public key",
            reason: e.to_string(),
        })
    }

    /// Checks the hex signature `sig_hex` over `msg` with this key's scheme:
    /// `ed25519` (strict verification), `ecdsa-sha2-nistp256` (DER signature, SHA-256) or
    /// `rsassa-pss-sha256` (MGF1-SHA-256, any salt length, as securesystemslib verifies).
    pub fn verify(&self, msg: &[u8], sig_hex: &str) -> Result<(), KeyError> {
        match self.scheme_kind()? {
            SchemeKind::Ed25519 => {
                let key = self.ed25519_key()?;
                let sig = ed25519_dalek::Signature::from_bytes(&decode_fixed::<64>(
                    "signature", sig_hex,
                )?);
                key.verify_strict(msg, &sig)
                    .map_err(|_| self.bad_signature())
            }
            SchemeKind::EcdsaP256 => {
                let key = super::pem_keys::p256_key(&self.keyval.public)?;
                let der = decode_hex("signature", sig_hex)?;
                super::pem_keys::verify_p256(&key, msg, &der).map_err(|_| self.bad_signature())
            }
            SchemeKind::RsaPssSha256 => {
                let key = super::pem_keys::rsa_key(&self.keyval.public)?;
                let sig = decode_hex("signature", sig_hex)?;
                super::pem_keys::verify_rsa_pss_sha256(&key, msg, &sig)
                    .map_err(|_| self.bad_signature())
            }
        }
    }

    /// Checks that the key is of a supported type and its key material parses.
    pub fn check_supported(&self) -> Result<(), KeyError> {
        match self.scheme_kind()? {
            SchemeKind::Ed25519 => self.ed25519_key().map(|_| ()),
            SchemeKind::EcdsaP256 => super::pem_keys::p256_key(&self.keyval.public).map(|_| ()),
            SchemeKind::RsaPssSha256 => super::pem_keys::rsa_key(&self.keyval.public).map(|_| ()),
        }
    }

    fn scheme_kind(&self) -> Result<SchemeKind, KeyError> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => Ok(SchemeKind::Ed25519),
            (ECDSA | ECDSA_P256, ECDSA_P256) => Ok(SchemeKind::EcdsaP256),
            (RSA, RSA_PSS_SHA256) => Ok(SchemeKind::RsaPssSha256),
            _ => Err(KeyError::Unsupported {
                keytype: self.keytype.clone(),
                scheme: self.scheme.clone(),
            }),
        }
    }

    fn bad_signature(&self) -> KeyError {
        KeyError::BadSignature {
            keyid: self.key_id(),
        }
    }

    /// Writes the key object as JSON to `path` (atomically, mode 0644).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut text =
            serde_json::to_vec_pretty(&self.to_json()).map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        text.push(b'\n');
        write_atomic(path, &text, 0o644).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            action: "write the public key file",
            source,
        })
    }

    /// Reads a public key object from `path` (any supported key type); a private key file is
    /// accepted too (its public half is used).
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            action: "read the public key file",
            source,
        })?;
        let key: PublicKey = serde_json::from_slice(&bytes).map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        key.check_supported().map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(key)
    }
}

/// Decodes hex of any length.
pub(crate) fn decode_hex(what: &'static str, text: &str) -> Result<Vec<u8>, KeyError> {
    hex::decode(text).map_err(|e| KeyError::Malformed {
        what,
        reason: format!("not hex: {e}"),
    })
}

/// Decodes exactly `N` bytes of hex.
pub(crate) fn decode_fixed<const N: usize>(
    what: &'static str,
    text: &str,
) -> Result<[u8; N], KeyError> {
    let bytes = hex::decode(text).map_err(|e| KeyError::Malformed {
        what,
        reason: format!("not hex: {e}"),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| KeyError::Malformed {
        what,
        reason: format!(
            "expected {N} bytes ({} hex digits), found {} bytes",
            N * 2,
            b.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use serde_json::json;

    #[test]
    fn key_id_is_sha256_of_canonical_key_object() {
        let key = PublicKey::ed25519(&[7u8; 32]);
        let canonical = format!(
            r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
            hex::encode([7u8; 32])
        );
        assert_eq!(
            key.key_id(),
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
    }

    #[test]
    fn key_id_covers_unrecognized_fields_like_legacy_keyid_hash_algorithms() {
        let plain = PublicKey::ed25519(&[1u8; 32]);
        let mut legacy = plain.clone();
        legacy
            .unrecognized
            .insert("keyid_hash_algorithms".into(), json!(["sha256", "sha512"]));
        assert_ne!(plain.key_id(), legacy.key_id());
        let reparsed: PublicKey = serde_json::from_value(legacy.to_json()).unwrap();
        assert_eq!(reparsed.key_id(), legacy.key_id());
    }

    #[test]
    fn verifies_own_signature_and_rejects_tampered_message() {
        let sk = SigningKey::generate();
        let sig = sk.sign(b"hello");
        sk.public().verify(b"hello", &sig.sig).unwrap();
        let err = sk.public().verify(b"hellO", &sig.sig).unwrap_err();
        assert!(
            matches!(err, KeyError::BadSignature { ref keyid } if *keyid == sk.public().key_id()),
            "{err}"
        );
    }

    #[test]
    fn rejects_malformed_signature_hex_with_expected_length() {
        let err = SigningKey::generate()
            .public()
            .verify(b"m", "abcd")
            .unwrap_err();
        assert!(err.to_string().contains("expected 64 bytes"), "{err}");
    }

    #[test]
    fn rejects_unsupported_key_types() {
        let mut key = SigningKey::generate().public();
        key.keytype = "rsa".into();
        key.scheme = "rsa-pkcs1v15-sha256".into();
        let err = key.verify(b"m", &"00".repeat(64)).unwrap_err();
        assert!(matches!(err, KeyError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn public_key_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.pub.json");
        let key = SigningKey::generate().public();
        key.save(&path).unwrap();
        assert_eq!(PublicKey::load(&path).unwrap(), key);
        let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            written,
            json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": key.keyval.public}})
        );
    }

    #[test]
    fn loading_a_garbled_public_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pub");
        std::fs::write(
            &path,
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"zz"}}"#,
        )
        .unwrap();
        let err = PublicKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.pub") && err.contains("not hex"), "{err}");
    }
}
