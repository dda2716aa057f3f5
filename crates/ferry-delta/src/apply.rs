//! Streaming apply: old file (seekable) + patch (read once, front to back) → new file.
//!
//! Memory is bounded by constants whatever the file sizes: the zstd decoders' windows (at most
//! [`crate::format::MAX_WINDOW_LOG`] each), one decoded chunk ([`CHUNK_BYTES`] of new data), one compressed
//! fragment and a few I/O buffers. The normalised view of the old file, when the patch uses one,
//! is written to an anonymous temporary file rather than held in memory.

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{DeltaError, Result};
use crate::exe::{Plan, rewrite};
use crate::format::{CHUNK_BYTES, Header, MAX_CTRL_CHUNK, MAX_PLAN};
use crate::streams::{Chunk, ChunkReader};
use crate::varint::SliceReader;

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Old file size.
    pub old_size: u64,
    /// New file size (verified).
    pub new_size: u64,
    /// Bytes of patch consumed.
    pub patch_size: u64,
    /// Old-file regions that were normalised before copying.
    pub regions_normalised: u64,
    /// Wall time of the apply.
    pub elapsed: Duration,
}

const IO_BUF: usize = 64 * 1024;

/// Applies `patch` to `old`, writing the new file to `out`, and verifies both hashes.
///
/// On error, `out` may hold a partial file: [`crate::apply_files`] writes to a temporary file and
/// renames it only after success.
pub fn apply(mut old: impl Read + Seek, patch: impl Read, out: impl Write) -> Result<ApplyStats> {
    let started = Instant::now();
    let mut patch = CountingReader {
        inner: BufReader::with_capacity(IO_BUF, patch),
        read: 0,
    };
    let header = Header::read(&mut patch)?;
    check_old(&mut old, &header)?;
    let plan = read_plan(&mut patch, header.old_size)?;
    let regions = plan.regions.len() as u64;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(IO_BUF, out),
        hasher: Sha256::new(),
        written: 0,
    };
    if plan.is_identity() {
        rebuild(&mut old, header.old_size, &mut patch, &mut out)?;
    } else {
        let mut view = tempfile::tempfile()
            .map_err(|e| DeltaError::stream("creating the temporary normalised old file", e))?;
        old.seek(SeekFrom::Start(0))
            .map_err(|e| DeltaError::stream("rewinding the old file", e))?;
        {
            let mut w = BufWriter::with_capacity(IO_BUF, &mut view);
            let mut r = BufReader::with_capacity(IO_BUF, &mut old);
            rewrite::rewrite(&plan, &mut r, &mut w, header.old_size)
                .map_err(|e| DeltaError::stream("normalising the old file", e))?;
            w.flush()
                .map_err(|e| DeltaError::stream("writing the normalised old file", e))?;
        }
        rebuild(&mut view, header.old_size, &mut patch, &mut out)?;
    }
    let mut probe = [0u8; 1];
    match patch.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => {
            return Err(DeltaError::Corrupt(
                "trailing bytes after the end of the patch".into(),
            ));
        }
        Err(e) => return Err(DeltaError::stream("reading the patch", e)),
    }
    out.inner
        .flush()
        .map_err(|e| DeltaError::stream("writing the new file", e))?;
    let found: [u8; 32] = out.hasher.finalize().into();
    if out.written != header.new_size || found != header.new_sha256 {
        return Err(DeltaError::OutputMismatch {
            expected: hex::encode(header.new_sha256),
            found: hex::encode(found),
        });
    }
    Ok(ApplyStats {
        old_size: header.old_size,
        new_size: header.new_size,
        patch_size: patch.read,
        regions_normalised: regions,
        elapsed: started.elapsed(),
    })
}

fn check_old(old: &mut (impl Read + Seek), header: &Header) -> Result<()> {
    old.seek(SeekFrom::Start(0))
        .map_err(|e| DeltaError::stream("rewinding the old file", e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    let mut size = 0u64;
    loop {
        let n = old
            .read(&mut buf)
            .map_err(|e| DeltaError::stream("reading the old file", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let found: [u8; 32] = hasher.finalize().into();
    if size != header.old_size || found != header.old_sha256 {
        return Err(DeltaError::OldMismatch {
            expected: hex::encode(header.old_sha256),
            found: hex::encode(found),
            expected_size: header.old_size,
            found_size: size,
        });
    }
    Ok(())
}

fn read_plan(patch: &mut impl Read, old_size: u64) -> Result<Plan> {
    let mut len = [0u8; 4];
    patch
        .read_exact(&mut len)
        .map_err(|e| DeltaError::stream("transform plan length", e))?;
    let len = u32::from_le_bytes(len) as u64;
    if len > MAX_PLAN {
        return Err(DeltaError::Corrupt(format!(
            "transform plan of {len} bytes is too large"
        )));
    }
    let mut packed = vec![0u8; len as usize];
    patch
        .read_exact(&mut packed)
        .map_err(|e| DeltaError::stream("transform plan", e))?;
    let raw = zstd::bulk::decompress(&packed, MAX_PLAN as usize)
        .map_err(|e| DeltaError::Corrupt(format!("transform plan does not decompress: {e}")))?;
    Plan::decode(&raw, old_size)
}

/// Executes the control blocks of every chunk, reading copies from `source`.
fn rebuild(
    source: &mut (impl Read + Seek),
    source_len: u64,
    patch: &mut impl Read,
    out: &mut impl Write,
) -> Result<()> {
    let mut reader = ChunkReader::new()?;
    let mut chunk = Chunk::default();
    let mut cursor: i64 = 0;
    let mut src_pos: Option<u64>;
    let mut src_buf = vec![0u8; IO_BUF];
    loop {
        let more = reader.next(
            patch,
            &mut chunk,
            [MAX_CTRL_CHUNK, CHUNK_BYTES, CHUNK_BYTES],
            source_len,
            |offset, buf| {
                source
                    .seek(SeekFrom::Start(offset))
                    .and_then(|_| source.read_exact(buf))
                    .map_err(|e| DeltaError::stream("reading the literal prefix", e))
            },
        )?;
        if !more {
            break;
        }
        src_pos = None;
        let [ctrl, diff, extra] = &chunk.parts;
        let mut entries = SliceReader::new(ctrl, "control stream");
        let (mut di, mut ei) = (0usize, 0usize);
        while !entries.is_empty() {
            let seek = entries.i64()?;
            let copy = entries.u64()? as usize;
            let lit = entries.u64()? as usize;
            cursor = cursor
                .checked_add(seek)
                .filter(|&c| c >= 0 && (c as u64).saturating_add(copy as u64) <= source_len)
                .ok_or_else(|| DeltaError::Corrupt("a copy reads outside the old file".into()))?;
            if copy > diff.len() - di || lit > extra.len() - ei {
                return Err(DeltaError::Corrupt(
                    "control block needs more data than its chunk holds".into(),
                ));
            }
            if src_pos != Some(cursor as u64) {
                source
                    .seek(SeekFrom::Start(cursor as u64))
                    .map_err(|e| DeltaError::stream("seeking the old file", e))?;
            }
            let mut left = copy;
            while left > 0 {
                let take = left.min(IO_BUF);
                let buf = &mut src_buf[..take];
                source
                    .read_exact(buf)
                    .map_err(|e| DeltaError::stream("reading the old file", e))?;
                for (b, d) in buf.iter_mut().zip(&diff[di..di + take]) {
                    *b = b.wrapping_add(*d);
                }
                out.write_all(buf)
                    .map_err(|e| DeltaError::stream("writing the new file", e))?;
                di += take;
                left -= take;
            }
            cursor += copy as i64;
            src_pos = Some(cursor as u64);
            out.write_all(&extra[ei..ei + lit])
                .map_err(|e| DeltaError::stream("writing the new file", e))?;
            ei += lit;
        }
        if di != diff.len() || ei != extra.len() {
            return Err(DeltaError::Corrupt(
                "chunk holds data no control block uses".into(),
            ));
        }
    }
    Ok(())
}

struct CountingReader<R: Read> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
