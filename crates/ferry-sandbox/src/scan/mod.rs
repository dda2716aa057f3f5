//! Static scan of an unpacked firmware tree, driven by a signed, versioned rule database.
//!
//! Every regular file is matched against the database's content rules (embedded private keys,
//! cloud credentials, passwords in configuration, version strings of known-vulnerable
//! components). Every ELF file is identified from its header (architecture, class,
//! endianness, kind), disassembled (iced-x86; yaxpeax-arm for ARM and AArch64), checked for
//! checksec-style hardening (NX, PIE, RELRO, stack canary, FORTIFY, RWX segments), for
//! dangerous imports (with call sites on x86-64) and for code signatures (byte patterns and
//! instruction sequences). A [`Policy`] turns severities into a [`Verdict`].

mod builtin;
mod command;
mod disasm;
mod elf;
mod error;
mod file_scan;
mod nested;
mod pattern;
mod report;
mod rules;
mod scanner;
mod severity;
mod store;

pub use builtin::{
    DEFAULT_RULES, DEFAULT_RULES_SIG, DEMO_RULES_PUBLIC_KEY, default_rules, demo_rule_key,
};
pub use command::{scan_command, scan_target};
pub use disasm::Disassembly;
pub use elf::{ElfKind, Endian, Fortify, Hardening, Relro};
pub use error::ScanError;
pub use pattern::BytePattern;
pub use report::{ElfReport, Finding, ScanReport};
pub use rules::{
    CodeRule, ContentRule, HardeningRules, ImportRule, RULES_FORMAT, RULES_SIG_CONTEXT, RuleDb,
    rules_signed_message, sign_rules, signature_path,
};
pub use scanner::{MAX_SCAN_FILE_BYTES, scan_path};
pub use severity::{Policy, Severity, Verdict};
pub use store::RuleStore;
