//! Device group X25519 keys and their key file.

use super::error::EnvelopeError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The secret X25519 key a device group decrypts packages with.
#[derive(Clone)]
pub struct GroupSecret {
    secret: StaticSecret,
}

/// The public X25519 key vendors encrypt packages to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupPublicKey(pub [u8; 32]);

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kind: String,
    public: String,
    secret: String,
}

const KIND: &str = "ferry-group-x25519";

impl GroupSecret {
    /// A new random group secret from the operating system's random source.
    pub fn generate() -> GroupSecret {
        GroupSecret::from_bytes(rand::random::<[u8; 32]>())
    }

    /// The group secret with these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> GroupSecret {
        GroupSecret {
            secret: StaticSecret::from(bytes),
        }
    }

    /// The public half.
    pub fn public(&self) -> GroupPublicKey {
        GroupPublicKey(PublicKey::from(&self.secret).to_bytes())
    }

    /// X25519 agreement with a peer public key; `None` if the result is all zeros (a
    /// low-order peer key that would make the derived key predictable).
    pub(crate) fn agree(&self, peer: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer));
        shared
            .was_contributory()
            .then(|| Zeroizing::new(shared.to_bytes()))
    }

    /// Writes `{"kind":"ferry-group-x25519","public":hex,"secret":hex}` with mode 0600; the
    /// file must not exist yet.
    pub fn save(&self, path: &Path) -> Result<(), EnvelopeError> {
        let file = KeyFile {
            kind: KIND.into(),
            public: hex::encode(self.public().0),
            secret: hex::encode(self.secret.to_bytes()),
        };
        let text = Zeroizing::new(serde_json::to_vec_pretty(&file).expect("serializable"));
        let io = |action| {
            move |source| EnvelopeError::Io {
                path: path.into(),
                action,
                source,
            }
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("create the group key file"))?;
        out.write_all(&text)
            .and_then(|()| out.sync_all())
            .map_err(io("write the group key file"))
    }

    /// Reads a key file written by [`GroupSecret::save`], checking its public half.
    pub fn load(path: &Path) -> Result<GroupSecret, EnvelopeError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| EnvelopeError::Io {
            path: path.into(),
            action: "read the group key file",
            source,
        })?);
        let bad = |reason: String| EnvelopeError::KeyFile {
            path: path.into(),
            reason,
        };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if file.kind != KIND {
            return Err(bad(format!("kind is {:?}, expected {KIND:?}", file.kind)));
        }
        let secret = Zeroizing::new(hex::decode(&file.secret).map_err(|e| bad(e.to_string()))?);
        let secret: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| bad("secret is not 32 bytes".into()))?;
        let key = GroupSecret::from_bytes(secret);
        if hex::encode(key.public().0) != file.public.to_ascii_lowercase() {
            return Err(bad("public key does not belong to the secret key".into()));
        }
        Ok(key)
    }
}

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSecret")
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

impl GroupPublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<GroupPublicKey> {
        hex::decode(text.trim())
            .ok()?
            .try_into()
            .ok()
            .map(GroupPublicKey)
    }
}

impl fmt::Display for GroupPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
