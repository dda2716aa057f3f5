//! The Linux namespace backend.

use super::cgroup::Cgroup;
use super::child_setup::Prepared;
use super::copy::{chown_tree, copy_tree};
use super::error::SandboxError;
use super::monitor::MonitorRun;
use super::monitor_notify::{Listener, recv_fd, socketpair};
use super::stubs::Stubs;
use super::{ID_BASE, ID_COUNT};
use super::{Isolation, Sandbox, SandboxChild, SandboxSpec, seccomp};
use landlock::{
    ABI, Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs commands in new user, PID, mount, network, IPC and UTS namespaces with Landlock,
/// seccomp and cgroup limits (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct NamespaceSandbox;

/// Device nodes the sandbox's `/dev` gets (bound from the host).
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn cstr(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::BadSpec(format!("path {} contains a NUL byte", path.display())))
}

fn landlock_rules(
    rootfs: &Path,
    data: Option<&Path>,
) -> Result<(Option<landlock::RulesetCreated>, String), SandboxError> {
    let fail = |e: &dyn std::fmt::Display| SandboxError::Policy {
        layer: "landlock",
        reason: e.to_string(),
    };
    let abi = ABI::V2;
    let access = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .handle_access(access)
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?;
    for dir in std::iter::once(rootfs).chain(data) {
        let fd = PathFd::new(dir).map_err(|e| fail(&e))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(&e))?;
    }
    let supported = landlock_supported();
    let status = if supported {
        "enforced: only the sandbox root and its data copy are reachable".to_string()
    } else {
        "not supported by this kernel".to_string()
    };
    Ok((Some(ruleset), status))
}

/// Whether the running kernel offers Landlock (`landlock_create_ruleset` version query).
fn landlock_supported() -> bool {
    // SAFETY: the documented ABI-version query: null attributes, size 0, flag VERSION.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v >= 1
}

/// The sandbox's root (host UID/GID [`ID_BASE`]) must be able to walk to `dir`: every
/// ancestor needs the search bit for others.
fn traversable(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor).map_err(SandboxError::io(
            ancestor,
            "read the permissions of a parent directory",
        ))?;
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(SandboxError::BadSpec(format!(
                "{} is not searchable by others (mode {:o}), so the sandbox's root (host uid \
                 {ID_BASE}) cannot reach {}; use a location under directories with mode o+x",
                ancestor.display(),
                meta.permissions().mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Mount points to create for the stubs (parents first) and the bind mounts, as paths in
/// the root filesystem before `pivot_root`.
#[allow(clippy::type_complexity)]
fn stub_mount_plan(
    rootfs: &Path,
    stubs: &Stubs,
) -> Result<(Vec<CString>, Vec<(CString, CString, bool)>), SandboxError> {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    let mut binds = Vec::new();
    for m in &stubs.mounts {
        let rel = Path::new(m.target.trim_start_matches('/'));
        // Ancestors below the top level (`dev` or `sys`, mounted as tmpfs) down to the parent.
        let mut parents: Vec<&Path> = rel.ancestors().skip(1).collect();
        parents.retain(|p| p.components().count() >= 2);
        for p in parents.into_iter().rev() {
            let dir = rootfs.join(p);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        binds.push((cstr(&m.host)?, cstr(&rootfs.join(rel))?, m.is_dir));
    }
    let dirs = dirs.iter().map(|d| cstr(d)).collect::<Result<_, _>>()?;
    Ok((dirs, binds))
}

impl Sandbox for NamespaceSandbox {
    fn name(&self) -> &'static str {
        "namespace"
    }

    fn start(&self, spec: &SandboxSpec) -> Result<SandboxChild, SandboxError> {
        let rootfs = spec.checked_rootfs()?;
        let program = &spec.argv[0];
        traversable(&rootfs)?;
        std::fs::create_dir_all(&spec.work_dir).map_err(SandboxError::io(
            &spec.work_dir,
            "create the work directory",
        ))?;
        let work = std::fs::canonicalize(&spec.work_dir)
            .map_err(SandboxError::io(&spec.work_dir, "open the work directory"))?;
        let stubs = Stubs::prepare(&spec.stubs, &work.join("stubs"))?;
        if !stubs.mounts.is_empty() {
            traversable(&work.join("stubs"))?;
        }
        let stubs_in_sys = stubs.mounts.iter().any(|m| m.target.starts_with("/sys/"));
        let sys = stubs_in_sys.then_some("sys");
        for dir in ["proc", "dev", "tmp", "data"].into_iter().chain(sys) {
            let p = rootfs.join(dir);
            if std::fs::symlink_metadata(&p).is_err() {
                std::fs::create_dir(&p).map_err(SandboxError::io(
                    &p,
                    "create a mount point in the root filesystem",
                ))?;
            }
        }
        let data_copy = match &spec.data_dir {
            Some(src) => {
                let dst = std::fs::canonicalize(&spec.work_dir)
                    .map_err(SandboxError::io(&spec.work_dir, "open the work directory"))?
                    .join("data");
                traversable(dst.parent().expect("the copy has a parent"))?;
                copy_tree(src, &dst)?;
                chown_tree(&dst, ID_BASE)?;
                Some(dst)
            }
            None => None,
        };
        let (landlock, landlock_status) = landlock_rules(&rootfs, data_copy.as_deref())?;
        let name = format!(
            "ferry-sandbox-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let cgroup = Cgroup::create(&name, &spec.limits);
        let (host_sock, child_sock) = socketpair().map_err(SandboxError::Start)?;
        let (stub_dirs, stub_binds) = stub_mount_plan(&rootfs, &stubs)?;
        let mut prepared = Prepared {
            id_map: CString::new(format!("0 {ID_BASE} {ID_COUNT}")).expect("no NUL"),
            cgroup_procs: cgroup
                .procs
                .iter()
                .map(|p| cstr(p))
                .collect::<Result<_, _>>()?,
            rootfs: cstr(&rootfs)?,
            data: match &data_copy {
                Some(d) => Some((cstr(d)?, cstr(&rootfs.join("data"))?)),
                None => None,
            },
            proc_dir: cstr(&rootfs.join("proc"))?,
            dev_dir: cstr(&rootfs.join("dev"))?,
            tmp_dir: cstr(&rootfs.join("tmp"))?,
            dev_nodes: DEV_NODES
                .iter()
                .filter(|n| Path::new("/dev").join(n).exists())
                .map(|n| {
                    Ok((
                        cstr(&Path::new("/dev").join(n))?,
                        cstr(&rootfs.join("dev").join(n))?,
                    ))
                })
                .collect::<Result<_, SandboxError>>()?,
            hostname: CString::new(spec.hostname.as_bytes())
                .map_err(|_| SandboxError::BadSpec("the hostname contains a NUL byte".into()))?,
            landlock,
            seccomp: seccomp::program(child_sock.as_raw_fd())?,
            notify_sock: child_sock.as_raw_fd(),
            sys_dir: match stubs_in_sys {
                true => Some(cstr(&rootfs.join("sys"))?),
                false => None,
            },
            stub_dirs,
            stub_binds,
        };
        let mut cmd = Command::new(program);
        cmd.args(&spec.argv[1..])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: `enter` only makes system calls on data prepared above (see child_setup).
        unsafe {
            cmd.pre_exec(move || prepared.enter());
        }
        let child = cmd.spawn().map_err(SandboxError::Start)?;
        drop(child_sock);
        // PID 1 sent the listener before its exec, and spawn returns only after that exec.
        let listener = recv_fd(&host_sock)
            .map(Listener)
            .map_err(|e| format!("no seccomp notification listener from the sandbox: {e}"));
        let cgroup_dirs = cgroup
            .procs
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        let monitor = MonitorRun::start(listener, stubs, cgroup_dirs, child.id());
        Ok(SandboxChild {
            child: Some(child),
            isolation: Isolation {
                uid_map: format!("0 {ID_BASE} {ID_COUNT}"),
                namespaces: ["user", "pid", "mount", "net", "ipc", "uts"]
                    .map(String::from)
                    .to_vec(),
                landlock: landlock_status,
                seccomp_denied: seccomp::denied()
                    .into_iter()
                    .map(|(_, n)| n.to_string())
                    .collect(),
                cgroup: cgroup.description.clone(),
            },
            cgroup,
            data_copy,
            qemu: None,
            monitor: Some(monitor),
        })
    }
}
