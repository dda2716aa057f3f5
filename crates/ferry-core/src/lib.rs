//! Pure types and decisions for Ferry.
//!
//! Everything here is deterministic: no I/O, no clock, no randomness. Time and random
//! seeds are passed in as arguments, so every decision can be tested exhaustively.

pub mod api;
pub mod firmware;
pub mod ids;
pub mod install;
pub mod policy;
pub mod push;
pub mod rollout;
pub mod schedule;
pub mod segments;
pub mod version;

pub use ids::{Component, DeviceId, IdError};
pub use version::Version;

/// Milliseconds since the Unix epoch, supplied by the caller (core never reads a clock).
pub type UnixMillis = u64;
