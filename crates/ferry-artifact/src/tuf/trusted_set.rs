//! The client side: a pure, in-memory set of verified metadata (TUF 1.0 client workflow §5.3–5.6).
//!
//! Bytes and `now` come in; nothing is fetched or stored here. Load in this order:
//! trusted root → each newer root (`N.root.json`, one version at a time) → timestamp(s) →
//! snapshot(s) → targets. A previously trusted timestamp or snapshot (kept by the caller) may
//! be loaded before the fresh one, so that version rollbacks across sessions are caught.

use super::delegation::Delegations;
use super::envelope::{Envelope, parse, validate_root};
use super::error::TufError;
use super::hashes::{self, DigestValues, Digests};
use super::metadata::{RoleMetadata, Root, Snapshot, TargetFile, Targets, Timestamp};
use super::role::Role;
use super::threshold::{check_threshold, valid_signers};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::Read;

/// Verified metadata with its exact bytes.
#[derive(Debug, Clone)]
struct Loaded<T> {
    signed: T,
    canonical: Vec<u8>,
    raw: Vec<u8>,
}

/// A verified targets role (top-level or delegated) with its parsed delegations.
#[derive(Debug, Clone)]
struct LoadedTargets {
    loaded: Loaded<Targets>,
    delegations: Option<Delegations>,
    /// The role whose delegation it was verified against (`root` for top-level targets).
    delegator: String,
}

/// Metadata verified per the TUF 1.0 client workflow.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    root: Loaded<Root>,
    timestamp: Option<Loaded<Timestamp>>,
    snapshot: Option<Loaded<Snapshot>>,
    targets: Option<Loaded<Targets>>,
    targets_delegations: Option<Delegations>,
    delegated: BTreeMap<String, LoadedTargets>,
}

/// Parses a targets role's delegations, if it has any.
fn parse_delegations(role: &str, targets: &Targets) -> Result<Option<Delegations>, TufError> {
    targets
        .delegations
        .as_ref()
        .map(|v| {
            Delegations::from_value(v).map_err(|reason| TufError::InvalidDelegations {
                role: role.to_string(),
                version: targets.version,
                reason,
            })
        })
        .transpose()
}

fn expiry_check<T: RoleMetadata>(signed: &T, now: DateTime<Utc>) -> Result<(), TufError> {
    if now >= signed.expires() {
        return Err(TufError::Expired {
            role: T::ROLE,
            version: signed.version(),
            expires: signed.expires(),
            now,
        });
    }
    Ok(())
}

fn loaded<T>(env: Envelope<T>, bytes: &[u8]) -> Loaded<T> {
    Loaded {
        signed: env.signed,
        canonical: env.canonical,
        raw: bytes.to_vec(),
    }
}

impl TrustedSet {
    /// Starts from a root trusted out of band (shipped with the device). It must be signed by a
    /// threshold of its own root keys; its expiry is checked later ([`TrustedSet::check_root_expiry`]
    /// and [`TrustedSet::update_timestamp`]), so that an expired root can still be rotated.
    pub fn new(trusted_root: &[u8]) -> Result<TrustedSet, TufError> {
        let env = parse::<Root>(trusted_root)?;
        validate_root(&env.signed)?;
        check_threshold(
            Role::Root,
            env.signed.version,
            &env.canonical,
            &env.signatures,
            &env.signed,
        )?;
        Ok(TrustedSet {
            root: loaded(env, trusted_root),
            timestamp: None,
            snapshot: None,
            targets: None,
            targets_delegations: None,
            delegated: BTreeMap::new(),
        })
    }

    /// Applies root version N+1 (§5.3.4–5.3.9): it must be signed by a threshold of the trusted
    /// root's root keys AND a threshold of its own root keys. Call repeatedly until the
    /// repository has no `N+1.root.json`. Not allowed once a timestamp is loaded.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::OutOfOrder {
                action: "update root",
                reason: "a timestamp is already loaded; update the root first (start a new TrustedSet)",
            });
        }
        let env = parse::<Root>(bytes)?;
        let trusted = &self.root.signed;
        check_threshold(
            Role::Root,
            env.signed.version,
            &env.canonical,
            &env.signatures,
            trusted,
        )?;
        if env.signed.version != trusted.version + 1 {
            return Err(TufError::RootVersionNotNext {
                expected: trusted.version + 1,
                found: env.signed.version,
            });
        }
        validate_root(&env.signed)?;
        check_threshold(
            Role::Root,
            env.signed.version,
            &env.canonical,
            &env.signatures,
            &env.signed,
        )?;
        self.root = loaded(env, bytes);
        Ok(())
    }

    /// Fails if the trusted root is expired at `now` (§5.3.10).
    pub fn check_root_expiry(&self, now: DateTime<Utc>) -> Result<(), TufError> {
        expiry_check(&self.root.signed, now)
    }

    /// Loads a timestamp (§5.4): final root not expired, signed by a threshold of timestamp keys,
    /// version not lower than a trusted timestamp's (an equal version must be identical: then
    /// this is a no-op), snapshot version not lower than the trusted timestamp's, not expired.
    ///
    /// An expired but otherwise valid timestamp is kept as the rollback reference and
    /// [`TufError::Expired`] is returned: a fresh timestamp must be loaded before the snapshot.
    pub fn update_timestamp(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Result<(), TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::OutOfOrder {
                action: "update timestamp",
                reason: "a snapshot is already loaded; timestamps come before snapshots",
            });
        }
        self.check_root_expiry(now)?;
        let env = parse::<Timestamp>(bytes)?;
        let new = &env.signed;
        check_threshold(
            Role::Timestamp,
            new.version,
            &env.canonical,
            &env.signatures,
            &self.root.signed,
        )?;
        let new_snapshot = snapshot_meta(new)?.version;
        if let Some(old) = &self.timestamp {
            if new.version < old.signed.version {
                return Err(TufError::VersionRollback {
                    role: Role::Timestamp,
                    trusted: old.signed.version,
                    found: new.version,
                });
            }
            if new.version == old.signed.version {
                if env.canonical != old.canonical {
                    return Err(TufError::SameVersionChanged {
                        role: Role::Timestamp,
                        version: new.version,
                    });
                }
                return expiry_check(&old.signed, now);
            }
            let old_snapshot = snapshot_meta(&old.signed)?.version;
            if new_snapshot < old_snapshot {
                return Err(TufError::SnapshotVersionRollback {
                    timestamp_version: new.version,
                    trusted: old_snapshot,
                    found: new_snapshot,
                });
            }
        }
        self.timestamp = Some(loaded(env, bytes));
        self.final_timestamp(now).map(|_| ())
    }

    /// Loads a snapshot fetched from the repository (§5.5): length and hashes as listed by the
    /// timestamp, signed by a threshold of snapshot keys, no listed metadata file removed or
    /// rolled back relative to a trusted snapshot, version equal to the timestamp's, not expired.
    pub fn update_snapshot(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Result<(), TufError> {
        self.load_snapshot(bytes, now, true)
    }

    /// Loads a snapshot the caller verified in an earlier session (its hashes need not match the
    /// current timestamp): only signatures and rollback rules apply. It serves as the rollback
    /// reference for the fresh snapshot; if it is not the one the timestamp names, the returned
    /// error says so and the fresh snapshot must be loaded with [`TrustedSet::update_snapshot`].
    pub fn load_cached_snapshot(
        &mut self,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), TufError> {
        self.load_snapshot(bytes, now, false)
    }

    fn load_snapshot(
        &mut self,
        bytes: &[u8],
        now: DateTime<Utc>,
        check_hashes: bool,
    ) -> Result<(), TufError> {
        if self.targets.is_some() {
            return Err(TufError::OutOfOrder {
                action: "update snapshot",
                reason: "targets are already loaded; snapshots come before targets",
            });
        }
        let timestamp = self.final_timestamp(now)?;
        let meta = snapshot_meta(timestamp)?;
        if check_hashes {
            let what = format!(
                "snapshot v{} (listed by timestamp v{})",
                meta.version, timestamp.version
            );
            hashes::check(
                &what,
                &Digests::of(bytes),
                meta.length,
                meta.hashes.as_ref(),
            )?;
        }
        let env = parse::<Snapshot>(bytes)?;
        let new = &env.signed;
        check_threshold(
            Role::Snapshot,
            new.version,
            &env.canonical,
            &env.signatures,
            &self.root.signed,
        )?;
        if let Some(old) = &self.snapshot {
            for (file, old_meta) in &old.signed.meta {
                let Some(new_meta) = new.meta.get(file) else {
                    return Err(TufError::MetaRemoved {
                        snapshot_version: new.version,
                        file: file.clone(),
                    });
                };
                if new_meta.version < old_meta.version {
                    return Err(TufError::MetaVersionRollback {
                        snapshot_version: new.version,
                        file: file.clone(),
                        trusted: old_meta.version,
                        found: new_meta.version,
                    });
                }
            }
        }
        self.snapshot = Some(loaded(env, bytes));
        self.final_snapshot(now).map(|_| ())
    }

    /// Loads top-level targets (§5.6): length and hashes as listed by the snapshot, signed by a
    /// threshold of targets keys, version equal to the snapshot's listing, not expired.
    pub fn update_targets(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Result<(), TufError> {
        let snapshot = self.final_snapshot(now)?;
        let file = Role::Targets.file_name();
        let meta = snapshot
            .meta
            .get(&file)
            .ok_or_else(|| TufError::MissingMeta {
                listed_in: Role::Snapshot,
                file: file.clone(),
            })?;
        let what = format!(
            "targets v{} (listed by snapshot v{})",
            meta.version, snapshot.version
        );
        hashes::check(
            &what,
            &Digests::of(bytes),
            meta.length,
            meta.hashes.as_ref(),
        )?;
        let env = parse::<Targets>(bytes)?;
        check_threshold(
            Role::Targets,
            env.signed.version,
            &env.canonical,
            &env.signatures,
            &self.root.signed,
        )?;
        if env.signed.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: Role::Targets,
                listed_by: Role::Snapshot,
                expected: meta.version,
                found: env.signed.version,
            });
        }
        expiry_check(&env.signed, now)?;
        let delegations = parse_delegations(Role::Targets.as_str(), &env.signed)?;
        self.targets = Some(loaded(env, bytes));
        self.targets_delegations = delegations;
        self.delegated.clear();
        Ok(())
    }

    /// Loads the delegated targets role `role` as delegated by `delegator` (`"targets"` or an
    /// already loaded delegated role), per §5.6.7 and python-tuf's `update_delegated_targets`:
    /// listed in the final snapshot as `{role}.json` with matching length/hashes, signed by a
    /// threshold of the keys the delegator lists for it, version equal to the snapshot's
    /// listing, not expired. Errors are wrapped in [`TufError::Delegated`].
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TufError> {
        let wrap = |source: TufError| TufError::Delegated {
            role: role.to_string(),
            delegator: delegator.to_string(),
            source: Box::new(source),
        };
        let snapshot = self.final_snapshot(now).map_err(wrap)?;
        let delegations = self.delegations_of(delegator).ok_or_else(|| {
            wrap(TufError::OutOfOrder {
                action: "load a delegated targets role",
                reason: "its delegator is not loaded or delegates nothing",
            })
        })?;
        let file = format!("{role}.json");
        let meta = snapshot.meta.get(&file).ok_or_else(|| {
            wrap(TufError::MissingMeta {
                listed_in: Role::Snapshot,
                file: file.clone(),
            })
        })?;
        let what = format!(
            "{role} v{} (listed by snapshot v{})",
            meta.version, snapshot.version
        );
        hashes::check(
            &what,
            &Digests::of(bytes),
            meta.length,
            meta.hashes.as_ref(),
        )
        .map_err(wrap)?;
        let env = parse::<Targets>(bytes).map_err(wrap)?;
        let (keyids, threshold) = delegations.role_keys(role).ok_or_else(|| {
            wrap(TufError::OutOfOrder {
                action: "load a delegated targets role",
                reason: "the delegator does not delegate to this role",
            })
        })?;
        let valid = valid_signers(&delegations.keys, keyids, &env.canonical, &env.signatures);
        if (valid.len() as u64) < threshold {
            return Err(wrap(TufError::ThresholdNotMet {
                role: Role::Targets,
                version: env.signed.version,
                root_version: self.root.signed.version,
                threshold,
                valid,
                trusted: keyids.to_vec(),
            }));
        }
        if env.signed.version != meta.version {
            return Err(wrap(TufError::VersionMismatch {
                role: Role::Targets,
                listed_by: Role::Snapshot,
                expected: meta.version,
                found: env.signed.version,
            }));
        }
        expiry_check(&env.signed, now).map_err(wrap)?;
        let parsed = parse_delegations(role, &env.signed).map_err(wrap)?;
        self.delegated.insert(
            role.to_string(),
            LoadedTargets {
                loaded: loaded(env, bytes),
                delegations: parsed,
                delegator: delegator.to_string(),
            },
        );
        Ok(())
    }

    /// The targets metadata of `role` (`"targets"` or a loaded delegated role).
    pub fn targets_role(&self, role: &str) -> Option<&Targets> {
        if role == Role::Targets.as_str() {
            return self.targets();
        }
        self.delegated.get(role).map(|l| &l.loaded.signed)
    }

    /// The parsed delegations of `role` (`"targets"` or a loaded delegated role), if it delegates.
    pub fn delegations_of(&self, role: &str) -> Option<&Delegations> {
        if role == Role::Targets.as_str() {
            self.targets.as_ref()?;
            return self.targets_delegations.as_ref();
        }
        self.delegated.get(role)?.delegations.as_ref()
    }

    /// Whether `role` is loaded and was verified against `delegator` (`"root"` for top-level
    /// targets).
    pub fn is_loaded(&self, role: &str, delegator: &str) -> bool {
        if role == Role::Targets.as_str() {
            return self.targets.is_some() && delegator == Role::Root.as_str();
        }
        self.delegated
            .get(role)
            .is_some_and(|l| l.delegator == delegator)
    }

    /// The first hash (algorithm, hex) listed for target `name` in `role`'s metadata, in the
    /// order the file lists them: python-tuf prefixes consistent-snapshot target file names
    /// with this hash.
    pub fn first_listed_hash(&self, role: &str, name: &str) -> Option<(String, String)> {
        let raw = self.raw(role)?;
        let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
        let hashes = value
            .get("signed")?
            .get("targets")?
            .get(name)?
            .get("hashes")?
            .as_object()?;
        let (algorithm, hash) = hashes.iter().next()?;
        Some((algorithm.clone(), hash.as_str()?.to_string()))
    }

    /// The snapshot's listing of `{role}.json`, once a snapshot is loaded.
    pub fn snapshot_meta(&self, role: &str) -> Option<&super::metadata::MetaFile> {
        self.snapshot.as_ref()?.signed.meta.get(&format!("{role}.json"))
    }

    /// The trusted target `name`, once targets are loaded.
    pub fn target(&self, name: &str) -> Option<&TargetFile> {
        self.targets.as_ref()?.signed.targets.get(name)
    }

    fn trusted_target(&self, name: &str) -> Result<&TargetFile, TufError> {
        let targets = self.targets.as_ref().ok_or(TufError::OutOfOrder {
            action: "verify a target",
            reason: "targets metadata is not loaded yet",
        })?;
        targets
            .signed
            .targets
            .get(name)
            .ok_or_else(|| TufError::TargetNotFound {
                name: name.into(),
                targets_version: targets.signed.version,
            })
    }

    /// Checks a downloaded target's length and sha256 against the trusted targets metadata.
    /// The target must list a sha256 (other listed hashes are not needed: sha256 and the length
    /// pin the file); use [`TrustedSet::verify_target_data`] to check every listed hash.
    pub fn verify_target(&self, name: &str, length: u64, sha256_hex: &str) -> Result<(), TufError> {
        let target = self.trusted_target(name)?;
        let what = format!("target {name}");
        if target.length != length {
            return Err(TufError::LengthMismatch {
                what,
                expected: target.length,
                found: length,
            });
        }
        let expected = target.hashes.get("sha256").ok_or(TufError::NoHash {
            what: what.clone(),
            needed: "sha256",
        })?;
        if !expected.eq_ignore_ascii_case(sha256_hex) {
            return Err(TufError::HashMismatch {
                what,
                algorithm: "sha256".into(),
                expected: expected.clone(),
                found: sha256_hex.into(),
            });
        }
        Ok(())
    }

    /// Checks a target's bytes: length and every listed hash (sha256 and sha512 supported).
    pub fn verify_target_data(&self, name: &str, data: &[u8]) -> Result<(), TufError> {
        self.check_target_digests(name, &Digests::of(data))
    }

    /// Like [`TrustedSet::verify_target_data`], reading the target from `reader` (e.g. a file).
    pub fn verify_target_reader(&self, name: &str, reader: impl Read) -> Result<(), TufError> {
        let target_what = format!("target {name}");
        self.trusted_target(name)?;
        self.check_target_digests(name, &Digests::of_reader(&target_what, reader)?)
    }

    fn check_target_digests(&self, name: &str, observed: &DigestValues) -> Result<(), TufError> {
        let target = self.trusted_target(name)?;
        hashes::check(
            &format!("target {name}"),
            observed,
            Some(target.length),
            Some(&target.hashes),
        )
    }

    /// The targets version the trusted snapshot lists.
    pub fn snapshot_version_for_targets(&self) -> Option<u64> {
        Some(
            self.snapshot
                .as_ref()?
                .signed
                .meta
                .get(&Role::Targets.file_name())?
                .version,
        )
    }

    /// The snapshot version the trusted timestamp lists.
    pub fn timestamp_snapshot_version(&self) -> Option<u64> {
        Some(
            snapshot_meta(&self.timestamp.as_ref()?.signed)
                .ok()?
                .version,
        )
    }

    /// Whether the trusted root asks for consistent snapshots (versioned metadata names and
    /// hash-prefixed target names).
    pub fn consistent_snapshot(&self) -> bool {
        self.root.signed.consistent_snapshot == Some(true)
    }

    /// Version of the trusted root.
    pub fn root_version(&self) -> u64 {
        self.root.signed.version
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root.signed
    }

    /// The loaded timestamp, if any.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(|l| &l.signed)
    }

    /// The loaded snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|l| &l.signed)
    }

    /// The loaded targets, if any.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(|l| &l.signed)
    }

    /// The exact bytes of a loaded role's metadata (to store as the next session's trusted copy).
    /// `role` is a [`Role`] or its name (`"root"`, `"timestamp"`, `"snapshot"`, `"targets"`).
    /// A delegated role's name gives its bytes once it is loaded.
    pub fn raw(&self, role: impl AsRef<str>) -> Option<&[u8]> {
        let Some(top) = Role::from_name(role.as_ref()) else {
            return self
                .delegated
                .get(role.as_ref())
                .map(|l| l.loaded.raw.as_slice());
        };
        match top {
            Role::Root => Some(&self.root.raw),
            Role::Timestamp => self.timestamp.as_ref().map(|l| l.raw.as_slice()),
            Role::Snapshot => self.snapshot.as_ref().map(|l| l.raw.as_slice()),
            Role::Targets => self.targets.as_ref().map(|l| l.raw.as_slice()),
        }
    }

    /// The loaded timestamp if it can be used as the final one: present and not expired.
    fn final_timestamp(&self, now: DateTime<Utc>) -> Result<&Timestamp, TufError> {
        let ts = self.timestamp.as_ref().ok_or(TufError::OutOfOrder {
            action: "load a snapshot",
            reason: "no timestamp is loaded yet",
        })?;
        expiry_check(&ts.signed, now)?;
        Ok(&ts.signed)
    }

    /// The loaded snapshot if it can be used as the final one: present, not expired, and the
    /// version the final timestamp names.
    fn final_snapshot(&self, now: DateTime<Utc>) -> Result<&Snapshot, TufError> {
        let timestamp = self.final_timestamp(now)?;
        let snap = self.snapshot.as_ref().ok_or(TufError::OutOfOrder {
            action: "load targets",
            reason: "no snapshot is loaded yet",
        })?;
        expiry_check(&snap.signed, now)?;
        let listed = snapshot_meta(timestamp)?.version;
        if snap.signed.version != listed {
            return Err(TufError::VersionMismatch {
                role: Role::Snapshot,
                listed_by: Role::Timestamp,
                expected: listed,
                found: snap.signed.version,
            });
        }
        Ok(&snap.signed)
    }
}

/// The timestamp's `snapshot.json` entry.
fn snapshot_meta(ts: &Timestamp) -> Result<&super::metadata::MetaFile, TufError> {
    let file = Role::Snapshot.file_name();
    ts.meta.get(&file).ok_or(TufError::MissingMeta {
        listed_in: Role::Timestamp,
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::{Expiry, RepoKeys, Repository};
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn loads_a_fresh_repository_and_exposes_versions() {
        let repo = Repository::new(RepoKeys::generate(), Expiry::default(), now());
        let files = repo.files();
        let mut set = TrustedSet::new(&files["root.json"]).unwrap();
        assert_eq!(
            (
                set.timestamp_snapshot_version(),
                set.snapshot_version_for_targets()
            ),
            (None, None)
        );
        set.update_timestamp(&files["timestamp.json"], now())
            .unwrap();
        set.update_snapshot(&files["1.snapshot.json"], now())
            .unwrap();
        set.update_targets(&files["1.targets.json"], now()).unwrap();
        assert_eq!(
            (
                set.timestamp_snapshot_version(),
                set.snapshot_version_for_targets()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(set.targets().unwrap().version, 1);
        assert_eq!(
            set.raw(Role::Snapshot),
            Some(files["1.snapshot.json"].as_slice())
        );
    }

    #[test]
    fn expiry_is_checked_against_the_given_time_only() {
        let repo = Repository::new(RepoKeys::generate(), Expiry::default(), now());
        let files = repo.files();
        let mut set = TrustedSet::new(&files["root.json"]).unwrap();
        let at_expiry = now() + TimeDelta::days(1);
        let err = set
            .update_timestamp(&files["timestamp.json"], at_expiry)
            .unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Expired {
                    role: Role::Timestamp,
                    version: 1,
                    ..
                }
            ),
            "{err}"
        );
        set.update_timestamp(&files["timestamp.json"], at_expiry - TimeDelta::seconds(1))
            .unwrap();
    }

    #[test]
    fn rejects_a_self_signed_root_with_a_forged_signature() {
        let repo = Repository::new(RepoKeys::generate(), Expiry::default(), now());
        let mut root: serde_json::Value =
            serde_json::from_slice(&repo.files()["root.json"]).unwrap();
        root["signed"]["version"] = 5.into();
        let err = TrustedSet::new(&serde_json::to_vec(&root).unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                TufError::ThresholdNotMet {
                    role: Role::Root,
                    ..
                }
            ),
            "{err}"
        );
    }
}
