//! S3 artifact store against a real S3-compatible server (`FERRY_TEST_S3_ENDPOINT`, default
//! `http://127.0.0.1:9000`; e.g. `pip install 'moto[server]==5.2.5'` then
//! `moto_server -H 127.0.0.1 -p 9000`). Each test creates its own bucket. Without a server
//! the tests print `SKIPPED` (or fail when `FERRY_REQUIRE_SERVICES=1`).

use bytes::Bytes;
use ferry_store::testing;
use ferry_store::{ArtifactStore, S3ArtifactStore, StoreError, conformance, open_artifact_store};

/// A fresh bucket on the test server, or `None` (after the skip notice) if there is none.
async fn bucket_or_skip() -> Option<(String, String)> {
    let endpoint = testing::s3_endpoint();
    let up = testing::tcp_reachable(&endpoint).await;
    if !testing::require_service("S3-compatible server", &endpoint, up) {
        return None;
    }
    let bucket = testing::unique_name("ferry-test").replace('_', "-");
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket} at {endpoint}: {e}"));
    let status = response.status();
    assert!(
        status.is_success(),
        "creating bucket {bucket} at {endpoint}: HTTP {status}: {}",
        response.text().await.unwrap_or_default()
    );
    Some((endpoint, bucket))
}

fn store_url(endpoint: &str, bucket: &str) -> String {
    format!(
        "s3://{bucket}?endpoint={endpoint}&region=us-east-1&allow_http=true&access_key_id=test&secret_access_key=test"
    )
}

/// Empties and removes the bucket.
async fn remove_bucket(store: &dyn ArtifactStore, endpoint: &str, bucket: &str) {
    for key in store.list("").await.expect("list for cleanup") {
        store.delete(&key).await.expect("delete for cleanup");
    }
    let status = reqwest::Client::new()
        .delete(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .map(|r| r.status());
    assert!(matches!(status, Ok(s) if s.is_success()), "removing bucket {bucket}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_artifact_store_conformance_suite() {
    let Some((endpoint, bucket)) = bucket_or_skip().await else { return };
    let store = open_artifact_store(&store_url(&endpoint, &bucket)).await.expect("open s3 store from its URL");
    conformance::artifact_store_on("s3", &*store).await;
    remove_bucket(&*store, &endpoint, &bucket).await;
}

#[tokio::test]
async fn objects_written_by_one_instance_are_seen_by_another() {
    let Some((endpoint, bucket)) = bucket_or_skip().await else { return };
    let writer = S3ArtifactStore::from_url(&store_url(&endpoint, &bucket)).unwrap();
    let reader = S3ArtifactStore::from_url(&store_url(&endpoint, &bucket)).unwrap();
    writer.put("main/1.0.0.ferry", Bytes::from_static(b"payload")).await.unwrap();
    assert_eq!(reader.get("main/1.0.0.ferry").await.unwrap().as_ref(), b"payload");
    assert_eq!(reader.list("main/").await.unwrap(), ["main/1.0.0.ferry"]);
    let (a, b) = (
        writer.head("main/1.0.0.ferry").await.unwrap().unwrap(),
        reader.head("main/1.0.0.ferry").await.unwrap().unwrap(),
    );
    assert_eq!(a, b, "both instances report the same size and etag");
    assert!(!a.etag.contains('"'), "etag without quotes: {}", a.etag);
    remove_bucket(&writer, &endpoint, &bucket).await;
}

#[tokio::test]
async fn writing_to_a_missing_bucket_fails_naming_the_bucket() {
    let Some((endpoint, bucket)) = bucket_or_skip().await else { return };
    let missing = format!("{bucket}-missing");
    let store = S3ArtifactStore::from_url(&store_url(&endpoint, &missing)).unwrap();
    let err = store.put("k", Bytes::from_static(b"x")).await.expect_err("put into a bucket that does not exist");
    assert!(matches!(err, StoreError::Object(_) | StoreError::NotFound(_)), "{err}");
    assert!(err.to_string().contains(&missing), "the error names the bucket: {err}");
    let ok_store = S3ArtifactStore::from_url(&store_url(&endpoint, &bucket)).unwrap();
    remove_bucket(&ok_store, &endpoint, &bucket).await;
}

#[tokio::test]
async fn missing_credentials_are_a_config_error_unless_the_environment_has_them() {
    let has_env = std::env::var("AWS_ACCESS_KEY_ID").is_ok() && std::env::var("AWS_SECRET_ACCESS_KEY").is_ok();
    let res = S3ArtifactStore::from_url("s3://bucket?endpoint=http://127.0.0.1:9000&allow_http=true");
    if has_env {
        assert!(res.is_ok(), "credentials from the environment: {:?}", res.err());
    } else {
        let err = res.expect_err("no credentials anywhere");
        assert!(matches!(err, StoreError::Config(_)), "{err}");
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }
}
