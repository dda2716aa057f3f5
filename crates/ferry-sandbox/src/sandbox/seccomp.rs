//! The seccomp filter: every system call allowed except host administration, which fails
//! with `EPERM`; those, network sends with an address, and opens for writing are handed to
//! the host's monitor (seccomp user notification, see [`super::monitor`]) so that it sees
//! what the sandbox tries.
//!
//! seccompiler builds the BPF with a `SECCOMP_RET_TRACE` marker as the match action; the
//! marker is then rewritten to `SECCOMP_RET_USER_NOTIF`, which seccompiler does not offer.

use super::error::SandboxError;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// System calls refused inside the sandbox, with their names.
pub(crate) fn denied() -> Vec<(i64, &'static str)> {
    let mut list = vec![
        (libc::SYS_mount, "mount"),
        (libc::SYS_umount2, "umount2"),
        (libc::SYS_pivot_root, "pivot_root"),
        (libc::SYS_chroot, "chroot"),
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_kexec_load, "kexec_load"),
        (libc::SYS_kexec_file_load, "kexec_file_load"),
        (libc::SYS_init_module, "init_module"),
        (libc::SYS_finit_module, "finit_module"),
        (libc::SYS_delete_module, "delete_module"),
        (libc::SYS_reboot, "reboot"),
        (libc::SYS_swapon, "swapon"),
        (libc::SYS_swapoff, "swapoff"),
        (libc::SYS_bpf, "bpf"),
        (libc::SYS_perf_event_open, "perf_event_open"),
        (libc::SYS_keyctl, "keyctl"),
        (libc::SYS_add_key, "add_key"),
        (libc::SYS_request_key, "request_key"),
        (libc::SYS_unshare, "unshare"),
        (libc::SYS_setns, "setns"),
        (libc::SYS_open_by_handle_at, "open_by_handle_at"),
        (libc::SYS_name_to_handle_at, "name_to_handle_at"),
        (libc::SYS_userfaultfd, "userfaultfd"),
        (libc::SYS_process_vm_readv, "process_vm_readv"),
        (libc::SYS_process_vm_writev, "process_vm_writev"),
        (libc::SYS_acct, "acct"),
        (libc::SYS_settimeofday, "settimeofday"),
        (libc::SYS_clock_settime, "clock_settime"),
        (libc::SYS_adjtimex, "adjtimex"),
        (libc::SYS_syslog, "syslog"),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([(libc::SYS_iopl, "iopl"), (libc::SYS_ioperm, "ioperm")]);
    list
}

/// Network system calls whose destination address the monitor checks.
pub(crate) const NETWORK: &[(i64, &str)] = &[
    (libc::SYS_connect, "connect"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_sendmmsg, "sendmmsg"),
];

/// Open calls the monitor checks when they ask for write access (or always, for `creat` and
/// `openat2`, whose flags BPF cannot see).
#[cfg(target_arch = "x86_64")]
pub(crate) const OPENS: &[(i64, &str)] = &[
    (libc::SYS_open, "open"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_creat, "creat"),
    (libc::SYS_openat2, "openat2"),
];
/// Open calls the monitor checks (see the x86_64 list).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const OPENS: &[(i64, &str)] =
    &[(libc::SYS_openat, "openat"), (libc::SYS_openat2, "openat2")];

/// A path argument of a call that changes the file tree: (index of the directory-descriptor
/// argument, or `None` for the working directory; index of the path argument).
pub(crate) type PathArg = (Option<usize>, usize);

/// Calls that change the file tree (create, remove, rename, link, change mode or owner), with
/// the path argument that names what they change; the monitor checks it like an open for
/// writing.
pub(crate) fn tree_changes() -> Vec<(i64, &'static str, PathArg)> {
    let mut list = vec![
        (libc::SYS_mkdirat, "mkdirat", (Some(0), 1)),
        (libc::SYS_unlinkat, "unlinkat", (Some(0), 1)),
        (libc::SYS_renameat, "renameat", (Some(2), 3)),
        (libc::SYS_renameat2, "renameat2", (Some(2), 3)),
        (libc::SYS_symlinkat, "symlinkat", (Some(1), 2)),
        (libc::SYS_linkat, "linkat", (Some(2), 3)),
        (libc::SYS_truncate, "truncate", (None, 0)),
        (libc::SYS_fchmodat, "fchmodat", (Some(0), 1)),
        (libc::SYS_fchownat, "fchownat", (Some(0), 1)),
        (libc::SYS_mknodat, "mknodat", (Some(0), 1)),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([
        (libc::SYS_mkdir, "mkdir", (None, 0)),
        (libc::SYS_rmdir, "rmdir", (None, 0)),
        (libc::SYS_unlink, "unlink", (None, 0)),
        (libc::SYS_rename, "rename", (None, 1)),
        (libc::SYS_symlink, "symlink", (None, 1)),
        (libc::SYS_link, "link", (None, 1)),
        (libc::SYS_chmod, "chmod", (None, 0)),
        (libc::SYS_chown, "chown", (None, 0)),
        (libc::SYS_lchown, "lchown", (None, 0)),
        (libc::SYS_mknod, "mknod", (None, 0)),
    ]);
    list
}

/// The `SECCOMP_RET_TRACE` data seccompiler is given as the match action, rewritten to
/// `SECCOMP_RET_USER_NOTIF` afterwards.
const MARKER: u32 = 0x0fe7;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const BPF_RET_K: u16 = 0x06;

/// The name of system call `nr` if the filter hands it to the monitor.
pub(crate) fn name_of(nr: i64) -> Option<&'static str> {
    denied()
        .into_iter()
        .chain(NETWORK.iter().copied())
        .chain(OPENS.iter().copied())
        .chain(tree_changes().into_iter().map(|(n, name, _)| (n, name)))
        .find(|(n, _)| *n == nr)
        .map(|(_, name)| name)
}

fn write_flag_rules(arg: u8) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT]
        .into_iter()
        .map(|flag| {
            let flag = flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect()
}

/// Compiles the filter for this machine's architecture. `handoff_fd` is the descriptor the
/// sandbox's PID 1 sends the notification listener over: `sendmsg` on it is not handed to
/// the (not yet listening) monitor.
pub(crate) fn program(handoff_fd: i32) -> Result<BpfProgram, SandboxError> {
    let fail = |reason: String| SandboxError::Policy {
        layer: "seccomp",
        reason,
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| fail(format!("{e:?}")))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied()
        .into_iter()
        .map(|(nr, _)| (nr, Vec::new()))
        .collect();
    let be = |e: seccompiler::BackendError| fail(e.to_string());
    rules.insert(libc::SYS_connect, Vec::new());
    rules.insert(libc::SYS_sendto, Vec::new());
    rules.insert(libc::SYS_sendmmsg, Vec::new());
    rules.insert(
        libc::SYS_sendmsg,
        vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    handoff_fd as u64,
                )
                .map_err(be)?,
            ])
            .map_err(be)?,
        ],
    );
    for (nr, _, _) in tree_changes() {
        rules.insert(nr, Vec::new());
    }
    for &(nr, name) in OPENS {
        let r = match name {
            "open" => write_flag_rules(1).map_err(be)?,
            "openat" => write_flag_rules(2).map_err(be)?,
            _ => Vec::new(),
        };
        rules.insert(nr, r);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trace(MARKER),
        arch,
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| fail(e.to_string()))?;
    let mut rewritten = 0;
    for insn in &mut program {
        if insn.code == BPF_RET_K && insn.k == SECCOMP_RET_TRACE | MARKER {
            insn.k = SECCOMP_RET_USER_NOTIF;
            rewritten += 1;
        }
    }
    if rewritten == 0 {
        return Err(fail(
            "the compiled filter has no match action to hand to the monitor".into(),
        ));
    }
    Ok(program)
}
