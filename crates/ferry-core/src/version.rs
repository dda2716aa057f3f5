//! Software versions (semantic versioning), ordered so downgrades can be refused.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A semantic version such as `1.4.2`; compared by semver precedence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
}

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
    fn round_trips_through_json_as_a_string() {
        let v = Version::new(1, 2, 3);
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(j, "\"1.2.3\"");
        assert_eq!(serde_json::from_str::<Version>(&j).unwrap(), v);
        assert!(serde_json::from_str::<Version>("\"x.y\"").is_err());
    }
}
