//! Stopping and resuming every thread of a process, reading its maps and stacks, and running
//! system calls inside it.

use crate::error::{Error, Result};
use crate::ptrace::{self, Mem, Regs, Stop};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a thread may take to report its stop after PTRACE_INTERRUPT.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How many bytes of each stack are scanned for return addresses.
const STACK_SCAN: u64 = 256 * 1024;

/// A memory mapping from /proc/PID/maps.
#[derive(Debug, Clone)]
pub struct Map {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// File offset.
    pub offset: u64,
    /// Path or pseudo-name.
    pub path: String,
}

/// The mappings of `pid`.
pub fn maps(pid: i32) -> Result<Vec<Map>> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), _, Some(off)) = (f.next(), f.next(), f.next()) else { continue };
        let path = f.nth(2).unwrap_or("").to_string();
        let Some((a, b)) = range.split_once('-') else { continue };
        out.push(Map {
            start: u64::from_str_radix(a, 16).unwrap_or(0),
            end: u64::from_str_radix(b, 16).unwrap_or(0),
            offset: u64::from_str_radix(off, 16).unwrap_or(0),
            path,
        });
    }
    Ok(out)
}

/// Load bias of the main executable and its mapped range: runtime = link-time + bias.
pub fn exe_layout(pid: i32, load_vaddr: u64) -> Result<(u64, u64, u64)> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| Error::io(format!("/proc/{pid}/exe"), e))?;
    let exe = exe.to_string_lossy().trim_end_matches(" (deleted)").to_string();
    let ms: Vec<Map> = maps(pid)?.into_iter().filter(|m| m.path == exe).collect();
    let first = ms.iter().find(|m| m.offset == 0).ok_or_else(|| Error::Target {
        pid,
        reason: format!("{exe} is not mapped at offset 0"),
    })?;
    let bias = first.start - (load_vaddr & !0xfff);
    let end = ms.iter().map(|m| m.end).max().unwrap_or(first.end);
    Ok((bias, first.start, end))
}

/// The thread ids of `pid`.
pub fn threads(pid: i32) -> Result<Vec<i32>> {
    let path = format!("/proc/{pid}/task");
    let mut tids: Vec<i32> = std::fs::read_dir(&path)
        .map_err(|e| Error::io(&path, e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort();
    Ok(tids)
}

/// A seized thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracee {
    /// True while it is in a ptrace stop.
    pub stopped: bool,
    /// Signal to deliver when it resumes (0 for none).
    pub sig: i32,
}

/// A process whose threads are seized (PTRACE_SEIZE does not stop them); stopped ones can be
/// inspected and changed. Dropping it releases every thread it still holds.
pub struct World {
    /// The process id.
    pub pid: i32,
    /// Seized threads.
    pub threads: BTreeMap<i32, Tracee>,
    /// When the current stop of every thread began.
    pub stopped_at: Option<Instant>,
    /// Sum of every finished stop-the-world window.
    pub stopped_total: Duration,
    /// Run the patcher at real-time priority during stop-the-world windows (see [`Urgent`]).
    pub realtime: bool,
    urgent: Option<Urgent>,
}

/// Real-time priority (SCHED_FIFO, lowest level) for the calling thread while the world is
/// stopped. Without it, the threads woken by our own PTRACE_INTERRUPT / PTRACE_DETACH (and any
/// other runnable task on this CPU) preempt the patcher in the middle of the pause, which
/// stretches it to whole scheduler slices (milliseconds on a loaded machine). Best effort: without
/// CAP_SYS_NICE nothing changes. The previous policy is restored on drop. It is dropped while the
/// stops are collected, since a stopping thread may need this CPU.
pub struct Urgent {
    old: Option<(i32, libc::sched_param)>,
}

impl Urgent {
    /// Raises the calling thread to SCHED_FIFO if it runs under an ordinary policy.
    pub fn raise() -> Urgent {
        // SAFETY: pid 0 names the calling thread; sched_param is plain integers and every pointer
        // passed is a live local.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old: libc::sched_param = std::mem::zeroed();
            if policy < 0 || policy == libc::SCHED_FIFO || policy == libc::SCHED_RR || libc::sched_getparam(0, &mut old) != 0 {
                return Urgent { old: None };
            }
            let rt = libc::sched_param { sched_priority: libc::sched_get_priority_min(libc::SCHED_FIFO).max(1) };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt) != 0 {
                return Urgent { old: None };
            }
            Urgent { old: Some((policy, old)) }
        }
    }
}

impl Drop for Urgent {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.old.take() {
            // SAFETY: as in `raise`.
            unsafe {
                libc::sched_setscheduler(0, policy, &param);
            }
        }
    }
}

impl World {
    /// Seizes every thread of `pid` without stopping any of them.
    pub fn seize(pid: i32) -> Result<World> {
        let mut w = World { pid, threads: BTreeMap::new(), stopped_at: None, stopped_total: Duration::ZERO, realtime: false, urgent: None };
        w.seize_new()?;
        Ok(w)
    }

    /// Seizes threads not yet held (running; new ones); returns them.
    pub fn seize_new(&mut self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        loop {
            let new: Vec<i32> = threads(self.pid)?.into_iter().filter(|t| !self.threads.contains_key(t)).collect();
            if new.is_empty() {
                return Ok(all);
            }
            for tid in new {
                match ptrace::seize(tid) {
                    Ok(()) => {
                        self.threads.insert(tid, Tracee { stopped: false, sig: 0 });
                        all.push(tid);
                    }
                    Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Records the stop `s` of `tid`. A SIGTRAP at one of `bps` (int3 addresses) is our
    /// breakpoint: the pc is moved back onto the instruction and no signal is kept.
    fn settle(&mut self, tid: i32, s: Option<Stop>, bps: &[u64]) -> Result<()> {
        match s {
            Some(Stop::Event) => self.mark(tid, 0),
            Some(Stop::Signal(libc::SIGTRAP)) if rewind_trap(tid, bps)? => self.mark(tid, 0),
            Some(Stop::Signal(sig)) => self.mark(tid, sig),
            Some(Stop::Gone) => {
                self.threads.remove(&tid);
            }
            None => return Err(Error::Target { pid: tid, reason: format!("did not stop within {STOP_TIMEOUT:?}") }),
        }
        Ok(())
    }

    fn mark(&mut self, tid: i32, sig: i32) {
        let t = self.threads.entry(tid).or_insert(Tracee { stopped: true, sig: 0 });
        t.stopped = true;
        if sig != 0 {
            t.sig = sig;
        }
    }

    /// Stops one seized thread (the others keep running).
    pub fn stop_one(&mut self, tid: i32, bps: &[u64]) -> Result<()> {
        if self.threads.get(&tid).is_none_or(|t| t.stopped) {
            return Ok(());
        }
        match ptrace::interrupt(tid) {
            Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
            r => r?,
        }
        let s = ptrace::wait_stop(tid, STOP_TIMEOUT)?;
        self.settle(tid, s, bps)
    }

    /// Stops the world: interrupts every running thread first, then collects the stops, then
    /// seizes and stops threads created meanwhile. Starts the stop-the-world clock.
    pub fn stop(&mut self, bps: &[u64]) -> Result<()> {
        self.stopped_at = Some(Instant::now());
        loop {
            let running: Vec<i32> = self.threads.iter().filter(|(_, t)| !t.stopped).map(|(k, _)| *k).collect();
            // Not preempted by the threads the interrupts wake...
            let urgent = self.realtime.then(Urgent::raise);
            for &tid in &running {
                match ptrace::interrupt(tid) {
                    Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
                    r => r?,
                }
            }
            // ...but they may need this CPU to reach their stop.
            drop(urgent);
            for tid in running {
                let s = ptrace::wait_stop(tid, STOP_TIMEOUT)?;
                self.settle(tid, s, bps)?;
            }
            if self.seize_new()?.is_empty() {
                break;
            }
        }
        if self.realtime && self.urgent.is_none() {
            self.urgent = Some(Urgent::raise());
        }
        Ok(())
    }

    /// Resumes one stopped thread, delivering its pending signal.
    pub fn cont(&mut self, tid: i32) -> Result<()> {
        let Some(t) = self.threads.get_mut(&tid) else { return Ok(()) };
        if !t.stopped {
            return Ok(());
        }
        let sig = std::mem::take(&mut t.sig);
        t.stopped = false;
        match ptrace::cont(tid, sig) {
            Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                self.threads.remove(&tid);
                Ok(())
            }
            r => r,
        }
    }

    fn end_window(&mut self) -> Duration {
        let d = self.stopped_at.take().map(|t| t.elapsed()).unwrap_or_default();
        self.urgent = None;
        self.stopped_total += d;
        d
    }

    /// Resumes every stopped thread except `keep`, staying attached; ends the stop-the-world
    /// window and returns its length.
    pub fn cont_except(&mut self, keep: Option<i32>) -> Result<Duration> {
        let tids: Vec<i32> = self.threads.keys().copied().filter(|t| Some(*t) != keep).collect();
        for tid in tids {
            self.cont(tid)?;
        }
        Ok(self.end_window())
    }

    /// Detaches from every stopped thread except those in `keep`, letting them run; ends the
    /// stop-the-world window and returns its length.
    pub fn detach_except(&mut self, keep: &[i32]) -> Duration {
        let tids: Vec<i32> = self.threads.iter().filter(|(k, t)| t.stopped && !keep.contains(k)).map(|(k, _)| *k).collect();
        for tid in tids {
            let sig = self.threads.remove(&tid).map(|t| t.sig).unwrap_or(0);
            let _ = ptrace::detach(tid, sig);
        }
        self.end_window()
    }

    /// Detaches from every stopped thread.
    pub fn detach_all(&mut self) -> Duration {
        self.detach_except(&[])
    }

    /// Collects the stops of running threads without blocking: signals are delivered at once,
    /// other stops resumed; returns the threads that stopped at one of `bps` (left stopped there).
    pub fn poll(&mut self, bps: &[u64]) -> Result<Vec<i32>> {
        let running: Vec<i32> = self.threads.iter().filter(|(_, t)| !t.stopped).map(|(k, _)| *k).collect();
        let mut trapped = Vec::new();
        for tid in running {
            let Some(s) = ptrace::try_wait(tid)? else { continue };
            self.settle(tid, Some(s), bps)?;
            match self.threads.get(&tid) {
                Some(t) if t.stopped && t.sig == 0 && s == Stop::Signal(libc::SIGTRAP) => trapped.push(tid),
                Some(_) => self.cont(tid)?,
                None => {}
            }
        }
        Ok(trapped)
    }

    /// Lets the seized threads run for `d`, handling their stops (instead of detaching and
    /// seizing again between attempts).
    pub fn idle(&mut self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.poll(&[])?;
            std::thread::sleep(Duration::from_micros(200).min(end.saturating_duration_since(Instant::now())));
        }
        Ok(())
    }

    /// Stops whatever still runs and detaches from everything.
    pub fn release(&mut self) {
        if self.threads.values().any(|t| !t.stopped) {
            let _ = self.stop(&[]);
        }
        let tids: Vec<i32> = self.threads.keys().copied().collect();
        for tid in tids {
            let sig = self.threads.remove(&tid).map(|t| t.sig).unwrap_or(0);
            let _ = ptrace::detach(tid, sig);
        }
        self.end_window();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.release();
    }
}

/// If stopped thread `tid` trapped on one of our int3s at `bps`, moves its pc back onto it.
fn rewind_trap(tid: i32, bps: &[u64]) -> Result<bool> {
    if bps.is_empty() {
        return Ok(false);
    }
    let mut regs = ptrace::get_regs(tid)?;
    if !bps.contains(&regs.rip.wrapping_sub(1)) {
        return Ok(false);
    }
    regs.rip -= 1;
    ptrace::set_regs(tid, &regs)?;
    Ok(true)
}

/// Words on a stopped thread's stack from `rsp` upwards (bounded by its mapping).
/// None when the stack cannot be read (no mapping holds `rsp` in `maps`, or it changed since).
pub fn stack_words(mem: &Mem, maps: &[Map], rsp: u64) -> Option<Vec<(u64, u64)>> {
    let m = maps.iter().find(|m| m.start <= rsp && rsp < m.end)?;
    let end = m.end.min(rsp + STACK_SCAN);
    let start = rsp & !7;
    let bytes = mem.read(start, (end - start) as usize).ok()?;
    Some(bytes
        .chunks_exact(8)
        .enumerate()
        .map(|(i, c)| (start + 8 * i as u64, u64::from_le_bytes(c.try_into().expect("8 bytes"))))
        .collect())
}

/// True when `ret` looks like a return address: the bytes before it end in a call instruction.
pub fn after_call(mem: &Mem, ret: u64) -> bool {
    let Ok(b) = mem.read(ret - 7, 7) else { return false };
    b[2] == 0xe8 || (b[1] == 0xff && (b[2] & 0x38) == 0x10) || (b[5] == 0xff && (b[6] & 0x38) == 0x10) || (b[0] == 0xff && b[1] == 0x15)
}

/// True when the thread is stopped inside an interrupted, restartable system call.
pub fn in_restartable_syscall(regs: &Regs) -> bool {
    regs.orig_rax as i64 >= 0 && (-516..=-512).contains(&(regs.rax as i64))
}

/// Runs system call `nr` in stopped thread `tid` by placing `syscall; int3` at `scratch` (an
/// address never executed again, such as the ELF entry point), then restores bytes and registers.
pub fn remote_syscall(tid: i32, mem: &Mem, scratch: u64, nr: i64, args: [u64; 6]) -> Result<i64> {
    let saved_regs = ptrace::get_regs(tid)?;
    let saved_code = mem.read(scratch, 3)?;
    mem.write(scratch, &[0x0f, 0x05, 0xcc])?;
    let mut regs = saved_regs;
    regs.rip = scratch;
    regs.rax = nr as u64;
    regs.orig_rax = u64::MAX;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
    let result = (|| {
        ptrace::set_regs(tid, &regs)?;
        ptrace::cont(tid, 0)?;
        loop {
            match ptrace::wait_stop(tid, STOP_TIMEOUT)? {
                Some(Stop::Signal(libc::SIGTRAP)) => break,
                Some(Stop::Signal(_)) | Some(Stop::Event) => ptrace::cont(tid, 0)?,
                Some(Stop::Gone) => return Err(Error::Target { pid: tid, reason: "exited during an injected system call".into() }),
                None => return Err(Error::Target { pid: tid, reason: "injected system call did not return".into() }),
            }
        }
        Ok(ptrace::get_regs(tid)?.rax as i64)
    })();
    mem.write(scratch, &saved_code)?;
    ptrace::set_regs(tid, &saved_regs)?;
    result
}

impl World {
    /// Seizes and stops only the thread-group leader (enough to inject a system call).
    pub fn stop_all_one(pid: i32) -> Result<World> {
        ptrace::seize(pid)?;
        let mut w = World { pid, threads: BTreeMap::new(), stopped_at: None, stopped_total: Duration::ZERO, realtime: false, urgent: None };
        w.threads.insert(pid, Tracee { stopped: false, sig: 0 });
        w.stop_one(pid, &[])?;
        if !w.threads.get(&pid).is_some_and(|t| t.stopped) {
            return Err(Error::Target { pid, reason: "did not stop for system call injection".into() });
        }
        Ok(w)
    }
}
