//! Target side of the asynchronous migration: SLOTSRESTORE-ASYNC, -AUTH and -SELECT.
//!
//! Each message is answered with `*3 SLOTSRESTORE-ASYNC-ACK <code> <message>` (all bulks),
//! code 0 on success; on error the code is -1 and the connection is closed after the reply,
//! as Codis does, so a source never streams into a half-applied key.

use crate::cmd::{CmdResult, Ctx, eq_ic};
use crate::server::client::Action;
use crate::store::{HashValue, SetValue, SmallBytes, Value, ZSet};
use crate::util::number::parse_i64;

/// Writes the ACK; a non-zero code also closes the connection after the reply.
fn reply_ack(ctx: &mut Ctx<'_>, code: i64, msg: &str) {
    ctx.out.array(3);
    ctx.out.bulk(b"SLOTSRESTORE-ASYNC-ACK");
    ctx.out.bulk(code.to_string().as_bytes());
    ctx.out.bulk(msg.as_bytes());
    if code != 0 {
        ctx.client.action = Some(Action::Close);
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// SLOTSRESTORE-ASYNC-AUTH password.
pub(super) fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let pass = ctx.store.config.requirepass.as_bytes();
    if pass.is_empty() {
        reply_ack(ctx, -1, "Client sent AUTH, but no password is set");
        return Ok(());
    }
    // Compare without an early exit, so the time taken tells nothing about the password.
    let given = args[1];
    let mut diff = given.len() ^ pass.len();
    for i in 0..given.len().max(pass.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = pass.get(i).copied().unwrap_or(0);
        diff |= (a ^ b) as usize;
    }
    if diff == 0 {
        ctx.client.authenticated = true;
        reply_ack(ctx, 0, "OK");
    } else {
        ctx.client.authenticated = false;
        reply_ack(ctx, -1, "invalid password");
    }
    Ok(())
}

/// SLOTSRESTORE-ASYNC-SELECT db.
pub(super) fn select(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    match parse_i64(args[1]) {
        Some(n) if n >= 0 && (n as usize) < ctx.store.dbs.len() => {
            ctx.client.db = n as usize;
            reply_ack(ctx, 0, "OK");
        }
        _ => {
            let msg = format!("invalid DB index ({})", lossy(args[1]));
            reply_ack(ctx, -1, &msg);
        }
    }
    Ok(())
}

/// SLOTSRESTORE-ASYNC delete|expire|string|object|list|hash|dict|zset key ...
pub(super) fn restore_async(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    match handle(ctx, args) {
        Ok(msg) => {
            ctx.store.migrate_async.stats.restore_msgs += 1;
            reply_ack(ctx, 0, &msg);
        }
        Err(msg) => {
            ctx.store.migrate_async.stats.restore_errors += 1;
            tracing::warn!("slotsrestore-async refused: {msg}");
            reply_ack(ctx, -1, &msg);
        }
    }
    Ok(())
}

/// Codis's (type, encoding) numbers of a value, for its `wrong type` message.
fn type_encoding(v: &Value) -> (i32, i32) {
    match v {
        Value::Str(_) => (0, 0),
        Value::List(_) => (1, 9),
        Value::Set(s) => (2, if s.hashtable { 2 } else { 6 }),
        Value::ZSet(z) => (3, if z.skiplist { 7 } else { 5 }),
        Value::Hash(h) => (4, if h.hashtable { 2 } else { 5 }),
    }
}

/// Pre-sizing from the source's hint (the whole value's size), bounded by the elements this
/// chunk carries: the hint comes from the peer, and room reserved for elements that never
/// arrive would be memory any client could claim with a one-element request. Later chunks grow
/// the value as they come.
fn cap_hint(hint: i64, in_chunk: usize) -> usize {
    usize::try_from(hint).unwrap_or(0).min(in_chunk)
}

fn handle(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Result<String, String> {
    let dbi = ctx.client.db;
    if ctx.store.migrate_async.db_busy(dbi) {
        return Err("the specified DB is being migrated".into());
    }
    let cmd = lossy(args[1]);
    let bad_args = || format!("wrong number of arguments (argc={},cmd={cmd})", args.len());
    if args.len() < 3 {
        return Err(bad_args());
    }
    let key = args[2];
    let now = ctx.now_ms;
    let sub = args[1];
    if eq_ic(sub, "delete") {
        if args.len() != 3 {
            return Err(bad_args());
        }
        let deleted = ctx.store.dbs[dbi].delete(key, now);
        if deleted {
            ctx.store.dirty += 1;
        }
        return Ok(if deleted { "1" } else { "0" }.into());
    }
    if args.len() < 4 {
        return Err(bad_args());
    }
    let ttl = match parse_i64(args[3]) {
        Some(t) if t >= 0 => t,
        _ => return Err(format!("invalid TTL value (TTL={})", lossy(args[3]))),
    };
    let lim = crate::rdb::Limits::from_config(&ctx.store.config);
    let db = &mut ctx.store.dbs[dbi];
    let msg = if eq_ic(sub, "expire") {
        if args.len() != 4 {
            return Err(bad_args());
        }
        if !db.contains(key, now) {
            return Err(format!("the specified key doesn't exist ({})", lossy(key)));
        }
        "1".to_string()
    } else if eq_ic(sub, "string") || eq_ic(sub, "object") {
        if args.len() != 5 {
            return Err(bad_args());
        }
        if db.contains(key, now) {
            return Err(format!("the specified key already exists ({})", lossy(key)));
        }
        let value = if eq_ic(sub, "string") {
            Value::Str(SmallBytes::new(args[4]))
        } else {
            if !crate::rdb::verify_payload(args[4]) {
                return Err("invalid payload checksum".into());
            }
            match crate::rdb::restore_payload(args[4], &lim) {
                Ok(v) if !v.is_empty() => v,
                _ => return Err("invalid payload body".into()),
            }
        };
        db.set(key, value);
        "1".to_string()
    } else {
        if args.len() < 5 {
            return Err(bad_args());
        }
        let hint = match parse_i64(args[4]) {
            Some(h) if h >= 0 => h,
            _ => return Err(format!("invalid Hint value (Hint={})", lossy(args[4]))),
        };
        let elems = &args[5..];
        let (expect, fresh): ((i32, i32), fn(usize) -> Value) = if eq_ic(sub, "list") {
            ((1, 9), |_| Value::new_list())
        } else if eq_ic(sub, "hash") {
            if !elems.len().is_multiple_of(2) {
                return Err(bad_args());
            }
            ((4, 2), |n| {
                let mut h = HashValue::default();
                h.map.reserve(n);
                h.hashtable = true;
                Value::Hash(crate::store::CowArc::new(h))
            })
        } else if eq_ic(sub, "dict") {
            ((2, 2), |n| {
                let mut s = SetValue::default();
                s.set.reserve(n);
                s.hashtable = true;
                Value::Set(crate::store::CowArc::new(s))
            })
        } else if eq_ic(sub, "zset") {
            if !elems.len().is_multiple_of(2) {
                return Err(bad_args());
            }
            ((3, 7), |n| {
                let mut z = ZSet::default();
                z.dict.reserve(n);
                z.skiplist = true;
                Value::ZSet(crate::store::CowArc::new(z))
            })
        } else {
            return Err(format!("unknown command (argc={},cmd={cmd})", args.len()));
        };
        let mut scores = Vec::new();
        if expect.0 == 3 {
            for (j, raw) in elems.iter().skip(1).step_by(2).enumerate() {
                let Ok(bits) = <[u8; 8]>::try_from(*raw) else {
                    return Err(format!("invalid zset score ([{j}]), bad raw bits"));
                };
                let score = f64::from_bits(u64::from_le_bytes(bits));
                // A NaN would break the sorted set's total order.
                if score.is_nan() {
                    return Err(format!("invalid zset score ([{j}]), NaN"));
                }
                scores.push(score);
            }
        }
        match db.peek(key, now).map(|e| type_encoding(&e.value)) {
            Some(got) if got != expect => {
                return Err(format!(
                    "wrong type (expect={}/{},got={}/{})",
                    expect.0, expect.1, got.0, got.1
                ));
            }
            Some(_) => {}
            None if elems.is_empty() => {
                return Err(format!("the specified key doesn't exist ({})", lossy(key)));
            }
            None => {
                let in_chunk = if expect.0 == 3 || expect.0 == 4 {
                    elems.len() / 2
                } else {
                    elems.len()
                };
                db.set(key, fresh(cap_hint(hint, in_chunk)))
            }
        }
        let value = db.get_mut(key, now).ok_or("key vanished")?;
        let len = match value {
            Value::List(l) => {
                l.extend(elems.iter().map(|e| SmallBytes::new(e)));
                l.len()
            }
            Value::Hash(h) => {
                for pair in elems.chunks_exact(2) {
                    h.insert(SmallBytes::new(pair[0]), SmallBytes::new(pair[1]));
                }
                h.len()
            }
            Value::Set(s) => {
                for m in elems {
                    s.insert(SmallBytes::new(m));
                }
                s.len()
            }
            Value::ZSet(z) => {
                for (pair, score) in elems.chunks_exact(2).zip(&scores) {
                    z.insert(pair[0], *score);
                }
                z.len()
            }
            Value::Str(_) => 0,
        };
        len.to_string()
    };
    // Common tail of every message that writes a value: its TTL.
    if ttl != 0 {
        db.set_expire(key, now + ttl as u64);
    } else {
        db.persist(key);
    }
    db.touched(key);
    ctx.store.dirty += 1;
    Ok(msg)
}
