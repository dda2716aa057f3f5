//! `ferry patch build|apply|rollback`: live patching of a running process.

use ferry_artifact::keys::{PublicKey, SigningKey};
use ferry_livepatch::{ApplyOptions, BuildOptions, Checkpoint, PatchBundle, RollbackOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Live-patch subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Compare two builds of a program and write a signed patch bundle.
    Build {
        /// The running build (ELF, unstripped).
        #[arg(long)]
        old: PathBuf,
        /// The fixed build (ELF, unstripped).
        #[arg(long)]
        new: PathBuf,
        /// Output bundle.
        #[arg(long)]
        out: PathBuf,
        /// Signing key (ed25519, as written by `ferry keygen`).
        #[arg(long)]
        key: PathBuf,
        /// A callee that retries on EINTR (e.g. `accept`), so a thread blocked in it may be woken to reach a safe point (repeatable).
        #[arg(long = "interruptible")]
        interruptible_calls: Vec<String>,
    },
    /// Apply a signed patch to a running process; the checkpoint is kept for `rollback`.
    Apply {
        /// Process to patch.
        #[arg(long)]
        pid: i32,
        /// Patch bundle.
        patch: PathBuf,
        /// Public key trusted to sign patches.
        #[arg(long)]
        key: PathBuf,
        /// Where to keep the checkpoint (default: a per-pid file in the temp dir).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Restore a patched process to its checkpoint.
    Rollback {
        /// Patched process.
        #[arg(long)]
        pid: i32,
        /// Checkpoint written by `apply` (default: the per-pid file in the temp dir).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

/// Runs a patch subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Build { old, new, out, key, interruptible_calls } => {
            let key = SigningKey::load(&key)?;
            let bundle = ferry_livepatch::build_patch(&old, &new, &BuildOptions { interruptible_calls, ..Default::default() })?;
            bundle.save(&out, &key)?;
            println!("wrote patch {} to {}", bundle.id(), out.display());
        }
        Command::Apply { pid, patch, key, checkpoint } => {
            let bundle = PatchBundle::load(&patch, &PublicKey::load(&key)?)?;
            let report = ferry_livepatch::apply(pid, &bundle, &ApplyOptions::default())?;
            let path = checkpoint.unwrap_or_else(|| Checkpoint::default_path(pid));
            report.checkpoint.save(&path)?;
            println!("applied patch {} to process {pid}: pause {:?}; checkpoint {}", bundle.id(), report.pause, path.display());
        }
        Command::Rollback { pid, checkpoint } => {
            let path = checkpoint.unwrap_or_else(|| Checkpoint::default_path(pid));
            let cp = Checkpoint::load(&path)?;
            let report = ferry_livepatch::rollback(pid, &cp, &RollbackOptions::default())?;
            println!("rolled back process {pid}: pause {:?}", report.pause);
        }
    }
    Ok(ExitCode::SUCCESS)
}
