//! Security alerts: an unsafe update found by a device's preflight is archived, shown to the
//! operator, and stops further offers of that release until the operator resumes it.

use crate::common::*;
use ferry_core::Component;
use ferry_core::api::{
    AlertEvidence, AlertFinding, ArchivedAlert, CheckinResponse, NothingNewReason, ReleaseRecord,
    SecurityAlert,
};
use reqwest::StatusCode;
use serde_json::json;

/// An alert from `device` that its preflight found `version` unsafe (an outbound connection).
pub fn unsafe_alert(device: &str, version: &str) -> SecurityAlert {
    SecurityAlert {
        device_id: dev(device),
        component: Component::Main,
        version: ver(version),
        stage: "sandbox".into(),
        findings: vec![AlertFinding {
            severity: "critical".into(),
            rule: "sandbox/outbound-connection".into(),
            location: "/usr/bin/app".into(),
            message: "the candidate connected to 203.0.113.9:443 during rehearsal".into(),
        }],
        evidence: vec![AlertEvidence {
            kind: "outbound_connection".into(),
            detail: "connect(203.0.113.9:443) from pid 7 at +1.2 s".into(),
        }],
        detected_at: 1_700_000_000_000,
    }
}

async fn post_alert(s: &TestServer, token: &str, alert: &serde_json::Value) -> reqwest::Response {
    s.client
        .post(format!("{}/api/v1/alerts", s.url))
        .bearer_auth(token)
        .json(alert)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn unsafe_update_alert_is_visible_and_stops_further_offers() {
    let f = start().await;
    let s = &f.server;
    let reporter = s.enroll("dev-reporter").await;
    let other = s.enroll("dev-other").await;
    s.release(Component::Main, "1.1.0", 100).await;
    s.release(Component::Main, "1.2.0", 100).await;
    assert!(matches!(
        s.checkin(&other, "dev-other", "1.0.0", "1.0.0").await,
        CheckinResponse::Update { offer } if offer.version == ver("1.2.0")
    ));

    // A device may only speak for itself, and only about releases this server published.
    let alert = unsafe_alert("dev-reporter", "1.2.0");
    let body = serde_json::to_value(&alert).unwrap();
    assert_eq!(
        post_alert(s, &other, &body).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_alert(s, "not-a-token", &body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let unknown = serde_json::to_value(unsafe_alert("dev-reporter", "9.9.9")).unwrap();
    assert_eq!(
        post_alert(s, &reporter, &unknown).await.status(),
        StatusCode::NOT_FOUND
    );
    let mut empty = body.clone();
    empty["findings"] = json!([]);
    let resp = post_alert(s, &reporter, &empty).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(TestServer::error_of(resp).await.contains("no finding"));

    let resp = post_alert(s, &reporter, &body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let archived: ArchivedAlert = resp.json().await.unwrap();
    assert_eq!(archived.alert, alert);

    // The operator sees it, with what it means.
    let resp = s.op_get("/api/v1/alerts").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let listed: Vec<ArchivedAlert> = resp.json().await.unwrap();
    assert_eq!(listed, vec![archived.clone()]);
    let m = &listed[0].message;
    for part in [
        "main 1.2.0",
        "dev-reporter",
        "may be compromised",
        "transport",
        "keys",
        "halted",
        "203.0.113.9",
    ] {
        assert!(
            m.contains(part),
            "'{part}' missing from the operator message: {m}"
        );
    }
    // Device tokens cannot read alerts.
    let resp = s
        .client
        .get(format!("{}/api/v1/alerts", s.url))
        .bearer_auth(&reporter)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The release is halted: nobody is offered it any more, the previous good release is.
    let releases: Vec<ReleaseRecord> = s.op_get("/api/v1/releases").await.json().await.unwrap();
    let halted = releases.iter().find(|r| r.version == ver("1.2.0")).unwrap();
    assert_eq!(
        halted.halted.as_ref().map(|h| h.alert_id),
        Some(archived.id)
    );
    for (token, id) in [(&reporter, "dev-reporter"), (&other, "dev-other")] {
        assert!(matches!(
            s.checkin(token, id, "1.0.0", "1.0.0").await,
            CheckinResponse::Update { offer } if offer.version == ver("1.1.0")
        ));
        assert_eq!(
            s.checkin(token, id, "1.1.0", "1.0.0").await,
            CheckinResponse::NothingNew {
                reason: NothingNewReason::UpToDate
            }
        );
    }
    let late = s.enroll("dev-late").await;
    assert_eq!(
        s.checkin(&late, "dev-late", "1.1.0", "1.0.0").await,
        CheckinResponse::NothingNew {
            reason: NothingNewReason::UpToDate
        }
    );

    // A second alert is archived too; the halt stays with the first.
    let resp = post_alert(
        s,
        &other,
        &serde_json::to_value(unsafe_alert("dev-other", "1.2.0")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let listed: Vec<ArchivedAlert> = s.op_get("/api/v1/alerts").await.json().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].id, archived.id, "newest first");

    // Only an operator lifts the halt; then the release is offered again.
    let resp = s
        .client
        .post(format!("{}/api/v1/releases/main/1.2.0/resume", s.url))
        .bearer_auth(&reporter)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.op_post("/api/v1/releases/main/9.9.9/resume", json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let resp = s
        .op_post("/api/v1/releases/main/1.2.0/resume", json!({}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resumed: ReleaseRecord = resp.json().await.unwrap();
    assert_eq!(resumed.halted, None);
    assert!(matches!(
        s.checkin(&late, "dev-late", "1.1.0", "1.0.0").await,
        CheckinResponse::Update { offer } if offer.version == ver("1.2.0")
    ));
}
