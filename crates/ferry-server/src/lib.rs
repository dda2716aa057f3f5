//! The Ferry update server.
//!
//! One process (role `all`) or two (role `query` + role `files`, sharing the registry) serve:
//! - the device API: enrollment, check-in (the update decision), upgrade reports, backups;
//! - the TUF repository metadata under `/tuf/`;
//! - the file service under `/files/`: release artifacts with HTTP range support for
//!   segmented, resumable downloads;
//! - the management API for operators.
//!
//! Run it with [`serve`], or get the [`axum::Router`] from [`build_app`] to embed it.

#![warn(missing_docs)]

pub mod alerts;
pub mod auth;
pub mod body;
pub mod config;
pub mod dashboard;
pub mod deltas;
pub mod device_api;
pub mod error;
pub mod files;
pub mod firmware;
pub mod management;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod releases;
pub mod rollouts;
pub mod state;
pub mod tuf_repo;

pub use config::{ConfigError, Role, ServerConfig};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post, put};
use error::AppError;
use ferry_artifact::keys::PublicKey;
use state::{AppState, Shared};
use std::future::Future;
use std::sync::Arc;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Opens storage (and, for query roles, the TUF repository and release keys) and builds the router.
pub async fn build_app(config: ServerConfig) -> anyhow::Result<Router> {
    config.validate()?;
    metrics::init();
    let tmp_dir = config.data_dir.join("tmp");
    std::fs::create_dir_all(&tmp_dir)
        .with_context(|| format!("creating data directory {}", tmp_dir.display()))?;
    if config.artifact_store_url.is_none() {
        let dir = config.data_dir.join("artifacts");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating artifact directory {}", dir.display()))?;
    }
    let registry_url = config.registry_url();
    let registry = ferry_store::open_registry(&registry_url)
        .await
        .with_context(|| {
            format!("opening the registry at {registry_url} (server.toml `registry_url`)")
        })?;
    let store_url = config.artifact_store_url();
    let store = ferry_store::open_artifact_store(&store_url)
        .await
        .with_context(|| {
            format!("opening the artifact store at {store_url} (server.toml `artifact_store_url`)")
        })?;

    let (tuf, release_keys) = if config.role.serves_queries() {
        let tuf = tuf_repo::TufRepo::open(registry.clone(), &config.keys_dir()).await?;
        let releases = registry.releases().await.context("listing releases")?;
        tuf.reconcile(&releases)
            .await
            .map_err(|e| anyhow::anyhow!("publishing TUF targets: {}", e.message))?;
        (Some(tuf), load_release_keys(&config)?)
    } else {
        (None, Vec::new())
    };
    tracing::info!(role = ?config.role, registry = %registry_url, store = %store_url, public_url = %config.public_url(),
        files_url = %config.files_url(), "ferry server ready");
    let push = match (&config.push, config.role.serves_queries()) {
        (Some(p), true) => {
            let client_id = format!("ferry-server-{}", std::process::id());
            Some(push::Push::start(&p.mqtt_url, &p.topic_prefix, &client_id)?)
        }
        _ => None,
    };
    let state: AppState = Arc::new(Shared {
        push,
        config,
        registry,
        store,
        tuf,
        release_keys,
        tmp_dir,
    });
    Ok(router(state))
}

fn load_release_keys(config: &ServerConfig) -> anyhow::Result<Vec<PublicKey>> {
    if config.release_keys.is_empty() {
        tracing::warn!("server.toml `release_keys` is empty: release uploads will be refused");
    }
    config
        .release_keys
        .iter()
        .map(|path| {
            PublicKey::load(path).with_context(|| {
                format!(
                    "loading release key {} (server.toml `release_keys`)",
                    path.display()
                )
            })
        })
        .collect()
}

/// The routes of the configured role, with JSON 404/405 answers and request tracing.
pub fn router(state: AppState) -> Router {
    let role = state.config.role;
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::scrape))
        .route("/api/v1/openapi.json", get(openapi::openapi_json));
    if role.serves_queries() {
        app = app
            .route("/api/v1/enroll", post(device_api::enroll))
            .route("/api/v1/checkin", post(device_api::checkin))
            .route(
                "/api/v1/reports",
                post(device_api::report).get(management::all_reports),
            )
            .route(
                "/api/v1/backups/{component}/{version}",
                put(device_api::put_backup),
            )
            .route("/tuf/{file}", get(tuf_repo::get_metadata))
            .route("/api/v1/tuf/rotate", post(tuf_repo::rotate_keys))
            .route(
                "/api/v1/releases",
                post(releases::upload).get(releases::list),
            )
            .route(
                "/api/v1/releases/{component}/{version}/blacklist",
                post(releases::blacklist),
            )
            .route("/api/v1/releases/{component}/{version}/rollout", put(rollouts::put_plan))
            .route("/api/v1/rollouts", get(rollouts::list))
            .route("/api/v1/devices", get(management::devices))
            .route("/api/v1/devices/{id}/group", put(management::set_group))
            .route("/api/v1/devices/{id}/nudge", post(push::nudge_device))
            .route(
                "/api/v1/groups/{group}",
                put(management::set_group_settings),
            )
            .route(
                "/api/v1/devices/{id}/reports",
                get(management::device_reports),
            )
            .route(
                "/api/v1/devices/{id}/backups",
                get(management::device_backups),
            )
            .route(
                "/api/v1/delta-failures",
                post(device_api::report_delta_failure),
            )
            .route(
                "/api/v1/devices/{id}/delta-failures",
                get(management::device_delta_failures),
            )
            .route("/api/v1/firmware/{id}", put(firmware::put).get(firmware::get))
            .route("/api/v1/device/firmware/{id}", get(firmware::get_for_device))
            .route(
                "/api/v1/alerts",
                post(alerts::post_alert).get(alerts::list_alerts),
            )
            .route(
                "/api/v1/releases/{component}/{version}/resume",
                post(alerts::resume),
            )
            .merge(dashboard::routes());
    }
    if role.serves_files() {
        app = app.route("/files/{*path}", get(files::get_file));
    }
    app.fallback(move |method: Method, uri: Uri| async move { no_route(role, &method, &uri) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            AppError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not supported on {}", uri.path()),
            )
        })
        // Bodies are limited per route (max_json_bytes, max_upload_bytes, max_backup_bytes).
        .layer(DefaultBodyLimit::disable())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

fn no_route(role: Role, method: &Method, uri: &Uri) -> AppError {
    let path = uri.path();
    let hint = match role {
        Role::Files if !path.starts_with("/files/") => {
            "; this server runs role `files` and serves only /files/…, /healthz and /metrics"
        }
        Role::Query if path.starts_with("/files/") => {
            "; this server runs role `query`: fetch files from the file service (file_base_url of the check-in offer)"
        }
        _ => "",
    };
    AppError::not_found(format!("no endpoint {method} {path}{hint}"))
}

/// Runs the server on `listener` until `shutdown` completes, then drains open requests.
///
/// When `config.public_url` is unset, it becomes `http://<the listener's address>`.
pub async fn serve(
    mut config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    if config.public_url.is_none() {
        if addr.ip().is_unspecified() {
            tracing::warn!(%addr, "public_url is unset and the server listens on all interfaces; set public_url so devices get a reachable URL");
        }
        config.public_url = Some(format!("http://{addr}"));
    }
    let app = build_app(config).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    Ok(())
}
