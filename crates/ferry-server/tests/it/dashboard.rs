//! The operator dashboard over HTTP: sign-in, what the page shows, and the resume action.
//! (`dashboard_browser.rs` drives the same page in headless Chromium.)

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::{CheckinResponse, SecurityAlert};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

/// Signs in through the form; returns the `Cookie` header value for later requests.
pub async fn sign_in(s: &TestServer) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client
        .post(format!("{}/dashboard/login", s.url))
        .form(&[("token", OPERATOR)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers().get(SET_COOKIE).expect("sign-in sets a cookie").to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains(OPERATOR), "the cookie must not carry the operator token itself: {set}");
    set.split(';').next().unwrap().to_string()
}

async fn get_with(s: &TestServer, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut rb = s.client.get(format!("{}{path}", s.url));
    if let Some(c) = cookie {
        rb = rb.header(COOKIE, c);
    }
    let resp = rb.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The alert the dashboard tests post (the alerts tests' own).
pub use crate::alerts::unsafe_alert as alert_for;

pub async fn post_alert(s: &TestServer, token: &str, alert: &SecurityAlert) {
    let resp = s.client.post(format!("{}/api/v1/alerts", s.url)).bearer_auth(token).json(alert).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn dashboard_without_sign_in_shows_only_the_sign_in_form() {
    let f = start().await;
    let s = &f.server;
    s.enroll("dev-secret-name").await;
    let (status, body) = get_with(s, "/dashboard", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""), "{body}");
    assert!(!body.contains("dev-secret-name"), "fleet data leaked before sign-in");
    let (status, body) = get_with(s, "/dashboard/live", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("dev-secret-name"));
    let (status, _) = get_with(s, "/dashboard/live", Some("ferry_dashboard=forged")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_operator_token_is_refused_with_a_hint() {
    let f = start().await;
    let s = &f.server;
    let resp = s
        .client
        .post(format!("{}/dashboard/login", s.url))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    assert!(resp.text().await.unwrap().contains("operator_token"));
}

#[tokio::test]
async fn signed_in_dashboard_shows_devices_versions_rollouts_failures_and_alerts() {
    let f = start().await;
    let s = &f.server;
    let a = s.enroll("dev-a").await;
    let b = s.enroll("dev-b").await;
    s.release(Component::Main, "1.1.0", 100).await;
    s.checkin(&a, "dev-a", "1.1.0", "1.0.0").await;
    s.checkin(&b, "dev-b", "1.0.0", "1.0.0").await;
    let failure = serde_json::json!({"device_id": "dev-b", "component": "main", "from_version": "1.0.0",
        "to_version": "1.1.0", "outcome": "failure", "reason": "health check failed: /healthz answered 500",
        "rolled_back": true});
    let resp = s.client.post(format!("{}/api/v1/reports", s.url)).bearer_auth(&b).json(&failure).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    post_alert(s, &a, &alert_for("dev-a", "1.1.0")).await;

    let cookie = sign_in(s).await;
    let (status, page) = get_with(s, "/dashboard", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "id=\"device-dev-a\"",
        "id=\"device-dev-b\"",
        "health check failed: /healthz answered 500",
        "id=\"release-main-1.1.0\"",
        "halted by alert #",
        "1/2 (50 %)",
        "the candidate connected to 203.0.113.9:443 during rehearsal",
        "Resume rollout",
        "/dashboard/assets/htmx.min.js",
    ] {
        assert!(page.contains(expected), "dashboard lacks {expected:?}:\n{page}");
    }
    assert!(!page.contains("<script src=\"http"), "scripts must be served by Ferry, not a CDN");

    // The same cookie works for the refreshed part; the bearer token works too (for scripts).
    let (status, live) = get_with(s, "/dashboard/live", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(live.contains("id=\"device-dev-a\"") && !live.contains("<html"));
    let resp = s.op_get("/dashboard/live").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn resume_button_lifts_the_halt_and_offers_resume() {
    let f = start().await;
    let s = &f.server;
    let a = s.enroll("dev-a").await;
    let other = s.enroll("dev-other").await;
    s.release(Component::Main, "1.1.0", 100).await;
    post_alert(s, &a, &alert_for("dev-a", "1.1.0")).await;
    assert!(matches!(s.checkin(&other, "dev-other", "1.0.0", "1.0.0").await, CheckinResponse::NothingNew { .. }));

    let unauth = s.client.post(format!("{}/dashboard/releases/main/1.1.0/resume", s.url)).send().await.unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(s.checkin(&other, "dev-other", "1.0.0", "1.0.0").await, CheckinResponse::NothingNew { .. }));

    let cookie = sign_in(s).await;
    let resp = s
        .client
        .post(format!("{}/dashboard/releases/main/1.1.0/resume", s.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let live = resp.text().await.unwrap();
    assert!(live.contains("Rollout of main 1.1.0 resumed."), "{live}");
    assert!(!live.contains("Resume rollout"), "the alert no longer halts anything:\n{live}");
    assert!(matches!(
        s.checkin(&other, "dev-other", "1.0.0", "1.0.0").await,
        CheckinResponse::Update { offer } if offer.version == ver("1.1.0")
    ));
}
