//! What the guest needs besides the firmware: its kernel and network driver (found in the
//! directory `scripts/fetch-qemu-guest.sh` fills), a static busybox, and the `/init` glue.

use crate::sandbox::SandboxError;
use std::path::{Path, PathBuf};

/// Environment variable naming the directory with the guest kernels.
pub const GUEST_DIR_ENV: &str = "FERRY_QEMU_GUEST_DIR";
/// Where the guest kernels are looked for when [`GUEST_DIR_ENV`] is unset.
pub const DEFAULT_GUEST_DIR: &str = "/var/cache/ferry/qemu-guest";
/// The static busybox (Debian package `busybox-static`) the guest's `/init` runs on.
pub const BUSYBOX: &str = "/bin/busybox";
/// The guest's address on QEMU's user-mode network.
pub const GUEST_ADDR: &str = "10.0.2.15";

const FETCH_HINT: &str = "run scripts/fetch-qemu-guest.sh (it fetches the Debian kernel \
    package with apt-get download and unpacks it there, and installs qemu-system-x86 and \
    busybox-static), or point FERRY_QEMU_GUEST_DIR at a directory prepared by it";

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestArch {
    /// x86-64, `qemu-system-x86_64 -M pc`, e1000 network card.
    #[default]
    X86_64,
}

impl GuestArch {
    /// Sub-directory of the guest directory, and QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64",
        }
    }

    /// The QEMU system emulator binary.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "qemu-system-x86_64",
        }
    }
}

/// A guest kernel unpacked from a Debian kernel package.
#[derive(Debug, Clone)]
pub struct GuestKernel {
    /// The kernel image booted: `vmlinux` (the uncompressed ELF, booted through its PVH entry
    /// point, much faster under TCG) when present, else the compressed `vmlinuz`.
    pub image: PathBuf,
    /// The network driver module loaded by `/init`.
    pub nic_module: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub release: String,
}

impl GuestKernel {
    /// Finds the kernel for `arch` under `dir`, or under `$FERRY_QEMU_GUEST_DIR`, or
    /// [`DEFAULT_GUEST_DIR`]; the error names the script that prepares it.
    pub fn locate(dir: Option<&Path>, arch: GuestArch) -> Result<GuestKernel, SandboxError> {
        let base = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::var_os(GUEST_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_GUEST_DIR)),
        };
        let dir = base.join(arch.name());
        let vmlinuz = dir.join("vmlinuz");
        let nic_module = dir.join("e1000.ko");
        for path in [&vmlinuz, &nic_module] {
            if !path.is_file() {
                return Err(SandboxError::GuestMissing(format!(
                    "no guest kernel file {}: {FETCH_HINT}",
                    path.display()
                )));
            }
        }
        let release = std::fs::read_to_string(dir.join("release"))
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let vmlinux = dir.join("vmlinux");
        Ok(GuestKernel {
            image: if vmlinux.is_file() { vmlinux } else { vmlinuz },
            nic_module,
            release,
        })
    }
}

/// Checks that `qemu` can be run and that [`BUSYBOX`] is a static executable.
pub fn check_host_tools(arch: GuestArch) -> Result<(), SandboxError> {
    let qemu = arch.qemu_binary();
    let ok = std::process::Command::new(qemu)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(SandboxError::GuestMissing(format!(
            "{qemu} cannot be run: {FETCH_HINT}"
        )));
    }
    let bytes = std::fs::read(BUSYBOX).map_err(|e| {
        SandboxError::GuestMissing(format!("cannot read {BUSYBOX} ({e}): {FETCH_HINT}"))
    })?;
    match goblin::elf::Elf::parse(&bytes) {
        Ok(elf) if elf.interpreter.is_none() => Ok(()),
        _ => Err(SandboxError::GuestMissing(format!(
            "{BUSYBOX} is not a static ELF executable (install busybox-static): {FETCH_HINT}"
        ))),
    }
}

/// Quotes `s` for the guest's shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `/.ferry/init` (run by the kernel as PID 1 with `rdinit=`): mounts `/proc`,
/// `/sys`, `/dev`, `/tmp`, loads the network driver and configures `eth0` with
/// [`GUEST_ADDR`], starts the service with exactly `env`, prints `ferry-guest: ready` once
/// every port in `ports` has a listening socket, and after the service ends prints
/// `ferry-guest: exit CODE` and powers the guest off.
pub(crate) fn init_script(
    argv: &[String],
    env: &[(String, String)],
    hostname: &str,
    ports: &[u16],
) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| quote(&format!("{k}={v}")))
        .collect();
    let argv: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    let mut s = String::from(
        "#!/.ferry/busybox sh\n\
         B=/.ferry/busybox\n\
         $B mount -t proc proc /proc\n\
         $B mount -t sysfs sysfs /sys\n\
         $B mount -t devtmpfs devtmpfs /dev 2>/dev/null\n\
         $B mount -t tmpfs tmpfs /tmp\n\
         $B insmod /.ferry/nic.ko || echo 'ferry-guest: network driver failed to load'\n\
         $B ip link set lo up\n",
    );
    s += &format!(
        "$B ip addr add {GUEST_ADDR}/24 dev eth0\n\
         $B ip link set eth0 up\n\
         $B ip route add default via 10.0.2.2\n\
         # QEMU's user-mode stack learns the guest's MAC from an ARP exchange; without it the\n\
         # first forwarded connection waits for a TCP retransmission (seconds). Retried until\n\
         # the link is up and answered, alongside the service's start.\n\
         ( i=0; while [ \"$($B cat /sys/class/net/eth0/carrier 2>/dev/null)\" != 1 ] \
           && [ $i -lt 500 ]; do $B usleep 10000; i=$((i+1)); done\n\
         \x20 for i in 1 2 3 4 5; do $B arping -f -q -w 1 -I eth0 10.0.2.2 && break; done ) &\n\
         ARP=$!\n\
         $B hostname {}\n\
         echo \"ferry-guest: started (guest uptime $($B cut -d' ' -f1 /proc/uptime) s)\"\n\
         cd /\n\
         $B env -i {} {} &\n\
         PID=$!\n",
        quote(hostname),
        env.join(" "),
        argv.join(" ")
    );
    for port in ports {
        s += &format!(
            "while ! $B grep -qE ':{port:04X} [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do\n\
             \x20 $B kill -0 $PID 2>/dev/null || break\n\
             \x20 $B usleep 10000\n\
             done\n"
        );
    }
    if !ports.is_empty() {
        s += "wait $ARP\n";
        s += "$B kill -0 $PID 2>/dev/null && \
              echo \"ferry-guest: ready (guest uptime $($B cut -d' ' -f1 /proc/uptime) s)\"\n";
    }
    s += "wait $PID\n\
          echo \"ferry-guest: exit $?\"\n\
          $B sync\n\
          $B poweroff -f\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_quotes_arguments_and_waits_for_each_port() {
        let s = init_script(
            &["/bin/svc".into(), "it's".into()],
            &[("A".into(), "b c".into())],
            "h",
            &[8080],
        );
        assert!(s.contains(r"$B env -i 'A=b c' '/bin/svc' 'it'\''s' &"));
        assert!(s.contains(":1F90 [0-9A-F]+:0000 0A"));
        assert!(s.contains("ferry-guest: ready"));
        let none = init_script(&["/x".into()], &[], "h", &[]);
        assert!(!none.contains("ferry-guest: ready"));
    }

    #[test]
    fn missing_guest_kernel_names_the_fetch_script() {
        let dir = tempfile::tempdir().unwrap();
        let err = GuestKernel::locate(Some(dir.path()), GuestArch::X86_64).unwrap_err();
        assert!(
            err.to_string().contains("scripts/fetch-qemu-guest.sh"),
            "{err}"
        );
    }
}
