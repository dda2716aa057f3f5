//! TUF metadata signed with ECDSA P-256 and RSA-PSS keys (in the PEM key format python-tuf and
//! securesystemslib write), verified by the `TrustedSet`.

use chrono::{TimeDelta, Utc};
use ferry_artifact::keys::PublicKey;
use ferry_artifact::keys::canonical_json;
use ferry_artifact::tuf::{TrustedSet, TufError};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde_json::{Value, json};

/// A key that signs canonical JSON the way securesystemslib's CryptoSigner does.
enum TestKey {
    Ecdsa(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::pss::SigningKey<sha2::Sha256>>),
}

impl TestKey {
    fn ecdsa() -> TestKey {
        TestKey::Ecdsa(p256::ecdsa::SigningKey::random(&mut rand::thread_rng()))
    }
    fn rsa() -> TestKey {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        TestKey::Rsa(Box::new(rsa::pss::SigningKey::new(private)))
    }
    fn public(&self) -> PublicKey {
        let json = match self {
            TestKey::Ecdsa(k) => json!({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256",
                "keyval": {"public": k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()}}),
            TestKey::Rsa(k) => {
                use rsa::signature::Keypair;
                json!({"keytype": "rsa", "scheme": "rsassa-pss-sha256",
                    "keyval": {"public": k.verifying_key().as_ref().to_public_key_pem(LineEnding::LF).unwrap()}})
            }
        };
        serde_json::from_value(json).unwrap()
    }
    fn sign(&self, msg: &[u8]) -> String {
        match self {
            TestKey::Ecdsa(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                hex::encode(sig.to_der().as_bytes())
            }
            TestKey::Rsa(k) => hex::encode(k.sign_with_rng(&mut rand::thread_rng(), msg).to_vec()),
        }
    }
}

fn signed(payload: &Value, keys: &[&TestKey]) -> Vec<u8> {
    let canonical = canonical_json(payload);
    let sigs: Vec<Value> = keys
        .iter()
        .map(|k| json!({"keyid": k.public().key_id(), "sig": k.sign(&canonical)}))
        .collect();
    serde_json::to_vec(&json!({"signed": payload, "signatures": sigs})).unwrap()
}

fn expires() -> String {
    (Utc::now() + TimeDelta::days(30)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Root, timestamp, snapshot and targets, each role with its own key of the given types.
fn repository(root: &TestKey, others: &TestKey) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (rid, oid) = (root.public().key_id(), others.public().key_id());
    let role = |id: &str| json!({"keyids": [id], "threshold": 1});
    let root_md = json!({"_type": "root", "spec_version": "1.0.31", "version": 1, "expires": expires(),
        "consistent_snapshot": true,
        "keys": {rid.clone(): root.public().to_json(), oid.clone(): others.public().to_json()},
        "roles": {"root": role(&rid), "targets": role(&oid), "snapshot": role(&oid), "timestamp": role(&oid)}});
    let targets = json!({"_type": "targets", "spec_version": "1.0.31", "version": 1, "expires": expires(),
        "targets": {"f.txt": {"length": 3, "hashes": {"sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"abc"))}}}});
    let snapshot = json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 1, "expires": expires(),
        "meta": {"targets.json": {"version": 1}}});
    let timestamp = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1, "expires": expires(),
        "meta": {"snapshot.json": {"version": 1}}});
    (
        signed(&root_md, &[root]),
        signed(&timestamp, &[others]),
        signed(&snapshot, &[others]),
        signed(&targets, &[others]),
    )
}

fn load(files: &(Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>)) -> Result<TrustedSet, TufError> {
    let now = Utc::now();
    let mut set = TrustedSet::new(&files.0)?;
    set.update_timestamp(&files.1, now)?;
    set.update_snapshot(&files.2, now)?;
    set.update_targets(&files.3, now)?;
    Ok(set)
}

#[test]
fn ecdsa_signed_root_verifies() {
    let (root, other) = (TestKey::ecdsa(), TestKey::ecdsa());
    let files = repository(&root, &other);
    let set = load(&files).unwrap();
    set.verify_target_data("f.txt", b"abc").unwrap();
    // A signature by another ECDSA key under the root key's id does not count.
    let forged = repository(&TestKey::ecdsa(), &other);
    let mut v: Value = serde_json::from_slice(&forged.0).unwrap();
    v["signatures"][0]["keyid"] = json!(root.public().key_id());
    let mut genuine: Value = serde_json::from_slice(&files.0).unwrap();
    genuine["signatures"] = v["signatures"].clone();
    assert!(matches!(
        TrustedSet::new(&serde_json::to_vec(&genuine).unwrap()),
        Err(TufError::ThresholdNotMet { .. })
    ));
}

#[test]
fn rsa_pss_signed_targets_verify() {
    let (root, other) = (TestKey::ecdsa(), TestKey::rsa());
    let files = repository(&root, &other);
    let set = load(&files).unwrap();
    set.verify_target_data("f.txt", b"abc").unwrap();
    // Tampered targets (re-serialized with a changed length) no longer verify.
    let mut v: Value = serde_json::from_slice(&files.3).unwrap();
    v["signed"]["targets"]["f.txt"]["length"] = json!(4);
    let tampered = (files.0.clone(), files.1.clone(), files.2.clone(), serde_json::to_vec(&v).unwrap());
    assert!(matches!(load(&tampered), Err(TufError::ThresholdNotMet { .. })));
}

#[test]
fn key_ids_of_pem_keys_hash_the_canonical_key_object() {
    let key = TestKey::ecdsa().public();
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical_json(&key.to_json())));
    assert_eq!(key.key_id(), expected);
}
