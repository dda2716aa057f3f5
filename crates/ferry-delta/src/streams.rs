//! The three entropy-coded streams of a patch (control, add-diff, literal), cut into chunks.
//!
//! Each stream is one zstd frame compressed with a persistent context, flushed at every chunk
//! boundary, so the three streams can be interleaved in the patch (apply reads it front to back)
//! without losing the compression history between chunks.

use std::io::{Read, Write};

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{CParameter, DParameter};

use crate::error::{DeltaError, Result};
use crate::format::{MAX_FRAGMENT, MAX_WINDOW_LOG, TAG_CHUNK, TAG_END};
use crate::varint;

/// Compression settings of one stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamParams {
    /// zstd level (1..=22).
    pub level: i32,
    /// log2 of the zstd window.
    pub window_log: u32,
}

/// Compressor of the three streams, producing interleaved chunks.
pub struct ChunkWriter {
    encoders: [zstd::stream::write::Encoder<'static, Vec<u8>>; 3],
}

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

impl ChunkWriter {
    /// A writer whose control, diff and literal streams use the given settings.
    pub fn new(params: [StreamParams; 3]) -> std::io::Result<Self> {
        Ok(ChunkWriter {
            encoders: [
                encoder(params[0])?,
                encoder(params[1])?,
                encoder(params[2])?,
            ],
        })
    }

    /// Compresses one chunk's worth of the three streams and appends it to `out`.
    pub fn chunk(&mut self, parts: [&[u8]; 3], out: &mut impl Write) -> std::io::Result<()> {
        let mut frags: [Vec<u8>; 3] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            self.encoders[i].write_all(part)?;
            self.encoders[i].flush()?;
            frags[i] = std::mem::take(self.encoders[i].get_mut());
        }
        write_chunk(&frags, out)
    }

    /// Ends the three frames and writes the last chunk and the end tag.
    pub fn finish(self, out: &mut impl Write) -> std::io::Result<()> {
        let [a, b, c] = self.encoders;
        let frags = [a.finish()?, b.finish()?, c.finish()?];
        write_chunk(&frags, out)?;
        out.write_all(&[TAG_END])
    }
}

fn write_chunk(frags: &[Vec<u8>; 3], out: &mut impl Write) -> std::io::Result<()> {
    let mut head = vec![TAG_CHUNK];
    for f in frags {
        varint::put_u64(&mut head, f.len() as u64);
    }
    out.write_all(&head)?;
    for f in frags {
        out.write_all(f)?;
    }
    Ok(())
}

/// Decompressor of the three streams, reading interleaved chunks.
pub struct ChunkReader {
    decoders: [Decoder<'static>; 3],
    fragment: Vec<u8>,
}

/// One decoded chunk: control bytes, diff bytes and literal bytes.
#[derive(Default)]
pub struct Chunk {
    /// Decoded bytes of each stream, in order control, diff, literal.
    pub parts: [Vec<u8>; 3],
}

const STREAM_NAMES: [&str; 3] = ["control stream", "diff stream", "literal stream"];

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
            decoders: [mk()?, mk()?, mk()?],
            fragment: Vec::new(),
        })
    }

    /// Reads the next chunk into `chunk`; returns false at the end tag. `limits` bounds the
    /// decoded size of each stream.
    pub fn next(
        &mut self,
        r: &mut impl Read,
        chunk: &mut Chunk,
        limits: [usize; 3],
    ) -> Result<bool> {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag)
            .map_err(|e| DeltaError::stream("chunk tag", e))?;
        match tag[0] {
            TAG_END => return Ok(false),
            TAG_CHUNK => {}
            t => return Err(DeltaError::Corrupt(format!("unknown chunk tag {t}"))),
        }
        let mut lens = [0u64; 3];
        for len in &mut lens {
            *len = varint::read_u64(r, "chunk header")?;
            if *len > MAX_FRAGMENT {
                return Err(DeltaError::Corrupt(format!(
                    "chunk fragment of {len} bytes is too large"
                )));
            }
        }
        for i in 0..3 {
            self.fragment.resize(lens[i] as usize, 0);
            r.read_exact(&mut self.fragment)
                .map_err(|e| DeltaError::stream(STREAM_NAMES[i], e))?;
            decode_fragment(
                &mut self.decoders[i],
                &self.fragment,
                &mut chunk.parts[i],
                limits[i],
                STREAM_NAMES[i],
            )?;
        }
        Ok(true)
    }
}

fn decode_fragment(
    dec: &mut Decoder<'static>,
    frag: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    what: &'static str,
) -> Result<()> {
    out.clear();
    out.resize(limit + 1, 0);
    let mut input = InBuffer::around(frag);
    let mut written = 0usize;
    loop {
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
        let mut w = ChunkWriter::new([p; 3]).unwrap();
        let mut patch = Vec::new();
        w.chunk([b"ctrl-1", b"diff-1", b"extra-1"], &mut patch)
            .unwrap();
        w.chunk([b"ctrl-2", b"", b"extra-2"], &mut patch).unwrap();
        w.finish(&mut patch).unwrap();
        let mut r = ChunkReader::new().unwrap();
        let mut c = Chunk::default();
        let mut src = patch.as_slice();
        let mut got = Vec::new();
        while r.next(&mut src, &mut c, [100; 3]).unwrap() {
            got.push(c.parts.clone());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0][2], b"extra-1");
        assert_eq!(got[1][1], b"");
        assert_eq!(got[1][0], b"ctrl-2");
        assert!(src.is_empty());
    }
}
