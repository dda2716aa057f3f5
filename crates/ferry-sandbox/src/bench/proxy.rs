//! The mirroring proxy's added latency at a fixed request rate, and the requests lost when it
//! switches production traffic to another instance and back under that load.

use crate::mirror::{Backend, HttpMirrorProxy, MirrorConfig};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// The proxy's figures.
#[derive(Debug, Clone, Default)]
pub struct ProxyFigures {
    /// Requests per second.
    pub rate: u64,
    /// Seconds per phase.
    pub seconds: u64,
    /// Straight to the service.
    pub direct: Percentiles,
    /// Through the proxy, forwarding only.
    pub proxied: Percentiles,
    /// Through the proxy while it mirrors every request to a second instance.
    pub mirroring: Percentiles,
    /// Requests mirrored, and how many answers matched (beyond learned noise).
    pub mirrored: u64,
    /// Of those, matched.
    pub matched: u64,
    /// Requests served during the switchover phase.
    pub switch_served: u64,
    /// Requests that failed during the switchover phase (must be 0).
    pub switch_lost: u64,
    /// Failed requests in the latency phases.
    pub failed: u64,
    /// Why the proxy could not be measured, if it could not.
    pub error: Option<String>,
}

/// A loopback HTTP service answering JSON with a random id (noise the proxy must learn).
async fn service() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let body = format!("{{\"path\":\"{}\",\"id\":{}}}", req.uri().path(), rand::random::<u32>());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}

/// Sends `rate` requests per second for `secs` seconds to `target`; the sorted latencies (µs)
/// of the successful ones and the number of failures.
async fn load(target: SocketAddr, rate: u64, secs: u64) -> (Vec<u64>, u64) {
    let client = reqwest::Client::new();
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = match client.get(format!("http://{target}/items/{}", i % 10)).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, t.elapsed().as_micros() as u64)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok((true, us)) => lat.push(us),
            _ => failed += 1,
        }
    }
    lat.sort_unstable();
    (lat, failed)
}

fn percentiles(v: &[u64]) -> Percentiles {
    let at = |q: f64| if v.is_empty() { 0 } else { v[((v.len() - 1) as f64 * q).round() as usize] };
    Percentiles { p50: at(0.5), p99: at(0.99) }
}

/// Measures the proxy at `rate` requests/s, `secs` seconds per phase. Needs a multi-threaded
/// runtime.
pub async fn measure_proxy(rate: u64, secs: u64) -> ProxyFigures {
    let mut f = ProxyFigures { rate, seconds: secs, ..Default::default() };
    let (production, candidate) = match (service().await, service().await) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), _) | (_, Err(e)) => {
            f.error = Some(format!("cannot start the loopback services: {e}"));
            return f;
        }
    };
    let proxy = match HttpMirrorProxy::start(([127, 0, 0, 1], 0).into(), Backend::Tcp(production), MirrorConfig::default()).await {
        Ok(p) => p,
        Err(e) => {
            f.error = Some(format!("cannot start the proxy: {e}"));
            return f;
        }
    };
    let control = proxy.control();
    // Warm up connections on both paths.
    load(production, 100, 1).await;
    load(proxy.local_addr(), 100, 1).await;

    let (direct, a) = load(production, rate, secs).await;
    let (proxied, b) = load(proxy.local_addr(), rate, secs).await;
    control.mirror(Backend::Tcp(candidate), None, Duration::from_secs(secs + 5));
    let (mirroring, c) = load(proxy.local_addr(), rate, secs).await;
    control.stop_mirroring();
    let report = control.report();
    f.direct = percentiles(&direct);
    f.proxied = percentiles(&proxied);
    f.mirroring = percentiles(&mirroring);
    f.failed = a + b + c;
    f.mirrored = report.mirrored;
    f.matched = report.matched;

    let under_load = tokio::spawn(load(proxy.local_addr(), rate, secs));
    tokio::time::sleep(Duration::from_millis(secs * 1000 / 3)).await;
    let there = control.switch_to(Backend::Tcp(candidate), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(secs * 1000 / 3)).await;
    let back = control.switch_to(Backend::Tcp(production), Duration::from_secs(10)).await;
    match under_load.await {
        Ok((served, lost)) => {
            f.switch_served = served.len() as u64;
            f.switch_lost = lost;
        }
        Err(e) => f.error = Some(format!("load task failed: {e}")),
    }
    if let Err(e) = there.and(back) {
        f.error = Some(format!("switchover failed: {e}"));
    }
    f
}

impl fmt::Display for ProxyFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.error {
            writeln!(f, "mirroring proxy: not measured: {e}")?;
        }
        writeln!(f, "mirroring proxy at {} requests/s, {} s per phase (client latency, µs):", self.rate, self.seconds)?;
        for (name, p) in [("direct", self.direct), ("via proxy", self.proxied), ("via proxy, mirroring", self.mirroring)] {
            writeln!(f, "  {name:<24} p50 {:>6}  p99 {:>6}", p.p50, p.p99)?;
        }
        let added = |p: Percentiles| (p.p50.saturating_sub(self.direct.p50), p.p99.saturating_sub(self.direct.p99));
        let (a50, a99) = added(self.proxied);
        writeln!(f, "  added by the proxy       p50 {a50:>6}  p99 {a99:>6}   (target p99 <= 1000)")?;
        let (m50, m99) = added(self.mirroring);
        writeln!(f, "  added while mirroring    p50 {m50:>6}  p99 {m99:>6}")?;
        writeln!(f, "  mirrored {} requests, {} answered like production; {} failed requests", self.mirrored, self.matched, self.failed)?;
        writeln!(f, "switchover to a second instance and back under load: {} served, {} lost (must be 0)", self.switch_served, self.switch_lost)
    }
}
