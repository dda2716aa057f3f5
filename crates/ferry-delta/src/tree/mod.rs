//! Deltas between release directories: per-file operations (keep, add, remove, rename, patch,
//! symlink), each carrying the sha256 of the existing file it relies on, pre-verification of
//! every such file before anything is written, and apply into a fresh directory.

mod archive;
mod paths;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diff::{DiffOptions, diff as diff_bytes};
use crate::error::{DeltaError, Result};
pub use paths::{safe_link_target, safe_rel};
use walk::{Entry, hash_file};

/// One operation of a tree delta. Paths are relative, '/'-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TreeOp {
    /// Carry the file over unchanged; it must hash to `sha256`.
    Keep {
        /// Path in both trees.
        path: String,
        /// Expected sha256 of the existing (and new) file.
        sha256: String,
        /// Permission bits in the new tree.
        mode: u32,
    },
    /// Write a file from a blob; when `replaces` is set, the old tree's file at `path` must
    /// hash to it.
    Add {
        /// Path in the new tree.
        path: String,
        /// sha256 of the blob.
        sha256: String,
        /// Permission bits.
        mode: u32,
        /// Index of the blob holding the content.
        blob: usize,
        /// Expected sha256 of the old file this replaces, if any.
        replaces: Option<String>,
    },
    /// The file is not carried over; it must hash to `expected`.
    Remove {
        /// Path in the old tree.
        path: String,
        /// Expected sha256 of the existing file.
        expected: String,
    },
    /// The file moves from `from` to `to` unchanged.
    Rename {
        /// Path in the old tree.
        from: String,
        /// Path in the new tree.
        to: String,
        /// Expected sha256 of the existing file.
        expected: String,
        /// Permission bits in the new tree.
        mode: u32,
    },
    /// The file at `path` is rebuilt from the old file `base` and a Ferry patch.
    Patch {
        /// Path in the new tree.
        path: String,
        /// Path of the old file the patch applies to.
        base: String,
        /// Expected sha256 of the old file.
        expected: String,
        /// sha256 of the rebuilt file.
        sha256: String,
        /// Permission bits.
        mode: u32,
        /// Index of the blob holding the patch.
        blob: usize,
    },
    /// A symbolic link in the new tree (never pointing outside the root).
    Symlink {
        /// Path of the link.
        path: String,
        /// Relative target.
        target: String,
    },
}

impl TreeOp {
    /// The blob the operation reads, if any.
    pub fn blob(&self) -> Option<usize> {
        match self {
            TreeOp::Add { blob, .. } | TreeOp::Patch { blob, .. } => Some(*blob),
            _ => None,
        }
    }

    /// The old-tree file the operation relies on and its expected sha256, if any.
    pub fn existing(&self) -> Option<(&str, &str)> {
        match self {
            TreeOp::Keep { path, sha256, .. } => Some((path, sha256)),
            TreeOp::Add {
                path,
                replaces: Some(h),
                ..
            } => Some((path, h)),
            TreeOp::Remove { path, expected } => Some((path, expected)),
            TreeOp::Rename { from, expected, .. } => Some((from, expected)),
            TreeOp::Patch { base, expected, .. } => Some((base, expected)),
            _ => None,
        }
    }

    /// The path the operation creates in the new tree, if any.
    pub fn output(&self) -> Option<&str> {
        match self {
            TreeOp::Keep { path, .. }
            | TreeOp::Add { path, .. }
            | TreeOp::Patch { path, .. }
            | TreeOp::Symlink { path, .. } => Some(path),
            TreeOp::Rename { to, .. } => Some(to),
            TreeOp::Remove { .. } => None,
        }
    }
}

/// A delta between two release directories; [`TreeDelta::write_to`] stores it as one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDelta {
    /// The operations, in path order.
    pub ops: Vec<TreeOp>,
    /// Patches and added file contents referenced by the operations.
    pub blobs: Vec<Vec<u8>>,
}

impl TreeDelta {
    /// Total bytes of the blobs (what the delta costs beyond its manifest).
    pub fn payload_size(&self) -> u64 {
        self.blobs.iter().map(|b| b.len() as u64).sum()
    }
}

/// An existing file that does not match what the delta expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Path in the old tree.
    pub path: String,
    /// sha256 the delta expects.
    pub expected: String,
    /// What was found: a sha256, or why none could be computed ("missing", "unsafe path: …").
    pub found: String,
}

/// Formats mismatches for an error message.
pub fn describe(m: &[Mismatch]) -> String {
    m.iter()
        .map(|m| format!("{} (expected {}, found {})", m.path, m.expected, m.found))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Computes the delta turning directory `old_dir` into `new_dir`.
pub fn diff(old_dir: &Path, new_dir: &Path) -> Result<TreeDelta> {
    let old = walk::list(old_dir)?;
    let new = walk::list(new_dir)?;
    let mut by_hash: HashMap<&str, Vec<&str>> = HashMap::new();
    for (p, e) in &old {
        if let Entry::File { sha256, .. } = e
            && !new.contains_key(p)
        {
            by_hash.entry(sha256).or_default().push(p);
        }
    }
    let mut delta = TreeDelta::default();
    let mut renamed_from: BTreeMap<String, ()> = BTreeMap::new();
    for (path, entry) in &new {
        let (sha256, mode) = match entry {
            Entry::Link { target } => {
                safe_link_target(path, target)?;
                delta.ops.push(TreeOp::Symlink {
                    path: path.clone(),
                    target: target.clone(),
                });
                continue;
            }
            Entry::File { sha256, mode } => (sha256.clone(), *mode),
        };
        match old.get(path) {
            Some(Entry::File {
                sha256: old_sha, ..
            }) if *old_sha == sha256 => {
                delta.ops.push(TreeOp::Keep {
                    path: path.clone(),
                    sha256,
                    mode,
                });
            }
            Some(Entry::File {
                sha256: old_sha, ..
            }) => {
                let old_bytes = std::fs::read(old_dir.join(path))
                    .map_err(|e| DeltaError::io("reading", old_dir.join(path), e))?;
                let new_bytes = std::fs::read(new_dir.join(path))
                    .map_err(|e| DeltaError::io("reading", new_dir.join(path), e))?;
                let mut patch = Vec::new();
                diff_bytes(&old_bytes, &new_bytes, &DiffOptions::default(), &mut patch)?;
                let blob = delta.blobs.len();
                if patch.len() < new_bytes.len() {
                    delta.blobs.push(patch);
                    delta.ops.push(TreeOp::Patch {
                        path: path.clone(),
                        base: path.clone(),
                        expected: old_sha.clone(),
                        sha256,
                        mode,
                        blob,
                    });
                } else {
                    delta.blobs.push(new_bytes);
                    delta.ops.push(TreeOp::Add {
                        path: path.clone(),
                        sha256,
                        mode,
                        blob,
                        replaces: Some(old_sha.clone()),
                    });
                }
            }
            _ => {
                let from = by_hash.get_mut(sha256.as_str()).and_then(|v| v.pop());
                if let Some(from) = from {
                    renamed_from.insert(from.to_string(), ());
                    delta.ops.push(TreeOp::Rename {
                        from: from.to_string(),
                        to: path.clone(),
                        expected: sha256,
                        mode,
                    });
                } else {
                    let bytes = std::fs::read(new_dir.join(path))
                        .map_err(|e| DeltaError::io("reading", new_dir.join(path), e))?;
                    let blob = delta.blobs.len();
                    delta.blobs.push(bytes);
                    delta.ops.push(TreeOp::Add {
                        path: path.clone(),
                        sha256,
                        mode,
                        blob,
                        replaces: None,
                    });
                }
            }
        }
    }
    for (path, entry) in &old {
        if let Entry::File { sha256, .. } = entry
            && !new.contains_key(path)
            && !renamed_from.contains_key(path)
        {
            delta.ops.push(TreeOp::Remove {
                path: path.clone(),
                expected: sha256.clone(),
            });
        }
    }
    Ok(delta)
}

/// Checks every existing file the delta touches, before anything is written. Returns each
/// file that is missing, unsafe to reach, or whose sha256 differs, with expected and found.
pub fn preverify(old_dir: &Path, delta: &TreeDelta) -> std::result::Result<(), Vec<Mismatch>> {
    let mut bad = Vec::new();
    for op in &delta.ops {
        let Some((path, expected)) = op.existing() else {
            continue;
        };
        let found = match paths::resolve_no_links(old_dir, path) {
            Err(e) => format!("unsafe path: {e}"),
            Ok(full) => match std::fs::symlink_metadata(&full) {
                Err(_) => "missing".to_string(),
                Ok(m) if !m.is_file() => "not a regular file".to_string(),
                Ok(_) => hash_file(&full).unwrap_or_else(|e| format!("unreadable: {e}")),
            },
        };
        if found != expected {
            bad.push(Mismatch {
                path: path.to_string(),
                expected: expected.to_string(),
                found,
            });
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(bad) }
}

/// Summary of a tree apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeApplyStats {
    /// Files written (kept, added, renamed, patched).
    pub files: u64,
    /// Symlinks created.
    pub links: u64,
    /// Files patched.
    pub patched: u64,
}

/// Builds `new_dir` (which must not exist yet) from `old_dir` and the delta. All paths are
/// checked, then every existing file is pre-verified; the tree is written into a temporary
/// directory beside `new_dir` and renamed into place only when complete and verified, so on
/// any error nothing is left behind.
pub fn apply(old_dir: &Path, delta: &TreeDelta, new_dir: &Path) -> Result<TreeApplyStats> {
    validate(delta)?;
    if std::fs::symlink_metadata(new_dir).is_ok() {
        return Err(DeltaError::Tree(format!(
            "target {} already exists; apply writes a fresh directory",
            new_dir.display()
        )));
    }
    preverify(old_dir, delta).map_err(DeltaError::Preverify)?;
    let parent = match new_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".ferry-tree-")
        .tempdir_in(parent)
        .map_err(|e| DeltaError::io("creating staging directory in", parent, e))?;
    let mut stats = TreeApplyStats::default();
    for op in &delta.ops {
        write_op(old_dir, delta, op, staging.path(), &mut stats)?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, new_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        DeltaError::io("renaming the staged tree to", new_dir, e)
    })?;
    Ok(stats)
}

/// Refuses unsafe paths and symlink targets and duplicate outputs.
fn validate(delta: &TreeDelta) -> Result<()> {
    let mut outputs = std::collections::HashSet::new();
    for op in &delta.ops {
        if let Some((p, _)) = op.existing() {
            safe_rel(p)?;
        }
        if let Some(p) = op.output() {
            safe_rel(p)?;
            if !outputs.insert(p) {
                return Err(DeltaError::Tree(format!("path {p:?} is written twice")));
            }
        }
        if let TreeOp::Symlink { path, target } = op {
            safe_link_target(path, target)?;
        }
        if let Some(b) = op.blob()
            && b >= delta.blobs.len()
        {
            return Err(DeltaError::Corrupt(format!(
                "operation refers to missing blob {b}"
            )));
        }
    }
    Ok(())
}

fn write_op(
    old_dir: &Path,
    delta: &TreeDelta,
    op: &TreeOp,
    root: &Path,
    stats: &mut TreeApplyStats,
) -> Result<()> {
    let Some(out_rel) = op.output() else {
        return Ok(());
    };
    let out = paths::resolve_no_links(root, out_rel)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DeltaError::io("creating directory", dir, e))?;
        // A directory created above may not be a link planted by an earlier operation.
        paths::resolve_no_links(root, out_rel)?;
    }
    let (mode, expected_new) = match op {
        TreeOp::Symlink { target, .. } => {
            std::os::unix::fs::symlink(target, &out)
                .map_err(|e| DeltaError::io("creating symlink", &out, e))?;
            stats.links += 1;
            return Ok(());
        }
        TreeOp::Keep { path, sha256, mode }
        | TreeOp::Rename {
            from: path,
            expected: sha256,
            mode,
            ..
        } => {
            let src = paths::resolve_no_links(old_dir, path)?;
            std::fs::copy(&src, &out).map_err(|e| DeltaError::io("copying", &src, e))?;
            (*mode, sha256)
        }
        TreeOp::Add {
            blob, mode, sha256, ..
        } => {
            std::fs::write(&out, &delta.blobs[*blob])
                .map_err(|e| DeltaError::io("writing", &out, e))?;
            (*mode, sha256)
        }
        TreeOp::Patch {
            base,
            blob,
            mode,
            sha256,
            ..
        } => {
            let src = paths::resolve_no_links(old_dir, base)?;
            let old = std::fs::File::open(&src).map_err(|e| DeltaError::io("opening", &src, e))?;
            let file =
                std::fs::File::create(&out).map_err(|e| DeltaError::io("creating", &out, e))?;
            crate::apply::apply(
                std::io::BufReader::new(old),
                Cursor::new(&delta.blobs[*blob]),
                file,
            )?;
            stats.patched += 1;
            (*mode, sha256)
        }
        TreeOp::Remove { .. } => return Ok(()),
    };
    let found = hash_file(&out)?;
    if &found != expected_new {
        return Err(DeltaError::Preverify(vec![Mismatch {
            path: out_rel.to_string(),
            expected: expected_new.clone(),
            found,
        }]));
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| DeltaError::io("setting permissions of", &out, e))?;
    stats.files += 1;
    Ok(())
}
