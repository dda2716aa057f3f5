//! A live patch as a `.ferry` artifact: the signed bundle as the one payload of a release-signed
//! artifact whose manifest says what it patches, so the server and agent deliver it like any
//! other update.

use crate::bundle::PatchBundle;
use crate::error::{Error, Result};
use ferry_artifact::artifact::{self, BuildSpec, Hooks, LivePatch, Manifest};
use ferry_artifact::keys::{PublicKey, SigningKey};
use ferry_core::{Component, Version};
use std::path::Path;

/// Payload path of the bundle inside a live-patch artifact.
pub const BUNDLE_PAYLOAD: &str = "patch.json";

/// What to put in a live-patch artifact besides the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRelease {
    /// The main-program version whose running process the patch applies to.
    pub patches: Version,
    /// The artifact's version: `<patches>+lpN`.
    pub version: Version,
    /// Compatible device types (empty = any).
    pub device_types: Vec<String>,
}

/// Parses a signed bundle, accepting a signature by any of `keys`.
pub fn verify_bundle(bytes: &[u8], keys: &[PublicKey]) -> Result<PatchBundle> {
    let mut last = Error::Bundle("no key to verify the patch bundle with".into());
    for key in keys {
        match PatchBundle::from_signed_bytes(bytes, key) {
            Ok(b) => return Ok(b),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Packs the signed bundle at `bundle` (its signature checked with `bundle_keys`) into a
/// live-patch artifact at `out`, signed with the release key `key`. The build ids in the
/// manifest are read from the bundle.
pub fn build_artifact(
    bundle: &Path,
    bundle_keys: &[PublicKey],
    release: PatchRelease,
    out: &Path,
    key: &SigningKey,
) -> Result<Manifest> {
    let bytes = std::fs::read(bundle).map_err(|e| Error::io(bundle, e))?;
    let parsed = verify_bundle(&bytes, bundle_keys)
        .map_err(|e| Error::Bundle(format!("{}: {e}", bundle.display())))?;
    let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("<temp dir>"), e))?;
    let copy = dir.path().join(BUNDLE_PAYLOAD);
    std::fs::write(&copy, &bytes).map_err(|e| Error::io(&copy, e))?;
    let spec = BuildSpec {
        component: Component::Main,
        version: release.version,
        device_types: release.device_types,
        hooks: Hooks::default(),
    };
    let lp = LivePatch {
        patches: release.patches,
        target_build_id: parsed.target_build_id.clone(),
        new_build_id: parsed.new_build_id.clone(),
        bundle: BUNDLE_PAYLOAD.into(),
    };
    artifact::build_with(dir.path(), spec, Some(lp), out, Some(key))
        .map_err(|e| Error::Bundle(format!("building the live-patch artifact {}: {e}", out.display())))
}
