//! Codis slot commands: SLOTSINFO SLOTSSCAN SLOTSDEL SLOTSHASHKEY SLOTSCHECK
//! (`../shared/spec/codis-3.2.md` §4). Migration commands are a separate family.

use codis_model::{MAX_SLOT_NUM, slot_of};

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "slotsinfo",
        -1,
        READONLY | FAST | SLOT,
        (0, 0, 0),
        slotsinfo,
    ),
    spec(
        "slotsscan",
        -3,
        READONLY | RANDOM | SLOT,
        (0, 0, 0),
        slotsscan,
    ),
    spec("slotsdel", -2, WRITE | SLOT, (0, 0, 0), slotsdel),
    spec(
        "slotshashkey",
        -1,
        READONLY | FAST | SLOT,
        (0, 0, 0),
        slotshashkey,
    ),
    spec("slotscheck", -1, READONLY | SLOT, (0, 0, 0), slotscheck),
];

/// Parses a slot number argument (`ERR invalid slot number = N`).
pub fn arg_slot(a: &[u8]) -> Result<usize, CmdError> {
    let n = arg_i64(a)?;
    if n < 0 || n >= MAX_SLOT_NUM as i64 {
        return Err(CmdError::err(format!("invalid slot number = {n}")));
    }
    Ok(n as usize)
}

fn slotsinfo(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Arity("slotsinfo".into()));
    }
    let start = match args.get(1) {
        Some(a) => arg_slot(a)?,
        None => 0,
    };
    let count = match args.get(2) {
        Some(a) => {
            let n = arg_i64(a)?;
            if n < 0 {
                return Err(CmdError::err(format!("invalid slot count = {n}")));
            }
            n as usize
        }
        None => MAX_SLOT_NUM,
    };
    let end = start.saturating_add(count).min(MAX_SLOT_NUM);
    let (db, out) = ctx.db_out();
    let sizes: Vec<(usize, usize)> = (start..end)
        .map(|s| (s, db.slot(s).keys.len()))
        .filter(|&(_, n)| n > 0)
        .collect();
    out.array(sizes.len());
    for (s, n) in sizes {
        out.array(2);
        out.int(s as i64);
        out.int(n as i64);
    }
    Ok(())
}

fn slotsscan(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let slot = arg_slot(args[1])?;
    let cursor =
        crate::util::number::parse_u64(args[2]).ok_or_else(|| CmdError::err("invalid cursor"))?;
    let mut count = 10usize;
    let mut i = 3;
    while i < args.len() {
        if eq_ic(args[i], "count") && i + 1 < args.len() {
            let n = arg_i64(args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let t = db.slot(slot);
    // Same cursor scheme as SCAN: next index + 1, visiting from the last index down.
    let len = t.keys.len();
    let mut idx = if cursor == 0 {
        len
    } else {
        (cursor as usize).min(len)
    };
    let mut keys = Vec::new();
    while idx > 0 && keys.len() < count {
        idx -= 1;
        let (k, _) = t.keys.get_index(idx).expect("in range");
        let expired = !t.expires.is_empty() && t.expires.get(k).is_some_and(|&at| at <= now);
        if !expired {
            keys.push(k.clone());
        }
    }
    let next = if idx == 0 { 0 } else { idx as u64 };
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(keys.len());
    for k in keys {
        out.bulk(&k);
    }
    Ok(())
}

fn slotsdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let slots = args[1..]
        .iter()
        .map(|a| arg_slot(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut removed = 0;
    for &s in &slots {
        removed += ctx.db().clear_slot(s);
    }
    ctx.dirty(removed as u64);
    let (db, out) = ctx.db_out();
    out.array(slots.len());
    for s in slots {
        out.array(2);
        out.int(s as i64);
        out.int(db.slot(s).keys.len() as i64);
    }
    Ok(())
}

fn slotshashkey(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.array(args.len() - 1);
    for k in &args[1..] {
        ctx.out.int(slot_of(k) as i64);
    }
    Ok(())
}

fn slotscheck(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let db = ctx.db();
    let mut step = 0;
    for s in 0..MAX_SLOT_NUM {
        let t = db.slot(s);
        for k in t.keys.keys() {
            step += 1;
            let in_tag_index = !codis_model::slot::has_tag(k)
                || db
                    .tag_group(codis_model::slot::tag_crc(k))
                    .is_some_and(|g| g.contains(k.as_bytes()));
            if slot_of(k) != s || !in_tag_index {
                return Err(CmdError::err(format!(
                    "step {step}, miss = '{}'",
                    String::from_utf8_lossy(k)
                )));
            }
        }
        for k in t.expires.keys() {
            step += 1;
            if !t.keys.contains_key(k.as_bytes()) {
                return Err(CmdError::err(format!(
                    "step {step}, miss = '{}'",
                    String::from_utf8_lossy(k)
                )));
            }
        }
    }
    ctx.out.ok();
    Ok(())
}
