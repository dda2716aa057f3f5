//! The transform plan stored in a patch: which regions of the old file are normalised, how,
//! and the address mapping old → new used to predict every reference's new value.

use crate::error::{DeltaError, Result};
use crate::varint::{self, SliceReader};

/// How the bytes of one region are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RegionKind {
    /// x86-64 machine code: rel32 branch/call targets and RIP-relative displacements.
    X86_64 = 1,
    /// AArch64 machine code: B/BL, B.cond, CBZ/CBNZ, TBZ/TBNZ, ADR/ADRP immediates.
    Aarch64 = 2,
    /// 32-bit ARM (A32) machine code: B/BL immediates and literal-pool pointers.
    Arm32 = 3,
    /// Aligned little-endian 64-bit absolute pointers into the image.
    Ptr64 = 4,
    /// Aligned little-endian 32-bit absolute pointers into the image.
    Ptr32 = 5,
    /// Thumb-2 (Cortex-M) code: BL / B.W / B<c>.W immediates and literal-pool pointers.
    Thumb = 6,
}

impl RegionKind {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => RegionKind::X86_64,
            2 => RegionKind::Aarch64,
            3 => RegionKind::Arm32,
            4 => RegionKind::Ptr64,
            5 => RegionKind::Ptr32,
            6 => RegionKind::Thumb,
            other => {
                return Err(DeltaError::Corrupt(format!(
                    "unknown transform region kind {other}"
                )));
            }
        })
    }

    /// Word alignment of the kind (1 for variable-length x86 code).
    pub fn align(self) -> u64 {
        match self {
            RegionKind::X86_64 => 1,
            RegionKind::Ptr64 => 8,
            RegionKind::Thumb => 2,
            _ => 4,
        }
    }
}

/// A contiguous range of the old file normalised with one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The normalisation.
    pub kind: RegionKind,
    /// File offset of the first byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Virtual address the first byte is loaded at.
    pub va: u64,
}

/// Piecewise-constant mapping of old virtual addresses to new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap {
    /// Sorted breakpoints: from `old_va` on, addresses move by `delta`.
    pub points: Vec<(u64, i64)>,
}

impl AddressMap {
    /// Where `old_va` is predicted to be in the new file.
    pub fn map(&self, old_va: u64) -> u64 {
        let idx = self.points.partition_point(|&(va, _)| va <= old_va);
        let delta = if idx == 0 {
            self.points.first().map_or(0, |p| p.1)
        } else {
            self.points[idx - 1].1
        };
        old_va.wrapping_add(delta as u64)
    }
}

/// Everything apply needs to rebuild the normalised view of the old file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Sorted, non-overlapping regions.
    pub regions: Vec<Region>,
    /// Virtual address range `[lo, hi)` of the old image; only values inside count as pointers.
    pub image: (u64, u64),
    /// The old → new address mapping.
    pub map: AddressMap,
}

impl Plan {
    /// True when the plan changes nothing.
    pub fn is_identity(&self) -> bool {
        self.regions.is_empty()
    }

    /// Serialises the plan (varints; deltas between sorted values).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        varint::put_u64(&mut out, self.regions.len() as u64);
        let mut prev_end = 0u64;
        for r in &self.regions {
            out.push(r.kind as u8);
            varint::put_u64(&mut out, r.offset - prev_end);
            varint::put_u64(&mut out, r.len);
            varint::put_i64(&mut out, r.va as i64 - r.offset as i64);
            prev_end = r.offset + r.len;
        }
        varint::put_u64(&mut out, self.image.0);
        varint::put_u64(&mut out, self.image.1.saturating_sub(self.image.0));
        varint::put_u64(&mut out, self.map.points.len() as u64);
        let (mut prev_va, mut prev_delta) = (0u64, 0i64);
        for &(va, delta) in &self.map.points {
            varint::put_u64(&mut out, va - prev_va);
            varint::put_i64(&mut out, delta.wrapping_sub(prev_delta));
            prev_va = va;
            prev_delta = delta;
        }
        out
    }

    /// Parses a plan, checking that regions are sorted and inside a file of `old_size` bytes.
    pub fn decode(data: &[u8], old_size: u64) -> Result<Plan> {
        let mut r = SliceReader::new(data, "transform plan");
        let n = r.u64()?;
        if n > data.len() as u64 {
            return Err(DeltaError::Corrupt(
                "transform plan claims more regions than it holds".into(),
            ));
        }
        let mut regions = Vec::with_capacity(n as usize);
        let mut prev_end = 0u64;
        for _ in 0..n {
            let kind = RegionKind::from_u8(r.u8()?)?;
            let offset = prev_end
                .checked_add(r.u64()?)
                .ok_or_else(|| DeltaError::Corrupt("transform region offset overflows".into()))?;
            let len = r.u64()?;
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= old_size)
                .ok_or_else(|| {
                    DeltaError::Corrupt("transform region lies outside the old file".into())
                })?;
            let va = (offset as i64).wrapping_add(r.i64()?) as u64;
            regions.push(Region {
                kind,
                offset,
                len,
                va,
            });
            prev_end = end;
        }
        let lo = r.u64()?;
        let hi = lo.saturating_add(r.u64()?);
        let m = r.u64()?;
        if m > data.len() as u64 {
            return Err(DeltaError::Corrupt(
                "transform plan claims more map points than it holds".into(),
            ));
        }
        let mut points = Vec::with_capacity(m as usize);
        let (mut va, mut delta) = (0u64, 0i64);
        for i in 0..m {
            let step = r.u64()?;
            if i > 0 && step == 0 {
                return Err(DeltaError::Corrupt(
                    "address map points are not strictly sorted".into(),
                ));
            }
            va = va
                .checked_add(step)
                .ok_or_else(|| DeltaError::Corrupt("address map point overflows".into()))?;
            delta = delta.wrapping_add(r.i64()?);
            points.push((va, delta));
        }
        if !r.is_empty() {
            return Err(DeltaError::Corrupt(
                "trailing bytes after the transform plan".into(),
            ));
        }
        Ok(Plan {
            regions,
            image: (lo, hi),
            map: AddressMap { points },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips() {
        let plan = Plan {
            regions: vec![
                Region {
                    kind: RegionKind::X86_64,
                    offset: 0x1000,
                    len: 0x500,
                    va: 0x401000,
                },
                Region {
                    kind: RegionKind::Ptr64,
                    offset: 0x1500,
                    len: 0x100,
                    va: 0x402500,
                },
            ],
            image: (0x400000, 0x500000),
            map: AddressMap {
                points: vec![(0x401000, 16), (0x402000, -8)],
            },
        };
        let bytes = plan.encode();
        assert_eq!(Plan::decode(&bytes, 0x2000).unwrap(), plan);
        assert!(
            Plan::decode(&bytes, 0x1000).is_err(),
            "region beyond the old file"
        );
        assert!(Plan::decode(&bytes[..bytes.len() - 1], 0x2000).is_err());
    }

    #[test]
    fn map_is_piecewise() {
        let m = AddressMap {
            points: vec![(100, 5), (200, -5)],
        };
        assert_eq!(m.map(50), 55);
        assert_eq!(m.map(150), 155);
        assert_eq!(m.map(200), 195);
        assert_eq!(AddressMap::default().map(7), 7);
    }
}
