//! The hash command family: HSET, HGET, HDEL, HINCRBY, HRANDFIELD, HSCAN...
//!
//! Ordering follows Redis 7.0 where Redis is deterministic: a hash that Redis would still
//! keep as a listpack (`HashValue::hashtable == false`) replies in insertion order, deleting
//! keeps the order of the other fields (`shift_remove`), and HSCAN returns it whole with
//! cursor 0. Once Redis would have converted it to a hashtable (too many fields, or a field
//! or value too long; one-way) its order is Redis's hash order, which clients cannot rely on,
//! so the cheaper `swap_remove` is used and HSCAN walks the map with a real cursor.
//!
//! Also home of helpers the set family shares: SCAN cursor/option parsing and the quiet
//! write lookup.

use rand::Rng;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::resp::reply::Out;
use crate::store::{Db, HashValue, SmallBytes, Value, evict};
use crate::util::glob::glob_match;
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hset),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hsetnx),
    spec("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hmset),
    spec("hget", 3, READONLY | FAST, (1, 1, 1), hget),
    spec("hmget", -3, READONLY | FAST, (1, 1, 1), hmget),
    spec("hdel", -3, WRITE | FAST, (1, 1, 1), hdel),
    spec("hlen", 2, READONLY | FAST, (1, 1, 1), hlen),
    spec("hstrlen", 3, READONLY | FAST, (1, 1, 1), hstrlen),
    spec("hexists", 3, READONLY | FAST, (1, 1, 1), hexists),
    spec("hkeys", 2, READONLY, (1, 1, 1), hkeys),
    spec("hvals", 2, READONLY, (1, 1, 1), hvals),
    spec("hgetall", 2, READONLY, (1, 1, 1), hgetall),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hincrby),
    spec(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        hincrbyfloat,
    ),
    spec("hrandfield", -2, READONLY | RANDOM, (1, 1, 1), hrandfield),
    spec("hscan", -3, READONLY | RANDOM, (1, 1, 1), hscan),
];

// ---------------------------------------------------------------------------------------
// Lookups shared with the set family.

/// Looks a key up for an in-place modification *without* signalling it (WATCH, blocked
/// clients): Redis only signals a key when the command really changed it, so the caller
/// calls [`Db::touched`] itself when it did. Expires the key if due, stamps its access time,
/// and (as Redis's write lookups) does not count a keyspace hit or miss.
pub(crate) fn lookup_write<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Option<&'a mut Value> {
    // `peek` applies lazy expiry (and counts no hit or miss).
    db.peek(key, now)?;
    entry_mut(db, key)
}

/// The value at `key` for writing, created with `new` when missing; WRONGTYPE when the key
/// holds a value `is_type` refuses. Not signalled, like [`lookup_write`]: the caller must
/// signal the key, and must leave no empty collection behind.
pub(crate) fn lookup_or_create<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
    is_type: fn(&Value) -> bool,
    new: fn() -> Value,
) -> Result<&'a mut Value, CmdError> {
    match db.peek(key, now) {
        None => db.insert(key, new()),
        Some(e) if is_type(&e.value) => {}
        Some(_) => return Err(CmdError::WrongType),
    }
    entry_mut(db, key).ok_or(CmdError::WrongType)
}

/// The value of a key known to exist, through the slot table: that leaves the key and expiry
/// counters alone (the value changes, the key set does not) and signals nothing. Stamps the
/// access time as Redis's write lookups do.
fn entry_mut<'a>(db: &'a mut Db, key: &[u8]) -> Option<&'a mut Value> {
    let (clock, lfu) = (db.lru_clock, db.lfu);
    let e = db.entry_mut(key)?;
    e.lru = if lfu { evict::lfu_touch(e.lru) } else { clock };
    Some(&mut e.value)
}

fn read_hash<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a HashValue>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn write_hash<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a mut HashValue>, CmdError> {
    match lookup_write(db, key, now) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The hash at `key` for writing, created empty when missing. The caller must add at least
/// one field (no empty key may stay) and signal the key.
fn hash_or_create<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<&'a mut HashValue, CmdError> {
    let is_hash = |v: &Value| matches!(v, Value::Hash(_));
    match lookup_or_create(db, key, now, is_hash, Value::new_hash)? {
        Value::Hash(h) => Ok(h),
        _ => Err(CmdError::WrongType),
    }
}

/// Listpack limits from the live config: (max entries, max field/value length).
fn limits(ctx: &Ctx<'_>) -> (usize, usize) {
    let c = &ctx.store.config;
    (c.hash_max_listpack_entries, c.hash_max_listpack_value)
}

/// Sets one field, marking the hash converted when the field or value is too long for a
/// listpack. An existing field keeps its position. Returns true when the field is new.
fn set_field(h: &mut HashValue, field: &[u8], value: &[u8], max_value: usize) -> bool {
    use indexmap::map::RawEntryApiV1;
    use indexmap::map::raw_entry_v1::RawEntryMut;
    if !h.hashtable && (field.len() > max_value || value.len() > max_value) {
        h.hashtable = true;
    }
    // One hash computation whether the field exists or not, and no copy of the field unless
    // it is new.
    match h.map.raw_entry_mut_v1().from_key(field) {
        RawEntryMut::Occupied(mut e) => {
            *e.get_mut() = SmallBytes::new(value);
            false
        }
        RawEntryMut::Vacant(e) => {
            e.insert(SmallBytes::new(field), SmallBytes::new(value));
            true
        }
    }
}

/// Converts the hash once it holds more fields than a listpack may.
fn check_entries(h: &mut HashValue, max_entries: usize) {
    if h.len() > max_entries {
        h.hashtable = true;
    }
}

// ---------------------------------------------------------------------------------------
// Writes.

fn hset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let added = hset_common(ctx, args, "hset")?;
    ctx.out.int(added);
    Ok(())
}

fn hmset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    hset_common(ctx, args, "hmset")?;
    ctx.out.ok();
    Ok(())
}

/// HSET and HMSET: sets every pair, returns the number of new fields.
fn hset_common(ctx: &mut Ctx<'_>, args: &[&[u8]], name: &str) -> Result<i64, CmdError> {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Arity(name.into()));
    }
    let (max_entries, max_value) = limits(ctx);
    let now = ctx.now_ms;
    let db = ctx.db();
    let h = hash_or_create(db, args[1], now)?;
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        added += set_field(h, pair[0], pair[1], max_value) as i64;
    }
    check_entries(h, max_entries);
    db.touched(args[1]);
    ctx.dirty(((args.len() - 2) / 2) as u64);
    Ok(added)
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (max_entries, max_value) = limits(ctx);
    let now = ctx.now_ms;
    let db = ctx.db();
    let h = hash_or_create(db, args[1], now)?;
    if h.contains_key(args[2]) {
        ctx.out.int(0);
        return Ok(());
    }
    set_field(h, args[2], args[3], max_value);
    check_entries(h, max_entries);
    db.touched(args[1]);
    ctx.dirty(1);
    ctx.out.int(1);
    Ok(())
}

fn hdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let Some(h) = write_hash(db, args[1], now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut deleted = 0;
    for f in &args[2..] {
        // A listpack keeps the order of the remaining fields; a hashtable has no order.
        let removed = if h.hashtable {
            h.swap_remove(*f).is_some()
        } else {
            h.shift_remove(*f).is_some()
        };
        deleted += removed as i64;
        if h.is_empty() {
            break;
        }
    }
    if deleted > 0 {
        if h.is_empty() {
            db.remove(args[1]);
        } else {
            db.touched(args[1]);
        }
        ctx.dirty(deleted as u64);
    }
    ctx.out.int(deleted);
    Ok(())
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let incr = arg_i64(args[3])?;
    let (max_entries, max_value) = limits(ctx);
    let now = ctx.now_ms;
    let db = ctx.db();
    let h = hash_or_create(db, args[1], now)?;
    let current = match h.get(args[2]) {
        None => 0,
        Some(v) => parse_i64(v).ok_or_else(|| CmdError::err("hash value is not an integer"))?,
    };
    let new = current
        .checked_add(incr)
        .ok_or_else(|| CmdError::err("increment or decrement would overflow"))?;
    let mut buf = itoa::Buffer::new();
    set_field(h, args[2], buf.format(new).as_bytes(), max_value);
    check_entries(h, max_entries);
    db.touched(args[1]);
    ctx.dirty(1);
    ctx.out.int(new);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    // Redis works in `long double`: see `string::ld` for why f64 would not give the same
    // replies. Same arithmetic as INCRBYFLOAT, with HINCRBYFLOAT's own error order and texts.
    use super::string::ld::{self, Parsed};
    let incr = match ld::parse(args[3]).ok_or(CmdError::NotFloat)? {
        Parsed::Num(n) => n,
        Parsed::Inf => return Err(CmdError::err("value is NaN or Infinity")),
    };
    let (max_entries, max_value) = limits(ctx);
    let now = ctx.now_ms;
    let db = ctx.db();
    let h = hash_or_create(db, args[1], now)?;
    let nan_or_inf = || CmdError::err("increment would produce NaN or Infinity");
    let current = match h.get(args[2]) {
        None => ld::Ld::from_i64(0),
        Some(v) => match ld::parse(v) {
            Some(Parsed::Num(n)) => n,
            Some(Parsed::Inf) => return Err(nan_or_inf()),
            None => return Err(CmdError::err("hash value is not a float")),
        },
    };
    let text = current.sum(incr).ok_or_else(nan_or_inf)?.to_human();
    set_field(h, args[2], text.as_bytes(), max_value);
    check_entries(h, max_entries);
    db.touched(args[1]);
    ctx.dirty(1);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reads.

fn hget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_hash(db, args[1], now)?.and_then(|h| h.get(args[2])) {
        Some(v) => out.bulk(v),
        None => out.null(),
    }
    Ok(())
}

fn hmget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let h = read_hash(db, args[1], now)?;
    out.array(args.len() - 2);
    for f in &args[2..] {
        match h.and_then(|h| h.get(*f)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
    Ok(())
}

fn hlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    out.int(read_hash(db, args[1], now)?.map_or(0, |h| h.len()) as i64);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let len = read_hash(db, args[1], now)?
        .and_then(|h| h.get(args[2]))
        .map_or(0, |v| v.len());
    out.int(len as i64);
    Ok(())
}

fn hexists(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let found = read_hash(db, args[1], now)?.is_some_and(|h| h.contains_key(args[2]));
    out.int(found as i64);
    Ok(())
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_hash(db, args[1], now)? {
        None => out.array(0),
        Some(h) => out.bulks(h.keys()),
    }
    Ok(())
}

fn hvals(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_hash(db, args[1], now)? {
        None => out.array(0),
        Some(h) => out.bulks(h.values()),
    }
    Ok(())
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_hash(db, args[1], now)? {
        None => out.map(0),
        Some(h) => {
            out.map(h.len());
            for (f, v) in h.iter() {
                out.bulk(f);
                out.bulk(v);
            }
        }
    }
    Ok(())
}

fn hrandfield(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    if args.len() >= 3 {
        let count = arg_count(args[2])?;
        if args.len() > 4 || (args.len() == 4 && !eq_ic(args[3], "withvalues")) {
            return Err(CmdError::Syntax);
        }
        let withvalues = args.len() == 4;
        if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Err(CmdError::err("value is out of range"));
        }
        let (db, out) = ctx.db_out();
        let Some(h) = read_hash(db, args[1], now)? else {
            out.array(0);
            return Ok(());
        };
        hrandfield_count(out, h, count, withvalues);
        return Ok(());
    }
    let (db, out) = ctx.db_out();
    match read_hash(db, args[1], now)? {
        None => out.null(),
        Some(h) => {
            let i = rand::rng().random_range(0..h.len());
            out.bulk(h.get_index(i).map_or(&[][..], |(f, _)| f));
        }
    }
    Ok(())
}

/// Parses the count of HRANDFIELD / SRANDMEMBER: any i64 but i64::MIN (Redis's range is
/// -LONG_MAX..LONG_MAX).
pub(crate) fn arg_count(a: &[u8]) -> Result<i64, CmdError> {
    let n = arg_i64(a)?;
    if n == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(n)
}

fn hrandfield_count(out: &mut Out, h: &HashValue, count: i64, withvalues: bool) {
    // RESP2 flattens pairs; RESP3 nests each pair in a 2-element array.
    let header = |out: &mut Out, n: usize| {
        if withvalues && !out.resp3 {
            out.array(2 * n)
        } else {
            out.array(n)
        }
    };
    let pair = |out: &mut Out, i: usize| {
        let (f, v) = h.get_index(i).expect("index below len");
        if withvalues && out.resp3 {
            out.array(2);
        }
        out.bulk(f);
        if withvalues {
            out.bulk(v);
        }
    };
    let len = h.len();
    let mut rng = rand::rng();
    if count == 0 {
        out.array(0);
    } else if count < 0 {
        // Repetitions allowed: `-count` independent picks.
        let n = count.unsigned_abs() as usize;
        header(out, n);
        for _ in 0..n {
            pair(out, rng.random_range(0..len));
        }
    } else if count as u64 >= len as u64 {
        // The whole hash, in its own order (deterministic for a listpack, as in Redis).
        header(out, len);
        for i in 0..len {
            pair(out, i);
        }
    } else {
        let n = count as usize;
        header(out, n);
        for i in rand::seq::index::sample(&mut rng, len, n) {
            pair(out, i);
        }
    }
}

fn hscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = super::keys::parse_cursor(args[2])?;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(h) = read_hash(db, args[1], now)? else {
        empty_scan(out);
        return Ok(());
    };
    let opts = ScanOpts::parse(&args[3..])?;
    let (range, next) = if h.hashtable {
        scan_window(h.len(), cursor, opts.count)
    } else {
        // Redis returns a listpack whole, whatever the cursor and COUNT.
        (0..h.len(), 0)
    };
    let pick = |i: usize| h.get_index(i).filter(|(f, _)| opts.matches(f));
    let n = range.clone().filter(|&i| pick(i).is_some()).count();
    scan_header(out, next, 2 * n);
    let mut emit = |i: usize| {
        if let Some((f, v)) = pick(i) {
            out.bulk(f);
            out.bulk(v);
        }
    };
    // Hashtables are walked downwards (see `scan_window`); a listpack in its order.
    if h.hashtable {
        range.rev().for_each(&mut emit);
    } else {
        range.for_each(&mut emit);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SCAN-family helpers (HSCAN, SSCAN).

/// MATCH / COUNT options of HSCAN and SSCAN.
pub(crate) struct ScanOpts<'a> {
    /// Glob pattern (None: everything).
    pub(crate) pattern: Option<&'a [u8]>,
    /// Elements to visit per call (approximate, as Redis).
    pub(crate) count: usize,
}

impl<'a> ScanOpts<'a> {
    /// Parses the options that follow the cursor.
    pub(crate) fn parse(opts: &[&'a [u8]]) -> Result<Self, CmdError> {
        let mut o = ScanOpts {
            pattern: None,
            count: 10,
        };
        let mut i = 0;
        while i < opts.len() {
            let has_value = i + 1 < opts.len();
            if eq_ic(opts[i], "count") && has_value {
                let n = arg_i64(opts[i + 1])?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                o.count = n as usize;
            } else if eq_ic(opts[i], "match") && has_value {
                let p = opts[i + 1];
                o.pattern = if p == b"*" { None } else { Some(p) };
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
        Ok(o)
    }

    /// True when `s` passes the MATCH filter.
    pub(crate) fn matches(&self, s: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, s, false))
    }
}

/// The index range one step of a hashtable scan visits, and the cursor to return.
///
/// Elements are visited from the last index downwards and the cursor is "next index + 1"
/// (0: done). Removal moves the last element into the hole, i.e. from the visited part into
/// the visited or unvisited part but never out of the unvisited part, so an element present
/// for the whole scan is always returned (maybe twice): the SCAN guarantee. See `Db::scan`.
pub(crate) fn scan_window(len: usize, cursor: u64, count: usize) -> (std::ops::Range<usize>, u64) {
    let top = if cursor == 0 {
        len
    } else {
        usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
    };
    let low = top.saturating_sub(count);
    (low..top, low as u64)
}

/// Writes `[cursor, [n elements...]]`' header; the caller writes the elements.
pub(crate) fn scan_header(out: &mut Out, cursor: u64, n: usize) {
    out.array(2);
    let mut b = itoa::Buffer::new();
    out.bulk(b.format(cursor).as_bytes());
    out.array(n);
}

/// Redis's reply to a SCAN of a missing key.
pub(crate) fn empty_scan(out: &mut Out) {
    scan_header(out, 0, 0);
}

/// Runs commands against an in-memory store, for unit tests of this family and the set
/// family that need to look at encodings (the `hashtable` flags behind OBJECT ENCODING).
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use crate::cmd::{Ctx, execute};
    use crate::config::Config;
    use crate::resp::reply::Out;
    use crate::server::Shared;
    use crate::server::client::{Client, ClientInfo};
    use crate::store::{Store, Value};

    /// A store, a client and a reply buffer.
    pub(crate) struct Harness {
        shared: Arc<Shared>,
        /// The store commands run against.
        pub(crate) store: Store,
        client: Client,
    }

    impl Harness {
        /// A harness whose config `tweak` adjusts.
        pub(crate) fn new(tweak: impl FnOnce(&mut Config)) -> Self {
            let mut config = Config::default();
            tweak(&mut config);
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let info = Arc::new(ClientInfo::new(1, "test".into(), "test".into()));
            Harness {
                shared: Shared::new(Config::default(), None),
                store: Store::new(config),
                client: Client::new(info, tx),
            }
        }

        /// Runs a command; returns its raw RESP2 reply.
        pub(crate) fn run(&mut self, args: &[&str]) -> String {
            let mut out = Out::new();
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let mut ctx = Ctx {
                store: &mut self.store,
                client: &mut self.client,
                out: &mut out,
                shared: &self.shared,
                now_ms: crate::store::now_ms(),
            };
            execute(&mut ctx, &argv);
            String::from_utf8_lossy(&out.buf).into_owned()
        }

        /// The `hashtable` flag of the hash or set at `key` (None: missing or other type).
        pub(crate) fn converted(&mut self, key: &str) -> Option<bool> {
            let now = crate::store::now_ms();
            match self.store.dbs[0]
                .peek(key.as_bytes(), now)
                .map(|e| &e.value)
            {
                Some(Value::Hash(h)) => Some(h.hashtable),
                Some(Value::Set(s)) => Some(s.hashtable),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::Harness;
    use super::*;

    #[test]
    fn listpack_conversion_by_entries_is_one_way() {
        let mut h = Harness::new(|c| c.hash_max_listpack_entries = 3);
        assert_eq!(
            h.run(&["hset", "h", "a", "1", "b", "2", "c", "3"]),
            ":3\r\n"
        );
        assert_eq!(h.converted("h"), Some(false));
        h.run(&["hdel", "h", "a"]);
        assert_eq!(
            h.run(&["hkeys", "h"]),
            "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
            "deleting keeps listpack order"
        );
        h.run(&["hset", "h", "d", "4", "e", "5"]);
        assert_eq!(h.converted("h"), Some(true));
        h.run(&["hdel", "h", "b", "c", "d"]);
        assert_eq!(h.converted("h"), Some(true));
        h.run(&["hdel", "h", "e"]);
        assert_eq!(h.converted("h"), None, "an empty hash is deleted");
    }

    #[test]
    fn listpack_conversion_by_length() {
        let mut h = Harness::new(|c| c.hash_max_listpack_value = 4);
        h.run(&["hset", "a", "f", "1234"]);
        assert_eq!(h.converted("a"), Some(false));
        h.run(&["hset", "a", "f", "12345"]);
        assert_eq!(h.converted("a"), Some(true));
        h.run(&["hsetnx", "b", "fffff", "1"]);
        assert_eq!(h.converted("b"), Some(true));
        h.run(&["hincrby", "c", "fffff", "1"]);
        assert_eq!(h.converted("c"), Some(true));
        h.run(&["hincrby", "d", "f", "99999"]);
        assert_eq!(h.converted("d"), Some(true), "the new value is too long");
        h.run(&["hincrbyfloat", "e", "f", "1.5"]);
        assert_eq!(h.converted("e"), Some(false));
    }

    #[test]
    fn failed_commands_leave_no_empty_key() {
        let mut h = Harness::new(|_| {});
        assert!(h.run(&["hincrby", "k", "f", "x"]).starts_with("-ERR"));
        assert!(
            h.run(&["hincrbyfloat", "k", "f", "inf"])
                .starts_with("-ERR")
        );
        assert_eq!(h.converted("k"), None);
        h.run(&["set", "s", "v"]);
        assert!(h.run(&["hset", "s", "f", "v"]).starts_with("-WRONGTYPE"));
    }

    #[test]
    fn hashtable_scan_survives_changes() {
        let mut h = Harness::new(|c| c.hash_max_listpack_entries = 2);
        for i in 0..10 {
            h.run(&["hset", "h", &format!("keep{i}"), "v"]);
        }
        for i in 0..40 {
            h.run(&["hset", "h", &format!("tmp{i}"), "v"]);
        }
        let (mut cursor, mut step) = ("0".to_string(), 0);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let r = h.run(&["hscan", "h", &cursor, "count", "3"]);
            let lines: Vec<&str> = r.split("\r\n").collect();
            cursor = lines[2].to_string();
            seen.extend(lines.iter().skip(5).step_by(4).map(|l| l.to_string()));
            // Churn between steps: removals move elements around, additions append.
            for j in 0..2 {
                h.run(&["hdel", "h", &format!("tmp{}", (step * 7 + j * 13) % 40)]);
                h.run(&["hset", "h", &format!("new{step}_{j}"), "v"]);
            }
            step += 1;
            if cursor == "0" {
                break;
            }
        }
        for i in 0..10 {
            assert!(seen.contains(&format!("keep{i}")), "keep{i} missed");
        }
    }

    #[test]
    fn hashtable_scan_visits_everything() {
        let mut h = Harness::new(|c| c.hash_max_listpack_entries = 2);
        for i in 0..50 {
            h.run(&["hset", "h", &format!("f{i}"), "v"]);
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let r = h.run(&["hscan", "h", &cursor, "count", "7"]);
            let lines: Vec<&str> = r.split("\r\n").collect();
            cursor = lines[2].to_string();
            for l in lines.iter().skip(5).step_by(4) {
                if l.starts_with('f') {
                    seen.insert(l.to_string());
                }
            }
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn cursors() {
        use crate::cmd::keys::parse_cursor;
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"007"), Ok(7));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_cursor(b" 1").is_err());
        assert!(parse_cursor(b"-").is_err());
    }

    #[test]
    fn scan_windows_cover_everything() {
        let (r, next) = scan_window(25, 0, 10);
        assert_eq!((r, next), (15..25, 15));
        let (r, next) = scan_window(25, 15, 10);
        assert_eq!((r, next), (5..15, 5));
        let (r, next) = scan_window(25, 5, 10);
        assert_eq!((r, next), (0..5, 0));
        let (r, next) = scan_window(3, 99, 10);
        assert_eq!((r, next), (0..3, 0));
    }
}
