//! The whole preflight under client load (the `ferry demo preflight` scenario): a divergent
//! update is caught and alerted with the device untouched; a faithful one is switched over and
//! back without a failed request.

mod support;

use ferry_core::{Component, Version};
use ferry_sandbox::demo::{DemoOptions, EXFIL_ADDR, run};

#[test]
fn preflight_alerts_on_divergent_update_and_switches_over_a_good_one() {
    let report = run(&DemoOptions::default()).unwrap();
    println!("{report}");

    // A divergent update: caught, alerted, production untouched.
    let alert = report
        .malicious
        .alert
        .as_ref()
        .unwrap_or_else(|| panic!("a divergent update must be judged unsafe:\n{report}"));
    assert_eq!(alert.stage, "mirror");
    assert_eq!(
        (alert.component, &alert.version),
        (Component::Main, &Version::new(2, 0, 0))
    );
    support::assert_only_items_3_diverged(alert);
    // The sandbox monitor caught the exfiltration attempt itself, with its address.
    let outbound = alert
        .findings
        .iter()
        .find(|f| f.rule == "sandbox/outbound-connection")
        .unwrap_or_else(|| panic!("the outbound attempt was not caught: {alert:#?}"));
    assert_eq!(outbound.location, EXFIL_ADDR);
    assert_eq!(outbound.severity, "critical");
    let evidence = alert
        .evidence
        .iter()
        .find(|e| e.kind == "outbound_connection")
        .unwrap_or_else(|| panic!("no outbound evidence: {alert:#?}"));
    assert!(evidence.detail.contains(EXFIL_ADDR), "{}", evidence.detail);
    assert!(
        alert
            .evidence
            .iter()
            .any(|e| e.kind == "monitor_report" && e.detail.contains(EXFIL_ADDR)),
        "{alert:#?}"
    );
    assert_eq!(report.malicious.active_after, report.production);
    assert!(!report.malicious.mirroring_after);
    assert!(report.malicious_caught());

    // A faithful update: safe, then switched over under load and back to the upgraded device.
    let mirror = report
        .good
        .mirror
        .as_ref()
        .unwrap_or_else(|| panic!("a faithful update must be judged safe:\n{report}"));
    assert!(mirror.matched >= 20, "{mirror:#?}");
    assert!(
        mirror
            .noise
            .values()
            .any(|f| f.contains(&"body.nonce".to_string())),
        "{:#?}",
        mirror.noise
    );
    let log = report
        .good
        .switchover
        .as_ref()
        .unwrap_or_else(|| panic!("the switchover did not complete:\n{report}"));
    assert_eq!(log.to_candidate.from, report.production);
    assert_eq!(report.good.active_after, report.production);
    assert!(report.good.sandbox_shut, "the sandbox is shut down");
    assert!(report.good_switched_over());

    assert!(
        report.clients.failed == 0,
        "{} client requests failed: {:?}",
        report.clients.failed,
        report.clients.first_failures
    );
    assert!(report.clients.ok > 100, "{:?}", report.clients);
    assert!(report.success());
    let shown = report.to_string();
    for part in [
        "packages sealed",
        "envelope opened",
        "static scan",
        "in its sandbox after",
        "mirrored",
        "verdict UNSAFE",
        "sandbox monitor: outbound attempts: connect 203.0.113.7:80",
        "sandbox/outbound-connection",
        "verdict SAFE",
        "traffic switched to the sandbox",
        "requests sent",
        "\"stage\": \"mirror\"",
        "PASS",
    ] {
        assert!(shown.contains(part), "{part:?} missing from:\n{shown}");
    }
}
