//! Errors of rule databases and scanning.

use std::io;
use std::path::PathBuf;

/// A rule database was refused or a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading or writing a file failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The rule database has no signature next to it.
    #[error(
        "rule database {}: no signature (expected the signature file {}); only rule databases \
         signed by a trusted rule key are used",
        db.display(), sig.display()
    )]
    UnsignedRules {
        /// The database file.
        db: PathBuf,
        /// Where its signature was looked for.
        sig: PathBuf,
    },
    /// The signature does not verify or is by an untrusted key.
    #[error("rule database {source_name}: {reason}")]
    BadRuleSignature {
        /// Where the database came from.
        source_name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The database does not parse or has an invalid rule.
    #[error("rule database {source_name}: {reason}")]
    BadRules {
        /// Where the database came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// An older (or same-version but different) database was offered.
    #[error(
        "rule database version {offered} is refused: version {installed} is already installed, \
         and a rule database may only be replaced by a newer one"
    )]
    Rollback {
        /// Version installed now.
        installed: u64,
        /// Version offered.
        offered: u64,
    },
    /// A `.ferry` artifact could not be read or verified.
    #[error("{0}")]
    Artifact(#[from] ferry_artifact::artifact::ArtifactError),
    /// The artifact's payload could not be extracted safely.
    #[error("{0}")]
    Unpack(#[from] crate::unpack::UnpackError),
}
