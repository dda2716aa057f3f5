//! Rolling a patch back to its checkpoint, and watching a patched process.

use crate::apply::{MUNMAP, MovedThread};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::ptrace::{self, Mem};
use crate::safepoint::{self, Movable, Point, Range, Target};
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
    /// How long a thread inside a patched function may run to reach a safe point.
    pub safe_point_timeout: Duration,
    /// Real-time priority for the patcher during the pause (see [`crate::ApplyOptions::realtime`]).
    pub realtime: bool,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        RollbackOptions { attempts: 30, backoff: Duration::from_millis(1), safe_point_timeout: Duration::from_millis(20), realtime: true }
    }
}

/// What [`rollback`] did.
#[derive(Debug, Clone)]
pub struct RollbackReport {
    /// Stop-the-world pause of the successful attempt (every thread stopped for the switch).
    pub pause: Duration,
    /// Sum of every stop-the-world window of the rollback, failed attempts included.
    pub pause_total: Duration,
    /// Longest time a moved thread was held stopped, from reaching its safe point (while the
    /// other threads still ran) to running the old code.
    pub mover_pause: Duration,
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
    let w = World::seize(pid)?;
    rollback_stopped(pid, &mem, cp, w, opts, None)
}

/// Rollback with the threads of `w` seized (running or stopped); `keep` is a thread already
/// restored and held stopped by the caller.
pub(crate) fn rollback_stopped(pid: i32, mem: &Mem, cp: &Checkpoint, mut w: World, opts: &RollbackOptions, keep: Option<i32>) -> Result<RollbackReport> {
    w.realtime = opts.realtime;
    let ranges: Vec<Range> = cp
        .new_functions
        .iter()
        .map(|(a, s, n)| Range { start: cp.code_rt(*a), end: cp.code_rt(*a) + s, name: n.clone() })
        .collect();
    let guard = Range { start: cp.code.0, end: cp.code.0 + cp.code.1, name: "patch code".into() };
    let movable: Vec<Movable> = cp
        .mapping
        .iter()
        .map(|m| Movable {
            function: m.function.clone(),
            points: m
                .points
                .iter()
                .map(|p| Point { addr: cp.code_rt(p.new.addr), call_len: p.new.call_len, interruptible: p.interruptible })
                .collect(),
        })
        .collect();
    let mut entries = Vec::new();
    for e in &cp.entries {
        let original = hex::decode(&e.original).map_err(|x| Error::Checkpoint(format!("entry {}: {x}", e.function)))?;
        entries.push((e.addr, original));
    }
    let target = Target { ranges: &ranges, guard: Some(&guard), movable: &movable };
    let mut reason = String::new();
    for attempt in 0..opts.attempts {
        if attempt > 0 {
            w.idle(opts.backoff * (1u32 << attempt.min(6)))?;
        }
        let arrived = match safepoint::quiesce(&mut w, mem, &target, opts.safe_point_timeout, keep)? {
            Ok(a) => a,
            Err(r) => {
                reason = r;
                continue;
            }
        };
        let mut plans = Vec::new();
        for a in &arrived {
            let mv = &movable[a.function];
            let m = &cp.mapping[a.function];
            let addr = mv.points[a.point].addr;
            let fp = transfer::at_runtime(&m.points[a.point].new, addr);
            let frame = transfer::read_frame(mem, &a.regs, &fp)?;
            let args = transfer::args_for(&frame, &m.old_params, &m.function)?;
            let regs = transfer::call_regs(mem, &frame, m.old_entry + cp.bias, &args, None)?;
            plans.push((a.tid, regs, MovedThread { tid: a.tid, function: m.function.clone(), safe_point: addr, woken_from_syscall: a.woke, helper: None }));
        }
        for s in &cp.statics {
            let len = s.copies.iter().map(|c| c.new_offset + c.len).max().unwrap_or(0);
            let now = mem.read(s.new_addr, len as usize)?;
            for c in &s.copies {
                mem.write(s.old_addr + c.old_offset, &now[c.new_offset as usize..(c.new_offset + c.len) as usize])?;
            }
        }
        for (addr, original) in &entries {
            mem.write(*addr, original)?;
        }
        let mut moved = Vec::new();
        for (tid, regs, mt) in plans {
            ptrace::set_regs(tid, &regs)?;
            moved.push(mt);
        }
        let pause = w.detach_all();
        let pause_total = w.stopped_total;
        let mover_pause = arrived.iter().map(|a| a.since.elapsed()).max().unwrap_or_default();
        drop(w);
        unmap(pid, mem, cp)?;
        return Ok(RollbackReport { pause, pause_total, mover_pause, attempts: attempt + 1, moved });
    }
    Err(Error::NoSafePoint { attempts: opts.attempts, reason })
}

/// Unmaps the patch's code and data blocks (no thread may be using them).
pub(crate) fn unmap(pid: i32, mem: &Mem, cp: &Checkpoint) -> Result<()> {
    let mut w = World::stop_all_one(pid)?;
    let scratch = cp.old_entry + cp.bias;
    let r = world::remote_syscall(pid, mem, scratch, MUNMAP, [cp.code.0, cp.code.1, 0, 0, 0, 0])
        .and_then(|_| world::remote_syscall(pid, mem, scratch, MUNMAP, [cp.data.0, cp.data.1, 0, 0, 0, 0]));
    w.detach_all();
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
