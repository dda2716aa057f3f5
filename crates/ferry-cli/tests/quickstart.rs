//! The README's first command, run as a user would (debug build): every device must end correct.

use assert_cmd::Command;

#[test]
fn quickstart_brings_every_device_to_its_expected_state() {
    let out = Command::cargo_bin("ferry").unwrap().args(["quickstart", "--no-progress"]).timeout(std::time::Duration::from_secs(240)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("7 devices, 7 correct, 0 wrong"), "{stdout}");
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert!(stdout.contains("is blacklisted for this device"), "{stdout}");
    assert!(stdout.contains("resumed from the bytes on disk"), "{stdout}");
    assert!(stdout.contains("agent 1.0.0 -> 1.1.0"), "{stdout}");
    // Deltas: the table has a delivery column, main updates from 1.0.0 come as deltas.
    assert!(stdout.contains("delivery"), "{stdout}");
    assert!(stdout.contains("delta from 1.0.0"), "{stdout}");
    // The rooted device: the delta is refused, the full package installs, the record is cleared,
    // and main 1.2.0 arrives as a delta from 1.1.0 in the second round.
    assert!(stdout.contains("delta 1.0.0->1.1.0 refused before writing: assets.bin"), "{stdout}");
    assert!(stdout.contains("full package installed, record cleared"), "{stdout}");
    assert!(stdout.contains("round 2: main 1.2.0 uploaded"), "{stdout}");
    assert!(stdout.contains("main 1.1.0 -> 1.2.0 (delta from 1.1.0"), "{stdout}");
    let rooted = stdout.lines().filter(|l| l.starts_with("356938035643807")).collect::<Vec<_>>();
    assert_eq!(rooted.len(), 2, "the rooted device has a row in each round:\n{stdout}");
    assert!(rooted[0].contains(" full "), "{}", rooted[0]);
    assert!(rooted[1].contains(" delta "), "{}", rooted[1]);
}
