//! The install gate the agent runs on a vendor package: open the envelope (decrypt, verify the
//! vendor signature), unpack by the firmware's unpack rule, scan, and decide.

use crate::envelope::{self, EnvelopeError, GroupSecret, Opened};
use crate::scan::{Policy, RuleDb, ScanError, ScanReport, scan_path};
use crate::unpack::{self, Limits, UnpackError, UnpackRule, Unpacked};
use ferry_artifact::keys::PublicKey;
use std::path::{Path, PathBuf};

/// What the gate needs to know about the firmware (from its signed metadata).
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    /// The encrypted, signed package.
    pub envelope: &'a Path,
    /// This device group's secret.
    pub group: &'a GroupSecret,
    /// The firmware vendor's trusted signing keys.
    pub vendor_keys: &'a [PublicKey],
    /// How the package unpacks.
    pub rule: UnpackRule,
    /// Unpack limits.
    pub limits: Limits,
    /// A new directory the gate works in (package and unpacked tree).
    pub work_dir: &'a Path,
}

/// A package that passed every gate step without a blocking finding.
#[derive(Debug, Clone)]
pub struct GatePassed {
    /// What opening the envelope established.
    pub opened: Opened,
    /// The unpacked tree.
    pub unpacked: Unpacked,
    /// The scan report (its verdict is pass or warn).
    pub report: ScanReport,
}

/// Why the gate refused a package, by step.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The envelope did not open (wrong key, tampered, truncated, unsigned, untrusted).
    #[error("package refused before unpacking: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The unpack rule refused the archive.
    #[error("package refused while unpacking: {0}")]
    Unpack(#[from] UnpackError),
    /// The scan could not run.
    #[error("package could not be scanned: {0}")]
    Scan(#[from] ScanError),
    /// The scan found blocking problems.
    #[error("package blocked by the static scan:\n{0}")]
    Blocked(Box<ScanReport>),
    /// The work directory already exists.
    #[error("{}: the gate's work directory already exists", .0.display())]
    WorkDirExists(PathBuf),
}

/// Runs the gate: nothing is unpacked unless the envelope opened and its vendor signature
/// verified; the tree is scanned with `rules` and `policy`.
pub fn run(input: &GateInput, rules: &RuleDb, policy: &Policy) -> Result<GatePassed, GateError> {
    if input.work_dir.exists() {
        return Err(GateError::WorkDirExists(input.work_dir.into()));
    }
    std::fs::create_dir_all(input.work_dir).map_err(|source| {
        GateError::Envelope(EnvelopeError::Io {
            path: input.work_dir.into(),
            action: "create the gate's work directory",
            source,
        })
    })?;
    let package = input.work_dir.join("package");
    let opened = envelope::open(input.envelope, input.group, input.vendor_keys, &package)?;
    let root = input.work_dir.join("rootfs");
    let unpacked = unpack::unpack(input.rule, &package, &root, &input.limits)?;
    let report = scan_path(&root, rules, policy)?;
    if report.blocks() {
        return Err(GateError::Blocked(Box::new(report)));
    }
    Ok(GatePassed {
        opened,
        unpacked,
        report,
    })
}
