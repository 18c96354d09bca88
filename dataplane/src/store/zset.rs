//! The sorted set: a member → score map plus an ordered index of `(score, member)`.
//!
//! Ordering is Redis's: by score, then by member bytes (`-0` and `0` compare equal, NaN is
//! never stored).
//!
//! The ordered index is a list of sorted blocks of at most [`BLOCK_MAX`] entries (a two-level
//! B-tree without the tree). Finding a position is a binary search over the blocks' last
//! entries plus one inside a block; turning a position into a rank adds up the lengths of the
//! blocks before it, so rank queries cost O(log n + n / [`BLOCK_MAX`]) and touch one cache
//! line per block. Inserting or removing moves at most one block's entries. Small sets (the
//! common case) are a single block, i.e. a sorted vector, much like Redis's listpack.

use std::cmp::Ordering;

use super::value::{Map, SmallBytes};

/// A block is split in two once it grows past this many entries.
pub const BLOCK_MAX: usize = 512;

/// Two neighbouring blocks are merged when one falls under this size and both fit in one.
const BLOCK_MIN: usize = BLOCK_MAX / 4;

/// One entry of the ordered index.
type Item = (f64, SmallBytes);

/// Redis's order: score (with `-0 == 0`), then member bytes.
#[inline]
pub fn cmp_entry(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    match a_score.partial_cmp(&b_score) {
        Some(Ordering::Equal) | None => a_member.cmp(b_member),
        Some(o) => o,
    }
}

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    /// member → score (ZSCAN cursors and ZRANDMEMBER use its positions).
    pub dict: Map<SmallBytes, f64>,
    /// The ordered index: non-empty sorted blocks, each sorted and all in order.
    blocks: Vec<Vec<Item>>,
    /// True once Redis would have converted it from listpack to skiplist (one-way).
    pub skiplist: bool,
}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a sorted set from distinct members (any order), in O(n log n).
    pub fn from_pairs(mut pairs: Vec<(SmallBytes, f64)>) -> Self {
        pairs.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        let mut z = ZSet::default();
        z.dict.reserve(pairs.len());
        let mut block = Vec::with_capacity(pairs.len().min(BLOCK_MAX));
        for (m, s) in pairs {
            z.dict.insert(m.clone(), s);
            block.push((s, m));
            if block.len() == BLOCK_MAX / 2 {
                z.blocks.push(std::mem::take(&mut block));
            }
        }
        if !block.is_empty() {
            z.blocks.push(block);
        }
        z
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    /// The score of a member.
    #[inline]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Adds or updates a member; returns true when it was new. An existing member is moved
    /// when its score differs (a change between `0` and `-0` included).
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        match self.dict.get_mut(member) {
            Some(old) => {
                if *old != score || old.is_sign_negative() != score.is_sign_negative() {
                    let prev = *old;
                    *old = score;
                    let key = self.index_remove(prev, member);
                    self.index_insert(score, key);
                }
                false
            }
            None => {
                let key = SmallBytes::new(member);
                self.dict.insert(key.clone(), score);
                self.index_insert(score, key);
                true
            }
        }
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.dict.swap_remove(member)?;
        self.index_remove(score, member);
        Some(score)
    }

    /// The 0-based rank of a member in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.partition(|s, m| cmp_entry(s, m, score, member) == Ordering::Less))
    }

    /// The number of leading entries (in order) for which `pred(score, member)` holds.
    /// `pred` must hold for a prefix of the order and not after it (e.g. `score < min`).
    pub fn partition(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let bi = self.blocks.partition_point(|b| {
            let (s, m) = b.last().expect("blocks are never empty");
            pred(*s, m)
        });
        let before: usize = self.blocks[..bi].iter().map(Vec::len).sum();
        match self.blocks.get(bi) {
            Some(b) => before + b.partition_point(|(s, m)| pred(*s, m)),
            None => before,
        }
    }

    /// Like [`ZSet::partition`], but walks forward (the blocks' first entries, then inside a
    /// block) to the first entry failing `pred`, as a skiplist search walks forward. Same
    /// answer for a prefix predicate; for one that is not (a lex range over members with
    /// different scores) it answers as Redis's skiplist usually does. O(n / B + B).
    pub fn partition_scan(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        // The first block starting with a failing entry; the answer is in the block before it
        // or at its start.
        let j = self
            .blocks
            .iter()
            .position(|b| !pred(b[0].0, &b[0].1))
            .unwrap_or(self.blocks.len());
        let Some(prev) = j.checked_sub(1) else {
            return 0;
        };
        let before: usize = self.blocks[..prev].iter().map(Vec::len).sum();
        let b = &self.blocks[prev];
        before + b.iter().position(|(s, m)| !pred(*s, m)).unwrap_or(b.len())
    }

    /// The entry at a rank (ascending).
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        let (bi, off) = self.locate(rank);
        self.blocks
            .get(bi)
            .and_then(|b| b.get(off))
            .map(|(s, m)| (&m[..], *s))
    }

    /// The entries of ranks `start..end` (ascending; use `.rev()` for descending).
    /// `end` is clamped to the length.
    pub fn range(&self, start: usize, end: usize) -> RangeIter<'_> {
        let end = end.min(self.len());
        let start = start.min(end);
        RangeIter {
            blocks: &self.blocks,
            front: self.locate(start),
            back: self.locate(end),
            remaining: end - start,
        }
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> RangeIter<'_> {
        self.range(0, self.len())
    }

    /// Removes the entries of ranks `start..end`; returns how many were removed.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        let (mut bi, mut off) = self.locate(start);
        let first = bi;
        let mut left = end - start;
        while left > 0 {
            let take = left.min(self.blocks[bi].len() - off);
            for (_, m) in self.blocks[bi].drain(off..off + take) {
                self.dict.swap_remove(&m[..]);
            }
            left -= take;
            if self.blocks[bi].is_empty() {
                self.blocks.remove(bi);
            } else {
                bi += 1;
            }
            off = 0;
        }
        // Only the blocks at the two edges of the removed run can have become small.
        self.rebalance(bi.saturating_sub(1));
        self.rebalance(first);
        end - start
    }

    /// Removes and returns the lowest (`max == false`) or highest entry.
    pub fn pop(&mut self, max: bool) -> Option<(SmallBytes, f64)> {
        let bi = if max {
            self.blocks.len().checked_sub(1)?
        } else {
            0
        };
        let block = self.blocks.get_mut(bi)?;
        let (s, m) = if max { block.pop()? } else { block.remove(0) };
        self.dict.swap_remove(&m[..]);
        self.rebalance(bi);
        Some((m, s))
    }

    /// Heap bytes owned (estimate).
    pub fn heap_size(&self) -> usize {
        let sb = std::mem::size_of::<SmallBytes>();
        self.dict.capacity() * (sb + 8 + 8 + 9)
            + self.blocks.capacity() * std::mem::size_of::<Vec<Item>>()
            + self
                .blocks
                .iter()
                .map(|b| b.capacity() * std::mem::size_of::<Item>())
                .sum::<usize>()
            + self.dict.keys().map(|k| 2 * k.heap_size()).sum::<usize>()
    }

    /// (block, offset) of a rank; `(blocks.len(), 0)` for the end.
    fn locate(&self, mut rank: usize) -> (usize, usize) {
        for (i, b) in self.blocks.iter().enumerate() {
            if rank < b.len() {
                return (i, rank);
            }
            rank -= b.len();
        }
        (self.blocks.len(), 0)
    }

    /// The block an entry belongs in (the first whose last entry is not below it).
    fn block_for(&self, score: f64, member: &[u8]) -> usize {
        let bi = self.blocks.partition_point(|b| {
            let (s, m) = b.last().expect("blocks are never empty");
            cmp_entry(*s, m, score, member) == Ordering::Less
        });
        bi.min(self.blocks.len().saturating_sub(1))
    }

    fn index_insert(&mut self, score: f64, member: SmallBytes) {
        if self.blocks.is_empty() {
            self.blocks.push(vec![(score, member)]);
            return;
        }
        let bi = self.block_for(score, &member);
        let block = &mut self.blocks[bi];
        let pos = block.partition_point(|(s, m)| cmp_entry(*s, m, score, &member).is_lt());
        block.insert(pos, (score, member));
        if block.len() > BLOCK_MAX {
            let tail = block.split_off(block.len() / 2);
            self.blocks.insert(bi + 1, tail);
        }
    }

    /// Removes `(score, member)` from the index and returns the stored member.
    fn index_remove(&mut self, score: f64, member: &[u8]) -> SmallBytes {
        let bi = self.block_for(score, member);
        let block = &mut self.blocks[bi];
        let pos = block
            .binary_search_by(|(s, m)| cmp_entry(*s, m, score, member))
            .expect("dict and index agree");
        let (_, key) = block.remove(pos);
        self.rebalance(bi);
        key
    }

    /// Drops block `bi` if empty, or merges it with a neighbour when it got small.
    fn rebalance(&mut self, bi: usize) {
        let Some(b) = self.blocks.get(bi) else {
            return;
        };
        if b.is_empty() {
            self.blocks.remove(bi);
            return;
        }
        if b.len() >= BLOCK_MIN || self.blocks.len() < 2 {
            return;
        }
        // Merge the pair (left, left + 1) that contains `bi`.
        let left = if bi + 1 < self.blocks.len() {
            bi
        } else {
            bi - 1
        };
        if self.blocks[left].len() + self.blocks[left + 1].len() <= BLOCK_MAX {
            let right = self.blocks.remove(left + 1);
            self.blocks[left].extend(right);
        }
    }

    /// Checks the internal invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut n = 0;
        let mut prev: Option<&Item> = None;
        for b in &self.blocks {
            assert!(!b.is_empty() && b.len() <= BLOCK_MAX);
            for it in b {
                if let Some(p) = prev {
                    assert!(cmp_entry(p.0, &p.1, it.0, &it.1).is_lt());
                }
                assert_eq!(
                    self.dict.get(&it.1[..]).map(|s| s.to_bits()),
                    Some(it.0.to_bits())
                );
                prev = Some(it);
                n += 1;
            }
        }
        assert_eq!(n, self.dict.len());
    }
}

/// Iterator over a range of ranks of a [`ZSet`], yielding `(member, score)`.
#[derive(Debug, Clone)]
pub struct RangeIter<'a> {
    blocks: &'a [Vec<Item>],
    front: (usize, usize),
    /// Exclusive end position.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.front.1 >= self.blocks[self.front.0].len() {
            self.front = (self.front.0 + 1, 0);
        }
        let (s, m) = &self.blocks[self.front.0][self.front.1];
        self.front.1 += 1;
        self.remaining -= 1;
        Some((m, *s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for RangeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.back.1 == 0 {
            self.back.0 -= 1;
            self.back.1 = self.blocks[self.back.0].len();
        }
        self.back.1 -= 1;
        self.remaining -= 1;
        let (s, m) = &self.blocks[self.back.0][self.back.1];
        Some((m, *s))
    }
}

impl ExactSizeIterator for RangeIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn members(z: &ZSet) -> Vec<Vec<u8>> {
        z.iter().map(|(m, _)| m.to_vec()).collect()
    }

    #[test]
    fn order_and_ranks() {
        let mut z = ZSet::new();
        assert!(z.insert(b"b", 1.0));
        assert!(z.insert(b"a", 1.0));
        assert!(z.insert(b"c", -0.0));
        assert!(z.insert(b"d", f64::INFINITY));
        assert!(!z.insert(b"a", 0.0));
        assert_eq!(members(&z), [&b"a"[..], b"c", b"b", b"d"]);
        assert_eq!(z.rank(b"b"), Some(2));
        assert_eq!(z.rank(b"x"), None);
        assert_eq!(z.get_by_rank(3), Some((&b"d"[..], f64::INFINITY)));
        let rev: Vec<_> = z.range(1, 3).rev().map(|(m, _)| m.to_vec()).collect();
        assert_eq!(rev, [b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(z.partition(|s, _| s < 1.0), 2);
        z.check();
    }

    #[test]
    fn random_against_model() {
        let mut rng = rand::rng();
        let mut z = ZSet::new();
        let mut model: std::collections::BTreeMap<Vec<u8>, f64> = Default::default();
        for round in 0..20_000 {
            let m = format!("m{}", rng.random_range(0..3000)).into_bytes();
            match rng.random_range(0..10) {
                0..=5 => {
                    let s = rng.random_range(0..200) as f64;
                    assert_eq!(z.insert(&m, s), model.insert(m.clone(), s).is_none());
                }
                6..=7 => assert_eq!(z.remove(&m), model.remove(&m)),
                8 => {
                    let max = rng.random_bool(0.5);
                    let got = z.pop(max);
                    let mut v: Vec<_> = model.iter().map(|(k, s)| (k.clone(), *s)).collect();
                    v.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
                    let want = if max { v.pop() } else { v.first().cloned() };
                    if let Some((k, _)) = &want {
                        model.remove(k);
                    }
                    assert_eq!(got.map(|(k, s)| (k.to_vec(), s)), want);
                }
                _ => {
                    let a = rng.random_range(0..z.len() + 1);
                    let b = rng.random_range(a..z.len() + 2);
                    let gone: Vec<_> = z.range(a, b).map(|(m, _)| m.to_vec()).collect();
                    assert_eq!(z.remove_range(a, b), gone.len());
                    for g in gone {
                        model.remove(&g);
                    }
                }
            }
            if round % 1000 == 0 {
                z.check();
            }
        }
        z.check();
        let mut v: Vec<_> = model.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        let got: Vec<_> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, v);
        for (i, (k, _)) in v.iter().enumerate() {
            assert_eq!(z.rank(k), Some(i));
        }
        for x in [-1.0, 0.0, 50.5, 100.0, 199.0, 500.0] {
            assert_eq!(z.partition(|s, _| s < x), z.partition_scan(|s, _| s < x));
        }
        let back: Vec<_> = z.iter().rev().map(|(m, s)| (m.to_vec(), s)).collect();
        v.reverse();
        assert_eq!(back, v);
    }

    #[test]
    fn from_pairs_builds_blocks() {
        let pairs: Vec<_> = (0..2000)
            .rev()
            .map(|i| {
                (
                    SmallBytes::from_vec(format!("{i:05}").into_bytes()),
                    (i % 7) as f64,
                )
            })
            .collect();
        let z = ZSet::from_pairs(pairs);
        z.check();
        assert_eq!(z.len(), 2000);
        assert_eq!(z.rank(b"00000"), Some(0));
    }
}
