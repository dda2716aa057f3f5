//! Live patches delivered like any other update.
//!
//! A live-patch release (manifest field `live_patch`, version `<patches>+lpN`) goes through the
//! same install states as a release; only the steps after the download differ:
//!
//! * `Verified` — the artifact (already checked against TUF and the release keys) is unpacked
//!   into the agent's state directory, its manifest must patch exactly the running main version,
//!   and the bundle's own signature must verify with `[main.live_patch] keys` (default: the
//!   release keys). The bundle is kept as `livepatch/<version>.bundle.json`. Nothing on the
//!   storage space is touched, so there is nothing to back up.
//! * `BackedUp` — the process named by `pid_file` is patched with `ferry_livepatch::apply` (its
//!   build id must be the bundle's target); the checkpoint is kept as `livepatch/checkpoint.json`
//!   and the applied patch recorded in `livepatch/applied.json` before `Switched`. A refusal or
//!   failure leaves the process running unchanged and ends the attempt as `Failed`.
//! * `Switched` — the configured health check, then the monitor period (process alive, health
//!   check every `monitor_interval_ms`); an anomaly is `HealthFailed`.
//! * `RolledBack` (unfinished) — the checkpoint is restored; the process keeps running.
//!
//! The storage space's `current` keeps the unpatched files. The check-in reports the patched
//! version while the recorded process (same pid and start time) runs the version the patch was
//! made for.
//!
//! Like kpatch's persistent patches, a restarted main program gets its patch back without a new
//! download: before the check-in, when `applied.json` records a patch for the version on disk and
//! the process in `pid_file` is another one, the kept bundle is verified again (signature, same
//! bundle id, target build id of the running binary) and applied to the new process with the same
//! health check and monitor as a fresh apply; the record then names the new process and the
//! check-in reports the patched version. A failed re-apply is rolled back in place and not tried
//! again for that process (`livepatch/reapplied.json` names the last process tried); the agent
//! then reports the version on disk and the server offers the live patch again.

use crate::agent::Agent;
use crate::download;
use crate::error::{AgentError, Result};
use crate::health::{self, CommandEnv, HealthPolicy};
use crate::state::{self, KnownBad};
use ferry_artifact::artifact::LivePatch;
use ferry_artifact::keys::PublicKey;
use ferry_core::install::{Event, InstallState, Pending};
use ferry_core::{Component, Version};
use ferry_livepatch::{ApplyOptions, Checkpoint, PatchBundle, RollbackOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Directory under the state directory holding bundles, the checkpoint and the record.
pub const DIR: &str = "livepatch";
const RECORD: &str = "applied.json";
const CHECKPOINT: &str = "checkpoint.json";
const APPLYING: &str = "applying.json";
const REAPPLIED: &str = "reapplied.json";

/// The live patch applied to the running main program, as persisted in `livepatch/applied.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPatch {
    /// The version the process runs now (`<patches>+lpN`).
    pub version: Version,
    /// The version on disk the patch was applied on top of.
    pub patches: Version,
    /// The patched process.
    pub pid: i32,
    /// Its start time (clock ticks since boot, `/proc/PID/stat` field 22): a restarted process
    /// with a reused pid is not mistaken for the patched one.
    pub start_time: u64,
    /// Id (sha256) of the applied bundle.
    pub bundle_id: String,
    /// The checkpoint that undoes it.
    pub checkpoint: PathBuf,
}

/// True when `p` installs a live patch rather than a release tree.
pub fn is_live_patch(p: &Pending) -> bool {
    p.component == Component::Main && p.to_version.live_patch_base().is_some()
}

/// Start time of process `pid`, `None` when it does not exist (or is a zombie).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn dir(agent: &Agent) -> PathBuf {
    agent.store.dir().join(DIR)
}

fn bundle_path(agent: &Agent, v: &Version) -> PathBuf {
    dir(agent).join(format!("{v}.bundle.json"))
}

/// The patch recorded as applied, if any (whether or not its process still runs).
pub fn load_record(state_dir: &Path) -> Result<Option<AppliedPatch>> {
    state::read_json(&state_dir.join(DIR).join(RECORD))
}

impl Agent {
    /// Runs the live-patch version of the step `state` names; `false` when `p` is not a live
    /// patch or the state needs no special handling (download, report).
    pub(crate) async fn live_patch_step(&mut self, state: &InstallState, p: &Pending) -> Result<bool> {
        if !is_live_patch(p) {
            return Ok(false);
        }
        match state {
            InstallState::Verified { .. } => match self.lp_prepare(p) {
                Ok(()) => self.advance(Event::BackupDone).map(|_| ())?,
                Err(why) => self.lp_abort(p, why, false)?,
            },
            InstallState::BackedUp { .. } => match self.lp_apply(p).await {
                Ok(()) => self.advance(Event::Switched).map(|_| ())?,
                Err((why, permanent)) => self.lp_abort(p, why, permanent)?,
            },
            InstallState::Switched { .. } => match self.lp_confirm(p).await? {
                Ok(()) => self.advance(Event::HealthOk).map(|_| ())?,
                Err(why) => {
                    self.store.add_known_bad(KnownBad {
                        component: p.component,
                        version: p.to_version.clone(),
                        target_name: p.target_name.clone(),
                        why: why.clone(),
                    })?;
                    self.advance(Event::HealthFailed(why)).map(|_| ())?
                }
            },
            InstallState::RolledBack { .. } if state.rollback_unfinished() => {
                self.lp_rollback(p).await?;
                self.advance(Event::RollbackDone).map(|_| ())?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The version the running main program reports while a recorded live patch is in it: the
    /// process recorded is still the one running (same pid and start time) on the version the
    /// patch was made for. `None` otherwise (the version on disk is the truth).
    pub(crate) fn live_patched_version(&self) -> Option<Version> {
        let rec = load_record(self.store.dir()).ok().flatten()?;
        let on_disk = self.main.current_version().ok().flatten()?;
        let pid = self.lp_pid().ok()?;
        (on_disk == rec.patches && pid == rec.pid && process_start_time(pid) == Some(rec.start_time))
            .then_some(rec.version)
    }

    /// Before the check-in: re-applies the recorded live patch to a restarted main program (at
    /// most once per process). Failures are logged; the check-in then reports the version on disk.
    pub(crate) async fn lp_reapply_after_restart(&mut self) -> Result<()> {
        if self.config.main.live_patch.is_none() {
            return Ok(());
        }
        let Some(rec) = load_record(self.store.dir()).ok().flatten() else {
            return Ok(());
        };
        if self.main.current_version().ok().flatten().as_ref() != Some(&rec.patches) {
            return Ok(());
        }
        let Ok(pid) = self.lp_pid() else {
            return Ok(());
        };
        let Some(start_time) = process_start_time(pid) else {
            return Ok(());
        };
        if (pid, start_time) == (rec.pid, rec.start_time) {
            return Ok(());
        }
        let marker = dir(self).join(REAPPLIED);
        if state::read_json::<(i32, u64)>(&marker).ok().flatten() == Some((pid, start_time)) {
            return Ok(());
        }
        // Written first: whatever happens below, this process is not tried again.
        if let Err(e) = state::write_json(&marker, &(pid, start_time), 0o600) {
            self.store.log(&format!("live patch {} not re-applied to process {pid}: {e}", rec.version));
            return Ok(());
        }
        let p = Pending {
            component: Component::Main,
            from_version: rec.patches.clone(),
            to_version: rec.version.clone(),
            target_name: String::new(),
            bytes_downloaded: 0,
            delta_from: None,
        };
        self.store.log(&format!(
            "main {} restarted as process {pid} (was {}): re-applying the kept live patch {}",
            rec.patches, rec.pid, rec.version
        ));
        let applied = match self.lp_recheck_kept(&p, &rec, pid) {
            Ok(()) => self.lp_apply(&p).await.map_err(|(why, _)| why),
            Err(why) => Err(why),
        };
        if let Err(why) = applied {
            self.store.log(&format!(
                "live patch {} not re-applied: {why}; reporting main {} so the server offers it again",
                rec.version, rec.patches
            ));
            return Ok(());
        }
        match self.lp_confirm(&p).await? {
            Ok(()) => self.store.log(&format!("live patch {} re-applied to process {pid}", rec.version)),
            Err(why) => {
                self.store.log(&format!("re-applied live patch {} failed: {why}; rolling back", rec.version));
                self.lp_rollback(&p).await?;
            }
        }
        Ok(())
    }

    /// The kept bundle of `rec` still verifies with the patch keys, is the bundle recorded, and
    /// targets the binary process `pid` runs.
    fn lp_recheck_kept(&self, p: &Pending, rec: &AppliedPatch, pid: i32) -> std::result::Result<(), String> {
        let keys = self.lp_keys()?;
        let path = bundle_path(self, &p.to_version);
        let bytes = std::fs::read(&path).map_err(|e| format!("kept bundle {}: {e}", path.display()))?;
        let bundle = ferry_livepatch::package::verify_bundle(&bytes, &keys)
            .map_err(|e| format!("kept bundle {}: {e}", path.display()))?;
        if bundle.id() != rec.bundle_id {
            return Err(format!("kept bundle {} is not the recorded bundle {}", path.display(), rec.bundle_id));
        }
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let running = ferry_livepatch::build_id_of(&exe).map_err(|e| format!("build id of process {pid}: {e}"))?;
        if running != bundle.target_build_id {
            return Err(format!(
                "process {pid} runs build {running}, but the patch targets build {}",
                bundle.target_build_id
            ));
        }
        Ok(())
    }

    fn lp_abort(&mut self, p: &Pending, why: String, permanent: bool) -> Result<()> {
        self.store.log(&format!("live patch {} not applied: {why}", p.to_version));
        if permanent {
            self.store.add_known_bad(KnownBad {
                component: p.component,
                version: p.to_version.clone(),
                target_name: p.target_name.clone(),
                why: why.clone(),
            })?;
        }
        self.advance(Event::Abort(why))?;
        Ok(())
    }

    fn lp_keys(&self) -> std::result::Result<Vec<PublicKey>, String> {
        let Some(lp) = &self.config.main.live_patch else {
            return Err("live patching is not enabled on this device: add a [main.live_patch] section with pid_file to the agent config".into());
        };
        if lp.keys.is_empty() {
            return Ok(self.keys.clone());
        }
        lp.keys
            .iter()
            .map(|k| PublicKey::load(k).map_err(|e| format!("patch key {}: {e} (fix [main.live_patch] keys)", k.display())))
            .collect()
    }

    /// The running main program's pid, from `[main.live_patch] pid_file`.
    fn lp_pid(&self) -> std::result::Result<i32, String> {
        let cfg = self.config.main.live_patch.as_ref().ok_or("live patching is not enabled on this device")?;
        let text = std::fs::read_to_string(&cfg.pid_file)
            .map_err(|e| format!("cannot read the main program's pid file {}: {e}", cfg.pid_file.display()))?;
        let pid: i32 = text
            .trim()
            .parse()
            .map_err(|_| format!("pid file {} holds {:?}, not a process id", cfg.pid_file.display(), text.trim()))?;
        if pid <= 0 || process_start_time(pid).is_none() {
            return Err(format!("the main program (pid {pid} from {}) is not running", cfg.pid_file.display()));
        }
        Ok(pid)
    }

    /// `Verified`: unpack the verified artifact, check what it patches and the bundle's
    /// signature, keep the bundle.
    fn lp_prepare(&mut self, p: &Pending) -> std::result::Result<(), String> {
        let keys = self.lp_keys()?;
        let paths = self.download_paths(p);
        download::recheck_complete(&paths).map_err(|e| e.to_string())?;
        let work = dir(self);
        state::ensure_dir(&work).map_err(|e| e.to_string())?;
        let unpacked = work.join(format!("{}.unpacked", p.to_version));
        state::remove_dir_if_exists(&unpacked).map_err(|e| e.to_string())?;
        let manifest = ferry_artifact::artifact::unpack_verified(&paths.complete, &self.keys, &unpacked)
            .map_err(|e| format!("artifact {}: {e}", paths.complete.display()))?;
        let result = (|| {
            let lp: LivePatch = manifest
                .live_patch
                .clone()
                .ok_or_else(|| format!("{} {} is not a live patch (its manifest has no live_patch field)", manifest.component, manifest.version))?;
            if lp.patches != p.from_version {
                return Err(format!(
                    "the live patch is for main {}, but this device runs main {}",
                    lp.patches, p.from_version
                ));
            }
            let bytes = std::fs::read(unpacked.join(&lp.bundle)).map_err(|e| format!("bundle {}: {e}", lp.bundle))?;
            let bundle = ferry_livepatch::package::verify_bundle(&bytes, &keys)
                .map_err(|e| format!("{e}; the bundle must be signed with a key in [main.live_patch] keys (default: release_keys)"))?;
            if bundle.target_build_id != lp.target_build_id {
                return Err(format!(
                    "the bundle targets build {}, but the signed manifest says {}",
                    bundle.target_build_id, lp.target_build_id
                ));
            }
            let keep = bundle_path(self, &p.to_version);
            state::write_atomic(&keep, &bytes, 0o600).map_err(|e| e.to_string())?;
            self.store.log(&format!(
                "live patch {} verified: bundle {} signed by a trusted key, for main {} build {}",
                p.to_version,
                &bundle.id()[..12],
                lp.patches,
                lp.target_build_id
            ));
            Ok(())
        })();
        let _ = state::remove_dir_if_exists(&unpacked);
        result
    }

    /// `BackedUp`: patch the running process, keep the checkpoint, record the patch.
    /// `Err((why, permanent))`: `permanent` when retrying cannot help (another build).
    async fn lp_apply(&mut self, p: &Pending) -> std::result::Result<(), (String, bool)> {
        let keys = self.lp_keys().map_err(|e| (e, false))?;
        let path = bundle_path(self, &p.to_version);
        let bytes = std::fs::read(&path).map_err(|e| (format!("{}: {e}", path.display()), false))?;
        let bundle: PatchBundle = ferry_livepatch::package::verify_bundle(&bytes, &keys).map_err(|e| (e.to_string(), false))?;
        let pid = self.lp_pid().map_err(|e| (e, false))?;
        let start_time = process_start_time(pid).ok_or_else(|| (format!("process {pid} exited"), false))?;
        let record = load_record(self.store.dir()).ok().flatten();
        if let Some(r) = record.filter(|r| r.pid == pid && r.start_time == start_time) {
            if r.version == p.to_version && r.bundle_id == bundle.id() {
                // Applied and recorded before a restart of the agent: go on to the health check.
                self.store.log(&format!("live patch {} is already applied to process {pid}", p.to_version));
                return Ok(());
            }
            return Err((
                format!("process {pid} already carries live patch {} ({}); restart it to apply another", r.version, &r.bundle_id[..12.min(r.bundle_id.len())]),
                false,
            ));
        }
        // Written before the process is touched: an agent that dies mid-apply must not apply
        // again over a half-applied patch whose checkpoint was never saved.
        let marker = dir(self).join(APPLYING);
        let interrupted: Option<(i32, u64)> = state::read_json(&marker).ok().flatten();
        if interrupted == Some((pid, start_time)) {
            return Err((
                format!(
                    "an earlier apply to process {pid} was interrupted before its checkpoint was saved, so it may hold part of a patch; restart the main program (the patch is then offered again)"
                ),
                false,
            ));
        }
        state::write_json(&marker, &(pid, start_time), 0o600).map_err(|e| (e.to_string(), false))?;
        let applied = tokio::task::spawn_blocking(move || ferry_livepatch::apply(pid, &bundle, &ApplyOptions::default()))
            .await
            .map_err(|e| (format!("the patching thread failed: {e}"), false))?;
        if applied.is_err() {
            // The library left the process unchanged.
            let _ = state::remove_if_exists(&marker);
        }
        let report = match applied {
            Ok(r) => r,
            Err(e) => {
                let permanent = matches!(e, ferry_livepatch::Error::BuildIdMismatch { .. });
                return Err((format!("{e}; process {pid} keeps running unchanged"), permanent));
            }
        };
        let cp_path = dir(self).join(CHECKPOINT);
        let persisted = report
            .checkpoint
            .save(&cp_path)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let rec = AppliedPatch {
                    version: p.to_version.clone(),
                    patches: p.from_version.clone(),
                    pid,
                    start_time,
                    bundle_id: report.bundle_id.clone(),
                    checkpoint: cp_path.clone(),
                };
                state::write_json(&dir(self).join(RECORD), &rec, 0o600).map_err(|e| e.to_string())
            });
        if let Err(e) = persisted {
            // Without a checkpoint on disk the patch could not be undone later: undo it now.
            let cp = report.checkpoint.clone();
            let undone = tokio::task::spawn_blocking(move || ferry_livepatch::rollback(pid, &cp, &RollbackOptions::default())).await;
            let how = match undone {
                Ok(Ok(_)) => {
                    let _ = state::remove_if_exists(&marker);
                    "rolled back".to_string()
                }
                Ok(Err(e)) => format!("rollback failed too: {e}"),
                Err(e) => format!("rollback thread failed: {e}"),
            };
            return Err((format!("cannot keep the checkpoint: {e}; patch {how}"), false));
        }
        let _ = state::remove_if_exists(&marker);
        self.store.log(&format!(
            "live patch {} applied to process {pid}: pause {:?} over {} threads, {} attempt(s), redirected {:?}, statics {:?}, moved {} thread(s); checkpoint {}",
            p.to_version,
            report.pause,
            report.threads,
            report.attempts,
            report.redirected,
            report.statics,
            report.moved.len(),
            cp_path.display()
        ));
        Ok(())
    }

    fn lp_env(&self, p: &Pending) -> CommandEnv {
        CommandEnv {
            vars: vec![
                ("FERRY_COMPONENT".into(), p.component.to_string()),
                ("FERRY_VERSION".into(), p.to_version.to_string()),
                ("FERRY_RELEASE_DIR".into(), self.main.release_dir(&p.from_version).to_string_lossy().into_owned()),
                ("FERRY_STATE_DIR".into(), self.store.dir().to_string_lossy().into_owned()),
            ],
        }
    }

    /// `Switched`: the process must be the patched one, pass the health check, and stay alive
    /// and healthy for the monitor period.
    async fn lp_confirm(&mut self, p: &Pending) -> Result<std::result::Result<(), String>> {
        let Some(rec) = load_record(self.store.dir())?.filter(|r| r.version == p.to_version) else {
            return Ok(Err("the record of the applied live patch is missing".into()));
        };
        if process_start_time(rec.pid) != Some(rec.start_time) {
            return Ok(Err(format!("the patched process {} is gone", rec.pid)));
        }
        let cfg = self.config.main.live_patch.clone().expect("checked before apply");
        let policy = HealthPolicy {
            command: self.config.main.health_check.clone(),
            timeout: Duration::from_secs(self.config.main.health_timeout_secs),
            tries: self.config.main.health_retries,
            interval: Duration::from_millis(self.config.main.health_interval_ms),
        };
        let cwd = self.main.working_dir();
        let env = self.lp_env(p);
        let out = health::output_file(self.store.dir());
        if let Err(why) = health::check(&policy, &cwd, &env, None, &out).await? {
            return Ok(Err(format!("patched main {} is unhealthy: {why}", p.to_version)));
        }
        let (pid, command, timeout) = (rec.pid, policy.command.clone(), policy.timeout);
        let period = Duration::from_secs(cfg.monitor_secs);
        let interval = Duration::from_millis(cfg.monitor_interval_ms.max(1));
        let seen = tokio::task::spawn_blocking(move || {
            let mut last = String::new();
            // The monitor is synchronous; its probe runs the async health command on a small
            // runtime of this blocking thread.
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return (ferry_livepatch::MonitorReport { alive: true, probes: 0, failures: 1 }, format!("cannot run health checks: {e}")),
            };
            let mut probe = || match rt.block_on(health::run(&command, &cwd, &env, timeout, &out)) {
                Ok(o) if o.success => true,
                Ok(o) => {
                    last = o.describe();
                    false
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            };
            let report = ferry_livepatch::monitor(pid, &mut probe, period, interval);
            (report, last)
        })
        .await
        .map_err(|e| AgentError::CorruptState { path: dir(self), reason: format!("monitor thread failed: {e}") })?;
        let (report, last) = seen;
        if !report.healthy() {
            return Ok(Err(format!(
                "monitor over {} s: process {} {}, {} of {} health checks failed{}",
                cfg.monitor_secs,
                pid,
                if report.alive { "alive" } else { "died" },
                report.failures,
                report.probes,
                if last.is_empty() { String::new() } else { format!(" (last: {last})") }
            )));
        }
        self.store.log(&format!(
            "patched main {} is healthy: health check passed, {} checks over {} s of monitoring, process {pid} alive",
            p.to_version, report.probes, cfg.monitor_secs
        ));
        Ok(Ok(()))
    }

    /// `RolledBack` (unfinished): restore the checkpoint in the still-running process.
    async fn lp_rollback(&mut self, p: &Pending) -> Result<()> {
        let record_path = dir(self).join(RECORD);
        let Some(rec) = load_record(self.store.dir())?.filter(|r| r.version == p.to_version) else {
            self.store.log("no live patch recorded; nothing to roll back");
            return Ok(());
        };
        if process_start_time(rec.pid) != Some(rec.start_time) {
            self.store.log(&format!("the patched process {} is gone; nothing to roll back", rec.pid));
            return state::remove_if_exists(&record_path);
        }
        let cp = match Checkpoint::load(&rec.checkpoint) {
            Ok(cp) => cp,
            Err(e) => {
                self.store.log(&format!("warning: cannot roll back process {}: {e}; it keeps the patch", rec.pid));
                return Ok(());
            }
        };
        let pid = rec.pid;
        let done = tokio::task::spawn_blocking(move || ferry_livepatch::rollback(pid, &cp, &RollbackOptions::default())).await;
        match done {
            Ok(Ok(r)) => {
                self.store.log(&format!(
                    "live patch {} rolled back in process {pid} (pause {:?}, {} thread(s) moved back); it keeps running main {}",
                    p.to_version,
                    r.pause,
                    r.moved.len(),
                    p.from_version
                ));
                state::remove_if_exists(&record_path)
            }
            Ok(Err(e)) => {
                self.store.log(&format!("warning: rollback of process {pid} failed: {e}; it keeps the patch"));
                Ok(())
            }
            Err(e) => {
                self.store.log(&format!("warning: rollback thread failed: {e}"));
                Ok(())
            }
        }
    }
}
