//! The agent against a compromised server or a hostile network: a man in the middle in front
//! of a real in-process Ferry server rewrites check-ins, replays or forges TUF metadata, and
//! corrupts, pads or truncates artifact bytes. Each test checks that the attempt ends with an
//! error naming what failed (expected vs found), that the installed release is byte-for-byte
//! unchanged with `current` on the old version, and that the main program keeps running.

mod support;

use axum::http::{HeaderValue, header};
use ferry_agent::{AgentError, AttemptOutcome, RunSummary};
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::{RepoKeys, sign_metadata};
use ferry_core::api::{CheckinResponse, Outcome, UpdateOffer};
use ferry_core::install::InstallState;
use ferry_core::{Component, Version};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{Device, Fixture, Mitm, ServerOptions};

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A device whose every request goes through `mitm`, with main `version` bootstrapped at the
/// factory and running. Segment failures are retried twice, 1 ms apart, so a hostile file
/// service ends a run quickly.
async fn factory_device(fx: &Fixture, mitm: &Mitm, name: &str, version: &str) -> Device {
    let mut config = fx.device_config(name, &mitm.url);
    config.download_retries = 2;
    config.retry_backoff_ms = 1;
    let device = Device::new(config);
    let installed = device
        .agent()
        .bootstrap(Component::Main, &fx.main_release(version, true))
        .await
        .unwrap();
    assert_eq!(installed, v(version));
    device.boot();
    assert!(device.healthy());
    device
}

/// What the device had installed and running before an attack.
struct Before {
    files: Vec<(PathBuf, Vec<u8>)>,
    current: Version,
    pid: Option<i32>,
}

impl Before {
    fn of(device: &Device) -> Before {
        Before {
            files: device.main_files(),
            current: device.current_main().expect("a current release"),
            pid: device.main_pid(),
        }
    }

    /// Installed files byte-for-byte unchanged, `current` unchanged, the same main program
    /// process still running and healthy, and no update left half-done.
    fn assert_untouched(&self, device: &Device, ctx: &str) {
        assert_eq!(
            device.current_main().as_ref(),
            Some(&self.current),
            "{ctx}: current moved"
        );
        let now = device.main_files();
        if now != self.files {
            let changed: Vec<_> = self
                .files
                .iter()
                .filter(|f| !now.contains(f))
                .map(|(p, _)| format!("changed or removed: {}", p.display()))
                .chain(
                    now.iter()
                        .filter(|f| !self.files.contains(f))
                        .map(|(p, _)| format!("changed or added: {}", p.display())),
                )
                .collect();
            panic!("{ctx}: installed files changed: {changed:#?}");
        }
        assert_eq!(
            device.main_pid(),
            self.pid,
            "{ctx}: the main program was restarted"
        );
        assert!(
            device.main_alive(),
            "{ctx}: the main program is not running"
        );
        assert!(device.healthy(), "{ctx}: the main program is not healthy");
    }
}

/// The single attempt of a run.
fn only_attempt(summary: &RunSummary) -> &ferry_agent::AttemptSummary {
    assert_eq!(summary.attempts.len(), 1, "{summary}");
    &summary.attempts[0]
}

/// Every file of the source tree of main `version` equals the installed copy.
fn assert_installed_from_source(fx: &Fixture, device: &Device, version: &str) {
    let src = fx.dir.path().join(format!("src-main-{version}-true-false"));
    let release = device.config.main.dir.join("releases").join(version);
    for rel in [
        "start.sh",
        "stop.sh",
        "health.sh",
        "VERSION",
        "data/blob.bin",
    ] {
        assert!(
            std::fs::read(src.join(rel)).unwrap() == std::fs::read(release.join(rel)).unwrap(),
            "installed {rel} of {version} differs from the signed release"
        );
    }
    let slot = ferry_agent::slots::Slot::open(Component::Main, &device.config.main.dir).unwrap();
    slot.verify_release(&v(version)).unwrap();
}

fn file_requests(mitm: &Mitm) -> Vec<String> {
    mitm.requests()
        .into_iter()
        .filter(|r| r.contains(" /files/"))
        .collect()
}

/// A clean run (the man in the middle gone) installs `version` from verified bytes.
async fn clean_run_installs(
    fx: &Fixture,
    mitm: &Mitm,
    device: &Device,
    version: &str,
) -> RunSummary {
    mitm.pass_through();
    let summary = device.agent().run_once().await.unwrap();
    let last = summary.attempts.last().expect("an attempt");
    assert_eq!(
        (last.outcome, last.to.clone()),
        (AttemptOutcome::Success, v(version)),
        "{summary}"
    );
    assert_eq!(device.current_main(), Some(v(version)));
    assert_eq!(device.running().as_deref(), Some(version));
    assert!(device.healthy());
    assert_installed_from_source(fx, device, version);
    summary
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_older_release_signed_with_valid_key() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-older", "1.0.0").await;
    fx.upload(&fx.main_release("1.0.0", true)).await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    // The device got to 1.1.0 the ordinary way, so 1.0.0 is still on its disk.
    clean_run_installs(&fx, &mitm, &device, "1.1.0").await;
    assert!(device.config.main.dir.join("releases/1.0.0").is_dir());

    // 1.0.0 is a genuine release: signed by the release key and listed in signed targets.
    let old = fx
        .releases()
        .await
        .into_iter()
        .find(|r| r.version == v("1.0.0"))
        .unwrap();
    let ts = json_of(&fx.tuf_file("timestamp.json").await);
    let snap_v = ts["signed"]["meta"]["snapshot.json"]["version"].clone();
    let snap = json_of(&fx.tuf_file(&format!("{snap_v}.snapshot.json")).await);
    let targets_v = snap["signed"]["meta"]["targets.json"]["version"].clone();
    let targets = json_of(&fx.tuf_file(&format!("{targets_v}.targets.json")).await);
    assert_eq!(
        targets["signed"]["targets"][&old.target_name]["length"],
        json!(old.length)
    );

    let offer = UpdateOffer {
        component: Component::Main,
        version: old.version.clone(),
        target_name: old.target_name.clone(),
        file_base_url: format!("{}/files", mitm.url),
        metadata_base_url: format!("{}/tuf", mitm.url),
        chunk_size: 4096,
        length: old.length,
        sha256: old.sha256.clone(),
    };
    let answer = serde_json::to_vec(&CheckinResponse::Update { offer }).unwrap();
    mitm.tamper(move |ex| (ex.path == "/api/v1/checkin").then(|| ex.with_body(answer.clone())));
    mitm.clear_requests();
    let before = Before::of(&device);

    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(
        (a.outcome, a.from.clone(), a.to.clone()),
        (AttemptOutcome::Failure, v("1.1.0"), v("1.0.0")),
        "{summary}"
    );
    assert!(
        a.reason.contains("refusing main 1.0.0")
            && a.reason.contains("not newer than the installed main 1.1.0")
            && a.reason.contains("downgrade"),
        "{}",
        a.reason
    );
    assert_eq!(a.bytes_downloaded, 0);
    assert!(file_requests(&mitm).is_empty(), "{:?}", mitm.requests());
    before.assert_untouched(&device, "after an offer of an older release");
    assert_eq!(device.agent().install_state().unwrap(), InstallState::Idle);

    let reports = fx.reports("dev-older").await;
    let r = &reports.last().unwrap().report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert_eq!(
        (r.from_version.clone(), r.to_version.clone()),
        (v("1.1.0"), v("1.0.0"))
    );
    assert!(r.reason.contains("downgrade"), "{}", r.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_replayed_old_timestamp_metadata() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-replay", "1.0.0").await;
    // Recorded by the attacker while it was current (and is still validly signed and unexpired).
    let captured = fx.tuf_file("timestamp.json").await;
    let old_version = json_of(&captured)["signed"]["version"].as_u64().unwrap();
    fx.upload(&fx.main_release("1.1.0", true)).await;
    clean_run_installs(&fx, &mitm, &device, "1.1.0").await;
    let stored = device.config.state_dir.join("tuf/timestamp.json");
    let seen = std::fs::read(&stored).unwrap();
    let seen_version = json_of(&seen)["signed"]["version"].as_u64().unwrap();
    assert!(old_version < seen_version, "{old_version} < {seen_version}");

    // 1.2.0 is out; the attacker hides it by replaying the old timestamp.
    fx.upload(&fx.main_release("1.2.0", true)).await;
    mitm.tamper(move |ex| {
        (ex.path == "/tuf/timestamp.json").then(|| ex.with_body(captured.clone()))
    });
    mitm.clear_requests();
    let before = Before::of(&device);

    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(
        (a.outcome, a.to.clone()),
        (AttemptOutcome::Failure, v("1.2.0")),
        "{summary}"
    );
    let want = format!(
        "timestamp version {old_version} is older than trusted version {seen_version}; refusing a rollback"
    );
    assert!(
        a.reason.contains("/tuf/timestamp.json") && a.reason.contains(&want),
        "{}",
        a.reason
    );
    assert_eq!(a.bytes_downloaded, 0);
    assert!(file_requests(&mitm).is_empty(), "{:?}", mitm.requests());
    before.assert_untouched(&device, "after a replayed timestamp");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        seen,
        "the trusted timestamp is kept"
    );
    let reports = fx.reports("dev-replay").await;
    let r = &reports.last().unwrap().report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert!(r.reason.contains(&want), "{}", r.reason);

    clean_run_installs(&fx, &mitm, &device, "1.2.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_file_whose_length_differs_from_signed_targets() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-length", "1.0.0").await;
    let artifact = fx.main_release("1.1.0", true);
    let len = std::fs::metadata(&artifact).unwrap().len();
    fx.upload(&artifact).await;
    let before = Before::of(&device);
    let state = |d: &Device| d.agent().install_state().unwrap();
    let done_of = |s: InstallState| match s {
        InstallState::Downloading { done, .. } => done,
        other => panic!("expected a deferred download, got {other:?}"),
    };

    // 1. Every segment carries 100 bytes more than asked for.
    mitm.tamper(|ex| {
        ex.is_file().then(|| {
            let mut padded = ex.body.to_vec();
            padded.extend_from_slice(&[b'X'; 100]);
            ex.with_body(padded)
        })
    });
    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Deferred, "{summary}");
    assert!(
        a.reason.contains("sent more than the 4096 bytes asked for")
            && a.reason.contains(&format!("at 0 of {len} bytes")),
        "{}",
        a.reason
    );
    assert_eq!(done_of(state(&device)), 0, "no padded segment was kept");
    before.assert_untouched(&device, "after padded segments");

    // 2. The file service claims the file is 100 bytes longer than the signed length.
    mitm.tamper(|ex| {
        let (a, b, total) = ex.content_range()?;
        let mut headers = ex.headers.clone();
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {a}-{b}/{}", total + 100)).unwrap(),
        );
        Some(ex.answer(ex.status, headers, ex.body.clone()))
    });
    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Deferred, "{summary}");
    assert!(
        a.reason.contains(&format!(
            "server sent bytes 0-4095/{}, expected 0-4095/{len}",
            len + 100
        )),
        "{}",
        a.reason
    );
    assert_eq!(
        done_of(state(&device)),
        0,
        "no segment of the longer file was kept"
    );
    before.assert_untouched(&device, "after a longer file");

    // 3. The file is 100 bytes shorter than the signed length, and the file service hides it:
    //    every header promises the signed length, the last segment's body just ends early.
    let short = len - 100;
    let last_start = (len - 1) / 4096 * 4096;
    assert!(short > last_start, "the cut falls inside the last segment");
    mitm.tamper(move |ex| {
        let (a, _, _) = ex.content_range()?;
        let keep = short.saturating_sub(a).min(ex.body.len() as u64) as usize;
        (keep < ex.body.len()).then(|| ex.with_body(ex.body.slice(..keep)))
    });
    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Deferred, "{summary}");
    assert!(
        a.reason.contains(&format!(
            "bytes {last_start}-{}: segment ended after {} of {} bytes",
            len - 1,
            short - last_start,
            len - last_start
        )),
        "{}",
        a.reason
    );
    assert_eq!(
        done_of(state(&device)),
        last_start,
        "only whole segments of the signed length are kept"
    );
    before.assert_untouched(&device, "after a shorter file");
    assert!(
        fx.reports("dev-length").await.is_empty(),
        "a deferred download is not over yet"
    );

    // The genuine file completes the download from the bytes kept.
    let summary = clean_run_installs(&fx, &mitm, &device, "1.1.0").await;
    let a = only_attempt(&summary);
    assert!(a.resumed, "{summary}");
    assert_eq!(a.bytes_this_run, len - last_start);
    assert_eq!(a.bytes_downloaded, len);
}

/// Counts `/files/` answers and applies `f` to the `nth` (1-based) only, once.
fn once_on_nth_file(
    mitm: &Mitm,
    nth: usize,
    f: impl Fn(&support::Exchange) -> axum::response::Response + Send + Sync + 'static,
) -> Arc<AtomicBool> {
    let seen = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicBool::new(false));
    let fired2 = fired.clone();
    mitm.tamper(move |ex| {
        if !ex.is_file() || seen.fetch_add(1, Ordering::SeqCst) + 1 != nth {
            return None;
        }
        fired2.store(true, Ordering::SeqCst);
        Some(f(ex))
    });
    fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_truncated_segment() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-truncated", "1.0.0").await;
    let artifact = fx.main_release("1.1.0", true);
    let len = std::fs::metadata(&artifact).unwrap().len();
    fx.upload(&artifact).await;

    // The second segment arrives as a well-formed answer with only half of its bytes.
    let fired = once_on_nth_file(&mitm, 2, |ex| {
        assert_eq!(ex.content_range().map(|r| r.0), Some(4096));
        ex.with_body(ex.body.slice(..2048))
    });
    let mut agent = device.agent();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let p2 = progress.clone();
    agent.on_progress(move |p| {
        p2.lock().unwrap().push(p.done);
        ControlFlow::Continue(())
    });
    let summary = agent.run_once().await.unwrap();
    assert!(fired.load(Ordering::SeqCst), "the segment was truncated");
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(a.segment_retries, 1, "the short segment was fetched again");
    assert_eq!(
        (a.bytes_this_run, a.bytes_downloaded),
        (len, len),
        "the short segment's bytes never counted"
    );
    let done = progress.lock().unwrap().clone();
    let want: Vec<u64> = std::iter::once(0)
        .chain((1..=len.div_ceil(4096)).map(|i| (i * 4096).min(len)))
        .collect();
    assert_eq!(done, want, "progress only ever advanced by whole segments");
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert!(device.healthy());
    assert_installed_from_source(&fx, &device, "1.1.0");
    let r = &fx.reports("dev-truncated").await[0].report;
    assert_eq!(r.outcome, Outcome::Success);
    assert!(
        r.log_tail
            .iter()
            .any(|l| l.contains("bytes 4096-8191: segment ended after 2048 of 4096 bytes")),
        "{:?}",
        r.log_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bitflipped_segment() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-flip", "1.0.0").await;
    let artifact = fx.main_release("1.1.0", true);
    let genuine = std::fs::read(&artifact).unwrap();
    fx.upload(&artifact).await;
    let before = Before::of(&device);

    // One bit of the second segment flips on the way (byte 4096 + 100 of the file).
    let fired = once_on_nth_file(&mitm, 2, |ex| {
        let mut body = ex.body.to_vec();
        body[100] ^= 0x04;
        ex.with_body(body)
    });
    let mut flipped = genuine.clone();
    flipped[4096 + 100] ^= 0x04;
    let (expected, found) = (sha256_hex(&genuine), sha256_hex(&flipped));

    let summary = device.agent().run_once().await.unwrap();
    assert!(fired.load(Ordering::SeqCst));
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(
        !a.rolled_back,
        "nothing was switched, so nothing to roll back"
    );
    assert!(
        a.reason.contains(&format!(
            "sha256 {found} does not match {expected} from the signed targets metadata"
        )),
        "{}",
        a.reason
    );
    before.assert_untouched(&device, "after a bit flip in transit");
    let leftovers: Vec<_> = std::fs::read_dir(device.config.state_dir.join("downloads"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "the corrupt bytes were deleted: {leftovers:?}"
    );
    let r = &fx.reports("dev-flip").await[0].report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert!(
        r.reason.contains(&found) && r.reason.contains(&expected),
        "{}",
        r.reason
    );

    // The link is clean again: the next run fetches every byte anew and installs.
    let summary = clean_run_installs(&fx, &mitm, &device, "1.1.0").await;
    let a = only_attempt(&summary);
    assert!(!a.resumed);
    assert_eq!(a.bytes_this_run, genuine.len() as u64);
}

/// Re-signs a metadata file's (possibly edited) `signed` part with `key` only.
fn resign(bytes: &[u8], key: &SigningKey, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut signed = json_of(bytes)["signed"].clone();
    edit(&mut signed);
    sign_metadata(&signed, &[key])
}

/// The `meta` entry a snapshot or timestamp lists for `bytes`.
fn meta_entry(version: &Value, bytes: &[u8]) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_metadata_signed_by_unknown_key() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-forged", "1.0.0").await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let server_keys = RepoKeys::load_dir(&fx.data_dir.join("keys")).unwrap();
    let fresh = SigningKey::generate();
    let before = Before::of(&device);

    // 1. A timestamp re-signed with a fresh key (pushing its expiry far out).
    let ts = fx.tuf_file("timestamp.json").await;
    let forged_ts = resign(&ts, &fresh, |s| {
        s["expires"] = json!("2099-01-01T00:00:00Z")
    });
    mitm.tamper(move |ex| {
        (ex.path == "/tuf/timestamp.json").then(|| ex.with_body(forged_ts.clone()))
    });
    mitm.clear_requests();
    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    let ts_version = json_of(&ts)["signed"]["version"].as_u64().unwrap();
    let trusted_ts_key = server_keys.timestamp.key_id().to_string();
    assert!(
        a.reason.contains("/tuf/timestamp.json")
            && a.reason.contains(&format!(
                "timestamp v{ts_version} has 0 valid signature(s) from keys that root v1 trusts for timestamp, 1 required (valid: []; trusted: [{trusted_ts_key}])"
            )),
        "{}",
        a.reason
    );
    assert!(file_requests(&mitm).is_empty(), "{:?}", mitm.requests());
    before.assert_untouched(&device, "after a forged timestamp");

    // 2. The attacker holds the online snapshot and timestamp keys, but not the targets key:
    //    it points main/1.1.0.ferry at its own bytes in targets signed with a fresh key, and
    //    re-signs snapshot and timestamp with the real keys so they list the forged targets.
    let ts_json = json_of(&ts);
    let snap_v = ts_json["signed"]["meta"]["snapshot.json"]["version"].clone();
    let snap_name = format!("{snap_v}.snapshot.json");
    let snap = fx.tuf_file(&snap_name).await;
    let targets_v = json_of(&snap)["signed"]["meta"]["targets.json"]["version"].clone();
    let targets_name = format!("{targets_v}.targets.json");
    let evil = b"#!/bin/sh\nrm -rf /\n".to_vec();
    let forged_targets = resign(&fx.tuf_file(&targets_name).await, &fresh, |s| {
        s["targets"]["main/1.1.0.ferry"]["length"] = json!(evil.len());
        s["targets"]["main/1.1.0.ferry"]["hashes"] = json!({"sha256": sha256_hex(&evil)});
    });
    let forged_snap = resign(&snap, &server_keys.snapshot, |s| {
        s["meta"]["targets.json"] = meta_entry(&targets_v, &forged_targets);
    });
    let forged_ts = resign(&ts, &server_keys.timestamp, |s| {
        s["meta"]["snapshot.json"] = meta_entry(&snap_v, &forged_snap);
    });
    let paths = [
        ("/tuf/timestamp.json".to_string(), forged_ts),
        (format!("/tuf/{snap_name}"), forged_snap),
        (format!("/tuf/{targets_name}"), forged_targets),
    ];
    mitm.tamper(move |ex| {
        let (_, forged) = paths.iter().find(|(p, _)| *p == ex.path)?;
        Some(ex.with_body(forged.clone()))
    });
    mitm.clear_requests();
    let summary = device.agent().run_once().await.unwrap();
    let a = only_attempt(&summary);
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    let trusted_targets_key = server_keys.targets.key_id().to_string();
    assert!(
        a.reason.contains(&format!("/tuf/{targets_name}"))
            && a.reason.contains(&format!(
                "targets v{targets_v} has 0 valid signature(s) from keys that root v1 trusts for targets, 1 required (valid: []; trusted: [{trusted_targets_key}])"
            )),
        "{}",
        a.reason
    );
    assert!(file_requests(&mitm).is_empty(), "{:?}", mitm.requests());
    before.assert_untouched(&device, "after forged targets");
    let reports = fx.reports("dev-forged").await;
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.report.outcome == Outcome::Failure));

    // Nothing signed by the fresh key was trusted: once the repository publishes its next
    // metadata (a timestamp signed with the stolen key may legitimately have been kept until
    // then, as TUF persists each role as soon as it verifies), the device updates from it.
    fx.upload(&fx.main_release("1.2.0", true)).await;
    clean_run_installs(&fx, &mitm, &device, "1.2.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_is_refused() {
    let (fx, mitm) = Fixture::behind_mitm(ServerOptions::default()).await;
    let device = factory_device(&fx, &mitm, "dev-endless", "1.0.0").await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let before = Before::of(&device);

    // timestamp.json never ends: whitespace, 64 KiB at a time, for as long as it is read.
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    mitm.tamper(move |ex| {
        if ex.path != "/tuf/timestamp.json" {
            return None;
        }
        let sent = sent2.clone();
        let endless = futures::stream::repeat_with(move || {
            sent.fetch_add(64 * 1024, Ordering::SeqCst);
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b' '; 64 * 1024]))
        });
        Some(ex.with_body(axum::body::Body::from_stream(endless)))
    });
    let limit = ferry_agent::tuf_client::METADATA_LIMIT;
    let err = device.agent().run_once().await.unwrap_err();
    match &err {
        AgentError::Http { url, reason, .. } => {
            assert!(url.ends_with("/tuf/timestamp.json"), "{url}");
            assert!(
                reason.contains(&format!(
                    "answer exceeds {limit} bytes; refusing endless data"
                )),
                "{reason}"
            );
        }
        other => panic!("expected the endless answer to be refused, got {other}"),
    }
    // The agent hung up: the stream stops growing soon after the limit (socket buffers aside).
    let mut at_hangup = sent.load(Ordering::SeqCst);
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == at_hangup {
            break;
        }
        at_hangup = now;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(sent.load(Ordering::SeqCst), at_hangup, "still streaming");
    assert!(
        at_hangup < limit + 32 * 1024 * 1024,
        "{at_hangup} bytes sent"
    );
    before.assert_untouched(&device, "after endless metadata");
    assert_eq!(
        device.agent().install_state().unwrap(),
        InstallState::Idle,
        "no update was begun"
    );
    assert!(
        !device.config.state_dir.join("tuf/timestamp.json").exists(),
        "nothing of the endless answer was stored"
    );

    clean_run_installs(&fx, &mitm, &device, "1.1.0").await;
}
