//! The QEMU backend: the new firmware runs under a Linux kernel of its own in a
//! `qemu-system-*` guest (TCG emulation by default), its root filesystem an initramfs built
//! from the unpacked firmware tree, a copy of the device's data at `/data`, and a static
//! busybox for the `/init` glue. Networking is QEMU's user-mode stack with `restrict=on`
//! (the guest reaches neither the host nor anything beyond) and only `hostfwd` rules from the
//! host's loopback to the service's ports. The serial console goes to a file for evidence.

mod guest;
mod initramfs;

pub use guest::{
    BUSYBOX, DEFAULT_GUEST_DIR, GUEST_ADDR, GUEST_DIR_ENV, GuestArch, GuestKernel, check_host_tools,
};

use super::cgroup::Cgroup;
use super::{Isolation, ResourceLimits, Sandbox, SandboxChild, SandboxError, SandboxSpec};
use initramfs::CpioWriter;
use std::ffi::CString;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Memory QEMU itself may use on top of the guest's RAM (translation cache, device models).
const QEMU_OVERHEAD_BYTES: u64 = 192 << 20;
/// Smallest guest RAM the Debian kernel boots in with an initramfs.
const MIN_GUEST_BYTES: u64 = 96 << 20;
/// Attempts at starting QEMU when a just-probed free host port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// QEMU's minimal x86 firmware (Debian package qemu-system-data).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
/// Printed by the guest's `/init` once every forwarded port has a listening socket.
const READY_MARK: &str = "ferry-guest: ready";

/// Runs commands in a QEMU guest with a kernel of its own (see the module documentation).
/// [`Sandbox::start`] returns once the guest's service listens on every port in
/// [`QemuSandbox::forward_ports`] (at once when there are none).
#[derive(Debug, Clone)]
pub struct QemuSandbox {
    /// Guest architecture.
    pub arch: GuestArch,
    /// Directory with the guest kernels (`None`: `$FERRY_QEMU_GUEST_DIR` or
    /// [`DEFAULT_GUEST_DIR`]).
    pub guest_dir: Option<PathBuf>,
    /// Guest TCP ports forwarded from free ports on the host's 127.0.0.1
    /// ([`SandboxChild::host_forward`]). The service must listen on them on all addresses
    /// (or on [`GUEST_ADDR`]): forwarded connections arrive on `eth0`, not on loopback.
    pub forward_ports: Vec<u16>,
    /// Use KVM instead of TCG when `/dev/kvm` is usable (TCG otherwise).
    pub kvm: bool,
    /// How long the guest may take to boot and start listening.
    pub ready_timeout: Duration,
}

impl Default for QemuSandbox {
    /// x86-64 under TCG, nothing forwarded, three minutes to come up.
    fn default() -> Self {
        QemuSandbox {
            arch: GuestArch::X86_64,
            guest_dir: None,
            forward_ports: Vec::new(),
            kvm: false,
            ready_timeout: Duration::from_secs(180),
        }
    }
}

impl QemuSandbox {
    /// A TCG x86-64 sandbox forwarding `ports` of the guest.
    pub fn forwarding(ports: &[u16]) -> QemuSandbox {
        QemuSandbox {
            forward_ports: ports.to_vec(),
            ..QemuSandbox::default()
        }
    }
}

/// The QEMU-specific state of a running [`SandboxChild`].
#[derive(Debug)]
pub(crate) struct GuestRun {
    /// The serial console log.
    pub console: PathBuf,
    /// Guest port → host address.
    pub forwards: Vec<(u16, SocketAddr)>,
}

impl GuestRun {
    /// The exit code `/init` reported for the service (`ferry-guest: exit N`).
    pub(crate) fn reported_exit(console: &str) -> Option<i32> {
        console
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("ferry-guest: exit "))
            .and_then(|c| c.trim().parse().ok())
    }
}

fn console_tail(console: &Path) -> String {
    let text = std::fs::read(console).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join(" | ")
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Builds the guest's initramfs: the firmware tree, mount points, `/dev/console`, the data
/// copy at `/data`, and `/.ferry/{busybox,nic.ko,init}`.
fn build_initramfs(
    spec: &SandboxSpec,
    rootfs: &Path,
    kernel: &GuestKernel,
    ports: &[u16],
    out: &Path,
) -> Result<(), SandboxError> {
    let file = std::fs::File::create(out)
        .map_err(SandboxError::io(out, "create the guest's initramfs"))?;
    let write_err = || SandboxError::io(out, "write the guest's initramfs");
    let mut w = CpioWriter::new(std::io::BufWriter::new(file));
    w.tree(rootfs, "")?;
    for dir in ["proc", "sys", "dev", "tmp", "data", ".ferry"] {
        w.dir(dir, 0o755).map_err(write_err())?;
    }
    w.char_dev("dev/console", 5, 1).map_err(write_err())?;
    if let Some(data) = &spec.data_dir {
        w.tree(data, "data")?;
    }
    let busybox = std::fs::read(BUSYBOX).map_err(SandboxError::io(
        Path::new(BUSYBOX),
        "read the static busybox for the guest",
    ))?;
    w.file(".ferry/busybox", 0o755, &busybox)
        .map_err(write_err())?;
    let nic = std::fs::read(&kernel.nic_module).map_err(SandboxError::io(
        &kernel.nic_module,
        "read the guest's network driver",
    ))?;
    w.file(".ferry/nic.ko", 0o644, &nic).map_err(write_err())?;
    let init = guest::init_script(&spec.argv, &spec.env, &spec.hostname, ports);
    w.file(".ferry/init", 0o755, init.as_bytes())
        .map_err(write_err())?;
    w.finish().map_err(write_err())?;
    Ok(())
}

fn free_port() -> Result<u16, SandboxError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(SandboxError::io(Path::new("127.0.0.1"), "find a free port"))
}

impl QemuSandbox {
    fn command(
        &self,
        kernel: &GuestKernel,
        initrd: &Path,
        console: &Path,
        limits: &ResourceLimits,
        forwards: &[(u16, SocketAddr)],
        accel: &str,
    ) -> Command {
        let guest_mib = limits.memory_bytes.max(MIN_GUEST_BYTES) >> 20;
        let mut netdev = String::from("user,id=n0,restrict=on");
        for (guest, host) in forwards {
            netdev += &format!(",hostfwd=tcp:{host}-{GUEST_ADDR}:{guest}");
        }
        let mut cmd = Command::new(self.arch.qemu_binary());
        if Path::new(QBOOT).is_file() {
            // A minimal firmware that jumps straight to the kernel (SeaBIOS otherwise).
            cmd.args(["-bios", QBOOT]);
        }
        cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-M", "pc", "-accel", accel, "-smp", "1"])
            .args(["-m", &guest_mib.to_string()])
            .arg("-kernel")
            .arg(&kernel.image)
            .arg("-initrd")
            .arg(initrd)
            // `mitigations=off`: the guest kernel's speculative-execution mitigations only
            // separate guest processes from each other (one service here) and cost boot time
            // under TCG; the boundary to the host is QEMU's emulation.
            .args([
                "-append",
                "console=ttyS0 quiet panic=-1 rdinit=/.ferry/init i8042.noaux i8042.nokbd \
                 mitigations=off tsc=reliable no_timer_check",
            ])
            .arg("-no-reboot")
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args([
                "-netdev",
                &netdev,
                "-device",
                "e1000,netdev=n0,autonegotiation=off",
            ])
            .args([
                "-sandbox",
                "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            ])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Waits for [`READY_MARK`] on the console; `Ok(false)` when QEMU exited because a host
    /// port was taken (the caller retries with others).
    fn wait_ready(&self, child: &mut Child, console: &Path) -> Result<bool, SandboxError> {
        let start = Instant::now();
        let fail = |reason: String| SandboxError::Guest {
            reason,
            console: console.to_path_buf(),
            tail: console_tail(console),
        };
        loop {
            let text = std::fs::read(console).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            if text.contains(READY_MARK) {
                return Ok(true);
            }
            if let Some(status) = child.try_wait().map_err(SandboxError::wait)? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                if err.contains("host forwarding") {
                    return Ok(false);
                }
                return Err(fail(format!(
                    "{} exited ({status}) before its service listened{}{}",
                    self.arch.qemu_binary(),
                    if err.trim().is_empty() { "" } else { ": " },
                    err.trim()
                )));
            }
            if let Some(code) = GuestRun::reported_exit(&text) {
                return Err(fail(format!(
                    "the service exited with code {code} before it listened"
                )));
            }
            if start.elapsed() >= self.ready_timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "the guest's service did not listen on ports {:?} within {:?}",
                    self.forward_ports, self.ready_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Sandbox for QemuSandbox {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn start(&self, spec: &SandboxSpec) -> Result<SandboxChild, SandboxError> {
        let rootfs = spec.checked_rootfs()?;
        if !spec.stubs.is_empty() {
            return Err(SandboxError::BadSpec(
                "the QEMU backend does not provide hardware stubs; use the namespace backend"
                    .into(),
            ));
        }
        let kernel = GuestKernel::locate(self.guest_dir.as_deref(), self.arch)?;
        check_host_tools(self.arch)?;
        std::fs::create_dir_all(&spec.work_dir).map_err(SandboxError::io(
            &spec.work_dir,
            "create the work directory",
        ))?;
        let initrd = spec.work_dir.join("initramfs.cpio");
        build_initramfs(spec, &rootfs, &kernel, &self.forward_ports, &initrd)?;
        let console = spec.work_dir.join("console.log");

        let (accel, accel_note) = if self.kvm && kvm_usable() {
            ("kvm", "kvm")
        } else if self.kvm {
            ("tcg,tb-size=64", "tcg (KVM asked for, /dev/kvm not usable)")
        } else {
            ("tcg,tb-size=64", "tcg")
        };
        let limits = ResourceLimits {
            memory_bytes: spec.limits.memory_bytes.max(MIN_GUEST_BYTES) + QEMU_OVERHEAD_BYTES,
            max_pids: spec.limits.max_pids,
        };
        let name = format!(
            "ferry-qemu-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let cgroup = Cgroup::create(&name, &limits);
        let procs: Vec<CString> = cgroup
            .procs
            .iter()
            .map(|p| CString::new(p.as_os_str().as_bytes()).expect("cgroup paths have no NUL"))
            .collect();

        for attempt in 1..=PORT_ATTEMPTS {
            let forwards = self
                .forward_ports
                .iter()
                .map(|&g| Ok((g, SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))))
                .collect::<Result<Vec<_>, SandboxError>>()?;
            let _ = std::fs::remove_file(&console);
            let mut cmd = self.command(&kernel, &initrd, &console, &spec.limits, &forwards, accel);
            let procs = procs.clone();
            // SAFETY: only open/write/close on paths prepared above.
            unsafe {
                cmd.pre_exec(move || {
                    for p in &procs {
                        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd >= 0 {
                            libc::write(fd, b"0".as_ptr().cast(), 1);
                            libc::close(fd);
                        }
                    }
                    Ok(())
                });
            }
            let mut child = cmd.spawn().map_err(|e| {
                SandboxError::GuestMissing(format!(
                    "cannot run {}: {e} (install qemu-system-x86, see scripts/fetch-qemu-guest.sh)",
                    self.arch.qemu_binary()
                ))
            })?;
            if !self.forward_ports.is_empty() && !self.wait_ready(&mut child, &console)? {
                if attempt < PORT_ATTEMPTS {
                    continue;
                }
                return Err(SandboxError::Guest {
                    reason: "no free host port could be forwarded".into(),
                    console,
                    tail: String::new(),
                });
            }
            return Ok(SandboxChild {
                child: Some(child),
                isolation: Isolation {
                    uid_map: "none: the service runs under a guest kernel of its own".into(),
                    namespaces: vec![
                        format!("{} -accel {accel_note}", self.arch.qemu_binary()),
                        format!("guest kernel {}", kernel.release),
                        "user-mode network restrict=on, host forwards only".into(),
                    ],
                    landlock: "not applicable: the guest sees only its initramfs (firmware \
                               tree and data copy)"
                        .into(),
                    seccomp_denied: ["obsolete", "elevateprivileges", "spawn", "resourcecontrol"]
                        .map(|c| format!("qemu -sandbox {c}=deny"))
                        .to_vec(),
                    cgroup: cgroup.description.clone(),
                },
                cgroup,
                data_copy: None,
                monitor: None,
                qemu: Some(GuestRun {
                    console: console.clone(),
                    forwards,
                }),
            });
        }
        unreachable!("the loop returns on its last attempt")
    }
}
