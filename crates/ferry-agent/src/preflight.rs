//! The secure preflight in the real install path (`[preflight]` in `agent.toml`).
//!
//! When a main-program release has downloaded and its TUF target and release signature have
//! verified (`Verified`), and before anything is backed up or installed, the agent:
//! 1. refreshes the firmware's signed metadata ([`crate::firmware`]) for the vendor key and
//!    unpack rule;
//! 2. runs the `ferry_sandbox` install gate on the vendor package the release carries
//!    (decrypt with the device group key, vendor signature, unpack by the rule, static scan with
//!    the signed rule database and policy);
//! 3. with `[preflight.service]`, rehearses the new version in a namespace sandbox with live
//!    traffic mirrored by the agent's proxy ([`ferry_sandbox::preflight::preflight`]).
//!
//! **Unsafe**: nothing is installed, the [`SecurityAlert`] goes to `POST /api/v1/alerts` (the
//! server halts the release), the attempt fails and is reported. **Safe**: the normal install
//! runs and the unpacked firmware tree is placed in the release as `firmware/`; with a service,
//! the install runs inside [`SafeVerdict::switch_over`] (traffic on the sandbox meanwhile).
//!
//! The go-live check ([`check_go_live`]) runs before anything is fetched: the release's signed
//! `custom.go_live` against this device's own clock.

use crate::agent::{Agent, Track};
use crate::config::{AgentConfig, PreflightConfig, PreflightServiceConfig};
use crate::error::{AgentError, Result};
use crate::report::{AttemptOutcome, AttemptSummary};
use crate::slots::Slot;
use crate::state::{ensure_dir, remove_dir_if_exists};
use chrono::{DateTime, Utc};
use ferry_artifact::keys::PublicKey;
use ferry_core::api::{AlertEvidence, AlertFinding, SecurityAlert, UpdateOffer};
use ferry_core::install::{Event, InstallState, Pending};
use ferry_core::{Component, Version};
use ferry_sandbox::envelope::GroupSecret;
use ferry_sandbox::gate::{self, GateError, GateInput};
use ferry_sandbox::mirror::{Backend, HttpMirrorProxy, MirrorConfig, ProxyControl};
use ferry_sandbox::preflight::{PreflightInput, SafeVerdict, ServiceSpec, Verdict, preflight};
use ferry_sandbox::sandbox::{HardwareStub, ResourceLimits};
use ferry_sandbox::scan::{Policy, RuleDb, default_rules};
use ferry_sandbox::unpack::{Limits, UnpackRule};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a switch waits for in-flight requests to drain.
const DRAIN: Duration = Duration::from_secs(10);

/// Whether releases of `component` go through the preflight.
pub fn enabled(config: &AgentConfig, component: Component) -> bool {
    component == Component::Main && config.preflight.is_some()
}

/// Refuses (with [`AgentError::NotLiveYet`]) a release whose signed go-live is still ahead
/// of this device's clock, whatever the server offered.
pub(crate) fn check_go_live(
    agent: &Agent,
    offer: &UpdateOffer,
    go_live: Option<u64>,
    now: DateTime<Utc>,
) -> Result<()> {
    let now = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    if ferry_core::firmware::go_live_reached(go_live, now) {
        return Ok(());
    }
    Err(AgentError::NotLiveYet {
        device: agent.config.device_id.to_string(),
        component: offer.component,
        version: offer.version.clone(),
        go_live: go_live.unwrap_or_default(),
        now,
    })
}

/// The summary of an offer left alone because its go-live is still ahead.
pub(crate) fn not_live_summary(
    offer: &UpdateOffer,
    from: Version,
    delta_from: Option<Version>,
    reason: String,
) -> AttemptSummary {
    AttemptSummary {
        component: offer.component,
        from,
        to: offer.version.clone(),
        outcome: AttemptOutcome::Deferred,
        reason,
        bytes_downloaded: 0,
        bytes_this_run: 0,
        resumed: false,
        segment_retries: 0,
        rolled_back: false,
        reported: true,
        delta_from,
    }
}

/// The preflight's work directory for an attempt: `state_dir/preflight/<component>-<version>`.
pub fn work_dir(state_dir: &Path, p: &Pending) -> PathBuf {
    state_dir
        .join("preflight")
        .join(format!("{}-{}", p.component, p.to_version))
}

fn passed_marker(work: &Path) -> PathBuf {
    work.join("passed.json")
}

fn rootfs(work: &Path) -> PathBuf {
    work.join("gate").join("rootfs")
}

/// Removes an attempt's preflight work (best effort).
pub fn discard(state_dir: &Path, p: &Pending) {
    if let Err(e) = remove_dir_if_exists(&work_dir(state_dir, p)) {
        tracing::warn!("cleanup: {e}");
    }
}

/// After the release artifact is unpacked into `releases/<v>`: places the firmware tree that
/// passed the preflight as `releases/<v>/firmware` (through `firmware.staging`). Does nothing
/// for a release that did not go through the preflight.
pub(crate) fn place_firmware(state_dir: &Path, slot: &Slot, p: &Pending) -> Result<()> {
    let work = work_dir(state_dir, p);
    let marker: Option<serde_json::Value> = crate::state::read_json(&passed_marker(&work))?;
    if marker.as_ref().and_then(|m| m["target_name"].as_str()) != Some(p.target_name.as_str()) {
        return Ok(());
    }
    let tree = rootfs(&work);
    let release = slot.release_dir(&p.to_version);
    let staging = release.join("firmware.staging");
    remove_dir_if_exists(&staging)?;
    copy_tree(&tree, &staging)?;
    let dest = release.join("firmware");
    remove_dir_if_exists(&dest)?;
    std::fs::rename(&staging, &dest)
        .map_err(|e| crate::error::io_err(&dest, "rename the firmware tree into place", e))
}

/// Copies a directory tree (files with their permission bits, directories, symlinks).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path, op: &'static str| {
        let p = p.to_path_buf();
        move |e| crate::error::io_err(&p, op, e)
    };
    std::fs::create_dir(to).map_err(io(to, "create firmware directory"))?;
    for entry in std::fs::read_dir(from).map_err(io(from, "list firmware tree"))? {
        let entry = entry.map_err(io(from, "list firmware tree"))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src).map_err(io(&src, "stat"))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(io(&src, "read link"))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io(&dst, "create link"))?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io(&dst, "copy firmware file"))?;
            std::fs::set_permissions(
                &dst,
                std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777),
            )
            .map_err(io(&dst, "set permissions"))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(io(&dst, "fsync"))?;
        }
    }
    Ok(())
}

/// The proxies the agent runs in front of production services (one per front address; they
/// live as long as the agent process).
static PROXIES: std::sync::Mutex<Vec<(SocketAddr, HttpMirrorProxy)>> =
    std::sync::Mutex::new(Vec::new());

/// The control of the proxy on `svc.front`, starting it if this process has none yet.
async fn proxy_for(svc: &PreflightServiceConfig) -> std::result::Result<ProxyControl, String> {
    {
        let list = PROXIES.lock().expect("proxy list lock");
        if let Some((_, p)) = list.iter().find(|(a, _)| *a == svc.front) {
            return Ok(p.control());
        }
    }
    let proxy = HttpMirrorProxy::start(
        svc.front,
        Backend::Tcp(svc.production),
        MirrorConfig::default(),
    )
    .await
    .map_err(|e| format!("the mirroring proxy on {} did not start: {e}", svc.front))?;
    let control = proxy.control();
    PROXIES
        .lock()
        .expect("proxy list lock")
        .push((svc.front, proxy));
    Ok(control)
}

/// Starts (if needed) the agent's mirroring proxy for the configured service, so clients can
/// reach production through it before any preflight runs. Returns its control.
pub async fn start_proxy(
    config: &AgentConfig,
) -> std::result::Result<Option<ProxyControl>, String> {
    match config.preflight.as_ref().and_then(|p| p.service.as_ref()) {
        Some(svc) => proxy_for(svc).await.map(Some),
        None => Ok(None),
    }
}

/// What the checks concluded.
enum Checked {
    /// Gate passed, no service to rehearse.
    Passed(Vec<String>),
    /// Gate and rehearsal passed; the sandbox waits for the switchover.
    Safe(Box<SafeVerdict>, ProxyControl, SocketAddr),
    /// Judged unsafe.
    Unsafe(Box<SecurityAlert>, Vec<String>),
}

fn finding(severity: &str, rule: &str, location: &str, message: String) -> AlertFinding {
    AlertFinding {
        severity: severity.into(),
        rule: rule.into(),
        location: location.into(),
        message,
    }
}

/// The alert content for a gate refusal; `None` when the gate could not run at all.
fn gate_alert(e: &GateError) -> Option<(&'static str, Vec<AlertFinding>, Vec<AlertEvidence>)> {
    match e {
        GateError::Blocked(report) => {
            let (findings, evidence) = ferry_sandbox::preflight::scan_alert(report);
            Some(("scan", findings, evidence))
        }
        GateError::Envelope(_) => Some((
            "gate",
            vec![finding("critical", "gate/envelope", "", e.to_string())],
            Vec::new(),
        )),
        GateError::Unpack(_) => Some((
            "gate",
            vec![finding("high", "gate/unpack", "", e.to_string())],
            Vec::new(),
        )),
        _ => None,
    }
}

/// Size of the file-backed stub given to a `file` interface.
const FILE_STUB_BYTES: u64 = 64 * 1024;

/// The sandbox stubs for the hardware interfaces the firmware metadata lists: a serial port
/// per `serial`, GPIO lines for `gpio` paths ending in a line number (`…/gpio17`), a
/// zero-filled file-backed device per `file`.
pub fn stubs_for(interfaces: &[ferry_core::firmware::HardwareInterface]) -> Vec<HardwareStub> {
    use ferry_core::firmware::InterfaceKind;
    let mut pins = Vec::new();
    let mut stubs = Vec::new();
    for i in interfaces {
        match i.kind {
            InterfaceKind::Serial => stubs.push(HardwareStub::Serial {
                path: i.path.clone(),
                echo: false,
            }),
            InterfaceKind::Gpio => {
                let digits: String = i
                    .path
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let digits: String = digits.chars().rev().collect();
                match digits.parse::<u32>() {
                    Ok(n) => pins.push(n),
                    Err(_) => {
                        tracing::warn!(path = %i.path, "GPIO interface without a line number: no stub")
                    }
                }
            }
            InterfaceKind::File => stubs.push(HardwareStub::File {
                path: i.path.clone(),
                size: FILE_STUB_BYTES,
            }),
        }
    }
    if !pins.is_empty() {
        stubs.push(HardwareStub::Gpio { pins });
    }
    stubs
}

/// Runs `f` on the current thread, telling a multi-threaded runtime it blocks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Agent {
    fn preflight_error(&self, p: &Pending, reason: impl Into<String>) -> AgentError {
        AgentError::Preflight {
            component: p.component,
            version: p.to_version.clone(),
            reason: reason.into(),
        }
    }

    /// `Verified`, preflight configured: runs the checks. Returns `true` when it moved the
    /// install state on itself (unsafe → `Failed`; safe with a service → installed inside the
    /// switchover), `false` when the normal install steps should go on.
    pub(crate) async fn step_preflight(&mut self, p: &Pending, track: &mut Track) -> Result<bool> {
        let Some(cfg) = self.config.preflight.clone() else {
            return Ok(false);
        };
        if p.component != Component::Main {
            return Ok(false);
        }
        let work = work_dir(self.store.dir(), p);
        let marker: Option<serde_json::Value> =
            crate::state::read_json(&passed_marker(&work)).unwrap_or(None);
        if marker.as_ref().and_then(|m| m["target_name"].as_str()) == Some(p.target_name.as_str())
            && rootfs(&work).is_dir()
        {
            // Passed before a restart: the install goes on with the checked tree.
            return Ok(false);
        }
        remove_dir_if_exists(&work)?;
        ensure_dir(&work)?;
        let checked = match p.delta_from {
            Some(_) => Err(self.preflight_error(
                p,
                "a delta cannot be preflighted; the full package is needed",
            )),
            None => self.preflight_checks(p, &cfg, &work).await,
        };
        let mark = |work: &Path| {
            crate::state::write_json(
                &passed_marker(work),
                &serde_json::json!({"target_name": p.target_name, "version": p.to_version}),
                0o600,
            )
        };
        match checked {
            Ok(Checked::Passed(steps)) => {
                for s in &steps {
                    self.store.log(&format!("preflight: {s}"));
                }
                mark(&work)?;
                Ok(false)
            }
            Ok(Checked::Safe(verdict, control, production)) => {
                for s in &verdict.steps {
                    self.store.log(&format!("preflight: {s}"));
                }
                mark(&work)?;
                self.install_with_switchover(*verdict, control, production, p, track)
                    .await?;
                Ok(true)
            }
            Ok(Checked::Unsafe(alert, steps)) => {
                for s in &steps {
                    self.store.log(&format!("preflight: {s}"));
                }
                let why = format!(
                    "preflight judged {} {} UNSAFE at stage {}: {}",
                    p.component,
                    p.to_version,
                    alert.stage,
                    alert
                        .findings
                        .iter()
                        .take(3)
                        .map(|f| format!("[{}] {} {}", f.severity, f.rule, f.location))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                self.store.log(&why);
                let sent = match self.token().await {
                    Ok(token) => self.api.post_alert(&token, &alert).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(id) => self.store.log(&format!(
                        "security alert {id} sent to the server; the rollout of {} {} is halted",
                        p.component, p.to_version
                    )),
                    Err(e) if !crate::alerts::worth_resending(&e) => self
                        .store
                        .log(&format!("security alert REFUSED by the server (not resent): {e}")),
                    Err(e) => match crate::alerts::keep(self.store.dir(), &alert) {
                        Ok(path) => self.store.log(&format!(
                            "security alert NOT delivered yet ({e}); kept in {} and sent again before the next check-in",
                            path.display()
                        )),
                        Err(keep) => self.store.log(&format!("security alert NOT delivered ({e}) and could not be kept: {keep}")),
                    },
                }
                remove_dir_if_exists(&work)?;
                self.advance(Event::Abort(format!("{why}; nothing was installed")))?;
                Ok(true)
            }
            Err(e) => {
                self.store.log(&format!("preflight could not run: {e}"));
                remove_dir_if_exists(&work)?;
                self.advance(Event::Abort(format!(
                    "preflight of {} {} could not run, nothing installed: {e}",
                    p.component, p.to_version
                )))?;
                Ok(true)
            }
        }
    }

    /// The firmware metadata: refreshed from the server, or the stored verified copy when the
    /// server cannot be reached.
    async fn firmware_for(
        &mut self,
        p: &Pending,
        id: &str,
    ) -> Result<ferry_core::firmware::FirmwareMetadata> {
        let paths = self.download_paths(p);
        let side: Option<crate::download::Sidecar> = crate::state::read_json(&paths.sidecar)?;
        let base = side
            .map(|s| s.offer.metadata_base_url)
            .unwrap_or_else(|| crate::client::join_url(&self.config.server_url, "/tuf"));
        match self.refresh_firmware(id, &base).await {
            Ok(m) => Ok(m),
            Err(e @ (AgentError::Http { .. } | AgentError::Status { status: 500.., .. })) => {
                match crate::firmware::load_stored(self.store.dir(), id)? {
                    Some(m) => {
                        self.store.log(&format!(
                            "firmware '{id}' metadata not refreshed ({e}); using the verified copy kept on the device"
                        ));
                        Ok(m)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn preflight_checks(
        &mut self,
        p: &Pending,
        cfg: &PreflightConfig,
        work: &Path,
    ) -> Result<Checked> {
        let meta = self.firmware_for(p, &cfg.firmware).await?;
        let vendor = crate::firmware::vendor_key(&meta).map_err(|e| self.preflight_error(p, e))?;
        let rule: UnpackRule = meta
            .unpack_rule
            .parse()
            .map_err(|e: String| self.preflight_error(p, format!("firmware '{}': {e}", meta.id)))?;
        let group = GroupSecret::load(&cfg.group_key).map_err(|e| {
            self.preflight_error(p, format!("device group key (`preflight.group_key`): {e}"))
        })?;
        let rules = match &cfg.rules {
            None => default_rules(),
            Some(path) => {
                let keys = cfg
                    .rule_keys
                    .iter()
                    .map(|k| {
                        PublicKey::load(k).map_err(|e| {
                            self.preflight_error(p, format!("rule key {}: {e}", k.display()))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                RuleDb::load(path, &keys)
            }
        }
        .map_err(|e| self.preflight_error(p, format!("rule database: {e}")))?;
        let policy = Policy::default();

        // The vendor package inside the (already verified) release artifact.
        let complete = self.download_paths(p).complete;
        let unpacked = work.join("artifact");
        let keys = self.keys.clone();
        blocking(|| ferry_artifact::artifact::unpack_verified(&complete, &keys, &unpacked))
            .map_err(|e| self.preflight_error(p, format!("release artifact: {e}")))?;
        let envelope = unpacked.join(&cfg.package);
        if !envelope.is_file() {
            return Err(self.preflight_error(
                p,
                format!(
                    "the release carries no vendor package at payload path {} (`preflight.package`)",
                    cfg.package.display()
                ),
            ));
        }
        let vendors = [vendor];
        let gate_dir = work.join("gate");
        let gate_input = GateInput {
            envelope: &envelope,
            group: &group,
            vendor_keys: &vendors,
            rule,
            limits: Limits::default(),
            work_dir: &gate_dir,
        };
        let now_ms = u64::try_from((self.clock)().timestamp_millis()).unwrap_or(0);
        let alert = |stage: &str, findings, evidence| SecurityAlert {
            device_id: self.config.device_id.clone(),
            component: p.component,
            version: p.to_version.clone(),
            stage: stage.into(),
            findings,
            evidence,
            detected_at: now_ms,
        };
        let Some(svc) = cfg.service.clone() else {
            return match blocking(|| gate::run(&gate_input, &rules, &policy)) {
                Ok(passed) => Ok(Checked::Passed(vec![format!(
                    "envelope opened (vendor {} key {}), {} files unpacked by rule {}, static scan {} ({} finding(s))",
                    meta.vendor,
                    passed.opened.vendor_key_id,
                    passed.unpacked.files,
                    rule,
                    passed.report.verdict,
                    passed.report.findings.len()
                )])),
                Err(e) => match gate_alert(&e) {
                    Some((stage, findings, evidence)) => Ok(Checked::Unsafe(
                        Box::new(alert(stage, findings, evidence)),
                        vec![format!("install gate refused the package: {e}")],
                    )),
                    None => Err(self.preflight_error(p, e.to_string())),
                },
            };
        };
        let control = proxy_for(&svc)
            .await
            .map_err(|e| self.preflight_error(p, e))?;
        let input = PreflightInput {
            device_id: self.config.device_id.clone(),
            component: p.component,
            version: p.to_version.clone(),
            gate: gate_input,
            rules: &rules,
            policy: &policy,
            service: ServiceSpec {
                argv: svc.argv.clone(),
                env: vec![],
                listen: svc.listen,
                data_dir: svc.data_dir.clone(),
                limits: ResourceLimits::default(),
                stubs: stubs_for(&meta.interfaces),
                sandbox: Default::default(),
            },
            startup_timeout: Duration::from_millis(svc.startup_timeout_ms),
            mirror_period: Duration::from_millis(svc.mirror_period_ms),
            min_mirrored: svc.min_mirrored,
            now_ms,
        };
        match preflight(&input, &control).await {
            Ok(Verdict::Safe(safe)) => Ok(Checked::Safe(safe, control, svc.production)),
            Ok(Verdict::Unsafe(u)) => Ok(Checked::Unsafe(Box::new(u.alert), u.steps)),
            Err(e) => Err(self.preflight_error(p, e.to_string())),
        }
    }

    /// A safe verdict with a service: traffic to the sandbox, the real install (backup,
    /// install, switch, health check — rollback on failure), traffic back to production,
    /// sandbox shut. If the install fails, traffic goes back to the restored production.
    async fn install_with_switchover(
        &mut self,
        verdict: SafeVerdict,
        control: ProxyControl,
        production: SocketAddr,
        p: &Pending,
        track: &mut Track,
    ) -> Result<()> {
        let this = &mut *self;
        let result = verdict
            .switch_over(
                &control,
                move || async move {
                    this.store.log(
                        "switchover: production traffic is on the sandboxed new version; upgrading the device",
                    );
                    this.install_steps(p, track).await.map(|()| Backend::Tcp(production))
                },
                DRAIN,
            )
            .await;
        match result {
            Ok(log) => {
                for s in log
                    .steps
                    .iter()
                    .skip_while(|s| !s.starts_with("device upgraded"))
                {
                    self.store.log(&format!("switchover: {s}"));
                }
            }
            Err(e) => {
                self.store.log(&format!("switchover: {e}"));
                match control.switch_to(Backend::Tcp(production), DRAIN).await {
                    Ok(_) => self
                        .store
                        .log("switchover: traffic back on the restored production instance"),
                    Err(e) => self.store.log(&format!(
                        "switchover: traffic could not be switched back to production: {e}"
                    )),
                }
            }
        }
        Ok(())
    }

    /// Runs backup, install, switch and health check (and rollback) until the attempt is final.
    async fn install_steps(
        &mut self,
        p: &Pending,
        track: &mut Track,
    ) -> std::result::Result<(), String> {
        loop {
            let state = self.store.load_install().map_err(|e| e.to_string())?;
            let step = match &state {
                InstallState::Verified { .. } => self.step_backup(p).await,
                InstallState::BackedUp { .. } => self.step_install(p).await,
                InstallState::Switched { .. } => self.step_switched(p, track).await,
                InstallState::RolledBack { .. } if state.rollback_unfinished() => {
                    self.step_rollback(p).await
                }
                InstallState::Confirmed { .. } => return Ok(()),
                InstallState::RolledBack { why, .. } | InstallState::Failed { why, .. } => {
                    return Err(why.clone());
                }
                other => return Err(format!("unexpected install state {}", other.name())),
            };
            step.map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::firmware::{HardwareInterface, InterfaceKind};

    const BASE: &str = crate::config::TEST_CONFIG;

    #[test]
    fn preflight_section_parses_with_defaults_and_enables_main_only() {
        let text = format!(
            "{BASE}\n[preflight]\nfirmware = \"cam-fw\"\ngroup_key = \"/etc/ferry/group.key\"\n\n[preflight.service]\nfront = \"127.0.0.1:80\"\nproduction = \"127.0.0.1:8081\"\nargv = [\"/app\", \"8080\"]\nlisten = \"127.0.0.1:8080\"\n"
        );
        let c = AgentConfig::from_toml_str(&text, Path::new("agent.toml")).unwrap();
        let pf = c.preflight.as_ref().unwrap();
        assert_eq!(pf.package, Path::new("firmware.pkg"));
        assert_eq!(pf.service.as_ref().unwrap().mirror_period_ms, 5_000);
        assert!(enabled(&c, Component::Main));
        assert!(!enabled(&c, Component::Agent));
        let plain = AgentConfig::from_toml_str(BASE, Path::new("agent.toml")).unwrap();
        assert!(!enabled(&plain, Component::Main));
    }

    #[test]
    fn preflight_section_with_bad_values_names_the_key() {
        let bad_id = format!("{BASE}\n[preflight]\nfirmware = \"Bad/Id\"\ngroup_key = \"/k\"\n");
        let err = AgentConfig::from_toml_str(&bad_id, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("preflight.firmware"), "{err}");
        let no_keys = format!(
            "{BASE}\n[preflight]\nfirmware = \"fw\"\ngroup_key = \"/k\"\nrules = \"/r.toml\"\n"
        );
        let err = AgentConfig::from_toml_str(&no_keys, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("preflight.rule_keys"), "{err}");
    }

    #[test]
    fn hardware_interfaces_become_sandbox_stubs() {
        let i = |kind, path: &str| HardwareInterface {
            kind,
            path: path.into(),
        };
        let stubs = stubs_for(&[
            i(InterfaceKind::Serial, "/dev/ttyS1"),
            i(InterfaceKind::Gpio, "/sys/class/gpio/gpio17"),
            i(InterfaceKind::Gpio, "/sys/class/gpio/gpio4"),
            i(InterfaceKind::Gpio, "/sys/class/gpio/export"),
            i(InterfaceKind::File, "/dev/mtd2"),
        ]);
        assert_eq!(
            stubs,
            vec![
                HardwareStub::Serial {
                    path: "/dev/ttyS1".into(),
                    echo: false
                },
                HardwareStub::File {
                    path: "/dev/mtd2".into(),
                    size: FILE_STUB_BYTES
                },
                HardwareStub::Gpio { pins: vec![17, 4] },
            ]
        );
    }
}
