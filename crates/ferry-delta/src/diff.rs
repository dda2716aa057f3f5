//! Making a patch: hashing, transform plan, matching passes and encoding.

use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{DeltaError, Result};
use crate::exe::{Plan, build, elf::Elf, rewrite};
use crate::format::{CHUNK_BYTES, Header};
use crate::matcher::{Block, MatchParams, copies_of, diff_blocks};
use crate::streams::{ChunkWriter, StreamParams};
use crate::suffix::SuffixIndex;
use crate::varint;

/// Settings of the differ.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Normalise machine code and pointers of ELF files before matching.
    pub exec_aware: bool,
    /// zstd level of the diff and literal streams (1..=22).
    pub level: i32,
    /// log2 of the zstd window of the diff and literal streams (at most 22, so apply stays small).
    pub window_log: u32,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            exec_aware: true,
            level: 22,
            window_log: 22,
        }
    }
}

/// What a diff produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// Old file size.
    pub old_size: u64,
    /// New file size.
    pub new_size: u64,
    /// Patch size.
    pub patch_size: u64,
    /// New bytes produced by copy-with-add-diff.
    pub copied: u64,
    /// New bytes carried literally.
    pub literal: u64,
    /// Number of control blocks.
    pub blocks: u64,
    /// Old-file regions normalised by the executable-aware transform.
    pub regions_normalised: u64,
    /// Wall time of the diff.
    pub elapsed: Duration,
}

/// Writes a patch turning `old` into `new` to `out`.
pub fn diff(old: &[u8], new: &[u8], opts: &DiffOptions, out: &mut impl Write) -> Result<DiffStats> {
    let started = Instant::now();
    if old.len() >= i32::MAX as usize || new.len() >= i32::MAX as usize {
        return Err(DeltaError::Corrupt(
            "files of 2 GiB or more are not supported by the differ".into(),
        ));
    }
    let header = Header {
        old_size: old.len() as u64,
        old_sha256: Sha256::digest(old).into(),
        new_size: new.len() as u64,
        new_sha256: Sha256::digest(new).into(),
    };
    let params = MatchParams::default();
    let plan = if opts.exec_aware {
        exec_plan(old, new, params)
    } else {
        None
    };
    let (plan, source, blocks) = match plan {
        Some((plan, source, blocks)) => (plan, source, blocks),
        None => {
            let blocks = diff_blocks(&SuffixIndex::new(old), new, params);
            (Plan::default(), old.to_vec(), blocks)
        }
    };
    let mut counter = CountingWriter {
        inner: out,
        written: 0,
    };
    let w = &mut counter;
    let io = |e| DeltaError::stream("writing the patch", e);
    header.write(w).map_err(io)?;
    let plan_bytes = zstd::bulk::compress(&plan.encode(), 19).map_err(io)?;
    w.write_all(&(plan_bytes.len() as u32).to_le_bytes())
        .map_err(io)?;
    w.write_all(&plan_bytes).map_err(io)?;
    let (copied, literal) = encode_blocks(&source, new, &blocks, opts, w).map_err(io)?;
    Ok(DiffStats {
        old_size: old.len() as u64,
        new_size: new.len() as u64,
        patch_size: counter.written,
        copied,
        literal,
        blocks: blocks.len() as u64,
        regions_normalised: plan.regions.len() as u64,
        elapsed: started.elapsed(),
    })
}

/// Runs the executable-aware passes; `None` when `old` or `new` is not ELF.
fn exec_plan(old: &[u8], new: &[u8], params: MatchParams) -> Option<(Plan, Vec<u8>, Vec<Block>)> {
    let old_elf = Elf::parse(old)?;
    let new_elf = Elf::parse(new)?;
    let mut plan = build::initial_plan(&old_elf)?;
    let first = diff_blocks(&SuffixIndex::new(old), new, params);
    plan.map = build::address_map(&old_elf, &new_elf, &copies_of(&first));
    let normalised = rewrite::rewrite_slice(&plan, old);
    let blocks = diff_blocks(&SuffixIndex::new(&normalised), new, params);
    let chosen = build::choose_regions(&plan, old, &normalised, new, &blocks);
    if chosen.is_empty() {
        return None;
    }
    let source = if chosen.len() == plan.regions.len() {
        normalised
    } else {
        plan.regions = chosen;
        rewrite::rewrite_slice(&plan, old)
    };
    Some((plan, source, blocks))
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Cuts the blocks into chunks of at most [`CHUNK_BYTES`] new bytes and writes them.
struct Emitter<'a, W: Write> {
    writer: ChunkWriter,
    out: &'a mut W,
    parts: [Vec<u8>; 3],
    entry: Option<(i64, u64, u64)>,
    old_cursor: i64,
    chunk_out: usize,
}

impl<W: Write> Emitter<'_, W> {
    fn finish_entry(&mut self) {
        if let Some((seek, copy, extra)) = self.entry.take() {
            varint::put_i64(&mut self.parts[0], seek);
            varint::put_u64(&mut self.parts[0], copy);
            varint::put_u64(&mut self.parts[0], extra);
        }
    }

    fn room(&mut self) -> std::io::Result<usize> {
        if self.chunk_out == CHUNK_BYTES {
            self.finish_entry();
            self.writer
                .chunk([&self.parts[0], &self.parts[1], &self.parts[2]], self.out)?;
            self.parts.iter_mut().for_each(Vec::clear);
            self.chunk_out = 0;
        }
        Ok(CHUNK_BYTES - self.chunk_out)
    }

    fn copy(
        &mut self,
        source: &[u8],
        new: &[u8],
        mut old_pos: usize,
        mut new_pos: usize,
        mut n: usize,
    ) -> std::io::Result<()> {
        while n > 0 {
            let take = n.min(self.room()?);
            let contiguous = old_pos as i64 == self.old_cursor;
            match &mut self.entry {
                Some((_, copy, 0)) if contiguous => *copy += take as u64,
                _ => {
                    self.finish_entry();
                    self.entry = Some((old_pos as i64 - self.old_cursor, take as u64, 0));
                }
            }
            let d = &mut self.parts[1];
            d.extend(
                new[new_pos..new_pos + take]
                    .iter()
                    .zip(&source[old_pos..old_pos + take])
                    .map(|(a, b)| a.wrapping_sub(*b)),
            );
            old_pos += take;
            new_pos += take;
            n -= take;
            self.old_cursor = old_pos as i64;
            self.chunk_out += take;
        }
        Ok(())
    }

    fn literal(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(self.room()?);
            match &mut self.entry {
                Some((_, _, extra)) => *extra += take as u64,
                None => self.entry = Some((0, 0, take as u64)),
            }
            self.parts[2].extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.chunk_out += take;
        }
        Ok(())
    }
}

fn encode_blocks(
    source: &[u8],
    new: &[u8],
    blocks: &[Block],
    opts: &DiffOptions,
    out: &mut impl Write,
) -> std::io::Result<(u64, u64)> {
    let data = StreamParams {
        level: opts.level,
        window_log: opts.window_log,
    };
    let ctrl = StreamParams {
        level: 19,
        window_log: 20,
    };
    let mut e = Emitter {
        writer: ChunkWriter::new([ctrl, data, data])?,
        out,
        parts: Default::default(),
        entry: None,
        old_cursor: 0,
        chunk_out: 0,
    };
    let (mut new_pos, mut copied, mut literal) = (0usize, 0u64, 0u64);
    for b in blocks {
        e.copy(source, new, b.old_pos, new_pos, b.copy_len)?;
        new_pos += b.copy_len;
        e.literal(&new[new_pos..new_pos + b.extra_len])?;
        new_pos += b.extra_len;
        copied += b.copy_len as u64;
        literal += b.extra_len as u64;
    }
    e.finish_entry();
    let Emitter {
        mut writer,
        out,
        parts,
        ..
    } = e;
    writer.chunk([&parts[0], &parts[1], &parts[2]], out)?;
    writer_finish(writer, out)?;
    Ok((copied, literal))
}

fn writer_finish(writer: ChunkWriter, out: &mut impl Write) -> std::io::Result<()> {
    writer.finish(out)
}
