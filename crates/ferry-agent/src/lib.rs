//! The Ferry device agent.
//!
//! A device runs two programs, each in its own storage space: the **upgrader** (this agent)
//! and the **main program** it manages. Either can be upgraded without disturbing the other.
//! On a schedule the agent checks in with the server, verifies any offer through TUF
//! metadata, downloads it in resumable segments, verifies the artifact's signature, backs up
//! the running release, installs the new one beside it, switches atomically, health-checks
//! it, rolls back on failure, and reports the result. Every step is persisted first, so a
//! power cut at any instant leaves the device on a verified version.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_agent::AgentError> {
//! let config = ferry_agent::AgentConfig::from_toml_file("/etc/ferry/agent.toml")?;
//! let mut agent = ferry_agent::Agent::new(config)?;
//! let summary = agent.run_once().await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod agent;
pub mod alerts;
pub mod backup;
pub mod client;
pub mod config;
pub mod download;
pub mod error;
pub mod health;
pub mod install;
pub mod firmware;
pub mod preflight;
pub mod livepatch;
pub mod push;
pub mod report;
pub mod delta;
pub mod selfupdate;
pub mod slots;
pub mod state;
pub mod tuf_client;
pub mod tuf_updater;

pub use agent::{Agent, Clock, Progress, ProgressFn, StateFn, fallback_version};
pub use config::{AgentConfig, ConfigError, LivePatchConfig, MainConfig, UpgraderConfig};
pub use error::AgentError;
pub use report::{AttemptOutcome, AttemptSummary, RunSummary};
pub use selfupdate::{RestartHook, exec_current};

/// `ferry agent self-test`: checks that this binary can run as an agent (exit 0 when it can).
///
/// A new agent release is trial-run this way before the device switches to it.
pub fn self_test() -> Result<(), AgentError> {
    let state: ferry_core::install::InstallState = serde_json::from_str(r#"{"state":"idle"}"#)
        .map_err(|e| AgentError::CorruptState {
            path: "<self-test>".into(),
            reason: e.to_string(),
        })?;
    if state != ferry_core::install::InstallState::Idle {
        return Err(AgentError::CorruptState {
            path: "<self-test>".into(),
            reason: "install state does not round-trip".into(),
        });
    }
    reqwest::Client::builder()
        .build()
        .map_err(|e| AgentError::Http {
            device: "<self-test>".into(),
            url: String::new(),
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
    let dir = std::env::temp_dir().join(format!("ferry-self-test-{}", std::process::id()));
    state::ensure_dir(&dir)?;
    let probe = dir.join("probe.json");
    let result = state::write_atomic(&probe, b"{}", 0o600)
        .and_then(|()| state::read_json::<serde_json::Value>(&probe).map(|_| ()));
    let _ = std::fs::remove_dir_all(&dir);
    result
}
