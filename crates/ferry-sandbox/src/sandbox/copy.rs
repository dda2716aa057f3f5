//! Copying the device's data directory for the sandbox (files, directories, symlinks; other
//! file types are skipped, since the sandbox has no business with device nodes).

use super::error::SandboxError;
use std::fs;
use std::path::Path;

/// Copies `src` to the new directory `dst`, preserving permission bits.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), SandboxError> {
    let meta =
        fs::symlink_metadata(src).map_err(SandboxError::io(src, "read the data directory"))?;
    fs::create_dir(dst).map_err(SandboxError::io(dst, "create the data copy"))?;
    fs::set_permissions(dst, meta.permissions())
        .map_err(SandboxError::io(dst, "set the data copy's mode"))?;
    let entries = fs::read_dir(src).map_err(SandboxError::io(src, "list the data directory"))?;
    for entry in entries {
        let entry = entry.map_err(SandboxError::io(src, "list the data directory"))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(SandboxError::io(&from, "read a data entry"))?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_file() {
            fs::copy(&from, &to).map_err(SandboxError::io(&from, "copy a data file"))?;
        } else if kind.is_symlink() {
            let target =
                fs::read_link(&from).map_err(SandboxError::io(&from, "read a data symlink"))?;
            std::os::unix::fs::symlink(target, &to)
                .map_err(SandboxError::io(&to, "copy a data symlink"))?;
        }
    }
    Ok(())
}

/// Gives `dir` and everything under it (symlinks themselves, not their targets) to `id`.
pub(crate) fn chown_tree(dir: &Path, id: u32) -> Result<(), SandboxError> {
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).map_err(SandboxError::io(
        dir,
        "give the data copy to the sandbox's root",
    ))?;
    if fs::symlink_metadata(dir)
        .map_err(SandboxError::io(dir, "read the data copy"))?
        .is_dir()
    {
        for entry in fs::read_dir(dir).map_err(SandboxError::io(dir, "list the data copy"))? {
            let entry = entry.map_err(SandboxError::io(dir, "list the data copy"))?;
            chown_tree(&entry.path(), id)?;
        }
    }
    Ok(())
}
