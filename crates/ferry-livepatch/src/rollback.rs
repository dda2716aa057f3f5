//! Rolling a patch back to its checkpoint, and watching a patched process.

use crate::apply::{MUNMAP, MovedThread};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::ptrace::{self, Mem};
use crate::safepoint::{self, Point, Range, Reached};
use crate::transfer;
use crate::world::{self, World};
use std::time::{Duration, Instant};

/// Tuning of [`rollback`].
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// Attempts to find a moment when no thread is inside patched code (other than at safe points).
    pub attempts: u32,
    /// Pause before the first retry, doubled after each (capped at 64 ms).
    pub backoff: Duration,
    /// How long a thread inside a patched function may run alone to reach a safe point.
    pub safe_point_timeout: Duration,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        RollbackOptions { attempts: 30, backoff: Duration::from_millis(1), safe_point_timeout: Duration::from_millis(20) }
    }
}

/// What [`rollback`] did.
#[derive(Debug, Clone)]
pub struct RollbackReport {
    /// Stop-the-world pause of the successful attempt.
    pub pause: Duration,
    /// Attempts made.
    pub attempts: u32,
    /// Threads moved back to the old functions.
    pub moved: Vec<MovedThread>,
}

/// Restores `cp` in process `pid`: threads in patched functions move back at safe points,
/// statics are carried back to the old layout (their current values kept), original entry bytes
/// are restored and the patch's memory is unmapped.
pub fn rollback(pid: i32, cp: &Checkpoint, opts: &RollbackOptions) -> Result<RollbackReport> {
    if cp.pid != pid {
        return Err(Error::Checkpoint(format!("it belongs to process {}, not {pid}", cp.pid)));
    }
    let mem = Mem::open(pid)?;
    let w = World::stop_all(pid)?;
    rollback_stopped(pid, &mem, cp, w, opts, None)
}

/// Rollback with the world already stopped; `keep` is a thread already restored by the caller.
pub(crate) fn rollback_stopped(pid: i32, mem: &Mem, cp: &Checkpoint, mut w: World, opts: &RollbackOptions, keep: Option<i32>) -> Result<RollbackReport> {
    let mut ranges: Vec<Range> = cp
        .new_functions
        .iter()
        .map(|(a, s, n)| Range { start: cp.code_rt(*a), end: cp.code_rt(*a) + s, name: n.clone() })
        .collect();
    ranges.push(Range { start: cp.code.0, end: cp.code.0 + cp.code.1, name: "patch code".into() });
    let mut reason = String::new();
    for attempt in 0..opts.attempts {
        if attempt > 0 {
            w.resume_except(keep);
            std::thread::sleep(opts.backoff * (1u32 << attempt.min(6)));
            w.restop()?;
        }
        let maps = world::maps(pid)?;
        let mut movers = Vec::new();
        let mut blocked = None;
        for &tid in w.threads.keys().filter(|t| Some(**t) != keep) {
            let regs = ptrace::get_regs(tid)?;
            let mut active = safepoint::active_in(mem, &maps, &regs, &ranges);
            active.retain(|n| n != "patch code");
            let code_hit = ranges.last().is_some_and(|r| r.start <= regs.rip && regs.rip < r.end);
            match active.as_slice() {
                [] if !code_hit => {}
                [f] if cp.mapping.iter().any(|m| &m.function == f) => movers.push((tid, f.clone())),
                fs => blocked = Some(format!("thread {tid} is inside patched code ({})", fs.join(", "))),
            }
        }
        if let Some(r) = blocked {
            reason = r;
            continue;
        }
        let mut plans = Vec::new();
        let mut failed = None;
        for (tid, f) in &movers {
            let m = cp.mapping.iter().find(|m| &m.function == f).expect("checked");
            let points: Vec<Point> = m
                .points
                .iter()
                .map(|p| Point { addr: cp.code_rt(p.new.addr), call_len: p.new.call_len, interruptible: p.interruptible })
                .collect();
            let pending = w.threads.get_mut(tid).expect("seized");
            match safepoint::run_to_point(*tid, mem, &maps, &points, opts.safe_point_timeout, pending)? {
                Reached::At { index, regs, woke } => {
                    let fp = transfer::at_runtime(&m.points[index].new, points[index].addr);
                    let frame = transfer::read_frame(mem, &regs, &fp)?;
                    let args = transfer::args_for(&frame, &m.old_params, f)?;
                    let regs = transfer::call_regs(mem, &frame, m.old_entry + cp.bias, &args, None)?;
                    plans.push((*tid, regs, MovedThread { tid: *tid, function: f.clone(), safe_point: points[index].addr, woken_from_syscall: woke, helper: None }));
                }
                Reached::NotYet(r) => {
                    failed = Some(format!("thread {tid} in {f}: {r}"));
                    break;
                }
            }
        }
        if let Some(r) = failed {
            reason = r;
            continue;
        }
        for s in &cp.statics {
            let len = s.copies.iter().map(|c| c.new_offset + c.len).max().unwrap_or(0);
            let now = mem.read(s.new_addr, len as usize)?;
            for c in &s.copies {
                mem.write(s.old_addr + c.old_offset, &now[c.new_offset as usize..(c.new_offset + c.len) as usize])?;
            }
        }
        for e in &cp.entries {
            let original = hex::decode(&e.original).map_err(|x| Error::Checkpoint(format!("entry {}: {x}", e.function)))?;
            mem.write(e.addr, &original)?;
        }
        let mut moved = Vec::new();
        for (tid, regs, mt) in plans {
            ptrace::set_regs(tid, &regs)?;
            moved.push(mt);
        }
        if let Some(k) = keep {
            w.threads.insert(k, 0);
        }
        let pause = w.resume_all();
        unmap(pid, mem, cp)?;
        return Ok(RollbackReport { pause, attempts: attempt + 1, moved });
    }
    w.resume_except(keep);
    Err(Error::NoSafePoint { attempts: opts.attempts, reason })
}

/// Unmaps the patch's code and data blocks (no thread may be using them).
pub(crate) fn unmap(pid: i32, mem: &Mem, cp: &Checkpoint) -> Result<()> {
    let mut w = World::stop_all_one(pid)?;
    let scratch = cp.old_entry + cp.bias;
    let r = world::remote_syscall(pid, mem, scratch, MUNMAP, [cp.code.0, cp.code.1, 0, 0, 0, 0])
        .and_then(|_| world::remote_syscall(pid, mem, scratch, MUNMAP, [cp.data.0, cp.data.1, 0, 0, 0, 0]));
    w.resume_all();
    r.map(|_| ())
}

/// What [`monitor`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorReport {
    /// The process was alive at the end.
    pub alive: bool,
    /// Probes run.
    pub probes: u32,
    /// Probes that failed.
    pub failures: u32,
}

impl MonitorReport {
    /// True when the process stayed alive and no probe failed.
    pub fn healthy(&self) -> bool {
        self.alive && self.failures == 0
    }
}

/// Watches `pid` for `period`, running `probe` every `interval` (a health check such as one
/// request to the service); stops early when the process dies.
pub fn monitor(pid: i32, probe: &mut dyn FnMut() -> bool, period: Duration, interval: Duration) -> MonitorReport {
    let end = Instant::now() + period;
    let mut report = MonitorReport { alive: true, probes: 0, failures: 0 };
    while Instant::now() < end {
        // SAFETY: kill with signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 || is_zombie(pid) {
            report.alive = false;
            return report;
        }
        report.probes += 1;
        if !probe() {
            report.failures += 1;
        }
        std::thread::sleep(interval);
    }
    report
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// Monitors after an apply and rolls back on any anomaly; returns the monitor's verdict and the
/// rollback report when one was needed.
pub fn watch_or_rollback(pid: i32, cp: &Checkpoint, probe: &mut dyn FnMut() -> bool, period: Duration) -> Result<(MonitorReport, Option<RollbackReport>)> {
    let report = monitor(pid, probe, period, Duration::from_millis(50));
    if report.healthy() || !report.alive {
        return Ok((report, None));
    }
    let rb = rollback(pid, cp, &RollbackOptions::default())?;
    Ok((report, Some(rb)))
}
