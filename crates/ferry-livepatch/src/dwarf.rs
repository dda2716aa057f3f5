//! DWARF queries: function parameters and variable locations at a call site, static variable
//! layouts, and call-frame rules (from `.eh_frame`).

use crate::bundle::{Loc, Param, VarLoc};
use crate::elf::Elf;
use crate::error::{Error, Result};
use gimli::{AttributeValue, EndianSlice, LittleEndian, Operation, UnwindSection};
use object::{Object, ObjectSection};

type R<'a> = EndianSlice<'a, LittleEndian>;

fn dwarf_err(elf: &Elf, reason: impl Into<String>) -> Error {
    Error::Dwarf {
        path: elf.path.clone(),
        reason: reason.into(),
    }
}

fn load(elf: &Elf) -> Result<gimli::Dwarf<R<'_>>> {
    let file = object::File::parse(&*elf.data).map_err(|e| dwarf_err(elf, e.to_string()))?;
    let load = |id: gimli::SectionId| -> std::result::Result<R<'_>, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, LittleEndian))
    };
    if file.section_by_name(".debug_info").is_none() {
        return Err(dwarf_err(elf, "no .debug_info: build both versions with -g"));
    }
    gimli::Dwarf::load(load).map_err(|e| dwarf_err(elf, e.to_string()))
}

/// A variable of a function with its location ranges.
#[derive(Debug, Clone)]
struct VarRanges {
    name: String,
    size: u64,
    ranges: Vec<(u64, u64, Option<Loc>)>,
}

/// Parameters and variables of one function.
#[derive(Debug, Clone, Default)]
pub struct FuncDwarf {
    /// Formal parameters in order.
    pub params: Vec<Param>,
    vars: Vec<VarRanges>,
}

impl FuncDwarf {
    /// Variables with a known location at `pc`.
    pub fn vars_at(&self, pc: u64) -> Vec<VarLoc> {
        let mut out = Vec::new();
        for v in &self.vars {
            for (lo, hi, loc) in &v.ranges {
                if *lo <= pc && pc < *hi {
                    if let Some(loc) = loc {
                        out.push(VarLoc {
                            name: v.name.clone(),
                            size: v.size,
                            loc: loc.clone(),
                        });
                    }
                    break;
                }
            }
        }
        out
    }
}

fn name_of(dwarf: &gimli::Dwarf<R>, unit: &gimli::Unit<R>, e: &gimli::DebuggingInformationEntry<R>) -> Option<String> {
    let v = e.attr_value(gimli::DW_AT_name).ok()??;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(s.to_string_lossy().into_owned())
}

fn type_size(unit: &gimli::Unit<R>, e: &gimli::DebuggingInformationEntry<R>) -> Option<u64> {
    let mut off = match e.attr_value(gimli::DW_AT_type).ok()?? {
        AttributeValue::UnitRef(o) => o,
        _ => return None,
    };
    for _ in 0..16 {
        let t = unit.entry(off).ok()?;
        if let Some(size) = t.attr_value(gimli::DW_AT_byte_size).ok()?.and_then(|v| v.udata_value()) {
            return Some(size);
        }
        off = match t.attr_value(gimli::DW_AT_type).ok()?? {
            AttributeValue::UnitRef(o) => o,
            _ => return None,
        };
    }
    None
}

fn to_loc(expr: gimli::Expression<R>, enc: gimli::Encoding, fb_is_cfa: bool) -> Option<Loc> {
    let mut ops = expr.operations(enc);
    let first = ops.next().ok()??;
    let second = ops.next().ok()?;
    match (first, second) {
        (Operation::Register { register }, None) => Some(Loc::Reg(register.0)),
        (Operation::RegisterOffset { register, offset, .. }, None) => Some(Loc::Mem(register.0, offset)),
        (Operation::FrameOffset { offset }, None) if fb_is_cfa => Some(Loc::Cfa(offset)),
        (Operation::UnsignedConstant { value }, Some(Operation::StackValue)) => Some(Loc::Const(value)),
        (Operation::SignedConstant { value }, Some(Operation::StackValue)) => Some(Loc::Const(value as u64)),
        _ => None,
    }
}

/// Parameters and variable locations of the function whose code starts at `addr`.
pub fn function(elf: &Elf, addr: u64, size: u64) -> Result<FuncDwarf> {
    let dwarf = load(elf)?;
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| dwarf_err(elf, e.to_string()))? {
        let unit = dwarf.unit(header).map_err(|e| dwarf_err(elf, e.to_string()))?;
        let enc = unit.encoding();
        let mut entries = unit.entries();
        let mut depth = 0isize;
        let mut in_func: Option<(isize, bool)> = None;
        let mut skip_below: Option<isize> = None;
        let mut out = FuncDwarf::default();
        while let Some((delta, e)) = entries.next_dfs().map_err(|e| dwarf_err(elf, e.to_string()))? {
            depth += delta;
            if let Some((fdepth, fb_is_cfa)) = in_func {
                if depth <= fdepth {
                    return Ok(out);
                }
                if let Some(s) = skip_below {
                    if depth > s {
                        continue;
                    }
                    skip_below = None;
                }
                match e.tag() {
                    gimli::DW_TAG_inlined_subroutine | gimli::DW_TAG_subprogram => {
                        skip_below = Some(depth);
                        continue;
                    }
                    gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {}
                    _ => continue,
                }
                let Some(name) = name_of(&dwarf, &unit, e) else { continue };
                let vsize = type_size(&unit, e).unwrap_or(8);
                if e.tag() == gimli::DW_TAG_formal_parameter && depth == fdepth + 1 {
                    out.params.push(Param { name: name.clone(), size: vsize });
                }
                let mut ranges = Vec::new();
                match e.attr_value(gimli::DW_AT_location).ok().flatten() {
                    Some(AttributeValue::Exprloc(expr)) => {
                        ranges.push((addr, addr + size, to_loc(expr, enc, fb_is_cfa)));
                    }
                    Some(v) => {
                        if let Ok(Some(mut iter)) = dwarf.attr_locations(&unit, v) {
                            while let Ok(Some(entry)) = iter.next() {
                                ranges.push((entry.range.begin, entry.range.end, to_loc(entry.data, enc, fb_is_cfa)));
                            }
                        }
                    }
                    None => {}
                }
                out.vars.push(VarRanges { name, size: vsize, ranges });
                continue;
            }
            if e.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let low = match e.attr_value(gimli::DW_AT_low_pc).ok().flatten() {
                Some(v) => dwarf.attr_address(&unit, v).ok().flatten(),
                None => None,
            };
            if low == Some(addr) {
                let fb_is_cfa = match e.attr_value(gimli::DW_AT_frame_base).ok().flatten() {
                    Some(AttributeValue::Exprloc(expr)) => {
                        matches!(expr.operations(enc).next(), Ok(Some(Operation::CallFrameCFA)))
                    }
                    _ => false,
                };
                in_func = Some((depth, fb_is_cfa));
            }
        }
        if in_func.is_some() {
            return Ok(out);
        }
    }
    Err(dwarf_err(elf, format!("no DWARF entry for the function at {addr:#x}")))
}

/// Layout of a static variable: (field name, offset, size); a scalar has one unnamed field.
pub fn static_layout(elf: &Elf, name: &str, addr: u64) -> Result<Option<Vec<(String, u64, u64)>>> {
    let dwarf = load(elf)?;
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| dwarf_err(elf, e.to_string()))? {
        let unit = dwarf.unit(header).map_err(|e| dwarf_err(elf, e.to_string()))?;
        let enc = unit.encoding();
        let mut entries = unit.entries();
        while let Some((_, e)) = entries.next_dfs().map_err(|e| dwarf_err(elf, e.to_string()))? {
            if e.tag() != gimli::DW_TAG_variable || name_of(&dwarf, &unit, e).as_deref() != Some(name) {
                continue;
            }
            let Some(AttributeValue::Exprloc(expr)) = e.attr_value(gimli::DW_AT_location).ok().flatten() else {
                continue;
            };
            if !matches!(expr.operations(enc).next(), Ok(Some(Operation::Address { address })) if address == addr) {
                continue;
            }
            return Ok(Some(layout_of_type(&dwarf, &unit, e)));
        }
    }
    Ok(None)
}

fn layout_of_type(dwarf: &gimli::Dwarf<R>, unit: &gimli::Unit<R>, var: &gimli::DebuggingInformationEntry<R>) -> Vec<(String, u64, u64)> {
    let whole = vec![(String::new(), 0, type_size(unit, var).unwrap_or(0))];
    let mut off = match var.attr_value(gimli::DW_AT_type).ok().flatten() {
        Some(AttributeValue::UnitRef(o)) => o,
        _ => return whole,
    };
    for _ in 0..16 {
        let Ok(t) = unit.entry(off) else { return whole };
        match t.tag() {
            gimli::DW_TAG_typedef | gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => {
                off = match t.attr_value(gimli::DW_AT_type).ok().flatten() {
                    Some(AttributeValue::UnitRef(o)) => o,
                    _ => return whole,
                };
            }
            gimli::DW_TAG_structure_type => {
                let mut fields = Vec::new();
                let Ok(mut tree) = unit.entries_tree(Some(off)) else { return whole };
                let Ok(root) = tree.root() else { return whole };
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let m = child.entry();
                    if m.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    let name = name_of(dwarf, unit, m).unwrap_or_default();
                    let moff = m
                        .attr_value(gimli::DW_AT_data_member_location)
                        .ok()
                        .flatten()
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    fields.push((name, moff, type_size(unit, m).unwrap_or(0)));
                }
                return fields;
            }
            _ => return whole,
        }
    }
    whole
}

/// Call-frame rules at `pc`: CFA as (register, offset) and saved registers as (register, CFA offset).
pub fn cfi_at(elf: &Elf, pc: u64) -> Result<((u16, i64), Vec<(u16, i64)>)> {
    let file = object::File::parse(&*elf.data).map_err(|e| dwarf_err(elf, e.to_string()))?;
    let sec = file
        .section_by_name(".eh_frame")
        .ok_or_else(|| dwarf_err(elf, "no .eh_frame: do not build with -fno-asynchronous-unwind-tables"))?;
    let data = sec.data().map_err(|e| dwarf_err(elf, e.to_string()))?;
    let eh = gimli::EhFrame::new(data, LittleEndian);
    let text = file.section_by_name(".text").map(|s| s.address()).unwrap_or(0);
    let bases = gimli::BaseAddresses::default()
        .set_eh_frame(sec.address())
        .set_text(text);
    let mut ctx = Box::new(gimli::UnwindContext::new());
    let row = eh
        .unwind_info_for_address(&bases, &mut ctx, pc, gimli::EhFrame::cie_from_offset)
        .map_err(|e| dwarf_err(elf, format!("no call-frame information for {pc:#x}: {e}")))?;
    let cfa = match row.cfa() {
        gimli::CfaRule::RegisterAndOffset { register, offset } => (register.0, *offset),
        _ => return Err(dwarf_err(elf, format!("CFA at {pc:#x} is an expression"))),
    };
    let mut saved = Vec::new();
    for (reg, rule) in row.registers() {
        if let gimli::RegisterRule::Offset(o) = rule {
            if reg.0 != 16 {
                saved.push((reg.0, *o));
            }
        }
    }
    Ok((cfa, saved))
}
