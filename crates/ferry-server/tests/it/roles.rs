//! Split deployment: a query server and a file server sharing one SQLite registry.

use crate::common::*;
use ferry_artifact::keys::SigningKey;
use ferry_core::Component;
use ferry_core::api::CheckinResponse;
use ferry_server::Role;
use reqwest::StatusCode;

#[tokio::test]
async fn files_role_serves_only_files() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let (query_listener, files_listener) = (listener().await, listener().await);
    let files_url = format!("http://{}", files_listener.local_addr().unwrap());

    let mut query_config = config_in(tmp.path(), &key);
    shared_storage(&mut query_config, tmp.path(), Role::Query);
    query_config.public_url = Some(format!("http://{}", query_listener.local_addr().unwrap()));
    query_config.files_url = Some(files_url.clone());
    let query = run(query_config, query_listener, key.clone(), tmp.path()).await;

    let mut files_config = config_in(tmp.path(), &key);
    shared_storage(&mut files_config, tmp.path(), Role::Files);
    files_config.data_dir = tmp.path().join("files-data");
    let files = run(files_config, files_listener, key, tmp.path()).await;

    let token = query.enroll("dev-1").await;
    let bytes = query.release(Component::Main, "1.2.0", 3000).await;
    let CheckinResponse::Update { offer } = query.checkin(&token, "dev-1", "1.0.0", "1.0.0").await
    else {
        panic!("no offer")
    };
    assert_eq!(offer.file_base_url, format!("{files_url}/files"));

    // The file server knows the query server's device tokens and serves the artifact.
    let url = format!("{}/{}", offer.file_base_url, offer.target_name);
    let resp = files
        .client
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes[..1000]);
    assert_eq!(
        files.client.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The file server has no device, TUF or management API ...
    for path in ["/api/v1/checkin", "/api/v1/enroll"] {
        let resp = files
            .client
            .post(format!("{}{path}", files.url))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(TestServer::error_of(resp).await.contains("role `files`"));
    }
    assert_eq!(
        files
            .client
            .get(format!("{}/tuf/root.json", files.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        files.op_get("/api/v1/devices").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        files
            .client
            .get(format!("{}/healthz", files.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // ... and the query server has no file service.
    let resp = query
        .client
        .get(format!("{}/files/main/1.2.0.ferry", query.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(TestServer::error_of(resp).await.contains("role `query`"));
}

#[tokio::test]
async fn serve_defaults_public_url_to_the_listener_and_stops_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let listener = listener().await;
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = config_in(tmp.path(), &key);
    assert!(config.public_url.is_none());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ferry_server::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "server did not come up at {url}");
    let server = TestServer {
        url: url.clone(),
        client,
        release_key: key,
        dir: tmp.path().to_path_buf(),
        _shutdown: tokio::sync::oneshot::channel().0,
    };
    let token = server.enroll("dev-1").await;
    server.release(Component::Main, "1.1.0", 100).await;
    let CheckinResponse::Update { offer } = server.checkin(&token, "dev-1", "1.0.0", "1.0.0").await
    else {
        panic!("no offer")
    };
    assert_eq!(offer.metadata_base_url, format!("{url}/tuf"));
    assert_eq!(offer.file_base_url, format!("{url}/files"));

    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("serve returns after shutdown");
    result.unwrap().unwrap();
}
