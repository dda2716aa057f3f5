//! Relocation-aware function comparison: every PC-relative field (branch target, RIP-relative
//! operand) is masked out of the bytes and compared by what it refers to instead.

use crate::elf::{Elf, Sym};
use crate::error::Result;
use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind};

/// What a PC-relative field refers to, independent of where things were linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An offset inside the same function.
    SelfOff(u64),
    /// Another function (symbol key, offset).
    Func(String, u64),
    /// An imported function through its PLT stub.
    Plt(String),
    /// An import's GOT slot.
    Got(String),
    /// A writable static (symbol key, offset).
    Data(String, u64),
    /// Read-only data, compared by content (symbol key or "" for anonymous, offset, bytes).
    Const(String, u64, Vec<u8>),
    /// Anything else (section, address).
    Other(String, u64),
}

/// One PC-relative field of a function.
#[derive(Debug, Clone)]
pub struct Ref {
    /// Offset of the instruction from the function start.
    pub insn_off: u64,
    /// Offset of the field from the function start.
    pub field_off: u64,
    /// Size of the field in bytes.
    pub field_len: u64,
    /// Offset of the end of the instruction from the function start.
    pub pc_after: u64,
    /// Absolute target address in this binary.
    pub addr: u64,
    /// The target, symbolically.
    pub target: Target,
    /// True for `call rel32` and `call *disp(%rip)`.
    pub is_call: bool,
}

/// A function's bytes with PC-relative fields zeroed, and those fields.
#[derive(Debug, Clone)]
pub struct Analysed {
    /// Masked bytes.
    pub masked: Vec<u8>,
    /// The fields.
    pub refs: Vec<Ref>,
}

fn classify(elf: &Elf, func: &Sym, t: u64) -> Target {
    if func.addr <= t && t < func.addr + func.size {
        return Target::SelfOff(t - func.addr);
    }
    if let Some(name) = elf.plt.get(&t) {
        return Target::Plt(name.clone());
    }
    if let Some(name) = elf.got.get(&t) {
        return Target::Got(name.clone());
    }
    let section = elf.section_at(t);
    let read_only = section.is_some_and(|(n, ..)| n.starts_with(".rodata"));
    if let Some(s) = elf.sym_at(t) {
        if s.is_func {
            return Target::Func(s.key.clone(), t - s.addr);
        }
        if !read_only {
            return Target::Data(s.key.clone(), t - s.addr);
        }
        let bytes = elf.bytes_at(s.addr, s.size).unwrap_or_default().to_vec();
        return Target::Const(s.key.clone(), t - s.addr, bytes);
    }
    match section {
        Some((_, start, size, _)) if read_only => {
            let avail = (start + size - t).min(256);
            let bytes = elf.bytes_at(t, avail).unwrap_or_default();
            let len = bytes.iter().position(|&b| b == 0).map_or(16.min(bytes.len()), |p| p + 1);
            Target::Const(String::new(), 0, bytes[..len].to_vec())
        }
        Some((name, start, ..)) => Target::Other(name.to_string(), t - start),
        None => Target::Other(String::new(), t),
    }
}

/// Decodes `func` and lists its PC-relative fields.
pub fn analyse(elf: &Elf, func: &Sym) -> Result<Analysed> {
    let bytes = elf
        .bytes_at(func.addr, func.size)
        .ok_or_else(|| elf.err(format!("function {} is not in a file-backed segment", func.key)))?;
    let mut masked = bytes.to_vec();
    let mut refs = Vec::new();
    let mut dec = Decoder::with_ip(64, bytes, func.addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            return Err(elf.err(format!("undecodable instruction in {} at {:#x}", func.key, ins.ip())));
        }
        let co = dec.get_constant_offsets(&ins);
        let insn_off = ins.ip() - func.addr;
        let (field, target) = if ins.is_ip_rel_memory_operand() {
            ((co.displacement_offset(), co.displacement_size()), ins.ip_rel_memory_address())
        } else if matches!(ins.op0_kind(), OpKind::NearBranch64) {
            ((co.immediate_offset(), co.immediate_size()), ins.near_branch_target())
        } else {
            continue;
        };
        let field_off = insn_off + field.0 as u64;
        for b in &mut masked[field_off as usize..field_off as usize + field.1] {
            *b = 0;
        }
        let op = &bytes[insn_off as usize..];
        let is_call = (op[0] == 0xe8 && ins.len() == 5) || (op[0] == 0xff && op.get(1) == Some(&0x15));
        refs.push(Ref {
            insn_off,
            field_off,
            field_len: field.1 as u64,
            pc_after: ins.next_ip() - func.addr,
            addr: target,
            target: classify(elf, func, target),
            is_call,
        });
    }
    Ok(Analysed { masked, refs })
}

/// True when two analysed functions are the same after relocation.
pub fn same(a: &Analysed, b: &Analysed) -> bool {
    a.masked == b.masked
        && a.refs.len() == b.refs.len()
        && a.refs.iter().zip(&b.refs).all(|(x, y)| x.target == y.target)
}

/// Call sites: (callee name, ordinal among calls to it, ref).
pub fn call_sites(a: &Analysed) -> Vec<(String, u32, &Ref)> {
    let mut counts: std::collections::BTreeMap<String, u32> = Default::default();
    let mut out = Vec::new();
    for r in a.refs.iter().filter(|r| r.is_call) {
        let callee = match &r.target {
            Target::Plt(n) | Target::Got(n) => n.clone(),
            Target::Func(k, 0) => k.clone(),
            _ => continue,
        };
        let n = counts.entry(callee.clone()).or_default();
        out.push((callee, *n, r));
        *n += 1;
    }
    out
}
