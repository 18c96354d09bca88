//! DUMP and RESTORE, with payloads byte-compatible with Redis 7.0's (see [`crate::rdb`]).

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, eq_ic, spec};
use crate::rdb::{self, Limits};
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("dump", 2, READONLY, (1, 1, 1), dump),
    spec("restore", -4, WRITE | DENYOOM, (1, 1, 1), restore),
];

/// `DUMP key`: the value serialized as Redis does, or nil.
fn dump(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let lim = Limits::from_config(&ctx.store.config);
    let (db, out) = ctx.db_out();
    match db.get(args[1], now) {
        None => out.null(),
        Some(v) => out.bulk(&rdb::dump_payload(v, &lim)),
    }
    Ok(())
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`.
fn restore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut replace, mut absttl) = (false, false);
    let mut idle: Option<i64> = None;
    let mut freq: Option<i64> = None;
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = args[j];
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "absttl") {
            absttl = true;
        } else if eq_ic(a, "idletime") && more && freq.is_none() {
            let v = parse_i64(args[j + 1]).ok_or(CmdError::NotInteger)?;
            if v < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v);
            j += 1;
        } else if eq_ic(a, "freq") && more && idle.is_none() {
            let v = parse_i64(args[j + 1]).ok_or(CmdError::NotInteger)?;
            if !(0..=255).contains(&v) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = Some(v);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let key = args[1];
    let now = ctx.now_ms;
    if !replace && ctx.db().contains(key, now) {
        return Err(CmdError::Msg(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let ttl = parse_i64(args[2]).ok_or(CmdError::NotInteger)?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let payload = args[3];
    if !rdb::verify_payload(payload) {
        return Err(CmdError::err("DUMP payload version or checksum are wrong"));
    }
    let lim = Limits::from_config(&ctx.store.config);
    let value =
        rdb::restore_payload(payload, &lim).map_err(|_| CmdError::err("Bad data format"))?;

    let deleted = replace && ctx.db().delete(key, now);
    let expire_at = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(t.saturating_add(now as i64)),
    };
    if let Some(at) = expire_at
        && at <= now as i64
    {
        // Already expired: the key is not created (an old one was deleted by REPLACE).
        if deleted {
            ctx.dirty(1);
        }
        ctx.out.ok();
        return Ok(());
    }
    let lru = access_field(ctx, idle, freq);
    let db = ctx.db();
    db.insert(key, value);
    if let Some(at) = expire_at {
        db.set_expire(key, at as u64);
    }
    if let Some(lru) = lru
        && let Some(e) = db.entry_mut(key)
    {
        e.lru = lru;
    }
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

/// The LRU/LFU field a restored key gets from IDLETIME (LRU policies) or FREQ (LFU policies),
/// as Redis's `objectSetLRUOrLFU`; None to keep the default stamp.
fn access_field(ctx: &Ctx<'_>, idle: Option<i64>, freq: Option<i64>) -> Option<u32> {
    const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;
    if ctx.store.config.maxmemory_policy.is_lfu() {
        let minutes = ((crate::store::now_ms() / 60_000) & 0xffff) as u32;
        freq.map(|f| (minutes << 8) | f as u32)
    } else {
        idle.map(|idle| {
            let clock = ctx.store.lru_clock as i64;
            let mut abs = clock - idle;
            if abs < 0 {
                // Wrapped: put it half a clock period in the future, which reads as very idle.
                abs = (clock + LRU_CLOCK_MAX / 2) % LRU_CLOCK_MAX;
            }
            abs as u32
        })
    }
}
