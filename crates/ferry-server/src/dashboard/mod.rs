//! The operator's web dashboard: devices, versions, rollouts and their progress, failures with
//! reasons, delta failure records and security alerts (with the button that resumes a halted
//! rollout). Server-rendered askama templates; htmx (vendored, no CDN) refreshes the live part
//! every few seconds. Sign-in with the operator token sets an HttpOnly, SameSite=Strict cookie
//! holding a hash derived from the token (never the token itself).

pub mod view;

use crate::alerts;
use crate::auth::secrets_match;
use crate::error::{AppError, AppResult};
use crate::state::{AppState, now_ms};
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_core::api::{ArchivedReport, DeltaFailureRecord};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Name of the session cookie.
const COOKIE: &str = "ferry_dashboard";
/// How often the live part refreshes itself.
const REFRESH_SECONDS: u32 = 5;
/// How many of the newest reports the page considers.
const REPORTS_SHOWN: u32 = 500;
/// How many failed updates are listed.
const FAILURES_SHOWN: usize = 50;

static HTMX_JS: &[u8] = include_bytes!("../../assets/htmx-2.0.9.min.js");
static DASHBOARD_CSS: &[u8] = include_bytes!("../../assets/dashboard.css");

/// The dashboard's routes (mounted by servers that serve queries).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/live", get(live))
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/releases/{component}/{version}/resume", post(resume))
        .route("/dashboard/assets/htmx.min.js", get(|| async { asset("text/javascript", HTMX_JS) }))
        .route("/dashboard/assets/dashboard.css", get(|| async { asset("text/css", DASHBOARD_CSS) }))
}

fn asset(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        bytes,
    )
        .into_response()
}

/// The cookie value that proves a sign-in: derived from the operator token, so the cookie is
/// not the API credential and changes when the token does.
fn session_value(operator_token: &str) -> String {
    hex::encode(Sha256::digest(format!("ferry-dashboard-session:{operator_token}").as_bytes()))
}

/// The value of cookie `name` in the request, if any.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// True when the request carries a valid session cookie or the operator bearer token.
fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let token = &state.config.operator_token;
    if let Some(v) = cookie(headers, COOKIE) {
        if secrets_match(v, &session_value(token)) {
            return true;
        }
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && secrets_match(t.trim(), token))
}

fn render(t: &impl Template, what: &str) -> AppResult<String> {
    t.render()
        .map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the dashboard's {what}: {e}")))
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct FullPage {
    refresh_seconds: u32,
    live: String,
}

#[derive(Template)]
#[template(path = "dashboard/live.html")]
struct Live {
    totals: view::Totals,
    updated: String,
    notice: Option<String>,
    alerts: Vec<view::AlertRow>,
    rollouts: Vec<view::RolloutRow>,
    fleet: Vec<view::FleetRow>,
    failures: Vec<view::FailureRow>,
    delta_failures: Vec<view::DeltaFailureRow>,
}

/// Reads the registry and builds the live part.
async fn live_view(state: &AppState, notice: Option<String>) -> AppResult<Live> {
    let store = |what: &'static str| move |e| AppError::store(what, e);
    let registry = &state.registry;
    let devices = registry.devices().await.map_err(store("listing devices for the dashboard"))?;
    let releases = registry.releases().await.map_err(store("listing releases for the dashboard"))?;
    let reports: Vec<ArchivedReport> =
        registry.reports(None, REPORTS_SHOWN).await.map_err(store("reading reports for the dashboard"))?;
    let archived_alerts = registry.alerts(200).await.map_err(store("reading security alerts for the dashboard"))?;
    let mut delta_records: Vec<DeltaFailureRecord> = Vec::new();
    for d in &devices {
        delta_records.extend(
            registry
                .delta_failures(&d.device_id)
                .await
                .map_err(store("reading delta failure records for the dashboard"))?,
        );
    }
    let now = now_ms();
    let fleet = view::fleet(&devices, &reports, &delta_records, now);
    let mut rollouts = view::rollouts(&releases, &devices, &reports, now);
    view::attach_waves(&mut rollouts, &crate::rollouts::statuses(state).await?, now);
    let alerts = view::alerts(&archived_alerts, &releases, now);
    Ok(Live {
        totals: view::totals(&fleet, &rollouts, &alerts),
        updated: chrono::DateTime::from_timestamp_millis(now as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        notice,
        failures: view::failures(&reports, now, FAILURES_SHOWN),
        delta_failures: view::delta_failures(&delta_records),
        alerts,
        rollouts,
        fleet,
    })
}

fn login_page(status: StatusCode, error: Option<String>) -> AppResult<Response> {
    Ok((status, Html(render(&LoginPage { error }, "sign-in page")?)).into_response())
}

/// `GET /dashboard`: the whole page, or the sign-in form.
async fn page(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    if !signed_in(&state, &headers) {
        return login_page(StatusCode::OK, None);
    }
    let live = render(&live_view(&state, None).await?, "live view")?;
    let page = FullPage { refresh_seconds: REFRESH_SECONDS, live };
    Ok(Html(render(&page, "page")?).into_response())
}

/// `GET /dashboard/live`: the part htmx refreshes.
async fn live(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    if !signed_in(&state, &headers) {
        return Err(AppError::unauthorized("dashboard session ended: reload the page and sign in again"));
    }
    Ok(Html(render(&live_view(&state, None).await?, "live view")?).into_response())
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /dashboard/login`: checks the operator token, sets the session cookie.
async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> AppResult<Response> {
    if !secrets_match(form.token.trim(), &state.config.operator_token) {
        tracing::warn!("dashboard sign-in with a wrong operator token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the operator token: use operator_token from the server's server.toml.".into()),
        );
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/dashboard",
        session_value(&state.config.operator_token)
    );
    let mut response = Redirect::to("/dashboard").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    );
    Ok(response)
}

/// `POST /dashboard/logout`: clears the session cookie.
async fn logout() -> Response {
    let mut response = Redirect::to("/dashboard").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ferry_dashboard=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0"),
    );
    response
}

/// `POST /dashboard/releases/{component}/{version}/resume`: the operator cleared a halted
/// release; answers the refreshed live part.
async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((component, version)): Path<(String, String)>,
) -> AppResult<Response> {
    if !signed_in(&state, &headers) {
        return Err(AppError::unauthorized("dashboard session ended: reload the page and sign in again"));
    }
    let release = alerts::resume_release(&state, &component, &version).await?;
    let notice = format!("Rollout of {} {} resumed.", release.component, release.version);
    Ok(Html(render(&live_view(&state, Some(notice)).await?, "live view")?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; ferry_dashboard=abc ; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn session_value_is_not_the_token_and_follows_it() {
        assert_ne!(session_value("op"), "op");
        assert_eq!(session_value("op"), session_value("op"));
        assert_ne!(session_value("op"), session_value("op2"));
    }
}
