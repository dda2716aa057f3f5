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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
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
