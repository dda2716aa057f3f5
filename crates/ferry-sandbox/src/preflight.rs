//! The agent's secure preflight: install gate, sandbox rehearsal with mirrored traffic, and a
//! verdict.
//!
//! [`preflight`] opens and scans the package ([`crate::gate::run`]), starts the new version on
//! its unpacked tree in a sandbox ([`ServiceSpec::sandbox`]: namespaces, or a QEMU guest) with
//! a copy of the device's data, waits for it to serve, mirrors live traffic to it through the
//! proxy already in front of production for the preset period, and judges:
//! - **safe** ([`SafeVerdict`]): nothing blocking in the scan, the sandbox stayed up, and every
//!   mirrored request was answered like production (beyond learned noise), in time. The
//!   sandbox keeps running for [`SafeVerdict::switch_over`]: traffic to the sandbox, the device
//!   upgraded, traffic back to the upgraded production, sandbox shut.
//! - **unsafe** ([`UnsafeVerdict`]): the sandbox is shut, the device untouched, and a
//!   [`SecurityAlert`] (release, device, findings, evidence) is ready for `POST /api/v1/alerts`.
//!
//! Problems of the device itself (no work directory, sandbox cannot start, too little traffic
//! to judge) are a [`PreflightError`], not a verdict: nothing is installed and nothing alerted.

use crate::gate::{self, GateError, GateInput};
use crate::mirror::{Backend, MirrorReport, ProxyControl, Switchover};
use crate::sandbox::{
    HardwareStub, MonitorReport, ResourceLimits, SandboxBackend, SandboxChild, SandboxSpec,
};
use crate::scan::{Policy, RuleDb, ScanReport};
use ferry_core::api::{AlertEvidence, AlertFinding, SecurityAlert};
use ferry_core::{Component, DeviceId, Version};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the new version runs as a service in its sandbox.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Program and arguments inside the unpacked tree.
    pub argv: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Where it listens inside its sandbox (its own network namespace).
    pub listen: SocketAddr,
    /// The device's data directory (the sandbox gets a copy).
    pub data_dir: Option<PathBuf>,
    /// cgroup limits.
    pub limits: ResourceLimits,
    /// Stub hardware the firmware expects (from its metadata).
    pub stubs: Vec<HardwareStub>,
    /// The sandbox backend (namespaces by default, or a QEMU guest).
    pub sandbox: SandboxBackend,
}

/// Everything a preflight needs.
#[derive(Debug)]
pub struct PreflightInput<'a> {
    /// This device.
    pub device_id: DeviceId,
    /// The release being checked.
    pub component: Component,
    /// Its version.
    pub version: Version,
    /// The install gate's input (envelope, keys, unpack rule, work directory).
    pub gate: GateInput<'a>,
    /// The signed rule database.
    pub rules: &'a RuleDb,
    /// The block/warn policy.
    pub policy: &'a Policy,
    /// How to run the new version.
    pub service: ServiceSpec,
    /// How long the new version may take to accept connections.
    pub startup_timeout: Duration,
    /// How long live traffic is mirrored to it.
    pub mirror_period: Duration,
    /// Fewest mirrored requests to judge by.
    pub min_mirrored: u64,
    /// Now (Unix milliseconds), stamped on an alert.
    pub now_ms: u64,
}

/// The verdict.
#[derive(Debug)]
pub enum Verdict {
    /// Safe to install: the sandbox is kept running for the switchover.
    Safe(Box<SafeVerdict>),
    /// Unsafe: sandbox shut, device untouched, alert ready.
    Unsafe(Box<UnsafeVerdict>),
}

/// A package that passed: scan, sandbox and mirrored traffic.
#[derive(Debug)]
pub struct SafeVerdict {
    /// The scan report (pass or warn).
    pub scan: ScanReport,
    /// What the mirror observed.
    pub mirror: MirrorReport,
    /// The sandboxed new version, as a backend for the proxy.
    pub candidate: Backend,
    /// The running sandbox.
    pub sandbox: SandboxChild,
    /// What the sandbox monitor saw during the rehearsal.
    pub monitor: MonitorReport,
    /// What happened, step by step.
    pub steps: Vec<String>,
}

/// A package judged unsafe.
#[derive(Debug, Clone)]
pub struct UnsafeVerdict {
    /// The alert for the server.
    pub alert: SecurityAlert,
    /// What the sandbox monitor saw (`None` when the verdict came before the sandbox).
    pub monitor: Option<MonitorReport>,
    /// What happened, step by step.
    pub steps: Vec<String>,
}

/// What the switchover did.
#[derive(Debug, Clone)]
pub struct SwitchoverLog {
    /// Production traffic to the sandbox.
    pub to_candidate: Switchover,
    /// Traffic back to the upgraded production instance.
    pub back_to_production: Switchover,
    /// What happened, step by step.
    pub steps: Vec<String>,
}

/// A preflight that reached no verdict.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The gate could not run (I/O, scan error), as opposed to refusing the package.
    #[error("preflight could not run the install gate: {0}")]
    Gate(GateError),
    /// The sandbox could not be started.
    #[error("preflight could not start the sandbox: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// Too little live traffic during the mirror period to judge.
    #[error(
        "only {mirrored} requests were mirrored in {period:?} (at least {needed} needed to judge); \
         nothing installed, run the preflight again with a longer period"
    )]
    NotEnoughTraffic {
        /// Requests mirrored.
        mirrored: u64,
        /// Requests needed.
        needed: u64,
        /// The period.
        period: Duration,
    },
    /// The switchover could not complete.
    #[error("switchover failed: {0}")]
    Switchover(String),
}

/// Keeps the last `cap` bytes of a pipe.
fn drain_tail(mut pipe: impl Read + Send + 'static, cap: usize) -> Arc<Mutex<Vec<u8>>> {
    let tail = Arc::new(Mutex::new(Vec::new()));
    let out = tail.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut t = out.lock().expect("tail lock");
            t.extend_from_slice(&buf[..n]);
            if t.len() > cap {
                let excess = t.len() - cap;
                t.drain(..excess);
            }
        }
    });
    tail
}

fn tail_text(tail: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&tail.lock().expect("tail lock")).into_owned()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n[truncated]");
    }
    s
}

struct Alerting<'a> {
    input: &'a PreflightInput<'a>,
    steps: Vec<String>,
    monitor: Option<MonitorReport>,
}

impl Alerting<'_> {
    fn step(&mut self, s: impl Into<String>) {
        self.steps.push(s.into());
    }

    fn unsafe_verdict(
        self,
        stage: &str,
        findings: Vec<AlertFinding>,
        evidence: Vec<AlertEvidence>,
    ) -> Verdict {
        let alert = SecurityAlert {
            device_id: self.input.device_id.clone(),
            component: self.input.component,
            version: self.input.version.clone(),
            stage: stage.into(),
            findings,
            evidence,
            detected_at: self.input.now_ms,
        };
        Verdict::Unsafe(Box::new(UnsafeVerdict {
            alert,
            monitor: self.monitor,
            steps: self.steps,
        }))
    }
}

impl Alerting<'_> {
    /// What the sandbox monitor saw: a step summing it up, keeps the report, and returns
    /// findings (outbound attempts, stray writes; a crash is judged by the caller) with their
    /// evidence, plus the whole report as evidence when there is any finding.
    fn watched(&mut self, sandbox: &SandboxChild) -> (Vec<AlertFinding>, Vec<AlertEvidence>) {
        let seen = sandbox.monitor_report();
        self.step(monitor_summary(&seen));
        let mut findings = Vec::new();
        let mut evidence = Vec::new();
        for o in &seen.outbound {
            findings.push(finding(
                "critical",
                "sandbox/outbound-connection",
                &o.address,
                format!(
                    "the new version tried to reach {} outside the device ({} x{}, {} bytes); {}",
                    o.address, o.syscall, o.count, o.bytes, o.answer
                ),
            ));
            evidence.push(AlertEvidence {
                kind: "outbound_connection".into(),
                detail: format!(
                    "{} to {} x{} ({} payload bytes), {} by the sandbox monitor",
                    o.syscall, o.address, o.count, o.bytes, o.answer
                ),
            });
        }
        for w in &seen.stray_writes {
            findings.push(finding(
                "high",
                "sandbox/stray-write",
                &w.path,
                format!(
                    "the new version tried to write {} outside its data ({} x{}); refused",
                    w.path, w.syscall, w.count
                ),
            ));
            evidence.push(AlertEvidence {
                kind: "stray_write".into(),
                detail: format!(
                    "{} of {} for writing x{}, refused (EACCES)",
                    w.syscall, w.path, w.count
                ),
            });
        }
        if !findings.is_empty() {
            evidence.push(AlertEvidence {
                kind: "monitor_report".into(),
                detail: truncate(
                    serde_json::to_string(&seen).unwrap_or_else(|e| e.to_string()),
                    16 << 10,
                ),
            });
        }
        self.monitor = Some(seen);
        (findings, evidence)
    }
}

/// One line on what the monitor saw.
pub fn monitor_summary(m: &MonitorReport) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let outbound = list(
        m.outbound
            .iter()
            .map(|o| format!("{} {} x{}", o.syscall, o.address, o.count))
            .collect(),
    );
    let stray = list(
        m.stray_writes
            .iter()
            .map(|w| format!("{} x{}", w.path, w.count))
            .collect(),
    );
    let denied = list(
        m.denied_syscalls
            .iter()
            .map(|d| format!("{} x{}", d.name, d.count))
            .collect(),
    );
    let memory = m
        .peak_memory_bytes
        .map_or("n/a".to_string(), |b| format!("{} KiB", b / 1024));
    let cpu = m
        .cpu_time_us
        .map_or("n/a".to_string(), |us| format!("{} ms", us / 1000));
    let mut line = format!(
        "sandbox monitor: outbound attempts: {outbound}; stray writes: {stray}; refused system \
         calls: {denied}; peak memory {memory}, CPU {cpu}"
    );
    if let Some(e) = &m.exit {
        line.push_str(&format!("; {e}"));
    }
    if let Some(e) = &m.monitor_error {
        line.push_str(&format!("; MONITOR NOT WATCHING: {e}"));
    }
    line
}

/// The findings and evidence of a security alert for a static scan that blocked an install:
/// one finding per blocking scan finding, the whole report (cut at 16 KiB) as evidence.
pub fn scan_alert(report: &ScanReport) -> (Vec<AlertFinding>, Vec<AlertEvidence>) {
    let findings = report
        .findings
        .iter()
        .filter(|f| f.blocking)
        .map(|f| {
            finding(
                &f.severity.to_string(),
                &format!("scan/{}", f.rule),
                &f.path,
                match &f.evidence {
                    Some(e) => format!("{} ({e})", f.message),
                    None => f.message.clone(),
                },
            )
        })
        .collect();
    let evidence = vec![AlertEvidence {
        kind: "scan_report".into(),
        detail: truncate(report.to_string(), 16 << 10),
    }];
    (findings, evidence)
}

fn finding(severity: &str, rule: &str, location: &str, message: impl Into<String>) -> AlertFinding {
    AlertFinding {
        severity: severity.into(),
        rule: rule.into(),
        location: location.into(),
        message: message.into(),
    }
}

/// Runs blocking work (the gate, a sandbox boot) on the current thread, telling a
/// multi-threaded runtime it blocks so its other tasks (the proxy) keep running.
fn blocking<T>(run: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

/// Runs the gate (see [`blocking`]).
fn run_gate(input: &PreflightInput) -> Result<gate::GatePassed, GateError> {
    blocking(|| gate::run(&input.gate, input.rules, input.policy))
}

/// Runs the preflight (see the module documentation). `proxy` is the mirroring proxy in front
/// of production; its report is reset at the start of the mirror period.
pub async fn preflight(
    input: &PreflightInput<'_>,
    proxy: &ProxyControl,
) -> Result<Verdict, PreflightError> {
    let mut a = Alerting {
        input,
        steps: Vec::new(),
        monitor: None,
    };
    let release = format!("{} {}", input.component, input.version);

    // 1. Gate: decrypt + vendor signature, unpack, static scan.
    let passed = match run_gate(input) {
        Ok(p) => p,
        Err(GateError::Blocked(report)) => {
            a.step(format!(
                "static scan BLOCKED {release}: {} finding(s)",
                report.findings.len()
            ));
            let (findings, evidence) = scan_alert(&report);
            return Ok(a.unsafe_verdict("scan", findings, evidence));
        }
        Err(e @ GateError::Envelope(_)) => {
            a.step(format!(
                "package of {release} refused before unpacking: {e}"
            ));
            let f = finding("critical", "gate/envelope", "", e.to_string());
            return Ok(a.unsafe_verdict("gate", vec![f], Vec::new()));
        }
        Err(e @ GateError::Unpack(_)) => {
            a.step(format!("package of {release} refused while unpacking: {e}"));
            let f = finding("high", "gate/unpack", "", e.to_string());
            return Ok(a.unsafe_verdict("gate", vec![f], Vec::new()));
        }
        Err(e) => return Err(PreflightError::Gate(e)),
    };
    a.step(format!(
        "envelope opened (vendor key {}), {} files unpacked, static scan {}",
        passed.opened.vendor_key_id, passed.unpacked.files, passed.report.verdict
    ));

    // 2. Sandbox: the new version on its unpacked tree with a copy of the device's data.
    let spec = SandboxSpec {
        rootfs: input.gate.work_dir.join("rootfs"),
        data_dir: input.service.data_dir.clone(),
        work_dir: input.gate.work_dir.join("sandbox"),
        argv: input.service.argv.clone(),
        env: input.service.env.clone(),
        hostname: "ferry-preflight".into(),
        limits: input.service.limits,
        stubs: input.service.stubs.clone(),
    };
    let started = Instant::now();
    // A QEMU guest boots for seconds: not on a runtime thread the proxy needs.
    let (mut sandbox, candidate) =
        blocking(|| input.service.sandbox.start_service(&spec, input.service.listen))?;
    let (stdout, stderr) = sandbox.take_stdio();
    let stdout = stdout.map(|p| drain_tail(p, 16 << 10));
    let stderr = stderr.map(|p| drain_tail(p, 16 << 10));
    let output_evidence = |stdout: &Option<Arc<Mutex<Vec<u8>>>>,
                           stderr: &Option<Arc<Mutex<Vec<u8>>>>| {
        let mut ev = Vec::new();
        for (kind, pipe) in [("sandbox_stdout", stdout), ("sandbox_stderr", stderr)] {
            if let Some(p) = pipe {
                let text = tail_text(p);
                if !text.is_empty() {
                    ev.push(AlertEvidence {
                        kind: kind.into(),
                        detail: text,
                    });
                }
            }
        }
        ev
    };
    a.step(format!(
        "sandbox started ({}; landlock {}; cgroup {})",
        sandbox.isolation.namespaces.join("+"),
        sandbox.isolation.landlock,
        sandbox.isolation.cgroup
    ));

    // 3. Wait until it serves.
    let mut last_error;
    loop {
        if let Some(status) = sandbox.try_wait()? {
            a.step(format!("the new version exited during start-up: {status}"));
            let f = finding(
                "high",
                "sandbox/crash",
                &input.service.argv.join(" "),
                format!("the new version exited during start-up ({status})"),
            );
            let mut ev = output_evidence(&stdout, &stderr);
            let (mut fs, mev) = a.watched(&sandbox);
            fs.insert(0, f);
            ev.extend(mev);
            drop(sandbox);
            return Ok(a.unsafe_verdict("sandbox", fs, ev));
        }
        match candidate.connect().await {
            Ok(_) => break,
            Err(e) => last_error = e.to_string(),
        }
        if started.elapsed() > input.startup_timeout {
            a.step(format!(
                "the new version did not accept connections on {} within {:?}",
                input.service.listen, input.startup_timeout
            ));
            let f = finding(
                "high",
                "sandbox/no-service",
                &input.service.listen.to_string(),
                format!(
                    "the new version did not accept connections within {:?} (last attempt: {last_error})",
                    input.startup_timeout
                ),
            );
            let mut ev = output_evidence(&stdout, &stderr);
            let (mut fs, mev) = a.watched(&sandbox);
            fs.insert(0, f);
            ev.extend(mev);
            drop(sandbox);
            return Ok(a.unsafe_verdict("sandbox", fs, ev));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.step(format!(
        "the new version serves on {} in its sandbox after {} ms",
        input.service.listen,
        started.elapsed().as_millis()
    ));

    // 4. Mirror live traffic for the preset period, watching the sandbox.
    proxy.reset_report();
    proxy.mirror(candidate.clone(), None, input.mirror_period);
    let until = Instant::now() + input.mirror_period;
    let mut crashed = None;
    while Instant::now() < until {
        if let Some(status) = sandbox.try_wait()? {
            crashed = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.stop_mirroring();
    let report = settle(proxy, input.mirror_period.max(Duration::from_secs(2))).await;
    if crashed.is_none() {
        crashed = sandbox.try_wait()?;
    }
    a.step(format!(
        "mirrored {} requests for {:?}: {} matched, {} mismatched, {} candidate errors, {} \
         time-outs; production p50 {} us, candidate p50 {} us",
        report.mirrored,
        input.mirror_period,
        report.matched,
        report.mismatched,
        report.candidate_errors,
        report.candidate_timeouts,
        report.production_latency.p50_us,
        report.candidate_latency.p50_us
    ));

    let mut findings = Vec::new();
    let mut evidence = Vec::new();
    if let Some(status) = crashed {
        findings.push(finding(
            "high",
            "sandbox/crash",
            &input.service.argv.join(" "),
            format!("the new version exited while serving mirrored traffic ({status})"),
        ));
    }
    for m in &report.mismatches {
        let what = if m.fields.is_empty() {
            m.detail.clone()
        } else {
            m.fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: production {} vs candidate {}",
                        f.field, f.production, f.candidate
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        findings.push(finding(
            "high",
            "mirror/mismatch",
            &m.request,
            format!("the new version answered differently from production: {what}"),
        ));
        evidence.push(AlertEvidence {
            kind: "response_mismatch".into(),
            detail: serde_json::to_string(m).unwrap_or_else(|e| e.to_string()),
        });
    }
    if report.mismatched > report.mismatches.len() as u64 {
        findings.push(finding(
            "high",
            "mirror/mismatch",
            "",
            format!(
                "{} more mismatching answers not listed",
                report.mismatched - report.mismatches.len() as u64
            ),
        ));
    }
    // What the monitor caught goes first (the alert is often shown abridged).
    let (watch_findings, watch_evidence) = a.watched(&sandbox);
    let monitor_caught = !watch_findings.is_empty();
    let at = usize::from(crashed.is_some());
    findings.splice(at..at, watch_findings);
    evidence.splice(0..0, watch_evidence);
    if report.candidate_errors + report.candidate_timeouts > 0 {
        findings.push(finding(
            "high",
            "mirror/candidate-failed",
            "",
            format!(
                "the new version failed {} and timed out on {} mirrored requests (first: {})",
                report.candidate_errors,
                report.candidate_timeouts,
                report.errors.first().map_or("", String::as_str)
            ),
        ));
    }
    if !findings.is_empty() {
        evidence.extend(output_evidence(&stdout, &stderr));
        evidence.push(AlertEvidence {
            kind: "mirror_report".into(),
            detail: truncate(
                serde_json::to_string(&report).unwrap_or_else(|e| e.to_string()),
                16 << 10,
            ),
        });
        let stage = if crashed.is_some() || (monitor_caught && report.mismatched == 0) {
            "sandbox"
        } else {
            "mirror"
        };
        a.step(format!(
            "verdict UNSAFE: {} finding(s); sandbox shut, device untouched",
            findings.len()
        ));
        drop(sandbox);
        return Ok(a.unsafe_verdict(stage, findings, evidence));
    }
    if report.mirrored < input.min_mirrored {
        drop(sandbox);
        return Err(PreflightError::NotEnoughTraffic {
            mirrored: report.mirrored,
            needed: input.min_mirrored,
            period: input.mirror_period,
        });
    }
    a.step("verdict SAFE: the new version answered every mirrored request like production");
    let monitor = a.monitor.take().unwrap_or_default();
    Ok(Verdict::Safe(Box::new(SafeVerdict {
        scan: passed.report,
        mirror: report,
        candidate,
        sandbox,
        monitor,
        steps: a.steps,
    })))
}

/// Waits (bounded) until every mirrored request has its outcome.
async fn settle(proxy: &ProxyControl, max: Duration) -> MirrorReport {
    let deadline = Instant::now() + max;
    loop {
        let r = proxy.report();
        let done = r.matched + r.mismatched + r.candidate_errors + r.candidate_timeouts;
        if done >= r.mirrored || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl SafeVerdict {
    /// The switchover of a safe verdict: production traffic goes to the sandboxed new
    /// version (in-flight requests finish on production), `upgrade` upgrades the real device
    /// and returns the upgraded production instance, which must accept connections (health
    /// check) before traffic is switched back to it; then the sandbox is shut down. If the
    /// upgrade fails, traffic stays on the sandboxed version and the error is returned (the
    /// caller rolls the device back and switches to the restored instance).
    pub async fn switch_over<F, Fut>(
        self,
        proxy: &ProxyControl,
        upgrade: F,
        drain: Duration,
    ) -> Result<SwitchoverLog, PreflightError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Backend, String>>,
    {
        let SafeVerdict {
            candidate,
            mut sandbox,
            mut steps,
            ..
        } = self;
        let to_candidate = proxy
            .switch_to(candidate, drain)
            .await
            .map_err(|e| PreflightError::Switchover(e.to_string()))?;
        steps.push(format!(
            "traffic switched to the sandbox ({} requests drained from production in {} ms)",
            to_candidate.in_flight_at_switch,
            to_candidate.drained_in.as_millis()
        ));
        let upgraded = upgrade().await.map_err(|e| {
            PreflightError::Switchover(format!(
                "the device upgrade failed ({e}); traffic stays on the sandboxed version"
            ))
        })?;
        steps.push(format!("device upgraded; production now at {upgraded}"));
        let back = proxy
            .switch_to(upgraded, drain)
            .await
            .map_err(|e| PreflightError::Switchover(e.to_string()))?;
        steps.push(format!(
            "health check passed, traffic switched back to production ({} requests drained \
             from the sandbox in {} ms)",
            back.in_flight_at_switch,
            back.drained_in.as_millis()
        ));
        sandbox.kill()?;
        drop(sandbox);
        steps.push("sandbox shut down".into());
        Ok(SwitchoverLog {
            to_candidate,
            back_to_production: back,
            steps,
        })
    }
}
