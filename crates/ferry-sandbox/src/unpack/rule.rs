//! The unpack rule named in a firmware's metadata.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a firmware package is turned into a file tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnpackRule {
    /// POSIX/GNU tar.
    #[serde(rename = "tar")]
    Tar,
    /// gzip-compressed tar.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// zstd-compressed tar.
    #[serde(rename = "tar.zst")]
    TarZstd,
    /// zip (stored or deflate).
    #[serde(rename = "zip")]
    Zip,
    /// cpio in the `newc` (SVR4, "070701"/"070702") format, as initramfs uses.
    #[serde(rename = "cpio")]
    Cpio,
    /// squashfs 4.0 (gzip or zstd compressed).
    #[serde(rename = "squashfs")]
    Squashfs,
    /// A raw image copied as one file named like the package.
    #[serde(rename = "raw")]
    Raw,
}

impl UnpackRule {
    /// Every rule, in declaration order.
    pub const ALL: [UnpackRule; 7] = [
        UnpackRule::Tar,
        UnpackRule::TarGz,
        UnpackRule::TarZstd,
        UnpackRule::Zip,
        UnpackRule::Cpio,
        UnpackRule::Squashfs,
        UnpackRule::Raw,
    ];

    /// The rule's name as written in metadata (`tar`, `tar.gz`, `tar.zst`, `zip`, `cpio`,
    /// `squashfs`, `raw`).
    pub fn name(self) -> &'static str {
        match self {
            UnpackRule::Tar => "tar",
            UnpackRule::TarGz => "tar.gz",
            UnpackRule::TarZstd => "tar.zst",
            UnpackRule::Zip => "zip",
            UnpackRule::Cpio => "cpio",
            UnpackRule::Squashfs => "squashfs",
            UnpackRule::Raw => "raw",
        }
    }
}

impl fmt::Display for UnpackRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for UnpackRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "tgz" => "tar.gz",
            "tar.zstd" | "tzst" => "tar.zst",
            "squashfs4" | "sqfs" => "squashfs",
            "newc" => "cpio",
            other => other,
        };
        UnpackRule::ALL
            .into_iter()
            .find(|r| r.name() == alias)
            .ok_or_else(|| {
                format!(
                    "unknown unpack rule '{s}'; expected one of: tar, tar.gz, tar.zst, zip, cpio, \
                     squashfs, raw"
                )
            })
    }
}
