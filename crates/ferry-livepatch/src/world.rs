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

/// A process whose threads are seized; stopped ones can be inspected and changed.
pub struct World {
    /// The process id.
    pub pid: i32,
    /// Seized threads and the signal to deliver when each resumes.
    pub threads: BTreeMap<i32, i32>,
    /// When the last stop began.
    pub stopped_at: Option<Instant>,
}

impl World {
    /// Seizes and stops every thread, including threads created meanwhile.
    pub fn stop_all(pid: i32) -> Result<World> {
        let mut w = World { pid, threads: BTreeMap::new(), stopped_at: Some(Instant::now()) };
        if let Err(e) = w.stop_new_threads() {
            w.resume_all();
            return Err(e);
        }
        Ok(w)
    }

    fn stop_new_threads(&mut self) -> Result<()> {
        loop {
            let new: Vec<i32> = threads(self.pid)?.into_iter().filter(|t| !self.threads.contains_key(t)).collect();
            if new.is_empty() {
                return Ok(());
            }
            let mut seized = Vec::new();
            for tid in new {
                match ptrace::seize(tid).and_then(|_| ptrace::interrupt(tid)) {
                    Ok(()) => seized.push(tid),
                    Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
            for tid in seized {
                match ptrace::wait_stop(tid, STOP_TIMEOUT)? {
                    Some(Stop::Event) => {
                        self.threads.insert(tid, 0);
                    }
                    Some(Stop::Signal(sig)) => {
                        self.threads.insert(tid, sig);
                    }
                    Some(Stop::Gone) => {}
                    None => return Err(Error::Target { pid: tid, reason: "did not stop within 2 s".into() }),
                }
            }
        }
    }

    /// Detaches from every thread except `keep`, letting them run; returns how long they were stopped.
    pub fn resume_except(&mut self, keep: Option<i32>) -> Duration {
        let tids: Vec<i32> = self.threads.keys().copied().filter(|t| Some(*t) != keep).collect();
        for tid in tids {
            let sig = self.threads.remove(&tid).unwrap_or(0);
            let _ = ptrace::detach(tid, sig);
        }
        self.stopped_at.take().map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Detaches from every thread.
    pub fn resume_all(&mut self) -> Duration {
        self.resume_except(None)
    }

    /// Stops again every thread that is not seized (after [`World::resume_except`]).
    pub fn restop(&mut self) -> Result<()> {
        self.stopped_at = Some(Instant::now());
        self.stop_new_threads()
    }
}

/// Words on a stopped thread's stack from `rsp` upwards (bounded by its mapping).
pub fn stack_words(mem: &Mem, maps: &[Map], rsp: u64) -> Vec<(u64, u64)> {
    let Some(m) = maps.iter().find(|m| m.start <= rsp && rsp < m.end) else { return Vec::new() };
    let end = m.end.min(rsp + STACK_SCAN);
    let start = rsp & !7;
    let Ok(bytes) = mem.read(start, (end - start) as usize) else { return Vec::new() };
    bytes
        .chunks_exact(8)
        .enumerate()
        .map(|(i, c)| (start + 8 * i as u64, u64::from_le_bytes(c.try_into().expect("8 bytes"))))
        .collect()
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
        ptrace::interrupt(pid)?;
        let mut w = World { pid, threads: BTreeMap::new(), stopped_at: Some(Instant::now()) };
        match ptrace::wait_stop(pid, STOP_TIMEOUT)? {
            Some(Stop::Event) => {
                w.threads.insert(pid, 0);
            }
            Some(Stop::Signal(sig)) => {
                w.threads.insert(pid, sig);
            }
            _ => return Err(Error::Target { pid, reason: "did not stop for system call injection".into() }),
        }
        Ok(w)
    }
}
