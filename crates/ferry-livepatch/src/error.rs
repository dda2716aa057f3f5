//! Errors of patch generation, application and rollback.

use std::path::PathBuf;

/// Everything that can go wrong while building, applying or rolling back a live patch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An ELF file could not be parsed or lacks something the patch needs.
    #[error("{path}: {reason}")]
    Elf {
        /// The ELF file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The DWARF debug information is missing or not understood.
    #[error("DWARF of {path}: {reason}")]
    Dwarf {
        /// The ELF file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two builds cannot be turned into a patch.
    #[error("cannot build a patch: {0}")]
    Unpatchable(String),
    /// The patch file is malformed, unsigned or signed by an unexpected key.
    #[error("patch bundle: {0}")]
    Bundle(String),
    /// The running process is not the build the patch was made for.
    #[error(
        "process {pid} runs build {running}, but the patch is for build {expected}: build the patch \
         from the binary the process runs"
    )]
    BuildIdMismatch {
        /// The target process.
        pid: i32,
        /// Build id of /proc/PID/exe.
        running: String,
        /// Build id recorded in the patch.
        expected: String,
    },
    /// A ptrace or /proc operation on the target failed.
    #[error("process {pid}: {what}: {source}")]
    Os {
        /// The process or thread id.
        pid: i32,
        /// The operation.
        what: String,
        /// The errno.
        source: std::io::Error,
    },
    /// The target process did something unexpected (exited, stopped for another reason).
    #[error("process {pid}: {reason}")]
    Target {
        /// The process or thread id.
        pid: i32,
        /// What happened.
        reason: String,
    },
    /// No moment was found at which every thread was at a safe point.
    #[error(
        "no safe moment found after {attempts} attempts: {reason}; the process was left unchanged — \
         retry under lighter load or add safe points"
    )]
    NoSafePoint {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        reason: String,
    },
    /// The patch author's helper faulted or refused; the patch was rolled back.
    #[error(
        "helper {helper} failed in thread {tid} ({reason}); the patch was rolled back and the \
         process keeps running the old code"
    )]
    HelperFailed {
        /// The helper function.
        helper: String,
        /// The thread that ran it.
        tid: i32,
        /// Signal or return value.
        reason: String,
    },
    /// The checkpoint does not belong to this process or patch.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The demo could not be built or run.
    #[error("demo: {0}")]
    Demo(String),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Os`] from the last errno.
    pub(crate) fn last_os(pid: i32, what: impl Into<String>) -> Error {
        Error::Os {
            pid,
            what: what.into(),
            source: std::io::Error::last_os_error(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
