//! A reader that counts and sha256-hashes what passes through it.

use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Wraps a reader; every byte read is counted and hashed.
pub(crate) struct HashingReader<R> {
    inner: R,
    sha256: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            sha256: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far and their sha256 (lowercase hex).
    pub(crate) fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.sha256.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Length and sha256 of everything `reader` yields.
pub(crate) fn digest(reader: impl Read) -> io::Result<(u64, String)> {
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hashes_everything_read() {
        assert_eq!(
            digest(&b"abc"[..]).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string()
            )
        );
        assert_eq!(digest(&b""[..]).unwrap().0, 0);
    }
}
