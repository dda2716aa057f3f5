//! `ferry quickstart`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ferry quickstart`.
#[derive(clap::Args)]
pub struct Args {
    /// Keep all files (keys, server data, devices) in this directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Runs the quickstart; exits non-zero if any device ends in the wrong state.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::init_tracing("error");
    let opts = ferry_quickstart::Options {
        ferry_bin: std::env::current_exe()?,
        work_dir: args.keep,
        progress: !args.no_progress,
    };
    println!("Ferry quickstart: query server + file service on loopback (SQLite, local files), signed releases, 7 devices as real agent processes, two release rounds.");
    let summary = super::runtime()?.block_on(ferry_quickstart::run(opts))?;
    println!();
    print!("{summary}");
    Ok(if summary.all_correct() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
