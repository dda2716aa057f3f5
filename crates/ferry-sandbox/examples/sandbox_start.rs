//! `sandbox_start [ROUNDS]`: sandbox start to first served request, for both backends.
//! The same firmware tree (the static busybox serving a page with `httpd`) is started
//! ROUNDS times (default 3) in a [`NamespaceSandbox`] and in a [`QemuSandbox`] (TCG, own
//! kernel); each round times `start` until the first HTTP answer with status 200, reached the
//! way the mirroring proxy reaches it ([`SandboxChild::service_backend`]).
//!
//! Needs root (namespaces) and `scripts/fetch-qemu-guest.sh` (QEMU); a backend that cannot
//! run is reported, not measured.
//!
//! [`SandboxChild::service_backend`]: ferry_sandbox::sandbox::SandboxChild::service_backend

use ferry_sandbox::sandbox::{
    BUSYBOX, NamespaceSandbox, QemuSandbox, ResourceLimits, Sandbox, SandboxSpec,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 8080;

fn firmware(dir: &Path) -> std::path::PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("needs busybox-static");
    std::fs::write(root.join("www/index.html"), "first request\n").unwrap();
    root
}

/// Starts the service and returns the time until its first HTTP 200.
async fn round(sandbox: &dyn Sandbox, dir: &Path, i: usize) -> Result<Duration, String> {
    let root = firmware(dir);
    let spec = SandboxSpec {
        rootfs: root,
        data_dir: None,
        work_dir: dir.join(format!("work-{i}")),
        argv: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
            .map(String::from)
            .to_vec(),
        env: vec![("PATH".into(), "/bin".into())],
        hostname: "bench".into(),
        limits: ResourceLimits::default(),
        stubs: Vec::new(),
    };
    let start = Instant::now();
    let mut child = sandbox.start(&spec).map_err(|e| e.to_string())?;
    let started = start.elapsed();
    let backend = child
        .service_backend(([127, 0, 0, 1], PORT).into())
        .map_err(|e| e.to_string())?;
    let deadline = start + Duration::from_secs(300);
    loop {
        if let Ok(mut s) = backend.connect().await {
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await;
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200") {
                let took = start.elapsed();
                if let Some(console) = child.console_log() {
                    let text = std::fs::read_to_string(console).unwrap_or_default();
                    for line in text.lines().filter(|l| l.starts_with("ferry-guest: ")) {
                        println!("    round {i}: {line}");
                    }
                    println!(
                        "    round {i}: start returned after {}, first answer after {}",
                        ms(started),
                        ms(took)
                    );
                }
                let _ = child.kill();
                return Ok(took);
            }
        }
        if Instant::now() > deadline {
            return Err("no answer within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let namespace = NamespaceSandbox;
    let qemu = QemuSandbox::forwarding(&[PORT]);
    let backends: [(&str, &dyn Sandbox); 2] = [
        ("namespace", &namespace),
        ("qemu (x86-64 TCG, own kernel)", &qemu),
    ];
    println!("sandbox start to first served request ({rounds} rounds, busybox httpd)");
    for (name, sandbox) in backends {
        let mut times = Vec::new();
        for i in 0..rounds {
            let dir = tempfile::tempdir().unwrap();
            match round(sandbox, dir.path(), i).await {
                Ok(t) => times.push(t),
                Err(e) => {
                    println!("  {name:<30} not measured: {e}");
                    break;
                }
            }
        }
        if times.is_empty() {
            continue;
        }
        times.sort();
        println!(
            "  {name:<30} median {}  min {}  max {}",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
}
