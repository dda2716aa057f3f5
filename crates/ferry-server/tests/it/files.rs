//! The file service: whole bodies, ranges, validators, authentication.

use crate::common::*;
use ferry_core::Component;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};

async fn setup() -> (Fixture, String, Vec<u8>) {
    let f = start().await;
    let token = f.server.enroll("dev-1").await;
    let bytes = f.server.release(Component::Main, "1.2.0", 10_000).await;
    (f, token, bytes)
}

#[tokio::test]
async fn whole_artifact_is_served_with_validators() {
    let (f, token, bytes) = setup().await;
    let s = &f.server;
    let resp = s
        .client
        .get(format!("{}/files/main/1.2.0.ferry", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[ACCEPT_RANGES], "bytes");
    assert_eq!(
        resp.headers()[ETAG],
        format!("\"{}\"", sha256_hex(&bytes)).as_str()
    );
    assert_eq!(
        resp.headers()[CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);

    let head = s
        .client
        .head(format!("{}/files/main/1.2.0.ferry", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    assert_eq!(head.headers()[ACCEPT_RANGES], "bytes");
    assert!(head.bytes().await.unwrap().is_empty());

    let hashed = format!("{}/files/main/{}.1.2.0.ferry", s.url, sha256_hex(&bytes));
    let resp = s
        .client
        .get(hashed)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);

    let wrong_hash = format!("{}/files/main/{}.1.2.0.ferry", s.url, "0".repeat(64));
    assert_eq!(
        s.client
            .get(wrong_hash)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let resp = s
        .client
        .get(format!("{}/files/main/9.9.9.ferry", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        TestServer::error_of(resp)
            .await
            .contains("main/9.9.9.ferry")
    );
}

#[tokio::test]
async fn files_require_a_device_token_and_never_expose_backups() {
    let (f, token, _) = setup().await;
    let s = &f.server;
    let anonymous = s
        .client
        .get(format!("{}/files/main/1.2.0.ferry", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let put = s
        .client
        .put(format!("{}/api/v1/backups/main/1.0.0", s.url))
        .bearer_auth(&token)
        .body("secret")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let other = s.enroll("dev-2").await;
    let resp = s
        .client
        .get(format!("{}/files/backups/dev-1/main/1.0.0", s.url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn range_requests_return_206_with_content_range() {
    let (f, token, bytes) = setup().await;
    let s = &f.server;
    let url = format!("{}/files/main/1.2.0.ferry", s.url);
    let len = bytes.len();
    let get = |range: &str| {
        s.client
            .get(&url)
            .bearer_auth(&token)
            .header(RANGE, range)
            .send()
    };

    let resp = get("bytes=0-4095").await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()[CONTENT_RANGE],
        format!("bytes 0-4095/{len}").as_str()
    );
    assert_eq!(resp.headers()[CONTENT_LENGTH], "4096");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes[..4096]);

    let resp = get(&format!("bytes={}-", len - 100)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()[CONTENT_RANGE],
        format!("bytes {}-{}/{len}", len - 100, len - 1).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes[len - 100..]);

    let resp = get("bytes=-10").await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes[len - 10..]);

    // Segments fetched one by one reassemble the artifact exactly.
    let mut joined = Vec::new();
    for seg in ferry_core::segments::remaining(len as u64, 0, 3000) {
        let resp = get(&seg.range_header()).await.unwrap();
        ferry_core::segments::check_content_range(
            resp.headers()[CONTENT_RANGE].to_str().unwrap(),
            seg,
            len as u64,
        )
        .unwrap();
        joined.extend_from_slice(&resp.bytes().await.unwrap());
    }
    assert_eq!(joined, bytes);
}

#[tokio::test]
async fn unsatisfiable_range_returns_416() {
    let (f, token, bytes) = setup().await;
    let s = &f.server;
    let url = format!("{}/files/main/1.2.0.ferry", s.url);
    for range in [
        format!("bytes={}-", bytes.len()),
        "bytes=500-100".to_string(),
    ] {
        let resp = s
            .client
            .get(&url)
            .bearer_auth(&token)
            .header(RANGE, &range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            resp.headers()[CONTENT_RANGE],
            format!("bytes */{}", bytes.len()).as_str()
        );
        assert!(
            TestServer::error_of(resp)
                .await
                .contains(&format!("{} bytes", bytes.len()))
        );
    }
}

#[tokio::test]
async fn if_range_with_stale_etag_returns_full_body() {
    let (f, token, bytes) = setup().await;
    let s = &f.server;
    let url = format!("{}/files/main/1.2.0.ferry", s.url);
    let etag = format!("\"{}\"", sha256_hex(&bytes));

    let stale = s
        .client
        .get(&url)
        .bearer_auth(&token)
        .header(RANGE, "bytes=100-199")
        .header(IF_RANGE, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(stale.headers().get(CONTENT_RANGE).is_none());
    assert_eq!(stale.bytes().await.unwrap().to_vec(), bytes);

    let fresh = s
        .client
        .get(&url)
        .bearer_auth(&token)
        .header(RANGE, "bytes=100-199")
        .header(IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(fresh.bytes().await.unwrap().to_vec(), bytes[100..200]);
}
