//! Segmented download planning: which byte ranges to fetch, and checks on what came back.

/// One HTTP Range request: bytes `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First byte (inclusive).
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl Segment {
    /// Number of bytes in the segment.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    /// Always false: a segment holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The `Range` header value.
    pub fn range_header(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

/// The segments still to fetch for a file of `length` bytes with `done` bytes already on disk.
pub fn remaining(length: u64, done: u64, chunk_size: u32) -> impl Iterator<Item = Segment> {
    let chunk = u64::from(chunk_size.max(1));
    let start = done.min(length);
    (start..length).step_by(chunk as usize).map(move |s| Segment { start: s, end: (s + chunk).min(length) - 1 })
}

/// A `Content-Range` header that does not match the requested segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Header could not be parsed.
    #[error("malformed Content-Range header '{0}'")]
    Malformed(String),
    /// Server answered a different range or total.
    #[error("server sent bytes {got_start}-{got_end}/{got_total}, expected {want_start}-{want_end}/{want_total}")]
    Mismatch {
        /// Start received.
        got_start: u64,
        /// End received.
        got_end: u64,
        /// Total received.
        got_total: u64,
        /// Start requested.
        want_start: u64,
        /// End requested.
        want_end: u64,
        /// Total expected.
        want_total: u64,
    },
}

/// Checks a `Content-Range: bytes a-b/total` header against the segment asked for.
pub fn check_content_range(header: &str, want: Segment, total: u64) -> Result<(), RangeError> {
    let malformed = || RangeError::Malformed(header.to_string());
    let rest = header.strip_prefix("bytes ").ok_or_else(malformed)?;
    let (range, t) = rest.split_once('/').ok_or_else(malformed)?;
    let (a, b) = range.split_once('-').ok_or_else(malformed)?;
    let parse = |s: &str| s.trim().parse::<u64>().map_err(|_| malformed());
    let (a, b, t) = (parse(a)?, parse(b)?, parse(t)?);
    if a != want.start || b != want.end || t != total {
        return Err(RangeError::Mismatch {
            got_start: a,
            got_end: b,
            got_total: t,
            want_start: want.start,
            want_end: want.end,
            want_total: total,
        });
    }
    Ok(())
}

/// Parses an HTTP `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) for a body of `len` bytes.
///
/// `Ok(None)` means no usable range (serve the whole body); `Err(())` means unsatisfiable (416).
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: &str, len: u64) -> Result<Option<Segment>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None); // multi-range: answer with the whole body, as RFC 9110 allows
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let seg = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        Segment { start: len.saturating_sub(n), end: len - 1 }
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() { len.saturating_sub(1) } else { b.parse().map_err(|_| ())? };
        if start >= len || end < start {
            return Err(());
        }
        Segment { start, end: end.min(len - 1) }
    };
    Ok(Some(seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_file_exactly_once() {
        let segs: Vec<_> = remaining(10_000, 0, 4096).collect();
        assert_eq!(segs, vec![Segment { start: 0, end: 4095 }, Segment { start: 4096, end: 8191 }, Segment { start: 8192, end: 9999 }]);
    }

    #[test]
    fn resumes_from_bytes_on_disk() {
        let segs: Vec<_> = remaining(10_000, 5000, 4096).collect();
        assert_eq!(segs.first().unwrap().start, 5000);
        assert_eq!(segs.iter().map(Segment::len).sum::<u64>(), 5000);
        assert_eq!(remaining(10, 10, 4).count(), 0);
        assert_eq!(remaining(10, 99, 4).count(), 0);
    }

    #[test]
    fn content_range_must_match_request() {
        let s = Segment { start: 0, end: 9 };
        assert!(check_content_range("bytes 0-9/100", s, 100).is_ok());
        assert!(matches!(check_content_range("bytes 0-8/100", s, 100), Err(RangeError::Mismatch { .. })));
        assert!(matches!(check_content_range("bytes 0-9/101", s, 100), Err(RangeError::Mismatch { .. })));
        assert!(matches!(check_content_range("items 0-9/100", s, 100), Err(RangeError::Malformed(_))));
    }

    #[test]
    fn parses_range_forms_and_refuses_unsatisfiable() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(Segment { start: 0, end: 9 })));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(Segment { start: 90, end: 99 })));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(Segment { start: 90, end: 99 })));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some(Segment { start: 50, end: 99 })));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("lines=1-2", 100), Ok(None));
    }

    proptest::proptest! {
        #[test]
        fn segments_are_contiguous_and_bounded(len in 0u64..100_000, done in 0u64..100_000, chunk in 1u32..20_000) {
            let segs: Vec<_> = remaining(len, done, chunk).collect();
            let mut pos = done.min(len);
            for s in &segs {
                proptest::prop_assert_eq!(s.start, pos);
                proptest::prop_assert!(s.len() <= u64::from(chunk));
                pos = s.end + 1;
            }
            proptest::prop_assert_eq!(pos, len.max(done.min(len)));
        }
    }
}
