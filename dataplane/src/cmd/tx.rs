//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH.

use std::sync::atomic::Ordering;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, spec};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL,
        (0, 0, 0),
        multi,
    ),
    spec(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_MONITOR | TX_CONTROL,
        (0, 0, 0),
        exec,
    ),
    spec(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL,
        (0, 0, 0),
        discard,
    ),
    spec(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL,
        (1, -1, 1),
        watch,
    ),
    spec(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        (0, 0, 0),
        unwatch,
    ),
];

fn multi(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.info.in_multi.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// Drops a transaction in progress, if any.
pub fn discard_transaction(ctx: &mut Ctx<'_>) {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.info.in_multi.store(false, Ordering::Relaxed);
}

/// Forgets every WATCHed key.
pub fn unwatch_all(ctx: &mut Ctx<'_>) {
    for (db, key) in std::mem::take(&mut ctx.client.watched) {
        ctx.store.dbs[db].unwatch(&key, &ctx.client.watch_flag);
    }
    ctx.client.watch_flag.store(false, Ordering::Relaxed);
}

fn exec(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let Some(queue) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    let aborted = ctx.client.multi_error;
    discard_transaction(ctx);
    if aborted {
        unwatch_all(ctx);
        return Err(CmdError::Msg(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // A WATCHed key may also have expired since WATCH.
    let expired_watched = ctx.client.watched.iter().any(|(db, key)| {
        ctx.store.dbs[*db]
            .expire_at(key)
            .is_some_and(|at| at <= ctx.now_ms)
    });
    if ctx.client.watch_flag.load(Ordering::Relaxed) || expired_watched {
        unwatch_all(ctx);
        ctx.out.null_array();
        return Ok(());
    }
    unwatch_all(ctx);
    ctx.out.array(queue.len());
    ctx.client.in_exec = true;
    for cmd in &queue {
        let argv: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
        super::execute(ctx, &argv);
    }
    ctx.client.in_exec = false;
    Ok(())
}

fn discard(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    discard_transaction(ctx);
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    for key in &args[1..] {
        if ctx
            .client
            .watched
            .iter()
            .any(|(d, k)| *d == db && k.as_slice() == *key)
        {
            continue;
        }
        ctx.store.dbs[db].watch(key, &ctx.client.watch_flag);
        ctx.client.watched.push((db, key.to_vec()));
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}
