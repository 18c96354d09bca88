//! The generic keyspace commands: DEL, EXISTS, TYPE, RENAME, the EXPIRE and TTL families,
//! PERSIST, KEYS, SCAN, RANDOMKEY, MOVE, COPY, TOUCH, OBJECT, SWAPDB, and SORT / SORT_RO.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec, unknown_subcommand};
use crate::config::{Config, EvictionPolicy};
use crate::store::{Db, SmallBytes, Value, evict};
use crate::util::glob::glob_match;
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("del", -2, WRITE, (1, -1, 1), del),
    spec("unlink", -2, WRITE | FAST, (1, -1, 1), unlink),
    spec("exists", -2, READONLY | FAST, (1, -1, 1), exists),
    spec("type", 2, READONLY | FAST, (1, 1, 1), type_cmd),
    spec("rename", 3, WRITE, (1, 2, 1), rename),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), renamenx),
    spec("expire", -3, WRITE | FAST, (1, 1, 1), expire),
    spec("pexpire", -3, WRITE | FAST, (1, 1, 1), pexpire),
    spec("expireat", -3, WRITE | FAST, (1, 1, 1), expireat),
    spec("pexpireat", -3, WRITE | FAST, (1, 1, 1), pexpireat),
    spec("ttl", 2, READONLY | FAST, (1, 1, 1), ttl),
    spec("pttl", 2, READONLY | FAST, (1, 1, 1), pttl),
    spec("expiretime", 2, READONLY | FAST, (1, 1, 1), expiretime),
    spec("pexpiretime", 2, READONLY | FAST, (1, 1, 1), pexpiretime),
    spec("persist", 2, WRITE | FAST, (1, 1, 1), persist),
    spec("keys", 2, READONLY, (0, 0, 0), keys),
    spec("scan", -2, READONLY, (0, 0, 0), scan),
    spec("randomkey", 1, READONLY | RANDOM, (0, 0, 0), randomkey),
    spec("move", 3, WRITE | FAST, (1, 1, 1), move_cmd),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), copy),
    spec("touch", -2, READONLY | FAST, (1, -1, 1), touch),
    spec("object", -2, READONLY, (2, 2, 1), object),
    spec("swapdb", 3, WRITE | FAST, (0, 0, 0), swapdb),
    spec("sort", -2, WRITE | DENYOOM, (1, 1, 1), sort),
    spec("sort_ro", -2, READONLY, (1, 1, 1), sort_ro),
];

/// The bytes of `a` up to its first NUL: what C string functions in Redis see.
fn cstr(a: &[u8]) -> &[u8] {
    match a.iter().position(|&c| c == 0) {
        Some(i) => &a[..i],
        None => a,
    }
}

/// A lookup that does not touch the access time but counts a keyspace hit or miss, as
/// Redis's `LOOKUP_NOTOUCH` reads (EXISTS, TYPE, TTL, OBJECT).
fn exists_notouch(db: &mut Db, key: &[u8], now: u64) -> bool {
    let found = db.peek(key, now).is_some();
    if found {
        db.hits += 1;
    } else {
        db.misses += 1;
    }
    found
}

fn del(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let n = args[1..].iter().filter(|k| db.delete(k, now)).count();
    ctx.dirty(n as u64);
    ctx.out.int(n as i64);
    Ok(())
}

/// UNLINK: DEL that frees big values in the background.
fn unlink(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let n = args[1..].iter().filter(|k| db.unlink(k, now)).count();
    ctx.dirty(n as u64);
    ctx.out.int(n as i64);
    Ok(())
}

fn exists(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    // Repeated keys count once per mention, as in Redis.
    let n = args[1..]
        .iter()
        .filter(|k| exists_notouch(db, k, now))
        .count();
    ctx.out.int(n as i64);
    Ok(())
}

fn touch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let n = args[1..]
        .iter()
        .filter(|k| db.get(k, now).is_some())
        .count();
    ctx.out.int(n as i64);
    Ok(())
}

fn type_cmd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let name = if exists_notouch(db, args[1], now) {
        db.peek(args[1], now)
            .map_or("none", |e| e.value.type_name())
    } else {
        "none"
    };
    ctx.out.simple(name);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RENAME / RENAMENX / MOVE / COPY / SWAPDB

fn rename(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, args, true)
}

fn rename_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], nx: bool) -> CmdResult {
    let (src, dst) = (args[1], args[2]);
    let now = ctx.now_ms;
    let db = ctx.db();
    if !db.contains(src, now) {
        return Err(CmdError::NoSuchKey);
    }
    // Redis looks the source up for writing (an access), then moves the object itself: the
    // destination takes the source's LRU clock or LFU counter.
    db.access(src, now);
    if src == dst {
        // Nothing to do, but the reply still says whether a rename "happened".
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && db.contains(dst, now) {
        ctx.out.int(0);
        return Ok(());
    }
    let expire = db.expire_at(src);
    let entry = db.remove_entry(src).expect("checked above");
    db.set_entry(dst, entry);
    if let Some(at) = expire {
        db.set_expire(dst, at);
    }
    ctx.dirty(1);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// Parses a DB index as Redis's `getIntFromObjectOrReply` does (range of a C int).
fn arg_db_index(a: &[u8]) -> Result<i64, CmdError> {
    let v = arg_i64(a)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    Ok(v)
}

/// Checks a DB index against the number of databases.
fn db_in_range(ctx: &Ctx<'_>, id: i64) -> Result<usize, CmdError> {
    if id < 0 || id as usize >= ctx.store.dbs.len() {
        return Err(CmdError::err("DB index is out of range"));
    }
    Ok(id as usize)
}

/// Two distinct databases at once.
fn two_dbs(dbs: &mut [Db], a: usize, b: usize) -> (&mut Db, &mut Db) {
    assert_ne!(a, b);
    if a < b {
        let (lo, hi) = dbs.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = dbs.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

const SAME_OBJECT: &str = "source and destination objects are the same";

fn move_cmd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let dst_id = arg_db_index(args[2])?;
    let dst_id = db_in_range(ctx, dst_id)?;
    let src_id = ctx.client.db;
    if src_id == dst_id {
        return Err(CmdError::err(SAME_OBJECT));
    }
    let now = ctx.now_ms;
    let (src, dst) = two_dbs(&mut ctx.store.dbs, src_id, dst_id);
    if !src.contains(key, now) || dst.contains(key, now) {
        ctx.out.int(0);
        return Ok(());
    }
    // As RENAME: an access to the source, whose LRU/LFU data go with it.
    src.access(key, now);
    let expire = src.expire_at(key);
    let entry = src.remove_entry(key).expect("checked above");
    dst.set_entry(key, entry);
    if let Some(at) = expire {
        dst.set_expire(key, at);
    }
    ctx.dirty(1);
    ctx.out.int(1);
    Ok(())
}

fn copy(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (src_key, dst_key) = (args[1], args[2]);
    let src_id = ctx.client.db;
    let mut dst_id = src_id;
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        if eq_ic(args[j], "replace") {
            replace = true;
        } else if eq_ic(args[j], "db") && j + 1 < args.len() {
            let id = arg_db_index(args[j + 1])?;
            dst_id = db_in_range(ctx, id)?;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if src_id == dst_id && src_key == dst_key {
        return Err(CmdError::err(SAME_OBJECT));
    }
    let now = ctx.now_ms;
    let src = &mut ctx.store.dbs[src_id];
    let Some(value) = src.get(src_key, now).cloned() else {
        ctx.out.int(0);
        return Ok(());
    };
    let expire = src.expire_at(src_key);
    let dst = &mut ctx.store.dbs[dst_id];
    if dst.contains(dst_key, now) && !replace {
        ctx.out.int(0);
        return Ok(());
    }
    // A copy is a new object in Redis (fresh LRU clock or LFU counter), also over a key it
    // replaces.
    dst.remove(dst_key);
    dst.set(dst_key, value);
    if let Some(at) = expire {
        dst.set_expire(dst_key, at);
    }
    ctx.dirty(1);
    ctx.out.int(1);
    Ok(())
}

fn swapdb(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let a = arg_db_index(args[1]).map_err(|_| CmdError::err("invalid first DB index"))?;
    let b = arg_db_index(args[2]).map_err(|_| CmdError::err("invalid second DB index"))?;
    let a = db_in_range(ctx, a)?;
    let b = db_in_range(ctx, b)?;
    if a != b {
        let (x, y) = two_dbs(&mut ctx.store.dbs, a, b);
        x.swap_contents(y);
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// EXPIRE family, TTL family, PERSIST

fn expire(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, args, "expire", true, false)
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, args, "pexpire", false, false)
}

fn expireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, args, "expireat", true, true)
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, args, "pexpireat", false, true)
}

const EXPIRE_NX: u8 = 1;
const EXPIRE_XX: u8 = 2;
const EXPIRE_GT: u8 = 4;
const EXPIRE_LT: u8 = 8;

/// EXPIRE and friends. `seconds`: the argument is in seconds; `absolute`: it is a unix time
/// rather than a delay. A time in the past deletes the key (and still replies 1).
fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    name: &str,
    seconds: bool,
    absolute: bool,
) -> CmdResult {
    // Options are checked before the time argument, as Redis does.
    let mut flags = 0u8;
    for opt in &args[3..] {
        flags |= if eq_ic(opt, "nx") {
            EXPIRE_NX
        } else if eq_ic(opt, "xx") {
            EXPIRE_XX
        } else if eq_ic(opt, "gt") {
            EXPIRE_GT
        } else if eq_ic(opt, "lt") {
            EXPIRE_LT
        } else {
            return Err(CmdError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(cstr(opt))
            )));
        };
    }
    if flags & EXPIRE_NX != 0 && flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flags & EXPIRE_GT != 0 && flags & EXPIRE_LT != 0 {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || CmdError::err(format!("invalid expire time in '{name}' command"));
    let mut when = arg_i64(args[2])?;
    if seconds {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    let now = ctx.now_ms as i64;
    if !absolute {
        when = when.checked_add(now).ok_or_else(invalid)?;
    }
    let key = args[1];
    let db = ctx.db();
    if !db.contains(key, now as u64) {
        ctx.out.int(0);
        return Ok(());
    }
    if flags != 0 {
        let current = db.expire_at(key).map(|t| t as i64);
        let refused = (flags & EXPIRE_NX != 0 && current.is_some())
            || (flags & EXPIRE_XX != 0 && current.is_none())
            // No TTL counts as an infinite one: GT never beats it, LT always does.
            || (flags & EXPIRE_GT != 0 && current.is_none_or(|c| when <= c))
            || (flags & EXPIRE_LT != 0 && current.is_some_and(|c| when >= c));
        if refused {
            ctx.out.int(0);
            return Ok(());
        }
    }
    if when <= now {
        db.remove(key);
    } else {
        db.set_expire(key, when as u64);
    }
    ctx.dirty(1);
    ctx.out.int(1);
    Ok(())
}

fn ttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, args[1], false, false)
}

fn pttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, args[1], true, false)
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, args[1], false, true)
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, args[1], true, true)
}

/// TTL family: -2 for a missing key, -1 without a TTL; seconds are rounded to nearest.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], ms: bool, absolute: bool) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    if !exists_notouch(db, key, now) {
        ctx.out.int(-2);
        return Ok(());
    }
    let Some(at) = db.expire_at(key) else {
        ctx.out.int(-1);
        return Ok(());
    };
    let at = at as i64;
    let t = if absolute { at } else { at - now as i64 }.max(0);
    ctx.out.int(if ms { t } else { (t + 500) / 1000 });
    Ok(())
}

fn persist(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let done = db.contains(args[1], now) && db.persist(args[1]);
    if done {
        ctx.dirty(1);
    }
    ctx.out.int(done as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// KEYS / SCAN / RANDOMKEY

fn keys(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let pattern = args[1];
    // The pattern `*` skips the matcher (which would not match an empty key).
    let all = pattern == b"*";
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let found: Vec<&SmallBytes> = db
        .iter()
        .filter(|(k, _, exp)| {
            exp.is_none_or(|at| at > now) && (all || glob_match(pattern, k, false))
        })
        .map(|(k, _, _)| k)
        .collect();
    out.array(found.len());
    for k in found {
        out.bulk(k);
    }
    Ok(())
}

/// Parses a SCAN cursor like Redis (`strtoul` base 10 on the C string; a leading space,
/// trailing garbage or overflow is `ERR invalid cursor`; `-n` wraps around as in C).
pub fn parse_cursor(a: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::err("invalid cursor");
    if a.first().is_some_and(|&c| is_c_space(c)) {
        return Err(invalid());
    }
    let s = cstr(a);
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        // No conversion: valid only when there was nothing at all (cursor 0).
        return if s.is_empty() { Ok(0) } else { Err(invalid()) };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn scan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[1])?;
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut type_name: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let more = i + 1 < args.len();
        if eq_ic(args[i], "count") && more {
            let n = arg_i64(args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
        } else if eq_ic(args[i], "match") && more {
            pattern = Some(args[i + 1]).filter(|p| *p != b"*");
        } else if eq_ic(args[i], "type") && more {
            type_name = Some(args[i + 1]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut found = Vec::new();
    let mut expired = Vec::new();
    let next = db.scan(cursor, count, |k, e, exp| {
        if pattern.is_some_and(|p| !glob_match(p, k, false)) {
            return;
        }
        if type_name.is_some_and(|t| !t.eq_ignore_ascii_case(e.value.type_name().as_bytes())) {
            return;
        }
        if exp.is_some_and(|at| at <= now) {
            expired.push(k.clone());
            return;
        }
        found.push(k.clone());
    });
    // Like Redis, keys found expired along the way are deleted.
    for k in expired {
        db.contains(&k, now);
    }
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(found.len());
    for k in &found {
        out.bulk(k);
    }
    Ok(())
}

fn randomkey(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    match ctx.db().random_key(now) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// OBJECT

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// Redis's refcount of shared integer objects (`OBJ_SHARED_REFCOUNT`).
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// The encoding Redis 7.0 would report for `v` (OBJECT ENCODING).
///
/// The one-way conversion flags on hashes, sets and sorted sets record conversions caused by
/// past contents; the config limits are also checked so the answer is right even for a value
/// whose flag was never raised.
pub fn encoding_name(v: &Value, cfg: &Config) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && parse_i64(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        // Redis 7.0 always uses a quicklist for lists.
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let big = h.hashtable
                || h.len() > cfg.hash_max_listpack_entries
                || h.iter().any(|(k, v)| {
                    k.len() > cfg.hash_max_listpack_value || v.len() > cfg.hash_max_listpack_value
                });
            if big { "hashtable" } else { "listpack" }
        }
        Value::Set(s) => {
            if is_intset(s, cfg) {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let big = z.skiplist
                || z.len() > cfg.zset_max_listpack_entries
                || z.dict.keys().any(|m| m.len() > cfg.zset_max_listpack_value);
            if big { "skiplist" } else { "listpack" }
        }
    }
}

/// True when Redis would hold this set as an intset.
fn is_intset(s: &crate::store::SetValue, cfg: &Config) -> bool {
    !s.hashtable
        && s.len() <= cfg.set_max_intset_entries
        && s.iter().all(|m| parse_i64(m).is_some())
}

/// True when Redis would share the integer object of this string value (0..10000, and the
/// eviction policy does not need per-key LRU/LFU data).
fn is_shared_integer(s: &[u8], cfg: &Config) -> bool {
    let policy_needs_own_object = cfg.maxmemory != 0
        && matches!(
            cfg.maxmemory_policy,
            EvictionPolicy::AllKeysLru
                | EvictionPolicy::VolatileLru
                | EvictionPolicy::AllKeysLfu
                | EvictionPolicy::VolatileLfu
        );
    !policy_needs_own_object
        && s.len() <= 20
        && parse_i64(s).is_some_and(|n| (0..10_000).contains(&n))
}

fn object(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let want = if eq_ic(sub, "help") {
        2
    } else if ["encoding", "freq", "idletime", "refcount"]
        .iter()
        .any(|s| eq_ic(sub, s))
    {
        3
    } else {
        return Err(unknown_subcommand(
            sub,
            &String::from_utf8_lossy(cstr(args[0])),
        ));
    };
    if args.len() != want {
        return Err(CmdError::Arity(format!(
            "object|{}",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        )));
    }
    if want == 2 {
        ctx.out.array(OBJECT_HELP.len());
        for line in OBJECT_HELP {
            ctx.out.simple(line);
        }
        return Ok(());
    }
    let now = ctx.now_ms;
    let lfu = ctx.store.config.maxmemory_policy.is_lfu();
    let clock = ctx.store.lru_clock;
    let idx = ctx.client.db;
    let db = &mut ctx.store.dbs[idx];
    if !exists_notouch(db, args[2], now) {
        ctx.out.null();
        return Ok(());
    }
    let entry = db.peek(args[2], now).expect("checked above");
    let cfg = &ctx.store.config;
    let out = &mut *ctx.out;
    if eq_ic(sub, "encoding") {
        out.bulk(encoding_name(&entry.value, cfg).as_bytes());
    } else if eq_ic(sub, "refcount") {
        let shared = matches!(&entry.value, Value::Str(s) if is_shared_integer(s, cfg));
        out.int(if shared { SHARED_REFCOUNT } else { 1 });
    } else if eq_ic(sub, "idletime") {
        if lfu {
            return Err(CmdError::err(
                "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        out.int(evict::idle_secs(entry.lru, clock.max(entry.lru)) as i64);
    } else {
        if !lfu {
            return Err(CmdError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        out.int(evict::lfu_decayed(entry.lru) as i64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SORT / SORT_RO

fn sort(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, args, true)
}

/// Parsed SORT options.
struct SortOpts<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    by: Option<&'a [u8]>,
    /// BY a pattern without `*` (e.g. `nosort`): keep the natural order.
    dontsort: bool,
    store: Option<&'a [u8]>,
    gets: Vec<&'a [u8]>,
}

fn parse_sort_opts<'a>(args: &[&'a [u8]], readonly: bool) -> Result<SortOpts<'a>, CmdError> {
    let mut o = SortOpts {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        by: None,
        dontsort: false,
        store: None,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args[j];
        if eq_ic(a, "asc") {
            o.desc = false;
        } else if eq_ic(a, "desc") {
            o.desc = true;
        } else if eq_ic(a, "alpha") {
            o.alpha = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            o.limit_start = arg_i64(args[j + 1])?;
            o.limit_count = arg_i64(args[j + 2])?;
            j += 2;
        } else if eq_ic(a, "store") && left >= 1 && !readonly {
            o.store = Some(args[j + 1]);
            j += 1;
        } else if eq_ic(a, "by") && left >= 1 {
            let p = args[j + 1];
            o.by = Some(p);
            o.dontsort = !cstr(p).contains(&b'*');
            j += 1;
        } else if eq_ic(a, "get") && left >= 1 {
            o.gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// Looks up the value a BY/GET pattern designates for element `subst`: `#` is the element
/// itself; otherwise the first `*` is replaced by the element to form a key, and a `->field`
/// suffix after the `*` reads that field of a hash. Missing keys, wrong types and patterns
/// without `*` give None. Like Redis, `*`, `#` and `->` are searched in the pattern as a C
/// string (up to a NUL byte).
fn lookup_by_pattern(db: &mut Db, pattern: &[u8], subst: &[u8], now: u64) -> Option<SmallBytes> {
    if pattern.first() == Some(&b'#') && pattern.get(1).is_none_or(|&c| c == 0) {
        return Some(SmallBytes::new(subst));
    }
    let cpat = cstr(pattern);
    let star = cpat.iter().position(|&c| c == b'*')?;
    let arrow = cpat[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|i| star + 1 + i)
        .filter(|&f| f + 2 < cpat.len());
    let (postfix_end, field) = match arrow {
        Some(f) => (f, Some(&pattern[f + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(postfix_end + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    match (db.get(&key, now)?, field) {
        (Value::Hash(h), Some(f)) => h.get(f).cloned(),
        (Value::Str(s), None) => Some(s.clone()),
        _ => None,
    }
}

/// Converts a value to a sort score the way Redis's `strtod` check does: the whole C string
/// must be a number (leading spaces allowed, an empty string is 0); NaN and out-of-range
/// values are errors.
fn sort_score(v: &[u8]) -> Option<f64> {
    let s = cstr(v);
    if s.is_empty() {
        return Some(0.0);
    }
    let start = s.iter().position(|&c| !is_c_space(c))?;
    let text = std::str::from_utf8(&s[start..]).ok()?;
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let hex = body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X"));
    let v = if hex {
        let h = parse_hex_float(&body[2..])?;
        if neg { -h } else { h }
    } else {
        if body.starts_with(['+', '-']) {
            return None;
        }
        text.parse::<f64>().ok()?
    };
    if v.is_nan() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    if v.is_infinite() && !lower.starts_with("inf") {
        return None; // overflow: ERANGE
    }
    if v.is_finite() && v.abs() < f64::MIN_POSITIVE {
        // Underflow (ERANGE) unless the input really is zero.
        let mantissa = lower.split(['e', 'p']).next().unwrap_or("");
        let digits = if hex { &mantissa[2..] } else { mantissa };
        if digits.bytes().any(|c| c.is_ascii_hexdigit() && c != b'0') {
            return None;
        }
    }
    Some(v)
}

/// Parses the part of a C hex float after `0x`: hex digits, an optional `.` and fraction, an
/// optional binary exponent `p[+-]n`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        let e: i32 = e.parse().ok()?;
        v *= 2f64.powi(e);
    }
    Some(v)
}

/// Compares two strings as C's `strcoll` in the C/C.UTF-8 locale: bytes up to the first NUL.
fn cmp_cstr(a: &[u8], b: &[u8]) -> Ordering {
    cstr(a).cmp(cstr(b))
}

/// One element being sorted and its sort key.
struct SortItem {
    elem: SmallBytes,
    score: f64,
    cmp: Option<SmallBytes>,
}

/// The elements of the value to sort, loaded as Redis loads them: with BY nosort, lists and
/// sorted sets give their natural order (reversed by DESC) and only the LIMIT range; sets
/// give their iteration order (intsets ascending).
fn load_sort_items(
    v: Option<&Value>,
    o: &SortOpts<'_>,
    cfg: &Config,
    start: &mut i64,
    end: &mut i64,
) -> Vec<SmallBytes> {
    let natural: Vec<SmallBytes> = match v {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().cloned().collect(),
        Some(Value::ZSet(z)) if o.dontsort => z.iter().map(|(m, _)| SmallBytes::new(m)).collect(),
        Some(Value::ZSet(z)) => z.dict.keys().cloned().collect(),
        Some(Value::Set(s)) => {
            let mut m: Vec<SmallBytes> = s.iter().cloned().collect();
            if is_intset(s, cfg) {
                m.sort_by_key(|x| parse_i64(x).unwrap_or(0));
            }
            m
        }
        Some(Value::Str(_)) | Some(Value::Hash(_)) => unreachable!("type checked by caller"),
    };
    let ranged = o.dontsort && matches!(v, None | Some(Value::List(_)) | Some(Value::ZSet(_)));
    if !ranged {
        return natural;
    }
    let mut natural = natural;
    if o.desc {
        natural.reverse();
    }
    if *end < *start {
        return Vec::new();
    }
    let items = natural[*start as usize..=*end as usize].to_vec();
    // The output loop is not aware that only the range was loaded.
    *end -= *start;
    *start = 0;
    items
}

fn sort_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], readonly: bool) -> CmdResult {
    let mut o = parse_sort_opts(args, readonly)?;
    let now = ctx.now_ms;
    let idx = ctx.client.db;
    let cfg = &ctx.store.config;
    let db = &mut ctx.store.dbs[idx];
    let value = db.get(args[1], now);
    if let Some(Value::Str(_) | Value::Hash(_)) = value {
        return Err(CmdError::WrongType);
    }
    // An unordered set must come out in a deterministic order when it is stored.
    if o.dontsort && matches!(value, Some(Value::Set(_))) && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = value.map_or(0, |v| v.len()) as i64;
    let mut start = o.limit_start.max(0);
    let mut end = if o.limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(o.limit_count) - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let elems = load_sort_items(value, &o, cfg, &mut start, &mut end);
    let mut items: Vec<SortItem> = elems
        .into_iter()
        .map(|elem| SortItem {
            elem,
            score: 0.0,
            cmp: None,
        })
        .collect();

    if !o.dontsort {
        let mut conversion_error = false;
        for it in &mut items {
            let by = match o.by {
                Some(p) => match lookup_by_pattern(db, p, &it.elem, now) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.cmp = Some(by);
                }
            } else {
                match sort_score(&by) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        if conversion_error {
            return Err(CmdError::err(
                "One or more scores can't be converted into double",
            ));
        }
        let (alpha, by, store, desc) = (o.alpha, o.by.is_some(), o.store.is_some(), o.desc);
        // Stable, as glibc's qsort (a merge sort) that Redis uses.
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.elem.as_bytes().cmp(b.elem.as_bytes()))
            } else if by {
                match (&a.cmp, &b.cmp) {
                    (Some(x), Some(y)) if store => x.as_bytes().cmp(y.as_bytes()),
                    (Some(x), Some(y)) => cmp_cstr(x, y),
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                }
            } else if store {
                a.elem.as_bytes().cmp(b.elem.as_bytes())
            } else {
                cmp_cstr(&a.elem, &b.elem)
            };
            if desc { c.reverse() } else { c }
        });
    }

    let range: &[SortItem] = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let per_item = o.gets.len().max(1);
    let outputlen = range.len() * per_item;
    match o.store {
        None => {
            let out = &mut *ctx.out;
            out.array(outputlen);
            for it in range {
                if o.gets.is_empty() {
                    out.bulk(&it.elem);
                }
                for g in &o.gets {
                    match lookup_by_pattern(db, g, &it.elem, now) {
                        Some(v) => out.bulk(&v),
                        None => out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let mut list = VecDeque::with_capacity(outputlen);
            for it in range {
                if o.gets.is_empty() {
                    list.push_back(it.elem.clone());
                }
                for g in &o.gets {
                    let v = lookup_by_pattern(db, g, &it.elem, now);
                    list.push_back(v.unwrap_or_else(|| SmallBytes::new(b"")));
                }
            }
            let dirty = if outputlen > 0 {
                db.set(dst, Value::List(crate::store::CowArc::new(list)));
                outputlen as u64
            } else {
                db.delete(dst, now) as u64
            };
            ctx.dirty(dirty);
            ctx.out.int(outputlen as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+7"), Ok(7));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_cursor(b"18446744073709551616").is_err());
        assert!(parse_cursor(b" 1").is_err());
        assert!(parse_cursor(b"1 ").is_err());
        assert!(parse_cursor(b"abc").is_err());
        assert!(parse_cursor(b"-").is_err());
        assert_eq!(parse_cursor(b"12\x00zz"), Ok(12));
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b" 5"), Some(5.0));
        assert_eq!(sort_score(b"1e1"), Some(10.0));
        assert_eq!(sort_score(b"0x10"), Some(16.0));
        assert_eq!(sort_score(b"-0x1p4"), Some(-16.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"3\x00junk"), Some(3.0));
        assert_eq!(sort_score(b"0.000"), Some(0.0));
        assert_eq!(sort_score(b"5 "), None);
        assert_eq!(sort_score(b"   "), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"1e-320"), None);
        assert_eq!(sort_score(b"0x"), None);
        assert_eq!(sort_score(b"a"), None);
        assert_eq!(sort_score(b"+-1"), None);
    }
}
