//! Server configuration (`server.toml`).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Which services one server process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Query service, file service, TUF metadata and management API in one process.
    #[default]
    All,
    /// Everything except the file service (`/files` is absent).
    Query,
    /// Only the file service (`/files`) and `/healthz`; shares the registry for token checks.
    Files,
}

impl Role {
    /// Whether this role answers device check-ins, TUF metadata and the management API.
    pub fn serves_queries(self) -> bool {
        matches!(self, Role::All | Role::Query)
    }
    /// Whether this role serves artifact bytes under `/files`.
    pub fn serves_files(self) -> bool {
        matches!(self, Role::All | Role::Files)
    }
}

/// Everything a Ferry server needs to run, as read from `server.toml`.
///
/// Only `operator_token` and `enrollment_token` are required; every other key has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `0.0.0.0:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Services this process runs. Default `all`.
    #[serde(default)]
    pub role: Role,
    /// Directory for the embedded defaults (SQLite database, artifacts, keys, temp files).
    /// Default `/var/lib/ferry`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Registry database URL. Default `sqlite://<data_dir>/ferry.db`.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// Artifact store URL (`file:///abs/dir` or `s3://…`). Default `file://<data_dir>/artifacts`.
    #[serde(default)]
    pub artifact_store_url: Option<String>,
    /// Directory holding the TUF repository keys (root, targets, snapshot, timestamp).
    /// Default `<data_dir>/keys`; generated there on first start when the directory does not exist.
    #[serde(default)]
    pub keys_dir: Option<PathBuf>,
    /// Public keys trusted to sign uploaded `.ferry` artifacts. Default none (uploads are refused).
    #[serde(default)]
    pub release_keys: Vec<PathBuf>,
    /// Bearer token of the management API (required, at least 16 characters).
    pub operator_token: String,
    /// Shared fleet secret devices trade for their own credential (required, at least 16 characters).
    pub enrollment_token: String,
    /// How devices reach this query service, e.g. `https://updates.example.com`.
    /// Default `http://<listen>` (for [`crate::serve`]: the listener's bound address).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Base URL of the file service. Default `public_url`.
    #[serde(default)]
    pub files_url: Option<String>,
    /// Download segment size for devices whose group sets none. Default 4096.
    #[serde(default = "default_chunk_size")]
    pub default_chunk_size: u32,
    /// Largest release artifact accepted, in bytes. Default 256 MiB.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Largest device backup accepted, in bytes. Default 64 MiB.
    #[serde(default = "default_max_backup")]
    pub max_backup_bytes: u64,
    /// Largest JSON request body accepted, in bytes. Default 64 KiB.
    #[serde(default = "default_max_json")]
    pub max_json_bytes: u64,
    /// Push through an MQTT broker (`[push]`); without it devices learn of releases at their
    /// scheduled check-in only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushConfig>,
}

/// `[push]`: the MQTT broker the server publishes check-in nudges to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Broker URL, `mqtt://HOST[:PORT]`.
    pub mqtt_url: String,
    /// Topic prefix shared with the agents. Default `ferry`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
}

fn default_topic_prefix() -> String {
    ferry_core::push::DEFAULT_TOPIC_PREFIX.to_string()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/ferry")
}
fn default_chunk_size() -> u32 {
    4096
}
fn default_max_upload() -> u64 {
    256 * 1024 * 1024
}
fn default_max_backup() -> u64 {
    64 * 1024 * 1024
}
fn default_max_json() -> u64 {
    64 * 1024
}

/// A configuration that cannot be used; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read server config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown, missing or mistyped keys.
    #[error("server config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (names the key and line).
        message: String,
    },
    /// A key has an unusable value.
    #[error("server config {path}: key `{key}`: {message}")]
    Invalid {
        /// The file (or `<in-process>` for configs built in code).
        path: PathBuf,
        /// The offending key.
        key: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

impl ServerConfig {
    /// A configuration with every default, for in-process use (tests, quickstart).
    pub fn new(
        data_dir: impl Into<PathBuf>,
        operator_token: impl Into<String>,
        enrollment_token: impl Into<String>,
    ) -> Self {
        ServerConfig {
            listen: default_listen(),
            role: Role::All,
            data_dir: data_dir.into(),
            registry_url: None,
            artifact_store_url: None,
            keys_dir: None,
            release_keys: Vec::new(),
            operator_token: operator_token.into(),
            enrollment_token: enrollment_token.into(),
            public_url: None,
            files_url: None,
            default_chunk_size: default_chunk_size(),
            max_upload_bytes: default_max_upload(),
            max_backup_bytes: default_max_backup(),
            max_json_bytes: default_max_json(),
            push: None,
        }
    }

    /// Reads and validates a TOML file; errors name the file and the bad key. Relative paths
    /// (`data_dir`, `keys_dir`, `release_keys`) are resolved against the file's directory.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text, path)?;
        if let Some(base) = path.parent() {
            config.resolve_relative_to(base);
        }
        Ok(config)
    }

    /// Makes relative `data_dir`, `keys_dir` and `release_keys` paths relative to `base`.
    pub fn resolve_relative_to(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        self.keys_dir.iter_mut().for_each(resolve);
        self.release_keys.iter_mut().for_each(resolve);
    }

    /// Parses and validates TOML text; `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
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
        for (key, value) in [
            ("operator_token", &self.operator_token),
            ("enrollment_token", &self.enrollment_token),
        ] {
            if value.trim().len() < 16 {
                return Err(invalid(key, "must be at least 16 characters (use a long random secret, e.g. `openssl rand -hex 32`)".into()));
            }
        }
        if let Some(push) = &self.push {
            ferry_core::push::parse_mqtt_url(&push.mqtt_url)
                .map_err(|e| invalid("push.mqtt_url", e.to_string()))?;
            ferry_core::push::check_prefix(&push.topic_prefix)
                .map_err(|e| invalid("push.topic_prefix", e.to_string()))?;
        }
        for (key, value) in [
            ("public_url", &self.public_url),
            ("files_url", &self.files_url),
        ] {
            if let Some(url) = value
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    key,
                    format!("'{url}' is not an http:// or https:// URL"),
                ));
            }
        }
        if self.default_chunk_size == 0 {
            return Err(invalid(
                "default_chunk_size",
                "must be at least 1 byte (1024-10240 suits most IoT links)".into(),
            ));
        }
        for (key, value) in [
            ("max_upload_bytes", self.max_upload_bytes),
            ("max_backup_bytes", self.max_backup_bytes),
            ("max_json_bytes", self.max_json_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1 byte".into()));
            }
        }
        Ok(())
    }

    /// The registry URL in effect.
    pub fn registry_url(&self) -> String {
        self.registry_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                absolute(&self.data_dir.join("ferry.db")).display()
            )
        })
    }

    /// The artifact store URL in effect.
    pub fn artifact_store_url(&self) -> String {
        self.artifact_store_url.clone().unwrap_or_else(|| {
            format!(
                "file://{}",
                absolute(&self.data_dir.join("artifacts")).display()
            )
        })
    }

    /// The TUF keys directory in effect.
    pub fn keys_dir(&self) -> PathBuf {
        self.keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }

    /// The query service's public base URL in effect, without a trailing slash.
    pub fn public_url(&self) -> String {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        url.trim_end_matches('/').to_string()
    }

    /// The file service's base URL in effect, without a trailing slash.
    pub fn files_url(&self) -> String {
        match &self.files_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.public_url(),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "operator_token = \"op-secret-0123456789\"\nenrollment_token = \"enroll-secret-0123456789\"\n";

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let c = ServerConfig::from_toml_str(MINIMAL, Path::new("server.toml")).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.role, Role::All);
        assert_eq!(c.default_chunk_size, 4096);
        assert_eq!(c.max_upload_bytes, 256 * 1024 * 1024);
        assert_eq!(c.max_backup_bytes, 64 * 1024 * 1024);
        assert_eq!(c.max_json_bytes, 64 * 1024);
        assert_eq!(c.registry_url(), "sqlite:///var/lib/ferry/ferry.db");
        assert_eq!(c.artifact_store_url(), "file:///var/lib/ferry/artifacts");
        assert_eq!(c.keys_dir(), PathBuf::from("/var/lib/ferry/keys"));
        assert_eq!(c.public_url(), "http://0.0.0.0:8080");
        assert_eq!(c.files_url(), c.public_url());
    }

    #[test]
    fn files_url_overrides_public_url_and_trailing_slashes_are_dropped() {
        let text = format!(
            "{MINIMAL}public_url = \"https://q.example/\"\nfiles_url = \"https://f.example/\"\nrole = \"query\"\n"
        );
        let c = ServerConfig::from_toml_str(&text, Path::new("server.toml")).unwrap();
        assert_eq!(c.public_url(), "https://q.example");
        assert_eq!(c.files_url(), "https://f.example");
        assert_eq!(c.role, Role::Query);
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let err = ServerConfig::from_toml_str(
            &format!("{MINIMAL}chunk = 5\n"),
            Path::new("/etc/ferry/server.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/etc/ferry/server.toml") && msg.contains("chunk"),
            "{msg}"
        );
    }

    #[test]
    fn mistyped_value_names_the_key() {
        let err = ServerConfig::from_toml_str(
            &format!("{MINIMAL}default_chunk_size = \"big\"\n"),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("default_chunk_size"), "{err}");
    }

    #[test]
    fn missing_token_is_named() {
        let err = ServerConfig::from_toml_str(
            "enrollment_token = \"enroll-secret-0123456789\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("operator_token"), "{err}");
    }

    #[test]
    fn short_token_and_bad_url_are_refused_by_key() {
        let err = ServerConfig::from_toml_str(
            "operator_token = \"x\"\nenrollment_token = \"enroll-secret-0123456789\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("key `operator_token`"), "{err}");
        let err = ServerConfig::from_toml_str(
            &format!("{MINIMAL}public_url = \"ftp://x\"\n"),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("key `public_url`"), "{err}");
        let err = ServerConfig::from_toml_str(
            &format!("{MINIMAL}default_chunk_size = 0\n"),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("key `default_chunk_size`"),
            "{err}"
        );
    }

    #[test]
    fn push_section_parses_and_a_bad_broker_url_names_the_key() {
        let c = ServerConfig::from_toml_str(&format!("{MINIMAL}[push]\nmqtt_url = \"mqtt://127.0.0.1:1883\"\n"), Path::new("s.toml")).unwrap();
        let push = c.push.unwrap();
        assert_eq!((push.mqtt_url.as_str(), push.topic_prefix.as_str()), ("mqtt://127.0.0.1:1883", "ferry"));
        let e = ServerConfig::from_toml_str(&format!("{MINIMAL}[push]\nmqtt_url = \"http://broker\"\n"), Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml") && e.contains("push.mqtt_url") && e.contains("mqtt://HOST[:PORT]"), "{e}");
        let e = ServerConfig::from_toml_str(&format!("{MINIMAL}[push]\nmqtt_url = \"mqtt://b\"\ntopic_prefix = \"a/#\"\n"), Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("push.topic_prefix"), "{e}");
    }

    #[test]
    fn example_file_is_valid_and_paths_resolve_against_the_file() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("server.example.toml");
        let c = ServerConfig::from_toml_file(&example).unwrap();
        assert_eq!(c.public_url(), "https://updates.example.com");
        assert_eq!(
            c.release_keys,
            vec![PathBuf::from("/etc/ferry/release-signing.pub.json")]
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            format!("{MINIMAL}data_dir = \"data\"\nrelease_keys = [\"keys/release.pub.json\"]\n"),
        )
        .unwrap();
        let c = ServerConfig::from_toml_file(&file).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(
            c.release_keys,
            vec![dir.path().join("keys/release.pub.json")]
        );
        assert_eq!(c.keys_dir(), dir.path().join("data/keys"));
    }

    #[test]
    fn unreadable_file_is_named() {
        let err = ServerConfig::from_toml_file("/nonexistent/ferry/server.toml").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ferry/server.toml"),
            "{err}"
        );
    }
}
