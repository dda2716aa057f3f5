//! Sandbox start to first served request, per backend.

use crate::sandbox::{BUSYBOX, NamespaceSandbox, QemuSandbox, ResourceLimits, Sandbox, SandboxSpec};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 8080;

/// One backend's start times.
#[derive(Debug, Clone)]
pub struct StartFigures {
    /// Backend name.
    pub backend: String,
    /// Start to first HTTP 200, per round.
    pub times: Vec<Duration>,
    /// Why it could not be measured (missing kernel, no privileges, …).
    pub error: Option<String>,
}

/// A firmware tree serving one page with the static busybox's httpd.
fn firmware(dir: &Path) -> Result<std::path::PathBuf, String> {
    let io = |e: std::io::Error| format!("preparing the benchmark firmware in {}: {e}", dir.display());
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).map_err(io)?;
    std::fs::create_dir_all(root.join("www")).map_err(io)?;
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))
        .map_err(|e| format!("{BUSYBOX} is needed (Debian package busybox-static): {e}"))?;
    std::fs::write(root.join("www/index.html"), "first request\n").map_err(io)?;
    Ok(root)
}

/// Starts the service once; the time until its first HTTP 200, reached the way the mirroring
/// proxy reaches it.
async fn round(sandbox: &dyn Sandbox, dir: &Path, i: usize) -> Result<Duration, String> {
    let spec = SandboxSpec {
        rootfs: firmware(dir)?,
        data_dir: None,
        work_dir: dir.join(format!("work-{i}")),
        argv: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"].map(String::from).to_vec(),
        env: vec![("PATH".into(), "/bin".into())],
        hostname: "bench".into(),
        limits: ResourceLimits::default(),
        stubs: Vec::new(),
    };
    let start = Instant::now();
    let mut child = tokio::task::block_in_place(|| sandbox.start(&spec)).map_err(|e| e.to_string())?;
    let backend = child.service_backend(([127, 0, 0, 1], PORT).into()).map_err(|e| e.to_string())?;
    let deadline = start + Duration::from_secs(300);
    loop {
        if let Ok(mut s) = backend.connect().await {
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await;
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200") {
                let took = start.elapsed();
                let _ = child.kill();
                return Ok(took);
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("no answer within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `rounds` starts in a namespace sandbox and in a QEMU guest (TCG, own kernel). Needs a
/// multi-threaded runtime (sandbox starts block).
pub async fn measure_start(rounds: usize) -> Vec<StartFigures> {
    let namespace = NamespaceSandbox;
    let qemu = QemuSandbox::forwarding(&[PORT]);
    let backends: [(&str, &dyn Sandbox); 2] = [("namespace", &namespace), ("qemu (x86-64 TCG, own kernel)", &qemu)];
    let mut out = Vec::new();
    for (name, sandbox) in backends {
        let mut figures = StartFigures { backend: name.to_string(), times: Vec::new(), error: None };
        for i in 0..rounds {
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => {
                    figures.error = Some(format!("no temporary directory: {e}"));
                    break;
                }
            };
            match round(sandbox, dir.path(), i).await {
                Ok(t) => figures.times.push(t),
                Err(e) => {
                    figures.error = Some(e);
                    break;
                }
            }
        }
        out.push(figures);
    }
    out
}
