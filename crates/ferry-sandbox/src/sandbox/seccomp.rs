//! The seccomp filter: every system call allowed except host administration, which fails
//! with `EPERM`.

use super::error::SandboxError;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
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

/// Compiles the filter for this machine's architecture.
pub(crate) fn program() -> Result<BpfProgram, SandboxError> {
    let fail = |reason: String| SandboxError::Policy {
        layer: "seccomp",
        reason,
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| fail(format!("{e:?}")))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = denied()
        .into_iter()
        .map(|(nr, _)| (nr, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| fail(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| fail(e.to_string()))
}
