//! The TUF repository of a live Ferry server (`/tuf/` metadata, `/files/` targets), read by
//! three clients that must agree: the real `ferry tuf-client` binary, python-tuf's ngclient
//! behind the same command line (tests/tuf_python/ngclient_cli.py) and python-tuf's own example
//! client (run unmodified, see tuf_common::example_client), through new releases.
//!
//! The example client wants metadata and targets under one base URL (`/metadata/`,
//! `/targets/`), and none of the clients knows Ferry's device authentication, so the test puts
//! a front end before the server: `/metadata/F` → `/tuf/F`, `/targets/P` → `/files/P` with an
//! enrolled device's bearer token (as a gateway holding the device credential would).
//! Ferry's server does not rotate its TUF keys (no operator command for it), so the
//! differential follows the repository through releases; rotation is covered on
//! python-generated repositories (tuf_differential.rs).
//!
//! Needs `python3` with `tuf` importable (`pip install tuf==7.0.1`) and python-tuf's sdist
//! (fetched once with `pip download`). Without them the test prints a loud SKIPPED message and
//! passes, unless `FERRY_REQUIRE_SERVICES=1`, which makes it fail.

mod support;
mod tuf_common;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ferry_core::DeviceId;
use ferry_core::api::{EnrollRequest, EnrollResponse};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use support::{ENROLL_TOKEN, Fixture, ServerOptions};
use tuf_common::{
    ExampleClient, Outcome, example_client, ferry_tuf_client, python_tuf_available, role_files,
    show, tree,
};

/// The front end's state: the server, the device token, and every request seen.
struct Front {
    server: String,
    token: String,
    http: reqwest::Client,
    log: Mutex<Vec<String>>,
}

async fn forward(State(front): State<Arc<Front>>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    let upstream = if let Some(file) = path.strip_prefix("/metadata/") {
        front.http.get(format!("{}/tuf/{file}", front.server))
    } else if let Some(target) = path.strip_prefix("/targets/") {
        front
            .http
            .get(format!("{}/files/{target}", front.server))
            .bearer_auth(&front.token)
    } else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let resp = upstream.send().await.expect("the Ferry server answers");
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let body = resp.bytes().await.expect("the Ferry server's answer");
    front
        .log
        .lock()
        .unwrap()
        .push(format!("{} {path}", status.as_u16()));
    (status, body).into_response()
}

/// Starts the front end before `server`; returns its base URL and state.
async fn start_front(server: &str, token: String) -> (String, Arc<Front>) {
    let front = Arc::new(Front {
        server: server.to_string(),
        token,
        http: reqwest::Client::new(),
        log: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(front.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, front)
}

async fn enroll(fx: &Fixture, device: &str) -> String {
    let resp = fx
        .http
        .post(format!("{}/api/v1/enroll", fx.url))
        .json(&EnrollRequest {
            enrollment_token: ENROLL_TOKEN.into(),
            device_id: DeviceId::new(device).unwrap(),
            device_type: "test-board".into(),
        })
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "enroll: {}", resp.status());
    resp.json::<EnrollResponse>().await.unwrap().device_token
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The three clients, each with its own directories.
struct Clients {
    dir: PathBuf,
    front: String,
    example: ExampleClient,
}

impl Clients {
    fn md(&self, who: &str) -> PathBuf {
        self.dir.join(who).join("md")
    }
    fn td(&self, who: &str) -> PathBuf {
        self.dir.join(who).join("td")
    }

    /// Command line arguments of a step: `refresh`, or `download` of `names`.
    fn argv(&self, who: &str, names: &[&str]) -> Vec<String> {
        let mut a = strings(&[
            "--metadata-url",
            &format!("{}/metadata/", self.front),
            "--metadata-dir",
            self.md(who).to_str().unwrap(),
        ]);
        if names.is_empty() {
            a.push("refresh".into());
            return a;
        }
        for n in names {
            a.extend(strings(&["--target-name", n]));
        }
        a.extend(strings(&[
            "--target-dir",
            self.td(who).to_str().unwrap(),
            "--target-base-url",
            &format!("{}/targets/", self.front),
            "download",
        ]));
        a
    }
}

fn ngclient(args: &[String]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf_python/ngclient_cli.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    (
        out.status.code().expect("ngclient_cli.py exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What one step did: each client's outcome and whether the example said "not found".
struct StepResult {
    ferry: (Outcome, String),
    python: (Outcome, String),
    example: (Outcome, bool, String),
    ferry_requests: Vec<String>,
    python_requests: Vec<String>,
}

/// Runs one step (`names` empty: refresh) with the three clients, in turn.
async fn step(c: &Arc<Clients>, front: &Front, names: &'static [&'static str]) -> StepResult {
    let take = || std::mem::take(&mut *front.log.lock().unwrap());
    take();
    let c2 = c.clone();
    let ferry =
        tokio::task::spawn_blocking(move || ferry_tuf_client(&c2.argv("ferry", names), &[]))
            .await
            .unwrap();
    let ferry_requests = take();
    let c2 = c.clone();
    let python = tokio::task::spawn_blocking(move || ngclient(&c2.argv("python", names)))
        .await
        .unwrap();
    let python_requests = take();
    let c2 = c.clone();
    let example = tokio::task::spawn_blocking(move || {
        // The example has no refresh command: a refresh is a download of a name listed nowhere.
        let names: &[&str] = if names.is_empty() {
            &["ferry-refresh-probe"]
        } else {
            names
        };
        let mut said = String::new();
        for name in names {
            let run = c2.example.download(name);
            said.push_str(&run.stdout);
            said.push_str(&run.stderr);
            match Outcome::of(run.code) {
                Outcome::Fail => return (Outcome::Fail, false, said),
                Outcome::Pass if run.stdout.contains(&format!("Target {name} not found")) => {
                    return (Outcome::Pass, true, said);
                }
                Outcome::Pass => {}
            }
        }
        (Outcome::Pass, false, said)
    })
    .await
    .unwrap();
    take();
    StepResult {
        ferry: (Outcome::of(ferry.0), ferry.1),
        python: (Outcome::of(python.0), python.1),
        example,
        ferry_requests,
        python_requests,
    }
}

fn version_of(bytes: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

/// The three clients stored the same role files (Ferry's are the server's current bytes) and
/// hold the same targets.
async fn assert_same_state(c: &Clients, fx: &Fixture, what: &str) {
    let ferry = role_files(&c.md("ferry"));
    assert_eq!(
        show(&ferry),
        show(&role_files(&c.md("python"))),
        "{what}: ferry vs ngclient metadata"
    );
    assert_eq!(
        show(&ferry),
        show(&role_files(&c.example.metadata_dir())),
        "{what}: ferry vs python-tuf's example client metadata"
    );
    assert_eq!(
        ferry.get("root.json"),
        Some(&fx.tuf_file("root.json").await),
        "{what}: newest root"
    );
    assert_eq!(
        ferry.get("timestamp.json"),
        Some(&fx.tuf_file("timestamp.json").await),
        "{what}: the server's timestamp"
    );
    let targets = tree(&c.td("ferry"));
    assert_eq!(
        show(&targets),
        show(&tree(&c.td("python"))),
        "{what}: ferry vs ngclient targets"
    );
    assert_eq!(
        show(&targets),
        show(&tree(&c.example.target_dir())),
        "{what}: ferry vs python-tuf's example client targets"
    );
}

fn assert_all_pass(r: &StepResult, what: &str) {
    assert_eq!(r.ferry.0, Outcome::Pass, "{what}: ferry: {}", r.ferry.1);
    assert_eq!(
        r.python.0,
        Outcome::Pass,
        "{what}: ngclient: {}",
        r.python.1
    );
    assert_eq!(
        r.example.0,
        Outcome::Pass,
        "{what}: example client: {}",
        r.example.2
    );
    assert_eq!(
        r.ferry_requests, r.python_requests,
        "{what}: ferry and ngclient fetch the same files in the same order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_server_repository_is_read_alike_by_ferry_and_python_tuf_through_releases() {
    if !python_tuf_available() {
        return;
    }
    let Some(script) = example_client() else {
        return;
    };
    let fx = Fixture::start(ServerOptions::default()).await;
    let token = enroll(&fx, "tuf-differential-1").await;
    let (front_url, front) = start_front(&fx.url, token).await;
    let first = fx.main_release("1.0.0", true);
    fx.upload(&first).await;

    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::read(&fx.root_json).unwrap();
    let example = ExampleClient::init(script, &dir.path().join("example"), &front_url, &root);
    let c = Arc::new(Clients {
        dir: dir.path().to_path_buf(),
        front: front_url,
        example,
    });
    for who in ["ferry", "python"] {
        let init = strings(&[
            "--metadata-dir",
            c.md(who).to_str().unwrap(),
            "init",
            fx.root_json.to_str().unwrap(),
        ]);
        let (rc, err) = if who == "ferry" {
            ferry_tuf_client(&init, &[])
        } else {
            ngclient(&init)
        };
        assert_eq!(rc, 0, "{who} init: {err}");
    }

    // Release 1.0.0: every client verifies the chain and downloads it byte for byte.
    let r = step(&c, &front, &["main/1.0.0.ferry"]).await;
    assert_all_pass(&r, "first download");
    assert!(
        r.ferry_requests
            .contains(&"404 /metadata/2.root.json".to_string())
            && r.ferry_requests
                .iter()
                .any(|q| q.starts_with("200 /targets/main/")
                    && q.ends_with(".1.0.0.ferry")
                    && q.len() == "200 /targets/main/".len() + 64 + ".1.0.0.ferry".len()),
        "root chain probed, target fetched by its consistent-snapshot name: {:?}",
        r.ferry_requests
    );
    assert_same_state(&c, &fx, "first download").await;
    assert_eq!(
        std::fs::read(c.td("ferry").join("main%2F1.0.0.ferry")).unwrap(),
        std::fs::read(&first).unwrap()
    );
    let ts1 = version_of(&role_files(&c.md("ferry"))["timestamp.json"]);

    // A new release moves targets, snapshot and timestamp on; all follow.
    let second = fx.main_release("1.1.0", true);
    fx.upload(&second).await;
    let r = step(&c, &front, &["main/1.1.0.ferry", "main/1.0.0.ferry"]).await;
    assert_all_pass(&r, "second release");
    assert!(
        !r.ferry_requests.iter().any(|q| q.ends_with(".1.0.0.ferry")),
        "the stored 1.0.0 matches and is not downloaded again: {:?}",
        r.ferry_requests
    );
    assert_same_state(&c, &fx, "second release").await;
    assert_eq!(
        std::fs::read(c.td("ferry").join("main%2F1.1.0.ferry")).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let ts2 = version_of(&role_files(&c.md("ferry"))["timestamp.json"]);
    assert!(ts2 > ts1, "timestamp v{ts1} then v{ts2}");

    // A plain refresh with nothing new.
    let r = step(&c, &front, &[]).await;
    assert_all_pass(&r, "refresh");
    assert!(
        r.example.1,
        "the example's probe name is listed nowhere: {}",
        r.example.2
    );
    assert_same_state(&c, &fx, "refresh").await;

    // A release the server never had: Ferry and ngclient exit 1; the example client reports
    // "Target … not found" and exits 0 (its documented behaviour); nothing is written.
    let r = step(&c, &front, &["main/9.9.9.ferry"]).await;
    assert_eq!(r.ferry.0, Outcome::Fail, "ferry: {}", r.ferry.1);
    assert!(r.ferry.1.contains("main/9.9.9.ferry"), "{}", r.ferry.1);
    assert_eq!(r.python.0, Outcome::Fail);
    assert!(
        r.python
            .1
            .contains("LookupError: target main/9.9.9.ferry not found"),
        "{}",
        r.python.1
    );
    assert_eq!(
        (r.example.0, r.example.1),
        (Outcome::Pass, true),
        "{}",
        r.example.2
    );
    assert_same_state(&c, &fx, "unknown target").await;
}
