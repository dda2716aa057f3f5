//! The private half of a key: signs bytes, saved as a mode-0600 JSON key file.

use super::error::KeyError;
use super::public_key::{ED25519, PublicKey, decode_fixed};
use crate::atomic_file::write_atomic;
use crate::tuf::Signature;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// An ed25519 private key together with its TUF public key object and key id.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
    key_id: String,
}

/// On-disk form: `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":hex,"private":hex}}`.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    keytype: String,
    scheme: String,
    keyval: PrivateKeyVal,
}

#[derive(Serialize, Deserialize)]
struct PrivateKeyVal {
    public: String,
    private: String,
}

impl SigningKey {
    /// A new random key (from the operating system's random source).
    pub fn generate() -> SigningKey {
        SigningKey::from_seed(&rand::random::<[u8; 32]>())
    }

    /// The key whose 32-byte ed25519 seed (the "private" value) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::ed25519(inner.verifying_key().as_bytes());
        let key_id = public.key_id();
        SigningKey {
            inner,
            public,
            key_id,
        }
    }

    /// The public key object.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key id (hex sha256 of the canonical public key object).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `msg`; the signature carries this key's id and the hex signature.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature {
            keyid: self.key_id.clone(),
            sig: hex::encode(self.inner.sign(msg).to_bytes()),
        }
    }

    /// Writes the key file to `path` atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let file = KeyFile {
            keytype: ED25519.into(),
            scheme: ED25519.into(),
            keyval: PrivateKeyVal {
                public: self.public.keyval.public.clone(),
                private: hex::encode(self.inner.to_bytes()),
            },
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(path, &text, 0o600).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            action: "write the private key file",
            source,
        })
    }

    /// Reads a key file written by [`SigningKey::save`], checking its public half.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            action: "read the private key file",
            source,
        })?;
        let format = |reason: String| KeyError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
        if file.keytype != ED25519 || file.scheme != ED25519 {
            return Err(KeyError::Unsupported {
                keytype: file.keytype,
                scheme: file.scheme,
            });
        }
        let seed = decode_fixed::<32>("private key", &file.keyval.private)
            .map_err(|e| format(e.to_string()))?;
        let key = SigningKey::from_seed(&seed);
        if !key
            .public
            .keyval
            .public
            .eq_ignore_ascii_case(&file.keyval.public)
        {
            return Err(KeyError::PublicMismatch {
                path: path.to_path_buf(),
            });
        }
        Ok(key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_key_file_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = SigningKey::generate();
        key.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        assert_eq!(loaded.sign(b"x").sig, key.sign(b"x").sig);
    }

    #[test]
    fn key_file_has_the_tuf_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let key = SigningKey::from_seed(&[9u8; 32]);
        key.save(&path).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["keytype"], "ed25519");
        assert_eq!(v["scheme"], "ed25519");
        assert_eq!(v["keyval"]["private"], hex::encode([9u8; 32]));
        assert_eq!(v["keyval"]["public"], key.public().keyval.public);
    }

    #[test]
    fn rejects_key_file_whose_public_half_was_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        SigningKey::generate().save(&path).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["keyval"]["public"] = SigningKey::generate().public().keyval.public.into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(matches!(
            SigningKey::load(&path),
            Err(KeyError::PublicMismatch { .. })
        ));
    }

    #[test]
    fn missing_key_file_error_names_the_path() {
        let err = SigningKey::load(Path::new("/nonexistent/ferry.key"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/ferry.key") && err.contains("read the private key file"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_does_not_leak_the_private_key() {
        let key = SigningKey::from_seed(&[3u8; 32]);
        let text = format!("{key:?}");
        assert!(!text.contains(&hex::encode([3u8; 32])));
        assert!(text.contains(key.key_id()));
    }
}
