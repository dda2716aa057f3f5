//! What the patch builder needs from an ELF executable: symbols keyed by file scope, sections,
//! imports (PLT stubs and GOT slots by name), build id and call-frame information.

use crate::error::{Error, Result};
use iced_x86::{Decoder, DecoderOptions, Instruction};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable, SymbolKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A function or data symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sym {
    /// `name` for global symbols, `file.c:name` for file-local ones.
    pub key: String,
    /// Plain symbol name.
    pub name: String,
    /// Link-time address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// True for functions.
    pub is_func: bool,
    /// Name of the section it lives in.
    pub section: String,
}

/// A parsed executable.
pub struct Elf {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file bytes.
    pub data: Vec<u8>,
    /// Function and data symbols with a size, sorted by address.
    pub syms: Vec<Sym>,
    /// Symbols by key.
    pub by_key: BTreeMap<String, usize>,
    /// Sections: name → (address, size, is NOBITS).
    pub sections: BTreeMap<String, (u64, u64, bool)>,
    /// PLT stub address → imported name.
    pub plt: BTreeMap<u64, String>,
    /// GOT slot address → imported name.
    pub got: BTreeMap<u64, String>,
    /// Build id, hex.
    pub build_id: String,
    /// First PT_LOAD address.
    pub load_vaddr: u64,
    /// Entry point.
    pub entry: u64,
    /// Loadable segments: (address, file offset, file size).
    segs: Vec<(u64, u64, u64)>,
}

impl Elf {
    /// Reads and indexes the executable at `path`.
    pub fn read(path: &Path) -> Result<Elf> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let err = |reason: String| Error::Elf {
            path: path.to_path_buf(),
            reason,
        };
        let file = object::File::parse(&*data).map_err(|e| err(format!("not an ELF file: {e}")))?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(err(format!(
                "architecture {:?} is not supported (x86-64 only)",
                file.architecture()
            )));
        }
        let build_id = match file.build_id() {
            Ok(Some(id)) => hex::encode(id),
            _ => return Err(err("no GNU build id: link with -Wl,--build-id".into())),
        };
        let mut sections = BTreeMap::new();
        for s in file.sections() {
            if let Ok(name) = s.name() {
                let nobits = s.kind() == object::SectionKind::UninitializedData;
                sections.insert(name.to_string(), (s.address(), s.size(), nobits));
            }
        }
        let mut syms = Vec::new();
        let mut cur_file = String::new();
        let Some(table) = file.symbol_table() else {
            return Err(err("no symbol table: do not strip the binaries given to `patch build`".into()));
        };
        for s in table.symbols() {
            if s.kind() == SymbolKind::File {
                cur_file = s.name().unwrap_or("").to_string();
                continue;
            }
            let is_func = s.kind() == SymbolKind::Text;
            if !(is_func || s.kind() == SymbolKind::Data) || s.size() == 0 || s.is_undefined() {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            let section = s
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .and_then(|sec| sec.name().ok().map(str::to_string))
                .unwrap_or_default();
            let key = if s.is_local() {
                format!("{cur_file}:{name}")
            } else {
                name.to_string()
            };
            syms.push(Sym {
                key,
                name: name.to_string(),
                addr: s.address(),
                size: s.size(),
                is_func,
                section,
            });
        }
        syms.sort_by_key(|s| (s.addr, s.key.clone()));
        syms.dedup_by(|a, b| a.key == b.key && a.addr == b.addr);
        let by_key = syms.iter().enumerate().map(|(i, s)| (s.key.clone(), i)).collect();
        let mut got = BTreeMap::new();
        if let (Some(relocs), Some(dynsyms)) = (file.dynamic_relocations(), file.dynamic_symbol_table()) {
            for (off, rel) in relocs {
                if let object::RelocationTarget::Symbol(idx) = rel.target() {
                    if let Ok(sym) = dynsyms.symbol_by_index(idx) {
                        if let Ok(name) = sym.name() {
                            got.insert(off, name.to_string());
                        }
                    }
                }
            }
        }
        let load_vaddr = file.segments().map(|s| s.address()).min().unwrap_or(0);
        let entry = file.entry();
        let segs = file
            .segments()
            .map(|s| (s.address(), s.file_range().0, s.file_range().1))
            .collect();
        let mut elf = Elf {
            path: path.to_path_buf(),
            data: Vec::new(),
            syms,
            by_key,
            sections,
            plt: BTreeMap::new(),
            got,
            build_id,
            load_vaddr,
            entry,
            segs,
        };
        elf.plt = elf.index_plt(&file);
        drop(file);
        elf.data = data;
        Ok(elf)
    }

    /// Maps each PLT stub to the import it jumps through (by decoding its indirect jump).
    fn index_plt(&self, file: &object::File) -> BTreeMap<u64, String> {
        let mut plt = BTreeMap::new();
        for name in [".plt", ".plt.sec", ".plt.got"] {
            let Some(sec) = file.section_by_name(name) else { continue };
            let Ok(bytes) = sec.data() else { continue };
            let mut stub = sec.address();
            while stub + 8 <= sec.address() + sec.size() {
                let off = (stub - sec.address()) as usize;
                let end = (off + 16).min(bytes.len());
                let mut dec = Decoder::with_ip(64, &bytes[off..end], stub, DecoderOptions::NONE);
                let mut ins = Instruction::default();
                while dec.can_decode() {
                    dec.decode_out(&mut ins);
                    if ins.is_ip_rel_memory_operand() {
                        if let Some(import) = self.got.get(&ins.ip_rel_memory_address()) {
                            plt.insert(stub, import.clone());
                        }
                        break;
                    }
                }
                stub += if name == ".plt.got" { 8 } else { 16 };
            }
        }
        plt
    }

    /// The symbol containing `addr`, if any.
    pub fn sym_at(&self, addr: u64) -> Option<&Sym> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        self.syms[..i]
            .iter()
            .rev()
            .take(8)
            .find(|s| addr < s.addr + s.size)
    }

    /// The symbol with `key`.
    pub fn sym(&self, key: &str) -> Option<&Sym> {
        self.by_key.get(key).map(|&i| &self.syms[i])
    }

    /// The section containing `addr`: (name, start, size, nobits).
    pub fn section_at(&self, addr: u64) -> Option<(&str, u64, u64, bool)> {
        self.sections
            .iter()
            .find(|(_, (a, s, _))| *a <= addr && addr < a + s && *a != 0)
            .map(|(n, (a, s, nb))| (n.as_str(), *a, *s, *nb))
    }

    /// File bytes at link-time address range (None for NOBITS or unmapped addresses).
    pub fn bytes_at(&self, addr: u64, len: u64) -> Option<&[u8]> {
        for &(seg_addr, foff, fsize) in &self.segs {
            if seg_addr <= addr && addr + len <= seg_addr + fsize {
                let start = (foff + addr - seg_addr) as usize;
                return self.data.get(start..start + len as usize);
            }
        }
        None
    }

    /// The error type for this file.
    pub fn err(&self, reason: impl Into<String>) -> Error {
        Error::Elf {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

/// Build id (hex) of the ELF file at `path`.
pub fn build_id_of(path: &Path) -> Result<String> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = object::File::parse(&*data).map_err(|e| Error::Elf {
        path: path.to_path_buf(),
        reason: format!("not an ELF file: {e}"),
    })?;
    match file.build_id() {
        Ok(Some(id)) => Ok(hex::encode(id)),
        _ => Err(Error::Elf {
            path: path.to_path_buf(),
            reason: "no GNU build id".into(),
        }),
    }
}
