//! Executable-aware normalisation (the Courgette/Zucchini idea, done as a reversible view).
//!
//! Code moves between releases, and every relative branch, call and PC-relative address and
//! every absolute pointer into moved code or data changes with it: thousands of changed bytes
//! for one edited function. Before matching, the differ rewrites each such reference in the old
//! file to the value it is predicted to have in the new file, using an address map old → new
//! derived from a first matching pass. Correct predictions make the add-diff zero.
//!
//! The transform is applied to the *old* file only, so apply never has to invert anything: it
//! rebuilds the same normalised view of the old file from the plan stored in the patch (regions,
//! image range, address map), decoding the raw old bytes exactly as the differ did.

pub mod arm;
pub mod build;
pub mod elf;
pub mod plan;
pub mod raw;
pub mod rewrite;
pub mod thumb;

pub use plan::{AddressMap, Plan, Region, RegionKind};
