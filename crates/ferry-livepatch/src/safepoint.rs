//! Finding which threads are inside patched code and running one to a safe point with
//! breakpoints (never single-stepping).

use crate::error::{Error, Result};
use crate::ptrace::{self, Mem, Regs, Stop};
use crate::world::{self, Map};
use std::time::Duration;

/// A function's runtime range.
#[derive(Debug, Clone)]
pub struct Range {
    /// Start.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// Function name.
    pub name: String,
}

/// The patched functions a stopped thread is inside (by pc or by return addresses on its stack).
pub fn active_in(mem: &Mem, maps: &[Map], regs: &Regs, ranges: &[Range]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let note = |addr: u64, out: &mut Vec<String>| {
        if let Some(r) = ranges.iter().find(|r| r.start <= addr && addr < r.end) {
            if !out.contains(&r.name) {
                out.push(r.name.clone());
            }
        }
    };
    note(regs.rip, &mut out);
    for (_, w) in world::stack_words(mem, maps, regs.rsp) {
        if ranges.iter().any(|r| r.start < w && w <= r.end) && world::after_call(mem, w) {
            note(w - 1, &mut out);
        }
    }
    out
}

/// A safe point at runtime.
#[derive(Debug, Clone)]
pub struct Point {
    /// Address of the call instruction.
    pub addr: u64,
    /// Length of the call instruction.
    pub call_len: u64,
    /// Whether a thread blocked in the call may be woken with EINTR.
    pub interruptible: bool,
}

/// Outcome of [`run_to_point`].
pub enum Reached {
    /// The thread is stopped exactly at `points[index]`.
    At {
        /// Index into the points.
        index: usize,
        /// Its registers there.
        regs: Regs,
        /// True when a blocked system call was ended with EINTR to get there.
        woke: bool,
    },
    /// It did not get there in time (or stopped for a signal, recorded in `pending`).
    NotYet(String),
}

/// Lets stopped thread `tid` run alone until it executes one of `points` (int3 planted at each),
/// waking it with EINTR first when it is blocked in an interruptible call at one of them.
pub fn run_to_point(tid: i32, mem: &Mem, maps: &[Map], points: &[Point], timeout: Duration, pending: &mut i32) -> Result<Reached> {
    let mut regs = ptrace::get_regs(tid)?;
    if let Some(index) = points.iter().position(|p| p.addr == regs.rip) {
        return Ok(Reached::At { index, regs, woke: false });
    }
    let mut woke = false;
    if world::in_restartable_syscall(&regs) {
        let rets: Vec<u64> = points.iter().filter(|p| p.interruptible).map(|p| p.addr + p.call_len).collect();
        if world::stack_words(mem, maps, regs.rsp).iter().any(|(_, w)| rets.contains(w)) {
            // The call tolerates EINTR (declared by the patch author): end the interrupted system
            // call with EINTR instead of restarting it, so the caller loops back to the point.
            regs.rax = (-libc::EINTR) as u64;
            ptrace::set_regs(tid, &regs)?;
            woke = true;
        }
    }
    let originals: Vec<Vec<u8>> = points.iter().map(|p| mem.read(p.addr, 1)).collect::<Result<_>>()?;
    for p in points {
        mem.write(p.addr, &[0xcc])?;
    }
    let restore = |mem: &Mem| -> Result<()> {
        for (p, b) in points.iter().zip(&originals) {
            mem.write(p.addr, b)?;
        }
        Ok(())
    };
    let sig = std::mem::take(pending);
    let run = (|| -> Result<Option<Stop>> {
        ptrace::cont(tid, sig)?;
        match ptrace::wait_stop(tid, timeout)? {
            Some(s) => Ok(Some(s)),
            None => {
                ptrace::interrupt(tid)?;
                let s = ptrace::wait_stop(tid, Duration::from_secs(2))?;
                Ok(match s {
                    Some(Stop::Signal(libc::SIGTRAP)) => s,
                    _ => None,
                })
            }
        }
    })();
    restore(mem)?;
    match run? {
        Some(Stop::Signal(libc::SIGTRAP)) => {
            let mut regs = ptrace::get_regs(tid)?;
            match points.iter().position(|p| p.addr + 1 == regs.rip) {
                Some(index) => {
                    regs.rip -= 1;
                    ptrace::set_regs(tid, &regs)?;
                    Ok(Reached::At { index, regs, woke })
                }
                None => {
                    *pending = libc::SIGTRAP;
                    Ok(Reached::NotYet("stopped by a foreign SIGTRAP".into()))
                }
            }
        }
        Some(Stop::Signal(s)) => {
            *pending = s;
            Ok(Reached::NotYet(format!("received signal {s} on the way")))
        }
        Some(Stop::Event) => Ok(Reached::NotYet("stopped by another ptrace event".into())),
        Some(Stop::Gone) => Err(Error::Target { pid: tid, reason: "exited while running to a safe point".into() }),
        None => {
            // Wait for the interrupt stop we requested if it has not been collected.
            Ok(Reached::NotYet(format!("did not reach a safe point within {timeout:?}")))
        }
    }
}
