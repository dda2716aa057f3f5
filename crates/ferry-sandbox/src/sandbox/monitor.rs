//! The sandbox monitor: what the sandboxed firmware tried, observed from the host while it
//! runs.
//!
//! The seccomp filter (see `seccomp.rs`) hands three kinds of system call to the host through
//! seccomp user notification; a monitor thread answers each one:
//! - a refused system call (`mount`, `ptrace`, `kexec_load`, …): recorded (name, count,
//!   arguments of the first call) and failed with `EPERM`;
//! - `connect`/`sendto`/`sendmsg`/`sendmmsg` to an address other than loopback (read from
//!   `/proc/PID/mem`): recorded (address:port, count, bytes) and refused (`ECONNREFUSED`,
//!   `ENETUNREACH` for sends); loopback and non-IP addresses go ahead;
//! - an open for writing, or a change of the file tree (`mkdir`, `unlink`, `rename`, `link`,
//!   `symlink`, `truncate`, `chmod`, `chown`, `mknod` and their `…at` forms), outside `/data`,
//!   `/tmp`, `/dev`, `/proc/self` and the hardware stubs: recorded (path, call, count) and
//!   refused with `EACCES`.
//!
//! The monitor is an observer, not the enforcement: a multi-threaded program could change the
//! address or path after it was read (seccomp notification's known time-of-check gap). The
//! network namespace (loopback only), Landlock and file ownership enforce; the monitor makes
//! attempts visible as evidence. It also samples the cgroup (peak memory, CPU time), records
//! how the sandbox ended, and reports what the firmware did with its stub hardware.

use super::SandboxChild;
use super::monitor_notify::{Answer, Listener, Memory, Next, Notification};
use super::seccomp;
use super::stubs::{StubActivity, Stubs};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the monitor saw of one sandbox run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// How the sandbox ended (`None` while it runs).
    pub exit: Option<String>,
    /// It ended by itself through a signal (segfault, abort, …), not killed by the host.
    pub crashed: bool,
    /// Peak memory of the sandbox's cgroup, in bytes, where a cgroup was applied.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time used, in microseconds (cgroup v2 `cpu.stat`, otherwise sampled from the
    /// sandbox's processes).
    pub cpu_time_us: Option<u64>,
    /// System calls the filter refused.
    pub denied_syscalls: Vec<DeniedSyscall>,
    /// Connections and datagrams to addresses outside the sandbox, refused.
    pub outbound: Vec<OutboundAttempt>,
    /// Opens for writing outside the sandbox's data, refused.
    pub stray_writes: Vec<StrayWrite>,
    /// What the firmware did with its stub hardware.
    pub stubs: StubActivity,
    /// Why the monitor could not watch (if it could not).
    pub monitor_error: Option<String>,
}

impl MonitorReport {
    /// Whether the firmware did anything a preflight must treat as unsafe: an outbound
    /// attempt, a stray write, or a crash.
    pub fn is_suspicious(&self) -> bool {
        !self.outbound.is_empty() || !self.stray_writes.is_empty() || self.crashed
    }
}

/// A refused system call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedSyscall {
    /// Its name.
    pub name: String,
    /// How often it was attempted.
    pub count: u64,
    /// The first attempt's six arguments, in hex.
    pub first_args: Vec<String>,
}

/// An attempt to reach an address outside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundAttempt {
    /// `connect`, `sendto`, `sendmsg` or `sendmmsg`.
    pub syscall: String,
    /// The destination, `address:port`.
    pub address: String,
    /// How often.
    pub count: u64,
    /// Payload bytes the sends carried (0 for `connect`).
    pub bytes: u64,
    /// What the firmware got back.
    pub answer: String,
}

/// An attempt to open a file for writing outside the sandbox's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrayWrite {
    /// The path as the sandbox named it (resolved against its working directory).
    pub path: String,
    /// The open call.
    pub syscall: String,
    /// How often.
    pub count: u64,
}

/// Paths the sandbox may open for writing without being reported.
const WRITABLE: &[&str] = &["/data", "/tmp", "/dev", "/proc/self", "/proc/thread-self"];

#[derive(Debug, Default)]
struct State {
    report: MonitorReport,
    cpu_sampled_us: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    stubs: Mutex<Stubs>,
    cgroup_dirs: Vec<PathBuf>,
    /// Host PID of the sandbox's outermost process (for CPU sampling without a cgroup).
    outer_pid: u32,
}

/// A handle on a sandbox's monitor; [`SandboxMonitor::report`] gives what it saw so far
/// (also after the sandbox is gone).
#[derive(Debug, Clone)]
pub struct SandboxMonitor(Arc<Inner>);

/// The running monitor, owned by the [`SandboxChild`]: dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct MonitorRun {
    pub handle: SandboxMonitor,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MonitorRun {
    fn drop(&mut self) {
        self.handle.sample_resources();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl MonitorRun {
    /// Starts watching: `listener` is the sandbox's notification listener (`Err`: the reason
    /// it is missing, reported), `cgroup_dirs` its cgroups.
    pub(crate) fn start(
        listener: Result<Listener, String>,
        stubs: Stubs,
        cgroup_dirs: Vec<PathBuf>,
        outer_pid: u32,
    ) -> MonitorRun {
        let handle = SandboxMonitor(Arc::new(Inner {
            state: Mutex::new(State::default()),
            stubs: Mutex::new(stubs),
            cgroup_dirs,
            outer_pid,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match listener {
            Ok(listener) => {
                let (h, s) = (handle.clone(), stop.clone());
                std::thread::Builder::new()
                    .name("ferry-sandbox-monitor".into())
                    .spawn(move || h.serve(listener, s))
                    .map_err(|e| handle.fail(format!("cannot start the monitor thread: {e}")))
                    .ok()
            }
            Err(why) => {
                handle.fail(why);
                None
            }
        };
        MonitorRun {
            handle,
            stop,
            thread,
        }
    }
}

impl SandboxMonitor {
    fn fail(&self, why: String) {
        self.0
            .state
            .lock()
            .expect("monitor lock")
            .report
            .monitor_error = Some(why);
    }

    /// What the monitor saw so far.
    pub fn report(&self) -> MonitorReport {
        self.sample_resources();
        let activity = self.0.stubs.lock().expect("stubs lock").activity();
        let mut r = self.0.state.lock().expect("monitor lock").report.clone();
        r.stubs = activity;
        r
    }

    /// Records how the sandbox ended (`by_host`: the host killed it).
    pub(crate) fn note_exit(&self, status: ExitStatus, by_host: bool) {
        self.sample_resources();
        let mut st = self.0.state.lock().expect("monitor lock");
        if st.report.exit.is_some() {
            return;
        }
        // The supervisor exits with 128 + signal when PID 1 dies from a signal.
        let code = status.code();
        let signal = std::os::unix::process::ExitStatusExt::signal(&status)
            .or(code.filter(|c| *c > 128 && *c < 160).map(|c| c - 128));
        st.report.exit = Some(match (by_host, code, signal) {
            (true, _, _) => "stopped by the host".to_string(),
            (false, _, Some(sig)) => format!("killed by signal {sig}"),
            (false, Some(c), None) => format!("exited with status {c}"),
            (false, None, None) => status.to_string(),
        });
        st.report.crashed = !by_host && signal.is_some();
    }

    /// Reads peak memory and CPU time from the cgroup (or the processes) while they exist.
    fn sample_resources(&self) {
        let mut peak = None;
        let mut cpu = None;
        let mut pids = Vec::new();
        for dir in &self.0.cgroup_dirs {
            for file in ["memory.peak", "memory.max_usage_in_bytes"] {
                if let Some(v) = read_u64(&dir.join(file)) {
                    peak = Some(v);
                }
            }
            if let Ok(stat) = std::fs::read_to_string(dir.join("cpu.stat")) {
                cpu = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok());
            }
            if let Ok(list) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(list.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        if pids.is_empty() && self.0.outer_pid != 0 {
            pids.push(self.0.outer_pid);
        }
        pids.sort_unstable();
        pids.dedup();
        let sampled: u64 = pids.iter().filter_map(|p| process_cpu_us(*p)).sum();
        let mut st = self.0.state.lock().expect("monitor lock");
        let r = &mut st.report;
        if let Some(p) = peak {
            r.peak_memory_bytes = Some(r.peak_memory_bytes.unwrap_or(0).max(p));
        }
        match cpu {
            Some(c) => r.cpu_time_us = Some(r.cpu_time_us.unwrap_or(0).max(c)),
            None => {
                st.cpu_sampled_us = st.cpu_sampled_us.max(sampled);
                if st.cpu_sampled_us > 0 {
                    st.report.cpu_time_us = Some(st.cpu_sampled_us);
                }
            }
        }
    }

    /// The monitor thread: answers notifications until the sandbox is gone or `stop`.
    fn serve(self, listener: Listener, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            match listener.next(50) {
                Ok(Next::Call(n)) => {
                    let answer = self.handle(&listener, n);
                    listener.answer(n.id, answer);
                }
                Ok(Next::Idle) => self.sample_resources(),
                Ok(Next::Closed) => break,
                Err(e) => {
                    self.fail(format!("seccomp notification failed: {e}"));
                    break;
                }
            }
        }
    }

    fn handle(&self, listener: &Listener, n: Notification) -> Answer {
        let Some(name) = seccomp::name_of(n.nr) else {
            return Answer::Continue;
        };
        if seccomp::denied().iter().any(|(nr, _)| *nr == n.nr) {
            let mut st = self.0.state.lock().expect("monitor lock");
            let list = &mut st.report.denied_syscalls;
            match list.iter_mut().find(|d| d.name == name) {
                Some(d) => d.count += 1,
                None => list.push(DeniedSyscall {
                    name: name.to_string(),
                    count: 1,
                    first_args: n.args.iter().map(|a| format!("{a:#x}")).collect(),
                }),
            }
            return Answer::Fail(libc::EPERM);
        }
        let Ok(mem) = Memory::open(n.pid) else {
            return Answer::Continue;
        };
        let tree_change = seccomp::tree_changes()
            .into_iter()
            .find(|(nr, _, _)| *nr == n.nr);
        let answer = if seccomp::NETWORK.iter().any(|(nr, _)| *nr == n.nr) {
            self.network(&mem, name, &n)
        } else if let Some((_, _, (dirfd, path))) = tree_change {
            let dirfd = dirfd.map_or(libc::AT_FDCWD, |i| n.args[i] as i32);
            self.check_write(&mem, name, n.pid, dirfd, n.args[path])
        } else {
            self.open(&mem, name, &n)
        };
        // The memory read must have been the waiting caller's (not a recycled PID's).
        match answer {
            Some(a) if listener.still_valid(n.id) => a.commit(self),
            _ => Answer::Continue,
        }
    }

    fn network(&self, mem: &Memory, name: &str, n: &Notification) -> Option<Pending> {
        let (addr_ptr, addr_len, bytes) = match name {
            "connect" => (n.args[1], n.args[2], 0),
            "sendto" => (n.args[4], n.args[5], n.args[2]),
            _ => {
                // msghdr: msg_name (pointer), msg_namelen (u32), …, msg_iov, msg_iovlen.
                let hdr = mem.read(n.args[1], 32).ok()?;
                if hdr.len() < 32 {
                    return None;
                }
                let ptr = u64::from_ne_bytes(hdr[0..8].try_into().ok()?);
                let len = u32::from_ne_bytes(hdr[8..12].try_into().ok()?) as u64;
                let iov = u64::from_ne_bytes(hdr[16..24].try_into().ok()?);
                let iovlen = u64::from_ne_bytes(hdr[24..32].try_into().ok()?);
                (ptr, len, iov_bytes(mem, iov, iovlen))
            }
        };
        if addr_ptr == 0 {
            return None;
        }
        let raw = mem.read(addr_ptr, addr_len.min(128) as usize).ok()?;
        let addr = parse_sockaddr(&raw)?;
        if is_local(addr.ip()) {
            return None;
        }
        let (errno, answer) = if name == "connect" {
            (libc::ECONNREFUSED, "refused (ECONNREFUSED)")
        } else {
            (libc::ENETUNREACH, "refused (ENETUNREACH)")
        };
        Some(Pending::Outbound {
            syscall: name.to_string(),
            address: addr.to_string(),
            bytes,
            errno,
            answer,
        })
    }

    fn open(&self, mem: &Memory, name: &str, n: &Notification) -> Option<Pending> {
        let (dirfd, path_ptr, flags) = match name {
            "open" => (libc::AT_FDCWD, n.args[0], n.args[1] as i32),
            "creat" => (
                libc::AT_FDCWD,
                n.args[0],
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            ),
            "openat" => (n.args[0] as i32, n.args[1], n.args[2] as i32),
            _ => {
                // struct open_how { u64 flags; u64 mode; u64 resolve; }
                let how = mem.read(n.args[2], 8).ok()?;
                let flags = u64::from_ne_bytes(how.get(0..8)?.try_into().ok()?);
                (n.args[0] as i32, n.args[1], flags as i32)
            }
        };
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_CREAT != 0;
        if !writes {
            return None;
        }
        self.check_write(mem, name, n.pid, dirfd, path_ptr)
    }

    /// A write to the path at `path_ptr` (relative to `dirfd`): stub hardware is sampled,
    /// writable places go ahead, anything else is a stray write.
    fn check_write(
        &self,
        mem: &Memory,
        name: &str,
        pid: u32,
        dirfd: i32,
        path_ptr: u64,
    ) -> Option<Pending> {
        let raw = mem.read_cstr(path_ptr, 4096).ok()?;
        let given = String::from_utf8_lossy(&raw).into_owned();
        let path = resolve(pid, dirfd, &given);
        let mut stubs = self.0.stubs.lock().expect("stubs lock");
        if stubs.covers(&path) {
            // The caller is about to write a stub: what earlier writes left is complete now.
            stubs.sample();
            return None;
        }
        drop(stubs);
        if WRITABLE.iter().any(|w| under(&path, w)) {
            return None;
        }
        Some(Pending::Stray {
            path,
            syscall: name.to_string(),
        })
    }
}

/// A decision that also records something.
enum Pending {
    Outbound {
        syscall: String,
        address: String,
        bytes: u64,
        errno: i32,
        answer: &'static str,
    },
    Stray {
        path: String,
        syscall: String,
    },
}

impl Pending {
    fn commit(self, m: &SandboxMonitor) -> Answer {
        let mut st = m.0.state.lock().expect("monitor lock");
        match self {
            Pending::Outbound {
                syscall,
                address,
                bytes,
                errno,
                answer,
            } => {
                let list = &mut st.report.outbound;
                match list
                    .iter_mut()
                    .find(|o| o.syscall == syscall && o.address == address)
                {
                    Some(o) => {
                        o.count += 1;
                        o.bytes += bytes;
                    }
                    None => list.push(OutboundAttempt {
                        syscall,
                        address,
                        count: 1,
                        bytes,
                        answer: answer.to_string(),
                    }),
                }
                Answer::Fail(errno)
            }
            Pending::Stray { path, syscall } => {
                let list = &mut st.report.stray_writes;
                match list.iter_mut().find(|w| w.path == path) {
                    Some(w) => w.count += 1,
                    None => list.push(StrayWrite {
                        path,
                        syscall,
                        count: 1,
                    }),
                }
                Answer::Fail(libc::EACCES)
            }
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// CPU time of a process and its waited-for children, in microseconds.
fn process_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14-17 (index 11-14 after the name).
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000 / hz)
}

/// Payload bytes of an iovec array (at most 64 entries looked at).
fn iov_bytes(mem: &Memory, iov: u64, count: u64) -> u64 {
    let count = count.min(64) as usize;
    let Ok(raw) = mem.read(iov, count * 16) else {
        return 0;
    };
    raw.chunks_exact(16)
        .filter_map(|c| c[8..16].try_into().ok().map(u64::from_ne_bytes))
        .sum()
}

/// An IPv4 or IPv6 socket address; `None` for other families.
fn parse_sockaddr(raw: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(raw.get(0..2)?.try_into().ok()?) as i32;
    let port = u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = raw.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        libc::AF_INET6 => {
            let ip: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        _ => None,
    }
}

/// Loopback or unspecified (both stay inside the sandbox's own network namespace).
fn is_local(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// `path` resolved against the caller's directory `dirfd`, as the sandbox sees it
/// (lexically: `.` and `..` folded).
fn resolve(pid: u32, dirfd: i32, path: &str) -> String {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        let base = if dirfd == libc::AT_FDCWD {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
        } else {
            std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}"))
        };
        base.unwrap_or_else(|_| PathBuf::from("/")).join(path)
    };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

impl SandboxChild {
    /// A handle on this sandbox's monitor (what it tried: refused system calls, outbound
    /// attempts, stray writes, resources, stub hardware use).
    pub fn monitor(&self) -> Option<SandboxMonitor> {
        self.monitor.as_ref().map(|m| m.handle.clone())
    }

    /// What the monitor saw so far (an empty report with `monitor_error` set for a backend
    /// without a monitor).
    pub fn monitor_report(&self) -> MonitorReport {
        match &self.monitor {
            Some(m) => m.handle.report(),
            None => MonitorReport {
                monitor_error: Some("this sandbox backend has no monitor".into()),
                ..MonitorReport::default()
            },
        }
    }

    /// Like [`SandboxChild::wait_with_output`], also returning the monitor's report.
    pub fn wait_with_report(
        self,
        timeout: std::time::Duration,
    ) -> Result<(std::process::Output, MonitorReport), super::SandboxError> {
        let handle = self.monitor();
        let out = self.wait_with_output(timeout)?;
        let report = match handle {
            Some(h) => h.report(),
            None => MonitorReport::default(),
        };
        Ok((out, report))
    }

    pub(crate) fn note_exit(&self, status: ExitStatus, by_host: bool) {
        if let Some(m) = &self.monitor {
            m.handle.note_exit(status, by_host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut raw = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        raw.extend(port.to_be_bytes());
        raw.extend(ip);
        raw.extend([0u8; 8]);
        raw
    }

    #[test]
    fn parses_ipv4_and_ipv6_destinations_and_skips_other_families() {
        let a = parse_sockaddr(&sockaddr_in([203, 0, 113, 7], 80)).unwrap();
        assert_eq!(a.to_string(), "203.0.113.7:80");
        let mut v6 = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        v6.extend(443u16.to_be_bytes());
        v6.extend([0u8; 4]);
        v6.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        assert_eq!(
            parse_sockaddr(&v6).unwrap().to_string(),
            "[2001:db8::1]:443"
        );
        let unix = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        assert_eq!(parse_sockaddr(&unix), None);
        assert_eq!(parse_sockaddr(&[2]), None, "truncated");
    }

    #[test]
    fn loopback_and_unspecified_stay_local_everything_else_is_outbound() {
        for local in [
            "127.0.0.1",
            "127.8.9.1",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for out in ["203.0.113.7", "10.0.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_local(out.parse().unwrap()), "{out}");
        }
    }

    #[test]
    fn paths_fold_dots_and_writable_prefixes_match_whole_components() {
        assert_eq!(
            resolve(0, libc::AT_FDCWD, "/data/../etc/./passwd"),
            "/etc/passwd"
        );
        assert_eq!(resolve(0, libc::AT_FDCWD, "/../../x"), "/x");
        assert!(under("/data/a", "/data") && under("/data", "/data"));
        assert!(!under("/database", "/data"));
    }
}
