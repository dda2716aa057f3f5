//! Making a patch: hashing, transform plan, matching passes and encoding.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{DeltaError, Result};
use crate::exe::{Plan, build, elf::Elf, raw, rewrite};
use crate::format::{CHUNK_BYTES, Header, MAX_LITERAL_PREFIX};
use crate::matcher::{Block, CopyRange, MatchParams, copies_of, diff_blocks_parallel};
use crate::streams::{ChunkData, ChunkWriter, StreamParams};
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

/// Threads the differ matches on (the machine's cores, at most 4).
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Prints `label` and the time since the previous mark to stderr when `FERRY_DELTA_TIMING` is
/// set (profiling aid for the benchmark; silent otherwise).
pub(crate) fn mark(label: &str, since: &mut Instant) {
    if std::env::var_os("FERRY_DELTA_TIMING").is_some() {
        eprintln!("  {label:<24} {:>8.3} s", since.elapsed().as_secs_f64());
    }
    *since = Instant::now();
}

/// Writes a patch turning `old` into `new` to `out`.
pub fn diff(old: &[u8], new: &[u8], opts: &DiffOptions, out: &mut impl Write) -> Result<DiffStats> {
    let started = Instant::now();
    let mut t = Instant::now();
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
    mark("hash", &mut t);
    let params = MatchParams::default();
    let plan = if opts.exec_aware {
        exec_plan(old, new, params, &mut t)
    } else {
        None
    };
    let (plan, source, blocks) = match plan {
        Some((plan, source, blocks)) => (plan, source, blocks),
        None => {
            let index = SuffixIndex::new(old);
            mark("suffix array", &mut t);
            let blocks = diff_blocks_parallel(&index, new, params, threads());
            mark("match", &mut t);
            (Plan::default(), old.to_vec(), blocks)
        }
    };
    let (blocks, hints) = prune_short_jumps(blocks, MIN_JUMP_COPY);
    mark("plan", &mut t);
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
    let (copied, literal) = encode_blocks(&source, new, &blocks, &hints, opts, w).map_err(io)?;
    mark("encode", &mut t);
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

/// Runs the executable-aware passes; `None` when `old` or `new` is neither ELF nor a raw
/// Cortex-M image, or when normalising helps no region.
fn exec_plan(
    old: &[u8],
    new: &[u8],
    params: MatchParams,
    t: &mut Instant,
) -> Option<(Plan, Vec<u8>, Vec<Block>)> {
    let layout = |data: &[u8]| Elf::parse(data).or_else(|| raw::cortex_m_image(data));
    let old_elf = layout(old)?;
    let new_elf = layout(new)?;
    let mut plan = build::initial_plan(&old_elf)?;
    let index = SuffixIndex::new(old);
    mark("suffix array (raw)", t);
    let first = copies_of(&diff_blocks_parallel(&index, new, params, threads()));
    mark("match (raw)", t);
    plan.map = build::address_map(&old_elf, &new_elf, &first);
    let normalised = rewrite::rewrite_slice(&plan, old);
    mark("map + normalise", t);
    let index = SuffixIndex::new(&normalised);
    mark("suffix array (norm)", t);
    let blocks = diff_blocks_parallel(&index, new, params, threads());
    mark("match (norm)", t);
    let chosen = build::choose_regions(&plan, old, &normalised, new, &blocks);
    mark("choose", t);
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

/// A copy shorter than this that jumps away from the previous copy's diagonal is carried as
/// literal bytes instead: its control entry (and the one jumping back) would cost more than
/// zstd needs for the bytes, which it finds in the literal prefix (or earlier literals).
const MIN_JUMP_COPY: usize = 128;

/// zstd's smallest window.
const MIN_WINDOW_LOG: u32 = 10;

/// Granularity of the literal prefix's ranges.
const GRANULE: usize = 16 << 10;

/// Prefix bytes per literal byte of a chunk. zstd indexes the whole prefix at level 22 (the
/// differ's main cost before this bound); measured on the bench pairs, 32 costs at most 0.3 %
/// of patch size against always taking [`MAX_LITERAL_PREFIX`], for a third of the encoding
/// time.
const PREFIX_PER_LITERAL_BYTE: usize = 32;

/// Prefix granules a chunk with literals gets at least.
const MIN_PREFIX_GRANULES: usize = 4;

/// Cuts the blocks into chunks of at most [`CHUNK_BYTES`] new bytes and writes them.
struct Emitter<'a, W: Write> {
    writer: ChunkWriter,
    out: &'a mut W,
    source: &'a [u8],
    /// Old positions the literal bytes resemble, by new position (see [`prune_short_jumps`]).
    hints: &'a [CopyRange],
    parts: [Vec<u8>; 3],
    /// New bytes written before the current chunk.
    chunk_start: usize,
    /// Score of each prefix granule of the source for the current chunk's literals.
    granules: HashMap<usize, u64>,
    entry: Option<(i64, u64, u64)>,
    old_cursor: i64,
    chunk_out: usize,
    /// Lowest and highest old position copied from in the current chunk.
    span: Option<(usize, usize)>,
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
            self.flush_chunk()?;
        }
        Ok(CHUNK_BYTES - self.chunk_out)
    }

    /// Writes the current chunk with its literal prefix.
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        self.finish_entry();
        let chunk_end = self.chunk_start + self.chunk_out;
        while let Some(h) = self.hints.first().filter(|h| h.new_pos < chunk_end) {
            for g in h.old_pos / GRANULE..=(h.old_pos + h.len.max(1) - 1) / GRANULE {
                *self.granules.entry(g).or_default() += h.len as u64;
            }
            self.hints = &self.hints[1..];
        }
        let ranges = if self.parts[2].is_empty() {
            Vec::new()
        } else {
            self.prefix_ranges()
        };
        let mut prefix = Vec::new();
        for &(o, l) in &ranges {
            prefix.extend_from_slice(&self.source[o as usize..(o + l) as usize]);
        }
        self.writer.chunk(
            ChunkData {
                ctrl: &self.parts[0],
                diff: &self.parts[1],
                literal: &self.parts[2],
                prefix_ranges: &ranges,
                prefix: &prefix,
            },
            self.out,
        )?;
        self.parts.iter_mut().for_each(Vec::clear);
        self.chunk_start = chunk_end;
        self.chunk_out = 0;
        self.span = None;
        self.granules.clear();
        Ok(())
    }

    /// The source ranges of the literal prefix: the granules the chunk's literals were seen to
    /// resemble (best scores first), then those nearest the middle of what the chunk copied,
    /// up to [`MAX_LITERAL_PREFIX`] bytes.
    fn prefix_ranges(&self) -> Vec<(u64, u64)> {
        let count = self.source.len().div_ceil(GRANULE);
        if count == 0 {
            return Vec::new();
        }
        let budget = (MAX_LITERAL_PREFIX / GRANULE).min(count);
        // zstd indexes the whole prefix: keep it in proportion to the literal bytes.
        let wanted = (self.parts[2].len() * PREFIX_PER_LITERAL_BYTE).div_ceil(GRANULE);
        let budget = budget.min(wanted.max(MIN_PREFIX_GRANULES));
        let mut scored: Vec<(u64, usize)> = self
            .granules
            .iter()
            .filter(|(g, _)| **g < count)
            .map(|(g, s)| (*s, *g))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        let mut chosen: Vec<usize> = scored.iter().take(budget).map(|(_, g)| *g).collect();
        let cursor = self.old_cursor.clamp(0, self.source.len() as i64) as usize;
        let (lo, hi) = self.span.unwrap_or((cursor, cursor));
        let centre = ((lo / 2 + hi / 2) / GRANULE).min(count - 1);
        let mut taken: std::collections::HashSet<usize> = chosen.iter().copied().collect();
        let mut step = 0usize;
        while chosen.len() < budget {
            for g in [centre.checked_add(step), centre.checked_sub(step + 1)]
                .into_iter()
                .flatten()
            {
                if g < count && chosen.len() < budget && taken.insert(g) {
                    chosen.push(g);
                }
            }
            step += 1;
        }
        chosen.sort_unstable();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for g in chosen {
            let start = (g * GRANULE) as u64;
            let len = (self.source.len() - g * GRANULE).min(GRANULE) as u64;
            match ranges.last_mut() {
                Some((o, l)) if *o + *l == start => *l += len,
                _ => ranges.push((start, len)),
            }
        }
        ranges
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
            self.span = Some(match self.span {
                Some((lo, hi)) => (lo.min(old_pos), hi.max(old_pos + take)),
                None => (old_pos, old_pos + take),
            });
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
            let cursor = self.old_cursor.clamp(0, self.source.len() as i64) as usize;
            for g in [
                cursor / GRANULE,
                cursor.saturating_sub(GRANULE / 2) / GRANULE,
            ] {
                *self.granules.entry(g).or_default() += take as u64;
            }
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
    hints: &[CopyRange],
    opts: &DiffOptions,
    out: &mut impl Write,
) -> std::io::Result<(u64, u64)> {
    // No stream holds more than both files: a window (and search tables) beyond that only costs
    // time to allocate and clear, which dominates the diff of a small file.
    let fits = (source.len() + new.len()).max(1).next_power_of_two().trailing_zeros();
    let fits = fits.clamp(MIN_WINDOW_LOG, opts.window_log.max(MIN_WINDOW_LOG));
    let data = StreamParams {
        level: opts.level,
        window_log: opts.window_log.min(fits),
    };
    let small = StreamParams {
        level: 19,
        window_log: fits.min(20),
    };
    let sparse = StreamParams {
        level: opts.level,
        window_log: opts.window_log.min(fits).min(20),
    };
    let mut e = Emitter {
        writer: ChunkWriter::new([small, data, sparse, sparse], data)?,
        out,
        source,
        hints,
        parts: Default::default(),
        chunk_start: 0,
        granules: HashMap::new(),
        entry: None,
        old_cursor: 0,
        chunk_out: 0,
        span: None,
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
    e.flush_chunk()?;
    e.writer.finish(e.out)?;
    Ok((copied, literal))
}
/// Turns short copies that jump away from the previous copy's diagonal into literal bytes, and
/// returns them as hints of where in the source those literal bytes are found.
fn prune_short_jumps(blocks: Vec<Block>, min_jump_copy: usize) -> (Vec<Block>, Vec<CopyRange>) {
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
    let mut hints = Vec::new();
    let mut new_pos = 0usize;
    let mut last_diag: Option<isize> = None;
    for b in blocks {
        let diag = b.old_pos as isize - new_pos as isize;
        let jump = last_diag.is_some_and(|d| d != diag);
        match out.last_mut() {
            Some(prev) if jump && b.copy_len < min_jump_copy => {
                prev.extra_len += b.copy_len + b.extra_len;
                hints.push(CopyRange {
                    old_pos: b.old_pos,
                    new_pos,
                    len: b.copy_len,
                });
            }
            _ => {
                out.push(b);
                last_diag = Some(diag);
            }
        }
        new_pos += b.copy_len + b.extra_len;
    }
    (out, hints)
}
