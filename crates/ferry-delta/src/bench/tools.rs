//! Running the differs being compared and measuring their apply with GNU time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Measurements of one apply run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Wall time in seconds.
    pub secs: f64,
    /// Peak resident set size in KiB, when GNU time is available.
    pub rss_kb: Option<u64>,
    /// CPU time (user + system, all threads) in seconds, when GNU time is available: unlike
    /// wall time, barely affected by other load on the machine.
    pub cpu_secs: Option<f64>,
}

/// Runs `cmd` (program and arguments), under `/usr/bin/time -v` when present.
pub fn run_measured(cmd: &[String]) -> Result<Run, String> {
    let gnu_time = Path::new("/usr/bin/time").is_file();
    let mut c = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v").args(cmd);
        c
    } else {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]);
        c
    };
    let started = Instant::now();
    let out = c
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            cmd[0],
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    let rss_kb = String::from_utf8_lossy(&out.stderr).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Maximum resident set size (kbytes):")
            .and_then(|v| v.trim().parse().ok())
    });
    let field = |name: &str| -> Option<f64> {
        String::from_utf8_lossy(&out.stderr).lines().find_map(|l| {
            l.trim()
                .strip_prefix(name)
                .and_then(|v| v.trim().parse().ok())
        })
    };
    let cpu_secs = field("User time (seconds):")
        .zip(field("System time (seconds):"))
        .map(|(u, s)| u + s);
    Ok(Run {
        secs,
        rss_kb,
        cpu_secs,
    })
}

/// Where a program is on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// A third-party differ: how to diff and how to apply.
pub struct Tool {
    /// Name in the table.
    pub name: &'static str,
    /// Program that must be on PATH.
    pub needs: &'static str,
    /// Diff command from (old, new, patch).
    pub diff: fn(&str, &str, &str) -> Vec<String>,
    /// Apply command from (old, patch, out).
    pub apply: fn(&str, &str, &str) -> Vec<String>,
}

fn v(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// bsdiff, xdelta3 -9, zstd -19 --long=31 --patch-from, HDiffPatch.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "bsdiff",
        needs: "bsdiff",
        diff: |o, n, p| v(&["bsdiff", o, n, p]),
        apply: |o, p, out| v(&["bspatch", o, out, p]),
    },
    Tool {
        name: "xdelta3 -9",
        needs: "xdelta3",
        diff: |o, n, p| v(&["xdelta3", "-9", "-f", "-e", "-s", o, n, p]),
        apply: |o, p, out| v(&["xdelta3", "-f", "-d", "-s", o, p, out]),
    },
    Tool {
        name: "zstd -19 --long",
        needs: "zstd",
        diff: |o, n, p| {
            v(&[
                "zstd",
                "-q",
                "-f",
                "-19",
                "--long=31",
                &format!("--patch-from={o}"),
                n,
                "-o",
                p,
            ])
        },
        apply: |o, p, out| {
            v(&[
                "zstd",
                "-q",
                "-f",
                "-d",
                "--long=31",
                &format!("--patch-from={o}"),
                p,
                "-o",
                out,
            ])
        },
    },
    Tool {
        name: "hdiffz -m-6 zstd-21",
        needs: "hdiffz",
        diff: |o, n, p| v(&["hdiffz", "-f", "-m-6", "-c-zstd-21", o, n, p]),
        apply: |o, p, out| v(&["hpatchz", "-f", o, p, out]),
    },
];
