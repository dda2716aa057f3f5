//! Walking a tree (never following symlinks) and assembling the report.

use super::error::ScanError;
use super::file_scan::{self, Raw};
use super::nested;
use super::report::{Finding, ScanReport};
use super::rules::RuleDb;
use super::severity::{Policy, Severity, Verdict};
use std::io::Read;
use std::path::Path;

/// Largest file read for scanning; larger files get a finding instead of being skipped silently.
pub const MAX_SCAN_FILE_BYTES: u64 = 512 << 20;

/// Scans a directory tree or a single file with `db`, deciding the verdict with `policy`.
/// Symlinks are reported by the walk but never followed.
pub fn scan_path(target: &Path, db: &RuleDb, policy: &Policy) -> Result<ScanReport, ScanError> {
    scan_path_named(target, &target.display().to_string(), db, policy)
}

/// [`scan_path`] with the name the report shows for the target.
pub(crate) fn scan_path_named(
    target: &Path,
    shown: &str,
    db: &RuleDb,
    policy: &Policy,
) -> Result<ScanReport, ScanError> {
    let meta = std::fs::symlink_metadata(target).map_err(|source| ScanError::Io {
        path: target.into(),
        action: "read the scan target".into(),
        source,
    })?;
    let mut files = Vec::new();
    if meta.is_dir() {
        walk(target, target, &mut files)?;
    } else {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((target.to_path_buf(), name));
    }
    let mut report = ScanReport {
        target: shown.into(),
        rules_name: db.name.clone(),
        rules_version: db.version,
        policy: policy.clone(),
        files_scanned: 0,
        elf_files: Vec::new(),
        findings: Vec::new(),
        verdict: Verdict::Pass,
    };
    scan_files(files, "", 0, db, policy, &mut report)?;
    report.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    report.verdict = if report.findings.iter().any(|f| f.blocking) {
        Verdict::Block
    } else if report.findings.iter().any(|f| f.severity > Severity::Info) {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    Ok(report)
}

/// How deep archives inside archives are opened.
const MAX_NESTING: usize = 3;

/// Scans `files`, naming them `prefix` + relative path; archives found among them are
/// unpacked (under the default limits) and scanned as `archive!/member`.
fn scan_files(
    files: Vec<(std::path::PathBuf, String)>,
    prefix: &str,
    depth: usize,
    db: &RuleDb,
    policy: &Policy,
    report: &mut ScanReport,
) -> Result<(), ScanError> {
    for (path, rel) in files {
        let rel = format!("{prefix}{rel}");
        let mut raws = Vec::new();
        let data = read_bounded(&path)?;
        report.files_scanned += 1;
        match &data {
            None => raws.push(Raw {
                rule: "file-too-large".into(),
                severity: Severity::Medium,
                message: format!("larger than {MAX_SCAN_FILE_BYTES} bytes: not scanned"),
                evidence: None,
                cve: None,
            }),
            Some(data) => {
                file_scan::content(db, &rel, data, &mut raws);
                if data.starts_with(b"\x7fELF")
                    && let Some(elf) = file_scan::elf(db, &rel, data, &mut raws)
                {
                    report.elf_files.push(elf);
                }
            }
        }
        if let Some(data) = &data
            && depth < MAX_NESTING
            && let Some(rule) = nested::archive_rule(data)
        {
            nested::scan_archive(&path, rule, &rel, &mut raws, |root| {
                let mut inner = Vec::new();
                walk(root, root, &mut inner)?;
                scan_files(inner, &format!("{rel}!/"), depth + 1, db, policy, report)
            })?;
        }
        report.findings.extend(raws.into_iter().map(|r| Finding {
            blocking: policy.blocks(&r.rule, r.severity),
            rule: r.rule,
            severity: r.severity,
            path: rel.clone(),
            message: r.message,
            evidence: r.evidence,
            cve: r.cve,
        }));
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, ScanError> {
    let io = |source| ScanError::Io {
        path: path.into(),
        action: "read a file to scan".into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(MAX_SCAN_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    Ok((data.len() as u64 <= MAX_SCAN_FILE_BYTES).then_some(data))
}

/// Regular files under `dir`, sorted, with their `/`-separated paths relative to `root`.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(std::path::PathBuf, String)>,
) -> Result<(), ScanError> {
    let io = |source| ScanError::Io {
        path: dir.into(),
        action: "list a directory to scan".into(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((path, rel));
        }
    }
    Ok(())
}
