//! TUF 1.0 metadata: serde types, a signing [`Repository`] (server) and a verifying
//! [`TrustedSet`] (client), compatible with python-tuf in both directions.
//!
//! Signatures cover the canonical JSON ([`crate::keys::canonical_json`]) of each file's `signed`
//! member, unknown fields included. Ferry's repository uses one ed25519 key per role, threshold 1,
//! `consistent_snapshot: true`: metadata is served as `N.snapshot.json`, `N.targets.json`,
//! `N.root.json`, and targets under [`target_path_with_hash`] names.

mod delegation;
mod envelope;
mod error;
mod expiry;
mod hashes;
mod metadata;
mod repo_keys;
mod repository;
mod role;
mod target_info;
mod threshold;
mod time_format;
mod target_search;
mod trusted_set;

pub use delegation::{DelegatedRole, Delegations, SuccinctRoles, fnmatch, path_matches};
pub use envelope::sign_metadata;
pub use error::TufError;
pub use expiry::Expiry;
pub use metadata::{
    MetaFile, RoleKeys, RoleMetadata, Root, SPEC_VERSION, Signature, Signed, Snapshot, TargetFile,
    Targets, Timestamp,
};
pub use repo_keys::RepoKeys;
pub use repository::Repository;
pub use role::Role;
pub use target_info::{check_target_reader, target_file, target_path_with_hash};
pub use target_search::{MAX_DELEGATIONS, SearchStep, TargetSearch};
pub use trusted_set::TrustedSet;
