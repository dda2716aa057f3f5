//! Thin safe wrappers over ptrace(2), waitpid(2) and /proc/PID/mem for one thread.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// A thread's general-purpose registers.
pub type Regs = libc::user_regs_struct;

/// Why a thread stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The PTRACE_INTERRUPT (or another ptrace event) stop.
    Event,
    /// A signal-delivery stop with this signal (SIGTRAP for our breakpoints).
    Signal(i32),
    /// The thread exited or was killed.
    Gone,
}

// SAFETY (module-wide): every ptrace call below passes either null or a pointer to a live,
// correctly sized local (user_regs_struct), as the request requires; the kernel validates the
// thread id and the tracer relationship and reports failures through errno.

/// PTRACE_SEIZE: attaches without stopping the thread.
pub fn seize(tid: i32) -> Result<()> {
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0usize, 0usize) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_SEIZE (run as root or as the process's parent)")) } else { Ok(()) }
}

/// PTRACE_INTERRUPT: asks a seized thread to stop.
pub fn interrupt(tid: i32) -> Result<()> {
    let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0usize, 0usize) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_INTERRUPT")) } else { Ok(()) }
}

/// Resumes a stopped thread, delivering `sig` (0 for none).
pub fn cont(tid: i32, sig: i32) -> Result<()> {
    let r = unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0usize, sig as usize) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_CONT")) } else { Ok(()) }
}

/// Detaches from a stopped thread, which resumes with `sig` (0 for none).
pub fn detach(tid: i32, sig: i32) -> Result<()> {
    let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0usize, sig as usize) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_DETACH")) } else { Ok(()) }
}

/// Reads a stopped thread's registers.
pub fn get_regs(tid: i32) -> Result<Regs> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0usize, &mut regs as *mut Regs) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_GETREGS")) } else { Ok(regs) }
}

/// Writes a stopped thread's registers.
pub fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    let r = unsafe { libc::ptrace(libc::PTRACE_SETREGS, tid, 0usize, regs as *const Regs) };
    if r < 0 { Err(Error::last_os(tid, "PTRACE_SETREGS")) } else { Ok(()) }
}

/// Collects a stop of `tid` if it has one (never blocks); None while it is running.
pub fn try_wait(tid: i32) -> Result<Option<Stop>> {
    loop {
        let mut status = 0i32;
        // SAFETY: status is a live local int.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Ok(Some(Stop::Gone));
            }
            return Err(Error::Os { pid: tid, what: "waitpid".into(), source: err });
        }
        if r != tid {
            return Ok(None);
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(Some(Stop::Gone));
        }
        if libc::WIFSTOPPED(status) {
            if status >> 16 != 0 {
                return Ok(Some(Stop::Event));
            }
            return Ok(Some(Stop::Signal(libc::WSTOPSIG(status))));
        }
    }
}

/// Waits up to `timeout` for `tid` to stop; None on timeout.
pub fn wait_stop(tid: i32, timeout: Duration) -> Result<Option<Stop>> {
    let deadline = Instant::now() + timeout;
    let mut spins = 0u32;
    loop {
        if let Some(s) = try_wait(tid)? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        spins += 1;
        backoff(spins);
    }
}

/// Polling pause: yield for the first rounds (stops usually arrive within microseconds), then
/// sleep briefly so a long wait does not take a core from the target.
pub fn backoff(round: u32) {
    if round < 200 {
        std::hint::spin_loop();
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The process's memory through /proc/PID/mem (writes go through page protections like a
/// debugger's, so code pages can be patched).
pub struct Mem {
    pid: i32,
    file: File,
}

impl Mem {
    /// Opens /proc/PID/mem for reading and writing.
    pub fn open(pid: i32) -> Result<Mem> {
        let path = format!("/proc/{pid}/mem");
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Mem { pid, file })
    }

    /// Reads `len` bytes at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, addr).map_err(|e| Error::Os {
            pid: self.pid,
            what: format!("read {len} bytes at {addr:#x}"),
            source: e,
        })?;
        Ok(buf)
    }

    /// Reads a little-endian u64 at `addr`.
    pub fn read_u64(&self, addr: u64) -> Result<u64> {
        let b = self.read(addr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Writes `bytes` at `addr`.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<()> {
        self.file.write_all_at(bytes, addr).map_err(|e| Error::Os {
            pid: self.pid,
            what: format!("write {} bytes at {addr:#x}", bytes.len()),
            source: e,
        })
    }
}

/// DWARF register number → value in `regs`.
pub fn dwarf_reg(regs: &Regs, n: u16) -> Option<u64> {
    Some(match n {
        0 => regs.rax,
        1 => regs.rdx,
        2 => regs.rcx,
        3 => regs.rbx,
        4 => regs.rsi,
        5 => regs.rdi,
        6 => regs.rbp,
        7 => regs.rsp,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        15 => regs.r15,
        _ => return None,
    })
}

/// Sets DWARF register `n` in `regs`.
pub fn set_dwarf_reg(regs: &mut Regs, n: u16, v: u64) {
    match n {
        0 => regs.rax = v,
        1 => regs.rdx = v,
        2 => regs.rcx = v,
        3 => regs.rbx = v,
        4 => regs.rsi = v,
        5 => regs.rdi = v,
        6 => regs.rbp = v,
        7 => regs.rsp = v,
        8 => regs.r8 = v,
        9 => regs.r9 = v,
        10 => regs.r10 = v,
        11 => regs.r11 = v,
        12 => regs.r12 = v,
        13 => regs.r13 = v,
        14 => regs.r14 = v,
        15 => regs.r15 = v,
        _ => {}
    }
}
