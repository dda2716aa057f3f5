//! `GET /api/v1/openapi.json`: the OpenAPI document covers every API route the router serves.

use crate::common::{OPERATOR, start};
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;

/// Every (method, OpenAPI path) the role-`all` router serves, except the HTML dashboard.
const SERVED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/enroll"),
    ("post", "/api/v1/checkin"),
    ("post", "/api/v1/reports"),
    ("get", "/api/v1/reports"),
    ("put", "/api/v1/backups/{component}/{version}"),
    ("get", "/tuf/{file}"),
    ("post", "/api/v1/tuf/rotate"),
    ("post", "/api/v1/releases"),
    ("get", "/api/v1/releases"),
    ("post", "/api/v1/releases/{component}/{version}/blacklist"),
    ("put", "/api/v1/releases/{component}/{version}/rollout"),
    ("get", "/api/v1/rollouts"),
    ("get", "/api/v1/devices"),
    ("put", "/api/v1/devices/{id}/group"),
    ("post", "/api/v1/devices/{id}/nudge"),
    ("put", "/api/v1/groups/{group}"),
    ("get", "/api/v1/devices/{id}/reports"),
    ("get", "/api/v1/devices/{id}/backups"),
    ("post", "/api/v1/delta-failures"),
    ("get", "/api/v1/devices/{id}/delta-failures"),
    ("put", "/api/v1/firmware/{id}"),
    ("get", "/api/v1/firmware/{id}"),
    ("get", "/api/v1/device/firmware/{id}"),
    ("post", "/api/v1/alerts"),
    ("get", "/api/v1/alerts"),
    ("post", "/api/v1/releases/{component}/{version}/resume"),
    ("get", "/files/{path}"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options", "trace"];

async fn fetch_document(url: &str) -> serde_json::Value {
    let resp = reqwest::get(format!("{url}/api/v1/openapi.json")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the document needs no auth");
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("openapi.json is not JSON ({e}): {text}"))
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(*method).is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => out.push(r.to_string()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_lists_every_served_api_route() {
    let fx = start().await;
    let doc = fetch_document(&fx.server.url).await;
    let version = doc["openapi"].as_str().expect("`openapi` field");
    assert!(version.starts_with("3."), "openapi version {version}");
    let documented = documented(&doc);
    let served: BTreeSet<(String, String)> =
        SERVED.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(extra.is_empty(), "documented but not in the test's list of served routes: {extra:?}");
    let schemes = &doc["components"]["securitySchemes"];
    for name in ["device", "operator"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "security scheme {name}: {schemes}");
    }
    assert_eq!(
        doc["paths"]["/api/v1/checkin"]["post"]["security"][0]["device"],
        serde_json::json!([]),
        "check-in is documented as device-authenticated"
    );
    let mut operation_ids = BTreeSet::new();
    for (method, path) in &documented {
        let id = doc["paths"][path][method]["operationId"].as_str().unwrap_or_default().to_string();
        assert!(operation_ids.insert(id.clone()), "operationId {id:?} of {method} {path} is not unique");
    }
    assert_eq!(
        doc["paths"]["/api/v1/releases"]["post"]["requestBody"]["content"]["application/octet-stream"]["schema"]["$ref"],
        "#/components/schemas/Binary",
        "artifact uploads are raw bytes"
    );
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "only {} schema references: bodies are undocumented", refs.len());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} does not resolve");
    }
    assert!(doc["components"]["schemas"]["EnrollRequest"]["properties"]["device_id"].is_object());
}

/// Each documented route answers with something other than the router's own 404/405: sent
/// without credentials and with an empty body, so handlers refuse (400/401/404…) and change nothing.
#[tokio::test]
async fn every_documented_route_is_served_by_the_router() {
    let fx = start().await;
    let doc = fetch_document(&fx.server.url).await;
    let device_token = fx.server.enroll("openapi-probe").await;
    let mut unauthorized = 0;
    for (method, path) in documented(&doc) {
        let concrete = path
            .replace("{component}", "main")
            .replace("{version}", "1.0.0")
            .replace("{file}", "root.json")
            .replace("{path}", "no/such/artifact.ferry")
            .replace("{id}", "no-such-device")
            .replace("{group}", "no-such-group");
        assert!(!concrete.contains('{'), "unsubstituted parameter in {path}");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = fx
            .server
            .client
            .request(method.clone(), format!("{}{concrete}", fx.server.url))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no endpoint")),
            "{method} {path} is documented but the router has no such route: {body}"
        );
        let scheme = doc["paths"][&path][method.as_str().to_lowercase()]["security"][0]
            .as_object()
            .and_then(|s| s.keys().next().cloned());
        if let Some(scheme) = scheme {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} is documented as authenticated: {body}");
            // The other scheme's token is refused too: the documented scheme is the one checked.
            let wrong = match scheme.as_str() {
                "device" => OPERATOR,
                "operator" => device_token.as_str(),
                other => panic!("{method} {path}: unknown security scheme {other}"),
            };
            let resp = fx
                .server
                .client
                .request(method.clone(), format!("{}{concrete}", fx.server.url))
                .bearer_auth(wrong)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path} is documented with scheme `{scheme}` but accepted the other token");
            unauthorized += 1;
        }
    }
    assert!(unauthorized >= 20, "only {unauthorized} authenticated routes were reached");
}
