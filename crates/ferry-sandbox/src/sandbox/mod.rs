//! Sandbox rehearsal, namespace backend: the new firmware runs on its unpacked root
//! filesystem, with a copy of the device's data, isolated from the device.
//!
//! [`NamespaceSandbox`] starts the command as PID 1 of new user, PID, mount, network, IPC and
//! UTS namespaces (root inside is the unprivileged host ID [`ID_BASE`]; the root filesystem
//! stays owned by host root and so is read-only to it, the data copy is given to it); `pivot_root`s into the unpacked tree (with `/proc`, a minimal `/dev`, a
//! private `/tmp` and the data copy bound at `/data`), brings up only its own loopback
//! interface, restricts the filesystem with Landlock to that tree, installs a seccomp filter
//! refusing host-administration system calls, and applies cgroup memory and process-count
//! limits where a cgroup hierarchy is writable.
//!
//! [`QemuSandbox`], the second backend, boots a Debian kernel of its own under
//! `qemu-system-x86_64` (TCG) with an initramfs of the firmware tree and the data copy;
//! the service is reached through host forwards of QEMU's restricted user-mode network.

mod backend;
mod cgroup;
mod child_setup;
mod copy;
mod error;
mod monitor;
mod monitor_notify;
mod namespace;
mod qemu;
mod seccomp;
mod stubs;

pub use error::SandboxError;

/// Host UID and GID that the sandbox's root maps to (an unprivileged ID range).
pub const ID_BASE: u32 = 100_000;
/// Number of IDs mapped (sandbox IDs 0..65536 → host `ID_BASE`..).
pub const ID_COUNT: u32 = 65_536;
pub use backend::SandboxBackend;
pub use monitor::{DeniedSyscall, MonitorReport, OutboundAttempt, SandboxMonitor, StrayWrite};
pub use namespace::NamespaceSandbox;
pub use qemu::{
    BUSYBOX, DEFAULT_GUEST_DIR, GUEST_ADDR, GUEST_DIR_ENV, GuestArch, GuestKernel, QemuSandbox,
    check_host_tools,
};
pub use stubs::{AttributeChange, FileActivity, HardwareStub, SerialActivity, StubActivity};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::time::{Duration, Instant};

/// What to run, and on what.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The unpacked firmware root filesystem (becomes `/`). Mount points `/proc`, `/dev`,
    /// `/tmp` and `/data` are created in it if missing.
    pub rootfs: PathBuf,
    /// The device's data directory; a copy of it is bound at `/data` (the original is never
    /// visible to the sandbox).
    pub data_dir: Option<PathBuf>,
    /// A directory for this run (the data copy goes to `work_dir/data`); must not exist.
    pub work_dir: PathBuf,
    /// Program and arguments, resolved inside the sandbox.
    pub argv: Vec<String>,
    /// Environment (the host environment is not passed).
    pub env: Vec<(String, String)>,
    /// Host name inside the sandbox.
    pub hostname: String,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Stub hardware the firmware expects (serial ports, GPIO lines, LEDs, file-backed
    /// devices); what it does with them is in the monitor's report.
    pub stubs: Vec<HardwareStub>,
}

impl SandboxSpec {
    /// Checks what every backend needs (a program, a root directory, a fresh work directory);
    /// the root filesystem's canonical path.
    pub fn checked_rootfs(&self) -> Result<PathBuf, SandboxError> {
        if self.argv.is_empty() {
            return Err(SandboxError::BadSpec("argv is empty".into()));
        }
        let rootfs = std::fs::canonicalize(&self.rootfs)
            .map_err(SandboxError::io(&self.rootfs, "open the root filesystem"))?;
        if !rootfs.is_dir() {
            return Err(SandboxError::BadSpec(format!("{} is not a directory", rootfs.display())));
        }
        if self.work_dir.exists() {
            return Err(SandboxError::BadSpec(format!(
                "work directory {} already exists",
                self.work_dir.display()
            )));
        }
        Ok(rootfs)
    }
}

/// Resource limits applied through cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Most processes and threads.
    pub max_pids: u64,
}

impl Default for ResourceLimits {
    /// 256 MiB and 256 processes.
    fn default() -> Self {
        ResourceLimits {
            memory_bytes: 256 << 20,
            max_pids: 256,
        }
    }
}

/// Which isolation layers are in force for a started sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// The user namespace's UID/GID map (`inside outside count`).
    pub uid_map: String,
    /// Namespaces entered.
    pub namespaces: Vec<String>,
    /// Landlock status (`fully enforced`, `partially enforced`, `not supported by this kernel`).
    pub landlock: String,
    /// System calls the seccomp filter refuses.
    pub seccomp_denied: Vec<String>,
    /// cgroup limits applied, e.g. `v1 memory+pids`, or why none were.
    pub cgroup: String,
}

/// An isolated environment that runs a command.
pub trait Sandbox {
    /// Backend name.
    fn name(&self) -> &'static str;
    /// Starts `spec.argv` in a new sandbox.
    fn start(&self, spec: &SandboxSpec) -> Result<SandboxChild, SandboxError>;
}

/// A running sandboxed command. Dropping it kills the sandbox.
#[derive(Debug)]
pub struct SandboxChild {
    child: Option<Child>,
    cgroup: cgroup::Cgroup,
    /// The isolation in force.
    pub isolation: Isolation,
    /// Where the data copy lives on the host.
    pub data_copy: Option<PathBuf>,
    /// The QEMU backend's guest (console log, host forwards); `None` for namespaces.
    qemu: Option<qemu::GuestRun>,
    /// The namespace backend's monitor (what the sandbox tried); `None` for QEMU.
    monitor: Option<monitor::MonitorRun>,
}

impl SandboxChild {
    /// Host PID of the process started for the sandbox (still in the host's namespaces; it
    /// forks the process that enters the new namespaces and supervises PID 1 of the new PID
    /// namespace).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Path of the sandbox's network namespace (`/proc/PID/ns/net` of the process that entered
    /// the new namespaces), for a proxy to connect into with `setns`. Waits up to two seconds
    /// for that process to have entered its namespaces; never answers with the host's
    /// namespace.
    pub fn net_namespace(&self) -> Result<PathBuf, SandboxError> {
        let outer = self.pid();
        let host =
            std::fs::read_link(format!("/proc/{outer}/ns/net")).map_err(SandboxError::io(
                Path::new(&format!("/proc/{outer}/ns/net")),
                "read the sandbox's starting namespace",
            ))?;
        let children = PathBuf::from(format!("/proc/{outer}/task/{outer}/children"));
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let list = std::fs::read_to_string(&children)
                .map_err(SandboxError::io(&children, "list the sandbox's processes"))?;
            for pid in list.split_whitespace() {
                let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
                if std::fs::read_link(&ns).is_ok_and(|link| link != host) {
                    return Ok(ns);
                }
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::BadSpec(format!(
                    "the sandbox (pid {outer}) did not enter a network namespace of its own within 2 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Where a client on the host reaches the sandbox's service listening on `addr` inside
    /// it: the namespace backend's network namespace ([`SandboxChild::net_namespace`]), or
    /// the QEMU backend's host forward of `addr`'s port.
    pub fn service_backend(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<crate::mirror::Backend, SandboxError> {
        match &self.qemu {
            None => Ok(crate::mirror::Backend::InNamespace {
                netns: self.net_namespace()?,
                addr,
            }),
            Some(_) => self
                .host_forward(addr.port())
                .map(crate::mirror::Backend::Tcp)
                .ok_or_else(|| {
                    SandboxError::BadSpec(format!(
                        "guest port {} is not forwarded (QemuSandbox::forward_ports)",
                        addr.port()
                    ))
                }),
        }
    }

    /// The host address (on 127.0.0.1) forwarded to `guest_port` of a QEMU guest.
    pub fn host_forward(&self, guest_port: u16) -> Option<std::net::SocketAddr> {
        let run = self.qemu.as_ref()?;
        run.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
    }

    /// The QEMU guest's serial console log (kernel messages, the service's output, the
    /// `/init` glue's `ferry-guest:` lines); `None` for namespaces.
    pub fn console_log(&self) -> Option<&Path> {
        self.qemu.as_ref().map(|q| q.console.as_path())
    }

    /// Waits up to `timeout` for the command to end and returns its status and output; kills
    /// the sandbox and returns [`SandboxError::Timeout`] if it runs longer. For the QEMU
    /// backend, stdout is the guest's console log and the status is the exit code the guest
    /// reported for the service (255 if it reported none, e.g. after a kernel panic).
    pub fn wait_with_output(mut self, timeout: Duration) -> Result<Output, SandboxError> {
        let mut child = self.child.take().expect("a started sandbox has a child");
        let start = Instant::now();
        loop {
            match child.try_wait().map_err(SandboxError::wait)? {
                Some(_) if self.qemu.is_some() => {
                    use std::os::unix::process::ExitStatusExt;
                    let mut out = child.wait_with_output().map_err(SandboxError::wait)?;
                    let console = self.console_log().expect("a QEMU sandbox has a console");
                    out.stdout = std::fs::read(console)
                        .map_err(SandboxError::io(console, "read the guest's console log"))?;
                    let code = qemu::GuestRun::reported_exit(&String::from_utf8_lossy(&out.stdout));
                    out.status = ExitStatus::from_raw(code.unwrap_or(255).clamp(0, 255) << 8);
                    return Ok(out);
                }
                Some(_) => {
                    let out = child.wait_with_output().map_err(SandboxError::wait)?;
                    self.note_exit(out.status, false);
                    return Ok(out);
                }
                None if start.elapsed() >= timeout => {
                    let _ = child.kill();
                    self.cgroup.kill_all();
                    if let Ok(status) = child.wait() {
                        self.note_exit(status, true);
                    }
                    return Err(SandboxError::Timeout { after: timeout });
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Whether the sandbox's command has ended (without waiting).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, SandboxError> {
        let status = match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(SandboxError::wait)?,
            None => None,
        };
        if let Some(s) = status {
            self.note_exit(s, false);
        }
        Ok(status)
    }

    /// Takes the command's standard output and error pipes, for a caller that keeps the
    /// sandbox running and must drain them (a service writing to a full pipe would stall).
    pub fn take_stdio(
        &mut self,
    ) -> (
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        match self.child.as_mut() {
            Some(child) => (child.stdout.take(), child.stderr.take()),
            None => (None, None),
        }
    }

    /// Kills the sandbox: its supervisor, and every process in its cgroup (PID 1 also dies
    /// with its supervisor, taking its whole PID namespace with it).
    pub fn kill(&mut self) -> Result<ExitStatus, SandboxError> {
        let child = self.child.as_mut().expect("a started sandbox has a child");
        let _ = child.kill();
        self.cgroup.kill_all();
        let status = child.wait().map_err(SandboxError::wait)?;
        self.note_exit(status, true);
        Ok(status)
    }
}

impl Drop for SandboxChild {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.cgroup.kill_all();
        self.cgroup.remove();
    }
}
