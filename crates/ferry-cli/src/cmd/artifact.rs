//! `ferry artifact build|sign|inspect|verify`.

use anyhow::Context;
use ferry_artifact::artifact::{self, BuildSpec, Hooks};
use ferry_artifact::keys::{PublicKey, SigningKey};
use ferry_core::{Component, Version};
use std::path::PathBuf;
use std::process::ExitCode;

/// Artifact subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Pack a directory into a `.ferry` artifact (signed when --key is given), or a patch bundle
    /// from `ferry patch build` into a live-patch artifact (--live-patch, --patches, --key).
    #[command(disable_version_flag = true)]
    Build {
        /// Directory whose files become the payload.
        #[arg(long, required_unless_present = "live_patch")]
        dir: Option<PathBuf>,
        /// Signed patch bundle (`ferry patch build`): build a live patch of the running main
        /// program instead of a release tree; --version must be `<patches>+lpN`.
        #[arg(long, conflicts_with_all = ["dir", "pre_install", "post_install"], requires_all = ["patches", "key"])]
        live_patch: Option<PathBuf>,
        /// With --live-patch: the main-program version whose running process it patches.
        #[arg(long, requires = "live_patch")]
        patches: Option<Version>,
        /// With --live-patch: public key the bundle is signed with (repeatable; default: the
        /// public half of --key).
        #[arg(long = "patch-key", requires = "live_patch")]
        patch_keys: Vec<PathBuf>,
        /// `main` (the managed program) or `agent` (the upgrader).
        #[arg(long)]
        component: Component,
        /// Semantic version of this release.
        #[arg(long)]
        version: Version,
        /// Compatible device type (repeatable; none = any).
        #[arg(long = "device-type")]
        device_types: Vec<String>,
        /// Payload path of a script run (in the new release directory) before it is activated.
        #[arg(long)]
        pre_install: Option<String>,
        /// Payload path of a script run (in the new release directory) after it is activated.
        #[arg(long)]
        post_install: Option<String>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Release signing key.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Add a signature to an artifact.
    Sign {
        /// The artifact.
        file: PathBuf,
        /// Release signing key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print an artifact's manifest and signers (no trust decision).
    Inspect {
        /// The artifact.
        file: PathBuf,
    },
    /// Verify the signature (with trusted public keys) and every payload hash.
    Verify {
        /// The artifact.
        file: PathBuf,
        /// Trusted public key (repeatable).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
}

/// Runs an artifact subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Build { dir: None, live_patch: Some(bundle), patches: Some(patches), patch_keys, component, version, device_types, out, key: Some(key), .. } => {
            anyhow::ensure!(component == Component::Main, "a live patch patches the main program: use --component main");
            let key = SigningKey::load(&key)?;
            let bundle_keys = match patch_keys.is_empty() {
                true => vec![key.public()],
                false => patch_keys.iter().map(|k| PublicKey::load(k)).collect::<Result<Vec<_>, _>>()?,
            };
            let release = ferry_livepatch::package::PatchRelease { patches, version, device_types };
            let m = ferry_livepatch::package::build_artifact(&bundle, &bundle_keys, release, &out, &key)?;
            let lp = m.live_patch.as_ref().expect("a live-patch manifest");
            println!("built {} (live patch main {} -> {}, for build {}, signed)", out.display(), lp.patches, m.version, lp.target_build_id);
        }
        Command::Build { dir, component, version, device_types, pre_install, post_install, out, key, .. } => {
            let dir = dir.context("--dir is required")?;
            let key = key.map(|k| SigningKey::load(&k)).transpose()?;
            let spec = BuildSpec { component, version, device_types, hooks: Hooks { pre_install, post_install } };
            let m = artifact::build(&dir, spec, &out, key.as_ref()).with_context(|| format!("building {}", out.display()))?;
            println!("built {} ({} {}, {} payload files{})", out.display(), m.component, m.version, m.payloads.len(), if key.is_some() { ", signed" } else { ", unsigned" });
        }
        Command::Sign { file, key } => {
            let key = SigningKey::load(&key)?;
            artifact::sign(&file, &key)?;
            println!("signed {} with key {}", file.display(), key.public().key_id());
        }
        Command::Inspect { file } => {
            let i = artifact::inspect(&file)?;
            println!("{}", serde_json::to_string_pretty(&i.manifest)?);
            println!("size: {} bytes", i.size);
            println!("signed by: {}", if i.signer_keyids.is_empty() { "nobody (unsigned)".to_string() } else { i.signer_keyids.join(", ") });
        }
        Command::Verify { file, keys } => {
            let keys = keys.iter().map(|k| PublicKey::load(k)).collect::<Result<Vec<_>, _>>()?;
            let m = artifact::verify(&file, &keys)?;
            println!("OK: {} is {} {} signed by a trusted key; {} payload files verified", file.display(), m.component, m.version, m.payloads.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
