//! What the ELF header and tables say: architecture, class, endianness, checksec-style
//! hardening, imported symbols, executable code regions and GOT slots.

use goblin::elf::Elf;
use goblin::elf::dynamic::{DF_1_NOW, DF_1_PIE, DF_BIND_NOW, DT_BIND_NOW, DT_FLAGS, DT_FLAGS_1};
use goblin::elf::header::{self, ET_DYN, ET_EXEC, ET_REL};
use goblin::elf::program_header::{PF_W, PF_X, PT_GNU_RELRO, PT_GNU_STACK, PT_INTERP, PT_LOAD};
use goblin::elf::section_header::{SHF_EXECINSTR, SHT_NOBITS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Byte order of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    /// Little-endian (`ELFDATA2LSB`).
    Little,
    /// Big-endian (`ELFDATA2MSB`).
    Big,
}

/// What kind of object an ELF file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElfKind {
    /// Fixed-address executable (`ET_EXEC`).
    Executable,
    /// Position-independent executable (`ET_DYN` with an interpreter or `DF_1_PIE`).
    PieExecutable,
    /// Shared library (`ET_DYN` without an interpreter).
    SharedLibrary,
    /// Relocatable object (`ET_REL`).
    Relocatable,
    /// Anything else (core files, processor-specific types).
    Other,
}

/// RELRO level, as checksec reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relro {
    /// No `PT_GNU_RELRO`.
    None,
    /// `PT_GNU_RELRO` without immediate binding.
    Partial,
    /// `PT_GNU_RELRO` and BIND_NOW: the whole GOT is read-only after start-up.
    Full,
}

/// FORTIFY_SOURCE status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fortify {
    /// At least one `__*_chk` function is used.
    Fortified,
    /// Fortifiable functions are used, none in checked form.
    NotFortified,
    /// No fortifiable function is used.
    NotApplicable,
}

/// The hardening of one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    /// Non-executable stack.
    pub nx: bool,
    /// Position independent (`None` where it does not apply: libraries, objects).
    pub pie: Option<bool>,
    /// RELRO level.
    pub relro: Relro,
    /// A stack protector symbol is present.
    pub canary: bool,
    /// FORTIFY_SOURCE status.
    pub fortify: Fortify,
    /// Number of segments both writable and executable.
    pub rwx_segments: u32,
}

/// A region of executable code.
#[derive(Debug, Clone)]
pub(crate) struct CodeRegion {
    pub name: String,
    pub vaddr: u64,
    pub offset: usize,
    pub len: usize,
}

/// Everything the scanner uses from one ELF file.
#[derive(Debug, Clone)]
pub(crate) struct ElfFacts {
    pub arch: String,
    pub class: u8,
    pub endian: Endian,
    pub kind: ElfKind,
    pub hardening: Hardening,
    pub statically_linked: bool,
    pub imports: BTreeSet<String>,
    pub defined_functions: BTreeSet<String>,
    pub code: Vec<CodeRegion>,
    /// GOT slot address → imported symbol, from PLT and GLOB_DAT relocations.
    pub got: HashMap<u64, String>,
}

/// Functions glibc offers a `__*_chk` variant of (the ones FORTIFY_SOURCE rewrites).
const FORTIFIABLE: &[&str] = &[
    "memcpy",
    "memmove",
    "mempcpy",
    "memset",
    "strcpy",
    "stpcpy",
    "strncpy",
    "stpncpy",
    "strcat",
    "strncat",
    "sprintf",
    "vsprintf",
    "snprintf",
    "vsnprintf",
    "printf",
    "vprintf",
    "fprintf",
    "vfprintf",
    "dprintf",
    "vdprintf",
    "gets",
    "fgets",
    "read",
    "pread",
    "pread64",
    "recv",
    "recvfrom",
    "readlink",
    "realpath",
    "getcwd",
    "wcscpy",
    "fread",
    "syslog",
    "vsyslog",
    "asprintf",
    "vasprintf",
    "poll",
    "ppoll",
];

/// Symbols a stack protector leaves behind.
const CANARY_SYMBOLS: &[&str] = &[
    "__stack_chk_fail",
    "__stack_chk_guard",
    "__intel_security_cookie",
];

/// Architecture name for an `e_machine`.
pub(crate) fn arch_name(machine: u16) -> String {
    match machine {
        header::EM_386 => "x86".into(),
        header::EM_X86_64 => "x86_64".into(),
        header::EM_ARM => "arm".into(),
        header::EM_AARCH64 => "aarch64".into(),
        header::EM_MIPS => "mips".into(),
        header::EM_PPC => "powerpc".into(),
        header::EM_PPC64 => "powerpc64".into(),
        header::EM_RISCV => "riscv".into(),
        header::EM_S390 => "s390".into(),
        header::EM_SPARCV9 => "sparc64".into(),
        other => format!("e_machine {other}"),
    }
}

/// Parses the facts out of a parsed ELF.
pub(crate) fn facts(elf: &Elf, file_len: usize) -> ElfFacts {
    let has_interp = elf.program_headers.iter().any(|p| p.p_type == PT_INTERP);
    let dyn_flag = |tag: u64| -> u64 {
        elf.dynamic
            .as_ref()
            .map(|d| {
                d.dyns
                    .iter()
                    .filter(|e| e.d_tag == tag)
                    .fold(0, |a, e| a | e.d_val)
            })
            .unwrap_or(0)
    };
    let has_tag = |tag: u64| {
        elf.dynamic
            .as_ref()
            .is_some_and(|d| d.dyns.iter().any(|e| e.d_tag == tag))
    };
    let flags = dyn_flag(DT_FLAGS);
    let flags_1 = dyn_flag(DT_FLAGS_1);
    let kind = match elf.header.e_type {
        ET_EXEC => ElfKind::Executable,
        ET_DYN if has_interp || flags_1 & DF_1_PIE != 0 => ElfKind::PieExecutable,
        ET_DYN => ElfKind::SharedLibrary,
        ET_REL => ElfKind::Relocatable,
        _ => ElfKind::Other,
    };

    let mut imports = BTreeSet::new();
    for sym in elf.dynsyms.iter() {
        if sym.st_shndx == 0
            && sym.st_name != 0
            && let Some(name) = elf.dynstrtab.get_at(sym.st_name)
        {
            imports.insert(strip_version(name).to_string());
        }
    }
    let mut defined_functions = BTreeSet::new();
    let mut all_symbols: BTreeSet<String> = imports.clone();
    for sym in elf.syms.iter() {
        let Some(name) = elf.strtab.get_at(sym.st_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        let name = strip_version(name).to_string();
        if sym.st_shndx == 0 {
            imports.insert(name.clone());
        } else if sym.is_function() {
            defined_functions.insert(name.clone());
        }
        all_symbols.insert(name);
    }

    let gnu_stack = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_GNU_STACK);
    let nx = gnu_stack.is_some_and(|p| p.p_flags & PF_X == 0);
    let rwx_segments = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_W != 0 && p.p_flags & PF_X != 0)
        .count() as u32;
    let has_relro = elf.program_headers.iter().any(|p| p.p_type == PT_GNU_RELRO);
    let bind_now = flags & DF_BIND_NOW != 0 || flags_1 & DF_1_NOW != 0 || has_tag(DT_BIND_NOW);
    let relro = match (has_relro, bind_now) {
        (false, _) => Relro::None,
        (true, false) => Relro::Partial,
        (true, true) => Relro::Full,
    };
    let canary = CANARY_SYMBOLS.iter().any(|s| all_symbols.contains(*s));
    let fortified = all_symbols
        .iter()
        .any(|s| s.starts_with("__") && s.ends_with("_chk") && s != "__stack_chk_fail");
    let fortifiable = FORTIFIABLE.iter().any(|f| imports.contains(*f));
    let fortify = match (fortified, fortifiable) {
        (true, _) => Fortify::Fortified,
        (false, true) => Fortify::NotFortified,
        (false, false) => Fortify::NotApplicable,
    };
    let pie = match kind {
        ElfKind::Executable => Some(false),
        ElfKind::PieExecutable => Some(true),
        _ => None,
    };

    ElfFacts {
        arch: arch_name(elf.header.e_machine),
        class: if elf.is_64 { 64 } else { 32 },
        endian: if elf.little_endian {
            Endian::Little
        } else {
            Endian::Big
        },
        kind,
        hardening: Hardening {
            nx,
            pie,
            relro,
            canary,
            fortify,
            rwx_segments,
        },
        statically_linked: !has_interp && elf.dynamic.is_none() && kind == ElfKind::Executable,
        imports,
        defined_functions,
        code: code_regions(elf, file_len),
        got: got_slots(elf),
    }
}

/// `name@GLIBC_2.2.5` → `name`.
fn strip_version(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Executable sections, or executable `PT_LOAD` segments when there are no section headers.
fn code_regions(elf: &Elf, file_len: usize) -> Vec<CodeRegion> {
    let in_file = |off: u64, len: u64| {
        let off = usize::try_from(off).ok()?;
        let len = usize::try_from(len).ok()?;
        (off.checked_add(len)? <= file_len).then_some((off, len))
    };
    let sections: Vec<_> = elf
        .section_headers
        .iter()
        .filter(|s| {
            s.sh_flags & u64::from(SHF_EXECINSTR) != 0 && s.sh_type != SHT_NOBITS && s.sh_size > 0
        })
        .filter_map(|s| {
            let (offset, len) = in_file(s.sh_offset, s.sh_size)?;
            Some(CodeRegion {
                name: elf.shdr_strtab.get_at(s.sh_name).unwrap_or("?").to_string(),
                vaddr: s.sh_addr,
                offset,
                len,
            })
        })
        .collect();
    if !sections.is_empty() {
        return sections;
    }
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_X != 0 && p.p_filesz > 0)
        .filter_map(|p| {
            let (offset, len) = in_file(p.p_offset, p.p_filesz)?;
            Some(CodeRegion {
                name: format!("segment@{:#x}", p.p_vaddr),
                vaddr: p.p_vaddr,
                offset,
                len,
            })
        })
        .collect()
}

/// GOT slots of imported symbols (JUMP_SLOT and GLOB_DAT relocations).
fn got_slots(elf: &Elf) -> HashMap<u64, String> {
    let mut got = HashMap::new();
    for rel in elf
        .pltrelocs
        .iter()
        .chain(elf.dynrelas.iter())
        .chain(elf.dynrels.iter())
    {
        if rel.r_sym == 0 {
            continue;
        }
        if let Some(sym) = elf.dynsyms.get(rel.r_sym)
            && let Some(name) = elf.dynstrtab.get_at(sym.st_name)
        {
            got.insert(rel.r_offset, strip_version(name).to_string());
        }
    }
    got
}
