//! Patch generation: compare two builds and produce a [`PatchBundle`].

use crate::bundle::*;
use crate::diff::{self, Analysed, Target};
use crate::dwarf;
use crate::elf::{Elf, Sym};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

const PAGE: u64 = 4096;

/// Choices of the patch author.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Callees (e.g. `accept`) whose call sites in changed functions retry on EINTR, so a thread
    /// blocked in them may be woken with EINTR to reach the safe point.
    pub interruptible_calls: Vec<String>,
    /// Static transforms declared by the author, overriding the DWARF-derived ones: symbol key
    /// (or plain name) → field copies from the old layout to the new.
    pub static_transforms: BTreeMap<String, Vec<FieldCopy>>,
    /// Functions (plain names) without a helper whose state at every matched call site equals
    /// their entry state with the same arguments (e.g. a loop that is the whole body): a thread
    /// there is moved by the generated transfer, restarting the new version from its entry with
    /// arguments taken from the old frame by name (DWARF).
    pub restart_at_entry: Vec<String>,
}

/// Prefix of author-supplied helper functions compiled into the new build:
/// `ferry_helper_<function>` carries a running `<function>` frame over.
pub const HELPER_PREFIX: &str = "ferry_helper_";

fn writable_static(s: &Sym) -> bool {
    !s.is_func
        && (s.section.starts_with(".data") || s.section.starts_with(".bss"))
        && !s.section.starts_with(".data.rel.ro")
}

fn page_floor(x: u64) -> u64 {
    x & !(PAGE - 1)
}

fn page_ceil(x: u64) -> u64 {
    (x + PAGE - 1) & !(PAGE - 1)
}

/// Compares `old_elf` (the running build) with `new_elf` and builds the patch.
pub fn build_patch(old_elf: &Path, new_elf: &Path, opts: &BuildOptions) -> Result<PatchBundle> {
    let old = Elf::read(old_elf)?;
    let new = Elf::read(new_elf)?;
    let (statics, data_size) = plan_statics(&old, &new, opts)?;
    let transformed: BTreeMap<&str, &StaticPatch> = statics.iter().map(|s| (s.name.as_str(), s)).collect();

    let mut functions = Vec::new();
    let mut analysed: BTreeMap<String, (Analysed, Option<Analysed>)> = BTreeMap::new();
    for f in new.syms.iter().filter(|s| s.is_func && s.section.starts_with(".text")) {
        let a_new = diff::analyse(&new, f)?;
        let kind = match old.sym(&f.key).filter(|s| s.is_func) {
            None => Some(ChangeKind::Added),
            Some(o) => {
                let a_old = diff::analyse(&old, o)?;
                let kind = if !diff::same(&a_old, &a_new) {
                    Some(ChangeKind::Changed)
                } else if a_new.refs.iter().any(|r| matches!(&r.target, Target::Data(k, _) if transformed.contains_key(k.as_str()))) {
                    Some(ChangeKind::UsesTransformedStatic)
                } else {
                    None
                };
                if kind.is_some() {
                    analysed.insert(f.key.clone(), (a_new.clone(), Some(a_old)));
                }
                kind
            }
        };
        let Some(kind) = kind else { continue };
        analysed.entry(f.key.clone()).or_insert((a_new, None));
        functions.push(PatchedFunction {
            name: f.key.clone(),
            kind,
            old: old.sym(&f.key).filter(|s| s.is_func).map(|s| (s.addr, s.size)),
            new: (f.addr, f.size),
        });
    }
    if functions.is_empty() && statics.is_empty() {
        return Err(Error::Unpatchable("the two builds have the same code and statics".into()));
    }

    let rodata = new.sections.get(".rodata").copied();
    let mut ranges: Vec<(String, u64, u64)> = functions.iter().map(|f| (f.name.clone(), f.new.0, f.new.1)).collect();
    if let Some((addr, size, _)) = rodata {
        ranges.push((".rodata".into(), addr, size));
    }
    let base = page_floor(ranges.iter().map(|r| r.1).min().unwrap_or(0));
    let end = ranges.iter().map(|r| r.1 + r.2).max().unwrap_or(base);
    let trap_offset = (end - base + 15) & !15;
    let in_block = |t: u64| ranges.iter().any(|(_, a, s)| *a <= t && t < a + s);

    let mut symbols: Vec<SymbolRef> = Vec::new();
    let mut sym_index = |name: String, old_vaddr: u64| -> usize {
        if let Some(i) = symbols.iter().position(|s| s.name == name) {
            return i;
        }
        symbols.push(SymbolRef { name, old_vaddr });
        symbols.len() - 1
    };
    let mut relocs = Vec::new();
    let mut pieces = Vec::new();
    for f in &functions {
        let (a_new, _) = &analysed[&f.name];
        let fbase = f.new.0 - base;
        for r in &a_new.refs {
            if in_block(r.addr) {
                continue;
            }
            let target = match &r.target {
                Target::Func(key, off) => match old.sym(key) {
                    Some(s) => RelocTarget::Symbol { index: sym_index(key.clone(), s.addr), addend: *off as i64 },
                    None => return Err(Error::Unpatchable(format!("{} calls {key}, which the old build lacks", f.name))),
                },
                Target::Plt(name) => match old.plt.iter().find(|(_, n)| *n == name) {
                    Some((addr, _)) => RelocTarget::Symbol { index: sym_index(format!("plt:{name}"), *addr), addend: 0 },
                    None => return Err(Error::Unpatchable(format!(
                        "{} calls {name}, which the old build does not import; a patch cannot add imports"
                    , f.name))),
                },
                Target::Got(name) => match old.got.iter().find(|(_, n)| *n == name) {
                    Some((addr, _)) => RelocTarget::Symbol { index: sym_index(format!("got:{name}"), *addr), addend: 0 },
                    None => return Err(Error::Unpatchable(format!("{} uses {name}, which the old build does not import", f.name))),
                },
                Target::Data(key, off) => match transformed.get(key.as_str()) {
                    Some(sp) => RelocTarget::Data { offset: sp.data_offset + off },
                    None => match old.sym(key) {
                        Some(s) => RelocTarget::Symbol { index: sym_index(key.clone(), s.addr), addend: *off as i64 },
                        None => return Err(Error::Unpatchable(format!("{} uses {key}, unknown to the old build", f.name))),
                    },
                },
                other => return Err(Error::Unpatchable(format!(
                    "{} at +{:#x} refers to {other:?}, which a patch cannot relocate", f.name, r.insn_off
                ))),
            };
            if r.field_len != 4 {
                return Err(Error::Unpatchable(format!("{} at +{:#x}: short branch out of the function", f.name, r.insn_off)));
            }
            relocs.push(Reloc { offset: fbase + r.field_off, pc_after: fbase + r.pc_after, target });
        }
        let bytes = new.bytes_at(f.new.0, f.new.1).ok_or_else(|| new.err("function bytes missing"))?;
        pieces.push(Piece { name: f.name.clone(), vaddr: f.new.0, bytes: hex::encode(bytes) });
    }
    if let Some((addr, size, _)) = rodata {
        let bytes = new.bytes_at(addr, size).ok_or_else(|| new.err(".rodata bytes missing"))?;
        pieces.push(Piece { name: ".rodata".into(), vaddr: addr, bytes: hex::encode(bytes) });
    }

    let mut mapping = Vec::new();
    for f in functions.iter().filter(|f| f.old.is_some()) {
        if let Some(m) = map_function(&old, &new, f, &analysed[&f.name], opts)? {
            mapping.push(m);
        }
    }

    Ok(PatchBundle {
        format: BUNDLE_FORMAT,
        target_build_id: old.build_id.clone(),
        new_build_id: new.build_id.clone(),
        old_load_vaddr: old.load_vaddr,
        old_entry: old.entry,
        code: CodeImage { base_vaddr: base, size: page_ceil(trap_offset + 1), pieces, relocs, trap_offset },
        data: DataImage { size: page_ceil(data_size.max(1)) },
        functions,
        statics,
        symbols,
        mapping,
    })
}

/// Added statics and statics whose layout changed, with their place in the data block.
fn plan_statics(old: &Elf, new: &Elf, opts: &BuildOptions) -> Result<(Vec<StaticPatch>, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for s in new.syms.iter().filter(|s| writable_static(s)) {
        let declared = opts.static_transforms.get(&s.key).or_else(|| opts.static_transforms.get(&s.name));
        let old_sym = old.sym(&s.key).filter(|o| writable_static(o));
        let copies = match old_sym {
            None => Vec::new(),
            Some(o) => {
                let old_layout = dwarf::static_layout(old, &o.name, o.addr)?;
                let new_layout = dwarf::static_layout(new, &s.name, s.addr)?;
                let same = o.size == s.size && old_layout == new_layout;
                match declared {
                    Some(c) => c.clone(),
                    None if same => continue,
                    None => match (old_layout, new_layout) {
                        (Some(ol), Some(nl)) => nl
                            .iter()
                            .filter_map(|(name, noff, nsize)| {
                                ol.iter().find(|(n, _, sz)| n == name && sz == nsize).map(|(_, ooff, _)| FieldCopy {
                                    field: name.clone(),
                                    old_offset: *ooff,
                                    new_offset: *noff,
                                    len: *nsize,
                                })
                            })
                            .collect(),
                        _ => {
                            return Err(Error::Unpatchable(format!(
                                "static {} changed size and has no DWARF layout: declare its transform",
                                s.key
                            )));
                        }
                    },
                }
            }
        };
        for c in &copies {
            let old_size = old_sym.map_or(0, |o| o.size);
            if c.old_offset + c.len > old_size || c.new_offset + c.len > s.size {
                return Err(Error::Unpatchable(format!("transform of {} copies field {} out of bounds", s.key, c.field)));
            }
        }
        let init = match new.bytes_at(s.addr, s.size) {
            Some(b) if !new.section_at(s.addr).is_some_and(|x| x.3) => b.to_vec(),
            _ => vec![0; s.size as usize],
        };
        offset = (offset + 63) & !63;
        out.push(StaticPatch {
            name: s.key.clone(),
            old: old_sym.map(|o| (o.addr, o.size)),
            data_offset: offset,
            size: s.size,
            init: hex::encode(init),
            copies,
        });
        offset += s.size;
    }
    Ok((out, offset))
}

fn frame_point(elf: &Elf, fd: &dwarf::FuncDwarf, r: &diff::Ref, fstart: u64) -> Result<FramePoint> {
    let addr = fstart + r.insn_off;
    let (cfa, saved) = dwarf::cfi_at(elf, addr)?;
    Ok(FramePoint { addr, call_len: r.pc_after - r.insn_off, cfa, saved, vars: fd.vars_at(addr) })
}

fn available(params: &[Param], vars: &[VarLoc]) -> bool {
    params.iter().all(|p| vars.iter().any(|v| v.name == p.name))
}

/// The semantic mapping table entry of one changed function: matching call sites in the old and
/// new versions whose frames can be carried over.
fn map_function(
    old: &Elf,
    new: &Elf,
    f: &PatchedFunction,
    (a_new, a_old): &(Analysed, Option<Analysed>),
    opts: &BuildOptions,
) -> Result<Option<FunctionMapping>> {
    let (Some(a_old), Some((old_addr, old_size))) = (a_old, f.old) else { return Ok(None) };
    let fd_old = dwarf::function(old, old_addr, old_size)?;
    let fd_new = dwarf::function(new, f.new.0, f.new.1)?;
    let plain = f.name.rsplit(':').next().unwrap_or(&f.name);
    let helper_sym = new.syms.iter().find(|s| s.is_func && s.name == format!("{HELPER_PREFIX}{plain}"));
    let helper = match helper_sym {
        Some(h) => Some(Helper {
            name: h.key.clone(),
            new_vaddr: h.addr,
            params: dwarf::function(new, h.addr, h.size)?.params,
        }),
        None => None,
    };
    if helper.is_none() && !opts.restart_at_entry.iter().any(|n| n == plain) {
        return Ok(None);
    }
    let old_sites = diff::call_sites(a_old);
    let new_sites = diff::call_sites(a_new);
    let mut points = Vec::new();
    for (callee, ordinal, r_old) in &old_sites {
        let Some((_, _, r_new)) = new_sites.iter().find(|(c, o, _)| c == callee && o == ordinal) else { continue };
        let p_old = frame_point(old, &fd_old, r_old, old_addr)?;
        let p_new = frame_point(new, &fd_new, r_new, f.new.0)?;
        let forward = available(&fd_new.params, &p_old.vars)
            && helper.as_ref().is_none_or(|h| available(&h.params, &p_old.vars));
        let backward = available(&fd_old.params, &p_new.vars);
        // The state must correspond: every variable live at the point is carried over (as an
        // argument of the new function or of the helper), otherwise restarting would drop it.
        let carried = |v: &VarLoc, params: &[Param]| params.iter().any(|p| p.name == v.name);
        let complete = p_old.vars.iter().all(|v| {
            carried(v, &fd_new.params) || helper.as_ref().is_some_and(|h| carried(v, &h.params))
        }) && p_new.vars.iter().all(|v| carried(v, &fd_old.params));
        if !(forward && backward && complete) {
            continue;
        }
        points.push(SafePoint {
            callee: callee.clone(),
            ordinal: *ordinal,
            interruptible: opts.interruptible_calls.iter().any(|c| c == callee),
            old: p_old,
            new: p_new,
        });
    }
    if points.is_empty() {
        return Ok(None);
    }
    Ok(Some(FunctionMapping {
        function: f.name.clone(),
        old_entry: old_addr,
        new_entry: f.new.0,
        old_params: fd_old.params,
        new_params: fd_new.params,
        helper,
        points,
    }))
}
