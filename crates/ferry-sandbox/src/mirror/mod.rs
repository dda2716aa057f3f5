//! Mirrored traffic and switchover: a proxy in front of the production service.
//!
//! Every client request goes to the *active* backend (production) and the client gets its
//! answer. While a mirror period runs ([`ProxyControl::mirror`]), a copy of each request also
//! goes to the candidate (the new version in its sandbox) and, for the noise model, a second
//! production sample is taken (from a secondary production instance if one is given, else by
//! repeating safe requests — GET, HEAD, OPTIONS — to production). The answers are compared as
//! Twitter's Diffy does ([`compare`]); mismatches, candidate errors and time-outs and
//! latencies go to the [`MirrorReport`]. The client never waits for the candidate.
//!
//! [`ProxyControl::switch_to`] routes new requests (HTTP) or connections (TCP) to another
//! backend atomically; requests already in flight finish on the backend they started on, and
//! the call returns once the old backend has none left, so it can be stopped without a client
//! seeing an error.
//!
//! Two front ends share this machinery: [`HttpMirrorProxy`] (HTTP/1.1, keep-alive) and
//! [`TcpMirrorProxy`] (raw TCP: bytes are mirrored, the response byte streams compared).

pub mod backend;
pub mod compare;
mod http;
mod tcp;

pub use backend::{Backend, Upstream};
pub use http::HttpMirrorProxy;
pub use tcp::TcpMirrorProxy;

use compare::{FieldDiff, Noise};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// How long production may take to answer (HTTP) or to connect (TCP).
    pub production_timeout: Duration,
    /// How long the candidate may take beyond production.
    pub candidate_timeout: Duration,
    /// Largest request or response body buffered (HTTP), or response stream compared (TCP).
    pub max_body: usize,
    /// Headers never compared (lower-case): per-hop headers and the clock.
    pub ignore_headers: Vec<String>,
    /// Most mismatches and errors kept in the report (counts are always complete).
    pub max_recorded: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            production_timeout: Duration::from_secs(30),
            candidate_timeout: Duration::from_secs(2),
            max_body: 16 << 20,
            ignore_headers: ["date", "connection", "keep-alive", "transfer-encoding"]
                .map(String::from)
                .to_vec(),
            max_recorded: 100,
        }
    }
}

/// Errors of controlling the proxy.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The backend to switch to does not accept connections: nothing was switched.
    #[error("not switching to {backend}: it does not accept connections ({source})")]
    Unreachable {
        /// The backend.
        backend: String,
        /// The error.
        source: std::io::Error,
    },
    /// The old backend still had requests in flight when the drain time ran out (the switch
    /// itself happened).
    #[error(
        "switched to {to}, but {from} still has {in_flight} requests in flight after {after:?}"
    )]
    DrainTimeout {
        /// The old backend.
        from: String,
        /// The new backend.
        to: String,
        /// Requests or connections still in flight.
        in_flight: usize,
        /// The drain time.
        after: Duration,
    },
}

/// A request whose candidate answer differed from production beyond the learned noise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// `METHOD /path` (HTTP) or `tcp` (raw TCP).
    pub endpoint: String,
    /// The request target (HTTP) or the client address (TCP).
    pub request: String,
    /// Fields that differ (HTTP).
    pub fields: Vec<FieldDiff>,
    /// Description of the difference (TCP), empty for HTTP.
    pub detail: String,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// What the proxy observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorReport {
    /// Client requests (HTTP) or connections (TCP) forwarded.
    pub forwarded: u64,
    /// Forwarded requests production failed to answer (the client got a 502/504).
    pub production_errors: u64,
    /// Requests copied to the candidate.
    pub mirrored: u64,
    /// Candidate answers equal to production's (beyond noise).
    pub matched: u64,
    /// Candidate answers that differed.
    pub mismatched: u64,
    /// Candidate connection or protocol errors.
    pub candidate_errors: u64,
    /// Candidate answers that did not come in time.
    pub candidate_timeouts: u64,
    /// Production samples taken for the noise model.
    pub noise_samples: u64,
    /// Noisy fields learned per endpoint.
    pub noise: BTreeMap<String, Vec<String>>,
    /// The first mismatches.
    pub mismatches: Vec<Mismatch>,
    /// The first candidate errors and time-outs.
    pub errors: Vec<String>,
    /// Production latency (client-visible, HTTP: full answer; TCP: first response byte).
    pub production_latency: Latency,
    /// Candidate latency.
    pub candidate_latency: Latency,
}

impl MirrorReport {
    /// Whether the candidate answered every mirrored request, in time, like production.
    pub fn candidate_agrees(&self) -> bool {
        self.mirrored > 0
            && self.mismatched == 0
            && self.candidate_errors == 0
            && self.candidate_timeouts == 0
    }
}

/// Most latency samples kept per side.
const MAX_LATENCY_SAMPLES: usize = 200_000;

#[derive(Debug, Default)]
struct Recorder {
    report: MirrorReport,
    production_us: Vec<u64>,
    candidate_us: Vec<u64>,
    noise: Noise,
}

fn percentiles(samples: &[u64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let at = |q: f64| s[((s.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        count: s.len() as u64,
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: *s.last().expect("non-empty"),
    }
}

/// The mirror target during a mirror period.
#[derive(Debug, Clone)]
pub(crate) struct MirrorTarget {
    pub candidate: Arc<Upstream>,
    pub secondary: Option<Arc<Upstream>>,
    pub until: Instant,
}

/// A bound front end: its address, its controls and its accept task (stopped on drop). Both
/// proxies are this with their own accept loop.
#[derive(Debug)]
pub(crate) struct Listening {
    pub addr: std::net::SocketAddr,
    pub control: ProxyControl,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Listening {
    /// Binds `listen` and runs `accept_loop` over it with fresh shared state for `production`.
    pub async fn start<F, Fut>(
        listen: std::net::SocketAddr,
        production: Backend,
        config: MirrorConfig,
        accept_loop: F,
    ) -> Result<Listening, MirrorError>
    where
        F: FnOnce(tokio::net::TcpListener, Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let bind_err = |source| MirrorError::Bind { addr: listen, source };
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared::new(production, config));
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Listening { addr, control: ProxyControl { shared }, accept })
    }
}

/// State shared by the front end, its connections and [`ProxyControl`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: MirrorConfig,
    active: RwLock<Arc<Upstream>>,
    mirror: RwLock<Option<MirrorTarget>>,
    recorder: Mutex<Recorder>,
    pub forwarded: AtomicU64,
}

/// A request or connection counted on the backend it was routed to.
#[derive(Debug)]
pub(crate) struct Routed(pub Arc<Upstream>);

impl Drop for Routed {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Shared {
    pub fn new(production: Backend, config: MirrorConfig) -> Shared {
        Shared {
            config,
            active: RwLock::new(Arc::new(Upstream::new(production))),
            mirror: RwLock::new(None),
            recorder: Mutex::new(Recorder::default()),
            forwarded: AtomicU64::new(0),
        }
    }

    /// Routes one request or connection to the active backend. The in-flight count is raised
    /// before the backend is confirmed still active, so a drain never misses it.
    pub fn route(&self) -> Routed {
        loop {
            let upstream = self.active.read().expect("route lock").clone();
            upstream.enter();
            if Arc::ptr_eq(&upstream, &self.active.read().expect("route lock")) {
                return Routed(upstream);
            }
            upstream.leave();
        }
    }

    pub fn mirror_target(&self) -> Option<MirrorTarget> {
        let m = self.mirror.read().expect("mirror lock");
        m.as_ref().filter(|t| Instant::now() < t.until).cloned()
    }

    pub fn record<F: FnOnce(&mut MirrorReport, &mut Noise)>(&self, f: F) {
        let mut r = self.recorder.lock().expect("recorder lock");
        let r = &mut *r;
        f(&mut r.report, &mut r.noise);
    }

    pub fn production_latency(&self, d: Duration) {
        let mut r = self.recorder.lock().expect("recorder lock");
        if r.production_us.len() < MAX_LATENCY_SAMPLES {
            r.production_us.push(d.as_micros() as u64);
        }
    }

    pub fn candidate_latency(&self, d: Duration) {
        let mut r = self.recorder.lock().expect("recorder lock");
        if r.candidate_us.len() < MAX_LATENCY_SAMPLES {
            r.candidate_us.push(d.as_micros() as u64);
        }
    }

    pub fn mismatch(&self, m: Mismatch) {
        let max = self.config.max_recorded;
        self.record(|r, _| {
            r.mismatched += 1;
            if r.mismatches.len() < max {
                r.mismatches.push(m);
            }
        });
    }

    pub fn candidate_failed(&self, timeout: bool, what: String) {
        let max = self.config.max_recorded;
        self.record(|r, _| {
            if timeout {
                r.candidate_timeouts += 1;
            } else {
                r.candidate_errors += 1;
            }
            if r.errors.len() < max {
                r.errors.push(what);
            }
        });
    }
}

/// A finished switchover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switchover {
    /// The backend that served before.
    pub from: Backend,
    /// The backend that serves now.
    pub to: Backend,
    /// Requests or connections in flight on the old backend at the switch.
    pub in_flight_at_switch: usize,
    /// Time until the last of them finished.
    pub drained_in: Duration,
}

/// Controls a running proxy: mirror periods, reports, switchover.
#[derive(Debug, Clone)]
pub struct ProxyControl {
    pub(crate) shared: Arc<Shared>,
}

impl ProxyControl {
    /// Starts a mirror period of `period` with `candidate`; `secondary` is a second production
    /// instance for noise samples (without one, HTTP safe requests are repeated to production;
    /// raw TCP then compares exactly).
    pub fn mirror(&self, candidate: Backend, secondary: Option<Backend>, period: Duration) {
        *self.shared.mirror.write().expect("mirror lock") = Some(MirrorTarget {
            candidate: Arc::new(Upstream::new(candidate)),
            secondary: secondary.map(|b| Arc::new(Upstream::new(b))),
            until: Instant::now() + period,
        });
    }

    /// Ends the mirror period now.
    pub fn stop_mirroring(&self) {
        *self.shared.mirror.write().expect("mirror lock") = None;
    }

    /// Whether a mirror period is running.
    pub fn mirroring(&self) -> bool {
        self.shared.mirror_target().is_some()
    }

    /// The backend new requests go to.
    pub fn active(&self) -> Backend {
        self.shared
            .active
            .read()
            .expect("route lock")
            .backend
            .clone()
    }

    /// Requests or connections in flight on the active backend.
    pub fn in_flight(&self) -> usize {
        self.shared.active.read().expect("route lock").in_flight()
    }

    /// What the proxy observed so far.
    pub fn report(&self) -> MirrorReport {
        let r = self.shared.recorder.lock().expect("recorder lock");
        let mut report = r.report.clone();
        report.forwarded = self.shared.forwarded.load(Ordering::SeqCst);
        report.noise = r.noise.snapshot();
        report.production_latency = percentiles(&r.production_us);
        report.candidate_latency = percentiles(&r.candidate_us);
        report
    }

    /// Clears the report (counts, samples, latencies; the learned noise stays).
    pub fn reset_report(&self) {
        let mut r = self.shared.recorder.lock().expect("recorder lock");
        r.report = MirrorReport::default();
        r.production_us.clear();
        r.candidate_us.clear();
        self.shared.forwarded.store(0, Ordering::SeqCst);
    }

    /// Atomically routes new requests to `to` (after checking it accepts connections), ends
    /// any mirror period, and waits up to `drain` for the old backend's in-flight requests to
    /// finish.
    pub async fn switch_to(&self, to: Backend, drain: Duration) -> Result<Switchover, MirrorError> {
        to.connect()
            .await
            .map_err(|source| MirrorError::Unreachable {
                backend: to.to_string(),
                source,
            })?;
        self.stop_mirroring();
        let new = Arc::new(Upstream::new(to.clone()));
        let old = std::mem::replace(&mut *self.shared.active.write().expect("route lock"), new);
        let at_switch = old.in_flight();
        let start = Instant::now();
        while old.in_flight() > 0 {
            if start.elapsed() >= drain {
                return Err(MirrorError::DrainTimeout {
                    from: old.backend.to_string(),
                    to: to.to_string(),
                    in_flight: old.in_flight(),
                    after: drain,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Switchover {
            from: old.backend.clone(),
            to,
            in_flight_at_switch: at_switch,
            drained_in: start.elapsed(),
        })
    }
}
