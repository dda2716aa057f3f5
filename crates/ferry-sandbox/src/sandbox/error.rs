//! Errors of starting and running a sandbox.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A sandbox could not be prepared, started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A host-side file operation failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The specification is unusable.
    #[error("invalid sandbox specification: {0}")]
    BadSpec(String),
    /// Setting up the isolation or starting the command failed.
    #[error(
        "starting the sandboxed command failed: {0} (the namespace backend needs a kernel with \
         user, PID, mount and network namespaces, and root or an unprivileged user namespace)"
    )]
    Start(#[source] io::Error),
    /// Building the Landlock or seccomp rules failed.
    #[error("preparing the {layer} restrictions failed: {reason}")]
    Policy {
        /// `landlock` or `seccomp`.
        layer: &'static str,
        /// The underlying failure.
        reason: String,
    },
    /// Waiting for the command failed.
    #[error("waiting for the sandboxed command failed: {0}")]
    Wait(#[source] io::Error),
    /// The QEMU backend's host tools or guest kernel are missing.
    #[error("the QEMU sandbox cannot start: {0}")]
    GuestMissing(String),
    /// The QEMU guest did not boot, or its service did not come up.
    #[error("the QEMU guest failed: {reason} (console log {}, last lines: {tail})", console.display())]
    Guest {
        /// What went wrong.
        reason: String,
        /// The guest's serial console log.
        console: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// The command ran past its time limit and was killed.
    #[error("the sandboxed command ran longer than {after:?} and was killed")]
    Timeout {
        /// The limit.
        after: Duration,
    },
}

impl SandboxError {
    pub(crate) fn wait(e: io::Error) -> SandboxError {
        SandboxError::Wait(e)
    }

    pub(crate) fn io(
        path: &std::path::Path,
        action: &str,
    ) -> impl FnOnce(io::Error) -> SandboxError {
        let (path, action) = (path.to_path_buf(), action.to_string());
        move |source| SandboxError::Io {
            path,
            action,
            source,
        }
    }
}
