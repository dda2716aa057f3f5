//! Applying a patch bundle to a running process.

use crate::bundle::{PatchBundle, RelocTarget, unhex};
use crate::checkpoint::{Checkpoint, EntryPatch, StaticState};
use crate::elf::build_id_of;
use crate::error::{Error, Result};
use crate::ptrace::{self, Mem, Stop};
use crate::rollback::{RollbackOptions, rollback_stopped};
use crate::safepoint::{self, Movable, Point, Range, Target};
use crate::transfer;
use crate::world::{self, World};
use std::time::{Duration, Instant};

/// Tuning of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Attempts to find a moment when every thread is at a safe point.
    pub attempts: u32,
    /// Pause before the first retry; doubled after each failed attempt (capped at 64 ms).
    pub backoff: Duration,
    /// How long a thread inside a changed function may run alone to reach a safe point.
    pub safe_point_timeout: Duration,
    /// How long the author's helper may run before the patch is rolled back.
    pub helper_timeout: Duration,
    /// Run the patcher thread at real-time priority (SCHED_FIFO) while every thread of the
    /// target is stopped, so that it is not preempted in the middle of the pause; needs
    /// CAP_SYS_NICE, silently skipped without it.
    pub realtime: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            attempts: 30,
            backoff: Duration::from_millis(1),
            safe_point_timeout: Duration::from_millis(20),
            helper_timeout: Duration::from_secs(2),
            realtime: true,
        }
    }
}

/// A thread moved from an old function to its new version.
#[derive(Debug, Clone, PartialEq)]
pub struct MovedThread {
    /// Thread id.
    pub tid: i32,
    /// The function.
    pub function: String,
    /// Runtime address of the safe point (the call instruction in the old function).
    pub safe_point: u64,
    /// True when the thread was blocked in a system call that was ended with EINTR.
    pub woken_from_syscall: bool,
    /// The helper run on the way, if any.
    pub helper: Option<String>,
}

/// What [`apply`] did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Bundle id.
    pub bundle_id: String,
    /// Threads in the process.
    pub threads: usize,
    /// Time spent mapping and relocating the new code (threads running).
    pub prepare: Duration,
    /// Stop-the-world pause of the successful attempt (every thread stopped for the switch).
    pub pause: Duration,
    /// Sum of every stop-the-world window of the apply, failed attempts included.
    pub pause_total: Duration,
    /// Longest time a moved thread was held stopped, from reaching its safe point (while the
    /// other threads still ran) to running the new code (its helper included).
    pub mover_pause: Duration,
    /// Attempts made.
    pub attempts: u32,
    /// Functions redirected at their entry.
    pub redirected: Vec<String>,
    /// Statics moved to their new layout.
    pub statics: Vec<String>,
    /// Threads moved at safe points.
    pub moved: Vec<MovedThread>,
    /// Everything needed to roll back.
    pub checkpoint: Checkpoint,
}

const MMAP: i64 = libc::SYS_mmap;
/// Remote munmap system call number (used by rollback).
pub(crate) const MUNMAP: i64 = libc::SYS_munmap;

/// Maps `size` bytes within ±2 GiB of the executable with `prot`, trying addresses below it.
fn remote_map_near(tid: i32, mem: &Mem, scratch: u64, exe: (u64, u64), size: u64, prot: i32) -> Result<u64> {
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    for k in 1..64u64 {
        let hint = exe.0.saturating_sub(k * (4 << 20) + size) & !0xfff;
        if hint < 0x10000 {
            break;
        }
        let r = world::remote_syscall(tid, mem, scratch, MMAP, [hint, size, prot as u64, flags, u64::MAX, 0])?;
        if r == hint as i64 {
            return Ok(hint);
        }
        if r > 0 {
            world::remote_syscall(tid, mem, scratch, MUNMAP, [r as u64, size, 0, 0, 0, 0])?;
        }
    }
    Err(Error::Target { pid: tid, reason: "no free address range within ±2 GiB of the executable".into() })
}

/// Applies `bundle` to process `pid`.
pub fn apply(pid: i32, bundle: &PatchBundle, opts: &ApplyOptions) -> Result<ApplyReport> {
    let running = build_id_of(std::path::Path::new(&format!("/proc/{pid}/exe")))?;
    if running != bundle.target_build_id {
        return Err(Error::BuildIdMismatch { pid, running, expected: bundle.target_build_id.clone() });
    }
    let t0 = Instant::now();
    let (bias, exe_start, exe_end) = world::exe_layout(pid, bundle.old_load_vaddr)?;
    let mem = Mem::open(pid)?;
    let scratch = bundle.old_entry + bias;
    let mut leader = World::stop_all_one(pid)?;
    let mapped = (|| -> Result<(u64, u64)> {
        let code = remote_map_near(pid, &mem, scratch, (exe_start, exe_end), bundle.code.size, libc::PROT_READ | libc::PROT_EXEC)?;
        let data = remote_map_near(pid, &mem, scratch, (exe_start, exe_end), bundle.data.size, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok((code, data))
    })();
    leader.detach_all();
    let (code, data) = mapped?;
    let cp = Checkpoint {
        pid,
        bundle_id: bundle.id(),
        bias,
        old_entry: bundle.old_entry,
        code: (code, bundle.code.size),
        code_base_vaddr: bundle.code.base_vaddr,
        data: (data, bundle.data.size),
        entries: Vec::new(),
        statics: Vec::new(),
        mapping: bundle.mapping.clone(),
        new_functions: bundle.functions.iter().map(|f| (f.new.0, f.new.1, f.name.clone())).collect(),
    };
    let result = write_image(&mem, bundle, &cp, (exe_start, exe_end)).and_then(|_| {
        switch(pid, &mem, bundle, cp.clone(), opts, t0.elapsed())
    });
    if let Err(e) = &result
        && !matches!(e, Error::HelperFailed { .. })
    {
        crate::rollback::unmap(pid, &mem, &cp).ok();
    }
    result
}

/// Writes code, read-only data, relocations and initial statics into the new blocks.
fn write_image(mem: &Mem, b: &PatchBundle, cp: &Checkpoint, exe: (u64, u64)) -> Result<()> {
    for p in &b.code.pieces {
        mem.write(cp.code_rt(p.vaddr), &unhex(&p.name, &p.bytes)?)?;
    }
    mem.write(cp.code.0 + b.code.trap_offset, &[0xcc])?;
    for r in &b.code.relocs {
        let target = match &r.target {
            RelocTarget::Symbol { index, addend } => {
                let s = b.symbols.get(*index).ok_or_else(|| Error::Bundle(format!("relocation names symbol #{index}")))?;
                let rt = s.old_vaddr + cp.bias;
                if rt < exe.0 || rt >= exe.1 {
                    return Err(Error::Bundle(format!("symbol {} resolves outside the executable", s.name)));
                }
                rt.wrapping_add(*addend as u64)
            }
            RelocTarget::Data { offset } => cp.data.0 + offset,
        };
        let disp = target as i64 - (cp.code.0 + r.pc_after) as i64;
        let disp = i32::try_from(disp).map_err(|_| Error::Unpatchable(format!("relocation at +{:#x} out of ±2 GiB range", r.offset)))?;
        mem.write(cp.code.0 + r.offset, &disp.to_le_bytes())?;
    }
    for s in &b.statics {
        mem.write(cp.data.0 + s.data_offset, &unhex(&s.name, &s.init)?)?;
    }
    Ok(())
}

struct Mover {
    tid: i32,
    function: String,
    frame: transfer::Frame,
    stack: (u64, Vec<u8>),
    woke: bool,
    since: Instant,
}

/// Brings every thread outside the changed functions or to a safe point (see
/// [`safepoint::quiesce`]), then switches with the world stopped: transforms statics, redirects
/// entries, moves threads.
fn switch(pid: i32, mem: &Mem, b: &PatchBundle, mut cp: Checkpoint, opts: &ApplyOptions, prepare: Duration) -> Result<ApplyReport> {
    let ranges: Vec<Range> = b
        .functions
        .iter()
        .filter_map(|f| f.old.map(|(a, s)| Range { start: a + cp.bias, end: a + s + cp.bias, name: f.name.clone() }))
        .collect();
    let movable: Vec<Movable> = b
        .mapping
        .iter()
        .map(|m| Movable {
            function: m.function.clone(),
            points: m
                .points
                .iter()
                .map(|p| Point { addr: p.old.addr + cp.bias, call_len: p.old.call_len, interruptible: p.interruptible })
                .collect(),
        })
        .collect();
    // Everything that does not need the world stopped is read now: the entry bytes the jumps
    // replace (code nobody else writes).
    let mut entries = Vec::new();
    for f in &b.functions {
        let Some((old_addr, old_size)) = f.old else { continue };
        if old_size < 5 {
            return Err(Error::Unpatchable(format!("{} is shorter than a jump", f.name)));
        }
        let at = old_addr + cp.bias;
        let disp = (cp.code_rt(f.new.0) as i64 - (at + 5) as i64) as i32;
        let mut jmp = vec![0xe9];
        jmp.extend_from_slice(&disp.to_le_bytes());
        entries.push((EntryPatch { function: f.name.clone(), addr: at, original: hex::encode(mem.read(at, 5)?) }, jmp));
    }
    let target = Target { ranges: &ranges, guard: None, movable: &movable };
    let mut w = World::seize(pid)?;
    w.realtime = opts.realtime;
    let mut reason = String::new();
    for attempt in 0..opts.attempts {
        if attempt > 0 {
            w.idle(opts.backoff * (1u32 << attempt.min(6)))?;
        }
        let arrived = match safepoint::quiesce(&mut w, mem, &target, opts.safe_point_timeout, None)? {
            Ok(a) => a,
            Err(r) => {
                reason = r;
                continue;
            }
        };
        let mut moved = Vec::new();
        for a in arrived {
            let mv = &movable[a.function];
            let m = b.mapping_for(&mv.function).expect("movable functions come from the mapping");
            let fp = transfer::at_runtime(&m.points[a.point].old, mv.points[a.point].addr);
            let frame = transfer::read_frame(mem, &a.regs, &fp)?;
            let stack = (a.regs.rsp - 128, mem.read(a.regs.rsp - 128, (frame.cfa - a.regs.rsp + 128) as usize)?);
            moved.push(Mover { tid: a.tid, function: mv.function.clone(), frame, stack, woke: a.woke, since: a.since });
        }
        return commit(pid, mem, b, &mut cp, w, moved, entries, opts, prepare, attempt + 1);
    }
    Err(Error::NoSafePoint { attempts: opts.attempts, reason })
}

#[allow(clippy::too_many_arguments)]
fn commit(
    pid: i32,
    mem: &Mem,
    b: &PatchBundle,
    cp: &mut Checkpoint,
    mut w: World,
    movers: Vec<Mover>,
    entries: Vec<(EntryPatch, Vec<u8>)>,
    opts: &ApplyOptions,
    prepare: Duration,
    attempts: u32,
) -> Result<ApplyReport> {
    for s in &b.statics {
        let Some((old_addr, old_size)) = s.old else { continue };
        let old_rt = old_addr + cp.bias;
        let new_rt = cp.data.0 + s.data_offset;
        let old_bytes = mem.read(old_rt, old_size as usize)?;
        for c in &s.copies {
            mem.write(new_rt + c.new_offset, &old_bytes[c.old_offset as usize..(c.old_offset + c.len) as usize])?;
        }
        cp.statics.push(StaticState { name: s.name.clone(), old_addr: old_rt, new_addr: new_rt, old_bytes: hex::encode(old_bytes), copies: s.copies.clone() });
    }
    for (e, jmp) in entries {
        mem.write(e.addr, &jmp)?;
        cp.entries.push(e);
    }
    let mut report_moved = Vec::new();
    let mut helpers = Vec::new();
    for m in &movers {
        let map = b.mapping_for(&m.function).expect("mover has mapping");
        let new_entry = cp.code_rt(map.new_entry);
        let args = transfer::args_for(&m.frame, &map.new_params, &m.function)?;
        let regs = match &map.helper {
            Some(h) => {
                let hargs = transfer::args_for(&m.frame, &h.params, &h.name)?;
                helpers.push((m, args.clone(), new_entry));
                transfer::call_regs(mem, &m.frame, cp.code_rt(h.new_vaddr), &hargs, Some(cp.code.0 + b.code.trap_offset))?
            }
            None => transfer::call_regs(mem, &m.frame, new_entry, &args, None)?,
        };
        ptrace::set_regs(m.tid, &regs)?;
        report_moved.push(MovedThread {
            tid: m.tid,
            function: m.function.clone(),
            safe_point: m.frame.regs.rip,
            woken_from_syscall: m.woke,
            helper: map.helper.as_ref().map(|h| h.name.clone()),
        });
    }
    let threads = w.threads.len();
    // Helper threads stay seized so a fault is caught; everyone else runs the new code now.
    let helper_tids: Vec<i32> = helpers.iter().map(|(m, ..)| m.tid).collect();
    let pause = w.detach_except(&helper_tids);
    let pause_total = w.stopped_total;
    let mut mover_pause = movers.iter().filter(|m| !helper_tids.contains(&m.tid)).map(|m| m.since.elapsed()).max().unwrap_or_default();
    for (m, args, new_entry) in helpers {
        let helper_name = b.mapping_for(&m.function).and_then(|x| x.helper.as_ref()).map(|h| h.name.clone()).unwrap_or_default();
        let outcome = run_helper(m.tid, cp.code.0 + b.code.trap_offset, opts.helper_timeout)?;
        match outcome {
            Ok(()) => {
                let regs = transfer::call_regs(mem, &m.frame, new_entry, &args, None)?;
                ptrace::set_regs(m.tid, &regs)?;
                w.threads.remove(&m.tid);
                ptrace::detach(m.tid, 0)?;
                mover_pause = mover_pause.max(m.since.elapsed());
            }
            Err(why) => {
                // Undo everything: the faulted thread goes back to its old frame at the safe point.
                mem.write(m.stack.0, &m.stack.1)?;
                ptrace::set_regs(m.tid, &m.frame.regs)?;
                rollback_stopped(pid, mem, cp, w, &RollbackOptions::default(), Some(m.tid))?;
                return Err(Error::HelperFailed { helper: helper_name, tid: m.tid, reason: why });
            }
        }
    }
    Ok(ApplyReport {
        bundle_id: cp.bundle_id.clone(),
        threads,
        prepare,
        pause,
        pause_total,
        mover_pause,
        attempts,
        redirected: cp.entries.iter().map(|e| e.function.clone()).collect(),
        statics: cp.statics.iter().map(|s| s.name.clone()).collect(),
        moved: report_moved,
        checkpoint: cp.clone(),
    })
}

/// Runs a thread set up to call a helper until it returns to the trap; Err(reason) on a fault,
/// a non-zero result or a timeout (the thread is left stopped in every case).
fn run_helper(tid: i32, trap: u64, timeout: Duration) -> Result<std::result::Result<(), String>> {
    ptrace::cont(tid, 0)?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ptrace::wait_stop(tid, left)? {
            Some(Stop::Signal(libc::SIGTRAP)) => {
                let regs = ptrace::get_regs(tid)?;
                if regs.rip != trap + 1 {
                    return Ok(Err(format!("unexpected trap at {:#x}", regs.rip)));
                }
                if regs.rax != 0 {
                    return Ok(Err(format!("returned {}", regs.rax as i64)));
                }
                return Ok(Ok(()));
            }
            Some(Stop::Signal(sig @ (libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGABRT))) => {
                let regs = ptrace::get_regs(tid)?;
                return Ok(Err(format!("signal {sig} at {:#x}", regs.rip)));
            }
            Some(Stop::Signal(sig)) => ptrace::cont(tid, sig)?,
            Some(Stop::Event) => ptrace::cont(tid, 0)?,
            Some(Stop::Gone) => return Err(Error::Target { pid: tid, reason: "exited while running the helper".into() }),
            None => {
                ptrace::interrupt(tid)?;
                ptrace::wait_stop(tid, Duration::from_secs(2))?;
                return Ok(Err(format!("did not return within {timeout:?}")));
            }
        }
    }
}
