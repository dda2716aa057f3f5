//! The secure preflight in the real install path, against a real in-process server: signed
//! go-live enforced by the agent's own clock, firmware metadata from the server verified
//! through TUF, vendor packages decrypted / verified / unpacked / scanned before install, and
//! an unsafe package alerted and halted with the device untouched.

mod support;

#[path = "../../ferry-sandbox/tests/support/mod.rs"]
mod sandbox_support;

use chrono::{Duration as ChronoDuration, Utc};
use ferry_agent::config::PreflightConfig;
use ferry_agent::{AgentConfig, AttemptOutcome};
use ferry_artifact::artifact::{BuildSpec, Hooks};
use ferry_artifact::keys::SigningKey;
use ferry_core::Component;
use ferry_core::api::ArchivedAlert;
use ferry_core::firmware::FirmwareMetadata;
use ferry_sandbox::envelope::{GroupSecret, seal_bytes};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{Device, Fixture, OPERATOR_TOKEN, ServerOptions};

const FIRMWARE: &str = "cam-fw";

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The vendor's side and the device group key.
struct Vendor {
    key: SigningKey,
    group: GroupSecret,
    group_file: PathBuf,
}

impl Vendor {
    fn new(dir: &Path) -> Vendor {
        let group = GroupSecret::generate();
        let group_file = dir.join("group.key");
        group.save(&group_file).unwrap();
        Vendor {
            key: SigningKey::generate(),
            group,
            group_file,
        }
    }

    fn metadata(&self, rule: &str) -> serde_json::Value {
        serde_json::json!({
            "id": FIRMWARE,
            "name": "Camera firmware",
            "type": "application",
            "vendor": "Acme",
            "vendor_public_key": self.key.public().to_json(),
            "unpack_rule": rule,
            "interfaces": [{"kind": "serial", "path": "/dev/ttyS1"}],
        })
    }

    /// A tar holding `binary` as `app`, sealed to the group key and signed by the vendor.
    fn seal(&self, binary: &Path) -> Vec<u8> {
        let bytes = std::fs::read(binary).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_path("app").unwrap();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append(&header, &bytes[..]).unwrap();
        seal_bytes(&tar.into_inner().unwrap(), &self.group.public(), &self.key)
    }
}

/// A signed main release whose payload carries `package` as `firmware.pkg` (when given);
/// its health check needs the checked firmware tree in place when `needs_firmware`.
fn release(fx: &Fixture, version: &str, package: Option<Vec<u8>>, needs_firmware: bool) -> PathBuf {
    let src = fx.dir.path().join(format!("src-pf-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    script(&src.join("start.sh"), "cat VERSION > \"$FERRY_STATE_DIR/running\"\n");
    script(&src.join("stop.sh"), "rm -f \"$FERRY_STATE_DIR/running\"\nexit 0\n");
    let firmware_check = if needs_firmware { "[ -x firmware/app ] || exit 1\n" } else { "" };
    script(
        &src.join("health.sh"),
        &format!("{firmware_check}[ \"$(cat \"$FERRY_STATE_DIR/running\")\" = \"$(cat VERSION)\" ]\n"),
    );
    std::fs::write(src.join("VERSION"), version).unwrap();
    if let Some(p) = package {
        std::fs::write(src.join("firmware.pkg"), p).unwrap();
    }
    let out = fx.dir.path().join(format!("main-pf-{version}.ferry"));
    let spec = BuildSpec {
        component: Component::Main,
        version: version.parse().unwrap(),
        device_types: vec![],
        hooks: Hooks::default(),
    };
    ferry_artifact::artifact::build(&src, spec, &out, Some(&fx.release_key)).unwrap();
    out
}

async fn upload_with_go_live(fx: &Fixture, artifact: &Path, go_live: u64) {
    let resp = fx
        .http
        .post(format!("{}/api/v1/releases?go_live={go_live}", fx.url))
        .bearer_auth(OPERATOR_TOKEN)
        .body(std::fs::read(artifact).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn put_firmware(fx: &Fixture, body: serde_json::Value) {
    let resp = fx
        .http
        .put(format!("{}/api/v1/firmware/{FIRMWARE}", fx.url))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn preflight_device(fx: &Fixture, id: &str, vendor: &Vendor) -> Device {
    let mut config: AgentConfig = fx.device_config(id, &fx.url);
    config.preflight = Some(PreflightConfig {
        firmware: FIRMWARE.into(),
        package: "firmware.pkg".into(),
        group_key: vendor.group_file.clone(),
        rules: None,
        rule_keys: vec![],
        service: None,
    });
    Device::new(config)
}

fn compile(fx: &Fixture, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let dir = fx.dir.path().join(format!("cc-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    sandbox_support::compile_c(&dir, name, source, flags)
}

#[tokio::test]
async fn agent_installs_no_earlier_than_the_signed_go_live_by_its_own_clock() {
    let fx = Fixture::start(ServerOptions::default()).await;
    // The server's clock is past go-live (so it offers the release), the device's is a day
    // behind it: the device must refuse on the signed go-live alone.
    let go_live = u64::try_from(Utc::now().timestamp_millis()).unwrap() - 60_000;
    upload_with_go_live(&fx, &release(&fx, "1.0.0", None, false), go_live).await;
    let device = Device::new(fx.device_config("dev-golive", &fx.url));
    let mut agent = device.agent();
    let early = chrono::DateTime::from_timestamp_millis(go_live as i64).unwrap() - ChronoDuration::days(1);
    agent.set_clock(Arc::new(move || early));
    let summary = agent.run_once().await.unwrap();
    let attempt = summary.attempts.first().expect("the server offered the release");
    assert_eq!(attempt.outcome, AttemptOutcome::Deferred, "{summary}");
    assert!(attempt.reason.contains("go-live"), "{}", attempt.reason);
    assert_eq!(attempt.bytes_downloaded, 0);
    assert_eq!(device.current_main(), None, "nothing installed before go-live");

    agent.set_clock(Arc::new(Utc::now));
    let summary = agent.run_once().await.unwrap();
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(device.current_main().unwrap().to_string(), "1.0.0");
}

#[tokio::test]
async fn firmware_metadata_goes_from_server_to_agent_and_tampered_metadata_is_refused() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let vendor = Vendor::new(fx.dir.path());
    put_firmware(&fx, vendor.metadata("tar")).await;
    let device = preflight_device(&fx, "dev-fw", &vendor);
    let mut agent = device.agent();
    let tuf = format!("{}/tuf", fx.url);
    let meta = agent.refresh_firmware(FIRMWARE, &tuf).await.unwrap();
    assert_eq!(meta.vendor, "Acme");
    assert_eq!(meta.unpack_rule, "tar");
    let stored_path = ferry_agent::firmware::stored_path(&device.config.state_dir, FIRMWARE);
    let stored = std::fs::read(&stored_path).unwrap();
    assert_eq!(FirmwareMetadata::parse_for(FIRMWARE, &stored).unwrap(), meta);

    // Someone changes the stored document behind TUF's back (registry write, no re-signing).
    let registry = ferry_store::open_registry(&format!(
        "sqlite://{}",
        fx.data_dir.join("ferry.db").display()
    ))
    .await
    .unwrap();
    let mut evil: FirmwareMetadata = meta.clone();
    evil.vendor_public_key = SigningKey::generate().public().to_json();
    registry
        .put_firmware(FIRMWARE, &evil.canonical_bytes(), 1)
        .await
        .unwrap();
    let err = agent.refresh_firmware(FIRMWARE, &tuf).await.unwrap_err().to_string();
    assert!(err.contains("signed TUF target"), "{err}");
    assert_eq!(std::fs::read(&stored_path).unwrap(), stored, "the verified copy is kept");

    // A proper update through the management API is accepted.
    put_firmware(&fx, vendor.metadata("tar.gz")).await;
    assert_eq!(agent.refresh_firmware(FIRMWARE, &tuf).await.unwrap().unpack_rule, "tar.gz");
}

#[tokio::test]
async fn clean_vendor_package_passes_the_preflight_and_is_installed_with_its_firmware() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let vendor = Vendor::new(fx.dir.path());
    put_firmware(&fx, vendor.metadata("tar")).await;
    let app = compile(&fx, "app-clean", sandbox_support::HARDENED_C, sandbox_support::HARDENED_FLAGS);
    fx.upload(&release(&fx, "1.0.0", Some(vendor.seal(&app)), true)).await;
    let device = preflight_device(&fx, "dev-clean", &vendor);
    let summary = device.agent().run_once().await.unwrap();
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(device.current_main().unwrap().to_string(), "1.0.0");
    let installed = device.config.main.dir.join("current/firmware/app");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(&app).unwrap());
    assert!(
        !device.config.state_dir.join("preflight/main-1.0.0").exists(),
        "the preflight work is cleaned up"
    );
    let report = &fx.reports("dev-clean").await[0];
    assert!(
        report.report.log_tail.iter().any(|l| l.contains("envelope opened")),
        "{:?}",
        report.report.log_tail
    );
}

#[tokio::test]
async fn package_with_gets_and_rwx_is_refused_alerted_and_halted_and_nothing_is_touched() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let vendor = Vendor::new(fx.dir.path());
    put_firmware(&fx, vendor.metadata("tar")).await;
    let good = compile(&fx, "app-good", sandbox_support::HARDENED_C, sandbox_support::HARDENED_FLAGS);
    let bad = compile(&fx, "app-bad", sandbox_support::VULNERABLE_C, sandbox_support::VULNERABLE_FLAGS);
    fx.upload(&release(&fx, "1.0.0", Some(vendor.seal(&good)), true)).await;
    let device = preflight_device(&fx, "dev-a", &vendor);
    let mut agent = device.agent();
    assert_eq!(agent.run_once().await.unwrap().attempts[0].outcome, AttemptOutcome::Success);
    let before = device.main_files();

    fx.upload(&release(&fx, "2.0.0", Some(vendor.seal(&bad)), true)).await;
    let summary = agent.run_once().await.unwrap();
    let attempt = &summary.attempts[0];
    assert_eq!(attempt.to.to_string(), "2.0.0");
    assert_eq!(attempt.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(attempt.reason.contains("UNSAFE"), "{}", attempt.reason);
    assert_eq!(device.current_main().unwrap().to_string(), "1.0.0");
    assert_eq!(device.main_files(), before, "installed files untouched");
    assert!(device.healthy(), "1.0.0 still runs");

    // The alert is on the server, visible to operators.
    let alerts: Vec<ArchivedAlert> = fx
        .http
        .get(format!("{}/api/v1/alerts", fx.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0].alert;
    assert_eq!(alert.device_id.as_str(), "dev-a");
    assert_eq!(alert.version.to_string(), "2.0.0");
    assert_eq!(alert.stage, "scan");
    assert!(alert.findings.iter().any(|f| f.rule.contains("gets")), "{:?}", alert.findings);
    assert!(alert.findings.iter().any(|f| f.rule.to_lowercase().contains("rwx")), "{:?}", alert.findings);

    // The release is halted: another device on 1.0.0 is not offered it.
    let other = preflight_device(&fx, "dev-b", &vendor);
    let mut other_agent = other.agent();
    let summary = other_agent.run_once().await.unwrap();
    assert!(
        summary.attempts.iter().all(|a| a.to.to_string() != "2.0.0"),
        "{summary}"
    );
    assert_eq!(other.current_main().unwrap().to_string(), "1.0.0");
    assert!(summary.nothing_new.is_some(), "{summary}");
}

/// Clients sending `GET /items/N` through the proxy and checking every answer.
struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

async fn get_item(front: std::net::SocketAddr, i: u64) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = format!("/items/{}", i % 5);
    let mut s = tokio::net::TcpStream::connect(front).await.map_err(|e| format!("{path}: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.map_err(|e| format!("{path}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{path}: {e}: {text}"))?;
    if v["value"] != format!("value of {path}") {
        return Err(format!("{path}: wrong answer {v}"));
    }
    Ok(())
}

impl Load {
    fn start(front: std::net::SocketAddr) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut sent, mut failures) = (0u64, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                sent += 1;
                if let Err(e) = get_item(front, sent).await {
                    failures.push(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
            (sent, failures)
        });
        Load { stop, task }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A release of the demo HTTP service whose start script runs `firmware/app` on `port`.
fn service_release(fx: &Fixture, vendor: &Vendor, version: &str, evil: bool, port: u16) -> PathBuf {
    let mut flags = ferry_sandbox::demo::SERVICE_FLAGS.to_vec();
    if evil {
        flags.push("-DEVIL");
    }
    let app = compile(&fx, &format!("svc-{version}"), ferry_sandbox::demo::SERVICE_C, &flags);
    let src = fx.dir.path().join(format!("src-svc-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    script(
        &src.join("start.sh"),
        &format!("nohup ./firmware/app {port} >/dev/null 2>&1 &\necho $! > \"$FERRY_STATE_DIR/main.pid\"\ncat VERSION > \"$FERRY_STATE_DIR/running\"\n"),
    );
    script(
        &src.join("stop.sh"),
        "[ -f \"$FERRY_STATE_DIR/main.pid\" ] && kill \"$(cat \"$FERRY_STATE_DIR/main.pid\")\" 2>/dev/null\nrm -f \"$FERRY_STATE_DIR/main.pid\" \"$FERRY_STATE_DIR/running\"\nsleep 0.2\nexit 0\n",
    );
    std::fs::write(
        src.join("health.sh"),
        format!("#!/bin/bash\nkill -0 \"$(cat \"$FERRY_STATE_DIR/main.pid\")\" || exit 1\nexec 3<>/dev/tcp/127.0.0.1/{port}\n"),
    )
    .unwrap();
    std::fs::set_permissions(src.join("health.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("VERSION"), version).unwrap();
    std::fs::write(src.join("firmware.pkg"), vendor.seal(&app)).unwrap();
    let out = fx.dir.path().join(format!("main-svc-{version}.ferry"));
    let spec = BuildSpec {
        component: Component::Main,
        version: version.parse().unwrap(),
        device_types: vec![],
        hooks: Hooks::default(),
    };
    ferry_artifact::artifact::build(&src, spec, &out, Some(&fx.release_key)).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_update_is_rehearsed_with_mirrored_traffic_then_switched_over_or_alerted() {
    let fx = Fixture::start(ServerOptions {
        chunk_size: Some(256 * 1024),
        ..ServerOptions::default()
    })
    .await;
    // The sandbox's root is an unprivileged host uid: it must be able to walk to its tree.
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let vendor = Vendor::new(fx.dir.path());
    put_firmware(&fx, vendor.metadata("tar")).await;
    let (port, front) = (free_port(), free_port());
    let mut device = preflight_device(&fx, "dev-svc", &vendor);
    device.config.main.health_retries = 30;
    device.config.main.health_interval_ms = 100;
    // 1.0.0 goes in with the static checks only and becomes production.
    fx.upload(&service_release(&fx, &vendor, "1.0.0", false, port)).await;
    let summary = device.agent().run_once().await.unwrap();
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Success, "{summary}");

    // From now on the agent fronts production with its mirroring proxy.
    device.config.preflight.as_mut().unwrap().service = Some(ferry_agent::config::PreflightServiceConfig {
        front: ([127, 0, 0, 1], front).into(),
        production: ([127, 0, 0, 1], port).into(),
        argv: vec!["/app".into(), "8080".into()],
        listen: ([127, 0, 0, 1], 8080).into(),
        data_dir: None,
        mirror_period_ms: 800,
        min_mirrored: 5,
        startup_timeout_ms: 10_000,
    });
    ferry_agent::preflight::start_proxy(&device.config).await.unwrap();
    let load = Load::start(([127, 0, 0, 1], front).into());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    fx.upload(&service_release(&fx, &vendor, "2.0.0", false, port)).await;
    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(device.current_main().unwrap().to_string(), "2.0.0");
    let reports = fx.reports("dev-svc").await;
    let log = &reports
        .iter()
        .find(|r| r.report.to_version.to_string() == "2.0.0")
        .expect("report of 2.0.0")
        .report
        .log_tail;
    assert!(log.iter().any(|l| l.contains("verdict SAFE")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("traffic switched back to production")), "{log:?}");

    fx.upload(&service_release(&fx, &vendor, "3.0.0", true, port)).await;
    let summary = agent.run_once().await.unwrap();
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Failure, "{summary}");
    assert!(summary.attempts[0].reason.contains("UNSAFE"), "{summary}");
    assert_eq!(device.current_main().unwrap().to_string(), "2.0.0");

    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (sent, failures) = load.finish().await;
    assert!(sent > 50, "{sent} requests sent");
    assert!(failures.is_empty(), "{} of {sent} client requests failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let alerts: Vec<ArchivedAlert> = fx
        .http
        .get(format!("{}/api/v1/alerts", fx.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts[0].alert.stage, "mirror", "{alerts:?}");
    assert_eq!(alerts[0].alert.version.to_string(), "3.0.0");
    assert!(alerts[0].alert.findings.iter().any(|f| f.location.contains("/items/3")), "{:?}", alerts[0].alert.findings);
}
