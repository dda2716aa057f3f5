//! ARM instruction normalisation: branch and address-forming immediates are replaced by the
//! value predicted for the new file. Only immediate fields change, never opcode bits, so the
//! instruction class found when reading the old word is the class of the rewritten word.

use super::plan::Plan;
use super::rewrite::{predicted, ptr32};

fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u64::from(v) << shift) as i64) >> shift
}

/// Normalises one AArch64 instruction word at address `pc`.
pub fn aarch64_word(plan: &Plan, pc: u64, w: u32) -> u32 {
    if w & 0x7c00_0000 == 0x1400_0000 {
        // B / BL imm26
        let target = pc.wrapping_add((sext(w & 0x03ff_ffff, 26) << 2) as u64);
        let imm = (predicted(plan, pc, target) >> 2) as u32 & 0x03ff_ffff;
        (w & !0x03ff_ffff) | imm
    } else if w & 0xff00_0010 == 0x5400_0000 || w & 0x7e00_0000 == 0x3400_0000 {
        // B.cond / CBZ / CBNZ imm19 at [23:5]
        let target = pc.wrapping_add((sext((w >> 5) & 0x7ffff, 19) << 2) as u64);
        let imm = (predicted(plan, pc, target) >> 2) as u32 & 0x7ffff;
        (w & !(0x7ffff << 5)) | (imm << 5)
    } else if w & 0x7e00_0000 == 0x3600_0000 {
        // TBZ / TBNZ imm14 at [18:5]
        let target = pc.wrapping_add((sext((w >> 5) & 0x3fff, 14) << 2) as u64);
        let imm = (predicted(plan, pc, target) >> 2) as u32 & 0x3fff;
        (w & !(0x3fff << 5)) | (imm << 5)
    } else if w & 0x1f00_0000 == 0x1000_0000 {
        // ADR (bit 31 = 0) / ADRP (bit 31 = 1): immhi [23:5], immlo [30:29]
        let raw = (((w >> 5) & 0x7ffff) << 2) | ((w >> 29) & 3);
        let page = w & 0x8000_0000 != 0;
        let new_imm = if page {
            let base = pc & !0xfff;
            let target = base.wrapping_add((sext(raw, 21) << 12) as u64);
            let t = plan.map.map(target) & !0xfff;
            let b = plan.map.map(pc) & !0xfff;
            if target >= plan.image.0 && target < plan.image.1 {
                (t.wrapping_sub(b) as i64 >> 12) as u32
            } else {
                raw
            }
        } else {
            let target = pc.wrapping_add(sext(raw, 21) as u64);
            predicted(plan, pc, target) as u32
        } & 0x1f_ffff;
        (w & !((0x7ffff << 5) | (3 << 29)))
            | (((new_imm >> 2) & 0x7ffff) << 5)
            | ((new_imm & 3) << 29)
    } else {
        w
    }
}

/// Normalises one A32 word at address `pc`: B/BL immediates, else literal-pool pointers.
pub fn arm32_word(plan: &Plan, pc: u64, w: u32) -> u32 {
    let cond = w >> 28;
    if cond != 0xf && (w >> 25) & 7 == 0b101 {
        let target = pc
            .wrapping_add(8)
            .wrapping_add((sext(w & 0x00ff_ffff, 24) << 2) as u64);
        let imm = ((predicted(plan, pc, target) - 8) >> 2) as u32 & 0x00ff_ffff;
        (w & 0xff00_0000) | imm
    } else {
        ptr32(plan, w)
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

    #[test]
    fn aarch64_bl_predicts_moved_target() {
        let plan = shifted_plan();
        // BL from 0x1000 to 0x3000: offset 0x2000 → predicted 0x2100.
        let bl = 0x9400_0000 | (0x2000 >> 2);
        assert_eq!(aarch64_word(&plan, 0x1000, bl), 0x9400_0000 | (0x2100 >> 2));
        // Opcode bits are preserved for every class.
        for w in [
            0x5400_0041u32,
            0xb400_0080,
            0x3608_0060,
            0x9000_0010,
            0x1000_0100,
        ] {
            assert_eq!(
                (aarch64_word(&plan, 0x1000, w) ^ w) & 0x9f00_001f,
                0,
                "{w:#x}"
            );
        }
    }

    #[test]
    fn arm32_branch_predicts_moved_target() {
        let plan = shifted_plan();
        // B from 0x1000 to 0x3000: imm = (0x3000 - 0x1000 - 8) / 4.
        let b = 0xea00_0000 | ((0x2000 - 8) >> 2);
        assert_eq!(
            arm32_word(&plan, 0x1000, b),
            0xea00_0000 | ((0x2100 - 8) >> 2)
        );
        // A literal pointer into the moved part is moved too; other words stay.
        assert_eq!(arm32_word(&plan, 0x1000, 0x2400), 0x2500);
        assert_eq!(arm32_word(&plan, 0x1000, 0xe59f_0010), 0xe59f_0010);
    }
}
