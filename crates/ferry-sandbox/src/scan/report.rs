//! The scan report: JSON through serde, a human report through `Display`.

use super::disasm::Disassembly;
use super::elf::{ElfKind, Endian, Fortify, Hardening, Relro};
use super::severity::{Policy, Severity, Verdict};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule id (`import-gets`, `hardening-nx`, `pem-private-key`, …).
    pub rule: String,
    /// Severity from the rule database.
    pub severity: Severity,
    /// Whether the policy makes this finding block the install.
    pub blocking: bool,
    /// File, relative to the scanned root.
    pub path: String,
    /// What was found.
    pub message: String,
    /// Where (addresses, offsets, call sites).
    pub evidence: Option<String>,
    /// CVE or advisory id.
    pub cve: Option<String>,
}

/// What the scan learned about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfReport {
    /// File, relative to the scanned root.
    pub path: String,
    /// Architecture (`x86_64`, `aarch64`, `arm`, `mips`, …).
    pub arch: String,
    /// 32 or 64.
    pub class: u8,
    /// Byte order.
    pub endian: Endian,
    /// Object kind.
    pub kind: ElfKind,
    /// checksec-style hardening.
    pub hardening: Hardening,
    /// Disassembly coverage.
    pub disassembly: Disassembly,
}

/// The result of scanning a tree or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// What was scanned.
    pub target: String,
    /// Name of the rule database.
    pub rules_name: String,
    /// Version of the rule database.
    pub rules_version: u64,
    /// The policy applied.
    pub policy: Policy,
    /// Regular files scanned.
    pub files_scanned: u64,
    /// Every ELF file.
    pub elf_files: Vec<ElfReport>,
    /// Every finding, most severe first.
    pub findings: Vec<Finding>,
    /// The verdict under the policy.
    pub verdict: Verdict,
}

impl ScanReport {
    /// Whether the policy blocks installation.
    pub fn blocks(&self) -> bool {
        self.verdict == Verdict::Block
    }

    /// Findings of one rule.
    pub fn findings_of<'a>(&'a self, rule: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.rule == rule)
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

impl fmt::Display for ScanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Ferry scan of {}", self.target)?;
        writeln!(
            f,
            "rules: {} (version {})",
            self.rules_name, self.rules_version
        )?;
        writeln!(
            f,
            "{} file(s) scanned, {} ELF file(s)",
            self.files_scanned,
            self.elf_files.len()
        )?;
        if !self.elf_files.is_empty() {
            writeln!(f, "\nELF files:")?;
        }
        for e in &self.elf_files {
            let h = &e.hardening;
            let pie = match h.pie {
                Some(p) => yes(p),
                None => "n/a",
            };
            let relro = match h.relro {
                Relro::Full => "full",
                Relro::Partial => "partial",
                Relro::None => "NONE",
            };
            let fortify = match h.fortify {
                Fortify::Fortified => "yes",
                Fortify::NotFortified => "NO",
                Fortify::NotApplicable => "n/a",
            };
            let endian = match e.endian {
                Endian::Little => "little-endian",
                Endian::Big => "big-endian",
            };
            writeln!(
                f,
                "  {}: {} ELF{} {} {:?}",
                e.path, e.arch, e.class, endian, e.kind
            )?;
            writeln!(
                f,
                "      NX {} | PIE {} | RELRO {} | canary {} | FORTIFY {} | RWX segments {}",
                yes(h.nx),
                pie,
                relro,
                yes(h.canary),
                fortify,
                h.rwx_segments
            )?;
            match &e.disassembly.disassembler {
                Some(d) => writeln!(
                    f,
                    "      disassembled {} instruction(s) in {} code byte(s) with {} ({} undecodable)",
                    e.disassembly.instructions, e.disassembly.code_bytes, d, e.disassembly.invalid
                )?,
                None => writeln!(f, "      not disassembled: no disassembler for {}", e.arch)?,
            }
        }
        let blocking = self.findings.iter().filter(|x| x.blocking).count();
        writeln!(
            f,
            "\nFindings: {} ({} blocking, {} warning)",
            self.findings.len(),
            blocking,
            self.findings.len() - blocking
        )?;
        for x in &self.findings {
            let tag = if x.blocking { "BLOCK" } else { "warn " };
            write!(
                f,
                "  [{:<8}] {} {} {}: {}",
                x.severity.to_string().to_uppercase(),
                tag,
                x.rule,
                x.path,
                x.message
            )?;
            if let Some(cve) = &x.cve {
                write!(f, " ({cve})")?;
            }
            writeln!(f)?;
            if let Some(ev) = &x.evidence {
                writeln!(f, "             {ev}")?;
            }
        }
        writeln!(
            f,
            "\nVerdict: {} (blocking at severity {} and above)",
            self.verdict, self.policy.block_at
        )
    }
}
