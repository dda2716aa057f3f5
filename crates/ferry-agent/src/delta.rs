//! Delta installs and the delta-failure record.
//!
//! A delta package (see `ferry_delta::package`) is a TUF target like a full artifact, so the
//! download pipeline verifies its length and sha256 against the signed targets metadata. Then:
//! 1. [`open_verified`]: the new release's manifest inside must carry a signature by a trusted
//!    release key, name the offered component, version and a compatible device type, and the
//!    tree delta must produce exactly the manifest's files with the manifest's hashes;
//! 2. [`preverify`]: every installed file the delta relies on must hash to what the delta
//!    expects, before anything is written;
//! 3. [`install`]: the tree is built into `releases/<v>.staging` from the running release
//!    (never modified), every file is checked against the release-signed manifest, and only
//!    then is it renamed to `releases/<v>`.
//!
//! A mismatch at step 2 (or 3) is persisted as a [`DeltaFailureRecord`] in
//! `state_dir/delta-failures.json`, reported to the server, and makes the agent ask for full
//! packages of that component until a full install succeeds.

use crate::error::{AgentError, Result, io_err};
use crate::slots::{MANIFEST_FILE, Slot, hash_file};
use crate::state::{fsync_dir, fsync_tree, read_json, remove_dir_if_exists, write_atomic, write_json};
use ferry_artifact::artifact::Manifest;
use ferry_artifact::keys::PublicKey;
use ferry_artifact::tuf::Signature;
use ferry_core::api::{DeltaFailureRecord, FileMismatch};
use ferry_core::install::Pending;
use ferry_core::{Component, DeviceId, Version};
use ferry_delta::package::DeltaPackage;
use ferry_delta::tree::{TreeDelta, TreeOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File in the state directory holding the standing delta-failure records.
pub const FAILURES_FILE: &str = "delta-failures.json";

/// A delta-failure record as the device keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFailure {
    /// The record (also sent to the server).
    pub record: DeltaFailureRecord,
    /// Whether the server acknowledged it (otherwise it is sent again before the next check-in).
    pub reported: bool,
}

fn failures_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FAILURES_FILE)
}

/// The standing delta-failure records, one per component at most.
pub fn load_failures(state_dir: &Path) -> Result<Vec<StoredFailure>> {
    Ok(read_json(&failures_path(state_dir))?.unwrap_or_default())
}

fn save_failures(state_dir: &Path, list: &[StoredFailure]) -> Result<()> {
    write_json(&failures_path(state_dir), &list, 0o600)
}

/// Persists `record` (replacing the component's previous one) as not yet reported.
pub fn save_failure(state_dir: &Path, record: DeltaFailureRecord) -> Result<()> {
    let mut list = load_failures(state_dir)?;
    list.retain(|f| f.record.component != record.component);
    list.push(StoredFailure {
        record,
        reported: false,
    });
    save_failures(state_dir, &list)
}

/// Marks the component's record as acknowledged by the server.
pub fn mark_reported(state_dir: &Path, component: Component) -> Result<()> {
    let mut list = load_failures(state_dir)?;
    for f in list.iter_mut().filter(|f| f.record.component == component) {
        f.reported = true;
    }
    save_failures(state_dir, &list)
}

/// Deletes the component's record; returns whether there was one.
pub fn clear_failure(state_dir: &Path, component: Component) -> Result<bool> {
    let mut list = load_failures(state_dir)?;
    let before = list.len();
    list.retain(|f| f.record.component != component);
    if list.len() == before {
        return Ok(false);
    }
    save_failures(state_dir, &list)?;
    Ok(true)
}

/// A delta package whose manifest is signed by a trusted release key and whose tree produces
/// exactly the manifest's files.
#[derive(Debug)]
pub struct VerifiedDelta {
    /// The new release's manifest.
    pub manifest: Manifest,
    /// Its exact signed bytes (written to `releases/<v>/.ferry-manifest.json`).
    pub manifest_bytes: Vec<u8>,
    /// The operations.
    pub tree: TreeDelta,
}

fn refuse(path: &Path, reason: String) -> AgentError {
    AgentError::Artifact {
        path: path.to_path_buf(),
        reason,
    }
}

fn check_signature(path: &Path, pkg: &DeltaPackage, keys: &[PublicKey]) -> Result<()> {
    let sigs: Vec<Signature> = serde_json::from_slice(&pkg.signatures_bytes)
        .map_err(|e| refuse(path, format!("the release signature file is invalid: {e}")))?;
    for key in keys {
        let id = key.key_id();
        if sigs
            .iter()
            .any(|s| s.keyid == id && key.verify(&pkg.manifest_bytes, &s.sig).is_ok())
        {
            return Ok(());
        }
    }
    Err(refuse(
        path,
        format!(
            "the release manifest inside is not signed by a trusted release key (signers {:?}, trusted {:?})",
            sigs.iter().map(|s| s.keyid.as_str()).collect::<Vec<_>>(),
            keys.iter().map(PublicKey::key_id).collect::<Vec<_>>()
        ),
    ))
}

/// The new-tree hash each operation promises for its output path.
fn output_hash(op: &TreeOp) -> Option<(&str, &str)> {
    match op {
        TreeOp::Keep { path, sha256, .. }
        | TreeOp::Add { path, sha256, .. }
        | TreeOp::Patch { path, sha256, .. } => Some((path, sha256)),
        TreeOp::Rename { to, expected, .. } => Some((to, expected)),
        TreeOp::Symlink { .. } | TreeOp::Remove { .. } => None,
    }
}

/// Reads the downloaded package (already verified by TUF) and checks it against the release
/// keys and the update in progress. Nothing is written.
pub fn open_verified(
    path: &Path,
    keys: &[PublicKey],
    pending: &Pending,
    device_type: &str,
) -> Result<VerifiedDelta> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, "open delta package", e))?;
    let pkg = DeltaPackage::read_from(&mut std::io::BufReader::new(file))
        .map_err(|e| refuse(path, format!("not a readable delta package: {e}")))?;
    let from = pending.delta_from.as_ref().ok_or_else(|| {
        refuse(path, "the update in progress is not a delta install".into())
    })?;
    if pkg.from_version != from.to_string() {
        return Err(refuse(
            path,
            format!(
                "is a delta from {}, but the installed {} is {from}",
                pkg.from_version, pending.component
            ),
        ));
    }
    check_signature(path, &pkg, keys)?;
    let manifest: Manifest = serde_json::from_slice(&pkg.manifest_bytes)
        .map_err(|e| refuse(path, format!("the signed manifest is invalid: {e}")))?;
    if manifest.format != ferry_artifact::artifact::FORMAT {
        return Err(refuse(
            path,
            format!("the signed manifest has format {:?}", manifest.format),
        ));
    }
    if manifest.component != pending.component || manifest.version != pending.to_version {
        return Err(refuse(
            path,
            format!(
                "builds {} {}, but {} {} was offered and vouched for by TUF",
                manifest.component, manifest.version, pending.component, pending.to_version
            ),
        ));
    }
    if !manifest.device_types.is_empty() && !manifest.device_types.iter().any(|t| t == device_type)
    {
        return Err(refuse(
            path,
            format!(
                "is built for device types {:?}, not this device's type {device_type}",
                manifest.device_types
            ),
        ));
    }
    let wanted: BTreeMap<&str, &str> = manifest
        .payloads
        .iter()
        .map(|p| (p.path.as_str(), p.sha256.as_str()))
        .collect();
    let mut produced: BTreeMap<&str, &str> = BTreeMap::new();
    for op in &pkg.tree.ops {
        if let TreeOp::Symlink { path: link, .. } = op {
            return Err(refuse(
                path,
                format!("creates symlink {link:?}, which no release manifest lists"),
            ));
        }
        if let Some((p, h)) = output_hash(op) {
            produced.insert(p, h);
        }
    }
    if produced != wanted {
        let differing: Vec<String> = wanted
            .keys()
            .chain(produced.keys())
            .filter(|p| wanted.get(*p) != produced.get(*p))
            .map(|p| {
                format!(
                    "{p} (manifest {}, delta {})",
                    wanted.get(p).unwrap_or(&"absent"),
                    produced.get(p).unwrap_or(&"absent")
                )
            })
            .collect();
        return Err(refuse(
            path,
            format!(
                "does not build the files the signed manifest lists: {}",
                differing.join("; ")
            ),
        ));
    }
    Ok(VerifiedDelta {
        manifest,
        manifest_bytes: pkg.manifest_bytes,
        tree: pkg.tree,
    })
}

fn mismatches(m: Vec<ferry_delta::tree::Mismatch>) -> Vec<FileMismatch> {
    m.into_iter()
        .map(|m| FileMismatch {
            path: m.path,
            expected: m.expected,
            found: m.found,
        })
        .collect()
}

/// Checks every installed file the delta relies on; the mismatches, if any.
pub fn preverify(slot: &Slot, from: &Version, delta: &VerifiedDelta) -> Vec<FileMismatch> {
    match ferry_delta::tree::preverify(&slot.release_dir(from), &delta.tree) {
        Ok(()) => Vec::new(),
        Err(m) => mismatches(m),
    }
}

/// Every regular file under `root` (relative '/'-paths); symlinks and other types are errors.
fn list_files(root: &Path, prefix: &str, out: &mut Vec<String>) -> std::result::Result<(), String> {
    let rd = std::fs::read_dir(root).map_err(|e| format!("listing {}: {e}", root.display()))?;
    for entry in rd {
        let entry = entry.map_err(|e| format!("listing {}: {e}", root.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|e| format!("inspecting {rel}: {e}"))?;
        if kind.is_dir() {
            list_files(&entry.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push(rel);
        } else {
            return Err(format!("{rel} is not a regular file or directory"));
        }
    }
    Ok(())
}

/// Checks that `dir` holds exactly the manifest's files, each with its length and sha256.
fn check_against_manifest(dir: &Path, manifest: &Manifest) -> std::result::Result<(), String> {
    let mut files = Vec::new();
    list_files(dir, "", &mut files)?;
    for extra in files
        .iter()
        .filter(|f| f.as_str() != MANIFEST_FILE && !manifest.payloads.iter().any(|p| &p.path == *f))
    {
        return Err(format!("{extra} is not listed in the signed manifest"));
    }
    for p in &manifest.payloads {
        let (len, hash) = hash_file(&dir.join(&p.path)).map_err(|e| e.to_string())?;
        if len != p.length || hash != p.sha256 {
            return Err(format!(
                "{}: expected {} bytes with sha256 {} from the signed manifest, found {len} bytes with sha256 {hash}",
                p.path, p.length, p.sha256
            ));
        }
    }
    Ok(())
}

/// Builds `releases/<to>` from the running `releases/<from>` and the delta, via
/// `releases/<to>.staging`, checking every file against the release-signed manifest before the
/// rename. The running release is only read. On error nothing is left behind.
pub fn install(
    slot: &Slot,
    device: &DeviceId,
    pending: &Pending,
    from: &Version,
    delta: &VerifiedDelta,
) -> Result<()> {
    let v = &pending.to_version;
    let staging = slot.staging_dir(v);
    remove_dir_if_exists(&staging)?;
    let built = ferry_delta::tree::apply(&slot.release_dir(from), &delta.tree, &staging);
    if let Err(e) = built {
        let _ = remove_dir_if_exists(&staging);
        return Err(match e {
            ferry_delta::DeltaError::Preverify(m) => AgentError::DeltaMismatch {
                device: device.to_string(),
                component: pending.component,
                from: from.clone(),
                to: v.clone(),
                files: mismatches(m),
            },
            other => AgentError::Slot {
                dir: slot.root().to_path_buf(),
                reason: format!(
                    "applying the delta {} {from} -> {v} failed: {other}; the running release is unchanged",
                    pending.component
                ),
            },
        });
    }
    let finish = || -> Result<()> {
        write_atomic(&staging.join(MANIFEST_FILE), &delta.manifest_bytes, 0o644)?;
        check_against_manifest(&staging, &delta.manifest).map_err(|reason| AgentError::Slot {
            dir: slot.root().to_path_buf(),
            reason: format!(
                "{} {v} built from the delta does not match its signed manifest: {reason}",
                pending.component
            ),
        })?;
        fsync_tree(&staging)?;
        let dest = slot.release_dir(v);
        remove_dir_if_exists(&dest)?;
        std::fs::rename(&staging, &dest).map_err(|e| io_err(&dest, "rename staging into place", e))?;
        fsync_dir(&slot.releases_dir())
    };
    let done = finish();
    if done.is_err() {
        let _ = remove_dir_if_exists(&staging);
    }
    done
}
