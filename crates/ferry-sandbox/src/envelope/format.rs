//! Byte layout shared by sealing and opening (see ENVELOPE.md).

use super::error::EnvelopeError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// First eight bytes of every envelope.
pub const MAGIC: &[u8; 8] = b"FERRYENC";
/// Format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk used by [`super::seal`] unless told otherwise (64 KiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size accepted (16 MiB), bounding the memory one chunk needs.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Length of the fixed header.
pub(crate) const HEADER_LEN: usize = 8 + 1 + 4 + 32 + 32 + 16;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Magic of the signature block.
pub(crate) const SIG_MAGIC: &[u8; 4] = b"FSIG";
/// Length of the signature block: magic, raw key id, ed25519 signature.
pub(crate) const SIG_BLOCK_LEN: usize = 4 + 32 + 64;
/// Frame flag of a chunk that is followed by more chunks.
pub(crate) const FLAG_MORE: u8 = 0;
/// Frame flag of the final chunk.
pub(crate) const FLAG_LAST: u8 = 1;

const KDF_INFO: &[u8] = b"ferry-envelope/1 payload key";
const SIG_CONTEXT: &[u8] = b"ferry-envelope/1 signature\n";

/// The fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub chunk_size: u32,
    pub recipient: [u8; 32],
    pub ephemeral: [u8; 32],
    pub salt: [u8; 16],
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = VERSION;
        out[9..13].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[13..45].copy_from_slice(&self.recipient);
        out[45..77].copy_from_slice(&self.ephemeral);
        out[77..93].copy_from_slice(&self.salt);
        out
    }

    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, EnvelopeError> {
        if &bytes[..8] != MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        if bytes[8] != VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: bytes[8],
                supported: VERSION,
            });
        }
        let chunk_size = u32::from_be_bytes(bytes[9..13].try_into().expect("4 bytes"));
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(EnvelopeError::BadHeader(format!(
                "chunk size {chunk_size} is outside 1..={MAX_CHUNK_SIZE}"
            )));
        }
        let take = |r: std::ops::Range<usize>| -> [u8; 32] { bytes[r].try_into().expect("32") };
        Ok(Header {
            chunk_size,
            recipient: take(13..45),
            ephemeral: take(45..77),
            salt: bytes[77..93].try_into().expect("16 bytes"),
        })
    }
}

/// The payload cipher, keyed from the X25519 shared secret and bound to the whole header.
pub(crate) fn payload_cipher(shared: &[u8; 32], header: &[u8; HEADER_LEN]) -> ChaCha20Poly1305 {
    let salt = &header[77..93];
    let hk = Hkdf::<Sha256>::new(Some(salt), shared);
    let mut info = Vec::with_capacity(KDF_INFO.len() + HEADER_LEN);
    info.extend_from_slice(KDF_INFO);
    info.extend_from_slice(header);
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(&info, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    ChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
}

/// Nonce of chunk `index`: 8-byte big-endian counter, 3 zero bytes, the last-chunk flag.
pub(crate) fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    *Nonce::from_slice(&n)
}

/// Encrypts one chunk.
pub(crate) fn encrypt_chunk(
    cipher: &ChaCha20Poly1305,
    index: u64,
    last: bool,
    plain: &[u8],
) -> Vec<u8> {
    cipher
        .encrypt(
            &nonce(index, last),
            Payload {
                msg: plain,
                aad: b"",
            },
        )
        .expect("ChaCha20-Poly1305 encryption of a bounded chunk cannot fail")
}

/// Decrypts one chunk, or reports it as tampered.
pub(crate) fn decrypt_chunk(
    cipher: &ChaCha20Poly1305,
    index: u64,
    last: bool,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    cipher
        .decrypt(&nonce(index, last), Payload { msg: ct, aad: b"" })
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Tampered { index })
}

/// The frame of one chunk: flag byte, big-endian ciphertext length, ciphertext.
pub(crate) fn frame_prefix(last: bool, ct_len: usize) -> [u8; 5] {
    let mut p = [0u8; 5];
    p[0] = if last { FLAG_LAST } else { FLAG_MORE };
    p[1..].copy_from_slice(&(ct_len as u32).to_be_bytes());
    p
}

/// The message the vendor signs: a context string and sha256(header ‖ frames).
pub(crate) fn signed_message(transcript: Sha256) -> Vec<u8> {
    let mut msg = SIG_CONTEXT.to_vec();
    msg.extend_from_slice(&transcript.finalize());
    msg
}
