//! Thumb-2 (ARMv7-M, Cortex-M) normalisation: BL / B.W immediates and literal-pool pointers.
//!
//! Thumb code mixes 16- and 32-bit instructions with literal pools, so the region is read as a
//! stream of halfwords from its start: at a 4-byte aligned position, a word whose value lies in
//! the image is taken as a pointer (literal pools, vector tables, function-pointer tables; a
//! BL or B.W pair is never such a value, its halfwords being `0xf000..` / `0x8000..`);
//! otherwise a halfword starting a 32-bit instruction is read with the next one, and BL (T1),
//! B.W (T4) and B<c>.W (T3) get the displacement predicted for the new file. Only immediate
//! bits change, so the halfword stream splits the same way in the rewritten bytes.

use super::plan::Plan;
use super::rewrite::{in_image, predicted, ptr32};

fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u64::from(v) << shift) as i64) >> shift
}

fn half(buf: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([buf[at], buf[at + 1]]))
}

/// Normalises Thumb code in `buf` (loaded at `va`) for instructions starting before `limit`;
/// returns the bytes handled (possibly `limit + 2` when a 32-bit instruction straddles it).
/// A 32-bit prefix in the last halfword of `buf` is left as is.
pub fn thumb_window(plan: &Plan, buf: &mut [u8], va: u64, limit: usize) -> usize {
    let mut at = (va % 2) as usize;
    while at < limit && at + 2 <= buf.len() {
        let pc = va + at as u64;
        if pc.is_multiple_of(4) && at + 4 <= buf.len() {
            let w = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
            if in_image(plan, u64::from(w)) {
                buf[at..at + 4].copy_from_slice(&ptr32(plan, w).to_le_bytes());
                at += 4;
                continue;
            }
        }
        let hw1 = half(buf, at);
        if hw1 >> 11 < 0b11101 {
            at += 2;
            continue;
        }
        if at + 4 > buf.len() {
            at += 2;
            continue;
        }
        let hw2 = half(buf, at + 2);
        if let Some((n1, n2)) = branch32(plan, pc, hw1, hw2) {
            buf[at..at + 2].copy_from_slice(&(n1 as u16).to_le_bytes());
            buf[at + 2..at + 4].copy_from_slice(&(n2 as u16).to_le_bytes());
        }
        at += 4;
    }
    at
}

/// The 32-bit instruction `hw1 hw2` at `pc` with its branch displacement predicted, when it is
/// BL, B.W or B<c>.W and the prediction fits the field.
pub fn branch32(plan: &Plan, pc: u64, hw1: u32, hw2: u32) -> Option<(u32, u32)> {
    if hw1 & 0xf800 != 0xf000 {
        return None;
    }
    let s = (hw1 >> 10) & 1;
    let (j1, j2) = ((hw2 >> 13) & 1, (hw2 >> 11) & 1);
    match hw2 & 0xd000 {
        // BL (T1) and B.W (T4): S:I1:I2:imm10:imm11:0, I = NOT(J XOR S).
        0xd000 | 0x9000 => {
            let (i1, i2) = (!(j1 ^ s) & 1, !(j2 ^ s) & 1);
            let imm =
                (s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3ff) << 12) | ((hw2 & 0x7ff) << 1);
            let target = pc.wrapping_add(4).wrapping_add(sext(imm, 25) as u64);
            let p = predicted(plan, pc, target).wrapping_sub(4);
            if p % 2 != 0 || !(-(1 << 24)..1 << 24).contains(&p) {
                return None;
            }
            let v = p as u32;
            let (s, i1, i2) = ((v >> 24) & 1, (v >> 23) & 1, (v >> 22) & 1);
            let (j1, j2) = ((!i1 ^ s) & 1, (!i2 ^ s) & 1);
            Some((
                (hw1 & 0xf800) | (s << 10) | ((v >> 12) & 0x3ff),
                (hw2 & 0xd000) | (j1 << 13) | (j2 << 11) | ((v >> 1) & 0x7ff),
            ))
        }
        // B<c>.W (T3): S:J2:J1:imm6:imm11:0; conditions 111x encode other instructions.
        0x8000 if (hw1 >> 6) & 0xe != 0xe => {
            let imm =
                (s << 20) | (j2 << 19) | (j1 << 18) | ((hw1 & 0x3f) << 12) | ((hw2 & 0x7ff) << 1);
            let target = pc.wrapping_add(4).wrapping_add(sext(imm, 21) as u64);
            let p = predicted(plan, pc, target).wrapping_sub(4);
            if p % 2 != 0 || !(-(1 << 20)..1 << 20).contains(&p) {
                return None;
            }
            let v = p as u32;
            Some((
                (hw1 & 0xfbc0) | (((v >> 20) & 1) << 10) | ((v >> 12) & 0x3f),
                (hw2 & 0xd000)
                    | (((v >> 18) & 1) << 13)
                    | (((v >> 19) & 1) << 11)
                    | ((v >> 1) & 0x7ff),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exe::plan::AddressMap;

    fn shifted_plan() -> Plan {
        // Everything from 0x2000 on moved up by 0x100 in the new file.
        Plan {
            regions: vec![],
            image: (0x1000, 0x10000),
            map: AddressMap {
                points: vec![(0x1000, 0), (0x2000, 0x100)],
            },
        }
    }

    /// BL (T1) from `pc` to `target`, as an assembler encodes it.
    fn bl(pc: u64, target: u64) -> (u32, u32) {
        let off = (target as i64 - pc as i64 - 4) as u32;
        let s = (off >> 24) & 1;
        let (i1, i2) = ((off >> 23) & 1, (off >> 22) & 1);
        (
            0xf000 | (s << 10) | ((off >> 12) & 0x3ff),
            0xd000 | (((!i1 ^ s) & 1) << 13) | (((!i2 ^ s) & 1) << 11) | ((off >> 1) & 0x7ff),
        )
    }

    #[test]
    fn bl_predicts_the_moved_target_forwards_and_backwards() {
        let plan = shifted_plan();
        // Forwards across the shift: 0x1000 → 0x3000 becomes 0x1000 → 0x3100.
        let (h1, h2) = bl(0x1000, 0x3000);
        assert_eq!(branch32(&plan, 0x1000, h1, h2), Some(bl(0x1000, 0x3100)));
        // Backwards from moved code to unmoved code: 0x4000 → 0x1800 becomes 0x4100 → 0x1800.
        let (h1, h2) = bl(0x4000, 0x1800);
        assert_eq!(branch32(&plan, 0x4000, h1, h2), Some(bl(0x4100, 0x1800)));
    }

    #[test]
    fn conditional_wide_branch_and_b_w_keep_their_opcode_bits() {
        let plan = shifted_plan();
        // B.W (T4) is BL with bit 14 clear.
        let (h1, h2) = bl(0x1000, 0x3000);
        let (n1, n2) = branch32(&plan, 0x1000, h1, h2 & !0x4000).unwrap();
        assert_eq!((n1, n2 | 0x4000), bl(0x1000, 0x3100));
        // BNE.W (T3, cond 1) from 0x1ff0 to 0x2010 (+0x1c): predicted +0x11c.
        let (h1, h2) = (0xf040, 0x8000 | (0x1c >> 1));
        let (n1, n2) = branch32(&plan, 0x1ff0, h1, h2).unwrap();
        assert_eq!(n1 & 0xfbc0, 0xf040, "condition kept");
        assert_eq!(n2, 0x8000 | (0x11c >> 1));
        // Conditions 111x are other instructions: untouched.
        assert_eq!(branch32(&plan, 0x1ff0, 0xf3c0, 0x8000), None);
    }

    #[test]
    fn window_rewrites_pointers_and_branches_and_leaves_other_code() {
        let plan = shifted_plan();
        let mut buf = Vec::new();
        // 0x1000: a literal word pointing into the moved part (odd: a Thumb function pointer).
        buf.extend_from_slice(&0x2401u32.to_le_bytes());
        // 0x1004: movs r0, #1 ; 0x1006: BL 0x3000 (straddles a word boundary).
        buf.extend_from_slice(&0x2001u16.to_le_bytes());
        let (h1, h2) = bl(0x1006, 0x3000);
        buf.extend_from_slice(&(h1 as u16).to_le_bytes());
        buf.extend_from_slice(&(h2 as u16).to_le_bytes());
        // 0x100a: bx lr ; 0x100c: a constant outside the image.
        buf.extend_from_slice(&0x4770u16.to_le_bytes());
        buf.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        let mut out = buf.clone();
        let n = thumb_window(&plan, &mut out, 0x1000, buf.len());
        assert_eq!(n, buf.len());
        assert_eq!(&out[0..4], &0x2501u32.to_le_bytes());
        assert_eq!(&out[4..6], &buf[4..6]);
        let (e1, e2) = bl(0x1006, 0x3100);
        assert_eq!(&out[6..8], &(e1 as u16).to_le_bytes());
        assert_eq!(&out[8..10], &(e2 as u16).to_le_bytes());
        assert_eq!(&out[10..], &buf[10..]);
    }
}
