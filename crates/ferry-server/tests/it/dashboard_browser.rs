//! The dashboard in a real browser: headless Chromium driven through ChromeDriver (W3C
//! WebDriver over HTTP). Signs in through the form, watches htmx refresh the fleet without a
//! page reload, and resumes a halted rollout with the button (accepting its confirmation).
//! Needs Debian `chromium` + `chromium-driver`; skips loudly without them, fails under
//! `FERRY_REQUIRE_SERVICES=1`.

use crate::common::*;
use crate::dashboard::{alert_for, post_alert};
use ferry_core::Component;
use ferry_core::api::CheckinResponse;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one browser session; both end on drop.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{root}/status")).send().await.ok();
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", format!("--user-data-dir={}", profile.path().display())]}}}});
        let resp: Value = http.post(format!("{root}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = resp["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {resp}")).to_string();
        Browser { driver, base: format!("{root}/session/{id}"), http, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let v: Value = rb.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The element matching `css`, if present now.
    async fn find(&self, css: &str) -> Option<String> {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits up to `secs` for an element matching `css`.
    async fn wait_for(&self, css: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if Instant::now() > deadline {
                let html = self.script("return document.documentElement.outerHTML").await;
                panic!("no element {css} after {secs} s; page:\n{html}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn text(&self, element: &str) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await.as_str().unwrap_or_default().to_string()
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, element: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": js, "args": []}))).await
    }

    /// Accepts the confirmation dialog once it shows; returns its text.
    async fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.call(reqwest::Method::GET, "/alert/text", None).await;
            if let Some(t) = text.as_str() {
                self.call(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
                return t.to_string();
            }
            assert!(Instant::now() < deadline, "no confirmation dialog appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn operator_signs_in_sees_live_fleet_and_resumes_a_halted_rollout_in_chromium() {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !ferry_store::testing::require_service("Chromium + ChromeDriver (Debian chromium, chromium-driver)", CHROMEDRIVER, present) {
        return;
    }
    let f = start().await;
    let s = &f.server;
    let a = s.enroll("dev-a").await;
    s.release(Component::Main, "1.1.0", 100).await;
    s.checkin(&a, "dev-a", "1.0.0", "1.0.0").await;

    let browser = Browser::start().await;
    browser.goto(&format!("{}/dashboard", s.url)).await;
    let token = browser.wait_for("#token", 20).await;
    browser.type_into(&token, OPERATOR).await;
    let button = browser.find("#sign-in").await.expect("sign-in button");
    browser.click(&button).await;
    let row = browser.wait_for("#device-dev-a", 20).await;
    assert!(browser.text(&row).await.contains("1.0.0"));
    assert_eq!(browser.script("return typeof htmx").await, json!("object"), "vendored htmx loaded");
    browser.script("window.ferryNoReload = 42; return null").await;

    // A device that enrolls and a security alert that arrives after the page loaded appear
    // without a reload (htmx refresh).
    let late = s.enroll("dev-late").await;
    s.checkin(&late, "dev-late", "1.0.0", "1.0.0").await;
    post_alert(s, &a, &alert_for("dev-a", "1.1.0")).await;
    browser.wait_for("#device-dev-late", 30).await;
    let resume = browser.wait_for("#alerts button", 30).await;
    assert_eq!(browser.script("return window.ferryNoReload").await, json!(42), "the page must not have reloaded");
    let halted_row = browser.wait_for("#release-main-1\\.1\\.0", 5).await;
    assert!(browser.text(&halted_row).await.contains("halted by alert"));

    browser.click(&resume).await;
    let question = browser.accept_dialog().await;
    assert!(question.contains("main 1.1.0"), "{question}");
    let notice = browser.wait_for("#notice", 20).await;
    assert_eq!(browser.text(&notice).await, "Rollout of main 1.1.0 resumed.");
    assert!(matches!(
        s.checkin(&late, "dev-late", "1.0.0", "1.0.0").await,
        CheckinResponse::Update { offer } if offer.version == ver("1.1.0")
    ));
}
