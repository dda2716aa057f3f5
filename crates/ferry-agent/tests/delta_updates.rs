//! Delta updates end to end: a real server builds deltas on upload, a real agent pre-verifies
//! them, falls back to the full package on a tampered (rooted) device, and returns to deltas.

mod support;

use support::{Device, Fixture, OPERATOR_TOKEN, ServerOptions};
use ferry_agent::AttemptOutcome;
use ferry_core::Component;
use ferry_core::Version;
use ferry_core::api::{DeltaFailureRecord, Outcome};
use ferry_core::install::InstallState;
use std::ops::ControlFlow;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

async fn delta_failures(fx: &Fixture, device: &str) -> Vec<DeltaFailureRecord> {
    let resp = fx
        .http
        .get(format!("{}/api/v1/devices/{device}/delta-failures", fx.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

/// A device running main 1.0.0, which the server also knows (so it can build deltas from it).
async fn fleet_device(fx: &Fixture, name: &str) -> Device {
    let base = fx.main_release("1.0.0", true);
    fx.upload(&base).await;
    let device = Device::new(fx.device_config(name, &fx.url));
    device.agent().bootstrap(Component::Main, &base).await.unwrap();
    device.boot();
    assert!(device.healthy());
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_running_the_base_installs_the_delta_and_downloads_less() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = fleet_device(&fx, "dev-delta").await;
    let full = fx.main_release("1.1.0", true);
    let full_len = std::fs::metadata(&full).unwrap().len();
    fx.upload(&full).await;

    let summary = device.agent().run_once().await.unwrap();
    assert_eq!(summary.attempts.len(), 1, "{summary}");
    let a = &summary.attempts[0];
    assert_eq!((a.outcome, a.delta_from.clone()), (AttemptOutcome::Success, Some(v("1.0.0"))), "{summary}");
    assert!(a.bytes_downloaded < full_len / 2, "delta {} bytes vs full {full_len}", a.bytes_downloaded);
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert_eq!(device.running().as_deref(), Some("1.1.0"));
    assert!(device.healthy());
    let installed = device.config.main.dir.join("releases/1.1.0");
    assert_eq!(std::fs::read_to_string(installed.join("VERSION")).unwrap(), "1.1.0");
    assert_eq!(
        std::fs::read(installed.join("data/blob.bin")).unwrap(),
        std::fs::read(device.config.main.dir.join("releases/1.0.0/data/blob.bin")).unwrap(),
        "unchanged files are carried over"
    );
    let reports = fx.reports("dev-delta").await;
    assert_eq!(reports[0].report.outcome, Outcome::Success);
    assert!(reports[0].report.reason.contains("delta from 1.0.0"), "{}", reports[0].report.reason);
    assert_eq!(reports[0].report.bytes_downloaded, a.bytes_downloaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooted_device_falls_back_to_full_and_returns_to_delta() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = fleet_device(&fx, "dev-rooted").await;
    // Rooted: a file of the running main program is changed on disk.
    let tampered = device.config.main.dir.join("releases/1.0.0/data/blob.bin");
    let original = std::fs::read(&tampered).unwrap();
    std::fs::write(&tampered, b"patched by someone with root").unwrap();

    let full = fx.main_release("1.1.0", true);
    let full_len = std::fs::metadata(&full).unwrap().len();
    fx.upload(&full).await;
    let rel = fx.releases().await.into_iter().find(|r| r.version == v("1.1.0")).unwrap();
    assert!(rel.delta_from(&v("1.0.0")).is_some(), "the server built a delta from the fleet's 1.0.0");

    // First run: the delta fails pre-verification; stop as soon as the full download begins,
    // so the failure record can be inspected before the full install clears it.
    let mut agent = device.agent();
    agent.on_state(|s| match s {
        InstallState::Downloading { pending, .. } if pending.delta_from.is_none() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    let stopped = agent.run_once().await;
    assert!(stopped.is_err(), "the run was stopped at the full download: {stopped:?}");
    assert_eq!(std::fs::read(&tampered).unwrap(), b"patched by someone with root", "pre-verification writes nothing");
    assert_eq!(device.current_main(), Some(v("1.0.0")));
    assert!(!device.config.main.dir.join("releases/1.1.0").exists(), "no release was built from the delta");

    let records = delta_failures(&fx, "dev-rooted").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!((r.component, r.from_version.clone(), r.to_version.clone()), (Component::Main, v("1.0.0"), v("1.1.0")));
    assert_eq!(r.state, "downloading");
    assert_eq!(r.files.len(), 1, "{:?}", r.files);
    assert_eq!(r.files[0].path, "data/blob.bin");
    assert_eq!(r.files[0].expected, sha256_hex(&original));
    assert_eq!(r.files[0].found, sha256_hex(b"patched by someone with root"));
    let local = ferry_agent::delta::load_failures(&device.config.state_dir).unwrap();
    assert_eq!(local.len(), 1);
    assert!(local[0].reported, "the server acknowledged the record");
    let failed = fx.reports("dev-rooted").await;
    assert_eq!(failed[0].report.outcome, Outcome::Failure);
    assert!(failed[0].report.reason.contains("data/blob.bin"), "{}", failed[0].report.reason);

    // Second run: the full package installs, the record is cleared on both sides.
    let summary = device.agent().run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!((a.outcome, a.delta_from.clone()), (AttemptOutcome::Success, None), "{summary}");
    assert_eq!(a.bytes_downloaded, full_len, "the full package was downloaded");
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert!(device.healthy());
    assert_eq!(
        std::fs::read(device.config.main.dir.join("releases/1.1.0/data/blob.bin")).unwrap(),
        original,
        "the full package restored the genuine file"
    );
    assert!(delta_failures(&fx, "dev-rooted").await.is_empty(), "record cleared on the server");
    assert!(ferry_agent::delta::load_failures(&device.config.state_dir).unwrap().is_empty(), "record cleared on the device");

    // The next release comes as a delta again.
    let next = fx.main_release("1.2.0", true);
    let next_len = std::fs::metadata(&next).unwrap().len();
    fx.upload(&next).await;
    let summary = device.agent().run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!((a.outcome, a.delta_from.clone()), (AttemptOutcome::Success, Some(v("1.1.0"))), "{summary}");
    assert!(a.bytes_downloaded < next_len, "delta {} bytes vs full {next_len}", a.bytes_downloaded);
    assert_eq!(device.current_main(), Some(v("1.2.0")));
    assert_eq!(device.running().as_deref(), Some("1.2.0"));
    let reports = fx.reports("dev-rooted").await;
    assert_eq!(reports[0].report.bytes_downloaded, a.bytes_downloaded);
    assert!(delta_failures(&fx, "dev-rooted").await.is_empty());
}
