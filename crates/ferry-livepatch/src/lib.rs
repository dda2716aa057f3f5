//! Live patching of running multithreaded x86-64 Linux processes.
//!
//! * [`build_patch`] compares two builds of a program (compiled with `-ffunction-sections
//!   -fdata-sections -g`), finds changed functions and statics and writes a signed
//!   [`PatchBundle`] with the new code, its relocations, the static-variable transforms and the
//!   semantic mapping table of safe update points.
//! * [`apply()`] injects it into a running process with ptrace, moving threads that are inside a
//!   changed function at a safe point, and returns a [`Checkpoint`].
//! * [`rollback()`] restores the checkpoint; [`monitor()`] watches a patched process and
//!   [`watch_or_rollback()`] rolls back when the process dies or a health probe fails.
//!
//! # Keeping the stop-the-world pause short
//!
//! Apply and rollback do everything that does not need the threads stopped while they run: the
//! new code and data blocks are mapped (system calls injected into the leader alone), written and
//! relocated; the bytes the entry jumps replace are read; every thread is seized
//! (`PTRACE_SEIZE` does not stop it). Then, per attempt:
//!
//! 1. **Pre-scan, one thread at a time**: each thread is interrupted alone, its pc and the
//!    return addresses on its stack are checked against the changed functions, and it runs on.
//!    A thread inside a function with a mapping (the main loop that never returns) is held: if it
//!    is blocked in a call the author declared interruptible, the call is ended with EINTR.
//! 2. **Run to the safe point while the others run**: int3s are planted at the mapping's safe
//!    points (all threads are seized, so whichever thread hits one stops instead of dying) and
//!    the held threads continue until they stop there, within `safe_point_timeout`; the int3s are
//!    removed.
//! 3. **The pause**: every running thread is interrupted first, then all the stops are collected
//!    (threads created meanwhile are seized and stopped too), and every thread is checked afresh
//!    — pc and the return addresses on its whole scanned stack, not the pre-scan's answer. A
//!    thread inside changed code, or inside a mapped function but not exactly at a safe point,
//!    fails the attempt (every thread runs on, retry after back-off). Otherwise statics are
//!    transformed, entries redirected, moved threads set up, and every thread except those running
//!    a helper is detached: that window is [`ApplyReport::pause`]. [`ApplyReport::pause_total`]
//!    adds the windows of failed attempts, [`ApplyReport::mover_pause`] is how long the moved
//!    thread itself was held.
//!
//! While the world is stopped the patcher thread runs at SCHED_FIFO when it may
//! ([`ApplyOptions::realtime`]): otherwise the threads its own interrupts and detaches wake
//! preempt it mid-pause. The priority is dropped while stops are collected, because a stopping
//! thread may need the patcher's CPU; that collection is the one part of the pause that depends
//! on the machine's load (every thread must be scheduled once to enter its stop).
//!
//! # Moving a thread without a helper
//!
//! [`BuildOptions::restart_at_entry`] names functions (such as a loop that is its whole body)
//! whose state at every matched call site equals their entry state with the same arguments. A
//! thread there is moved by restarting the new version at its entry with the arguments read
//! from the old frame by name; the build keeps only the call sites where every variable live in
//! the old frame is an argument of the new function (and the reverse for rollback), so nothing
//! live is dropped. The declaration itself is the author's claim about the loop and cannot be
//! checked by the tool: code before the loop in the function would run again.
//!
//! AArch64 is not implemented; `AARCH64.md` in the crate describes how branches, breakpoints,
//! register transfer and I-cache maintenance map to it.

mod apply;
mod build;
mod bundle;
mod checkpoint;
mod diff;
mod dwarf;
mod elf;
mod error;
pub mod package;
mod ptrace;
mod rollback;
mod safepoint;
mod transfer;
mod world;

pub use build::{BuildOptions, HELPER_PREFIX, build_patch};
pub use apply::{ApplyOptions, ApplyReport, MovedThread, apply};
pub use bundle::*;
pub use checkpoint::{Checkpoint, EntryPatch, StaticState};
pub use elf::build_id_of;
pub use rollback::{MonitorReport, RollbackOptions, RollbackReport, monitor, rollback, watch_or_rollback};
pub use error::{Error, Result};
pub mod demo;
