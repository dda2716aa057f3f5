//! Test fixtures: a real in-process Ferry server, signed releases of a tiny shell-script
//! main program, agent configurations, and a TCP proxy that can cut a connection once.

#![allow(dead_code)]

use ferry_agent::{Agent, AgentConfig, MainConfig, UpgraderConfig};
use ferry_artifact::artifact::{BuildSpec, Hooks};
use ferry_artifact::keys::SigningKey;
use ferry_core::api::{ArchivedReport, DeviceRecord, ReleaseRecord};
use ferry_core::schedule::Schedule;
use ferry_core::{Component, DeviceId, Version};
use ferry_server::ServerConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";
pub const ENROLL_TOKEN: &str = "enroll-token-0123456789abcdef";

/// A running server plus everything a device needs to trust it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub data_dir: PathBuf,
    pub release_key: SigningKey,
    pub release_pub: PathBuf,
    pub other_key: SigningKey,
    pub root_json: PathBuf,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How the fixture's server is set up.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Segment size offered to devices.
    pub chunk_size: Option<u32>,
    /// Route the file service through this URL (a proxy).
    pub files_url: Option<String>,
}

impl Fixture {
    pub async fn start(opts: ServerOptions) -> Fixture {
        Fixture::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), opts).await
    }

    /// Starts the server on an already bound listener (so a proxy can point at it first).
    pub async fn start_on(listener: TcpListener, opts: ServerOptions) -> Fixture {
        Fixture::start_on_with(listener, opts, |_| {}).await
    }

    /// A server whose every device-facing URL (check-in, TUF metadata, files) is `mitm`'s:
    /// devices configured with `mitm.url` never reach the server except through it.
    pub async fn behind_mitm(opts: ServerOptions) -> (Fixture, Mitm) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mitm = Mitm::start(format!("http://{}", listener.local_addr().unwrap())).await;
        let url = mitm.url.clone();
        let fx = Fixture::start_on_with(listener, opts, move |c| {
            c.public_url = Some(url.clone());
            c.files_url = Some(url);
        })
        .await;
        (fx, mitm)
    }

    /// Starts the server on `listener` with its configuration adjusted by `tweak`.
    pub async fn start_on_with(
        listener: TcpListener,
        opts: ServerOptions,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("server");
        let release_key = SigningKey::generate();
        let other_key = SigningKey::generate();
        let release_pub = dir.path().join("release.pub.json");
        release_key.public().save(&release_pub).unwrap();
        let other_pub = dir.path().join("other.pub.json");
        other_key.public().save(&other_pub).unwrap();

        let addr = listener.local_addr().unwrap();
        let mut config = ServerConfig::new(&data_dir, OPERATOR_TOKEN, ENROLL_TOKEN);
        // The server trusts both keys; devices trust only `release_key`.
        config.release_keys = vec![release_pub.clone(), other_pub];
        config.default_chunk_size = opts.chunk_size.unwrap_or(4096);
        config.files_url = opts.files_url.clone();
        tweak(&mut config);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            ferry_server::serve(config, listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let url = format!("http://{addr}");
        let http = reqwest::Client::new();
        let root = loop {
            match http.get(format!("{url}/tuf/root.json")).send().await {
                Ok(r) if r.status().is_success() => break r.bytes().await.unwrap(),
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let root_json = dir.path().join("root.json");
        std::fs::write(&root_json, &root).unwrap();
        Fixture {
            dir,
            url,
            data_dir,
            release_key,
            release_pub,
            other_key,
            root_json,
            http,
            shutdown: Some(tx),
        }
    }

    /// Builds a signed main-program release; `healthy = false` makes its health check fail.
    pub fn main_release(&self, version: &str, healthy: bool) -> PathBuf {
        self.main_release_signed(version, healthy, &self.release_key)
    }

    pub fn main_release_signed(&self, version: &str, healthy: bool, key: &SigningKey) -> PathBuf {
        self.main_release_with(version, healthy, key, None)
    }

    /// A healthy main release with install hooks: `pre` and `post` are shell bodies.
    pub fn main_release_with_hooks(&self, version: &str, pre: &str, post: &str) -> PathBuf {
        self.main_release_with(version, true, &self.release_key, Some((pre, post)))
    }

    fn main_release_with(
        &self,
        version: &str,
        healthy: bool,
        key: &SigningKey,
        hooks: Option<(&str, &str)>,
    ) -> PathBuf {
        let src = self
            .dir
            .path()
            .join(format!("src-main-{version}-{healthy}-{}", hooks.is_some()));
        std::fs::create_dir_all(src.join("data")).unwrap();
        write_script(
            &src.join("start.sh"),
            "sleep 120 >/dev/null 2>&1 &\necho $! > \"$FERRY_STATE_DIR/main.pid\"\ncat VERSION > \"$FERRY_STATE_DIR/running\"\n",
        );
        write_script(
            &src.join("stop.sh"),
            "if [ -f \"$FERRY_STATE_DIR/main.pid\" ]; then kill \"$(cat \"$FERRY_STATE_DIR/main.pid\")\" 2>/dev/null; rm -f \"$FERRY_STATE_DIR/main.pid\"; fi\nrm -f \"$FERRY_STATE_DIR/running\"\nexit 0\n",
        );
        if healthy {
            write_script(
                &src.join("health.sh"),
                "kill -0 \"$(cat \"$FERRY_STATE_DIR/main.pid\")\" || exit 1\n[ \"$(cat \"$FERRY_STATE_DIR/running\")\" = \"$(cat VERSION)\" ]\n",
            );
        } else {
            write_script(
                &src.join("health.sh"),
                &format!("echo 'main {version}: cannot bind port 8080' >&2\nexit 1\n"),
            );
        }
        std::fs::write(src.join("VERSION"), version).unwrap();
        // Some bulk so downloads take several segments (deterministic per version).
        let bulk: Vec<u8> = (0..12_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ version.len() as u8)
            .collect();
        std::fs::write(src.join("data/blob.bin"), bulk).unwrap();
        let mut spec_hooks = Hooks::default();
        if let Some((pre, post)) = hooks {
            std::fs::create_dir_all(src.join("hooks")).unwrap();
            write_script(&src.join("hooks/pre.sh"), pre);
            write_script(&src.join("hooks/post.sh"), post);
            spec_hooks = Hooks {
                pre_install: Some("hooks/pre.sh".into()),
                post_install: Some("hooks/post.sh".into()),
            };
        }
        self.build(&src, Component::Main, version, key, spec_hooks)
    }

    /// Builds a signed agent release whose `ferry` binary passes (or fails) `agent self-test`.
    pub fn agent_release(&self, version: &str, works: bool) -> PathBuf {
        let src = self.dir.path().join(format!("src-agent-{version}-{works}"));
        std::fs::create_dir_all(&src).unwrap();
        let body = if works {
            "if [ \"$1 $2\" = \"agent self-test\" ]; then echo self-test ok; exit 0; fi\nexit 2\n"
                .to_string()
        } else {
            "echo 'illegal instruction' >&2\nexit 132\n".to_string()
        };
        write_script(&src.join("ferry"), &body);
        self.build(
            &src,
            Component::Agent,
            version,
            &self.release_key,
            Hooks::default(),
        )
    }

    fn build(
        &self,
        src: &Path,
        component: Component,
        version: &str,
        key: &SigningKey,
        hooks: Hooks,
    ) -> PathBuf {
        let out = self.dir.path().join(format!(
            "{component}-{version}-{}.ferry",
            src.file_name().unwrap().to_string_lossy()
        ));
        let spec = BuildSpec {
            component,
            version: version.parse().unwrap(),
            device_types: vec![],
            hooks,
        };
        ferry_artifact::artifact::build(src, spec, &out, Some(key)).unwrap();
        out
    }

    /// Registers a release with the server.
    pub async fn upload(&self, artifact: &Path) {
        let bytes = std::fs::read(artifact).unwrap();
        let resp = self
            .http
            .post(format!("{}/api/v1/releases", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            status.is_success(),
            "upload failed: {status} {}",
            resp.text().await.unwrap()
        );
    }

    /// The releases the server knows, as the operator sees them.
    pub async fn releases(&self) -> Vec<ReleaseRecord> {
        let resp = self
            .http
            .get(format!("{}/api/v1/releases", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.unwrap()
    }

    /// One TUF metadata file as the server publishes it now (`timestamp.json`, `3.targets.json`…).
    pub async fn tuf_file(&self, name: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("{}/tuf/{name}", self.url))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{name}: {}", resp.status());
        resp.bytes().await.unwrap().to_vec()
    }

    /// Reports the server archived for `device`, oldest first.
    pub async fn reports(&self, device: &str) -> Vec<ArchivedReport> {
        let resp = self
            .http
            .get(format!("{}/api/v1/devices/{device}/reports", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut reports: Vec<ArchivedReport> = resp.json().await.unwrap();
        reports.sort_by_key(|r| r.id);
        reports
    }

    pub async fn device(&self, device: &str) -> DeviceRecord {
        let resp = self
            .http
            .get(format!("{}/api/v1/devices", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let devices: Vec<DeviceRecord> = resp.json().await.unwrap();
        devices
            .into_iter()
            .find(|d| d.device_id.as_str() == device)
            .expect("device known to the server")
    }

    /// The stored artifact file of `component` `version` on the server's disk.
    pub fn stored_artifact(&self, component: Component, version: &str) -> PathBuf {
        let dir = self.data_dir.join("artifacts").join(component.as_str());
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!(".{version}.ferry")))
            .expect("stored artifact")
    }

    /// An agent configuration for a new device with its own directories.
    pub fn device_config(&self, device: &str, server_url: &str) -> AgentConfig {
        let base = self.dir.path().join("devices").join(device);
        AgentConfig {
            server_url: server_url.to_string(),
            device_id: DeviceId::new(device).unwrap(),
            device_type: "test-board".into(),
            enrollment_token: ENROLL_TOKEN.into(),
            state_dir: base.join("state"),
            trusted_root: self.root_json.clone(),
            release_keys: vec![self.release_pub.clone()],
            schedule: Schedule::Interval {
                every_secs: 60,
                jitter_secs: 0,
            },
            upload_backups: true,
            http_timeout_secs: 5,
            download_retries: 10,
            retry_backoff_ms: 10,
            main: MainConfig {
                dir: base.join("main"),
                start: "./start.sh".into(),
                stop: "./stop.sh".into(),
                health_check: "./health.sh".into(),
                health_timeout_secs: 5,
                health_retries: 3,
                health_interval_ms: 100,
                live_patch: None,
            },
            upgrader: UpgraderConfig {
                dir: base.join("upgrader"),
                self_test_timeout_secs: 5,
            },
            preflight: None,
            push: None,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A device under test: its config, and helpers to look at its disk and processes.
pub struct Device {
    pub config: AgentConfig,
}

impl Device {
    pub fn new(config: AgentConfig) -> Device {
        Device { config }
    }

    pub fn agent(&self) -> Agent {
        let mut agent = Agent::new(self.config.clone()).unwrap();
        agent.set_restart_hook(Box::new(|_| {
            panic!("no agent update expected in this test")
        }));
        agent
    }

    pub fn current_main(&self) -> Option<Version> {
        let link = std::fs::read_link(self.config.main.dir.join("current")).ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// What the running main program says it is (written by its start.sh).
    pub fn running(&self) -> Option<String> {
        std::fs::read_to_string(self.config.state_dir.join("running")).ok()
    }

    pub fn main_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.config.state_dir.join("main.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn main_alive(&self) -> bool {
        // SAFETY: kill with signal 0 only checks that the process exists.
        self.main_pid()
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    }

    /// Power cut: every process of the device dies at once.
    pub fn power_cut(&self) {
        if let Some(pid) = self.main_pid() {
            // SAFETY: signals only the test's own `sleep` process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_file(self.config.state_dir.join("running"));
    }

    /// Boot: the init system starts whatever main release is current.
    pub fn boot(&self) {
        let current = self.config.main.dir.join("current");
        if !current.is_dir() {
            return;
        }
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg("./start.sh")
            .current_dir(&current)
            .env("FERRY_STATE_DIR", &self.config.state_dir)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Runs the current release's health check as the init system would.
    pub fn healthy(&self) -> bool {
        std::process::Command::new("sh")
            .arg("-c")
            .arg("./health.sh")
            .current_dir(self.config.main.dir.join("current"))
            .env("FERRY_STATE_DIR", &self.config.state_dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Every file under the main program's storage space, with its bytes.
    pub fn main_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.config.main.dir, &self.config.main.dir, &mut out);
        out.sort();
        out
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.power_cut();
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if meta.file_type().is_symlink() {
            out.push((
                rel,
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            ));
        } else if meta.is_dir() {
            walk(root, &path, out);
        } else {
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

/// A TCP proxy that cuts the first connection carrying more than `cut_after` bytes to the
/// client, once; every other connection passes through untouched.
pub struct Proxy {
    pub url: String,
    pub cut: Arc<AtomicBool>,
    pub bytes_to_client: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(upstream: String, cut_after: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let bytes_to_client = Arc::new(AtomicU64::new(0));
        let (cut2, count2) = (cut.clone(), bytes_to_client.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let (cut, count) = (cut2.clone(), count2.clone());
                tokio::spawn(async move {
                    let Ok(server) =
                        TcpStream::connect(upstream.trim_start_matches("http://")).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let before = count.fetch_add(n as u64, Ordering::SeqCst);
                        if !cut.load(Ordering::SeqCst) && before + n as u64 > cut_after {
                            cut.store(true, Ordering::SeqCst);
                            let keep = cut_after.saturating_sub(before) as usize;
                            let _ = cw.write_all(&buf[..keep.min(n)]).await;
                            let _ = cw.shutdown().await;
                            up.abort();
                            return;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy {
            url,
            cut,
            bytes_to_client,
        }
    }
}

/// One request as a [`Mitm`] saw it, with the real server's answer to it.
pub struct Exchange {
    /// Request method.
    pub method: axum::http::Method,
    /// Request path (no query).
    pub path: String,
    /// Request headers.
    pub request_headers: axum::http::HeaderMap,
    /// The server's status.
    pub status: axum::http::StatusCode,
    /// The server's headers (hop-by-hop and `content-length` removed).
    pub headers: axum::http::HeaderMap,
    /// The server's body.
    pub body: bytes::Bytes,
}

impl Exchange {
    /// The server's answer with `body` in place of its own (length recomputed).
    pub fn with_body(&self, body: impl Into<axum::body::Body>) -> axum::response::Response {
        self.answer(self.status, self.headers.clone(), body)
    }

    /// An answer with `status`, `headers` and `body` (`content-length` from the body unless set).
    pub fn answer(
        &self,
        status: axum::http::StatusCode,
        headers: axum::http::HeaderMap,
        body: impl Into<axum::body::Body>,
    ) -> axum::response::Response {
        let mut resp = axum::response::Response::new(body.into());
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }

    /// A request for an artifact under `/files/`.
    pub fn is_file(&self) -> bool {
        self.path.starts_with("/files/")
    }

    /// The `Content-Range` of the server's answer as `(start, end, total)`.
    pub fn content_range(&self) -> Option<(u64, u64, u64)> {
        let v = self
            .headers
            .get(axum::http::header::CONTENT_RANGE)?
            .to_str()
            .ok()?;
        let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
        let (a, b) = range.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
    }
}

/// Decides what the device gets: `None` passes the server's answer on untouched.
pub type Tamper = Arc<dyn Fn(&Exchange) -> Option<axum::response::Response> + Send + Sync>;

/// A man in the middle between devices and the real server: every request is forwarded, and
/// the server's answer goes through the current [`Tamper`] before the device sees it.
pub struct Mitm {
    /// Where devices connect.
    pub url: String,
    tamper: Arc<std::sync::Mutex<Option<Tamper>>>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct MitmState {
    upstream: String,
    http: reqwest::Client,
    tamper: Arc<std::sync::Mutex<Option<Tamper>>>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
];

async fn mitm_handle(
    axum::extract::State(st): axum::extract::State<MitmState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut fwd = st
        .http
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", st.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            fwd = fwd.header(name, value);
        }
    }
    let upstream = match fwd.send().await {
        Ok(r) => r,
        Err(e) => {
            return (axum::http::StatusCode::BAD_GATEWAY, format!("mitm: {e}")).into_response();
        }
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let body = upstream.bytes().await.unwrap_or_default();
    let exchange = Exchange {
        method: parts.method.clone(),
        path: path.clone(),
        request_headers: parts.headers,
        status,
        headers,
        body,
    };
    let tamper = st.tamper.lock().unwrap().clone();
    let tampered = tamper.and_then(|t| t(&exchange));
    st.log.lock().unwrap().push(format!(
        "{} {path} -> {}{}",
        exchange.method,
        status.as_u16(),
        if tampered.is_some() {
            " (tampered)"
        } else {
            ""
        }
    ));
    tampered.unwrap_or_else(|| exchange.with_body(exchange.body.clone()))
}

impl Mitm {
    /// Starts a man in the middle in front of `upstream` (`http://host:port`), passing everything.
    pub async fn start(upstream: String) -> Mitm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tamper = Arc::new(std::sync::Mutex::new(None));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = MitmState {
            upstream,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            tamper: tamper.clone(),
            log: log.clone(),
        };
        let app = axum::Router::new().fallback(mitm_handle).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mitm { url, tamper, log }
    }

    /// From now on, answers go through `f` (`None` from `f` passes the server's answer on).
    pub fn tamper(
        &self,
        f: impl Fn(&Exchange) -> Option<axum::response::Response> + Send + Sync + 'static,
    ) {
        *self.tamper.lock().unwrap() = Some(Arc::new(f));
    }

    /// From now on, every answer passes untouched.
    pub fn pass_through(&self) {
        *self.tamper.lock().unwrap() = None;
    }

    /// Every request seen so far: `GET /tuf/timestamp.json -> 200 (tampered)`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.log.lock().unwrap().clear();
    }
}
