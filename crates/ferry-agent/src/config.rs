//! The agent's configuration file (`agent.toml`).

use ferry_core::DeviceId;
use ferry_core::schedule::Schedule;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything the agent needs, as read from `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the Ferry query service, e.g. `https://updates.example.com`.
    pub server_url: String,
    /// This device's identity (IMEI-like).
    pub device_id: DeviceId,
    /// Hardware/device type; releases list the types they fit.
    pub device_type: String,
    /// Shared fleet secret traded once for a per-device credential.
    pub enrollment_token: String,
    /// Directory for the agent's own state (install state, downloads, backups, TUF metadata).
    pub state_dir: PathBuf,
    /// TUF `root.json` provisioned at the factory: the anchor of all metadata trust.
    pub trusted_root: PathBuf,
    /// Public keys trusted to sign `.ferry` artifacts.
    pub release_keys: Vec<PathBuf>,
    /// When to check in.
    pub schedule: Schedule,
    /// Also upload each backup to the server (`PUT /api/v1/backups/...`).
    #[serde(default)]
    pub upload_backups: bool,
    /// Timeout of one HTTP request (connect, and each read), in seconds.
    #[serde(default = "default_http_timeout")]
    pub http_timeout_secs: u64,
    /// Retries of a failed segment within one run before the download is deferred to the next run.
    #[serde(default = "default_download_retries")]
    pub download_retries: u32,
    /// First delay between segment retries, in milliseconds; doubles on each retry (capped at 30 s).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// The main program's storage space and how to run it.
    pub main: MainConfig,
    /// The upgrader's (this agent's) storage space.
    pub upgrader: UpgraderConfig,
    /// Secure preflight of main-program releases (`[preflight]`); without it none runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<PreflightConfig>,
    /// Check-in nudges through an MQTT broker (`[push]`); without it only the schedule runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<crate::push::PushConfig>,
}

/// `[preflight]`: every main-program release is a vendor package checked before install
/// (decrypt, vendor signature, unpack, static scan; sandbox rehearsal when `service` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightConfig {
    /// Id of the main program's firmware: its signed metadata (`firmware/{id}.json`) names the
    /// vendor key and unpack rule.
    pub firmware: String,
    /// Payload path inside the release artifact holding the vendor's sealed package.
    #[serde(default = "default_package")]
    pub package: PathBuf,
    /// This device group's secret key file (X25519, `ferry-sandbox` group key format).
    pub group_key: PathBuf,
    /// Signed rule database (`<file>` and `<file>.sig`); the built-in rules when unset.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// Public keys trusted to sign the rule database (needed with `rules`).
    #[serde(default)]
    pub rule_keys: Vec<PathBuf>,
    /// The production service to rehearse against (`[preflight.service]`); static checks only
    /// when unset.
    #[serde(default)]
    pub service: Option<PreflightServiceConfig>,
}

fn default_package() -> PathBuf {
    PathBuf::from("firmware.pkg")
}

/// `[preflight.service]`: the mirroring proxy in front of production and how the new version
/// runs in its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightServiceConfig {
    /// Where clients reach the service: the agent's mirroring proxy listens here.
    pub front: std::net::SocketAddr,
    /// Where the production instance (started by `main.start`) listens.
    pub production: std::net::SocketAddr,
    /// Program and arguments of the new version, inside its unpacked tree.
    pub argv: Vec<String>,
    /// Where the new version listens inside its sandbox (its own network namespace).
    pub listen: std::net::SocketAddr,
    /// The device's data directory (the sandbox gets a copy).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// How long live traffic is mirrored, in milliseconds.
    #[serde(default = "default_mirror_ms")]
    pub mirror_period_ms: u64,
    /// Fewest mirrored requests to judge by.
    #[serde(default = "default_min_mirrored")]
    pub min_mirrored: u64,
    /// How long the new version may take to serve in its sandbox, in milliseconds.
    #[serde(default = "default_startup_ms")]
    pub startup_timeout_ms: u64,
}

fn default_mirror_ms() -> u64 {
    5_000
}
fn default_min_mirrored() -> u64 {
    10
}
fn default_startup_ms() -> u64 {
    10_000
}

/// The main program: its storage space and its lifecycle commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MainConfig {
    /// Its storage space: holds `releases/<version>/` and the `current` symlink.
    pub dir: PathBuf,
    /// Command (run by `sh -c` in the current release directory, in its own session) that starts it.
    pub start: String,
    /// Command (run by `sh -c` in the current release directory) that stops it.
    pub stop: String,
    /// Command (run by `sh -c` in the current release directory); exit status 0 means healthy.
    pub health_check: String,
    /// Time limit of one health-check (and stop) command, in seconds.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_secs: u64,
    /// How many times the health check is tried before the release is declared unhealthy.
    #[serde(default = "default_health_retries")]
    pub health_retries: u32,
    /// Pause between health-check tries, in milliseconds.
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
    /// Live patching of the running program (`[main.live_patch]`); without it live-patch
    /// releases are refused and reported as failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_patch: Option<LivePatchConfig>,
}

/// How the agent finds and live-patches the running main program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePatchConfig {
    /// File holding the running main program's process id (written by its start command).
    pub pid_file: PathBuf,
    /// Public keys trusted to sign patch bundles (empty: the `release_keys`).
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// After the health check passes, how long the patched process is watched (alive, health
    /// check every `monitor_interval_ms`) before the patch is confirmed, in seconds.
    #[serde(default = "default_monitor_secs")]
    pub monitor_secs: u64,
    /// Pause between health checks while monitoring, in milliseconds.
    #[serde(default = "default_health_interval_ms")]
    pub monitor_interval_ms: u64,
}

fn default_monitor_secs() -> u64 {
    5
}

/// The upgrader (this agent): its storage space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgraderConfig {
    /// Its storage space: holds `releases/<version>/ferry` and the `current` symlink.
    pub dir: PathBuf,
    /// Time limit of the trial run (`<new>/ferry agent self-test`), in seconds.
    #[serde(default = "default_self_test_timeout")]
    pub self_test_timeout_secs: u64,
}

fn default_http_timeout() -> u64 {
    30
}
fn default_download_retries() -> u32 {
    8
}
fn default_retry_backoff_ms() -> u64 {
    500
}
fn default_health_timeout() -> u64 {
    30
}
fn default_health_retries() -> u32 {
    3
}
fn default_health_interval_ms() -> u64 {
    1000
}
fn default_self_test_timeout() -> u64 {
    30
}

/// A configuration that cannot be used; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read agent config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or unknown, missing or mistyped keys.
    #[error("agent config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error; names the key and the line.
        message: String,
    },
    /// A key has a value that parses but cannot work.
    #[error("agent config {path}: key `{key}`: {message}")]
    Invalid {
        /// The file (`<in-process>` for configs built in code).
        path: PathBuf,
        /// The offending key.
        key: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

impl AgentConfig {
    /// Reads and validates `agent.toml`; errors name the file and the offending key.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates TOML text; `origin` names its source in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate_at(origin)?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at(Path::new("<in-process>"))
    }

    fn validate_at(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_path_buf(),
            key,
            message,
        };
        let url = self.server_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "server_url",
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        let t = &self.device_type;
        if t.is_empty()
            || t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "device_type",
                format!(
                    "'{t}' is invalid: use 1-64 characters from A-Z a-z 0-9 . _ - (releases list the device types they fit)"
                ),
            ));
        }
        if self.enrollment_token.trim().is_empty() {
            return Err(invalid(
                "enrollment_token",
                "must not be empty (ask the operator for the fleet's enrollment token)".into(),
            ));
        }
        if self.release_keys.is_empty() {
            return Err(invalid(
                "release_keys",
                "list at least one public key file trusted to sign .ferry artifacts".into(),
            ));
        }
        if let Err(e) = self.schedule.validate() {
            return Err(invalid("schedule", e.to_string()));
        }
        if let Some(push) = &self.push
            && let Err(e) = push.validate()
        {
            return Err(invalid("push", e.to_string()));
        }
        if self.http_timeout_secs == 0 {
            return Err(invalid(
                "http_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        if self.main.health_timeout_secs == 0 {
            return Err(invalid(
                "main.health_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        if let Some(lp) = &self.main.live_patch
            && lp.pid_file.as_os_str().is_empty()
        {
            return Err(invalid(
                "main.live_patch.pid_file",
                "must name the file holding the main program's process id".into(),
            ));
        }
        if let Some(pf) = &self.preflight {
            if !ferry_core::firmware::valid_id(&pf.firmware) {
                return Err(invalid(
                    "preflight.firmware",
                    format!("'{}' is not a firmware id (a-z 0-9 . _ -)", pf.firmware),
                ));
            }
            if pf.rules.is_some() && pf.rule_keys.is_empty() {
                return Err(invalid(
                    "preflight.rule_keys",
                    "list the public keys trusted to sign `preflight.rules`".into(),
                ));
            }
            if pf.service.as_ref().is_some_and(|s| s.argv.is_empty()) {
                return Err(invalid(
                    "preflight.service.argv",
                    "name the program (inside the firmware tree) to run in the sandbox".into(),
                ));
            }
        }
        if self.upgrader.self_test_timeout_secs == 0 {
            return Err(invalid(
                "upgrader.self_test_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        for (key, cmd) in [
            ("main.start", &self.main.start),
            ("main.stop", &self.main.stop),
            ("main.health_check", &self.main.health_check),
        ] {
            if cmd.trim().is_empty() {
                return Err(invalid(key, "must be a shell command".into()));
            }
        }
        for (key, dir) in [
            ("state_dir", &self.state_dir),
            ("main.dir", &self.main.dir),
            ("upgrader.dir", &self.upgrader.dir),
        ] {
            if dir.as_os_str().is_empty() {
                return Err(invalid(key, "must be a directory path".into()));
            }
        }
        let dirs = [
            ("state_dir", &self.state_dir),
            ("main.dir", &self.main.dir),
            ("upgrader.dir", &self.upgrader.dir),
        ];
        for (i, (ka, a)) in dirs.iter().enumerate() {
            for (kb, b) in &dirs[i + 1..] {
                if a == b {
                    return Err(invalid(
                        kb,
                        format!(
                            "is the same directory as `{ka}`; each storage space needs its own directory"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A minimal valid `agent.toml`, for tests here and in other modules.
#[cfg(test)]
pub(crate) const TEST_CONFIG: &str = r#"
server_url = "http://127.0.0.1:8080"
device_id = "356938035643809"
device_type = "gw-arm64"
enrollment_token = "fleet-secret-0123456789"
state_dir = "/var/lib/ferry-agent"
trusted_root = "/etc/ferry/root.json"
release_keys = ["/etc/ferry/release.pub"]
schedule = { kind = "interval", every_secs = 300, jitter_secs = 30 }

[main]
dir = "/opt/app"
start = "./start.sh"
stop = "./stop.sh"
health_check = "./health.sh"

[upgrader]
dir = "/opt/ferry"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = TEST_CONFIG;


    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml");
        let c = AgentConfig::from_toml_file(&path).unwrap();
        assert_eq!(c.main.dir, Path::new("/opt/app"));
        assert!(c.upload_backups);
    }

    #[test]
    fn parses_a_complete_file_with_defaults() {
        let c = AgentConfig::from_toml_str(GOOD, Path::new("agent.toml")).unwrap();
        assert_eq!(c.device_id.as_str(), "356938035643809");
        assert_eq!(
            c.schedule,
            Schedule::Interval {
                every_secs: 300,
                jitter_secs: 30
            }
        );
        assert_eq!(c.http_timeout_secs, 30);
        assert_eq!(c.main.health_retries, 3);
        assert!(!c.upload_backups);
    }

    #[test]
    fn live_patch_section_parses_with_defaults() {
        let text = GOOD.replace(
            "[upgrader]",
            "[main.live_patch]\npid_file = \"/run/app.pid\"\n\n[upgrader]",
        );
        let c = AgentConfig::from_toml_str(&text, Path::new("agent.toml")).unwrap();
        let lp = c.main.live_patch.unwrap();
        assert_eq!(lp.pid_file, Path::new("/run/app.pid"));
        assert!(lp.keys.is_empty());
        assert_eq!(lp.monitor_secs, 5);
        assert_eq!(AgentConfig::from_toml_str(GOOD, Path::new("a")).unwrap().main.live_patch, None);
    }

    #[test]
    fn missing_key_is_named_with_the_file() {
        let text = GOOD.replace("device_type = \"gw-arm64\"\n", "");
        let err = AgentConfig::from_toml_str(&text, Path::new("/etc/ferry/agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/ferry/agent.toml"), "{err}");
        assert!(err.contains("device_type"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let text = GOOD.replace("[upgrader]", "helth_check = \"x\"\n[upgrader]");
        let err = AgentConfig::from_toml_str(&text, Path::new("agent.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("helth_check"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                GOOD.replace("http://127.0.0.1:8080", "127.0.0.1:8080"),
                "server_url",
            ),
            (
                GOOD.replace("every_secs = 300", "every_secs = 0"),
                "schedule",
            ),
            (
                GOOD.replace("dir = \"/opt/ferry\"", "dir = \"/opt/app\""),
                "upgrader.dir",
            ),
            (
                GOOD.replace("[\"/etc/ferry/release.pub\"]", "[]"),
                "release_keys",
            ),
            (
                GOOD.replace("device_id = \"356938035643809\"", "device_id = \"../x\""),
                "device id",
            ),
            (GOOD.replace("gw-arm64", "gw arm64"), "device_type"),
        ];
        for (text, key) in cases {
            let err = AgentConfig::from_toml_str(&text, Path::new("agent.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "expected `{key}` in: {err}");
            assert!(err.contains("agent.toml"), "{err}");
        }
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = AgentConfig::from_toml_file("/nonexistent/agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/agent.toml"), "{err}");
    }
}
