//! The namespace sandbox, exercised with a static probe program compiled here.

mod support;

use ferry_sandbox::sandbox::{NamespaceSandbox, ResourceLimits, Sandbox, SandboxSpec};
use std::path::Path;
use std::time::Duration;

const PROBE_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

static void cat(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("open %s: denied (%s)\n", path, strerror(errno)); return; }
  char buf[4096] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  printf("open %s: READ %s\n", path, n > 0 ? buf : "");
  close(fd);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc > 1 && !strcmp(argv[1], "files")) {
    char host[64] = {0};
    gethostname(host, sizeof host - 1);
    printf("pid=%d uid=%d hostname=%s\n", (int)getpid(), (int)getuid(), host);
    int r = open("/rootfs-write.txt", O_WRONLY | O_CREAT, 0644);
    printf("rootfs write: %s\n", r >= 0 ? "ALLOWED" : strerror(errno));
    for (int i = 2; i < argc; i++) cat(argv[i]);
    int w = open("/data/written.txt", O_WRONLY | O_CREAT, 0644);
    printf("data write: %s\n", w >= 0 ? "ok" : strerror(errno));
    int m = mount("none", "/tmp", "tmpfs", 0, NULL);
    printf("mount: %s\n", m == 0 ? "ALLOWED" : strerror(errno));
    cat("/proc/self/cgroup");
    return 0;
  }
  if (argc > 2 && !strcmp(argv[1], "net")) {
    cat("/proc/net/dev");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int c = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect: %s\n", c == 0 ? "CONNECTED" : strerror(errno));
    return 0;
  }
  return 2;
}
"#;

fn rootfs(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    // The sandbox's root is an unprivileged host uid: it must be able to walk to its tree.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    support::compile_c(&root, "probe", PROBE_C, &["-static", "-O1"]);
    root
}

fn spec(dir: &Path, root: &Path, data: Option<&Path>, argv: &[&str]) -> SandboxSpec {
    SandboxSpec {
        rootfs: root.into(),
        data_dir: data.map(Into::into),
        work_dir: dir.join("work"),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/".into())],
        hostname: "ferry-sbx".into(),
        limits: ResourceLimits::default(),
    }
}

#[test]
fn sandboxed_process_cannot_read_outside_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    let data = dir.path().join("device-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("config.txt"), "device-data").unwrap();
    let secret_abs = secret.to_str().unwrap().to_string();
    let via_proc = format!("/proc/1/root{secret_abs}");
    let args = [
        "/probe",
        "files",
        &secret_abs,
        "/../../../../../etc/hostname",
        &via_proc,
        "/etc/passwd",
        "/data/config.txt",
    ];
    let sandbox = NamespaceSandbox;
    let child = sandbox
        .start(&spec(dir.path(), &root, Some(&data), &args))
        .unwrap();
    assert!(child.isolation.namespaces.contains(&"net".to_string()));
    let data_copy = child.data_copy.clone().unwrap();
    let cgroup = child.isolation.cgroup.clone();
    println!("{:#?}", child.isolation);
    let out = child.wait_with_output(Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pid=1 uid=0 hostname=ferry-sbx"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rootfs write: Permission denied"),
        "{stdout}"
    );
    assert!(!stdout.contains("TOPSECRET"), "read a host file: {stdout}");
    for path in [
        secret_abs.as_str(),
        "/../../../../../etc/hostname",
        &via_proc,
        "/etc/passwd",
    ] {
        assert!(
            stdout.contains(&format!("open {path}: denied")),
            "{path}: {stdout}"
        );
    }
    assert!(
        stdout.contains("open /data/config.txt: READ device-data"),
        "{stdout}"
    );
    assert!(stdout.contains("data write: ok"));
    assert!(
        data_copy.join("written.txt").exists(),
        "writes land in the copy"
    );
    assert!(
        !data.join("written.txt").exists(),
        "the device's data is never written"
    );
    assert!(
        stdout.contains("mount: Operation not permitted"),
        "seccomp must refuse mount: {stdout}"
    );
    if cgroup.starts_with('v') {
        assert!(
            stdout.contains("ferry-sandbox-"),
            "the process runs in its cgroup ({cgroup}): {stdout}"
        );
    }
}

#[test]
fn sandboxed_process_cannot_reach_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let started = std::time::Instant::now();
    let child = NamespaceSandbox
        .start(&spec(dir.path(), &root, None, &["/probe", "net", &port]))
        .unwrap();
    println!("sandbox started (PID 1 exec'd) in {:?}", started.elapsed());
    let out = child.wait_with_output(Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("connect: Connection refused"), "{stdout}");
    let interfaces: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(name, _)| name.trim()))
        .filter(|n| !n.is_empty() && !n.contains(' ') && !n.starts_with("open") && *n != "connect")
        .collect();
    assert_eq!(interfaces, ["lo"], "only its own loopback exists: {stdout}");
    assert!(
        listener.accept().is_err(),
        "the host's listener must see no connection"
    );
}

#[test]
fn a_sandbox_that_runs_too_long_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    support::compile_c(&root, "spin", "int main(void){for(;;){}}", &["-static"]);
    let child = NamespaceSandbox
        .start(&spec(dir.path(), &root, None, &["/spin"]))
        .unwrap();
    let err = child
        .wait_with_output(Duration::from_millis(300))
        .unwrap_err();
    assert!(err.to_string().contains("ran longer than"), "{err}");
    // Nothing of the sandbox survives: no live `spin` process of the sandbox's uid is left
    // (an exited PID 1 may linger as a zombie until the host's init reaps it).
    std::thread::sleep(Duration::from_millis(100));
    let uid_line = format!("Uid:\t{}\t", ferry_sandbox::sandbox::ID_BASE);
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let zombie = status.contains("State:\tZ");
            comm.trim() == "spin" && status.contains(&uid_line) && !zombie
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        survivors.is_empty(),
        "sandbox processes survived: {survivors:?}"
    );
}

#[test]
fn a_root_the_sandbox_cannot_reach_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let hidden = dir.path().join("private");
    std::fs::create_dir(&hidden).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
    let moved = hidden.join("rootfs");
    std::fs::rename(&root, &moved).unwrap();
    let err = NamespaceSandbox
        .start(&spec(dir.path(), &moved, None, &["/probe", "files"]))
        .unwrap_err();
    assert!(
        err.to_string().contains("not searchable by others"),
        "{err}"
    );
}

#[test]
fn net_namespace_is_the_sandboxes_own_not_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    support::compile_c(&root, "spin", "int main(void){for(;;){}}", &["-static"]);
    let mut child = NamespaceSandbox
        .start(&spec(dir.path(), &root, None, &["/spin"]))
        .unwrap();
    let ns = child.net_namespace().unwrap();
    let theirs = std::fs::read_link(&ns).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        theirs,
        ours,
        "{} is the host's network namespace",
        ns.display()
    );
    assert!(theirs.to_string_lossy().starts_with("net:["), "{theirs:?}");
    // The sandboxed command itself (PID 1 inside) is in that namespace.
    let outer = child.pid();
    let b = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).unwrap();
    let b = b.split_whitespace().next().unwrap().to_string();
    let c = std::fs::read_to_string(format!("/proc/{b}/task/{b}/children")).unwrap();
    let c = c.split_whitespace().next().unwrap().to_string();
    assert_eq!(
        std::fs::read_link(format!("/proc/{c}/ns/net")).unwrap(),
        theirs
    );
    child.kill().unwrap();
}
