//! `ferry tuf-client` judges expiry by the clock it reads through the C library, so a
//! time-faking preload (libfaketime, Debian package `faketime`) moves it: the real binary is
//! run under `faketime -f OFFSET` against a repository built with Ferry's signing code
//! (timestamp valid 1 day, snapshot 7, targets 90, root 365).
//!
//! Needs `faketime`; without it the tests print a loud SKIPPED message and pass, unless
//! `FERRY_REQUIRE_SERVICES=1`, which makes them fail.

mod tuf_common;

use chrono::{DateTime, TimeDelta, Utc};
use ferry_artifact::tuf::{Expiry, RepoKeys, Repository};
use std::path::{Path, PathBuf};
use std::process::Command;
use tuf_common::{faketime_available, ferry_bin, ferry_tuf_client, role_files, serve_dir};

/// A repository signed at `signed_at`, served over HTTP, and a client initialised with its root.
struct Setup {
    dir: tempfile::TempDir,
    url: String,
}

impl Setup {
    fn new(signed_at: DateTime<Utc>) -> Setup {
        let repo = Repository::new(RepoKeys::generate(), Expiry::default(), signed_at);
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("repo/metadata");
        std::fs::create_dir_all(&meta).unwrap();
        for (name, bytes) in repo.files() {
            std::fs::write(meta.join(name), bytes).unwrap();
        }
        std::fs::write(dir.path().join("trusted_root.json"), repo.root_json()).unwrap();
        let url = format!("{}/metadata/", serve_dir(&dir.path().join("repo")));
        Setup { dir, url }
    }

    /// A fresh metadata directory holding only the trusted root.
    fn client(&self, name: &str) -> PathBuf {
        let md = self.dir.path().join(name);
        let root = self.dir.path().join("trusted_root.json");
        let (rc, err) = ferry_tuf_client(
            &[
                "--metadata-dir".into(),
                md.to_str().unwrap().into(),
                "init".into(),
                root.to_str().unwrap().into(),
            ],
            &[],
        );
        assert_eq!(rc, 0, "init: {err}");
        md
    }

    fn refresh_args(&self, md: &Path) -> Vec<String> {
        vec![
            "--metadata-url".into(),
            self.url.clone(),
            "--metadata-dir".into(),
            md.to_str().unwrap().into(),
            "refresh".into(),
        ]
    }

    /// `faketime -f OFFSET ferry tuf-client … refresh`: exit code and stderr.
    fn refresh_at(&self, md: &Path, offset: &str) -> (i32, String) {
        let out = Command::new("faketime")
            .args(["-f", offset])
            .arg(ferry_bin())
            .arg("tuf-client")
            .args(self.refresh_args(md))
            // Only the wall clock is faked; the async runtime's timers keep real time.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .expect("faketime runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("ferry tuf-client died by a signal: {stderr}"));
        (code, stderr)
    }
}

fn names(md: &Path) -> Vec<String> {
    role_files(md).into_keys().collect()
}

#[test]
fn faked_clock_after_timestamp_expiry_rejects_it_with_exit_1_and_does_not_store_it() {
    if !faketime_available() {
        return;
    }
    let s = Setup::new(Utc::now());
    // With the real clock the repository is valid.
    let real = s.client("real");
    let (rc, err) = ferry_tuf_client(&s.refresh_args(&real), &[]);
    assert_eq!(rc, 0, "real clock: {err}");
    assert_eq!(
        names(&real),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );

    // Two days on, the 1-day timestamp has expired (root, snapshot and targets have not).
    let faked = s.client("faked");
    let (rc, err) = s.refresh_at(&faked, "+2d");
    assert_eq!(rc, 1, "exactly 1 for an expired timestamp: {err}");
    assert!(
        err.contains("timestamp") && err.contains("expire"),
        "the error names the expired role: {err}"
    );
    assert_eq!(
        names(&faked),
        ["root.json"],
        "the expired timestamp (and nothing after it) is not stored"
    );
}

#[test]
fn faked_clock_before_expiry_accepts_metadata_the_real_clock_calls_expired() {
    if !faketime_available() {
        return;
    }
    // Signed ten days ago: the timestamp expired nine days ago, the snapshot three days ago.
    let s = Setup::new(Utc::now() - TimeDelta::days(10));
    let real = s.client("real");
    let (rc, err) = ferry_tuf_client(&s.refresh_args(&real), &[]);
    assert_eq!(rc, 1, "real clock: the timestamp expired: {err}");
    assert_eq!(names(&real), ["root.json"]);

    // Nine and a half days back, everything was valid.
    let faked = s.client("faked");
    let (rc, err) = s.refresh_at(&faked, "-228h");
    assert_eq!(rc, 0, "the faked clock is before every expiry: {err}");
    assert_eq!(
        names(&faked),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
}

#[test]
fn faked_clock_after_root_expiry_rejects_the_root_with_exit_1() {
    if !faketime_available() {
        return;
    }
    let s = Setup::new(Utc::now());
    let md = s.client("faked");
    // 400 days on, the 365-day root has expired: nothing past the root is fetched or stored.
    let (rc, err) = s.refresh_at(&md, "+400d");
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("root") && err.contains("expire"), "{err}");
    assert_eq!(names(&md), ["root.json"]);
}

#[test]
fn clock_set_back_after_a_refresh_is_not_refused() {
    if !faketime_available() {
        return;
    }
    // Valid now and for the next 23 hours.
    let s = Setup::new(Utc::now() - TimeDelta::hours(1));
    let md = s.client("client");
    let (rc, err) = s.refresh_at(&md, "+20h");
    assert_eq!(rc, 0, "20 hours on: {err}");
    // Back to the real time: the client keeps no "clock never goes back" state.
    let (rc, err) = ferry_tuf_client(&s.refresh_args(&md), &[]);
    assert_eq!(rc, 0, "the clock went back 20 hours: {err}");
    assert_eq!(
        names(&md),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
}
