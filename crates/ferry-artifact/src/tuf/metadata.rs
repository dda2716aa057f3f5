//! Serde types of TUF 1.0 metadata files (root, timestamp, snapshot, targets).
//!
//! Every object keeps the fields it does not know in `unrecognized`, so metadata written by
//! other TUF implementations survives a parse. Signatures are never checked against these
//! structs: [`super::TrustedSet`] verifies them over the canonical JSON of the raw `signed` value.

use super::role::Role;
use super::time_format;
use crate::keys::PublicKey;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The TUF specification version Ferry writes; any `1.x` or `1.x.y` is accepted on read.
pub const SPEC_VERSION: &str = "1.0.31";

/// One signature over the canonical JSON of a metadata file's `signed` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Id of the signing key.
    pub keyid: String,
    /// The signature, lowercase hex.
    pub sig: String,
}

/// A metadata file: the `signed` payload and its signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The signed payload.
    pub signed: T,
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
}

/// Keys and threshold of one role, as listed in root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Ids of the keys allowed to sign for the role (keys are in [`Root::keys`]).
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// `root.json`: the keys and thresholds of every role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Always `"root"`.
    #[serde(rename = "_type")]
    pub role_type: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Metadata version, starting at 1, +1 for every new root.
    pub version: u64,
    /// After this instant the root is not trusted.
    #[serde(with = "time_format")]
    pub expires: DateTime<Utc>,
    /// Whether metadata and targets are served under versioned / hash-prefixed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// Public keys by key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// Keys and threshold of each top-level role.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// Version (and optionally length and hashes) of a metadata file, as listed by timestamp or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The listed file's version.
    pub version: u64,
    /// Its length in bytes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes (algorithm → lowercase hex), if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// `timestamp.json`: names the current snapshot (`meta["snapshot.json"]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `"timestamp"`.
    #[serde(rename = "_type")]
    pub role_type: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Metadata version; must never decrease.
    pub version: u64,
    /// After this instant the timestamp is stale (freeze attack protection).
    #[serde(with = "time_format")]
    pub expires: DateTime<Utc>,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// `N.snapshot.json`: the version of every targets metadata file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `"snapshot"`.
    #[serde(rename = "_type")]
    pub role_type: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// After this instant the snapshot is stale.
    #[serde(with = "time_format")]
    pub expires: DateTime<Utc>,
    /// `targets.json` (and delegated roles) → version info.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// One downloadable file listed by targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Exact length in bytes.
    pub length: u64,
    /// Hashes (algorithm → lowercase hex); Ferry checks `sha256` and `sha512`.
    pub hashes: BTreeMap<String, String>,
    /// Free JSON; Ferry writes `{"component":..,"version":..,"device_types":[..]}`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub custom: Value,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// `N.targets.json`: target names → length, hashes and custom data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `"targets"`.
    #[serde(rename = "_type")]
    pub role_type: String,
    /// TUF specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// After this instant the targets are stale.
    #[serde(with = "time_format")]
    pub expires: DateTime<Utc>,
    /// Target name (a relative URL path such as `main/1.2.0.ferry`) → file info.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations, kept as written; [`super::Delegations::from_value`] parses and validates them
    /// (the [`super::TrustedSet`] does so for every targets role it loads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Value>,
    /// Fields Ferry does not know, kept as written.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// What every top-level metadata payload has in common.
pub trait RoleMetadata: Serialize + DeserializeOwned {
    /// The role this payload belongs to.
    const ROLE: Role;
    /// The `_type` field.
    fn role_type(&self) -> &str;
    /// The `spec_version` field.
    fn spec_version(&self) -> &str;
    /// The metadata version.
    fn version(&self) -> u64;
    /// The expiry time.
    fn expires(&self) -> DateTime<Utc>;
}

macro_rules! role_metadata {
    ($ty:ty, $role:expr) => {
        impl RoleMetadata for $ty {
            const ROLE: Role = $role;
            fn role_type(&self) -> &str {
                &self.role_type
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> DateTime<Utc> {
                self.expires
            }
        }
    };
}

role_metadata!(Root, Role::Root);
role_metadata!(Timestamp, Role::Timestamp);
role_metadata!(Snapshot, Role::Snapshot);
role_metadata!(Targets, Role::Targets);

/// Whether `spec_version` is one Ferry reads: `1.x` or `1.x.y` with numeric parts.
pub(crate) fn supported_spec_version(spec_version: &str) -> bool {
    let parts: Vec<&str> = spec_version.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] == "1"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_unknown_fields_through_a_round_trip() {
        let v = json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 2,
            "expires": "2030-01-01T00:00:00Z", "x-vendor": {"a": 1},
            "targets": {"main/1.0.0.ferry": {"length": 3, "hashes": {"sha256": "ab"}, "custom": {"component": "main"}, "x": true}}
        });
        let t: Targets = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(t.unrecognized["x-vendor"], json!({"a": 1}));
        assert_eq!(t.targets["main/1.0.0.ferry"].custom["component"], "main");
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
    }

    #[test]
    fn target_without_custom_omits_it_when_written() {
        let t: TargetFile =
            serde_json::from_value(json!({"length": 1, "hashes": {"sha256": "00"}})).unwrap();
        assert!(t.custom.is_null());
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"length": 1, "hashes": {"sha256": "00"}})
        );
    }

    #[test]
    fn accepts_spec_versions_with_major_one_only() {
        for ok in ["1.0", "1.0.31", "1.2.0"] {
            assert!(supported_spec_version(ok), "{ok}");
        }
        for bad in ["2.0.0", "1", "1.0.x", "1..0", "v1.0", "1.0.0.0"] {
            assert!(!supported_spec_version(bad), "{bad}");
        }
    }
}
