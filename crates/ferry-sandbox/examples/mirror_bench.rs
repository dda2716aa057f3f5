//! `mirror_bench [RATE] [SECONDS]`: the mirroring proxy's added latency and the requests lost
//! during switchover. A loopback HTTP service is called at a fixed rate (default 500/s for 3 s)
//! directly and through the proxy (plain forwarding, then mirroring to a second instance), and
//! the client-side latency percentiles are compared; then the proxy is switched to the second
//! instance and back under the same load, counting failed requests (must be 0).

use bytes::Bytes;
use ferry_sandbox::mirror::{Backend, HttpMirrorProxy, MirrorConfig};
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

async fn service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let body = format!(
                        "{{\"path\":\"{}\",\"id\":{}}}",
                        req.uri().path(),
                        rand::random::<u32>()
                    );
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends `rate` requests per second for `secs` seconds to `target`; returns the sorted
/// latencies (µs) of the successful ones and the number of failures.
async fn run(target: SocketAddr, rate: u64, secs: u64) -> (Vec<u64>, u64) {
    let client = reqwest::Client::new();
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = match client
                .get(format!("http://{target}/items/{}", i % 10))
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, t.elapsed().as_micros() as u64)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (true, us) => lat.push(us),
            _ => failed += 1,
        }
    }
    lat.sort_unstable();
    (lat, failed)
}

fn pct(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: mirror_bench [RATE] [SECONDS]"))
        .collect();
    let rate = args.first().copied().unwrap_or(500);
    let secs = args.get(1).copied().unwrap_or(3);
    let production = service().await;
    let candidate = service().await;
    let proxy = HttpMirrorProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        Backend::Tcp(production),
        MirrorConfig::default(),
    )
    .await
    .unwrap();
    let control = proxy.control();
    // Warm up connections.
    run(production, 100, 1).await;
    run(proxy.local_addr(), 100, 1).await;

    let (direct, _) = run(production, rate, secs).await;
    let (proxied, _) = run(proxy.local_addr(), rate, secs).await;
    control.mirror(Backend::Tcp(candidate), None, Duration::from_secs(secs + 5));
    let (mirrored, _) = run(proxy.local_addr(), rate, secs).await;
    control.stop_mirroring();
    println!("{rate} requests/s for {secs} s, client latency in µs:");
    for (name, v) in [
        ("direct", &direct),
        ("via proxy", &proxied),
        ("via proxy, mirroring", &mirrored),
    ] {
        println!(
            "  {name:<22} p50 {:>6}  p99 {:>6}",
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "  added by the proxy:    p50 {:>6}  p99 {:>6}",
        pct(&proxied, 0.5).saturating_sub(pct(&direct, 0.5)),
        pct(&proxied, 0.99).saturating_sub(pct(&direct, 0.99))
    );
    println!(
        "  added while mirroring: p50 {:>6}  p99 {:>6}",
        pct(&mirrored, 0.5).saturating_sub(pct(&direct, 0.5)),
        pct(&mirrored, 0.99).saturating_sub(pct(&direct, 0.99))
    );
    let report = control.report();
    println!(
        "  mirrored {} requests: {} matched, {} mismatched",
        report.mirrored, report.matched, report.mismatched
    );

    let load = tokio::spawn(run(proxy.local_addr(), rate, secs));
    tokio::time::sleep(Duration::from_millis(secs * 1000 / 3)).await;
    let there = control
        .switch_to(Backend::Tcp(candidate), Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(secs * 1000 / 3)).await;
    let back = control
        .switch_to(Backend::Tcp(production), Duration::from_secs(10))
        .await
        .unwrap();
    let (served, lost) = load.await.unwrap();
    println!(
        "switchover under load: {} requests served, {lost} lost; drained {} in {:?} and {} in {:?}",
        served.len(),
        there.in_flight_at_switch,
        there.drained_in,
        back.in_flight_at_switch,
        back.drained_in
    );
    if lost > 0 {
        std::process::exit(1);
    }
}
