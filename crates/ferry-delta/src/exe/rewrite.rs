//! Streaming normalisation of the old file: every reference in a planned region is replaced by
//! the value it is predicted to have in the new file (its target moved through the address map,
//! relative to its own moved position). Where the prediction is right, the add-diff is zero.
//!
//! Decoding always reads the raw old bytes, so the differ and apply make the same decisions;
//! both run this one function.

use std::io::{self, Read, Write};

use iced_x86::{Decoder, DecoderOptions, OpKind};

use super::plan::{Plan, Region, RegionKind};

/// Bytes processed per window; a multiple of every word size.
const WINDOW: usize = 256 * 1024;
/// Lookahead kept past a window so that no instruction or word is cut.
const LOOKAHEAD: usize = 16;

/// Copies `len` bytes from `src` to `dst`, normalising the regions of `plan`.
pub fn rewrite(plan: &Plan, src: &mut impl Read, dst: &mut impl Write, len: u64) -> io::Result<()> {
    let mut pos = 0u64;
    let mut buf = Vec::with_capacity(WINDOW + LOOKAHEAD);
    for region in &plan.regions {
        copy_exact(src, dst, region.offset - pos, &mut buf)?;
        rewrite_region(plan, region, src, dst, &mut buf)?;
        pos = region.offset + region.len;
    }
    copy_exact(src, dst, len - pos, &mut buf)
}

/// Normalises an in-memory file (the differ's entry point).
pub fn rewrite_slice(plan: &Plan, old: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(old.len());
    rewrite(plan, &mut &old[..], &mut out, old.len() as u64)
        .expect("in-memory rewrite cannot fail");
    out
}

fn copy_exact(
    src: &mut impl Read,
    dst: &mut impl Write,
    n: u64,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        let take = left.min(WINDOW as u64) as usize;
        buf.resize(take, 0);
        src.read_exact(buf)?;
        dst.write_all(buf)?;
        left -= take as u64;
    }
    Ok(())
}

fn rewrite_region(
    plan: &Plan,
    region: &Region,
    src: &mut impl Read,
    dst: &mut impl Write,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.clear();
    let mut unread = region.len;
    let mut done = 0u64;
    loop {
        let want = (WINDOW + LOOKAHEAD).saturating_sub(buf.len()) as u64;
        let take = want.min(unread) as usize;
        let old_len = buf.len();
        buf.resize(old_len + take, 0);
        src.read_exact(&mut buf[old_len..])?;
        unread -= take as u64;
        let last = unread == 0;
        let limit = if last {
            buf.len()
        } else {
            buf.len() - LOOKAHEAD
        };
        let va = region.va + done;
        let consumed = match region.kind {
            RegionKind::X86_64 => x86_window(plan, buf, va, limit),
            RegionKind::Thumb => super::thumb::thumb_window(plan, buf, va, limit),
            kind => words_window(plan, kind, buf, va, limit),
        };
        let consumed = if last { buf.len() } else { consumed };
        dst.write_all(&buf[..consumed])?;
        buf.drain(..consumed);
        done += consumed as u64;
        if last {
            return Ok(());
        }
    }
}

/// True when `v` lies in the old image (only such values count as pointers).
pub(super) fn in_image(plan: &Plan, v: u64) -> bool {
    v >= plan.image.0 && v < plan.image.1
}

/// The value a reference from `from` (the address its offset is relative to) to `target` is
/// predicted to hold in the new file.
fn predict_rel(plan: &Plan, from: u64, target: u64) -> i64 {
    plan.map.map(target).wrapping_sub(plan.map.map(from)) as i64
}

/// Normalises x86-64 instructions starting before `limit`; returns the bytes fully handled.
fn x86_window(plan: &Plan, buf: &mut [u8], va: u64, limit: usize) -> usize {
    let mut edits: Vec<(usize, i32)> = Vec::new();
    let mut end = 0usize;
    {
        let mut decoder = Decoder::with_ip(64, &buf[..], va, DecoderOptions::NONE);
        while decoder.can_decode() && (decoder.position() < limit) {
            let start = decoder.position();
            let instr = decoder.decode();
            end = start + instr.len();
            if instr.is_invalid() {
                continue;
            }
            let next_ip = instr.next_ip();
            let offsets = decoder.get_constant_offsets(&instr);
            if instr.op0_kind() == OpKind::NearBranch64 && offsets.immediate_size() == 4 {
                let target = instr.near_branch_target();
                if in_image(plan, target) {
                    let v = predict_rel(plan, next_ip, target);
                    edits.push((start + offsets.immediate_offset(), v as i32));
                }
            } else if instr.is_ip_rel_memory_operand() && offsets.displacement_size() == 4 {
                let target = instr.ip_rel_memory_address();
                if in_image(plan, target) {
                    let v = predict_rel(plan, next_ip, target);
                    edits.push((start + offsets.displacement_offset(), v as i32));
                }
            }
        }
    }
    for (at, v) in edits {
        buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    end
}

/// Normalises fixed-size words (ARM code or pointers) before `limit`; returns bytes handled.
fn words_window(plan: &Plan, kind: RegionKind, buf: &mut [u8], va: u64, limit: usize) -> usize {
    let size = if kind == RegionKind::Ptr64 { 8 } else { 4 };
    let skip = ((size as u64 - va % size as u64) % size as u64) as usize;
    let mut at = skip;
    while at + size <= limit {
        let pc = va + at as u64;
        if size == 8 {
            let v = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
            if in_image(plan, v) {
                buf[at..at + 8].copy_from_slice(&plan.map.map(v).to_le_bytes());
            }
        } else {
            let w = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
            let nw = match kind {
                RegionKind::Aarch64 => super::arm::aarch64_word(plan, pc, w),
                RegionKind::Arm32 => super::arm::arm32_word(plan, pc, w),
                _ => ptr32(plan, w),
            };
            buf[at..at + 4].copy_from_slice(&nw.to_le_bytes());
        }
        at += size;
    }
    at
}

/// A 32-bit value that points into the image, moved through the map.
pub(super) fn ptr32(plan: &Plan, w: u32) -> u32 {
    if in_image(plan, u64::from(w)) {
        plan.map.map(u64::from(w)) as u32
    } else {
        w
    }
}

/// Predicted relative value, for the ARM encoders.
pub(super) fn predicted(plan: &Plan, from: u64, target: u64) -> i64 {
    if in_image(plan, target) {
        predict_rel(plan, from, target)
    } else {
        target.wrapping_sub(from) as i64
    }
}
