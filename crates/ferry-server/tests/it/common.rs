//! In-process test servers on 127.0.0.1:0 with SQLite and local artifacts in a tempdir.

use ferry_artifact::artifact::{BuildSpec, build};
use ferry_artifact::keys::SigningKey;
use ferry_core::api::{CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse};
use ferry_core::{Component, DeviceId, Version};
use ferry_server::{Role, ServerConfig};
use reqwest::{Response, StatusCode};
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Operator token of every test server.
pub const OPERATOR: &str = "operator-token-for-tests";
/// Enrollment token of every test server.
pub const ENROLL: &str = "enrollment-token-for-tests";

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The key the server trusts for release artifacts.
    pub release_key: SigningKey,
    /// Temp dir holding data, keys and built artifacts (shared by servers started with `start_pair`).
    pub dir: PathBuf,
    /// Dropping it stops the server (for servers started by [`run`]).
    pub _shutdown: oneshot::Sender<()>,
}

/// A server plus the tempdir it lives in.
pub struct Fixture {
    /// The server.
    pub server: TestServer,
    /// Keeps the tempdir alive.
    pub tmp: TempDir,
}

/// A config for a server in `dir` trusting `release_key`.
pub fn config_in(dir: &Path, release_key: &SigningKey) -> ServerConfig {
    let key_path = dir.join("release.pub.json");
    if !key_path.exists() {
        release_key.public().save(&key_path).unwrap();
    }
    let mut config = ServerConfig::new(dir.join("data"), OPERATOR, ENROLL);
    config.release_keys = vec![key_path];
    config
}

/// Starts a server with `config` on `listener`.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    release_key: SigningKey,
    dir: &Path,
) -> TestServer {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let app = ferry_server::build_app(config)
        .await
        .expect("server starts");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    TestServer {
        url,
        client: reqwest::Client::new(),
        release_key,
        dir: dir.to_path_buf(),
        _shutdown: tx,
    }
}

/// Binds 127.0.0.1:0.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// One role-`all` server, adjusted by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let listener = listener().await;
    let mut config = config_in(tmp.path(), &key);
    config.public_url = Some(format!("http://{}", listener.local_addr().unwrap()));
    tweak(&mut config);
    let server = run(config, listener, key, tmp.path()).await;
    Fixture { server, tmp }
}

/// One role-`all` server with defaults.
pub async fn start() -> Fixture {
    start_with(|_| {}).await
}

/// Config for a pair sharing one registry and artifact store.
pub fn shared_storage(config: &mut ServerConfig, dir: &Path, role: Role) {
    config.registry_url = Some(format!("sqlite://{}", dir.join("shared.db").display()));
    config.artifact_store_url = Some(format!("file://{}", dir.join("shared-artifacts").display()));
    config.role = role;
}

/// Device id from text.
pub fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

/// Version from text.
pub fn ver(v: &str) -> Version {
    v.parse().unwrap()
}

/// Builds a `.ferry` artifact of `payload_len` bytes signed by `key`; returns its bytes.
pub fn artifact(
    dir: &Path,
    component: Component,
    version: &str,
    device_types: &[&str],
    key: Option<&SigningKey>,
    payload_len: usize,
) -> Vec<u8> {
    let src = dir.join(format!("src-{component}-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("app.bin"), payload).unwrap();
    let out = dir.join(format!("{component}-{version}.ferry"));
    let spec = BuildSpec {
        component,
        version: ver(version),
        device_types: device_types.iter().map(|s| s.to_string()).collect(),
        hooks: Default::default(),
    };
    build(&src, spec, &out, key).unwrap();
    std::fs::read(out).unwrap()
}

impl TestServer {
    /// Enrolls `id` as a `gw` device; returns its token.
    pub async fn enroll(&self, id: &str) -> String {
        let req = EnrollRequest {
            enrollment_token: ENROLL.into(),
            device_id: dev(id),
            device_type: "gw".into(),
        };
        let resp = self
            .client
            .post(format!("{}/api/v1/enroll", self.url))
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<EnrollResponse>().await.unwrap().device_token
    }

    /// Sends a check-in as `id` with `token`.
    pub async fn checkin_raw(
        &self,
        token: Option<&str>,
        id: &str,
        main: &str,
        agent: &str,
    ) -> Response {
        let req = CheckinRequest {
            device_id: dev(id),
            device_type: "gw".into(),
            upgrader_version: ver(agent),
            main_version: ver(main),
            accepts_deltas: false,
            delta_failures: vec![],
        };
        let mut rb = self
            .client
            .post(format!("{}/api/v1/checkin", self.url))
            .json(&req);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.unwrap()
    }

    /// A successful check-in's answer.
    pub async fn checkin(&self, token: &str, id: &str, main: &str, agent: &str) -> CheckinResponse {
        let resp = self.checkin_raw(Some(token), id, main, agent).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// Uploads release bytes as the operator.
    pub async fn upload(&self, bytes: Vec<u8>) -> Response {
        self.client
            .post(format!("{}/api/v1/releases", self.url))
            .bearer_auth(OPERATOR)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Builds, signs with the trusted key and uploads a release; asserts 201.
    pub async fn release(
        &self,
        component: Component,
        version: &str,
        payload_len: usize,
    ) -> Vec<u8> {
        let bytes = artifact(
            &self.dir,
            component,
            version,
            &["gw"],
            Some(&self.release_key),
            payload_len,
        );
        let resp = self.upload(bytes.clone()).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{}",
            resp.text().await.unwrap()
        );
        bytes
    }

    /// GET as the operator.
    pub async fn op_get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
    }

    /// PUT JSON as the operator.
    pub async fn op_put(&self, path: &str, body: serde_json::Value) -> Response {
        self.client
            .put(format!("{}{path}", self.url))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST JSON as the operator.
    pub async fn op_post(&self, path: &str, body: serde_json::Value) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The error message of a failed call.
    pub async fn error_of(resp: Response) -> String {
        let body: serde_json::Value = resp.json().await.unwrap();
        body["error"].as_str().expect("ApiError body").to_string()
    }
}

/// Hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
