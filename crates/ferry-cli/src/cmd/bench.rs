//! `ferry bench …`: benchmarks that print figures (timing never decides a test).

use std::process::ExitCode;

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Secure preflight: sandbox start to first served request (namespace and QEMU backends),
    /// mirroring proxy added latency p50/p99 at a fixed rate, requests lost in a switchover.
    Preflight {
        /// Sandbox starts per backend.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Client requests per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// Seconds per load phase.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
}

/// Runs a benchmark; exits non-zero if a switchover lost a request.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Preflight { rounds, rate, seconds } => {
            anyhow::ensure!(rate > 0 && seconds > 0, "--rate and --seconds must be at least 1");
            let opts = ferry_sandbox::bench::BenchOptions { rounds, rate, seconds };
            let report = super::runtime()?.block_on(ferry_sandbox::bench::run(&opts));
            print!("{report}");
            Ok(if report.proxy.switch_lost == 0 && report.proxy.error.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
