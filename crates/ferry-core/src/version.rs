//! Software versions (semantic versioning), ordered so downgrades can be refused.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A semantic version such as `1.4.2`; compared by semver precedence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "1.2.3"))]
pub struct Version(semver::Version);

/// A version string that is not valid semver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a version (expected semantic version like 1.2.3): {reason}")]
pub struct VersionError {
    /// The text that failed to parse.
    pub input: String,
    /// Why it failed.
    pub reason: String,
}

impl Version {
    /// Builds `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version(semver::Version::new(major, minor, patch))
    }
    /// The underlying semver value.
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }

    /// For a live-patch version — build metadata whose first identifier is `lp` followed by
    /// digits, e.g. `1.0.0+lp1` — the version it patches (`1.0.0`); `None` for every other
    /// version. A live patch sorts just above the version it patches and below the next release.
    pub fn live_patch_base(&self) -> Option<Version> {
        let first = self.0.build.as_str().split('.').next()?;
        let digits = first.strip_prefix(LIVE_PATCH_BUILD_PREFIX)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut base = self.0.clone();
        base.build = semver::BuildMetadata::EMPTY;
        Some(Version(base))
    }
}

/// Build-metadata prefix that marks a live-patch version (`1.0.0+lp1` patches `1.0.0`).
pub const LIVE_PATCH_BUILD_PREFIX: &str = "lp";

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        semver::Version::parse(s.trim()).map(Version).map_err(|e| VersionError {
            input: s.to_string(),
            reason: e.to_string(),
        })
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.to_string()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_semver_precedence_not_text() {
        let a: Version = "1.10.0".parse().unwrap();
        let b: Version = "1.9.3".parse().unwrap();
        assert!(a > b);
        let pre: Version = "2.0.0-rc.1".parse().unwrap();
        assert!(pre < "2.0.0".parse().unwrap());
    }

    #[test]
    fn rejects_non_semver_with_the_offending_text() {
        let err = "v1".parse::<Version>().unwrap_err();
        assert_eq!(err.input, "v1");
        assert!(err.to_string().contains("'v1'"));
    }

    #[test]
    fn live_patch_version_names_its_base_and_sorts_between_releases() {
        let lp: Version = "1.0.0+lp1".parse().unwrap();
        assert_eq!(lp.live_patch_base(), Some(Version::new(1, 0, 0)));
        assert!(lp > Version::new(1, 0, 0) && lp < Version::new(1, 0, 1));
        let lp2: Version = "2.1.0-rc.1+lp.7".parse().unwrap();
        assert_eq!(lp2.live_patch_base(), Some("2.1.0-rc.1".parse().unwrap()));
        for plain in ["1.0.0", "1.0.0+build.5", "1.0.0+lpx", "1.0.0+help"] {
            assert_eq!(plain.parse::<Version>().unwrap().live_patch_base(), None, "{plain}");
        }
    }

    #[test]
    fn round_trips_through_json_as_a_string() {
        let v = Version::new(1, 2, 3);
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(j, "\"1.2.3\"");
        assert_eq!(serde_json::from_str::<Version>(&j).unwrap(), v);
        assert!(serde_json::from_str::<Version>("\"x.y\"").is_err());
    }
}
