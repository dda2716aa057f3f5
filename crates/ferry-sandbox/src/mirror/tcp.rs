//! The raw TCP front end: each client connection is relayed to the active backend; during a
//! mirror period the client's bytes are also sent to the candidate (and a secondary
//! production instance, if given), and at the end the candidate's response stream is compared
//! with production's.

use super::compare;
use super::{Backend, Listening, MirrorConfig, MirrorError, Mismatch, ProxyControl, Shared, Upstream};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A raw TCP proxy in front of a production service. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct TcpMirrorProxy {
    inner: Listening,
}

impl TcpMirrorProxy {
    /// Listens on `listen` and relays to `production`.
    pub async fn start(
        listen: SocketAddr,
        production: Backend,
        config: MirrorConfig,
    ) -> Result<TcpMirrorProxy, MirrorError> {
        let inner = Listening::start(listen, production, config, accept_loop).await?;
        Ok(TcpMirrorProxy { inner })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The proxy's controls.
    pub fn control(&self) -> ProxyControl {
        self.inner.control.clone()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(relay(shared.clone(), stream, peer));
    }
}

/// Chunks queued for a mirror copy before it counts as fallen behind.
const MIRROR_QUEUE: usize = 256;

/// What a mirror side sent back: its response stream and when its first byte came.
type SideResult = Result<(Vec<u8>, Option<Duration>), String>;

/// A mirror side (candidate or secondary): the client's bytes go in through `tx`, its
/// response stream comes back from `task`.
struct Side {
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<SideResult>,
}

async fn open_side(upstream: &Upstream, limit: usize, timeout: Duration) -> Result<Side, String> {
    let stream = tokio::time::timeout(timeout, upstream.backend.connect())
        .await
        .map_err(|_| format!("connecting to {} timed out", upstream.backend))?
        .map_err(|e| format!("cannot connect to {}: {e}", upstream.backend))?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(MIRROR_QUEUE);
    let name = upstream.backend.to_string();
    let task = tokio::spawn(async move {
        let (mut r, mut w) = stream.into_split();
        let start = Instant::now();
        let writer = async {
            while let Some(chunk) = rx.recv().await {
                w.write_all(&chunk).await?;
            }
            w.shutdown().await
        };
        let reader = async {
            let mut out = Vec::new();
            let mut first = None;
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>((out, first));
                }
                first.get_or_insert_with(|| start.elapsed());
                let room = limit.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        };
        let (w, r) = tokio::join!(writer, reader);
        w.map_err(|e| format!("{name}: sending the mirrored bytes failed: {e}"))?;
        r.map_err(|e| format!("{name}: reading its answer failed: {e}"))
    });
    Ok(Side { tx: Some(tx), task })
}

async fn relay(shared: Arc<Shared>, client: TcpStream, peer: SocketAddr) {
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let cfg = shared.config.clone();
    let routed = shared.route();
    let production =
        match tokio::time::timeout(cfg.production_timeout, routed.0.backend.connect()).await {
            Ok(Ok(s)) => s,
            _ => {
                shared.record(|r, _| r.production_errors += 1);
                return;
            }
        };
    let target = shared.mirror_target();
    let mut candidate = None;
    let mut secondary = None;
    if let Some(t) = &target {
        shared.record(|r, _| r.mirrored += 1);
        match open_side(&t.candidate, cfg.max_body, cfg.candidate_timeout).await {
            Ok(side) => candidate = Some(side),
            Err(e) => shared.candidate_failed(false, format!("tcp {peer}: {e}")),
        }
        if let Some(s) = &t.secondary
            && let Ok(side) = open_side(s, cfg.max_body, cfg.production_timeout).await
        {
            secondary = Some(side);
        }
    }
    let mirroring = candidate.is_some();
    let (mut cr, mut cw) = client.into_split();
    let (mut pr, mut pw) = production.into_split();
    let start = Instant::now();
    let upstream = async {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = cr.read(&mut buf).await.unwrap_or_default();
            if n == 0 {
                let _ = pw.shutdown().await;
                break;
            }
            if pw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            for side in [&mut candidate, &mut secondary].into_iter().flatten() {
                if let Some(tx) = &side.tx
                    && tx.try_send(chunk.clone()).is_err()
                {
                    // Fallen behind or gone: stop feeding it (its stream is then incomplete).
                    side.tx = None;
                }
            }
        }
        for side in [&mut candidate, &mut secondary].into_iter().flatten() {
            side.tx = None;
        }
    };
    let downstream = async {
        let mut captured = Vec::new();
        let mut first = None;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = pr.read(&mut buf).await.unwrap_or_default();
            if n == 0 {
                let _ = cw.shutdown().await;
                break;
            }
            first.get_or_insert_with(|| start.elapsed());
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if mirroring {
                let room = cfg.max_body.saturating_sub(captured.len());
                captured.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        (captured, first)
    };
    let ((), (captured, first)) = tokio::join!(upstream, downstream);
    drop(routed);
    if let Some(first) = first {
        shared.production_latency(first);
    }
    let Some(candidate) = candidate else { return };
    let secondary_stream = match secondary {
        Some(s) => match tokio::time::timeout(cfg.production_timeout, s.task).await {
            Ok(Ok(Ok((bytes, _)))) => Some(bytes),
            _ => None,
        },
        None => None,
    };
    let (candidate_stream, candidate_first) =
        match tokio::time::timeout(cfg.candidate_timeout, candidate.task).await {
            Ok(Ok(Ok(r))) => r,
            Ok(Ok(Err(e))) => {
                shared.candidate_failed(false, format!("tcp {peer}: {e}"));
                return;
            }
            Ok(Err(e)) => {
                shared.candidate_failed(false, format!("tcp {peer}: candidate relay failed: {e}"));
                return;
            }
            Err(_) => {
                shared.candidate_failed(
                    true,
                    format!(
                        "tcp {peer}: candidate did not finish its answer within {:?} of production",
                        cfg.candidate_timeout
                    ),
                );
                return;
            }
        };
    if let Some(f) = candidate_first {
        shared.candidate_latency(f);
    }
    if secondary_stream.is_some() {
        shared.record(|r, _| r.noise_samples += 1);
    }
    match compare::compare_streams(&captured, &candidate_stream, secondary_stream.as_deref()) {
        None => shared.record(|r, _| r.matched += 1),
        Some(detail) => shared.mismatch(Mismatch {
            endpoint: "tcp".into(),
            request: peer.to_string(),
            fields: Vec::new(),
            detail,
        }),
    }
}
