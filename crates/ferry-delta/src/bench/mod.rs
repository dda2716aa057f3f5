//! `ferry delta bench`: Ferry against bsdiff, xdelta3, zstd and HDiffPatch on real pairs.
//!
//! Pairs come from the npm registry or a local build (see [`pairs::PAIRS`]) and are cached in the
//! directory given. Ferry's diff runs in-process; every apply (Ferry's included) runs as a process
//! under GNU `time -v` for its peak RSS. Ferry's apply command is `$FERRY_DELTA_APPLY OLD PATCH
//! OUT` when that variable is set, `ferry delta apply` when the running program is `ferry`, and
//! else the `delta_apply` example next to the running program. Local pairs (the Cortex-M firmware
//! built by `bench/delta.sh`) are skipped when not in the cache; `FERRY_DELTA_BENCH_PAIRS` (comma-
//! separated names) limits a run to some pairs, and `FERRY_DELTA_TIMING` makes the differ print the
//! time of each of its phases.

pub mod pairs;
pub mod tools;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::diff::DiffOptions;
use crate::error::{DeltaError, Result};
use tools::{Run, TOOLS, run_measured, which};

/// One measured (pair, tool) cell row.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// Pair name.
    pub pair: String,
    /// New file size in bytes.
    pub new_size: u64,
    /// Tool name.
    pub tool: String,
    /// Patch size in bytes, when the tool ran.
    pub patch_size: Option<u64>,
    /// Diff wall time in seconds.
    pub diff_secs: f64,
    /// Diff CPU time (user + system, all threads) in seconds, when measured.
    pub diff_cpu: Option<f64>,
    /// Apply measurements.
    pub apply: Run,
    /// Why the row is incomplete, or whether the output was wrong.
    pub note: String,
}

/// The benchmark's results; `Display` prints the table.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    /// All rows, grouped by pair.
    pub rows: Vec<BenchRow>,
}

/// Fetches the pairs into `cache_dir` and measures every available tool on each.
pub fn run(cache_dir: &Path) -> Result<BenchReport> {
    std::fs::create_dir_all(cache_dir).map_err(|e| DeltaError::io("creating", cache_dir, e))?;
    let apply_cmd = ferry_apply_command()?;
    let work = tempfile::tempdir_in(cache_dir)
        .map_err(|e| DeltaError::io("creating work dir in", cache_dir, e))?;
    let mut report = BenchReport::default();
    // FERRY_DELTA_BENCH_PAIRS=name,name limits the run to those pairs.
    let only: Option<Vec<String>> = std::env::var("FERRY_DELTA_BENCH_PAIRS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    for pair in pairs::PAIRS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == pair.name))
        {
            continue;
        }
        let Some((old, new)) = pair.fetch(cache_dir)? else {
            eprintln!(
                "skipping {}: not in {} (built by {})",
                pair.name,
                cache_dir.display(),
                pair.file
            );
            continue;
        };
        let new_bytes = std::fs::read(&new).map_err(|e| DeltaError::io("reading", &new, e))?;
        let new_size = new_bytes.len() as u64;
        let s = |p: &Path| p.to_string_lossy().into_owned();
        // Ferry
        let patch = work.path().join(format!("{}.ferry", pair.name));
        let out = work.path().join(format!("{}.ferry.out", pair.name));
        let started = Instant::now();
        let cpu_before = process_cpu_secs();
        let stats = crate::diff_files(&old, &new, &patch, &DiffOptions::default())?;
        let diff_secs = started.elapsed().as_secs_f64();
        let diff_cpu = process_cpu_secs()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        let mut cmd = apply_cmd.clone();
        cmd.extend([s(&old), s(&patch), s(&out)]);
        report.rows.push(finish_row(
            pair.name,
            new_size,
            "ferry",
            Some(stats.patch_size),
            (diff_secs, diff_cpu),
            run_measured(&cmd),
            &out,
            &new_bytes,
        ));
        for tool in TOOLS {
            if which(tool.needs).is_none() {
                report.rows.push(BenchRow {
                    pair: pair.name.into(),
                    new_size,
                    tool: tool.name.into(),
                    patch_size: None,
                    diff_secs: 0.0,
                    diff_cpu: None,
                    apply: Run::default(),
                    note: format!("{} not installed", tool.needs),
                });
                continue;
            }
            let patch = work.path().join(format!("{}.{}", pair.name, tool.needs));
            let out = work
                .path()
                .join(format!("{}.{}.out", pair.name, tool.needs));
            let started = Instant::now();
            let diffed = run_measured(&(tool.diff)(&s(&old), &s(&new), &s(&patch)));
            let diff_secs = started.elapsed().as_secs_f64();
            let row = match diffed {
                Ok(run) => {
                    let size = std::fs::metadata(&patch).map(|m| m.len()).ok();
                    let applied = run_measured(&(tool.apply)(&s(&old), &s(&patch), &s(&out)));
                    finish_row(
                        pair.name,
                        new_size,
                        tool.name,
                        size,
                        (diff_secs, run.cpu_secs),
                        applied,
                        &out,
                        &new_bytes,
                    )
                }
                Err(e) => BenchRow {
                    pair: pair.name.into(),
                    new_size,
                    tool: tool.name.into(),
                    patch_size: None,
                    diff_secs,
                    diff_cpu: None,
                    apply: Run::default(),
                    note: e,
                },
            };
            report.rows.push(row);
        }
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn finish_row(
    pair: &str,
    new_size: u64,
    tool: &str,
    patch_size: Option<u64>,
    (diff_secs, diff_cpu): (f64, Option<f64>),
    applied: std::result::Result<Run, String>,
    out: &Path,
    new: &[u8],
) -> BenchRow {
    let (apply, note) = match applied {
        Ok(run) => {
            let same = std::fs::read(out).map(|b| b == new).unwrap_or(false);
            (
                run,
                if same {
                    String::new()
                } else {
                    "OUTPUT DIFFERS".to_string()
                },
            )
        }
        Err(e) => (Run::default(), e),
    };
    let _ = std::fs::remove_file(out);
    BenchRow {
        pair: pair.into(),
        new_size,
        tool: tool.into(),
        patch_size,
        diff_secs,
        diff_cpu,
        apply,
        note,
    }
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`
/// (Linux; clock ticks of 1/100 s).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn ferry_apply_command() -> Result<Vec<String>> {
    if let Some(bin) = std::env::var_os("FERRY_DELTA_APPLY") {
        return Ok(vec![bin.to_string_lossy().into_owned()]);
    }
    let exe = std::env::current_exe()
        .map_err(|e| DeltaError::Bench(format!("cannot locate the running program: {e}")))?;
    if exe.file_stem().is_some_and(|n| n == "ferry") {
        return Ok(vec![
            exe.to_string_lossy().into_owned(),
            "delta".into(),
            "apply".into(),
        ]);
    }
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates: [PathBuf; 2] = [
        dir.join("delta_apply"),
        dir.join("examples").join("delta_apply"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| vec![p.to_string_lossy().into_owned()])
        .ok_or_else(|| DeltaError::Bench("no apply program: set FERRY_DELTA_APPLY or build `cargo build --release -p ferry-delta --examples`".into()))
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:<20} {:>11} {:>8} {:>8} {:>9} {:>8} {:>10}  note",
            "pair", "tool", "patch B", "% new", "diff s", "diff cpu", "apply s", "apply RSS"
        )?;
        for r in &self.rows {
            let (size, pct) = match r.patch_size {
                Some(p) => (
                    p.to_string(),
                    format!("{:.3}", p as f64 * 100.0 / r.new_size.max(1) as f64),
                ),
                None => ("-".into(), "-".into()),
            };
            let rss = r
                .apply
                .rss_kb
                .map_or("-".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
            let cpu = r.diff_cpu.map_or("-".to_string(), |c| format!("{c:.2}"));
            writeln!(
                f,
                "{:<14} {:<20} {:>11} {:>8} {:>8.2} {:>9} {:>8.2} {:>10}  {}",
                r.pair, r.tool, size, pct, r.diff_secs, cpu, r.apply.secs, rss, r.note
            )?;
        }
        Ok(())
    }
}
