//! python-tuf (the TUF reference implementation) against a running Ferry server: its ngclient
//! `Updater` refreshes from `{public_url}/tuf/` and downloads the release from
//! `{files_url}/files/` with a device token, as a third-party device would.
//!
//! Needs `python3` with `tuf` importable (`pip install tuf==7.0.1`). Without it the tests print
//! a loud SKIPPED message and pass, unless `FERRY_REQUIRE_SERVICES=1`, which makes them fail.

use crate::common::*;
use ferry_core::Component;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ngclient_server_fetch.py")
}

/// `true` if python3 can import python-tuf; otherwise SKIPPED (or a panic under FERRY_REQUIRE_SERVICES=1).
fn python_tuf_available() -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import tuf.ngclient, tuf.ngclient.fetcher, urllib3"])
        .output();
    if matches!(&probe, Ok(out) if out.status.success()) {
        return true;
    }
    let detail = match probe {
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(e) => format!("cannot run python3: {e}"),
    };
    if std::env::var("FERRY_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!(
            "FERRY_REQUIRE_SERVICES=1 but python-tuf is not usable (pip install tuf==7.0.1): {detail}"
        );
    }
    // Written to the real stderr (not eprintln!, which the test harness captures) so it shows.
    let bar = "=".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED: python-tuf not installed (pip install tuf==7.0.1)\n{detail}\n{bar}\n"
    );
    false
}

/// A python-tuf client of `server`, keeping its trusted metadata in `dir/client`.
struct PyClient {
    dir: tempfile::TempDir,
    metadata_url: String,
    files_url: String,
}

impl PyClient {
    /// Bootstraps from the server's root v1, as a device provisioned at the factory.
    async fn new(server: &TestServer) -> PyClient {
        let dir = tempfile::tempdir().unwrap();
        let resp = server
            .client
            .get(format!("{}/tuf/1.root.json", server.url))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        std::fs::write(dir.path().join("root.json"), resp.bytes().await.unwrap()).unwrap();
        PyClient {
            dir,
            metadata_url: format!("{}/tuf/", server.url),
            files_url: format!("{}/files/", server.url),
        }
    }

    async fn fetch(&self, target: &str, token: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(script())
            .arg(&self.metadata_url)
            .arg(&self.files_url)
            .arg(self.dir.path().join("root.json"))
            .arg(self.dir.path().join("client"))
            .arg(target)
            .env_remove("FERRY_DEVICE_TOKEN");
        if let Some(t) = token {
            cmd.env("FERRY_DEVICE_TOKEN", t);
        }
        cmd.output().await.expect("python3 runs")
    }
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "python-tuf failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ngclient_refreshes_and_downloads_releases_from_a_ferry_server() {
    if !python_tuf_available() {
        return;
    }
    let f = start().await;
    let s = &f.server;
    let first = s.release(Component::Main, "1.0.0", 20_000).await;
    let token = s.enroll("py-device-1").await;
    let py = PyClient::new(s).await;

    let result = stdout_json(&py.fetch("main/1.0.0.ferry", Some(&token)).await);
    let sha = sha256_hex(&first);
    assert_eq!(result["length"], first.len());
    assert_eq!(result["sha256"], sha.as_str());
    assert_eq!(
        std::fs::read(result["path"].as_str().unwrap()).unwrap(),
        first,
        "python-tuf got the release byte for byte"
    );
    assert_eq!(result["custom"]["component"], "main");
    assert_eq!(result["custom"]["version"], "1.0.0");
    assert_eq!(result["root_version"], 1);
    let requests: Vec<&str> = result["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        requests.contains(&format!("200 {}main/{sha}.1.0.0.ferry", py.files_url).as_str()),
        "consistent-snapshot target path with the device token: {requests:?}"
    );
    assert!(
        requests.contains(&format!("404 {}2.root.json", py.metadata_url).as_str()),
        "root rotation probed and ended on 404: {requests:?}"
    );

    // A second release: the same client, holding the metadata it trusted, moves forward.
    let second = s.release(Component::Main, "1.1.0", 30_000).await;
    let again = stdout_json(&py.fetch("main/1.1.0.ferry", Some(&token)).await);
    assert_eq!(again["sha256"], sha256_hex(&second).as_str());
    assert_eq!(
        std::fs::read(again["path"].as_str().unwrap()).unwrap(),
        second
    );
    assert!(
        again["timestamp_version"].as_u64().unwrap()
            > result["timestamp_version"].as_u64().unwrap(),
        "new timestamp version: {} then {}",
        result["timestamp_version"],
        again["timestamp_version"]
    );

    // Every key rotated on the server: python-tuf, still trusting root v1's keys, follows the
    // root chain (v2 signed by the old and the new root key) and verifies the new release.
    let resp = s
        .op_post("/api/v1/tuf/rotate", serde_json::json!({"roles": ["root", "targets", "snapshot", "timestamp"]}))
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let third = s.release(Component::Main, "1.2.0", 10_000).await;
    let rotated = stdout_json(&py.fetch("main/1.2.0.ferry", Some(&token)).await);
    assert_eq!(rotated["root_version"], 2, "python-tuf moved to the rotated root");
    assert_eq!(rotated["sha256"], sha256_hex(&third).as_str());
    assert_eq!(std::fs::read(rotated["path"].as_str().unwrap()).unwrap(), third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ngclient_without_device_token_verifies_metadata_but_cannot_download() {
    if !python_tuf_available() {
        return;
    }
    let f = start().await;
    let s = &f.server;
    s.release(Component::Main, "1.0.0", 5_000).await;
    let py = PyClient::new(s).await;

    let out = py.fetch("main/1.0.0.ferry", None).await;
    assert!(!out.status.success(), "anonymous download accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DownloadHTTPError")
            && stderr.contains("HTTP 401")
            && stderr.contains("missing device credential"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("200 {}timestamp.json", py.metadata_url)),
        "the public metadata refreshed first: {stderr}"
    );
    assert!(
        !py.dir
            .path()
            .join("client/targets")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "nothing was written as a downloaded target"
    );
}
