//! Just enough little-endian ELF parsing to find code, data and the load layout.

/// Machine architectures the executable-aware mode understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// x86-64.
    X86_64,
    /// AArch64.
    Aarch64,
    /// 32-bit ARM.
    Arm,
    /// Anything else (only pointers are normalised).
    Other,
}

/// One section with bytes in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name from the section header string table.
    pub name: String,
    /// File offset.
    pub offset: u64,
    /// Size in the file.
    pub size: u64,
    /// Load address (0 when not loaded).
    pub addr: u64,
    /// Loaded into memory (SHF_ALLOC).
    pub alloc: bool,
    /// Holds code (SHF_EXECINSTR).
    pub exec: bool,
    /// Occupies no file bytes (SHT_NOBITS).
    pub nobits: bool,
}

/// A PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// File offset.
    pub offset: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Load address.
    pub vaddr: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// The parts of an ELF file the transform needs.
#[derive(Debug, Clone)]
pub struct Elf {
    /// 64-bit class.
    pub is64: bool,
    /// Architecture.
    pub machine: Machine,
    /// Sections with their names.
    pub sections: Vec<Section>,
    /// Load segments.
    pub segments: Vec<Segment>,
    /// 32-bit ARM code is Thumb: the entry point is odd (Cortex-M), or a raw Cortex-M image.
    pub thumb: bool,
}

fn rd(data: &[u8], off: u64, n: usize) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let b = data.get(off..off.checked_add(n)?)?;
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    Some(v)
}

impl Elf {
    /// Parses `data` when it is a little-endian ELF file; `None` otherwise or when malformed.
    pub fn parse(data: &[u8]) -> Option<Elf> {
        if data.len() < 52 || &data[..4] != b"\x7fELF" || data[5] != 1 {
            return None;
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let machine = match rd(data, 18, 2)? {
            62 => Machine::X86_64,
            183 => Machine::Aarch64,
            40 => Machine::Arm,
            _ => Machine::Other,
        };
        let w = if is64 { 8 } else { 4 };
        let (phoff, shoff) = if is64 {
            (rd(data, 32, 8)?, rd(data, 40, 8)?)
        } else {
            (rd(data, 28, 4)?, rd(data, 32, 4)?)
        };
        let base = if is64 { 54 } else { 42 };
        let phentsize = rd(data, base, 2)?;
        let phnum = rd(data, base + 2, 2)?;
        let shentsize = rd(data, base + 4, 2)?;
        let shnum = rd(data, base + 6, 2)?;
        let shstrndx = rd(data, base + 8, 2)?;
        let mut segments = Vec::new();
        for i in 0..phnum {
            let p = phoff.checked_add(i * phentsize)?;
            if rd(data, p, 4)? != 1 {
                continue;
            }
            let seg = if is64 {
                Segment {
                    offset: rd(data, p + 8, 8)?,
                    vaddr: rd(data, p + 16, 8)?,
                    filesz: rd(data, p + 32, 8)?,
                    memsz: rd(data, p + 40, 8)?,
                }
            } else {
                Segment {
                    offset: rd(data, p + 4, 4)?,
                    vaddr: rd(data, p + 8, 4)?,
                    filesz: rd(data, p + 16, 4)?,
                    memsz: rd(data, p + 20, 4)?,
                }
            };
            segments.push(seg);
        }
        let mut raw = Vec::new();
        for i in 0..shnum {
            let s = shoff.checked_add(i * shentsize)?;
            let name = rd(data, s, 4)?;
            let ty = rd(data, s + 4, 4)?;
            let flags = rd(data, s + 8, w)?;
            let addr = rd(data, s + 8 + w as u64, w)?;
            let offset = rd(data, s + 8 + 2 * w as u64, w)?;
            let size = rd(data, s + 8 + 3 * w as u64, w)?;
            raw.push((name, ty, flags, addr, offset, size));
        }
        let strtab = raw.get(shstrndx as usize).map(|r| (r.4, r.5));
        let sections = raw
            .iter()
            .filter(|r| r.1 != 0)
            .map(|&(name, ty, flags, addr, offset, size)| Section {
                name: strtab
                    .and_then(|(o, n)| section_name(data, o, n, name))
                    .unwrap_or_default(),
                offset,
                size: if ty == 8 { 0 } else { size },
                addr,
                alloc: flags & 2 != 0,
                exec: flags & 4 != 0,
                nobits: ty == 8,
            })
            .filter(|s| {
                s.nobits
                    || s.offset
                        .checked_add(s.size)
                        .is_some_and(|e| e <= data.len() as u64)
            })
            .collect();
        let entry = rd(data, 24, w)?;
        Some(Elf {
            is64,
            machine,
            sections,
            segments,
            thumb: machine == Machine::Arm && entry & 1 == 1,
        })
    }

    /// Virtual address of file offset `off`, when a load segment maps it.
    pub fn offset_to_va(&self, off: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| off >= s.offset && off < s.offset + s.filesz)
            .map(|s| s.vaddr + (off - s.offset))
    }

    /// Address range `[lo, hi)` of the load segments in the ARMv7-M Code region (below
    /// `0x2000_0000`: flash). For Thumb images: a range reaching up into SRAM would make the
    /// many 16-bit instruction pairs whose second half is `0x0800..0x2000` (shifts, adds) look
    /// like pointers.
    pub fn code_region_range(&self) -> (u64, u64) {
        let code = self.segments.iter().filter(|s| s.vaddr < 0x2000_0000);
        let lo = code.clone().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = code.map(|s| s.vaddr + s.memsz).max().unwrap_or(0);
        (lo, hi.min(0x2000_0000))
    }

    /// Address range `[lo, hi)` covered by the load segments.
    pub fn image_range(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = self
            .segments
            .iter()
            .map(|s| s.vaddr + s.memsz)
            .max()
            .unwrap_or(0);
        (lo, hi)
    }
}

fn section_name(data: &[u8], tab_off: u64, tab_len: u64, name: u64) -> Option<String> {
    if name >= tab_len {
        return None;
    }
    let start = usize::try_from(tab_off.checked_add(name)?).ok()?;
    let end = usize::try_from(tab_off.checked_add(tab_len)?)
        .ok()?
        .min(data.len());
    let bytes = data.get(start..end)?;
    let n = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_running_test_binary() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&exe).expect("the test binary is ELF");
        let text = elf
            .sections
            .iter()
            .find(|s| s.name == ".text")
            .expect(".text");
        assert!(text.exec && text.alloc && text.size > 0);
        assert_eq!(elf.offset_to_va(text.offset), Some(text.addr));
        assert!(
            Elf::parse(b"not an elf file, just some text bytes to be long enough....").is_none()
        );
    }
}
