//! `ferry demo preflight`: a good update goes through the whole secure preflight under client
//! load and is switched over; a malicious one is caught and alerted. Prints each step.

use std::process::ExitCode;

/// Runs the demo and prints its report. Exits non-zero unless the malicious update was caught
/// and alerted and the good one was switched over without a failed client request.
pub fn run() -> anyhow::Result<ExitCode> {
    let opts = ferry_sandbox::demo::DemoOptions::default();
    let report = ferry_sandbox::demo::run(&opts)
        .map_err(|e| anyhow::anyhow!("the preflight demo could not run: {e}"))?;
    print!("{report}");
    if report.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
