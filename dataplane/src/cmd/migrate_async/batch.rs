//! A migration batch: which keys it holds, and the restore messages that move them.
//!
//! Each key goes through stages, as Codis's iterator does: `delete key` first (the target
//! drops any stale copy), then either one `string` / `object` (DUMP payload) message, or, for
//! a big collection, `list|hash|dict|zset` chunks of at most `maxbulks` bulks and about
//! `maxbytes` bytes followed by `expire` with the real TTL. Chunks are cut by position in the
//! value, so building the next one only needs a short store lock hold.

use std::collections::{HashSet, VecDeque};

use codis_model::slot::{has_tag, tag_crc};

use crate::resp::reply::Out;
use crate::store::value::Set;
use crate::store::{Db, SmallBytes, Value};

/// Codis's iterator stages (numbers shown by SLOTSMGRT-ASYNC-STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prepare = 0,
    Payload = 1,
    Chunked = 2,
    FillTtl = 3,
    Done = 4,
}

/// Progress through one key.
#[derive(Debug)]
struct KeyIter {
    key: SmallBytes,
    stage: Stage,
    /// Codis's object type number of the value (-1: not looked up yet / absent).
    vtype: i64,
    /// Absolute expiry (unix ms), -1 for none.
    expire: i64,
    /// Next element position (hash, set, zset: `cursor`; list: `lindex`).
    pos: usize,
    /// Number of chunk messages estimated for the value (0: not chunked).
    chunked_msgs: usize,
    /// True when the key existed when its migration started: it is deleted here at the end.
    existed: bool,
}

/// The batch in flight on one DB.
#[derive(Debug)]
pub(super) struct Batch {
    /// Every key of the batch (SLOTSMGRT-EXEC-WRAPPER refuses writes to them).
    keys: Set<SmallBytes>,
    /// Hash-tag CRCs of the batch's tagged keys (writes to any key with one wait too).
    tags: HashSet<u32>,
    /// The slot of a SLOTSMGRT[TAG]SLOT-ASYNC batch (its reply reports what remains there).
    pub(super) slot: Option<usize>,
    pub(super) timeout: u64,
    maxbulks: usize,
    pub(super) maxbytes: usize,
    estimate_msgs: usize,
    /// Keys completely sent, deleted here once every message is acknowledged.
    pub(super) removed: Vec<SmallBytes>,
    chunked_vals: usize,
    iters: VecDeque<KeyIter>,
    /// Encoding thresholds for DUMP payloads.
    lim: crate::rdb::Limits,
}

/// What [`step`] needs besides the key and the database.
struct StepParams<'a> {
    now: u64,
    timeout: u64,
    maxbulks: usize,
    maxbytes: usize,
    lim: &'a crate::rdb::Limits,
}

/// Number of restore messages a value needs with `maxbulks` bulks per message: big
/// collections (Codis's quicklist / hashtable / skiplist encodings) are chunked.
fn estimate(v: &Value, maxbulks: usize) -> usize {
    let bulks = match v {
        Value::List(l) => l.len(),
        Value::Hash(h) if h.hashtable => 2 * h.len(),
        Value::Set(s) if s.hashtable => s.len(),
        Value::ZSet(z) if z.skiplist => 2 * z.len(),
        _ => 0,
    };
    if bulks <= maxbulks {
        1
    } else {
        bulks.div_ceil(maxbulks.max(1))
    }
}

/// Codis's (redis 3.2) object type number.
fn type_number(v: &Value) -> i64 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
    }
}

/// Appends one command (array of bulks) to `out`.
fn push_msg(out: &mut Vec<u8>, parts: &[&[u8]]) {
    push_header(out, parts.len());
    for p in parts {
        push_bulk(out, p);
    }
}

fn push_header(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa(n as i64).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa(b.len() as i64).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn itoa(n: i64) -> String {
    n.to_string()
}

/// The command every restore message starts with.
const RESTORE: &[u8] = b"SLOTSRESTORE-ASYNC";

impl Batch {
    /// An empty batch.
    pub(super) fn new(
        slot: Option<usize>,
        timeout: u64,
        maxbulks: usize,
        maxbytes: usize,
        lim: crate::rdb::Limits,
    ) -> Self {
        Batch {
            keys: Set::default(),
            tags: HashSet::new(),
            slot,
            timeout,
            maxbulks: maxbulks.max(1),
            maxbytes,
            estimate_msgs: 0,
            removed: Vec::new(),
            chunked_vals: 0,
            iters: VecDeque::new(),
            lim,
        }
    }

    /// True when the batch holds no key.
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when every message was built.
    pub(super) fn exhausted(&self) -> bool {
        self.iters.is_empty()
    }

    /// Keys not yet completely sent.
    pub(super) fn pending(&self) -> usize {
        self.iters.len()
    }

    /// True when `key` (or, if tagged, its hash tag) is part of the batch.
    pub(super) fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains(key) || (has_tag(key) && self.tags.contains(&tag_crc(key)))
    }

    /// Adds `keys`; with `usetag`, also every key of the DB sharing a hash tag with one.
    pub(super) fn add_keys(&mut self, db: &mut Db, keys: &[&[u8]], usetag: bool, now: u64) {
        for key in keys {
            self.add_key_with_tag(db, key, usetag, now);
        }
    }

    /// Adds a key and, with `usetag`, its tag group (from the database's tag index).
    fn add_key_with_tag(&mut self, db: &mut Db, key: &[u8], usetag: bool, now: u64) {
        if !self.push_key(db, key, now) || !has_tag(key) {
            return;
        }
        let crc = tag_crc(key);
        if !self.tags.insert(crc) || !usetag {
            return;
        }
        let mates: Vec<SmallBytes> = db
            .tag_group(crc)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default();
        for k in mates {
            self.push_key(db, &k, now);
        }
    }

    /// Adds one key (without tag mates); false if it was already there.
    fn push_key(&mut self, db: &mut Db, key: &[u8], now: u64) -> bool {
        if !self.keys.insert(SmallBytes::new(key)) {
            return false;
        }
        if let Some(e) = db.peek(key, now) {
            self.estimate_msgs += estimate(&e.value, self.maxbulks);
        }
        self.iters.push_back(KeyIter {
            key: SmallBytes::new(key),
            stage: Stage::Prepare,
            vtype: -1,
            expire: -1,
            pos: 0,
            chunked_msgs: 0,
            existed: false,
        });
        true
    }

    /// Codis's key selection for SLOTSMGRT[TAG]SLOT-ASYNC: walk the slot from random
    /// positions (then from the start), adding keys while the estimated message count stays
    /// under `numkeys` (a key that would push it over 2×numkeys is skipped unless it is the
    /// first) and fewer than `numkeys` keys were taken.
    pub(super) fn select_from_slot(
        &mut self,
        db: &mut Db,
        slot: usize,
        numkeys: usize,
        usetag: bool,
        now: u64,
    ) {
        use rand::Rng;
        let steps = (numkeys * 10).max(100);
        for pass in (0..3).rev() {
            if self.estimate_msgs >= numkeys {
                break;
            }
            let len = db.slot(slot).keys.len();
            if len == 0 {
                break;
            }
            let start = if pass != 0 {
                rand::rng().random_range(0..len)
            } else {
                0
            };
            for i in 0..len.min(steps) {
                if self.estimate_msgs >= numkeys || self.keys.len() >= numkeys {
                    break;
                }
                let t = db.slot(slot);
                if t.keys.is_empty() {
                    break;
                }
                let pos = (start + i) % t.keys.len();
                let Some((k, e)) = t.keys.get_index(pos) else {
                    break;
                };
                if self.keys.contains(&k[..]) {
                    continue;
                }
                let expired = t.expires.get(&k[..]).is_some_and(|&at| at <= now);
                if expired {
                    continue;
                }
                let msgs = estimate(&e.value, self.maxbulks);
                if self.estimate_msgs == 0 || self.estimate_msgs + msgs <= numkeys * 2 {
                    let k = k.clone();
                    self.add_key_with_tag(db, &k, usetag, now);
                }
            }
        }
    }

    /// Builds restore messages into `out` until about `budget` bytes were added or the batch
    /// is exhausted (at least one message when any remains); records each message's size in
    /// `sizes`. Returns the number of messages built.
    pub(super) fn next_messages(
        &mut self,
        db: &mut Db,
        now: u64,
        out: &mut Vec<u8>,
        sizes: &mut VecDeque<usize>,
        budget: usize,
    ) -> usize {
        let start = out.len();
        let mut msgs = 0;
        while let Some(it) = self.iters.front_mut() {
            if it.stage == Stage::Done {
                let it = self.iters.pop_front().expect("front exists");
                if it.existed {
                    if it.chunked_msgs != 0 {
                        self.chunked_vals += 1;
                    }
                    self.removed.push(it.key);
                }
                continue;
            }
            if msgs > 0 && out.len() - start >= budget {
                break;
            }
            let before = out.len();
            let p = StepParams {
                now,
                timeout: self.timeout,
                maxbulks: self.maxbulks,
                maxbytes: self.maxbytes.max(1),
                lim: &self.lim,
            };
            if step(it, db, &p, out) {
                sizes.push_back(out.len() - before);
                msgs += 1;
            }
        }
        msgs
    }

    /// The `batched_iterator` value of SLOTSMGRT-ASYNC-STATUS.
    pub(super) fn write_status(&self, out: &mut Out) {
        let num = |out: &mut Out, v: i64| out.bulk(v.to_string().as_bytes());
        out.array(16);
        out.bulk(b"keys");
        out.array(2);
        num(out, self.keys.len() as i64);
        out.array(self.keys.len());
        for k in &self.keys {
            out.bulk(k);
        }
        for (name, v) in [
            ("timeout", self.timeout as i64),
            ("maxbulks", self.maxbulks as i64),
            ("maxbytes", self.maxbytes as i64),
            ("estimate_msgs", self.estimate_msgs as i64),
            ("removed_keys", self.removed.len() as i64),
            ("chunked_vals", self.chunked_vals as i64),
        ] {
            out.bulk(name.as_bytes());
            num(out, v);
        }
        out.bulk(b"iterators");
        out.array(2);
        num(out, self.iters.len() as i64);
        match self.iters.front() {
            None => out.null_array(),
            Some(it) => {
                out.array(16);
                out.bulk(b"key");
                out.bulk(&it.key);
                let (lindex, cursor) = if it.vtype == 1 {
                    (it.pos, 0)
                } else {
                    (0, it.pos)
                };
                let zindex = if it.vtype == 3 { it.pos } else { 0 };
                for (name, v) in [
                    ("val.type", it.vtype),
                    ("stage", it.stage as i64),
                    ("expire", it.expire),
                    ("cursor", cursor as i64),
                    ("lindex", lindex as i64),
                    ("zindex", zindex as i64),
                    ("chunked_msgs", it.chunked_msgs as i64),
                ] {
                    out.bulk(name.as_bytes());
                    num(out, v);
                }
            }
        }
    }
}

/// TTL argument of a message: remaining ms (at least 1), or 0 for none; while chunking, a
/// temporary 3×timeout so an abandoned partial value expires on the target.
fn ttl_arg(it: &KeyIter, now: u64, timeout: u64) -> i64 {
    if it.stage == Stage::Chunked {
        return (timeout * 3) as i64;
    }
    if it.expire < 0 {
        0
    } else {
        (it.expire - now as i64).max(1)
    }
}

/// Advances one key by one message. Returns false when no message was produced (the key
/// is gone at its first step).
fn step(it: &mut KeyIter, db: &mut Db, p: &StepParams<'_>, out: &mut Vec<u8>) -> bool {
    let (now, timeout, maxbulks, maxbytes) = (p.now, p.timeout, p.maxbulks, p.maxbytes);
    if it.stage == Stage::Prepare {
        let Some(e) = db.peek(&it.key, now) else {
            it.stage = Stage::Done;
            return false;
        };
        it.vtype = type_number(&e.value);
        let n = estimate(&e.value, maxbulks);
        it.expire = db.expire_at(&it.key).map_or(-1, |t| t as i64);
        it.existed = true;
        push_msg(out, &[RESTORE, b"delete", &it.key]);
        if n >= 2 {
            it.stage = Stage::Chunked;
            it.chunked_msgs = n;
        } else {
            it.stage = Stage::Payload;
        }
        return true;
    }
    let ttl = itoa(ttl_arg(it, now, timeout));
    if it.stage == Stage::FillTtl {
        push_msg(out, &[RESTORE, b"expire", &it.key, ttl.as_bytes()]);
        it.stage = Stage::Done;
        return true;
    }
    // The value may have changed since the last step (a write that did not go through
    // SLOTSMGRT-EXEC-WRAPPER): if it is gone or of another type, drop the target's partial
    // copy and keep whatever is here.
    let value = db
        .peek(&it.key, now)
        .map(|e| &e.value)
        .filter(|v| type_number(v) == it.vtype);
    let Some(value) = value else {
        push_msg(out, &[RESTORE, b"delete", &it.key]);
        it.existed = false;
        it.stage = Stage::Done;
        return true;
    };
    if it.stage == Stage::Payload || matches!(value, Value::Str(_)) {
        match value {
            Value::Str(s) => push_msg(out, &[RESTORE, b"string", &it.key, ttl.as_bytes(), s]),
            v => {
                let payload = crate::rdb::dump_payload(v, p.lim);
                push_msg(
                    out,
                    &[RESTORE, b"object", &it.key, ttl.as_bytes(), &payload],
                );
            }
        }
        it.stage = Stage::Done;
        return true;
    }
    // Stage::Chunked: the next slice of elements.
    let mut body = Vec::new();
    let mut bulks = 0;
    let mut bytes = 0;
    let (cmd, hint): (&[u8], usize) = match value {
        Value::List(l) => {
            while it.pos < l.len() && bulks < maxbulks && bytes < maxbytes {
                let e = &l[it.pos];
                push_bulk(&mut body, e);
                bulks += 1;
                bytes += e.len();
                it.pos += 1;
            }
            (b"list", l.len())
        }
        Value::Hash(h) => {
            while bulks < maxbulks && bytes < maxbytes {
                let Some((f, v)) = h.get_index(it.pos) else {
                    break;
                };
                push_bulk(&mut body, f);
                push_bulk(&mut body, v);
                bulks += 2;
                bytes += f.len() + v.len();
                it.pos += 1;
            }
            (b"hash", h.len())
        }
        Value::Set(s) => {
            while bulks < maxbulks && bytes < maxbytes {
                let Some(m) = s.get_index(it.pos) else {
                    break;
                };
                push_bulk(&mut body, m);
                bulks += 1;
                bytes += m.len();
                it.pos += 1;
            }
            (b"dict", s.len())
        }
        Value::ZSet(z) => {
            while bulks < maxbulks && bytes < maxbytes {
                let Some((m, score)) = z.dict.get_index(it.pos) else {
                    break;
                };
                push_bulk(&mut body, m);
                push_bulk(&mut body, &score.to_bits().to_le_bytes());
                bulks += 2;
                bytes += m.len() + 8;
                it.pos += 1;
            }
            (b"zset", z.len())
        }
        Value::Str(_) => return false, // handled above: strings are never chunked
    };
    if it.pos >= hint {
        it.stage = Stage::FillTtl;
    }
    push_header(out, 5 + bulks);
    push_bulk(out, RESTORE);
    push_bulk(out, cmd);
    push_bulk(out, &it.key);
    push_bulk(out, ttl.as_bytes());
    push_bulk(out, itoa(hint as i64).as_bytes());
    out.extend_from_slice(&body);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HashValue;

    #[test]
    fn estimates_follow_codis() {
        let mut h = HashValue::default();
        for i in 0..250 {
            h.insert(
                SmallBytes::new(format!("f{i}").as_bytes()),
                SmallBytes::new(b"v"),
            );
        }
        h.hashtable = true;
        let v = Value::Hash(crate::store::CowArc::new(h));
        assert_eq!(estimate(&v, 200), 3); // 500 bulks
        assert_eq!(estimate(&v, 1000), 1);
        assert_eq!(estimate(&Value::Str(SmallBytes::new(b"x")), 1), 1);
    }

    #[test]
    fn chunks_a_big_list() {
        let mut db = Db::new(0);
        let l: VecDeque<SmallBytes> = (0..25)
            .map(|i| SmallBytes::new(format!("{i}").as_bytes()))
            .collect();
        db.set(b"l", Value::List(crate::store::CowArc::new(l)));
        let mut b = Batch::new(None, 1000, 10, 1 << 20, Default::default());
        b.add_keys(&mut db, &[b"l"], false, 0);
        let mut out = Vec::new();
        let mut sizes = VecDeque::new();
        while !b.exhausted() {
            b.next_messages(&mut db, 0, &mut out, &mut sizes, usize::MAX);
        }
        // delete, 3 chunks, expire
        assert_eq!(sizes.len(), 5);
        assert_eq!(b.removed.len(), 1);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("*3\r\n$18\r\nSLOTSRESTORE-ASYNC\r\n$6\r\ndelete\r\n$1\r\nl\r\n"));
        assert!(text.contains("$4\r\nlist\r\n$1\r\nl\r\n$4\r\n3000\r\n$2\r\n25\r\n"));
        assert!(text.ends_with("$6\r\nexpire\r\n$1\r\nl\r\n$1\r\n0\r\n"));
    }
}
