//! `ferry keygen`.

use anyhow::Context;
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::RepoKeys;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ferry keygen`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory to create the keys in (must not contain keys already).
    #[arg(long)]
    out: PathBuf,
}

/// Writes `repo/{root,targets,snapshot,timestamp}.key` and `release.key` + `release.pub.json`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let repo = args.out.join("repo");
    if repo.join("root.key").exists() || args.out.join("release.key").exists() {
        anyhow::bail!("{} already holds keys; refusing to overwrite them (choose another --out)", args.out.display());
    }
    std::fs::create_dir_all(&repo).with_context(|| format!("creating {}", repo.display()))?;
    let keys = RepoKeys::generate();
    keys.save_dir(&repo)?;
    let release = SigningKey::generate();
    release.save(&args.out.join("release.key"))?;
    release.public().save(&args.out.join("release.pub.json"))?;
    println!("TUF repository keys: {}/{{root,targets,snapshot,timestamp}}.key", repo.display());
    println!("release signing key: {} (public: {}, keyid {})", args.out.join("release.key").display(), args.out.join("release.pub.json").display(), release.public().key_id());
    println!("Keep root.key offline in production; the server needs the repo keys and release.pub.json.");
    Ok(ExitCode::SUCCESS)
}
