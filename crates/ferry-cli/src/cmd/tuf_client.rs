//! `ferry tuf-client`: the standard TUF client command line (init, refresh, download).
//!
//! Arguments are parsed by `ferry_agent::tuf_updater::cli_main` (not clap) so that every
//! failure, usage errors included, exits with exactly 1.

use std::process::ExitCode;

/// Everything after `ferry tuf-client`, passed through unparsed.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct Args {
    /// `--metadata-dir MD init TRUSTED_ROOT` | `--metadata-url MU --metadata-dir MD refresh` |
    /// `--metadata-url MU --metadata-dir MD --target-name T… --target-dir TD --target-base-url TU download`
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

/// Runs the TUF client: exit 0 on success, exactly 1 on any failure.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let code = ferry_agent::tuf_updater::cli_main(args.argv);
    Ok(ExitCode::from(if code == 0 { 0 } else { 1 }))
}
