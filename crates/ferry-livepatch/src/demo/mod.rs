//! `ferry demo livepatch`: the demo server, its client load and the apply/rollback benchmark.

mod build;
mod run;
mod server;

pub use build::{CFLAGS, DemoBinaries, SERVER_V1_C, SERVER_V2_C, build_demo};
pub use run::{DemoOptions, DemoReport, patch_options, run};
pub use server::{DemoServer, field, request};
