//! Wire types of the device and management APIs, shared by server and agent.
//!
//! All bodies are JSON. Every device call carries `Authorization: Bearer <device token>`;
//! every management call carries `Authorization: Bearer <operator token>`.

use crate::{Component, DeviceId, Version};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll`: trade the fleet's enrollment token for a per-device credential.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The per-device bearer token; only its hash is stored on the server.
    pub device_token: String,
}

/// `POST /api/v1/checkin`: "is there something new for me?"
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The agent can install delta packages; without it the server offers full packages only.
    #[serde(default)]
    pub accepts_deltas: bool,
    /// Components for which the device holds an uncleared delta-failure record: the server
    /// answers with the full package for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_failures: Vec<Component>,
}

/// Why the server has nothing to offer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The delta half of a [`CheckinResponse::Delta`]: a delta package turning the device's
/// running release into the offered one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaOffer {
    /// The running version the delta applies to.
    pub from_version: Version,
    /// TUF target name of the delta package (e.g. `main/1.0.0_1.1.0.delta`); the agent
    /// verifies it through TUF metadata like every other target.
    pub target_name: String,
    /// Expected length (a hint; the signed targets metadata is authoritative).
    pub length: u64,
    /// Expected sha256 (hex), a hint; the signed targets metadata is authoritative.
    pub sha256: String,
}

/// Answer to [`CheckinRequest`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckinResponse {
    /// Nothing to do.
    NothingNew {
        /// Why.
        reason: NothingNewReason,
    },
    /// An update is available as a full package.
    Update {
        /// What to fetch.
        offer: UpdateOffer,
    },
    /// An update is available as a delta from the running version (only sent to agents that
    /// set [`CheckinRequest::accepts_deltas`]). `offer` is the full package of the same
    /// release, the fallback when the delta cannot be applied.
    Delta {
        /// The full package of the offered release.
        offer: UpdateOffer,
        /// The delta package to fetch instead.
        delta: DeltaOffer,
    },
}

impl CheckinResponse {
    /// The offered release's full-package pointer, if an update is offered.
    pub fn offer(&self) -> Option<&UpdateOffer> {
        match self {
            CheckinResponse::NothingNew { .. } => None,
            CheckinResponse::Update { offer } | CheckinResponse::Delta { offer, .. } => Some(offer),
        }
    }

    /// The delta pointer, if the update is offered as a delta.
    pub fn delta(&self) -> Option<&DeltaOffer> {
        match self {
            CheckinResponse::Delta { delta, .. } => Some(delta),
            _ => None,
        }
    }
}

/// Result of an upgrade attempt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// New version installed and healthy.
    Success,
    /// Upgrade failed; the device rolled back (or never switched).
    Failure,
}

/// `POST /api/v1/reports`: the upgrade result a device sends after every attempt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Delta packages the server built to this release, one per base version.
    #[serde(default)]
    pub deltas: Vec<DeltaRecord>,
    /// Set while the rollout is halted by a security alert: the release is offered to no
    /// device until an operator resumes it.
    #[serde(default)]
    pub halted: Option<ReleaseHalt>,
}

/// Why and since when a release's rollout is halted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseHalt {
    /// The security alert that halted it.
    pub alert_id: i64,
    /// When (Unix milliseconds, server clock).
    pub since: u64,
}

impl ReleaseRecord {
    /// The delta from `running` to this release, if the server has one.
    pub fn delta_from(&self, running: &Version) -> Option<&DeltaRecord> {
        self.deltas.iter().find(|d| &d.from_version == running)
    }
}

/// A delta package the server built and published as a TUF target.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaRecord {
    /// Component of both releases.
    pub component: Component,
    /// The base release the delta applies to.
    pub from_version: Version,
    /// The release the delta produces.
    pub to_version: Version,
    /// TUF target name: `{component}/{from}_{to}.delta`.
    pub target_name: String,
    /// Package length in bytes.
    pub length: u64,
    /// Package sha256 (hex).
    pub sha256: String,
    /// When it was built (Unix milliseconds).
    pub created_at: u64,
}

impl DeltaRecord {
    /// The TUF target name of the delta from `from` to `to` of `component`.
    pub fn target_name_for(component: Component, from: &Version, to: &Version) -> String {
        format!("{component}/{from}_{to}.delta")
    }
}

/// An existing file that did not match what a delta expected.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMismatch {
    /// Path relative to the release directory.
    pub path: String,
    /// sha256 the delta expected.
    pub expected: String,
    /// What the device found: a sha256, or why none could be computed ("missing", …).
    pub found: String,
}

/// Why a device could not apply a delta (`POST /api/v1/delta-failures`). While the record
/// stands the server offers that device full packages of the component; a successful full
/// install clears it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaFailureRecord {
    /// The device; must match the bearer token's device.
    pub device_id: DeviceId,
    /// Component the delta was for.
    pub component: Component,
    /// The running version the delta was built from.
    pub from_version: Version,
    /// The version the delta would have produced.
    pub to_version: Version,
    /// TUF target name of the delta package.
    pub target_name: String,
    /// Install state in which the failure happened (e.g. `downloading`, `backed_up`).
    pub state: String,
    /// What failed, in words.
    pub reason: String,
    /// Each file whose content differed from what the delta expected.
    #[serde(default)]
    pub files: Vec<FileMismatch>,
    /// When the device recorded it (Unix milliseconds, device clock).
    pub failed_at: u64,
}

/// `POST /api/v1/releases/{component}/{version}/blacklist`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlacklistRequest {
    /// Devices to add to the release's blacklist.
    pub devices: Vec<DeviceId>,
}

/// A backup a device uploaded (`PUT /api/v1/backups/{component}/{version}`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// One finding of a device's preflight (static scan rule, sandbox monitor, traffic comparison).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFinding {
    /// Severity as the device's policy graded it (`info`, `low`, `medium`, `high`, `critical`).
    pub severity: String,
    /// The rule or check that fired (e.g. `dangerous-import/gets`, `mirror/mismatch`).
    pub rule: String,
    /// Where: a file path inside the package, an endpoint, a process.
    #[serde(default)]
    pub location: String,
    /// What was found, in words.
    pub message: String,
}

/// One piece of evidence backing an alert (a response pair, a denied syscall, a connection).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertEvidence {
    /// What kind of evidence (`response_mismatch`, `outbound_connection`, `scan_report`, …).
    pub kind: String,
    /// The evidence itself, in text.
    pub detail: String,
}

/// `POST /api/v1/alerts`: a device judged an update unsafe during preflight. The server
/// archives it and halts the release's rollout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityAlert {
    /// The device reporting; must match the bearer token's device.
    pub device_id: DeviceId,
    /// Component of the release judged unsafe.
    pub component: Component,
    /// Version of the release judged unsafe.
    pub version: Version,
    /// The preflight stage that decided (`gate`, `scan`, `sandbox`, `mirror`).
    pub stage: String,
    /// What was found.
    pub findings: Vec<AlertFinding>,
    /// What backs the findings.
    #[serde(default)]
    pub evidence: Vec<AlertEvidence>,
    /// When the device decided (Unix milliseconds, device clock).
    pub detected_at: u64,
}

/// An archived security alert, as operators see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedAlert {
    /// Server-assigned id.
    pub id: i64,
    /// When the server received it (Unix milliseconds).
    pub received_at: u64,
    /// The alert as the device sent it.
    pub alert: SecurityAlert,
    /// What it means for the operator.
    pub message: String,
}

impl ArchivedAlert {
    /// The operator message for an alert: which release, that its rollout is halted, and that
    /// the package, its transport or its signing keys may be compromised.
    pub fn message_for(alert: &SecurityAlert) -> String {
        let worst = alert
            .findings
            .iter()
            .map(|f| format!("{} [{}] {}", f.severity, f.rule, f.message))
            .next()
            .unwrap_or_else(|| "no finding given".into());
        format!(
            "SECURITY ALERT: device '{}' found release {} {} unsafe during preflight ({} stage, {} \
             finding(s); first: {worst}). The package, its transport or its signing keys may be \
             compromised. The rollout of {} {} is halted: no device is offered it. Check the \
             package's origin and signatures and rotate keys if needed; resume with POST \
             /api/v1/releases/{}/{}/resume only once it is cleared.",
            alert.device_id,
            alert.component,
            alert.version,
            alert.stage,
            alert.findings.len(),
            alert.component,
            alert.version,
            alert.component,
            alert.version,
        )
    }
}

/// Error body of every failed API call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    fn checkin_request_from_an_agent_without_delta_support_still_parses() {
        let j = r#"{"device_id":"d1","device_type":"t","upgrader_version":"1.0.0","main_version":"1.0.0"}"#;
        let r: CheckinRequest = serde_json::from_str(j).unwrap();
        assert!(!r.accepts_deltas);
        assert!(r.delta_failures.is_empty());
    }

    #[test]
    fn release_record_without_deltas_field_parses_with_none() {
        let j = r#"{"component":"main","version":"1.1.0","device_types":[],"target_name":"main/1.1.0.ferry",
            "length":3,"sha256":"ab","blacklist":[],"go_live":null,"created_at":0}"#;
        let r: ReleaseRecord = serde_json::from_str(j).unwrap();
        assert!(r.deltas.is_empty());
        assert_eq!(r.halted, None);
        assert_eq!(r.delta_from(&Version::new(1, 0, 0)), None);
    }

    #[test]
    fn delta_answer_is_tagged_and_carries_the_full_package_too() {
        let offer = UpdateOffer {
            component: Component::Main,
            version: Version::new(1, 1, 0),
            target_name: "main/1.1.0.ferry".into(),
            file_base_url: "http://s/files".into(),
            metadata_base_url: "http://s/tuf".into(),
            chunk_size: 4096,
            length: 100,
            sha256: "aa".into(),
        };
        let delta = DeltaOffer {
            from_version: Version::new(1, 0, 0),
            target_name: DeltaRecord::target_name_for(Component::Main, &Version::new(1, 0, 0), &Version::new(1, 1, 0)),
            length: 10,
            sha256: "bb".into(),
        };
        let r = CheckinResponse::Delta { offer: offer.clone(), delta: delta.clone() };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["status"], "delta");
        assert_eq!(j["delta"]["target_name"], "main/1.0.0_1.1.0.delta");
        let back: CheckinResponse = serde_json::from_value(j).unwrap();
        assert_eq!(back.offer(), Some(&offer));
        assert_eq!(back.delta(), Some(&delta));
        assert_eq!(CheckinResponse::Update { offer }.delta(), None);
    }

    #[test]
    fn alert_message_names_release_and_possible_compromise() {
        let alert = SecurityAlert {
            device_id: DeviceId::new("d1").unwrap(),
            component: Component::Main,
            version: Version::new(2, 0, 0),
            stage: "mirror".into(),
            findings: vec![AlertFinding {
                severity: "critical".into(),
                rule: "sandbox/outbound-connection".into(),
                location: "/bin/app".into(),
                message: "connected to 203.0.113.9:443".into(),
            }],
            evidence: vec![],
            detected_at: 5,
        };
        let m = ArchivedAlert::message_for(&alert);
        for part in ["main 2.0.0", "d1", "compromised", "transport", "keys", "halted", "/resume", "203.0.113.9"] {
            assert!(m.contains(part), "{part} missing in {m}");
        }
        let j = serde_json::to_value(&alert).unwrap();
        let back: SecurityAlert = serde_json::from_value(j).unwrap();
        assert_eq!(back, alert);
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
