//! What the forked child does before `exec`: join the cgroups, enter new namespaces, fork the
//! sandbox's PID 1, build its mounts (stub hardware included), `pivot_root`, raise loopback,
//! then Landlock and seccomp; the seccomp filter's notification listener goes to the host's
//! monitor over a Unix socket before `exec`.
//!
//! Everything is prepared (paths as C strings, the Landlock ruleset, the BPF program) before
//! the fork, so this code only makes system calls.

use landlock::RulesetCreated;
use seccompiler::BpfProgram;
use std::ffi::CString;
use std::io;
use std::ptr;

/// Inputs of the child setup, prepared in the parent.
pub(crate) struct Prepared {
    pub cgroup_procs: Vec<CString>,
    /// The map line for both UID and GID maps, e.g. `0 100000 65536`.
    pub id_map: CString,
    pub rootfs: CString,
    pub data: Option<(CString, CString)>,
    pub proc_dir: CString,
    pub dev_dir: CString,
    pub tmp_dir: CString,
    /// (host device, file in the sandbox's /dev) pairs to bind.
    pub dev_nodes: Vec<(CString, CString)>,
    pub hostname: CString,
    pub landlock: Option<RulesetCreated>,
    pub seccomp: BpfProgram,
    /// The socket the seccomp notification listener is sent over.
    pub notify_sock: libc::c_int,
    /// `rootfs/sys`, to get a tmpfs when stubs live under `/sys`.
    pub sys_dir: Option<CString>,
    /// Directories to create for stub mount points, parents first.
    pub stub_dirs: Vec<CString>,
    /// (host stub, mount point in the root filesystem, is a directory) bind mounts.
    pub stub_binds: Vec<(CString, CString, bool)>,
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    write_raw(path.as_bytes_with_nul(), data)
}

/// Writes `data` to the file at `path` (NUL-terminated bytes).
fn write_raw(path: &[u8], data: &[u8]) -> io::Result<()> {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: plain system calls on a valid NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn mount(
    src: *const libc::c_char,
    target: &CString,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> io::Result<()> {
    // SAFETY: every pointer is null or a valid C string that outlives the call.
    check(unsafe { libc::mount(src, target.as_ptr(), fstype, flags, data.cast()) })
}

/// `/proc/<pid>/<file>\0` formatted into `buf` without allocating.
fn proc_file<'a>(pid: libc::pid_t, file: &[u8], buf: &'a mut [u8; 48]) -> &'a [u8] {
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut len = 0;
    for part in [&b"/proc/"[..], &digits[d..], b"/", file, b"\0"] {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    &buf[..len]
}

fn pipe() -> io::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: fork in a single-threaded child process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(fd) };
}

fn write_byte(fd: libc::c_int) {
    // SAFETY: writes one byte from a live buffer.
    unsafe { libc::write(fd, b"1".as_ptr().cast(), 1) };
}

/// Reads one byte; false on end of file or error (the other side gave up).
fn read_byte(fd: libc::c_int) -> bool {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into a live buffer.
        let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1;
    }
}

/// SIGKILL this process when its parent (its supervisor) dies.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl has no memory-safety preconditions.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })
}

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

impl Prepared {
    /// Runs in the child after `fork` (process A, still in the host's namespaces). A forks B,
    /// which enters the new namespaces; A, holding its capabilities in the host user namespace,
    /// writes B's UID/GID maps (sandbox root = host [`super::ID_BASE`], an unprivileged ID)
    /// and then supervises. B becomes root of its namespace, forks C — PID 1 of the new PID
    /// namespace — and supervises it; only C returns from here, ready to `exec`.
    pub(crate) fn enter(&mut self) -> io::Result<()> {
        for procs in &self.cgroup_procs {
            write_file(procs, b"0")?;
        }
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let b = fork()?;
        if b > 0 {
            close(ready_w);
            close(go_r);
            if read_byte(ready_r) && self.write_maps(b).is_ok() {
                write_byte(go_w);
            }
            close(go_w);
            close(ready_r);
            supervise(b);
        }
        close(ready_r);
        close(go_w);
        // SAFETY: getppid has no preconditions.
        let supervisor = unsafe { libc::getppid() };
        // SAFETY: unshare/setres[ug]id/setgroups have no memory-safety preconditions.
        unsafe {
            check(libc::unshare(NAMESPACES))?;
            write_byte(ready_w);
            close(ready_w);
            if !read_byte(go_r) {
                return Err(io::Error::other(
                    "the supervisor could not write the sandbox's UID/GID maps",
                ));
            }
            close(go_r);
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setgroups(0, ptr::null()))?;
            check(libc::setresuid(0, 0, 0))?;
        }
        // Set only now: changing credentials clears the parent-death signal.
        die_with_parent()?;
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != supervisor {
            return Err(io::Error::other(
                "the sandbox supervisor exited during setup",
            ));
        }
        let c = fork()?;
        if c > 0 {
            supervise(c);
        }
        die_with_parent()?;
        self.build_root()?;
        raise_loopback()?;
        if let Some(ruleset) = self.landlock.take() {
            ruleset
                .restrict_self()
                .map_err(|e| io::Error::other(format!("landlock: {e}")))?;
        }
        let listener = super::monitor_notify::install_with_listener(&self.seccomp)
            .map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
        let sent = super::monitor_notify::send_fd(self.notify_sock, listener);
        close(listener);
        close(self.notify_sock);
        sent.map_err(|e| io::Error::other(format!("seccomp listener handoff: {e}")))?;
        Ok(())
    }

    /// Writes `/proc/<pid>/uid_map` and `gid_map` of process `pid`.
    fn write_maps(&self, pid: libc::pid_t) -> io::Result<()> {
        let mut buf = [0u8; 48];
        for file in [&b"uid_map"[..], b"gid_map"] {
            let path = proc_file(pid, file, &mut buf);
            write_raw(path, self.id_map.as_bytes())?;
        }
        Ok(())
    }

    fn build_root(&self) -> io::Result<()> {
        let null = ptr::null();
        // SAFETY (whole block): system calls with valid C strings prepared before the fork.
        let hostname = self.hostname.as_bytes();
        check(unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) })?;
        mount(
            null,
            &c"/".into(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            null,
        )?;
        mount(
            self.rootfs.as_ptr(),
            &self.rootfs,
            null,
            libc::MS_BIND | libc::MS_REC,
            null,
        )?;
        if let Some((src, dst)) = &self.data {
            mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null)?;
        }
        let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
        mount(
            c"proc".as_ptr(),
            &self.proc_dir,
            c"proc".as_ptr(),
            nosuid | libc::MS_NOEXEC,
            null,
        )?;
        mount(
            c"tmpfs".as_ptr(),
            &self.dev_dir,
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            c"mode=755,size=64k".as_ptr(),
        )?;
        for (host, inside) in &self.dev_nodes {
            // SAFETY: valid C string; the descriptor is closed at once.
            unsafe {
                let fd = libc::open(
                    inside.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                );
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(fd);
            }
            mount(host.as_ptr(), inside, null, libc::MS_BIND, null)?;
        }
        self.mount_stubs()?;
        mount(
            c"tmpfs".as_ptr(),
            &self.tmp_dir,
            c"tmpfs".as_ptr(),
            nosuid,
            c"mode=1777,size=16m".as_ptr(),
        )?;
        // SAFETY: chdir/pivot_root/umount2 on valid C strings.
        unsafe {
            check(libc::chdir(self.rootfs.as_ptr()))?;
            if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) == -1 {
                return Err(io::Error::last_os_error());
            }
            check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
            check(libc::chdir(c"/".as_ptr()))?;
        }
        Ok(())
    }
}

impl Prepared {
    /// Binds the stub hardware: a tmpfs on `/sys` if stubs live there, their mount points,
    /// then each stub.
    fn mount_stubs(&self) -> io::Result<()> {
        let null = ptr::null();
        if let Some(sys) = &self.sys_dir {
            mount(
                c"tmpfs".as_ptr(),
                sys,
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"mode=755,size=64k".as_ptr(),
            )?;
        }
        for dir in &self.stub_dirs {
            // SAFETY: mkdir on a valid C string.
            if unsafe { libc::mkdir(dir.as_ptr(), 0o755) } == -1 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
        }
        for (host, inside, is_dir) in &self.stub_binds {
            // SAFETY: mkdir/open on valid C strings; the descriptor is closed at once.
            unsafe {
                if *is_dir {
                    if libc::mkdir(inside.as_ptr(), 0o755) == -1
                        && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                    {
                        return Err(io::Error::last_os_error());
                    }
                } else {
                    let fd = libc::open(
                        inside.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
            }
            mount(host.as_ptr(), inside, null, libc::MS_BIND, null)?;
        }
        Ok(())
    }
}

/// The intermediate process: close everything but stdio (so the parent's exec-status pipe
/// sees PID 1's exec), wait for PID 1, and exit with its status. Never returns.
fn supervise(pid: libc::pid_t) -> ! {
    // SAFETY: close_range/waitpid/_exit have no memory-safety preconditions.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r == -1 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                libc::_exit(125);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        libc::_exit(128 + libc::WTERMSIG(status));
    }
}

/// Brings the new network namespace's `lo` up (it starts down); no other interface exists.
fn raise_loopback() -> io::Result<()> {
    // SAFETY: ioctl on a fresh socket with a zeroed, correctly sized ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) == -1 {
            result = Err(io::Error::last_os_error());
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr) == -1 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result
    }
}
