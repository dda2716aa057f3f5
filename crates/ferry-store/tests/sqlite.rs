//! SQLite registry: the conformance suite on a file database and in memory, plus URL forms,
//! persistence, WAL mode and two registries writing one file at once.

use ferry_core::api::{Outcome, UpgradeReport};
use ferry_core::{Component, DeviceId, Version};
use ferry_store::{Registry, SqliteRegistry, StoreError, conformance, open_registry};
use futures::future::join_all;
use std::collections::BTreeSet;

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn report(device: &str, i: usize) -> UpgradeReport {
    UpgradeReport {
        device_id: dev(device),
        component: Component::Main,
        from_version: Version::new(1, 0, 0),
        to_version: Version::new(1, 1, 0),
        outcome: Outcome::Success,
        reason: format!("installed #{i}"),
        log_tail: vec![],
        bytes_downloaded: 10,
        rolled_back: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_database_passes_the_registry_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/yet/there/registry.db");
    let registry = SqliteRegistry::open(&path).await.expect("open sqlite file registry");
    conformance::registry_on("sqlite-file", &registry).await;
    assert!(path.is_file(), "database file created with its parent directories");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_database_passes_the_registry_conformance_suite() {
    let registry = SqliteRegistry::in_memory().await.expect("open sqlite memory registry");
    conformance::registry_on("sqlite-memory", &registry).await;
}

#[tokio::test]
async fn memory_url_opens_a_private_database_that_keeps_its_data() {
    for url in ["sqlite::memory:", "sqlite://:memory:"] {
        let a = open_registry(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let b = open_registry(url).await.unwrap();
        a.enroll_device(&dev("m1"), "t", "tok", 1).await.unwrap();
        // Idle time must not lose the single connection that holds the data.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(a.device(&dev("m1")).await.unwrap().is_some(), "{url}: data kept");
        assert!(b.device(&dev("m1")).await.unwrap().is_none(), "{url}: two memory registries are independent");
    }
}

#[tokio::test]
async fn every_file_url_form_opens_the_same_database_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reg.db");
    let abs = path.to_str().unwrap();
    {
        let r = open_registry(&format!("sqlite://{abs}")).await.expect("sqlite://ABS");
        r.enroll_device(&dev("keep-me"), "gw", "tok-keep", 5).await.unwrap();
        r.put_metadata(&[("root.json".into(), b"root".to_vec())]).await.unwrap();
    }
    for url in [format!("sqlite:{abs}"), format!("sqlite://{abs}")] {
        let r = open_registry(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            r.device_by_token("tok-keep").await.unwrap(),
            Some(dev("keep-me")),
            "{url}: device survives reopening"
        );
        assert_eq!(r.metadata("root.json").await.unwrap(), Some(b"root".to_vec()), "{url}: metadata survives");
    }
}

#[tokio::test]
async fn file_database_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let r = SqliteRegistry::open(&path).await.unwrap();
    r.enroll_device(&dev("w"), "t", "tok-w", 1).await.unwrap();
    let wal = dir.path().join("wal.db-wal");
    assert!(wal.exists(), "a WAL file {} exists while the database is open", wal.display());
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_on_one_file_write_concurrently_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteRegistry::open(&path).await.unwrap();
    let b = SqliteRegistry::open(&path).await.unwrap();
    let reports: Vec<UpgradeReport> = (0..60).map(|i| report("shared", i)).collect();
    let results = join_all(reports.iter().enumerate().map(|(i, rep)| {
        let r: &dyn Registry = if i % 2 == 0 { &a } else { &b };
        r.add_report(rep, i as u64)
    }))
    .await;
    let ids: BTreeSet<i64> = results.into_iter().map(|r| r.expect("concurrent add_report")).collect();
    assert_eq!(ids.len(), 60);
    assert_eq!(a.reports(Some(&dev("shared")), 100).await.unwrap().len(), 60);
}

#[tokio::test]
async fn a_directory_in_place_of_the_database_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteRegistry::open(dir.path()).await.expect_err("a directory opened as a database");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}
