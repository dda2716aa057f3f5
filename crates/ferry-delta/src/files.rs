//! File-level helpers: nothing partial ever appears at the output path.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use crate::apply::{ApplyStats, apply};
use crate::diff::{DiffOptions, DiffStats, diff};
use crate::error::{DeltaError, Result};

/// Diffs the file `old` against `new` and writes the patch to `patch` (atomically).
pub fn diff_files(old: &Path, new: &Path, patch: &Path, opts: &DiffOptions) -> Result<DiffStats> {
    let old_bytes = std::fs::read(old).map_err(|e| DeltaError::io("reading old file", old, e))?;
    let new_bytes = std::fs::read(new).map_err(|e| DeltaError::io("reading new file", new, e))?;
    write_atomically(patch, |w| diff(&old_bytes, &new_bytes, opts, w))
}

/// Applies the patch file `patch` to the file `old`, writing `out` atomically: the new file is
/// built in a temporary file beside `out` and renamed only after its hash verified.
pub fn apply_files(old: &Path, patch: &Path, out: &Path) -> Result<ApplyStats> {
    let old_file = File::open(old).map_err(|e| DeltaError::io("opening old file", old, e))?;
    let patch_file = File::open(patch).map_err(|e| DeltaError::io("opening patch", patch, e))?;
    write_atomically(out, |w| apply(BufReader::new(old_file), patch_file, w))
}

/// Runs `produce` into a temporary file in `dest`'s directory, fsyncs and renames it to `dest`.
/// On any error the temporary file is removed and `dest` is untouched.
pub(crate) fn write_atomically<T>(
    dest: &Path,
    produce: impl FnOnce(&mut BufWriter<&mut File>) -> Result<T>,
) -> Result<T> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferry-delta-")
        .tempfile_in(dir)
        .map_err(|e| DeltaError::io("creating a temporary file in", dir, e))?;
    let value = {
        let mut w = BufWriter::new(tmp.as_file_mut());
        let value = produce(&mut w)?;
        w.flush().map_err(|e| DeltaError::io("writing", dest, e))?;
        value
    };
    tmp.as_file()
        .sync_all()
        .map_err(|e| DeltaError::io("syncing", dest, e))?;
    tmp.persist(dest)
        .map_err(|e| DeltaError::io("renaming into place", dest, e.error))?;
    Ok(value)
}
