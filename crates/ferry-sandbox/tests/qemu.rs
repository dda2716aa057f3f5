//! The QEMU sandbox backend, for real: a Debian guest kernel under `qemu-system-x86_64` (TCG)
//! boots a firmware tree made of a static busybox. Needs `scripts/fetch-qemu-guest.sh` to
//! have run (qemu-system-x86, busybox-static, the guest kernel): with
//! FERRY_REQUIRE_SERVICES=1 a missing piece fails the tests, otherwise they skip loudly.

use ferry_sandbox::mirror::Backend;
use ferry_sandbox::sandbox::{
    BUSYBOX, GuestArch, GuestKernel, QemuSandbox, ResourceLimits, Sandbox, SandboxSpec,
    check_host_tools,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Generous: TCG boots on two busy cores can take a while; never a timing assert.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn qemu_available() -> bool {
    let problem = GuestKernel::locate(None, GuestArch::X86_64)
        .and_then(|_| check_host_tools(GuestArch::X86_64))
        .err()
        .map(|e| e.to_string());
    ferry_store::testing::require_service(
        &format!("QEMU guest ({})", problem.as_deref().unwrap_or("available")),
        "scripts/fetch-qemu-guest.sh",
        problem.is_none(),
    )
}

/// A firmware tree: the static busybox at /bin/busybox and a web root.
fn firmware(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    std::fs::write(root.join("www/index.html"), "served-from-the-guest\n").unwrap();
    root
}

fn spec(dir: &Path, root: &Path, data: Option<&Path>, argv: &[&str]) -> SandboxSpec {
    SandboxSpec {
        rootfs: root.into(),
        data_dir: data.map(Into::into),
        work_dir: dir.join("work"),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/bin".into())],
        hostname: "ferry-qemu".into(),
        limits: ResourceLimits::default(),
        stubs: Vec::new(),
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn guest_service_answers_through_the_host_forward() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = firmware(dir.path());
    let spec = spec(
        dir.path(),
        &root,
        None,
        &["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let mut sandbox = QemuSandbox::forwarding(&[8080]).start(&spec).unwrap();
    let host = sandbox.host_forward(8080).expect("port 8080 is forwarded");
    assert!(host.ip().is_loopback(), "{host}");
    assert_eq!(
        sandbox
            .service_backend("127.0.0.1:8080".parse().unwrap())
            .unwrap(),
        Backend::Tcp(host)
    );
    let answer = http_get(host, "/index.html");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("served-from-the-guest"), "{answer}");
    let console = std::fs::read_to_string(sandbox.console_log().unwrap()).unwrap();
    assert!(console.contains("ferry-guest: ready"), "{console}");
    assert!(
        sandbox.isolation.namespaces[0].contains("tcg"),
        "{:?}",
        sandbox.isolation
    );
    assert!(
        sandbox.try_wait().unwrap().is_none(),
        "the guest keeps running"
    );
    sandbox.kill().unwrap();
}

#[test]
fn guest_sees_only_its_initramfs_and_its_own_kernel() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = firmware(dir.path());
    let secret = dir.path().join("host-secret.txt");
    std::fs::write(&secret, "HOST-SECRET-CONTENT").unwrap();
    let data = dir.path().join("device-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("settings.conf"), "device-setting=42").unwrap();
    let script = format!(
        "cat /data/settings.conf; echo; \
         cat {secret} 2>&1 || echo HOST-FILE-UNREADABLE; \
         cat /etc/hostname /etc/shadow 2>&1; \
         echo kernel=$(busybox uname -r); busybox hostname",
        secret = secret.display()
    );
    let spec = spec(
        dir.path(),
        &root,
        Some(&data),
        &["/bin/busybox", "sh", "-c", &script],
    );
    let out = QemuSandbox::default()
        .start(&spec)
        .unwrap()
        .wait_with_output(RUN_TIMEOUT)
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {console}", out.status);
    assert!(console.contains("device-setting=42"), "{console}");
    assert!(!console.contains("HOST-SECRET-CONTENT"), "{console}");
    assert!(console.contains("HOST-FILE-UNREADABLE"), "{console}");
    assert!(console.contains("'/etc/shadow': No such file"), "{console}");
    let release = GuestKernel::locate(None, GuestArch::X86_64)
        .unwrap()
        .release;
    assert!(console.contains(&format!("kernel={release}")), "{console}");
    assert!(console.contains("ferry-qemu"), "{console}");
}

/// Counts the connections a listener accepts.
fn counting_listener(addr: &str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, count)
}

#[test]
fn guest_cannot_open_outbound_connections() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = firmware(dir.path());
    // Without `restrict=on`, 10.0.2.2 is the host's loopback seen from the guest.
    let (loopback_port, loopback_hits) = counting_listener("127.0.0.1:0");
    let (any_port, any_hits) = counting_listener("0.0.0.0:0");
    let script = format!(
        "for target in 10.0.2.2:{loopback_port} 10.0.2.2:{any_port} 10.0.2.3:{any_port} 1.1.1.1:80; do \
           if echo hello | busybox nc -w 5 ${{target%:*}} ${{target#*:}}; then echo CONNECTED $target; \
           else echo REFUSED $target; fi; \
         done"
    );
    let spec = spec(
        dir.path(),
        &root,
        None,
        &["/bin/busybox", "sh", "-c", &script],
    );
    let out = QemuSandbox::default()
        .start(&spec)
        .unwrap()
        .wait_with_output(RUN_TIMEOUT)
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("guest console:\n{console}");
    assert_eq!(console.matches("REFUSED").count(), 4, "{console}");
    assert!(!console.contains("CONNECTED"), "{console}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(loopback_hits.load(Ordering::SeqCst), 0, "{console}");
    assert_eq!(any_hits.load(Ordering::SeqCst), 0, "{console}");
}

#[test]
fn missing_guest_kernel_is_an_error_naming_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let sandbox = QemuSandbox {
        guest_dir: Some(dir.path().join("no-kernels-here")),
        ..QemuSandbox::default()
    };
    let err = sandbox
        .start(&spec(dir.path(), &root, None, &["/bin/busybox", "true"]))
        .unwrap_err();
    assert!(
        err.to_string().contains("scripts/fetch-qemu-guest.sh"),
        "{err}"
    );
}
