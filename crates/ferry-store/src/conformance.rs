//! Behaviour suites every [`Registry`] and [`ArtifactStore`] backend must pass. Compiled in
//! normal builds so any crate's tests (e.g. a server test against a fake) can run them.
//!
//! Each suite expects an empty backend and runs its checks one after another on it. A
//! failing check panics with `<suite> conformance check '<name>' failed on backend '<backend>': …`.

use crate::{ArtifactStore, Registry, StoreError};
use bytes::Bytes;
use ferry_core::api::{
    AlertEvidence, AlertFinding, ArchivedAlert, BackupRecord, SecurityAlert, DeltaFailureRecord, DeltaRecord, DeviceRecord, FileMismatch, Outcome, ReleaseRecord, UpgradeReport,
};
use ferry_core::{Component, DeviceId, Version};
use futures::FutureExt;
use futures::future::join_all;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

/// Runs one named check; a panic inside it is re-raised naming the suite, check and backend.
async fn check(suite: &str, backend: &str, name: &str, body: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
        let detail = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(non-text panic)".to_string());
        panic!("{suite} conformance check '{name}' failed on backend '{backend}': {detail}");
    }
    tracing::debug!(suite, backend, check = name, "conformance check passed");
}

/// The value of `result`, or a panic naming `what` and the error.
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: unexpected error: {e}"))
}

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).expect("conformance device ids are valid")
}

fn ver(v: &str) -> Version {
    v.parse().expect("conformance versions are valid")
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// Runs the registry suite on an empty registry; panics name the check (backend `registry`).
pub async fn registry(r: &dyn Registry) {
    registry_on("registry", r).await;
}

/// Runs the registry suite on an empty registry; panics name the check and `backend`.
pub async fn registry_on(backend: &str, r: &dyn Registry) {
    let s = "registry";
    check(s, backend, "starts_empty", starts_empty(r)).await;
    check(s, backend, "enrolled_device_reads_back_with_default_group", enrolled_device_reads_back(r)).await;
    check(s, backend, "token_lookup_finds_only_the_enrolled_device", token_lookup(r)).await;
    check(s, backend, "re_enrollment_replaces_type_and_token_but_keeps_group_and_versions", re_enrollment(r)).await;
    check(s, backend, "checkin_of_unknown_device_is_not_found", checkin_unknown(r)).await;
    check(s, backend, "checkin_records_type_versions_and_last_seen", checkin_records(r)).await;
    check(s, backend, "concurrent_enrollments_are_all_kept", concurrent_enrollments(r)).await;
    check(s, backend, "devices_are_listed_by_id", devices_by_id(r)).await;
    check(s, backend, "device_group_moves_and_unknown_device_is_not_found", device_groups(r)).await;
    check(s, backend, "group_chunk_size_is_unset_then_set_then_replaced", chunk_sizes(r)).await;
    check(s, backend, "release_round_trips_with_sorted_unique_blacklist", release_round_trip(r)).await;
    check(s, backend, "putting_a_release_twice_is_conflict", release_twice(r)).await;
    check(s, backend, "releases_are_ordered_by_component_then_creation", release_order(r)).await;
    check(s, backend, "blacklisting_is_idempotent_and_cumulative", blacklist_idempotent(r)).await;
    check(s, backend, "blacklisting_an_unknown_release_is_not_found", blacklist_unknown(r)).await;
    check(s, backend, "concurrent_blacklist_adds_keep_every_device", blacklist_concurrent(r)).await;
    check(s, backend, "values_beyond_63_bits_are_refused_not_wrapped", too_large_values(r)).await;
    check(s, backend, "deltas_read_back_with_their_release_and_replace_the_same_base", deltas(r)).await;
    check(s, backend, "delta_to_an_unknown_release_is_not_found", delta_unknown(r)).await;
    check(s, backend, "delta_failures_are_kept_per_device_and_component_until_cleared", delta_failures(r)).await;
    check(s, backend, "alerts_are_archived_halt_their_release_until_resumed", alerts(r)).await;
    check(s, backend, "alert_about_an_unknown_release_is_not_found_and_not_archived", alert_unknown(r)).await;
    check(s, backend, "rollout_plans_replace_halt_once_and_resume_with_the_release", rollouts(r)).await;
    check(s, backend, "reports_round_trip_newest_first_with_device_filter_and_limit", reports_order(r)).await;
    check(s, backend, "release_reports_are_the_attempts_at_one_release_oldest_first", release_reports(r)).await;
    check(s, backend, "concurrent_reports_are_all_archived_with_distinct_ids", reports_concurrent(r)).await;
    check(s, backend, "backups_replace_same_key_and_list_newest_first", backups(r)).await;
    check(s, backend, "metadata_is_stored_replaced_and_listed_by_name", metadata(r)).await;
    check(s, backend, "firmware_metadata_is_stored_replaced_and_listed_by_id", firmware(r)).await;
    check(s, backend, "concurrent_metadata_writes_all_succeed_atomically", metadata_concurrent(r)).await;
}

async fn firmware(r: &dyn Registry) {
    assert!(ok(r.all_firmware().await, "all_firmware").is_empty(), "no firmware at first");
    assert_eq!(ok(r.firmware("cam-fw").await, "firmware cam-fw"), None, "unknown firmware reads as None");
    ok(r.put_firmware("cam-fw", br#"{"id":"cam-fw","v":1}"#, 1_000).await, "put cam-fw");
    ok(r.put_firmware("boot.loader", &[0u8, 255, 7], 1_001).await, "put boot.loader (arbitrary bytes)");
    assert_eq!(ok(r.firmware("cam-fw").await, "firmware cam-fw").as_deref(), Some(&br#"{"id":"cam-fw","v":1}"#[..]));
    ok(r.put_firmware("cam-fw", br#"{"id":"cam-fw","v":2}"#, 2_000).await, "replace cam-fw");
    assert_eq!(
        ok(r.all_firmware().await, "all_firmware"),
        vec![
            ("boot.loader".to_string(), vec![0u8, 255, 7]),
            ("cam-fw".to_string(), br#"{"id":"cam-fw","v":2}"#.to_vec()),
        ],
        "firmware is listed by id, the replaced document once with its new bytes"
    );
    assert!(
        matches!(r.put_firmware("x", b"{}", u64::MAX).await, Err(StoreError::Config(_))),
        "a time beyond 63 bits is refused"
    );
}

async fn starts_empty(r: &dyn Registry) {
    assert!(ok(r.devices().await, "devices").is_empty(), "the registry suite needs an empty registry: devices exist");
    assert!(
        ok(r.releases().await, "releases").is_empty(),
        "the registry suite needs an empty registry: releases exist"
    );
    assert!(
        ok(r.reports(None, 1).await, "reports").is_empty(),
        "the registry suite needs an empty registry: reports exist"
    );
    assert!(
        ok(r.all_metadata().await, "all_metadata").is_empty(),
        "the registry suite needs an empty registry: metadata exists"
    );
}

async fn enrolled_device_reads_back(r: &dyn Registry) {
    ok(r.enroll_device(&dev("dev-a"), "gateway", "tok-a", 1_000).await, "enroll dev-a");
    let got = ok(r.device(&dev("dev-a")).await, "device dev-a");
    let want = DeviceRecord {
        device_id: dev("dev-a"),
        device_type: "gateway".into(),
        group: "default".into(),
        upgrader_version: None,
        main_version: None,
        last_seen: None,
    };
    assert_eq!(got, Some(want), "dev-a as read back after enrollment");
    assert_eq!(ok(r.device(&dev("never-enrolled")).await, "device never-enrolled"), None, "an unknown device");
}

async fn token_lookup(r: &dyn Registry) {
    assert_eq!(ok(r.device_by_token("tok-a").await, "device_by_token tok-a"), Some(dev("dev-a")));
    assert_eq!(ok(r.device_by_token("tok-unknown").await, "device_by_token unknown"), None, "an unknown token");
    assert_eq!(ok(r.device_by_token("").await, "device_by_token empty"), None, "the empty token");
}

async fn re_enrollment(r: &dyn Registry) {
    let id = dev("dev-b");
    ok(r.enroll_device(&id, "sensor-v1", "tok-b1", 1_000).await, "enroll dev-b");
    ok(r.set_device_group(&id, "canary").await, "set dev-b group");
    ok(r.record_checkin(&id, "sensor-v1", &ver("1.0.0"), &ver("3.1.0"), 2_000).await, "checkin dev-b");
    ok(r.enroll_device(&id, "sensor-v2", "tok-b2", 3_000).await, "re-enroll dev-b");
    assert_eq!(
        ok(r.device_by_token("tok-b1").await, "old token"),
        None,
        "the replaced token must no longer authenticate"
    );
    assert_eq!(ok(r.device_by_token("tok-b2").await, "new token"), Some(id.clone()), "the new token");
    let got = ok(r.device(&id).await, "device dev-b").expect("dev-b exists after re-enrollment");
    assert_eq!(got.device_type, "sensor-v2", "re-enrollment replaces the device type");
    assert_eq!(got.group, "canary", "re-enrollment keeps the group");
    assert_eq!(got.main_version, Some(ver("3.1.0")), "re-enrollment keeps the reported versions");
    assert_eq!(got.last_seen, Some(2_000), "re-enrollment keeps last_seen");
    // Enrolling again with the very same token is fine (idempotent).
    ok(r.enroll_device(&id, "sensor-v2", "tok-b2", 4_000).await, "re-enroll dev-b with the same token");
    assert_eq!(ok(r.device_by_token("tok-b2").await, "same token"), Some(id));
}

async fn checkin_unknown(r: &dyn Registry) {
    let ghost = dev("ghost");
    let res = r.record_checkin(&ghost, "gateway", &ver("1.0.0"), &ver("1.0.0"), 5).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "checkin of an unknown device gave {res:?}");
    assert_eq!(ok(r.device(&ghost).await, "device ghost"), None, "a failed checkin must not create the device");
}

async fn checkin_records(r: &dyn Registry) {
    let id = dev("dev-a");
    ok(r.record_checkin(&id, "gateway-r2", &ver("1.2.3"), &ver("2.0.0-rc.1+build.7"), 5_000).await, "checkin dev-a");
    let got = ok(r.device(&id).await, "device dev-a").expect("dev-a exists");
    assert_eq!(got.device_type, "gateway-r2");
    assert_eq!(got.upgrader_version, Some(ver("1.2.3")));
    assert_eq!(got.main_version, Some(ver("2.0.0-rc.1+build.7")), "pre-release and build metadata survive");
    assert_eq!(got.last_seen, Some(5_000));
    ok(r.record_checkin(&id, "gateway-r2", &ver("1.10.0"), &ver("2.0.0"), 6_000).await, "second checkin dev-a");
    let got = ok(r.device(&id).await, "device dev-a").expect("dev-a exists");
    assert_eq!(
        (got.upgrader_version, got.main_version, got.last_seen),
        (Some(ver("1.10.0")), Some(ver("2.0.0")), Some(6_000))
    );
    assert_eq!(got.group, "default", "a checkin does not touch the group");
}

async fn concurrent_enrollments(r: &dyn Registry) {
    let ids: Vec<DeviceId> = (0..20).map(|i| dev(&format!("fleet-{i:02}"))).collect();
    let fleet_tokens: Vec<String> = (0..ids.len()).map(|i| format!("tok-fleet-{i}")).collect();
    let results = join_all(ids.iter().zip(&fleet_tokens).map(|(id, t)| r.enroll_device(id, "gateway", t, 7_000))).await;
    for (id, res) in ids.iter().zip(results) {
        ok(res, &format!("concurrent enroll {id}"));
    }
    // Concurrent re-enrollments of one device: exactly one token wins.
    let tokens: Vec<String> = (0..8).map(|i| format!("tok-race-{i}")).collect();
    let results = join_all(tokens.iter().map(|t| r.enroll_device(&ids[0], "gateway", t, 7_500))).await;
    for res in results {
        ok(res, "concurrent re-enrollment of fleet-00");
    }
    let mut winners = 0;
    for t in &tokens {
        if ok(r.device_by_token(t).await, "device_by_token race").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "after racing re-enrollments exactly one token must authenticate fleet-00");
    for (i, id) in ids.iter().enumerate().skip(1) {
        assert_eq!(
            ok(r.device_by_token(&format!("tok-fleet-{i}")).await, "token lookup"),
            Some(id.clone()),
            "{id} lost"
        );
    }
}

async fn devices_by_id(r: &dyn Registry) {
    for id in ["Zulu-1", "dev-10", "dev-9", "dev-0"] {
        ok(r.enroll_device(&dev(id), "gateway", &format!("tok-{id}"), 8_000).await, &format!("enroll {id}"));
    }
    let listed: Vec<String> = ok(r.devices().await, "devices").into_iter().map(|d| d.device_id.to_string()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "devices must be ordered by id (byte order)");
    for id in ["Zulu-1", "dev-10", "dev-9", "dev-0", "dev-a", "dev-b", "fleet-19"] {
        assert!(listed.iter().any(|d| d == id), "{id} missing from {listed:?}");
    }
    assert!(!listed.iter().any(|d| d == "ghost"), "a device that never enrolled is listed");
}

async fn device_groups(r: &dyn Registry) {
    let res = r.set_device_group(&dev("ghost"), "canary").await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "moving an unknown device gave {res:?}");
    ok(r.set_device_group(&dev("dev-0"), "wave-1").await, "set dev-0 group");
    assert_eq!(ok(r.device(&dev("dev-0")).await, "device dev-0").map(|d| d.group), Some("wave-1".into()));
    ok(r.set_device_group(&dev("dev-0"), "wave-2").await, "move dev-0 again");
    assert_eq!(ok(r.device(&dev("dev-0")).await, "device dev-0").map(|d| d.group), Some("wave-2".into()));
    assert_eq!(
        ok(r.device(&dev("dev-9")).await, "device dev-9").map(|d| d.group),
        Some("default".into()),
        "other devices keep their group"
    );
}

async fn chunk_sizes(r: &dyn Registry) {
    assert_eq!(ok(r.group_chunk_size("wave-1").await, "chunk size unset"), None);
    ok(r.set_group_chunk_size("wave-1", 65_536).await, "set chunk size");
    assert_eq!(ok(r.group_chunk_size("wave-1").await, "chunk size"), Some(65_536));
    ok(r.set_group_chunk_size("wave-1", 1_024).await, "replace chunk size");
    assert_eq!(ok(r.group_chunk_size("wave-1").await, "chunk size replaced"), Some(1_024));
    ok(r.set_group_chunk_size("huge", u32::MAX).await, "u32::MAX chunk size");
    assert_eq!(ok(r.group_chunk_size("huge").await, "u32::MAX chunk size"), Some(u32::MAX));
    assert_eq!(ok(r.group_chunk_size("wave-2").await, "other group"), None, "other groups stay unset");
}

fn release(component: Component, version: &str, created_at: u64) -> ReleaseRecord {
    ReleaseRecord {
        component,
        version: ver(version),
        device_types: vec!["gateway".into(), "sensor".into()],
        target_name: format!("{component}/{version}.ferry"),
        length: 1 << 40,
        sha256: format!("{:064x}", created_at),
        blacklist: Vec::new(),
        go_live: Some(created_at + 60_000),
        created_at,
        deltas: Vec::new(),
        halted: None,
    }
}

async fn release_round_trip(r: &dyn Registry) {
    let mut rel = release(Component::Main, "1.2.0", 1_000);
    rel.blacklist = vec![dev("dev-y"), dev("dev-x"), dev("dev-y")];
    ok(r.put_release(&rel).await, "put main 1.2.0");
    let got = ok(r.release(Component::Main, &ver("1.2.0")).await, "release main 1.2.0").expect("main 1.2.0 stored");
    let want = ReleaseRecord { blacklist: vec![dev("dev-x"), dev("dev-y")], ..rel.clone() };
    assert_eq!(got, want, "a release reads back as put, its blacklist sorted and without duplicates");
    let mut bare = release(Component::Agent, "1.2.0", 1_500);
    bare.device_types.clear();
    bare.go_live = None;
    bare.length = 0;
    ok(r.put_release(&bare).await, "put agent 1.2.0 (same version, other component)");
    assert_eq!(ok(r.release(Component::Agent, &ver("1.2.0")).await, "release agent 1.2.0"), Some(bare));
    assert_eq!(ok(r.release(Component::Main, &ver("9.9.9")).await, "release main 9.9.9"), None, "an unknown release");
    assert_eq!(
        ok(r.release(Component::Main, &ver("1.2.0+other")).await, "release main 1.2.0+other"),
        None,
        "build metadata distinguishes versions"
    );
}

async fn release_twice(r: &dyn Registry) {
    let mut again = release(Component::Main, "1.2.0", 99_000);
    again.sha256 = "f".repeat(64);
    let res = r.put_release(&again).await;
    assert!(matches!(res, Err(StoreError::Conflict(_))), "second put of main 1.2.0 gave {res:?}");
    let kept =
        ok(r.release(Component::Main, &ver("1.2.0")).await, "release main 1.2.0").expect("main 1.2.0 still stored");
    assert_eq!(kept.created_at, 1_000, "a refused put must not change the stored release");
    assert_eq!(kept.blacklist, vec![dev("dev-x"), dev("dev-y")], "a refused put must not change the blacklist");
}

async fn release_order(r: &dyn Registry) {
    // Inserted out of creation order; text order of versions ("10.0.0" < "2.0.0") would differ too.
    for (component, version, created) in [
        (Component::Main, "10.0.0", 3_000),
        (Component::Main, "2.0.0", 2_500),
        (Component::Agent, "0.9.0", 4_000),
        (Component::Main, "3.0.0", 5_000),
        (Component::Main, "2.5.0", 5_000),
    ] {
        ok(r.put_release(&release(component, version, created)).await, &format!("put {component} {version}"));
    }
    let listed: Vec<(String, String, u64)> = ok(r.releases().await, "releases")
        .into_iter()
        .map(|rel| (rel.component.to_string(), rel.version.to_string(), rel.created_at))
        .collect();
    let order: Vec<(&str, &str)> = listed.iter().map(|(c, v, _)| (c.as_str(), v.as_str())).collect();
    assert_eq!(
        order,
        [
            ("agent", "1.2.0"),
            ("agent", "0.9.0"),
            ("main", "1.2.0"),
            ("main", "2.0.0"),
            ("main", "10.0.0"),
            ("main", "3.0.0"),
            ("main", "2.5.0"),
        ],
        "releases ordered by component name, then created_at, then insertion (full list: {listed:?})"
    );
    let with_blacklist = ok(r.releases().await, "releases")
        .into_iter()
        .find(|rel| rel.component == Component::Main && rel.version == ver("1.2.0"));
    assert_eq!(
        with_blacklist.map(|rel| rel.blacklist),
        Some(vec![dev("dev-x"), dev("dev-y")]),
        "releases() carries blacklists"
    );
}

async fn blacklist_idempotent(r: &dyn Registry) {
    let v = ver("1.2.0");
    ok(r.add_to_blacklist(Component::Main, &v, &[dev("dev-z"), dev("dev-y")]).await, "add dev-z, dev-y");
    ok(r.add_to_blacklist(Component::Main, &v, &[dev("dev-z"), dev("dev-z")]).await, "add dev-z twice");
    ok(r.add_to_blacklist(Component::Main, &v, &[]).await, "add nobody");
    let got = ok(r.release(Component::Main, &v).await, "release main 1.2.0").expect("main 1.2.0 stored");
    assert_eq!(got.blacklist, vec![dev("dev-x"), dev("dev-y"), dev("dev-z")]);
    let agent = ok(r.release(Component::Agent, &v).await, "release agent 1.2.0").expect("agent 1.2.0 stored");
    assert!(agent.blacklist.is_empty(), "blacklisting main 1.2.0 must not touch agent 1.2.0: {:?}", agent.blacklist);
}

async fn blacklist_unknown(r: &dyn Registry) {
    let res = r.add_to_blacklist(Component::Main, &ver("7.7.7"), &[dev("dev-a")]).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "blacklisting unknown main 7.7.7 gave {res:?}");
    let res = r.add_to_blacklist(Component::Agent, &ver("7.7.7"), &[]).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "blacklisting nobody on unknown agent 7.7.7 gave {res:?}");
}

async fn blacklist_concurrent(r: &dyn Registry) {
    let v = ver("2.0.0");
    let batches: Vec<Vec<DeviceId>> = (0..20)
        .map(|i| vec![dev(&format!("bl-{i:02}")), dev(&format!("bl-{:02}", (i + 1) % 20)), dev("bl-shared")])
        .collect();
    let results = join_all(batches.iter().map(|batch| r.add_to_blacklist(Component::Main, &v, batch))).await;
    for (i, res) in results.into_iter().enumerate() {
        ok(res, &format!("concurrent blacklist batch {i}"));
    }
    let got = ok(r.release(Component::Main, &v).await, "release main 2.0.0").expect("main 2.0.0 stored");
    let mut want: Vec<DeviceId> = (0..20).map(|i| dev(&format!("bl-{i:02}"))).collect();
    want.push(dev("bl-shared"));
    want.sort();
    assert_eq!(got.blacklist, want, "every device from 20 concurrent blacklist calls, once each");
}

async fn too_large_values(r: &dyn Registry) {
    let mut rel = release(Component::Main, "99.0.0", 9_000);
    rel.length = u64::MAX;
    assert!(r.put_release(&rel).await.is_err(), "a length of u64::MAX must be refused, not wrapped");
    assert_eq!(
        ok(r.release(Component::Main, &ver("99.0.0")).await, "release main 99.0.0"),
        None,
        "a refused release is not stored"
    );
    let mut rel = release(Component::Main, "99.0.1", 9_000);
    rel.length = i64::MAX as u64;
    ok(r.put_release(&rel).await, "put a release of length i64::MAX");
    let got = ok(r.release(Component::Main, &ver("99.0.1")).await, "release main 99.0.1").expect("stored");
    assert_eq!(got.length, i64::MAX as u64);
}

fn delta(component: Component, from: &str, to: &str, sha: char) -> DeltaRecord {
    DeltaRecord {
        component,
        from_version: ver(from),
        to_version: ver(to),
        target_name: DeltaRecord::target_name_for(component, &ver(from), &ver(to)),
        length: 4_096,
        sha256: sha.to_string().repeat(64),
        created_at: 9_000,
    }
}

async fn deltas(r: &dyn Registry) {
    // main 2.0.0 and 3.0.0 exist from the ordering check.
    let from_12 = delta(Component::Main, "1.2.0", "2.0.0", 'a');
    let from_10 = delta(Component::Main, "10.0.0", "3.0.0", 'b');
    ok(r.put_delta(&from_12).await, "put delta main 1.2.0 -> 2.0.0");
    ok(r.put_delta(&from_10).await, "put delta main 10.0.0 -> 3.0.0");
    let rebuilt = DeltaRecord { sha256: "c".repeat(64), length: 77, ..from_12.clone() };
    ok(r.put_delta(&rebuilt).await, "put delta main 1.2.0 -> 2.0.0 again");
    let from_09 = delta(Component::Main, "0.9.0", "2.0.0", 'd');
    ok(r.put_delta(&from_09).await, "put delta main 0.9.0 -> 2.0.0");
    let two = ok(r.release(Component::Main, &ver("2.0.0")).await, "release main 2.0.0").expect("main 2.0.0 stored");
    assert_eq!(two.deltas, vec![from_09.clone(), rebuilt.clone()], "release() carries its deltas, the rebuilt one replacing the first");
    assert_eq!(two.delta_from(&ver("1.2.0")), Some(&rebuilt));
    let all = ok(r.releases().await, "releases");
    let find = |c: Component, v: &str| all.iter().find(|x| x.component == c && x.version == ver(v)).expect("listed").clone();
    assert_eq!(find(Component::Main, "2.0.0").deltas, vec![from_09, rebuilt], "releases() carries deltas");
    assert_eq!(find(Component::Main, "3.0.0").deltas, vec![from_10]);
    assert!(find(Component::Main, "10.0.0").deltas.is_empty(), "a release without deltas lists none");
    assert!(find(Component::Agent, "0.9.0").deltas.is_empty(), "deltas stay with their component");
}

async fn delta_unknown(r: &dyn Registry) {
    let res = r.put_delta(&delta(Component::Main, "1.0.0", "8.8.8", 'e')).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "delta to missing main 8.8.8 gave {res:?}");
    let res = r.put_delta(&delta(Component::Agent, "1.0.0", "2.0.0", 'e')).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "delta to missing agent 2.0.0 (main 2.0.0 exists) gave {res:?}");
}

fn failure(device: &str, component: Component, reason: &str) -> DeltaFailureRecord {
    DeltaFailureRecord {
        device_id: dev(device),
        component,
        from_version: ver("1.0.0"),
        to_version: ver("1.1.0"),
        target_name: format!("{component}/1.0.0_1.1.0.delta"),
        state: "downloading".into(),
        reason: reason.into(),
        files: vec![
            FileMismatch { path: "bin/app".into(), expected: "a".repeat(64), found: "b".repeat(64) },
            FileMismatch { path: "lib/x.so".into(), expected: "c".repeat(64), found: "missing".into() },
        ],
        failed_at: 12_345,
    }
}

async fn delta_failures(r: &dyn Registry) {
    assert!(ok(r.delta_failures(&dev("rooted")).await, "failures of rooted").is_empty(), "none at first");
    ok(r.put_delta_failure(&failure("rooted", Component::Main, "first")).await, "put rooted main");
    let newer = DeltaFailureRecord { files: vec![], ..failure("rooted", Component::Main, "second") };
    ok(r.put_delta_failure(&newer).await, "put rooted main again");
    let agent = failure("rooted", Component::Agent, "agent");
    ok(r.put_delta_failure(&agent).await, "put rooted agent");
    let other = failure("other", Component::Main, "other");
    ok(r.put_delta_failure(&other).await, "put other main");
    assert_eq!(
        ok(r.delta_failures(&dev("rooted")).await, "failures of rooted"),
        vec![agent.clone(), newer],
        "one record per component, the newest replacing the older, ordered by component"
    );
    assert!(ok(r.clear_delta_failure(&dev("rooted"), Component::Main).await, "clear rooted main"), "a record was cleared");
    assert!(!ok(r.clear_delta_failure(&dev("rooted"), Component::Main).await, "clear rooted main again"), "nothing left to clear");
    assert_eq!(ok(r.delta_failures(&dev("rooted")).await, "failures of rooted"), vec![agent]);
    assert_eq!(ok(r.delta_failures(&dev("other")).await, "failures of other"), vec![other], "other devices keep theirs");
}

fn alert(device: &str, component: Component, version: &str, rule: &str) -> SecurityAlert {
    SecurityAlert {
        device_id: dev(device),
        component,
        version: ver(version),
        stage: "mirror".into(),
        findings: vec![AlertFinding {
            severity: "critical".into(),
            rule: rule.into(),
            location: "GET /items/3".into(),
            message: "candidate answered \"evil\" where production answered \"item-3\"".into(),
        }],
        evidence: vec![AlertEvidence { kind: "response_mismatch".into(), detail: "body.name: \"item-3\" vs \"evil\"".into() }],
        detected_at: 42,
    }
}

async fn alerts(r: &dyn Registry) {
    let v = ver("1.2.0");
    let before = ok(r.release(Component::Main, &v).await, "release main 1.2.0").expect("main 1.2.0 stored");
    assert_eq!(before.halted, None, "a new release is not halted");
    assert!(ok(r.alerts(10).await, "alerts").is_empty(), "no alerts at first");
    let first = alert("dev-a", Component::Main, "1.2.0", "mirror/mismatch");
    let id1 = ok(r.add_alert(&first, "first message", 7_000).await, "alert about main 1.2.0");
    let halted = ok(r.release(Component::Main, &v).await, "release main 1.2.0").expect("main 1.2.0 stored");
    assert_eq!(halted.halted, Some(ferry_core::api::ReleaseHalt { alert_id: id1, since: 7_000 }));
    let listed = ok(r.releases().await, "releases");
    let find = |c: Component| listed.iter().find(|x| x.component == c && x.version == v).expect("listed");
    assert_eq!(find(Component::Main).halted, halted.halted, "releases() carries the halt");
    assert_eq!(find(Component::Agent).halted, None, "agent 1.2.0 is not halted by an alert about main 1.2.0");
    // A second alert is archived; the release keeps its first halt.
    let mut second = alert("dev-b", Component::Main, "1.2.0", "sandbox/outbound-connection");
    second.evidence.clear();
    let id2 = ok(r.add_alert(&second, "second message", 8_000).await, "second alert");
    assert!(id2 > id1, "ids grow: {id1} then {id2}");
    let got = ok(r.release(Component::Main, &v).await, "release main 1.2.0").expect("stored");
    assert_eq!(got.halted.map(|h| h.alert_id), Some(id1));
    let archived = ok(r.alerts(10).await, "alerts");
    assert_eq!(
        archived,
        vec![
            ArchivedAlert { id: id2, received_at: 8_000, alert: second, message: "second message".into() },
            ArchivedAlert { id: id1, received_at: 7_000, alert: first, message: "first message".into() },
        ],
        "alerts read back as sent, newest first"
    );
    assert_eq!(ok(r.alerts(1).await, "alerts limit 1").len(), 1);
    // Resuming lifts the halt once; the alerts stay archived.
    assert!(ok(r.resume_release(Component::Main, &v).await, "resume main 1.2.0"), "it was halted");
    assert!(!ok(r.resume_release(Component::Main, &v).await, "resume again"), "nothing left to resume");
    let resumed = ok(r.release(Component::Main, &v).await, "release main 1.2.0").expect("stored");
    assert_eq!(resumed.halted, None);
    assert_eq!(ok(r.alerts(10).await, "alerts").len(), 2);
    let res = r.resume_release(Component::Main, &ver("9.9.9")).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "resuming an unknown release gave {res:?}");
}

async fn rollouts(r: &dyn Registry) {
    use ferry_core::rollout::{RolloutPlan, RolloutRecord, Wave};
    let v = ver("1.2.0");
    assert!(ok(r.rollouts().await, "rollouts").is_empty(), "no rollout plans at first");
    let wave = |name: &str, percent: u8| Wave { name: name.into(), groups: vec![], percent, success_percent: 100, soak_ms: 0 };
    let mut record = RolloutRecord {
        component: Component::Main,
        version: v.clone(),
        plan: RolloutPlan { waves: vec![wave("canary", 5)], max_failure_percent: Some(20), min_attempts: 5 },
        created_at: 1_000,
        halted: None,
    };
    ok(r.put_rollout(&record).await, "put rollout of main 1.2.0");
    assert_eq!(ok(r.rollouts().await, "rollouts"), vec![record.clone()], "the plan reads back");
    assert!(ok(r.halt_rollout(Component::Main, &v, "3 of 5 failed", 2_000).await, "halt"), "first halt takes");
    assert!(!ok(r.halt_rollout(Component::Main, &v, "later", 3_000).await, "halt again"), "a halted rollout keeps its first halt");
    record.plan.waves.push(wave("rest", 100));
    record.created_at = 4_000;
    ok(r.put_rollout(&record).await, "replace the plan");
    let got = ok(r.rollouts().await, "rollouts").remove(0);
    assert_eq!(got.plan, record.plan, "the new plan replaced the old");
    assert_eq!(got.created_at, 4_000);
    assert_eq!(got.halted, Some(ferry_core::rollout::RolloutHalt { reason: "3 of 5 failed".into(), since: 2_000 }), "a new plan does not lift the halt");
    assert!(ok(r.resume_release(Component::Main, &v).await, "resume main 1.2.0"), "resuming lifts the rollout halt");
    assert_eq!(ok(r.rollouts().await, "rollouts")[0].halted, None);
    let unknown = RolloutRecord { version: ver("9.9.9"), ..record };
    let res = r.put_rollout(&unknown).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "a plan for an unknown release gave {res:?}");
}

async fn release_reports(r: &dyn Registry) {
    let attempts = ok(r.release_reports(Component::Main, &ver("1.1.0-beta.2")).await, "release_reports");
    let reasons: Vec<&str> = attempts.iter().map(|a| a.report.reason.as_str()).collect();
    assert_eq!(reasons, ["first", "third", "fourth, same time as third"], "main attempts only, oldest first");
    assert!(ok(r.release_reports(Component::Main, &ver("9.9.9")).await, "none").is_empty());
}

async fn alert_unknown(r: &dyn Registry) {
    let before = ok(r.alerts(100).await, "alerts").len();
    let res = r.add_alert(&alert("dev-a", Component::Main, "9.9.9", "x"), "m", 1).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "alert about main 9.9.9 gave {res:?}");
    assert_eq!(ok(r.alerts(100).await, "alerts").len(), before, "nothing archived");
}

fn report(device: &str, reason: &str) -> UpgradeReport {
    UpgradeReport {
        device_id: dev(device),
        component: Component::Main,
        from_version: ver("1.0.0"),
        to_version: ver("1.1.0-beta.2"),
        outcome: Outcome::Failure,
        reason: reason.to_string(),
        log_tail: vec!["line 1".into(), "quote \" and backslash \\ and ünïcode".into(), String::new()],
        bytes_downloaded: 5_000_000_000,
        rolled_back: true,
    }
}

async fn reports_order(r: &dyn Registry) {
    let r1 = report("rep-a", "first");
    let mut r2 = report("rep-b", "second");
    r2.outcome = Outcome::Success;
    r2.rolled_back = false;
    r2.log_tail.clear();
    r2.component = Component::Agent;
    let r3 = report("rep-a", "third");
    let r4 = report("rep-a", "fourth, same time as third");
    let id1 = ok(r.add_report(&r1, 100).await, "add report 1");
    let id2 = ok(r.add_report(&r2, 200).await, "add report 2");
    let id3 = ok(r.add_report(&r3, 300).await, "add report 3");
    let id4 = ok(r.add_report(&r4, 300).await, "add report 4");
    assert_eq!(BTreeSet::from([id1, id2, id3, id4]).len(), 4, "report ids must be distinct");
    let all = ok(r.reports(None, 10).await, "reports(all)");
    let ids: Vec<i64> = all.iter().map(|a| a.id).collect();
    assert_eq!(ids, [id4, id3, id2, id1], "newest first (same time: later id first)");
    assert_eq!(all[2].report, r2, "report content round-trips");
    assert_eq!(all[2].received_at, 200);
    assert_eq!(all[3].report, r1, "log lines with quotes, backslashes and unicode round-trip");
    let mine = ok(r.reports(Some(&dev("rep-a")), 2).await, "reports(rep-a, 2)");
    assert_eq!(mine.iter().map(|a| a.id).collect::<Vec<_>>(), [id4, id3], "per-device filter and limit");
    assert!(ok(r.reports(Some(&dev("rep-nobody")), 10).await, "reports(nobody)").is_empty());
    assert!(ok(r.reports(None, 0).await, "reports limit 0").is_empty(), "limit 0 returns nothing");
    assert_eq!(ok(r.reports(None, 1).await, "reports limit 1").len(), 1);
}

async fn reports_concurrent(r: &dyn Registry) {
    let reports: Vec<UpgradeReport> = (0..50).map(|i| report("burst", &format!("burst-{i:02}"))).collect();
    let results = join_all(reports.iter().enumerate().map(|(i, rep)| r.add_report(rep, 1_000 + i as u64))).await;
    let ids: Vec<i64> =
        results.into_iter().enumerate().map(|(i, res)| ok(res, &format!("concurrent report {i}"))).collect();
    assert_eq!(BTreeSet::from_iter(ids.iter().copied()).len(), 50, "50 concurrent reports got ids {ids:?}");
    let stored = ok(r.reports(Some(&dev("burst")), 1_000).await, "reports(burst)");
    assert_eq!(stored.len(), 50, "all 50 concurrent reports archived");
    assert_eq!(
        BTreeSet::from_iter(stored.iter().map(|a| a.id)),
        BTreeSet::from_iter(ids.iter().copied()),
        "stored ids = returned ids"
    );
    let reasons: BTreeSet<String> = stored.iter().map(|a| a.report.reason.clone()).collect();
    assert_eq!(reasons, (0..50).map(|i| format!("burst-{i:02}")).collect::<BTreeSet<_>>());
    let times: Vec<u64> = stored.iter().map(|a| a.received_at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

async fn backups(r: &dyn Registry) {
    let b = |device: &str, component: Component, version: &str, length: u64, created_at: u64| BackupRecord {
        device_id: dev(device),
        component,
        version: ver(version),
        length,
        sha256: format!("{length:064x}"),
        created_at,
    };
    ok(r.add_backup(&b("bk-a", Component::Main, "1.0.0", 10, 100)).await, "backup a/main");
    ok(r.add_backup(&b("bk-a", Component::Agent, "1.0.0", 11, 200)).await, "backup a/agent");
    ok(r.add_backup(&b("bk-b", Component::Main, "1.0.0", 12, 300)).await, "backup b/main");
    ok(r.add_backup(&b("bk-a", Component::Main, "1.0.0", 20, 400)).await, "replace backup a/main");
    let got = ok(r.backups(&dev("bk-a")).await, "backups(bk-a)");
    assert_eq!(
        got,
        [b("bk-a", Component::Main, "1.0.0", 20, 400), b("bk-a", Component::Agent, "1.0.0", 11, 200)],
        "same device+component+version replaces; newest first"
    );
    assert_eq!(ok(r.backups(&dev("bk-b")).await, "backups(bk-b)"), [b("bk-b", Component::Main, "1.0.0", 12, 300)]);
    assert!(ok(r.backups(&dev("bk-none")).await, "backups(none)").is_empty());
}

async fn metadata(r: &dyn Registry) {
    assert_eq!(ok(r.metadata("root.json").await, "metadata root.json"), None);
    let binary: Vec<u8> = (0..=255u8).collect();
    ok(
        r.put_metadata(&[
            ("root.json".into(), b"{\"v\":1}".to_vec()),
            ("1.root.json".into(), binary.clone()),
            ("timestamp.json".into(), b"ts-1".to_vec()),
        ])
        .await,
        "put 3 metadata files",
    );
    assert_eq!(
        ok(r.metadata("1.root.json").await, "metadata 1.root.json"),
        Some(binary.clone()),
        "bytes round-trip exactly"
    );
    ok(
        r.put_metadata(&[
            ("timestamp.json".into(), b"ts-2".to_vec()),
            ("2.snapshot.json".into(), b"snap".to_vec()),
            ("2.snapshot.json".into(), b"snap-last".to_vec()),
        ])
        .await,
        "replace and add metadata",
    );
    ok(r.put_metadata(&[]).await, "put no metadata");
    let all = ok(r.all_metadata().await, "all_metadata");
    let want: Vec<(String, Vec<u8>)> = vec![
        ("1.root.json".into(), binary),
        ("2.snapshot.json".into(), b"snap-last".to_vec()),
        ("root.json".into(), b"{\"v\":1}".to_vec()),
        ("timestamp.json".into(), b"ts-2".to_vec()),
    ];
    assert_eq!(all, want, "all metadata by name; same name replaced; a repeated name in one call keeps the last");
}

async fn metadata_concurrent(r: &dyn Registry) {
    let writes: Vec<Vec<(String, Vec<u8>)>> = (0..10u8)
        .map(|i| {
            let mut files: Vec<(String, Vec<u8>)> =
                ["a.json", "b.json", "c.json", "d.json"].iter().map(|n| (n.to_string(), vec![i; 8])).collect();
            if i % 2 == 1 {
                files.reverse();
            }
            files
        })
        .collect();
    let results = join_all(writes.iter().map(|files| r.put_metadata(files))).await;
    for (i, res) in results.into_iter().enumerate() {
        ok(res, &format!("concurrent put_metadata {i}"));
    }
    let mut values = BTreeSet::new();
    for name in ["a.json", "b.json", "c.json", "d.json"] {
        values.insert(ok(r.metadata(name).await, name).expect("written"));
    }
    assert_eq!(
        values.len(),
        1,
        "each put_metadata is atomic: all four files come from the same (last) call, got {values:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Artifact store
// ---------------------------------------------------------------------------------------------

/// Runs the artifact-store suite on an empty store; panics name the check (backend `artifact store`).
pub async fn artifact_store(s: &dyn ArtifactStore) {
    artifact_store_on("artifact store", s).await;
}

/// Runs the artifact-store suite on an empty store; panics name the check and `backend`.
pub async fn artifact_store_on(backend: &str, s: &dyn ArtifactStore) {
    let n = "artifact store";
    check(n, backend, "starts_empty", store_starts_empty(s)).await;
    check(n, backend, "put_then_get_returns_the_bytes", put_get(s)).await;
    check(n, backend, "put_replaces_the_whole_object", put_replaces(s)).await;
    check(n, backend, "empty_object_round_trips", empty_object(s)).await;
    check(n, backend, "absent_object_is_not_found_and_head_is_none", absent(s)).await;
    check(n, backend, "get_range_returns_exactly_the_requested_bytes", ranges(s)).await;
    check(n, backend, "range_outside_the_object_is_invalid_range", invalid_ranges(s)).await;
    check(n, backend, "head_reports_size_and_a_stable_etag", head_stable(s)).await;
    check(n, backend, "etag_changes_when_content_changes", etag_changes(s)).await;
    check(n, backend, "list_returns_sorted_keys_under_a_prefix", listing(s)).await;
    check(n, backend, "delete_removes_and_deleting_an_absent_object_is_ok", deleting(s)).await;
    check(n, backend, "invalid_keys_are_config_errors", invalid_keys(s)).await;
    check(n, backend, "concurrent_puts_to_one_key_leave_one_whole_object", concurrent_same_key(s)).await;
    check(n, backend, "concurrent_puts_to_distinct_keys_all_land", concurrent_distinct_keys(s)).await;
    check(n, backend, "put_file_stores_a_small_file", put_small_file(s)).await;
    check(n, backend, "put_file_streams_a_20_mb_file", put_large_file(s)).await;
}

/// Deterministic pseudo-random bytes (xorshift), so multipart parts all differ.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    // Bijective mix of the seed (distinct seeds give distinct streams); xorshift needs x != 0.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019).max(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A scratch file removed when dropped (also when a check panics).
struct ScratchFile(PathBuf);

impl ScratchFile {
    async fn with(contents: &[u8]) -> ScratchFile {
        let path = std::env::temp_dir().join(crate::testing::unique_name("ferry_conformance_upload"));
        tokio::fs::write(&path, contents)
            .await
            .unwrap_or_else(|e| panic!("writing scratch file {}: {e}", path.display()));
        ScratchFile(path)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn store_starts_empty(s: &dyn ArtifactStore) {
    let keys = ok(s.list("").await, "list all");
    assert!(keys.is_empty(), "the artifact-store suite needs an empty store, found {keys:?}");
}

async fn put_get(s: &dyn ArtifactStore) {
    for (key, body) in [
        ("main/1.2.0.ferry", Bytes::from_static(b"artifact one")),
        ("main/0a1b.1.2.0+build.7.ferry", Bytes::from(noise(70_000, 1))),
        ("backups/dev-1/main/1.0.0", Bytes::from_static(b"\x00\xff backup")),
    ] {
        ok(s.put(key, body.clone()).await, &format!("put {key}"));
        assert_eq!(ok(s.get(key).await, &format!("get {key}")), body, "{key} reads back as put");
    }
}

async fn put_replaces(s: &dyn ArtifactStore) {
    ok(s.put("replace/x", Bytes::from(vec![b'L'; 10_000])).await, "put long");
    ok(s.put("replace/x", Bytes::from_static(b"short")).await, "put short");
    assert_eq!(ok(s.get("replace/x").await, "get replaced").as_ref(), b"short", "no tail of the old object may remain");
    assert_eq!(ok(s.head("replace/x").await, "head replaced").map(|i| i.size), Some(5));
}

async fn empty_object(s: &dyn ArtifactStore) {
    ok(s.put("empty/zero", Bytes::new()).await, "put empty");
    assert!(ok(s.get("empty/zero").await, "get empty").is_empty());
    assert_eq!(ok(s.head("empty/zero").await, "head empty").map(|i| i.size), Some(0));
    assert!(ok(s.get_range("empty/zero", 0..0).await, "empty range of empty object").is_empty());
    let res = s.get_range("empty/zero", 0..1).await;
    assert!(matches!(res, Err(StoreError::InvalidRange { size: 0, .. })), "0..1 of an empty object gave {res:?}");
}

async fn absent(s: &dyn ArtifactStore) {
    let res = s.get("nope/absent").await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "get of an absent object gave {res:?}");
    let res = s.get_range("nope/absent", 0..4).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "get_range of an absent object gave {res:?}");
    let res = s.get_range("nope/absent", 0..0).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "empty get_range of an absent object gave {res:?}");
    assert_eq!(ok(s.head("nope/absent").await, "head absent"), None);
}

async fn ranges(s: &dyn ArtifactStore) {
    let body = noise(100_000, 7);
    ok(s.put("range/obj", Bytes::from(body.clone())).await, "put range/obj");
    for range in [0..100_000u64, 0..1, 99_999..100_000, 1_000..65_536, 65_536..65_537, 500..500, 100_000..100_000] {
        let got = ok(s.get_range("range/obj", range.clone()).await, &format!("get_range {range:?}"));
        assert_eq!(got.as_ref(), &body[range.start as usize..range.end as usize], "bytes {range:?}");
    }
}

async fn invalid_ranges(s: &dyn ArtifactStore) {
    // range/obj is 100 000 bytes (from the previous check; put again to stand alone).
    ok(s.put("range/obj", Bytes::from(noise(100_000, 7))).await, "put range/obj");
    #[allow(clippy::reversed_empty_ranges)]
    let bad = [99_990..100_001u64, 100_000..100_001, 200_000..200_010, 10..5, 100_001..100_001];
    for range in bad {
        match s.get_range("range/obj", range.clone()).await {
            Err(StoreError::InvalidRange { key, start, end, size }) => {
                assert_eq!(
                    (key.as_str(), start, end, size),
                    ("range/obj", range.start, range.end, 100_000),
                    "fields of InvalidRange for {range:?}"
                );
            }
            other => panic!("get_range {range:?} of a 100000-byte object gave {other:?}, expected InvalidRange"),
        }
    }
}

async fn head_stable(s: &dyn ArtifactStore) {
    ok(s.put("head/obj", Bytes::from_static(b"0123456789")).await, "put head/obj");
    let a = ok(s.head("head/obj").await, "head").expect("head/obj exists");
    let b = ok(s.head("head/obj").await, "head again").expect("head/obj exists");
    assert_eq!(a.size, 10);
    assert!(!a.etag.is_empty(), "etag is empty");
    assert!(!a.etag.starts_with('"') && !a.etag.starts_with("W/"), "etag {:?} must be given without quotes", a.etag);
    assert_eq!(a, b, "two heads of an unchanged object agree");
    let _ = ok(s.get("head/obj").await, "get");
    assert_eq!(ok(s.head("head/obj").await, "head after get"), Some(a), "reading does not change the etag");
}

async fn etag_changes(s: &dyn ArtifactStore) {
    // Same size every time and back-to-back, so neither size nor a coarse clock tells versions apart.
    let mut seen: Vec<String> = Vec::new();
    for i in 0..12u8 {
        ok(s.put("etag/obj", Bytes::from(vec![b'a' + i; 4096])).await, &format!("put version {i}"));
        let info = ok(s.head("etag/obj").await, "head").expect("etag/obj exists");
        assert_eq!(info.size, 4096);
        assert!(
            !seen.contains(&info.etag),
            "version {i} reuses etag {} of an earlier content (all: {seen:?})",
            info.etag
        );
        seen.push(info.etag);
    }
}

async fn listing(s: &dyn ArtifactStore) {
    for key in ["list/b/2", "list/a/1", "list/a/10", "list/a-sibling", "listing/x"] {
        ok(s.put(key, Bytes::from_static(b"x")).await, &format!("put {key}"));
    }
    assert_eq!(ok(s.list("list/").await, "list list/"), ["list/a-sibling", "list/a/1", "list/a/10", "list/b/2"]);
    assert_eq!(ok(s.list("list/a/").await, "list list/a/"), ["list/a/1", "list/a/10"]);
    assert_eq!(
        ok(s.list("list/a").await, "list list/a"),
        ["list/a-sibling", "list/a/1", "list/a/10"],
        "a prefix is a string prefix"
    );
    assert_eq!(ok(s.list("list/a/1").await, "list list/a/1"), ["list/a/1", "list/a/10"]);
    assert!(ok(s.list("nothing/").await, "list nothing/").is_empty());
    assert!(ok(s.list("nothing/deeper/").await, "list nothing/deeper/").is_empty());
    let all = ok(s.list("").await, "list all");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "list('') is sorted");
    for key in ["list/b/2", "listing/x", "main/1.2.0.ferry", "range/obj", "empty/zero"] {
        assert!(all.iter().any(|k| k == key), "{key} missing from list('') = {all:?}");
    }
}

async fn deleting(s: &dyn ArtifactStore) {
    ok(s.put("del/obj", Bytes::from_static(b"bye")).await, "put del/obj");
    ok(s.delete("del/obj").await, "delete del/obj");
    assert_eq!(ok(s.head("del/obj").await, "head deleted"), None);
    assert!(matches!(s.get("del/obj").await, Err(StoreError::NotFound(_))), "get after delete");
    assert!(!ok(s.list("del/").await, "list del/").contains(&"del/obj".to_string()));
    ok(s.delete("del/obj").await, "delete again");
    ok(s.delete("del/never/existed").await, "delete never existed");
}

async fn invalid_keys(s: &dyn ArtifactStore) {
    for key in ["", "/abs", "a//b", "a/", "../escape", "a/../b", "a/./b", "back\\slash", "sp ace", "hash#1"] {
        let cfg = |what: &str, res: Result<(), StoreError>| {
            assert!(matches!(res, Err(StoreError::Config(_))), "{what} with key {key:?} gave {res:?}, expected Config");
        };
        cfg("put", s.put(key, Bytes::from_static(b"x")).await);
        cfg("get", s.get(key).await.map(|_| ()));
        cfg("get_range", s.get_range(key, 0..1).await.map(|_| ()));
        cfg("head", s.head(key).await.map(|_| ()));
        cfg("delete", s.delete(key).await);
    }
    let res = s.list("/abs").await;
    assert!(matches!(res, Err(StoreError::Config(_))), "list('/abs') gave {res:?}");
    let res = s.list("../").await;
    assert!(matches!(res, Err(StoreError::Config(_))), "list('../') gave {res:?}");
}

async fn concurrent_same_key(s: &dyn ArtifactStore) {
    let bodies: Vec<Bytes> = (0..8u64).map(|i| Bytes::from(noise(64 * 1024, 100 + i))).collect();
    let results = join_all(bodies.iter().map(|b| s.put("race/obj", b.clone()))).await;
    for (i, res) in results.into_iter().enumerate() {
        ok(res, &format!("concurrent put {i}"));
    }
    let got = ok(s.get("race/obj").await, "get race/obj");
    assert!(
        bodies.contains(&got),
        "after racing puts the object must equal one of them whole ({} bytes read)",
        got.len()
    );
    assert_eq!(ok(s.list("race/").await, "list race/"), ["race/obj"], "no staging leftovers are listed");
}

async fn concurrent_distinct_keys(s: &dyn ArtifactStore) {
    let keys: Vec<String> = (0..16).map(|i| format!("many/{i:02}")).collect();
    let results = join_all(keys.iter().map(|k| s.put(k, Bytes::from(k.clone().into_bytes())))).await;
    for (k, res) in keys.iter().zip(results) {
        ok(res, &format!("concurrent put {k}"));
    }
    assert_eq!(ok(s.list("many/").await, "list many/"), keys);
    for k in &keys {
        assert_eq!(ok(s.get(k).await, k).as_ref(), k.as_bytes());
    }
}

async fn put_small_file(s: &dyn ArtifactStore) {
    let body = noise(1_500, 3);
    let file = ScratchFile::with(&body).await;
    ok(s.put_file("files/small", &file.0).await, "put_file small");
    assert_eq!(ok(s.get("files/small").await, "get small").as_ref(), &body[..]);
    let res = s.put_file("files/missing", &file.0.with_extension("does-not-exist")).await;
    assert!(res.is_err(), "put_file of a missing file must fail");
    assert_eq!(ok(s.head("files/missing").await, "head missing"), None, "a failed put_file leaves no object");
}

async fn put_large_file(s: &dyn ArtifactStore) {
    const LEN: usize = 20 * 1024 * 1024 + 12_345;
    let body = noise(LEN, 42);
    let file = ScratchFile::with(&body).await;
    ok(s.put_file("files/large.ferry", &file.0).await, "put_file 20 MB");
    let info = ok(s.head("files/large.ferry").await, "head large").expect("files/large.ferry exists");
    assert_eq!(info.size, LEN as u64);
    let got = ok(s.get("files/large.ferry").await, "get large");
    assert!(
        got.len() == LEN && got.as_ref() == &body[..],
        "the 20 MB object differs from the file ({} bytes read)",
        got.len()
    );
    let boundary = 8 * 1024 * 1024u64;
    for range in [boundary - 10..boundary + 10, LEN as u64 - 100..LEN as u64, 0..1 << 20] {
        let part = ok(s.get_range("files/large.ferry", range.clone()).await, &format!("range {range:?}"));
        assert_eq!(
            part.as_ref(),
            &body[range.start as usize..range.end as usize],
            "bytes {range:?} of the 20 MB object"
        );
    }
    let other = noise(LEN, 43);
    let file2 = ScratchFile::with(&other).await;
    ok(s.put_file("files/large.ferry", &file2.0).await, "put_file replacement");
    let info2 = ok(s.head("files/large.ferry").await, "head replaced").expect("exists");
    assert_ne!(info.etag, info2.etag, "replacing the 20 MB content changes the etag");
    assert_eq!(ok(s.get_range("files/large.ferry", 0..64).await, "range of replacement").as_ref(), &other[..64]);
}
