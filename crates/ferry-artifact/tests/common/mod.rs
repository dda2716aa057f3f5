//! Shared helpers for the integration tests: a TUF repository fixture and hand-made tars.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::{
    Expiry, RepoKeys, Repository, Role, TrustedSet, sign_metadata, target_file,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A fixed reference time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// Hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Target name and content published by the fixture.
pub const TARGET: &str = "main/1.0.0.ferry";
/// Content of [`TARGET`].
pub const TARGET_DATA: &[u8] = b"artifact bytes";

/// A repository with one published target, plus helpers to forge metadata.
pub struct Fixture {
    pub keys: RepoKeys,
    pub repo: Repository,
}

impl Fixture {
    pub fn new() -> Fixture {
        let keys = RepoKeys::generate();
        let mut repo = Repository::new(keys.clone(), Expiry::default(), t0());
        let custom = json!({"component": "main", "version": "1.0.0", "device_types": []});
        let target = target_file(
            TARGET,
            TARGET_DATA.len() as u64,
            &sha256_hex(TARGET_DATA),
            custom,
        );
        repo.set_targets(BTreeMap::from([(TARGET.to_string(), target)]), t0())
            .unwrap();
        Fixture { keys, repo }
    }

    /// A served file by name.
    pub fn file(&self, name: &str) -> Vec<u8> {
        self.repo.files()[name].clone()
    }

    pub fn root(&self) -> Vec<u8> {
        self.file("root.json")
    }
    pub fn timestamp(&self) -> Vec<u8> {
        self.file("timestamp.json")
    }
    pub fn snapshot(&self) -> Vec<u8> {
        self.file(&Role::Snapshot.versioned_file_name(self.repo.snapshot().version))
    }
    pub fn targets(&self) -> Vec<u8> {
        self.file(&Role::Targets.versioned_file_name(self.repo.targets().version))
    }

    /// A TrustedSet with the fixture's root loaded.
    pub fn client(&self) -> TrustedSet {
        TrustedSet::new(&self.root()).unwrap()
    }

    /// A TrustedSet with everything loaded at `t0`.
    pub fn loaded_client(&self) -> TrustedSet {
        let mut c = self.client();
        c.update_timestamp(&self.timestamp(), t0()).unwrap();
        c.update_snapshot(&self.snapshot(), t0()).unwrap();
        c.update_targets(&self.targets(), t0()).unwrap();
        c
    }

    /// Signed metadata for `role` from `signed`, signed by that role's key.
    pub fn sign(&self, role: Role, signed: &Value) -> Vec<u8> {
        sign_metadata(signed, &[self.keys.key(role)])
    }

    /// Targets, snapshot and timestamp forged from the fixture's current ones: `targets` is
    /// signed with `targets_signers`, the snapshot and timestamp list it correctly.
    pub fn chain_for_targets(
        &self,
        targets_signed: &Value,
        targets_signers: &[&SigningKey],
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let targets = sign_metadata(targets_signed, targets_signers);
        let snapshot = self.snapshot_listing(&targets, targets_signed["version"].as_u64().unwrap());
        let timestamp = self.timestamp_listing(&snapshot);
        (timestamp, snapshot, targets)
    }

    /// A snapshot (version + 1, signed by the snapshot key) listing `targets` bytes as `version`.
    pub fn snapshot_listing(&self, targets: &[u8], version: u64) -> Vec<u8> {
        let mut snap = signed_of(&self.snapshot());
        snap["version"] = json!(snap["version"].as_u64().unwrap() + 1);
        snap["meta"] = json!({"targets.json": meta_entry(version, targets)});
        self.sign(Role::Snapshot, &snap)
    }

    /// A timestamp (version + 1, signed by the timestamp key) listing `snapshot` bytes.
    pub fn timestamp_listing(&self, snapshot: &[u8]) -> Vec<u8> {
        let snapshot_version = signed_of(snapshot)["version"].as_u64().unwrap();
        let mut ts = signed_of(&self.timestamp());
        ts["version"] = json!(ts["version"].as_u64().unwrap() + 1);
        ts["meta"] = json!({"snapshot.json": meta_entry(snapshot_version, snapshot)});
        self.sign(Role::Timestamp, &ts)
    }
}

/// `{version, length, hashes: {sha256}}` for a metadata file.
pub fn meta_entry(version: u64, bytes: &[u8]) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}})
}

/// The `signed` member of a metadata file.
pub fn signed_of(bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["signed"].clone()
}

/// The `signatures` member of a metadata file.
pub fn signatures_of(bytes: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["signatures"].as_array().unwrap().clone()
}

/// A metadata file from a signed value and explicit signature objects.
pub fn with_signatures(signed: &Value, signatures: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"signed": signed, "signatures": signatures})).unwrap()
}

/// Builds tar archives entry by entry, bypassing every safety check of the `tar` crate.
#[derive(Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    /// Appends an entry with raw `name` bytes, tar type byte `kind`, `data`, and a header that
    /// declares `declared_size` bytes (normally `data.len()`).
    pub fn entry_full(
        &mut self,
        name: &[u8],
        kind: u8,
        data: &[u8],
        declared_size: u64,
        mode: u32,
        link: Option<&str>,
    ) -> &mut Self {
        let mut header = tar::Header::new_ustar();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_size(declared_size);
        header.set_mode(mode);
        header.set_mtime(0);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// Appends a regular file.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry_full(name.as_bytes(), b'0', data, data.len() as u64, 0o644, None)
    }

    /// Finishes the archive (two zero blocks).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}
