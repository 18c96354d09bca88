//! Key-level copy-on-write for point-in-time background saves (BGSAVE, AOF rewrite, a
//! replica's full resync).
//!
//! A background save cannot fork (the server is multi-threaded). It walks the live tables
//! instead, and each [`Db`](super::Db) being saved carries a [`Cow`] so that the file is
//! the keyspace as it was when the save started:
//!
//! - The save thread takes a slot in short lock holds, a bounded number of keys per hold,
//!   as [`Record`]s: a key, a clone of its value and its expiry. A clone is cheap: short
//!   strings are copied; collections ([`CowArc`](super::CowArc)) and strings of 64 KiB or
//!   more ([`SmallBytes::Shared`]) are shared (a reference count).
//!   Serialisation happens after the lock is released, so no hold is proportional to the
//!   size of a slot or of a value.
//! - Every change to a key goes through one of `Db`'s methods, which call
//!   [`Cow::keep`] first: a key the save has not reached yet has its point-in-time value
//!   kept (a clone, or `None` if it did not exist), once. Only that key is kept — never its
//!   slot — so a writer (or eviction) pays for what it changes. A writer that then modifies a
//!   big collection the save still shares pays for a copy of that one collection.
//! - FLUSHDB/FLUSHALL, SLOTSDEL and SWAPDB move (or, SWAPDB, shallow-copy) whole tables
//!   aside; the save thread serialises them outside the lock.
//!
//! The bytes kept for the save are counted in [`Cow::bytes`]: like the pages a forked Redis
//! child keeps, they are not counted against `maxmemory`.

use std::collections::HashSet;

use super::{Entry, Map, SlotTable, SmallBytes, Value};
use codis_model::MAX_SLOT_NUM;

/// One key of the snapshot, ready to serialise.
#[derive(Debug)]
pub struct Record {
    /// The key.
    pub key: SmallBytes,
    /// Its value when the save started.
    pub value: Value,
    /// Its absolute expiry (unix ms), if any.
    pub expire: Option<u64>,
}

/// What the save thread got from one lock hold for a db.
#[derive(Debug, Default)]
pub struct Taken {
    /// Keys to serialise.
    pub records: Vec<Record>,
    /// Whole tables moved aside (serialise them too).
    pub tables: Vec<SlotTable>,
    /// Estimated bytes held by `records` and `tables` (not counted for maxmemory).
    pub bytes: usize,
}

/// A key's point-in-time value (`None`: the key did not exist).
type Kept = Option<(Value, Option<u64>)>;

#[derive(Debug)]
enum State {
    /// Not reached yet.
    Pending,
    /// Partly taken: keys at indices `>= cursor` were visited (the walk goes down, as
    /// removal moves the last key into the hole); `emitted` holds the keys already taken
    /// (a key moved below the cursor by a removal is visited twice).
    InProgress {
        cursor: usize,
        emitted: HashSet<SmallBytes>,
    },
    /// Taken (or moved aside whole).
    Done,
}

/// The copy-on-write state of one database during a background save.
#[derive(Debug)]
pub struct Cow {
    state: Vec<State>,
    kept: Vec<Option<Box<Map<SmallBytes, Kept>>>>,
    /// Bytes `kept[slot]` holds (measured when kept).
    kept_bytes: Vec<usize>,
    aside: Vec<Option<(SlotTable, usize)>>,
    /// Estimated bytes kept for the save (not counted for maxmemory, as a fork's copy).
    pub bytes: usize,
    /// Keys whose value writers kept for the save (INFO `rdb_last_cow_size`).
    pub copied: u64,
}

/// Heap bytes of a key's string data (what taking it copies).
fn copy_size(key: &[u8], value: &Value) -> usize {
    let k = if key.len() > super::value::INLINE_CAP {
        key.len()
    } else {
        0
    };
    k + match value {
        Value::Str(s) => s.heap_size(),
        _ => 0,
    }
}

/// An estimate of a table's own memory (a table moved aside whole is not measured).
fn table_size(t: &SlotTable) -> usize {
    t.keys.capacity() * 64 + t.expires.capacity() * 48
}

/// Runs `f` and returns what it allocated on this thread (net, at least 0).
fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = crate::alloc::thread_allocated();
    let r = f();
    let n = crate::alloc::thread_allocated()
        .saturating_sub(before)
        .max(0) as usize;
    (r, n)
}

impl Default for Cow {
    fn default() -> Self {
        Self::new()
    }
}

impl Cow {
    /// Every slot pending.
    pub fn new() -> Self {
        let (mut c, n) = measured(|| Cow {
            state: (0..MAX_SLOT_NUM).map(|_| State::Pending).collect(),
            kept: (0..MAX_SLOT_NUM).map(|_| None).collect(),
            kept_bytes: vec![0; MAX_SLOT_NUM],
            aside: (0..MAX_SLOT_NUM).map(|_| None).collect(),
            bytes: 0,
            copied: 0,
        });
        // Its own tables count as the save's too.
        c.bytes = n;
        c
    }

    /// True when `key` of `slot` still has to be kept before it changes.
    #[inline]
    fn needs(&self, slot: usize, key: &[u8]) -> bool {
        let kept = || {
            self.kept[slot]
                .as_ref()
                .is_some_and(|m| m.contains_key(key))
        };
        match &self.state[slot] {
            State::Pending => !kept(),
            State::InProgress { emitted, .. } => !emitted.contains(key) && !kept(),
            State::Done => false,
        }
    }

    /// Called before `key` (in `slot`, whose live table is `t`) changes: keeps its value
    /// for the save if the save has not taken it yet. `value_changes` is false when only
    /// the TTL changes (the kept value stays shared with the live one).
    pub fn keep(&mut self, slot: usize, key: &[u8], t: &SlotTable, value_changes: bool) {
        if !self.needs(slot, key) {
            return;
        }
        let map = &mut self.kept[slot];
        let (extra, mut n) = measured(|| {
            let kept = t.keys.get(key).map(|e| {
                let exp = if t.expires.is_empty() {
                    None
                } else {
                    t.expires.get(key).copied()
                };
                (e.value.clone(), exp)
            });
            // A collection is shared, not copied, here; the writer's change copies it (the
            // live copy is then the new one): count the kept one as the save's.
            let extra = match &kept {
                Some((
                    v @ (Value::List(_)
                    | Value::Hash(_)
                    | Value::Set(_)
                    | Value::ZSet(_)
                    | Value::Str(SmallBytes::Shared(_))),
                    _,
                )) if value_changes => v.approx_size(),
                _ => 0,
            };
            map.get_or_insert_with(Default::default)
                .insert(SmallBytes::new(key), kept);
            extra
        });
        n += extra;
        self.kept_bytes[slot] += n;
        self.bytes += n;
        self.copied += 1;
    }

    /// Called before the live table of `slot` is dropped or replaced wholesale with `t`
    /// (its content until now): keeps what the save has not taken yet, without a copy.
    /// Returns the table when the save does not need it (the caller drops it).
    pub fn keep_table(&mut self, slot: usize, mut t: SlotTable) -> Option<SlotTable> {
        let state = std::mem::replace(&mut self.state[slot], State::Done);
        if let State::InProgress { emitted, .. } = &state {
            for k in emitted {
                t.keys.swap_remove(k.as_bytes());
                t.expires.swap_remove(k.as_bytes());
            }
        } else if matches!(state, State::Done) {
            return Some(t);
        }
        let kept_bytes = std::mem::take(&mut self.kept_bytes[slot]);
        if let Some(kept) = self.kept[slot].take() {
            for (k, v) in *kept {
                t.expires.swap_remove(k.as_bytes());
                match v {
                    Some((value, exp)) => {
                        if let Some(at) = exp {
                            t.expires.insert(k.clone(), at);
                        }
                        t.keys.insert(k, Entry { value, lru: 0 });
                    }
                    None => {
                        t.keys.swap_remove(k.as_bytes());
                    }
                }
            }
        }
        if t.keys.is_empty() {
            self.bytes = self.bytes.saturating_sub(kept_bytes);
            return Some(t);
        }
        let n = table_size(&t);
        self.bytes += n;
        self.aside[slot] = Some((t, n + kept_bytes));
        None
    }

    /// True when the save still needs something of `slot` (tests, SWAPDB).
    pub fn is_pending(&self, slot: usize) -> bool {
        !matches!(self.state[slot], State::Done)
    }

    /// The save thread's step for `slot` (live table `live`): appends to `out` at most
    /// about `budget` keys (fewer bytes of strings than `budget_bytes`) and returns true
    /// when the slot is finished. Costs no more than the keys it takes (plus, when a slot
    /// ends, the keys writers kept for it).
    pub fn take(
        &mut self,
        slot: usize,
        live: &SlotTable,
        budget: &mut usize,
        budget_bytes: &mut usize,
        out: &mut Taken,
    ) -> bool {
        if let Some((t, n)) = self.aside[slot].take() {
            self.bytes = self.bytes.saturating_sub(n);
            out.bytes += n;
            *budget = budget.saturating_sub(t.keys.len().min(*budget));
            out.tables.push(t);
        }
        let (mut cursor, emitted) = match std::mem::replace(&mut self.state[slot], State::Done) {
            State::Done => return true,
            State::Pending => (live.keys.len(), None),
            State::InProgress { cursor, emitted } => (cursor, Some(emitted)),
        };
        let kept = self.kept[slot].as_deref();
        let first = out.records.len();
        cursor = cursor.min(live.keys.len());
        let before = crate::alloc::thread_allocated();
        while cursor > 0 && *budget > 0 && *budget_bytes > 0 {
            cursor -= 1;
            let (k, e) = live.keys.get_index(cursor).expect("index in range");
            if emitted.as_ref().is_some_and(|s| s.contains(k.as_bytes()))
                || kept.is_some_and(|m| m.contains_key(k.as_bytes()))
            {
                continue;
            }
            let expire = if live.expires.is_empty() {
                None
            } else {
                live.expires.get(k.as_bytes()).copied()
            };
            *budget -= 1;
            *budget_bytes = budget_bytes.saturating_sub(copy_size(k, &e.value));
            out.records.push(Record {
                key: k.clone(),
                value: e.value.clone(),
                expire,
            });
        }
        out.bytes += crate::alloc::thread_allocated()
            .saturating_sub(before)
            .max(0) as usize;
        if cursor > 0 {
            // Yield mid-slot: remember what was taken, so writers keep only the rest.
            let mut set = emitted.unwrap_or_default();
            for r in &out.records[first..] {
                set.insert(r.key.clone());
            }
            self.state[slot] = State::InProgress {
                cursor,
                emitted: set,
            };
            return false;
        }
        let kept_bytes = std::mem::take(&mut self.kept_bytes[slot]);
        self.bytes = self.bytes.saturating_sub(kept_bytes);
        out.bytes += kept_bytes;
        if let Some(kept) = self.kept[slot].take() {
            for (key, v) in *kept {
                if let Some((value, expire)) = v {
                    out.records.push(Record { key, value, expire });
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    fn val(v: &str) -> Value {
        Value::Str(SmallBytes::new(v.as_bytes()))
    }

    fn text(v: &Value) -> String {
        match v {
            Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Value::Hash(h) => format!("hash:{}", h.len()),
            o => panic!("{o:?}"),
        }
    }

    /// One slot taken over many holds while writers change, delete, create and expire keys
    /// and the walk's positions move: the records are exactly the keys as they were.
    #[test]
    fn a_slot_taken_in_pieces_is_point_in_time() {
        let mut db = Db::new(0);
        let key = |i: usize| format!("{{t}}k{i}");
        let mut want = std::collections::BTreeMap::new();
        for i in 0..200 {
            db.set(key(i).as_bytes(), val(&format!("v{i}")));
            want.insert(key(i), format!("v{i}"));
        }
        let mut h = crate::store::HashValue::default();
        h.insert(SmallBytes::new(b"f"), SmallBytes::new(b"1"));
        db.set(b"{t}hash", Value::Hash(crate::store::CowArc::new(h)));
        want.insert("{t}hash".into(), "hash:1".into());
        let slot = codis_model::slot_of(b"{t}");
        db.cow = Some(Box::default());
        let mut got = std::collections::BTreeMap::new();
        let mut round = 0;
        loop {
            let mut out = Taken::default();
            let (mut keys, mut bytes) = (7, usize::MAX);
            let done = db.snapshot_take(slot, &mut keys, &mut bytes, &mut out);
            for r in out.records {
                assert!(
                    got.insert(String::from_utf8_lossy(&r.key).into_owned(), text(&r.value))
                        .is_none(),
                    "a key was taken twice"
                );
            }
            if done {
                break;
            }
            // Writers between holds: overwrite, delete (moves the last key into the hole),
            // create, change a shared collection in place.
            round += 1;
            db.set(key(round * 3).as_bytes(), val("changed"));
            db.remove(key(round * 5 % 200).as_bytes());
            db.set(format!("{{t}}new{round}").as_bytes(), val("new"));
            if let Some(Value::Hash(h)) = db.get_mut(b"{t}hash", 0) {
                h.insert(
                    SmallBytes::new(format!("g{round}").as_bytes()),
                    SmallBytes::new(b"x"),
                );
            }
        }
        assert!(round > 10, "the slot was taken in {round} holds");
        assert_eq!(got, want.into_iter().collect());
        // After the slot is done, writers keep nothing more.
        let before = db.cow.as_ref().unwrap().copied;
        db.set(key(1).as_bytes(), val("late"));
        assert_eq!(db.cow.as_ref().unwrap().copied, before);
    }

    /// FLUSHALL in the middle of a slot: what was not taken yet is handed over whole.
    #[test]
    fn a_flush_mid_slot_hands_over_the_rest() {
        let mut db = Db::new(0);
        for i in 0..50 {
            db.set(format!("{{t}}k{i}").as_bytes(), val("v"));
        }
        let slot = codis_model::slot_of(b"{t}");
        db.cow = Some(Box::default());
        let mut out = Taken::default();
        let (mut keys, mut bytes) = (20, usize::MAX);
        assert!(!db.snapshot_take(slot, &mut keys, &mut bytes, &mut out));
        db.set(b"{t}k0", val("changed"));
        db.clear();
        db.set(b"{t}after", val("x"));
        let (mut keys, mut bytes) = (1000, usize::MAX);
        assert!(db.snapshot_take(slot, &mut keys, &mut bytes, &mut out));
        let mut names: Vec<Vec<u8>> = out.records.iter().map(|r| r.key.to_vec()).collect();
        for t in &out.tables {
            for (k, e) in &t.keys {
                assert_eq!(text(&e.value), "v");
                names.push(k.to_vec());
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 50);
        assert!(!names.contains(&b"{t}after".to_vec()));
    }
}
