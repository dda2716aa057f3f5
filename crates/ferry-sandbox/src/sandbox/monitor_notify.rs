//! seccomp user notification, raw: installing a filter that returns a listener descriptor
//! (sandbox side, before `exec`), passing that descriptor to the host over a Unix socket with
//! `SCM_RIGHTS`, and serving notifications (`SECCOMP_IOCTL_NOTIF_RECV` / `NOTIF_SEND` /
//! `NOTIF_ID_VALID`) with the target's memory read from `/proc/PID/mem`.

use seccompiler::BpfProgram;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

/// Installs `program` on the calling thread with a new notification listener and returns the
/// listener's descriptor (close-on-exec). Allocation-free: runs between `fork` and `exec`.
pub(crate) fn install_with_listener(program: &BpfProgram) -> io::Result<libc::c_int> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl/seccomp with a program that outlives the call; seccompiler's
    // `sock_filter` has the kernel's layout (repr(C) u16, u8, u8, u32).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd as libc::c_int)
    }
}

/// Space for one descriptor in a control message.
#[repr(C)]
union ControlBuf {
    _align: libc::cmsghdr,
    bytes: [u8; 64],
}

/// Sends descriptor `fd` over the Unix socket `sock`. Allocation-free.
pub(crate) fn send_fd(sock: libc::c_int, fd: libc::c_int) -> io::Result<()> {
    let mut byte = [b'L'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = ControlBuf { bytes: [0; 64] };
    // SAFETY: the message header points at live buffers; CMSG_* stay inside `control`.
    unsafe {
        let space = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&fd as *const libc::c_int).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            size_of::<libc::c_int>(),
        );
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one descriptor from `sock` without waiting (the sender has already sent it).
pub(crate) fn recv_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = ControlBuf { bytes: [0; 64] };
    // SAFETY: as in `send_fd`; the received descriptor is owned from here on.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes.as_mut_ptr().cast();
        msg.msg_controllen = 64;
        let n = libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other(
                "the sandbox did not pass its seccomp notification listener",
            ));
        }
        let mut fd: libc::c_int = -1;
        std::ptr::copy_nonoverlapping(
            libc::CMSG_DATA(cmsg),
            (&mut fd as *mut libc::c_int).cast::<u8>(),
            size_of::<libc::c_int>(),
        );
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A socket pair for the handoff: (host end, sandbox end), both close-on-exec.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One system call waiting for the monitor's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Notification {
    pub id: u64,
    /// Host PID of the calling thread.
    pub pid: u32,
    pub nr: i64,
    pub args: [u64; 6],
}

/// The monitor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Let the kernel run the system call as asked.
    Continue,
    /// Fail it with this `errno`.
    Fail(i32),
}

/// The host side of a listener.
#[derive(Debug)]
pub(crate) struct Listener(pub OwnedFd);

/// What waiting for a notification gave.
pub(crate) enum Next {
    Call(Notification),
    /// Nothing within the timeout (or the caller went away before it was read).
    Idle,
    /// No sandbox process is left to notify.
    Closed,
}

impl Listener {
    /// Waits up to `timeout_ms` for the next notification.
    pub(crate) fn next(&self, timeout_ms: i32) -> io::Result<Next> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(Next::Idle),
                _ => Err(e),
            };
        }
        if n == 0 {
            return Ok(Next::Idle);
        }
        if pfd.revents & libc::POLLIN == 0 {
            return Ok(if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                Next::Closed
            } else {
                Next::Idle
            });
        }
        // SAFETY: the kernel requires a zeroed seccomp_notif and fills it in.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into a live, correctly sized struct.
        let r = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut notif,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            // ENOENT: the caller was interrupted or died before we read it.
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EINTR) => Ok(Next::Idle),
                _ => Err(e),
            };
        }
        Ok(Next::Call(Notification {
            id: notif.id,
            pid: notif.pid,
            nr: notif.data.nr as i64,
            args: notif.data.args,
        }))
    }

    /// Whether notification `id` is still pending (its caller alive and waiting): checked
    /// after reading the caller's memory, so the memory read was that caller's.
    pub(crate) fn still_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: the ioctl reads one u64.
        unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &mut id,
            ) == 0
        }
    }

    /// Answers notification `id`.
    pub(crate) fn answer(&self, id: u64, answer: Answer) {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match answer {
            Answer::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Answer::Fail(errno) => resp.error = -errno,
        }
        // SAFETY: the ioctl reads one seccomp_notif_resp. ENOENT (caller gone) is ignored.
        unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &mut resp,
            );
        }
    }
}

/// Reads the memory of process `pid`.
pub(crate) struct Memory(File);

impl Memory {
    pub(crate) fn open(pid: u32) -> io::Result<Memory> {
        File::open(format!("/proc/{pid}/mem")).map(Memory)
    }

    /// Up to `len` bytes at `addr` (fewer where the mapping ends).
    pub(crate) fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.0.read_at(&mut buf[got..], addr + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if got > 0 && e.raw_os_error() == Some(libc::EIO) => break,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// The NUL-terminated string at `addr` (at most `max` bytes).
    pub(crate) fn read_cstr(&self, addr: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Stay within one page per read so an unmapped next page does not fail the read.
            let to_page_end = 4096 - (at % 4096) as usize;
            let chunk = self.read(at, to_page_end.min(max - out.len()))?;
            if chunk.is_empty() {
                break;
            }
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(out);
            }
            at += chunk.len() as u64;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}
