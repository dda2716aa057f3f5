//! The quickstart's verdict and the table a person reads.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What happened to one device in one round.
#[derive(Debug, Clone)]
pub struct RoundResult {
    /// Main version before.
    pub main_before: String,
    /// Main version after (read from its storage space).
    pub main_after: String,
    /// Agent version before.
    pub agent_before: String,
    /// Agent version after (as the server last saw it).
    pub agent_after: String,
    /// `updated`, `nothing new`, `rolled back`, …
    pub outcome: String,
    /// How the update that decided the round was shipped: `delta`, `full` or `—`.
    pub delivery: String,
    /// Bytes fetched from the file service in this round (from the archived reports).
    pub bytes_downloaded: u64,
    /// For a delta: the full package's size, to show the saving.
    pub full_bytes: Option<u64>,
    /// Reason or details.
    pub reason: String,
}

impl RoundResult {
    /// Percentage of the full package a delta saved (`None` unless it was a delta).
    pub fn saving_percent(&self) -> Option<f64> {
        let full = self.full_bytes.filter(|f| *f > 0)?;
        Some(100.0 * (1.0 - self.bytes_downloaded as f64 / full as f64))
    }
}

/// What happened to one device, and what was wrong with it (if anything).
#[derive(Debug, Clone)]
pub struct DeviceResult {
    /// Device id.
    pub id: String,
    /// What the device demonstrates.
    pub story: String,
    /// The first round (main 1.1.0, agent 1.1.0).
    pub first: RoundResult,
    /// The second round (main 1.2.0), for the devices that run again.
    pub second: Option<RoundResult>,
    /// Every way the device's end state differs from what must happen; empty when correct.
    pub problems: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// One entry per device.
    pub devices: Vec<DeviceResult>,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the flaky link really dropped a connection.
    pub link_cut: bool,
    /// Where the files were kept, if the caller asked to keep them.
    pub work_dir: Option<PathBuf>,
}

impl Summary {
    /// True when every device ended exactly as it must.
    pub fn all_correct(&self) -> bool {
        self.link_cut && self.devices.iter().all(|d| d.problems.is_empty())
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

const RULE: usize = 124;

fn header(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "{:<16} {:<17} {:<17} {:<12} {:<8} {:>9} {:>8}  {}",
        "device", "main", "agent", "outcome", "delivery", "bytes", "vs full", "details"
    )?;
    writeln!(f, "{}", "-".repeat(RULE))
}

fn row(f: &mut fmt::Formatter<'_>, id: &str, r: &RoundResult, story: Option<&str>) -> fmt::Result {
    let details = match story {
        Some(story) => format!("{story} — {}", cut(&r.reason, 200)),
        None => cut(&r.reason, 200),
    };
    writeln!(
        f,
        "{:<16} {:<17} {:<17} {:<12} {:<8} {:>9} {:>8}  {}",
        id,
        format!("{} -> {}", r.main_before, r.main_after),
        format!("{} -> {}", r.agent_before, r.agent_after),
        r.outcome,
        r.delivery,
        r.bytes_downloaded,
        r.saving_percent().map(|p| format!("-{p:.1}%")).unwrap_or_default(),
        details,
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "round 1: main 1.1.0 and agent 1.1.0 uploaded (deltas from main 1.0.0 built by the server)")?;
        header(f)?;
        for d in &self.devices {
            row(f, &d.id, &d.first, Some(&d.story))?;
            let mark = if d.problems.is_empty() { "ok " } else { "BAD" };
            for p in &d.problems {
                writeln!(f, "  {mark} {p}")?;
            }
        }
        writeln!(f, "{}", "-".repeat(RULE))?;
        if self.devices.iter().any(|d| d.second.is_some()) {
            writeln!(f, "round 2: main 1.2.0 uploaded; devices on 1.1.0 run again")?;
            header(f)?;
            for d in &self.devices {
                if let Some(r) = &d.second {
                    row(f, &d.id, r, None)?;
                }
            }
            writeln!(f, "{}", "-".repeat(RULE))?;
        }
        let bad = self.devices.iter().filter(|d| !d.problems.is_empty()).count();
        if !self.link_cut {
            writeln!(f, "the flaky link never dropped a connection, so resumption was not exercised")?;
        }
        writeln!(
            f,
            "{} devices, {} correct, {} wrong, {:.1} s{}",
            self.devices.len(),
            self.devices.len() - bad,
            bad,
            self.elapsed.as_secs_f64(),
            self.work_dir.as_ref().map(|p| format!(", files kept in {}", p.display())).unwrap_or_default()
        )
    }
}
