//! Shared by the TUF test files: the real `ferry` binary, python-tuf and its own example
//! client, and the require-service rule (missing tool → loud SKIP, or a failure under
//! `FERRY_REQUIRE_SERVICES=1`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The python-tuf release the tests are written against (scripts/test.sh installs it).
pub const PYTHON_TUF_VERSION: &str = "7.0.1";

/// sha256 of `examples/client/client` in the python-tuf 7.0.1 source distribution.
pub const EXAMPLE_CLIENT_SHA256: &str =
    "56e1f77ce27f54fa2e05ce6e72cc59a66d3beda77b96ae2cadd8bf7a7e204bd6";

/// `what` is missing: panics under `FERRY_REQUIRE_SERVICES=1` (the rule of
/// `ferry_store::testing::require_service`), otherwise prints a loud SKIPPED banner on the real
/// stderr (the harness captures `eprintln!`) and returns `false`.
pub fn missing(what: &str, install: &str, detail: &str) -> bool {
    if ferry_store::testing::services_required() {
        panic!("FERRY_REQUIRE_SERVICES=1 but {what} is not usable ({install}): {detail}");
    }
    let bar = "=".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED: {what} not usable ({install}); this TUF test did not run\n{detail}\n{bar}\n"
    );
    false
}

/// `true` if python3 can import python-tuf (and urllib3, which its example client uses).
pub fn python_tuf_available() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = OK.get_or_init(|| {
        match Command::new("python3")
            .args([
                "-c",
                "import tuf.ngclient, tuf.api.metadata, securesystemslib.signer, urllib3",
            ])
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => Err(format!("cannot run python3: {e}")),
        }
    });
    match probe {
        Ok(()) => true,
        Err(detail) => missing(
            "python-tuf",
            &format!("pip install tuf=={PYTHON_TUF_VERSION}"),
            detail,
        ),
    }
}

/// Newest modification time of the `.rs` files under `dir`.
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            entry.metadata().ok()?.modified().ok()
        } else {
            None
        };
        newest = newest.max(t);
    }
    newest
}

/// The `ferry` binary (`ferry tuf-client` is what the tests run): `$FERRY_BIN` if set, else
/// `ferry` beside this test's profile directory (`target/debug/ferry`), built with
/// `cargo build -p ferry` first when it is missing or older than the sources behind
/// `tuf-client` (a workspace build, as in CI, leaves it fresh and nothing is rebuilt).
pub fn ferry_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FERRY_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test>-<hash> → target/<profile>/ferry
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executables live in target/<profile>/deps");
        let bin = profile_dir.join("ferry");
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sources = ["ferry-agent", "ferry-artifact", "ferry-cli", "ferry-core"]
            .iter()
            .filter_map(|c| newest_source(&crates.join(c).join("src")))
            .max();
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let fresh = matches!((built, sources), (Some(b), Some(s)) if b >= s);
        if !fresh {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "ferry", "--bin", "ferry"])
                .current_dir(crates.parent().unwrap());
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("cargo runs");
            assert!(
                out.status.success(),
                "`cargo build -p ferry` failed (set FERRY_BIN to a built `ferry`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(bin.is_file(), "no ferry binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Runs `ferry tuf-client ARGS` and returns its exit code (a signal is a test failure), with
/// its stderr.
pub fn ferry_tuf_client(args: &[String], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(ferry_bin())
        .arg("tuf-client")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the ferry binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("ferry tuf-client died by a signal: {stderr}"));
    (code, stderr)
}

/// python-tuf's own example client (`examples/client/client` of the python-tuf source
/// distribution, run unmodified): `$FERRY_TUF_EXAMPLE_CLIENT` if set, else taken from the
/// sdist of the installed python-tuf version, fetched once with
/// `pip download --no-binary :all: --no-deps tuf==VERSION` into the temp directory.
/// `None` (SKIPPED, or a panic under `FERRY_REQUIRE_SERVICES=1`) if it cannot be had.
pub fn example_client() -> Option<PathBuf> {
    static CLIENT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = CLIENT.get_or_init(|| {
        if let Some(p) = std::env::var_os("FERRY_TUF_EXAMPLE_CLIENT") {
            return Ok(PathBuf::from(p));
        }
        let dir = std::env::temp_dir().join(format!("ferry-python-tuf-{PYTHON_TUF_VERSION}-sdist"));
        let client = dir.join(format!("tuf-{PYTHON_TUF_VERSION}/examples/client/client"));
        if client.is_file() {
            return Ok(client);
        }
        // Fetched into a private directory, then renamed into place (tests run in parallel).
        let staging = std::env::temp_dir().join(format!(
            "ferry-python-tuf-{PYTHON_TUF_VERSION}-sdist.{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--no-binary", ":all:", "-d"])
            .arg(&staging)
            .arg(format!("tuf=={PYTHON_TUF_VERSION}"))
            .output()
            .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pip download of the tuf {PYTHON_TUF_VERSION} sdist failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let sdist = staging.join(format!("tuf-{PYTHON_TUF_VERSION}.tar.gz"));
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&staging)
            .arg(format!("tuf-{PYTHON_TUF_VERSION}/examples/client"))
            .output()
            .map_err(|e| format!("cannot run tar: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "unpacking {}: {}",
                sdist.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging); // another test process was first
        }
        if client.is_file() {
            Ok(client)
        } else {
            Err(format!("no {} after unpacking the sdist", client.display()))
        }
    });
    match found {
        Ok(path) => {
            use sha2::Digest;
            let text = std::fs::read(path).expect("the example client is readable");
            let sha = hex::encode(sha2::Sha256::digest(&text));
            assert_eq!(
                sha,
                EXAMPLE_CLIENT_SHA256,
                "{} is not python-tuf {PYTHON_TUF_VERSION}'s examples/client/client",
                path.display()
            );
            Some(path.clone())
        }
        Err(detail) => {
            missing(
                "python-tuf's example client",
                &format!(
                    "python3 -m pip download --no-deps --no-binary :all: tuf=={PYTHON_TUF_VERSION}, \
                     or set FERRY_TUF_EXAMPLE_CLIENT"
                ),
                detail,
            );
            None
        }
    }
}

/// python-tuf's example client keeps its metadata in
/// `$HOME/.local/share/tuf-example/<first 8 hex of sha256(base_url)>`.
pub fn example_metadata_dir(home: &Path, base_url: &str) -> PathBuf {
    use sha2::Digest;
    let name = &hex::encode(sha2::Sha256::digest(base_url.as_bytes()))[..8];
    home.join(".local/share/tuf-example").join(name)
}

/// One run of python-tuf's example client.
#[derive(Debug)]
pub struct ExampleRun {
    /// Its exit code (`sys.exit(message)` is 1).
    pub code: i32,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A python-tuf example client installation: its own `$HOME` (metadata) and working
/// directory (targets go to `./downloads`), for one repository base URL.
pub struct ExampleClient {
    /// The client script.
    pub script: PathBuf,
    /// `$HOME` of the client.
    pub home: PathBuf,
    /// Its working directory.
    pub cwd: PathBuf,
    /// `--url`: metadata under `{url}/metadata/`, targets under `{url}/targets/`.
    pub url: String,
}

impl ExampleClient {
    /// Sets the client up under `dir` and stores `trusted_root` as its `root.json`, the way
    /// the example tells a user to ("copy trusted root metadata to …/root.json").
    pub fn init(script: PathBuf, dir: &Path, url: &str, trusted_root: &[u8]) -> ExampleClient {
        let client = ExampleClient {
            script,
            home: dir.join("home"),
            cwd: dir.join("cwd"),
            url: url.trim_end_matches('/').to_string(),
        };
        let md = client.metadata_dir();
        std::fs::create_dir_all(&md).unwrap();
        std::fs::create_dir_all(&client.cwd).unwrap();
        std::fs::write(md.join("root.json"), trusted_root).unwrap();
        client
    }

    /// Where it keeps the trusted metadata.
    pub fn metadata_dir(&self) -> PathBuf {
        example_metadata_dir(&self.home, &self.url)
    }

    /// Where it stores targets.
    pub fn target_dir(&self) -> PathBuf {
        self.cwd.join("downloads")
    }

    /// `client --url URL download TARGET`.
    pub fn download(&self, target: &str) -> ExampleRun {
        let out = Command::new("python3")
            .arg(&self.script)
            .args(["--url", &self.url, "download", target])
            .env("HOME", &self.home)
            .current_dir(&self.cwd)
            .output()
            .expect("python3 runs");
        ExampleRun {
            code: out
                .status
                .code()
                .expect("the example client exited (not killed)"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// How a client command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Pass,
    /// Exit code 1.
    Fail,
}

impl Outcome {
    /// The outcome of an exit code; anything but 0 or 1 fails the test.
    pub fn of(rc: i32) -> Outcome {
        match rc {
            0 => Outcome::Pass,
            1 => Outcome::Fail,
            other => panic!("exit code {other}: must be exactly 0 or 1"),
        }
    }
}

/// Top-level `*.json` files of a metadata directory (symlinks followed), by name.
pub fn role_files(md: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(md) else {
        return out;
    };
    for entry in rd {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// Every file of a target directory (recursively, relative names), with its bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Files as (name, first 400 characters) for readable assertion messages.
pub fn show(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                String::from_utf8_lossy(v).chars().take(400).collect(),
            )
        })
        .collect()
}

/// Serves the files under `root` over HTTP/1.1 on 127.0.0.1 (one request per connection, by
/// the literal request path; 404 for anything else). Returns the base URL.
pub fn serve_dir(root: &Path) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
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
            let file = root.join(path.trim_start_matches('/'));
            let (status, body) = match std::fs::read(&file) {
                Ok(b) if !path.contains("..") && file.is_file() => ("200 OK", b),
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
    url
}

/// `true` if libfaketime's `faketime` wrapper works (Debian package `faketime`).
pub fn faketime_available() -> bool {
    match Command::new("faketime")
        .args(["-f", "+2d", "date", "+%s"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let faked: i64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            let real = chrono::Utc::now().timestamp();
            if (faked - real - 2 * 86_400).abs() < 600 {
                return true;
            }
            missing(
                "faketime",
                "apt-get install faketime",
                &format!("faketime -f +2d date printed {faked}, now is {real}"),
            )
        }
        Ok(out) => missing(
            "faketime",
            "apt-get install faketime",
            &String::from_utf8_lossy(&out.stderr),
        ),
        Err(e) => missing("faketime", "apt-get install faketime", &e.to_string()),
    }
}
