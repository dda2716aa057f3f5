//! The HTTP/1.1 front end.

use super::backend::{BufferedRequest, BufferedResponse, UpstreamError, end_to_end};
use super::compare::{self, Sample};
use super::{Backend, Listening, MirrorConfig, MirrorError, MirrorTarget, ProxyControl, Shared};
use super::{Mismatch, Routed};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::net::TcpListener;

/// An HTTP proxy in front of a production service (see the module documentation).
/// Dropping it stops accepting connections.
#[derive(Debug)]
pub struct HttpMirrorProxy {
    inner: Listening,
}

impl HttpMirrorProxy {
    /// Listens on `listen` and forwards to `production`.
    pub async fn start(
        listen: SocketAddr,
        production: Backend,
        config: MirrorConfig,
    ) -> Result<HttpMirrorProxy, MirrorError> {
        let inner = Listening::start(listen, production, config, accept_loop).await?;
        Ok(HttpMirrorProxy { inner })
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
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.config.max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("ferry mirror proxy: request body refused: {e}"),
            );
        }
    };
    let request = BufferedRequest {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
        headers: end_to_end(&parts.headers),
        body,
    };
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let routed = shared.route();
    let start = Instant::now();
    let answer = routed
        .0
        .round_trip(
            &request,
            shared.config.max_body,
            shared.config.production_timeout,
        )
        .await;
    let elapsed = start.elapsed();
    let response = match answer {
        Ok(resp) => {
            shared.production_latency(elapsed);
            if let Some(target) = shared.mirror_target() {
                shared.record(|r, _| r.mirrored += 1);
                let (shared, resp2) = (shared.clone(), resp.clone());
                tokio::spawn(mirror_one(shared, target, routed, request, resp2));
            }
            resp
        }
        Err(e) => {
            shared.record(|r, _| r.production_errors += 1);
            let status = match e {
                UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            return plain(status, format!("ferry mirror proxy: {e}"));
        }
    };
    let mut out = Response::new(Full::new(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}

fn sample(r: &BufferedResponse) -> Sample {
    Sample {
        status: r.status.as_u16(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: r.body.clone(),
    }
}

/// Sends the copy to the candidate and a second production sample, learns noise, compares.
async fn mirror_one(
    shared: Arc<Shared>,
    target: MirrorTarget,
    production: Routed,
    request: BufferedRequest,
    primary: BufferedResponse,
) {
    let cfg = &shared.config;
    let endpoint = compare::endpoint(request.method.as_str(), &request.path_and_query);
    let safe = matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let secondary = async {
        match (&target.secondary, safe) {
            (Some(s), _) => Some(
                s.round_trip(&request, cfg.max_body, cfg.production_timeout)
                    .await,
            ),
            (None, true) => Some(
                production
                    .0
                    .round_trip(&request, cfg.max_body, cfg.production_timeout)
                    .await,
            ),
            (None, false) => None,
        }
    };
    let candidate = async {
        let start = Instant::now();
        let r = target
            .candidate
            .round_trip(&request, cfg.max_body, cfg.candidate_timeout)
            .await;
        (r, start.elapsed())
    };
    let (secondary, (candidate, candidate_elapsed)) = tokio::join!(secondary, candidate);
    drop(production);
    let primary_fields = compare::fields(&sample(&primary), &cfg.ignore_headers);
    if let Some(Ok(secondary)) = &secondary {
        let secondary_fields = compare::fields(&sample(secondary), &cfg.ignore_headers);
        shared.record(|r, noise| {
            r.noise_samples += 1;
            noise.learn(&endpoint, &primary_fields, &secondary_fields);
        });
    }
    let candidate = match candidate {
        Ok(c) => c,
        Err(e) => {
            let timeout = matches!(e, UpstreamError::Timeout { .. });
            shared.candidate_failed(
                timeout,
                format!(
                    "{} {}: candidate {e}",
                    request.method, request.path_and_query
                ),
            );
            return;
        }
    };
    shared.candidate_latency(candidate_elapsed);
    let candidate_fields = compare::fields(&sample(&candidate), &cfg.ignore_headers);
    let mut differences = Vec::new();
    shared.record(|_, noise| {
        differences = noise.significant(&endpoint, &primary_fields, &candidate_fields);
    });
    if differences.is_empty() {
        shared.record(|r, _| r.matched += 1);
    } else {
        shared.mismatch(Mismatch {
            endpoint,
            request: format!("{} {}", request.method, request.path_and_query),
            fields: differences,
            detail: String::new(),
        });
    }
}
