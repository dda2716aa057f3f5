//! Live patching of running multithreaded x86-64 Linux processes.
//!
//! * [`build_patch`] compares two builds of a program (compiled with `-ffunction-sections
//!   -fdata-sections -g`), finds changed functions and statics and writes a signed
//!   [`PatchBundle`] with the new code, its relocations, the static-variable transforms and the
//!   semantic mapping table of safe update points.
//! * [`apply()`] injects it into a running process with ptrace, moving threads that are inside a
//!   changed function at a safe point, and returns a [`Checkpoint`].
//! * [`rollback()`] restores the checkpoint; [`monitor()`] watches a patched process.

mod apply;
mod build;
mod bundle;
mod checkpoint;
mod diff;
mod dwarf;
mod elf;
mod error;
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
