//! Building an artifact from a directory.

use super::error::ArtifactError;
use super::hashing_reader::{HashingReader, digest};
use super::manifest::{BuildSpec, Hooks, LivePatch, Manifest, PayloadEntry};
use super::payload_path::unsafe_reason;
use super::writer::{append_file, header, write_head};
use super::{FORMAT, MAX_MANIFEST_BYTES, PAYLOAD_PREFIX};
use crate::atomic_file::AtomicFile;
use crate::keys::SigningKey;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A regular file found under the source directory.
struct SourceFile {
    rel: String,
    abs: PathBuf,
    mode: u32,
}

/// Packs every regular file under `src_dir` into a new artifact at `out` (written atomically)
/// and returns its manifest. With `key`, the artifact is signed; without, it carries an empty
/// signature list (sign it later with [`super::sign`]).
///
/// Payload modes keep the permission bits (0o777) only. Symbolic links, device nodes, FIFOs,
/// sockets and non-UTF-8 names are refused; empty directories are not recorded. Hooks must
/// name files in `src_dir` by relative path (a leading `./` is dropped).
pub fn build(
    src_dir: &Path,
    spec: BuildSpec,
    out: &Path,
    key: Option<&SigningKey>,
) -> Result<Manifest, ArtifactError> {
    build_with(src_dir, spec, None, out, key)
}

/// Like [`build`], with the manifest's `live_patch` field: `src_dir` then holds only the patch
/// bundle named by `live_patch.bundle`, and `spec.version` is `<patches>+lpN`.
pub fn build_with(
    src_dir: &Path,
    spec: BuildSpec,
    live_patch: Option<LivePatch>,
    out: &Path,
    key: Option<&SigningKey>,
) -> Result<Manifest, ArtifactError> {
    let src = fs::canonicalize(src_dir).map_err(|source| ArtifactError::Io {
        path: src_dir.into(),
        action: "open the source directory".into(),
        source,
    })?;
    if !src.is_dir() {
        return Err(ArtifactError::Source {
            file: src_dir.into(),
            reason: "not a directory".into(),
        });
    }
    refuse_output_inside(&src, out)?;
    let mut files = Vec::new();
    collect(&src, "", &mut files)?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    if files.is_empty() {
        return Err(ArtifactError::Source {
            file: src_dir.into(),
            reason: "holds no regular files to pack".into(),
        });
    }

    let mut payloads = Vec::with_capacity(files.len());
    for f in &files {
        let (length, sha256) =
            File::open(&f.abs)
                .and_then(digest)
                .map_err(|source| ArtifactError::Io {
                    path: f.abs.clone(),
                    action: "read the file".into(),
                    source,
                })?;
        payloads.push(PayloadEntry {
            path: f.rel.clone(),
            sha256,
            length,
            mode: f.mode,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        component: spec.component,
        version: spec.version,
        device_types: spec.device_types,
        payloads,
        hooks: Hooks {
            pre_install: spec.hooks.pre_install.map(normalize_hook),
            post_install: spec.hooks.post_install.map(normalize_hook),
        },
        live_patch,
    };
    manifest.validate(src_dir)?;
    let mut manifest_bytes =
        serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    manifest_bytes.push(b'\n');
    if manifest_bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ArtifactError::TooLarge {
            path: out.into(),
            entry: super::MANIFEST_NAME,
            size: manifest_bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let signatures: Vec<_> = key.map(|k| k.sign(&manifest_bytes)).into_iter().collect();

    let out_io = |action: &'static str| {
        move |source| ArtifactError::Io {
            path: out.into(),
            action: action.into(),
            source,
        }
    };
    let file = AtomicFile::create(out, 0o644).map_err(out_io("create the artifact"))?;
    let mut builder = tar::Builder::new(file);
    write_head(&mut builder, &manifest_bytes, &signatures).map_err(out_io("write the manifest"))?;
    for (f, p) in files.iter().zip(&manifest.payloads) {
        let source = File::open(&f.abs).map_err(|source| ArtifactError::Io {
            path: f.abs.clone(),
            action: "read the file".into(),
            source,
        })?;
        let mut data = HashingReader::new(source.take(p.length));
        append_file(
            &mut builder,
            &format!("{PAYLOAD_PREFIX}{}", p.path),
            p.length,
            p.mode,
            &mut data,
        )
        .map_err(out_io("write a payload"))?;
        if data.finish() != (p.length, p.sha256.clone()) {
            return Err(ArtifactError::Source {
                file: f.abs.clone(),
                reason: "changed while the artifact was being built; build again".into(),
            });
        }
    }
    let file = builder
        .into_inner()
        .map_err(out_io("finish the artifact"))?;
    file.commit().map_err(out_io("write the artifact"))?;
    Ok(manifest)
}

/// A hook as written on a command line (`./hooks/pre.sh`) → its payload path (`hooks/pre.sh`).
fn normalize_hook(hook: String) -> String {
    let mut path = hook.as_str();
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path.to_string()
}

/// Refuses an output path inside the source directory (it would pack itself).
fn refuse_output_inside(src: &Path, out: &Path) -> Result<(), ArtifactError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = fs::canonicalize(parent).map_err(|source| ArtifactError::Io {
        path: out.into(),
        action: "find the output directory".into(),
        source,
    })?;
    if parent.starts_with(src) {
        return Err(ArtifactError::OutputInsideSource {
            src: src.into(),
            out: out.into(),
        });
    }
    Ok(())
}

/// Collects the regular files under `dir` (whose path relative to the source root is `prefix`).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<SourceFile>) -> Result<(), ArtifactError> {
    let io_err = |path: &Path, action: &str| {
        let (path, action) = (path.to_path_buf(), action.to_string());
        move |source| ArtifactError::Io {
            path,
            action,
            source,
        }
    };
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list the directory"))? {
        let entry = entry.map_err(io_err(dir, "list the directory"))?;
        let abs = entry.path();
        let refuse = |reason: &str| ArtifactError::Source {
            file: abs.clone(),
            reason: reason.into(),
        };
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| refuse("the file name is not UTF-8"))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if let Some(reason) = unsafe_reason(&rel) {
            return Err(refuse(reason));
        }
        let meta = fs::symlink_metadata(&abs).map_err(io_err(&abs, "read the file's metadata"))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(refuse(
                "is a symbolic link; artifacts carry regular files only — copy the file it points to instead",
            ));
        } else if kind.is_dir() {
            collect(&abs, &rel, out)?;
        } else if kind.is_file() {
            if header(&format!("{PAYLOAD_PREFIX}{rel}"), 0, 0).is_err() {
                return Err(refuse(
                    "the path is too long for the artifact's tar format (at most 100 bytes per file name and 255 in all)",
                ));
            }
            out.push(SourceFile {
                rel,
                abs,
                mode: meta.permissions().mode() & 0o777,
            });
        } else {
            return Err(refuse(
                "is a device node, FIFO or socket; artifacts carry regular files only",
            ));
        }
    }
    Ok(())
}
