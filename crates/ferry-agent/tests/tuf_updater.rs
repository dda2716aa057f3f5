//! The TUF client workflow of `ferry tuf-client` (ferry_agent::tuf_updater), one test per rule
//! or attack, against repositories built here with Ferry's signing code and served by a small
//! file server that records every request.

use ferry_agent::tuf_updater::{cli_main, quote};
use ferry_artifact::keys::SigningKey;
use ferry_artifact::tuf::{Expiry, RepoKeys, Repository, sign_metadata, target_file};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Serves `root` over HTTP/1.1 on 127.0.0.1 (one request per connection) and records paths.
struct FileServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(path.clone());
                // Served by the literal (still percent-encoded) name.
                let file = root.join(path.trim_start_matches('/'));
                let (status, body) = match std::fs::read(&file) {
                    Ok(b) if file.is_file() => ("200 OK", b),
                    _ => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        FileServer { url, requests }
    }

    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn expires(days: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn key_entry(k: &SigningKey) -> Value {
    k.public().to_json()
}

/// A delegated role as built here.
#[derive(Clone)]
struct Deleg {
    name: String,
    key: SigningKey,
    terminating: bool,
    paths: Option<Vec<String>>,
    prefixes: Option<Vec<String>>,
    targets: BTreeMap<String, Value>,
    children: Vec<String>,
}

/// A repository under `dir/metadata` and `dir/targets`, consistent snapshots, ed25519 keys.
struct Repo {
    dir: tempfile::TempDir,
    root: SigningKey,
    targets_key: SigningKey,
    snapshot_key: SigningKey,
    timestamp_key: SigningKey,
    root_version: u64,
    version: u64,
    ts_version: u64,
    top_targets: BTreeMap<String, Value>,
    top_children: Vec<String>,
    delegs: BTreeMap<String, Deleg>,
    /// Roles whose snapshot entry is left out on purpose.
    unlisted: Vec<String>,
}

impl Repo {
    fn new() -> Repo {
        let mut repo = Repo {
            dir: tempfile::tempdir().unwrap(),
            root: SigningKey::generate(),
            targets_key: SigningKey::generate(),
            snapshot_key: SigningKey::generate(),
            timestamp_key: SigningKey::generate(),
            root_version: 0,
            version: 0,
            ts_version: 0,
            top_targets: BTreeMap::new(),
            top_children: Vec::new(),
            delegs: BTreeMap::new(),
            unlisted: Vec::new(),
        };
        std::fs::create_dir_all(repo.meta_dir()).unwrap();
        std::fs::create_dir_all(repo.dir.path().join("targets")).unwrap();
        repo.write_root(&[]);
        repo
    }

    fn meta_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    fn write_meta(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.meta_dir().join(file), bytes).unwrap();
    }

    fn root_value(&self) -> Value {
        let keys: serde_json::Map<String, Value> = [
            &self.root,
            &self.targets_key,
            &self.snapshot_key,
            &self.timestamp_key,
        ]
        .iter()
        .map(|k| (k.key_id().to_string(), key_entry(k)))
        .collect();
        let role = |k: &SigningKey| json!({"keyids": [k.key_id()], "threshold": 1});
        json!({
            "_type": "root", "spec_version": "1.0.31", "version": self.root_version,
            "expires": expires(365), "consistent_snapshot": true, "keys": keys,
            "roles": {"root": role(&self.root), "targets": role(&self.targets_key),
                      "snapshot": role(&self.snapshot_key), "timestamp": role(&self.timestamp_key)}
        })
    }

    /// Writes the next root version signed by the current root key and `extra` keys.
    fn write_root(&mut self, old_keys: &[&SigningKey]) {
        self.root_version += 1;
        let mut signers: Vec<&SigningKey> = old_keys.to_vec();
        signers.push(&self.root);
        let bytes = sign_metadata(&self.root_value(), &signers);
        self.write_meta(&format!("{}.root.json", self.root_version), &bytes);
    }

    fn root_bytes(&self, version: u64) -> Vec<u8> {
        std::fs::read(self.meta_dir().join(format!("{version}.root.json"))).unwrap()
    }

    /// Adds a target to `role` ("targets" or a delegated role) and stores it under its
    /// consistent-snapshot name (first listed hash as prefix).
    fn add_target(&mut self, role: &str, name: &str, data: &[u8], algs: &[&str]) {
        let mut hashes = serde_json::Map::new();
        for alg in algs {
            let h = match *alg {
                "sha256" => hex::encode(Sha256::digest(data)),
                "sha512" => hex::encode(Sha512::digest(data)),
                other => panic!("{other}"),
            };
            hashes.insert(alg.to_string(), Value::String(h));
        }
        let first = hashes.values().next().unwrap().as_str().unwrap().to_string();
        let entry = json!({"length": data.len(), "hashes": hashes});
        if role == "targets" {
            self.top_targets.insert(name.into(), entry);
        } else {
            self.delegs.get_mut(role).unwrap().targets.insert(name.into(), entry);
        }
        let served = match name.rsplit_once('/') {
            Some((d, b)) => format!("{d}/{first}.{b}"),
            None => format!("{first}.{name}"),
        };
        let path = self.dir.path().join("targets").join(served);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    fn delegate(
        &mut self,
        parent: &str,
        name: &str,
        terminating: bool,
        paths: Option<&[&str]>,
        prefixes: Option<&[&str]>,
    ) {
        self.delegs.insert(
            name.into(),
            Deleg {
                name: name.into(),
                key: SigningKey::generate(),
                terminating,
                paths: paths.map(|p| p.iter().map(|s| s.to_string()).collect()),
                prefixes: prefixes.map(|p| p.iter().map(|s| s.to_string()).collect()),
                targets: BTreeMap::new(),
                children: Vec::new(),
            },
        );
        if parent == "targets" {
            self.top_children.push(name.into());
        } else {
            self.delegs.get_mut(parent).unwrap().children.push(name.into());
        }
    }

    fn delegations_value(&self, children: &[String]) -> Option<Value> {
        if children.is_empty() {
            return None;
        }
        let mut keys = serde_json::Map::new();
        let mut roles = Vec::new();
        for c in children {
            let d = &self.delegs[c];
            keys.insert(d.key.key_id().into(), key_entry(&d.key));
            let mut role = json!({"name": d.name, "keyids": [d.key.key_id()], "threshold": 1,
                                  "terminating": d.terminating});
            if let Some(p) = &d.paths {
                role["paths"] = json!(p);
            }
            if let Some(p) = &d.prefixes {
                role["path_hash_prefixes"] = json!(p);
            }
            roles.push(role);
        }
        Some(json!({"keys": keys, "roles": roles}))
    }

    fn targets_value(&self, targets: &BTreeMap<String, Value>, children: &[String]) -> Value {
        let mut v = json!({"_type": "targets", "spec_version": "1.0.31", "version": self.version,
                           "expires": expires(90), "targets": targets});
        if let Some(d) = self.delegations_value(children) {
            v["delegations"] = d;
        }
        v
    }

    /// Publishes a new version of targets, every delegated role, snapshot and timestamp.
    fn publish(&mut self) {
        self.version += 1;
        let v = self.version;
        let mut meta = serde_json::Map::new();
        let top = sign_metadata(
            &self.targets_value(&self.top_targets, &self.top_children),
            &[&self.targets_key],
        );
        self.write_meta(&format!("{v}.targets.json"), &top);
        meta.insert("targets.json".into(), json!({"version": v}));
        for d in self.delegs.values() {
            let bytes = sign_metadata(&self.targets_value(&d.targets, &d.children), &[&d.key]);
            self.write_meta(&format!("{v}.{}.json", quote(&d.name)), &bytes);
            if !self.unlisted.contains(&d.name) {
                meta.insert(format!("{}.json", d.name), json!({"version": v}));
            }
        }
        let snap = sign_metadata(
            &json!({"_type": "snapshot", "spec_version": "1.0.31", "version": v,
                    "expires": expires(7), "meta": meta}),
            &[&self.snapshot_key],
        );
        self.write_meta(&format!("{v}.snapshot.json"), &snap);
        self.publish_timestamp(v, json!({}));
    }

    fn publish_timestamp(&mut self, snapshot_version: u64, extra: Value) {
        self.ts_version += 1;
        self.write_timestamp(self.ts_version, snapshot_version, extra);
    }

    fn write_timestamp(&self, version: u64, snapshot_version: u64, extra: Value) {
        let mut v = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": version,
                           "expires": expires(1),
                           "meta": {"snapshot.json": {"version": snapshot_version}}});
        if let Value::Object(extra) = extra {
            for (k, x) in extra {
                v[k] = x;
            }
        }
        self.write_meta("timestamp.json", &sign_metadata(&v, &[&self.timestamp_key]));
    }
}

/// A client: metadata dir, target dir, and the CLI around them.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn init(repo: &Repo) -> Client {
        let client = Client {
            dir: tempfile::tempdir().unwrap(),
        };
        let root = client.dir.path().join("trusted-root.json");
        std::fs::write(&root, repo.root_bytes(1)).unwrap();
        assert_eq!(
            cli_main(args(&[
                "--metadata-dir",
                client.md().to_str().unwrap(),
                "init",
                root.to_str().unwrap()
            ])),
            0
        );
        client
    }
    fn md(&self) -> PathBuf {
        self.dir.path().join("md")
    }
    fn td(&self) -> PathBuf {
        self.dir.path().join("td")
    }
    fn refresh(&self, server: &FileServer) -> i32 {
        cli_main(args(&[
            "--metadata-url",
            &format!("{}/metadata", server.url),
            "--metadata-dir",
            self.md().to_str().unwrap(),
            "refresh",
        ]))
    }
    fn download(&self, server: &FileServer, names: &[&str]) -> i32 {
        let mut a = vec![
            "--metadata-dir".to_string(),
            self.md().to_str().unwrap().into(),
            "--target-dir".into(),
            self.td().to_str().unwrap().into(),
            "--metadata-url".into(),
            format!("{}/metadata", server.url),
            "--target-base-url".into(),
            format!("{}/targets", server.url),
        ];
        for n in names {
            a.push("--target-name".into());
            a.push(n.to_string());
        }
        a.push("download".into());
        cli_main(a)
    }
    fn stored(&self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.md().join(format!("{}.json", quote(role)))).ok()
    }
    fn stored_version(&self, role: &str) -> Option<u64> {
        let v: Value = serde_json::from_slice(&self.stored(role)?).ok()?;
        v["signed"]["version"].as_u64()
    }
    fn md_files(&self) -> Vec<String> {
        list(&self.md())
    }
    fn td_files(&self) -> Vec<String> {
        list(&self.td())
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn metadata_requests(server: &FileServer) -> Vec<String> {
    server
        .take_requests()
        .into_iter()
        .filter_map(|p| p.strip_prefix("/metadata/").map(String::from))
        .collect()
}

#[test]
fn refresh_and_download_store_exact_bytes_and_only_role_files() {
    let mut repo = Repo::new();
    repo.add_target("targets", "dir/file.txt", b"hello", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["dir/file.txt"]), 0);
    assert_eq!(
        client.md_files(),
        ["root.json", "snapshot.json", "targets.json", "timestamp.json"]
    );
    assert_eq!(client.stored("root").unwrap(), repo.root_bytes(1));
    assert_eq!(
        client.stored("targets").unwrap(),
        std::fs::read(repo.meta_dir().join("1.targets.json")).unwrap()
    );
    assert_eq!(client.td_files(), ["dir%2Ffile.txt"]);
    assert_eq!(std::fs::read(client.td().join("dir%2Ffile.txt")).unwrap(), b"hello");
}

#[test]
fn rejects_same_version_timestamp_with_new_content() {
    let mut repo = Repo::new();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.refresh(&server), 0);
    let trusted = client.stored("timestamp").unwrap();
    // Same version, same snapshot, different signed content (an extra field), validly signed.
    repo.write_timestamp(repo.ts_version, 1, json!({"x-note": "changed"}));
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.stored("timestamp").unwrap(), trusted);
    // The identical timestamp (the exact bytes trusted before) re-served is fine.
    repo.write_meta("timestamp.json", &trusted);
    assert_eq!(client.refresh(&server), 0);
}

#[test]
fn rejects_timestamp_and_snapshot_rollback() {
    let mut repo = Repo::new();
    repo.publish();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(client.stored_version("timestamp"), Some(2));
    // An older timestamp version.
    repo.write_timestamp(1, 1, json!({}));
    assert_eq!(client.refresh(&server), 1);
    // A newer timestamp naming an older snapshot.
    repo.write_timestamp(3, 1, json!({}));
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.stored_version("timestamp"), Some(2));
}

#[test]
fn delegation_walk_is_preorder_and_lazy() {
    let mut repo = Repo::new();
    // targets → [a (paths *), b (paths *)], a → [a1 (paths *)]; the target is only in b.
    repo.delegate("targets", "a", false, Some(&["*"]), None);
    repo.delegate("targets", "b", false, Some(&["*"]), None);
    repo.delegate("a", "a1", false, Some(&["*"]), None);
    repo.delegate("targets", "unrelated", false, Some(&["other/*"]), None);
    repo.add_target("b", "file.txt", b"from b", &["sha256"]);
    repo.add_target("a1", "deep.txt", b"from a1", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.refresh(&server), 0);
    let after_refresh = metadata_requests(&server);
    assert!(
        !after_refresh.iter().any(|r| r.contains(".a.") || r.contains(".b.")),
        "refresh fetched delegated roles: {after_refresh:?}"
    );
    assert_eq!(client.download(&server, &["file.txt"]), 0);
    let fetched: Vec<String> = metadata_requests(&server)
        .into_iter()
        .filter(|r| !r.ends_with("root.json") && r != "timestamp.json")
        .collect();
    assert_eq!(fetched, ["1.a.json", "1.a1.json", "1.b.json"], "pre-order, listed order");
    assert!(client.stored("unrelated").is_none(), "never reached, never fetched");
    assert_eq!(std::fs::read(client.td().join("file.txt")).unwrap(), b"from b");
}

#[test]
fn terminating_delegation_stops_search() {
    let mut repo = Repo::new();
    repo.delegate("targets", "stop", true, Some(&["*.txt"]), None);
    repo.delegate("targets", "later", false, Some(&["*"]), None);
    repo.add_target("later", "x.txt", b"later", &["sha256"]);
    repo.add_target("later", "x.bin", b"bin", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["x.txt"]), 1, "terminating role hides later roles");
    assert!(client.stored("later").is_none());
    assert_eq!(client.download(&server, &["x.bin"]), 0, "a terminating role that does not match does not stop the search");
    assert!(client.td_files() == ["x.bin"]);
}

#[test]
fn path_hash_prefix_selects_role() {
    let name = "bins/file.dat";
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let wrong = if hash.starts_with('0') { "1" } else { "0" };
    let mut repo = Repo::new();
    repo.delegate("targets", "wrong-bin", false, None, Some(&[wrong]));
    repo.delegate("targets", "right-bin", false, None, Some(&[&hash[..2]]));
    repo.add_target("wrong-bin", name, b"wrong", &["sha256"]);
    repo.add_target("right-bin", name, b"right", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &[name]), 0);
    assert_eq!(std::fs::read(client.td().join(quote(name))).unwrap(), b"right");
    assert!(client.stored("wrong-bin").is_none());
}

#[test]
fn delegation_cycles_end_and_unlisted_roles_are_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", "ping", false, Some(&["*"]), None);
    repo.delegate("ping", "pong", false, Some(&["*"]), None);
    repo.delegs.get_mut("pong").unwrap().children.push("ping".into());
    repo.delegate("targets", "ghost", false, Some(&["ghost/*"]), None);
    repo.add_target("ghost", "ghost/file", b"boo", &["sha256"]);
    repo.unlisted.push("ghost".into());
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["missing.txt"]), 1, "not found after the cycle");
    assert!(client.stored("ping").is_some() && client.stored("pong").is_some());
    assert_eq!(client.download(&server, &["ghost/file"]), 1, "role not in snapshot");
    assert!(client.stored("ghost").is_none());
    assert!(!metadata_requests(&server).iter().any(|r| r.contains("ghost")));
}

#[test]
fn role_names_are_percent_encoded_in_urls_and_files() {
    let mut repo = Repo::new();
    repo.delegate("targets", "team/a b", false, Some(&["*"]), None);
    repo.add_target("team/a b", "f", b"f", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["f"]), 0);
    assert!(
        server.take_requests().contains(&"/metadata/1.team%2Fa%20b.json".to_string())
    );
    assert!(client.md_files().contains(&"team%2Fa%20b.json".to_string()));
}

#[test]
fn consistent_snapshot_hash_prefix_is_on_basename() {
    let mut repo = Repo::new();
    repo.add_target("targets", "a/b/c.bin", b"nested", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["a/b/c.bin"]), 0);
    let hash = hex::encode(Sha256::digest(b"nested"));
    assert!(server.take_requests().contains(&format!("/targets/a/b/{hash}.c.bin")));
}

#[test]
fn accepts_sha512_only_target() {
    let mut repo = Repo::new();
    repo.add_target("targets", "only512.bin", b"sha512 only", &["sha512"]);
    repo.add_target("targets", "both.bin", b"both", &["sha512", "sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["only512.bin", "both.bin"]), 0);
    let requests = server.take_requests();
    let h512 = hex::encode(Sha512::digest(b"sha512 only"));
    assert!(requests.contains(&format!("/targets/{h512}.only512.bin")), "{requests:?}");
    // The first hash as listed (sha512 here) is the prefix, as python-tuf does it.
    let both512 = hex::encode(Sha512::digest(b"both"));
    assert!(requests.contains(&format!("/targets/{both512}.both.bin")), "{requests:?}");
}

#[test]
fn rejects_target_with_wrong_hash_and_leaves_target_dir_clean() {
    let mut repo = Repo::new();
    repo.add_target("targets", "t.bin", b"genuine", &["sha256"]);
    repo.publish();
    let hash = hex::encode(Sha256::digest(b"genuine"));
    std::fs::write(repo.dir.path().join(format!("targets/{hash}.t.bin")), b"genuinX").unwrap();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["t.bin"]), 1);
    assert!(client.td_files().is_empty(), "{:?}", client.td_files());
    assert!(!client.dir.path().join(".td.ferry-partial").exists());
}

#[test]
fn target_dir_holds_only_complete_targets() {
    let mut repo = Repo::new();
    repo.add_target("targets", "long.bin", &[7u8; 100_000], &["sha256"]);
    repo.publish();
    let hash = hex::encode(Sha256::digest([7u8; 100_000]));
    // The server sends more than the signed length: refused while streaming.
    std::fs::write(
        repo.dir.path().join(format!("targets/{hash}.long.bin")),
        vec![7u8; 200_000],
    )
    .unwrap();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["long.bin"]), 1);
    assert!(client.td_files().is_empty());
    std::fs::write(
        repo.dir.path().join(format!("targets/{hash}.long.bin")),
        vec![7u8; 100_000],
    )
    .unwrap();
    assert_eq!(client.download(&server, &["long.bin"]), 0);
    assert_eq!(client.td_files(), ["long.bin"]);
    assert_eq!(list(client.dir.path()), ["md", "td", "trusted-root.json"]);
}

#[test]
fn stored_matching_target_is_not_downloaded_again() {
    let mut repo = Repo::new();
    repo.add_target("targets", "t.txt", b"v1", &["sha256"]);
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.download(&server, &["t.txt"]), 0);
    server.take_requests();
    assert_eq!(client.download(&server, &["t.txt"]), 0);
    assert!(!server.take_requests().iter().any(|r| r.starts_with("/targets/")));
    // New content under the same name replaces the stored file at the same path.
    repo.add_target("targets", "t.txt", b"v2", &["sha256"]);
    repo.publish();
    assert_eq!(client.download(&server, &["t.txt"]), 0);
    assert_eq!(std::fs::read(client.td().join("t.txt")).unwrap(), b"v2");
}

#[test]
fn partial_refresh_keeps_verified_roles_only() {
    let mut repo = Repo::new();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    // A new root verifies; then the snapshot is tampered with.
    let old_root = repo.root.clone();
    repo.root = SigningKey::generate();
    repo.write_root(&[&old_root]);
    repo.publish();
    let snap = repo.meta_dir().join("2.snapshot.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&snap).unwrap()).unwrap();
    v["signed"]["expires"] = json!(expires(30));
    std::fs::write(&snap, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.stored_version("root"), Some(2));
    assert_eq!(client.stored_version("timestamp"), Some(2));
    assert_eq!(client.stored("snapshot"), None, "the rejected snapshot is not stored");
    assert_eq!(client.stored("targets"), None);
    assert_eq!(client.md_files(), ["root.json", "timestamp.json"]);
}

#[test]
fn root_rotation_needs_old_and_new_keys() {
    let mut repo = Repo::new();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    // v2 signed by the new root key only.
    repo.root = SigningKey::generate();
    repo.write_root(&[]);
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.stored_version("root"), Some(1));
}

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut repo = Repo::new();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    // The attacker holding the timestamp key fast-forwards the timestamp version.
    repo.write_timestamp(1000, 1, json!({}));
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(client.stored_version("timestamp"), Some(1000));
    // Recovery: a new root with a new timestamp key; the timestamp starts over at version 1.
    let root = repo.root.clone();
    repo.timestamp_key = SigningKey::generate();
    repo.write_root(&[&root]);
    // §5.3.11: the rotation alone deletes the stored timestamp and snapshot, even when the
    // rest of the refresh fails (here: no timestamp on the server yet).
    std::fs::remove_file(repo.meta_dir().join("timestamp.json")).unwrap();
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.stored_version("root"), Some(2));
    assert_eq!(client.stored("timestamp"), None);
    assert_eq!(client.stored("snapshot"), None);
    repo.ts_version = 0;
    repo.publish();
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(client.stored_version("root"), Some(2));
    assert_eq!(client.stored_version("timestamp"), Some(1));
}

#[test]
fn root_chain_stops_at_the_rotation_limit() {
    let mut repo = Repo::new();
    repo.publish();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    // python-tuf's limit (UpdaterConfig.max_root_rotations = 256): the chain is followed that
    // far without an error, and the next refresh goes on to the newest root.
    for _ in 0..260 {
        repo.write_root(&[]);
    }
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(client.stored_version("root"), Some(257), "256 rotations at most per refresh");
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(client.stored_version("root"), Some(261));
}

#[test]
fn expired_metadata_is_refused() {
    let mut repo = Repo::new();
    repo.publish();
    let mut v: Value = serde_json::from_slice(&std::fs::read(repo.meta_dir().join("timestamp.json")).unwrap()).unwrap();
    v["signed"]["expires"] = json!("2001-01-01T00:00:00Z");
    v["signed"]["version"] = json!(7);
    repo.write_meta("timestamp.json", &sign_metadata(&v["signed"], &[&repo.timestamp_key]));
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    assert_eq!(client.refresh(&server), 1);
}

#[test]
fn exit_code_is_exactly_1_on_failure() {
    let repo = Repo::new();
    let server = FileServer::start(repo.dir.path());
    let client = Client::init(&repo);
    // No timestamp on the server, unknown target, bad usage, missing trusted root.
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(client.download(&server, &["nothing"]), 1);
    assert_eq!(cli_main(args(&["--nonsense"])), 1);
    assert_eq!(cli_main(args(&["--metadata-dir", "/nonexistent/md", "--metadata-url", "http://127.0.0.1:1", "refresh"])), 1);
    let garbage = client.dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{}").unwrap();
    assert_eq!(cli_main(args(&["--metadata-dir", client.md().to_str().unwrap(), "init", garbage.to_str().unwrap()])), 1);
}

#[test]
fn ferry_server_repository_refreshes_and_downloads() {
    let now = chrono::Utc::now();
    let mut repo = Repository::new(RepoKeys::generate(), Expiry::default(), now);
    let data = b"ferry artifact bytes".to_vec();
    let name = "main/1.2.0.ferry".to_string();
    let target = target_file(&name, data.len() as u64, &hex::encode(Sha256::digest(&data)), json!({"component": "main"}));
    repo.set_targets(BTreeMap::from([(name.clone(), target)]), now).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (file, bytes) in repo.files() {
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        std::fs::write(dir.path().join("metadata").join(file), bytes).unwrap();
    }
    let served = dir.path().join("targets/main").join(format!("{}.1.2.0.ferry", hex::encode(Sha256::digest(&data))));
    std::fs::create_dir_all(served.parent().unwrap()).unwrap();
    std::fs::write(served, &data).unwrap();
    let server = FileServer::start(dir.path());
    let client = tempfile::tempdir().unwrap();
    let md = client.path().join("md");
    let root = client.path().join("root.json");
    std::fs::write(&root, &repo.files()["1.root.json"]).unwrap();
    assert_eq!(cli_main(args(&["--metadata-dir", md.to_str().unwrap(), "init", root.to_str().unwrap()])), 0);
    let td = client.path().join("td");
    assert_eq!(
        cli_main(args(&[
            "--metadata-url", &format!("{}/metadata", server.url),
            "--metadata-dir", md.to_str().unwrap(),
            "--target-name", &name,
            "--target-dir", td.to_str().unwrap(),
            "--target-base-url", &format!("{}/targets", server.url),
            "download",
        ])),
        0
    );
    assert_eq!(std::fs::read(td.join("main%2F1.2.0.ferry")).unwrap(), data);
}
