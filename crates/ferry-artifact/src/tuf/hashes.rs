//! Length and hash checks against signed metadata (sha256 and sha512).

use super::error::TufError;
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::io::Read;

/// sha256 and sha512 of a byte stream, with its length.
#[derive(Default)]
pub(crate) struct Digests {
    sha256: Sha256,
    sha512: Sha512,
    length: u64,
}

/// Finished digests, lowercase hex.
pub(crate) struct DigestValues {
    pub(crate) sha256: String,
    pub(crate) sha512: String,
    pub(crate) length: u64,
}

impl Digests {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.sha512.update(data);
        self.length += data.len() as u64;
    }

    pub(crate) fn finish(self) -> DigestValues {
        DigestValues {
            sha256: hex::encode(self.sha256.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
            length: self.length,
        }
    }

    /// Digests everything `reader` yields.
    pub(crate) fn of_reader(what: &str, mut reader: impl Read) -> Result<DigestValues, TufError> {
        let mut digests = Digests::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(|source| TufError::Io {
                what: what.to_string(),
                source,
            })?;
            if n == 0 {
                return Ok(digests.finish());
            }
            digests.update(&buf[..n]);
        }
    }

    /// Digests a byte slice.
    pub(crate) fn of(data: &[u8]) -> DigestValues {
        let mut digests = Digests::default();
        digests.update(data);
        digests.finish()
    }
}

impl DigestValues {
    fn get(&self, algorithm: &str) -> Option<&str> {
        match algorithm {
            "sha256" => Some(&self.sha256),
            "sha512" => Some(&self.sha512),
            _ => None,
        }
    }
}

/// Checks the observed length and every listed hash. An algorithm other than sha256/sha512 is an
/// error (it cannot be checked); an empty hash list is an error too.
pub(crate) fn check(
    what: &str,
    observed: &DigestValues,
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), TufError> {
    if let Some(expected) = length
        && expected != observed.length
    {
        return Err(TufError::LengthMismatch {
            what: what.into(),
            expected,
            found: observed.length,
        });
    }
    let Some(hashes) = hashes else { return Ok(()) };
    if hashes.is_empty() {
        return Err(TufError::NoHash {
            what: what.into(),
            needed: "sha256 or sha512",
        });
    }
    for (algorithm, expected) in hashes {
        let found = observed
            .get(algorithm)
            .ok_or_else(|| TufError::UnsupportedHash {
                what: what.into(),
                algorithm: algorithm.clone(),
            })?;
        if !found.eq_ignore_ascii_case(expected) {
            return Err(TufError::HashMismatch {
                what: what.into(),
                algorithm: algorithm.clone(),
                expected: expected.clone(),
                found: found.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, h)| (a.to_string(), h.to_string()))
            .collect()
    }

    #[test]
    fn accepts_matching_sha256_and_sha512() {
        let d = Digests::of(b"abc");
        let h = hashes(&[("sha256", &d.sha256), ("sha512", &d.sha512.to_uppercase())]);
        check("x", &d, Some(3), Some(&h)).unwrap();
    }

    #[test]
    fn rejects_unsupported_algorithm_and_empty_hashes() {
        let d = Digests::of(b"abc");
        let err = check("x", &d, None, Some(&hashes(&[("md5", "00")]))).unwrap_err();
        assert!(
            matches!(err, TufError::UnsupportedHash { ref algorithm, .. } if algorithm == "md5")
        );
        assert!(matches!(
            check("x", &d, None, Some(&BTreeMap::new())),
            Err(TufError::NoHash { .. })
        ));
    }

    #[test]
    fn reports_expected_and_found() {
        let d = Digests::of(b"abc");
        let err = check("target t", &d, None, Some(&hashes(&[("sha512", "00")])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target t") && err.contains(&d.sha512) && err.contains("00"),
            "{err}"
        );
        let err = check("target t", &d, Some(4), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("length 3") && err.contains("signed length 4"),
            "{err}"
        );
    }
}
