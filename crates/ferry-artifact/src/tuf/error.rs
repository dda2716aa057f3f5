//! Errors of TUF metadata handling. Each names the role, versions, keys or values involved.

use super::role::Role;
use crate::keys::KeyError;
use chrono::{DateTime, Utc};

/// TUF metadata could not be produced, loaded or verified.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// Not JSON, or not the shape of the role's metadata.
    #[error(
        "{role} metadata is malformed: {reason}; the repository served a broken or foreign file — \
         check the server's /tuf/{file}", file = role.file_name()
    )]
    Malformed {
        /// Role being loaded.
        role: Role,
        /// What is wrong.
        reason: String,
    },
    /// `_type` names another role (metadata of one role offered as another).
    #[error(
        "expected {expected} metadata but the file's _type is '{found}'; a file was served under the wrong name"
    )]
    WrongType {
        /// Role being loaded.
        expected: Role,
        /// `_type` found.
        found: String,
    },
    /// `spec_version` is not a TUF 1.x version.
    #[error(
        "{role} v{version}: spec_version '{found}' is not supported (Ferry reads TUF 1.x metadata)"
    )]
    SpecVersion {
        /// Role being loaded.
        role: Role,
        /// Its version.
        version: u64,
        /// `spec_version` found.
        found: String,
    },
    /// A root whose role definitions are unusable.
    #[error("root v{version} is invalid: {reason}")]
    InvalidRoot {
        /// The root's version.
        version: u64,
        /// What is wrong.
        reason: String,
    },
    /// Not enough valid signatures from keys the root trusts for the role.
    #[error(
        "{role} v{version} has {} valid signature(s) from keys that root v{root_version} trusts for \
         {role}, {threshold} required (valid: [{}]; trusted: [{}]); the metadata may be forged or \
         signed with keys that were never added to root — re-sign it with the role's keys",
        valid.len(), valid.join(", "), trusted.join(", ")
    )]
    ThresholdNotMet {
        /// Role being verified.
        role: Role,
        /// Its version.
        version: u64,
        /// Version of the root that defines the role's keys.
        root_version: u64,
        /// Signatures required.
        threshold: u64,
        /// Key ids whose signatures verified.
        valid: Vec<String>,
        /// Key ids the root trusts for the role.
        trusted: Vec<String>,
    },
    /// A new root that is not exactly one version after the trusted one.
    #[error("new root has version {found}, expected {expected} (trusted root is v{}); roots must be applied one version at a time", expected - 1)]
    RootVersionNotNext {
        /// Trusted version + 1.
        expected: u64,
        /// Version offered.
        found: u64,
    },
    /// Metadata past its expiry time (freeze attack protection).
    #[error(
        "{role} v{version} expired at {expires} (now {now}); the repository must re-sign it — or, \
         if this is unexpected, check the device clock or suspect a freeze attack"
    )]
    Expired {
        /// Role checked.
        role: Role,
        /// Its version.
        version: u64,
        /// When it expired.
        expires: DateTime<Utc>,
        /// The reference time.
        now: DateTime<Utc>,
    },
    /// A metadata version lower than the trusted one (rollback attack).
    #[error(
        "{role} version {found} is older than trusted version {trusted}; refusing a rollback to old metadata"
    )]
    VersionRollback {
        /// Role offered.
        role: Role,
        /// Trusted version.
        trusted: u64,
        /// Version offered.
        found: u64,
    },
    /// Same version as trusted, but different content.
    #[error(
        "{role} v{version} differs from the trusted {role} v{version}; a repository must never \
         re-sign different content under the same version — refusing it"
    )]
    SameVersionChanged {
        /// Role offered.
        role: Role,
        /// The version both share.
        version: u64,
    },
    /// Timestamp lists an older snapshot than the trusted timestamp did.
    #[error(
        "timestamp v{timestamp_version} names snapshot version {found}, older than trusted snapshot version {trusted}; refusing a rollback"
    )]
    SnapshotVersionRollback {
        /// The new timestamp's version.
        timestamp_version: u64,
        /// Snapshot version the trusted timestamp named.
        trusted: u64,
        /// Snapshot version the new timestamp names.
        found: u64,
    },
    /// A new snapshot dropped a metadata file the trusted snapshot listed.
    #[error(
        "snapshot v{snapshot_version} no longer lists {file}, which the trusted snapshot listed; refusing it"
    )]
    MetaRemoved {
        /// The new snapshot's version.
        snapshot_version: u64,
        /// The missing file.
        file: String,
    },
    /// A new snapshot lists an older version of a metadata file (rollback attack).
    #[error(
        "snapshot v{snapshot_version} lists {file} version {found}, older than trusted version {trusted}; refusing a rollback"
    )]
    MetaVersionRollback {
        /// The new snapshot's version.
        snapshot_version: u64,
        /// The metadata file.
        file: String,
        /// Version the trusted snapshot listed.
        trusted: u64,
        /// Version the new snapshot lists.
        found: u64,
    },
    /// Metadata whose version differs from what the listing role says (mix-and-match attack).
    #[error(
        "{listed_by} lists {role} version {expected} but the {role} file is version {found}; the repository is inconsistent or under a mix-and-match attack"
    )]
    VersionMismatch {
        /// The role loaded.
        role: Role,
        /// The role that lists it.
        listed_by: Role,
        /// Version listed.
        expected: u64,
        /// Version found.
        found: u64,
    },
    /// A listing role does not mention a required file.
    #[error("{listed_in} does not list {file}; the repository metadata is incomplete")]
    MissingMeta {
        /// The listing role.
        listed_in: Role,
        /// File it should list.
        file: String,
    },
    /// Length differs from the signed metadata.
    #[error(
        "{what}: length {found} does not match the signed length {expected}; the file is truncated, padded or was replaced — re-download it"
    )]
    LengthMismatch {
        /// What was checked, e.g. `target main/1.2.0.ferry`.
        what: String,
        /// Signed length.
        expected: u64,
        /// Observed length.
        found: u64,
    },
    /// Hash differs from the signed metadata.
    #[error(
        "{what}: {algorithm} {found} does not match the signed {expected}; the file is corrupt or was tampered with — re-download it"
    )]
    HashMismatch {
        /// What was checked.
        what: String,
        /// Hash algorithm.
        algorithm: String,
        /// Signed hash.
        expected: String,
        /// Observed hash.
        found: String,
    },
    /// Signed metadata lists a hash algorithm Ferry cannot check.
    #[error(
        "{what}: hash algorithm '{algorithm}' is not supported (Ferry checks sha256 and sha512); ask the repository to list sha256"
    )]
    UnsupportedHash {
        /// What was checked.
        what: String,
        /// The algorithm.
        algorithm: String,
    },
    /// Signed metadata lists no hash Ferry can use for this check.
    #[error("{what}: the signed metadata lists no {needed} hash; cannot verify the file")]
    NoHash {
        /// What was checked.
        what: String,
        /// The hash needed ("sha256", "sha256 or sha512").
        needed: &'static str,
    },
    /// Calls made in an order the TUF client workflow does not allow.
    #[error("cannot {action}: {reason}")]
    OutOfOrder {
        /// What was attempted.
        action: &'static str,
        /// Why not now.
        reason: &'static str,
    },
    /// The target is not in the trusted targets metadata.
    #[error(
        "target '{name}' is not listed in trusted targets v{targets_version}; it was never released or was removed"
    )]
    TargetNotFound {
        /// Target name asked for.
        name: String,
        /// Version of the targets metadata searched.
        targets_version: u64,
    },
    /// A target Ferry cannot publish.
    #[error("target '{name}' cannot be published: {reason}")]
    InvalidTarget {
        /// Target name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A repository file that must exist is missing.
    #[error(
        "repository file {file} is missing; restore the TUF directory from backup or recreate the repository"
    )]
    MissingFile {
        /// File name.
        file: String,
    },
    /// The repository keys are not the keys the repository's root trusts.
    #[error(
        "the {role} key {key_id} is not trusted for {role} by root v{root_version} (trusted: [{}]); \
         the keys directory does not belong to this repository", trusted.join(", ")
    )]
    KeysDoNotMatchRoot {
        /// Role whose key does not match.
        role: Role,
        /// Key id of the key given.
        key_id: String,
        /// Root version checked.
        root_version: u64,
        /// Key ids the root trusts for the role.
        trusted: Vec<String>,
    },
    /// Reading a target to verify it failed.
    #[error("{what}: read failed: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A delegated targets role failed verification (the inner error names what and how).
    #[error("delegated targets role '{role}' (delegated by '{delegator}'): {source}")]
    Delegated {
        /// The delegated role's name.
        role: String,
        /// The role that delegates to it.
        delegator: String,
        /// What went wrong.
        #[source]
        source: Box<TufError>,
    },
    /// A delegation that is not well formed.
    #[error("{role} v{version} has invalid delegations: {reason}")]
    InvalidDelegations {
        /// The delegating role's name.
        role: String,
        /// Its version.
        version: u64,
        /// What is wrong.
        reason: String,
    },
}
