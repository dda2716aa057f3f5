//! Raw ARM Cortex-M firmware images (a flash dump, no ELF headers), recognised by the vector
//! table they start with, and described as a one-section Thumb "ELF" for the transform.

use super::elf::{Elf, Machine, Section, Segment};

/// Vectors checked: initial SP, Reset, NMI, HardFault and the 12 that follow.
const VECTORS: usize = 16;

fn word(data: &[u8], i: usize) -> u64 {
    u64::from(u32::from_le_bytes(
        data[4 * i..4 * i + 4].try_into().expect("4 bytes"),
    ))
}

/// The layout of `data` when it is a raw Cortex-M image: the initial stack pointer (word 0)
/// lies in the RAM regions (`0x1000_0000..=0x4000_0000`, 4-byte aligned), the reset and
/// HardFault vectors are odd (Thumb) addresses inside the image, and every other vector of the
/// first 16 is zero or such an address. The load address is the reset vector rounded down to
/// 1 MiB (or to 16 MiB), whichever puts all of them inside the image.
pub fn cortex_m_image(data: &[u8]) -> Option<Elf> {
    if data.len() < 4 * VECTORS || data.len() % 2 != 0 || data.len() > 1 << 28 {
        return None;
    }
    if data.starts_with(b"\x7fELF") {
        return None;
    }
    let sp = word(data, 0);
    if !(0x1000_0000..=0x4000_0000).contains(&sp) || sp % 4 != 0 {
        return None;
    }
    let reset = word(data, 1);
    let len = data.len() as u64;
    let base = [reset & !0xf_ffff, reset & !0xff_ffff]
        .into_iter()
        .find(|&base| {
            let inside = |v: u64| v & 1 == 1 && v >= base && v - base < len;
            inside(reset)
                && inside(word(data, 3))
                && (2..VECTORS).all(|i| word(data, i) == 0 || inside(word(data, i)))
        })?;
    Some(Elf {
        is64: false,
        machine: Machine::Arm,
        sections: vec![Section {
            name: "image".into(),
            offset: 0,
            size: len,
            addr: base,
            alloc: true,
            exec: true,
            nobits: false,
        }],
        segments: vec![Segment {
            offset: 0,
            filesz: len,
            vaddr: base,
            memsz: len,
        }],
        thumb: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(base: u32, len: usize) -> Vec<u8> {
        let mut img = vec![0u8; len];
        let mut put = |i: usize, v: u32| img[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        put(0, 0x2000_8000);
        put(1, base + 0x101);
        put(2, base + 0x141);
        put(3, base + 0x141);
        put(11, base + 0x141);
        img
    }

    #[test]
    fn recognises_vector_tables_at_common_load_addresses() {
        for base in [0u32, 0x0800_0000, 0x0040_0000, 0x1000_0000] {
            let elf = cortex_m_image(&image(base, 4096)).expect("a Cortex-M image");
            assert_eq!(elf.image_range(), (u64::from(base), u64::from(base) + 4096));
            assert!(elf.thumb);
        }
    }

    #[test]
    fn refuses_what_is_not_a_vector_table() {
        let mut even_reset = image(0, 4096);
        even_reset[4] = 0x00;
        assert!(cortex_m_image(&even_reset).is_none());
        let mut sp_in_flash = image(0, 4096);
        sp_in_flash[..4].copy_from_slice(&0x0000_8000u32.to_le_bytes());
        assert!(cortex_m_image(&sp_in_flash).is_none());
        let mut stray = image(0, 4096);
        stray[4 * 7..4 * 7 + 4].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        assert!(cortex_m_image(&stray).is_none());
        assert!(
            cortex_m_image(b"plain text is never firmware, whatever its length is....").is_none()
        );
    }
}
