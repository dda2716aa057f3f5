//! The install state machine the agent persists across restarts and power cuts.
//!
//! The agent loads the persisted state, computes the next state with [`InstallState::next`]
//! (pure), writes it back atomically, then performs the side effect the new state names.
//! After a restart, [`InstallState::recovery`] says what to do from wherever it stopped.

use crate::{Component, Version};
use serde::{Deserialize, Serialize};

/// The update being installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Component being updated.
    pub component: Component,
    /// Version before the update.
    pub from_version: Version,
    /// Version being installed.
    pub to_version: Version,
    /// TUF target name of the artifact.
    pub target_name: String,
    /// Bytes fetched so far in this attempt (all sessions).
    #[serde(default)]
    pub bytes_downloaded: u64,
    /// Set when `target_name` is a delta package from this running version (the release is
    /// built from it instead of unpacked from a full artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_from: Option<Version>,
}

/// Where an install stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstallState {
    /// Nothing in progress.
    Idle,
    /// Fetching segments; `done` bytes are on disk and fsynced.
    Downloading {
        /// The update.
        pending: Pending,
        /// Bytes already on disk.
        done: u64,
    },
    /// The whole artifact verified: length and hash from signed metadata, artifact signature.
    Verified {
        /// The update.
        pending: Pending,
    },
    /// The running version is backed up; nothing switched yet.
    BackedUp {
        /// The update.
        pending: Pending,
    },
    /// The new version is active and awaits its health check.
    Switched {
        /// The update.
        pending: Pending,
    },
    /// Final: the new version is healthy; a report is owed.
    Confirmed {
        /// The update.
        pending: Pending,
    },
    /// Final: the new version failed and the backup was restored; a report is owed.
    RolledBack {
        /// The update.
        pending: Pending,
        /// Why it failed.
        why: String,
    },
    /// Final: failed before anything was switched; the running version was never touched.
    Failed {
        /// The update.
        pending: Pending,
        /// Why it failed.
        why: String,
    },
}

/// Something that happened during an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start fetching this update.
    Begin(Pending),
    /// `done` bytes are now safely on disk; `fetched` bytes came over the network since the last event.
    Progress {
        /// Bytes on disk.
        done: u64,
        /// Bytes fetched since the previous event.
        fetched: u64,
    },
    /// The downloaded artifact verified.
    DownloadVerified,
    /// The backup of the running version is complete.
    BackupDone,
    /// The new version was atomically made the active one.
    Switched,
    /// The health check passed.
    HealthOk,
    /// The health check failed, or the new version did not start.
    HealthFailed(String),
    /// The backup was restored and the old version is active again.
    RollbackDone,
    /// A step before the switch failed; the running version is untouched.
    Abort(String),
    /// The result was delivered to the server.
    Reported,
}

/// An event that is not allowed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("install state machine: event {event} is not allowed in state {state}")]
pub struct IllegalStep {
    /// The state's name.
    pub state: &'static str,
    /// The event's name.
    pub event: String,
}

/// What the agent must do after loading a persisted state (e.g. after a power cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing is in progress.
    Nothing,
    /// Continue the download from the bytes already on disk.
    ResumeDownload,
    /// Re-verify the downloaded artifact and go on.
    Reverify,
    /// The backup may be incomplete: back up again, then install.
    RedoBackup,
    /// Staging may be half-written: discard it and install again from the verified artifact.
    Reinstall,
    /// The new version is active but unconfirmed: run the health check (roll back if it fails).
    CheckHealth,
    /// The attempt is over; send its report.
    SendReport,
}

impl InstallState {
    /// The state's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            InstallState::Idle => "idle",
            InstallState::Downloading { .. } => "downloading",
            InstallState::Verified { .. } => "verified",
            InstallState::BackedUp { .. } => "backed_up",
            InstallState::Switched { .. } => "switched",
            InstallState::Confirmed { .. } => "confirmed",
            InstallState::RolledBack { .. } => "rolled_back",
            InstallState::Failed { .. } => "failed",
        }
    }

    /// The update in progress, if any.
    pub fn pending(&self) -> Option<&Pending> {
        match self {
            InstallState::Idle => None,
            InstallState::Downloading { pending, .. }
            | InstallState::Verified { pending }
            | InstallState::BackedUp { pending }
            | InstallState::Switched { pending }
            | InstallState::Confirmed { pending }
            | InstallState::RolledBack { pending, .. }
            | InstallState::Failed { pending, .. } => Some(pending),
        }
    }

    /// Pure transition: the next state for `ev`, or the illegal step.
    pub fn next(self, ev: Event) -> Result<InstallState, IllegalStep> {
        use InstallState as S;
        let state = self.name();
        let illegal = |ev: &Event| IllegalStep { state, event: format!("{ev:?}") };
        Ok(match (self, ev) {
            (S::Idle, Event::Begin(pending)) => S::Downloading { pending, done: 0 },
            (S::Downloading { mut pending, .. }, Event::Progress { done, fetched }) => {
                pending.bytes_downloaded += fetched;
                S::Downloading { pending, done }
            }
            (S::Downloading { pending, .. }, Event::DownloadVerified) => S::Verified { pending },
            (S::Verified { pending }, Event::BackupDone) => S::BackedUp { pending },
            (S::BackedUp { pending }, Event::Switched) => S::Switched { pending },
            (S::Switched { pending }, Event::HealthOk) => S::Confirmed { pending },
            (S::Switched { pending }, Event::HealthFailed(why)) => S::RolledBack { pending, why: format!("{why} (rollback in progress)") },
            (S::RolledBack { pending, why }, Event::RollbackDone) => {
                S::RolledBack { pending, why: why.trim_end_matches(" (rollback in progress)").to_string() }
            }
            (S::Downloading { pending, .. } | S::Verified { pending } | S::BackedUp { pending }, Event::Abort(why)) => {
                S::Failed { pending, why }
            }
            (S::Confirmed { .. } | S::RolledBack { .. } | S::Failed { .. }, Event::Reported) => S::Idle,
            (_, ev) => return Err(illegal(&ev)),
        })
    }

    /// True while a rollback has started but not finished (its restore must be redone).
    pub fn rollback_unfinished(&self) -> bool {
        matches!(self, InstallState::RolledBack { why, .. } if why.ends_with(" (rollback in progress)"))
    }

    /// What to do after loading this state from disk.
    pub fn recovery(&self) -> Recovery {
        match self {
            InstallState::Idle => Recovery::Nothing,
            InstallState::Downloading { .. } => Recovery::ResumeDownload,
            InstallState::Verified { .. } => Recovery::RedoBackup,
            InstallState::BackedUp { .. } => Recovery::Reinstall,
            InstallState::Switched { .. } => Recovery::CheckHealth,
            InstallState::RolledBack { .. } if self.rollback_unfinished() => Recovery::CheckHealth,
            InstallState::Confirmed { .. } | InstallState::RolledBack { .. } | InstallState::Failed { .. } => {
                Recovery::SendReport
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pending {
        Pending {
            component: Component::Main,
            from_version: Version::new(1, 0, 0),
            to_version: Version::new(1, 1, 0),
            target_name: "main/1.1.0.ferry".into(),
            bytes_downloaded: 0,
            delta_from: None,
        }
    }

    fn run(events: Vec<Event>) -> Result<InstallState, IllegalStep> {
        events.into_iter().try_fold(InstallState::Idle, |s, e| s.next(e))
    }

    #[test]
    fn happy_path_ends_confirmed_then_idle_after_report() {
        let s = run(vec![
            Event::Begin(p()),
            Event::Progress { done: 4096, fetched: 4096 },
            Event::Progress { done: 8192, fetched: 4096 },
            Event::DownloadVerified,
            Event::BackupDone,
            Event::Switched,
            Event::HealthOk,
        ])
        .unwrap();
        assert_eq!(s.pending().unwrap().bytes_downloaded, 8192);
        assert!(matches!(s, InstallState::Confirmed { .. }));
        assert_eq!(s.recovery(), Recovery::SendReport);
        assert_eq!(s.next(Event::Reported).unwrap(), InstallState::Idle);
    }

    #[test]
    fn failed_health_check_rolls_back_with_reason() {
        let s = run(vec![Event::Begin(p()), Event::DownloadVerified, Event::BackupDone, Event::Switched, Event::HealthFailed("exit 3".into())]).unwrap();
        assert!(s.rollback_unfinished());
        assert_eq!(s.recovery(), Recovery::CheckHealth);
        let s = s.next(Event::RollbackDone).unwrap();
        assert_eq!(s, InstallState::RolledBack { pending: p(), why: "exit 3".into() });
        assert_eq!(s.recovery(), Recovery::SendReport);
    }

    #[test]
    fn cannot_switch_before_backup() {
        let err = run(vec![Event::Begin(p()), Event::DownloadVerified, Event::Switched]).unwrap_err();
        assert_eq!(err.state, "verified");
    }

    #[test]
    fn cannot_install_unverified_download() {
        let err = run(vec![Event::Begin(p()), Event::BackupDone]).unwrap_err();
        assert_eq!(err.state, "downloading");
    }

    #[test]
    fn abort_after_switch_is_illegal_rollback_is_required() {
        let err = run(vec![Event::Begin(p()), Event::DownloadVerified, Event::BackupDone, Event::Switched, Event::Abort("x".into())]).unwrap_err();
        assert_eq!(err.state, "switched");
    }

    #[test]
    fn abort_before_switch_leaves_running_version_untouched() {
        for prefix in [vec![], vec![Event::DownloadVerified], vec![Event::DownloadVerified, Event::BackupDone]] {
            let mut evs = vec![Event::Begin(p())];
            evs.extend(prefix);
            evs.push(Event::Abort("hash mismatch".into()));
            let s = run(evs).unwrap();
            assert!(matches!(s, InstallState::Failed { .. }));
        }
    }

    #[test]
    fn every_persisted_state_has_a_recovery_that_never_skips_verification() {
        let states = [
            (run(vec![Event::Begin(p())]).unwrap(), Recovery::ResumeDownload),
            (run(vec![Event::Begin(p()), Event::DownloadVerified]).unwrap(), Recovery::RedoBackup),
            (run(vec![Event::Begin(p()), Event::DownloadVerified, Event::BackupDone]).unwrap(), Recovery::Reinstall),
            (run(vec![Event::Begin(p()), Event::DownloadVerified, Event::BackupDone, Event::Switched]).unwrap(), Recovery::CheckHealth),
        ];
        for (s, want) in states {
            let json = serde_json::to_string(&s).unwrap();
            let back: InstallState = serde_json::from_str(&json).unwrap();
            assert_eq!(back.recovery(), want, "{json}");
        }
    }

    #[test]
    fn state_persisted_before_deltas_existed_reads_back_as_a_full_install() {
        let json = r#"{"state":"downloading","pending":{"component":"main","from_version":"1.0.0","to_version":"1.1.0","target_name":"main/1.1.0.ferry"},"done":0}"#;
        let s: InstallState = serde_json::from_str(json).unwrap();
        assert_eq!(s.pending().unwrap().delta_from, None);
    }

    #[test]
    fn begin_is_refused_while_an_install_is_in_progress() {
        let s = run(vec![Event::Begin(p())]).unwrap();
        assert!(s.next(Event::Begin(p())).is_err());
    }
}
