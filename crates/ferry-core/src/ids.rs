//! Identifiers: devices and the two components every device runs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An invalid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Device ids are 1–64 characters of `A-Z a-z 0-9 . _ -` (IMEI-like ids fit).
    #[error("device id '{0}' is invalid: use 1-64 characters from A-Z a-z 0-9 . _ - (for example an IMEI)")]
    BadDeviceId(String),
    /// Components are `main` or `agent`.
    #[error("component '{0}' is unknown: expected 'main' (the managed program) or 'agent' (the upgrader)")]
    BadComponent(String),
}

/// A device's identity (IMEI-like), safe to use in paths and URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "dev-0001"))]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates and wraps a device id.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && s != "."
            && s != "..";
        if ok { Ok(DeviceId(s)) } else { Err(IdError::BadDeviceId(s)) }
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::new(s)
    }
}
impl TryFrom<String> for DeviceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::new(s)
    }
}
impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}
impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two separately upgradable programs on a device, each in its own storage space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Component {
    /// The managed application or firmware.
    Main,
    /// The upgrader: the Ferry agent itself.
    Agent,
}

impl Component {
    /// Both components, agent first (the upgrader is brought up to date before it installs the main program).
    pub const ALL: [Component; 2] = [Component::Agent, Component::Main];
    /// Lowercase name used in paths, URLs and TUF target names.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Main => "main",
            Component::Agent => "agent",
        }
    }
}

impl FromStr for Component {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" => Ok(Component::Main),
            "agent" => Ok(Component::Agent),
            other => Err(IdError::BadComponent(other.to_string())),
        }
    }
}
impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_imei_like_ids() {
        assert!(DeviceId::new("356938035643809").is_ok());
        assert!(DeviceId::new("gw-01.site_a").is_ok());
    }

    #[test]
    fn rejects_ids_that_could_escape_a_path() {
        for bad in ["", "..", ".", "a/b", "a b", "x\0", &"a".repeat(65)] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn component_parses_and_prints_lowercase() {
        assert_eq!("agent".parse::<Component>().unwrap(), Component::Agent);
        assert_eq!(Component::Main.to_string(), "main");
        assert!("firmware".parse::<Component>().is_err());
    }
}
