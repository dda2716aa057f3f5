//! The entropy-coded streams of a patch, cut into chunks.
//!
//! Four streams (control, dense add-diff, sparse add-diff runs, sparse add-diff values) are each
//! one zstd frame compressed with a persistent context, flushed at every chunk boundary, so they
//! can be interleaved in the patch (apply reads it front to back) without losing the compression
//! history between chunks. The literal bytes of a chunk are one zstd frame of their own whose
//! prefix (a single-use dictionary) is a few ranges of the old file followed by the previous
//! chunk's literal bytes: new text usually resembles old text, which zstd then finds.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter};

use crate::error::{DeltaError, Result};
use crate::format::{
    DIFF_DENSE, DIFF_SPARSE, MAX_FRAGMENT, MAX_LITERAL_PREFIX, MAX_WINDOW_LOG, TAG_CHUNK, TAG_END,
};
use crate::varint;

/// Number of streams with a persistent zstd frame.
const FRAMED: usize = 4;

/// Compression settings of one stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamParams {
    /// zstd level (1..=22).
    pub level: i32,
    /// log2 of the zstd window.
    pub window_log: u32,
}

/// What one chunk carries, before compression.
pub struct ChunkData<'a> {
    /// Control entries.
    pub ctrl: &'a [u8],
    /// Add-diff bytes, one per copied byte.
    pub diff: &'a [u8],
    /// Literal bytes.
    pub literal: &'a [u8],
    /// Ranges `(offset, len)` of the copy source forming the literal frame's prefix: ascending,
    /// disjoint, at most [`MAX_LITERAL_PREFIX`] bytes in all. Empty when `literal` is.
    pub prefix_ranges: &'a [(u64, u64)],
    /// The bytes of those ranges, concatenated.
    pub prefix: &'a [u8],
}

/// Compressor of the streams, producing interleaved chunks.
///
/// The literal frames (the slower part: zstd indexes each one's whole prefix) are compressed in
/// order on a worker thread while this one feeds the framed streams of the next chunks; a chunk
/// is written once its literal frame is back. Every call must pass the same output.
pub struct ChunkWriter {
    encoders: [zstd::stream::write::Encoder<'static, Vec<u8>>; FRAMED],
    prev_literal: Vec<u8>,
    jobs: Option<SyncSender<(Vec<u8>, Vec<u8>)>>,
    frames: Receiver<std::io::Result<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    /// Chunks compressed but not written: diff coding, framed fragments, awaits a literal frame.
    pending: VecDeque<(u8, Vec<Vec<u8>>, bool)>,
    /// Literal frames asked of the worker and not yet received.
    outstanding: usize,
}

/// Literal frames the worker may be behind by before the writer waits for it (each job holds
/// its prefix: at most 3 MiB).
const MAX_OUTSTANDING: usize = 4;

fn encoder(p: StreamParams) -> std::io::Result<zstd::stream::write::Encoder<'static, Vec<u8>>> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), p.level)?;
    let window = p.window_log.min(MAX_WINDOW_LOG);
    e.set_parameter(CParameter::WindowLog(window))?;
    // Search tables larger than the window only cost the differ memory.
    e.set_parameter(CParameter::ChainLog(window + 1))?;
    e.set_parameter(CParameter::HashLog(window))?;
    e.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
    e.include_checksum(false)?;
    e.include_contentsize(false)?;
    Ok(e)
}

fn zstd_err(what: &str, code: usize) -> std::io::Error {
    std::io::Error::other(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Dense diff bytes → (runs, values). The runs are `varint n`, then `n` varint lengths of zero
/// runs, then `n` varint lengths of the non-zero runs following each (columns compress better
/// than pairs); the values are the non-zero bytes. `None` when the diff is too dense for this to
/// pay.
fn sparse(diff: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nonzero_runs = diff
        .iter()
        .zip(std::iter::once(&0).chain(diff.iter()))
        .filter(|(b, prev)| **b != 0 && **prev == 0)
        .count();
    if nonzero_runs * 32 > diff.len() {
        return None;
    }
    let (mut zeros, mut nonzeros, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0u64;
    let mut i = 0;
    while i < diff.len() {
        let z = diff[i..].iter().take_while(|&&b| b == 0).count();
        i += z;
        let n = diff[i..].iter().take_while(|&&b| b != 0).count();
        values.extend_from_slice(&diff[i..i + n]);
        i += n;
        varint::put_u64(&mut zeros, z as u64);
        varint::put_u64(&mut nonzeros, n as u64);
        count += 1;
    }
    let mut runs = Vec::with_capacity(zeros.len() + nonzeros.len() + 10);
    varint::put_u64(&mut runs, count);
    runs.extend_from_slice(&zeros);
    runs.extend_from_slice(&nonzeros);
    Some((runs, values))
}

impl ChunkWriter {
    /// A writer: `framed` are the settings of the control, dense diff, sparse runs and sparse
    /// values streams, `literal` those of the per-chunk literal frames.
    pub fn new(framed: [StreamParams; FRAMED], literal: StreamParams) -> std::io::Result<Self> {
        let (jobs, inbox) = sync_channel::<(Vec<u8>, Vec<u8>)>(MAX_OUTSTANDING);
        let (done, frames) = channel();
        let worker = std::thread::Builder::new()
            .name("ferry-delta-literals".into())
            .spawn(move || {
                for (prefix, bytes) in inbox {
                    if done.send(literal_frame(literal, &prefix, &bytes)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(ChunkWriter {
            encoders: [
                encoder(framed[0])?,
                encoder(framed[1])?,
                encoder(framed[2])?,
                encoder(framed[3])?,
            ],
            prev_literal: Vec::new(),
            jobs: Some(jobs),
            frames,
            worker: Some(worker),
            pending: VecDeque::new(),
            outstanding: 0,
        })
    }

    /// Writes the pending chunks whose literal frames are back; with `wait`, waits for them all.
    fn drain(&mut self, out: &mut impl Write, wait: bool) -> std::io::Result<()> {
        while let Some((_, _, needs)) = self.pending.front() {
            if *needs {
                let must_wait = wait || self.outstanding > MAX_OUTSTANDING;
                let frame = if must_wait {
                    self.frames.recv().map_err(|_| worker_gone())?
                } else {
                    match self.frames.try_recv() {
                        Ok(f) => f,
                        Err(TryRecvError::Empty) => return Ok(()),
                        Err(TryRecvError::Disconnected) => return Err(worker_gone()),
                    }
                };
                self.outstanding -= 1;
                let (mode, mut frags, _) = self.pending.pop_front().expect("front exists");
                frags.push(frame?);
                write_chunk(mode, &frags, out)?;
            } else {
                let (mode, mut frags, _) = self.pending.pop_front().expect("front exists");
                frags.push(Vec::new());
                write_chunk(mode, &frags, out)?;
            }
        }
        Ok(())
    }

    /// Compresses one chunk and appends it to `out`.
    pub fn chunk(&mut self, data: ChunkData<'_>, out: &mut impl Write) -> std::io::Result<()> {
        let ranges: &[(u64, u64)] = if data.literal.is_empty() {
            &[]
        } else {
            data.prefix_ranges
        };
        let mut ctrl = Vec::with_capacity(data.ctrl.len() + 4 * ranges.len() + 2);
        varint::put_u64(&mut ctrl, ranges.len() as u64);
        let mut end = 0;
        for &(offset, len) in ranges {
            varint::put_u64(&mut ctrl, offset - end);
            varint::put_u64(&mut ctrl, len);
            end = offset + len;
        }
        ctrl.extend_from_slice(data.ctrl);
        let (mode, parts): (u8, [Vec<u8>; FRAMED]) = match sparse(data.diff) {
            Some((runs, values)) => (DIFF_SPARSE, [ctrl, Vec::new(), runs, values]),
            None => (
                DIFF_DENSE,
                [ctrl, data.diff.to_vec(), Vec::new(), Vec::new()],
            ),
        };
        let mut prefix = Vec::new();
        if !data.literal.is_empty() {
            prefix.reserve_exact(data.prefix.len() + self.prev_literal.len());
            prefix.extend_from_slice(data.prefix);
            prefix.extend_from_slice(&self.prev_literal);
        }
        let mut frags = Vec::with_capacity(FRAMED + 1);
        for (e, part) in self.encoders.iter_mut().zip(&parts) {
            // Nothing to flush for an empty part (its fragment is empty, which decodes to
            // nothing). A stream never written is only started by `finish`, which then knows
            // its size and sizes zstd's tables to it: unused streams cost no table set-up.
            if !part.is_empty() {
                e.write_all(part)?;
                e.flush()?;
            }
            frags.push(std::mem::take(e.get_mut()));
        }
        let needs = !data.literal.is_empty();
        if needs {
            let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
            jobs.send((prefix, data.literal.to_vec()))
                .map_err(|_| worker_gone())?;
            self.outstanding += 1;
            self.prev_literal = data.literal.to_vec();
        }
        self.pending.push_back((mode, frags, needs));
        self.drain(out, false)
    }

    /// Ends the framed streams and writes the last chunk and the end tag.
    pub fn finish(mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.drain(out, true)?;
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            worker.join().map_err(|_| worker_gone())?;
        }
        let mut frags = Vec::with_capacity(FRAMED + 1);
        for e in self.encoders {
            frags.push(e.finish()?);
        }
        frags.push(Vec::new());
        write_chunk(DIFF_DENSE, &frags, out)?;
        out.write_all(&[TAG_END])
    }
}

fn worker_gone() -> std::io::Error {
    std::io::Error::other("the literal compressor thread stopped")
}

/// One literal frame: `literal` compressed with `prefix` as single-use dictionary.
fn literal_frame(p: StreamParams, prefix: &[u8], literal: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut cctx = CCtx::create();
    let window = p.window_log.min(MAX_WINDOW_LOG);
    for param in [
        CParameter::CompressionLevel(p.level),
        CParameter::WindowLog(window),
        CParameter::ChainLog(window + 1),
        CParameter::HashLog(window),
        // A shallow search: zstd inserts every prefix position into its tree, and deeper
        // searches cost far more time than they save bytes here.
        CParameter::SearchLog(4),
        // btultra2's second pass costs a fifth of the time for a handful of bytes per patch.
        CParameter::Strategy(zstd::zstd_safe::Strategy::ZSTD_btultra),
        CParameter::ChecksumFlag(false),
    ] {
        cctx.set_parameter(param)
            .map_err(|c| zstd_err("configuring the literal compressor", c))?;
    }
    cctx.ref_prefix(prefix)
        .map_err(|c| zstd_err("setting the literal prefix", c))?;
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(literal.len()));
    cctx.compress2(&mut frame, literal)
        .map_err(|c| zstd_err("compressing literal bytes", c))?;
    Ok(frame)
}

fn write_chunk(mode: u8, frags: &[Vec<u8>], out: &mut impl Write) -> std::io::Result<()> {
    let mut head = vec![TAG_CHUNK, mode];
    for f in frags {
        varint::put_u64(&mut head, f.len() as u64);
    }
    out.write_all(&head)?;
    for f in frags {
        out.write_all(f)?;
    }
    Ok(())
}

/// Decompressor of the streams, reading interleaved chunks.
pub struct ChunkReader {
    decoders: [Decoder<'static>; FRAMED],
    fragment: Vec<u8>,
    runs: Vec<u8>,
    values: Vec<u8>,
    prefix: Vec<u8>,
    ranges: Vec<(u64, u64)>,
    prev_literal: Vec<u8>,
}

/// One decoded chunk: control bytes, (dense) diff bytes and literal bytes.
#[derive(Default)]
pub struct Chunk {
    /// Decoded bytes of each stream, in order control, diff, literal.
    pub parts: [Vec<u8>; 3],
}

const STREAM_NAMES: [&str; FRAMED + 1] = [
    "control stream",
    "diff stream",
    "sparse diff runs",
    "sparse diff values",
    "literal stream",
];

impl ChunkReader {
    /// A reader whose decoders refuse windows larger than [`MAX_WINDOW_LOG`].
    pub fn new() -> Result<Self> {
        let mk = || -> Result<Decoder<'static>> {
            let mut d =
                Decoder::new().map_err(|e| DeltaError::stream("creating zstd decoder", e))?;
            d.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
                .map_err(|e| DeltaError::stream("configuring zstd decoder", e))?;
            Ok(d)
        };
        Ok(ChunkReader {
            decoders: [mk()?, mk()?, mk()?, mk()?],
            fragment: Vec::new(),
            runs: Vec::new(),
            values: Vec::new(),
            prefix: Vec::new(),
            ranges: Vec::new(),
            prev_literal: Vec::new(),
        })
    }

    /// Reads the next chunk into `chunk`; returns false at the end tag. `limits` bounds the
    /// decoded size of the control, diff and literal bytes; `read_source(offset, buf)` fills
    /// `buf` from the copy source (for the literal prefix).
    pub fn next(
        &mut self,
        r: &mut impl Read,
        chunk: &mut Chunk,
        limits: [usize; 3],
        source_len: u64,
        mut read_source: impl FnMut(u64, &mut [u8]) -> Result<()>,
    ) -> Result<bool> {
        let mut tag = [0u8; 2];
        r.read_exact(&mut tag[..1])
            .map_err(|e| DeltaError::stream("chunk tag", e))?;
        match tag[0] {
            TAG_END => return Ok(false),
            TAG_CHUNK => {}
            t => return Err(DeltaError::Corrupt(format!("unknown chunk tag {t}"))),
        }
        r.read_exact(&mut tag[1..])
            .map_err(|e| DeltaError::stream("chunk header", e))?;
        let mode = tag[1];
        if mode != DIFF_DENSE && mode != DIFF_SPARSE {
            return Err(DeltaError::Corrupt(format!("unknown diff coding {mode}")));
        }
        let mut lens = [0u64; FRAMED + 1];
        for len in &mut lens {
            *len = varint::read_u64(r, "chunk header")?;
            if *len > MAX_FRAGMENT {
                return Err(DeltaError::Corrupt(format!(
                    "chunk fragment of {len} bytes is too large"
                )));
            }
        }
        let [ctrl, diff, literal] = &mut chunk.parts;
        for i in 0..FRAMED {
            self.fragment.resize(lens[i] as usize, 0);
            r.read_exact(&mut self.fragment)
                .map_err(|e| DeltaError::stream(STREAM_NAMES[i], e))?;
            // Sparse runs are only used for sparse diffs: a few bytes per 32 diff bytes at most.
            let (out, limit) = match i {
                0 => (&mut *ctrl, limits[0]),
                1 => (&mut *diff, limits[1]),
                2 => (&mut self.runs, limits[1] / 2 + 16),
                _ => (&mut self.values, limits[1]),
            };
            decode_fragment(
                &mut self.decoders[i],
                &self.fragment,
                out,
                limit,
                STREAM_NAMES[i],
            )?;
        }
        // The control bytes start with the literal prefix's ranges (absent only in the last
        // chunk, which merely ends the frames).
        self.ranges.clear();
        let mut prefix_len = 0u64;
        if !ctrl.is_empty() {
            let mut head = varint::SliceReader::new(ctrl, "control stream");
            let range_count = head.u64()?;
            let mut end = 0u64;
            for _ in 0..range_count {
                let gap = head.u64()?;
                let len = head.u64()?;
                prefix_len = prefix_len.saturating_add(len);
                end = match end.checked_add(gap).and_then(|o| o.checked_add(len)) {
                    Some(e) if e <= source_len && prefix_len <= MAX_LITERAL_PREFIX as u64 => e,
                    _ => {
                        return Err(DeltaError::Corrupt(
                            "literal prefix lies outside the old file or is too large".into(),
                        ));
                    }
                };
                self.ranges.push((end - len, len));
            }
            let used = head.offset();
            ctrl.drain(..used);
        }
        if mode == DIFF_SPARSE {
            if !diff.is_empty() {
                return Err(DeltaError::Corrupt(
                    "sparse chunk also holds dense diff bytes".into(),
                ));
            }
            expand_sparse(&self.runs, &self.values, diff, limits[1])?;
        } else if !self.runs.is_empty() || !self.values.is_empty() {
            return Err(DeltaError::Corrupt(
                "dense chunk also holds sparse diff bytes".into(),
            ));
        }
        self.fragment.resize(lens[FRAMED] as usize, 0);
        r.read_exact(&mut self.fragment)
            .map_err(|e| DeltaError::stream(STREAM_NAMES[FRAMED], e))?;
        literal.clear();
        if self.fragment.is_empty() {
            if prefix_len != 0 {
                return Err(DeltaError::Corrupt(
                    "literal prefix given without literal bytes".into(),
                ));
            }
            return Ok(true);
        }
        self.prefix.clear();
        self.prefix.resize(prefix_len as usize, 0);
        let mut at = 0usize;
        for &(offset, len) in &self.ranges {
            read_source(offset, &mut self.prefix[at..at + len as usize])?;
            at += len as usize;
        }
        self.prefix.extend_from_slice(&self.prev_literal);
        let mut dctx = DCtx::create();
        dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
            .map_err(|c| DeltaError::stream("configuring zstd decoder", zstd_err("window", c)))?;
        dctx.ref_prefix(&self.prefix).map_err(|c| {
            DeltaError::Corrupt(format!(
                "literal prefix refused: {}",
                zstd::zstd_safe::get_error_name(c)
            ))
        })?;
        // One frame decoded straight into a buffer one byte larger than allowed: a frame that
        // does not fit is refused by zstd, one that fills it entirely is too large.
        literal.reserve_exact(limits[2] + 1);
        let n = dctx.decompress(literal, &self.fragment).map_err(|c| {
            DeltaError::Corrupt(format!(
                "literal stream does not decompress: {}",
                zstd::zstd_safe::get_error_name(c)
            ))
        })?;
        if n > limits[2] {
            return Err(DeltaError::Corrupt(format!(
                "literal stream chunk decodes to more than {} bytes",
                limits[2]
            )));
        }
        self.prev_literal.clear();
        self.prev_literal.extend_from_slice(literal);
        Ok(true)
    }
}
/// Rebuilds dense diff bytes from sparse runs and values (see [`sparse`]).
fn expand_sparse(runs: &[u8], values: &[u8], diff: &mut Vec<u8>, limit: usize) -> Result<()> {
    if runs.is_empty() {
        return if values.is_empty() {
            Ok(())
        } else {
            Err(DeltaError::Corrupt("sparse diff values left over".into()))
        };
    }
    let mut counts = varint::SliceReader::new(runs, "sparse diff runs");
    let n = counts.u64()?;
    if n > runs.len() as u64 {
        return Err(DeltaError::Corrupt(
            "sparse diff run count is too large".into(),
        ));
    }
    // Find where the non-zero column starts by skipping the zero column.
    let mut nonzeros = varint::SliceReader::new(runs, "sparse diff runs");
    nonzeros.u64()?;
    for _ in 0..n {
        nonzeros.u64()?;
    }
    let mut vi = 0usize;
    for _ in 0..n {
        let zeros = counts.u64()?;
        let nonzero = nonzeros.u64()?;
        let total = zeros.saturating_add(nonzero);
        if total > (limit - diff.len()) as u64 || nonzero > (values.len() - vi) as u64 {
            return Err(DeltaError::Corrupt(
                "sparse diff runs exceed the chunk or its values".into(),
            ));
        }
        diff.resize(diff.len() + zeros as usize, 0);
        diff.extend_from_slice(&values[vi..vi + nonzero as usize]);
        vi += nonzero as usize;
    }
    if vi != values.len() || !nonzeros.is_empty() {
        return Err(DeltaError::Corrupt("sparse diff data left over".into()));
    }
    Ok(())
}

fn decode_fragment(
    dec: &mut Decoder<'static>,
    frag: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    what: &'static str,
) -> Result<()> {
    // The buffer grows with what the fragment decodes to (touching only the memory it needs)
    // up to one byte more than allowed.
    out.clear();
    out.resize((64 << 10).min(limit + 1), 0);
    let mut input = InBuffer::around(frag);
    let mut written = 0usize;
    loop {
        if written == out.len() && out.len() <= limit {
            out.resize((out.len() * 2).min(limit + 1), 0);
        }
        let mut output = OutBuffer::around(&mut out[written..]);
        dec.run(&mut input, &mut output)
            .map_err(|e| DeltaError::Corrupt(format!("{what} does not decompress: {e}")))?;
        let produced = output.pos();
        written += produced;
        if written > limit {
            return Err(DeltaError::Corrupt(format!(
                "{what} chunk decodes to more than {limit} bytes"
            )));
        }
        if input.pos() == frag.len() && produced == 0 {
            break;
        }
    }
    out.truncate(written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip() {
        let p = StreamParams {
            level: 3,
            window_log: 20,
        };
        let source: Vec<u8> = b"the old file holds some text that the literals repeat ".repeat(20);
        let mut sparse_diff = vec![0u8; 4000];
        sparse_diff[100] = 1;
        sparse_diff[3999] = 7;
        let dense_diff: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8 + 1).collect();
        let mut w = ChunkWriter::new([p; FRAMED], p).unwrap();
        let mut patch = Vec::new();
        let chunk = |ctrl, diff, literal, prefix_ranges, prefix| ChunkData {
            ctrl,
            diff,
            literal,
            prefix_ranges,
            prefix,
        };
        let prefix = [&source[4..200], &source[300..310]].concat();
        w.chunk(
            chunk(
                b"ctrl-1",
                &sparse_diff,
                b"some text that",
                &[(4, 196), (300, 10)],
                &prefix,
            ),
            &mut patch,
        )
        .unwrap();
        w.chunk(chunk(b"ctrl-2", &dense_diff, b"", &[], b""), &mut patch)
            .unwrap();
        w.chunk(chunk(b"ctrl-3", b"", b"extra-3", &[], b""), &mut patch)
            .unwrap();
        w.finish(&mut patch).unwrap();
        let mut r = ChunkReader::new().unwrap();
        let mut c = Chunk::default();
        let mut src = patch.as_slice();
        let mut got = Vec::new();
        let read = |off: u64, buf: &mut [u8]| {
            buf.copy_from_slice(&source[off as usize..off as usize + buf.len()]);
            Ok(())
        };
        while r
            .next(&mut src, &mut c, [5000; 3], source.len() as u64, read)
            .unwrap()
        {
            got.push(c.parts.clone());
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0][0], b"ctrl-1");
        assert_eq!(got[0][1], sparse_diff);
        assert_eq!(got[0][2], b"some text that");
        assert_eq!(got[1][1], dense_diff);
        assert_eq!(got[1][2], b"");
        assert_eq!(got[2][2], b"extra-3");
        assert!(got[3].iter().all(Vec::is_empty));
        assert!(src.is_empty());
    }

    #[test]
    fn sparse_coding_is_chosen_for_sparse_diffs_only() {
        let mut d = vec![0u8; 1000];
        d[10] = 3;
        d[11] = 4;
        let (runs, values) = sparse(&d).unwrap();
        assert_eq!(values, [3, 4]);
        let mut back = Vec::new();
        expand_sparse(&runs, &values, &mut back, 1000).unwrap();
        assert_eq!(back, d);
        assert!(sparse(&[1, 0, 2, 0, 3, 0]).is_none());
        assert!(expand_sparse(&runs, &values, &mut Vec::new(), 999).is_err());
    }
}
