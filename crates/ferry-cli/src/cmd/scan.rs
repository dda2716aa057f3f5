//! `ferry scan`.

use ferry_sandbox::scan::Verdict;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ferry scan`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory, file or `.ferry` artifact to scan.
    path: PathBuf,
    /// Signed rule database (default: the built-in one).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Scans and prints the report; exits 1 when the policy blocks.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = ferry_sandbox::scan::scan_command(&args.path, args.rules.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.verdict == Verdict::Block { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
