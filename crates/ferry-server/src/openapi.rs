//! The OpenAPI 3.1 description of the HTTP API, served at `GET /api/v1/openapi.json` (no auth:
//! it is documentation). Each handler carries its `#[utoipa::path]`; this file gathers them.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The generated document; `ApiDoc::openapi()` builds it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry server API",
        description = "Device API (enrollment, check-in, reports, backups), segmented file service, \
                       management API and TUF repository of a Ferry update server. Bodies are JSON \
                       unless stated; errors are `ApiError` bodies."
    ),
    paths(
        healthz,
        openapi_json,
        crate::metrics::scrape,
        crate::device_api::enroll,
        crate::device_api::checkin,
        crate::device_api::report,
        crate::device_api::report_delta_failure,
        crate::device_api::put_backup,
        crate::management::all_reports,
        crate::management::devices,
        crate::management::set_group,
        crate::management::set_group_settings,
        crate::management::device_reports,
        crate::management::device_backups,
        crate::management::device_delta_failures,
        crate::push::nudge_device,
        crate::releases::upload,
        crate::releases::list,
        crate::releases::blacklist,
        crate::rollouts::put_plan,
        crate::rollouts::list,
        crate::alerts::post_alert,
        crate::alerts::list_alerts,
        crate::alerts::resume,
        crate::firmware::put,
        crate::firmware::get,
        crate::firmware::get_for_device,
        crate::tuf_repo::get_metadata,
        crate::tuf_repo::rotate_keys,
        crate::files::get_file,
    ),
    components(schemas(
        ferry_core::api::ApiError,
        ferry_core::api::EnrollRequest,
        ferry_core::api::EnrollResponse,
        ferry_core::api::CheckinRequest,
        ferry_core::api::BlacklistRequest,
        Binary,
    )),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// Raw bytes (a `.ferry` artifact, a backup, a byte range): `type: string, format: binary`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Binary(Vec<u8>);

/// Adds the two bearer schemes: `device` (per-device token from enrollment) and `operator`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme("device", bearer("Per-device token returned by POST /api/v1/enroll."));
        components.add_security_scheme("operator", bearer("Operator token from the server configuration."));
    }
}

/// `GET /healthz`: liveness probe (documentation only; the route is a closure in `router()`).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The server is up; body `ok`", body = String, content_type = "text/plain"))
)]
#[allow(dead_code)]
fn healthz() {}

/// `GET /api/v1/openapi.json`: this document (no auth).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object))
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
