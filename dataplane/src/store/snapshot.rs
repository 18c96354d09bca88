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
//! The bytes only the save holds are counted in [`Cow::bytes`]: like the pages a forked
//! Redis child keeps, they are not counted against `maxmemory`. A kept string that was
//! copied counts when it is kept (what the copy allocated). A kept collection (or big
//! string) is shared with the live key, so it counts only once the live key lets go of it
//! (a write copies it, or the key is overwritten, deleted or evicted): such keys are queued
//! when they are written and [`Cow::settle`] (before eviction decides, and for INFO) looks
//! at their reference counts. A TTL change or a command that fails (WRONGTYPE) leaves the
//! value shared and counts nothing; a TTL change followed by a write counts the copy.

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

/// A key's point-in-time value, kept for the save before the key changed.
#[derive(Debug)]
struct Kept {
    /// The value and its expiry (`None`: the key did not exist).
    value: Option<(Value, Option<u64>)>,
    /// Bytes of `value` still shared with something live (a collection or a big string is
    /// kept by reference): not in [`Cow::bytes`] yet. 0 once counted, or for a copy.
    shared: usize,
    /// True while the key is in [`Cow::unsettled`].
    queued: bool,
}

impl Kept {
    /// True when `value` is shared by reference and nothing live holds it any more.
    fn only_ours(&self) -> bool {
        self.shared > 0 && self.value.as_ref().is_some_and(|(v, _)| !v.is_shared())
    }
}

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
    /// Estimated bytes only the save holds (not counted for maxmemory, as a fork's copy).
    pub bytes: usize,
    /// Kept keys whose shared value may have been let go by the live side since the last
    /// [`Cow::settle`] (each once, see [`Kept::queued`]).
    unsettled: Vec<(usize, SmallBytes)>,
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
            unsettled: Vec::new(),
            copied: 0,
        });
        // Its own tables count as the save's too.
        c.bytes = n;
        c
    }

    /// Called before `key` (in `slot`, whose live table is `t`) changes: keeps its value
    /// for the save if the save has not taken it yet (once). A key kept earlier whose value
    /// is still shared with the live one is queued for [`Cow::settle`]: this change may be
    /// the one that copies it.
    pub fn keep(&mut self, slot: usize, key: &[u8], t: &SlotTable) {
        let emitted = match &self.state[slot] {
            State::Done => return,
            State::Pending => None,
            State::InProgress { emitted, .. } => Some(emitted),
        };
        if let Some(k) = self.kept[slot].as_mut().and_then(|m| m.get_mut(key)) {
            if k.shared > 0 && !k.queued {
                k.queued = true;
                self.unsettled.push((slot, SmallBytes::new(key)));
            }
            return;
        }
        if emitted.is_some_and(|e| e.contains(key)) {
            return;
        }
        let map = &mut self.kept[slot];
        let (shared, n) = measured(|| {
            let value = t.keys.get(key).map(|e| {
                let exp = if t.expires.is_empty() {
                    None
                } else {
                    t.expires.get(key).copied()
                };
                (e.value.clone(), exp)
            });
            // A string is copied here (measured); a collection or a big string is shared,
            // and counts once the live key lets go of it (settle).
            let shared = value.as_ref().map_or(0, |(v, _)| v.shared_size());
            map.get_or_insert_with(Default::default).insert(
                SmallBytes::new(key),
                Kept {
                    value,
                    shared,
                    queued: shared > 0,
                },
            );
            shared
        });
        if shared > 0 {
            self.unsettled.push((slot, SmallBytes::new(key)));
        }
        self.kept_bytes[slot] += n;
        self.bytes += n;
        self.copied += 1;
    }

    /// Counts the queued kept values that nothing live holds any more (`slots`: the live
    /// tables). A key whose live value is still the kept one leaves the queue (its next
    /// write queues it again); one held by something else (a RENAME moved the value, a
    /// transient copy) stays queued. Costs one look-up per key written since the last call.
    pub fn settle(&mut self, slots: &[SlotTable]) {
        if self.unsettled.is_empty() {
            return;
        }
        let mut list = std::mem::take(&mut self.unsettled);
        list.retain(|(slot, key)| {
            let slot = *slot;
            let Some(k) = self.kept[slot]
                .as_mut()
                .and_then(|m| m.get_mut(key.as_bytes()))
            else {
                return false;
            };
            if k.only_ours() {
                self.kept_bytes[slot] += k.shared;
                self.bytes += k.shared;
                k.shared = 0;
                k.queued = false;
                return false;
            }
            let live_holds = match (&k.value, slots[slot].keys.get(key.as_bytes())) {
                (Some((v, _)), Some(e)) => e.value.same_alloc(v),
                _ => false,
            };
            if live_holds || k.shared == 0 {
                k.queued = false;
                return false;
            }
            true
        });
        self.unsettled = list;
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
        let mut kept_bytes = std::mem::take(&mut self.kept_bytes[slot]);
        if let Some(kept) = self.kept[slot].take() {
            for (k, v) in *kept {
                if v.only_ours() {
                    kept_bytes += v.shared;
                    self.bytes += v.shared;
                }
                t.expires.swap_remove(k.as_bytes());
                match v.value {
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
                if v.only_ours() {
                    out.bytes += v.shared;
                }
                if let Some((value, expire)) = v.value {
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

    /// A kept hash counts as the save's only once nothing live holds it: not after a TTL
    /// change, nor after RENAME (the value lives on under the new name), but once a write
    /// to the new name copies it.
    #[test]
    fn a_kept_collection_counts_once_nothing_live_holds_it() {
        let mut db = Db::new(0);
        let mut h = crate::store::HashValue::default();
        for i in 0..1000 {
            h.insert(
                SmallBytes::new(format!("f{i}").as_bytes()),
                SmallBytes::new(b"v"),
            );
        }
        let size = Value::Hash(crate::store::CowArc::new(h.clone())).approx_size();
        db.set(b"{t}h", Value::Hash(crate::store::CowArc::new(h)));
        db.cow = Some(Box::default());
        let base = db.snapshot_bytes();
        db.set_expire(b"{t}h", u64::MAX / 2);
        db.settle_snapshot();
        assert!(db.snapshot_bytes() < base + size, "a TTL change counted");
        let v = db.remove(b"{t}h").unwrap();
        db.set(b"{t}h2", v);
        db.settle_snapshot();
        assert!(db.snapshot_bytes() < base + size, "a renamed value counted");
        if let Some(Value::Hash(h)) = db.get_mut(b"{t}h2", 0) {
            h.insert(SmallBytes::new(b"new"), SmallBytes::new(b"x"));
        }
        db.settle_snapshot();
        assert!(
            db.snapshot_bytes() >= base + size,
            "the copy left to the save"
        );
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
