//! `ferry demo …`: single capabilities shown end to end, with their figures.

use std::process::ExitCode;

/// Demo subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// A good update goes through the secure preflight under client load; a malicious one is caught and alerted.
    Preflight,
    /// Patch a running multithreaded server under client load, roll back, and measure pauses.
    Livepatch {
        /// Apply/rollback cycles to measure.
        #[arg(long, default_value_t = 50)]
        cycles: usize,
    },
}

/// Runs a demo.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Preflight => return super::demo_preflight::run(),
        Command::Livepatch { cycles } => {
            let opts = ferry_livepatch::demo::DemoOptions { cycles, ..Default::default() };
            let report = ferry_livepatch::demo::run(&opts)?;
            print!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
