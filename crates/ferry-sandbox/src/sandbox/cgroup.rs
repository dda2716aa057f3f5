//! cgroup limits: cgroup v2 when its memory and pids controllers are available, otherwise the
//! v1 `memory` and `pids` hierarchies. The child moves itself in before it forks PID 1.

use super::ResourceLimits;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup directories of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct Cgroup {
    /// Directories created (removed again when the sandbox ends).
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` files the child writes itself into.
    pub procs: Vec<PathBuf>,
    /// What was applied, or why nothing was.
    pub description: String,
}

impl Cgroup {
    /// Creates the cgroup(s) for `name` with `limits`; never fails — where no hierarchy is
    /// writable, the description says so and the sandbox runs without cgroup limits.
    pub(crate) fn create(name: &str, limits: &ResourceLimits) -> Cgroup {
        let root = Path::new(ROOT);
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let words: Vec<&str> = controllers.split_whitespace().collect();
        if words.contains(&"memory") && words.contains(&"pids") {
            let _ = fs::write(root.join("cgroup.subtree_control"), "+memory +pids");
            let dir = root.join(name);
            let mut cg = Cgroup::default();
            if fs::create_dir(&dir).is_ok() {
                cg.dirs.push(dir.clone());
                let ok = fs::write(dir.join("memory.max"), limits.memory_bytes.to_string()).is_ok()
                    && fs::write(dir.join("pids.max"), limits.max_pids.to_string()).is_ok();
                if ok {
                    cg.procs.push(dir.join("cgroup.procs"));
                    cg.description = format!(
                        "v2 memory.max={} pids.max={}",
                        limits.memory_bytes, limits.max_pids
                    );
                    return cg;
                }
            }
            cg.remove();
        }
        let mut cg = Cgroup::default();
        let v1 = [
            ("memory", "memory.limit_in_bytes", limits.memory_bytes),
            ("pids", "pids.max", limits.max_pids),
        ];
        let mut applied = Vec::new();
        for (controller, file, value) in v1 {
            let dir = root.join(controller).join(name);
            if fs::create_dir(&dir).is_err() {
                continue;
            }
            cg.dirs.push(dir.clone());
            if fs::write(dir.join(file), value.to_string()).is_ok() {
                cg.procs.push(dir.join("cgroup.procs"));
                applied.push(format!("{file}={value}"));
            }
        }
        cg.description = if applied.is_empty() {
            "none: no writable cgroup hierarchy with memory and pids controllers".into()
        } else {
            format!("v1 {}", applied.join(" "))
        };
        cg
    }

    /// Sends SIGKILL to every process in the sandbox's cgroup (whatever its parentage).
    pub(crate) fn kill_all(&self) {
        for procs in &self.procs {
            let Ok(list) = fs::read_to_string(procs) else {
                continue;
            };
            for pid in list
                .lines()
                .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
            {
                // SAFETY: kill has no memory-safety preconditions; the pids are this sandbox's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Removes the directories (succeeds once their processes have exited).
    pub(crate) fn remove(&mut self) {
        for dir in self.dirs.drain(..) {
            for _ in 0..50 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
