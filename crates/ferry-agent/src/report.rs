//! Upgrade results: the report sent to the server after every attempt, and the summary of
//! a run returned to the caller.

use ferry_core::api::{NothingNewReason, Outcome, UpgradeReport};
use ferry_core::install::InstallState;
use ferry_core::{Component, DeviceId, Version};
use std::fmt;

/// Lines of the attempt log sent with a report.
pub const LOG_TAIL_LINES: usize = 40;

/// The report owed for a final install state (`Confirmed`, `RolledBack`, `Failed`).
pub fn build(
    device: &DeviceId,
    state: &InstallState,
    log_tail: Vec<String>,
) -> Option<UpgradeReport> {
    let (pending, outcome, reason, rolled_back) = match state {
        InstallState::Confirmed { pending } => (
            pending,
            Outcome::Success,
            match &pending.delta_from {
                Some(from) => format!(
                    "{} {} installed and healthy (delta from {from})",
                    pending.component, pending.to_version
                ),
                None => format!(
                    "{} {} installed and healthy",
                    pending.component, pending.to_version
                ),
            },
            false,
        ),
        InstallState::RolledBack { pending, why } => (pending, Outcome::Failure, why.clone(), true),
        InstallState::Failed { pending, why } => (pending, Outcome::Failure, why.clone(), false),
        _ => return None,
    };
    Some(UpgradeReport {
        device_id: device.clone(),
        component: pending.component,
        from_version: pending.from_version.clone(),
        to_version: pending.to_version.clone(),
        outcome,
        reason,
        log_tail,
        bytes_downloaded: pending.bytes_downloaded,
        rolled_back,
    })
}

/// How one attempted update ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The new version is installed and healthy.
    Success,
    /// The update failed; the device runs the version it ran before.
    Failure,
    /// The download could not finish in this run; the next run resumes it.
    Deferred,
    /// The offer was skipped: this release already rolled back on this device.
    Skipped,
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Failure => "failure",
            AttemptOutcome::Deferred => "deferred",
            AttemptOutcome::Skipped => "skipped",
        })
    }
}

/// One attempted update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSummary {
    /// Component.
    pub component: Component,
    /// Version before.
    pub from: Version,
    /// Version attempted.
    pub to: Version,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why (the failure cause, or what was installed).
    pub reason: String,
    /// Bytes fetched for this attempt, over all runs.
    pub bytes_downloaded: u64,
    /// Bytes fetched in this run.
    pub bytes_this_run: u64,
    /// Whether the download resumed from bytes already on disk.
    pub resumed: bool,
    /// Segments fetched again after a failure (e.g. a dropped link) in this run.
    pub segment_retries: u32,
    /// Whether the device rolled back from its backup.
    pub rolled_back: bool,
    /// Whether the server has the report (false: it is resent next run).
    pub reported: bool,
    /// Set when the update was shipped as a delta from this version (else the full package).
    pub delta_from: Option<Version>,
}

impl AttemptSummary {
    /// `"delta"` or `"full"`: how the update was shipped.
    pub fn delivery(&self) -> &'static str {
        if self.delta_from.is_some() { "delta" } else { "full" }
    }
}

/// What one run of the agent did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Updates attempted (or finished after a restart), in order.
    pub attempts: Vec<AttemptSummary>,
    /// The server's "nothing new" answer that ended the run, if it ended that way.
    pub nothing_new: Option<NothingNewReason>,
}

impl RunSummary {
    /// Whether every attempt of this run succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Success)
    }
}

/// Human-readable "nothing new" reason.
pub fn describe_nothing_new(reason: &NothingNewReason) -> String {
    match reason {
        NothingNewReason::UpToDate => "nothing new: up to date".into(),
        NothingNewReason::Blacklisted { component, version } => {
            format!("nothing new: {component} {version} is blacklisted for this device")
        }
        NothingNewReason::NotLiveYet { go_live } => {
            format!("nothing new: the next release goes live at {go_live} (Unix ms)")
        }
        NothingNewReason::NoReleaseForDeviceType => {
            "nothing new: no release for this device type".into()
        }
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.attempts {
            write!(
                f,
                "{} {} -> {}: {} ({})",
                a.component, a.from, a.to, a.outcome, a.reason
            )?;
            write!(f, "; {} bytes downloaded ({})", a.bytes_downloaded, a.delivery())?;
            if a.resumed {
                write!(f, ", resumed")?;
            }
            if a.segment_retries > 0 {
                write!(f, ", {} segment(s) retried", a.segment_retries)?;
            }
            if a.rolled_back {
                write!(f, ", rolled back")?;
            }
            if !a.reported && matches!(a.outcome, AttemptOutcome::Success | AttemptOutcome::Failure)
            {
                write!(f, ", report pending")?;
            }
            writeln!(f)?;
        }
        if let Some(r) = &self.nothing_new {
            writeln!(f, "{}", describe_nothing_new(r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::install::Pending;

    fn pending() -> Pending {
        Pending {
            component: Component::Main,
            from_version: Version::new(1, 0, 0),
            to_version: Version::new(1, 1, 0),
            target_name: "main/1.1.0.ferry".into(),
            bytes_downloaded: 4096,
            delta_from: None,
        }
    }

    #[test]
    fn rolled_back_state_reports_failure_with_reason_and_flag() {
        let d = DeviceId::new("d1").unwrap();
        let s = InstallState::RolledBack {
            pending: pending(),
            why: "health check failed: exit 1".into(),
        };
        let r = build(&d, &s, vec!["l1".into()]).unwrap();
        assert_eq!(r.outcome, Outcome::Failure);
        assert!(r.rolled_back);
        assert_eq!(r.reason, "health check failed: exit 1");
        assert_eq!(r.bytes_downloaded, 4096);
        assert_eq!(r.log_tail, vec!["l1".to_string()]);
    }

    #[test]
    fn only_final_states_owe_a_report() {
        let d = DeviceId::new("d1").unwrap();
        assert!(build(&d, &InstallState::Switched { pending: pending() }, vec![]).is_none());
        assert_eq!(
            build(&d, &InstallState::Confirmed { pending: pending() }, vec![])
                .unwrap()
                .outcome,
            Outcome::Success
        );
    }

    #[test]
    fn summary_prints_one_line_per_attempt() {
        let s = RunSummary {
            attempts: vec![AttemptSummary {
                component: Component::Main,
                from: Version::new(1, 0, 0),
                to: Version::new(1, 1, 0),
                outcome: AttemptOutcome::Failure,
                reason: "bad".into(),
                bytes_downloaded: 10,
                bytes_this_run: 10,
                resumed: false,
                segment_retries: 0,
                rolled_back: true,
                reported: true,
                delta_from: None,
            }],
            nothing_new: Some(NothingNewReason::UpToDate),
        };
        let text = s.to_string();
        assert!(
            text.contains("main 1.0.0 -> 1.1.0: failure (bad)")
                && text.contains("rolled back")
                && text.contains("up to date"),
            "{text}"
        );
        assert!(!s.all_succeeded());
    }
}
