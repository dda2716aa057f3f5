//! Wire types of the device and management APIs, shared by server and agent.
//!
//! All bodies are JSON. Every device call carries `Authorization: Bearer <device token>`;
//! every management call carries `Authorization: Bearer <operator token>`.

use crate::{Component, DeviceId, Version};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll`: trade the fleet's enrollment token for a per-device credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Shared secret the operator provisions on devices of a fleet.
    pub enrollment_token: String,
    /// The device's identity (IMEI-like).
    pub device_id: DeviceId,
    /// Hardware/device type; releases list the types they are compatible with.
    pub device_type: String,
}

/// Answer to [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The per-device bearer token; only its hash is stored on the server.
    pub device_token: String,
}

/// `POST /api/v1/checkin`: "is there something new for me?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The device asking; must match the bearer token's device.
    pub device_id: DeviceId,
    /// Hardware/device type.
    pub device_type: String,
    /// Version of the upgrader (the agent).
    pub upgrader_version: Version,
    /// Version of the main program.
    pub main_version: Version,
}

/// Why the server has nothing to offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NothingNewReason {
    /// Both components already run the newest release.
    UpToDate,
    /// The newest release's blacklist holds this device.
    Blacklisted {
        /// Component of the blacklisted release.
        component: Component,
        /// Version of the blacklisted release.
        version: Version,
    },
    /// The newest release is not live yet.
    NotLiveYet {
        /// When it goes live (Unix milliseconds).
        go_live: u64,
    },
    /// No release is compatible with this device type.
    NoReleaseForDeviceType,
}

/// Where and how to fetch an offered update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// Which component to update.
    pub component: Component,
    /// The version offered.
    pub version: Version,
    /// TUF target name (e.g. `main/1.2.0.ferry`); the agent verifies it through TUF metadata.
    pub target_name: String,
    /// Base URL of the file service serving TUF targets (may be another process).
    pub file_base_url: String,
    /// Base URL of the TUF metadata (`…/tuf/`).
    pub metadata_base_url: String,
    /// Segment size in bytes chosen for this device's group.
    pub chunk_size: u32,
    /// Expected length (the agent trusts the signed targets metadata, not this hint).
    pub length: u64,
    /// Expected sha256 (hex), a hint; the signed targets metadata is authoritative.
    pub sha256: String,
}

/// Answer to [`CheckinRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckinResponse {
    /// Nothing to do.
    NothingNew {
        /// Why.
        reason: NothingNewReason,
    },
    /// An update is available.
    Update {
        /// What to fetch.
        offer: UpdateOffer,
    },
}

/// Result of an upgrade attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// New version installed and healthy.
    Success,
    /// Upgrade failed; the device rolled back (or never switched).
    Failure,
}

/// `POST /api/v1/reports`: the upgrade result a device sends after every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeReport {
    /// Reporting device; must match the bearer token's device.
    pub device_id: DeviceId,
    /// Component that was upgraded.
    pub component: Component,
    /// Version before the attempt.
    pub from_version: Version,
    /// Version attempted.
    pub to_version: Version,
    /// Success or failure.
    pub outcome: Outcome,
    /// Human-readable reason (failure cause, or "installed").
    pub reason: String,
    /// Last lines of the agent's log for this attempt.
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// Bytes fetched from the file service for this attempt.
    #[serde(default)]
    pub bytes_downloaded: u64,
    /// Whether the device rolled back from its backup.
    #[serde(default)]
    pub rolled_back: bool,
}

/// A report as archived by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedReport {
    /// Server-assigned sequence number.
    pub id: i64,
    /// When the server received it (Unix milliseconds).
    pub received_at: u64,
    /// The report itself.
    pub report: UpgradeReport,
}

/// A device as the management API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Identity.
    pub device_id: DeviceId,
    /// Hardware type.
    pub device_type: String,
    /// Group (chooses chunk size and rollout wave); `default` unless set.
    pub group: String,
    /// Last reported upgrader version.
    pub upgrader_version: Option<Version>,
    /// Last reported main-program version.
    pub main_version: Option<Version>,
    /// Last check-in (Unix milliseconds).
    pub last_seen: Option<u64>,
}

/// A release as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Component it updates.
    pub component: Component,
    /// Its version.
    pub version: Version,
    /// Compatible device types (empty = any).
    pub device_types: Vec<String>,
    /// TUF target name.
    pub target_name: String,
    /// Artifact length in bytes.
    pub length: u64,
    /// Artifact sha256 (hex).
    pub sha256: String,
    /// Devices that must not receive it.
    pub blacklist: Vec<DeviceId>,
    /// Earliest time it is offered (Unix milliseconds); `None` = at once.
    pub go_live: Option<u64>,
    /// When it was uploaded (Unix milliseconds).
    pub created_at: u64,
}

/// `POST /api/v1/releases/{component}/{version}/blacklist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistRequest {
    /// Devices to add to the release's blacklist.
    pub devices: Vec<DeviceId>,
}

/// A backup a device uploaded (`PUT /api/v1/backups/{component}/{version}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Device that uploaded it.
    pub device_id: DeviceId,
    /// Component backed up.
    pub component: Component,
    /// Version backed up.
    pub version: Version,
    /// Size in bytes.
    pub length: u64,
    /// sha256 (hex) of the stored bytes.
    pub sha256: String,
    /// When it was stored (Unix milliseconds).
    pub created_at: u64,
}

/// Error body of every failed API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What failed and what to do about it.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkin_response_is_tagged_by_status() {
        let r = CheckinResponse::NothingNew { reason: NothingNewReason::UpToDate };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["status"], "nothing_new");
        assert_eq!(j["reason"]["kind"], "up_to_date");
    }

    #[test]
    fn checkin_request_rejects_unknown_fields() {
        let j = r#"{"device_id":"d1","device_type":"t","upgrader_version":"1.0.0","main_version":"1.0.0","x":1}"#;
        assert!(serde_json::from_str::<CheckinRequest>(j).is_err());
    }

    #[test]
    fn checkin_request_rejects_a_path_like_device_id() {
        let j = r#"{"device_id":"../etc","device_type":"t","upgrader_version":"1.0.0","main_version":"1.0.0"}"#;
        let err = serde_json::from_str::<CheckinRequest>(j).unwrap_err().to_string();
        assert!(err.contains("device id"), "{err}");
    }
}
