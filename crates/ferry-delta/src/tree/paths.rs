//! Path safety for tree deltas: every path is relative, made of plain components, and never
//! reached through a symlink; symlink targets never leave the root.

use std::path::{Component, Path, PathBuf};

use crate::error::{DeltaError, Result};

/// Checks a delta path ("dir/file", '/'-separated) and returns it as a relative path.
pub fn safe_rel(path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(DeltaError::Tree("empty path".into()));
    }
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(DeltaError::Tree(format!(
                    "path {path:?} climbs out of the root with '..'"
                )));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(DeltaError::Tree(format!("path {path:?} is absolute")));
            }
            Component::CurDir => {
                return Err(DeltaError::Tree(format!(
                    "path {path:?} is not normalised ('.')"
                )));
            }
        }
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(DeltaError::Tree(format!(
            "path {path:?} holds a backslash or NUL"
        )));
    }
    Ok(out)
}

/// Checks that a symlink at `link` (a safe relative path) pointing at `target` stays in the root.
pub fn safe_link_target(link: &str, target: &str) -> Result<()> {
    let t = Path::new(target);
    if t.is_absolute() {
        return Err(DeltaError::Tree(format!(
            "symlink {link:?} points at absolute path {target:?}"
        )));
    }
    let mut depth: i64 = safe_rel(link)?.components().count() as i64 - 1;
    for c in t.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(DeltaError::Tree(format!(
                    "symlink {link:?} points at absolute path {target:?}"
                )));
            }
        }
        if depth < 0 {
            return Err(DeltaError::Tree(format!(
                "symlink {link:?} -> {target:?} escapes the root"
            )));
        }
    }
    Ok(())
}

/// Resolves `rel` under `root`, refusing any component that is a symlink (so an existing link
/// cannot redirect a read or write outside the root). A missing file is not an error here.
pub fn resolve_no_links(root: &Path, rel: &str) -> Result<PathBuf> {
    let rel_path = safe_rel(rel)?;
    let mut cur = root.to_path_buf();
    for c in rel_path.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(DeltaError::Tree(format!(
                    "path {rel:?} goes through symlink {}",
                    cur.display()
                )));
            }
            _ => {}
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths_only() {
        assert!(safe_rel("bin/app").is_ok());
        assert!(safe_rel("../etc/passwd").is_err());
        assert!(safe_rel("bin/../../x").is_err());
        assert!(safe_rel("/etc/passwd").is_err());
        assert!(safe_rel("").is_err());
    }

    #[test]
    fn link_targets_stay_inside() {
        assert!(safe_link_target("lib/libfoo.so", "libfoo.so.1").is_ok());
        assert!(safe_link_target("lib/a", "../bin/b").is_ok());
        assert!(safe_link_target("lib/a", "../../etc/passwd").is_err());
        assert!(safe_link_target("a", "/etc/passwd").is_err());
    }
}
