//! Delta packages: built when a release is uploaded, from the releases of the same component
//! the fleet runs (and always the previous release), published as TUF targets.
//!
//! A package holds the tree delta between the unpacked payloads of two releases plus the new
//! release's exact signed manifest, so a device checks the package through TUF (length and
//! sha256) and every file it builds against the release-signed manifest.

use crate::error::{AppError, AppResult};
use crate::releases::artifact_key;
use crate::state::{AppState, now_ms};
use ferry_artifact::artifact::{MANIFEST_NAME, SIGNATURES_NAME, UNPACKED_MANIFEST_NAME};
use ferry_artifact::keys::PublicKey;
use ferry_core::api::{DeltaRecord, ReleaseRecord};
use ferry_core::{Component, Version};
use ferry_delta::package::DeltaPackage;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Most base versions a new release gets deltas from.
pub const MAX_DELTA_BASES: usize = 6;

/// Artifact-store key of a delta package: `{component}/{sha256}.{from}_{to}.delta`.
pub fn delta_key(delta: &DeltaRecord) -> String {
    format!(
        "{}/{}.{}_{}.delta",
        delta.component, delta.sha256, delta.from_version, delta.to_version
    )
}

/// The base releases a new release of `component` at `version` gets deltas from: the newest
/// older release, plus every older release some device runs (newest first, at most
/// [`MAX_DELTA_BASES`]).
pub fn choose_bases<'a>(
    releases: &'a [ReleaseRecord],
    component: Component,
    version: &Version,
    fleet: &BTreeSet<Version>,
) -> Vec<&'a ReleaseRecord> {
    // A live patch changes a running process, not files: no delta leads to one or starts from one.
    if version.live_patch_base().is_some() {
        return Vec::new();
    }
    let mut older: Vec<&ReleaseRecord> = releases
        .iter()
        .filter(|r| r.component == component && &r.version < version && r.version.live_patch_base().is_none())
        .collect();
    older.sort_by(|a, b| b.version.cmp(&a.version));
    older
        .iter()
        .enumerate()
        .filter(|(i, r)| *i == 0 || fleet.contains(&r.version))
        .map(|(_, r)| *r)
        .take(MAX_DELTA_BASES)
        .collect()
}

/// A delta package built on disk.
struct Built {
    from_version: Version,
    path: PathBuf,
    length: u64,
    sha256: String,
}

/// The exact bytes of the artifact's signature file (its second tar entry).
fn signature_file_bytes(artifact: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(artifact).map_err(|e| format!("opening {}: {e}", artifact.display()))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|e| format!("reading {}: {e}", artifact.display()))?;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| format!("reading {}: {e}", artifact.display()))?;
        let name = entry.path_bytes().into_owned();
        match (index, name.as_slice()) {
            (0, n) if n == MANIFEST_NAME.as_bytes() => {}
            (1, n) if n == SIGNATURES_NAME.as_bytes() => {
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("reading {SIGNATURES_NAME} of {}: {e}", artifact.display()))?;
                return Ok(bytes);
            }
            _ => break,
        }
    }
    Err(format!(
        "{}: {SIGNATURES_NAME} is not the second entry",
        artifact.display()
    ))
}

/// Unpacks a verified artifact's payloads into `dest` and returns the exact manifest bytes
/// (taken out of the tree, so the delta covers payloads only).
fn unpack_payloads(artifact: &Path, keys: &[PublicKey], dest: &Path) -> Result<Vec<u8>, String> {
    ferry_artifact::artifact::unpack_verified(artifact, keys, dest).map_err(|e| e.to_string())?;
    let manifest = dest.join(UNPACKED_MANIFEST_NAME);
    let bytes = std::fs::read(&manifest).map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    std::fs::remove_file(&manifest).map_err(|e| format!("removing {}: {e}", manifest.display()))?;
    Ok(bytes)
}

/// Builds one delta package per base (blocking work: unpacking and diffing). A base whose
/// delta is not smaller than the full artifact is skipped; failures are logged and skipped.
fn build_packages(
    work: &Path,
    new_artifact: &Path,
    new_length: u64,
    bases: &[(Version, PathBuf)],
    keys: &[PublicKey],
) -> Result<Vec<Built>, String> {
    let new_dir = work.join("new");
    let manifest_bytes = unpack_payloads(new_artifact, keys, &new_dir)?;
    let signatures_bytes = signature_file_bytes(new_artifact)?;
    let mut built = Vec::new();
    for (i, (from, base_artifact)) in bases.iter().enumerate() {
        let base_dir = work.join(format!("base-{i}"));
        let result = (|| -> Result<Built, String> {
            unpack_payloads(base_artifact, keys, &base_dir)?;
            let tree = ferry_delta::tree::diff(&base_dir, &new_dir).map_err(|e| e.to_string())?;
            let package = DeltaPackage {
                manifest_bytes: manifest_bytes.clone(),
                signatures_bytes: signatures_bytes.clone(),
                from_version: from.to_string(),
                tree,
            };
            let path = work.join(format!("{from}.delta"));
            let mut bytes = Vec::new();
            package.write_to(&mut bytes).map_err(|e| e.to_string())?;
            let mut f = std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
            f.write_all(&bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
            Ok(Built {
                from_version: from.clone(),
                path,
                length: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
            })
        })();
        let _ = std::fs::remove_dir_all(&base_dir);
        match result {
            Ok(b) if b.length < new_length => built.push(b),
            Ok(b) => tracing::info!(from = %from, delta = b.length, full = new_length, "delta not smaller than the full artifact; not offered"),
            Err(e) => tracing::warn!(from = %from, error = %e, "building a delta failed; devices on this version get the full package"),
        }
    }
    Ok(built)
}

/// Builds, stores and records the deltas to `release` (whose verified artifact is at
/// `artifact`) from the releases the fleet runs. Returns the recorded deltas; a failure to build
/// one leaves the release without it (devices get the full package).
pub async fn build_for_release(
    state: &AppState,
    release: &ReleaseRecord,
    artifact: &Path,
) -> AppResult<Vec<DeltaRecord>> {
    let what = format!("building deltas to {} {}", release.component, release.version);
    let releases = state
        .registry
        .releases()
        .await
        .map_err(|e| AppError::store("listing releases", e))?;
    let fleet: BTreeSet<Version> = state
        .registry
        .devices()
        .await
        .map_err(|e| AppError::store("listing devices", e))?
        .into_iter()
        .filter_map(|d| match release.component {
            Component::Main => d.main_version,
            Component::Agent => d.upgrader_version,
        })
        .collect();
    let bases = choose_bases(&releases, release.component, &release.version, &fleet);
    if bases.is_empty() {
        return Ok(Vec::new());
    }
    let work = tempfile::Builder::new()
        .prefix("deltas-")
        .tempdir_in(&state.tmp_dir)
        .map_err(|e| AppError::internal(&what, e))?;
    let mut inputs = Vec::new();
    for base in &bases {
        let key = artifact_key(base);
        let bytes = state
            .store
            .get(&key)
            .await
            .map_err(|e| AppError::store(&format!("reading artifact {key}"), e))?;
        let path = work.path().join(format!("{}.ferry", base.version));
        tokio::fs::write(&path, &bytes)
            .await
            .map_err(|e| AppError::internal(&what, e))?;
        inputs.push((base.version.clone(), path));
    }
    let (work_dir, new_artifact, keys, length) = (
        work.path().to_path_buf(),
        artifact.to_path_buf(),
        state.release_keys.clone(),
        release.length,
    );
    let built = tokio::task::spawn_blocking(move || build_packages(&work_dir, &new_artifact, length, &inputs, &keys))
        .await
        .map_err(|e| AppError::internal(&what, e))?
        .map_err(|e| AppError::internal(&what, e))?;
    let mut recorded = Vec::new();
    for b in built {
        let delta = DeltaRecord {
            component: release.component,
            target_name: DeltaRecord::target_name_for(release.component, &b.from_version, &release.version),
            from_version: b.from_version,
            to_version: release.version.clone(),
            length: b.length,
            sha256: b.sha256,
            created_at: now_ms(),
        };
        let key = delta_key(&delta);
        state
            .store
            .put_file(&key, &b.path)
            .await
            .map_err(|e| AppError::store(&format!("storing delta package {key}"), e))?;
        state
            .registry
            .put_delta(&delta)
            .await
            .map_err(|e| AppError::store(&format!("recording delta {}", delta.target_name), e))?;
        tracing::info!(component = %delta.component, from = %delta.from_version, to = %delta.to_version,
            length = delta.length, full = release.length, "delta package built");
        recorded.push(delta);
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(v: &str) -> ReleaseRecord {
        ReleaseRecord {
            component: Component::Main,
            version: v.parse().unwrap(),
            device_types: vec![],
            target_name: format!("main/{v}.ferry"),
            length: 1,
            sha256: "ab".into(),
            blacklist: vec![],
            go_live: None,
            created_at: 0,
            deltas: vec![],
            halted: None,
        }
    }

    fn versions(rs: Vec<&ReleaseRecord>) -> Vec<String> {
        rs.iter().map(|r| r.version.to_string()).collect()
    }

    #[test]
    fn live_patches_are_never_delta_targets_or_bases() {
        let rs = [rel("1.0.0"), rel("1.0.0+lp1"), rel("1.0.0+lp2")];
        let fleet: BTreeSet<Version> = ["1.0.0+lp1".parse().unwrap()].into();
        assert!(choose_bases(&rs, Component::Main, &"1.0.0+lp2".parse().unwrap(), &fleet).is_empty());
        let got = choose_bases(&rs, Component::Main, &"1.1.0".parse().unwrap(), &fleet);
        assert_eq!(versions(got), ["1.0.0"], "the previous full release is the base, not the patch");
    }

    #[test]
    fn bases_are_the_previous_release_and_older_ones_the_fleet_runs() {
        let rs = [rel("1.0.0"), rel("1.1.0"), rel("1.2.0"), rel("2.0.0")];
        let fleet: BTreeSet<Version> = ["1.0.0".parse().unwrap(), "2.0.0".parse().unwrap()].into();
        let got = choose_bases(&rs, Component::Main, &"1.3.0".parse().unwrap(), &fleet);
        assert_eq!(versions(got), ["1.2.0", "1.0.0"]);
    }

    #[test]
    fn first_release_has_no_base_and_other_components_are_ignored() {
        let mut agent = rel("0.5.0");
        agent.component = Component::Agent;
        let rs = [agent];
        assert!(choose_bases(&rs, Component::Main, &"1.0.0".parse().unwrap(), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn delta_keys_are_content_addressed() {
        let d = DeltaRecord {
            component: Component::Main,
            from_version: "1.0.0".parse().unwrap(),
            to_version: "1.1.0".parse().unwrap(),
            target_name: "main/1.0.0_1.1.0.delta".into(),
            length: 1,
            sha256: "cd".into(),
            created_at: 0,
        };
        assert_eq!(delta_key(&d), "main/cd.1.0.0_1.1.0.delta");
    }
}
