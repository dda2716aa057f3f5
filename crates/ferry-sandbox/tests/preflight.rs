//! The whole preflight under client load: a divergent update is caught and alerted with the
//! device untouched; a faithful one is switched over and back without a failed request.

mod support;

use ferry_artifact::keys::SigningKey;
use ferry_core::{Component, DeviceId, Version};
use ferry_sandbox::envelope::{GroupSecret, seal_bytes};
use ferry_sandbox::gate::GateInput;
use ferry_sandbox::mirror::{Backend, HttpMirrorProxy, MirrorConfig, ProxyControl};
use ferry_sandbox::preflight::{PreflightInput, ServiceSpec, Verdict, preflight};
use ferry_sandbox::sandbox::ResourceLimits;
use ferry_sandbox::scan::{Policy, default_rules};
use ferry_sandbox::unpack::{Limits, UnpackRule};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small HTTP service: answers `{"path":…,"value":…,"nonce":…}` (the nonce differs on every
/// answer); built with `-DEVIL` it answers `/items/3` with a different value.
const SERVICE_C: &str = r#"
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
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
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
#ifdef EVIL
    if (strcmp(path, "/items/3") == 0) snprintf(value, sizeof value, "exfiltrated");
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

const FLAGS: &[&str] = &[
    "-static-pie",
    "-fPIE",
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-O2",
    "-Wl,-z,relro,-z,now",
];

fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the service binary on the host (the device's production instance) and waits for it.
fn run_production(bin: &Path, port: u16) -> Child {
    let child = Command::new(bin)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "production did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// A client hammering the proxy; every answer must be production-correct.
fn load(proxy: SocketAddr) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let task = tokio::spawn({
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) && i < 1_000_000 {
                i += 1;
                let path = format!("/items/{}", i % 5);
                let r = async {
                    let r = client
                        .get(format!("http://{proxy}{path}"))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                    if v["value"] != format!("value of {path}") {
                        return Err(format!("wrong answer for {path}: {v}"));
                    }
                    Ok::<_, String>(())
                }
                .await;
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    Load {
        stop,
        ok,
        failures,
        task,
    }
}

struct Package {
    envelope: PathBuf,
}

fn package(
    dir: &Path,
    name: &str,
    evil: bool,
    group: &GroupSecret,
    vendor: &SigningKey,
) -> Package {
    let build = dir.join(format!("build-{name}"));
    std::fs::create_dir_all(&build).unwrap();
    let mut flags = FLAGS.to_vec();
    if evil {
        flags.push("-DEVIL");
    }
    let bin = support::compile_c(&build, "app", SERVICE_C, &flags);
    let envelope = dir.join(format!("{name}.enc"));
    let tar = tar_of("app", &std::fs::read(bin).unwrap());
    std::fs::write(&envelope, seal_bytes(&tar, &group.public(), vendor)).unwrap();
    Package { envelope }
}

#[allow(clippy::too_many_arguments)]
async fn run_preflight(
    dir: &Path,
    name: &str,
    pkg: &Package,
    group: &GroupSecret,
    vendor: &SigningKey,
    data: &Path,
    proxy: &ProxyControl,
) -> Verdict {
    let rules = default_rules().unwrap();
    let policy = Policy::default();
    let vendors = [vendor.public()];
    let work = dir.join(format!("work-{name}"));
    let input = PreflightInput {
        device_id: DeviceId::new("dev-1").unwrap(),
        component: Component::Main,
        version: Version::new(2, 0, 0),
        gate: GateInput {
            envelope: &pkg.envelope,
            group,
            vendor_keys: &vendors,
            rule: UnpackRule::Tar,
            limits: Limits::default(),
            work_dir: &work,
        },
        rules: &rules,
        policy: &policy,
        service: ServiceSpec {
            argv: vec!["/app".into(), "8080".into()],
            env: vec![],
            listen: "127.0.0.1:8080".parse().unwrap(),
            data_dir: Some(data.to_path_buf()),
            limits: ResourceLimits::default(),
        },
        startup_timeout: Duration::from_secs(10),
        mirror_period: Duration::from_millis(800),
        min_mirrored: 20,
        now_ms: 1_700_000_000_000,
    };
    preflight(&input, proxy).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_alerts_on_divergent_update_and_switches_over_a_good_one() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The sandbox's root is an unprivileged host uid: it must be able to walk to its tree.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let group = GroupSecret::generate();
    let vendor = SigningKey::generate();
    let data = dir.join("device-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("state.json"), "{}").unwrap();

    // Production: version 1 of the service on the host, behind the proxy.
    let v1 = support::compile_c(dir, "service-v1", SERVICE_C, FLAGS);
    let port = free_port();
    let production = run_production(&v1, port);
    let proxy = HttpMirrorProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        Backend::Tcp(([127, 0, 0, 1], port).into()),
        MirrorConfig::default(),
    )
    .await
    .unwrap();
    let control = proxy.control();
    let clients = load(proxy.local_addr());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A divergent update: caught, alerted, production untouched.
    let evil = package(dir, "evil", true, &group, &vendor);
    let verdict = run_preflight(dir, "evil", &evil, &group, &vendor, &data, &control).await;
    let Verdict::Unsafe(unsafe_verdict) = verdict else {
        panic!("a divergent update must be judged unsafe: {verdict:?}")
    };
    let alert = &unsafe_verdict.alert;
    println!("{}\n{alert:#?}", unsafe_verdict.steps.join("\n"));
    assert_eq!(alert.stage, "mirror");
    assert_eq!(
        (alert.component, &alert.version),
        (Component::Main, &Version::new(2, 0, 0))
    );
    let mismatch = alert
        .findings
        .iter()
        .find(|f| f.rule == "mirror/mismatch")
        .unwrap_or_else(|| panic!("no mismatch finding: {alert:#?}"));
    assert_eq!(mismatch.location, "GET /items/3");
    assert!(
        mismatch.message.contains("exfiltrated"),
        "{}",
        mismatch.message
    );
    assert!(
        alert.findings.iter().all(|f| f.location == "GET /items/3"),
        "only /items/3 differs (the nonce is learned noise): {alert:#?}"
    );
    assert!(alert.evidence.iter().any(|e| e.kind == "mirror_report"));
    assert_eq!(
        control.active(),
        Backend::Tcp(([127, 0, 0, 1], port).into())
    );
    assert!(!control.mirroring());

    // A faithful update: safe, then switched over under load and back to the upgraded device.
    let good = package(dir, "good", false, &group, &vendor);
    let verdict = run_preflight(dir, "good", &good, &group, &vendor, &data, &control).await;
    let Verdict::Safe(safe) = verdict else {
        panic!("a faithful update must be judged safe: {verdict:?}")
    };
    assert!(safe.mirror.matched >= 20, "{:#?}", safe.mirror);
    assert!(
        safe.mirror
            .noise
            .values()
            .any(|f| f.contains(&"body.nonce".to_string())),
        "{:#?}",
        safe.mirror.noise
    );
    let sandbox_pid = safe.sandbox.pid();
    let new_binary = dir.join("work-good/rootfs/app");
    let production = Arc::new(Mutex::new(Some(production)));
    let upgraded: Arc<Mutex<Option<Child>>> = Arc::default();
    let log = safe
        .switch_over(
            &control,
            || {
                let (production, upgraded) = (production.clone(), upgraded.clone());
                async move {
                    // The real device upgrade: stop version 1, start version 2 in its place.
                    let mut old = production.lock().unwrap().take().unwrap();
                    let _ = old.kill();
                    old.wait().map_err(|e| e.to_string())?;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    *upgraded.lock().unwrap() = Some(run_production(&new_binary, port));
                    Ok(Backend::Tcp(([127, 0, 0, 1], port).into()))
                }
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    println!("{}", log.steps.join("\n"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    clients.stop.store(true, Ordering::SeqCst);
    clients.task.await.unwrap();

    {
        let failures = clients.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} client requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
    assert!(clients.ok.load(Ordering::SeqCst) > 100);
    assert_eq!(
        control.active(),
        Backend::Tcp(([127, 0, 0, 1], port).into())
    );
    assert!(
        !Path::new(&format!("/proc/{sandbox_pid}")).exists(),
        "the sandbox is shut down"
    );
    assert_eq!(
        log.to_candidate.from,
        Backend::Tcp(([127, 0, 0, 1], port).into())
    );
    if let Some(mut p) = upgraded.lock().unwrap().take() {
        let _ = p.kill();
        let _ = p.wait();
    }
}
