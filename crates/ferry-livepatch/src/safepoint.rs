//! Finding which threads are inside patched code and running one to a safe point with
//! breakpoints (never single-stepping).

use crate::error::Result;
use crate::ptrace::{self, Mem, Regs};
use crate::world::{self, Map, World};
use std::time::{Duration, Instant};

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

/// The patched functions a stopped thread is inside (by pc or by return addresses on its stack);
/// None when its stack cannot be read with `maps`.
pub fn active_in(mem: &Mem, maps: &[Map], regs: &Regs, ranges: &[Range]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let note = |addr: u64, out: &mut Vec<String>| {
        if let Some(r) = ranges.iter().find(|r| r.start <= addr && addr < r.end)
            && !out.contains(&r.name)
        {
            out.push(r.name.clone());
        }
    };
    note(regs.rip, &mut out);
    for (_, w) in world::stack_words(mem, maps, regs.rsp)? {
        if ranges.iter().any(|r| r.start < w && w <= r.end) && world::after_call(mem, w) {
            note(w - 1, &mut out);
        }
    }
    Some(out)
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

/// A changed function that threads may be moved out of, with its safe points.
#[derive(Debug, Clone)]
pub struct Movable {
    /// Function name (as in the ranges).
    pub function: String,
    /// Its safe points.
    pub points: Vec<Point>,
}

/// What must hold before the switch.
pub struct Target<'a> {
    /// Code no thread may be inside (pc or return address), except movers at a safe point.
    pub ranges: &'a [Range],
    /// A block no pc may be inside outside the ranges (the patch's code block at rollback).
    pub guard: Option<&'a Range>,
    /// Functions with a mapping: threads inside them are run to a safe point.
    pub movable: &'a [Movable],
}

/// A thread stopped exactly at a safe point.
#[derive(Debug, Clone)]
pub struct Arrived {
    /// Thread id.
    pub tid: i32,
    /// Index into [`Target::movable`].
    pub function: usize,
    /// Index into that function's points.
    pub point: usize,
    /// Its registers there.
    pub regs: Regs,
    /// True when a blocked system call was ended with EINTR to get there.
    pub woke: bool,
    /// When it was seen stopped at the point (it stays stopped from then on).
    pub since: Instant,
}

enum Class {
    Outside,
    Inside(usize),
    At(usize, usize),
    Blocked(String),
    Unreadable,
}

fn classify(mem: &Mem, maps: &[Map], tid: i32, regs: &Regs, t: &Target) -> Class {
    let Some(active) = active_in(mem, maps, regs, t.ranges) else { return Class::Unreadable };
    let guard_hit = t.guard.is_some_and(|g| g.start <= regs.rip && regs.rip < g.end);
    match active.as_slice() {
        [] if !guard_hit => Class::Outside,
        [f] => match t.movable.iter().position(|m| &m.function == f) {
            Some(mi) => match t.movable[mi].points.iter().position(|p| p.addr == regs.rip) {
                Some(pi) => Class::At(mi, pi),
                None => Class::Inside(mi),
            },
            None => Class::Blocked(format!("thread {tid} is inside {f}")),
        },
        [] => Class::Blocked(format!("thread {tid} is inside the patch's code block")),
        fs => Class::Blocked(format!("thread {tid} is inside {}", fs.join(", "))),
    }
}

/// Int3 bytes planted at safe points; the original bytes go back on [`Breakpoints::remove`] or
/// drop.
struct Breakpoints<'m> {
    mem: &'m Mem,
    planted: Vec<(u64, u8)>,
}

impl<'m> Breakpoints<'m> {
    fn plant(mem: &'m Mem, addrs: &[u64]) -> Result<Breakpoints<'m>> {
        let mut bp = Breakpoints { mem, planted: Vec::new() };
        for &a in addrs {
            let orig = mem.read(a, 1)?[0];
            mem.write(a, &[0xcc])?;
            bp.planted.push((a, orig));
        }
        Ok(bp)
    }

    fn remove(&mut self) -> Result<()> {
        while let Some((a, orig)) = self.planted.pop() {
            self.mem.write(a, &[orig])?;
        }
        Ok(())
    }
}

impl Drop for Breakpoints<'_> {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Brings the process to a moment when every thread is stopped and outside `t.ranges`, except
/// threads inside a movable function, which are stopped exactly at one of its safe points.
///
/// Only the final check stops the world. Before it, each thread is stopped on its own for a
/// moment to see where it is; threads inside a movable function (a main loop that never
/// returns) then run, with the others, to int3s planted at the safe points (woken with EINTR
/// first when blocked in a call the author declared interruptible) and wait there. Then every
/// thread is stopped and checked afresh (pc and return addresses): a thread found inside changed
/// code, or inside a movable function but not at a safe point, fails the attempt.
///
/// Ok(Ok(arrived)) leaves the world stopped with its clock running; Ok(Err(reason)) leaves
/// every thread seized and running except `keep` (a thread the caller holds stopped and that
/// is not checked).
pub fn quiesce(w: &mut World, mem: &Mem, t: &Target, timeout: Duration, keep: Option<i32>) -> Result<std::result::Result<Vec<Arrived>, String>> {
    w.seize_new()?;
    let mut maps = world::maps(w.pid)?;
    let mut woke: Vec<i32> = Vec::new();
    let mut since: Vec<(i32, Instant)> = Vec::new();
    let mut candidates: Vec<i32> = Vec::new();
    let tids: Vec<i32> = w.threads.keys().copied().filter(|x| Some(*x) != keep).collect();
    // Pre-scan, one thread at a time.
    for tid in tids {
        w.stop_one(tid, &[])?;
        if !w.threads.contains_key(&tid) {
            continue;
        }
        let mut regs = ptrace::get_regs(tid)?;
        let mut class = classify(mem, &maps, tid, &regs, t);
        if matches!(class, Class::Unreadable) {
            maps = world::maps(w.pid)?;
            class = classify(mem, &maps, tid, &regs, t);
        }
        match class {
            Class::At(..) => since.push((tid, Instant::now())),
            Class::Inside(mi) => {
                if world::in_restartable_syscall(&regs) {
                    let rets: Vec<u64> = t.movable[mi].points.iter().filter(|p| p.interruptible).map(|p| p.addr + p.call_len).collect();
                    let words = world::stack_words(mem, &maps, regs.rsp).unwrap_or_default();
                    if words.iter().any(|(_, x)| rets.contains(x)) {
                        // The call tolerates EINTR (declared by the patch author): end the
                        // interrupted system call with EINTR instead of restarting it, so the
                        // caller loops back to the point.
                        regs.rax = (-libc::EINTR) as u64;
                        ptrace::set_regs(tid, &regs)?;
                        woke.push(tid);
                    }
                }
                candidates.push(tid);
            }
            _ => w.cont(tid)?,
        }
    }
    let bp_addrs: Vec<u64> = {
        let mut v: Vec<u64> = t.movable.iter().flat_map(|m| m.points.iter().map(|p| p.addr)).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut bps = Breakpoints::plant(mem, if candidates.is_empty() { &[] } else { &bp_addrs })?;
    for &tid in &candidates {
        w.cont(tid)?;
    }
    // The candidates run to their safe points while every other thread runs too.
    let deadline = Instant::now() + timeout;
    let mut round = 0u32;
    loop {
        let now = Instant::now();
        since.extend(w.poll(&bp_addrs)?.into_iter().map(|tid| (tid, now)));
        let pending: Vec<i32> = candidates.iter().copied().filter(|c| w.threads.get(c).is_some_and(|x| !x.stopped)).collect();
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for tid in pending {
                w.stop_one(tid, &bp_addrs)?;
            }
            bps.remove()?;
            w.cont_except(keep)?;
            return Ok(Err(format!("a thread did not reach a safe point within {timeout:?}")));
        }
        round += 1;
        ptrace::backoff(round);
    }
    bps.remove()?;
    drop(bps);
    // The switch moment: stop the world and check every thread afresh.
    w.stop(&bp_addrs)?;
    let tids: Vec<i32> = w.threads.keys().copied().filter(|x| Some(*x) != keep).collect();
    let mut arrived = Vec::new();
    let mut reread = false;
    let mut i = 0;
    while i < tids.len() {
        let tid = tids[i];
        let regs = ptrace::get_regs(tid)?;
        match classify(mem, &maps, tid, &regs, t) {
            Class::Outside => {}
            Class::At(function, point) => {
                let at = since.iter().find(|(x, _)| *x == tid).map(|(_, t)| *t);
                let at = at.or(w.stopped_at).unwrap_or_else(Instant::now);
                arrived.push(Arrived { tid, function, point, regs, woke: woke.contains(&tid), since: at });
            }
            Class::Unreadable if !reread => {
                maps = world::maps(w.pid)?;
                reread = true;
                continue;
            }
            Class::Unreadable => {
                w.cont_except(keep)?;
                return Ok(Err(format!("the stack of thread {tid} cannot be read")));
            }
            Class::Inside(mi) => {
                w.cont_except(keep)?;
                return Ok(Err(format!("thread {tid} is inside {} but not at a safe point", t.movable[mi].function)));
            }
            Class::Blocked(r) => {
                w.cont_except(keep)?;
                return Ok(Err(r));
            }
        }
        i += 1;
    }
    Ok(Ok(arrived))
}
