//! LEB128 variable-length integers (zigzag for signed values) used by the patch format.

use std::io::Read;

use crate::error::{DeltaError, Result};

/// Appends `v` as unsigned LEB128.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as LEB128.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A cursor over a byte slice that decodes varints, reporting corruption by name.
pub struct SliceReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> SliceReader<'a> {
    /// Reads from `data`; `what` names the structure in errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        SliceReader { data, pos: 0, what }
    }

    /// Number of bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Decodes one unsigned LEB128 value.
    pub fn u64(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(DeltaError::Corrupt(format!(
                    "{} ends inside a number",
                    self.what
                )));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DeltaError::Corrupt(format!(
            "{} holds an over-long number",
            self.what
        )))
    }

    /// Decodes one zigzag LEB128 value.
    pub fn i64(&mut self) -> Result<i64> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Decodes one byte.
    pub fn u8(&mut self) -> Result<u8> {
        let Some(&b) = self.data.get(self.pos) else {
            return Err(DeltaError::Corrupt(format!("{} ends early", self.what)));
        };
        self.pos += 1;
        Ok(b)
    }
}

/// Reads one unsigned LEB128 value from a stream.
pub fn read_u64(r: &mut impl Read, what: &'static str) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)
            .map_err(|e| DeltaError::stream(what, e))?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DeltaError::Corrupt(format!("over-long number in {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes() {
        let mut buf = Vec::new();
        let values = [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN];
        for v in values {
            put_i64(&mut buf, v);
        }
        put_u64(&mut buf, u64::MAX);
        let mut r = SliceReader::new(&buf, "test");
        for v in values {
            assert_eq!(r.i64().unwrap(), v);
        }
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert!(r.is_empty());
        assert!(r.u64().is_err());
    }
}
