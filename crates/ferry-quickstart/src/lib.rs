//! `ferry quickstart`: one command that shows the whole update loop working for real.
//!
//! It starts a query server and a separate file service (SQLite + local files) on loopback,
//! creates TUF repository keys and a release-signing key, builds and signs releases of a small
//! demo program (1.0.0, 1.1.0, 1.2.0: small edits of one asset pack, so the server builds small
//! deltas) and of the agent, provisions several devices, then runs each device's agent as a real
//! `ferry agent --once` process talking HTTP to the servers. One device's link drops mid-download;
//! one device is rooted (a file of its main program changed), so its delta fails pre-verification
//! and it falls back to the full package. A second round uploads main 1.2.0 and runs the devices
//! on 1.1.0 again, as deltas. At the end it checks every device's installed files and the
//! server's archive against what must have happened, and prints a table per round.

pub mod demo_app;
pub mod flaky_link;
pub mod fleet;
mod provision;
mod report;
mod runner;

pub use report::{DeviceResult, Summary};
pub use runner::{Options, run};
