//! The GEO command family: GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER (and
//! their `_RO` forms) GEOSEARCH GEOSEARCHSTORE.
//!
//! A GEO set is a sorted set whose scores are 52-bit geohashes ([`geohash`]), so it migrates,
//! persists and replicates as any sorted set. GEOADD is ZADD with computed scores; the
//! searches scan the score ranges of up to nine geohash cells, as Redis does, and reply in
//! Redis's order: the scan order when unsorted, a stable sort by distance otherwise, and
//! Redis's partial quicksort ([`partial_sort`]) when COUNT keeps fewer than were found, so
//! even ties come out in the same order. Writes (GEOADD, the STORE forms) are propagated as
//! executed: running them again on a replica or from the AOF gives the same result.
//!
//! Arguments are compared as Redis compares them, as C strings (`strcasecmp`): an option or
//! a unit is read up to its first NUL byte.

pub mod geohash;

use std::cmp::Ordering;

use self::geohash::{Shape, ShapeKind};
use super::flags::*;
use super::zset::{AddFlags, parse_score, read_zset, store_result, zadd_scored};
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, spec};
use crate::resp::reply::Out;
use crate::store::{SmallBytes, ZSet};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), geoadd),
    spec("geodist", -4, READONLY, (1, 1, 1), geodist),
    spec("geohash", -2, READONLY, (1, 1, 1), geohash_cmd),
    spec("geopos", -2, READONLY, (1, 1, 1), geopos),
    spec("georadius", -6, WRITE | DENYOOM, (1, 1, 1), georadius),
    spec("georadius_ro", -6, READONLY, (1, 1, 1), georadius_ro),
    spec(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM,
        (1, 1, 1),
        georadiusbymember,
    ),
    spec(
        "georadiusbymember_ro",
        -5,
        READONLY,
        (1, 1, 1),
        georadiusbymember_ro,
    ),
    spec("geosearch", -7, READONLY, (1, 1, 1), geosearch),
    spec(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        (1, 2, 1),
        geosearchstore,
    ),
];

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `strcasecmp(arg, kw) == 0` on the argument read as a C string.
fn kw(a: &[u8], kw: &str) -> bool {
    let end = a.iter().position(|&b| b == 0).unwrap_or(a.len());
    a[..end].eq_ignore_ascii_case(kw.as_bytes())
}

/// A double argument; `msg` replaces Redis's default error text (`getDoubleFromObjectOrReply`).
fn arg_double(a: &[u8], msg: Option<&str>) -> Result<f64, CmdError> {
    parse_score(a).ok_or_else(|| match msg {
        Some(m) => CmdError::err(m),
        None => CmdError::NotFloat,
    })
}

/// A longitude, latitude pair, within Redis's limits.
fn lon_lat(args: &[&[u8]]) -> Result<(f64, f64), CmdError> {
    let lon = arg_double(args[0], None)?;
    let lat = arg_double(args[1], None)?;
    if !(geohash::LON_MIN..=geohash::LON_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// A unit's size in meters.
fn unit(a: &[u8]) -> Result<f64, CmdError> {
    if kw(a, "m") {
        Ok(1.0)
    } else if kw(a, "km") {
        Ok(1000.0)
    } else if kw(a, "ft") {
        Ok(0.3048)
    } else if kw(a, "mi") {
        Ok(1609.34)
    } else {
        Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

/// `radius unit`: (radius, meters per unit).
fn radius_unit(args: &[&[u8]]) -> Result<(f64, f64), CmdError> {
    let r = arg_double(args[0], Some("need numeric radius"))?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((r, unit(args[1])?))
}

/// `width height unit`: (width, height, meters per unit).
fn box_unit(args: &[&[u8]]) -> Result<(f64, f64, f64), CmdError> {
    let w = arg_double(args[0], Some("need numeric width"))?;
    let h = arg_double(args[1], Some("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((w, h, unit(args[2])?))
}

/// The position of a member, decoded from its score.
fn member_pos(z: &ZSet, member: &[u8]) -> Result<(f64, f64), CmdError> {
    z.score(member)
        .map(geohash::decode_score)
        .ok_or_else(|| CmdError::err("could not decode requested zset member"))
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// A distance as Redis writes it: a bulk string with 4 decimals (`fixedpoint_d2string`:
/// rounded half to even after scaling, as `llrint` does).
fn reply_distance(out: &mut Out, d: f64) {
    let s = if d == 0.0 {
        "0.0000".to_string()
    } else {
        let v = (d * 10000.0).round_ties_even();
        let v = if v.is_nan() {
            i64::MIN
        } else {
            geohash::c_double_to_i64(v)
        };
        let sign = if v < 0 { "-" } else { "" };
        let a = v.unsigned_abs();
        format!("{sign}{}.{:04}", a / 10000, a % 10000)
    };
    out.bulk(s.as_bytes());
}

/// A coordinate as Redis writes it (`addReplyHumanLongDouble`): `%.17Lf` without trailing
/// zeros; a bulk string in RESP2, a double in RESP3.
fn reply_coord(out: &mut Out, d: f64) {
    let mut s = fixed17(d);
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    if out.resp3 {
        out.raw(b",");
        out.raw(s.as_bytes());
        out.raw(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

/// `d` with exactly 17 decimals, correctly rounded (C's `%.17f`), like `format!("{d:.17}")`.
///
/// Why not `format!`: 17 decimals of a coordinate are about 20 significant digits, more than
/// a double holds, and Rust's exact formatter then falls back to big-number arithmetic on
/// nearly every call (GEOPOS ran at half redis-server's rate). A coordinate is
/// `m * 2^e` with `m < 2^53` and `e ≤ -44`, so `d * 10^17` is `m * 10^17 >> -e`, exact in
/// 128 bits; other values take the slow path.
fn fixed17(d: f64) -> String {
    const SCALE: u128 = 100_000_000_000_000_000;
    let bits = d.to_bits();
    let neg = bits >> 63 == 1;
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp_bits - 1075)
    };
    if exp_bits == 0x7ff || !(-120..=0).contains(&e) {
        return format!("{d:.17}");
    }
    let shift = (-e) as u32;
    let p = u128::from(m) * SCALE;
    let mut q = p >> shift;
    let rem = p - (q << shift);
    let half = if shift == 0 { 0 } else { 1u128 << (shift - 1) };
    if shift > 0 && (rem > half || (rem == half && q & 1 == 1)) {
        q += 1;
    }
    let sign = if neg { "-" } else { "" };
    format!("{sign}{}.{:017}", q / SCALE, q % SCALE)
}

// ---------------------------------------------------------------------------------------------
// GEOADD GEODIST GEOHASH GEOPOS
// ---------------------------------------------------------------------------------------------

/// GEOADD key [NX|XX] [CH] lon lat member [...]: ZADD with the encoded positions as scores.
fn geoadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if kw(a, "nx") {
            f.nx = true;
        } else if kw(a, "xx") {
            f.xx = true;
        } else if kw(a, "ch") {
            f.ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (f.nx && f.xx) {
        return Err(CmdError::Syntax);
    }
    // Positions checked in order (the first bad one is the error), then added as ZADD adds.
    let n = rest.len() / 3;
    let mut small = [0f64; 16];
    let mut big = Vec::new();
    let scores: &mut [f64] = if n <= small.len() {
        &mut small[..n]
    } else {
        big.resize(n, 0.0);
        &mut big
    };
    for (s, t) in scores.iter_mut().zip(rest.chunks(3)) {
        let (lon, lat) = lon_lat(t)?;
        *s = geohash::encode_score(lon, lat) as f64;
    }
    zadd_scored(ctx, args[1], f, scores, |k| rest[3 * k + 2])
}

/// GEODIST key member1 member2 [unit]
fn geodist(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit(args[4])?,
        _ => return Err(CmdError::Syntax),
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(z) = read_zset(db, args[1], now)? else {
        out.null();
        return Ok(());
    };
    match (z.score(args[2]), z.score(args[3])) {
        (Some(a), Some(b)) => {
            let (lon1, lat1) = geohash::decode_score(a);
            let (lon2, lat2) = geohash::decode_score(b);
            reply_distance(out, geohash::distance(lon1, lat1, lon2, lat2) / to_meters);
        }
        _ => out.null(),
    }
    Ok(())
}

/// GEOHASH key [member ...]: 11-character geohash strings, null for a missing member.
fn geohash_cmd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let z = read_zset(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => out.bulk(&geohash::geohash_string(s)),
            None => out.null(),
        }
    }
    Ok(())
}

/// GEOPOS key [member ...]: `[lon, lat]` pairs, a null array for a missing member.
fn geopos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let z = read_zset(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let (lon, lat) = geohash::decode_score(s);
                out.array(2);
                reply_coord(out, lon);
                reply_coord(out, lat);
            }
            None => out.null_array(),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// GEORADIUS GEORADIUSBYMEMBER GEOSEARCH GEOSEARCHSTORE
// ---------------------------------------------------------------------------------------------

fn georadius(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::Radius { store: true })
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::Radius { store: false })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::ByMember { store: true })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::ByMember { store: false })
}

fn geosearch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    search_generic(ctx, args, Variant::Search { store: true })
}

/// Which search command runs; `store` says whether it may store its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    Radius { store: bool },
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    ByMember { store: bool },
    /// GEOSEARCH key ... / GEOSEARCHSTORE dst key ...
    Search { store: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One point found by a search.
#[derive(Debug)]
struct Found<'a> {
    member: &'a [u8],
    score: f64,
    lon: f64,
    lat: f64,
    /// Meters, then the reply's unit.
    dist: f64,
}

/// Everything a search command asked for.
#[derive(Debug)]
struct Query<'a> {
    shape: Shape,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    sort: Sort,
    count: usize,
    any: bool,
    /// The destination, and whether it stores distances instead of hashes.
    store: Option<(&'a [u8], bool)>,
}

/// Parses a search command as Redis's `georadiusGeneric` does, in its order, so the first
/// error reported is Redis's. `z` is the source set (None: missing key, some arguments then
/// go unchecked, as in Redis).
fn parse_query<'a>(
    args: &[&'a [u8]],
    variant: Variant,
    z: Option<&ZSet>,
) -> Result<Query<'a>, CmdError> {
    let mut shape = Shape {
        lon: 0.0,
        lat: 0.0,
        conversion: 0.0,
        kind: ShapeKind::Radius(0.0),
    };
    let mut store = None;
    let base = match variant {
        Variant::Radius { .. } => {
            (shape.lon, shape.lat) = lon_lat(&args[2..4])?;
            let (r, conv) = radius_unit(&args[4..6])?;
            (shape.kind, shape.conversion) = (ShapeKind::Radius(r), conv);
            6
        }
        Variant::ByMember { .. } => {
            if let Some(z) = z {
                (shape.lon, shape.lat) = member_pos(z, args[2])?;
                let (r, conv) = radius_unit(&args[3..5])?;
                (shape.kind, shape.conversion) = (ShapeKind::Radius(r), conv);
            }
            5
        }
        Variant::Search { store: true } => {
            store = Some((args[1], false));
            3
        }
        Variant::Search { store: false } => 2,
    };
    let search = matches!(variant, Variant::Search { .. });
    let may_store = matches!(
        variant,
        Variant::Radius { store: true } | Variant::ByMember { store: true }
    );
    let (mut with_dist, mut with_hash, mut with_coord) = (false, false, false);
    let (mut from_member, mut from_loc, mut by_radius, mut by_box) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count = 0usize;
    let opts = &args[base..];
    let mut i = 0;
    while i < opts.len() {
        let a = opts[i];
        let left = opts.len() - i - 1;
        if kw(a, "withdist") {
            with_dist = true;
        } else if kw(a, "withhash") {
            with_hash = true;
        } else if kw(a, "withcoord") {
            with_coord = true;
        } else if kw(a, "any") {
            any = true;
        } else if kw(a, "asc") {
            sort = Sort::Asc;
        } else if kw(a, "desc") {
            sort = Sort::Desc;
        } else if kw(a, "count") && left >= 1 {
            let n = arg_i64(opts[i + 1])?;
            if n <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            count = n as usize;
            i += 1;
        } else if kw(a, "store") && left >= 1 && may_store {
            store = Some((opts[i + 1], false));
            i += 1;
        } else if kw(a, "storedist") && left >= 1 && may_store {
            store = Some((opts[i + 1], true));
            i += 1;
        } else if kw(a, "storedist") && variant == (Variant::Search { store: true }) {
            store = Some((args[1], true));
        } else if kw(a, "frommember") && left >= 1 && search && !from_loc {
            if let Some(z) = z {
                (shape.lon, shape.lat) = member_pos(z, opts[i + 1])?;
            }
            from_member = true;
            i += 1;
        } else if kw(a, "fromlonlat") && left >= 2 && search && !from_member {
            (shape.lon, shape.lat) = lon_lat(&opts[i + 1..i + 3])?;
            from_loc = true;
            i += 2;
        } else if kw(a, "byradius") && left >= 2 && search && !by_box {
            let (r, conv) = radius_unit(&opts[i + 1..i + 3])?;
            (shape.kind, shape.conversion) = (ShapeKind::Radius(r), conv);
            by_radius = true;
            i += 2;
        } else if kw(a, "bybox") && left >= 3 && search && !by_radius {
            let (width, height, conv) = box_unit(&opts[i + 1..i + 4])?;
            (shape.kind, shape.conversion) = (ShapeKind::Box { width, height }, conv);
            by_box = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (with_dist || with_hash || with_coord) {
        let what = if variant == (Variant::Search { store: true }) {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CmdError::err(format!(
            "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(args[0]);
    if search && !(from_member || from_loc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(by_radius || by_box) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    Ok(Query {
        shape,
        with_dist,
        with_hash,
        with_coord,
        sort,
        count,
        any,
        store,
    })
}

/// The members of `z` inside `shape`, in Redis's scan order: cell by cell, each cell's
/// score range in order. With `limit` > 0 the scan stops once that many were found.
fn scan<'a>(z: &'a ZSet, shape: &Shape, limit: usize) -> Vec<Found<'a>> {
    let cells = shape.search_cells();
    let mut found = Vec::new();
    let full = |found: &Vec<Found<'_>>| limit > 0 && found.len() >= limit;
    let mut last = 0;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // A huge radius can make neighbours the same cell: scan it once. (Redis compares
        // with the last scanned neighbour only, never with the centre cell.)
        if last != 0 && *cell == cells[last] {
            continue;
        }
        if full(&found) {
            break;
        }
        let min = cell.align52() as f64;
        let max = geohash::HashBits {
            bits: cell.bits + 1,
            step: cell.step,
        }
        .align52() as f64;
        let start = z.partition(|s, _| s < min);
        for (member, score) in z.range(start, z.len()) {
            if score >= max {
                break;
            }
            let (lon, lat) = geohash::decode_score(score);
            if let Some(dist) = shape.contains(lon, lat) {
                found.push(Found {
                    member,
                    score,
                    lon,
                    lat,
                    dist,
                });
            }
            if full(&found) {
                break;
            }
        }
        last = i;
    }
    found
}

/// Redis's comparator on distances (`sort_gp_asc`), reversed for DESC.
fn by_dist(a: &Found<'_>, b: &Found<'_>, desc: bool) -> Ordering {
    let o = if a.dist > b.dist {
        Ordering::Greater
    } else if a.dist == b.dist {
        Ordering::Equal
    } else {
        Ordering::Less
    };
    if desc { o.reverse() } else { o }
}

fn search_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], variant: Variant) -> CmdResult {
    let src = if variant == (Variant::Search { store: true }) {
        2
    } else {
        1
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let z = read_zset(db, args[src], now)?;
    let q = parse_query(args, variant, z)?;
    let Some(z) = z else {
        return match q.store {
            Some((dst, _)) => {
                if ctx.db().delete(dst, now) {
                    ctx.dirty(1);
                }
                ctx.out.int(0);
                Ok(())
            }
            None => {
                out.array(0);
                Ok(())
            }
        };
    };
    let mut sort = q.sort;
    if q.count != 0 && sort == Sort::None && !q.any {
        // COUNT means "the nearest N" unless ANY says otherwise.
        sort = Sort::Asc;
    }
    let mut found = scan(z, &q.shape, if q.any { q.count } else { 0 });
    if found.is_empty() && q.store.is_none() {
        out.array(0);
        return Ok(());
    }
    let total = found.len();
    let returned = if q.count == 0 {
        total
    } else {
        total.min(q.count)
    };
    if sort != Sort::None {
        let desc = sort == Sort::Desc;
        if returned == total {
            // glibc's qsort is a stable merge sort.
            found.sort_by(|a, b| by_dist(a, b, desc));
        } else {
            partial_sort(&mut found, returned - 1, &|a, b| by_dist(a, b, desc));
        }
    }
    found.truncate(returned);
    for f in &mut found {
        f.dist /= q.shape.conversion;
    }
    let Some((dst, store_dist)) = q.store else {
        let extra = usize::from(q.with_dist) + usize::from(q.with_hash) + usize::from(q.with_coord);
        out.array(found.len());
        for f in &found {
            if extra > 0 {
                out.array(extra + 1);
            }
            out.bulk(f.member);
            if q.with_dist {
                reply_distance(out, f.dist);
            }
            if q.with_hash {
                out.int(geohash::c_double_to_i64(f.score));
            }
            if q.with_coord {
                out.array(2);
                reply_coord(out, f.lon);
                reply_coord(out, f.lat);
            }
        }
        return Ok(());
    };
    let pairs: Vec<(SmallBytes, f64)> = found
        .iter()
        .map(|f| {
            let score = if store_dist { f.dist } else { f.score };
            (SmallBytes::new(f.member), score)
        })
        .collect();
    let n = pairs.len() as u64;
    store_result(ctx, dst, pairs, None)?;
    // Redis counts one change per stored member.
    if n > 1 {
        ctx.dirty(n - 1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Redis's partial quicksort
// ---------------------------------------------------------------------------------------------

/// Orders `v` so that positions `0..=upto` hold what a full sort would put there, by the
/// same steps as Redis's `pqsort` (Bentley & McIlroy's quicksort that skips the partitions
/// outside the wanted range). Matching its steps matters for ties: which of several points
/// at the same distance make the cut, and in which order, is whatever this algorithm
/// leaves, and replies must match Redis's.
fn partial_sort<T>(v: &mut [T], upto: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    pqsort_from(v, 0, v.len(), upto, cmp);
}

/// The index of the median of three, as BSD's `med3` picks it.
fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    let lt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Less;
    let gt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Greater;
    if lt(a, b) {
        if lt(b, c) {
            b
        } else if lt(a, c) {
            c
        } else {
            a
        }
    } else if gt(b, c) {
        b
    } else if lt(a, c) {
        a
    } else {
        c
    }
}

/// Swaps `n` elements starting at `a` with `n` starting at `b` (ranges never overlap).
fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

/// Sorts the part `v[a..a + n]` as far as it intersects positions `0..=upto`.
fn pqsort_from<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    upto: usize,
    cmp: &impl Fn(&T, &T) -> Ordering,
) {
    // A part [s, s + m) matters when it intersects [0, upto].
    let wanted = |s: usize, _m: usize| s <= upto;
    loop {
        if n < 7 {
            for m in a + 1..a + n {
                let mut l = m;
                while l > a && cmp(&v[l - 1], &v[l]) == Ordering::Greater {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        // Invariant: [a+1, pa) equal to the pivot, [pa, pb) less, (pc, pd] greater,
        // (pd, a+n) equal.
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let r = cmp(&v[pb], &v[a]);
                if r == Ordering::Greater {
                    break;
                }
                if r == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let r = cmp(&v[pc], &v[a]);
                if r == Ordering::Less {
                    break;
                }
                if r == Ordering::Equal {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let left = pb - pa;
        if left > 1 && wanted(a, left) {
            pqsort_from(v, a, left, upto, cmp);
        }
        let right = pd - pc;
        if right > 1 {
            a = pn - right;
            n = right;
            if wanted(a, n) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sort_orders_the_prefix() {
        let mut seed = 7u64;
        for len in [1usize, 5, 7, 8, 41, 100, 1000] {
            for upto in [0, len / 3, len - 1] {
                let mut v: Vec<u32> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((seed >> 33) % 50) as u32
                    })
                    .collect();
                let mut sorted = v.clone();
                sorted.sort();
                partial_sort(&mut v, upto, &|a: &u32, b: &u32| a.cmp(b));
                assert_eq!(v[..=upto], sorted[..=upto], "len {len} upto {upto}");
            }
        }
    }

    #[test]
    fn distances_have_four_decimals() {
        let mut out = Out::new();
        reply_distance(&mut out, 0.0);
        reply_distance(&mut out, 166274.15156960033);
        reply_distance(&mut out, 0.00004);
        reply_distance(&mut out, 0.5);
        assert_eq!(
            out.buf,
            b"$6\r\n0.0000\r\n$11\r\n166274.1516\r\n$6\r\n0.0000\r\n$6\r\n0.5000\r\n"
        );
    }

    #[test]
    fn fixed17_is_format() {
        let mut seed = 99u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values = vec![
            0.0,
            -0.0,
            180.0,
            -180.0,
            85.05112878,
            1e-30,
            5e-324,
            1e300,
            0.5,
            f64::INFINITY,
        ];
        for _ in 0..20_000 {
            let r = (next() >> 11) as f64 / (1u64 << 53) as f64;
            values.push(r * 360.0 - 180.0);
            values.push(f64::from_bits(next()));
        }
        for v in values {
            assert_eq!(fixed17(v), format!("{v:.17}"), "{v:e}");
        }
    }

    #[test]
    fn coordinates_as_redis_prints_them() {
        let mut out = Out::new();
        reply_coord(&mut out, 13.361389338970184);
        reply_coord(&mut out, -0.0);
        reply_coord(&mut out, 180.0);
        assert_eq!(
            out.buf,
            b"$20\r\n13.36138933897018433\r\n$1\r\n0\r\n$3\r\n180\r\n"
        );
    }
}
