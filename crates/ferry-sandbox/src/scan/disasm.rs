//! Disassembly of executable code: iced-x86 for x86/x86-64, yaxpeax-arm for ARM (A32/T32)
//! and AArch64. Counts instructions, finds calls to imported functions (x86-64, through PLT
//! stubs or GOT-indirect calls) and matches instruction-sequence rules.

use super::elf::ElfFacts;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use yaxpeax_arch::{Decoder as _, U8Reader};

/// What disassembly covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disassembly {
    /// The disassembler used, or `None` if the architecture has none here.
    pub disassembler: Option<String>,
    /// Code bytes covered.
    pub code_bytes: u64,
    /// Instructions decoded.
    pub instructions: u64,
    /// Positions that did not decode (data in code, or another instruction set).
    pub invalid: u64,
}

/// An instruction-sequence rule prepared for matching.
pub(crate) struct SeqRule {
    pub index: usize,
    pub steps: Vec<String>,
}

/// Results beyond the counts.
#[derive(Default)]
pub(crate) struct DisasmOut {
    pub summary: Disassembly,
    /// (call site address, imported symbol).
    pub calls: Vec<(u64, String)>,
    /// (rule index, address of the first instruction).
    pub matches: Vec<(usize, u64)>,
}

/// Lowercase, spaces after commas removed, runs of whitespace collapsed.
pub(crate) fn normalize(text: &str) -> String {
    let lower = text.to_lowercase().replace(", ", ",");
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sliding window matcher for sequence rules.
struct SeqMatcher<'a> {
    rules: &'a [SeqRule],
    window: VecDeque<(u64, String)>,
    max: usize,
}

impl<'a> SeqMatcher<'a> {
    fn new(rules: &'a [SeqRule]) -> Self {
        let max = rules.iter().map(|r| r.steps.len()).max().unwrap_or(0);
        SeqMatcher {
            rules,
            window: VecDeque::new(),
            max,
        }
    }

    fn active(&self) -> bool {
        self.max > 0
    }

    fn push(&mut self, addr: u64, text: String, out: &mut Vec<(usize, u64)>) {
        self.window.push_back((addr, text));
        if self.window.len() > self.max {
            self.window.pop_front();
        }
        for rule in self.rules {
            let n = rule.steps.len();
            if self.window.len() < n {
                continue;
            }
            let start = self.window.len() - n;
            let hit = rule
                .steps
                .iter()
                .zip(self.window.range(start..))
                .all(|(step, (_, text))| text.starts_with(step.as_str()));
            if hit {
                out.push((rule.index, self.window[start].0));
            }
        }
    }

    fn reset(&mut self) {
        self.window.clear();
    }
}

/// Disassembles every code region of `facts` in `data`.
pub(crate) fn disassemble(
    facts: &ElfFacts,
    data: &[u8],
    thumb: bool,
    rules: &[SeqRule],
) -> DisasmOut {
    match facts.arch.as_str() {
        "x86_64" => x86(facts, data, 64, rules),
        "x86" => x86(facts, data, 32, rules),
        "aarch64" => arm(facts, data, Isa::A64, rules),
        "arm" if thumb => arm(facts, data, Isa::Thumb, rules),
        "arm" => arm(facts, data, Isa::A32, rules),
        _ => DisasmOut::default(),
    }
}

fn x86(facts: &ElfFacts, data: &[u8], bitness: u32, rules: &[SeqRule]) -> DisasmOut {
    let mut out = DisasmOut::default();
    out.summary.disassembler = Some(format!("iced-x86 ({bitness}-bit)"));
    let mut matcher = SeqMatcher::new(rules);
    let mut formatter = IntelFormatter::new();
    let mut text = String::new();
    let mut stubs: HashMap<u64, String> = HashMap::new();
    let mut near_calls: Vec<(u64, u64)> = Vec::new();
    for region in &facts.code {
        let bytes = &data[region.offset..region.offset + region.len];
        out.summary.code_bytes += bytes.len() as u64;
        matcher.reset();
        let mut decoder = Decoder::with_ip(bitness, bytes, region.vaddr, DecoderOptions::NONE);
        let mut instr = Instruction::default();
        let mut prev: Option<(u64, Mnemonic)> = None;
        while decoder.can_decode() {
            decoder.decode_out(&mut instr);
            if instr.is_invalid() {
                out.summary.invalid += 1;
                matcher.reset();
                prev = None;
                continue;
            }
            out.summary.instructions += 1;
            let got_target = (instr.is_ip_rel_memory_operand())
                .then(|| facts.got.get(&instr.ip_rel_memory_address()))
                .flatten();
            match instr.mnemonic() {
                Mnemonic::Jmp => {
                    if let Some(sym) = got_target {
                        stubs.insert(instr.ip(), sym.clone());
                        if let Some((ip, Mnemonic::Endbr64 | Mnemonic::Endbr32)) = prev {
                            stubs.insert(ip, sym.clone());
                        }
                    }
                }
                Mnemonic::Call => {
                    if let Some(sym) = got_target {
                        out.calls.push((instr.ip(), sym.clone()));
                    } else if instr.near_branch_target() != 0 {
                        near_calls.push((instr.ip(), instr.near_branch_target()));
                    }
                }
                _ => {}
            }
            prev = Some((instr.ip(), instr.mnemonic()));
            if matcher.active() {
                text.clear();
                formatter.format(&instr, &mut text);
                matcher.push(instr.ip(), normalize(&text), &mut out.matches);
            }
        }
    }
    for (site, target) in near_calls {
        if let Some(sym) = stubs.get(&target) {
            out.calls.push((site, sym.clone()));
        }
    }
    out.calls.sort();
    out
}

#[derive(Clone, Copy)]
enum Isa {
    A64,
    A32,
    Thumb,
}

fn arm(facts: &ElfFacts, data: &[u8], isa: Isa, rules: &[SeqRule]) -> DisasmOut {
    let mut out = DisasmOut::default();
    out.summary.disassembler = Some(
        match isa {
            Isa::A64 => "yaxpeax-arm (AArch64)",
            Isa::A32 => "yaxpeax-arm (ARM A32)",
            Isa::Thumb => "yaxpeax-arm (Thumb)",
        }
        .into(),
    );
    let mut matcher = SeqMatcher::new(rules);
    let a64 = yaxpeax_arm::armv8::a64::InstDecoder::default();
    let a32 = match isa {
        Isa::Thumb => yaxpeax_arm::armv7::InstDecoder::default_thumb(),
        _ => yaxpeax_arm::armv7::InstDecoder::default(),
    };
    for region in &facts.code {
        let bytes = &data[region.offset..region.offset + region.len];
        out.summary.code_bytes += bytes.len() as u64;
        matcher.reset();
        let mut i = 0usize;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let len = match isa {
                Isa::Thumb if rest.len() >= 2 => {
                    let hw = u16::from_le_bytes([rest[0], rest[1]]);
                    if matches!(hw >> 11, 0b11101..=0b11111) {
                        4
                    } else {
                        2
                    }
                }
                Isa::Thumb => 2,
                _ => 4,
            };
            if rest.len() < len {
                out.summary.invalid += 1;
                break;
            }
            let mut reader = U8Reader::new(&rest[..len]);
            let text = match isa {
                Isa::A64 => a64.decode(&mut reader).map(|inst| inst.to_string()).ok(),
                _ => a32.decode(&mut reader).map(|inst| inst.to_string()).ok(),
            };
            let addr = region.vaddr + i as u64;
            match text {
                Some(text) => {
                    out.summary.instructions += 1;
                    if matcher.active() {
                        matcher.push(addr, normalize(&text), &mut out.matches);
                    }
                }
                None => {
                    out.summary.invalid += 1;
                    matcher.reset();
                }
            }
            i += len;
        }
    }
    out
}
