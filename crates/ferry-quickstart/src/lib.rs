//! `ferry quickstart`: one command that shows the whole update loop working for real.
//!
//! It starts a query server and a separate file service (SQLite + local files) on loopback,
//! creates TUF repository keys and a release-signing key, builds and signs two releases of a
//! small demo program and of the agent, provisions several devices, then runs each device's
//! agent as a real `ferry agent --once` process talking HTTP to the servers. One device's link
//! drops mid-download. At the end it checks every device's installed files and the server's
//! archive against what must have happened, and prints a table.

pub mod demo_app;
pub mod flaky_link;
pub mod fleet;
mod provision;
mod report;
mod runner;

pub use report::{DeviceResult, Summary};
pub use runner::{Options, run};
