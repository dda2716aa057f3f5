//! Behaviour of live patching against the demo server (built with cc into a temporary directory).

mod common;

use common::{Load, setup};
use ferry_artifact::keys::SigningKey;
use ferry_livepatch::demo::{DemoServer, field, patch_options, request};
use ferry_livepatch::{ApplyOptions, BuildOptions, Checkpoint, Error, PatchBundle, RollbackOptions, apply, build_patch, rollback, watch_or_rollback};
use std::time::Duration;

#[test]
fn refuses_patch_for_another_build() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1_other_build, s.dir.path()).unwrap();
    let err = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::BuildIdMismatch { .. }), "{err}");
    assert_eq!(request(server.port, 2, 3).unwrap(), "sum=-1 served=1");
}

#[test]
fn patch_signed_by_another_key_is_refused() {
    let s = setup();
    let bytes = s.bundle.to_signed_bytes(&SigningKey::generate());
    let err = PatchBundle::from_signed_bytes(&bytes, &SigningKey::generate().public()).unwrap_err();
    assert!(matches!(err, Error::Bundle(_)), "{err}");
    let key = SigningKey::generate();
    let ok = PatchBundle::from_signed_bytes(&s.bundle.to_signed_bytes(&key), &key.public()).unwrap();
    assert_eq!(ok, s.bundle);
}

#[test]
fn patched_server_keeps_answering_and_shows_fix() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    assert!(request(server.port, 2, 3).unwrap().starts_with("sum=-1 "));
    let load = Load::start(server.port, 3);
    std::thread::sleep(Duration::from_millis(100));
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} requests failed during the patch ({ok} answered)");
    assert!(ok > 0);
    let reply = request(server.port, 2, 3).unwrap();
    assert_eq!(field(&reply, "sum"), Some(5), "{reply}");
    assert!(report.redirected.iter().any(|f| f.ends_with("handle_request")));
}

#[test]
fn counter_state_survives_patch() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    for i in 1..=5 {
        assert_eq!(field(&request(server.port, 1, 1).unwrap(), "served"), Some(i));
    }
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    assert_eq!(report.statics, vec!["server.c:g_stats".to_string()]);
    let reply = request(server.port, 1, 1).unwrap();
    assert_eq!(field(&reply, "served"), Some(6), "{reply}");
    assert_eq!(field(&reply, "sum"), Some(2), "{reply}");
}

#[test]
fn main_loop_thread_moves_at_safe_point() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    let load = Load::start(server.port, 2);
    std::thread::sleep(Duration::from_millis(50));
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    let (_, failed) = load.finish();
    assert_eq!(failed, 0);
    assert_eq!(report.moved.len(), 1, "{:?}", report.moved);
    let moved = &report.moved[0];
    assert_eq!(moved.tid, server.pid(), "the main thread runs the main loop");
    assert!(moved.function.ends_with("main_loop"));
    assert_eq!(moved.helper.as_deref(), Some("ferry_helper_main_loop"));
    let point = s.bundle.mapping_for(&moved.function).unwrap().points.iter().any(|p| p.old.addr + report.checkpoint.bias == moved.safe_point);
    assert!(point, "moved at {:#x}, not at a safe point of the mapping table", moved.safe_point);
    // Only the new main loop counts accepted connections (the helper reset the count to 0).
    let a = field(&request(server.port, 1, 1).unwrap(), "accepted").unwrap();
    let b = field(&request(server.port, 1, 1).unwrap(), "accepted").unwrap();
    assert!(a >= 1 && b == a + 1, "accepted {a} then {b}");
}

#[test]
fn faulting_helper_is_rolled_back_and_process_survives() {
    let s = setup();
    let bundle = build_patch(&s.bins.v1, &s.bins.v2_faulty_helper, &ferry_livepatch::demo::patch_options()).unwrap();
    let mut server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    request(server.port, 1, 1).unwrap();
    let err = apply(server.pid(), &bundle, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::HelperFailed { reason, .. } if reason.contains("signal 11")), "{err}");
    assert!(server.alive());
    let reply = request(server.port, 2, 3).unwrap();
    assert_eq!(reply, "sum=-1 served=2", "old behaviour and the counter are back");
    assert!(request(server.port, 2, 3).unwrap().starts_with("sum=-1 served=3"));
}

#[test]
fn threads_blocked_in_syscalls_are_handled() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    request(server.port, 1, 1).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Idle: the main thread is blocked in accept(), the workers in futex waits.
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    assert!(report.moved[0].woken_from_syscall, "main thread was blocked in accept");
    assert_eq!(report.threads, 5);
    for i in 0..8 {
        let reply = request(server.port, i, 1).unwrap();
        assert_eq!(field(&reply, "sum"), Some(i + 1), "{reply}");
    }
    std::thread::sleep(Duration::from_millis(50));
    let rb = rollback(server.pid(), &report.checkpoint, &RollbackOptions::default()).unwrap();
    assert!(rb.moved[0].woken_from_syscall);
    for i in 0..8 {
        assert!(request(server.port, i, 1).unwrap().starts_with(&format!("sum={} ", i - 1)));
    }
}

#[test]
fn rollback_restores_old_behaviour() {
    let s = setup();
    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    request(server.port, 1, 1).unwrap();
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    let path = s.dir.path().join("cp.json");
    report.checkpoint.save(&path).unwrap();
    assert_eq!(field(&request(server.port, 2, 3).unwrap(), "sum"), Some(5));
    let load = Load::start(server.port, 2);
    std::thread::sleep(Duration::from_millis(50));
    let cp = Checkpoint::load(&path).unwrap();
    let rb = rollback(server.pid(), &cp, &RollbackOptions::default()).unwrap();
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0);
    assert_eq!(rb.moved.len(), 1, "main loop moved back");
    let reply = request(server.port, 2, 3).unwrap();
    assert_eq!(reply, format!("sum=-1 served={}", 3 + ok), "old format, counter continued");
    // The patch can be applied again after a rollback.
    apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    assert_eq!(field(&request(server.port, 2, 3).unwrap(), "sum"), Some(5));
}

#[test]
fn monitor_rolls_back_on_anomaly() {
    let s = setup();
    let mut server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    request(server.port, 1, 1).unwrap();
    let report = apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    let port = server.port;
    // A healthy probe: the patch stays.
    let mut healthy = || request(port, 2, 3).is_ok_and(|r| field(&r, "sum") == Some(5));
    let (mon, rb) = watch_or_rollback(server.pid(), &report.checkpoint, &mut healthy, Duration::from_millis(150)).unwrap();
    assert!(mon.healthy() && mon.probes > 0, "{mon:?}");
    assert!(rb.is_none());
    assert_eq!(field(&request(port, 2, 3).unwrap(), "sum"), Some(5), "still patched");
    // A probe that reports an anomaly (the service answers, but the health check fails).
    let mut probes = 0;
    let mut failing = || {
        probes += 1;
        let _ = request(port, 2, 3);
        false
    };
    let (mon, rb) = watch_or_rollback(server.pid(), &report.checkpoint, &mut failing, Duration::from_millis(150)).unwrap();
    assert!(mon.alive && mon.failures > 0 && !mon.healthy(), "{mon:?}");
    assert!(probes > 0);
    let rb = rb.expect("an anomaly rolls the patch back");
    assert_eq!(rb.moved.len(), 1, "the main loop moved back");
    assert!(server.alive());
    // Old behaviour is back and the counter continued over every request made so far.
    let reply = request(port, 2, 3).unwrap();
    assert!(reply.starts_with("sum=-1 served="), "{reply}");
    assert!(field(&reply, "served").unwrap() > 2 + mon.probes as i64, "{reply}");
    assert!(!reply.contains("accepted"), "{reply}");
    // The checkpoint's memory is gone: the patch can be applied again.
    apply(server.pid(), &s.bundle, &ApplyOptions::default()).unwrap();
    assert_eq!(field(&request(port, 2, 3).unwrap(), "sum"), Some(5));
}

#[test]
fn thread_moved_without_helper_restarts_at_entry() {
    let s = setup();
    // Without a helper, main_loop is only movable when the author declares that restarting it at
    // its entry is equivalent to being at its safe point.
    let plain = build_patch(&s.bins.v1, &s.bins.v2_no_helper, &patch_options()).unwrap();
    assert!(plain.mapping.is_empty(), "{:?}", plain.mapping);
    let opts = BuildOptions { restart_at_entry: vec!["main_loop".into()], ..patch_options() };
    let bundle = build_patch(&s.bins.v1, &s.bins.v2_no_helper, &opts).unwrap();
    let m = bundle.mapping.iter().find(|m| m.function.ends_with("main_loop")).expect("main_loop mapping");
    assert!(m.helper.is_none());

    let server = DemoServer::spawn(&s.bins.v1, s.dir.path()).unwrap();
    for i in 1..=3 {
        assert_eq!(field(&request(server.port, 1, 1).unwrap(), "served"), Some(i));
    }
    let load = Load::start(server.port, 2);
    std::thread::sleep(Duration::from_millis(50));
    let report = apply(server.pid(), &bundle, &ApplyOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} requests failed ({ok} answered)");
    assert_eq!(report.moved.len(), 1, "{:?}", report.moved);
    let moved = &report.moved[0];
    assert_eq!(moved.tid, server.pid());
    assert!(moved.function.ends_with("main_loop"));
    assert_eq!(moved.helper, None);
    let at_point = m.points.iter().any(|p| p.old.addr + report.checkpoint.bias == moved.safe_point);
    assert!(at_point, "moved at {:#x}, not at a safe point", moved.safe_point);
    // The new main loop runs (it counts accepted connections, from 0 in the new layout), the
    // handler is fixed and the counter continued.
    let r1 = request(server.port, 2, 3).unwrap();
    let r2 = request(server.port, 2, 3).unwrap();
    assert_eq!(field(&r1, "sum"), Some(5), "{r1}");
    assert_eq!(field(&r1, "served"), Some(3 + ok as i64 + 1), "{r1}");
    let (a, b) = (field(&r1, "accepted").unwrap(), field(&r2, "accepted").unwrap());
    assert!(a >= 1 && b == a + 1, "accepted {a} then {b}");
    let rb = rollback(server.pid(), &report.checkpoint, &RollbackOptions::default()).unwrap();
    assert_eq!(rb.moved.len(), 1);
    let reply = request(server.port, 2, 3).unwrap();
    assert_eq!(reply, format!("sum=-1 served={}", 3 + ok + 3), "old behaviour, counter continued");
}
