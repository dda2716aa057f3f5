//! The end-to-end demo: build, serve under load, patch, roll back, measure.

use super::build::build_demo;
use super::server::{DemoServer, field, request};
use crate::apply::{ApplyOptions, apply};
use crate::build::{BuildOptions, build_patch};
use crate::bundle::PatchBundle;
use crate::error::{Error, Result};
use crate::rollback::{RollbackOptions, rollback};
use ferry_artifact::keys::SigningKey;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Apply/rollback cycles measured (at least 50 for the benchmark figures).
    pub cycles: usize,
    /// Client threads sending requests during the cycles.
    pub clients: usize,
    /// Upper bound on client requests.
    pub max_requests: u64,
    /// Upper bound on the whole load phase.
    pub max_duration: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { cycles: 50, clients: 4, max_requests: 200_000, max_duration: Duration::from_secs(60) }
    }
}

/// What the demo showed.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Human-readable log of the steps.
    pub lines: Vec<String>,
    /// Stop-the-world pause of each apply.
    pub apply_pauses: Vec<Duration>,
    /// Stop-the-world pause of each rollback.
    pub rollback_pauses: Vec<Duration>,
    /// All stop-the-world windows of each apply summed, failed attempts included.
    pub apply_pauses_total: Vec<Duration>,
    /// All stop-the-world windows of each rollback summed, failed attempts included.
    pub rollback_pauses_total: Vec<Duration>,
    /// How long the moved thread (the main loop) was held at its safe point, per apply.
    pub apply_mover_pauses: Vec<Duration>,
    /// How long the moved thread was held at its safe point, per rollback.
    pub rollback_mover_pauses: Vec<Duration>,
    /// Client requests answered.
    pub requests_ok: u64,
    /// Client requests that failed.
    pub requests_failed: u64,
    /// Wall time of the load phase.
    pub load_time: Duration,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        writeln!(
            f,
            "apply pause    p50 {:>8.1?}  p99 {:>8.1?}  ({} applies)",
            pct(&self.apply_pauses, 0.5),
            pct(&self.apply_pauses, 0.99),
            self.apply_pauses.len()
        )?;
        writeln!(
            f,
            "rollback pause p50 {:>8.1?}  p99 {:>8.1?}  ({} rollbacks)",
            pct(&self.rollback_pauses, 0.5),
            pct(&self.rollback_pauses, 0.99),
            self.rollback_pauses.len()
        )?;
        writeln!(
            f,
            "all stop-the-world windows summed (failed attempts included): apply p50 {:>8.1?} p99 {:>8.1?}; rollback p50 {:>8.1?} p99 {:>8.1?}",
            pct(&self.apply_pauses_total, 0.5),
            pct(&self.apply_pauses_total, 0.99),
            pct(&self.rollback_pauses_total, 0.5),
            pct(&self.rollback_pauses_total, 0.99)
        )?;
        writeln!(
            f,
            "moved thread held at its safe point (others running, then the pause): apply p50 {:>8.1?} p99 {:>8.1?}; rollback p50 {:>8.1?} p99 {:>8.1?}",
            pct(&self.apply_mover_pauses, 0.5),
            pct(&self.apply_mover_pauses, 0.99),
            pct(&self.rollback_mover_pauses, 0.5),
            pct(&self.rollback_mover_pauses, 0.99)
        )?;
        let rate = self.requests_ok as f64 / self.load_time.as_secs_f64().max(1e-9);
        write!(
            f,
            "client requests: {} answered, {} failed ({rate:.0} req/s over {:.1?})",
            self.requests_ok, self.requests_failed, self.load_time
        )
    }
}

/// The build options the demo patch is made with: `accept` retries on EINTR in the main loop.
pub fn patch_options() -> BuildOptions {
    BuildOptions { interruptible_calls: vec!["accept".into()], ..Default::default() }
}

/// Builds the demo server, serves it under client load, applies the v1→v2 patch, shows the fix and
/// the counter continuing, rolls back, and measures `cycles` apply/rollback pauses.
pub fn run(opts: &DemoOptions) -> Result<DemoReport> {
    let dir = tempfile::tempdir().map_err(|e| Error::Demo(format!("temporary directory: {e}")))?;
    let bins = build_demo(dir.path())?;
    let mut r = DemoReport::default();
    let key = SigningKey::generate();
    let bundle = build_patch(&bins.v1, &bins.v2, &patch_options())?;
    let signed = bundle.to_signed_bytes(&key);
    let bundle = PatchBundle::from_signed_bytes(&signed, &key.public())?;
    r.lines.push(format!(
        "patch {}: {} bytes signed; functions {}; statics {}; safe points {}",
        &bundle.id()[..12],
        signed.len(),
        bundle.functions.iter().map(|f| format!("{} ({:?})", f.name, f.kind)).collect::<Vec<_>>().join(", "),
        bundle.statics.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        bundle.mapping.iter().map(|m| m.points.len()).sum::<usize>()
    ));
    let mut server = DemoServer::spawn(&bins.v1, dir.path())?;
    let pid = server.pid();
    for _ in 0..3 {
        r.lines.push(format!("v1      ADD 2 3 -> {}", request(server.port, 2, 3)?));
    }
    let rep = apply(pid, &bundle, &ApplyOptions::default())?;
    r.lines.push(format!(
        "applied: pause {:?} (prepare {:?}), {} threads, attempts {}, redirected {:?}, statics {:?}, moved {:?}",
        rep.pause, rep.prepare, rep.threads, rep.attempts, rep.redirected, rep.statics,
        rep.moved.iter().map(|m| format!("tid {} {} at {:#x} (woken from syscall: {})", m.tid, m.function, m.safe_point, m.woken_from_syscall)).collect::<Vec<_>>()
    ));
    for _ in 0..2 {
        r.lines.push(format!("patched ADD 2 3 -> {}", request(server.port, 2, 3)?));
    }
    let rb = rollback(pid, &rep.checkpoint, &RollbackOptions::default())?;
    r.lines.push(format!("rolled back: pause {:?}, moved back {}", rb.pause, rb.moved.len()));
    r.lines.push(format!("v1 again ADD 2 3 -> {}", request(server.port, 2, 3)?));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let port = server.port;
    let started = Instant::now();
    let clients: Vec<_> = (0..opts.clients)
        .map(|c| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let max = opts.max_requests / opts.clients.max(1) as u64;
            let max_time = opts.max_duration;
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < max && started.elapsed() < max_time {
                    match request(port, c as i64, n as i64) {
                        Ok(reply) if field(&reply, "sum").is_some() => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    n += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        })
        .collect();
    let mut cycle_err = None;
    for _ in 0..opts.cycles {
        if started.elapsed() >= opts.max_duration {
            break;
        }
        match apply(pid, &bundle, &ApplyOptions::default()) {
            Ok(rep) => {
                r.apply_pauses.push(rep.pause);
                r.apply_pauses_total.push(rep.pause_total);
                r.apply_mover_pauses.push(rep.mover_pause);
                std::thread::sleep(Duration::from_millis(10));
                match rollback(pid, &rep.checkpoint, &RollbackOptions::default()) {
                    Ok(rb) => {
                        r.rollback_pauses.push(rb.pause);
                        r.rollback_pauses_total.push(rb.pause_total);
                        r.rollback_mover_pauses.push(rb.mover_pause);
                    }
                    Err(e) => {
                        cycle_err = Some(e);
                        break;
                    }
                }
            }
            Err(e) => {
                cycle_err = Some(e);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    r.load_time = started.elapsed();
    r.requests_ok = ok.load(Ordering::Relaxed);
    r.requests_failed = failed.load(Ordering::Relaxed);
    if let Some(e) = cycle_err {
        return Err(e);
    }
    let last = request(server.port, 40, 2)?;
    r.lines.push(format!("after {} cycles ADD 40 2 -> {last} (counter continued across every patch)", r.apply_pauses.len()));
    if !server.alive() {
        return Err(Error::Demo("the server died during the demo".into()));
    }
    Ok(r)
}
