//! Stub hardware for the sandbox: what the firmware expects to find (a serial port, GPIO
//! lines, LEDs, a flash partition) is provided by host-side stand-ins whose use is recorded.
//!
//! - [`HardwareStub::Serial`]: a pseudo-terminal pair; the sandbox side is bound at the
//!   expected `/dev` path, the host keeps the other side and records (and optionally echoes)
//!   what the firmware writes.
//! - [`HardwareStub::Gpio`], [`HardwareStub::Led`]: sysfs-like trees (`/sys/class/gpio/gpioN/
//!   {value,direction,…}`, `/sys/class/leds/NAME/{brightness,trigger,…}`) of plain files in
//!   the run's work directory, bound into the sandbox; every change the firmware makes to
//!   them is recorded.
//! - [`HardwareStub::File`]: a zero-filled file-backed device (flash partition, EEPROM) of a
//!   given size at a `/dev` or `/sys` path; the bytes the firmware changed are counted.

use super::ID_BASE;
use super::error::SandboxError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A piece of hardware the firmware expects, provided as a stub in its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HardwareStub {
    /// A serial port at `path` (under `/dev`, e.g. `/dev/ttyS0`).
    Serial {
        /// Where the firmware expects it.
        path: String,
        /// Whether the host side echoes back what it receives (a loopback plug).
        #[serde(default)]
        echo: bool,
    },
    /// GPIO lines under `/sys/class/gpio` (`gpioN/value`, `direction`, `edge`,
    /// `active_low`, plus `export` and `unexport`).
    Gpio {
        /// Line numbers.
        pins: Vec<u32>,
    },
    /// LEDs under `/sys/class/leds` (`NAME/brightness`, `max_brightness`, `trigger`).
    Led {
        /// LED names, e.g. `status:green`.
        names: Vec<String>,
    },
    /// A zero-filled file-backed device of `size` bytes at `path` (under `/dev` or `/sys`).
    File {
        /// Where the firmware expects it, e.g. `/dev/mtd2`.
        path: String,
        /// Its size in bytes (at most 64 MiB).
        size: u64,
    },
}

/// Largest file-backed stub.
const MAX_FILE_STUB: u64 = 64 << 20;
/// Most bytes of serial output kept per port.
const SERIAL_KEEP: usize = 64 << 10;

/// What the firmware did with its stub hardware.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StubActivity {
    /// Per serial port, what the firmware wrote to it.
    #[serde(default)]
    pub serial: Vec<SerialActivity>,
    /// Changes to GPIO and LED attribute files, in the order seen.
    #[serde(default)]
    pub attributes: Vec<AttributeChange>,
    /// Per file-backed device, how much the firmware changed.
    #[serde(default)]
    pub files: Vec<FileActivity>,
}

/// Output written to a serial stub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialActivity {
    /// The port's path in the sandbox.
    pub path: String,
    /// Bytes the firmware wrote.
    pub bytes: u64,
    /// What it wrote (lossy UTF-8, the last 64 KiB).
    pub output: String,
}

/// A GPIO or LED attribute file took a new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    /// The attribute's path in the sandbox, e.g. `/sys/class/gpio/gpio17/value`.
    pub path: String,
    /// Its new content, trimmed.
    pub value: String,
}

/// What happened to a file-backed device stub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileActivity {
    /// Its path in the sandbox.
    pub path: String,
    /// Its size now.
    pub size: u64,
    /// Bytes that differ from the initial zero fill (bytes beyond the initial size count).
    pub bytes_changed: u64,
}

/// A bind mount of a host stub into the sandbox.
#[derive(Debug)]
pub(crate) struct StubMount {
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    pub is_dir: bool,
}

#[derive(Debug)]
struct Attribute {
    sandbox: String,
    host: PathBuf,
    last: String,
}

#[derive(Debug)]
struct SerialPort {
    path: String,
    /// The host-held sandbox-side descriptor: keeps the pair alive while the firmware has
    /// the port closed.
    _slave: OwnedFd,
    output: Arc<Mutex<(u64, Vec<u8>)>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct FileDevice {
    sandbox: String,
    host: PathBuf,
    size: u64,
}

/// The host side of a sandbox's stubs.
#[derive(Debug, Default)]
pub(crate) struct Stubs {
    pub mounts: Vec<StubMount>,
    serial: Vec<SerialPort>,
    attributes: Vec<Attribute>,
    files: Vec<FileDevice>,
    changes: Vec<AttributeChange>,
    stop: Arc<AtomicBool>,
}

fn io_err(path: &Path, action: &str) -> impl FnOnce(io::Error) -> SandboxError {
    SandboxError::io(path, action)
}

/// Checks a stub path: absolute, under `/dev/` or `/sys/`, plain components only.
fn check_target(path: &str) -> Result<(), SandboxError> {
    let p = Path::new(path);
    let plain = p
        .components()
        .skip(1)
        .all(|c| matches!(c, Component::Normal(_)));
    let under = path.starts_with("/dev/") || path.starts_with("/sys/");
    if !p.is_absolute() || !plain || !under || p.components().count() < 3 {
        return Err(SandboxError::BadSpec(format!(
            "stub path {path:?} must be an absolute path under /dev/ or /sys/ without `.` or `..`"
        )));
    }
    Ok(())
}

fn write_attr(dir: &Path, name: &str, value: &str) -> Result<PathBuf, SandboxError> {
    let p = dir.join(name);
    fs::write(&p, value).map_err(io_err(&p, "create a stub attribute file"))?;
    Ok(p)
}

fn safe_name(name: &str) -> Result<&str, SandboxError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(SandboxError::BadSpec(format!(
            "stub name {name:?} must be one path component"
        )));
    }
    Ok(name)
}

impl Stubs {
    /// Builds the host side of `stubs` under `dir` (created; handed to the sandbox's root).
    pub(crate) fn prepare(stubs: &[HardwareStub], dir: &Path) -> Result<Stubs, SandboxError> {
        let mut out = Stubs::default();
        if stubs.is_empty() {
            return Ok(out);
        }
        fs::create_dir_all(dir).map_err(io_err(dir, "create the stub directory"))?;
        let mut gpio_pins = Vec::new();
        let mut leds = Vec::new();
        for (i, stub) in stubs.iter().enumerate() {
            match stub {
                HardwareStub::Serial { path, echo } => {
                    check_target(path)?;
                    if !path.starts_with("/dev/") {
                        return Err(SandboxError::BadSpec(format!(
                            "serial stub {path:?} must be under /dev/"
                        )));
                    }
                    out.add_serial(path, *echo)?;
                }
                HardwareStub::Gpio { pins } => gpio_pins.extend(pins.iter().copied()),
                HardwareStub::Led { names } => {
                    for n in names {
                        leds.push(safe_name(n)?.to_string());
                    }
                }
                HardwareStub::File { path, size } => {
                    check_target(path)?;
                    if *size > MAX_FILE_STUB {
                        return Err(SandboxError::BadSpec(format!(
                            "file stub {path:?} of {size} bytes is larger than {MAX_FILE_STUB}"
                        )));
                    }
                    let host = dir.join(format!("file-{i}"));
                    let f = fs::File::create(&host)
                        .map_err(io_err(&host, "create a file-backed stub"))?;
                    f.set_len(*size)
                        .map_err(io_err(&host, "size a file-backed stub"))?;
                    out.mounts.push(StubMount {
                        host: host.clone(),
                        target: path.clone(),
                        is_dir: false,
                    });
                    out.files.push(FileDevice {
                        sandbox: path.clone(),
                        host,
                        size: *size,
                    });
                }
            }
        }
        if !gpio_pins.is_empty() {
            let root = dir.join("gpio");
            fs::create_dir(&root).map_err(io_err(&root, "create the GPIO stub"))?;
            write_attr(&root, "export", "")?;
            write_attr(&root, "unexport", "")?;
            gpio_pins.sort_unstable();
            gpio_pins.dedup();
            for pin in gpio_pins {
                let d = root.join(format!("gpio{pin}"));
                fs::create_dir(&d).map_err(io_err(&d, "create a GPIO line stub"))?;
                for (name, initial) in [
                    ("value", "0\n"),
                    ("direction", "in\n"),
                    ("edge", "none\n"),
                    ("active_low", "0\n"),
                ] {
                    let host = write_attr(&d, name, initial)?;
                    out.attributes.push(Attribute {
                        sandbox: format!("/sys/class/gpio/gpio{pin}/{name}"),
                        host,
                        last: initial.trim().to_string(),
                    });
                }
            }
            out.mounts.push(StubMount {
                host: root,
                target: "/sys/class/gpio".into(),
                is_dir: true,
            });
        }
        if !leds.is_empty() {
            let root = dir.join("leds");
            fs::create_dir(&root).map_err(io_err(&root, "create the LED stub"))?;
            for name in leds {
                let d = root.join(&name);
                fs::create_dir(&d).map_err(io_err(&d, "create an LED stub"))?;
                write_attr(&d, "max_brightness", "255\n")?;
                for (attr, initial) in [("brightness", "0\n"), ("trigger", "[none]\n")] {
                    let host = write_attr(&d, attr, initial)?;
                    out.attributes.push(Attribute {
                        sandbox: format!("/sys/class/leds/{name}/{attr}"),
                        host,
                        last: initial.trim().to_string(),
                    });
                }
            }
            out.mounts.push(StubMount {
                host: root,
                target: "/sys/class/leds".into(),
                is_dir: true,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &out.mounts {
            if !seen.insert(m.target.as_str()) {
                return Err(SandboxError::BadSpec(format!("two stubs at {}", m.target)));
            }
        }
        super::copy::chown_tree(dir, ID_BASE)?;
        Ok(out)
    }

    fn add_serial(&mut self, path: &str, echo: bool) -> Result<(), SandboxError> {
        let dev = Path::new("/dev/ptmx");
        let fail =
            |e: io::Error| SandboxError::io(dev, "open a pseudo-terminal for a serial stub")(e);
        // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r on a descriptor owned here, with a
        // live buffer; termios calls on a live struct.
        let (master, slave, name) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if m < 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            let master = OwnedFd::from_raw_fd(m);
            if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            let mut buf = [0 as libc::c_char; 64];
            let r = libc::ptsname_r(m, buf.as_mut_ptr(), buf.len());
            if r != 0 {
                return Err(fail(io::Error::from_raw_os_error(r)));
            }
            let name = std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned();
            let s = libc::open(
                buf.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if s < 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            let slave = OwnedFd::from_raw_fd(s);
            let mut tio: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(s, &mut tio) == 0 {
                libc::cfmakeraw(&mut tio);
                libc::tcsetattr(s, libc::TCSANOW, &tio);
            }
            if libc::fchown(s, ID_BASE, ID_BASE) != 0 || libc::fchmod(s, 0o660) != 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            (master, slave, name)
        };
        let output = Arc::new(Mutex::new((0u64, Vec::new())));
        let thread = {
            let output = output.clone();
            let stop = self.stop.clone();
            std::thread::Builder::new()
                .name("ferry-serial-stub".into())
                .spawn(move || serve_serial(master, echo, output, stop))
                .map_err(|e| SandboxError::Start(io::Error::other(e)))?
        };
        self.mounts.push(StubMount {
            host: PathBuf::from(name),
            target: path.to_string(),
            is_dir: false,
        });
        self.serial.push(SerialPort {
            path: path.to_string(),
            _slave: slave,
            output,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Whether `path` (in the sandbox) is one of the stubs or inside one.
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.mounts.iter().any(|m| {
            path == m.target
                || (m.is_dir
                    && path.starts_with(&m.target)
                    && path.as_bytes().get(m.target.len()) == Some(&b'/'))
        })
    }

    /// Records attribute files whose content changed since the last look.
    pub(crate) fn sample(&mut self) {
        for a in &mut self.attributes {
            let Ok(now) = fs::read_to_string(&a.host) else {
                continue;
            };
            let now = now.trim().to_string();
            if now != a.last {
                self.changes.push(AttributeChange {
                    path: a.sandbox.clone(),
                    value: now.clone(),
                });
                a.last = now;
            }
        }
    }

    /// What the firmware did with the stubs so far.
    pub(crate) fn activity(&mut self) -> StubActivity {
        self.sample();
        StubActivity {
            serial: self
                .serial
                .iter()
                .map(|s| {
                    let o = s.output.lock().expect("serial output lock");
                    SerialActivity {
                        path: s.path.clone(),
                        bytes: o.0,
                        output: String::from_utf8_lossy(&o.1).into_owned(),
                    }
                })
                .collect(),
            attributes: self.changes.clone(),
            files: self
                .files
                .iter()
                .map(|f| {
                    let data = fs::read(&f.host).unwrap_or_default();
                    let nonzero = data.iter().take(f.size as usize).filter(|&&b| b != 0);
                    let grown = (data.len() as u64).saturating_sub(f.size);
                    FileActivity {
                        path: f.sandbox.clone(),
                        size: data.len() as u64,
                        bytes_changed: nonzero.count() as u64 + grown,
                    }
                })
                .collect(),
        }
    }
}

impl Drop for Stubs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in &mut self.serial {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Reads what the firmware writes to a serial stub (and echoes it if asked) until `stop`.
fn serve_serial(
    master: OwnedFd,
    echo: bool,
    output: Arc<Mutex<(u64, Vec<u8>)>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd; read/write with live buffers.
        unsafe {
            let ready = libc::poll(&mut pfd, 1, 50);
            if ready <= 0 {
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                // Hang-up or error without data: do not spin.
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let n = libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                continue;
            }
            let n = n as usize;
            {
                let mut o = output.lock().expect("serial output lock");
                o.0 += n as u64;
                o.1.extend_from_slice(&buf[..n]);
                if o.1.len() > SERIAL_KEEP {
                    let excess = o.1.len() - SERIAL_KEEP;
                    o.1.drain(..excess);
                }
            }
            if echo {
                libc::write(master.as_raw_fd(), buf.as_ptr().cast(), n);
            }
        }
    }
}
