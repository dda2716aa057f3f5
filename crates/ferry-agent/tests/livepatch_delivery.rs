//! A live patch delivered like any other update: a real in-process server, the live-patch demo
//! C server running as the device's main program, a signed live-patch release uploaded, and
//! `run_once` patching the running process in place (or refusing a patch for another build).

mod support;

use ferry_agent::{AttemptOutcome, LivePatchConfig};
use ferry_artifact::artifact::{BuildSpec, Hooks};
use ferry_core::api::{NothingNewReason, Outcome};
use ferry_core::{Component, Version};
use ferry_livepatch::demo::{DemoBinaries, build_demo, field, patch_options, request};
use ferry_livepatch::package::{PatchRelease, build_artifact};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Device, Fixture, ServerOptions};

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// False (after a loud skip message) when this machine cannot run the test: no C compiler or no
/// ptrace permission. Under `FERRY_REQUIRE_SERVICES=1` a missing capability fails the test.
fn can_live_patch() -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let has_cc = std::process::Command::new(&cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ferry_store::testing::require_service("C compiler", &cc, has_cc) {
        return false;
    }
    let mut child = std::process::Command::new("sleep").arg("10").spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    // SAFETY: PTRACE_SEIZE on our own child with null arguments; it does not stop the child.
    let seized = unsafe {
        libc::ptrace(libc::PTRACE_SEIZE, pid, std::ptr::null_mut::<libc::c_void>(), std::ptr::null_mut::<libc::c_void>())
    } == 0;
    let _ = child.kill();
    let _ = child.wait();
    ferry_store::testing::require_service("ptrace (PTRACE_SEIZE of a child process)", "this machine", seized)
}

fn write_file(path: &Path, body: &[u8], mode: u32) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Main release 1.0.0: the demo server v1 with start, stop and health scripts. The health check
/// asks the server to add and expects a `sum=` answer; `./health.sh v1-only` also refuses the
/// patched server's answer (it counts accepts).
fn demo_main_release(fx: &Fixture, bins: &DemoBinaries) -> PathBuf {
    let src = fx.dir.path().join("src-demo-main-1.0.0");
    std::fs::create_dir_all(&src).unwrap();
    write_file(&src.join("server"), &std::fs::read(&bins.v1).unwrap(), 0o755);
    write_file(
        &src.join("start.sh"),
        b"#!/bin/sh\nrm -f \"$FERRY_STATE_DIR/port\"\n./server \"$FERRY_STATE_DIR/port\" >/dev/null 2>&1 &\necho $! > \"$FERRY_STATE_DIR/main.pid\"\n",
        0o755,
    );
    write_file(
        &src.join("stop.sh"),
        b"#!/bin/sh\n[ -f \"$FERRY_STATE_DIR/main.pid\" ] && kill \"$(cat \"$FERRY_STATE_DIR/main.pid\")\" 2>/dev/null\nrm -f \"$FERRY_STATE_DIR/main.pid\"\nexit 0\n",
        0o755,
    );
    write_file(
        &src.join("health.sh"),
        b"#!/bin/bash\nport=$(cat \"$FERRY_STATE_DIR/port\") || exit 1\nexec 3<>\"/dev/tcp/127.0.0.1/$port\" || exit 1\necho 'ADD 1 1' >&3\nread -r line <&3\ncase \"$1:$line\" in v1-only:*accepted=*) echo \"patched behaviour refused: $line\" >&2; exit 1 ;; *:sum=*) exit 0 ;; esac\necho \"unexpected answer: $line\" >&2\nexit 1\n",
        0o755,
    );
    let out = fx.dir.path().join("main-1.0.0-demo.ferry");
    let spec = BuildSpec {
        component: Component::Main,
        version: v("1.0.0"),
        device_types: vec![],
        hooks: Hooks::default(),
    };
    ferry_artifact::artifact::build(&src, spec, &out, Some(&fx.release_key)).unwrap();
    out
}

/// The live-patch release `1.0.0+lp1` made by the operator's path: `ferry patch build` (a
/// signed bundle from `old` to `new`), then `ferry artifact build --live-patch`.
fn live_patch_release(fx: &Fixture, old: &Path, new: &Path, name: &str) -> PathBuf {
    let bundle = ferry_livepatch::build_patch(old, new, &patch_options()).unwrap();
    let bundle_file = fx.dir.path().join(format!("{name}.patch.json"));
    bundle.save(&bundle_file, &fx.release_key).unwrap();
    let out = fx.dir.path().join(format!("{name}.ferry"));
    let release = PatchRelease { patches: v("1.0.0"), version: v("1.0.0+lp1"), device_types: vec![] };
    let m = build_artifact(&bundle_file, &[fx.release_key.public()], release, &out, &fx.release_key).unwrap();
    assert_eq!(m.live_patch.as_ref().unwrap().target_build_id, bundle.target_build_id);
    out
}

/// A device whose main program 1.0.0 (the demo server v1) runs, booted as the init system
/// would; returns it with the server's port.
async fn device_running_demo(fx: &Fixture, name: &str, bins: &DemoBinaries, health: &str) -> (Device, u16) {
    let mut config = fx.device_config(name, &fx.url);
    config.main.health_check = health.into();
    config.main.health_retries = 5;
    config.main.live_patch = Some(LivePatchConfig {
        pid_file: config.state_dir.join("main.pid"),
        keys: vec![],
        monitor_secs: 1,
        monitor_interval_ms: 200,
    });
    let device = Device::new(config);
    let installed = device
        .agent()
        .bootstrap(Component::Main, &demo_main_release(fx, bins))
        .await
        .unwrap();
    assert_eq!(installed, v("1.0.0"));
    let port = boot_demo(&device).await;
    (device, port)
}

/// Starts the current main release as the init system would and waits for its port.
async fn boot_demo(device: &Device) -> u16 {
    device.boot();
    let port_file = device.config.state_dir.join("port");
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse().ok()) {
            break p;
        }
        assert!(Instant::now() < deadline, "the demo server did not publish its port");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(device.healthy(), "the demo server answers its health check");
    port
}

fn served(reply: &str) -> i64 {
    field(reply, "served").unwrap_or_else(|| panic!("no served= in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_patch_release_is_applied_to_the_running_process_and_reported() {
    if !can_live_patch() {
        return;
    }
    let fx = Fixture::start(ServerOptions::default()).await;
    let bins = build_demo(&fx.dir.path().join("demo")).unwrap();
    let (device, port) = device_running_demo(&fx, "dev-livepatch", &bins, "./health.sh").await;
    let pid = device.main_pid().unwrap();
    let before = request(port, 2, 3).unwrap();
    assert_eq!(field(&before, "sum"), Some(-1), "v1 has the bug: {before}");
    assert_eq!(field(&before, "accepted"), None, "{before}");

    fx.upload(&demo_main_release(&fx, &bins)).await;
    fx.upload(&live_patch_release(&fx, &bins.v1, &bins.v2, "main-1.0.0+lp1")).await;
    let releases = fx.releases().await;
    assert!(releases.iter().any(|r| r.version == v("1.0.0+lp1") && r.target_name == "main/1.0.0+lp1.ferry"));

    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let attempt = summary.attempts.first().unwrap_or_else(|| panic!("no attempt: {summary}"));
    assert_eq!(attempt.outcome, AttemptOutcome::Success, "{summary}");
    assert_eq!((attempt.from.clone(), attempt.to.clone()), (v("1.0.0"), v("1.0.0+lp1")));
    assert_eq!(attempt.delta_from, None, "a live patch is fetched whole");
    assert!(attempt.reported);

    // Same process, the fix is in, the counter went on from where it was.
    assert_eq!(device.main_pid(), Some(pid), "the process was not restarted");
    assert!(device.main_alive());
    let after = request(port, 2, 3).unwrap();
    assert_eq!(field(&after, "sum"), Some(5), "the patched handler adds: {after}");
    assert!(field(&after, "accepted").is_some(), "the patched main loop counts accepts: {after}");
    assert!(served(&after) > served(&before), "counter continues: {before} then {after}");
    // The storage space still holds the unpatched files; the checkpoint is kept on disk.
    assert_eq!(device.current_main(), Some(v("1.0.0")));
    let state_dir = &device.config.state_dir;
    let record = ferry_agent::livepatch::load_record(state_dir).unwrap().expect("patch recorded");
    assert_eq!((record.pid, record.version.clone()), (pid, v("1.0.0+lp1")));
    assert!(record.checkpoint.is_file());

    // The server archived the success report like any other upgrade.
    let reports = fx.reports("dev-livepatch").await;
    let last = reports.last().expect("a report");
    assert_eq!(last.report.outcome, Outcome::Success);
    assert_eq!((last.report.from_version.clone(), last.report.to_version.clone()), (v("1.0.0"), v("1.0.0+lp1")));
    assert!(last.report.log_tail.iter().any(|l| l.contains("applied to process")), "{:?}", last.report.log_tail);
    eprintln!("report log tail:\n{}", last.report.log_tail.join("\n"));

    // The next check-in reports the patched version and gets nothing new.
    let again = agent.run_once().await.unwrap();
    assert!(again.attempts.is_empty(), "{again}");
    assert_eq!(again.nothing_new, Some(NothingNewReason::UpToDate));
    assert_eq!(fx.device("dev-livepatch").await.main_version, Some(v("1.0.0+lp1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_patch_for_another_build_is_refused_and_the_process_keeps_running() {
    if !can_live_patch() {
        return;
    }
    let fx = Fixture::start(ServerOptions::default()).await;
    let bins = build_demo(&fx.dir.path().join("demo")).unwrap();
    let (device, port) = device_running_demo(&fx, "dev-wrong-build", &bins, "./health.sh").await;
    let pid = device.main_pid().unwrap();
    let before = request(port, 2, 3).unwrap();

    // Built against another build of 1.0.0: same code, another build id.
    fx.upload(&live_patch_release(&fx, &bins.v1_other_build, &bins.v2, "main-1.0.0+lp1-other")).await;
    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let attempt = summary.attempts.first().unwrap_or_else(|| panic!("no attempt: {summary}"));
    assert_eq!(attempt.outcome, AttemptOutcome::Failure, "{summary}");
    eprintln!("refused as expected: {}", attempt.reason);
    assert!(attempt.reason.contains("runs build") && attempt.reason.contains("keeps running unchanged"), "{}", attempt.reason);
    assert!(attempt.reported);

    // Untouched: same pid, still answering with the old behaviour, counter continuing.
    assert_eq!(device.main_pid(), Some(pid));
    let after = request(port, 2, 3).unwrap();
    assert_eq!(field(&after, "sum"), Some(-1), "{after}");
    assert!(served(&after) > served(&before));
    assert_eq!(device.current_main(), Some(v("1.0.0")));
    assert_eq!(ferry_agent::livepatch::load_record(&device.config.state_dir).unwrap(), None);

    let reports = fx.reports("dev-wrong-build").await;
    let last = reports.last().expect("a report");
    assert_eq!(last.report.outcome, Outcome::Failure);
    assert_eq!(last.report.to_version, v("1.0.0+lp1"));
    assert!(last.report.reason.contains("build"), "{}", last.report.reason);
    assert_eq!(fx.device("dev-wrong-build").await.main_version, Some(v("1.0.0")));

    // A patch for another build is not fetched again.
    let again = agent.run_once().await.unwrap();
    assert_eq!(again.attempts.len(), 1, "{again}");
    assert_eq!(again.attempts[0].outcome, AttemptOutcome::Skipped, "{again}");
    assert_eq!(again.attempts[0].bytes_this_run, 0);
    assert_eq!(device.main_pid(), Some(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_live_patch_is_rolled_back_in_place_and_reported() {
    if !can_live_patch() {
        return;
    }
    let fx = Fixture::start(ServerOptions::default()).await;
    let bins = build_demo(&fx.dir.path().join("demo")).unwrap();
    // This device's health check refuses the patched behaviour.
    let (device, port) = device_running_demo(&fx, "dev-unhealthy", &bins, "./health.sh v1-only").await;
    let pid = device.main_pid().unwrap();
    let before = request(port, 2, 3).unwrap();

    fx.upload(&live_patch_release(&fx, &bins.v1, &bins.v2, "main-1.0.0+lp1")).await;
    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    let attempt = summary.attempts.first().unwrap_or_else(|| panic!("no attempt: {summary}"));
    assert_eq!(attempt.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(attempt.rolled_back, "{summary}");
    assert!(attempt.reason.contains("patched behaviour refused"), "{}", attempt.reason);

    // Rolled back in the running process: same pid, old behaviour, counter kept.
    assert_eq!(device.main_pid(), Some(pid));
    assert!(device.main_alive());
    let after = request(port, 2, 3).unwrap();
    assert_eq!(field(&after, "sum"), Some(-1), "{after}");
    assert_eq!(field(&after, "accepted"), None, "{after}");
    assert!(served(&after) > served(&before), "counter continues: {before} then {after}");
    assert_eq!(ferry_agent::livepatch::load_record(&device.config.state_dir).unwrap(), None);

    let reports = fx.reports("dev-unhealthy").await;
    let last = reports.last().expect("a report");
    assert_eq!(last.report.outcome, Outcome::Failure);
    assert!(last.report.rolled_back);
    assert!(last.report.log_tail.iter().any(|l| l.contains("rolled back in process")), "{:?}", last.report.log_tail);
    assert_eq!(fx.device("dev-unhealthy").await.main_version, Some(v("1.0.0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_main_program_gets_the_kept_live_patch_back_without_a_download() {
    if !can_live_patch() {
        return;
    }
    let fx = Fixture::start(ServerOptions::default()).await;
    let bins = build_demo(&fx.dir.path().join("demo")).unwrap();
    let (device, _) = device_running_demo(&fx, "dev-reapply", &bins, "./health.sh").await;
    fx.upload(&live_patch_release(&fx, &bins.v1, &bins.v2, "main-1.0.0+lp1")).await;
    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    assert_eq!(summary.attempts.first().map(|a| a.outcome), Some(AttemptOutcome::Success), "{summary}");
    let first = ferry_agent::livepatch::load_record(&device.config.state_dir).unwrap().expect("patch recorded");

    // The main program restarts (crash + init system): a new process running the unpatched
    // binary from disk.
    let old_pid = device.main_pid().unwrap();
    device.power_cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ferry_agent::livepatch::process_start_time(old_pid).is_some() {
        assert!(Instant::now() < deadline, "process {old_pid} did not die");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let port = boot_demo(&device).await;
    let new_pid = device.main_pid().unwrap();
    assert_ne!(new_pid, old_pid);
    let unpatched = request(port, 2, 3).unwrap();
    assert_eq!(field(&unpatched, "sum"), Some(-1), "the restarted process runs v1 from disk: {unpatched}");

    // No new release: the agent re-applies the kept bundle before checking in.
    let summary = agent.run_once().await.unwrap();
    assert!(summary.attempts.is_empty(), "nothing downloaded or installed: {summary}");
    assert_eq!(summary.nothing_new, Some(NothingNewReason::UpToDate), "{summary}");
    assert_eq!(device.main_pid(), Some(new_pid), "the process was not restarted again");
    let after = request(port, 2, 3).unwrap();
    assert_eq!(field(&after, "sum"), Some(5), "the new process has the fix: {after}");
    assert!(served(&after) > served(&unpatched), "counter continues: {unpatched} then {after}");
    let record = ferry_agent::livepatch::load_record(&device.config.state_dir).unwrap().expect("patch recorded");
    assert_eq!((record.pid, record.version.clone()), (new_pid, v("1.0.0+lp1")));
    assert_eq!(record.bundle_id, first.bundle_id);
    assert_eq!(fx.device("dev-reapply").await.main_version, Some(v("1.0.0+lp1")));
    assert_eq!(device.current_main(), Some(v("1.0.0")));
    // One success report only: the re-apply is not a new delivery.
    assert_eq!(fx.reports("dev-reapply").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_re_apply_is_rolled_back_once_and_the_patch_is_offered_again() {
    if !can_live_patch() {
        return;
    }
    let fx = Fixture::start(ServerOptions::default()).await;
    let bins = build_demo(&fx.dir.path().join("demo")).unwrap();
    let (device, _) = device_running_demo(&fx, "dev-reapply-bad", &bins, "./health.sh").await;
    fx.upload(&live_patch_release(&fx, &bins.v1, &bins.v2, "main-1.0.0+lp1")).await;
    let mut agent = device.agent();
    let summary = agent.run_once().await.unwrap();
    assert_eq!(summary.attempts.first().map(|a| a.outcome), Some(AttemptOutcome::Success), "{summary}");

    // The restarted process is checked by a health check that refuses the patched behaviour.
    let old_pid = device.main_pid().unwrap();
    device.power_cut();
    while ferry_agent::livepatch::process_start_time(old_pid).is_some() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let port = boot_demo(&device).await;
    let new_pid = device.main_pid().unwrap();
    let mut strict = device.config.clone();
    // Every refusal is counted in the state directory.
    strict.main.health_check = "./health.sh v1-only || { echo refused >> \"$FERRY_STATE_DIR/refusals\"; exit 1; }".into();
    strict.main.health_retries = 1;
    let strict = Device::new(strict);
    let mut agent = strict.agent();
    let summary = agent.run_once().await.unwrap();
    eprintln!("after the failed re-apply: {summary}");

    // Rolled back in place: same process, old behaviour; the on-disk version was reported, so
    // the server offered the patch again and the fresh attempt failed its health check too.
    assert_eq!(strict.main_pid(), Some(new_pid));
    assert!(strict.main_alive());
    let after = request(port, 2, 3).unwrap();
    assert_eq!(field(&after, "sum"), Some(-1), "{after}");
    let attempt = summary.attempts.first().unwrap_or_else(|| panic!("the patch was offered again: {summary}"));
    assert_eq!(attempt.to, v("1.0.0+lp1"));
    assert_eq!(attempt.outcome, AttemptOutcome::Failure, "{summary}");
    assert!(attempt.rolled_back, "{summary}");
    let refusals = || {
        std::fs::read_to_string(strict.config.state_dir.join("refusals"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(refusals(), 2, "one refused re-apply, then one refused fresh apply");

    // Not tried again for the same process: the next run neither re-applies nor downloads.
    let again = agent.run_once().await.unwrap();
    assert_eq!(strict.main_pid(), Some(new_pid));
    assert_eq!(field(&request(port, 2, 3).unwrap(), "sum"), Some(-1));
    assert!(again.attempts.iter().all(|a| a.bytes_this_run == 0), "{again}");
    assert_eq!(refusals(), 2, "nothing was applied again to process {new_pid}");
    assert_eq!(fx.device("dev-reapply-bad").await.main_version, Some(v("1.0.0")));
}
