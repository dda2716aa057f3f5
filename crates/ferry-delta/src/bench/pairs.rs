//! The benchmark corpus: old/new file pairs fetched from the npm registry into a cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{DeltaError, Result};

/// One old → new pair of the corpus.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Short name shown in the table.
    pub name: &'static str,
    /// npm package name.
    pub package: &'static str,
    /// Old version.
    pub old_version: &'static str,
    /// New version.
    pub new_version: &'static str,
    /// File inside the package tarball.
    pub file: &'static str,
}

/// The pairs measured by `ferry delta bench`.
pub const PAIRS: &[Pair] = &[
    Pair {
        name: "esbuild-x64",
        package: "@esbuild/linux-x64",
        old_version: "0.28.1",
        new_version: "0.28.2",
        file: "package/bin/esbuild",
    },
    Pair {
        name: "esbuild-arm",
        package: "@esbuild/linux-arm",
        old_version: "0.28.1",
        new_version: "0.28.2",
        file: "package/bin/esbuild",
    },
    Pair {
        name: "esbuild-arm64",
        package: "@esbuild/linux-arm64",
        old_version: "0.28.1",
        new_version: "0.28.2",
        file: "package/bin/esbuild",
    },
    Pair {
        name: "typescript-js",
        package: "typescript",
        old_version: "5.8.3",
        new_version: "5.9.2",
        file: "package/lib/typescript.js",
    },
];

impl Pair {
    /// Fetches (once) both versions into `cache` and returns the paths of the old and new file.
    pub fn fetch(&self, cache: &Path) -> Result<(PathBuf, PathBuf)> {
        Ok((
            self.fetch_one(cache, self.old_version)?,
            self.fetch_one(cache, self.new_version)?,
        ))
    }

    fn fetch_one(&self, cache: &Path, version: &str) -> Result<PathBuf> {
        let dir = cache.join(format!(
            "{}-{version}",
            self.package.replace('/', "_").trim_start_matches('@')
        ));
        let file = dir.join(self.file);
        if file.is_file() {
            return Ok(file);
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| DeltaError::io("creating cache directory", &dir, e))?;
        let spec = format!("{}@{version}", self.package);
        let out = Command::new("npm")
            .args(["pack", &spec, "--silent", "--pack-destination"])
            .arg(&dir)
            .output()
            .map_err(|e| {
                DeltaError::Bench(format!(
                    "running `npm pack {spec}` (is npm installed?): {e}"
                ))
            })?;
        if !out.status.success() {
            return Err(DeltaError::Bench(format!(
                "`npm pack {spec}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let tgz = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let status = Command::new("tar")
            .arg("xzf")
            .arg(dir.join(&tgz))
            .arg("-C")
            .arg(&dir)
            .arg(self.file)
            .status()
            .map_err(|e| DeltaError::Bench(format!("running tar: {e}")))?;
        if !status.success() || !file.is_file() {
            return Err(DeltaError::Bench(format!("{tgz} has no {}", self.file)));
        }
        Ok(file)
    }
}
