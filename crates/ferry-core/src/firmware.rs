//! Firmware metadata and the go-live decision of an upgrade instruction.
//!
//! The server keeps one [`FirmwareMetadata`] per firmware (name, type, vendor, vendor public
//! key, unpack rule, expected hardware interfaces) and publishes its canonical bytes as the TUF
//! target [`FirmwareMetadata::target_name`], so the targets role signs it. The agent keeps the
//! verified copy per firmware and takes the vendor key and unpack rule from it.
//!
//! The go-live time of a release is a `custom.go_live` field (Unix ms) of its signed TUF target;
//! [`go_live_reached`] is the agent's own decision, by its own clock.

use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// Unpack rules a firmware may name (the `ferry-sandbox` unpack rules).
pub const UNPACK_RULES: &[&str] = &["tar", "tar.gz", "tar.zst", "zip", "cpio", "squashfs", "raw"];

/// Largest canonical metadata document accepted (bytes).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Kinds of hardware interface a firmware may expect.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    /// A serial device (`/dev/ttyS0`).
    Serial,
    /// A GPIO line or chip (`/sys/class/gpio/gpio17`).
    Gpio,
    /// Any other file the firmware opens (`/etc/calibration.bin`).
    File,
}

/// One hardware interface the firmware expects; the sandbox gives it a stub.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareInterface {
    /// Which kind.
    pub kind: InterfaceKind,
    /// Absolute path the firmware uses.
    pub path: String,
}

/// What the device knows about one firmware: managed on the server, signed through TUF.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareMetadata {
    /// Firmware id (`[a-z0-9][a-z0-9._-]{0,63}`), also the TUF target `firmware/{id}.json`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Firmware type (`application`, `bootloader`, `modem`, …; free-form).
    #[serde(rename = "type")]
    pub kind: String,
    /// Vendor name.
    pub vendor: String,
    /// The vendor's public key that signs its package envelopes: a TUF key object
    /// (`{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<hex>"}}`, as in a Ferry
    /// public key file).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub vendor_public_key: serde_json::Value,
    /// How the package unpacks (one of [`UNPACK_RULES`]).
    pub unpack_rule: String,
    /// Hardware the firmware expects (stubbed in the sandbox).
    #[serde(default)]
    pub interfaces: Vec<HardwareInterface>,
}

/// Why firmware metadata is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    /// The id is not usable as a target name.
    #[error(
        "firmware id '{0}' is invalid: use 1 to 64 of a-z 0-9 . _ - starting with a letter or digit"
    )]
    BadId(String),
    /// The path id and the document id differ.
    #[error("the document describes firmware '{found}' but was sent for '{expected}'")]
    IdMismatch {
        /// Id from the request path.
        expected: String,
        /// Id in the document.
        found: String,
    },
    /// A required text field is empty.
    #[error("firmware '{id}': field '{field}' must not be empty")]
    Empty {
        /// Firmware id.
        id: String,
        /// The field.
        field: &'static str,
    },
    /// Unknown unpack rule.
    #[error("firmware '{id}': unpack rule '{rule}' is unknown; use one of {}", UNPACK_RULES.join(", "))]
    UnpackRule {
        /// Firmware id.
        id: String,
        /// The rule given.
        rule: String,
    },
    /// A hardware interface path is not absolute or climbs out.
    #[error("firmware '{id}': interface path '{path}' must be absolute and contain no '..'")]
    InterfacePath {
        /// Firmware id.
        id: String,
        /// The path.
        path: String,
    },
    /// The document is not valid JSON of this shape, or too large.
    #[error("firmware metadata is not valid: {0}")]
    Parse(String),
}

/// Whether `id` is a valid firmware id.
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
        && !id.contains("..")
}

impl FirmwareMetadata {
    /// TUF target name of firmware `id`'s metadata: `firmware/{id}.json`.
    pub fn target_name(id: &str) -> String {
        format!("firmware/{id}.json")
    }

    /// Checks every field (not the key's encoding, which needs the crypto crate).
    pub fn validate(&self) -> Result<(), FirmwareError> {
        if !valid_id(&self.id) {
            return Err(FirmwareError::BadId(self.id.clone()));
        }
        let empty = |field: &'static str| FirmwareError::Empty {
            id: self.id.clone(),
            field,
        };
        for (field, value) in [
            ("name", &self.name),
            ("type", &self.kind),
            ("vendor", &self.vendor),
        ] {
            if value.trim().is_empty() {
                return Err(empty(field));
            }
        }
        if !self.vendor_public_key.is_object() {
            return Err(empty("vendor_public_key"));
        }
        if !UNPACK_RULES.contains(&self.unpack_rule.as_str()) {
            return Err(FirmwareError::UnpackRule {
                id: self.id.clone(),
                rule: self.unpack_rule.clone(),
            });
        }
        for i in &self.interfaces {
            if !i.path.starts_with('/') || i.path.split('/').any(|c| c == "..") {
                return Err(FirmwareError::InterfacePath {
                    id: self.id.clone(),
                    path: i.path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Parses and validates a document sent for firmware `id`.
    pub fn parse_for(id: &str, bytes: &[u8]) -> Result<FirmwareMetadata, FirmwareError> {
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(FirmwareError::Parse(format!(
                "{} bytes, at most {MAX_METADATA_BYTES} allowed",
                bytes.len()
            )));
        }
        let m: FirmwareMetadata =
            serde_json::from_slice(bytes).map_err(|e| FirmwareError::Parse(e.to_string()))?;
        if m.id != id {
            return Err(FirmwareError::IdMismatch {
                expected: id.into(),
                found: m.id,
            });
        }
        m.validate()?;
        Ok(m)
    }

    /// The canonical bytes that are stored, published and hashed (fields in declaration order,
    /// compact JSON).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("firmware metadata always serialises")
    }
}

/// The agent's go-live decision: a release with signed go-live `go_live` may be installed at
/// `now` (both Unix ms) only when `now >= go_live`; no go-live means at once.
pub fn go_live_reached(go_live: Option<UnixMillis>, now: UnixMillis) -> bool {
    go_live.is_none_or(|g| now >= g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FirmwareMetadata {
        FirmwareMetadata {
            id: "cam-fw".into(),
            name: "Camera firmware".into(),
            kind: "application".into(),
            vendor: "Acme".into(),
            vendor_public_key: serde_json::json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00"}}),
            unpack_rule: "tar".into(),
            interfaces: vec![HardwareInterface {
                kind: InterfaceKind::Serial,
                path: "/dev/ttyS1".into(),
            }],
        }
    }

    #[test]
    fn install_waits_until_go_live_by_the_given_clock() {
        assert!(go_live_reached(None, 0));
        assert!(!go_live_reached(Some(1_000), 999));
        assert!(go_live_reached(Some(1_000), 1_000));
        assert!(go_live_reached(Some(1_000), 5_000));
    }

    #[test]
    fn metadata_round_trips_through_its_canonical_bytes() {
        let m = sample();
        let bytes = m.canonical_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""type":"application""#));
        assert!(String::from_utf8_lossy(&bytes).contains(r#""kind":"serial""#));
        assert_eq!(FirmwareMetadata::parse_for("cam-fw", &bytes).unwrap(), m);
    }

    #[test]
    fn refuses_bad_ids_rules_paths_and_mismatched_documents() {
        let bytes = sample().canonical_bytes();
        assert!(matches!(
            FirmwareMetadata::parse_for("other", &bytes),
            Err(FirmwareError::IdMismatch { .. })
        ));
        for bad in ["", "../x", "A", "a/b", "-a", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
        let mut m = sample();
        m.unpack_rule = "rar".into();
        assert!(matches!(
            m.validate(),
            Err(FirmwareError::UnpackRule { .. })
        ));
        let mut m = sample();
        m.interfaces[0].path = "/dev/../etc/shadow".into();
        assert!(matches!(
            m.validate(),
            Err(FirmwareError::InterfacePath { .. })
        ));
        let mut m = sample();
        m.vendor = " ".into();
        assert!(matches!(
            m.validate(),
            Err(FirmwareError::Empty {
                field: "vendor",
                ..
            })
        ));
        assert!(matches!(
            FirmwareMetadata::parse_for("cam-fw", br#"{"id":"cam-fw"}"#),
            Err(FirmwareError::Parse(_))
        ));
    }
}
