//! The list command family: pushes and pops at both ends, index access, LINSERT / LREM /
//! LTRIM / LPOS, moves between lists (RPOPLPUSH, LMOVE, LMPOP) and their blocking forms
//! (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP).
//!
//! Lists are `VecDeque<SmallBytes>`, so pushes and pops at either end are O(1) and each
//! element costs one `SmallBytes` (no allocation at all for elements up to 22 bytes).
//!
//! Write commands first look the key up with [`Db::peek`] (no hit/miss stats, as Redis's
//! write lookups) and only take it with [`Db::get_mut`] once they know they will change it:
//! `get_mut` marks the key modified, and a WRONGTYPE error or a no-op (LREM removing nothing,
//! LINSERT without its pivot) must not invalidate WATCHes.
//!
//! Blocking commands follow the server's model: when nothing can be served they call
//! [`Ctx::block_on`] and are run again when one of their keys changes. On such a re-run a key
//! that now holds another type is skipped instead of failing: Redis 7.0 keeps the client
//! blocked in that case.

use std::collections::VecDeque;
use std::time::Duration;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::store::{Db, ListValue, SmallBytes, Value};
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpush),
    spec("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpush),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpushx),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpushx),
    spec("lpop", -2, WRITE | FAST, (1, 1, 1), lpop),
    spec("rpop", -2, WRITE | FAST, (1, 1, 1), rpop),
    spec("llen", 2, READONLY | FAST, (1, 1, 1), llen),
    spec("lrange", 4, READONLY, (1, 1, 1), lrange),
    spec("lindex", 3, READONLY, (1, 1, 1), lindex),
    spec("lset", 4, WRITE | DENYOOM, (1, 1, 1), lset),
    spec("linsert", 5, WRITE | DENYOOM, (1, 1, 1), linsert),
    spec("lrem", 4, WRITE, (1, 1, 1), lrem),
    spec("ltrim", 4, WRITE, (1, 1, 1), ltrim),
    spec("lpos", -3, READONLY, (1, 1, 1), lpos),
    spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), rpoplpush),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), lmove),
    spec("lmpop", -4, WRITE, (0, 0, 0), lmpop),
    spec("blpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), blpop),
    spec("brpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), brpop),
    spec(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        brpoplpush,
    ),
    spec(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        blmove,
    ),
    spec("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), blmpop),
];

/// One end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The head (LPUSH / LPOP side).
    Left,
    /// The tail (RPUSH / RPOP side).
    Right,
}

/// Parses `LEFT` / `RIGHT` (any case); anything else is a syntax error.
fn parse_end(a: &[u8]) -> Result<End, CmdError> {
    if eq_ic(a, "left") {
        Ok(End::Left)
    } else if eq_ic(a, "right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

#[inline]
fn pop(l: &mut ListValue, end: End) -> Option<SmallBytes> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

#[inline]
fn push(l: &mut ListValue, end: End, e: SmallBytes) {
    match end {
        End::Left => l.push_front(e),
        End::Right => l.push_back(e),
    }
}

/// The list at `key` for reading without stats or modification marks: `Ok(None)` when the
/// key is missing, WRONGTYPE when it holds something else. Stored lists are never empty.
fn peek_list<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a ListValue>, CmdError> {
    match db.peek(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// The list at `key` for reading by a read command (counts keyspace hits / misses).
fn read_list<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a ListValue>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The list at `key` for modification; marks the key modified. Call it only after
/// [`peek_list`] found a list there.
fn list_mut<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Option<&'a mut ListValue> {
    match db.get_mut(key, now) {
        Some(Value::List(l)) => Some(l),
        _ => None,
    }
}

/// Normalizes LRANGE / LTRIM bounds (negative counts from the end) to an inclusive index
/// range inside a list of `len` elements; None when the range is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    // `x + len` cannot overflow: x is negative and len is at most isize::MAX.
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// Normalizes an LINDEX / LSET index; None when out of range.
fn clamp_index(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

// ---------------------------------------------------------------------------------------------
// Pushes and pops

fn lpush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Right, true)
}

/// [LR]PUSH[X] key element...: replies with the new length. `only_existing` (the X forms)
/// does nothing on a missing key and replies 0.
fn push_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], end: End, only_existing: bool) -> CmdResult {
    let now = ctx.now_ms;
    let key = args[1];
    let elems = &args[2..];
    let db = ctx.db();
    let exists = peek_list(db, key, now)?.is_some();
    let len = if exists {
        let l = list_mut(db, key, now).expect("list checked above");
        l.reserve(elems.len());
        for e in elems {
            push(l, end, SmallBytes::new(e));
        }
        l.len()
    } else if only_existing {
        0
    } else {
        let mut l = ListValue::with_capacity(elems.len());
        for e in elems {
            push(&mut l, end, SmallBytes::new(e));
        }
        db.insert(key, Value::List(crate::store::CowArc::new(l)));
        elems.len()
    };
    if len > 0 {
        ctx.dirty(elems.len() as u64);
    }
    ctx.out.int(len as i64);
    Ok(())
}

fn lpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, args, End::Left, "lpop")
}

fn rpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, args, End::Right, "rpop")
}

/// [LR]POP key [count]. Without a count: the element or a nil bulk. With a count: an array
/// of up to `count` elements, a nil array for a missing key, an empty array for count 0.
fn pop_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], end: End, name: &str) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Arity(name.to_string()));
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return Err(CmdError::err("value is out of range, must be positive")),
        },
    };
    let now = ctx.now_ms;
    let key = args[1];
    let (db, out) = ctx.db_out();
    if peek_list(db, key, now)?.is_none() {
        match count {
            None => out.null(),
            Some(_) => out.null_array(),
        }
        return Ok(());
    }
    if count == Some(0) {
        out.array(0);
        return Ok(());
    }
    let l = list_mut(db, key, now).expect("list checked above");
    let popped = match count {
        None => {
            let e = pop(l, end).expect("stored lists are not empty");
            out.bulk(&e);
            1
        }
        Some(c) => {
            let n = (c.min(l.len() as u64)) as usize;
            out.array(n);
            for _ in 0..n {
                let e = pop(l, end).expect("n <= len");
                out.bulk(&e);
            }
            n
        }
    };
    if l.is_empty() {
        db.remove(key);
    }
    ctx.dirty(popped as u64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads and in-place edits

fn llen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let len = read_list(db, args[1], now)?.map_or(0, |l| l.len());
    out.int(len as i64);
    Ok(())
}

fn lrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let start = arg_i64(args[2])?;
    let end = arg_i64(args[3])?;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(l) = read_list(db, args[1], now)? else {
        out.array(0);
        return Ok(());
    };
    match clamp_range(start, end, l.len()) {
        None => out.array(0),
        Some((s, e)) => {
            out.array(e - s + 1);
            for x in l.range(s..=e) {
                out.bulk(x);
            }
        }
    }
    Ok(())
}

fn lindex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // Redis looks the key up before parsing the index: a missing key replies nil even for
    // a malformed index.
    let Some(l) = read_list(db, args[1], now)? else {
        out.null();
        return Ok(());
    };
    let index = arg_i64(args[2])?;
    match clamp_index(index, l.len()) {
        Some(i) => out.bulk(&l[i]),
        None => out.null(),
    }
    Ok(())
}

fn lset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let key = args[1];
    let db = ctx.db();
    let len = peek_list(db, key, now)?.ok_or(CmdError::NoSuchKey)?.len();
    let index = arg_i64(args[2])?;
    let i = clamp_index(index, len).ok_or(CmdError::OutOfRange)?;
    let l = list_mut(db, key, now).expect("list checked above");
    l[i] = SmallBytes::new(args[3]);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot, 0 for a
/// missing key.
fn linsert(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let after = if eq_ic(args[2], "after") {
        true
    } else if eq_ic(args[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let now = ctx.now_ms;
    let key = args[1];
    let db = ctx.db();
    let Some(l) = peek_list(db, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let Some(pos) = l.iter().position(|e| &**e == args[3]) else {
        ctx.out.int(-1);
        return Ok(());
    };
    let l = list_mut(db, key, now).expect("list checked above");
    l.insert(pos + after as usize, SmallBytes::new(args[4]));
    let len = l.len();
    ctx.dirty(1);
    ctx.out.int(len as i64);
    Ok(())
}

/// LREM key count element: removes the first `count` matches (from the tail when negative,
/// all when 0) and replies how many went.
fn lrem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let count = arg_i64(args[2])?;
    let now = ctx.now_ms;
    let key = args[1];
    let elem = args[3];
    let db = ctx.db();
    let Some(l) = peek_list(db, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    // Count matches first so that nothing is marked modified when none is removed.
    let matches = l.iter().filter(|e| &***e == elem).count();
    let limit = match count {
        0 => matches,
        c => (c.unsigned_abs().min(matches as u64)) as usize,
    };
    if limit == 0 {
        ctx.out.int(0);
        return Ok(());
    }
    // Removing the last `limit` matches = keeping the first `matches - limit` ones.
    let skip = if count < 0 { matches - limit } else { 0 };
    let l = list_mut(db, key, now).expect("list checked above");
    let mut seen = 0;
    l.retain(|e| {
        if &**e != elem {
            return true;
        }
        seen += 1;
        seen <= skip || seen > skip + limit
    });
    if l.is_empty() {
        db.remove(key);
    }
    ctx.dirty(limit as u64);
    ctx.out.int(limit as i64);
    Ok(())
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let start = arg_i64(args[2])?;
    let end = arg_i64(args[3])?;
    let now = ctx.now_ms;
    let key = args[1];
    let db = ctx.db();
    if peek_list(db, key, now)?.is_some() {
        let l = list_mut(db, key, now).expect("list checked above");
        let before = l.len();
        match clamp_range(start, end, l.len()) {
            None => l.clear(),
            Some((s, e)) => {
                l.truncate(e + 1);
                l.drain(..s);
            }
        }
        let removed = before - l.len();
        if l.is_empty() {
            db.remove(key);
        }
        ctx.dirty(removed as u64);
    }
    ctx.out.ok();
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
fn lpos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        let Some(&val) = args.get(i + 1) else {
            return Err(CmdError::Syntax);
        };
        let opt = args[i];
        if eq_ic(opt, "rank") {
            rank = arg_i64(val)?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq_ic(opt, "count") {
            match parse_i64(val) {
                Some(n) if n >= 0 => count = Some(n),
                _ => return Err(CmdError::err("COUNT can't be negative")),
            }
        } else if eq_ic(opt, "maxlen") {
            match parse_i64(val) {
                Some(n) if n >= 0 => maxlen = n,
                _ => return Err(CmdError::err("MAXLEN can't be negative")),
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(l) = read_list(db, args[1], now)? else {
        match count {
            Some(_) => out.array(0),
            None => out.null(),
        }
        return Ok(());
    };
    let elem = args[2];
    let len = l.len();
    // A negative rank searches from the tail. As in Redis, the rank is negated with
    // wrapping arithmetic, so i64::MIN stays "negative" and every match qualifies.
    let from_tail = rank < 0;
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let scan_len = if maxlen == 0 {
        len
    } else {
        len.min(maxlen as usize)
    };
    let positions = (0..scan_len).map(|i| if from_tail { len - 1 - i } else { i });
    let mut matches: i64 = 0;
    let mut found: Vec<i64> = Vec::new();
    for pos in positions {
        if &*l[pos] != elem {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        match count {
            None => {
                out.int(pos as i64);
                return Ok(());
            }
            Some(c) => {
                found.push(pos as i64);
                if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c {
                    break;
                }
            }
        }
    }
    match count {
        None => out.null(),
        Some(_) => {
            out.array(found.len());
            for p in found {
                out.int(p);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Moves between lists

/// Pops one element from `src` at `from` and pushes it onto `dst` at `to`, replying with it
/// as a bulk string. Returns false (writing nothing) when `src` is missing, or holds another
/// type and `skip_wrong_src` is set (a blocked client's re-run).
fn move_one(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    skip_wrong_src: bool,
) -> Result<bool, CmdError> {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match peek_list(db, src, now) {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(false),
        Err(_) if skip_wrong_src => return Ok(false),
        Err(e) => return Err(e),
    }
    peek_list(db, dst, now)?;
    let l = list_mut(db, src, now).expect("list checked above");
    let e = pop(l, from).expect("stored lists are not empty");
    out.bulk(&e);
    if src == dst {
        push(l, to, e);
    } else {
        if l.is_empty() {
            db.remove(src);
        }
        match list_mut(db, dst, now) {
            Some(d) => push(d, to, e),
            None => db.insert(
                dst,
                Value::List(crate::store::CowArc::new(VecDeque::from([e]))),
            ),
        }
    }
    ctx.dirty(2);
    Ok(true)
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if !move_one(ctx, args[1], args[2], End::Right, End::Left, false)? {
        ctx.out.null();
    }
    Ok(())
}

fn lmove(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let from = parse_end(args[3])?;
    let to = parse_end(args[4])?;
    if !move_one(ctx, args[1], args[2], from, to, false)? {
        ctx.out.null();
    }
    Ok(())
}

/// Parsed `numkeys key... LEFT|RIGHT [COUNT count]` of LMPOP / BLMPOP, starting at
/// `args[idx]`.
fn parse_mpop<'a, 'b>(
    args: &'a [&'b [u8]],
    idx: usize,
) -> Result<(&'a [&'b [u8]], End, usize), CmdError> {
    let numkeys = match parse_i64(args[idx]) {
        Some(n) if n > 0 => n,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    // The keys and the direction must all be present.
    if numkeys > (args.len() - idx - 2) as i64 {
        return Err(CmdError::Syntax);
    }
    let numkeys = numkeys as usize;
    let keys = &args[idx + 1..idx + 1 + numkeys];
    let end = parse_end(args[idx + 1 + numkeys])?;
    let mut count = None;
    let mut rest = &args[idx + 2 + numkeys..];
    while let [opt, tail @ ..] = rest {
        match tail {
            [val, more @ ..] if count.is_none() && eq_ic(opt, "count") => {
                match parse_i64(val) {
                    Some(n) if n > 0 => count = Some(n as usize),
                    _ => return Err(CmdError::err("count should be greater than 0")),
                }
                rest = more;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok((keys, end, count.unwrap_or(1)))
}

/// Pops up to `count` elements from the first non-empty list among `keys`, replying
/// `[key, [elements]]`. Returns false (writing nothing) when every key is missing (or, with
/// `skip_wrong` set, holds another type).
fn mpop_first(
    ctx: &mut Ctx<'_>,
    keys: &[&[u8]],
    end: End,
    count: usize,
    skip_wrong: bool,
) -> Result<bool, CmdError> {
    let now = ctx.now_ms;
    let Some(key) = first_list(ctx.db(), keys, now, skip_wrong)? else {
        return Ok(false);
    };
    let (db, out) = ctx.db_out();
    let l = list_mut(db, key, now).expect("list checked above");
    let n = count.min(l.len());
    out.array(2);
    out.bulk(key);
    out.array(n);
    for _ in 0..n {
        let e = pop(l, end).expect("n <= len");
        out.bulk(&e);
    }
    if l.is_empty() {
        db.remove(key);
    }
    ctx.dirty(n as u64);
    Ok(true)
}

/// The first of `keys` holding a list. A key of another type is an error, or is skipped
/// when `skip_wrong` is set.
fn first_list<'k>(
    db: &mut Db,
    keys: &[&'k [u8]],
    now: u64,
    skip_wrong: bool,
) -> Result<Option<&'k [u8]>, CmdError> {
    for &key in keys {
        match peek_list(db, key, now) {
            Ok(Some(_)) => return Ok(Some(key)),
            Ok(None) => {}
            Err(_) if skip_wrong => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn lmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (keys, end, count) = parse_mpop(args, 1)?;
    if !mpop_first(ctx, keys, end, count, false)? {
        ctx.out.null_array();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Blocking commands

/// 2^63: milliseconds from here on do not fit an i64.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Timeouts beyond this many milliseconds (about 100 years) are treated as "forever".
const FOREVER_MS: f64 = 3.2e12;

/// Parses a blocking timeout in seconds as Redis 7.0 does: a long double, converted to
/// milliseconds rounding up. 0 blocks forever (None). A value whose milliseconds do not fit
/// a 64-bit integer is reported as negative, as Redis's C conversion makes it.
fn parse_timeout(a: &[u8]) -> Result<Option<Duration>, CmdError> {
    let secs = parse_long_double(a)
        .ok_or_else(|| CmdError::err("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if !(0.0..TWO_POW_63).contains(&ms) {
        return Err(CmdError::err("timeout is negative"));
    }
    if ms == 0.0 || ms > FOREVER_MS {
        Ok(None)
    } else {
        Ok(Some(Duration::from_millis(ms as u64)))
    }
}

/// Parses a number with the rules of C's `strtold` as Redis uses it: the whole argument must
/// be the number, with no leading space; decimal or hexadecimal (`0x1.8p3`) notation, `inf`,
/// `infinity`; NaN and values outside the long double range (about 1e±4932) are refused.
///
/// The result is an f64, so values beyond the f64 range keep their meaning for timeouts:
/// an overflow becomes infinite and a non-zero value too small for f64 becomes the smallest
/// positive f64 (with its sign).
fn parse_long_double(a: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(a).ok()?;
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(sign * f64::INFINITY);
    }
    if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        return parse_hex_float(&body[2..]).map(|v| sign * v);
    }
    // Decimal: digits [. digits] [e [sign] digits], with at least one mantissa digit.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !digits_ok(int_part) || !digits_ok(frac_part) {
        return None;
    }
    let exp: i64 = match exp {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits_ok(digits) {
                return None;
            }
            // Saturate: only the order of magnitude matters past this point.
            let mag = digits
                .bytes()
                .fold(0i64, |acc, b| (acc * 10 + (b - b'0') as i64).min(1_000_000));
            if e.starts_with('-') { -mag } else { mag }
        }
    };
    let all_digits = int_part.bytes().chain(frac_part.bytes());
    let Some(first_nonzero) = all_digits.clone().position(|b| b != b'0') else {
        return Some(sign * 0.0);
    };
    // Decimal exponent of the leading digit: the value is d.ddd × 10^magnitude.
    let magnitude = int_part.len() as i64 - 1 - first_nonzero as i64 + exp;
    if !(-4951..=4932).contains(&magnitude) {
        return None; // ERANGE for a long double
    }
    let v: f64 = body.parse().ok()?;
    if v == 0.0 {
        return Some(sign * f64::MIN_POSITIVE);
    }
    Some(sign * v)
}

/// Parses the part of a hexadecimal float after `0x`: hex digits, an optional fraction and
/// an optional binary exponent `p[sign]digits`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = match s.find(['p', 'P']) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.len() + frac_part.len() == 0 {
        return None;
    }
    let mut v = 0.0f64;
    for c in int_part.chars().chain(frac_part.chars()) {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut bin_exp: i64 = -4 * frac_part.len() as i64;
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mag = digits
            .bytes()
            .fold(0i64, |acc, b| (acc * 10 + (b - b'0') as i64).min(1_000_000));
        bin_exp += if e.starts_with('-') { -mag } else { mag };
    }
    Some(v * 2f64.powi(bin_exp.clamp(-20_000, 20_000) as i32))
}

/// True when this run is a blocked client's re-run (it blocked before in this command).
fn is_retry(ctx: &Ctx<'_>) -> bool {
    ctx.client.block_deadline.is_some()
}

fn blpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, args, End::Right)
}

/// B[LR]POP key... timeout: `[key, element]` from the first non-empty list, or blocks.
fn bpop_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], end: End) -> CmdResult {
    let timeout = parse_timeout(args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let retry = is_retry(ctx);
    let now = ctx.now_ms;
    if let Some(key) = first_list(ctx.db(), keys, now, retry)? {
        let (db, out) = ctx.db_out();
        let l = list_mut(db, key, now).expect("list checked above");
        let e = pop(l, end).expect("stored lists are not empty");
        if l.is_empty() {
            db.remove(key);
        }
        out.array(2);
        out.bulk(key);
        out.bulk(&e);
        ctx.dirty(1);
    } else if ctx.block_timed_out() {
        ctx.out.null_array();
    } else {
        ctx.block_on(keys, timeout);
    }
    Ok(())
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let timeout = parse_timeout(args[3])?;
    bmove_generic(ctx, args[1], args[2], End::Right, End::Left, timeout)
}

fn blmove(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let from = parse_end(args[3])?;
    let to = parse_end(args[4])?;
    let timeout = parse_timeout(args[5])?;
    bmove_generic(ctx, args[1], args[2], from, to, timeout)
}

fn bmove_generic(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    timeout: Option<Duration>,
) -> CmdResult {
    let retry = is_retry(ctx);
    if move_one(ctx, src, dst, from, to, retry)? {
        return Ok(());
    }
    if ctx.client.in_exec {
        // Inside MULTI Redis answers as the non-blocking form would: a nil bulk.
        ctx.out.null();
    } else if ctx.block_timed_out() {
        ctx.out.null_array();
    } else {
        ctx.block_on(&[src], timeout);
    }
    Ok(())
}

fn blmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    // Redis parses everything after the timeout first.
    let (keys, end, count) = parse_mpop(args, 2)?;
    let timeout = parse_timeout(args[1])?;
    let retry = is_retry(ctx);
    if mpop_first(ctx, keys, end, count, retry)? {
        return Ok(());
    }
    if ctx.block_timed_out() {
        ctx.out.null_array();
    } else {
        ctx.block_on(keys, timeout);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(clamp_range(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(clamp_range(3, 1, 5), None);
        assert_eq!(clamp_range(5, 10, 5), None);
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(clamp_range(0, -1, 0), None);
        assert_eq!(clamp_index(-1, 3), Some(2));
        assert_eq!(clamp_index(-4, 3), None);
        assert_eq!(clamp_index(3, 3), None);
        assert_eq!(clamp_index(i64::MIN, 3), None);
    }

    #[test]
    fn timeouts() {
        let ms = |s: &str| parse_timeout(s.as_bytes()).map(|d| d.map(|d| d.as_millis()));
        assert_eq!(ms("0"), Ok(None));
        assert_eq!(ms("1"), Ok(Some(1000)));
        assert_eq!(ms("0.001"), Ok(Some(1)));
        assert_eq!(ms("0.0011"), Ok(Some(2)));
        assert_eq!(ms("1e-400"), Ok(Some(1)));
        assert_eq!(ms("-0.0001"), Ok(None));
        assert_eq!(ms(".5"), Ok(Some(500)));
        assert_eq!(ms("5."), Ok(Some(5000)));
        assert_eq!(ms("+1"), Ok(Some(1000)));
        assert_eq!(ms("0x10"), Ok(Some(16000)));
        assert_eq!(ms("0.0e-5000"), Ok(None));
        let not_float = Err(CmdError::err("timeout is not a float or out of range"));
        let negative = Err(CmdError::err("timeout is negative"));
        for s in [
            "", "x", " 1", "1 ", "nan", "-nan", "1e", "1e5000", "1e-5000", "0x",
        ] {
            assert_eq!(ms(s), not_float, "{s:?}");
        }
        for s in [
            "-1", "-0.0015", "inf", "-inf", "infinity", "1e300", "1e400", "1e4931",
        ] {
            assert_eq!(ms(s), negative, "{s:?}");
        }
    }
}
