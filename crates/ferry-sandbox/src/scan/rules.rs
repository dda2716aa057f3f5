//! The rule database: a TOML file (`ferry-rules/1`) with a monotonically increasing version,
//! signed by an ed25519 rule key (see `rules/README.md`).

use super::error::ScanError;
use super::pattern::BytePattern;
use super::severity::Severity;
use ferry_artifact::keys::PublicKey;
use ferry_artifact::tuf::Signature;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` every rule database declares.
pub const RULES_FORMAT: &str = "ferry-rules/1";
/// Domain-separation prefix of the signed message (followed by the exact file bytes).
pub const RULES_SIG_CONTEXT: &[u8] = b"ferry-rule-db/1\n";

/// Severities of the checksec-style hardening checks and structural problems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardeningRules {
    /// Executable stack (no `PT_GNU_STACK`, or one with `PF_X`).
    pub missing_nx: Severity,
    /// A segment both writable and executable.
    pub rwx_segment: Severity,
    /// An executable that is not position independent.
    pub not_pie: Severity,
    /// No `PT_GNU_RELRO`.
    pub no_relro: Severity,
    /// RELRO without BIND_NOW (the GOT stays writable).
    pub partial_relro: Severity,
    /// No stack protector symbol in a binary that has code.
    pub no_canary: Severity,
    /// Fortifiable libc calls and no `__*_chk` variant at all.
    pub no_fortify: Severity,
    /// A file with the ELF magic that does not parse.
    pub malformed_elf: Severity,
}

/// Dangerous imported (or, in static binaries, defined) functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRule {
    /// Rule id, shown in findings.
    pub id: String,
    /// Symbol names that trigger the rule.
    pub symbols: Vec<String>,
    /// Severity of a finding.
    pub severity: Severity,
    /// Why the function is dangerous.
    pub message: String,
}

/// A code signature: bytes (with `??` wildcards) and/or a sequence of instructions, matched in
/// executable code of the named architectures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRule {
    /// Rule id.
    pub id: String,
    /// Severity of a finding.
    pub severity: Severity,
    /// What the signature means.
    pub message: String,
    /// CVE or advisory id, if any.
    #[serde(default)]
    pub cve: Option<String>,
    /// Architectures (`x86`, `x86_64`, `arm`, `aarch64`, …); empty = all.
    #[serde(default)]
    pub arch: Vec<String>,
    /// Hex bytes separated by spaces, `??` for any byte.
    #[serde(default)]
    pub bytes: Option<String>,
    /// Consecutive instructions; each entry must be a prefix of the instruction's lowercase
    /// Intel-syntax (x86) or standard (ARM) text, with runs of spaces collapsed.
    #[serde(default)]
    pub instructions: Vec<String>,
}

/// A content rule: a regular expression over file bytes (embedded keys, credentials, version
/// strings of known-vulnerable components).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentRule {
    /// Rule id.
    pub id: String,
    /// Severity of a finding.
    pub severity: Severity,
    /// What a match means.
    pub message: String,
    /// CVE or advisory id, if any.
    #[serde(default)]
    pub cve: Option<String>,
    /// Regular expression (Rust `regex` bytes syntax).
    pub regex: String,
    /// File name suffixes the rule applies to (`.conf`, `shadow`); empty = every file.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Whether to mask the matched text in reports (for secrets).
    #[serde(default)]
    pub redact: bool,
}

/// A parsed, signature-checked rule database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDb {
    /// Always [`RULES_FORMAT`].
    pub format: String,
    /// Version: a database only replaces one with a lower version.
    pub version: u64,
    /// Human name.
    pub name: String,
    /// Hardening check severities.
    pub hardening: HardeningRules,
    /// Dangerous function rules.
    #[serde(default)]
    pub import: Vec<ImportRule>,
    /// Code signatures.
    #[serde(default)]
    pub code: Vec<CodeRule>,
    /// Content rules.
    #[serde(default)]
    pub content: Vec<ContentRule>,
}

/// The signature file path for a database: `<db>.sig`.
pub fn signature_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// The message a rule key signs for `bytes`.
pub fn rules_signed_message(bytes: &[u8]) -> Vec<u8> {
    let mut msg = RULES_SIG_CONTEXT.to_vec();
    msg.extend_from_slice(bytes);
    msg
}

/// Signs database bytes with a rule key; the result is what goes in the `.sig` file.
pub fn sign_rules(bytes: &[u8], key: &ferry_artifact::keys::SigningKey) -> String {
    let sig = key.sign(&rules_signed_message(bytes));
    let mut text = serde_json::to_string_pretty(&sig).expect("a signature serializes");
    text.push('\n');
    text
}

impl RuleDb {
    /// Verifies `sig_json` (a `{"keyid","sig"}` object made by [`sign_rules`]) over the exact
    /// `bytes` with one of `trusted` keys, then parses and validates the database.
    pub fn from_signed(
        source_name: &str,
        bytes: &[u8],
        sig_json: &[u8],
        trusted: &[PublicKey],
    ) -> Result<RuleDb, ScanError> {
        let refuse = |reason: String| ScanError::BadRuleSignature {
            source_name: source_name.into(),
            reason,
        };
        let sig: Signature = serde_json::from_slice(sig_json).map_err(|e| {
            refuse(format!(
                "the signature file is not a {{keyid, sig}} object: {e}"
            ))
        })?;
        let key = trusted
            .iter()
            .find(|k| k.key_id() == sig.keyid)
            .ok_or_else(|| {
                refuse(format!(
                    "signed by key {}, which is not a trusted rule key (trusted: {})",
                    sig.keyid,
                    trusted
                        .iter()
                        .map(PublicKey::key_id)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        key.verify(&rules_signed_message(bytes), &sig.sig)
            .map_err(|_| {
                refuse(
                    "the signature does not verify: the database was modified after signing".into(),
                )
            })?;
        RuleDb::parse(source_name, bytes)
    }

    /// Reads `path` and `path.sig` and checks them as [`RuleDb::from_signed`] does.
    pub fn load(path: &Path, trusted: &[PublicKey]) -> Result<RuleDb, ScanError> {
        let bytes = std::fs::read(path).map_err(|source| ScanError::Io {
            path: path.into(),
            action: "read the rule database".into(),
            source,
        })?;
        let sig_path = signature_path(path);
        let sig = match std::fs::read(&sig_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ScanError::UnsignedRules {
                    db: path.into(),
                    sig: sig_path,
                });
            }
            Err(source) => {
                return Err(ScanError::Io {
                    path: sig_path,
                    action: "read the rule database signature".into(),
                    source,
                });
            }
        };
        RuleDb::from_signed(&path.display().to_string(), &bytes, &sig, trusted)
    }

    /// Parses and validates (format, regexes, byte patterns) without any trust decision;
    /// used only after a signature has verified.
    fn parse(source_name: &str, bytes: &[u8]) -> Result<RuleDb, ScanError> {
        let bad = |reason: String| ScanError::BadRules {
            source_name: source_name.into(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let db: RuleDb = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if db.format != RULES_FORMAT {
            return Err(bad(format!(
                "format is {:?}; this build reads {RULES_FORMAT:?}",
                db.format
            )));
        }
        for rule in &db.code {
            if rule.bytes.is_none() && rule.instructions.is_empty() {
                return Err(bad(format!(
                    "code rule {} has neither bytes nor instructions",
                    rule.id
                )));
            }
            if let Some(b) = &rule.bytes {
                BytePattern::parse(b).map_err(|e| bad(format!("code rule {}: {e}", rule.id)))?;
            }
        }
        for rule in &db.content {
            regex::bytes::Regex::new(&rule.regex)
                .map_err(|e| bad(format!("content rule {}: {e}", rule.id)))?;
        }
        Ok(db)
    }

    /// Refuses `self` as a replacement for `installed` unless it is newer (a same version is
    /// accepted only as the identical database).
    pub fn check_replaces(&self, installed: &RuleDb) -> Result<(), ScanError> {
        if self.version > installed.version
            || (self.version == installed.version && self == installed)
        {
            Ok(())
        } else {
            Err(ScanError::Rollback {
                installed: installed.version,
                offered: self.version,
            })
        }
    }
}
