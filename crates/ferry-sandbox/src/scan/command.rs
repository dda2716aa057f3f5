//! `ferry scan DIR|ARTIFACT`: pick the rules, unpack an artifact if needed, scan.

use super::builtin::{default_rules, demo_rule_key};
use super::error::ScanError;
use super::report::ScanReport;
use super::rules::RuleDb;
use super::scanner::scan_path_named;
use super::severity::Policy;
use crate::unpack::{Limits, UnpackRule, unpack};
use ferry_artifact::artifact::{PAYLOAD_PREFIX, inspect, unpack_verified};
use ferry_artifact::keys::PublicKey;
use std::path::Path;

/// Scans a directory, a file, or a `.ferry` artifact with the built-in rules (or the signed
/// database at `rules`, which must be signed by the demo rule key) under the default policy.
/// An artifact's payloads are extracted to a temporary directory first, without signature
/// verification (use [`scan_target`] with trusted keys to verify first).
pub fn scan_command(path: &Path, rules: Option<&Path>) -> Result<ScanReport, ScanError> {
    let db = match rules {
        Some(p) => RuleDb::load(p, &[demo_rule_key()])?,
        None => default_rules()?,
    };
    scan_target(path, &db, &Policy::default(), &[])
}

/// Scans `path` with `db` under `policy`. A `.ferry` artifact is unpacked to a temporary
/// directory first: verified with `artifact_keys` when any are given, otherwise its manifest
/// is inspected and the payloads extracted with the safe tar extractor.
pub fn scan_target(
    path: &Path,
    db: &RuleDb,
    policy: &Policy,
    artifact_keys: &[PublicKey],
) -> Result<ScanReport, ScanError> {
    if !is_artifact(path) {
        return scan_path_named(path, &path.display().to_string(), db, policy);
    }
    let tmp = tempfile::tempdir().map_err(|source| ScanError::Io {
        path: std::env::temp_dir(),
        action: "create a temporary directory for the artifact's payloads".into(),
        source,
    })?;
    let dest = tmp.path().join("artifact");
    let (root, shown) = if artifact_keys.is_empty() {
        let inspection = inspect(path)?;
        unpack(UnpackRule::Tar, path, &dest, &Limits::default())?;
        let shown = format!(
            "{} ({} {}, signature NOT verified)",
            path.display(),
            inspection.manifest.component,
            inspection.manifest.version
        );
        (dest.join(PAYLOAD_PREFIX.trim_end_matches('/')), shown)
    } else {
        let manifest = unpack_verified(path, artifact_keys, &dest)?;
        let shown = format!(
            "{} ({} {}, signature verified)",
            path.display(),
            manifest.component,
            manifest.version
        );
        (dest, shown)
    };
    scan_path_named(&root, &shown, db, policy)
}

fn is_artifact(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "ferry")
}
