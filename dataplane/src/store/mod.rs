//! The keyspace.
//!
//! [`Store`] holds 16 [`Db`]s plus server-wide counters and the live config; the server keeps
//! it behind one mutex (see `docs/ARCHITECTURE.md` for why). Each [`Db`] is split into 1024
//! [`SlotTable`]s by Codis's slot hash, so a slot's keys can be counted, scanned and removed
//! without touching the others, and no single hash table ever grows large enough for a resize
//! to stall the server.
//!
//! Keys with a TTL are also listed in their slot's `expires` table (as Redis keeps an
//! `expires` dict), so keys without a TTL pay nothing for expiry.

pub mod evict;
pub mod lazyfree;
pub mod snapshot;
pub mod value;
pub mod zset;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use codis_model::{MAX_SLOT_NUM, slot_of};

use crate::config::Config;
pub use value::{CowArc, HashValue, ListValue, Map, SetValue, SmallBytes, Value};
pub use zset::ZSet;

/// A value with its access metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// LRU clock (seconds, 24 bits) of the last access, or LFU data (16-bit minutes + 8-bit
    /// counter) when an LFU policy is active, as Redis packs its `lru` field.
    pub lru: u32,
}

/// The keys of one slot of one database.
#[derive(Debug, Default, Clone)]
pub struct SlotTable {
    /// key → entry.
    pub keys: Map<SmallBytes, Entry>,
    /// key → absolute expiry time in unix milliseconds.
    pub expires: Map<SmallBytes, u64>,
}

/// Flag a client raises when a key it WATCHes is modified.
pub type WatchFlag = Arc<AtomicBool>;

/// One of the 16 databases.
#[derive(Debug)]
pub struct Db {
    /// Database index (0..16).
    pub id: usize,
    slots: Vec<SlotTable>,
    len: usize,
    expires_len: usize,
    /// Keys some client WATCHes → the flags to raise when they change.
    watched: std::collections::HashMap<SmallBytes, Vec<WatchFlag>>,
    /// Keys some client is blocked on (BLPOP...) → the clients to wake.
    blocked: std::collections::HashMap<SmallBytes, Vec<Arc<tokio::sync::Notify>>>,
    /// LRU clock copied from the store so lookups can stamp entries.
    pub(crate) lru_clock: u32,
    /// True when an LFU eviction policy is active.
    pub(crate) lfu: bool,
    /// Lookups that found / missed a key (INFO keyspace_hits / keyspace_misses).
    pub hits: u64,
    /// See `hits`.
    pub misses: u64,
    /// Keys removed because their TTL passed (lazily or actively).
    pub expired: u64,
    /// Where the active expiry cycle resumes: the slot...
    pub(crate) expire_cursor: usize,
    /// ... and the position inside its `expires` table (counting down; MAX = from the end).
    pub(crate) expire_index: usize,
    /// True on a replica: expired keys are hidden but not deleted.
    pub(crate) readonly_expire: bool,
    /// True while our master's commands run on a replica: they see expired keys as present
    /// (the master sends the DEL), as Redis's `expireIfNeeded` does for the master client.
    pub(crate) master_view: bool,
    /// Tagged keys (`{tag}` in the name) by the CRC of their tag, as Codis keeps its
    /// `tagged_keys` skiplist: migration moves a tag group without scanning the slot.
    tags: std::collections::HashMap<u32, value::Set<SmallBytes>>,
    /// Copy-on-write state while a background save runs (see [`snapshot`]).
    pub(crate) cow: Option<Box<snapshot::Cow>>,
    /// Keys removed by expiry or eviction, kept while replicas may need them as `DEL`s
    /// (None: no replication backlog).
    expired_log: Option<Vec<SmallBytes>>,
}

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Db {
    /// An empty database.
    pub fn new(id: usize) -> Self {
        Db {
            id,
            slots: (0..MAX_SLOT_NUM).map(|_| SlotTable::default()).collect(),
            len: 0,
            expires_len: 0,
            watched: Default::default(),
            blocked: Default::default(),
            lru_clock: 0,
            lfu: false,
            hits: 0,
            misses: 0,
            expired: 0,
            expire_cursor: 0,
            expire_index: usize::MAX,
            readonly_expire: false,
            master_view: false,
            tags: Default::default(),
            cow: None,
            expired_log: None,
        }
    }

    /// Starts (or stops) logging keys removed by expiry or eviction, for replication.
    pub fn log_expired(&mut self, on: bool) {
        self.expired_log = if on { Some(Vec::new()) } else { None };
    }

    /// The keys removed by expiry or eviction since the last call.
    pub fn take_expired_log(&mut self) -> Vec<SmallBytes> {
        match self.expired_log.as_mut() {
            Some(l) if !l.is_empty() => std::mem::take(l),
            _ => Vec::new(),
        }
    }

    /// Records a key removed by expiry or eviction (when replicating).
    #[inline]
    pub(crate) fn note_removed(&mut self, key: &[u8]) {
        if let Some(l) = self.expired_log.as_mut() {
            l.push(SmallBytes::from(key));
        }
    }

    /// Every change to a key goes through here first: while a background save runs, the
    /// key's point-in-time value is kept before it changes. One branch when no save runs.
    #[inline]
    fn before_write(&mut self, slot: usize, key: &[u8]) {
        if let Some(c) = self.cow.as_deref_mut() {
            c.keep(slot, key, &self.slots[slot]);
        }
    }

    /// Counts in [`Db::snapshot_bytes`] the kept values that writers let go of since the
    /// last call (see [`snapshot::Cow::settle`]).
    pub(crate) fn settle_snapshot(&mut self) {
        if let Some(c) = self.cow.as_deref_mut() {
            c.settle(&self.slots);
        }
    }

    /// The background save's step for one slot (see [`snapshot::Cow::take`]); true when
    /// the slot is finished.
    pub(crate) fn snapshot_take(
        &mut self,
        slot: usize,
        budget: &mut usize,
        budget_bytes: &mut usize,
        out: &mut snapshot::Taken,
    ) -> bool {
        match self.cow.as_deref_mut() {
            Some(c) => c.take(slot, &self.slots[slot], budget, budget_bytes, out),
            None => true,
        }
    }

    /// Bytes kept for a background save (not counted for maxmemory).
    pub fn snapshot_bytes(&self) -> usize {
        self.cow.as_deref().map_or(0, |c| c.bytes)
    }

    /// Hands a slot's table that is about to be dropped or replaced to the save, if it
    /// still needs it; returns it otherwise (for the caller to drop).
    fn retire_table(&mut self, slot: usize, t: SlotTable) -> Option<SlotTable> {
        let rest = match self.cow.as_deref_mut() {
            Some(c) if c.is_pending(slot) => c.keep_table(slot, t),
            _ => Some(t),
        };
        rest.filter(|t| !t.keys.is_empty())
    }

    /// Number of keys (expired keys not yet removed included, as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires_len
    }

    /// The keys of one slot.
    pub fn slot(&self, slot: usize) -> &SlotTable {
        &self.slots[slot]
    }

    /// Removes `key` if its TTL has passed; returns true if it did.
    fn expire_if_needed(&mut self, slot: usize, key: &[u8], now: u64) -> bool {
        let t = &self.slots[slot];
        if t.expires.is_empty() {
            return false;
        }
        match t.expires.get(key) {
            Some(&at) if at <= now => {
                if self.readonly_expire {
                    return !self.master_view;
                }
                self.remove_in(slot, key);
                self.note_removed(key);
                self.expired += 1;
                true
            }
            _ => false,
        }
    }

    fn stamp(lru_clock: u32, lfu: bool, e: &mut Entry) {
        if lfu {
            e.lru = evict::lfu_touch(e.lru);
        } else {
            e.lru = lru_clock;
        }
    }

    /// Looks a key up for reading: expires it if due, updates its access time and the
    /// hit/miss counters.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            self.misses += 1;
            return None;
        }
        let (clock, lfu) = (self.lru_clock, self.lfu);
        match self.slots[slot].keys.get_mut(key) {
            Some(e) => {
                self.hits += 1;
                Self::stamp(clock, lfu, e);
                Some(&e.value)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Looks a key up without touching access times or counters (TYPE-like internal use).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return None;
        }
        self.slots[slot].keys.get(key)
    }

    /// Looks a key up for writing. The key counts as modified: WATCHers are invalidated and
    /// clients blocked on it are woken.
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Value> {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return None;
        }
        if !self.slots[slot].keys.contains_key(key) {
            return None;
        }
        self.before_write(slot, key);
        self.touched(key);
        let (clock, lfu) = (self.lru_clock, self.lfu);
        let e = self.slots[slot].keys.get_mut(key)?;
        Self::stamp(clock, lfu, e);
        Some(&mut e.value)
    }

    /// True when the key exists (and has not expired).
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return false;
        }
        self.slots[slot].keys.contains_key(key)
    }

    /// Stores `value` under `key`, replacing any old value and dropping its TTL.
    pub fn set(&mut self, key: &[u8], value: Value) {
        self.set_with(key, value, false);
    }

    /// Stores `value` under `key`; `keep_ttl` keeps an existing TTL (SET KEEPTTL).
    pub fn set_with(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        let slot = slot_of(key);
        self.before_write(slot, key);
        self.touched(key);
        let (clock, lfu) = (self.lru_clock, self.lfu);
        let lru = if lfu { evict::lfu_init() } else { clock };
        let t = &mut self.slots[slot];
        if let Some(e) = t.keys.get_mut(key) {
            e.value = value;
            // An overwritten key counts as accessed (Redis's write lookup): its LFU counter
            // grows, it does not start again.
            Self::stamp(clock, lfu, e);
            if !keep_ttl && t.expires.swap_remove(key).is_some() {
                self.expires_len -= 1;
            }
        } else {
            t.keys.insert(SmallBytes::new(key), Entry { value, lru });
            self.len += 1;
            if codis_model::slot::has_tag(key) {
                let crc = codis_model::slot::tag_crc(key);
                self.tags
                    .entry(crc)
                    .or_default()
                    .insert(SmallBytes::new(key));
            }
        }
    }

    /// Replaces the value of an existing key with the one `make` builds from it, keeping its
    /// TTL (as [`Db::set_with`] with `keep_ttl`), in one lookup: INCR and its kin. `None`
    /// when the key is missing (or just expired); `make`'s error leaves the key untouched
    /// (and its WATCHers unwarned).
    pub fn replace_existing<T, E>(
        &mut self,
        key: &[u8],
        now: u64,
        make: impl FnOnce(&Value) -> Result<(Value, T), E>,
    ) -> Option<Result<T, E>> {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return None;
        }
        let (i, _, e) = self.slots[slot].keys.get_full(key)?;
        let (value, made) = match make(&e.value) {
            Ok(v) => v,
            Err(err) => return Some(Err(err)),
        };
        // Neither keeps nor moves entries of the table: `i` stays valid.
        self.before_write(slot, key);
        self.touched(key);
        let (clock, lfu) = (self.lru_clock, self.lfu);
        if let Some((_, e)) = self.slots[slot].keys.get_index_mut(i) {
            e.value = value;
            // Accessed, as Redis's write lookup counts it (an LFU counter grows, it is not
            // reset as for a new value).
            Self::stamp(clock, lfu, e);
        }
        Some(Ok(made))
    }

    /// Inserts a key that is known to be absent (after a lookup); same as [`Db::set`].
    pub fn insert(&mut self, key: &[u8], value: Value) {
        self.set_with(key, value, false)
    }

    fn remove_in(&mut self, slot: usize, key: &[u8]) -> Option<Entry> {
        if self.cow.is_some() && self.slots[slot].keys.contains_key(key) {
            self.before_write(slot, key);
        }
        let t = &mut self.slots[slot];
        let e = t.keys.swap_remove(key)?;
        self.len -= 1;
        if !self.tags.is_empty() && codis_model::slot::has_tag(key) {
            let crc = codis_model::slot::tag_crc(key);
            if let Some(group) = self.tags.get_mut(&crc) {
                group.swap_remove(key);
                if group.is_empty() {
                    self.tags.remove(&crc);
                }
            }
        }
        if !t.expires.is_empty() && t.expires.swap_remove(key).is_some() {
            self.expires_len -= 1;
        }
        self.touched(key);
        Some(e)
    }

    /// Deletes a key (expired or not); returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.remove_in(slot_of(key), key).map(|e| e.value)
    }

    /// Deletes a key (expired or not); returns its entry, access data (LRU clock or LFU
    /// counter) included, for [`Db::set_entry`].
    pub fn remove_entry(&mut self, key: &[u8]) -> Option<Entry> {
        self.remove_in(slot_of(key), key)
    }

    /// Stores an entry taken from another key (RENAME, MOVE): its access data go with it, as
    /// Redis moves the object itself. Replaces any old value and drops its TTL.
    pub fn set_entry(&mut self, key: &[u8], entry: Entry) {
        self.set_with(key, entry.value, false);
        if let Some(e) = self.slots[slot_of(key)].keys.get_mut(key) {
            e.lru = entry.lru;
        }
    }

    /// Counts an access to `key` as Redis's write lookup does (LRU clock, LFU counter), and
    /// nothing else: RENAME and MOVE look their source up so before moving it.
    pub fn access(&mut self, key: &[u8], now: u64) {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return;
        }
        let (clock, lfu) = (self.lru_clock, self.lfu);
        if let Some(e) = self.slots[slot].keys.get_mut(key) {
            Self::stamp(clock, lfu, e);
        }
    }

    /// Deletes a key if it exists and has not expired; returns true if it was deleted.
    pub fn delete(&mut self, key: &[u8], now: u64) -> bool {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return false;
        }
        self.remove_in(slot, key).is_some()
    }

    /// UNLINK: as [`Db::delete`], but a value of more than [`lazyfree::THRESHOLD`] elements
    /// is freed by the background dropper thread, off the lock.
    pub fn unlink(&mut self, key: &[u8], now: u64) -> bool {
        let slot = slot_of(key);
        if self.expire_if_needed(slot, key, now) {
            return false;
        }
        match self.remove_in(slot, key).map(|e| e.value) {
            Some(v) => {
                if v.len() > lazyfree::THRESHOLD {
                    lazyfree::drop_later(v);
                }
                true
            }
            None => false,
        }
    }

    /// The absolute expiry (unix ms) of a key, if it has one.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        let t = &self.slots[slot_of(key)];
        if t.expires.is_empty() {
            None
        } else {
            t.expires.get(key).copied()
        }
    }

    /// Sets the absolute expiry (unix ms) of an existing key.
    pub fn set_expire(&mut self, key: &[u8], at_ms: u64) {
        let slot = slot_of(key);
        self.before_write(slot, key);
        self.touched(key);
        let t = &mut self.slots[slot];
        if let Some(e) = t.expires.get_mut(key) {
            *e = at_ms;
        } else if t.keys.contains_key(key) {
            t.expires.insert(SmallBytes::new(key), at_ms);
            self.expires_len += 1;
        }
    }

    /// Removes the TTL of a key; returns true if it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let slot = slot_of(key);
        if self.slots[slot].expires.is_empty() {
            return false;
        }
        if !self.slots[slot].expires.contains_key(key) {
            return false;
        }
        self.before_write(slot, key);
        let t = &mut self.slots[slot];
        if t.expires.swap_remove(key).is_some() {
            self.expires_len -= 1;
            self.touched(key);
            true
        } else {
            false
        }
    }

    /// Deletes every key. Every WATCHer is invalidated.
    pub fn clear(&mut self) {
        self.clear_with(false)
    }

    /// Deletes every key; `lazy` frees the values on the background dropper thread
    /// (FLUSHDB/FLUSHALL ASYNC). Every WATCHer is invalidated.
    pub fn clear_with(&mut self, lazy: bool) {
        let mut old = Vec::new();
        for s in 0..MAX_SLOT_NUM {
            let pending = self.cow.as_deref().is_some_and(|c| c.is_pending(s));
            if pending || !self.slots[s].keys.is_empty() {
                let t = std::mem::take(&mut self.slots[s]);
                old.extend(self.retire_table(s, t));
            }
        }
        if lazy && !old.is_empty() {
            // One object for the whole database, as Redis hands its dict over.
            lazyfree::drop_later(old);
        } else {
            drop(old);
        }
        self.len = 0;
        self.expires_len = 0;
        self.tags.clear();
        for flags in self.watched.values() {
            for f in flags {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Swaps the contents of two databases (SWAPDB), keeping each one's watchers and blocked
    /// clients, which are all signalled.
    pub fn swap_contents(&mut self, other: &mut Db) {
        // A background save keeps each db's content: a shallow copy of every slot it has not
        // taken yet (SWAPDB during a save is rare; values are shared, not copied).
        for db in [&mut *self, &mut *other] {
            if let Some(c) = db.cow.as_deref_mut() {
                for s in 0..MAX_SLOT_NUM {
                    if c.is_pending(s) {
                        c.keep_table(s, db.slots[s].clone());
                    }
                }
            }
        }
        std::mem::swap(&mut self.slots, &mut other.slots);
        std::mem::swap(&mut self.len, &mut other.len);
        std::mem::swap(&mut self.expires_len, &mut other.expires_len);
        std::mem::swap(&mut self.tags, &mut other.tags);
        for db in [self, other] {
            for flags in db.watched.values() {
                for f in flags {
                    f.store(true, Ordering::Relaxed);
                }
            }
            for (_, waiters) in db.blocked.drain() {
                for w in waiters {
                    w.notify_one();
                }
            }
        }
    }

    /// Marks a key modified: raises WATCH flags and wakes clients blocked on it.
    pub fn touched(&mut self, key: &[u8]) {
        if !self.watched.is_empty()
            && let Some(flags) = self.watched.get(key)
        {
            for f in flags {
                f.store(true, Ordering::Relaxed);
            }
        }
        if !self.blocked.is_empty()
            && let Some(waiters) = self.blocked.remove(key)
        {
            for w in waiters {
                w.notify_one();
            }
        }
    }

    /// Registers a WATCH of `key` by the client owning `flag`.
    pub fn watch(&mut self, key: &[u8], flag: &WatchFlag) {
        let list = self.watched.entry(SmallBytes::new(key)).or_default();
        if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
            list.push(flag.clone());
        }
    }

    /// Removes a WATCH of `key` by the client owning `flag`.
    pub fn unwatch(&mut self, key: &[u8], flag: &WatchFlag) {
        if let Some(list) = self.watched.get_mut(key) {
            list.retain(|f| !Arc::ptr_eq(f, flag));
            if list.is_empty() {
                self.watched.remove(key);
            }
        }
    }

    /// Registers a client blocked on `key`; it is woken once when the key changes.
    pub fn block_on(&mut self, key: &[u8], waker: &Arc<tokio::sync::Notify>) {
        let list = self.blocked.entry(SmallBytes::new(key)).or_default();
        if !list.iter().any(|w| Arc::ptr_eq(w, waker)) {
            list.push(waker.clone());
        }
    }

    /// Removes a blocked client's registration on `key`.
    pub fn unblock(&mut self, key: &[u8], waker: &Arc<tokio::sync::Notify>) {
        if let Some(list) = self.blocked.get_mut(key) {
            list.retain(|w| !Arc::ptr_eq(w, waker));
            if list.is_empty() {
                self.blocked.remove(key);
            }
        }
    }

    /// The tagged keys whose hash tag has CRC `crc` (a Codis tag group; expired keys that
    /// were not removed yet included).
    pub fn tag_group(&self, crc: u32) -> Option<&value::Set<SmallBytes>> {
        self.tags.get(&crc)
    }

    /// Number of keys some client is blocked on.
    pub fn blocked_keys(&self) -> usize {
        self.blocked.len()
    }

    /// Number of keys WATCHed.
    pub fn watched_keys(&self) -> usize {
        self.watched.len()
    }

    /// A random key that has not expired, if any.
    pub fn random_key(&mut self, now: u64) -> Option<SmallBytes> {
        use rand::Rng;
        let mut rng = rand::rng();
        for _ in 0..100 {
            if self.len == 0 {
                return None;
            }
            // Pick a slot weighted by size: a random key index over the whole db.
            let mut idx = rng.random_range(0..self.len);
            let mut chosen = None;
            for (s, t) in self.slots.iter().enumerate() {
                if idx < t.keys.len() {
                    chosen = Some((s, idx));
                    break;
                }
                idx -= t.keys.len();
            }
            let (s, i) = chosen?;
            let key = self.slots[s].keys.get_index(i).map(|(k, _)| k.clone())?;
            if self.expire_if_needed(s, &key, now) {
                continue;
            }
            return Some(key);
        }
        None
    }

    /// One SCAN step over the whole database: visits keys from `cursor`, calling `f` for each
    /// (key, entry), until about `count` keys were visited. Returns the next cursor (0 = done).
    ///
    /// Slots are visited in order and each slot from its last index to its first. Because
    /// removal moves the last key into the hole, a key present for the whole scan is never
    /// skipped (it may be returned twice), which is Redis's SCAN guarantee.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        mut f: impl FnMut(&SmallBytes, &Entry, Option<u64>),
    ) -> u64 {
        let mut slot = (cursor & 0x3ff) as usize;
        let mut next = cursor >> 10; // 0 = start of slot, else next index + 1
        let mut visited = 0;
        while slot < MAX_SLOT_NUM {
            let t = &self.slots[slot];
            let len = t.keys.len();
            let mut i = if next == 0 {
                len
            } else {
                (next as usize).min(len)
            };
            while i > 0 && visited < count {
                i -= 1;
                let (k, e) = t.keys.get_index(i).expect("index in range");
                let exp = if t.expires.is_empty() {
                    None
                } else {
                    t.expires.get(k).copied()
                };
                f(k, e, exp);
                visited += 1;
            }
            if i > 0 {
                return ((i as u64) << 10) | slot as u64;
            }
            slot += 1;
            next = 0;
            if visited >= count {
                break;
            }
        }
        if slot >= MAX_SLOT_NUM { 0 } else { slot as u64 }
    }

    /// Iterates over every (key, entry, expiry) of the database.
    pub fn iter(&self) -> impl Iterator<Item = (&SmallBytes, &Entry, Option<u64>)> {
        self.slots.iter().flat_map(|t| {
            t.keys.iter().map(move |(k, e)| {
                let exp = if t.expires.is_empty() {
                    None
                } else {
                    t.expires.get(k).copied()
                };
                (k, e, exp)
            })
        })
    }

    /// Removes expired keys of a few slots, starting where the last call stopped, visiting at
    /// most `budget` keys with a TTL. Returns how many keys were removed.
    pub fn active_expire(&mut self, now: u64, budget: usize) -> usize {
        if self.expires_len == 0 || self.readonly_expire {
            return 0;
        }
        let mut seen = 0;
        let mut removed = 0;
        let mut slots_done = 0;
        while seen < budget && slots_done <= MAX_SLOT_NUM {
            let s = self.expire_cursor;
            let len = self.slots[s].expires.len();
            // Resume inside the slot (from its last index down, so removals, which move the
            // last entry into the hole, never skip an unvisited key); at most `budget` entries
            // are examined per call, however many keys with a TTL one slot holds.
            let mut i = self.expire_index.min(len);
            let mut due: Vec<SmallBytes> = Vec::new();
            while i > 0 && seen < budget {
                i -= 1;
                seen += 1;
                let (k, at) = self.slots[s].expires.get_index(i).expect("index in range");
                if *at <= now {
                    due.push(k.clone());
                }
            }
            for k in due {
                self.remove_in(s, &k);
                self.note_removed(&k);
                self.expired += 1;
                removed += 1;
            }
            if i == 0 {
                self.expire_cursor = (self.expire_cursor + 1) % MAX_SLOT_NUM;
                self.expire_index = usize::MAX;
                slots_done += 1;
            } else {
                self.expire_index = i;
            }
        }
        removed
    }

    /// Deletes every key of a slot; returns how many were deleted.
    pub fn clear_slot(&mut self, slot: usize) -> usize {
        let t = std::mem::take(&mut self.slots[slot]);
        let n = t.keys.len();
        if !self.tags.is_empty() {
            self.tags
                .retain(|crc, _| (*crc as usize) % MAX_SLOT_NUM != slot);
        }
        self.len -= n;
        self.expires_len -= t.expires.len();
        for k in t.keys.keys() {
            self.touched(k);
        }
        // A background save still needs the slot's content: hand it the table (no copy).
        drop(self.retire_table(slot, t));
        n
    }

    /// Mutable access to an existing key's entry that leaves the counters alone and signals
    /// nothing (the caller changes the value, not the key set).
    pub(crate) fn entry_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let slot = slot_of(key);
        if self.cow.is_some() && self.slots[slot].keys.contains_key(key) {
            self.before_write(slot, key);
        }
        self.slots[slot].keys.get_mut(key)
    }
}

/// Server-wide counters reported by INFO.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Commands processed.
    pub total_commands: u64,
    /// Connections accepted.
    pub connections_received: u64,
    /// Connections refused (maxclients).
    pub rejected_connections: u64,
    /// Keys evicted by maxmemory.
    pub evicted_keys: u64,
    /// Expired keys removed (besides each Db's counter, kept for keys removed by FLUSH).
    pub expired_stale_perc: f64,
    /// Total error replies.
    pub total_error_replies: u64,
    /// Operations per second over the last sample window.
    pub instantaneous_ops: u64,
    /// Commands counted at the last ops sample.
    pub(crate) ops_sample_commands: u64,
    /// Time of the last ops sample (ms).
    pub(crate) ops_sample_time: u64,
    /// Number of active-expire cycles run.
    pub expire_cycles: u64,
}

/// Everything behind the server's data lock: the 16 databases, the live config, counters.
#[derive(Debug)]
pub struct Store {
    /// The databases.
    pub dbs: Vec<Db>,
    /// The live configuration (CONFIG GET/SET act on it).
    pub config: Config,
    /// Counters for INFO.
    pub stats: Stats,
    /// Per-command counters, indexed by command id.
    pub cmdstats: Vec<crate::cmd::CmdStat>,
    /// Per-error-prefix counters (INFO errorstats).
    pub errorstats: std::collections::BTreeMap<String, u64>,
    /// The slow log.
    pub slowlog: crate::cmd::server::SlowLog,
    /// Latency monitor events.
    pub latency: crate::cmd::server::LatencyMonitor,
    /// LRU clock in seconds (24 bits), refreshed by the background cycle.
    pub lru_clock: u32,
    /// Unix time (ms) of the last successful save (start time before the first).
    pub lastsave: u64,
    /// Number of changes since the last save.
    pub dirty: u64,
    /// Asynchronous slot migration: per-DB cached target connections, in-flight batches and
    /// counters (see `cmd::migrate_async`).
    pub migrate_async: crate::cmd::migrate_async::State,
    /// Synchronous slot migration: the keys being sent (see `cmd::migrate_sync`).
    pub migrate_sync: crate::cmd::migrate_sync::State,
    /// RDB persistence state (BGSAVE in progress, last save status).
    pub persist: crate::server::persist::State,
    /// Replication: ids, offset, backlog, attached replicas, the master we follow.
    pub repl: crate::server::repl::State,
    /// The append-only file.
    pub aof: crate::server::aof::State,
    /// Lua scripts and function libraries.
    pub scripting: crate::script::Scripting,
    /// When the command `cmd::call` runs now started (a script run counts its time from
    /// there, without reading the clock again).
    pub command_started: quanta::Instant,
    /// When the command ended, if its handler read the clock last (a script run does):
    /// `cmd::call` takes it instead of reading the clock again.
    pub command_ended: Option<quanta::Instant>,
}

impl Store {
    /// An empty store with `config`.
    pub fn new(config: Config) -> Self {
        let n = config.databases.max(1);
        let mut s = Store {
            dbs: (0..n).map(Db::new).collect(),
            config,
            stats: Stats::default(),
            cmdstats: Vec::new(),
            errorstats: Default::default(),
            slowlog: Default::default(),
            latency: Default::default(),
            lru_clock: evict::lru_clock_now(),
            lastsave: now_ms(),
            dirty: 0,
            migrate_async: Default::default(),
            migrate_sync: Default::default(),
            persist: Default::default(),
            repl: Default::default(),
            aof: Default::default(),
            scripting: Default::default(),
            command_started: quanta::Instant::now(),
            command_ended: None,
        };
        s.sync_clock();
        s
    }

    /// Copies the LRU clock and policy into every db (after a tick or CONFIG SET).
    pub fn sync_clock(&mut self) {
        let lfu = self.config.maxmemory_policy.is_lfu();
        evict::set_lfu_params(self.config.lfu_log_factor, self.config.lfu_decay_time);
        for db in &mut self.dbs {
            db.lru_clock = self.lru_clock;
            db.lfu = lfu;
        }
    }

    /// Memory not counted against `maxmemory`, as Redis's `freeMemoryGetNotCountedMemory`:
    /// replica output buffers and the AOF buffer, plus what a background save keeps (a
    /// forked Redis child holds that, outside `used_memory`).
    pub fn not_counted_for_evict(&self) -> usize {
        crate::server::persist::snapshot_bytes(self)
            + self.repl.buffered_bytes()
            + self.aof.buffered_bytes()
    }

    /// Brings [`Store::not_counted_for_evict`] up to date with the writes since the last
    /// call (a kept collection counts once the live key lets go of it).
    pub fn settle_snapshot(&mut self) {
        for db in &mut self.dbs {
            db.settle_snapshot();
        }
    }

    /// Total keys across databases.
    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }
}
