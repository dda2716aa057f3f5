//! Running the main program's lifecycle commands: start (detached in its own session),
//! stop, and the health check with retries and time limits.

use crate::error::{AgentError, io_err};
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Environment a lifecycle command runs with, besides the agent's own.
#[derive(Debug, Clone, Default)]
pub struct CommandEnv {
    /// `(name, value)` pairs such as `FERRY_VERSION`.
    pub vars: Vec<(String, String)>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Exit status 0 within the time limit.
    pub success: bool,
    /// "exit status 1", "killed by signal 9", "timed out after 5 s".
    pub status: String,
    /// Last lines of its stdout and stderr.
    pub output: String,
}

impl CommandOutcome {
    /// One line for logs and reports: status plus output.
    pub fn describe(&self) -> String {
        if self.output.trim().is_empty() {
            self.status.clone()
        } else {
            format!("{}; output: {}", self.status, self.output.trim())
        }
    }
}

fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended abnormally".into(),
    }
}

fn tail(text: &str, max_lines: usize, max_chars: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let joined = lines[lines.len().saturating_sub(max_lines)..].join(" | ");
    if joined.len() > max_chars {
        let cut = joined.len() - max_chars;
        let start = (cut..joined.len())
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(joined.len());
        format!("…{}", &joined[start..])
    } else {
        joined
    }
}

/// Runs `sh -c cmd` in `cwd` with a time limit; output goes to `output_file` (then read back).
///
/// The command runs in its own process group, which is killed when the limit is reached.
pub async fn run(
    cmd: &str,
    cwd: &Path,
    env: &CommandEnv,
    timeout: Duration,
    output_file: &Path,
) -> Result<CommandOutcome, AgentError> {
    let out = std::fs::File::create(output_file)
        .map_err(|e| io_err(output_file, "create command output file", e))?;
    let err = out
        .try_clone()
        .map_err(|e| io_err(output_file, "open command output file", e))?;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| io_err(cwd, "run command", e))?;
    let pid = child.id();
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => return Err(io_err(cwd, "wait for command", e)),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: kill(2) with a negative pid signals the command's own process group only.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            None
        }
    };
    let text = std::fs::read_to_string(output_file).unwrap_or_default();
    let output = tail(&text, 20, 2000);
    Ok(match status {
        Some(s) => CommandOutcome {
            success: s.success(),
            status: describe_status(s),
            output,
        },
        None => CommandOutcome {
            success: false,
            status: format!("timed out after {} s", timeout.as_secs_f32()),
            output,
        },
    })
}

/// A started program: how its start command ended, once it has.
#[derive(Debug, Clone, Default)]
pub struct Started {
    exit: Arc<Mutex<Option<String>>>,
}

impl Started {
    /// The start command's exit, if it already ended with a failure status.
    pub fn failed_exit(&self) -> Option<String> {
        self.exit.lock().ok().and_then(|g| g.clone())
    }
}

/// Starts `sh -c cmd` in `cwd`, detached in its own session (`setsid`), so it survives the agent.
///
/// Its output is appended to `log`. The agent does not wait for it: a start command may
/// daemonize and exit, or run in the foreground for as long as the program runs.
pub fn start_detached(
    cmd: &str,
    cwd: &Path,
    env: &CommandEnv,
    log: &Path,
) -> Result<Started, AgentError> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| io_err(log, "open program log", e))?;
    let err = out
        .try_clone()
        .map_err(|e| io_err(log, "open program log", e))?;
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| io_err(cwd, "start program", e))?;
    let started = Started::default();
    let exit = started.exit.clone();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait()
            && !status.success()
            && let Ok(mut g) = exit.lock()
        {
            *g = Some(describe_status(status));
        }
    });
    Ok(started)
}

/// Health-check policy.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// The command; exit 0 = healthy.
    pub command: String,
    /// Limit for one try.
    pub timeout: Duration,
    /// Number of tries.
    pub tries: u32,
    /// Pause between tries.
    pub interval: Duration,
}

/// Runs the health check up to `tries` times; `Err` carries the last try's status and output.
pub async fn check(
    policy: &HealthPolicy,
    cwd: &Path,
    env: &CommandEnv,
    started: Option<&Started>,
    output_file: &Path,
) -> Result<Result<(), String>, AgentError> {
    let tries = policy.tries.max(1);
    let mut last = String::new();
    for attempt in 1..=tries {
        if attempt > 1 {
            tokio::time::sleep(policy.interval).await;
        }
        let outcome = run(&policy.command, cwd, env, policy.timeout, output_file).await?;
        if outcome.success {
            return Ok(Ok(()));
        }
        last = outcome.describe();
        tracing::warn!(
            "health check `{}` try {attempt}/{tries} failed: {last}",
            policy.command
        );
    }
    let mut reason = format!(
        "health check `{}` failed {tries} time(s): {last}",
        policy.command
    );
    if let Some(exit) = started.and_then(Started::failed_exit) {
        reason.push_str(&format!("; the start command ended with {exit}"));
    }
    Ok(Err(reason))
}

/// A scratch file for command output inside `state_dir`.
pub fn output_file(state_dir: &Path) -> PathBuf {
    state_dir.join("command-output.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_status_and_output_of_a_failing_command() {
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            "echo broken >&2; exit 3",
            dir.path(),
            &CommandEnv::default(),
            Duration::from_secs(5),
            &dir.path().join("o"),
        )
        .await
        .unwrap();
        assert!(!o.success);
        assert_eq!(o.status, "exit status 3");
        assert!(o.describe().contains("broken"));
    }

    #[tokio::test]
    async fn kills_a_command_that_exceeds_its_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let t = std::time::Instant::now();
        let o = run(
            "sleep 30",
            dir.path(),
            &CommandEnv::default(),
            Duration::from_millis(300),
            &dir.path().join("o"),
        )
        .await
        .unwrap();
        assert!(!o.success);
        assert!(o.status.contains("timed out"), "{}", o.status);
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn passes_the_environment_and_runs_in_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let env = CommandEnv {
            vars: vec![("FERRY_VERSION".into(), "1.2.3".into())],
        };
        let o = run(
            "test \"$FERRY_VERSION\" = 1.2.3 && test -f marker",
            dir.path(),
            &env,
            Duration::from_secs(5),
            &dir.path().join("marker"),
        )
        .await
        .unwrap();
        assert!(o.success, "{o:?}");
    }

    #[tokio::test]
    async fn health_check_retries_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let policy = HealthPolicy {
            command: "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 2 ]"
                .into(),
            timeout: Duration::from_secs(5),
            tries: 3,
            interval: Duration::from_millis(10),
        };
        check(
            &policy,
            dir.path(),
            &CommandEnv::default(),
            None,
            &dir.path().join("o"),
        )
        .await
        .unwrap()
        .unwrap();
        let policy = HealthPolicy {
            tries: 2,
            command: "echo not-ready; exit 1".into(),
            ..policy
        };
        let why = check(
            &policy,
            dir.path(),
            &CommandEnv::default(),
            None,
            &dir.path().join("o"),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            why.contains("2 time(s)") && why.contains("not-ready"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn started_program_runs_in_its_own_session() {
        let dir = tempfile::tempdir().unwrap();
        start_detached(
            "cut -d' ' -f6 /proc/$$/stat > sid.tmp; mv sid.tmp sid; echo $$ > pid",
            dir.path(),
            &CommandEnv::default(),
            &dir.path().join("log"),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !dir.path().join("pid").exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sid = std::fs::read_to_string(dir.path().join("sid")).unwrap();
        let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
        assert_eq!(
            sid.trim(),
            pid.trim(),
            "the start command must lead its own session"
        );
        // SAFETY: getsid(0) only reads this process's session id.
        let ours = unsafe { libc::getsid(0) };
        assert_ne!(pid.trim().parse::<i32>().unwrap(), ours);
    }
}
