//! String commands: GET/SET and their variants, counters, ranges and LCS.

pub mod ld;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::resp::reply::Out;
use crate::store::{Db, SmallBytes, Value};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READONLY | FAST, (1, 1, 1), get),
    spec("set", -3, WRITE | DENYOOM, (1, 1, 1), set),
    spec("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), setnx),
    spec("setex", 4, WRITE | DENYOOM, (1, 1, 1), setex),
    spec("psetex", 4, WRITE | DENYOOM, (1, 1, 1), psetex),
    spec("mget", -2, READONLY | FAST, (1, -1, 1), mget),
    spec("mset", -3, WRITE | DENYOOM, (1, -1, 2), mset),
    spec("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), msetnx),
    spec("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), getset),
    spec("getex", -2, WRITE | FAST, (1, 1, 1), getex),
    spec("getdel", 2, WRITE | FAST, (1, 1, 1), getdel),
    spec("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), append),
    spec("strlen", 2, READONLY | FAST, (1, 1, 1), strlen),
    spec("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), incr),
    spec("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), decr),
    spec("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), incrby),
    spec("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), decrby),
    spec(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        incrbyfloat,
    ),
    spec("setrange", 4, WRITE | DENYOOM, (1, 1, 1), setrange),
    spec("getrange", 4, READONLY, (1, 1, 1), getrange),
    spec("substr", 4, READONLY, (1, 1, 1), getrange),
    spec("lcs", -3, READONLY, (1, 2, 1), lcs),
];

/// The string a key holds for writing, without touching hit/miss counters (as Redis's
/// write lookups): `Ok(None)` when missing, `WrongType` for another type.
pub fn peek_str<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a [u8]>, CmdError> {
    match db.peek(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// The string a key holds as stored, for a reply (counts a hit or a miss).
fn read_value<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a SmallBytes>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The string a key holds, for reading (counts a hit or a miss).
pub(crate) fn read_str<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a [u8]>, CmdError> {
    Ok(read_value(db, key, now)?.map(|s| s.as_bytes()))
}

/// Mutable access to the bytes of a string value (no copy when the length stays the same).
pub fn bytes_mut(s: &mut SmallBytes) -> &mut [u8] {
    s.as_mut_bytes()
}

/// Takes the bytes of a string value out as a vector with room for `extra` more (no copy
/// for heap strings no one else holds) so that it can grow; store it back with
/// `SmallBytes::from_vec`.
pub fn take_vec(s: &mut SmallBytes, extra: usize) -> Vec<u8> {
    std::mem::replace(s, SmallBytes::new(b"")).into_vec_with_room(extra)
}

/// Redis's `checkStringLength`: a string may not grow past `proto-max-bulk-len`.
pub fn check_len(ctx: &Ctx<'_>, total: u64) -> CmdResult {
    if total > ctx.store.config.proto_max_bulk_len {
        return Err(CmdError::err(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

/// A string value as a bulk reply; a big one goes out by reference, not copied.
fn bulk_value(out: &mut Out, s: &SmallBytes) {
    match s {
        SmallBytes::Shared(data) => out.bulk_shared(data),
        other => out.bulk(other),
    }
}

fn get(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.get(args[1], now) {
        None => out.null(),
        Some(Value::Str(s)) => bulk_value(out, s),
        Some(_) => return Err(CmdError::WrongType),
    }
    Ok(())
}

/// How an expire argument is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpKind {
    /// EX: relative seconds.
    Ex,
    /// PX: relative milliseconds.
    Px,
    /// EXAT: absolute unix seconds.
    ExAt,
    /// PXAT: absolute unix milliseconds.
    PxAt,
}

/// Options of SET (and GETEX, which shares the expire options and adds PERSIST).
#[derive(Debug, Default)]
struct SetOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpKind, &'a [u8])>,
}

/// Parses SET/GETEX options with Redis's rules: conflicting options are a syntax error, a
/// repeated expire option of the same kind takes the last value.
fn parse_set_opts<'a>(opts: &[&'a [u8]], is_set: bool) -> Result<SetOpts<'a>, CmdError> {
    let mut o = SetOpts::default();
    let mut i = 0;
    while i < opts.len() {
        let a = opts[i];
        let kind = if eq_ic(a, "ex") {
            Some(ExpKind::Ex)
        } else if eq_ic(a, "px") {
            Some(ExpKind::Px)
        } else if eq_ic(a, "exat") {
            Some(ExpKind::ExAt)
        } else if eq_ic(a, "pxat") {
            Some(ExpKind::PxAt)
        } else {
            None
        };
        if let Some(k) = kind {
            let other_kind = o.expire.is_some_and(|(ok, _)| ok != k);
            if o.keepttl || o.persist || other_kind || i + 1 >= opts.len() {
                return Err(CmdError::Syntax);
            }
            o.expire = Some((k, opts[i + 1]));
            i += 2;
            continue;
        }
        if is_set && eq_ic(a, "nx") && !o.xx {
            o.nx = true;
        } else if is_set && eq_ic(a, "xx") && !o.nx {
            o.xx = true;
        } else if is_set && eq_ic(a, "get") {
            o.get = true;
        } else if is_set && eq_ic(a, "keepttl") && o.expire.is_none() {
            o.keepttl = true;
        } else if !is_set && eq_ic(a, "persist") && o.expire.is_none() {
            o.persist = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

/// Converts an expire argument to an absolute unix time in ms, with Redis's checks.
fn expire_at_ms(arg: &[u8], kind: ExpKind, now: u64, cmd: &str) -> Result<u64, CmdError> {
    let n = arg_i64(arg)?;
    let invalid = || CmdError::err(format!("invalid expire time in '{cmd}' command"));
    let seconds = matches!(kind, ExpKind::Ex | ExpKind::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid());
    }
    let mut ms = if seconds { n * 1000 } else { n };
    if matches!(kind, ExpKind::Ex | ExpKind::Px) {
        // Redis adds the current time and catches the overflow afterwards.
        ms = ms.wrapping_add(now as i64);
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms as u64)
}

fn set(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (key, val) = (args[1], args[2]);
    if args.len() == 3 {
        // The plain SET: one lookup, no option handling.
        ctx.db().set(key, Value::Str(SmallBytes::new(val)));
        ctx.dirty(1);
        ctx.out.ok();
        return Ok(());
    }
    let o = parse_set_opts(&args[3..], true)?;
    let now = ctx.now_ms;
    let at = match o.expire {
        Some((k, a)) => Some(expire_at_ms(a, k, now, "set")?),
        None => None,
    };
    let (db, out) = ctx.db_out();
    let found = if o.get {
        match read_value(db, key, now)? {
            Some(old) => {
                bulk_value(out, old);
                true
            }
            None => {
                out.null();
                false
            }
        }
    } else if o.nx || o.xx {
        db.contains(key, now)
    } else {
        false
    };
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            out.null();
        }
        return Ok(());
    }
    db.set_with(key, Value::Str(SmallBytes::new(val)), o.keepttl);
    if let Some(at) = at {
        db.set_expire(key, at);
    }
    ctx.dirty(1);
    if !o.get {
        ctx.out.ok();
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    if db.contains(args[1], now) {
        ctx.out.int(0);
    } else {
        db.set(args[1], Value::Str(SmallBytes::new(args[2])));
        ctx.dirty(1);
        ctx.out.int(1);
    }
    Ok(())
}

fn set_expiring(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: ExpKind, cmd: &str) -> CmdResult {
    let at = expire_at_ms(args[2], kind, ctx.now_ms, cmd)?;
    let db = ctx.db();
    db.set(args[1], Value::Str(SmallBytes::new(args[3])));
    db.set_expire(args[1], at);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

fn setex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    set_expiring(ctx, args, ExpKind::Ex, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    set_expiring(ctx, args, ExpKind::Px, "psetex")
}

fn mget(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    out.array(args.len() - 1);
    for k in &args[1..] {
        match db.get(k, now) {
            Some(Value::Str(s)) => bulk_value(out, s),
            _ => out.null(),
        }
    }
    Ok(())
}

fn mset_pairs(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let db = ctx.db();
    for kv in args[1..].chunks_exact(2) {
        db.set(kv[0], Value::Str(SmallBytes::new(kv[1])));
    }
    ctx.dirty((args.len() as u64 - 1) / 2);
}

fn mset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("mset".into()));
    }
    mset_pairs(ctx, args);
    ctx.out.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("msetnx".into()));
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    if args[1..].chunks_exact(2).any(|kv| db.contains(kv[0], now)) {
        ctx.out.int(0);
        return Ok(());
    }
    mset_pairs(ctx, args);
    ctx.out.int(1);
    Ok(())
}

fn getset(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_value(db, args[1], now)? {
        Some(old) => bulk_value(out, old),
        None => out.null(),
    }
    db.set(args[1], Value::Str(SmallBytes::new(args[2])));
    ctx.dirty(1);
    Ok(())
}

fn getex(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let o = parse_set_opts(&args[2..], false)?;
    let (key, now) = (args[1], ctx.now_ms);
    let (db, out) = ctx.db_out();
    let Some(v) = read_value(db, key, now)? else {
        out.null();
        return Ok(());
    };
    // The expire time is only checked once the key is known to hold a string.
    let at = match o.expire {
        Some((k, a)) => Some((k, expire_at_ms(a, k, now, "getex")?)),
        None => None,
    };
    bulk_value(out, v);
    match at {
        Some((ExpKind::ExAt | ExpKind::PxAt, at)) if at <= now => {
            db.remove(key);
            ctx.dirty(1);
        }
        Some((_, at)) => {
            db.set_expire(key, at);
            ctx.dirty(1);
        }
        None if o.persist && db.persist(key) => ctx.dirty(1),
        None => {}
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_value(db, args[1], now)? {
        Some(v) => bulk_value(out, v),
        None => {
            out.null();
            return Ok(());
        }
    }
    db.remove(args[1]);
    ctx.dirty(1);
    Ok(())
}

fn append(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (key, add, now) = (args[1], args[2], ctx.now_ms);
    let old_len = peek_str(ctx.db(), key, now)?.map(|s| s.len());
    let total = match old_len {
        None => {
            ctx.db().set(key, Value::Str(SmallBytes::new(add)));
            add.len()
        }
        Some(len) => {
            check_len(ctx, (len + add.len()) as u64)?;
            if let Some(Value::Str(s)) = ctx.db().get_mut(key, now) {
                let mut v = take_vec(s, add.len());
                v.extend_from_slice(add);
                *s = SmallBytes::from_vec(v);
            }
            len + add.len()
        }
    };
    ctx.dirty(1);
    ctx.out.int(total as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = read_str(ctx.db(), args[1], now)?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// INCR/DECR/INCRBY/DECRBY: adds `by` to the integer stored at `key` (0 when missing),
/// keeping the key's TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let text = |n: i64| Value::Str(SmallBytes::new(itoa::Buffer::new().format(n).as_bytes()));
    // One lookup when the key exists (the common case), as Redis updates it in place.
    let updated = db.replace_existing(key, now, |v| {
        let Value::Str(s) = v else {
            return Err(CmdError::WrongType);
        };
        let old = crate::util::number::parse_i64(s).ok_or(CmdError::NotInteger)?;
        let new = old
            .checked_add(by)
            .ok_or_else(|| CmdError::err("increment or decrement would overflow"))?;
        Ok((text(new), new))
    });
    let new = match updated {
        Some(r) => r?,
        None => {
            db.set_with(key, text(by), true);
            by
        }
    };
    ctx.dirty(1);
    ctx.out.int(new);
    Ok(())
}

fn incr(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    incr_by(ctx, args[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    incr_by(ctx, args[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let by = arg_i64(args[2])?;
    incr_by(ctx, args[1], by)
}

fn decrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let by = arg_i64(args[2])?;
    if by == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_by(ctx, args[1], -by)
}

/// Adds the float `incr` to the float string `old` (None: missing, counts as 0) the way
/// Redis's INCRBYFLOAT and HINCRBYFLOAT do, in 80-bit extended precision. Returns the new
/// value's text, or `ERR value is not a valid float` / `ERR increment would produce NaN or
/// Infinity`.
pub fn incr_by_float(old: Option<&[u8]>, incr: &[u8]) -> Result<String, CmdError> {
    use ld::Parsed;
    let a = match old {
        None => Parsed::Num(ld::Ld::from_i64(0)),
        Some(s) => ld::parse(s).ok_or(CmdError::NotFloat)?,
    };
    let b = ld::parse(incr).ok_or(CmdError::NotFloat)?;
    let nan_or_inf = || CmdError::err("increment would produce NaN or Infinity");
    match (a, b) {
        (Parsed::Num(a), Parsed::Num(b)) => Ok(a.sum(b).ok_or_else(nan_or_inf)?.to_human()),
        _ => Err(nan_or_inf()),
    }
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let new = incr_by_float(peek_str(db, args[1], now)?, args[2])?;
    db.set_with(args[1], Value::Str(SmallBytes::new(new.as_bytes())), true);
    ctx.dirty(1);
    ctx.out.bulk(new.as_bytes());
    Ok(())
}

fn setrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (key, val, now) = (args[1], args[3], ctx.now_ms);
    let offset = arg_i64(args[2])?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let offset = offset as usize;
    let old_len = peek_str(ctx.db(), key, now)?.map(|s| s.len());
    if val.is_empty() {
        // Nothing to write: the key is neither created nor changed.
        ctx.out.int(old_len.unwrap_or(0) as i64);
        return Ok(());
    }
    check_len(ctx, offset as u64 + val.len() as u64)?;
    let end = offset + val.len();
    let new_len = match old_len {
        None => {
            let mut v = vec![0u8; end];
            v[offset..].copy_from_slice(val);
            ctx.db().set(key, Value::Str(SmallBytes::from_vec(v)));
            end
        }
        Some(len) => {
            if let Some(Value::Str(s)) = ctx.db().get_mut(key, now) {
                if end <= len {
                    bytes_mut(s)[offset..end].copy_from_slice(val);
                } else {
                    let mut v = take_vec(s, end - len);
                    v.resize(end, 0);
                    v[offset..].copy_from_slice(val);
                    *s = SmallBytes::from_vec(v);
                }
            }
            len.max(end)
        }
    };
    ctx.dirty(1);
    ctx.out.int(new_len as i64);
    Ok(())
}

/// Resolves a Redis inclusive `start..=end` range with negative indexes over `len` items
/// (GETRANGE/BITCOUNT rules); None for an empty range.
pub fn resolve_range(mut start: i64, mut end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

fn getrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let start = arg_i64(args[2])?;
    let end = arg_i64(args[3])?;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let s = read_str(db, args[1], now)?.unwrap_or(b"");
    match resolve_range(start, end, s.len() as i64) {
        Some((a, b)) => out.bulk(&s[a..=b]),
        None => out.bulk(b""),
    }
    Ok(())
}

fn lcs(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let limit = ctx.store.config.proto_max_bulk_len;
    let (db, out) = ctx.db_out();
    let not_str = || CmdError::err("The specified keys must contain string values");
    let a: Vec<u8> = match db.get(args[1], now) {
        None => Vec::new(),
        Some(Value::Str(s)) => s.to_vec(),
        Some(_) => return Err(not_str()),
    };
    let b: &[u8] = match db.get(args[2], now) {
        None => b"",
        Some(Value::Str(s)) => s,
        Some(_) => return Err(not_str()),
    };
    let (mut want_len, mut want_idx, mut with_len) = (false, false, false);
    let mut min_len: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        let o = args[i];
        if eq_ic(o, "idx") {
            want_idx = true;
        } else if eq_ic(o, "len") {
            want_len = true;
        } else if eq_ic(o, "withmatchlen") {
            with_len = true;
        } else if eq_ic(o, "minmatchlen") && i + 1 < args.len() {
            min_len = arg_i64(args[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if want_idx && want_len {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (n, m) = (a.len(), b.len());
    // Redis refuses only when the allocation fails; we refuse a table (4 bytes a cell)
    // larger than proto-max-bulk-len, with the same error, rather than risk exhausting memory.
    if (n as u64 + 1) * (m as u64 + 1) * 4 > limit {
        return Err(CmdError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    // dp[i][j] = LCS length of a[..i] and b[..j].
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[n * w + m] as usize;
    if want_len && !want_idx {
        out.int(total as i64);
        return Ok(());
    }
    // Walk back from the end, collecting the common string and the matching runs (last
    // run first, as Redis reports them). On ties Redis moves left in `b`.
    let mut common = vec![0u8; total];
    let mut k = total;
    let mut runs: Vec<[usize; 4]> = Vec::new(); // a_start, a_end, b_start, b_end
    let mut run: Option<[usize; 4]> = None;
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            k -= 1;
            common[k] = a[i - 1];
            run = Some(match run {
                Some([_, ae, _, be]) => [i - 1, ae, j - 1, be],
                None => [i - 1, i - 1, j - 1, j - 1],
            });
            i -= 1;
            j -= 1;
            if i == 0 || j == 0 {
                runs.extend(run.take());
            }
        } else {
            if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            runs.extend(run.take());
        }
    }
    if !want_idx {
        out.bulk(&common);
        return Ok(());
    }
    let kept: Vec<&[usize; 4]> = runs
        .iter()
        .filter(|r| min_len == 0 || (r[1] - r[0] + 1) as i64 >= min_len)
        .collect();
    out.map(2);
    out.bulk(b"matches");
    out.array(kept.len());
    for r in kept {
        out.array(2 + with_len as usize);
        out.array(2);
        out.int(r[0] as i64);
        out.int(r[1] as i64);
        out.array(2);
        out.int(r[2] as i64);
        out.int(r[3] as i64);
        if with_len {
            out.int((r[1] - r[0] + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::execute;
    use crate::config::Config;
    use crate::resp::reply::Out;
    use crate::resp::request::split_args;
    use crate::server::Shared;
    use crate::server::client::{Client, ClientInfo};
    use std::sync::Arc;

    /// An in-process server for tests that need what the differential scripts cannot
    /// reach: keys of other types (their commands live in other families) and TTLs.
    struct Harness {
        shared: Arc<Shared>,
        client: Client,
    }

    impl Harness {
        fn new() -> Self {
            let shared = Shared::new(Config::default(), None);
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let info = Arc::new(ClientInfo::new(
                1,
                "127.0.0.1:1".into(),
                "127.0.0.1:2".into(),
            ));
            let client = Client::new(info, tx);
            let h = Harness { shared, client };
            let list = [SmallBytes::new(b"a")].into_iter().collect();
            h.shared.store.lock().dbs[0].set(b"list", Value::List(crate::store::CowArc::new(list)));
            h
        }

        fn run(&mut self, line: &str) -> String {
            let args = split_args(line.as_bytes()).expect("quoting");
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let mut out = Out::new();
            let mut store = self.shared.store.lock();
            let mut ctx = Ctx {
                store: &mut store,
                client: &mut self.client,
                out: &mut out,
                shared: &self.shared,
                now_ms: crate::store::now_ms(),
            };
            execute(&mut ctx, &args);
            String::from_utf8_lossy(&out.buf).into_owned()
        }

        /// Remaining TTL of `key` in whole seconds (rounded up), None without one.
        fn ttl(&self, key: &str) -> Option<u64> {
            let at = self.shared.store.lock().dbs[0].expire_at(key.as_bytes())?;
            Some(at.saturating_sub(crate::store::now_ms()).div_ceil(1000))
        }
    }

    /// Runs lines in-process (key `list` holds a list) and checks each reply. Expected
    /// replies were taken from redis-server 7.0.15.
    fn check(lines: &[(&str, &str)]) {
        let mut h = Harness::new();
        for (line, want) in lines {
            assert_eq!(h.run(line), *want, "{line}");
        }
    }

    #[test]
    fn ttls() {
        let mut h = Harness::new();
        h.run("SET k v EX 100");
        assert_eq!(h.ttl("k"), Some(100));
        h.run("SET k v KEEPTTL");
        assert_eq!(h.ttl("k"), Some(100));
        h.run("SET k v");
        assert_eq!(h.ttl("k"), None);
        h.run("SET k 1 PX 50000");
        assert_eq!(h.ttl("k"), Some(50));
        for cmd in [
            "INCR k",
            "INCRBY k 5",
            "DECR k",
            "INCRBYFLOAT k 1.5",
            "APPEND k x",
            "SETRANGE k 0 1",
            "SETBIT k 100 1",
            "BITFIELD k SET u8 0 1",
            "GETEX k",
        ] {
            h.run(cmd);
            assert_eq!(h.ttl("k"), Some(50), "{cmd}");
        }
        h.run("GETEX k EX 200");
        assert_eq!(h.ttl("k"), Some(200));
        h.run("GETEX k PERSIST");
        assert_eq!(h.ttl("k"), None);
        h.run("GETEX k PXAT 99999999999999");
        assert!(h.ttl("k").is_some());
        h.run("GETSET k v");
        assert_eq!(h.ttl("k"), None);
        h.run("SETEX k 30 v");
        assert_eq!(h.ttl("k"), Some(30));
        h.run("PSETEX k 30000 v");
        assert_eq!(h.ttl("k"), Some(30));
        h.run("SET k v EXAT 99999999999");
        assert!(h.ttl("k").is_some());
        h.run("MSET k v");
        assert_eq!(h.ttl("k"), None);
        h.run("SET d x EX 100");
        h.run("BITOP NOT d k");
        assert_eq!(h.ttl("d"), None);
        assert_eq!(h.run("GETEX k EXAT 1"), "$1\r\nv\r\n");
        assert_eq!(h.run("GET k"), "$-1\r\n");
        assert_eq!(h.shared.store.lock().dbs[0].len(), 2); // list and d: k was deleted
    }

    const WT: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    #[test]
    fn wrong_type() {
        check(&[
            ("SET a 1", "+OK\r\n"),
            ("SET b 2", "+OK\r\n"),
            ("GET list", WT),
            ("SET list v GET", WT),
            ("MGET a list b", "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"),
            ("GETSET list x", WT),
            ("GETDEL list", WT),
            ("GETEX list", WT),
            ("GETEX list EX abc", WT),
            ("APPEND list x", WT),
            ("STRLEN list", WT),
            ("INCR list", WT),
            ("INCRBY list 1", WT),
            (
                "INCRBY list x",
                "-ERR value is not an integer or out of range\r\n",
            ),
            ("INCRBYFLOAT list 1", WT),
            ("SETRANGE list 0 x", WT),
            ("SETRANGE list 0 \"\"", WT),
            ("SETRANGE list -1 x", "-ERR offset is out of range\r\n"),
            ("GETRANGE list 0 -1", WT),
            ("SET la x", "+OK\r\n"),
            (
                "LCS la list",
                "-ERR The specified keys must contain string values\r\n",
            ),
            (
                "LCS list la",
                "-ERR The specified keys must contain string values\r\n",
            ),
            ("SETNX list x", ":0\r\n"),
            ("SETBIT list 0 1", WT),
            ("GETBIT list 0", WT),
            ("BITCOUNT list", WT),
            ("BITCOUNT list 0", WT),
            ("BITPOS list 1", WT),
            ("BITPOS list 2", "-ERR The bit argument must be 1 or 0.\r\n"),
            ("BITOP AND dest la list", WT),
            ("BITOP NOT dest list", WT),
            ("BITFIELD list GET u8 0", WT),
            ("BITFIELD list SET u8 0 1", WT),
            (
                "BITFIELD list GET x8 0",
                "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n",
            ),
            ("BITFIELD_RO list GET u8 0", WT),
            ("BITOP AND list la", ":1\r\n"),
            ("GET list", "$1\r\nx\r\n"),
        ]);
    }

    #[test]
    fn ranges() {
        assert_eq!(resolve_range(0, -100, 5), Some((0, 0)));
        assert_eq!(resolve_range(-1, -5, 5), None);
        assert_eq!(resolve_range(5, 10, 5), None);
        assert_eq!(resolve_range(-100, -99, 5), Some((0, 0)));
        assert_eq!(resolve_range(1, 3, 5), Some((1, 3)));
        assert_eq!(resolve_range(0, 0, 0), None);
    }

    #[test]
    fn float_increments() {
        assert_eq!(incr_by_float(Some(b"0.1"), b"0.2").unwrap(), "0.3");
        assert_eq!(incr_by_float(None, b"5.0e3").unwrap(), "5000");
        assert!(incr_by_float(Some(b"abc"), b"1").is_err());
        assert!(incr_by_float(None, b"inf").is_err());
    }
}
