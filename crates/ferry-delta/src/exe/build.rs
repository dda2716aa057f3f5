//! Building the transform plan for an old/new pair: regions from the old ELF's sections, the
//! address map from a first matching pass, and the per-region choice normalised vs raw.

use std::collections::BTreeMap;

use super::elf::{Elf, Machine};
use super::plan::{AddressMap, Plan, Region, RegionKind};
use crate::matcher::{Block, CopyRange};

/// Regions are cut into pieces of at most this many bytes, each chosen on its own.
pub const PIECE: u64 = 64 * 1024;
/// Copies shorter than this do not shape the address map.
pub const MIN_MAP_COPY: usize = 32;

/// The regions (with an empty map) worth normalising in `old` (an ELF file or a raw Cortex-M
/// image described as one), or `None` when there are none: loaded sections by their content,
/// and `.symtab`, whose symbol values are pointers (kept only where that helps, as any region).
pub fn initial_plan(old: &Elf) -> Option<Plan> {
    let mut secs: Vec<_> = old
        .sections
        .iter()
        .filter(|s| s.size > 0 && (s.alloc && !s.nobits && s.addr != 0 || s.name == ".symtab"))
        .collect();
    secs.sort_by_key(|s| s.offset);
    let mut regions: Vec<Region> = Vec::new();
    for s in secs {
        if regions.last().is_some_and(|r| r.offset + r.len > s.offset) {
            continue;
        }
        let kind = match (s.exec, old.machine) {
            (true, Machine::X86_64) => RegionKind::X86_64,
            (true, Machine::Aarch64) => RegionKind::Aarch64,
            (true, Machine::Arm) if old.thumb => RegionKind::Thumb,
            (true, Machine::Arm) => RegionKind::Arm32,
            _ if old.is64 => RegionKind::Ptr64,
            _ => RegionKind::Ptr32,
        };
        let mut at = 0;
        while at < s.size {
            let len = PIECE.min(s.size - at);
            regions.push(Region {
                kind,
                offset: s.offset + at,
                len,
                va: s.addr + at,
            });
            at += len;
        }
    }
    if regions.is_empty() {
        return None;
    }
    Some(Plan {
        regions,
        image: if old.thumb {
            old.code_region_range()
        } else {
            old.image_range()
        },
        map: AddressMap::default(),
    })
}

/// Derives the old → new address map from section names and long copies between the files.
pub fn address_map(old: &Elf, new: &Elf, found: &[CopyRange]) -> AddressMap {
    // Disjoint old-address intervals, longest copies first: start → (end, delta).
    let mut intervals: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    let mut copies: Vec<(u64, u64, i64)> = Vec::new();
    for c in found.iter().filter(|c| c.len >= MIN_MAP_COPY) {
        if let (Some(ov), Some(nv)) = (
            old.offset_to_va(c.old_pos as u64),
            new.offset_to_va(c.new_pos as u64),
        ) {
            copies.push((ov, c.len as u64, nv as i64 - ov as i64));
        }
    }
    copies.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (start, len, delta) in copies {
        insert_uncovered(&mut intervals, start, start + len, delta);
    }
    // Section starts anchor whatever no copy covers (notably .bss).
    for s in &old.sections {
        if s.addr == 0 || !s.alloc {
            continue;
        }
        if let Some(n) = new.sections.iter().find(|n| n.name == s.name && n.alloc) {
            let len = s.size.max(if s.nobits { 1 } else { 0 }).max(1);
            insert_uncovered(
                &mut intervals,
                s.addr,
                s.addr + len,
                n.addr as i64 - s.addr as i64,
            );
        }
    }
    let mut points: Vec<(u64, i64)> = Vec::new();
    for (&start, &(_, delta)) in &intervals {
        if points.last().is_none_or(|p| p.1 != delta) {
            points.push((start, delta));
        }
    }
    AddressMap { points }
}

fn insert_uncovered(map: &mut BTreeMap<u64, (u64, i64)>, start: u64, end: u64, delta: i64) {
    let mut cur = start;
    // An interval beginning before `start` may cover its head.
    if let Some((_, &(e, _))) = map.range(..=start).next_back() {
        cur = cur.max(e);
    }
    let mut gaps = Vec::new();
    for (&s, &(e, _)) in map.range(start..end) {
        if s > cur {
            gaps.push((cur, s));
        }
        cur = cur.max(e);
    }
    if cur < end {
        gaps.push((cur, end));
    }
    for (s, e) in gaps {
        map.insert(s, (e, delta));
    }
}

/// Keeps the regions whose normalised bytes match `new` at least as well as the raw bytes,
/// judged over the copies of `blocks` (made against `normalised`).
pub fn choose_regions(
    plan: &Plan,
    old: &[u8],
    normalised: &[u8],
    new: &[u8],
    blocks: &[Block],
) -> Vec<Region> {
    let mut score = vec![(0u64, 0u64); plan.regions.len()];
    let mut new_pos = 0usize;
    for b in blocks {
        let (mut o, end) = (b.old_pos, b.old_pos + b.copy_len);
        let mut n = new_pos;
        while o < end {
            let ri = plan
                .regions
                .partition_point(|r| r.offset + r.len <= o as u64);
            let Some(r) = plan.regions.get(ri) else { break };
            if (r.offset as usize) > o {
                let skip = (r.offset as usize - o).min(end - o);
                o += skip;
                n += skip;
                continue;
            }
            let stop = ((r.offset + r.len) as usize).min(end);
            let (mut raw_miss, mut norm_miss) = (0u64, 0u64);
            for k in 0..stop - o {
                raw_miss += u64::from(old[o + k] != new[n + k]);
                norm_miss += u64::from(normalised[o + k] != new[n + k]);
            }
            score[ri].0 += raw_miss;
            score[ri].1 += norm_miss;
            n += stop - o;
            o = stop;
        }
        new_pos += b.copy_len + b.extra_len;
    }
    plan.regions
        .iter()
        .zip(score)
        .filter(|(_, (raw, norm))| norm < raw)
        .map(|(r, _)| *r)
        .collect()
}
