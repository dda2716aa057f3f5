//! The secure preflight with the QEMU sandbox backend, end to end: a sealed vendor package
//! whose service is the demo's HTTP server ([`SERVICE_C`], linked statically so the guest
//! needs no libc) is opened, scanned, booted in a QEMU guest (TCG) with its port forwarded,
//! and rehearsed with live traffic mirrored through the proxy under client load. A faithful
//! build is judged safe; a build answering `/items/3` differently is judged unsafe with a
//! `mirror` finding. Needs `scripts/fetch-qemu-guest.sh` (qemu-system-x86, busybox-static,
//! the guest kernel) and a static libc (libc6-dev): with FERRY_REQUIRE_SERVICES=1 a missing
//! piece fails the test, otherwise it skips loudly.

mod support;

use ferry_artifact::keys::SigningKey;
use ferry_core::{Component, DeviceId, Version};
use ferry_sandbox::demo::SERVICE_C;
use ferry_sandbox::envelope::{GroupSecret, seal_bytes};
use ferry_sandbox::gate::GateInput;
use ferry_sandbox::mirror::{Backend, HttpMirrorProxy, MirrorConfig, ProxyControl};
use ferry_sandbox::preflight::{PreflightInput, ServiceSpec, Verdict, preflight};
use ferry_sandbox::sandbox::{
    GuestArch, GuestKernel, QemuSandbox, ResourceLimits, SandboxBackend, check_host_tools,
};
use ferry_sandbox::scan::{Policy, default_rules};
use ferry_sandbox::unpack::{Limits, UnpackRule};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The guest port the new version listens on (on all addresses: forwarded connections
/// arrive on the guest's eth0).
const GUEST_PORT: u16 = 8080;
/// Generous: a TCG boot on two busy cores takes seconds; never a timing assert.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const MIRROR_PERIOD: Duration = Duration::from_secs(4);
const MIN_MIRRORED: u64 = 10;

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

/// `cc -static -O2 [defines] SERVICE_C`; `Err` with the compiler's words when there is no
/// compiler or no static libc.
fn compile_static(dir: &Path, name: &str, defines: &[&str]) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, SERVICE_C).unwrap();
    let out = dir.join(name);
    let result = Command::new("cc")
        .args(["-static", "-O2"])
        .args(defines)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !result.status.success() {
        return Err(String::from_utf8_lossy(&result.stderr).into_owned());
    }
    Ok(out)
}

/// The three builds, or `None` (skipped loudly, or failing under FERRY_REQUIRE_SERVICES=1)
/// when static linking is not possible here.
fn builds(dir: &Path) -> Option<[PathBuf; 3]> {
    let built = ["production", "faithful", "divergent"]
        .into_iter()
        .zip([&[][..], &[][..], &["-DDIVERGE"][..]])
        .map(|(name, defines)| compile_static(dir, name, defines))
        .collect::<Result<Vec<_>, _>>();
    let problem = built.as_ref().err().cloned();
    let ok = ferry_store::testing::require_service(
        &format!(
            "static C toolchain (cc -static: {})",
            problem.as_deref().unwrap_or("available").trim()
        ),
        "apt-get install gcc libc6-dev",
        problem.is_none(),
    );
    ok.then(|| built.unwrap().try_into().unwrap())
}

/// A vendor package: a tar with the service at `/app`, sealed to the group, signed.
fn seal(
    dir: &Path,
    name: &str,
    binary: &Path,
    group: &GroupSecret,
    vendor: &SigningKey,
) -> PathBuf {
    let bytes = std::fs::read(binary).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("app").unwrap();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append(&header, &bytes[..]).unwrap();
    let sealed = seal_bytes(&tar.into_inner().unwrap(), &group.public(), vendor);
    let envelope = dir.join(format!("{name}.enc"));
    std::fs::write(&envelope, sealed).unwrap();
    envelope
}

/// Production on the host (killed when dropped).
struct Production(Child);

impl Drop for Production {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One client request through the proxy: `GET path` must answer 200 with the right value.
async fn get_checked(proxy: SocketAddr, path: &str) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("GET {path}: connect: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("GET {path}: write: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .await
        .map_err(|e| format!("GET {path}: read: {e}"))?;
    let expected = format!("\"value\":\"value of {path}\"");
    if answer.starts_with("HTTP/1.1 200") && answer.contains(&expected) {
        Ok(())
    } else {
        Err(format!("GET {path}: unexpected answer {answer:?}"))
    }
}

/// Clients sending requests through the proxy until stopped.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Load {
    fn start(proxy: SocketAddr) -> Arc<Load> {
        let load = Arc::new(Load::default());
        let l = load.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !l.stop.load(Ordering::SeqCst) {
                i += 1;
                match get_checked(proxy, &format!("/items/{}", i % 5)).await {
                    Ok(()) => l.ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        l.first_failure.lock().unwrap().get_or_insert(e);
                        l.failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        load
    }
}

struct Keys {
    group: GroupSecret,
    vendor: SigningKey,
}

async fn run_preflight(
    dir: &Path,
    name: &str,
    envelope: &Path,
    keys: &Keys,
    proxy: &ProxyControl,
) -> Verdict {
    let rules = default_rules().unwrap();
    let policy = Policy::default();
    let vendors = [keys.vendor.public()];
    let data = dir.join("device-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("state.json"), "{}").unwrap();
    let work = dir.join(format!("work-{name}"));
    let input = PreflightInput {
        device_id: DeviceId::new("qemu-device-1").unwrap(),
        component: Component::Main,
        version: Version::new(2, 0, 0),
        gate: GateInput {
            envelope,
            group: &keys.group,
            vendor_keys: &vendors,
            rule: UnpackRule::Tar,
            limits: Limits::default(),
            work_dir: &work,
        },
        rules: &rules,
        policy: &policy,
        service: ServiceSpec {
            argv: vec!["/app".into(), GUEST_PORT.to_string(), "0.0.0.0".into()],
            env: vec![],
            listen: ([127, 0, 0, 1], GUEST_PORT).into(),
            data_dir: Some(data),
            limits: ResourceLimits::default(),
            stubs: Vec::new(),
            sandbox: SandboxBackend::Qemu(QemuSandbox::forwarding(&[GUEST_PORT])),
        },
        startup_timeout: STARTUP_TIMEOUT,
        mirror_period: MIRROR_PERIOD,
        min_mirrored: MIN_MIRRORED,
        now_ms: 1_700_000_000_000,
    };
    preflight(&input, proxy)
        .await
        .unwrap_or_else(|e| panic!("the {name} preflight reached no verdict: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_preflight_passes_a_faithful_build_and_alerts_on_a_divergent_one() {
    if !qemu_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some([v1, faithful, divergent]) = builds(dir) else {
        return;
    };
    let keys = Keys {
        group: GroupSecret::generate(),
        vendor: SigningKey::generate(),
    };
    let faithful = seal(dir, "faithful", &faithful, &keys.group, &keys.vendor);
    let divergent = seal(dir, "divergent", &divergent, &keys.group, &keys.vendor);

    // Production: version 1 on the host's loopback, behind the mirroring proxy, under load.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _production = Production(
        Command::new(&v1)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let production: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..2000 {
        if tokio::net::TcpStream::connect(production).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let config = MirrorConfig {
        // The guest is emulated: give it time beyond production, never judge by speed.
        candidate_timeout: Duration::from_secs(30),
        ..MirrorConfig::default()
    };
    let proxy =
        HttpMirrorProxy::start(([127, 0, 0, 1], 0).into(), Backend::Tcp(production), config)
            .await
            .unwrap();
    let control = proxy.control();
    let load = Load::start(proxy.local_addr());

    // A faithful build: every mirrored request answered like production.
    let safe = match run_preflight(dir, "faithful", &faithful, &keys, &control).await {
        Verdict::Safe(s) => s,
        Verdict::Unsafe(u) => panic!("a faithful build must be judged safe: {u:#?}"),
    };
    for step in &safe.steps {
        println!("faithful: {step}");
    }
    let console =
        std::fs::read_to_string(safe.sandbox.console_log().expect("a QEMU guest")).unwrap();
    if let Some(ready) = console.lines().find(|l| l.contains("ferry-guest: ready")) {
        println!("faithful: guest console: {}", ready.trim());
    }
    assert!(
        safe.steps.iter().any(|s| s.contains("qemu-system-x86_64")),
        "rehearsed in a QEMU guest: {:?}",
        safe.steps
    );
    assert!(
        matches!(safe.candidate, Backend::Tcp(a) if a.ip().is_loopback() && a.port() != GUEST_PORT),
        "the candidate is the guest's host forward: {}",
        safe.candidate
    );
    let m = &safe.mirror;
    assert!(m.mirrored >= MIN_MIRRORED, "{m:#?}");
    assert_eq!(
        m.matched, m.mirrored,
        "every mirrored request matched: {m:#?}"
    );
    assert_eq!(
        (m.mismatched, m.candidate_errors, m.candidate_timeouts),
        (0, 0, 0),
        "{m:#?}"
    );
    assert!(
        m.noise
            .values()
            .any(|f| f.contains(&"body.nonce".to_string())),
        "the nonce is learned noise: {:#?}",
        m.noise
    );
    assert!(
        safe.monitor.monitor_error.is_some(),
        "the QEMU backend has no syscall monitor, and says so: {:?}",
        safe.monitor
    );
    // Never installed here: dropping the verdict shuts the guest.
    drop(safe);

    // A divergent build: /items/3 answered differently, caught by the mirror.
    let unsafe_verdict = match run_preflight(dir, "divergent", &divergent, &keys, &control).await {
        Verdict::Unsafe(u) => u,
        Verdict::Safe(s) => panic!("a divergent build must be judged unsafe: {:#?}", s.mirror),
    };
    for step in &unsafe_verdict.steps {
        println!("divergent: {step}");
    }
    let alert = &unsafe_verdict.alert;
    assert_eq!(alert.stage, "mirror", "{alert:#?}");
    support::assert_only_items_3_diverged(alert);
    assert_eq!(
        control.active(),
        Backend::Tcp(production),
        "production untouched"
    );
    assert!(!control.mirroring());

    load.stop.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (ok, failed) = (
        load.ok.load(Ordering::SeqCst),
        load.failed.load(Ordering::SeqCst),
    );
    println!("client load: {ok} requests answered, {failed} failed");
    assert_eq!(
        failed,
        0,
        "client requests failed during the rehearsals: {:?}",
        load.first_failure.lock().unwrap()
    );
    assert!(ok > 0);
}
