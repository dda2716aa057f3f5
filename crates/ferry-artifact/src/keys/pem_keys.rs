//! ECDSA P-256 and RSA-PSS public keys in PEM, verified as securesystemslib verifies them.

use super::error::KeyError;
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use rsa::BigUint;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

/// Parses a PEM SubjectPublicKeyInfo P-256 public key.
pub(crate) fn p256_key(pem: &str) -> Result<p256::ecdsa::VerifyingKey, KeyError> {
    p256::ecdsa::VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Malformed {
        what: "public key",
        reason: format!("not a PEM SubjectPublicKeyInfo NIST P-256 key: {e}"),
    })
}

/// Verifies a DER-encoded ECDSA P-256 signature over SHA-256(`msg`).
///
/// Like OpenSSL (and so securesystemslib), both low-S and high-S signatures are accepted.
pub(crate) fn verify_p256(
    key: &p256::ecdsa::VerifyingKey,
    msg: &[u8],
    der: &[u8],
) -> Result<(), KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        what: "signature",
        reason,
    };
    let sig = p256::ecdsa::Signature::from_der(der)
        .map_err(|e| malformed(format!("not a DER ECDSA signature: {e}")))?;
    key.verify(msg, &sig).map_err(|e| malformed(e.to_string()))
}

/// Parses a PEM RSA public key (SubjectPublicKeyInfo, or PKCS#1 `RSA PUBLIC KEY`).
pub(crate) fn rsa_key(pem: &str) -> Result<rsa::RsaPublicKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| KeyError::Malformed {
            what: "public key",
            reason: format!("not a PEM RSA public key: {e}"),
        })
}

/// RSASSA-PSS verification with SHA-256 and MGF1-SHA-256 (RFC 8017 §9.1.2), recovering the
/// salt length from the encoded message as OpenSSL's `PSS.AUTO` does (securesystemslib signs
/// with a 32-byte salt and verifies with any salt length).
pub(crate) fn verify_rsa_pss_sha256(
    key: &rsa::RsaPublicKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), KeyError> {
    let bad = |reason: &str| KeyError::Malformed {
        what: "signature",
        reason: reason.to_string(),
    };
    const H_LEN: usize = 32;
    let key_len = key.size();
    if sig.len() != key_len {
        return Err(bad(&format!(
            "RSA signature is {} bytes, the key modulus is {key_len} bytes",
            sig.len()
        )));
    }
    let s = BigUint::from_bytes_be(sig);
    if &s >= key.n() {
        return Err(bad("RSA signature is not smaller than the modulus"));
    }
    let m = s.modpow(key.e(), key.n());
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let m_bytes = m.to_bytes_be();
    if m_bytes.len() > em_len {
        return Err(bad("RSA-PSS encoded message is too long"));
    }
    let mut em = vec![0u8; em_len - m_bytes.len()];
    em.extend_from_slice(&m_bytes);
    if em_len < H_LEN + 2 || em[em_len - 1] != 0xbc {
        return Err(bad("RSA-PSS encoded message does not end in 0xbc"));
    }
    let m_hash = Sha256::digest(msg);
    let (masked_db, rest) = em.split_at(em_len - H_LEN - 1);
    let h = &rest[..H_LEN];
    let unused_bits = 8 * em_len - em_bits;
    if unused_bits > 0 && masked_db[0] >> (8 - unused_bits) != 0 {
        return Err(bad("RSA-PSS encoded message has its top bits set"));
    }
    let mut db = mgf1_sha256(h, masked_db.len());
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    if unused_bits > 0 {
        db[0] &= 0xff >> unused_bits;
    }
    let Some(one) = db.iter().position(|&b| b != 0) else {
        return Err(bad("RSA-PSS data block has no 0x01 separator"));
    };
    if db[one] != 0x01 {
        return Err(bad("RSA-PSS data block has no 0x01 separator"));
    }
    let salt = &db[one + 1..];
    let mut hasher = Sha256::new();
    hasher.update([0u8; 8]);
    hasher.update(m_hash);
    hasher.update(salt);
    if hasher.finalize().as_slice() != h {
        return Err(bad("RSA-PSS hash does not match"));
    }
    Ok(())
}

/// MGF1 with SHA-256: `len` bytes of mask from `seed`.
fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mgf1_matches_a_hand_computed_block() {
        let mask = mgf1_sha256(b"seed", 40);
        let mut first = Sha256::new();
        first.update(b"seed");
        first.update(0u32.to_be_bytes());
        assert_eq!(&mask[..32], first.finalize().as_slice());
        let mut second = Sha256::new();
        second.update(b"seed");
        second.update(1u32.to_be_bytes());
        assert_eq!(&mask[32..], &second.finalize()[..8]);
    }

    #[test]
    fn ecdsa_accepts_low_and_high_s_and_rejects_other_messages() {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let sk = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let pem = sk.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let key = p256_key(&pem).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"signed bytes");
        let low = sig.normalize_s().unwrap_or(sig);
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        for variant in [low, high] {
            verify_p256(&key, b"signed bytes", variant.to_der().as_bytes()).unwrap();
            assert!(verify_p256(&key, b"other bytes", variant.to_der().as_bytes()).is_err());
        }
        assert!(verify_p256(&key, b"signed bytes", &low.to_bytes()).is_err(), "raw r||s is not DER");
    }

    #[test]
    fn rsa_pss_accepts_any_salt_length_and_rejects_tampering() {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let key = rsa_key(&pem).unwrap();
        for salt in [0usize, 20, 32, 60] {
            let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(private.clone(), salt);
            let sig = signer.sign_with_rng(&mut rng, b"payload").to_vec();
            verify_rsa_pss_sha256(&key, b"payload", &sig).unwrap();
            assert!(verify_rsa_pss_sha256(&key, b"payloaD", &sig).is_err());
            let mut flipped = sig.clone();
            flipped[10] ^= 1;
            assert!(verify_rsa_pss_sha256(&key, b"payload", &flipped).is_err());
            assert!(verify_rsa_pss_sha256(&key, b"payload", &sig[1..]).is_err());
        }
    }

    #[test]
    fn garbage_pem_is_reported_as_malformed_key() {
        assert!(matches!(p256_key("nope"), Err(KeyError::Malformed { what: "public key", .. })));
        assert!(matches!(rsa_key("nope"), Err(KeyError::Malformed { what: "public key", .. })));
    }
}
