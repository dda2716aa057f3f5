//! Building the demo server (v1, v2 and variants) with the system C compiler.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Source of the demo server, version 1 (with the handler bug).
pub const SERVER_V1_C: &str = include_str!("../../demo/server_v1.c");
/// Source of the demo server, version 2 (the fix, a new main loop, a new `struct stats` layout
/// and the patch author's helper).
pub const SERVER_V2_C: &str = include_str!("../../demo/server_v2.c");

/// Compiler flags the demo is built with: an ordinary optimised build with per-function and
/// per-variable sections, debug information and frame pointers.
pub const CFLAGS: &[&str] = &[
    "-O2",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-omit-frame-pointer",
    "-pthread",
];

/// The demo binaries.
#[derive(Debug, Clone)]
pub struct DemoBinaries {
    /// Version 1.
    pub v1: PathBuf,
    /// Version 2.
    pub v2: PathBuf,
    /// Version 2 whose helper faults.
    pub v2_faulty_helper: PathBuf,
    /// Version 2 without the helper (the main loop is moved by restarting it at its entry).
    pub v2_no_helper: PathBuf,
    /// Version 1 built with a different define: same code paths, another build id.
    pub v1_other_build: PathBuf,
}

/// Compiles `source` as `dir/<variant>/server.c` (the same file name in every variant, so that
/// file-local symbols match) into `dir/<variant>/server`.
fn compile(dir: &Path, variant: &str, source: &str, defines: &[&str]) -> Result<PathBuf> {
    let vdir = dir.join(variant);
    std::fs::create_dir_all(&vdir).map_err(|e| Error::io(&vdir, e))?;
    let src = vdir.join("server.c");
    std::fs::write(&src, source).map_err(|e| Error::io(&src, e))?;
    let out = vdir.join("server");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .args(defines)
        .arg("-o")
        .arg(&out)
        .arg("server.c")
        .current_dir(&vdir)
        .output()
        .map_err(|e| Error::Demo(format!("cannot run the C compiler `{cc}`: {e}; install gcc or set CC")))?;
    if !status.status.success() {
        return Err(Error::Demo(format!(
            "{cc} failed on {}: {}",
            src.display(),
            String::from_utf8_lossy(&status.stderr)
        )));
    }
    Ok(out)
}

/// Builds all demo variants into `dir`.
pub fn build_demo(dir: &Path) -> Result<DemoBinaries> {
    Ok(DemoBinaries {
        v1: compile(dir, "v1", SERVER_V1_C, &[])?,
        v2: compile(dir, "v2", SERVER_V2_C, &[])?,
        v2_faulty_helper: compile(dir, "v2-faulty", SERVER_V2_C, &["-DFERRY_FAULTY_HELPER"])?,
        v2_no_helper: compile(dir, "v2-no-helper", SERVER_V2_C, &["-DFERRY_NO_HELPER"])?,
        v1_other_build: compile(dir, "v1-other", SERVER_V1_C, &["-DFERRY_OTHER_BUILD=1"])?,
    })
}
