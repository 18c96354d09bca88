//! The sorted set: a member → score map plus an ordered index of `(score, member)`.
//!
//! Ordering is Redis's: by score, then by member bytes. Ranks are found by walking the ordered
//! index, so rank queries cost O(rank); ranges by score or lex use the index directly.

use std::collections::BTreeSet;

use super::value::{Map, SmallBytes};

/// A score with the total order Redis uses (NaN never stored; `-0` equals `0`).
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .partial_cmp(&other.0)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    /// member → score (insertion ordered, for ZSCAN and ZRANDMEMBER).
    pub dict: Map<SmallBytes, f64>,
    /// `(score, member)` in Redis's order.
    pub tree: BTreeSet<(Score, SmallBytes)>,
    /// True once Redis would have converted it from listpack to skiplist (one-way).
    pub skiplist: bool,
}

impl ZSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    /// The score of a member.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Adds or updates a member; returns true when it was new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        match self.dict.get_mut(member) {
            Some(old) => {
                if *old != score || old.is_sign_negative() != score.is_sign_negative() {
                    let key = SmallBytes::new(member);
                    self.tree.remove(&(Score(*old), key.clone()));
                    *old = score;
                    self.tree.insert((Score(score), key));
                }
                false
            }
            None => {
                let key = SmallBytes::new(member);
                self.dict.insert(key.clone(), score);
                self.tree.insert((Score(score), key));
                true
            }
        }
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (key, score) = self.dict.swap_remove_entry(member)?;
        self.tree.remove(&(Score(score), key));
        Some(score)
    }

    /// Heap bytes owned (estimate).
    pub fn heap_size(&self) -> usize {
        let sb = std::mem::size_of::<SmallBytes>();
        self.dict.capacity() * (sb + 8 + 8 + 9)
            + self.tree.len() * (sb + 8 + 16)
            + self.dict.keys().map(|k| 2 * k.heap_size()).sum::<usize>()
    }
}
