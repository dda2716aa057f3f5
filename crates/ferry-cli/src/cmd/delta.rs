//! `ferry delta diff|apply|bench`.

use ferry_delta::DiffOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Delta subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a patch that turns OLD into NEW.
    Diff {
        /// The file devices have.
        old: PathBuf,
        /// The file they should get.
        new: PathBuf,
        /// Output patch.
        patch: PathBuf,
        /// Generic byte diff only (no executable-aware normalisation).
        #[arg(long)]
        raw: bool,
        /// zstd level of the patch streams (1-22).
        #[arg(long, default_value_t = 22)]
        level: i32,
    },
    /// Rebuild NEW from OLD and a patch (streaming; the output hash is verified before it appears).
    Apply {
        /// The file the patch was made for (its hash is checked first).
        old: PathBuf,
        /// The patch.
        patch: PathBuf,
        /// Output file.
        out: PathBuf,
    },
    /// Compare Ferry with bsdiff, xdelta3 and zstd on executable pairs from the npm registry.
    Bench {
        /// Where downloaded pairs are cached.
        #[arg(long, default_value = "target/delta-bench-cache")]
        cache: PathBuf,
    },
}

/// Runs a delta subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Diff { old, new, patch, raw, level } => {
            let opts = DiffOptions { exec_aware: !raw, level, ..DiffOptions::default() };
            let s = ferry_delta::diff_files(&old, &new, &patch, &opts)?;
            println!(
                "{}: {} bytes = {:.3} % of the new file ({} bytes), {} regions normalised, {:.2} s",
                patch.display(),
                s.patch_size,
                100.0 * s.patch_size as f64 / s.new_size.max(1) as f64,
                s.new_size,
                s.regions_normalised,
                s.elapsed.as_secs_f64()
            );
        }
        Command::Apply { old, patch, out } => {
            let s = ferry_delta::apply_files(&old, &patch, &out)?;
            println!("{}: {} bytes written and verified in {:.2} s", out.display(), s.new_size, s.elapsed.as_secs_f64());
        }
        Command::Bench { cache } => {
            let report = ferry_delta::bench::run(&cache)?;
            print!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
