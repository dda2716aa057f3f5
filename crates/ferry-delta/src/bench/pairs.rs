//! The benchmark corpus: old/new file pairs fetched from the npm registry into a cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{DeltaError, Result};

/// One old → new pair of the corpus.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Short name shown in the table.
    pub name: &'static str,
    /// npm package name; empty for a pair built locally into the cache.
    pub package: &'static str,
    /// Old version (npm), or the old file's path in the cache (local pair).
    pub old_version: &'static str,
    /// New version (npm), or the new file's path in the cache (local pair).
    pub new_version: &'static str,
    /// File inside the package tarball (npm), or what builds the local pair.
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
        name: "cortex-m-bin",
        package: "",
        old_version: "firmware-1/fw.bin",
        new_version: "firmware-2/fw.bin",
        file: "bench/firmware/build.sh (run by bench/delta.sh)",
    },
    Pair {
        name: "cortex-m-elf",
        package: "",
        old_version: "firmware-1/fw.elf",
        new_version: "firmware-2/fw.elf",
        file: "bench/firmware/build.sh (run by bench/delta.sh)",
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
    /// A local pair is only looked up: `None` when it has not been built.
    pub fn fetch(&self, cache: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
        if self.package.is_empty() {
            let (old, new) = (cache.join(self.old_version), cache.join(self.new_version));
            return Ok((old.is_file() && new.is_file()).then_some((old, new)));
        }
        Ok(Some((
            self.fetch_one(cache, self.old_version)?,
            self.fetch_one(cache, self.new_version)?,
        )))
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
