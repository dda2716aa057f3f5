//! The artifact manifest and its validation.

use super::error::ArtifactError;
use super::payload_path::unsafe_reason;
use super::{FORMAT, UNPACKED_MANIFEST_NAME};
use ferry_core::{Component, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// What an artifact holds: `ferry-manifest.json`, signed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`] (`ferry-artifact/1`).
    pub format: String,
    /// Component the artifact installs.
    pub component: Component,
    /// Version it installs.
    pub version: Version,
    /// Compatible device types (empty = any).
    pub device_types: Vec<String>,
    /// Every payload file, sorted by path.
    pub payloads: Vec<PayloadEntry>,
    /// Scripts run around installation.
    pub hooks: Hooks,
    /// Present when the artifact is a live patch of the running main program instead of a
    /// release tree (absent in every earlier manifest: a full release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_patch: Option<LivePatch>,
}

/// What a live-patch artifact patches. Its version is `<patches>+lpN`
/// ([`Version::live_patch_base`]), its only payload is the signed `ferry-livepatch` bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePatch {
    /// The exact main-program version whose running process the patch applies to.
    pub patches: Version,
    /// GNU build id (lowercase hex) of the binary the patch applies to.
    pub target_build_id: String,
    /// GNU build id (lowercase hex) of the build the new code comes from.
    pub new_build_id: String,
    /// Payload path of the signed patch bundle.
    pub bundle: String,
}

/// One payload file: stored as `payload/<path>`, unpacked to `<dest>/<path>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// sha256 of the content, lowercase hex.
    pub sha256: String,
    /// Length in bytes.
    pub length: u64,
    /// Unix permission bits (unpacked masked to 0o777: never setuid, setgid or sticky).
    pub mode: u32,
}

/// Install hooks: payload paths (relative to the unpacked artifact) of executables the agent
/// runs before and after switching to the new version. Each must be a listed payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run before installing (e.g. to stop services or migrate data).
    pub pre_install: Option<String>,
    /// Run after installing (e.g. to restart services).
    pub post_install: Option<String>,
}

/// What to put in a new artifact's manifest besides the payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Component the artifact installs.
    pub component: Component,
    /// Version it installs.
    pub version: Version,
    /// Compatible device types (empty = any).
    pub device_types: Vec<String>,
    /// Hook payload paths.
    pub hooks: Hooks,
}

/// An artifact's manifest and signers, read without any trust decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The manifest (unverified).
    pub manifest: Manifest,
    /// Key ids of the signatures present (unverified).
    pub signer_keyids: Vec<String>,
    /// Size of the artifact file in bytes.
    pub size: u64,
}

impl Manifest {
    /// Parses and validates manifest bytes read from the artifact at `path`.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest, ArtifactError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ArtifactError::BadManifest {
                path: path.into(),
                reason: format!("not JSON: {e}"),
            })?;
        if let Some(format) = value.get("format").and_then(|f| f.as_str())
            && format != FORMAT
        {
            return Err(ArtifactError::UnsupportedFormat {
                path: path.into(),
                found: format.into(),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ArtifactError::BadManifest {
                path: path.into(),
                reason: e.to_string(),
            })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Checks the rules every manifest obeys: known format, at least one payload, safe and
    /// unique payload paths (none inside another, none named like the unpacked manifest),
    /// sha256 as 64 lowercase hex digits, permission bits only, hooks naming listed payloads.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), ArtifactError> {
        let bad = |reason: String| ArtifactError::BadManifest {
            path: path.into(),
            reason,
        };
        if self.format != FORMAT {
            return Err(ArtifactError::UnsupportedFormat {
                path: path.into(),
                found: self.format.clone(),
            });
        }
        if self.payloads.is_empty() {
            return Err(bad("it lists no payloads".into()));
        }
        let mut paths = BTreeSet::new();
        for p in &self.payloads {
            if let Some(reason) = unsafe_reason(&p.path) {
                return Err(bad(format!(
                    "payload path {:?} is unsafe: {reason}",
                    p.path
                )));
            }
            if p.path == UNPACKED_MANIFEST_NAME {
                return Err(bad(format!(
                    "payload path {UNPACKED_MANIFEST_NAME} is reserved"
                )));
            }
            if !paths.insert(p.path.as_str()) {
                return Err(bad(format!("payload {} is listed twice", p.path)));
            }
            if p.sha256.len() != 64
                || !p
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(bad(format!(
                    "payload {} sha256 {:?} is not 64 lowercase hex digits",
                    p.path, p.sha256
                )));
            }
            if p.mode > 0o7777 {
                return Err(bad(format!(
                    "payload {} mode {:o} has bits beyond 0o7777",
                    p.path, p.mode
                )));
            }
        }
        for p in &paths {
            let mut prefix = String::new();
            for segment in p
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map_or(&[][..], |(_, dirs)| dirs)
            {
                prefix.push_str(segment);
                if paths.contains(prefix.as_str()) {
                    return Err(bad(format!(
                        "payload {prefix} is a file but {p} needs it to be a directory"
                    )));
                }
                prefix.push('/');
            }
        }
        self.validate_live_patch(&paths).map_err(bad)?;
        for (name, hook) in [
            ("pre_install", &self.hooks.pre_install),
            ("post_install", &self.hooks.post_install),
        ] {
            if let Some(hook) = hook
                && !paths.contains(hook.as_str())
            {
                return Err(bad(format!(
                    "hook {name} = {hook:?} is not a listed payload"
                )));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// A live patch names its base in its version, patches the main program, carries only its
    /// bundle and runs no hooks; a version marked as a live patch needs the `live_patch` field.
    fn validate_live_patch(&self, paths: &BTreeSet<&str>) -> Result<(), String> {
        let base = self.version.live_patch_base();
        let Some(lp) = &self.live_patch else {
            return match base {
                Some(_) => Err(format!(
                    "version {} is a live-patch version (+lp…) but the manifest has no live_patch field; use a version without +lp for a full release",
                    self.version
                )),
                None => Ok(()),
            };
        };
        if base.as_ref() != Some(&lp.patches) {
            return Err(format!(
                "a live patch of {} must have a version {}+lpN, not {}",
                lp.patches, lp.patches, self.version
            ));
        }
        if self.component != Component::Main {
            return Err(format!("a live patch patches the main program, not {}", self.component));
        }
        if paths.len() != 1 || !paths.contains(lp.bundle.as_str()) {
            return Err(format!(
                "a live patch carries exactly one payload, its bundle {:?}",
                lp.bundle
            ));
        }
        if self.hooks != Hooks::default() {
            return Err("a live patch runs no install hooks".into());
        }
        for (name, id) in [("target_build_id", &lp.target_build_id), ("new_build_id", &lp.new_build_id)] {
            if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(format!("live_patch.{name} {id:?} is not a lowercase hex build id"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> PayloadEntry {
        PayloadEntry {
            path: path.into(),
            sha256: "0".repeat(64),
            length: 0,
            mode: 0o644,
        }
    }

    fn manifest(paths: &[&str]) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            component: Component::Main,
            version: Version::new(1, 0, 0),
            device_types: vec![],
            payloads: paths.iter().map(|p| entry(p)).collect(),
            hooks: Hooks::default(),
            live_patch: None,
        }
    }

    fn reason(m: &Manifest) -> String {
        m.validate(Path::new("a.ferry")).unwrap_err().to_string()
    }

    #[test]
    fn rejects_other_format_versions() {
        let mut m = manifest(&["x"]);
        m.format = "ferry-artifact/2".into();
        assert!(matches!(
            m.validate(Path::new("a")),
            Err(ArtifactError::UnsupportedFormat { .. })
        ));
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            Manifest::parse(Path::new("a"), &bytes),
            Err(ArtifactError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn rejects_traversal_and_duplicate_and_nested_file_paths() {
        assert!(reason(&manifest(&["../etc/passwd"])).contains("traversal"));
        assert!(reason(&manifest(&["a", "a"])).contains("listed twice"));
        assert!(reason(&manifest(&["a", "a/b"])).contains("needs it to be a directory"));
        assert!(reason(&manifest(&[UNPACKED_MANIFEST_NAME])).contains("reserved"));
        assert!(reason(&manifest(&[])).contains("no payloads"));
    }

    #[test]
    fn rejects_bad_hash_and_mode() {
        let mut m = manifest(&["a"]);
        m.payloads[0].sha256 = "ABC".into();
        assert!(reason(&m).contains("64 lowercase hex"));
        let mut m = manifest(&["a"]);
        m.payloads[0].mode = 0o10_0644;
        assert!(reason(&m).contains("0o7777"));
    }

    #[test]
    fn hooks_must_name_listed_payloads() {
        let mut m = manifest(&["hooks/pre"]);
        m.hooks.pre_install = Some("hooks/pre".into());
        m.validate(Path::new("a")).unwrap();
        m.hooks.post_install = Some("hooks/post".into());
        assert!(reason(&m).contains("post_install"));
    }

    fn live_patch() -> Manifest {
        let mut m = manifest(&["patch.json"]);
        m.version = "1.0.0+lp1".parse().unwrap();
        m.live_patch = Some(LivePatch {
            patches: Version::new(1, 0, 0),
            target_build_id: "ab12".into(),
            new_build_id: "cd34".into(),
            bundle: "patch.json".into(),
        });
        m
    }

    #[test]
    fn live_patch_manifest_validates_and_old_manifests_stay_full_releases() {
        live_patch().validate(Path::new("a")).unwrap();
        let bytes = serde_json::to_vec(&live_patch()).unwrap();
        assert_eq!(Manifest::parse(Path::new("a"), &bytes).unwrap(), live_patch());
        // A manifest written before the field existed parses as a full release, and a full
        // release serialises without it (same bytes as before).
        let full = manifest(&["a"]);
        let v = serde_json::to_value(&full).unwrap();
        assert!(v.get("live_patch").is_none());
        assert_eq!(Manifest::parse(Path::new("a"), &serde_json::to_vec(&v).unwrap()).unwrap().live_patch, None);
    }

    #[test]
    fn live_patch_must_match_its_version_component_and_payload() {
        let mut m = live_patch();
        m.version = "1.0.1+lp1".parse().unwrap();
        assert!(reason(&m).contains("1.0.0+lpN"), "{}", reason(&m));
        let mut m = live_patch();
        m.version = "1.0.1".parse().unwrap();
        assert!(reason(&m).contains("+lpN"));
        let mut m = live_patch();
        m.live_patch = None;
        assert!(reason(&m).contains("no live_patch field"));
        let mut m = live_patch();
        m.component = Component::Agent;
        assert!(reason(&m).contains("main program"));
        let mut m = live_patch();
        m.payloads.push(entry("extra"));
        assert!(reason(&m).contains("exactly one payload"));
        let mut m = live_patch();
        m.live_patch.as_mut().unwrap().target_build_id = "XYZ".into();
        assert!(reason(&m).contains("target_build_id"));
        let mut m = live_patch();
        m.hooks.pre_install = Some("patch.json".into());
        assert!(reason(&m).contains("hooks"));
    }

    #[test]
    fn rejects_unknown_manifest_fields() {
        let mut v = serde_json::to_value(manifest(&["a"])).unwrap();
        v["run_as_root"] = true.into();
        let err = Manifest::parse(Path::new("a"), &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("run_as_root"), "{err}");
    }
}
