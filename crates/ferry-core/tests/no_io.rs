//! Proves the architecture invariant "ferry-core does no I/O, reads no clock, draws no random numbers".

use std::fs;
use std::path::Path;

const ALLOWED_DEPS: &[&str] = &["serde", "serde_json", "semver", "thiserror"];
/// Derive-only crates allowed solely as `optional = true` deps behind a feature that only the
/// server enables (`openapi`: utoipa's `ToSchema` derives for the OpenAPI document). They add
/// schema descriptions, never I/O; agents and other users of ferry-core never compile them.
const OPTIONAL_DERIVE_DEPS: &[&str] = &["utoipa"];
const FORBIDDEN_IN_SOURCE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::io",
    "std::env",
    "std::thread",
    "SystemTime",
    "Instant::now",
    "tokio",
    "reqwest",
    "rand::",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn core_depends_only_on_pure_crates() {
    let manifest: toml_like::Manifest = toml_like::parse(&fs::read_to_string(manifest_dir().join("Cargo.toml")).unwrap());
    for (dep, line) in manifest.dependencies.iter().zip(&manifest.lines) {
        if OPTIONAL_DERIVE_DEPS.contains(&dep.as_str()) {
            assert!(line.replace(' ', "").contains("optional=true"), "ferry-core's '{dep}' must stay `optional = true` (feature `openapi`), found: {line}");
            continue;
        }
        assert!(ALLOWED_DEPS.contains(&dep.as_str()), "ferry-core depends on '{dep}', which is not on the pure allowlist {ALLOWED_DEPS:?}");
    }
    assert!(!manifest.dependencies.is_empty(), "parsed no dependencies: the check would be vacuous");
}

#[test]
fn core_source_uses_no_io_clock_or_randomness() {
    let mut checked = 0;
    for entry in fs::read_dir(manifest_dir().join("src")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for bad in FORBIDDEN_IN_SOURCE {
                assert!(!line.contains(bad), "{}:{}: uses {bad}: ferry-core must stay pure", path.display(), n + 1);
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} source files found");
}

/// Minimal reader for the `[dependencies]` table (ferry-core must not even depend on a TOML parser).
mod toml_like {
    pub struct Manifest {
        pub dependencies: Vec<String>,
        /// The full manifest line of each dependency, same order.
        pub lines: Vec<String>,
    }
    pub fn parse(text: &str) -> Manifest {
        let mut in_deps = false;
        let mut dependencies = Vec::new();
        let mut lines = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line == "[dependencies]";
                continue;
            }
            if in_deps {
                if let Some((name, _)) = line.split_once(|c| c == '=' || c == '.') {
                    let name = name.trim();
                    if !name.is_empty() && !name.starts_with('#') {
                        dependencies.push(name.to_string());
                        lines.push(line.to_string());
                    }
                }
            }
        }
        Manifest { dependencies, lines }
    }
}
