//! Moving a thread's frame from one version of a function to the other at a safe point.

use crate::bundle::{FramePoint, Loc, Param};
use crate::error::{Error, Result};
use crate::ptrace::{self, Mem, Regs};

/// A thread stopped at a safe point, with its frame decoded.
pub struct Frame {
    /// Canonical frame address.
    pub cfa: u64,
    /// Registers at the point.
    pub regs: Regs,
    /// Register values of the caller (callee-saved registers restored from the frame).
    pub caller: Vec<(u16, u64)>,
    /// Variable values by name.
    pub vars: Vec<(String, u64)>,
}

/// Decodes the frame of a thread stopped at `point` (addresses already runtime).
pub fn read_frame(mem: &Mem, regs: &Regs, point: &FramePoint) -> Result<Frame> {
    let tid_err = |what: &str| Error::Target { pid: 0, reason: what.to_string() };
    let cfa = ptrace::dwarf_reg(regs, point.cfa.0).ok_or_else(|| tid_err("CFA register unsupported"))? as i64 + point.cfa.1;
    let cfa = cfa as u64;
    let mut caller = Vec::new();
    for (reg, off) in &point.saved {
        caller.push((*reg, mem.read_u64(cfa.wrapping_add(*off as u64))?));
    }
    let mut vars = Vec::new();
    for v in &point.vars {
        let raw = match v.loc {
            Loc::Reg(r) => match ptrace::dwarf_reg(regs, r) {
                Some(x) => x,
                None => continue,
            },
            Loc::Mem(r, off) => match ptrace::dwarf_reg(regs, r) {
                Some(base) => mem.read_u64(base.wrapping_add(off as u64))?,
                None => continue,
            },
            Loc::Cfa(off) => mem.read_u64(cfa.wrapping_add(off as u64))?,
            Loc::Const(c) => c,
        };
        let val = if v.size >= 8 { raw } else { raw & ((1u64 << (8 * v.size)) - 1) };
        vars.push((v.name.clone(), val));
    }
    Ok(Frame { cfa, regs: *regs, caller, vars })
}

/// Argument values for `params`, taken by name from the frame's variables.
pub fn args_for(frame: &Frame, params: &[Param], function: &str) -> Result<Vec<u64>> {
    if params.len() > 6 {
        return Err(Error::Unpatchable(format!("{function} takes more than 6 register arguments")));
    }
    params
        .iter()
        .map(|p| {
            frame.vars.iter().find(|(n, _)| *n == p.name).map(|(_, v)| *v).ok_or_else(|| {
                Error::Unpatchable(format!("variable {} needed by {function} is not live at the safe point", p.name))
            })
        })
        .collect()
}

/// Registers that make the thread call `target(args)` with the old frame popped: callee-saved
/// registers restored to the caller's values and the caller's return address on top. When
/// `return_to` is given, the call returns there instead (used to run a helper first); the stack
/// pointer is then lowered by two slots so the ABI's 16-byte alignment still holds.
pub fn call_regs(mem: &Mem, frame: &Frame, target: u64, args: &[u64], return_to: Option<u64>) -> Result<Regs> {
    let mut regs = frame.regs;
    for (reg, val) in &frame.caller {
        ptrace::set_dwarf_reg(&mut regs, *reg, *val);
    }
    regs.rsp = frame.cfa - 8;
    if let Some(ret) = return_to {
        regs.rsp = frame.cfa - 24;
        mem.write(regs.rsp, &ret.to_le_bytes())?;
    }
    let slots = [&mut regs.rdi, &mut regs.rsi, &mut regs.rdx, &mut regs.rcx, &mut regs.r8, &mut regs.r9];
    for (slot, v) in slots.into_iter().zip(args) {
        *slot = *v;
    }
    regs.rip = target;
    regs.rax = 0;
    regs.orig_rax = u64::MAX;
    Ok(regs)
}

/// A copy of a [`FramePoint`] with its address moved to runtime.
pub fn at_runtime(p: &FramePoint, addr: u64) -> FramePoint {
    FramePoint { addr, ..p.clone() }
}
