//! The demo main program: a directory of shell scripts with real start/stop/health behaviour.
//!
//! The app keeps its state in the main component's `data/` directory (outside the release
//! directories, so it survives updates). Version 1.1.0 needs a `schema=2` config; a device
//! whose data still holds `schema=1` cannot run it, so its health check fails and the agent
//! must roll back.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Size of the demo payload blob, large enough to need many download segments.
pub const BLOB_BYTES: usize = 192 * 1024;

fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// Deterministic pseudo-random bytes (xorshift), different per version.
fn blob(version: &str) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ version.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut out = Vec::with_capacity(BLOB_BYTES);
    while out.len() < BLOB_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(BLOB_BYTES);
    out
}

const PRELUDE: &str = r#"#!/bin/sh
HERE="$(cd "$(dirname "$0")" && pwd -P)"
DATA="$HERE/../../data"
mkdir -p "$DATA"
"#;

/// Writes the demo program's release directory for `version` into `dir`.
///
/// `needs_schema` is the config schema this version requires (1.0.0 runs on any, 1.1.0 needs 2).
pub fn write_release(dir: &Path, version: &str, needs_schema: Option<u32>) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("VERSION"), format!("{version}\n"))?;
    fs::File::create(dir.join("assets.bin"))?.write_all(&blob(version))?;
    let schema_check = match needs_schema {
        Some(n) => format!(
            r#"if ! grep -q '^schema={n}$' "$DATA/config" 2>/dev/null; then
  echo "demo-app {version}: config schema $(sed -n 's/^schema=//p' "$DATA/config" 2>/dev/null) is not supported, this version needs schema={n}" >&2
  exit 3
fi
"#
        ),
        None => String::new(),
    };
    write_exec(
        &dir.join("app.sh"),
        &format!(
            "{PRELUDE}{schema_check}echo \"demo-app {version} started\"\nwhile true; do echo \"{version}\" > \"$DATA/status.tmp\" && mv \"$DATA/status.tmp\" \"$DATA/status\"; sleep 1; done\n"
        ),
    )?;
    write_exec(
        &dir.join("start.sh"),
        &format!("{PRELUDE}nohup \"$HERE/app.sh\" >> \"$DATA/app.log\" 2>&1 &\necho $! > \"$DATA/app.pid\"\n"),
    )?;
    write_exec(
        &dir.join("stop.sh"),
        &format!(
            "{PRELUDE}if [ -f \"$DATA/app.pid\" ]; then kill \"$(cat \"$DATA/app.pid\")\" 2>/dev/null; rm -f \"$DATA/app.pid\"; fi\nrm -f \"$DATA/status\"\nexit 0\n"
        ),
    )?;
    write_exec(
        &dir.join("health.sh"),
        &format!(
            r#"{PRELUDE}sleep 0.3
PID="$(cat "$DATA/app.pid" 2>/dev/null)"
if [ -z "$PID" ] || ! kill -0 "$PID" 2>/dev/null; then
  echo "demo-app {version} is not running: $(tail -n 1 "$DATA/app.log" 2>/dev/null)" >&2
  exit 1
fi
if [ "$(cat "$DATA/status" 2>/dev/null)" != "{version}" ]; then
  echo "demo-app reports version '$(cat "$DATA/status" 2>/dev/null)', expected {version}" >&2
  exit 1
fi
echo "demo-app {version} healthy (pid $PID)"
"#
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_differ_per_version_and_have_fixed_size() {
        assert_eq!(blob("1.0.0").len(), BLOB_BYTES);
        assert_ne!(blob("1.0.0"), blob("1.1.0"));
        assert_eq!(blob("1.0.0"), blob("1.0.0"));
    }

    #[test]
    fn release_dir_holds_executable_scripts() {
        let d = tempfile::tempdir().unwrap();
        write_release(d.path(), "1.1.0", Some(2)).unwrap();
        for f in ["app.sh", "start.sh", "stop.sh", "health.sh"] {
            let mode = fs::metadata(d.path().join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{f}");
        }
        let app = fs::read_to_string(d.path().join("app.sh")).unwrap();
        assert!(app.contains("schema=2"));
    }
}
