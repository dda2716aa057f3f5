//! The demo main program: a directory of shell scripts with real start/stop/health behaviour.
//!
//! The app keeps its state in the main component's `data/` directory (outside the release
//! directories, so it survives updates). Versions 1.1.0 and 1.2.0 need a `schema=2` config; a device
//! whose data still holds `schema=1` cannot run it, so its health check fails and the agent
//! must roll back.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Size of the 1.0.0 demo payload blob, large enough to need many download segments.
pub const BLOB_BYTES: usize = 192 * 1024;

/// How each main release's `assets.bin` differs from the one before it: a small, realistic
/// change (a few KiB rewritten, a few KiB inserted, a little removed), so the server's delta is a
/// fraction of the full package. Versions before 1.0.0 shipped an unrelated asset pack.
const EDITS: &[(&str, &[Edit])] = &[
    ("1.1.0", &[Edit::Replace { at: 40 * 1024, len: 3 * 1024 }, Edit::Insert { at: 120 * 1024, len: 2 * 1024 }]),
    ("1.2.0", &[Edit::Replace { at: 8 * 1024, len: 1024 }, Edit::Remove { at: 96 * 1024, len: 512 }, Edit::Insert { at: 150 * 1024, len: 1536 }]),
];

/// One change to the asset blob between two releases.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// Overwrite `len` bytes at `at` with new content.
    Replace { at: usize, len: usize },
    /// Insert `len` new bytes before `at`.
    Insert { at: usize, len: usize },
    /// Drop `len` bytes at `at`.
    Remove { at: usize, len: usize },
}

fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// Deterministic pseudo-random bytes (xorshift) from `seed`.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The `assets.bin` of `version`: 1.0.0's asset pack with every later release's edits applied
/// in order (deterministic, so a release rebuilt from source is byte-identical).
pub fn blob(version: &str) -> Vec<u8> {
    if version_key(version) < version_key("1.0.0") {
        return noise(&format!("legacy asset pack {version}"), BLOB_BYTES);
    }
    let mut out = noise("demo-app asset pack", BLOB_BYTES);
    for (release, edits) in EDITS.iter().filter(|(r, _)| version_key(r) <= version_key(version)) {
        for (i, edit) in edits.iter().enumerate() {
            let seed = format!("{release} edit {i}");
            match *edit {
                Edit::Replace { at, len } => out[at..at + len].copy_from_slice(&noise(&seed, len)),
                Edit::Insert { at, len } => {
                    out.splice(at..at, noise(&seed, len));
                }
                Edit::Remove { at, len } => {
                    out.drain(at..at + len);
                }
            }
        }
    }
    out
}

const PRELUDE: &str = r#"#!/bin/sh
HERE="$(cd "$(dirname "$0")" && pwd -P)"
DATA="$HERE/../../data"
mkdir -p "$DATA"
"#;

/// Writes the demo program's release directory for `version` into `dir`.
///
/// `needs_schema` is the config schema this version requires (1.0.0 runs on any, 1.1.0 and 1.2.0 need 2).
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

    /// Bytes of `new` not covered by its longest common prefix and suffix with `old`.
    fn changed_span(old: &[u8], new: &[u8]) -> usize {
        let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
        new.len() - prefix - suffix
    }

    #[test]
    fn releases_are_small_edits_of_one_asset_pack() {
        let (v0, v1, v2) = (blob("1.0.0"), blob("1.1.0"), blob("1.2.0"));
        assert_eq!(v0.len(), BLOB_BYTES);
        assert_eq!(v1.len(), BLOB_BYTES + 2 * 1024);
        assert_eq!(v2.len(), BLOB_BYTES + 2 * 1024 - 512 + 1536);
        assert_ne!(v0, v1);
        assert_ne!(v1, v2);
        assert_eq!(blob("1.1.0"), v1, "deterministic");
        // Same base: the two releases share most of their bytes (prefix before the first edit,
        // suffix after the last), which is what makes the delta small.
        assert_eq!(v0[..40 * 1024], v1[..40 * 1024]);
        assert_eq!(v0[v0.len() - 64 * 1024..], v1[v1.len() - 64 * 1024..]);
        assert!(changed_span(&v0, &v1) < BLOB_BYTES / 2, "{}", changed_span(&v0, &v1));
        assert_eq!(v1[..8 * 1024], v2[..8 * 1024]);
        assert_eq!(v1[v1.len() - 32 * 1024..], v2[v2.len() - 32 * 1024..]);
    }

    #[test]
    fn factory_versions_before_1_0_0_ship_an_unrelated_pack() {
        let old = blob("0.9.0");
        assert_eq!(old.len(), BLOB_BYTES);
        let v0 = blob("1.0.0");
        let same = old.iter().zip(&v0).filter(|(a, b)| a == b).count();
        assert!(same < BLOB_BYTES / 64, "{same} equal bytes");
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
