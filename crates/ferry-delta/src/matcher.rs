//! The generic differ: bsdiff-style approximate matching over a suffix array.
//!
//! The new file is scanned left to right. At each position the longest exact match in the old
//! file is looked up; a match is only taken when it beats simply continuing with the previous
//! copy offset by a margin, so that one long approximate copy (bytes mostly equal, the rest fixed
//! by the add-diff stream) is preferred over many short exact copies. Each taken match is then
//! extended forwards and backwards while at least half of the bytes still agree.

use crate::suffix::SuffixIndex;

/// One control block: copy `copy_len` bytes from `old_pos` adding the diff bytes, then insert
/// `extra_len` literal bytes. Blocks cover the new file in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Where the copy reads in the old file.
    pub old_pos: usize,
    /// Number of bytes copied (with add-diff) from the old file.
    pub copy_len: usize,
    /// Number of literal bytes following the copy.
    pub extra_len: usize,
}

/// Tuning of the matcher.
#[derive(Debug, Clone, Copy)]
pub struct MatchParams {
    /// A new match must beat continuing the previous copy by more than this many bytes.
    pub switch_margin: usize,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams { switch_margin: 8 }
    }
}

/// New files shorter than this are matched on one thread.
const MIN_PARALLEL: usize = 1 << 20;

/// [`diff_blocks`] on `threads` consecutive parts of `new` at once. Each part is matched on its
/// own thread and the blocks are concatenated (a part starts with no previous copy, which costs
/// a few bytes at each seam); one thread, or a new file under 1 MiB, matches it as a whole.
pub fn diff_blocks_parallel(
    index: &SuffixIndex<'_>,
    new: &[u8],
    params: MatchParams,
    threads: usize,
) -> Vec<Block> {
    let threads = threads.clamp(1, new.len() / MIN_PARALLEL + 1);
    if threads == 1 {
        return diff_blocks(index, new, params);
    }
    let part = new.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = new
            .chunks(part)
            .map(|piece| scope.spawn(move || diff_blocks(index, piece, params)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("matcher thread panicked"))
            .collect()
    })
}

/// Computes the control blocks turning `index.text()` into `new`.
pub fn diff_blocks(index: &SuffixIndex<'_>, new: &[u8], params: MatchParams) -> Vec<Block> {
    let old = index.text();
    let (oldsize, newsize) = (old.len() as isize, new.len());
    let mut blocks = Vec::new();
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut lastscan, mut lastpos, mut lastoffset) = (0usize, 0usize, 0isize);
    let at_offset = |i: usize, off: isize| -> bool {
        let o = i as isize + off;
        o >= 0 && o < oldsize && old[o as usize] == new[i]
    };
    while scan < newsize {
        let mut oldscore = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < newsize {
            let (p, l) = index.longest_match(&new[scan..]);
            pos = p;
            len = l;
            while scsc < scan + len {
                if at_offset(scsc, lastoffset) {
                    oldscore += 1;
                }
                scsc += 1;
            }
            if (len == oldscore && len != 0) || len > oldscore + params.switch_margin {
                break;
            }
            // When continuing the previous copy matches as far as the best match, the positions
            // inside that stretch cannot produce a better switch: skip them.
            let cont = scan as isize + lastoffset;
            if len > 0 && cont >= 0 && (cont as usize) < old.len() {
                let run = crate::suffix::common_prefix(&old[cont as usize..], &new[scan..]);
                if run >= len {
                    oldscore = oldscore.saturating_sub(run);
                    scan += run;
                    scsc = scsc.max(scan);
                    continue;
                }
            }
            if at_offset(scan, lastoffset) {
                oldscore = oldscore.saturating_sub(1);
            }
            scan += 1;
        }
        if len != oldscore || scan == newsize {
            // Forward extension of the previous match.
            let (mut s, mut best, mut lenf) = (0isize, 0isize, 0usize);
            let mut i = 0usize;
            while lastscan + i < scan && lastpos + i < old.len() {
                if old[lastpos + i] == new[lastscan + i] {
                    s += 1;
                }
                i += 1;
                if s * 2 - i as isize > best * 2 - lenf as isize {
                    best = s;
                    lenf = i;
                }
            }
            // Backward extension of the new match.
            let mut lenb = 0usize;
            if scan < newsize {
                let (mut s, mut best) = (0isize, 0isize);
                let mut i = 1usize;
                while scan >= lastscan + i && pos >= i {
                    if old[pos - i] == new[scan - i] {
                        s += 1;
                    }
                    if s * 2 - i as isize > best * 2 - lenb as isize {
                        best = s;
                        lenb = i;
                    }
                    i += 1;
                }
            }
            // Split an overlap where it loses the fewest matching bytes.
            if lastscan + lenf > scan - lenb {
                let overlap = (lastscan + lenf) - (scan - lenb);
                let (mut s, mut best, mut lens) = (0isize, 0isize, 0usize);
                for i in 0..overlap {
                    if new[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i] {
                        s += 1;
                    }
                    if new[scan - lenb + i] == old[pos - lenb + i] {
                        s -= 1;
                    }
                    if s > best {
                        best = s;
                        lens = i + 1;
                    }
                }
                lenf = lenf + lens - overlap;
                lenb -= lens;
            }
            blocks.push(Block {
                old_pos: lastpos,
                copy_len: lenf,
                extra_len: (scan - lenb) - (lastscan + lenf),
            });
            lastscan = scan - lenb;
            lastpos = pos - lenb;
            lastoffset = pos as isize - scan as isize;
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuild(old: &[u8], new_len: usize, new: &[u8], blocks: &[Block]) -> Vec<u8> {
        let mut out = Vec::with_capacity(new_len);
        for b in blocks {
            out.extend_from_slice(&new[out.len()..out.len() + b.copy_len]);
            assert!(b.old_pos + b.copy_len <= old.len());
            out.extend_from_slice(&new[out.len()..out.len() + b.extra_len]);
        }
        out
    }

    #[test]
    fn parallel_parts_cover_the_new_file_exactly() {
        let old: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 27) as u8)
            .collect();
        let mut new = old[500_000..2_500_000].to_vec();
        new.extend_from_slice(&old[..500_000]);
        let idx = SuffixIndex::new(&old);
        let blocks = diff_blocks_parallel(&idx, &new, MatchParams::default(), 2);
        assert_eq!(rebuild(&old, new.len(), &new, &blocks), new);
        let copied: usize = blocks.iter().map(|b| b.copy_len).sum();
        assert!(copied >= new.len() - 1000, "copied only {copied}");
    }

    #[test]
    fn blocks_cover_the_new_file_exactly() {
        let old: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old[1000..3000].to_vec();
        new.extend_from_slice(b"inserted text that is not in old");
        new.extend_from_slice(&old[0..1000]);
        let idx = SuffixIndex::new(&old);
        let blocks = diff_blocks(&idx, &new, MatchParams::default());
        assert_eq!(rebuild(&old, new.len(), &new, &blocks), new);
        let copied: usize = blocks.iter().map(|b| b.copy_len).sum();
        assert!(copied >= 2900, "copied only {copied}");
    }
}

/// A copy of the old file into the new one: `len` bytes at `old_pos` land at `new_pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRange {
    /// Start in the old file.
    pub old_pos: usize,
    /// Start in the new file.
    pub new_pos: usize,
    /// Length.
    pub len: usize,
}

/// The copies of `blocks` with their positions in the new file.
pub fn copies_of(blocks: &[Block]) -> Vec<CopyRange> {
    let mut new_pos = 0;
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        out.push(CopyRange {
            old_pos: b.old_pos,
            new_pos,
            len: b.copy_len,
        });
        new_pos += b.copy_len + b.extra_len;
    }
    out
}
