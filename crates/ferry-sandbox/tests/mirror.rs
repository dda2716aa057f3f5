//! The mirroring proxy against real loopback servers: HTTP mirroring with learned noise,
//! detection of a candidate that answers differently, switchover under load, raw TCP mode.

use bytes::Bytes;
use ferry_sandbox::mirror::{
    Backend, HttpMirrorProxy, MirrorConfig, MirrorReport, ProxyControl, TcpMirrorProxy,
};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a test service behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// The production service (and a faithful candidate).
    Faithful,
    /// A candidate that renames item 3, fails orders and is slow on `/slow`.
    Divergent,
}

/// A real HTTP server on loopback; `stop` closes the listener and every open connection.
struct Service {
    addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Service {
    async fn start(addr: SocketAddr, name: &'static str, behaviour: Behaviour) -> Service {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(move |req| answer(req, name, behaviour));
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                conns.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Service { addr, tasks }
    }

    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn backend(&self) -> Backend {
        Backend::Tcp(self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    name: &'static str,
    behaviour: Behaviour,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_string();
    let divergent = behaviour == Behaviour::Divergent;
    let (status, json) = if let Some(n) = path.strip_prefix("/items/") {
        let n: u32 = n.parse().unwrap();
        let item_name = if divergent && n == 3 {
            "evil".to_string()
        } else {
            format!("item-{n}")
        };
        (
            StatusCode::OK,
            serde_json::json!({"item": n, "name": item_name, "request_id": random_hex(),
                "tags": ["a", "b"]}),
        )
    } else if path == "/orders" {
        if divergent {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "no"}),
            )
        } else {
            (
                StatusCode::CREATED,
                serde_json::json!({"order": String::from_utf8_lossy(&body), "id": random_hex()}),
            )
        }
    } else if path == "/slow" {
        if divergent {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        (StatusCode::OK, serde_json::json!({"slow": true}))
    } else {
        (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(json.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-request-id", random_hex().parse().unwrap());
    h.insert("x-served-by", name.parse().unwrap());
    Ok(r)
}

/// Proxy settings for these tests: `x-served-by` names the instance, so it is never compared.
fn config() -> MirrorConfig {
    let mut c = MirrorConfig::default();
    c.ignore_headers.push("x-served-by".into());
    c
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Waits (bounded) until every mirrored request has its outcome recorded.
async fn settled(control: &ProxyControl) -> MirrorReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = control.report();
        let done = r.matched + r.mismatched + r.candidate_errors + r.candidate_timeouts;
        if done >= r.mirrored || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_requests_and_ignores_learned_noise() {
    let production = Service::start(loopback(), "production", Behaviour::Faithful).await;
    let secondary = Service::start(loopback(), "production-2", Behaviour::Faithful).await;
    let candidate = Service::start(loopback(), "candidate", Behaviour::Faithful).await;
    let proxy = HttpMirrorProxy::start(loopback(), production.backend(), config())
        .await
        .unwrap();
    let control = proxy.control();
    let client = reqwest::Client::new();
    let base = format!("http://{}", proxy.local_addr());

    // Before the mirror period nothing is copied.
    let r = client.get(format!("{base}/items/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-served-by"], "production");
    assert_eq!(settled(&control).await.mirrored, 0);

    // Phase 1: no secondary instance; safe requests are sampled twice from production.
    control.mirror(candidate.backend(), None, Duration::from_secs(60));
    assert!(control.mirroring());
    for i in 0..40u32 {
        let r = client
            .get(format!("{base}/items/{}", i % 5))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-served-by"], "production");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["name"], format!("item-{}", i % 5));
    }
    let report = settled(&control).await;
    assert_eq!(report.mirrored, 40, "{report:#?}");
    assert_eq!(report.matched, 40, "{report:#?}");
    assert_eq!(report.mismatched, 0, "{report:#?}");
    assert_eq!(report.noise_samples, 40);
    let noise = &report.noise["GET /items/1"];
    assert!(noise.contains(&"body.request_id".to_string()), "{noise:?}");
    assert!(
        noise.contains(&"header:x-request-id".to_string()),
        "{noise:?}"
    );
    assert!(!noise.contains(&"body.name".to_string()), "{noise:?}");
    assert_eq!(report.candidate_latency.count, 40);
    assert!(report.production_latency.count >= 41);

    // Phase 2: a second production instance gives the noise samples, so unsafe requests are
    // compared as well (and never sent to production twice).
    control.reset_report();
    control.mirror(
        candidate.backend(),
        Some(secondary.backend()),
        Duration::from_secs(60),
    );
    for i in 0..20 {
        let r = client
            .post(format!("{base}/orders"))
            .body(format!("order-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-served-by"], "production");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["order"], format!("order-{i}"));
    }
    let report = settled(&control).await;
    assert_eq!((report.mirrored, report.matched), (20, 20), "{report:#?}");
    assert!(report.candidate_agrees());
    let noise = &report.noise["POST /orders"];
    assert!(noise.contains(&"body.id".to_string()), "{noise:?}");
    assert!(
        noise.contains(&"header:x-request-id".to_string()),
        "{noise:?}"
    );
    assert!(!noise.contains(&"body.order".to_string()), "{noise:?}");

    // After the period ends nothing more is mirrored.
    control.mirror(candidate.backend(), None, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    client.get(format!("{base}/items/2")).send().await.unwrap();
    assert_eq!(settled(&control).await.mirrored, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_candidate_that_answers_differently() {
    let production = Service::start(loopback(), "production", Behaviour::Faithful).await;
    let candidate = Service::start(loopback(), "candidate", Behaviour::Divergent).await;
    let config = MirrorConfig {
        candidate_timeout: Duration::from_millis(300),
        ..config()
    };
    let proxy = HttpMirrorProxy::start(loopback(), production.backend(), config)
        .await
        .unwrap();
    let control = proxy.control();
    let client = reqwest::Client::new();
    let base = format!("http://{}", proxy.local_addr());
    control.mirror(candidate.backend(), None, Duration::from_secs(60));
    for i in 0..5u32 {
        let v: serde_json::Value = client
            .get(format!("{base}/items/{i}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The client always gets production's answer.
        assert_eq!(v["name"], format!("item-{i}"));
    }
    let r = client
        .post(format!("{base}/orders"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let started = Instant::now();
    let r = client.get(format!("{base}/slow")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the client waited for the candidate"
    );

    let report = settled(&control).await;
    assert!(!report.candidate_agrees());
    assert_eq!(report.mirrored, 7, "{report:#?}");
    assert_eq!(report.matched, 4, "{report:#?}");
    assert_eq!(report.mismatched, 2, "{report:#?}");
    assert_eq!(report.candidate_timeouts, 1, "{report:#?}");
    let item3 = report
        .mismatches
        .iter()
        .find(|m| m.request == "GET /items/3")
        .expect("item 3 mismatch recorded");
    assert_eq!(item3.endpoint, "GET /items/3");
    assert_eq!(item3.fields.len(), 1, "{item3:#?}");
    assert_eq!(item3.fields[0].field, "body.name");
    assert_eq!(item3.fields[0].production, "\"item-3\"");
    assert_eq!(item3.fields[0].candidate, "\"evil\"");
    let orders = report
        .mismatches
        .iter()
        .find(|m| m.endpoint == "POST /orders")
        .expect("orders mismatch recorded");
    let status = orders.fields.iter().find(|f| f.field == "status").unwrap();
    assert_eq!(
        (status.production.as_str(), status.candidate.as_str()),
        ("201", "500")
    );
    assert!(report.errors[0].contains("/slow"), "{:?}", report.errors);

    // A candidate that is not there at all: errors counted, clients unaffected.
    let closed = TcpListener::bind(loopback()).await.unwrap();
    let gone = Backend::Tcp(closed.local_addr().unwrap());
    drop(closed);
    control.reset_report();
    control.mirror(gone, None, Duration::from_secs(60));
    for _ in 0..3 {
        let r = client.get(format!("{base}/items/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let report = settled(&control).await;
    assert_eq!(report.candidate_errors, 3, "{report:#?}");
    assert!(
        report.errors[0].contains("cannot connect"),
        "{:?}",
        report.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_request_fails_during_switchover() {
    let production = Service::start(loopback(), "production-v1", Behaviour::Faithful).await;
    let prod_addr = production.addr;
    let candidate = Service::start(loopback(), "candidate", Behaviour::Faithful).await;
    let proxy = HttpMirrorProxy::start(loopback(), production.backend(), config())
        .await
        .unwrap();
    let control = proxy.control();
    let base = format!("http://{}", proxy.local_addr());

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let served: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let (stop, ok, served, failures, base) = (
            stop.clone(),
            ok.clone(),
            served.clone(),
            failures.clone(),
            base.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) && i < 200_000 {
                i += 1;
                let outcome = async {
                    let r = if i.is_multiple_of(4) {
                        client
                            .post(format!("{base}/orders"))
                            .body(format!("{c}-{i}"))
                            .send()
                            .await
                    } else {
                        client.get(format!("{base}/items/{}", i % 7)).send().await
                    }
                    .map_err(|e| format!("request {c}-{i}: {e}"))?;
                    let status = r.status();
                    let by = r.headers()["x-served-by"].to_str().unwrap().to_string();
                    let body = r.text().await.map_err(|e| e.to_string())?;
                    if !status.is_success() {
                        return Err(format!("request {c}-{i}: {status} {body}"));
                    }
                    Ok::<_, String>(by)
                }
                .await;
                match outcome {
                    Ok(by) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        *served.lock().unwrap().entry(by).or_default() += 1;
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    control.mirror(candidate.backend(), None, Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = settled(&control).await;
    assert!(report.mirrored > 0 && report.matched > 0, "{report:#?}");

    // Verdict safe: production traffic to the candidate, then the old production stops.
    let to_candidate = control
        .switch_to(candidate.backend(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(to_candidate.from, Backend::Tcp(prod_addr));
    assert_eq!(control.active(), candidate.backend());
    production.stop();
    drop(production);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The device is upgraded: production comes back on its address, traffic returns to it.
    let upgraded = Service::start(prod_addr, "production-v2", Behaviour::Faithful).await;
    let back = control
        .switch_to(upgraded.backend(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(back.from, candidate.backend());
    candidate.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    {
        let failures = failures.lock().unwrap();
        let served = served.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        for who in ["production-v1", "candidate", "production-v2"] {
            assert!(
                served.get(who).copied().unwrap_or(0) > 10,
                "{who}: {served:?}"
            );
        }
    }
    assert_eq!(control.report().production_errors, 0);
    assert!(ok.load(Ordering::SeqCst) > 100);
    // Switching to something that does not listen is refused and changes nothing.
    let closed = TcpListener::bind(loopback()).await.unwrap();
    let gone = Backend::Tcp(closed.local_addr().unwrap());
    drop(closed);
    assert!(
        control
            .switch_to(gone, Duration::from_secs(1))
            .await
            .is_err()
    );
    assert_eq!(control.active(), upgraded.backend());
}

/// A line service: greets with a session token, then answers each line.
async fn line_service(divergent: bool) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(format!("HELLO session={}\n", random_hex()).as_bytes())
                    .await
                    .unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = if divergent && line == "get secret" {
                        "VALUE leaked\n".to_string()
                    } else {
                        format!("VALUE {}\n", line.to_uppercase())
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, task)
}

async fn tcp_session(proxy: SocketAddr, lines: &[&str]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    for l in lines {
        s.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mode_mirrors_byte_streams_and_switches() {
    let (production, _p) = line_service(false).await;
    let (secondary, _s) = line_service(false).await;
    let (good, _g) = line_service(false).await;
    let (bad, _b) = line_service(true).await;
    let proxy = TcpMirrorProxy::start(loopback(), Backend::Tcp(production), config())
        .await
        .unwrap();
    let control = proxy.control();
    let addr = proxy.local_addr();

    // Same-length session tokens differ between the two production samples: masked as noise.
    control.mirror(
        Backend::Tcp(good),
        Some(Backend::Tcp(secondary)),
        Duration::from_secs(60),
    );
    for _ in 0..10 {
        let out = tcp_session(addr, &["ping", "get secret"]).await;
        assert!(out.ends_with("VALUE PING\nVALUE GET SECRET\n"), "{out}");
    }
    let report = settled(&control).await;
    assert_eq!((report.mirrored, report.matched), (10, 10), "{report:#?}");
    assert_eq!(report.noise_samples, 10);

    // Without a secondary sample the token makes every stream differ: compared exactly.
    control.reset_report();
    control.mirror(Backend::Tcp(good), None, Duration::from_secs(60));
    tcp_session(addr, &["ping"]).await;
    assert_eq!(settled(&control).await.mismatched, 1);

    // A candidate that answers one request differently is caught.
    control.reset_report();
    control.mirror(
        Backend::Tcp(bad),
        Some(Backend::Tcp(secondary)),
        Duration::from_secs(60),
    );
    let out = tcp_session(addr, &["ping", "get secret"]).await;
    assert!(out.ends_with("VALUE GET SECRET\n"), "{out}");
    tcp_session(addr, &["ping"]).await;
    let report = settled(&control).await;
    assert_eq!((report.matched, report.mismatched), (1, 1), "{report:#?}");
    assert!(
        report.mismatches[0].detail.contains("GET SECRET")
            && report.mismatches[0].detail.contains("leaked"),
        "{:?}",
        report.mismatches[0]
    );

    // Switchover: a connection open across the switch stays on production; new ones go to
    // the candidate, and the drain waits for the open one.
    control.stop_mirroring();
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"before\n").await.unwrap();
    let mut greeting = vec![0u8; 64];
    let n = open.read(&mut greeting).await.unwrap();
    assert!(String::from_utf8_lossy(&greeting[..n]).starts_with("HELLO"));
    let switch = tokio::spawn({
        let control = control.clone();
        async move {
            control
                .switch_to(Backend::Tcp(good), Duration::from_secs(10))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !switch.is_finished(),
        "drain must wait for the open connection"
    );
    assert_eq!(control.active(), Backend::Tcp(good));
    let out = tcp_session(addr, &["new"]).await;
    assert!(out.ends_with("VALUE NEW\n"), "{out}");
    open.write_all(b"after\n").await.unwrap();
    open.shutdown().await.unwrap();
    let mut rest = String::new();
    open.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("VALUE AFTER\n"), "{rest}");
    let done = switch.await.unwrap().unwrap();
    assert_eq!(done.in_flight_at_switch, 1);
    assert_eq!(done.from, Backend::Tcp(production));
}
