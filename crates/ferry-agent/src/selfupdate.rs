//! Upgrading the upgrader: trial-run the new agent binary before switching to it, then
//! replace this process with it (`exec`) so the rest of the run uses the new agent.
//!
//! The main program is never stopped by an agent update.

use crate::error::AgentError;
use crate::health::{self, CommandEnv};
use crate::slots::Slot;
use ferry_core::Version;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the agent binary inside an agent release.
pub const BINARY: &str = "ferry";

/// What runs the new agent once `current` points at it. The default replaces this process
/// ([`exec_current`]); embedders and tests may substitute their own.
pub type RestartHook = Box<dyn FnMut(&Path) -> Result<(), AgentError> + Send + Sync>;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `<binary> agent self-test`; `Ok(Err(reason))` when it fails or exceeds `timeout`.
pub async fn trial_run(
    binary: &Path,
    timeout: Duration,
    output_file: &Path,
) -> Result<Result<(), String>, AgentError> {
    if !binary.is_file() {
        return Ok(Err(format!(
            "the release has no agent binary at {}",
            binary.display()
        )));
    }
    let cwd = binary.parent().unwrap_or(Path::new("/"));
    let cmd = format!(
        "exec {} agent self-test",
        shell_quote(&binary.to_string_lossy())
    );
    let outcome = health::run(&cmd, cwd, &CommandEnv::default(), timeout, output_file).await?;
    if outcome.success {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "trial run `{} agent self-test` failed: {}",
            binary.display(),
            outcome.describe()
        )))
    }
}

/// Replaces this process with `binary`, keeping argv; returns only if `exec` failed.
pub fn exec_current(binary: &Path) -> AgentError {
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| binary.as_os_str().to_owned());
    let source = std::process::Command::new(binary)
        .arg0(arg0)
        .args(args)
        .exec();
    AgentError::Exec {
        path: binary.to_path_buf(),
        source,
    }
}

/// The default restart hook: `exec` the binary.
pub fn exec_hook() -> RestartHook {
    Box::new(|binary: &Path| Err(exec_current(binary)))
}

/// The agent binary of `version` in the upgrader's storage space.
pub fn binary_of(slot: &Slot, version: &Version) -> PathBuf {
    slot.release_dir(version).join(BINARY)
}

/// The `current/ferry` path the agent runs from.
pub fn current_binary(slot: &Slot) -> PathBuf {
    slot.current_link().join(BINARY)
}

/// The upgrader release this process runs from, when its executable lives in `slot`.
///
/// `None` when the agent runs from elsewhere (a package-managed path, a test): it then
/// takes a persisted switch as done by itself.
pub fn running_release(slot: &Slot) -> Option<Version> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let releases = slot.releases_dir().canonicalize().ok()?;
    let rel = exe.strip_prefix(&releases).ok()?;
    rel.components().next()?.as_os_str().to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join(BINARY);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn trial_run_passes_only_for_a_working_self_test() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let good = script(dir.path(), r#"[ "$1 $2" = "agent self-test" ] && echo ok"#);
        trial_run(&good, Duration::from_secs(5), &out)
            .await
            .unwrap()
            .unwrap();
        let bad = script(dir.path(), "echo 'segfault' >&2; exit 139");
        let why = trial_run(&bad, Duration::from_secs(5), &out)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            why.contains("exit status 139") && why.contains("segfault"),
            "{why}"
        );
        let hang = script(dir.path(), "sleep 30");
        let why = trial_run(&hang, Duration::from_millis(300), &out)
            .await
            .unwrap()
            .unwrap_err();
        assert!(why.contains("timed out"), "{why}");
        let why = trial_run(
            &dir.path().join("missing/ferry"),
            Duration::from_secs(1),
            &out,
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(why.contains("no agent binary"), "{why}");
    }

    #[test]
    fn quotes_paths_for_the_shell() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn a_test_process_does_not_run_from_the_upgrader_space() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::open(ferry_core::Component::Agent, dir.path()).unwrap();
        assert_eq!(running_release(&slot), None);
    }
}
