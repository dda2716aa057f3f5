//! Suffix array over the (possibly normalised) old file and longest-match search in it.

/// A suffix array of `text`, answering "longest prefix of this string found in text".
pub struct SuffixIndex<'a> {
    text: &'a [u8],
    sa: Vec<i32>,
    /// `buckets[p]..buckets[p + 1]` is the SA range of suffixes starting with the 2-byte prefix `p`.
    buckets: Vec<u32>,
}

/// Length of the common prefix of `a` and `b`.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

impl<'a> SuffixIndex<'a> {
    /// Sorts the suffixes of `text` (libsais, single-threaded: measured here, its OpenMP mode
    /// was several times slower on a busy 2-core machine). `text` must be shorter than 2 GiB.
    pub fn new(text: &'a [u8]) -> Self {
        let mut sa = vec![0i32; text.len()];
        if !text.is_empty() {
            libsais::SuffixArrayConstruction::for_text(text)
                .in_borrowed_buffer(&mut sa)
                .single_threaded()
                .run()
                .expect("libsais sorts any byte text shorter than 2 GiB");
        }
        let mut buckets = vec![0u32; 65537];
        for w in text.windows(2) {
            buckets[usize::from(w[0]) << 8 | usize::from(w[1])] += 1;
        }
        let mut sum = 0u32;
        let last = text.last().map(|&b| usize::from(b) << 8);
        for (p, slot) in buckets.iter_mut().enumerate() {
            // The one-byte final suffix sorts before every 2-byte suffix starting with its byte.
            if last == Some(p) {
                sum += 1;
            }
            let count = *slot;
            *slot = sum;
            sum += count;
        }
        SuffixIndex { text, sa, buckets }
    }

    /// The indexed text.
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// Position in the text and length of the longest match of a prefix of `needle`.
    pub fn longest_match(&self, needle: &[u8]) -> (usize, usize) {
        if self.sa.is_empty() || needle.is_empty() {
            return (0, 0);
        }
        let (i, len) = self.longest_match_rank(needle);
        (self.sa.get(i).map_or(0, |&p| p as usize), len)
    }

    /// Rank (suffix array index) and length of the longest match of a prefix of `needle`.
    fn longest_match_rank(&self, needle: &[u8]) -> (usize, usize) {
        if self.sa.is_empty() || needle.is_empty() {
            return (0, 0);
        }
        let (mut lo, mut hi) = (0usize, self.sa.len() - 1);
        if needle.len() >= 2 {
            let p = usize::from(needle[0]) << 8 | usize::from(needle[1]);
            let (b0, b1) = (self.buckets[p] as usize, self.buckets[p + 1] as usize);
            if b1 > b0 + 1 {
                // At least two suffixes share the prefix: search among them only.
                lo = b0;
                hi = b1 - 1;
            } else if b1 == b0 + 1 {
                let pos = self.sa[b0] as usize;
                return (b0, common_prefix(&self.text[pos..], needle));
            }
        }
        // Common prefix lengths with the bounds let comparisons skip known-equal bytes.
        let suffix = |i: usize| &self.text[self.sa[i] as usize..];
        let mut lo_lcp = common_prefix(suffix(lo), needle);
        let mut hi_lcp = common_prefix(suffix(hi), needle);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let skip = lo_lcp.min(hi_lcp);
            let s = suffix(mid);
            let l = skip + common_prefix(&s[skip..], &needle[skip..]);
            if l == needle.len() {
                return (mid, l);
            }
            if l < s.len() && s[l] < needle[l] || l == s.len() {
                lo = mid;
                lo_lcp = l;
            } else {
                hi = mid;
                hi_lcp = l;
            }
        }
        if lo_lcp >= hi_lcp {
            (lo, lo_lcp)
        } else {
            (hi, hi_lcp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_longest_match() {
        let text = b"the quick brown fox jumps over the lazy dog";
        let idx = SuffixIndex::new(text);
        let (pos, len) = idx.longest_match(b"the lazy cat");
        assert_eq!(&text[pos..pos + len], b"the lazy ");
        let (pos, len) = idx.longest_match(b"fox");
        assert_eq!((pos, len), (16, 3));
        assert_eq!(idx.longest_match(b"zzz").1, 1);
    }

    #[test]
    fn bucketed_search_agrees_with_brute_force() {
        let text: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 29) as u8)
            .collect();
        let idx = SuffixIndex::new(&text);
        for start in (0..2990).step_by(37) {
            let mut needle = text[start..start + 9].to_vec();
            needle[7] ^= 1;
            let best = (0..text.len())
                .map(|i| common_prefix(&text[i..], &needle))
                .max()
                .unwrap();
            let (pos, len) = idx.longest_match(&needle);
            assert_eq!(len, best, "needle at {start}");
            assert_eq!(common_prefix(&text[pos..], &needle), len);
        }
    }

    #[test]
    fn common_prefix_counts_bytes() {
        assert_eq!(common_prefix(b"abcdefghijk", b"abcdefghiXk"), 9);
        assert_eq!(common_prefix(b"abc", b"abcdef"), 3);
        assert_eq!(common_prefix(b"", b"a"), 0);
    }
}
