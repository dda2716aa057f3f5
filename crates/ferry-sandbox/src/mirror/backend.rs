//! Backends the proxy talks to, their HTTP/1.1 connection pools and in-flight counts.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;

/// Where a backend listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// A TCP address reachable from the proxy's network namespace.
    Tcp(SocketAddr),
    /// A TCP address inside another network namespace (a sandbox's,
    /// [`crate::sandbox::SandboxChild::net_namespace`]): connections are made from a thread
    /// that enters that namespace with `setns`, so the sandbox needs no network route out.
    InNamespace {
        /// Path of the namespace, e.g. `/proc/PID/ns/net`.
        netns: PathBuf,
        /// Address inside it.
        addr: SocketAddr,
    },
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Tcp(a) => write!(f, "{a}"),
            Backend::InNamespace { netns, addr } => write!(f, "{addr} in {}", netns.display()),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Backend {
    /// Opens a TCP connection to the backend.
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        match self {
            Backend::Tcp(addr) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                    })??;
                stream.set_nodelay(true)?;
                Ok(stream)
            }
            Backend::InNamespace { netns, addr } => {
                let (netns, addr) = (netns.clone(), *addr);
                let std_stream = tokio::task::spawn_blocking(move || connect_in_netns(netns, addr))
                    .await
                    .map_err(std::io::Error::other)??;
                std_stream.set_nonblocking(true)?;
                std_stream.set_nodelay(true)?;
                TcpStream::from_std(std_stream)
            }
        }
    }
}

/// Connects from a short-lived thread that enters `netns` (the namespace only changes for
/// that thread, which then ends; the socket stays in the namespace it was made in).
fn connect_in_netns(netns: PathBuf, addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&netns)?;
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot enter network namespace {}: {e}", netns.display()),
            ));
        }
        std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace connect thread panicked"))?
}

/// A request read in full from the client, replayable to several backends.
#[derive(Debug, Clone)]
pub struct BufferedRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path_and_query: String,
    /// End-to-end headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A response read in full from a backend.
#[derive(Debug, Clone)]
pub struct BufferedResponse {
    /// Status.
    pub status: StatusCode,
    /// End-to-end headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// Hop-by-hop headers, which a proxy does not forward.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// `headers` without hop-by-hop headers (including any named by `Connection`); the length is
/// set again from the buffered body.
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(hyper::header::CONNECTION) {
        if let Ok(s) = value.to_str() {
            named.extend(
                s.split(',')
                    .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok()),
            );
        }
    }
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Why a backend gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting failed.
    #[error("cannot connect to {backend}: {source}")]
    Connect {
        /// The backend.
        backend: String,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{backend}: {source}")]
    Http {
        /// The backend.
        backend: String,
        /// The error.
        source: hyper::Error,
    },
    /// The response body was larger than the limit.
    #[error("{backend}: response body larger than {limit} bytes")]
    TooLarge {
        /// The backend.
        backend: String,
        /// The limit.
        limit: usize,
    },
    /// No answer within the time limit.
    #[error("{backend}: no answer within {after:?}")]
    Timeout {
        /// The backend.
        backend: String,
        /// The limit.
        after: Duration,
    },
}

/// A backend with its pool of idle HTTP/1.1 connections and its in-flight count.
#[derive(Debug)]
pub struct Upstream {
    /// The backend.
    pub backend: Backend,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    inflight: AtomicUsize,
}

/// Most idle connections kept per backend.
const MAX_IDLE: usize = 64;

impl Upstream {
    /// A backend with an empty pool.
    pub fn new(backend: Backend) -> Upstream {
        Upstream {
            backend,
            idle: Mutex::new(Vec::new()),
            inflight: AtomicUsize::new(0),
        }
    }

    /// Requests (HTTP) or connections (TCP) now in flight on this backend.
    pub fn in_flight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    pub(crate) fn enter(&self) {
        self.inflight.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave(&self) {
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn handshake(&self) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        let stream = self
            .backend
            .connect()
            .await
            .map_err(|source| UpstreamError::Connect {
                backend: self.backend.to_string(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| UpstreamError::Http {
                backend: self.backend.to_string(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` and reads the whole answer (body at most `max_body` bytes) within
    /// `timeout`. A request that a reused idle connection could not carry (closed by the
    /// backend meanwhile) is sent again on a new connection.
    pub async fn round_trip(
        self: &std::sync::Arc<Self>,
        req: &BufferedRequest,
        max_body: usize,
        timeout: Duration,
    ) -> Result<BufferedResponse, UpstreamError> {
        match tokio::time::timeout(timeout, self.round_trip_inner(req, max_body)).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout {
                backend: self.backend.to_string(),
                after: timeout,
            }),
        }
    }

    async fn round_trip_inner(
        self: &std::sync::Arc<Self>,
        req: &BufferedRequest,
        max_body: usize,
    ) -> Result<BufferedResponse, UpstreamError> {
        let idempotent = matches!(
            req.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.handshake().await?, false),
            };
            let mut builder = Request::builder()
                .method(req.method.clone())
                .uri(req.path_and_query.as_str());
            if let Some(h) = builder.headers_mut() {
                *h = req.headers.clone();
            }
            let request = builder
                .body(Full::new(req.body.clone()))
                .expect("a request built from a parsed request is valid");
            let response: Response<hyper::body::Incoming> = match sender.send_request(request).await
            {
                Ok(r) => r,
                Err(e)
                    if reused && (e.is_canceled() || (idempotent && e.is_incomplete_message())) =>
                {
                    continue;
                }
                Err(source) => {
                    return Err(UpstreamError::Http {
                        backend: self.backend.to_string(),
                        source,
                    });
                }
            };
            let (parts, body) = response.into_parts();
            let body = match Limited::new(body, max_body).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return Err(match e.downcast::<hyper::Error>() {
                        Ok(source) => UpstreamError::Http {
                            backend: self.backend.to_string(),
                            source: *source,
                        },
                        Err(_) => UpstreamError::TooLarge {
                            backend: self.backend.to_string(),
                            limit: max_body,
                        },
                    });
                }
            };
            if sender.is_ready() {
                self.put_idle(sender);
            } else if !sender.is_closed() {
                // The connection finishes the exchange in its own task; pool it once it can
                // carry the next request.
                let pool = self.clone();
                tokio::spawn(async move {
                    if sender.ready().await.is_ok() {
                        pool.put_idle(sender);
                    }
                });
            }
            return Ok(BufferedResponse {
                status: parts.status,
                headers: end_to_end(&parts.headers),
                body,
            });
        }
    }
}
