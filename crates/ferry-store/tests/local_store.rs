//! Local artifact store: the conformance suite, URL forms, persistence and what it leaves on disk.

use bytes::Bytes;
use ferry_store::{ArtifactStore, LocalArtifactStore, StoreError, conformance, open_artifact_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_passes_the_artifact_store_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::new(dir.path().join("created/on/demand")).expect("open local store");
    conformance::artifact_store_on("local", &store).await;
}

#[tokio::test]
async fn file_url_and_plain_path_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("artifacts");
    let by_url = open_artifact_store(&format!("file://{}", root.display())).await.expect("file:// URL");
    by_url.put("main/1.0.0.ferry", Bytes::from_static(b"one")).await.unwrap();
    let by_path = open_artifact_store(root.to_str().unwrap()).await.expect("plain path");
    assert_eq!(
        by_path.get("main/1.0.0.ferry").await.unwrap().as_ref(),
        b"one",
        "data visible through both and persisted"
    );
    assert_eq!(std::fs::read(root.join("main/1.0.0.ferry")).unwrap(), b"one", "objects are plain files ROOT/KEY");
}

#[tokio::test]
async fn writes_leave_no_staging_files_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::new(dir.path()).unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, vec![7u8; 100_000]).unwrap();
    for i in 0..5u8 {
        store.put("a/b", Bytes::from(vec![i; 1000])).await.unwrap();
        store.put_file("a/c", &src).await.unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "c"], "only the objects remain in the directory");
}

#[tokio::test]
async fn a_failed_put_file_keeps_the_previous_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::new(dir.path().join("root")).unwrap();
    store.put("k", Bytes::from_static(b"old")).await.unwrap();
    let err = store.put_file("k", &dir.path().join("missing.bin")).await.expect_err("missing source file");
    assert!(matches!(err, StoreError::Object(_)), "{err}");
    assert!(err.to_string().contains("missing.bin"), "the error names the source file: {err}");
    assert_eq!(store.get("k").await.unwrap().as_ref(), b"old");
}

#[tokio::test]
async fn a_file_in_place_of_the_root_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = LocalArtifactStore::new(&file).expect_err("a file used as the root");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[tokio::test]
async fn a_rewrite_gets_a_later_mtime_even_when_the_clock_lags_the_old_file() {
    // Simulates a coarse or stepped-back clock: the current file claims a time in the future.
    // The rewrite must still get a strictly later mtime, so (inode, mtime, size) etags differ.
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::new(dir.path()).unwrap();
    store.put("k", Bytes::from_static(b"aaaa")).await.unwrap();
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(dir.path().join("k")).unwrap().set_modified(future).unwrap();
    let before = store.head("k").await.unwrap().unwrap();
    store.put("k", Bytes::from_static(b"bbbb")).await.unwrap();
    let mtime = std::fs::metadata(dir.path().join("k")).unwrap().modified().unwrap();
    assert!(mtime > future, "the rewrite's mtime {mtime:?} is not after the replaced file's {future:?}");
    assert_ne!(store.head("k").await.unwrap().unwrap().etag, before.etag);
}
