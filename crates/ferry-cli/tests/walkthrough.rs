//! The README's manual walkthrough (`examples/walkthrough.sh`): `ferry server` + `ferry agent --once`
//! update a real directory-based program.

use std::process::Command;

#[test]
fn manual_walkthrough_updates_a_directory_program() {
    let ferry = assert_cmd::cargo::cargo_bin("ferry");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/walkthrough.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new("bash").arg(script).arg(&ferry).env("FERRY_WALKTHROUGH_PORT", port.to_string()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("after:  hello from 1.1.0"), "{stdout}");
    assert!(stdout.contains("walkthrough OK"), "{stdout}");
}
