//! PostgreSQL registry against a real server (`FERRY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in its own fresh schema, so
//! parallel tests and test processes never collide. Without a server the tests print
//! `SKIPPED` (or fail when `FERRY_REQUIRE_SERVICES=1`).

use ferry_core::api::{Outcome, ReleaseRecord, UpgradeReport};
use ferry_core::{Component, DeviceId, Version};
use ferry_store::testing::{self, PostgresSchema};
use ferry_store::{PostgresRegistry, Registry, conformance, open_registry};
use futures::future::join_all;
use std::collections::BTreeSet;

async fn schema_or_skip() -> Option<PostgresSchema> {
    let base = testing::postgres_url();
    let up = testing::postgres_reachable(&base).await;
    if !testing::require_service("PostgreSQL", &base, up) {
        return None;
    }
    Some(PostgresSchema::create(&base).await.expect("create a test schema"))
}

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_registry_conformance_suite() {
    let Some(schema) = schema_or_skip().await else { return };
    let registry = open_registry(schema.url()).await.expect("open postgres registry from its URL");
    conformance::registry_on("postgres", &*registry).await;
    drop(registry);
    schema.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_server_instances_share_one_database() {
    let Some(schema) = schema_or_skip().await else { return };
    // Instances start together: migrations serialize on sqlx's advisory lock.
    let opened = join_all((0..3).map(|_| PostgresRegistry::connect(schema.url()))).await;
    let instances: Vec<PostgresRegistry> = opened.into_iter().map(|r| r.expect("connect instance")).collect();
    let release = ReleaseRecord {
        component: Component::Main,
        version: Version::new(3, 0, 0),
        device_types: vec![],
        target_name: "main/3.0.0.ferry".into(),
        length: 1,
        sha256: "0".repeat(64),
        blacklist: vec![],
        go_live: None,
        created_at: 1,
        deltas: vec![],
        halted: None,
    };
    // The same release put by every instance at once: one wins, the others see Conflict.
    let puts = join_all(instances.iter().map(|r| r.put_release(&release))).await;
    assert_eq!(puts.iter().filter(|p| p.is_ok()).count(), 1, "exactly one instance registers the release: {puts:?}");
    let batches: Vec<Vec<DeviceId>> =
        (0..30).map(|i| vec![dev(&format!("d{:02}", 29 - i)), dev(&format!("d{i:02}")), dev("common")]).collect();
    let adds = join_all(
        batches
            .iter()
            .enumerate()
            .map(|(i, b)| instances[i % 3].add_to_blacklist(Component::Main, &release.version, b)),
    )
    .await;
    for a in adds {
        a.expect("concurrent blacklist add across instances");
    }
    let got = instances[0].release(Component::Main, &release.version).await.unwrap().unwrap();
    assert_eq!(got.blacklist.len(), 31, "30 devices plus 'common', from 3 instances at once");
    let report = UpgradeReport {
        device_id: dev("many"),
        component: Component::Agent,
        from_version: Version::new(1, 0, 0),
        to_version: Version::new(1, 0, 1),
        outcome: Outcome::Failure,
        reason: "health check failed".into(),
        log_tail: vec!["x".into()],
        bytes_downloaded: 0,
        rolled_back: true,
    };
    let ids = join_all((0..60).map(|i| instances[i % 3].add_report(&report, i as u64))).await;
    let ids: BTreeSet<i64> = ids.into_iter().map(|r| r.expect("concurrent add_report")).collect();
    assert_eq!(ids.len(), 60);
    assert_eq!(instances[1].reports(Some(&dev("many")), 100).await.unwrap().len(), 60);
    for r in &instances {
        r.close().await;
    }
    schema.drop_schema().await.unwrap();
}

#[tokio::test]
async fn reconnecting_keeps_data_and_reapplies_no_migration() {
    let Some(schema) = schema_or_skip().await else { return };
    {
        let r = PostgresRegistry::connect(schema.url()).await.unwrap();
        r.enroll_device(&dev("persist"), "gw", "tok-p", 1).await.unwrap();
        r.close().await;
    }
    let r = PostgresRegistry::connect(schema.url()).await.expect("second connect with migrations already applied");
    assert_eq!(r.device_by_token("tok-p").await.unwrap(), Some(dev("persist")));
    assert!(!r.location().contains("password"), "location is safe to print");
    r.close().await;
    schema.drop_schema().await.unwrap();
}

#[tokio::test]
async fn schemas_isolate_tests_from_each_other() {
    let Some(a) = schema_or_skip().await else { return };
    let b = PostgresSchema::create(&testing::postgres_url()).await.unwrap();
    assert_ne!(a.name(), b.name());
    let ra = PostgresRegistry::connect(a.url()).await.unwrap();
    let rb = PostgresRegistry::connect(b.url()).await.unwrap();
    ra.enroll_device(&dev("only-in-a"), "gw", "tok-a", 1).await.unwrap();
    assert!(rb.devices().await.unwrap().is_empty(), "schema b sees nothing of schema a");
    ra.close().await;
    rb.close().await;
    a.drop_schema().await.unwrap();
    b.drop_schema().await.unwrap();
}
