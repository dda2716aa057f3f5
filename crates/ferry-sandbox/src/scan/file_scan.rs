//! Scanning one file: content rules on every file; ELF analysis, disassembly, hardening,
//! imports and code signatures on ELF files.

use super::disasm::{SeqRule, disassemble, normalize};
use super::elf::{ElfFacts, ElfKind, Fortify, Relro, facts};
use super::pattern::BytePattern;
use super::report::ElfReport;
use super::rules::RuleDb;
use super::severity::Severity;

/// A finding before the policy is applied.
pub(crate) struct Raw {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub evidence: Option<String>,
    pub cve: Option<String>,
}

fn raw(rule: &str, severity: Severity, message: String, evidence: Option<String>) -> Raw {
    Raw {
        rule: rule.into(),
        severity,
        message,
        evidence,
        cve: None,
    }
}

/// Content rules (regexes) over the file bytes.
pub(crate) fn content(db: &RuleDb, name: &str, data: &[u8], out: &mut Vec<Raw>) {
    for rule in &db.content {
        if !rule.paths.is_empty() && !rule.paths.iter().any(|s| name.ends_with(s.as_str())) {
            continue;
        }
        let re = regex::bytes::Regex::new(&rule.regex).expect("validated when the db was parsed");
        let hits: Vec<_> = re.find_iter(data).take(5).collect();
        if let Some(first) = hits.first() {
            let text = String::from_utf8_lossy(first.as_bytes());
            let shown: String = if rule.redact {
                let keep: String = text.chars().take(4).collect();
                format!("{keep}{} ({} chars)", "*".repeat(8), text.chars().count())
            } else {
                text.chars().take(60).collect()
            };
            out.push(Raw {
                rule: rule.id.clone(),
                severity: rule.severity,
                message: rule.message.clone(),
                evidence: Some(format!(
                    "{} match(es), first at byte offset {:#x}: {shown}",
                    hits.len(),
                    first.start()
                )),
                cve: rule.cve.clone(),
            });
        }
    }
}

/// ELF analysis; `None` (and a finding) if the file has the magic but does not parse.
pub(crate) fn elf(db: &RuleDb, path: &str, data: &[u8], out: &mut Vec<Raw>) -> Option<ElfReport> {
    let parsed = match goblin::elf::Elf::parse(data) {
        Ok(e) => e,
        Err(e) => {
            out.push(raw(
                "elf-malformed",
                db.hardening.malformed_elf,
                format!("has the ELF magic but does not parse: {e}"),
                None,
            ));
            return None;
        }
    };
    let f = facts(&parsed, data.len());
    let thumb = f.arch == "arm" && parsed.header.e_entry & 1 == 1;
    let seq_rules: Vec<SeqRule> = db
        .code
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.instructions.is_empty() && arch_applies(&r.arch, &f.arch))
        .map(|(index, r)| SeqRule {
            index,
            steps: r.instructions.iter().map(|s| normalize(s)).collect(),
        })
        .collect();
    let dis = disassemble(&f, data, thumb, &seq_rules);
    hardening(db, &f, out);
    imports(db, &f, &dis.calls, out);
    for (index, addr) in &dis.matches {
        let rule = &db.code[*index];
        out.push(Raw {
            rule: rule.id.clone(),
            severity: rule.severity,
            message: rule.message.clone(),
            evidence: Some(format!("instruction sequence at {addr:#x}")),
            cve: rule.cve.clone(),
        });
    }
    byte_signatures(db, &f, data, out);
    Some(ElfReport {
        path: path.into(),
        arch: f.arch.clone(),
        class: f.class,
        endian: f.endian,
        kind: f.kind,
        hardening: f.hardening.clone(),
        disassembly: dis.summary,
    })
}

fn arch_applies(archs: &[String], arch: &str) -> bool {
    archs.is_empty() || archs.iter().any(|a| a == arch)
}

fn hardening(db: &RuleDb, f: &ElfFacts, out: &mut Vec<Raw>) {
    if !matches!(
        f.kind,
        ElfKind::Executable | ElfKind::PieExecutable | ElfKind::SharedLibrary
    ) {
        return;
    }
    let h = &f.hardening;
    let r = &db.hardening;
    if !h.nx {
        out.push(raw(
            "hardening-nx",
            r.missing_nx,
            "executable stack: no PT_GNU_STACK, or PT_GNU_STACK with PF_X (NX disabled)".into(),
            None,
        ));
    }
    if h.rwx_segments > 0 {
        out.push(raw(
            "hardening-rwx",
            r.rwx_segment,
            format!(
                "{} loadable segment(s) are writable and executable at once (RWX)",
                h.rwx_segments
            ),
            None,
        ));
    }
    if h.pie == Some(false) {
        out.push(raw(
            "hardening-pie",
            r.not_pie,
            "not position independent (ET_EXEC): loaded at a fixed address, defeating ASLR".into(),
            None,
        ));
    }
    match h.relro {
        Relro::None => out.push(raw(
            "hardening-relro",
            r.no_relro,
            "no RELRO: the GOT and other relocated data stay writable".into(),
            None,
        )),
        Relro::Partial => out.push(raw(
            "hardening-relro",
            r.partial_relro,
            "partial RELRO: lazy binding keeps the PLT GOT writable (link with -z now)".into(),
            None,
        )),
        Relro::Full => {}
    }
    if !h.canary && !f.code.is_empty() {
        out.push(raw(
            "hardening-canary",
            r.no_canary,
            "no stack canary (__stack_chk_fail absent): build with -fstack-protector-strong".into(),
            None,
        ));
    }
    if h.fortify == Fortify::NotFortified {
        out.push(raw("hardening-fortify", r.no_fortify, "fortifiable libc calls without any __*_chk variant: build with -D_FORTIFY_SOURCE=2 -O2".into(), None));
    }
}

fn imports(db: &RuleDb, f: &ElfFacts, calls: &[(u64, String)], out: &mut Vec<Raw>) {
    for rule in &db.import {
        for sym in &rule.symbols {
            let imported = f.imports.contains(sym);
            let linked_in = f.statically_linked && f.defined_functions.contains(sym);
            if !imported && !linked_in {
                continue;
            }
            let sites: Vec<String> = calls
                .iter()
                .filter(|(_, s)| s == sym)
                .map(|(a, _)| format!("{a:#x}"))
                .collect();
            let how = if imported {
                "imports"
            } else {
                "statically links"
            };
            let evidence = (!sites.is_empty()).then(|| format!("called at {}", sites.join(", ")));
            out.push(raw(
                &rule.id,
                rule.severity,
                format!("{how} {sym}(): {}", rule.message),
                evidence,
            ));
        }
    }
}

fn byte_signatures(db: &RuleDb, f: &ElfFacts, data: &[u8], out: &mut Vec<Raw>) {
    for rule in db.code.iter().filter(|r| arch_applies(&r.arch, &f.arch)) {
        let Some(text) = &rule.bytes else { continue };
        let pattern = BytePattern::parse(text).expect("validated when the db was parsed");
        let mut hits = Vec::new();
        for region in &f.code {
            for off in pattern.find_all(&data[region.offset..region.offset + region.len]) {
                hits.push(format!(
                    "{}+{off:#x} (vaddr {:#x})",
                    region.name,
                    region.vaddr + off as u64
                ));
            }
        }
        if !hits.is_empty() {
            out.push(Raw {
                rule: rule.id.clone(),
                severity: rule.severity,
                message: rule.message.clone(),
                evidence: Some(format!(
                    "byte signature at {}",
                    hits.into_iter().take(5).collect::<Vec<_>>().join(", ")
                )),
                cve: rule.cve.clone(),
            });
        }
    }
}
