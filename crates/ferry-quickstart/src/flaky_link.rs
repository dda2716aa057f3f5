//! A TCP relay that cuts one connection mid-transfer: the "link that drops" of the quickstart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counters a caller can read after the run.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Bytes relayed from upstream to clients.
    pub bytes_down: AtomicU64,
    /// Whether the cut has happened.
    pub cut_done: AtomicBool,
}

/// Relays `listener` → `upstream`; after `cut_after` downstream bytes in total, drops the
/// connection carrying them (once). Runs until the task is aborted.
pub async fn run(listener: TcpListener, upstream: std::net::SocketAddr, cut_after: u64, stats: Arc<LinkStats>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let stats = stats.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
                let _ = sw.shutdown().await;
            });
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let total = stats.bytes_down.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                if total >= cut_after && !stats.cut_done.swap(true, Ordering::SeqCst) {
                    // Deliver half of this read, then drop the link mid-response.
                    let _ = cw.write_all(&buf[..n / 2]).await;
                    up.abort();
                    return;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            up.abort();
        });
    }
}
