//! The install steps driven by the persisted [`InstallState`]: backup, install into the
//! component's storage space, switch, health check, rollback, and the factory bootstrap.
//!
//! Each step runs after the state that names it was persisted, and is idempotent: after a
//! power cut the same step simply runs again (see [`ferry_core::install::Recovery`]).
//!
//! [`InstallState`]: ferry_core::install::InstallState

use crate::agent::{Agent, Track};
use crate::backup;
use crate::download;
use crate::error::{AgentError, Result};
use crate::health::{self, CommandEnv, HealthPolicy};
use crate::selfupdate;
use crate::slots::Slot;
use crate::state::{KnownBad, remove_dir_if_exists};
use ferry_core::install::{Event, Pending};
use ferry_core::{Component, Version};
use std::path::Path;
use std::time::Duration;

impl Agent {
    fn main_env(&self, v: &Version) -> CommandEnv {
        self.release_env(Component::Main, v)
    }

    fn release_env(&self, component: Component, v: &Version) -> CommandEnv {
        CommandEnv {
            vars: vec![
                ("FERRY_COMPONENT".into(), component.to_string()),
                ("FERRY_VERSION".into(), v.to_string()),
                (
                    "FERRY_RELEASE_DIR".into(),
                    self.slot(component)
                        .release_dir(v)
                        .to_string_lossy()
                        .into_owned(),
                ),
                (
                    "FERRY_STATE_DIR".into(),
                    self.store.dir().to_string_lossy().into_owned(),
                ),
            ],
        }
    }

    fn health_policy(&self) -> HealthPolicy {
        HealthPolicy {
            command: self.config.main.health_check.clone(),
            timeout: Duration::from_secs(self.config.main.health_timeout_secs),
            tries: self.config.main.health_retries,
            interval: Duration::from_millis(self.config.main.health_interval_ms),
        }
    }

    /// Stops whatever main-program release is active (a failing stop is logged, not fatal).
    async fn stop_main(&self) -> Result<()> {
        let Some(v) = self.main.current_version().ok().flatten() else {
            return Ok(());
        };
        let out = health::output_file(self.store.dir());
        let timeout = Duration::from_secs(self.config.main.health_timeout_secs);
        let o = health::run(
            &self.config.main.stop,
            &self.main.working_dir(),
            &self.main_env(&v),
            timeout,
            &out,
        )
        .await?;
        if o.success {
            self.store.log(&format!("stopped main {v}"));
        } else {
            self.store.log(&format!(
                "stop command of main {v} failed ({}); going on",
                o.describe()
            ));
        }
        Ok(())
    }

    /// Starts the active main-program release and runs its health check.
    async fn start_and_check_main(&self, v: &Version) -> Result<Result<(), String>> {
        let env = self.main_env(v);
        let started = health::start_detached(
            &self.config.main.start,
            &self.main.working_dir(),
            &env,
            &self.store.main_log_path(),
        )?;
        self.store.log(&format!("started main {v}"));
        let out = health::output_file(self.store.dir());
        let verdict = health::check(
            &self.health_policy(),
            &self.main.working_dir(),
            &env,
            Some(&started),
            &out,
        )
        .await?;
        match &verdict {
            Ok(()) => self.store.log(&format!("main {v} is healthy")),
            Err(why) => self.store.log(&format!("main {v} is unhealthy: {why}")),
        }
        Ok(verdict)
    }

    /// Runs a release's install hook (`which` names it in logs); `Ok(Err(reason))` when it fails.
    async fn run_hook(
        &self,
        slot: &Slot,
        p: &Pending,
        which: &str,
        hook: Option<String>,
    ) -> Result<Result<(), String>> {
        let Some(hook) = hook else { return Ok(Ok(())) };
        let dir = slot.release_dir(&p.to_version);
        let mut env = self.release_env(p.component, &p.to_version);
        env.vars
            .push(("FERRY_PREVIOUS_VERSION".into(), p.from_version.to_string()));
        let quoted = format!("'{}'", hook.replace('\'', r"'\''"));
        let timeout = Duration::from_secs(self.config.main.health_timeout_secs);
        let o = health::run(
            &format!("exec ./{quoted}"),
            &dir,
            &env,
            timeout,
            &health::output_file(self.store.dir()),
        )
        .await?;
        if o.success {
            self.store.log(&format!(
                "{which} hook {hook} of {} {} passed",
                p.component, p.to_version
            ));
            Ok(Ok(()))
        } else {
            Ok(Err(format!(
                "{which} hook {hook} of {} {} failed: {}",
                p.component,
                p.to_version,
                o.describe()
            )))
        }
    }

    /// Makes sure `releases/<to>` is complete and intact, reinstalling it from the verified
    /// download if a power cut left it damaged.
    fn ensure_release(&self, slot: &Slot, p: &Pending) -> Result<()> {
        if slot.verify_release(&p.to_version).is_ok() {
            return Ok(());
        }
        self.store.log(&format!(
            "releases/{} is missing or damaged; reinstalling it from the verified artifact",
            p.to_version
        ));
        let paths = self.download_paths(p);
        download::recheck_complete(&paths)?;
        self.unpack_or_apply(slot, p, &paths.complete)?;
        slot.verify_release(&p.to_version)
    }

    /// Lays down `releases/<to>`: unpacks the full artifact, or builds the release from the
    /// running one and the verified delta package.
    fn unpack_or_apply(&self, slot: &Slot, p: &Pending, download: &Path) -> Result<()> {
        match &p.delta_from {
            None => slot
                .install(download, &self.keys, &p.to_version)
                .and_then(|()| crate::preflight::place_firmware(self.store.dir(), slot, p)),
            Some(from) => {
                let verified = crate::delta::open_verified(download, &self.keys, p, &self.config.device_type)?;
                crate::delta::install(slot, &self.config.device_id, p, from, &verified)
            }
        }
    }

    /// `Verified`: back up the active release, then `BackupDone` (or `Abort`).
    pub(crate) async fn step_backup(&mut self, p: &Pending) -> Result<()> {
        match self.backup_active(p).await {
            Ok(()) => self.advance(Event::BackupDone)?,
            Err(e) => {
                self.store.log(&format!("backup failed: {e}"));
                self.advance(Event::Abort(e.to_string()))?
            }
        };
        Ok(())
    }

    async fn backup_active(&mut self, p: &Pending) -> Result<()> {
        download::recheck_complete(&self.download_paths(p))?;
        let slot = self.slot(p.component).clone();
        match slot.current_version()? {
            None => {
                self.store.log(&format!(
                    "{} has no active release; nothing to back up",
                    p.component
                ));
                Ok(())
            }
            Some(cur) if cur != p.from_version => Err(AgentError::Slot {
                dir: slot.root().to_path_buf(),
                reason: format!(
                    "the active release changed from {} to {cur} while the update was in progress; abandoning it",
                    p.from_version
                ),
            }),
            Some(cur) => {
                let out = backup::backup_path(&self.store.backups_dir(), p.component, &cur);
                let size = backup::create(&slot.release_dir(&cur), &out)?;
                self.store.log(&format!(
                    "backed up {} {cur} to {} ({size} bytes)",
                    p.component,
                    out.display()
                ));
                if self.config.upload_backups {
                    self.upload_backup(p.component, &cur, &out).await;
                }
                Ok(())
            }
        }
    }

    async fn upload_backup(&mut self, component: Component, version: &Version, path: &Path) {
        let result = match (std::fs::read(path), self.token().await) {
            (Ok(bytes), Ok(token)) => {
                self.api
                    .upload_backup(&token, component, version, bytes)
                    .await
            }
            (Err(e), _) => Err(crate::error::io_err(path, "read backup", e)),
            (_, Err(e)) => Err(e),
        };
        match result {
            Ok(()) => self.store.log(&format!(
                "uploaded the backup of {component} {version} to the server"
            )),
            Err(e) => self.store.log(&format!(
                "backup upload failed (the local backup is kept): {e}"
            )),
        }
    }

    /// `BackedUp`: unpack into the storage space (and trial-run a new agent), then `Switched`
    /// is persisted before anything is switched (or `Abort`: nothing active changed).
    pub(crate) async fn step_install(&mut self, p: &Pending) -> Result<()> {
        match self.install_release(p).await {
            Ok(()) => self.advance(Event::Switched)?,
            Err(e) => {
                self.store.log(&format!("install failed: {e}"));
                let _ = remove_dir_if_exists(&self.slot(p.component).release_dir(&p.to_version));
                self.advance(Event::Abort(e.to_string()))?
            }
        };
        Ok(())
    }

    async fn install_release(&mut self, p: &Pending) -> Result<()> {
        let paths = self.download_paths(p);
        download::recheck_complete(&paths)?;
        let slot = self.slot(p.component).clone();
        if let Err(e) = self.unpack_or_apply(&slot, p, &paths.complete) {
            if let AgentError::DeltaMismatch { files, .. } = &e {
                let reason = format!("applying the delta failed: {}", crate::error::describe_mismatches(files));
                self.record_delta_failure(p, "backed_up", reason, files.clone()).await?;
            }
            return Err(e);
        }
        self.store.log(&format!(
            "{} {} {} into {}",
            if p.delta_from.is_some() { "built" } else { "unpacked" },
            p.component,
            p.to_version,
            slot.release_dir(&p.to_version).display()
        ));
        let hook = slot.manifest(&p.to_version)?.hooks.pre_install;
        self.run_hook(&slot, p, "pre-install", hook)
            .await?
            .map_err(|reason| AgentError::Unhealthy {
                component: p.component,
                version: p.to_version.clone(),
                reason,
            })?;
        if p.component == Component::Agent {
            let binary = selfupdate::binary_of(&slot, &p.to_version);
            let timeout = Duration::from_secs(self.config.upgrader.self_test_timeout_secs);
            selfupdate::trial_run(&binary, timeout, &health::output_file(self.store.dir()))
                .await?
                .map_err(|reason| AgentError::Unhealthy {
                    component: p.component,
                    version: p.to_version.clone(),
                    reason,
                })?;
            self.store
                .log(&format!("trial run of agent {} passed", p.to_version));
        }
        Ok(())
    }

    /// `Switched`: make the new release active and check it; then `HealthOk` or `HealthFailed`.
    pub(crate) async fn step_switched(&mut self, p: &Pending, track: &mut Track) -> Result<()> {
        let verdict = match p.component {
            Component::Main => self.switch_main(p).await,
            Component::Agent => self.switch_agent(p, track),
        };
        match verdict {
            Ok(Ok(())) => {
                self.advance(Event::HealthOk)?;
            }
            Ok(Err(why)) => self.fail_health(p, why)?,
            Err(e) => self.fail_health(p, e.to_string())?,
        }
        Ok(())
    }

    fn fail_health(&mut self, p: &Pending, why: String) -> Result<()> {
        self.store.add_known_bad(KnownBad {
            component: p.component,
            version: p.to_version.clone(),
            target_name: p.target_name.clone(),
            why: why.clone(),
        })?;
        self.advance(Event::HealthFailed(why))?;
        Ok(())
    }

    async fn switch_main(&mut self, p: &Pending) -> Result<Result<(), String>> {
        let slot = self.main.clone();
        self.ensure_release(&slot, p)?;
        self.stop_main().await?;
        slot.switch_to(&p.to_version)?;
        self.store
            .log(&format!("switched main to {}", p.to_version));
        let hook = slot.manifest(&p.to_version)?.hooks.post_install;
        if let Err(why) = self.run_hook(&slot, p, "post-install", hook).await? {
            return Ok(Err(why));
        }
        self.start_and_check_main(&p.to_version).await
    }

    fn switch_agent(&mut self, p: &Pending, track: &mut Track) -> Result<Result<(), String>> {
        let slot = self.upgrader.clone();
        if slot.current_version().ok().flatten().as_ref() != Some(&p.to_version) {
            self.ensure_release(&slot, p)?;
            slot.switch_to(&p.to_version)?;
            track.switched_here = true;
            self.store
                .log(&format!("switched agent to {}", p.to_version));
        }
        let stale = matches!(selfupdate::running_release(&slot), Some(v) if v != p.to_version);
        if track.switched_here || stale {
            let binary = selfupdate::current_binary(&slot);
            self.store
                .log(&format!("handing over to {}", binary.display()));
            if let Err(e) = (self.restart)(&binary) {
                return Ok(Err(format!("the new agent could not be started: {e}")));
            }
        }
        self.store
            .log(&format!("agent {} is running", p.to_version));
        Ok(Ok(()))
    }

    /// `RolledBack` (unfinished): bring the previous release back, then `RollbackDone`.
    pub(crate) async fn step_rollback(&mut self, p: &Pending) -> Result<()> {
        let slot = self.slot(p.component).clone();
        if p.component == Component::Main {
            self.stop_main().await?;
        }
        let from = &p.from_version;
        let mut have_old = slot.verify_release(from).is_ok();
        if !have_old {
            let tar = backup::backup_path(&self.store.backups_dir(), p.component, from);
            if tar.exists() {
                backup::restore(&tar, &slot.release_dir(from))?;
                slot.verify_release(from)?;
                self.store.log(&format!(
                    "restored {} {from} from {}",
                    p.component,
                    tar.display()
                ));
                have_old = true;
            }
        }
        if have_old {
            slot.switch_to(from)?;
            self.store
                .log(&format!("switched {} back to {from}", p.component));
            if p.component == Component::Main
                && let Err(why) = self.start_and_check_main(from).await?
            {
                self.store.log(&format!(
                    "warning: the restored main {from} is unhealthy too: {why}"
                ));
            }
        } else {
            slot.clear_current()?;
            self.store.log(&format!(
                "{} had no release before this update; none is active now",
                p.component
            ));
        }
        self.advance(Event::RollbackDone)?;
        Ok(())
    }

    /// Factory install of `component` from a signed artifact (no server needed).
    ///
    /// Verifies the artifact with the release keys, refuses a downgrade, unpacks it into the
    /// component's storage space and switches to it. A first main-program install is only
    /// laid down (the init system starts `current/`); one that replaces an active release
    /// stops it, starts the new one and health-checks it (an unhealthy one is backed out).
    /// A new agent must pass its trial run. Installing the version already active does nothing.
    pub async fn bootstrap(&mut self, component: Component, artifact: &Path) -> Result<Version> {
        if let Some(p) = self.store.load_install()?.pending().cloned() {
            let state = self.store.load_install()?.name();
            return Err(AgentError::Busy {
                component: p.component,
                version: p.to_version,
                state,
            });
        }
        let manifest = ferry_artifact::artifact::verify(artifact, &self.keys).map_err(|e| {
            AgentError::Artifact {
                path: artifact.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        let v = manifest.version.clone();
        let wrong = |reason: String| AgentError::Artifact {
            path: artifact.to_path_buf(),
            reason,
        };
        if manifest.component != component {
            return Err(wrong(format!(
                "holds {} {v}, not a {component} release",
                manifest.component
            )));
        }
        if !manifest.device_types.is_empty()
            && !manifest
                .device_types
                .iter()
                .any(|t| t == &self.config.device_type)
        {
            return Err(wrong(format!(
                "is built for device types {:?}, not {}",
                manifest.device_types, self.config.device_type
            )));
        }
        let slot = self.slot(component).clone();
        let current = slot.current_version()?;
        match &current {
            Some(c) if *c == v => return Ok(v),
            Some(c) if *c > v => {
                return Err(AgentError::Refused {
                    device: self.config.device_id.to_string(),
                    component,
                    version: v.clone(),
                    reason: format!("{component} {c} is already installed (downgrade protection)"),
                });
            }
            _ => {}
        }
        slot.install(artifact, &self.keys, &v)?;
        match component {
            Component::Agent => {
                let timeout = Duration::from_secs(self.config.upgrader.self_test_timeout_secs);
                if let Err(reason) = selfupdate::trial_run(
                    &selfupdate::binary_of(&slot, &v),
                    timeout,
                    &health::output_file(self.store.dir()),
                )
                .await?
                {
                    remove_dir_if_exists(&slot.release_dir(&v))?;
                    return Err(AgentError::Unhealthy {
                        component,
                        version: v,
                        reason,
                    });
                }
                slot.switch_to(&v)?;
            }
            Component::Main if current.is_none() => slot.switch_to(&v)?,
            Component::Main => {
                self.stop_main().await?;
                slot.switch_to(&v)?;
                if let Err(reason) = self.start_and_check_main(&v).await? {
                    self.stop_main().await?;
                    if let Some(c) = &current {
                        slot.switch_to(c)?;
                        let _ = self.start_and_check_main(c).await?;
                    }
                    remove_dir_if_exists(&slot.release_dir(&v))?;
                    return Err(AgentError::Unhealthy {
                        component,
                        version: v,
                        reason,
                    });
                }
            }
        }
        tracing::info!("bootstrapped {component} {v}");
        Ok(v)
    }
}
