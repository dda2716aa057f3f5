//! The server side: a TUF repository that signs its own metadata with consistent snapshots.

use super::envelope::{parse, sign_metadata, to_json, validate_root};
use super::error::TufError;
use super::expiry::Expiry;
use super::hashes::Digests;
use super::metadata::{
    MetaFile, RoleKeys, Root, SPEC_VERSION, Snapshot, TargetFile, Targets, Timestamp,
};
use super::repo_keys::RepoKeys;
use super::role::Role;
use super::target_info::invalid_target_name;
use super::threshold::check_threshold;
use super::time_format::whole_seconds;
use crate::keys::{SigningKey, try_canonical_json};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Map;
use std::collections::BTreeMap;

/// How many versions of snapshot and targets stay servable, so that a client that fetched the
/// previous timestamp can still fetch what it names while a new version is published.
const KEEP_VERSIONS: u64 = 2;

/// A TUF repository with one key per role (threshold 1) and `consistent_snapshot: true`.
///
/// Every change produces new signed files; [`Repository::files`] returns everything to serve
/// under `/tuf/`: `root.json` and `N.root.json` for every root version, `timestamp.json`, and
/// `N.snapshot.json` / `N.targets.json` for the current and previous version.
#[derive(Debug, Clone)]
pub struct Repository {
    keys: RepoKeys,
    expiry: Expiry,
    root: Root,
    targets: Targets,
    snapshot: Snapshot,
    timestamp: Timestamp,
    files: BTreeMap<String, Vec<u8>>,
}

fn root_for(keys: &RepoKeys, version: u64, expires: DateTime<Utc>) -> Root {
    let mut key_map = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let key = keys.key(role);
        key_map.insert(key.key_id().to_string(), key.public());
        roles.insert(
            role.as_str().to_string(),
            RoleKeys {
                keyids: vec![key.key_id().to_string()],
                threshold: 1,
                unrecognized: Map::new(),
            },
        );
    }
    Root {
        role_type: Role::Root.as_str().into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires,
        consistent_snapshot: Some(true),
        keys: key_map,
        roles,
        unrecognized: Map::new(),
    }
}

/// Whether metadata expiring at `expires` has less than half of `lifetime` left at `now`.
fn due(expires: DateTime<Utc>, lifetime: TimeDelta, now: DateTime<Utc>) -> bool {
    expires - now <= lifetime / 2
}

/// The metadata file's entry as listed by its parent role: version, length and sha256.
fn meta_for(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(BTreeMap::from([(
            "sha256".to_string(),
            Digests::of(bytes).sha256,
        )])),
        unrecognized: Map::new(),
    }
}

impl Repository {
    /// A new repository: root v1 for `keys`, empty targets v1, snapshot v1 and timestamp v1,
    /// each expiring `expiry` after `now`.
    pub fn new(keys: RepoKeys, expiry: Expiry, now: DateTime<Utc>) -> Repository {
        let now = whole_seconds(now);
        let root = root_for(&keys, 1, now + expiry.root);
        let targets = Targets {
            role_type: Role::Targets.as_str().into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: now + expiry.targets,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: Map::new(),
        };
        let snapshot = Snapshot {
            role_type: Role::Snapshot.as_str().into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: now + expiry.snapshot,
            meta: BTreeMap::new(),
            unrecognized: Map::new(),
        };
        let timestamp = Timestamp {
            role_type: Role::Timestamp.as_str().into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: now + expiry.timestamp,
            meta: BTreeMap::new(),
            unrecognized: Map::new(),
        };
        let mut repo = Repository {
            keys,
            expiry,
            root,
            targets,
            snapshot,
            timestamp,
            files: BTreeMap::new(),
        };
        repo.publish_root(None);
        repo.publish_targets();
        repo.publish_snapshot();
        repo.publish_timestamp();
        repo
    }

    /// Reloads a repository from the files [`Repository::files`] returned. Checks that every
    /// root version is present, that the current metadata is signed by the root's keys, and
    /// that `keys` are the keys the root trusts. Expiry is not checked (refresh afterwards).
    pub fn from_files(
        keys: RepoKeys,
        expiry: Expiry,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Repository, TufError> {
        let get = |name: String| files.get(&name).ok_or(TufError::MissingFile { file: name });
        let root = parse::<Root>(get(Role::Root.file_name())?)?;
        validate_root(&root.signed)?;
        check_threshold(
            Role::Root,
            root.signed.version,
            &root.canonical,
            &root.signatures,
            &root.signed,
        )?;
        for version in 1..=root.signed.version {
            get(Role::Root.versioned_file_name(version))?;
        }
        let root = root.signed;
        for role in Role::ALL {
            let key_id = keys.key(role).key_id();
            let trusted = &root.roles[role.as_str()].keyids;
            if !trusted.iter().any(|k| k == key_id) {
                return Err(TufError::KeysDoNotMatchRoot {
                    role,
                    key_id: key_id.into(),
                    root_version: root.version,
                    trusted: trusted.clone(),
                });
            }
        }
        let timestamp = parse::<Timestamp>(get(Role::Timestamp.file_name())?)?;
        check_threshold(
            Role::Timestamp,
            timestamp.signed.version,
            &timestamp.canonical,
            &timestamp.signatures,
            &root,
        )?;
        let snapshot_version =
            listed_version(&timestamp.signed.meta, Role::Timestamp, Role::Snapshot)?;
        let snapshot =
            parse::<Snapshot>(get(Role::Snapshot.versioned_file_name(snapshot_version))?)?;
        check_threshold(
            Role::Snapshot,
            snapshot.signed.version,
            &snapshot.canonical,
            &snapshot.signatures,
            &root,
        )?;
        let targets_version = listed_version(&snapshot.signed.meta, Role::Snapshot, Role::Targets)?;
        let targets = parse::<Targets>(get(Role::Targets.versioned_file_name(targets_version))?)?;
        check_threshold(
            Role::Targets,
            targets.signed.version,
            &targets.canonical,
            &targets.signatures,
            &root,
        )?;
        Ok(Repository {
            keys,
            expiry,
            root,
            targets: targets.signed,
            snapshot: snapshot.signed,
            timestamp: timestamp.signed,
            files,
        })
    }

    /// Publishes a new set of targets: new targets, snapshot and timestamp versions.
    /// Fails (changing nothing) on a target name that is not a safe relative path, a target
    /// without hashes, or `custom` data holding non-integer numbers (no canonical JSON form).
    pub fn set_targets(
        &mut self,
        targets: BTreeMap<String, TargetFile>,
        now: DateTime<Utc>,
    ) -> Result<(), TufError> {
        for (name, target) in &targets {
            let invalid = |reason: String| TufError::InvalidTarget {
                name: name.clone(),
                reason,
            };
            if let Some(reason) = invalid_target_name(name) {
                return Err(invalid(reason));
            }
            if target.hashes.is_empty() {
                return Err(invalid("it lists no hashes".into()));
            }
            try_canonical_json(&to_json(target)).map_err(|e| invalid(e.to_string()))?;
        }
        let now = whole_seconds(now);
        self.targets.targets = targets;
        self.bump_targets(now);
        self.bump_snapshot(now);
        self.bump_timestamp(now);
        Ok(())
    }

    /// Keeps the metadata fresh; call it periodically. Re-signs the timestamp (new version) if
    /// it expires within half its lifetime. Root, targets and snapshot are renewed the same way
    /// when they near expiry (root as a new root version signed by the same key; a renewed
    /// targets or snapshot also renews the roles that list it). Returns whether anything changed.
    pub fn refresh_timestamp(&mut self, now: DateTime<Utc>) -> bool {
        let now = whole_seconds(now);
        let root_due = due(self.root.expires, self.expiry.root, now);
        if root_due {
            self.root.version += 1;
            self.root.expires = now + self.expiry.root;
            self.publish_root(None);
        }
        let targets_due = due(self.targets.expires, self.expiry.targets, now);
        if targets_due {
            self.bump_targets(now);
        }
        let snapshot_due = targets_due || due(self.snapshot.expires, self.expiry.snapshot, now);
        if snapshot_due {
            self.bump_snapshot(now);
        }
        let timestamp_due = snapshot_due || due(self.timestamp.expires, self.expiry.timestamp, now);
        if timestamp_due {
            self.bump_timestamp(now);
        }
        root_due || timestamp_due
    }

    /// Rotates repository keys: root v(N+1) lists `new_keys` and is signed by both the old and
    /// the new root key (once when the root key is kept), so clients trusting v N accept it;
    /// targets, snapshot and timestamp are re-signed with their keys under new versions. Keys
    /// kept from the old set simply appear again in `new_keys`.
    pub fn rotate_keys(&mut self, new_keys: RepoKeys, now: DateTime<Utc>) {
        let now = whole_seconds(now);
        let old_root_key = self.keys.root.clone();
        self.keys = new_keys;
        self.root = root_for(&self.keys, self.root.version + 1, now + self.expiry.root);
        self.publish_root(Some(&old_root_key));
        self.bump_targets(now);
        self.bump_snapshot(now);
        self.bump_timestamp(now);
    }

    /// Every file to serve under `/tuf/`, by name.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.clone()
    }

    /// The current `root.json` bytes (what devices are provisioned with).
    pub fn root_json(&self) -> &[u8] {
        &self.files[&Role::Root.file_name()]
    }

    /// The signing keys.
    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }

    /// The metadata lifetimes.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
    }

    /// The current root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The current targets metadata.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The current snapshot metadata.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The current timestamp metadata.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }

    /// The published target `name`.
    pub fn target(&self, name: &str) -> Option<&TargetFile> {
        self.targets.targets.get(name)
    }

    fn bump_targets(&mut self, now: DateTime<Utc>) {
        self.targets.version += 1;
        self.targets.expires = now + self.expiry.targets;
        self.publish_targets();
    }

    fn bump_snapshot(&mut self, now: DateTime<Utc>) {
        self.snapshot.version += 1;
        self.snapshot.expires = now + self.expiry.snapshot;
        self.publish_snapshot();
    }

    fn bump_timestamp(&mut self, now: DateTime<Utc>) {
        self.timestamp.version += 1;
        self.timestamp.expires = now + self.expiry.timestamp;
        self.publish_timestamp();
    }

    fn publish_root(&mut self, previous_root_key: Option<&SigningKey>) {
        let mut signers = vec![&self.keys.root];
        // An unchanged root key signs once (a key id twice is malformed for some clients).
        signers.extend(previous_root_key.filter(|k| k.key_id() != self.keys.root.key_id()));
        let bytes = sign_metadata(&to_json(&self.root), &signers);
        self.files.insert(
            Role::Root.versioned_file_name(self.root.version),
            bytes.clone(),
        );
        self.files.insert(Role::Root.file_name(), bytes);
    }

    fn publish_targets(&mut self) {
        let bytes = sign_metadata(&to_json(&self.targets), &[&self.keys.targets]);
        self.files.insert(
            Role::Targets.versioned_file_name(self.targets.version),
            bytes,
        );
        self.prune(Role::Targets, self.targets.version);
    }

    fn publish_snapshot(&mut self) {
        let targets_bytes = &self.files[&Role::Targets.versioned_file_name(self.targets.version)];
        self.snapshot.meta = BTreeMap::from([(
            Role::Targets.file_name(),
            meta_for(self.targets.version, targets_bytes),
        )]);
        let bytes = sign_metadata(&to_json(&self.snapshot), &[&self.keys.snapshot]);
        self.files.insert(
            Role::Snapshot.versioned_file_name(self.snapshot.version),
            bytes,
        );
        self.prune(Role::Snapshot, self.snapshot.version);
    }

    fn publish_timestamp(&mut self) {
        let snapshot_bytes =
            &self.files[&Role::Snapshot.versioned_file_name(self.snapshot.version)];
        self.timestamp.meta = BTreeMap::from([(
            Role::Snapshot.file_name(),
            meta_for(self.snapshot.version, snapshot_bytes),
        )]);
        let bytes = sign_metadata(&to_json(&self.timestamp), &[&self.keys.timestamp]);
        self.files.insert(Role::Timestamp.file_name(), bytes);
    }

    /// Drops versions of `role` older than the last [`KEEP_VERSIONS`].
    fn prune(&mut self, role: Role, current: u64) {
        let suffix = format!(".{}.json", role.as_str());
        self.files.retain(|name, _| {
            match name
                .strip_suffix(&suffix)
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(version) => version + KEEP_VERSIONS > current,
                None => true,
            }
        });
    }
}

/// The version `listing` lists for `role`'s file.
fn listed_version(
    meta: &BTreeMap<String, MetaFile>,
    listing: Role,
    role: Role,
) -> Result<u64, TufError> {
    let file = role.file_name();
    meta.get(&file)
        .map(|m| m.version)
        .ok_or(TufError::MissingMeta {
            listed_in: listing,
            file,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn due_means_at_most_half_the_lifetime_left() {
        let lifetime = TimeDelta::hours(24);
        let expires = now() + lifetime;
        assert!(!due(expires, lifetime, now() + TimeDelta::hours(11)));
        assert!(due(expires, lifetime, now() + TimeDelta::hours(12)));
        assert!(due(expires, lifetime, now() + TimeDelta::hours(30)));
    }

    #[test]
    fn expiry_times_drop_sub_second_precision() {
        let repo = Repository::new(
            RepoKeys::generate(),
            Expiry::default(),
            now() + TimeDelta::milliseconds(1500),
        );
        assert_eq!(
            repo.timestamp().expires,
            now() + TimeDelta::days(1) + TimeDelta::seconds(1)
        );
    }

    #[test]
    fn meta_entries_pin_version_length_and_sha256() {
        let m = meta_for(3, b"abc");
        assert_eq!((m.version, m.length), (3, Some(3)));
        assert_eq!(
            m.hashes.unwrap()["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
