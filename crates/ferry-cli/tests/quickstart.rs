//! The README's first command, run as a user would (debug build): every device must end correct.

use assert_cmd::Command;

#[test]
fn quickstart_brings_every_device_to_its_expected_state() {
    let out = Command::cargo_bin("ferry").unwrap().args(["quickstart", "--no-progress"]).timeout(std::time::Duration::from_secs(240)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("6 devices, 6 correct, 0 wrong"), "{stdout}");
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert!(stdout.contains("is blacklisted for this device"), "{stdout}");
    assert!(stdout.contains("resumed from the bytes on disk"), "{stdout}");
    assert!(stdout.contains("agent 1.0.0 -> 1.1.0"), "{stdout}");
}
