//! The agent: enroll, check in, refresh TUF metadata, download, hand over to the install
//! steps, report — and pick up wherever a restart or power cut left an update.

use crate::client::{ApiClient, join_url};
use crate::config::AgentConfig;
use crate::download::{self, DownloadPaths, Finished, RetryPolicy, Sidecar};
use crate::error::{AgentError, Result};
use crate::report::{self, AttemptOutcome, AttemptSummary, RunSummary};
use crate::selfupdate::{self, RestartHook};
use crate::slots::Slot;
use crate::state::{DeviceCredentials, StateStore};
use crate::tuf_client::TufClient;
use chrono::{DateTime, Utc};
use ferry_artifact::keys::PublicKey;
use ferry_core::api::{CheckinRequest, CheckinResponse, UpdateOffer};
use ferry_core::install::{Event, InstallState, Pending};
use ferry_core::{Component, Version};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Download progress, reported after every segment that is safely on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Component being downloaded.
    pub component: Component,
    /// Version being downloaded.
    pub version: Version,
    /// Bytes on disk.
    pub done: u64,
    /// Total bytes.
    pub total: u64,
}

/// Progress callback: return [`ControlFlow::Break`] to stop the download (it resumes on the next run).
pub type ProgressFn = Box<dyn FnMut(&Progress) -> ControlFlow<()> + Send + Sync>;

/// State observer: called after every install state is persisted; return
/// [`ControlFlow::Break`] to stop the run right there, before the side effect the state names
/// (the run ends with [`AgentError::Stopped`]; the next run carries on from that state).
pub type StateFn = Box<dyn FnMut(&InstallState) -> ControlFlow<()> + Send + Sync>;

/// The time source for metadata expiry checks.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Persists download progress and passes it on to the caller's callback.
struct Observer<'a> {
    store: &'a StateStore,
    on_state: &'a mut Option<StateFn>,
    progress: &'a mut Option<ProgressFn>,
    fetched_now: &'a mut u64,
    retries: &'a mut u32,
    component: Component,
    version: Version,
    total: u64,
}

impl download::FetchObserver for Observer<'_> {
    fn segment_done(&mut self, done: u64, fetched: u64) -> Result<ControlFlow<()>> {
        advance_with(self.store, self.on_state, Event::Progress { done, fetched })?;
        *self.fetched_now += fetched;
        Ok(match self.progress.as_mut() {
            Some(cb) => cb(&Progress {
                component: self.component,
                version: self.version.clone(),
                done,
                total: self.total,
            }),
            None => ControlFlow::Continue(()),
        })
    }

    fn segment_failed(&mut self, error: &download::DownloadError, failure: u32, allowed: u32) {
        *self.retries += 1;
        tracing::warn!("{error} (failure {failure} of {allowed} allowed this run)");
        self.store.log(&format!(
            "segment failed, retrying ({failure}/{allowed}): {error}"
        ));
    }
}

/// Most offers handled in one run (the upgrader first, then the main program).
const MAX_OFFERS_PER_RUN: usize = 3;

/// Per-attempt bookkeeping for the run summary.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    /// Bytes fetched in this run.
    pub bytes_this_run: u64,
    /// The download continued from bytes already on disk.
    pub resumed: bool,
    /// Segments that failed (dropped link, bad answer) and were fetched again in this run.
    pub segment_retries: u32,
    /// TUF metadata was refreshed for this attempt in this process.
    pub tuf_fresh: bool,
    /// This process switched `current` (for the upgrader: it must hand over to the new binary).
    pub switched_here: bool,
}

/// The Ferry device agent.
pub struct Agent {
    pub(crate) config: AgentConfig,
    pub(crate) store: StateStore,
    pub(crate) api: ApiClient,
    pub(crate) tuf: TufClient,
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) main: Slot,
    pub(crate) upgrader: Slot,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) on_state: Option<StateFn>,
    pub(crate) clock: Clock,
    pub(crate) restart: RestartHook,
}

/// The version reported when a component has no active release: main `0.0.0` (nothing
/// installed); the agent its own build version (it runs from outside its storage space).
pub fn fallback_version(component: Component) -> Version {
    match component {
        Component::Main => Version::new(0, 0, 0),
        Component::Agent => env!("CARGO_PKG_VERSION")
            .parse()
            .unwrap_or_else(|_| Version::new(0, 0, 0)),
    }
}

/// Moves the persisted install state on by `ev` (pure transition, then atomic write), then
/// tells the state observer.
pub(crate) fn advance_with(
    store: &StateStore,
    observer: &mut Option<StateFn>,
    ev: Event,
) -> Result<InstallState> {
    let next = store.load_install()?.next(ev)?;
    store.save_install(&next)?;
    if let Some(f) = observer.as_mut()
        && f(&next).is_break()
    {
        return Err(AgentError::Stopped { state: next.name() });
    }
    Ok(next)
}

impl Agent {
    /// Builds an agent: opens its state directory and storage spaces, loads the release keys
    /// and checks the trusted TUF root. No network access.
    pub fn new(config: AgentConfig) -> Result<Agent> {
        config.validate()?;
        let store = StateStore::open(&config.state_dir)?;
        let keys = config
            .release_keys
            .iter()
            .map(|path| {
                PublicKey::load(path).map_err(|e| AgentError::Key {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tuf = TufClient::new(&store.tuf_dir(), &config.trusted_root);
        tuf.check()?;
        let api = ApiClient::new(
            &config.server_url,
            config.device_id.clone(),
            Duration::from_secs(config.http_timeout_secs),
        )?;
        let main = Slot::open(Component::Main, &config.main.dir)?;
        let upgrader = Slot::open(Component::Agent, &config.upgrader.dir)?;
        Ok(Agent {
            config,
            store,
            api,
            tuf,
            keys,
            main,
            upgrader,
            progress: None,
            on_state: None,
            clock: Arc::new(Utc::now),
            restart: selfupdate::exec_hook(),
        })
    }

    /// Calls `f` after every downloaded segment; `f` returning `Break` stops the download
    /// (the run ends with [`AgentError::Interrupted`]; the next run resumes).
    pub fn on_progress(
        &mut self,
        f: impl FnMut(&Progress) -> ControlFlow<()> + Send + Sync + 'static,
    ) {
        self.progress = Some(Box::new(f));
    }

    /// Calls `f` after every install state is persisted (to show the phase, or to stop the run
    /// at a precise point: `Break` ends the run with [`AgentError::Stopped`]).
    pub fn on_state(
        &mut self,
        f: impl FnMut(&InstallState) -> ControlFlow<()> + Send + Sync + 'static,
    ) {
        self.on_state = Some(Box::new(f));
    }

    /// Moves the persisted install state on by `ev`.
    pub(crate) fn advance(&mut self, ev: Event) -> Result<InstallState> {
        advance_with(&self.store, &mut self.on_state, ev)
    }

    /// Replaces the clock used for metadata expiry (a device with a trusted time source, tests).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Replaces what runs the new agent after a self-update (default: `exec` it with the same argv).
    /// A hook that returns `Ok` means the new agent is running and the update is confirmed.
    pub fn set_restart_hook(&mut self, hook: RestartHook) {
        self.restart = hook;
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The persisted install state.
    pub fn install_state(&self) -> Result<InstallState> {
        self.store.load_install()
    }

    pub(crate) fn slot(&self, c: Component) -> &Slot {
        match c {
            Component::Main => &self.main,
            Component::Agent => &self.upgrader,
        }
    }

    /// The active version of `component` (see [`fallback_version`] when none is active).
    pub fn current_version(&self, component: Component) -> Result<Version> {
        Ok(self
            .slot(component)
            .current_version()?
            .unwrap_or_else(|| fallback_version(component)))
    }

    fn version_for_checkin(&self, component: Component) -> Version {
        if component == Component::Main
            && let Some(patched) = self.live_patched_version()
        {
            return patched;
        }
        match self.current_version(component) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "{e}; reporting {component} as {} so a full release can repair it",
                    fallback_version(component)
                );
                fallback_version(component)
            }
        }
    }

    /// One check-in cycle: finish whatever a restart interrupted, then ask the server for
    /// updates and install them (upgrader first, then the main program).
    pub async fn run_once(&mut self) -> Result<RunSummary> {
        let mut summary = RunSummary::default();
        let mut track = Track::default();
        if !matches!(self.store.load_install()?, InstallState::Idle) {
            if let Some(a) = self.drive(&mut track).await? {
                summary.attempts.push(a);
            }
            if !matches!(self.store.load_install()?, InstallState::Idle) {
                return Ok(summary);
            }
        }
        // A restarted main program gets its kept live patch back before the version report.
        self.lp_reapply_after_restart().await?;
        for _ in 0..MAX_OFFERS_PER_RUN {
            match self.checkin().await? {
                CheckinResponse::NothingNew { reason } => {
                    summary.nothing_new = Some(reason);
                    break;
                }
                response => {
                    let Some((offer, delta_from)) = self.delivery(response)? else {
                        break;
                    };
                    if summary.attempts.iter().any(|a| {
                        a.component == offer.component
                            && a.to == offer.version
                            && a.delta_from == delta_from
                    }) {
                        break;
                    }
                    let mut track = Track::default();
                    let attempt = self.attempt(offer, delta_from, &mut track).await?;
                    // A delta that did not fit left a failure record: check in again for the
                    // full package.
                    let delta_failed = attempt.outcome == AttemptOutcome::Failure
                        && attempt.delta_from.is_some()
                        && crate::delta::load_failures(self.store.dir())?
                            .iter()
                            .any(|f| f.record.component == attempt.component);
                    let go_on = (attempt.outcome == AttemptOutcome::Success || delta_failed)
                        && attempt.reported;
                    summary.attempts.push(attempt);
                    if !go_on || !matches!(self.store.load_install()?, InstallState::Idle) {
                        break;
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Runs [`Agent::run_once`] on the configured schedule, forever (errors are logged and the
    /// next check-in is tried). Returns only if the schedule cannot be used.
    pub async fn run_forever(mut self) -> Result<()> {
        let mut push = match &self.config.push {
            Some(p) => Some(
                crate::push::PushListener::start(p, self.config.device_id.as_str(), &self.config.device_type)
                    .map_err(|e| crate::config::ConfigError::Invalid {
                        path: "<in-process>".into(),
                        key: "push",
                        message: e.to_string(),
                    })?,
            ),
            None => None,
        };
        loop {
            match self.run_once().await {
                Ok(summary) => tracing::info!("check-in done: {}", summary.to_string().trim_end()),
                Err(e) => tracing::error!("check-in failed: {e}"),
            }
            let now = Utc::now().timestamp().max(0) as u64;
            let next = self
                .config
                .schedule
                .next_after(now, rand::random::<u64>())
                .map_err(|e| crate::config::ConfigError::Invalid {
                    path: "<in-process>".into(),
                    key: "schedule",
                    message: e.to_string(),
                })?;
            tracing::info!("next check-in in {} s", next.saturating_sub(now));
            let scheduled = tokio::time::sleep(Duration::from_secs(next.saturating_sub(now)));
            match (&mut push, &self.config.push) {
                (Some(listener), Some(cfg)) => {
                    tokio::select! {
                        () = scheduled => {}
                        nudge = listener.next() => {
                            let wait = ferry_core::push::jitter_ms(cfg.jitter_ms, rand::random::<u64>());
                            tracing::info!(reason = %nudge.reason, "pushed: checking in after {wait} ms of jitter");
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                    }
                }
                _ => scheduled.await,
            }
        }
    }

    /// Enrolls the device with the server (if it has no credential yet) without checking in.
    ///
    /// Factory provisioning uses this so the operator can place the device in a group
    /// before its first check-in.
    pub async fn enroll(&mut self) -> Result<()> {
        self.token().await.map(|_| ())
    }

    /// The device credential, enrolling first if there is none (or it belongs to another id).
    pub(crate) async fn token(&mut self) -> Result<String> {
        if let Some(c) = self.store.load_credentials()?
            && c.device_id == self.config.device_id
        {
            return Ok(c.device_token);
        }
        let resp = self
            .api
            .enroll(&self.config.enrollment_token, &self.config.device_type)
            .await?;
        self.store.save_credentials(&DeviceCredentials {
            device_id: self.config.device_id.clone(),
            device_token: resp.device_token.clone(),
        })?;
        tracing::info!(device = %self.config.device_id, "enrolled");
        Ok(resp.device_token)
    }

    /// What to fetch for an update answer: the full package, or the delta when the device runs
    /// its base version and holds no delta-failure record for the component. `None` for
    /// "nothing new".
    fn delivery(&self, response: CheckinResponse) -> Result<Option<(UpdateOffer, Option<Version>)>> {
        match response {
            CheckinResponse::NothingNew { .. } => Ok(None),
            CheckinResponse::Update { offer } => Ok(Some((offer, None))),
            CheckinResponse::Delta { offer, delta } => {
                let failed = crate::delta::load_failures(self.store.dir())?
                    .iter()
                    .any(|f| f.record.component == offer.component);
                let running = self.slot(offer.component).current_version().ok().flatten();
                // A release that goes through the preflight must arrive as the full package.
                let preflight = crate::preflight::enabled(&self.config, offer.component);
                if failed || preflight || running.as_ref() != Some(&delta.from_version) {
                    return Ok(Some((offer, None)));
                }
                let from = delta.from_version.clone();
                Ok(Some((
                    UpdateOffer {
                        target_name: delta.target_name,
                        length: delta.length,
                        sha256: delta.sha256,
                        ..offer
                    },
                    Some(from),
                )))
            }
        }
    }

    /// Persists a delta-failure record and reports it to the server (resent before the next
    /// check-in if the server cannot be reached now).
    pub(crate) async fn record_delta_failure(
        &mut self,
        pending: &Pending,
        state: &str,
        reason: String,
        files: Vec<ferry_core::api::FileMismatch>,
    ) -> Result<()> {
        let record = ferry_core::api::DeltaFailureRecord {
            device_id: self.config.device_id.clone(),
            component: pending.component,
            from_version: pending.from_version.clone(),
            to_version: pending.to_version.clone(),
            target_name: pending.target_name.clone(),
            state: state.to_string(),
            reason,
            files,
            failed_at: u64::try_from((self.clock)().timestamp_millis()).unwrap_or(0),
        };
        crate::delta::save_failure(self.store.dir(), record)?;
        self.store.log(&format!(
            "delta failure recorded in {}; full packages of {} until one installs",
            self.store.dir().join(crate::delta::FAILURES_FILE).display(),
            pending.component
        ));
        self.send_delta_failures().await;
        Ok(())
    }

    /// Sends every delta-failure record the server has not acknowledged yet (best effort).
    async fn send_delta_failures(&mut self) {
        let pending = match crate::delta::load_failures(self.store.dir()) {
            Ok(list) => list.into_iter().filter(|f| !f.reported).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!("reading delta-failure records: {e}");
                return;
            }
        };
        for f in pending {
            let sent = match self.token().await {
                Ok(token) => self.api.report_delta_failure(&token, &f.record).await,
                Err(e) => Err(e),
            };
            match sent.and_then(|()| crate::delta::mark_reported(self.store.dir(), f.record.component)) {
                Ok(()) => tracing::info!(component = %f.record.component, "delta failure reported to the server"),
                Err(e) => tracing::warn!("delta failure not reported yet, will resend: {e}"),
            }
        }
    }

    /// Sends security alerts an earlier run could not deliver.
    async fn send_pending_alerts(&mut self) {
        for (path, alert) in crate::alerts::pending(self.store.dir()) {
            let sent = match self.token().await {
                Ok(token) => self.api.post_alert(&token, &alert).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(id) => {
                    tracing::warn!(alert = id, component = %alert.component, version = %alert.version, "kept security alert delivered");
                    if let Err(e) = crate::alerts::delivered(&path) {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) if crate::alerts::worth_resending(&e) => {
                    tracing::warn!("security alert still not delivered, will resend: {e}")
                }
                Err(e) => match crate::alerts::rejected(&path) {
                    Ok(aside) => tracing::error!("the server refused a kept security alert ({e}); set aside as {}", aside.display()),
                    Err(err) => tracing::error!("the server refused a kept security alert ({e}); {err}"),
                },
            }
        }
    }

    async fn checkin(&mut self) -> Result<CheckinResponse> {
        self.send_pending_alerts().await;
        self.send_delta_failures().await;
        let delta_failures = crate::delta::load_failures(self.store.dir())?
            .into_iter()
            .map(|f| f.record.component)
            .collect();
        let req = CheckinRequest {
            device_id: self.config.device_id.clone(),
            device_type: self.config.device_type.clone(),
            upgrader_version: self.version_for_checkin(Component::Agent),
            main_version: self.version_for_checkin(Component::Main),
            accepts_deltas: true,
            delta_failures,
        };
        let token = self.token().await?;
        match self.api.checkin(&token, &req).await {
            Err(AgentError::Status { status: 401, .. }) => {
                tracing::warn!("device credential refused; enrolling again");
                self.store.clear_credentials()?;
                let token = self.token().await?;
                self.api.checkin(&token, &req).await
            }
            other => other,
        }
    }

    fn refuse(&self, offer: &UpdateOffer, reason: String) -> AgentError {
        AgentError::Refused {
            device: self.config.device_id.to_string(),
            component: offer.component,
            version: offer.version.clone(),
            reason,
        }
    }

    /// Handles one offer from `Idle`: checks it, verifies it through TUF, then downloads and installs.
    async fn attempt(
        &mut self,
        offer: UpdateOffer,
        delta_from: Option<Version>,
        track: &mut Track,
    ) -> Result<AttemptSummary> {
        let component = offer.component;
        let from = self
            .current_version(component)
            .unwrap_or_else(|_| fallback_version(component));
        let pending = Pending {
            component,
            from_version: from.clone(),
            to_version: offer.version.clone(),
            target_name: offer.target_name.clone(),
            bytes_downloaded: 0,
            delta_from: delta_from.clone(),
        };
        if let Some(bad) = self.store.known_bad()?.into_iter().find(|b| {
            b.component == component
                && b.version == offer.version
                && b.target_name == offer.target_name
        }) {
            return Ok(AttemptSummary {
                component,
                from,
                to: offer.version,
                outcome: AttemptOutcome::Skipped,
                reason: format!(
                    "not retrying: this release already failed here and was rolled back ({})",
                    bad.why
                ),
                bytes_downloaded: 0,
                bytes_this_run: 0,
                resumed: false,
                segment_retries: 0,
                rolled_back: false,
                reported: true,
                delta_from,
            });
        }
        self.store.clear_log()?;
        self.store.log(&format!(
            "device {}: offer {component} {from} -> {} ({})",
            self.config.device_id, offer.version, offer.target_name
        ));
        let prepared = self.prepare_offer(&offer, &from, track).await;
        if let Err(e @ (AgentError::Http { .. } | AgentError::Status { status: 500.., .. })) =
            prepared
        {
            // The server went away mid-check: nothing was refused; try again next run.
            return Err(e);
        }
        if let Err(e @ AgentError::NotLiveYet { .. }) = &prepared {
            // Signed go-live still ahead by this device's clock: nothing fetched, ask again later.
            self.store.log(&e.to_string());
            return Ok(crate::preflight::not_live_summary(&offer, from, delta_from, e.to_string()));
        }
        self.advance(Event::Begin(pending))?;
        if let Err(e) = prepared {
            self.store.log(&format!("refused: {e}"));
            self.advance(Event::Abort(e.to_string()))?;
        }
        Ok(self
            .drive(track)
            .await?
            .expect("an attempt in progress yields a summary"))
    }

    /// Everything before `Begin`: downgrade check, TUF refresh and target lookup, download record.
    async fn prepare_offer(
        &mut self,
        offer: &UpdateOffer,
        from: &Version,
        track: &mut Track,
    ) -> Result<()> {
        if offer.version <= *from
            && self
                .slot(offer.component)
                .current_version()
                .ok()
                .flatten()
                .is_some()
        {
            return Err(self.refuse(
                offer,
                format!(
                    "it is not newer than the installed {} {from} (downgrade protection)",
                    offer.component
                ),
            ));
        }
        let now = (self.clock)();
        let (set, found) = self
            .tuf
            .refresh_target(&self.api, &offer.metadata_base_url, now, &offer.target_name)
            .await?;
        let target = TufClient::lookup_found(&set, found.as_ref(), offer)?;
        crate::preflight::check_go_live(self, offer, target.go_live, now)?;
        track.tuf_fresh = true;
        self.store.log(&format!(
            "TUF: {} is {} bytes, sha256 {}",
            target.name, target.length, target.sha256
        ));
        let paths = download::paths(&self.store.downloads_dir(), &offer.target_name);
        let url = join_url(&self.api.resolve(&offer.file_base_url), &target.fetch_path);
        let side = download::prepare(
            &paths,
            Sidecar {
                target: target.name,
                url,
                length: target.length,
                sha256: target.sha256,
                etag: None,
                done: 0,
                offer: offer.clone(),
            },
        )?;
        if side.done > 0 {
            track.resumed = true;
            self.store.log(&format!(
                "resuming download at byte {} of {}",
                side.done, side.length
            ));
        }
        Ok(())
    }

    pub(crate) fn download_paths(&self, pending: &Pending) -> DownloadPaths {
        download::paths(&self.store.downloads_dir(), &pending.target_name)
    }

    /// Runs the persisted install from wherever it stands until it is final and reported,
    /// deferred, or interrupted. `None` when nothing was in progress.
    pub(crate) async fn drive(&mut self, track: &mut Track) -> Result<Option<AttemptSummary>> {
        loop {
            let state = self.store.load_install()?;
            let Some(pending) = state.pending().cloned() else {
                return Ok(None);
            };
            if self.live_patch_step(&state, &pending).await? {
                continue;
            }
            match &state {
                InstallState::Idle => return Ok(None),
                InstallState::Downloading { done, .. } => {
                    if let Some(deferred) = self.step_download(&pending, *done, track).await? {
                        return Ok(Some(self.summary(
                            &pending,
                            AttemptOutcome::Deferred,
                            deferred,
                            false,
                            false,
                            track,
                        )));
                    }
                }
                InstallState::Verified { .. } => {
                    if !self.step_preflight(&pending, track).await? {
                        self.step_backup(&pending).await?
                    }
                }
                InstallState::BackedUp { .. } => self.step_install(&pending).await?,
                InstallState::Switched { .. } => self.step_switched(&pending, track).await?,
                InstallState::RolledBack { .. } if state.rollback_unfinished() => {
                    self.step_rollback(&pending).await?
                }
                InstallState::Confirmed { .. }
                | InstallState::RolledBack { .. }
                | InstallState::Failed { .. } => {
                    let (outcome, reason, rolled_back) = match &state {
                        InstallState::Confirmed { .. } => (
                            AttemptOutcome::Success,
                            format!(
                                "{} {} installed and healthy",
                                pending.component, pending.to_version
                            ),
                            false,
                        ),
                        InstallState::RolledBack { why, .. } => {
                            (AttemptOutcome::Failure, why.clone(), true)
                        }
                        InstallState::Failed { why, .. } => {
                            (AttemptOutcome::Failure, why.clone(), false)
                        }
                        _ => unreachable!("matched final states"),
                    };
                    let reported = self.step_report(&state).await?;
                    return Ok(Some(self.summary(
                        &pending,
                        outcome,
                        reason,
                        rolled_back,
                        reported,
                        track,
                    )));
                }
            }
        }
    }

    fn summary(
        &self,
        p: &Pending,
        outcome: AttemptOutcome,
        reason: String,
        rolled_back: bool,
        reported: bool,
        track: &Track,
    ) -> AttemptSummary {
        AttemptSummary {
            component: p.component,
            from: p.from_version.clone(),
            to: p.to_version.clone(),
            outcome,
            reason,
            bytes_downloaded: p.bytes_downloaded,
            bytes_this_run: track.bytes_this_run,
            resumed: track.resumed,
            segment_retries: track.segment_retries,
            rolled_back,
            reported,
            delta_from: p.delta_from.clone(),
        }
    }

    /// `Downloading`: fetch the remaining segments, verify, then `DownloadVerified` (or `Abort`).
    /// Returns `Some(reason)` when the download is deferred to the next run.
    async fn step_download(
        &mut self,
        pending: &Pending,
        done: u64,
        track: &mut Track,
    ) -> Result<Option<String>> {
        match self.download_and_verify(pending, done, track).await {
            Ok(()) => {
                self.advance(Event::DownloadVerified)?;
                Ok(None)
            }
            Err(AgentError::Download(e)) if e.is_deferred() => {
                self.store.log(&e.to_string());
                Ok(Some(e.to_string()))
            }
            Err(e @ (AgentError::Http { .. } | AgentError::Status { status: 500.., .. })) => {
                let why = format!("download deferred: {e}");
                self.store.log(&why);
                Ok(Some(why))
            }
            Err(e @ (AgentError::Interrupted { .. } | AgentError::Stopped { .. })) => Err(e),
            Err(e) => {
                self.store.log(&format!("download failed: {e}"));
                self.advance(Event::Abort(e.to_string()))?;
                Ok(None)
            }
        }
    }

    async fn download_and_verify(
        &mut self,
        pending: &Pending,
        done: u64,
        track: &mut Track,
    ) -> Result<()> {
        let paths = self.download_paths(pending);
        let stored: Option<Sidecar> = crate::state::read_json(&paths.sidecar)?;
        let Some(mut side) = stored else {
            return Err(AgentError::CorruptState {
                path: paths.sidecar.clone(),
                reason: "the download record of the update in progress is missing; the update is abandoned and will be offered again".into(),
            });
        };
        if !track.tuf_fresh {
            // Restarted: the release may have been withdrawn or changed since; ask TUF again.
            let now = (self.clock)();
            let (set, found) = self
                .tuf
                .refresh_target(
                    &self.api,
                    &side.offer.metadata_base_url,
                    now,
                    &side.offer.target_name,
                )
                .await?;
            let target = TufClient::lookup_found(&set, found.as_ref(), &side.offer)?;
            track.tuf_fresh = true;
            side = download::prepare(
                &paths,
                Sidecar {
                    length: target.length,
                    sha256: target.sha256,
                    ..side
                },
            )?;
            if side.done > 0 {
                track.resumed = true;
                self.store.log(&format!(
                    "resuming download at byte {} of {} (state said {done})",
                    side.done, side.length
                ));
            }
        }
        let token = self.token().await?;
        let retry = RetryPolicy {
            max_failures: self.config.download_retries,
            backoff: Duration::from_millis(self.config.retry_backoff_ms),
        };
        let chunk = side.offer.chunk_size;
        let total = side.length;
        let (component, version) = (pending.component, pending.to_version.clone());
        if let Some(cb) = self.progress.as_mut() {
            let _ = cb(&Progress {
                component,
                version: version.clone(),
                done: side.done,
                total,
            });
        }
        let mut observer = Observer {
            store: &self.store,
            on_state: &mut self.on_state,
            progress: &mut self.progress,
            fetched_now: &mut track.bytes_this_run,
            retries: &mut track.segment_retries,
            component,
            version: version.clone(),
            total,
        };
        let finished = download::fetch(
            self.api.http(),
            &token,
            &paths,
            &mut side,
            chunk,
            retry,
            &mut observer,
        )
        .await?;
        if finished == Finished::Stopped {
            self.store.log(&format!(
                "download stopped by the caller at {} of {total} bytes",
                side.done
            ));
            return Err(AgentError::Interrupted {
                device: self.config.device_id.to_string(),
                component,
                version,
                done: side.done,
                total,
            });
        }
        download::verify_and_complete(&paths, &side)?;
        self.store.log(&format!(
            "downloaded {total} bytes; length and sha256 match the signed targets metadata"
        ));
        match &pending.delta_from {
            None => {
                self.verify_artifact(&paths.complete, pending)?;
                self.store
                    .log("artifact signature and payload hashes verified");
            }
            Some(from) => self.verify_delta(&paths.complete, pending, from).await?,
        }
        Ok(())
    }

    /// Checks a downloaded delta package (signed manifest, tree against it), then pre-verifies
    /// every installed file it relies on; a mismatch is recorded, reported and returned.
    async fn verify_delta(&mut self, path: &Path, pending: &Pending, from: &Version) -> Result<()> {
        let verified = crate::delta::open_verified(path, &self.keys, pending, &self.config.device_type)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(path);
            })?;
        self.store.log(&format!(
            "delta package verified: release signature on the manifest of {} {}, {} operations",
            pending.component,
            pending.to_version,
            verified.tree.ops.len()
        ));
        let slot = self.slot(pending.component).clone();
        let bad = crate::delta::preverify(&slot, from, &verified);
        if bad.is_empty() {
            self.store.log(&format!(
                "pre-verified every installed file of {} {from} the delta relies on",
                pending.component
            ));
            return Ok(());
        }
        let err = AgentError::DeltaMismatch {
            device: self.config.device_id.to_string(),
            component: pending.component,
            from: from.clone(),
            to: pending.to_version.clone(),
            files: bad.clone(),
        };
        self.store.log(&format!("pre-verification failed: {err}"));
        self.record_delta_failure(pending, "downloading", format!("pre-verification failed: {}", crate::error::describe_mismatches(&bad)), bad)
            .await?;
        Err(err)
    }

    /// Checks the artifact's signature with the release keys and that it holds what was offered.
    pub(crate) fn verify_artifact(&self, path: &Path, pending: &Pending) -> Result<()> {
        let manifest = ferry_artifact::artifact::verify(path, &self.keys).map_err(|e| {
            let _ = std::fs::remove_file(path);
            AgentError::Artifact {
                path: path.to_path_buf(),
                reason: format!("{e}; the download was deleted and nothing installed was changed"),
            }
        })?;
        let wrong = |what: String| AgentError::Artifact {
            path: path.to_path_buf(),
            reason: what,
        };
        if manifest.component != pending.component || manifest.version != pending.to_version {
            return Err(wrong(format!(
                "holds {} {}, but {} {} was offered and vouched for by TUF",
                manifest.component, manifest.version, pending.component, pending.to_version
            )));
        }
        if !manifest.device_types.is_empty()
            && !manifest
                .device_types
                .iter()
                .any(|t| t == &self.config.device_type)
        {
            return Err(wrong(format!(
                "is built for device types {:?}, not this device's type {}",
                manifest.device_types, self.config.device_type
            )));
        }
        Ok(())
    }

    /// Final state: send the report; on success the state returns to `Idle` and leftovers go.
    /// Returns whether the server has the report.
    async fn step_report(&mut self, state: &InstallState) -> Result<bool> {
        let Some(pending) = state.pending().cloned() else {
            return Ok(true);
        };
        let Some(rep) = report::build(
            &self.config.device_id,
            state,
            self.store.log_tail(report::LOG_TAIL_LINES),
        ) else {
            return Ok(true);
        };
        let sent = match self.token().await {
            Ok(token) => self.api.report(&token, &rep).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(id) => {
                if matches!(state, InstallState::Confirmed { .. })
                    && pending.delta_from.is_none()
                    && crate::delta::clear_failure(self.store.dir(), pending.component)?
                {
                    self.store.log(&format!(
                        "full install of {} {} succeeded; delta-failure record cleared, deltas are used again",
                        pending.component, pending.to_version
                    ));
                }
                tracing::info!(
                    report = id,
                    "reported {} {} -> {}: {:?}",
                    rep.component,
                    rep.from_version,
                    rep.to_version,
                    rep.outcome
                );
                self.advance(Event::Reported)?;
                self.cleanup(&pending, matches!(state, InstallState::Confirmed { .. }));
                Ok(true)
            }
            Err(e) => {
                tracing::warn!("report not delivered, will resend next run: {e}");
                Ok(false)
            }
        }
    }

    /// Removes the download, old releases and old backups once an attempt is over.
    fn cleanup(&self, pending: &Pending, success: bool) {
        let paths = self.download_paths(pending);
        if let Err(e) = download::discard(&paths) {
            tracing::warn!("cleanup: {e}");
        }
        let slot = self.slot(pending.component);
        let current = slot.current_version().ok().flatten();
        let pruned = if success {
            // Keep the new release and the one it replaced; older ones go.
            let mut keep: Vec<&Version> = vec![&pending.from_version, &pending.to_version];
            keep.extend(current.as_ref());
            slot.prune(&keep)
        } else if current.as_ref() != Some(&pending.to_version) {
            // Only the failed release and its staging leftovers go. A release older than the
            // active one was not unpacked by this attempt (older offers are refused before
            // anything is fetched): it is the kept previous release and stays.
            let ours = current.as_ref().is_none_or(|c| pending.to_version > *c);
            let release = slot.release_dir(&pending.to_version);
            (if ours {
                crate::state::remove_dir_if_exists(&release)
            } else {
                Ok(())
            })
            .and_then(|()| {
                crate::state::remove_dir_if_exists(&slot.staging_dir(&pending.to_version))
            })
        } else {
            Ok(())
        };
        if let Err(e) = pruned {
            tracing::warn!("cleanup: {e}");
        }
        if success
            && let Err(e) = crate::backup::prune(
                &self.store.backups_dir(),
                pending.component,
                &pending.from_version,
            )
        {
            tracing::warn!("cleanup: {e}");
        }
        crate::preflight::discard(self.store.dir(), pending);
        let _ = self.store.clear_log();
    }
}
