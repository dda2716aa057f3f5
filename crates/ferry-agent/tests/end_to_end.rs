//! The agent against a real in-process Ferry server: updates, resumes, rollbacks, refusals
//! and recovery from a power cut at every install step.

mod support;

use ferry_agent::{AgentError, AttemptOutcome};
use ferry_core::api::{NothingNewReason, Outcome};
use ferry_core::install::InstallState;
use ferry_core::{Component, Version};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use support::{Device, Fixture, Proxy, ServerOptions};

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// A device with main 1.0.0 bootstrapped at the factory and running.
async fn factory_device(fx: &Fixture, name: &str) -> Device {
    let device = Device::new(fx.device_config(name, &fx.url));
    let mut agent = device.agent();
    let installed = agent
        .bootstrap(Component::Main, &fx.main_release("1.0.0", true))
        .await
        .unwrap();
    assert_eq!(installed, v("1.0.0"));
    assert!(
        !device.main_alive(),
        "a first install only lays the files down"
    );
    device.boot();
    assert!(device.healthy());
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_main_program_and_reports_success() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-update").await;
    let artifact = fx.main_release("1.1.0", true);
    let length = std::fs::metadata(&artifact).unwrap().len();
    fx.upload(&artifact).await;

    let mut agent = device.agent();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    agent.on_progress(move |p| {
        seen2.lock().unwrap().push((p.done, p.total));
        ControlFlow::Continue(())
    });
    let summary = agent.run_once().await.unwrap();

    assert_eq!(summary.attempts.len(), 1, "{summary}");
    let a = &summary.attempts[0];
    assert_eq!(
        (a.component, a.from.clone(), a.to.clone()),
        (Component::Main, v("1.0.0"), v("1.1.0"))
    );
    assert_eq!(a.outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(a.bytes_downloaded, length);
    assert!(!a.resumed && !a.rolled_back && a.reported);
    assert_eq!(
        summary.nothing_new,
        Some(NothingNewReason::UpToDate),
        "checks in again after installing"
    );

    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress.last(), Some(&(length, length)));
    assert!(progress.len() >= 3, "segmented download: {progress:?}");

    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert_eq!(device.running().as_deref(), Some("1.1.0"));
    assert!(device.healthy());
    assert!(
        device
            .config
            .state_dir
            .join("backups/main-1.0.0.tar")
            .is_file(),
        "the replaced release is backed up"
    );
    assert_eq!(agent.install_state().unwrap(), InstallState::Idle);

    let reports = fx.reports("dev-update").await;
    assert_eq!(reports.len(), 1);
    let r = &reports[0].report;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        (r.from_version.clone(), r.to_version.clone()),
        (v("1.0.0"), v("1.1.0"))
    );
    assert_eq!(r.bytes_downloaded, length);
    assert!(!r.log_tail.is_empty());
    assert_eq!(fx.device("dev-update").await.main_version, Some(v("1.1.0")));
    let backups: serde_json::Value = fx
        .http
        .get(format!("{}/api/v1/devices/dev-update/backups", fx.url))
        .bearer_auth(support::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        backups[0]["version"], "1.0.0",
        "upload_backups sent the backup to the server: {backups}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_download_after_restart_from_bytes_on_disk() {
    let fx = Fixture::start(ServerOptions {
        chunk_size: Some(1024),
        ..Default::default()
    })
    .await;
    let device = factory_device(&fx, "dev-resume").await;
    let artifact = fx.main_release("1.1.0", true);
    let length = std::fs::metadata(&artifact).unwrap().len();
    fx.upload(&artifact).await;

    let mut first = device.agent();
    first.on_progress(|p| {
        if p.done >= 5 * 1024 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    match first.run_once().await {
        Err(AgentError::Interrupted { done, total, .. }) => {
            assert_eq!((done, total), (5 * 1024, length))
        }
        other => panic!("expected the download to stop after 5 segments, got {other:?}"),
    }
    drop(first);
    match device.agent().install_state().unwrap() {
        InstallState::Downloading { done, pending } => {
            assert_eq!(done, 5 * 1024);
            assert_eq!(pending.bytes_downloaded, 5 * 1024);
        }
        other => panic!("expected a persisted download, got {other:?}"),
    }
    assert_eq!(
        device.current_main(),
        Some(v("1.0.0")),
        "nothing switched while downloading"
    );

    let mut second = device.agent();
    let summary = second.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Success, "{summary}");
    assert!(a.resumed);
    assert_eq!(
        a.bytes_this_run,
        length - 5 * 1024,
        "the bytes on disk were not fetched again"
    );
    assert_eq!(a.bytes_downloaded, length);
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    let reports = fx.reports("dev-resume").await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].report.bytes_downloaded, length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_connection_drop() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let proxy = Proxy::start(upstream, 6000).await;
    let fx = Fixture::start_on(
        listener,
        ServerOptions {
            chunk_size: Some(2048),
            files_url: Some(proxy.url.clone()),
        },
    )
    .await;
    let device = factory_device(&fx, "dev-drop").await;
    let artifact = fx.main_release("1.1.0", true);
    let length = std::fs::metadata(&artifact).unwrap().len();
    fx.upload(&artifact).await;

    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy cut a connection mid-download"
    );
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(
        a.bytes_downloaded, length,
        "only whole, checked segments count"
    );
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert!(device.healthy());
    let report = &fx.reports("dev-drop").await[0].report;
    assert_eq!(report.outcome, Outcome::Success);
    assert!(
        report
            .log_tail
            .iter()
            .any(|l| l.contains("segment failed, retrying")),
        "{:?}",
        report.log_tail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_check_rolls_back_and_reports_reason() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-rollback").await;
    let before = device.main_files();
    fx.upload(&fx.main_release("1.1.0", false)).await;

    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(a.rolled_back);
    assert!(a.reason.contains("cannot bind port 8080"), "{}", a.reason);
    assert_eq!(device.current_main(), Some(v("1.0.0")));
    assert_eq!(
        device.running().as_deref(),
        Some("1.0.0"),
        "the old release was started again"
    );
    assert!(device.healthy());
    let after: Vec<_> = device
        .main_files()
        .into_iter()
        .filter(|(p, _)| p.starts_with("releases/1.0.0") || p.ends_with("current"))
        .collect();
    assert_eq!(
        after, before,
        "the restored release is byte for byte the old one"
    );

    let reports = fx.reports("dev-rollback").await;
    assert_eq!(reports.len(), 1);
    let r = &reports[0].report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert!(r.rolled_back);
    assert!(r.reason.contains("cannot bind port 8080"), "{}", r.reason);

    // The same release is not tried again on the next run.
    let again = agent.run_once().await.unwrap();
    assert_eq!(
        again.attempts[0].outcome,
        AttemptOutcome::Skipped,
        "{again}"
    );
    assert_eq!(fx.reports("dev-rollback").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bitflipped_artifact_and_keeps_installed_files() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-bitflip").await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let stored = fx.stored_artifact(Component::Main, "1.1.0");
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let before = device.main_files();
    let pid = device.main_pid();

    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(!a.rolled_back);
    assert!(
        a.reason.contains("sha256") && a.reason.contains("does not match"),
        "{}",
        a.reason
    );
    assert_eq!(device.main_files(), before, "installed files are untouched");
    assert_eq!(
        device.main_pid(),
        pid,
        "the running program was never stopped"
    );
    let leftovers: Vec<_> = std::fs::read_dir(device.config.state_dir.join("downloads"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "the corrupt download was deleted: {leftovers:?}"
    );
    let reports = fx.reports("dev-bitflip").await;
    assert_eq!(reports[0].report.outcome, Outcome::Failure);
    assert!(reports[0].report.reason.contains("sha256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_artifact_signed_by_unknown_key_and_keeps_installed_files() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-badkey").await;
    fx.upload(&fx.main_release_signed("1.1.0", true, &fx.other_key))
        .await;
    let before = device.main_files();

    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(
        a.reason.contains(fx.other_key.key_id()) || a.reason.to_lowercase().contains("trusted"),
        "{}",
        a.reason
    );
    assert_eq!(device.main_files(), before);
    assert_eq!(device.current_main(), Some(v("1.0.0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_expired_metadata() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-expired").await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let before = device.main_files();

    let mut agent = device.agent();
    // Two days on: the one-day timestamp the server signed has expired (a freeze attack looks so).
    agent.set_clock(Arc::new(|| chrono::Utc::now() + chrono::TimeDelta::days(2)));
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(
        a.reason.contains("timestamp") && a.reason.contains("expired"),
        "{}",
        a.reason
    );
    assert_eq!(
        a.bytes_downloaded, 0,
        "nothing is downloaded on stale metadata"
    );
    assert_eq!(device.main_files(), before);
    let reports = fx.reports("dev-expired").await;
    assert!(reports[0].report.reason.contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_installs_newer_releases_only_and_backs_out_a_bad_one() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = Device::new(fx.device_config("dev-downgrade", &fx.url));
    let mut agent = device.agent();
    agent
        .bootstrap(Component::Main, &fx.main_release("1.1.0", true))
        .await
        .unwrap();
    device.boot();
    let before = device.main_files();
    let err = agent
        .bootstrap(Component::Main, &fx.main_release("1.0.0", true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("downgrade"), "{err}");
    assert_eq!(device.main_files(), before);
    let again = agent
        .bootstrap(Component::Main, &fx.main_release("1.1.0", true))
        .await
        .unwrap();
    assert_eq!(
        again,
        v("1.1.0"),
        "installing the active version again does nothing"
    );
    assert_eq!(device.main_files(), before);

    // A newer factory image replaces the running release with a health check; a bad one is backed out.
    let pid = device.main_pid();
    let err = agent
        .bootstrap(Component::Main, &fx.main_release("1.2.0", false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot bind port 8080"), "{err}");
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    assert!(device.healthy());
    assert_ne!(device.main_pid(), pid, "the old release was started again");
    agent
        .bootstrap(Component::Main, &fx.main_release("1.3.0", true))
        .await
        .unwrap();
    assert_eq!(device.running().as_deref(), Some("1.3.0"));
    assert!(device.healthy());
}

/// Every state a run persists, in order, for a device of `fx` updating to what the server offers.
async fn states_of_a_full_run(fx: &Fixture, name: &str) -> Vec<InstallState> {
    let device = factory_device(fx, name).await;
    let mut agent = device.agent();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    agent.on_state(move |s| {
        seen2.lock().unwrap().push(s.clone());
        ControlFlow::Continue(())
    });
    agent.run_once().await.unwrap();
    seen.lock().unwrap().clone()
}

/// Stops a run right after its `cut`-th persisted state, kills every process (power cut),
/// boots the device, runs a fresh agent, and returns the device.
async fn power_cut_after(fx: &Fixture, name: &str, cut: usize) -> (Device, InstallState) {
    let device = factory_device(fx, name).await;
    let mut agent = device.agent();
    let count = Arc::new(Mutex::new(0usize));
    agent.on_state(move |_| {
        let mut n = count.lock().unwrap();
        *n += 1;
        if *n == cut {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    match agent.run_once().await {
        Err(AgentError::Stopped { .. }) => {}
        other => panic!("power cut after state #{cut} did not stop the run: {other:?}"),
    }
    drop(agent);
    let at = device.agent().install_state().unwrap();
    device.power_cut();
    device.boot();
    let summary = device
        .agent()
        .run_once()
        .await
        .unwrap_or_else(|e| panic!("recovery from {} failed: {e}", at.name()));
    assert!(summary.attempts.iter().all(|a| a.reported), "{summary}");
    (device, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_power_cut_at_each_install_step() {
    // A good update: the device always ends on 1.1.0, verified and healthy, reported once.
    let fx = Fixture::start(ServerOptions {
        chunk_size: Some(8192),
        ..Default::default()
    })
    .await;
    fx.upload(&fx.main_release("1.1.0", true)).await;
    let states = states_of_a_full_run(&fx, "pc-reference").await;
    let names: Vec<_> = states.iter().map(InstallState::name).collect();
    for want in [
        "downloading",
        "verified",
        "backed_up",
        "switched",
        "confirmed",
        "idle",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    for cut in 1..states.len() {
        let name = format!("pc-good-{cut}");
        let (device, at) = power_cut_after(&fx, &name, cut).await;
        let ctx = format!("power cut in state {} (#{cut})", at.name());
        assert_eq!(device.current_main(), Some(v("1.1.0")), "{ctx}");
        assert!(
            device.healthy(),
            "{ctx}: the main program runs and is healthy"
        );
        assert_eq!(
            device.agent().install_state().unwrap(),
            InstallState::Idle,
            "{ctx}"
        );
        let slot =
            ferry_agent::slots::Slot::open(Component::Main, &device.config.main.dir).unwrap();
        slot.verify_release(&v("1.1.0"))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let reports = fx.reports(&name).await;
        assert_eq!(reports.len(), 1, "{ctx}: one report");
        assert_eq!(reports[0].report.outcome, Outcome::Success, "{ctx}");
    }

    // A bad update: wherever the cut falls, the device ends back on 1.0.0, healthy.
    let bad = Fixture::start(ServerOptions {
        chunk_size: Some(8192),
        ..Default::default()
    })
    .await;
    bad.upload(&bad.main_release("1.1.0", false)).await;
    let states = states_of_a_full_run(&bad, "pcb-reference").await;
    assert!(
        states.iter().any(InstallState::rollback_unfinished),
        "{states:?}"
    );
    for cut in 1..states.len() {
        let name = format!("pc-bad-{cut}");
        let (device, at) = power_cut_after(&bad, &name, cut).await;
        let ctx = format!("power cut in state {} (#{cut})", at.name());
        assert_eq!(device.current_main(), Some(v("1.0.0")), "{ctx}");
        assert!(device.healthy(), "{ctx}");
        let slot =
            ferry_agent::slots::Slot::open(Component::Main, &device.config.main.dir).unwrap();
        slot.verify_release(&v("1.0.0"))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let reports = bad.reports(&name).await;
        assert_eq!(reports.len(), 1, "{ctx}");
        assert!(reports[0].report.rolled_back, "{ctx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_the_agent_without_stopping_the_main_program() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-selfupdate").await;
    let main_pid = device.main_pid();
    fx.upload(&fx.agent_release("0.2.0", true)).await;

    let mut agent = device.agent();
    let handed_over = Arc::new(Mutex::new(Vec::new()));
    let h2 = handed_over.clone();
    agent.set_restart_hook(Box::new(move |binary| {
        h2.lock().unwrap().push(binary.to_path_buf());
        Ok(())
    }));
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(
        (a.component, a.to.clone(), a.outcome),
        (Component::Agent, v("0.2.0"), AttemptOutcome::Success),
        "{summary}"
    );
    let upgrader = &device.config.upgrader.dir;
    assert_eq!(
        *handed_over.lock().unwrap(),
        vec![upgrader.join("current").join("ferry")],
        "the new agent is started"
    );
    assert_eq!(
        std::fs::read_link(upgrader.join("current")).unwrap(),
        std::path::Path::new("releases/0.2.0")
    );
    assert_eq!(
        device.main_pid(),
        main_pid,
        "the main program was not restarted"
    );
    assert!(device.main_alive());
    assert_eq!(
        fx.device("dev-selfupdate").await.upgrader_version,
        Some(v("0.2.0"))
    );

    // A new agent that fails its trial run is never switched to.
    fx.upload(&fx.agent_release("0.3.0", false)).await;
    let summary = agent.run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(
        a.reason.contains("self-test") && a.reason.contains("132"),
        "{}",
        a.reason
    );
    assert_eq!(
        std::fs::read_link(upgrader.join("current")).unwrap(),
        std::path::Path::new("releases/0.2.0")
    );
    assert_eq!(handed_over.lock().unwrap().len(), 1);
    assert_eq!(device.main_pid(), main_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_install_hooks_and_a_failing_pre_install_changes_nothing() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-hooks").await;
    let log = device.config.state_dir.join("hooks.log");
    let pre = "echo \"pre $FERRY_PREVIOUS_VERSION->$FERRY_VERSION $(readlink \"$FERRY_RELEASE_DIR/../../current\")\" >> \"$FERRY_STATE_DIR/hooks.log\"\n";
    let post = "echo \"post $(readlink \"$FERRY_RELEASE_DIR/../../current\")\" >> \"$FERRY_STATE_DIR/hooks.log\"\n";
    fx.upload(&fx.main_release_with_hooks("1.1.0", pre, post))
        .await;
    let summary = device.agent().run_once().await.unwrap();
    assert_eq!(
        summary.attempts[0].outcome,
        AttemptOutcome::Success,
        "{summary}"
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines, "pre 1.0.0->1.1.0 releases/1.0.0\npost releases/1.1.0\n",
        "pre runs before the switch, post after"
    );

    let before = device.main_files();
    let pid = device.main_pid();
    fx.upload(&fx.main_release_with_hooks(
        "1.2.0",
        "echo 'disk layout too old' >&2; exit 4\n",
        "exit 0\n",
    ))
    .await;
    let summary = device.agent().run_once().await.unwrap();
    let a = &summary.attempts[0];
    assert_eq!(a.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(!a.rolled_back, "nothing was switched");
    assert!(
        a.reason.contains("pre-install") && a.reason.contains("disk layout too old"),
        "{}",
        a.reason
    );
    assert_eq!(
        device.main_files(),
        before,
        "installed files are untouched and the refused release is gone"
    );
    assert_eq!(
        device.main_pid(),
        pid,
        "the running program was not stopped"
    );
}

/// The CLI may run the agent on a spawned task: its futures must be `Send`.
#[allow(dead_code)]
fn agent_futures_are_send(mut agent: ferry_agent::Agent) {
    fn send<T: Send>(_: &T) {}
    send(&agent.run_once());
    send(&agent.bootstrap(Component::Main, std::path::Path::new("x.ferry")));
    send(&agent.run_forever());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_trusting_the_factory_root_updates_after_every_server_key_is_rotated() {
    let fx = Fixture::start(ServerOptions::default()).await;
    let device = factory_device(&fx, "dev-rotated").await;
    let resp = fx
        .http
        .post(format!("{}/api/v1/tuf/rotate", fx.url))
        .bearer_auth(support::OPERATOR_TOKEN)
        .json(&serde_json::json!({"roles": ["root", "targets", "snapshot", "timestamp"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "{}", resp.text().await.unwrap());
    fx.upload(&fx.main_release("1.1.0", true)).await;

    let summary = device.agent().run_once().await.unwrap();
    assert_eq!(summary.attempts.len(), 1, "{summary}");
    assert_eq!(summary.attempts[0].outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!(device.current_main(), Some(v("1.1.0")));
    let root = std::fs::read(device.config.state_dir.join("tuf/root.json")).expect("the agent keeps its trusted root");
    let root: serde_json::Value = serde_json::from_slice(&root).unwrap();
    assert_eq!(root["signed"]["version"], 2, "the agent now trusts the rotated root");
}
