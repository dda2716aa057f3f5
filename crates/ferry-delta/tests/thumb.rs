//! The Thumb-2 / raw Cortex-M normalisation on synthetic firmware images built here (no
//! toolchain needed): a vector table, functions calling each other with BL and B<c>.W, literal
//! pools holding function and data pointers, and read-only data. The new version inserts a
//! function near the start, so everything after it moves.

use std::io::Cursor;

use ferry_delta::{DiffOptions, apply, diff};

const BASE: u32 = 0x0800_0000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

enum Item {
    /// A 16-bit instruction (never a 32-bit prefix).
    Op(u16),
    /// BL to a function.
    Call(usize),
    /// BNE.W a few bytes on within the function (displacement fixed: does not move).
    Branch(u16),
    /// A literal-pool word: a function pointer (odd) or a pointer into the data.
    FnPtr(usize),
    DataPtr(u32),
}

/// The items of function `id` of a program with `count` functions: the same for a given id in
/// every version.
fn function(id: usize, count: usize) -> Vec<Item> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1) * 0x2545_f491);
    let mut items = vec![Item::Op(0xb500)]; // push {lr}
    for _ in 0..4 + rng.next() % 12 {
        items.push(match rng.next() % 10 {
            0..=2 => Item::Call(rng.next() as usize % count),
            3 => Item::Branch(0x8000 | 2),
            _ => Item::Op(match rng.next() % 4 {
                0 => 0x2000 | (rng.next() & 0x7ff) as u16, // movs / cmp
                1 => 0x6800 | (rng.next() & 0x7ff) as u16, // ldr rX, [rY, #imm]
                2 => 0x1800 | (rng.next() & 0x1ff) as u16, // adds
                _ => 0x4800 | (rng.next() & 0x7ff) as u16, // ldr rX, [pc, #imm]
            }),
        });
    }
    items.push(Item::Op(0xbd00)); // pop {pc}
    items.push(Item::FnPtr(rng.next() as usize % count));
    items.push(Item::DataPtr((rng.next() % 4096) & !3));
    items
}

fn bl(pc: u32, target: u32) -> [u16; 2] {
    let off = target.wrapping_sub(pc).wrapping_sub(4);
    let s = (off >> 24) & 1;
    let (i1, i2) = ((off >> 23) & 1, (off >> 22) & 1);
    [
        (0xf000 | (s << 10) | ((off >> 12) & 0x3ff)) as u16,
        (0xd000 | (((!i1 ^ s) & 1) << 13) | (((!i2 ^ s) & 1) << 11) | ((off >> 1) & 0x7ff)) as u16,
    ]
}

fn size(items: &[Item], start: u32) -> u32 {
    let mut at = start;
    for item in items {
        match item {
            Item::Op(_) => at += 2,
            Item::Call(_) | Item::Branch(_) => at += 4,
            Item::FnPtr(_) | Item::DataPtr(_) => at = ((at + 3) & !3) + 4,
        }
    }
    at - start
}

/// A raw Cortex-M image with `count` functions; `inserted` adds one more after the third.
fn firmware(count: usize, inserted: bool) -> Vec<u8> {
    let mut order: Vec<usize> = (0..count).collect();
    if inserted {
        order.insert(3, count);
    }
    let total = count + 1;
    let bodies: Vec<Vec<Item>> = (0..total).map(|id| function(id, count)).collect();
    let mut addr = vec![0u32; total];
    let mut at = BASE + 64;
    for &id in &order {
        addr[id] = at;
        at += size(&bodies[id], at);
        at = (at + 3) & !3;
    }
    let data_start = at;
    let mut img: Vec<u8> = Vec::new();
    let vectors = [0x2002_0000, addr[0] | 1, addr[1] | 1, addr[1] | 1];
    for v in vectors {
        img.extend_from_slice(&u32::to_le_bytes(v));
    }
    img.resize(64, 0);
    for &id in &order {
        assert_eq!(BASE + img.len() as u32, addr[id]);
        for item in &bodies[id] {
            let pc = BASE + img.len() as u32;
            match *item {
                Item::Op(op) => img.extend_from_slice(&op.to_le_bytes()),
                Item::Call(f) => {
                    for h in bl(pc, addr[f]) {
                        img.extend_from_slice(&h.to_le_bytes());
                    }
                }
                Item::Branch(h2) => {
                    img.extend_from_slice(&0xf040u16.to_le_bytes());
                    img.extend_from_slice(&h2.to_le_bytes());
                }
                Item::FnPtr(_) | Item::DataPtr(_) => {
                    img.resize((img.len() + 3) & !3, 0);
                    let v = match *item {
                        Item::FnPtr(f) => addr[f] | 1,
                        Item::DataPtr(off) => data_start + off,
                        _ => unreachable!(),
                    };
                    img.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        img.resize((img.len() + 3) & !3, 0);
    }
    let mut rng = Rng(7);
    img.extend((0..4096).map(|_| b"abcdefgh ijklmnop\0"[rng.next() as usize % 18]));
    img
}

fn patch(old: &[u8], new: &[u8], exec_aware: bool) -> (Vec<u8>, u64) {
    let opts = DiffOptions {
        exec_aware,
        level: 19,
        ..DiffOptions::default()
    };
    let mut out = Vec::new();
    let stats = diff(old, new, &opts, &mut out).unwrap();
    (out, stats.regions_normalised)
}

#[test]
fn shifted_thumb_firmware_round_trips() {
    let old = firmware(1500, false);
    let new = firmware(1500, true);
    assert_ne!(old.len(), new.len());
    let (aware, regions) = patch(&old, &new, true);
    assert!(
        regions > 0,
        "the raw image was not recognised or not normalised"
    );
    let mut out = Vec::new();
    apply(Cursor::new(&old), aware.as_slice(), &mut out).unwrap();
    assert_eq!(out, new);
}

#[test]
fn thumb_normalisation_makes_the_patch_smaller() {
    let old = firmware(1500, false);
    let new = firmware(1500, true);
    let (aware, _) = patch(&old, &new, true);
    let (raw, regions) = patch(&old, &new, false);
    assert_eq!(regions, 0);
    eprintln!(
        "normalised patch {} bytes, plain {} bytes",
        aware.len(),
        raw.len()
    );
    assert!(
        aware.len() * 2 < raw.len(),
        "normalised patch {} bytes is not under half the plain one ({} bytes)",
        aware.len(),
        raw.len()
    );
    let mut out = Vec::new();
    apply(Cursor::new(&old), raw.as_slice(), &mut out).unwrap();
    assert_eq!(out, new);
}

#[test]
fn data_that_only_looks_like_firmware_round_trips() {
    // A vector table in front of random bytes: recognised as Cortex-M, nothing decodes sensibly.
    let mut rng = Rng(99);
    let mut old: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    for (i, v) in [0x2000_4000u32, BASE | 0x101, BASE | 0x201, BASE | 0x201]
        .iter()
        .enumerate()
    {
        old[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    old[16..64].fill(0);
    let mut new = old.clone();
    new.splice(1000..1000, (0..333).map(|i| i as u8));
    new[40_000] ^= 0xff;
    let (aware, _) = patch(&old, &new, true);
    let mut out = Vec::new();
    apply(Cursor::new(&old), aware.as_slice(), &mut out).unwrap();
    assert_eq!(out, new);
}
