//! Helpers for target entries and their hash-prefixed download paths.

use super::error::TufError;
use super::hashes::{self, Digests};
use super::metadata::TargetFile;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A target entry for a file of `length` bytes with sha256 `sha256_hex`, carrying `custom`
/// (Ferry uses `{"component":..,"version":..,"device_types":[..]}`).
///
/// `_name` is the target name the entry will be published under; it is the key of the
/// targets map rather than part of the entry, and [`super::Repository::set_targets`] checks it.
pub fn target_file(_name: &str, length: u64, sha256_hex: &str, custom: Value) -> TargetFile {
    TargetFile {
        length,
        hashes: BTreeMap::from([("sha256".to_string(), sha256_hex.to_ascii_lowercase())]),
        custom,
        unrecognized: Map::new(),
    }
}

/// The path a consistent-snapshot repository serves target `name` under: `dir/HASH.basename`
/// (e.g. `main/1.2.0.ferry` → `main/<sha256>.1.2.0.ferry`), as python-tuf downloads it.
pub fn target_path_with_hash(name: &str, sha256_hex: &str) -> String {
    let hash = sha256_hex.to_ascii_lowercase();
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{hash}.{base}"),
        None => format!("{hash}.{name}"),
    }
}

/// Checks a target file's bytes read from `reader` against its signed description: exact
/// length and every listed hash (sha256 and sha512; any other algorithm is an error, as is an
/// empty hash list). `name` is used in errors.
pub fn check_target_reader(
    name: &str,
    target: &TargetFile,
    reader: impl std::io::Read,
) -> Result<(), TufError> {
    let what = format!("target {name}");
    let observed = Digests::of_reader(&what, reader)?;
    hashes::check(&what, &observed, Some(target.length), Some(&target.hashes))
}

/// Why `name` cannot be a published target name, if it cannot: it must be a relative path of
/// non-empty segments without `.` or `..`, backslashes or control characters.
pub(crate) fn invalid_target_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.starts_with('/') {
        return Some("the name must be a relative path (no leading /)".into());
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return Some("the name contains a control character or a backslash".into());
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("every path segment must be non-empty and not . or ..".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_prefix_goes_on_the_basename() {
        assert_eq!(
            target_path_with_hash("main/1.2.0.ferry", "AB"),
            "main/ab.1.2.0.ferry"
        );
        assert_eq!(target_path_with_hash("a/b/c.bin", "00"), "a/b/00.c.bin");
        assert_eq!(target_path_with_hash("top.bin", "ff"), "ff.top.bin");
    }

    #[test]
    fn target_file_lists_sha256_and_custom() {
        let t = target_file("main/1.0.0.ferry", 10, "ABCD", json!({"component": "main"}));
        assert_eq!(t.length, 10);
        assert_eq!(t.hashes["sha256"], "abcd");
        assert_eq!(t.custom["component"], "main");
    }

    #[test]
    fn refuses_unsafe_target_names() {
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\nb"] {
            assert!(invalid_target_name(bad).is_some(), "{bad:?} accepted");
        }
        assert!(invalid_target_name("main/1.2.0.ferry").is_none());
    }
}
