//! The quickstart's verdict and the table a person reads.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What happened to one device, and what was wrong with it (if anything).
#[derive(Debug, Clone)]
pub struct DeviceResult {
    /// Device id.
    pub id: String,
    /// What the device demonstrates.
    pub story: String,
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
    /// Bytes fetched from the file service (from the archived reports).
    pub bytes_downloaded: u64,
    /// Reason or details.
    pub reason: String,
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

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:<17} {:<17} {:<12} {:>9}  {}",
            "device", "main", "agent", "outcome", "bytes", "details"
        )?;
        writeln!(f, "{}", "-".repeat(110))?;
        for d in &self.devices {
            let mark = if d.problems.is_empty() { "ok " } else { "BAD" };
            writeln!(
                f,
                "{:<16} {:<17} {:<17} {:<12} {:>9}  {} — {}",
                d.id,
                format!("{} -> {}", d.main_before, d.main_after),
                format!("{} -> {}", d.agent_before, d.agent_after),
                d.outcome,
                d.bytes_downloaded,
                d.story,
                cut(&d.reason, 90),
            )?;
            for p in &d.problems {
                writeln!(f, "  {mark} {p}")?;
            }
        }
        writeln!(f, "{}", "-".repeat(110))?;
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
