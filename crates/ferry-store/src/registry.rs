//! The `Registry`: devices, releases, blacklists, reports, backups and TUF metadata files.

use crate::StoreError;
use ferry_core::api::{
    ArchivedAlert, ArchivedReport, SecurityAlert, BackupRecord, DeltaFailureRecord, DeltaRecord, DeviceRecord, ReleaseRecord, UpgradeReport,
};
use ferry_core::rollout::RolloutRecord;
use ferry_core::{Component, DeviceId, Version};

/// Everything the server persists except artifact bytes. Every backend passes
/// [`crate::conformance::registry`].
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Creates the device (group `default`) or replaces its type and credential hash (re-enrollment).
    async fn enroll_device(&self, id: &DeviceId, device_type: &str, token_sha256: &str, now: u64) -> Result<(), StoreError>;
    /// The device whose credential hashes to `token_sha256`.
    async fn device_by_token(&self, token_sha256: &str) -> Result<Option<DeviceId>, StoreError>;
    /// Records a check-in: the versions the device reports and when. `NotFound` if not enrolled.
    async fn record_checkin(&self, id: &DeviceId, device_type: &str, upgrader: &Version, main: &Version, now: u64) -> Result<(), StoreError>;
    /// One device.
    async fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError>;
    /// All devices, ordered by id.
    async fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Moves a device into a group. `NotFound` if not enrolled.
    async fn set_device_group(&self, id: &DeviceId, group: &str) -> Result<(), StoreError>;
    /// Sets a group's download segment size in bytes.
    async fn set_group_chunk_size(&self, group: &str, chunk_size: u32) -> Result<(), StoreError>;
    /// A group's segment size, if set.
    async fn group_chunk_size(&self, group: &str) -> Result<Option<u32>, StoreError>;
    /// Adds a release. `Conflict` if (component, version) exists.
    async fn put_release(&self, release: &ReleaseRecord) -> Result<(), StoreError>;
    /// All releases, ordered by component then creation, each with its blacklist and its
    /// deltas (ordered by base version text).
    async fn releases(&self) -> Result<Vec<ReleaseRecord>, StoreError>;
    /// One release.
    async fn release(&self, component: Component, version: &Version) -> Result<Option<ReleaseRecord>, StoreError>;
    /// Adds devices to a release's blacklist (idempotent). `NotFound` if no such release.
    async fn add_to_blacklist(&self, component: Component, version: &Version, devices: &[DeviceId]) -> Result<(), StoreError>;
    /// Archives an upgrade report; returns its id.
    async fn add_report(&self, report: &UpgradeReport, now: u64) -> Result<i64, StoreError>;
    /// Reports, newest first, for one device or all; at most `limit`.
    async fn reports(&self, device: Option<&DeviceId>, limit: u32) -> Result<Vec<ArchivedReport>, StoreError>;
    /// Records a stored backup (replaces one with the same device, component and version).
    async fn add_backup(&self, backup: &BackupRecord) -> Result<(), StoreError>;
    /// A device's backups, newest first.
    async fn backups(&self, device: &DeviceId) -> Result<Vec<BackupRecord>, StoreError>;
    /// Records a delta package of a release (replaces one with the same component, base and
    /// target version). `NotFound` if the target release does not exist.
    async fn put_delta(&self, delta: &DeltaRecord) -> Result<(), StoreError>;
    /// Stores a device's delta-failure record, replacing its record for the same component.
    async fn put_delta_failure(&self, record: &DeltaFailureRecord) -> Result<(), StoreError>;
    /// A device's standing delta-failure records, ordered by component.
    async fn delta_failures(&self, device: &DeviceId) -> Result<Vec<DeltaFailureRecord>, StoreError>;
    /// Deletes a device's delta-failure record for `component`; returns whether one existed.
    async fn clear_delta_failure(&self, device: &DeviceId, component: Component) -> Result<bool, StoreError>;
    /// Archives a security alert (with the operator `message`) and, in the same transaction,
    /// halts the rollout of its release; a release already halted keeps its first halt.
    /// Returns the alert's id. `NotFound` (nothing archived) if no such release.
    async fn add_alert(&self, alert: &SecurityAlert, message: &str, now: u64) -> Result<i64, StoreError>;
    /// Security alerts, newest first; at most `limit`.
    async fn alerts(&self, limit: u32) -> Result<Vec<ArchivedAlert>, StoreError>;
    /// Sets a release's rollout plan (replacing an earlier plan; a standing failure halt stays
    /// until the release is resumed). `NotFound` if no such release.
    async fn put_rollout(&self, record: &RolloutRecord) -> Result<(), StoreError>;
    /// Every rollout plan, ordered by component and version.
    async fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError>;
    /// Halts a rollout for `reason` unless it is halted already; returns whether this call did.
    async fn halt_rollout(&self, component: Component, version: &Version, reason: &str, now: u64) -> Result<bool, StoreError>;
    /// Every report of an attempt at `component` `version`, oldest first.
    async fn release_reports(&self, component: Component, version: &Version) -> Result<Vec<ArchivedReport>, StoreError>;
    /// Lifts a release's halt (an alert's, and a rollout's failure halt); returns whether it
    /// was halted. `NotFound` if no such release.
    async fn resume_release(&self, component: Component, version: &Version) -> Result<bool, StoreError>;
    /// Stores firmware `id`'s metadata document (canonical JSON), replacing an earlier one.
    async fn put_firmware(&self, id: &str, content: &[u8], now: u64) -> Result<(), StoreError>;
    /// Firmware `id`'s metadata document.
    async fn firmware(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every firmware metadata document (id → bytes), ordered by id.
    async fn all_firmware(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores TUF metadata files (name → bytes) in one transaction, replacing same-named ones.
    async fn put_metadata(&self, files: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
    /// One TUF metadata file.
    async fn metadata(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// All TUF metadata files.
    async fn all_metadata(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}
