//! Symlink target resolution against the unpacked root. Absolute targets are read as
//! relative to the root (as inside the firmware's own root filesystem).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

/// Most symlinks followed while resolving one path (as the kernel's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// Whether `target` of a link at `link` (relative to the root) stays inside the root when
/// read lexically, without following other links.
pub(crate) fn lexically_inside(link: &Path, target: &[u8]) -> bool {
    let mut stack: Vec<&[u8]> = Vec::new();
    if target.first() != Some(&b'/')
        && let Some(parent) = link.parent()
    {
        stack.extend(parent.components().map(|c| c.as_os_str().as_bytes()));
    }
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            p => stack.push(p),
        }
    }
    true
}

/// Whether the symlink at `rel` resolves, following every link in its chain on disk, to a
/// path inside `root`. Dangling targets inside the root are fine; loops are not.
pub(crate) fn resolve_inside(root: &Path, rel: &Path) -> bool {
    let mut queue: VecDeque<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            _ => None,
        })
        .collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if stack.pop().is_none() {
                    return false;
                }
                continue;
            }
            _ => stack.push(part),
        }
        let here: std::path::PathBuf = stack.iter().collect();
        let on_disk = root.join(&here);
        let Ok(meta) = std::fs::symlink_metadata(&on_disk) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > MAX_HOPS {
            return false;
        }
        let Ok(target) = std::fs::read_link(&on_disk) else {
            return false;
        };
        stack.pop();
        let bytes = target.into_os_string().into_vec();
        if bytes.first() == Some(&b'/') {
            stack.clear();
        }
        for (i, piece) in bytes.split(|&b| b == b'/').enumerate() {
            queue.insert(i, OsString::from_vec(piece.to_vec()));
        }
    }
    true
}
