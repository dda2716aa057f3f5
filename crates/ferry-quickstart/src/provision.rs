//! Keys, servers, releases and device directories for the quickstart.

use crate::demo_app;
use crate::fleet::{AGENT_BEFORE, AGENT_NEW, DeviceSpec, MAIN_BASE, MAIN_LEGACY, MAIN_NEW, MAIN_NEXT, TAMPERED_FILE};
use anyhow::{Context, Result, bail};
use ferry_artifact::artifact::{BuildSpec, Hooks, build};
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::RepoKeys;
use ferry_core::Component;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths and secrets of a provisioned quickstart.
pub struct Layout {
    /// Root of everything.
    pub root: PathBuf,
    /// TUF repository keys.
    pub repo_keys_dir: PathBuf,
    /// Release-signing private key.
    pub release_key: PathBuf,
    /// Release-signing public key (trusted by server and devices).
    pub release_pub: PathBuf,
    /// Operator bearer token.
    pub operator_token: String,
    /// Fleet enrollment token.
    pub enrollment_token: String,
}

fn token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Creates keys and secrets under `root`.
pub fn keys(root: &Path) -> Result<Layout> {
    let repo_keys_dir = root.join("keys/repo");
    fs::create_dir_all(&repo_keys_dir)?;
    RepoKeys::generate().save_dir(&repo_keys_dir).context("saving TUF repository keys")?;
    let release = SigningKey::generate();
    let release_key = root.join("keys/release.key");
    let release_pub = root.join("keys/release.pub.json");
    release.save(&release_key).context("saving release key")?;
    release.public().save(&release_pub).context("saving release public key")?;
    Ok(Layout {
        root: root.to_path_buf(),
        repo_keys_dir,
        release_key,
        release_pub,
        operator_token: token(),
        enrollment_token: token(),
    })
}

/// Writes a server config for `role` and returns its path.
pub fn server_toml(l: &Layout, role: &str, listen: &str, public_url: &str, files_url: &str) -> Result<PathBuf> {
    let data = l.root.join("server");
    fs::create_dir_all(&data)?;
    let text = format!(
        r#"listen = "{listen}"
role = "{role}"
data_dir = "{data}"
keys_dir = "{keys}"
release_keys = ["{pubkey}"]
operator_token = "{op}"
enrollment_token = "{en}"
public_url = "{public_url}"
files_url = "{files_url}"
default_chunk_size = {chunk}
"#,
        chunk = crate::fleet::DEFAULT_CHUNK,
        data = data.display(),
        keys = l.repo_keys_dir.display(),
        pubkey = l.release_pub.display(),
        op = l.operator_token,
        en = l.enrollment_token,
    );
    let path = l.root.join(format!("server-{role}.toml"));
    fs::write(&path, text)?;
    Ok(path)
}

/// The signed release artifacts of the quickstart.
pub struct Artifacts {
    /// Main-program releases by version: the legacy factory version (never uploaded), the base,
    /// the first round's release and the second round's.
    pub main: BTreeMap<&'static str, PathBuf>,
    /// The factory agent.
    pub agent_before: PathBuf,
    /// The new agent (for `gateway-v2`).
    pub agent_new: PathBuf,
}

impl Artifacts {
    /// The main-program artifact of `version`.
    pub fn main(&self, version: &str) -> Result<&Path> {
        self.main.get(version).map(PathBuf::as_path).with_context(|| format!("no demo-app {version} artifact was built"))
    }
}

/// Builds and signs every release artifact the quickstart uses.
pub fn artifacts(l: &Layout, ferry_bin: &Path) -> Result<Artifacts> {
    let key = SigningKey::load(&l.release_key)?;
    let src = l.root.join("src");
    let out = l.root.join("releases");
    fs::create_dir_all(&out)?;
    let mut main = BTreeMap::new();
    for (version, schema) in [(MAIN_LEGACY, None), (MAIN_BASE, None), (MAIN_NEW, Some(2)), (MAIN_NEXT, Some(2))] {
        let dir = src.join(format!("demo-app-{version}"));
        demo_app::write_release(&dir, version, schema)?;
        let path = out.join(format!("demo-app-{version}.ferry"));
        let spec = BuildSpec {
            component: Component::Main,
            version: version.parse()?,
            device_types: vec![],
            hooks: Hooks::default(),
        };
        build(&dir, spec, &path, Some(&key)).with_context(|| format!("building demo-app {version}"))?;
        main.insert(version, path);
    }
    let mut agents = Vec::new();
    for version in [AGENT_BEFORE, AGENT_NEW] {
        let dir = src.join(format!("agent-{version}"));
        fs::create_dir_all(&dir)?;
        fs::copy(ferry_bin, dir.join("ferry")).with_context(|| format!("copying {}", ferry_bin.display()))?;
        let path = out.join(format!("agent-{version}.ferry"));
        let spec = BuildSpec {
            component: Component::Agent,
            version: version.parse()?,
            // The factory agent runs on every type; the new agent is for gateway-v2 only.
            device_types: if version == AGENT_NEW { vec!["gateway-v2".into()] } else { vec![] },
            hooks: Hooks::default(),
        };
        build(&dir, spec, &path, Some(&key)).with_context(|| format!("building agent {version}"))?;
        agents.push(path);
    }
    let agent_new = agents.pop().expect("two agents");
    let agent_before = agents.pop().expect("two agents");
    Ok(Artifacts { main, agent_before, agent_new })
}

/// What was changed on a rooted device before its run.
#[derive(Debug, Clone)]
pub struct Tampering {
    /// Path of the changed file inside the release directory.
    pub path: String,
    /// sha256 of the genuine file (what the release-signed manifest lists).
    pub genuine_sha256: String,
    /// sha256 of the file as it is on the device now.
    pub tampered_sha256: String,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// "Roots" a device: overwrites a few bytes of [`TAMPERED_FILE`] of its running main program
/// (through `current`, as someone with a shell on the device would).
pub fn tamper(dirs: &DeviceDirs) -> Result<Tampering> {
    let path = dirs.main_dir.join("current").join(TAMPERED_FILE);
    let genuine = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut changed = genuine.clone();
    let patch = b"patched on the device by its owner";
    let at = 4096.min(changed.len().saturating_sub(patch.len()));
    changed[at..at + patch.len()].copy_from_slice(patch);
    fs::write(&path, &changed).with_context(|| format!("tampering with {}", path.display()))?;
    Ok(Tampering { path: TAMPERED_FILE.to_string(), genuine_sha256: sha256_hex(&genuine), tampered_sha256: sha256_hex(&changed) })
}

/// A provisioned device on disk.
#[derive(Debug, Clone)]
pub struct DeviceDirs {
    /// The device's agent.toml.
    pub config: PathBuf,
    /// The main program's storage space.
    pub main_dir: PathBuf,
    /// The upgrader's storage space.
    pub upgrader_dir: PathBuf,
    /// The agent's state directory (install state, delta-failure records).
    pub state_dir: PathBuf,
}

impl DeviceDirs {
    /// The agent binary the device runs (its upgrader storage's active release).
    pub fn agent_bin(&self) -> PathBuf {
        self.upgrader_dir.join("current/ferry")
    }
    /// The main program's pid, if it runs.
    pub fn main_pid(&self) -> Option<u32> {
        fs::read_to_string(self.main_dir.join("data/app.pid")).ok()?.trim().parse().ok()
    }
    /// The active main version as installed on disk.
    pub fn main_version_on_disk(&self) -> Option<String> {
        Some(fs::read_to_string(self.main_dir.join("current/VERSION")).ok()?.trim().to_string())
    }
    /// The active main release's `assets.bin`.
    pub fn main_assets(&self) -> Option<Vec<u8>> {
        fs::read(self.main_dir.join("current").join(TAMPERED_FILE)).ok()
    }
    /// How many delta-failure records the agent keeps in its state directory.
    pub fn local_delta_failures(&self) -> Result<usize> {
        let path = self.state_dir.join("delta-failures.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<serde_json::Value> =
                    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
                Ok(list.len())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    /// Runs the main program's stop script (cleanup).
    pub fn stop_main(&self) {
        let _ = Command::new(self.main_dir.join("current/stop.sh")).status();
    }
}

/// Lays out one device: config, data, factory install of agent 1.0.0 and its main version,
/// enrollment with the server, and the main program started.
pub fn device(l: &Layout, spec: &DeviceSpec, server_url: &str, ferry_bin: &Path, artifacts: &Artifacts) -> Result<DeviceDirs> {
    let dir = l.root.join("devices").join(spec.id);
    let dirs = DeviceDirs {
        config: dir.join("agent.toml"),
        main_dir: dir.join("main"),
        upgrader_dir: dir.join("upgrader"),
        state_dir: dir.join("state"),
    };
    fs::create_dir_all(dirs.main_dir.join("data"))?;
    fs::create_dir_all(&dirs.upgrader_dir)?;
    fs::write(dirs.main_dir.join("data/config"), format!("schema={}\n", spec.config_schema))?;
    let trusted_root = l.repo_keys_dir.parent().unwrap().join("root.json");
    let config = format!(
        r#"server_url = "{server_url}"
device_id = "{id}"
device_type = "{ty}"
enrollment_token = "{en}"
state_dir = "{state}"
trusted_root = "{root}"
release_keys = ["{pubkey}"]
upload_backups = true
http_timeout_secs = 10

[schedule]
kind = "interval"
every_secs = 3600
jitter_secs = 300

[main]
dir = "{main}"
start = "./start.sh"
stop = "./stop.sh"
health_check = "./health.sh"
health_timeout_secs = 10
health_retries = 3

[upgrader]
dir = "{upgrader}"
"#,
        id = spec.id,
        ty = spec.device_type,
        en = l.enrollment_token,
        state = dirs.state_dir.display(),
        root = trusted_root.display(),
        pubkey = l.release_pub.display(),
        main = dirs.main_dir.display(),
        upgrader = dirs.upgrader_dir.display(),
    );
    fs::write(&dirs.config, config)?;
    let main_artifact = artifacts.main(spec.main_before)?;
    for (component, artifact) in [("agent", artifacts.agent_before.as_path()), ("main", main_artifact)] {
        let out = Command::new(ferry_bin)
            .args(["agent", "--config"])
            .arg(&dirs.config)
            .args(["bootstrap", "--component", component, "--artifact"])
            .arg(artifact)
            .output()?;
        if !out.status.success() {
            bail!("factory install of {component} on {} failed: {}", spec.id, String::from_utf8_lossy(&out.stderr));
        }
    }
    let out = Command::new(ferry_bin).args(["agent", "--config"]).arg(&dirs.config).arg("enroll").output()?;
    if !out.status.success() {
        bail!("enrolling {} failed: {}", spec.id, String::from_utf8_lossy(&out.stderr));
    }
    let started = Command::new(dirs.main_dir.join("current/start.sh")).status()?;
    if !started.success() {
        bail!("demo app on {} did not start", spec.id);
    }
    Ok(dirs)
}
