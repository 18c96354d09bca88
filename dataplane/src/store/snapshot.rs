//! Slot-level copy-on-write for point-in-time background saves.
//!
//! A background save cannot fork (the server is multi-threaded), so it serialises the live
//! tables one (db, slot) at a time in short lock holds. To still write the keyspace as it was
//! when the save started, each [`Db`](super::Db) being saved carries a [`Cow`]: every slot
//! starts *pending*; the first write to a pending slot serialises that slot's table first
//! (under the lock the writer already holds) and keeps the bytes; the save thread takes
//! either those bytes or, for a slot nobody wrote, serialises the live table. Every mutation
//! of a slot table goes through one of `Db`'s methods, which call `Db::before_write`: with
//! no save running that is one branch on a `None`.
//!
//! FLUSHDB/FLUSHALL and SLOTSDEL during a save move the pending tables into the `Cow`
//! instead of serialising them (no copy under the lock); the save thread serialises them
//! outside the lock.

use crate::rdb::{Limits, Writer, file};

use super::SlotTable;
use codis_model::MAX_SLOT_NUM;

/// What the save thread gets for a slot.
#[derive(Debug)]
pub enum Taken {
    /// The slot's records, already serialised.
    Bytes(Vec<u8>),
    /// The slot's table as it was at the start, moved out of the keyspace (serialise it
    /// without the lock).
    Table(SlotTable),
    /// Nothing to write (already taken, or the db is not being saved).
    Nothing,
}

/// The copy-on-write state of one database during a background save.
#[derive(Debug)]
pub struct Cow {
    pending: Vec<bool>,
    saved: Vec<Option<Taken>>,
    lim: Limits,
    compress: bool,
    /// Slots serialised by writers (for INFO / tests).
    pub copied: u64,
}

impl Cow {
    /// Every slot pending.
    pub fn new(lim: Limits, compress: bool) -> Self {
        Cow {
            pending: vec![true; MAX_SLOT_NUM],
            saved: (0..MAX_SLOT_NUM).map(|_| None).collect(),
            lim,
            compress,
            copied: 0,
        }
    }

    fn serialise(&self, t: &SlotTable) -> Vec<u8> {
        let mut w = Writer::new();
        w.compress = self.compress;
        file::write_slot(&mut w, t, &self.lim);
        w.buf
    }

    /// Called before `t` (slot `slot`) changes: keeps its records if still pending.
    pub fn preserve(&mut self, slot: usize, t: &SlotTable) {
        if self.pending[slot] {
            self.pending[slot] = false;
            if !t.keys.is_empty() {
                self.saved[slot] = Some(Taken::Bytes(self.serialise(t)));
                self.copied += 1;
            }
        }
    }

    /// Called before `t` is dropped or replaced wholesale: keeps the table itself.
    pub fn preserve_table(&mut self, slot: usize, t: SlotTable) {
        if self.pending[slot] {
            self.pending[slot] = false;
            if !t.keys.is_empty() {
                self.saved[slot] = Some(Taken::Table(t));
            }
        }
    }

    /// True when the slot has not been saved or preserved yet.
    pub fn is_pending(&self, slot: usize) -> bool {
        self.pending[slot]
    }

    /// The save thread's step for one slot; `live` is the slot's current table.
    pub fn take(&mut self, slot: usize, live: &SlotTable) -> Taken {
        if self.pending[slot] {
            self.pending[slot] = false;
            if live.keys.is_empty() {
                return Taken::Nothing;
            }
            return Taken::Bytes(self.serialise(live));
        }
        self.saved[slot].take().unwrap_or(Taken::Nothing)
    }
}
