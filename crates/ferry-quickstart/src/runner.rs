//! Runs the quickstart: servers, releases, devices, verdict.

use crate::fleet::{Delivery, DeviceSpec, MAIN_BASE, MAIN_NEW, MAIN_NEXT, SecondRound, fleet};
use crate::provision::{self, DeviceDirs, Layout, Tampering};
use crate::report::{DeviceResult, RoundResult, Summary};
use crate::{demo_app, flaky_link};
use anyhow::{Context as _, Result, bail};
use ferry_core::api::{ArchivedReport, BlacklistRequest, DeltaFailureRecord, DeviceRecord, Outcome, ReleaseRecord, UpgradeReport};
use ferry_core::{Component, DeviceId, Version};
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

#[derive(Clone)]
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
    /// The device's delta-failure records as the management API listed them while the agent
    /// was frozen right after its delta attempt failed (only for a run with a [`Probe`]).
    standing_failures: Option<Result<Vec<DeltaFailureRecord>, String>>,
}

/// Looks at the server while a device's update is between its failed delta and its full package.
struct Probe {
    api: Api,
    device: &'static str,
}

impl Probe {
    /// Freezes the agent (SIGSTOP), asks the management API for the device's delta-failure
    /// records, and lets the agent go on (SIGCONT), so the record is seen before the full
    /// install clears it.
    async fn standing_failures(&self, pid: u32) -> Result<Vec<DeltaFailureRecord>, String> {
        let pid = libc::pid_t::try_from(pid).map_err(|e| format!("agent pid {pid}: {e}"))?;
        // SAFETY: plain syscalls on the pid of a child this process spawned and still waits for.
        if unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
            return Err(format!("stopping agent {pid}: {}", std::io::Error::last_os_error()));
        }
        let listed = self.api.get::<Vec<DeltaFailureRecord>>(&format!("/api/v1/devices/{}/delta-failures", self.device)).await;
        // SAFETY: as above.
        if unsafe { libc::kill(pid, libc::SIGCONT) } != 0 {
            return Err(format!("resuming agent {pid}: {}", std::io::Error::last_os_error()));
        }
        listed.map_err(|e| format!("{e:#}"))
    }
}

async fn run_agent(dirs: &DeviceDirs, bar: ProgressBar, probe: Option<Probe>) -> Result<AgentRun> {
    let mut child = tokio::process::Command::new(dirs.agent_bin())
        .args(["agent", "--config"])
        .arg(&dirs.config)
        .args(["--once", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", dirs.agent_bin().display()))?;
    let pid = child.id().context("agent exited before it could be watched")?;
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
            Some("state") if ev["state"] == "failed" && run.standing_failures.is_none() => {
                bar.set_message("failed");
                // The agent reports a delta-failure record before its attempt turns `failed`.
                if let Some(probe) = &probe {
                    run.standing_failures = Some(probe.standing_failures(pid).await);
                }
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
        Some(3) => "an update failed",
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

/// A device's end state after a round, read from its disk and from the server.
#[derive(Debug)]
struct Observed {
    main_on_disk: Option<String>,
    running: Option<String>,
    /// Whether the active release's `assets.bin` is byte-identical to the genuine one of its version.
    assets_genuine: bool,
    pid: Option<u32>,
    server_failures: Result<Vec<DeltaFailureRecord>, String>,
    local_failures: Result<usize, String>,
}

async fn observe(api: &Api, spec: &DeviceSpec, dirs: &DeviceDirs) -> Observed {
    let main_on_disk = dirs.main_version_on_disk();
    let assets_genuine = match (&main_on_disk, dirs.main_assets()) {
        (Some(v), Some(bytes)) => bytes == demo_app::blob(v),
        _ => false,
    };
    Observed {
        running: std::fs::read_to_string(dirs.main_dir.join("data/status")).map(|s| s.trim().to_string()).ok(),
        main_on_disk,
        assets_genuine,
        pid: dirs.main_pid(),
        server_failures: api
            .get::<Vec<DeltaFailureRecord>>(&format!("/api/v1/devices/{}/delta-failures", spec.id))
            .await
            .map_err(|e| format!("{e:#}")),
        local_failures: dirs.local_delta_failures().map_err(|e| format!("{e:#}")),
    }
}

/// Runs one round: the device on the dropping link first and alone (so the cut lands in its
/// download), then the others at once.
async fn run_round(
    specs: &[DeviceSpec],
    devices: &[DeviceDirs],
    bars: &[ProgressBar],
    api: &Api,
    selected: &[usize],
) -> Result<Vec<Option<AgentRun>>> {
    let probe = |spec: &DeviceSpec| spec.rooted.then(|| Probe { api: api.clone(), device: spec.id });
    let mut runs: Vec<Option<AgentRun>> = specs.iter().map(|_| None).collect();
    for &i in selected.iter().filter(|&&i| specs[i].flaky_link) {
        bars[i].reset();
        runs[i] = Some(run_agent(&devices[i], bars[i].clone(), probe(&specs[i])).await.with_context(|| format!("device {}", specs[i].id))?);
    }
    let mut handles = Vec::new();
    for &i in selected.iter().filter(|&&i| !specs[i].flaky_link) {
        let (dirs, bar, probe) = (devices[i].clone(), bars[i].clone(), probe(&specs[i]));
        bar.reset();
        handles.push((i, tokio::spawn(async move { run_agent(&dirs, bar, probe).await })));
    }
    for (i, h) in handles {
        runs[i] = Some(h.await?.with_context(|| format!("device {}", specs[i].id))?);
    }
    Ok(runs)
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

    // Main 0.9.0 is only a factory version (never uploaded: no delta from it); 1.2.0 comes later.
    let artifacts = provision::artifacts(&layout, &opts.ferry_bin)?;
    for a in [artifacts.main(MAIN_BASE)?, artifacts.main(MAIN_NEW)?, &artifacts.agent_before, &artifacts.agent_new] {
        api.upload(a).await?;
    }
    let specs = fleet();
    let blacklisted: Vec<DeviceId> = specs.iter().filter(|d| d.blacklisted).map(|d| DeviceId::new(d.id)).collect::<Result<_, _>>()?;
    api.blacklist(MAIN_NEW, blacklisted).await?;

    let mut devices = Vec::new();
    let mut tampering = Vec::new();
    for spec in &specs {
        let dirs = provision::device(&layout, spec, &servers.query_url, &opts.ferry_bin, &artifacts)?;
        tampering.push(if spec.rooted { Some(provision::tamper(&dirs)?) } else { None });
        devices.push(dirs);
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

    // Round 1: main 1.1.0 and agent 1.1.0 are out; every device checks in.
    let everyone: Vec<usize> = (0..specs.len()).collect();
    let mut first_runs = run_round(&specs, &devices, &bars, &api, &everyone).await?;
    let mut first_seen = Vec::new();
    for (spec, dirs) in specs.iter().zip(&devices) {
        first_seen.push(observe(&api, spec, dirs).await);
    }

    // Round 2: main 1.2.0 is uploaded (the server builds deltas from 1.1.0 and from every older
    // version the fleet runs); the devices on 1.1.0 check in again.
    api.upload(artifacts.main(MAIN_NEXT)?).await?;
    let again: Vec<usize> = everyone.iter().copied().filter(|&i| specs[i].second_round.is_some()).collect();
    let mut second_runs = run_round(&specs, &devices, &bars, &api, &again).await?;
    let mut second_seen: Vec<Option<Observed>> = Vec::new();
    for (i, (spec, dirs)) in specs.iter().zip(&devices).enumerate() {
        second_seen.push(if again.contains(&i) { Some(observe(&api, spec, dirs).await) } else { None });
    }

    let records: Vec<DeviceRecord> = api.get("/api/v1/devices").await?;
    let reports: Vec<ArchivedReport> = api.get("/api/v1/reports").await?;
    let releases: Vec<ReleaseRecord> = api.get("/api/v1/releases").await?;
    let mut results = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let first = Seen { run: first_runs[i].take().unwrap_or_default(), observed: &first_seen[i] };
        let second = second_seen[i].as_ref().map(|observed| Seen { run: second_runs[i].take().unwrap_or_default(), observed });
        let ctx = Context { records: &records, reports: &reports, releases: &releases };
        results.push(judge(spec, &first, second.as_ref(), pids_before[i], tampering[i].as_ref(), &ctx));
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

/// One run of a device's agent and what it left behind.
struct Seen<'a> {
    run: AgentRun,
    observed: &'a Observed,
}

/// What the server knows at the end.
struct Context<'a> {
    records: &'a [DeviceRecord],
    reports: &'a [ArchivedReport],
    releases: &'a [ReleaseRecord],
}

impl Context<'_> {
    fn release(&self, component: Component, version: &Version) -> Option<&ReleaseRecord> {
        self.releases.iter().find(|r| r.component == component && &r.version == version)
    }

    /// How an archived report's update was shipped, from the bytes it fetched and the release's
    /// full and delta package sizes; `Err` when the bytes fit neither.
    fn delivery(&self, r: &UpgradeReport) -> Result<Delivery, String> {
        let rel = self
            .release(r.component, &r.to_version)
            .ok_or_else(|| format!("the server lists no release {} {}", r.component, r.to_version))?;
        let delta = rel.delta_from(&r.from_version);
        let by_bytes = if r.bytes_downloaded >= rel.length {
            Delivery::Full
        } else if delta.is_some_and(|d| d.length == r.bytes_downloaded) {
            Delivery::Delta
        } else {
            return Err(format!(
                "{} {} -> {} fetched {} bytes: neither the full package ({} bytes) nor a delta from {} ({})",
                r.component,
                r.from_version,
                r.to_version,
                r.bytes_downloaded,
                rel.length,
                r.from_version,
                delta.map(|d| format!("{} bytes", d.length)).unwrap_or_else(|| "none built".into())
            ));
        };
        // The agent's success report says when it installed from a delta; the two must agree.
        let says_delta = r.reason.contains(&format!("(delta from {})", r.from_version));
        if r.outcome == Outcome::Success && says_delta != (by_bytes == Delivery::Delta) {
            return Err(format!("report {:?} disagrees with {} bytes fetched ({by_bytes})", r.reason, r.bytes_downloaded));
        }
        Ok(by_bytes)
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Checks the records of a delta that failed pre-verification on a rooted device: the record
/// the server listed while it stood, and the failure report archived for the attempt.
fn judge_delta_failure(
    spec: &DeviceSpec,
    t: &Tampering,
    standing: Option<&Result<Vec<DeltaFailureRecord>, String>>,
    failed: &[&ArchivedReport],
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> String {
    let base: Version = spec.main_before.parse().expect("fleet versions parse");
    let new: Version = spec.main_after.parse().expect("fleet versions parse");
    match standing {
        None => problems.push("the agent never reached a failed delta attempt, so no delta-failure record was looked at".into()),
        Some(Err(e)) => problems.push(format!("listing the device's delta-failure records: {e}")),
        Some(Ok(list)) => match list.as_slice() {
            [r] => {
                if (r.component, &r.from_version, &r.to_version) != (Component::Main, &base, &new) {
                    problems.push(format!("delta-failure record is for {} {} -> {}, expected main {base} -> {new}", r.component, r.from_version, r.to_version));
                }
                match r.files.iter().find(|f| f.path == t.path) {
                    Some(f) if f.expected == t.genuine_sha256 && f.found == t.tampered_sha256 => {}
                    Some(f) => problems.push(format!(
                        "delta-failure record lists {} with expected {} / found {}, but the genuine file is {} and the tampered one {}",
                        f.path, f.expected, f.found, t.genuine_sha256, t.tampered_sha256
                    )),
                    None => problems.push(format!("delta-failure record does not name {}: {:?}", t.path, r.files)),
                }
            }
            other => problems.push(format!("expected one standing delta-failure record while the full package was fetched, the server listed {}", other.len())),
        },
    }
    let delta_failure = failed.iter().find(|r| {
        r.report.component == Component::Main
            && r.report.from_version == base
            && r.report.to_version == new
            && !r.report.rolled_back
            && r.report.reason.contains(&t.path)
            && r.report.reason.contains(&t.genuine_sha256)
            && r.report.reason.contains(&t.tampered_sha256)
    });
    match delta_failure {
        Some(r) => {
            if ctx.delivery(&r.report) != Ok(Delivery::Delta) {
                problems.push(format!("the failed attempt did not fetch the delta package: {:?}", ctx.delivery(&r.report)));
            }
        }
        None => problems.push(format!(
            "expected an archived failure report naming {} with its genuine and tampered sha256, got {:?}",
            t.path,
            failed.iter().map(|r| r.report.reason.as_str()).collect::<Vec<_>>()
        )),
    }
    if failed.len() != 1 {
        problems.push(format!("expected exactly one failure report (the refused delta), got {}", failed.len()));
    }
    format!(
        "delta {base}->{new} refused before writing: {} sha256 {}… expected, {}… found; record listed by the server, full package installed, record cleared",
        t.path,
        short(&t.genuine_sha256),
        short(&t.tampered_sha256)
    )
}

/// Checks what every round must leave: the version on disk and running, genuine files, no
/// standing delta-failure record on either side.
fn judge_end_state(o: &Observed, main_expected: &str, round: &str, problems: &mut Vec<String>) {
    if o.main_on_disk.as_deref() != Some(main_expected) {
        problems.push(format!("{round}: main is {:?} on disk, expected {main_expected}", o.main_on_disk));
    }
    if o.running.as_deref() != Some(main_expected) {
        problems.push(format!("{round}: main program reports {:?}, expected {main_expected} running", o.running));
    }
    if !o.assets_genuine {
        problems.push(format!("{round}: the active release's assets.bin is not the genuine file of {:?}", o.main_on_disk));
    }
    match &o.server_failures {
        Ok(list) if list.is_empty() => {}
        Ok(list) => problems.push(format!("{round}: the server still lists {} delta-failure record(s): {:?}", list.len(), list)),
        Err(e) => problems.push(format!("{round}: listing delta-failure records: {e}")),
    }
    match &o.local_failures {
        Ok(0) => {}
        Ok(n) => problems.push(format!("{round}: the device still keeps {n} delta-failure record(s)")),
        Err(e) => problems.push(format!("{round}: {e}")),
    }
}

fn describe_delivery(delivery: Delivery, r: &UpgradeReport, ctx: &Context<'_>) -> String {
    let full = ctx.release(r.component, &r.to_version).map(|rel| rel.length).unwrap_or(0);
    match delivery {
        Delivery::Delta => format!("delta from {}: {} bytes instead of {} (full)", r.from_version, r.bytes_downloaded, full),
        Delivery::Full => format!("full package, {} bytes", r.bytes_downloaded),
        Delivery::Nothing => String::new(),
    }
}

fn judge(
    spec: &DeviceSpec,
    first: &Seen<'_>,
    second: Option<&Seen<'_>>,
    pid_before: Option<u32>,
    tampering: Option<&Tampering>,
    ctx: &Context<'_>,
) -> DeviceResult {
    let next: Version = MAIN_NEXT.parse().expect("fleet versions parse");
    let all_mine: Vec<&ArchivedReport> = ctx.reports.iter().filter(|r| r.report.device_id.as_str() == spec.id).collect();
    let is_second = |r: &&ArchivedReport| r.report.component == Component::Main && r.report.to_version == next;
    let mine: Vec<&ArchivedReport> = all_mine.iter().copied().filter(|r| !is_second(r)).collect();
    let mine2: Vec<&ArchivedReport> = all_mine.iter().copied().filter(is_second).collect();
    let agent_after = ctx
        .records
        .iter()
        .find(|d| d.device_id.as_str() == spec.id)
        .and_then(|d| d.upgrader_version.as_ref().map(ToString::to_string));
    let run = &first.run;
    let o = first.observed;
    let bytes: u64 = mine.iter().map(|r| r.report.bytes_downloaded).sum();
    let mut problems = Vec::new();
    // `ferry agent --once` exits 3 when a component ends the run on a failed attempt (the
    // rollback); the rooted device's refused delta is followed by a good full install: exit 0.
    let expected_code = if spec.config_schema == 1 { 3 } else { 0 };
    if run.exit_code != Some(expected_code) {
        problems.push(format!(
            "agent exited with {:?}, expected {expected_code}: {}",
            run.exit_code,
            run.stderr.lines().last().unwrap_or("")
        ));
    }
    judge_end_state(o, spec.main_after, "round 1", &mut problems);
    let agent_reported = mine.iter().any(|r| r.report.component == Component::Agent && r.report.to_version.to_string() == spec.agent_after);
    if spec.agent_after != crate::fleet::AGENT_BEFORE && !agent_reported {
        problems.push(format!("no success report for the agent update to {}", spec.agent_after));
    }
    if spec.agent_after != crate::fleet::AGENT_BEFORE && pid_before.is_some() && o.pid != pid_before {
        problems.push("the main program was restarted by the agent's self-update".into());
    }
    let failures: Vec<&ArchivedReport> = mine.iter().copied().filter(|r| r.report.outcome == Outcome::Failure).collect();
    let successes: Vec<&ArchivedReport> = mine.iter().copied().filter(|r| r.report.outcome == Outcome::Success).collect();
    // The report whose delivery the row shows: the install that decided the round.
    let deciding = successes.last().or(failures.last()).copied();
    let delivery = match deciding {
        None => Ok(Delivery::Nothing),
        Some(r) => ctx.delivery(&r.report),
    };
    match &delivery {
        Ok(d) if *d == spec.delivery => {}
        Ok(d) => problems.push(format!("round 1 was shipped as {d}, expected {}", spec.delivery)),
        Err(e) => problems.push(e.clone()),
    }
    let mut details = Vec::new();
    let outcome;
    if spec.config_schema == 1 {
        match failures.first() {
            Some(f) if f.report.rolled_back && failures.len() == 1 && successes.is_empty() => {
                outcome = "rolled back".to_string();
                details.push(f.report.reason.clone());
            }
            _ => {
                problems.push("expected exactly one archived failure report, with rollback".into());
                outcome = "WRONG".into();
            }
        }
    } else if spec.rooted {
        let t = tampering.expect("a rooted device was tampered with");
        details.push(judge_delta_failure(spec, t, run.standing_failures.as_ref(), &failures, ctx, &mut problems));
        outcome = "updated".into();
    } else if let Some(f) = failures.first() {
        problems.push(format!("unexpected failure report: {}", f.report.reason));
        outcome = "failed".into();
        details.push(f.report.reason.clone());
    } else if mine.is_empty() {
        outcome = "nothing new".into();
        let reason = nothing_new_reason(run).unwrap_or_default();
        if spec.blacklisted && !reason.contains("blacklist") {
            problems.push(format!("expected a blacklist answer, agent said {reason:?}"));
        }
        details.push(reason);
    } else {
        outcome = "updated".into();
    }
    if resumed(run) {
        details.push(format!(
            "link dropped, {} segment(s) retried, resumed from the bytes on disk ({} bytes fetched in all)",
            segment_retries(run),
            bytes
        ));
    }
    for r in &successes {
        let how = ctx.delivery(&r.report).map(|d| describe_delivery(d, &r.report, ctx)).unwrap_or_default();
        details.push(format!("{} {} -> {} ({how})", r.report.component, r.report.from_version, r.report.to_version));
    }
    if spec.flaky_link && !resumed(run) {
        problems.push("the download did not report resuming after the link dropped".into());
    }
    let delivery = delivery.unwrap_or(Delivery::Nothing);
    let full_bytes = match (delivery, deciding) {
        (Delivery::Delta, Some(r)) => ctx.release(r.report.component, &r.report.to_version).map(|rel| rel.length),
        _ => None,
    };
    let first_result = RoundResult {
        main_before: spec.main_before.to_string(),
        main_after: o.main_on_disk.clone().unwrap_or_else(|| "?".into()),
        agent_before: crate::fleet::AGENT_BEFORE.to_string(),
        agent_after: agent_after.clone().unwrap_or_else(|| "?".into()),
        outcome,
        delivery: delivery.to_string(),
        bytes_downloaded: bytes,
        full_bytes,
        reason: details.join("; "),
    };

    let second_result = match (spec.second_round, second) {
        (None, None) => {
            if !mine2.is_empty() {
                problems.push(format!("{} report(s) for main {MAIN_NEXT}, but the device was not run again", mine2.len()));
            }
            None
        }
        (Some(_), None) | (None, Some(_)) => {
            problems.push("the device's second round does not match the fleet plan".into());
            None
        }
        (Some(want), Some(seen)) => Some(judge_second(spec, want, seen, &mine2, agent_after.as_deref(), ctx, &mut problems)),
    };
    DeviceResult { id: spec.id.to_string(), story: spec.story.to_string(), first: first_result, second: second_result, problems }
}

/// Round 2: one success report to main 1.2.0 from 1.1.0, shipped as expected (a delta: fewer
/// bytes than the full package, exactly the delta package's length).
fn judge_second(
    spec: &DeviceSpec,
    want: SecondRound,
    seen: &Seen<'_>,
    mine2: &[&ArchivedReport],
    agent_after: Option<&str>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> RoundResult {
    let run = &seen.run;
    if run.exit_code != Some(0) {
        problems.push(format!(
            "round 2: agent exited with {:?}, expected 0: {}",
            run.exit_code,
            run.stderr.lines().last().unwrap_or("")
        ));
    }
    judge_end_state(seen.observed, want.main_after, "round 2", problems);
    let bytes: u64 = mine2.iter().map(|r| r.report.bytes_downloaded).sum();
    let mut details = Vec::new();
    let mut delivery = Delivery::Nothing;
    let mut full_bytes = None;
    match mine2 {
        [r] if r.report.outcome == Outcome::Success && r.report.from_version.to_string() == spec.main_after => {
            let full = ctx.release(Component::Main, &r.report.to_version).map(|rel| rel.length).unwrap_or(0);
            match ctx.delivery(&r.report) {
                Ok(d) => {
                    delivery = d;
                    if d != want.delivery {
                        problems.push(format!("round 2 was shipped as {d}, expected {}", want.delivery));
                    }
                    if d == Delivery::Delta {
                        full_bytes = Some(full);
                        if r.report.bytes_downloaded >= full {
                            problems.push(format!("round 2 delta fetched {} bytes, not less than the full {full}", r.report.bytes_downloaded));
                        }
                    }
                    details.push(format!("main {} -> {} ({})", r.report.from_version, r.report.to_version, describe_delivery(d, &r.report, ctx)));
                }
                Err(e) => problems.push(format!("round 2: {e}")),
            }
            if spec.rooted {
                details.push("back on deltas after the full install cleared its record".into());
            }
        }
        other => problems.push(format!(
            "round 2: expected one success report main {} -> {MAIN_NEXT}, got {:?}",
            spec.main_after,
            other.iter().map(|r| (r.report.outcome, r.report.reason.as_str())).collect::<Vec<_>>()
        )),
    }
    RoundResult {
        main_before: spec.main_after.to_string(),
        main_after: seen.observed.main_on_disk.clone().unwrap_or_else(|| "?".into()),
        agent_before: agent_after.unwrap_or("?").to_string(),
        agent_after: agent_after.unwrap_or("?").to_string(),
        outcome: if mine2.is_empty() { "nothing new".into() } else { "updated".into() },
        delivery: delivery.to_string(),
        bytes_downloaded: bytes,
        full_bytes,
        reason: details.join("; "),
    }
}
