//! Runs the quickstart: servers, releases, devices, verdict.

use crate::fleet::{DeviceSpec, MAIN_NEW, fleet};
use crate::provision::{self, DeviceDirs, Layout};
use crate::report::{DeviceResult, Summary};
use crate::{demo_app, flaky_link};
use anyhow::{Context, Result, bail};
use ferry_core::api::{ArchivedReport, BlacklistRequest, DeviceRecord};
use ferry_core::DeviceId;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

/// What the quickstart needs from its caller.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `ferry` executable (the devices run copies of it as their agent).
    pub ferry_bin: PathBuf,
    /// Where to put everything; a temporary directory (removed at the end) when `None`.
    pub work_dir: Option<PathBuf>,
    /// Draw progress bars.
    pub progress: bool,
}

struct Servers {
    query_url: String,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_server(config: PathBuf, listener: TcpListener) -> Result<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)> {
    let cfg = ferry_server::ServerConfig::from_toml_file(&config)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = ferry_server::serve(cfg, listener, async move {
            let _ = rx.await;
        })
        .await
        {
            eprintln!("quickstart server stopped with an error: {e:#}");
        }
    });
    Ok((tx, task))
}

async fn wait_healthy(client: &reqwest::Client, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("server at {url} did not become healthy within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn servers(l: &Layout, link_stats: Arc<flaky_link::LinkStats>) -> Result<Servers> {
    let query = TcpListener::bind("127.0.0.1:0").await?;
    let files = TcpListener::bind("127.0.0.1:0").await?;
    let link = TcpListener::bind("127.0.0.1:0").await?;
    let (q, f, k) = (query.local_addr()?, files.local_addr()?, link.local_addr()?);
    let query_url = format!("http://{q}");
    let link_url = format!("http://{k}");
    let qcfg = provision::server_toml(l, "query", &q.to_string(), &query_url, &link_url)?;
    let fcfg = provision::server_toml(l, "files", &f.to_string(), &format!("http://{f}"), &format!("http://{f}"))?;
    let mut shutdown = Vec::new();
    let mut tasks = Vec::new();
    // The query service initialises the shared registry (TUF repository, migrations) first.
    let (tx, task) = start_server(qcfg, query).await?;
    shutdown.push(tx);
    tasks.push(task);
    let client = reqwest::Client::new();
    wait_healthy(&client, &query_url).await?;
    let (tx, task) = start_server(fcfg, files).await?;
    shutdown.push(tx);
    tasks.push(task);
    wait_healthy(&client, &format!("http://{f}")).await?;
    let cut_after = (demo_app::BLOB_BYTES as u64) * 2 / 5;
    tasks.push(tokio::spawn(flaky_link::run(link, f, cut_after, link_stats)));
    Ok(Servers { query_url, shutdown, tasks })
}

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        bail!("{what}: server answered {status}: {body}")
    }
    async fn upload(&self, artifact: &Path) -> Result<()> {
        let bytes = tokio::fs::read(artifact).await?;
        let resp = self.client.post(format!("{}/api/v1/releases", self.url)).bearer_auth(&self.token).body(bytes).send().await?;
        Self::check(resp, &format!("uploading {}", artifact.display())).await.map(|_| ())
    }
    async fn blacklist(&self, version: &str, devices: Vec<DeviceId>) -> Result<()> {
        let resp = self
            .client
            .post(format!("{}/api/v1/releases/main/{version}/blacklist", self.url))
            .bearer_auth(&self.token)
            .json(&BlacklistRequest { devices })
            .send()
            .await?;
        Self::check(resp, "blacklisting").await.map(|_| ())
    }
    async fn put(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let resp = self.client.put(format!("{}{path}", self.url)).bearer_auth(&self.token).json(&body).send().await?;
        Self::check(resp, path).await.map(|_| ())
    }
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.client.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await?;
        Ok(Self::check(resp, path).await?.json().await?)
    }
    async fn raw(&self, path: &str) -> Result<Vec<u8>> {
        let resp = self.client.get(format!("{}{path}", self.url)).send().await?;
        Ok(Self::check(resp, path).await?.bytes().await?.to_vec())
    }
}

/// Events a device's agent printed (`ferry agent --once --json`), and how it exited.
#[derive(Debug, Default)]
struct AgentRun {
    events: Vec<serde_json::Value>,
    stderr: String,
    exit_code: Option<i32>,
}

async fn run_agent(dirs: &DeviceDirs, bar: ProgressBar) -> Result<AgentRun> {
    let mut child = tokio::process::Command::new(dirs.agent_bin())
        .args(["agent", "--config"])
        .arg(&dirs.config)
        .args(["--once", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", dirs.agent_bin().display()))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    let mut run = AgentRun::default();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        match ev["event"].as_str() {
            Some("progress") => {
                bar.set_length(ev["total"].as_u64().unwrap_or(0));
                bar.set_position(ev["done"].as_u64().unwrap_or(0));
                bar.set_message(format!("{} {}", ev["component"].as_str().unwrap_or(""), ev["version"].as_str().unwrap_or("")));
            }
            Some(other) => bar.set_message(other.to_string()),
            None => {}
        }
        run.events.push(ev);
    }
    let status = tokio::time::timeout(Duration::from_secs(90), child.wait()).await.context("agent did not exit within 90 s")??;
    run.exit_code = status.code();
    run.stderr = err_task.await.unwrap_or_default();
    bar.finish_with_message(match run.exit_code {
        Some(0) => "done",
        Some(3) => "update failed, rolled back",
        _ => "agent failed",
    });
    Ok(run)
}

fn nothing_new_reason(run: &AgentRun) -> Option<String> {
    run.events.iter().rev().find(|e| e["event"] == "nothing_new").map(|e| e["reason"].as_str().unwrap_or("nothing new").to_string())
}

fn resumed(run: &AgentRun) -> bool {
    run.events.iter().any(|e| e["event"] == "resumed")
}

fn segment_retries(run: &AgentRun) -> u64 {
    run.events.iter().filter(|e| e["event"] == "resumed").filter_map(|e| e["segment_retries"].as_u64()).sum()
}

/// Runs the whole quickstart and returns the verified summary.
pub async fn run(opts: Options) -> Result<Summary> {
    let started = Instant::now();
    let temp = match &opts.work_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ferry-quickstart-").tempdir()?),
    };
    let root = opts.work_dir.clone().unwrap_or_else(|| temp.as_ref().unwrap().path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let root = root.canonicalize()?;

    let layout = provision::keys(&root)?;
    let link_stats = Arc::new(flaky_link::LinkStats::default());
    let servers = servers(&layout, link_stats.clone()).await?;
    let api = Api { client: reqwest::Client::new(), url: servers.query_url.clone(), token: layout.operator_token.clone() };
    std::fs::write(root.join("keys/root.json"), api.raw("/tuf/1.root.json").await?)?;

    let artifacts = provision::artifacts(&layout, &opts.ferry_bin)?;
    for a in &artifacts {
        api.upload(a).await?;
    }
    let specs = fleet();
    let blacklisted: Vec<DeviceId> = specs.iter().filter(|d| d.blacklisted).map(|d| DeviceId::new(d.id)).collect::<Result<_, _>>()?;
    api.blacklist(MAIN_NEW, blacklisted).await?;

    let mut devices = Vec::new();
    for spec in &specs {
        devices.push(provision::device(&layout, spec, &servers.query_url, &opts.ferry_bin, &artifacts)?);
    }
    for (group, chunk) in crate::fleet::GROUPS {
        api.put(&format!("/api/v1/groups/{group}"), serde_json::json!({ "chunk_size": chunk })).await?;
    }
    for spec in &specs {
        api.put(&format!("/api/v1/devices/{}/group", spec.id), serde_json::json!({ "group": spec.group })).await?;
    }
    let pids_before: Vec<Option<u32>> = devices.iter().map(DeviceDirs::main_pid).collect();

    let multi = if opts.progress { MultiProgress::new() } else { MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()) };
    let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {bytes:>9}/{total_bytes:<9} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = specs
        .iter()
        .map(|s| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(s.id.to_string());
            b
        })
        .collect();

    // The device on the dropping link goes first, alone, so the cut lands in its download.
    let mut runs: Vec<Option<AgentRun>> = specs.iter().map(|_| None).collect();
    for (i, spec) in specs.iter().enumerate().filter(|(_, s)| s.flaky_link) {
        runs[i] = Some(run_agent(&devices[i], bars[i].clone()).await.with_context(|| format!("device {}", spec.id))?);
    }
    let mut handles = Vec::new();
    for (i, _) in specs.iter().enumerate().filter(|(_, s)| !s.flaky_link) {
        let dirs = DeviceDirs { config: devices[i].config.clone(), main_dir: devices[i].main_dir.clone(), upgrader_dir: devices[i].upgrader_dir.clone() };
        let bar = bars[i].clone();
        handles.push((i, tokio::spawn(async move { run_agent(&dirs, bar).await })));
    }
    for (i, h) in handles {
        runs[i] = Some(h.await?.with_context(|| format!("device {}", specs[i].id))?);
    }

    let records: Vec<DeviceRecord> = api.get("/api/v1/devices").await?;
    let reports: Vec<ArchivedReport> = api.get("/api/v1/reports").await?;
    let mut results = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let run = runs[i].take().unwrap_or_default();
        results.push(judge(spec, &devices[i], &run, pids_before[i], &records, &reports));
    }
    for d in &devices {
        d.stop_main();
    }
    for tx in servers.shutdown {
        let _ = tx.send(());
    }
    for t in servers.tasks {
        t.abort();
    }
    Ok(Summary {
        devices: results,
        elapsed: started.elapsed(),
        link_cut: link_stats.cut_done.load(std::sync::atomic::Ordering::SeqCst),
        work_dir: opts.work_dir.clone(),
    })
}

fn judge(
    spec: &DeviceSpec,
    dirs: &DeviceDirs,
    run: &AgentRun,
    pid_before: Option<u32>,
    records: &[DeviceRecord],
    reports: &[ArchivedReport],
) -> DeviceResult {
    let mine: Vec<&ArchivedReport> = reports.iter().filter(|r| r.report.device_id.as_str() == spec.id).collect();
    let agent_after = records
        .iter()
        .find(|d| d.device_id.as_str() == spec.id)
        .and_then(|d| d.upgrader_version.as_ref().map(ToString::to_string));
    let main_after = dirs.main_version_on_disk();
    let healthy = std::fs::read_to_string(dirs.main_dir.join("data/status")).map(|s| s.trim().to_string()).ok();
    let bytes: u64 = mine.iter().map(|r| r.report.bytes_downloaded).sum();
    let mut problems = Vec::new();
    // `ferry agent --once` exits 3 when an update failed and the device rolled back.
    let expected_code = if spec.config_schema == 1 { 3 } else { 0 };
    if run.exit_code != Some(expected_code) {
        problems.push(format!(
            "agent exited with {:?}, expected {expected_code}: {}",
            run.exit_code,
            run.stderr.lines().last().unwrap_or("")
        ));
    }
    if main_after.as_deref() != Some(spec.main_after) {
        problems.push(format!("main is {:?} on disk, expected {}", main_after, spec.main_after));
    }
    if healthy.as_deref() != Some(spec.main_after) {
        problems.push(format!("main program reports {:?}, expected {} running", healthy, spec.main_after));
    }
    let agent_reported = mine.iter().any(|r| r.report.component == ferry_core::Component::Agent && r.report.to_version.to_string() == spec.agent_after);
    if spec.agent_after != crate::fleet::AGENT_BEFORE && !agent_reported {
        problems.push(format!("no success report for the agent update to {}", spec.agent_after));
    }
    if spec.agent_after != crate::fleet::AGENT_BEFORE && pid_before.is_some() && dirs.main_pid() != pid_before {
        problems.push("the main program was restarted by the agent's self-update".into());
    }
    let failure = mine.iter().find(|r| r.report.outcome == ferry_core::api::Outcome::Failure);
    let outcome;
    let reason;
    if spec.config_schema == 1 {
        match failure {
            Some(f) if f.report.rolled_back => {
                outcome = "rolled back".to_string();
                reason = f.report.reason.clone();
            }
            _ => {
                problems.push("expected an archived failure report with rollback".into());
                outcome = "WRONG".into();
                reason = String::new();
            }
        }
    } else if let Some(f) = failure {
        problems.push(format!("unexpected failure report: {}", f.report.reason));
        outcome = "failed".into();
        reason = f.report.reason.clone();
    } else if mine.is_empty() {
        outcome = "nothing new".into();
        reason = nothing_new_reason(run).unwrap_or_default();
        if spec.blacklisted && !reason.contains("blacklist") {
            problems.push(format!("expected a blacklist answer, agent said {reason:?}"));
        }
    } else {
        outcome = "updated".into();
        let mut r: Vec<String> = mine.iter().map(|r| format!("{} {} -> {}", r.report.component, r.report.from_version, r.report.to_version)).collect();
        if resumed(run) {
            r.push(format!(
                "link dropped, {} segment(s) retried, resumed from the bytes on disk ({} bytes fetched in all)",
                segment_retries(run),
                bytes
            ));
        }
        reason = r.join("; ");
    }
    if spec.flaky_link && !resumed(run) {
        problems.push("the download did not report resuming after the link dropped".into());
    }
    DeviceResult {
        id: spec.id.to_string(),
        story: spec.story.to_string(),
        main_before: spec.main_before.to_string(),
        main_after: main_after.unwrap_or_else(|| "?".into()),
        agent_before: crate::fleet::AGENT_BEFORE.to_string(),
        agent_after: agent_after.unwrap_or_else(|| "?".into()),
        outcome,
        bytes_downloaded: bytes,
        reason,
        problems,
    }
}
