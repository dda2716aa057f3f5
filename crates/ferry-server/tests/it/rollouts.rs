//! Staged rollouts: waves open in order as their devices succeed, and too many failures halt
//! the rollout until the operator resumes it.

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::CheckinResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn report(s: &TestServer, token: &str, device: &str, ok: bool) {
    let body = json!({"device_id": device, "component": "main", "from_version": "1.0.0", "to_version": "1.1.0",
        "outcome": if ok { "success" } else { "failure" }, "reason": if ok { "installed" } else { "health check failed" },
        "rolled_back": !ok});
    let resp = s.client.post(format!("{}/api/v1/reports", s.url)).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

async fn offered(s: &TestServer, token: &str, device: &str) -> bool {
    matches!(s.checkin(token, device, "1.0.0", "1.0.0").await, CheckinResponse::Update { offer } if offer.version == ver("1.1.0"))
}

async fn put_plan(s: &TestServer, plan: Value) -> reqwest::Response {
    s.op_put("/api/v1/releases/main/1.1.0/rollout", plan).await
}

#[tokio::test]
async fn canary_group_gets_the_release_first_and_the_rest_once_canaries_succeed() {
    let f = start().await;
    let s = &f.server;
    let mut tokens = Vec::new();
    for id in ["canary-1", "canary-2", "field-1", "field-2", "field-3"] {
        tokens.push((id, s.enroll(id).await));
    }
    for (id, _) in &tokens[..2] {
        let resp = s.op_put(&format!("/api/v1/devices/{id}/group"), json!({"group": "lab"})).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    s.release(Component::Main, "1.1.0", 100).await;
    let resp = put_plan(s, json!({"waves": [{"name": "canary", "groups": ["lab"]}], "max_failure_percent": 50, "min_attempts": 3})).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());

    let [(c1, t1), (c2, t2), (f1, tf1), (f2, tf2), (f3, tf3)] = tokens.try_into().unwrap();
    assert!(offered(s, &t1, c1).await && offered(s, &t2, c2).await, "the canary wave is open at once");
    for (id, t) in [(f1, &tf1), (f2, &tf2), (f3, &tf3)] {
        assert!(!offered(s, t, id).await, "{id} waits for the canaries");
    }
    report(s, &t1, c1, true).await;
    assert!(!offered(s, &tf1, f1).await, "one canary of two is not enough (success_percent 100)");
    report(s, &t2, c2, true).await;
    for (id, t) in [(f1, &tf1), (f2, &tf2), (f3, &tf3)] {
        assert!(offered(s, t, id).await, "{id} is offered once every canary installed it");
    }

    let status: Value = s.op_get("/api/v1/rollouts").await.json().await.unwrap();
    let waves = &status[0]["waves"];
    assert_eq!(waves[0]["name"], "canary");
    assert_eq!((waves[0]["members"].as_u64(), waves[0]["succeeded"].as_u64()), (Some(2), Some(2)));
    assert_eq!(waves[1]["name"], "(rest)");
    assert_eq!(waves[1]["members"].as_u64(), Some(3));
    assert!(waves[1]["opened_at"].is_u64(), "{status}");
}

#[tokio::test]
async fn too_many_failures_halt_the_rollout_until_the_operator_resumes_it() {
    let f = start().await;
    let s = &f.server;
    let a = s.enroll("dev-a").await;
    let b = s.enroll("dev-b").await;
    let c = s.enroll("dev-c").await;
    s.release(Component::Main, "1.1.0", 100).await;
    let resp = put_plan(s, json!({"waves": [{"name": "everyone", "success_percent": 0}], "max_failure_percent": 30, "min_attempts": 2})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(offered(s, &c, "dev-c").await);

    report(s, &a, "dev-a", false).await;
    assert!(offered(s, &c, "dev-c").await, "one failed attempt is below min_attempts");
    report(s, &b, "dev-b", false).await;
    assert!(!offered(s, &c, "dev-c").await, "2 of 2 failed: the rollout halted itself");
    let status: Value = s.op_get("/api/v1/rollouts").await.json().await.unwrap();
    let reason = status[0]["halted"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("2 of 2") && reason.contains("30 %"), "{status}");

    let cookie = crate::dashboard::sign_in(s).await;
    let page = s.client.get(format!("{}/dashboard", s.url)).header("cookie", cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("halted by failure threshold: 2 of 2"), "the dashboard shows the self-halt:\n{page}");
    assert!(page.contains("everyone: 0/3 installed, open since"), "{page}");

    let resp = s.op_post("/api/v1/releases/main/1.1.0/resume", json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(offered(s, &c, "dev-c").await, "resumed by the operator");
}

#[tokio::test]
async fn unusable_plans_are_refused_with_the_reason() {
    let f = start().await;
    let s = &f.server;
    let resp = put_plan(s, json!({"waves": [{"name": "all"}]})).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("upload it first"));
    s.release(Component::Main, "1.1.0", 100).await;
    let resp = put_plan(s, json!({"waves": []})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("at least one wave"));
    let resp = put_plan(s, json!({"waves": [{"name": "x", "percent": 0}]})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = put_plan(s, json!({"waves": [{"name": "x", "colour": "red"}]})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "unknown fields are refused");
}
