//! What the dashboard shows, computed from registry records: pure functions of the records and
//! the current time (passed in), so every figure on the page is unit-tested here.

use ferry_core::api::{ArchivedAlert, ArchivedReport, DeltaFailureRecord, DeviceRecord, Outcome, ReleaseRecord};
use ferry_core::{Component, DeviceId, Version};
use std::collections::{BTreeMap, BTreeSet};

/// A device is shown as silent when it has not checked in for this long (milliseconds).
pub const SILENT_AFTER_MS: u64 = 15 * 60 * 1000;

/// One line of the fleet table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    /// Device id.
    pub device_id: String,
    /// Device type.
    pub device_type: String,
    /// Rollout group.
    pub group: String,
    /// Running agent version, or `—`.
    pub agent_version: String,
    /// Running main program version, or `—`.
    pub main_version: String,
    /// Last check-in, as "3 min ago".
    pub last_seen: String,
    /// False when the device has not checked in for [`SILENT_AFTER_MS`].
    pub online: bool,
    /// The outcome of its newest report, e.g. `success 1.1.0` or `failure 1.2.0: health check …`.
    pub last_result: String,
    /// True when the newest report was a failure.
    pub last_failed: bool,
    /// True when it holds a delta failure record (it gets full packages until one installs).
    pub delta_fallback: bool,
}

/// One release's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    /// Component.
    pub component: String,
    /// Version.
    pub version: String,
    /// Uploaded, as "3 min ago".
    pub created: String,
    /// State: `live`, `goes live in 2 h`, `halted by alert #3`.
    pub state: String,
    /// True when halted by a security alert.
    pub halted: bool,
    /// Devices the release is meant for (compatible device type).
    pub eligible: usize,
    /// Of those, devices running this version or a newer one.
    pub done: usize,
    /// Of those, devices whose newest attempt at this version failed and that do not run it.
    pub failed: usize,
    /// `done` as a percentage of `eligible` (0 when nobody is eligible).
    pub percent: u32,
    /// Delta packages built to this release, e.g. `from 1.0.0 (8,460 B)`.
    pub deltas: Vec<String>,
    /// Its staged rollout's waves, e.g. `canary: 2/2 installed, open`; empty without a plan.
    pub waves: Vec<String>,
}

/// One failed upgrade attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// When the report arrived, as "3 min ago".
    pub when: String,
    /// Device id.
    pub device_id: String,
    /// `main 1.0.0 → 1.1.0`.
    pub change: String,
    /// The reason the device gave.
    pub reason: String,
    /// True when the device rolled back to the previous release.
    pub rolled_back: bool,
}

/// One delta failure record (a rooted or modified device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaFailureRow {
    /// Device id.
    pub device_id: String,
    /// `main 1.0.0 → 1.1.0`.
    pub change: String,
    /// The reason.
    pub reason: String,
    /// Files whose hash did not match, `path (expected …, found …)`.
    pub files: Vec<String>,
}

/// One security alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Alert id.
    pub id: i64,
    /// When it arrived, as "3 min ago".
    pub when: String,
    /// Reporting device.
    pub device_id: String,
    /// Component of the release.
    pub component: String,
    /// Version of the release.
    pub version: String,
    /// The server's summary message.
    pub message: String,
    /// The preflight stage that decided.
    pub stage: String,
    /// Findings, `severity [rule] location: message`.
    pub findings: Vec<String>,
    /// Evidence, `kind: detail`.
    pub evidence: Vec<String>,
    /// True while the release is still halted by this alert (a resume button is shown).
    pub halting: bool,
}

/// Headline numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Enrolled devices.
    pub devices: usize,
    /// Devices seen within [`SILENT_AFTER_MS`].
    pub online: usize,
    /// Devices whose newest report is a failure.
    pub failing: usize,
    /// Releases halted by an alert.
    pub halted: usize,
    /// Security alerts on record.
    pub alerts: usize,
}

/// "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago"; "never" for `None`; times in
/// the future (clock skew) read "just now".
pub fn ago(then: Option<u64>, now: u64) -> String {
    let Some(then) = then else { return "never".to_string() };
    let secs = now.saturating_sub(then) / 1000;
    match secs {
        0..=4 => "just now".to_string(),
        5..=119 => format!("{secs} s ago"),
        120..=7_199 => format!("{} min ago", secs / 60),
        7_200..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// "in 42 s", "in 3 min", "in 5 h", "in 2 d".
fn in_future(at: u64, now: u64) -> String {
    let secs = at.saturating_sub(now).div_ceil(1000);
    match secs {
        0..=119 => format!("in {secs} s"),
        120..=7_199 => format!("in {} min", secs / 60),
        7_200..=172_799 => format!("in {} h", secs / 3600),
        _ => format!("in {} d", secs / 86_400),
    }
}

/// 8460 → "8,460".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn version_of(device: &DeviceRecord, component: Component) -> Option<&Version> {
    match component {
        Component::Main => device.main_version.as_ref(),
        Component::Agent => device.upgrader_version.as_ref(),
    }
}

fn dash(v: Option<&Version>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".to_string())
}

fn change(component: Component, from: &Version, to: &Version) -> String {
    format!("{component} {from} → {to}")
}

/// Newest report per device (reports may come in any order; the highest id is the newest).
fn newest_reports(reports: &[ArchivedReport]) -> BTreeMap<&DeviceId, &ArchivedReport> {
    let mut newest: BTreeMap<&DeviceId, &ArchivedReport> = BTreeMap::new();
    for r in reports {
        let slot = newest.entry(&r.report.device_id).or_insert(r);
        if r.id > slot.id {
            *slot = r;
        }
    }
    newest
}

/// The fleet table, sorted by device id.
pub fn fleet(
    devices: &[DeviceRecord],
    reports: &[ArchivedReport],
    delta_failures: &[DeltaFailureRecord],
    now: u64,
) -> Vec<FleetRow> {
    let newest = newest_reports(reports);
    let fallback: BTreeSet<&DeviceId> = delta_failures.iter().map(|f| &f.device_id).collect();
    let mut rows: Vec<FleetRow> = devices
        .iter()
        .map(|d| {
            let last = newest.get(&d.device_id);
            let (last_result, last_failed) = match last {
                None => ("no update yet".to_string(), false),
                Some(a) => {
                    let r = &a.report;
                    match r.outcome {
                        Outcome::Success => (format!("success {} {}", r.component, r.to_version), false),
                        Outcome::Failure => (format!("failure {} {}: {}", r.component, r.to_version, r.reason), true),
                    }
                }
            };
            FleetRow {
                device_id: d.device_id.to_string(),
                device_type: d.device_type.clone(),
                group: d.group.clone(),
                agent_version: dash(d.upgrader_version.as_ref()),
                main_version: dash(d.main_version.as_ref()),
                last_seen: ago(d.last_seen, now),
                online: d.last_seen.is_some_and(|t| now.saturating_sub(t) < SILENT_AFTER_MS),
                last_result,
                last_failed,
                delta_fallback: fallback.contains(&d.device_id),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    rows
}

/// Rollout progress per release, newest version first within each component.
pub fn rollouts(releases: &[ReleaseRecord], devices: &[DeviceRecord], reports: &[ArchivedReport], now: u64) -> Vec<RolloutRow> {
    let newest = newest_reports(reports);
    let mut rows: Vec<(Component, Version, RolloutRow)> = releases
        .iter()
        .map(|r| {
            let eligible: Vec<&DeviceRecord> = devices
                .iter()
                .filter(|d| r.device_types.is_empty() || r.device_types.iter().any(|t| t == &d.device_type))
                .collect();
            let done = eligible
                .iter()
                .filter(|d| version_of(d, r.component).is_some_and(|v| v >= &r.version))
                .count();
            let failed = eligible
                .iter()
                .filter(|d| !version_of(d, r.component).is_some_and(|v| v >= &r.version))
                .filter(|d| {
                    newest.get(&d.device_id).is_some_and(|a| {
                        a.report.outcome == Outcome::Failure && a.report.component == r.component && a.report.to_version == r.version
                    })
                })
                .count();
            let state = match (&r.halted, r.go_live) {
                (Some(h), _) => format!("halted by alert #{}", h.alert_id),
                (None, Some(at)) if at > now => format!("goes live {}", in_future(at, now)),
                (None, _) => "live".to_string(),
            };
            let percent = if eligible.is_empty() { 0 } else { (done * 100 / eligible.len()) as u32 };
            let deltas = r
                .deltas
                .iter()
                .map(|d| format!("from {} ({} B)", d.from_version, thousands(d.length)))
                .collect();
            let row = RolloutRow {
                component: r.component.to_string(),
                version: r.version.to_string(),
                created: ago(Some(r.created_at), now),
                state,
                halted: r.halted.is_some(),
                eligible: eligible.len(),
                done,
                failed,
                percent,
                deltas,
                waves: Vec::new(),
            };
            (r.component, r.version.clone(), row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
    rows.into_iter().map(|(_, _, row)| row).collect()
}

/// Adds staged-rollout progress to the rows of releases that have a plan; a rollout halted by
/// its failure threshold shows as halted with the reason.
pub fn attach_waves(rows: &mut [RolloutRow], plans: &[crate::rollouts::RolloutStatus], now: u64) {
    for p in plans {
        let Some(row) = rows
            .iter_mut()
            .find(|r| r.component == p.record.component.as_str() && r.version == p.record.version.to_string())
        else {
            continue;
        };
        row.waves = p
            .waves
            .iter()
            .map(|w| {
                let open = match w.opened_at {
                    Some(at) => format!("open since {}", ago(Some(at), now)),
                    None => "waiting".to_string(),
                };
                format!("{}: {}/{} installed, {open}", w.name, w.succeeded, w.members)
            })
            .collect();
        if let Some(halt) = &p.record.halted {
            row.halted = true;
            row.state = format!("halted by failure threshold: {}", halt.reason);
        } else if let Some(at) = p.next_opens_at {
            row.state = format!("{}; next wave opens {}", row.state, in_future(at, now));
        }
    }
}

/// Failed attempts, newest first, at most `limit`.
pub fn failures(reports: &[ArchivedReport], now: u64, limit: usize) -> Vec<FailureRow> {
    let mut failed: Vec<&ArchivedReport> = reports.iter().filter(|a| a.report.outcome == Outcome::Failure).collect();
    failed.sort_by(|a, b| b.id.cmp(&a.id));
    failed
        .into_iter()
        .take(limit)
        .map(|a| FailureRow {
            when: ago(Some(a.received_at), now),
            device_id: a.report.device_id.to_string(),
            change: change(a.report.component, &a.report.from_version, &a.report.to_version),
            reason: a.report.reason.clone(),
            rolled_back: a.report.rolled_back,
        })
        .collect()
}

/// Delta failure records, by device.
pub fn delta_failures(records: &[DeltaFailureRecord]) -> Vec<DeltaFailureRow> {
    let mut rows: Vec<DeltaFailureRow> = records
        .iter()
        .map(|f| DeltaFailureRow {
            device_id: f.device_id.to_string(),
            change: change(f.component, &f.from_version, &f.to_version),
            reason: f.reason.clone(),
            files: f
                .files
                .iter()
                .map(|m| format!("{} (expected {}, found {})", m.path, short(&m.expected), short(&m.found)))
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    rows
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Security alerts, newest first; `halting` when the release is still halted by that alert.
pub fn alerts(alerts: &[ArchivedAlert], releases: &[ReleaseRecord], now: u64) -> Vec<AlertRow> {
    let mut rows: Vec<AlertRow> = alerts
        .iter()
        .map(|a| {
            let halting = releases.iter().any(|r| {
                r.component == a.alert.component
                    && r.version == a.alert.version
                    && r.halted.as_ref().is_some_and(|h| h.alert_id == a.id)
            });
            AlertRow {
                id: a.id,
                when: ago(Some(a.received_at), now),
                device_id: a.alert.device_id.to_string(),
                component: a.alert.component.to_string(),
                version: a.alert.version.to_string(),
                message: a.message.clone(),
                findings: a
                    .alert
                    .findings
                    .iter()
                    .map(|f| format!("{} [{}] {}: {}", f.severity, f.rule, f.location, f.message))
                    .collect(),
                stage: a.alert.stage.clone(),
                evidence: a.alert.evidence.iter().map(|e| format!("{}: {}", e.kind, e.detail)).collect(),
                halting,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.id.cmp(&a.id));
    rows
}

/// Headline numbers for the page header.
pub fn totals(fleet: &[FleetRow], rollouts: &[RolloutRow], alerts: &[AlertRow]) -> Totals {
    Totals {
        devices: fleet.len(),
        online: fleet.iter().filter(|r| r.online).count(),
        failing: fleet.iter().filter(|r| r.last_failed).count(),
        halted: rollouts.iter().filter(|r| r.halted).count(),
        alerts: alerts.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Records are built from JSON so that fields added later with defaults do not break these tests.
    fn device(id: &str, device_type: &str, main: &str, last_seen: u64) -> DeviceRecord {
        serde_json::from_value(json!({"device_id": id, "device_type": device_type, "group": "default",
            "upgrader_version": "1.0.0", "main_version": main, "last_seen": last_seen})).unwrap()
    }
    fn release(version: &str, device_types: &[&str]) -> ReleaseRecord {
        serde_json::from_value(json!({"component": "main", "version": version, "device_types": device_types,
            "target_name": format!("main/{version}.ferry"), "length": 10, "sha256": "ab", "blacklist": [],
            "go_live": null, "created_at": 0})).unwrap()
    }
    fn report(id: i64, device: &str, to: &str, ok: bool, reason: &str) -> ArchivedReport {
        serde_json::from_value(json!({"id": id, "received_at": 1_000, "report": {"device_id": device,
            "component": "main", "from_version": "1.0.0", "to_version": to,
            "outcome": if ok { "success" } else { "failure" }, "reason": reason, "rolled_back": !ok}})).unwrap()
    }

    #[test]
    fn rollout_counts_devices_at_or_beyond_the_release_among_compatible_types() {
        let devices = [
            device("a", "gw", "1.1.0", 0),
            device("b", "gw", "1.2.0", 0),
            device("c", "gw", "1.0.0", 0),
            device("d", "sensor", "1.1.0", 0),
        ];
        let rows = rollouts(&[release("1.1.0", &["gw"])], &devices, &[], 0);
        assert_eq!((rows[0].eligible, rows[0].done, rows[0].percent), (3, 2, 66));
        let any_type = rollouts(&[release("1.1.0", &[])], &devices, &[], 0);
        assert_eq!((any_type[0].eligible, any_type[0].done), (4, 3));
    }

    #[test]
    fn rollout_failed_counts_only_devices_whose_newest_attempt_at_it_failed() {
        let devices = [device("a", "gw", "1.0.0", 0), device("b", "gw", "1.0.0", 0), device("c", "gw", "1.1.0", 0)];
        let reports = [
            report(1, "a", "1.1.0", false, "health check failed"),
            report(2, "b", "1.1.0", false, "health check failed"),
            report(3, "b", "1.1.0", true, "installed"), // b retried; its newest report is a success
            report(4, "c", "1.1.0", false, "old failure"), // c runs it now
        ];
        let rows = rollouts(&[release("1.1.0", &[])], &devices, &reports, 0);
        assert_eq!(rows[0].failed, 1);
    }

    #[test]
    fn rollout_state_names_the_halting_alert_and_the_go_live_time() {
        let mut halted = release("1.2.0", &[]);
        halted.halted = Some(ferry_core::api::ReleaseHalt { alert_id: 7, since: 0 });
        let mut later = release("1.3.0", &[]);
        later.go_live = Some(2 * 3600 * 1000 + 5_000);
        let rows = rollouts(&[halted, later, release("1.1.0", &[])], &[], &[], 5_000);
        let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.version.as_str(), r.state.as_str())).collect();
        assert_eq!(states, [("1.3.0", "goes live in 2 h"), ("1.2.0", "halted by alert #7"), ("1.1.0", "live")]);
        assert_eq!(rows[0].percent, 0, "no eligible device means 0 %, not a division by zero");
    }

    #[test]
    fn fleet_shows_newest_result_silence_and_delta_fallback() {
        let now = 100 * 60 * 1000;
        let devices = [device("b", "gw", "1.0.0", now - 1_000), device("a", "gw", "1.1.0", now - SILENT_AFTER_MS)];
        let reports = [report(1, "b", "1.1.0", true, "installed"), report(2, "b", "1.1.0", false, "health check failed")];
        let fallback: DeltaFailureRecord = serde_json::from_value(json!({"device_id": "a", "component": "main",
            "from_version": "1.0.0", "to_version": "1.1.0", "target_name": "main/1.0.0_1.1.0.delta",
            "state": "downloading", "reason": "tampered", "files": [], "failed_at": 0})).unwrap();
        let rows = fleet(&devices, &reports, &[fallback], now);
        assert_eq!(rows[0].device_id, "a");
        assert!(!rows[0].online && rows[0].delta_fallback && !rows[0].last_failed);
        assert_eq!(rows[0].last_result, "no update yet");
        assert!(rows[1].online && rows[1].last_failed);
        assert_eq!(rows[1].last_result, "failure main 1.1.0: health check failed");
    }

    #[test]
    fn failures_are_newest_first_and_limited() {
        let reports = [
            report(1, "a", "1.1.0", false, "first"),
            report(2, "a", "1.1.0", true, "installed"),
            report(3, "b", "1.1.0", false, "second"),
        ];
        let rows = failures(&reports, 1_000, 1);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].reason.as_str(), rows[0].change.as_str()), ("second", "main 1.0.0 → 1.1.0"));
        assert!(rows[0].rolled_back);
    }

    #[test]
    fn alert_is_halting_only_while_its_release_is_halted_by_it() {
        let alert: ArchivedAlert = serde_json::from_value(json!({"id": 3, "received_at": 0, "message": "m",
            "alert": {"device_id": "a", "component": "main", "version": "1.2.0", "stage": "mirror",
                "findings": [{"severity": "high", "rule": "mirror/outbound", "location": "sandbox", "message": "connect 203.0.113.7:80"}],
                "evidence": [{"kind": "outbound_connection", "detail": "203.0.113.7:80"}], "detected_at": 0}})).unwrap();
        let mut r = release("1.2.0", &[]);
        r.halted = Some(ferry_core::api::ReleaseHalt { alert_id: 3, since: 0 });
        let rows = alerts(std::slice::from_ref(&alert), std::slice::from_ref(&r), 0);
        assert!(rows[0].halting);
        assert_eq!(rows[0].findings, ["high [mirror/outbound] sandbox: connect 203.0.113.7:80"]);
        assert_eq!(rows[0].evidence, ["outbound_connection: 203.0.113.7:80"]);
        r.halted = None;
        assert!(!alerts(&[alert], &[r], 0)[0].halting);
    }

    #[test]
    fn ages_and_numbers_read_like_a_person_writes_them() {
        assert_eq!(ago(None, 0), "never");
        assert_eq!(ago(Some(10_000), 5_000), "just now");
        assert_eq!(ago(Some(0), 42_000), "42 s ago");
        assert_eq!(ago(Some(0), 3 * 60_000), "3 min ago");
        assert_eq!(ago(Some(0), 5 * 3_600_000), "5 h ago");
        assert_eq!(ago(Some(0), 3 * 86_400_000), "3 d ago");
        assert_eq!(thousands(8_460), "8,460");
        assert_eq!(thousands(208_384), "208,384");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
