//! The set command family: SADD, SREM, SMEMBERS, SPOP, SINTER, SUNION, SDIFF, SSCAN...
//!
//! Ordering follows Redis 7.0 where Redis is deterministic. A set Redis would keep as an
//! intset (every member an integer per `string2ll`, at most `set-max-intset-entries`
//! members; `SetValue::hashtable == false`) replies in ascending numeric order; a hashtable
//! set replies in Redis's hash order, which clients cannot rely on, so any order will do.
//!
//! Intsets are *sorted on output* rather than kept sorted: SADD (a hot path) stays a plain
//! O(1) insert, code elsewhere that builds a `SetValue` (RESTORE, other families) needs no
//! ordering invariant, and the sort is bounded by `set-max-intset-entries` (512 by default).
//! Results computed by SINTER/SUNION/SDIFF follow the same rule: Redis builds them as a new
//! set, an intset when every member is an integer and there are few enough of them.

use rand::Rng;

use super::flags::*;
use super::hash::{
    ScanOpts, arg_count, empty_scan, lookup_or_create, lookup_write, scan_header, scan_window,
};
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::resp::reply::Out;
use crate::store::value::{INLINE_CAP, Set};
use crate::store::{Db, SetValue, SmallBytes, Value};
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), sadd),
    spec("srem", -3, WRITE | FAST, (1, 1, 1), srem),
    spec("smembers", 2, READONLY, (1, 1, 1), smembers),
    spec("sismember", 3, READONLY | FAST, (1, 1, 1), sismember),
    spec("smismember", -3, READONLY | FAST, (1, 1, 1), smismember),
    spec("scard", 2, READONLY | FAST, (1, 1, 1), scard),
    spec("spop", -2, WRITE | FAST | RANDOM, (1, 1, 1), spop),
    spec("srandmember", -2, READONLY | RANDOM, (1, 1, 1), srandmember),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), smove),
    spec("sinter", -2, READONLY, (1, -1, 1), sinter),
    spec("sintercard", -3, READONLY, (0, 0, 0), sintercard),
    spec("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sinterstore),
    spec("sunion", -2, READONLY, (1, -1, 1), sunion),
    spec("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sunionstore),
    spec("sdiff", -2, READONLY, (1, -1, 1), sdiff),
    spec("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sdiffstore),
    spec("sscan", -3, READONLY | RANDOM, (1, 1, 1), sscan),
];

// ---------------------------------------------------------------------------------------
// Helpers.

fn read_set<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a SetValue>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The set at `key` for an in-place change, not yet signalled (see `lookup_write`).
fn write_set<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a mut SetValue>, CmdError> {
    match lookup_write(db, key, now) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The set at `key`, created empty when missing. The caller must add a member.
fn set_or_create<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<&'a mut SetValue, CmdError> {
    let is_set = |v: &Value| matches!(v, Value::Set(_));
    match lookup_or_create(db, key, now, is_set, Value::new_set)? {
        Value::Set(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// Adds a member; returns true if it was new. A non-integer member converts the set.
fn add_member(s: &mut SetValue, m: &[u8]) -> bool {
    // Short members are copied inline (no allocation), so inserting directly costs one hash
    // lookup; a long one is only copied to the heap when it is really new.
    if m.len() > INLINE_CAP && s.contains(m) {
        return false;
    }
    let added = s.set.insert(SmallBytes::new(m));
    if added && !s.hashtable && parse_i64(m).is_none() {
        s.hashtable = true;
    }
    added
}

/// True when Redis would hold these members as an intset.
fn is_intset<'a>(members: impl ExactSizeIterator<Item = &'a SmallBytes>, max: usize) -> bool {
    members.len() <= max && members.into_iter().all(|m| parse_i64(m).is_some())
}

/// Sorts members numerically (they are all integers: intset order).
fn sort_numeric(members: &mut [&SmallBytes]) {
    members.sort_by_cached_key(|m| parse_i64(m).unwrap_or(0));
}

/// Writes a set's members as a set reply, in Redis's order.
fn reply_set(out: &mut Out, s: &SetValue) {
    out.set(s.len());
    if s.hashtable {
        for m in s.iter() {
            out.bulk(m);
        }
    } else {
        let mut v: Vec<&SmallBytes> = s.iter().collect();
        sort_numeric(&mut v);
        for m in v {
            out.bulk(m);
        }
    }
}

/// Writes a computed result (SINTER, SUNION, SDIFF) as a set reply: ascending when it would
/// be an intset, as Redis builds such results as a new set.
fn reply_result(out: &mut Out, mut members: Vec<&SmallBytes>, max_intset: usize) {
    if is_intset(members.iter().copied(), max_intset) {
        sort_numeric(&mut members);
    }
    out.set(members.len());
    for m in members {
        out.bulk(m);
    }
}

/// Looks every key up as a set for reading (counting hits and misses as Redis does); a
/// missing key is `None`. WRONGTYPE if any key holds another type.
fn read_sets<'a>(
    db: &'a mut Db,
    keys: &[&[u8]],
    now: u64,
) -> Result<Vec<Option<&'a SetValue>>, CmdError> {
    let mut present = Vec::with_capacity(keys.len());
    for k in keys {
        match db.get(k, now) {
            None => present.push(false),
            Some(Value::Set(_)) => present.push(true),
            Some(_) => return Err(CmdError::WrongType),
        }
    }
    // Second pass through shared references, so all sets can be borrowed at once.
    let db: &'a Db = db;
    Ok(keys
        .iter()
        .zip(present)
        .map(|(k, p)| {
            if !p {
                return None;
            }
            match db
                .slot(codis_model::slot_of(k))
                .keys
                .get(*k)
                .map(|e| &e.value)
            {
                Some(Value::Set(s)) => Some(&**s),
                _ => None,
            }
        })
        .collect())
}

/// Members of the intersection, iterating the smallest set; stops after `limit` (0: all).
fn intersect<'a>(sets: &[Option<&'a SetValue>], limit: usize) -> Vec<&'a SmallBytes> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
        return Vec::new(); // a missing key is an empty set
    };
    sets.sort_by_key(|s| s.len());
    let (first, rest) = sets.split_first().expect("at least one key");
    let mut out = Vec::new();
    for m in first.iter() {
        if rest.iter().all(|s| s.contains(m.as_bytes())) {
            out.push(m);
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

fn union<'a>(sets: &[Option<&'a SetValue>]) -> Vec<&'a SmallBytes> {
    let mut seen: Set<&'a SmallBytes> = Set::default();
    for s in sets.iter().flatten() {
        seen.extend(s.iter());
    }
    seen.into_iter().collect()
}

fn difference<'a>(sets: &[Option<&'a SetValue>]) -> Vec<&'a SmallBytes> {
    let Some(first) = sets[0] else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m.as_bytes())))
        .collect()
}

/// Which encoding Redis's SDIFFSTORE result ends up with: its second algorithm copies the
/// whole first set before removing, so the copy converts (one-way) when the first set is not
/// intset material, even if the final result would be.
fn sdiff_result_is_hashtable(
    sets: &[Option<&SetValue>],
    result: &[&SmallBytes],
    max: usize,
) -> bool {
    if !is_intset(result.iter().copied(), max) {
        return true;
    }
    let Some(first) = sets[0] else {
        return false;
    };
    let live = sets.iter().flatten();
    let algo_one = (live.clone().count() * first.len()) / 2;
    let algo_two: usize = live.map(|s| s.len()).sum();
    algo_one > algo_two && !is_intset(first.iter(), max)
}

/// Stores a computed result at `dst` (replacing any value of any type and its TTL), or
/// deletes `dst` when the result is empty. Replies with the result's size.
fn store_result(ctx: &mut Ctx<'_>, dst: &[u8], members: Vec<SmallBytes>, hashtable: bool) {
    let n = members.len();
    let now = ctx.now_ms;
    if n == 0 {
        if ctx.db().delete(dst, now) {
            ctx.dirty(1);
        }
    } else {
        let mut set = SetValue {
            set: Set::with_capacity_and_hasher(n, Default::default()),
            hashtable,
        };
        set.set.extend(members);
        ctx.db()
            .set(dst, Value::Set(crate::store::CowArc::new(set)));
        ctx.dirty(1);
    }
    ctx.out.int(n as i64);
}

// ---------------------------------------------------------------------------------------
// Single-set commands.

fn sadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let db = ctx.db();
    let s = set_or_create(db, args[1], now)?;
    let mut added = 0;
    for m in &args[2..] {
        added += add_member(s, m) as i64;
    }
    if !s.hashtable && s.len() > max {
        s.hashtable = true;
    }
    if added > 0 {
        db.touched(args[1]);
        ctx.dirty(added as u64);
    }
    ctx.out.int(added);
    Ok(())
}

fn srem(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.db();
    let Some(s) = write_set(db, args[1], now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for m in &args[2..] {
        removed += s.swap_remove(*m) as i64;
        if s.is_empty() {
            break;
        }
    }
    if removed > 0 {
        if s.is_empty() {
            db.remove(args[1]);
        } else {
            db.touched(args[1]);
        }
        ctx.dirty(removed as u64);
    }
    ctx.out.int(removed);
    Ok(())
}

fn smembers(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match read_set(db, args[1], now)? {
        None => out.set(0),
        Some(s) => reply_set(out, s),
    }
    Ok(())
}

fn sismember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let found = read_set(db, args[1], now)?.is_some_and(|s| s.contains(args[2]));
    out.int(found as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let s = read_set(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        out.int(s.is_some_and(|s| s.contains(*m)) as i64);
    }
    Ok(())
}

fn scard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    out.int(read_set(db, args[1], now)?.map_or(0, |s| s.len()) as i64);
    Ok(())
}

fn spop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if args.len() == 3 {
        return spop_count(ctx, args);
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let Some(s) = write_set(db, args[1], now)? else {
        ctx.out.null();
        return Ok(());
    };
    let i = rand::rng().random_range(0..s.len());
    let m = s.swap_remove_index(i).expect("index below len");
    if s.is_empty() {
        db.remove(args[1]);
    } else {
        db.touched(args[1]);
    }
    ctx.dirty(1);
    ctx.out.bulk(&m);
    Ok(())
}

fn spop_count(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let positive = || CmdError::err("value is out of range, must be positive");
    let count = arg_i64(args[2]).map_err(|_| positive())?;
    if count < 0 {
        return Err(positive());
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(s) = write_set(db, args[1], now)? else {
        out.set(0);
        return Ok(());
    };
    if count == 0 {
        out.set(0);
        return Ok(());
    }
    let len = s.len();
    if count as u64 >= len as u64 {
        // Everything: replied in set order, then the key goes.
        reply_set(out, s);
        db.remove(args[1]);
        ctx.dirty(len as u64);
        return Ok(());
    }
    let n = count as usize;
    let mut picked: Vec<usize> = rand::seq::index::sample(&mut rand::rng(), len, n).into_vec();
    // Removing from the highest index down: `swap_remove_index` only moves the current last
    // element, which is then never one of the picked indices still to be removed.
    picked.sort_unstable_by(|a, b| b.cmp(a));
    out.set(n);
    for i in picked {
        if let Some(m) = s.swap_remove_index(i) {
            out.bulk(&m);
        }
    }
    db.touched(args[1]);
    ctx.dirty(n as u64);
    Ok(())
}

fn srandmember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let now = ctx.now_ms;
    if args.len() == 2 {
        let (db, out) = ctx.db_out();
        match read_set(db, args[1], now)? {
            None => out.null(),
            Some(s) => {
                let i = rand::rng().random_range(0..s.len());
                out.bulk(s.get_index(i).map_or(&[][..], |m| m));
            }
        }
        return Ok(());
    }
    let count = arg_count(args[2])?;
    let (db, out) = ctx.db_out();
    let Some(s) = read_set(db, args[1], now)? else {
        out.array(0);
        return Ok(());
    };
    let len = s.len();
    let mut rng = rand::rng();
    if count == 0 {
        out.array(0);
    } else if count < 0 {
        let n = count.unsigned_abs() as usize;
        out.array(n);
        for _ in 0..n {
            out.bulk(&s[rng.random_range(0..len)]);
        }
    } else if count as u64 >= len as u64 {
        // The whole set, as an array (not a RESP3 set) in set order.
        let mut v: Vec<&SmallBytes> = s.iter().collect();
        if !s.hashtable {
            sort_numeric(&mut v);
        }
        out.bulks(v);
    } else {
        let n = count as usize;
        out.array(n);
        for i in rand::seq::index::sample(&mut rng, len, n) {
            out.bulk(&s[i]);
        }
    }
    Ok(())
}

fn smove(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (src, dst, member) = (args[1], args[2], args[3]);
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let db = ctx.db();
    // A missing source answers 0 before the destination's type is checked, as in Redis.
    match db.peek(src, now) {
        None => {
            ctx.out.int(0);
            return Ok(());
        }
        Some(e) if !matches!(e.value, Value::Set(_)) => return Err(CmdError::WrongType),
        Some(_) => {}
    }
    if db
        .peek(dst, now)
        .is_some_and(|e| !matches!(e.value, Value::Set(_)))
    {
        return Err(CmdError::WrongType);
    }
    if src == dst {
        let found = db
            .peek(src, now)
            .is_some_and(|e| matches!(&e.value, Value::Set(s) if s.contains(member)));
        ctx.out.int(found as i64);
        return Ok(());
    }
    let Some(s) = write_set(db, src, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    if !s.swap_remove(member) {
        ctx.out.int(0);
        return Ok(());
    }
    if s.is_empty() {
        db.remove(src);
    } else {
        db.touched(src);
    }
    let d = set_or_create(db, dst, now)?;
    let added = add_member(d, member);
    if !d.hashtable && d.len() > max {
        d.hashtable = true;
    }
    if added {
        db.touched(dst);
    }
    ctx.dirty(1 + added as u64);
    ctx.out.int(1);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Multi-set commands.

fn sinter(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let sets = read_sets(db, &args[1..], now)?;
    reply_result(out, intersect(&sets, 0), max);
    Ok(())
}

fn sintercard(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let numkeys_err = || CmdError::err("numkeys should be greater than 0");
    let numkeys = arg_i64(args[1]).map_err(|_| numkeys_err())?;
    if numkeys < 1 {
        return Err(numkeys_err());
    }
    if numkeys as u64 > (args.len() - 2) as u64 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let numkeys = numkeys as usize;
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if eq_ic(args[i], "limit") && i + 1 < args.len() {
            let negative = || CmdError::err("LIMIT can't be negative");
            let l = arg_i64(args[i + 1]).map_err(|_| negative())?;
            if l < 0 {
                return Err(negative());
            }
            limit = l as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let sets = read_sets(db, &args[2..2 + numkeys], now)?;
    out.int(intersect(&sets, limit).len() as i64);
    Ok(())
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let sets = read_sets(ctx.db(), &args[2..], now)?;
    let result = intersect(&sets, 0);
    let hashtable = !is_intset(result.iter().copied(), max);
    let owned = result.into_iter().cloned().collect();
    store_result(ctx, args[1], owned, hashtable);
    Ok(())
}

fn sunion(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let sets = read_sets(db, &args[1..], now)?;
    reply_result(out, union(&sets), max);
    Ok(())
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let sets = read_sets(ctx.db(), &args[2..], now)?;
    let result = union(&sets);
    // Members are only ever added, so the result converted iff it is not intset material.
    let hashtable = !is_intset(result.iter().copied(), max);
    let owned = result.into_iter().cloned().collect();
    store_result(ctx, args[1], owned, hashtable);
    Ok(())
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let sets = read_sets(db, &args[1..], now)?;
    reply_result(out, difference(&sets), max);
    Ok(())
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max = ctx.store.config.set_max_intset_entries;
    let now = ctx.now_ms;
    let sets = read_sets(ctx.db(), &args[2..], now)?;
    let result = difference(&sets);
    let hashtable = sdiff_result_is_hashtable(&sets, &result, max);
    let owned = result.into_iter().cloned().collect();
    store_result(ctx, args[1], owned, hashtable);
    Ok(())
}

fn sscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = super::keys::parse_cursor(args[2])?;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(s) = read_set(db, args[1], now)? else {
        empty_scan(out);
        return Ok(());
    };
    let opts = ScanOpts::parse(&args[3..])?;
    if !s.hashtable {
        // Redis returns an intset whole, in ascending order, whatever the cursor and COUNT.
        let mut v: Vec<&SmallBytes> = s.iter().filter(|m| opts.matches(m)).collect();
        sort_numeric(&mut v);
        scan_header(out, 0, v.len());
        for m in v {
            out.bulk(m);
        }
        return Ok(());
    }
    let (range, next) = scan_window(s.len(), cursor, opts.count);
    let n = range.clone().filter(|&i| opts.matches(&s[i])).count();
    scan_header(out, next, n);
    for i in range.rev() {
        if opts.matches(&s[i]) {
            out.bulk(&s[i]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cmd::hash::testkit::Harness;

    #[test]
    fn intset_conversion() {
        let mut h = Harness::new(|c| c.set_max_intset_entries = 3);
        h.run(&["sadd", "s", "3", "1", "2"]);
        assert_eq!(h.converted("s"), Some(false));
        assert_eq!(
            h.run(&["smembers", "s"]),
            "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n",
            "an intset replies in ascending order"
        );
        h.run(&["sadd", "s", "4"]);
        assert_eq!(h.converted("s"), Some(true));
        h.run(&["srem", "s", "4"]);
        assert_eq!(h.converted("s"), Some(true), "one-way");
        for (i, m) in ["007", "+1", "-0", " 1", "1.0", "a"].iter().enumerate() {
            let key = format!("t{i}");
            h.run(&["sadd", &key, m]);
            assert_eq!(h.converted(&key), Some(true), "{m:?} is not an integer");
        }
        h.run(&["sadd", "u", "-9223372036854775808"]);
        assert_eq!(h.converted("u"), Some(false));
    }

    #[test]
    fn store_results_take_redis_encodings() {
        let mut h = Harness::new(|_| {});
        h.run(&["sadd", "x", "1", "2", "3", "a"]);
        h.run(&["sadd", "y", "a"]);
        h.run(&["sdiffstore", "z", "x", "y"]);
        assert_eq!(h.converted("z"), Some(false));
        // With more keys Redis copies the whole first set first: it converts on "a".
        h.run(&["sdiffstore", "z2", "x", "y", "y", "y"]);
        assert_eq!(h.converted("z2"), Some(true));
        h.run(&["sdiffstore", "z3", "x", "y", "y"]);
        assert_eq!(h.converted("z3"), Some(false));
        h.run(&["sinterstore", "i", "x", "x"]);
        assert_eq!(h.converted("i"), Some(true));
        h.run(&["sunionstore", "u", "z"]);
        assert_eq!(h.converted("u"), Some(false));
        h.run(&["smove", "x", "m", "a"]);
        assert_eq!(h.converted("m"), Some(true));
        h.run(&["smove", "x", "n", "1"]);
        assert_eq!(h.converted("n"), Some(false));
    }

    #[test]
    fn spop_count_removes_what_it_returns() {
        let mut h = Harness::new(|_| {});
        for i in 0..100 {
            h.run(&["sadd", "s", &format!("m{i}")]);
        }
        let r = h.run(&["spop", "s", "30"]);
        let popped: Vec<&str> = r.split("\r\n").filter(|l| l.starts_with('m')).collect();
        assert_eq!(popped.len(), 30);
        for m in popped {
            assert_eq!(h.run(&["sismember", "s", m]), ":0\r\n");
        }
        assert_eq!(h.run(&["scard", "s"]), ":70\r\n");
    }
}
