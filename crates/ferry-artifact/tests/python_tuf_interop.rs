//! Interoperability with python-tuf (the TUF reference implementation), both directions:
//! python-tuf's ngclient updates from a Ferry `Repository`, and Ferry's `TrustedSet` verifies a
//! repository written with python-tuf's Metadata API. Canonical JSON and key ids are compared
//! with securesystemslib's.
//!
//! Needs `python3` with `tuf` importable (`pip install tuf==7.0.1`). Without it the tests print
//! a loud SKIPPED message and pass, unless `FERRY_REQUIRE_SERVICES=1`, which makes them fail.

mod common;

use chrono::Utc;
use common::sha256_hex;
use ferry_artifact::artifact::{BuildSpec, Hooks, build};
use ferry_artifact::keys::{PublicKey, SigningKey, canonical_json};
use ferry_artifact::tuf::{
    Expiry, RepoKeys, Repository, TrustedSet, TufError, target_file, target_path_with_hash,
};
use ferry_core::{Component, Version};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// `true` if python3 can import python-tuf; otherwise SKIPPED (or a panic under FERRY_REQUIRE_SERVICES=1).
fn python_tuf_available() -> bool {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import tuf.ngclient, tuf.api.metadata, securesystemslib.signer",
        ])
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

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("python3 runs")
}

/// A Ferry repository on disk: `metadata/` = `files()`, `targets/` = hash-prefixed targets.
struct ServedRepo {
    dir: tempfile::TempDir,
    repo: Repository,
    name: String,
    artifact: Vec<u8>,
}

impl ServedRepo {
    fn new() -> ServedRepo {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/app"), b"#!/bin/sh\necho 1.2.0\n").unwrap();
        let spec = BuildSpec {
            component: Component::Main,
            version: Version::new(1, 2, 0),
            device_types: vec!["gateway-v2".into()],
            hooks: Hooks::default(),
        };
        let artifact_path = dir.path().join("app.ferry");
        build(&src, spec, &artifact_path, Some(&SigningKey::generate())).unwrap();
        let artifact = fs::read(&artifact_path).unwrap();

        let mut repo = Repository::new(RepoKeys::generate(), Expiry::default(), Utc::now());
        let name = "main/1.2.0.ferry".to_string();
        let custom =
            json!({"component": "main", "version": "1.2.0", "device_types": ["gateway-v2"]});
        let target = target_file(&name, artifact.len() as u64, &sha256_hex(&artifact), custom);
        repo.set_targets(BTreeMap::from([(name.clone(), target)]), Utc::now())
            .unwrap();
        let served = ServedRepo {
            dir,
            repo,
            name,
            artifact,
        };
        served.publish();
        served
    }

    fn publish(&self) {
        let meta = self.dir.path().join("repo/metadata");
        fs::create_dir_all(&meta).unwrap();
        for (file, bytes) in self.repo.files() {
            fs::write(meta.join(file), bytes).unwrap();
        }
        let target = self.target_path();
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, &self.artifact).unwrap();
    }

    fn target_path(&self) -> PathBuf {
        let served_name = target_path_with_hash(&self.name, &sha256_hex(&self.artifact));
        self.dir.path().join("repo/targets").join(served_name)
    }

    /// Runs python-tuf's ngclient against the repository, bootstrapped with root v1.
    fn fetch_with_ngclient(&self, client: &str) -> Output {
        let root = self.dir.path().join("bootstrap-root.json");
        if !root.exists() {
            fs::write(&root, &self.repo.files()["1.root.json"]).unwrap();
        }
        let mut cmd = Command::new("python3");
        cmd.arg(script("ngclient_fetch.py"))
            .arg(self.dir.path().join("repo"))
            .arg(&root)
            .arg(&self.name)
            .arg(self.dir.path().join(client));
        run(cmd)
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

#[test]
fn python_ngclient_downloads_a_target_from_a_ferry_repository() {
    if !python_tuf_available() {
        return;
    }
    let served = ServedRepo::new();
    let result = stdout_json(&served.fetch_with_ngclient("client"));
    assert_eq!(result["length"], json!(served.artifact.len()));
    assert_eq!(result["custom"]["component"], "main");
    assert_eq!(result["root_version"], 1);
    assert_eq!(
        fs::read(result["path"].as_str().unwrap()).unwrap(),
        served.artifact
    );
}

#[test]
fn python_ngclient_follows_a_ferry_key_rotation() {
    if !python_tuf_available() {
        return;
    }
    let mut served = ServedRepo::new();
    fs::write(
        served.dir.path().join("bootstrap-root.json"),
        &served.repo.files()["1.root.json"],
    )
    .unwrap();
    served.repo.rotate_keys(RepoKeys::generate(), Utc::now());
    served.repo.refresh_timestamp(Utc::now());
    served.publish();
    let result = stdout_json(&served.fetch_with_ngclient("client"));
    assert_eq!(result["root_version"], 2);
    assert_eq!(
        fs::read(result["path"].as_str().unwrap()).unwrap(),
        served.artifact
    );
}

#[test]
fn python_ngclient_rejects_a_tampered_ferry_target() {
    if !python_tuf_available() {
        return;
    }
    let served = ServedRepo::new();
    let mut bytes = served.artifact.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(served.target_path(), &bytes).unwrap();
    let out = served.fetch_with_ngclient("client");
    assert!(!out.status.success(), "tampered target accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LengthOrHashMismatchError"), "{stderr}");
}

#[test]
fn python_ngclient_rejects_tampered_ferry_metadata() {
    if !python_tuf_available() {
        return;
    }
    let served = ServedRepo::new();
    let ts_path = served.dir.path().join("repo/metadata/timestamp.json");
    let mut ts: Value = serde_json::from_slice(&fs::read(&ts_path).unwrap()).unwrap();
    ts["signed"]["expires"] = json!("2099-01-01T00:00:00Z");
    fs::write(&ts_path, serde_json::to_vec(&ts).unwrap()).unwrap();
    let out = served.fetch_with_ngclient("client");
    assert!(!out.status.success(), "tampered timestamp accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UnsignedMetadataError"), "{stderr}");
}

/// Files written by `write_repository.py`.
struct PythonRepo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    expected: Value,
}

impl PythonRepo {
    fn write() -> PythonRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pyrepo");
        let mut cmd = Command::new("python3");
        cmd.arg(script("write_repository.py")).arg(&path);
        let out = run(cmd);
        assert!(
            out.status.success(),
            "write_repository.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected =
            serde_json::from_slice(&fs::read(path.join("expected.json")).unwrap()).unwrap();
        PythonRepo {
            _dir: dir,
            path,
            expected,
        }
    }
    fn file(&self, name: &str) -> Vec<u8> {
        fs::read(self.path.join(name)).unwrap()
    }
    fn target_data(&self) -> Vec<u8> {
        hex::decode(self.expected["data_hex"].as_str().unwrap()).unwrap()
    }
    fn target_name(&self) -> &str {
        self.expected["target"].as_str().unwrap()
    }
}

#[test]
fn trusted_set_verifies_a_python_tuf_repository() {
    if !python_tuf_available() {
        return;
    }
    let py = PythonRepo::write();
    let now = Utc::now();
    let mut client = TrustedSet::new(&py.file("1.root.json")).unwrap();
    client.update_root(&py.file("2.root.json")).unwrap();
    assert_eq!(client.root_version(), 2);
    assert!(client.consistent_snapshot());
    client
        .update_timestamp(&py.file("timestamp.json"), now)
        .unwrap();
    client
        .update_snapshot(&py.file("1.snapshot.json"), now)
        .unwrap();
    client
        .update_targets(&py.file("1.targets.json"), now)
        .unwrap();

    let name = py.target_name();
    let data = py.target_data();
    client.verify_target_data(name, &data).unwrap();
    client
        .verify_target(name, data.len() as u64, &sha256_hex(&data))
        .unwrap();
    assert_eq!(client.target(name).unwrap().custom, py.expected["custom"]);
    let served = py.path.join("targets").join(target_path_with_hash(
        name,
        py.expected["sha256"].as_str().unwrap(),
    ));
    assert_eq!(
        fs::read(served).unwrap(),
        data,
        "python serves the target under Ferry's hash-prefixed path"
    );

    let mut tampered = data.clone();
    tampered[0] ^= 1;
    assert!(matches!(
        client.verify_target_data(name, &tampered),
        Err(TufError::HashMismatch { .. })
    ));
}

#[test]
fn trusted_set_rejects_a_python_tuf_rotation_signed_only_by_the_new_key() {
    if !python_tuf_available() {
        return;
    }
    let py = PythonRepo::write();
    let mut v2: Value = serde_json::from_slice(&py.file("2.root.json")).unwrap();
    let new_root_keyid = py.expected["root_keyids_v2"][0]
        .as_str()
        .unwrap()
        .to_string();
    v2["signatures"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["keyid"] == new_root_keyid.as_str());
    assert_eq!(v2["signatures"].as_array().unwrap().len(), 1);
    let mut client = TrustedSet::new(&py.file("1.root.json")).unwrap();
    let err = client
        .update_root(&serde_json::to_vec(&v2).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::ThresholdNotMet {
                root_version: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn key_ids_match_python_tuf() {
    if !python_tuf_available() {
        return;
    }
    let py = PythonRepo::write();
    for (keyid, key) in py.expected["keys"].as_object().unwrap() {
        let key: PublicKey = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(&key.key_id(), keyid);
    }
}

#[test]
fn canonical_json_matches_securesystemslib() {
    if !python_tuf_available() {
        return;
    }
    let key = SigningKey::generate().public().to_json();
    let values = json!([
        key,
        "",
        "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f}",
        "unicode é ü 中文 😀 \u{2028}",
        {"b": 1, "a": {"z": [], "y": {}}, "A": null, "é": true, "e": false, "😀": "x", "\u{ff}": 0},
        [-1, 0, 9007199254740993_u64, -9223372036854775808_i64, 18446744073709551615_u64],
        {"": [[]], " ": {"\"": "\\"}},
    ]);
    let mut child = Command::new("python3")
        .arg(script("canonical.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&values).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let result = stdout_json(&out);
    for (i, value) in values.as_array().unwrap().iter().enumerate() {
        let ours = String::from_utf8(canonical_json(value)).unwrap();
        assert_eq!(
            ours,
            result["canonical"][i].as_str().unwrap(),
            "value #{i}: {value}"
        );
    }
    let key: PublicKey = serde_json::from_value(values[0].clone()).unwrap();
    assert_eq!(json!(key.key_id()), result["keyids"][0]);
}
