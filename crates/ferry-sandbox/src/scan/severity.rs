//! Severities, the block/warn policy and the verdict.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a weakness by itself.
    Info,
    /// A minor weakness.
    Low,
    /// A weakness that makes exploitation easier.
    Medium,
    /// A likely exploitable weakness.
    High,
    /// Known-malicious or known-vulnerable content, or leaked secrets.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// Decides which findings block an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Findings at or above this severity block; lower ones only warn.
    pub block_at: Severity,
    /// Rule ids whose findings are reported but never block.
    #[serde(default)]
    pub warn_only: Vec<String>,
}

impl Default for Policy {
    /// Block on `high` and `critical`.
    fn default() -> Self {
        Policy {
            block_at: Severity::High,
            warn_only: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether a finding of `rule` at `severity` blocks.
    pub fn blocks(&self, rule: &str, severity: Severity) -> bool {
        severity >= self.block_at && !self.warn_only.iter().any(|r| r == rule)
    }
}

/// The outcome of a scan under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No findings above `info`.
    Pass,
    /// Findings, none blocking.
    Warn,
    /// At least one blocking finding: do not install.
    Block,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Block => "BLOCK",
        })
    }
}
