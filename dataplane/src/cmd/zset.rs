//! The sorted set command family: ZADD ZINCRBY ZCARD ZCOUNT ZLEXCOUNT ZSCORE ZMSCORE ZRANK
//! ZREVRANK ZREM ZREMRANGEBY{RANK,SCORE,LEX} ZRANGE ZRANGESTORE ZREVRANGE Z[REV]RANGEBY{SCORE,LEX}
//! ZUNION ZINTER ZDIFF (and their STORE forms) ZINTERCARD ZPOPMIN ZPOPMAX BZPOPMIN BZPOPMAX ZMPOP
//! BZMPOP ZRANDMEMBER ZSCAN.
//!
//! Number parsing follows C's `strtod` as Redis uses it (hex floats, `inf`, leading spaces in
//! ranges...), see [`strtod`]. Encoding: a zset is flagged `skiplist` (one-way) as Redis would
//! convert it from listpack; while it is a listpack, a stored `-0` score becomes `0`, as
//! Redis's listpack encoding does.

use std::cmp::Ordering;
use std::time::Duration;

use codis_model::slot_of;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::resp::reply::Out;
use crate::store::value::Map;
use crate::store::zset::cmp_entry;
use crate::store::{Db, SetValue, SmallBytes, Value, ZSet, evict};
use crate::util::glob::glob_match;
use crate::util::number::fmt_double;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), zadd),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), zincrby),
    spec("zcard", 2, READONLY | FAST, (1, 1, 1), zcard),
    spec("zcount", 4, READONLY | FAST, (1, 1, 1), zcount),
    spec("zlexcount", 4, READONLY | FAST, (1, 1, 1), zlexcount),
    spec("zscore", 3, READONLY | FAST, (1, 1, 1), zscore),
    spec("zmscore", -3, READONLY | FAST, (1, 1, 1), zmscore),
    spec("zrank", 3, READONLY | FAST, (1, 1, 1), zrank),
    spec("zrevrank", 3, READONLY | FAST, (1, 1, 1), zrevrank),
    spec("zrem", -3, WRITE | FAST, (1, 1, 1), zrem),
    spec("zremrangebyrank", 4, WRITE, (1, 1, 1), zremrangebyrank),
    spec("zremrangebyscore", 4, WRITE, (1, 1, 1), zremrangebyscore),
    spec("zremrangebylex", 4, WRITE, (1, 1, 1), zremrangebylex),
    spec("zrange", -4, READONLY, (1, 1, 1), zrange),
    spec("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), zrangestore),
    spec("zrevrange", -4, READONLY, (1, 1, 1), zrevrange),
    spec("zrangebyscore", -4, READONLY, (1, 1, 1), zrangebyscore),
    spec(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        zrevrangebyscore,
    ),
    spec("zrangebylex", -4, READONLY, (1, 1, 1), zrangebylex),
    spec("zrevrangebylex", -4, READONLY, (1, 1, 1), zrevrangebylex),
    spec("zunion", -3, READONLY, (0, 0, 0), zunion),
    spec("zinter", -3, READONLY, (0, 0, 0), zinter),
    spec("zdiff", -3, READONLY, (0, 0, 0), zdiff),
    spec("zunionstore", -4, WRITE | DENYOOM, (1, 1, 1), zunionstore),
    spec("zinterstore", -4, WRITE | DENYOOM, (1, 1, 1), zinterstore),
    spec("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), zdiffstore),
    spec("zintercard", -3, READONLY, (0, 0, 0), zintercard),
    spec("zpopmin", -2, WRITE | FAST, (1, 1, 1), zpopmin),
    spec("zpopmax", -2, WRITE | FAST, (1, 1, 1), zpopmax),
    spec(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        bzpopmin,
    ),
    spec(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        bzpopmax,
    ),
    spec("zmpop", -4, WRITE, (0, 0, 0), zmpop),
    spec("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), bzmpop),
    spec("zrandmember", -2, READONLY | RANDOM, (1, 1, 1), zrandmember),
    spec("zscan", -3, READONLY | RANDOM, (1, 1, 1), zscan),
];

// ---------------------------------------------------------------------------------------------
// Number parsing (C strtod / strtoul semantics, as Redis relies on them)
// ---------------------------------------------------------------------------------------------

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `strtod` on the start of `s`: returns the value, how many bytes were consumed (0 when
/// nothing could be converted) and whether the result over- or underflowed (`ERANGE` with an
/// infinite or zero result). Accepts leading white space, a sign, decimal and hexadecimal
/// (`0x1.8p3`) numbers, `inf`, `infinity` and `nan`.
pub fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let start = i;
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"inf") {
        let n = if rest.len() >= 8 && rest[..8].eq_ignore_ascii_case(b"infinity") {
            8
        } else {
            3
        };
        return (sign * f64::INFINITY, i + n, false);
    }
    if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"nan") {
        let mut n = i + 3;
        // Optional "(n-char-sequence)".
        if s.get(n) == Some(&b'(') {
            let mut k = n + 1;
            while k < s.len() && (s[k].is_ascii_alphanumeric() || s[k] == b'_') {
                k += 1;
            }
            if s.get(k) == Some(&b')') {
                n = k + 1;
            }
        }
        return (f64::NAN, n, false);
    }
    let hex_digit = |b: Option<&u8>| b.is_some_and(|c| c.is_ascii_hexdigit());
    if rest.len() >= 2
        && rest[0] == b'0'
        && (rest[1] | 0x20) == b'x'
        && (hex_digit(rest.get(2)) || (rest.get(2) == Some(&b'.') && hex_digit(rest.get(3))))
    {
        let (v, n, erange) = parse_hex(&rest[2..]);
        return (sign * v, i + 2 + n, erange);
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut j = i;
    let mut digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        j += 1;
        digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            nonzero |= s[j] != b'0';
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (v, j, erange)
}

/// The hexadecimal part of `strtod` after `0x`: (value, bytes consumed, erange).
fn parse_hex(s: &[u8]) -> (f64, usize, bool) {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut nonzero = false;
    let mut j = 0;
    let digit = |c: u8| (c as char).to_digit(16).map(u64::from);
    while let Some(d) = s.get(j).and_then(|&c| digit(c)) {
        nonzero |= d != 0;
        if mant < (1 << 56) {
            mant = mant * 16 + d;
        } else {
            exp += 4;
        }
        j += 1;
    }
    if s.get(j) == Some(&b'.') {
        j += 1;
        while let Some(d) = s.get(j).and_then(|&c| digit(c)) {
            nonzero |= d != 0;
            if mant < (1 << 56) {
                mant = mant * 16 + d;
                exp -= 4;
            }
            j += 1;
        }
    }
    if s.get(j).is_some_and(|&c| (c | 0x20) == b'p') {
        let mut k = j + 1;
        let eneg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        if s.get(k).is_some_and(|c| c.is_ascii_digit()) {
            let mut e: i64 = 0;
            while let Some(c) = s.get(k).filter(|c| c.is_ascii_digit()) {
                e = (e * 10 + (c - b'0') as i64).min(100_000);
                k += 1;
            }
            exp += if eneg { -e } else { e };
            j = k;
        }
    }
    let mut v = mant as f64;
    let mut e = exp.clamp(-5000, 5000) as i32;
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v *= 2f64.powi(e);
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (v, j, erange)
}

/// A score, increment or weight argument (Redis's `getDoubleFromObject`): the whole argument
/// must be a number, no leading space, no overflow, no NaN.
pub(super) fn parse_score(a: &[u8]) -> Option<f64> {
    if a.is_empty() || is_space(a[0]) {
        return None;
    }
    let (v, n, erange) = strtod(a);
    if n != a.len() || erange || v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// One end of a score range: `(` makes it exclusive. As in Redis, the text is read as a C
/// string (up to a NUL byte) and leading spaces and overflow are accepted.
fn parse_bound(a: &[u8]) -> Option<(f64, bool)> {
    let (ex, body) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let body = &body[..body.iter().position(|&b| b == 0).unwrap_or(body.len())];
    let (v, n, _) = strtod(body);
    if n != body.len() || v.is_nan() {
        None
    } else {
        Some((v, ex))
    }
}

/// A blocking command's timeout in seconds (Redis's `getTimeoutFromObjectOrReply`).
/// `None` means block forever.
fn parse_timeout(a: &[u8], now_ms: u64) -> Result<Option<Duration>, CmdError> {
    let bad = || CmdError::err("timeout is not a float or out of range");
    if a.is_empty() || is_space(a[0]) {
        return Err(bad());
    }
    let (v, n, _) = strtod(a);
    if n != a.len() || v.is_nan() {
        return Err(bad());
    }
    let ms = v * 1000.0;
    // C's conversion of an out-of-range value to long long gives LLONG_MIN on x86-64.
    let tval =
        if ms.is_finite() && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&ms) {
            ms as i64
        } else {
            i64::MIN
        };
    if tval < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if tval > 0 && tval > i64::MAX - now_ms as i64 {
        return Err(CmdError::err("timeout is out of range"));
    }
    Ok((tval > 0).then(|| Duration::from_millis(tval as u64)))
}

// ---------------------------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------------------------

/// A score range (`ZRANGEBYSCORE` and friends).
#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        match (parse_bound(min), parse_bound(max)) {
            (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
                min,
                minex,
                max,
                maxex,
            }),
            _ => Err(CmdError::err("min or max is not a float")),
        }
    }

    /// The ranks `lo..hi` of the members in the range.
    fn span(&self, z: &ZSet) -> (usize, usize) {
        if self.min > self.max || (self.min == self.max && (self.minex || self.maxex)) {
            return (0, 0);
        }
        let (min, max) = (self.min, self.max);
        let lo = if self.minex {
            z.partition(|s, _| s <= min)
        } else {
            z.partition(|s, _| s < min)
        };
        let hi = if self.maxex {
            z.partition(|s, _| s < max)
        } else {
            z.partition(|s, _| s <= max)
        };
        (lo, hi.max(lo))
    }
}

/// One end of a lex range.
#[derive(Debug, Clone, Copy)]
enum Lex<'a> {
    /// `-`
    Min,
    /// `+`
    Max,
    /// `[x`
    In(&'a [u8]),
    /// `(x`
    Ex(&'a [u8]),
}

impl<'a> Lex<'a> {
    fn parse(a: &'a [u8]) -> Option<Self> {
        let alone = a.len() == 1 || a.get(1) == Some(&0); // compared as a C string
        match a.first() {
            Some(b'+') if alone => Some(Lex::Max),
            Some(b'-') if alone => Some(Lex::Min),
            Some(b'(') => Some(Lex::Ex(&a[1..])),
            Some(b'[') => Some(Lex::In(&a[1..])),
            _ => None,
        }
    }

    /// Redis's `sdscmplex`: `-` below everything, `+` above.
    fn cmp(self, other: Lex<'_>) -> Ordering {
        match (self, other) {
            (Lex::Min, Lex::Min) | (Lex::Max, Lex::Max) => Ordering::Equal,
            (Lex::Min, _) | (_, Lex::Max) => Ordering::Less,
            (Lex::Max, _) | (_, Lex::Min) => Ordering::Greater,
            (Lex::In(a) | Lex::Ex(a), Lex::In(b) | Lex::Ex(b)) => a.cmp(b),
        }
    }

    fn exclusive(self) -> bool {
        matches!(self, Lex::Ex(_))
    }
}

/// A lex range (`ZRANGEBYLEX` and friends).
#[derive(Debug, Clone, Copy)]
struct LexRange<'a> {
    min: Lex<'a>,
    max: Lex<'a>,
}

impl<'a> LexRange<'a> {
    fn parse(min: &'a [u8], max: &'a [u8]) -> Result<Self, CmdError> {
        match (Lex::parse(min), Lex::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(CmdError::err("min or max not valid string range item")),
        }
    }

    fn gte_min(&self, m: &[u8]) -> bool {
        match self.min {
            Lex::Min => true,
            Lex::Max => false,
            Lex::In(x) => m >= x,
            Lex::Ex(x) => m > x,
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        match self.max {
            Lex::Min => false,
            Lex::Max => true,
            Lex::In(x) => m <= x,
            Lex::Ex(x) => m < x,
        }
    }

    /// True when no member can be in the range, judging from the bounds and the set's ends
    /// (Redis's `zslIsInLexRange` / `zzlIsInLexRange`).
    fn surely_empty(&self, z: &ZSet) -> bool {
        let c = self.min.cmp(self.max);
        if c == Ordering::Greater
            || (c == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
        {
            return true;
        }
        match (z.get_by_rank(0), z.get_by_rank(z.len().wrapping_sub(1))) {
            (Some((first, _)), Some((last, _))) => !self.gte_min(last) || !self.lte_max(first),
            _ => true,
        }
    }

    /// The number of members in the range (ZLEXCOUNT).
    fn count(&self, z: &ZSet) -> usize {
        if !z.skiplist {
            let (lo, hi) = self.walk(z, false, 0, -1, false);
            return hi - lo;
        }
        if self.surely_empty(z) {
            return 0;
        }
        let lo = z.partition_scan(|_, m| !self.gte_min(m));
        let hi = z.partition_scan(|_, m| self.lte_max(m));
        hi.saturating_sub(lo)
    }

    /// The ranks `lo..hi` that Z[REV]RANGEBYLEX with `LIMIT offset limit` returns, walking
    /// forward or (`rev`) backward. `deleting` is ZREMRANGEBYLEX, whose skiplist variant skips
    /// the quick emptiness test (it matters only for members with different scores).
    ///
    /// Like Redis: find the first member in range from the walking end, skip `offset` members
    /// without checking them, then take members while they are within the far bound. Lex
    /// ranges assume equal scores; when they are not, Redis's answer depends on the encoding:
    /// a listpack is scanned linearly (done here exactly), a skiplist is searched as if sorted
    /// (done here like a skiplist search, see `ZSet::partition_scan`).
    fn walk(&self, z: &ZSet, rev: bool, offset: i64, limit: i64, deleting: bool) -> (usize, usize) {
        if offset < 0 || (!(deleting && z.skiplist) && self.surely_empty(z)) {
            return (0, 0);
        }
        let len = z.len();
        let offset = offset.min(len as i64) as usize;
        let limit = if limit < 0 {
            usize::MAX
        } else {
            limit as usize
        };
        if !rev {
            let first = if z.skiplist {
                z.partition_scan(|_, m| !self.gte_min(m))
            } else {
                z.iter().position(|(m, _)| self.gte_min(m)).unwrap_or(len)
            };
            match z.get_by_rank(first) {
                Some((m, _)) if self.lte_max(m) => {}
                _ => return (0, 0),
            }
            let s = (first + offset).min(len);
            let n = z
                .range(s, len)
                .take_while(|(m, _)| self.lte_max(m))
                .take(limit)
                .count();
            (s, s + n)
        } else {
            let end = if z.skiplist {
                z.partition_scan(|_, m| self.lte_max(m))
            } else {
                len - z
                    .iter()
                    .rev()
                    .position(|(m, _)| self.lte_max(m))
                    .unwrap_or(len)
            };
            // `end` is one past the last member within the max bound.
            match end.checked_sub(1).and_then(|i| z.get_by_rank(i)) {
                Some((m, _)) if self.gte_min(m) => {}
                _ => return (0, 0),
            }
            let Some(e) = end.checked_sub(offset) else {
                return (0, 0);
            };
            let n = z
                .range(0, e)
                .rev()
                .take_while(|(m, _)| self.gte_min(m))
                .take(limit)
                .count();
            (e - n, e)
        }
    }
}

/// Rank range `start..=end` (negative from the end) as ranks `lo..hi`; `rev` counts from the
/// highest score.
fn rank_span(len: usize, start: i64, end: i64, rev: bool) -> (usize, usize) {
    let llen = len as i64;
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s += llen;
    }
    if e < 0 {
        e += llen;
    }
    if s < 0 {
        s = 0;
    }
    if s > e || s >= llen {
        return (0, 0);
    }
    if e >= llen {
        e = llen - 1;
    }
    if rev {
        ((llen - 1 - e) as usize, (llen - s) as usize)
    } else {
        (s as usize, e as usize + 1)
    }
}

/// Applies `LIMIT offset count` to ranks `lo..hi` walked forward or backward. A negative
/// offset selects nothing; a negative count means no limit.
fn apply_limit(lo: usize, hi: usize, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    if offset < 0 {
        return (lo, lo);
    }
    let n = hi - lo;
    let off = (offset as u64).min(n as u64) as usize;
    let avail = n - off;
    let take = if limit < 0 {
        avail
    } else {
        (limit as u64).min(avail as u64) as usize
    };
    if rev {
        (hi - off - take, hi - off)
    } else {
        (lo + off, lo + off + take)
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups and replies
// ---------------------------------------------------------------------------------------------

/// Looks a key up for reading (counts hits and misses).
pub(super) fn read_zset<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a ZSet>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Looks a key up for writing, creating an empty zset when `create` is set and it is absent.
/// Unlike `Db::get_mut` it does not mark the key modified: callers call `Db::touched` only
/// when they really change it (as Redis signals a modification only then).
fn write_zset<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
    create: bool,
) -> Result<Option<&'a mut ZSet>, CmdError> {
    if db.peek(key, now).is_none() {
        if !create {
            return Ok(None);
        }
        db.insert(key, Value::new_zset());
    }
    let (lfu, clock) = (db.lfu, db.lru_clock);
    let e = db.entry_mut(key).expect("key was just found");
    e.lru = if lfu { evict::lfu_touch(e.lru) } else { clock };
    match &mut e.value {
        Value::ZSet(z) => Ok(Some(z)),
        _ => Err(CmdError::WrongType),
    }
}

/// After a write: signals the change and deletes the key if the zset became empty.
fn after_write(ctx: &mut Ctx<'_>, key: &[u8], changes: usize, now_empty: bool) {
    if changes == 0 {
        return;
    }
    let db = ctx.db();
    if now_empty {
        db.remove(key);
    } else {
        db.touched(key);
    }
    ctx.dirty(changes as u64);
}

/// Writes `(member, score)` entries: a flat array in RESP2 (`WITHSCORES` doubles it), an
/// array of `[member, score]` pairs in RESP3.
fn reply_entries<'a, I>(out: &mut Out, items: I, withscores: bool)
where
    I: ExactSizeIterator<Item = (&'a [u8], f64)>,
{
    let n = items.len();
    if withscores && !out.resp3 {
        out.array(n * 2);
    } else {
        out.array(n);
    }
    for (m, s) in items {
        if withscores && out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    }
}

/// True when a zset of `len` members whose longest member is `maxlen` bytes is a skiplist.
fn needs_skiplist(ctx: &Ctx<'_>, len: usize, maxlen: usize) -> bool {
    let cfg = &ctx.store.config;
    len > cfg.zset_max_listpack_entries || maxlen > cfg.zset_max_listpack_value
}

/// Stores a computed zset at `dst` (replacing any value and TTL) and replies with its size;
/// an empty result deletes `dst` instead. `skiplist` is the encoding when the caller worked it
/// out (and already turned `-0` into `0` where a listpack would); otherwise it follows from the
/// final size, as Redis converts a computed set at the end.
pub(super) fn store_result(
    ctx: &mut Ctx<'_>,
    dst: &[u8],
    mut pairs: Vec<(SmallBytes, f64)>,
    skiplist: Option<bool>,
) -> CmdResult {
    let n = pairs.len();
    if n == 0 {
        let now = ctx.now_ms;
        if ctx.db().delete(dst, now) {
            ctx.dirty(1);
        }
        ctx.out.int(0);
        return Ok(());
    }
    let skiplist = skiplist.unwrap_or_else(|| {
        let maxlen = pairs.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let skiplist = needs_skiplist(ctx, n, maxlen);
        if !skiplist {
            for p in &mut pairs {
                if p.1 == 0.0 {
                    p.1 = 0.0; // a listpack stores -0 as 0
                }
            }
        }
        skiplist
    });
    let mut z = ZSet::from_pairs(pairs);
    z.skiplist = skiplist;
    ctx.db().set(dst, Value::ZSet(crate::store::CowArc::new(z)));
    ctx.dirty(1);
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZADD ZINCRBY
// ---------------------------------------------------------------------------------------------

/// ZADD's flags.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AddFlags {
    pub(super) nx: bool,
    pub(super) xx: bool,
    pub(super) gt: bool,
    pub(super) lt: bool,
    pub(super) ch: bool,
    pub(super) incr: bool,
}

fn zadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if eq_ic(a, "nx") {
            f.nx = true;
        } else if eq_ic(a, "xx") {
            f.xx = true;
        } else if eq_ic(a, "gt") {
            f.gt = true;
        } else if eq_ic(a, "lt") {
            f.lt = true;
        } else if eq_ic(a, "ch") {
            f.ch = true;
        } else if eq_ic(a, "incr") {
            f.incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = args.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if f.nx && f.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if [f.nx, f.gt, f.lt].iter().filter(|&&x| x).count() > 1 {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 2 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    zadd_core(ctx, args[1], f, &args[i..])
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    zadd_core(ctx, args[1], f, &args[2..4])
}

/// ZADD's work on `pairs` (score, member, score, member...), flags already validated.
fn zadd_core(ctx: &mut Ctx<'_>, key: &[u8], f: AddFlags, pairs: &[&[u8]]) -> CmdResult {
    // Parse every score before touching the key (no allocation for the usual few pairs).
    let n = pairs.len() / 2;
    let mut small = [0f64; 16];
    let mut big = Vec::new();
    let scores: &mut [f64] = if n <= small.len() {
        &mut small[..n]
    } else {
        big.resize(n, 0.0);
        &mut big
    };
    for (k, s) in scores.iter_mut().enumerate() {
        *s = parse_score(pairs[2 * k]).ok_or(CmdError::NotFloat)?;
    }
    zadd_scored(ctx, key, f, scores, |k| pairs[2 * k + 1])
}

/// ZADD's work once the scores are parsed: `scores[k]` for `member(k)`.
pub(super) fn zadd_scored<'m>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: AddFlags,
    scores: &[f64],
    member: impl Fn(usize) -> &'m [u8],
) -> CmdResult {
    let max_entries = ctx.store.config.zset_max_listpack_entries;
    let max_value = ctx.store.config.zset_max_listpack_value;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(z) = write_zset(db, key, now, !f.xx)? else {
        // XX on a missing key: nothing to do.
        if f.incr {
            out.null();
        } else {
            out.int(0);
        }
        return Ok(());
    };
    let (mut added, mut updated, mut processed) = (0usize, 0usize, 0usize);
    let mut last = 0.0;
    let mut nan = false;
    for (k, &given) in scores.iter().enumerate() {
        let member = member(k);
        let mut score = given;
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                if f.incr {
                    score += cur;
                    if score.is_nan() {
                        nan = true;
                        break;
                    }
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    continue;
                }
                processed += 1;
                last = score;
                if score != cur {
                    let stored = if z.skiplist || score != 0.0 {
                        score
                    } else {
                        0.0
                    };
                    z.insert(member, stored);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                if !z.skiplist && (z.len() >= max_entries || member.len() > max_value) {
                    z.skiplist = true;
                }
                let stored = if z.skiplist || score != 0.0 {
                    score
                } else {
                    0.0
                };
                z.insert(member, stored);
                added += 1;
                processed += 1;
                last = score;
            }
        }
    }
    let empty = z.is_empty();
    if empty {
        // Only possible if nothing was added to a key created above.
        db.remove(key);
    }
    after_write(ctx, key, added + updated, empty);
    if nan {
        return Err(CmdError::err("resulting score is not a number (NaN)"));
    }
    if f.incr {
        if processed > 0 {
            ctx.out.double(last);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out
            .int(if f.ch { added + updated } else { added } as i64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Simple reads
// ---------------------------------------------------------------------------------------------

fn zcard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = read_zset(ctx.db(), args[1], now)?.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn zcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let range = ScoreRange::parse(args[2], args[3])?;
    let now = ctx.now_ms;
    let n = read_zset(ctx.db(), args[1], now)?.map_or(0, |z| {
        let (lo, hi) = range.span(z);
        hi - lo
    });
    ctx.out.int(n as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let range = LexRange::parse(args[2], args[3])?;
    let now = ctx.now_ms;
    let n = read_zset(ctx.db(), args[1], now)?.map_or(0, |z| range.count(z));
    ctx.out.int(n as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_zset(db, args[1], now)?.and_then(|z| z.score(args[2])) {
        Some(s) => out.double(s),
        None => out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let z = read_zset(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => out.double(s),
            None => out.null(),
        }
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, args, true)
}

fn rank_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], rev: bool) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let z = read_zset(db, args[1], now)?;
    match z.and_then(|z| z.rank(args[2]).map(|r| (r, z.len()))) {
        Some((r, len)) => out.int(if rev { len - 1 - r } else { r } as i64),
        None => out.null(),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZREM ZREMRANGEBY*
// ---------------------------------------------------------------------------------------------

fn zrem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let Some(z) = write_zset(ctx.db(), args[1], now, false)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut deleted = 0;
    for m in &args[2..] {
        if z.remove(m).is_some() {
            deleted += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    let empty = z.is_empty();
    after_write(ctx, args[1], deleted, empty);
    ctx.out.int(deleted as i64);
    Ok(())
}

/// What a ZREMRANGEBY* command removes.
enum RemRange<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = RemRange::Rank(arg_i64(args[2])?, arg_i64(args[3])?);
    zremrange_generic(ctx, args[1], r)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = RemRange::Score(ScoreRange::parse(args[2], args[3])?);
    zremrange_generic(ctx, args[1], r)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let r = RemRange::Lex(LexRange::parse(args[2], args[3])?);
    zremrange_generic(ctx, args[1], r)
}

fn zremrange_generic(ctx: &mut Ctx<'_>, key: &[u8], r: RemRange<'_>) -> CmdResult {
    let now = ctx.now_ms;
    let Some(z) = write_zset(ctx.db(), key, now, false)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let (lo, hi) = match r {
        RemRange::Rank(s, e) => rank_span(z.len(), s, e, false),
        RemRange::Score(r) => r.span(z),
        RemRange::Lex(r) => r.walk(z, false, 0, -1, true),
    };
    let removed = z.remove_range(lo, hi);
    let empty = z.is_empty();
    after_write(ctx, key, removed, empty);
    ctx.out.int(removed as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZRANGE and friends
// ---------------------------------------------------------------------------------------------

/// How a ZRANGE-family command reads its min and max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not fixed by the command: ZRANGE / ZRANGESTORE decide from BYSCORE / BYLEX.
    Auto,
    Rank,
    Score,
    Lex,
}

fn zrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Auto, None)
}

fn zrangestore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 2, Some(args[1]), Kind::Auto, None)
}

fn zrevrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Rank, Some(true))
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Score, Some(true))
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, Kind::Lex, Some(true))
}

/// The parsed range of a ZRANGE-family command.
enum Spec<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

/// ZRANGE and every older form of it. `at` is the index of the source key; `dst` is set for
/// ZRANGESTORE; `kind` and `rev` are fixed by the older commands.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    at: usize,
    dst: Option<&[u8]>,
    mut kind: Kind,
    mut rev: Option<bool>,
) -> CmdResult {
    let key = args[at];
    let (mut minidx, mut maxidx) = (at + 1, at + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = at + 3;
    while j < args.len() {
        let a = args[j];
        let left = args.len() - j - 1;
        if dst.is_none() && eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            offset = arg_i64(args[j + 1])?;
            limit = arg_i64(args[j + 2])?;
            j += 2;
        } else if rev.is_none() && eq_ic(a, "rev") {
            rev = Some(true);
        } else if kind == Kind::Auto && eq_ic(a, "bylex") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && eq_ic(a, "byscore") {
            kind = Kind::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    // As Redis, "no limit" is a count of -1 whether given or not.
    if limit != -1 && kind == Kind::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == Kind::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if rev && kind != Kind::Rank {
        std::mem::swap(&mut minidx, &mut maxidx); // given as max, min
    }
    let spec = match kind {
        Kind::Score => Spec::Score(ScoreRange::parse(args[minidx], args[maxidx])?),
        Kind::Lex => Spec::Lex(LexRange::parse(args[minidx], args[maxidx])?),
        _ => Spec::Rank(arg_i64(args[minidx])?, arg_i64(args[maxidx])?),
    };
    let now = ctx.now_ms;
    let max_entries = ctx.store.config.zset_max_listpack_entries;
    let max_value = ctx.store.config.zset_max_listpack_value;
    let (db, out) = ctx.db_out();
    let Some(z) = read_zset(db, key, now)? else {
        return match dst {
            Some(d) => store_result(ctx, d, Vec::new(), None),
            None => {
                ctx.out.array(0);
                Ok(())
            }
        };
    };
    let (lo, hi) = match spec {
        Spec::Rank(s, e) => rank_span(z.len(), s, e, rev),
        Spec::Score(r) => {
            let (lo, hi) = r.span(z);
            apply_limit(lo, hi, rev, offset, limit)
        }
        Spec::Lex(r) => r.walk(z, rev, offset, limit, false),
    };
    if let Some(d) = dst {
        // Redis adds the members one by one in reply order to a listpack (a skiplist when a
        // rank range is known to be too long), converting as it grows: scores of -0 added
        // while it is still a listpack become 0.
        let mut skiplist = matches!(spec, Spec::Rank(..)) && hi - lo > max_entries;
        let mut pairs = Vec::with_capacity(hi - lo);
        let mut add = |(m, s): (&[u8], f64)| {
            if !skiplist && (pairs.len() >= max_entries || m.len() > max_value) {
                skiplist = true;
            }
            let s = if !skiplist && s == 0.0 { 0.0 } else { s };
            pairs.push((SmallBytes::new(m), s));
        };
        if rev {
            z.range(lo, hi).rev().for_each(&mut add);
        } else {
            z.range(lo, hi).for_each(&mut add);
        }
        return store_result(ctx, d, pairs, Some(skiplist));
    }
    if rev {
        reply_entries(out, z.range(lo, hi).rev(), withscores);
    } else {
        reply_entries(out, z.range(lo, hi), withscores);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZUNION ZINTER ZDIFF ZINTERCARD (+STORE)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Folds `val` into `target`; a SUM that gives NaN (`inf + -inf`) gives 0, as in Redis.
fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// An input of a set operation: a zset, a plain set (every score 1) or a missing key.
#[derive(Debug, Clone, Copy)]
enum Src<'a> {
    Missing,
    Z(&'a ZSet),
    S(&'a SetValue),
}

impl<'a> Src<'a> {
    fn len(&self) -> usize {
        match self {
            Src::Missing => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }

    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Missing => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&'a [u8], f64)> + 'a> {
        match *self {
            Src::Missing => Box::new(std::iter::empty()),
            Src::Z(z) => Box::new(z.iter()),
            Src::S(s) => Box::new(s.iter().map(|m| (&m[..], 1.0))),
        }
    }
}

fn zunion(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, Some(args[1]), 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, Some(args[1]), 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, Some(args[1]), 2, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Inter, true)
}

/// The union / intersection / difference family. `nk` is the index of `numkeys`; `dst` is set
/// for the STORE forms; `card_only` is ZINTERCARD.
fn setop_generic(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    dst: Option<&[u8]>,
    nk: usize,
    op: SetOp,
    card_only: bool,
) -> CmdResult {
    let setnum = arg_i64(args[nk])?;
    if setnum < 1 {
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(args[0]).to_ascii_lowercase()
        )));
    }
    if setnum as u64 > (args.len() - nk - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let keys = &args[nk + 1..nk + 1 + setnum];
    let now = ctx.now_ms;
    // Type check first (as Redis does, before the options), with read lookups.
    {
        let db = ctx.db();
        for k in keys {
            match db.get(k, now) {
                None | Some(Value::ZSet(_)) | Some(Value::Set(_)) => {}
                Some(_) => return Err(CmdError::WrongType),
            }
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: u64 = 0;
    let mut j = nk + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = args[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ic(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = parse_score(args[j])
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq_ic(a, "aggregate") {
            let v = args[j + 1];
            agg = if eq_ic(v, "sum") {
                Aggregate::Sum
            } else if eq_ic(v, "min") {
                Aggregate::Min
            } else if eq_ic(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq_ic(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ic(a, "limit") {
            limit = match crate::util::number::parse_i64(args[j + 1]) {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(CmdError::err("LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }

    let (db, out) = ctx.db_out();
    let db: &Db = db;
    let srcs: Vec<Src<'_>> = keys
        .iter()
        .map(|k| {
            // A replica keeps expired keys; they read as missing.
            if db.expire_at(k).is_some_and(|t| t <= now) {
                return Src::Missing;
            }
            match db.slot(slot_of(k)).keys.get(*k).map(|e| &e.value) {
                Some(Value::ZSet(z)) => Src::Z(z),
                Some(Value::Set(s)) => Src::S(s),
                _ => Src::Missing,
            }
        })
        .collect();
    // Redis visits the inputs smallest first (the difference: first input, then largest).
    let mut order: Vec<usize> = (0..setnum).collect();
    if op == SetOp::Diff {
        order[1..].sort_by_key(|&i| std::cmp::Reverse(srcs[i].len()));
    } else {
        order.sort_by_key(|&i| srcs[i].len());
    }

    let mut result: Vec<(&[u8], f64)> = Vec::new();
    let mut card: u64 = 0;
    match op {
        SetOp::Union => {
            let mut acc: Map<&[u8], f64> = Map::default();
            for &i in &order {
                let w = weights[i];
                for (m, s) in srcs[i].iter() {
                    let mut sc = w * s;
                    if sc.is_nan() {
                        sc = 0.0;
                    }
                    match acc.entry(m) {
                        indexmap::map::Entry::Occupied(mut e) => aggregate(e.get_mut(), sc, agg),
                        indexmap::map::Entry::Vacant(e) => {
                            e.insert(sc);
                        }
                    }
                }
            }
            result = acc.into_iter().collect();
        }
        SetOp::Inter => {
            let first = order[0];
            for (m, s) in srcs[first].iter() {
                let mut score = weights[first] * s;
                if score.is_nan() {
                    score = 0.0;
                }
                let in_all = order[1..].iter().all(|&k| match srcs[k].find(m) {
                    Some(v) => {
                        aggregate(&mut score, v * weights[k], agg);
                        true
                    }
                    None => false,
                });
                if !in_all {
                    continue;
                }
                if card_only {
                    card += 1;
                    if limit > 0 && card >= limit {
                        break;
                    }
                } else {
                    result.push((m, score));
                }
            }
        }
        SetOp::Diff => {
            let first = order[0];
            for (m, s) in srcs[first].iter() {
                if order[1..].iter().all(|&k| srcs[k].find(m).is_none()) {
                    result.push((m, s));
                }
            }
        }
    }

    if card_only {
        out.int(card as i64);
        return Ok(());
    }
    if let Some(d) = dst {
        let pairs = result
            .into_iter()
            .map(|(m, s)| (SmallBytes::new(m), s))
            .collect();
        return store_result(ctx, d, pairs, None);
    }
    result.sort_by(|a, b| cmp_entry(a.1, a.0, b.1, b.0));
    reply_entries(out, result.into_iter(), withscores);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ZPOPMIN ZPOPMAX BZPOPMIN BZPOPMAX ZMPOP BZMPOP
// ---------------------------------------------------------------------------------------------

/// How a pop command replies.
#[derive(Debug, Clone, Copy)]
struct PopReply {
    /// Reply with the key first (B*POP*, ZMPOP).
    emit_key: bool,
    /// `[member, score]` pairs instead of a flat list.
    nested: bool,
    /// Null array instead of an empty array when no key has members.
    nil_when_empty: bool,
}

/// Pops up to `count` members from the first existing key of `keys`.
fn pop_generic(
    ctx: &mut Ctx<'_>,
    keys: &[&[u8]],
    max: bool,
    count: usize,
    how: PopReply,
) -> CmdResult {
    let now = ctx.now_ms;
    let mut found = None;
    {
        let db = ctx.db();
        for k in keys {
            match db.peek(k, now).map(|e| &e.value) {
                None => continue,
                Some(Value::ZSet(_)) => {
                    found = Some(*k);
                    break;
                }
                Some(_) => return Err(CmdError::WrongType),
            }
        }
    }
    let Some(key) = found else {
        if how.nil_when_empty {
            ctx.out.null_array();
        } else {
            ctx.out.array(0);
        }
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let (db, out) = ctx.db_out();
    let z = write_zset(db, key, now, false)?.expect("key was just found");
    let n = count.min(z.len());
    match (how.emit_key, how.nested) {
        (false, false) => out.array(n * 2),
        (false, true) => out.array(n),
        (true, false) => {
            out.array(n * 2 + 1);
            out.bulk(key);
        }
        (true, true) => {
            out.array(2);
            out.bulk(key);
            out.array(n);
        }
    }
    for _ in 0..n {
        let (m, s) = z.pop(max).expect("counted");
        if how.nested {
            out.array(2);
        }
        out.bulk(&m);
        out.double(s);
    }
    let empty = z.is_empty();
    after_write(ctx, key, n, empty);
    Ok(())
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, args, true)
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        Some(a) => match crate::util::number::parse_i64(a) {
            Some(n) if n >= 0 => n as usize,
            _ => {
                return Err(CmdError::err("value is out of range, must be positive"));
            }
        },
        None => 1,
    };
    // RESP3 nests the pairs only when a count was given.
    let how = PopReply {
        emit_key: false,
        nested: ctx.out.resp3 && args.len() == 3,
        nil_when_empty: false,
    };
    pop_generic(ctx, &args[1..2], max, count, how)
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, args, true)
}

fn bzpop_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], max: bool) -> CmdResult {
    let timeout = parse_timeout(args[args.len() - 1], ctx.now_ms)?;
    let keys = &args[1..args.len() - 1];
    let how = PopReply {
        emit_key: true,
        nested: false,
        nil_when_empty: true,
    };
    block_or_pop(ctx, keys, max, 1, how, timeout)
}

/// Pops from the first non-empty key, or blocks on all of them (timeout reply: null array).
fn block_or_pop(
    ctx: &mut Ctx<'_>,
    keys: &[&[u8]],
    max: bool,
    count: usize,
    how: PopReply,
    timeout: Option<Duration>,
) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    for k in keys {
        match db.peek(k, now).map(|e| &e.value) {
            None => continue,
            Some(Value::ZSet(_)) => return pop_generic(ctx, &[*k], max, count, how),
            Some(_) => return Err(CmdError::WrongType),
        }
    }
    if ctx.block_timed_out() {
        ctx.out.null_array();
    } else {
        ctx.block_on(keys, timeout);
    }
    Ok(())
}

/// Parses `numkeys key... MIN|MAX [COUNT count]` starting at `nk`: (keys, max, count).
fn parse_mpop<'a>(args: &[&'a [u8]], nk: usize) -> Result<(Vec<&'a [u8]>, bool, usize), CmdError> {
    let numkeys = match crate::util::number::parse_i64(args[nk]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    if nk as u64 + numkeys + 1 >= args.len() as u64 {
        return Err(CmdError::Syntax);
    }
    let where_idx = nk + numkeys as usize + 1;
    let max = if eq_ic(args[where_idx], "min") {
        false
    } else if eq_ic(args[where_idx], "max") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && eq_ic(args[j], "count") && j + 1 < args.len() {
            j += 1;
            count = match crate::util::number::parse_i64(args[j]) {
                Some(n) if n >= 1 => Some(n as usize),
                _ => return Err(CmdError::err("count should be greater than 0")),
            };
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok((args[nk + 1..where_idx].to_vec(), max, count.unwrap_or(1)))
}

const MPOP_REPLY: PopReply = PopReply {
    emit_key: true,
    nested: true,
    nil_when_empty: true,
};

fn zmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 1)?;
    pop_generic(ctx, &keys, max, count, MPOP_REPLY)
}

fn bzmpop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 2)?;
    let timeout = parse_timeout(args[1], ctx.now_ms)?;
    block_or_pop(ctx, &keys, max, count, MPOP_REPLY, timeout)
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER ZSCAN
// ---------------------------------------------------------------------------------------------

fn zrandmember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    use rand::Rng;
    let now = ctx.now_ms;
    if args.len() == 2 {
        let (db, out) = ctx.db_out();
        match read_zset(db, args[1], now)? {
            None => out.null(),
            Some(z) => {
                let i = rand::rng().random_range(0..z.len());
                let (m, _) = z.dict.get_index(i).expect("in range");
                out.bulk(m);
            }
        }
        return Ok(());
    }
    let l = crate::util::number::parse_i64(args[2]).ok_or(CmdError::NotInteger)?;
    if l == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if args.len() > 4 || (args.len() == 4 && !eq_ic(args[3], "withscores")) {
        return Err(CmdError::Syntax);
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::err("value is out of range"));
    }
    let (db, out) = ctx.db_out();
    let Some(z) = read_zset(db, args[1], now)? else {
        out.array(0);
        return Ok(());
    };
    if l == 0 {
        out.array(0);
        return Ok(());
    }
    let mut rng = rand::rng();
    let size = z.len();
    let pick = |i: usize| {
        let (m, s) = z.dict.get_index(i).expect("in range");
        (&m[..], *s)
    };
    if l < 0 {
        // Repetitions allowed, random order.
        let n = l.unsigned_abs() as usize;
        let it = (0..n).map(|_| pick(rng.random_range(0..size)));
        reply_entries(out, ExactLen(it, n), withscores);
    } else if l as u64 >= size as u64 {
        reply_entries(out, z.iter(), withscores);
    } else {
        let idx = rand::seq::index::sample(&mut rng, size, l as usize);
        let n = idx.len();
        reply_entries(out, ExactLen(idx.into_iter().map(pick), n), withscores);
    }
    Ok(())
}

/// An iterator whose length is known in advance.
struct ExactLen<I>(I, usize);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let x = self.0.next()?;
        self.1 -= 1;
        Some(x)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

fn zscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = super::keys::parse_cursor(args[2])?;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(z) = read_zset(db, args[1], now)? else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let mut count: usize = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let left = args.len() - i;
        if eq_ic(args[i], "count") && left >= 2 {
            let n = arg_i64(args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
        } else if eq_ic(args[i], "match") && left >= 2 {
            pattern = Some(args[i + 1]).filter(|p| *p != b"*");
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let keep = |m: &[u8]| pattern.is_none_or(|p| glob_match(p, m, false));
    let mut items: Vec<(&[u8], f64)> = Vec::new();
    let next = if !z.skiplist {
        // A listpack is returned whole, in order, in one call.
        items.extend(z.iter().filter(|(m, _)| keep(m)));
        0
    } else {
        // Walk the dict from its last position down, so members moved by removals (the last
        // one fills the hole) are never skipped. Cursor = next position + 1.
        let len = z.dict.len();
        let mut pos = if cursor == 0 {
            len
        } else {
            (cursor.min(len as u64)) as usize
        };
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            let (m, s) = z.dict.get_index(pos).expect("in range");
            if keep(m) {
                items.push((m, *s));
            }
            visited += 1;
        }
        pos as u64
    };
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(items.len() * 2);
    for (m, s) in items {
        out.bulk(m);
        out.bulk(fmt_double(s).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_like_c() {
        assert_eq!(strtod(b"1.5"), (1.5, 3, false));
        assert_eq!(strtod(b"  -2e3x"), (-2000.0, 6, false));
        assert_eq!(strtod(b"0x10"), (16.0, 4, false));
        assert_eq!(strtod(b"0x1.8p1"), (3.0, 7, false));
        assert_eq!(strtod(b"0x"), (0.0, 1, false));
        assert_eq!(strtod(b"-inf"), (f64::NEG_INFINITY, 4, false));
        assert_eq!(strtod(b"Infinity"), (f64::INFINITY, 8, false));
        assert_eq!(strtod(b"1e"), (1.0, 1, false));
        assert_eq!(strtod(b".5"), (0.5, 2, false));
        assert_eq!(strtod(b"5."), (5.0, 2, false));
        assert_eq!(strtod(b"abc").1, 0);
        assert_eq!(strtod(b"."), (0.0, 0, false));
        assert!(strtod(b"1e400").2);
        assert!(strtod(b"1e-400").2);
        assert!(!strtod(b"0e-400").2);
        assert!(strtod(b"nan").0.is_nan());
    }

    #[test]
    fn score_and_bound_parsing() {
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b" 1"), None);
        assert_eq!(parse_score(b"1e400"), None);
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b"5\0"), None);
        assert_eq!(parse_score(b""), None);
        assert_eq!(parse_bound(b""), Some((0.0, false)));
        assert_eq!(parse_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_bound(b" 1"), Some((1.0, false)));
        assert_eq!(parse_bound(b"1\0x"), Some((1.0, false)));
        assert_eq!(parse_bound(b"(1e400"), Some((f64::INFINITY, true)));
        assert_eq!(parse_bound(b"[1"), None);
        assert_eq!(parse_bound(b"(nan"), None);
    }

    #[test]
    fn cursor_and_timeout() {
        use crate::cmd::keys::parse_cursor;
        assert_eq!(parse_cursor(b"-1").ok(), Some(u64::MAX));
        assert_eq!(parse_cursor(b" 1").ok(), None);
        assert_eq!(parse_cursor(b"+").ok(), None);
        assert_eq!(parse_timeout(b"0", 1), Ok(None));
        assert_eq!(parse_timeout(b"0.0005", 1), Ok(None));
        assert_eq!(
            parse_timeout(b"1.5", 1),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert!(parse_timeout(b"inf", 1).is_err());
        assert!(parse_timeout(b"-1", 1).is_err());
        assert!(parse_timeout(b"", 1).is_err());
    }

    #[test]
    fn spans() {
        assert_eq!(rank_span(5, 0, -1, false), (0, 5));
        assert_eq!(rank_span(5, 0, 1, true), (3, 5));
        assert_eq!(rank_span(5, -100, 100, false), (0, 5));
        assert_eq!(rank_span(5, 3, 2, false), (0, 0));
        assert_eq!(apply_limit(2, 8, false, 1, 2), (3, 5));
        assert_eq!(apply_limit(2, 8, true, 1, 2), (5, 7));
        assert_eq!(apply_limit(2, 8, true, 1, -1), (2, 7));
        assert_eq!(apply_limit(2, 8, false, -1, 3), (2, 2));
        assert_eq!(apply_limit(2, 8, false, i64::MAX, 3), (8, 8));
    }

    #[test]
    fn set_inputs_score_one() {
        let mut s = SetValue::default();
        s.insert(SmallBytes::new(b"a"));
        let src = Src::S(&s);
        assert_eq!(src.find(b"a"), Some(1.0));
        assert_eq!(src.find(b"b"), None);
        assert_eq!(src.iter().collect::<Vec<_>>(), vec![(&b"a"[..], 1.0)]);
    }
}
