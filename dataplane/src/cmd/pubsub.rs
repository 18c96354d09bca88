//! Pub/sub: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB.
//!
//! Subscriptions live in the server-wide registry (`server::pubsub`); messages reach a
//! subscriber through its connection's push channel and are encoded there (RESP2 arrays or
//! RESP3 pushes).

use std::sync::atomic::Ordering;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, eq_ic, spec, unknown_subcommand};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUB_CONTEXT,
        (0, 0, 0),
        subscribe,
    ),
    spec(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUB_CONTEXT,
        (0, 0, 0),
        unsubscribe,
    ),
    spec(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUB_CONTEXT,
        (0, 0, 0),
        psubscribe,
    ),
    spec(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUB_CONTEXT,
        (0, 0, 0),
        punsubscribe,
    ),
    spec(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        (0, 0, 0),
        publish,
    ),
    spec("pubsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), pubsub),
];

fn sync_counts(ctx: &mut Ctx<'_>) {
    ctx.client
        .info
        .subs
        .store(ctx.client.channels.len(), Ordering::Relaxed);
    ctx.client
        .info
        .psubs
        .store(ctx.client.patterns.len(), Ordering::Relaxed);
}

fn confirm(ctx: &mut Ctx<'_>, kind: &[u8], name: Option<&[u8]>) {
    let count = ctx.client.subscriptions() as i64;
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count);
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    for ch in &args[1..] {
        if ctx.client.channels.insert(ch.to_vec()) {
            ctx.shared
                .pubsub
                .lock()
                .subscribe(ch, ctx.client.id, &ctx.client.push_tx);
        }
        confirm(ctx, b"subscribe", Some(ch));
    }
    sync_counts(ctx);
    Ok(())
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    for p in &args[1..] {
        if ctx.client.patterns.insert(p.to_vec()) {
            ctx.shared
                .pubsub
                .lock()
                .psubscribe(p, ctx.client.id, &ctx.client.push_tx);
        }
        confirm(ctx, b"psubscribe", Some(p));
    }
    sync_counts(ctx);
    Ok(())
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let targets: Vec<Vec<u8>> = if args.len() > 1 {
        args[1..].iter().map(|a| a.to_vec()).collect()
    } else {
        ctx.client.channels.iter().cloned().collect()
    };
    if targets.is_empty() {
        confirm(ctx, b"unsubscribe", None);
    }
    for ch in targets {
        if ctx.client.channels.remove(&ch) {
            ctx.shared.pubsub.lock().unsubscribe(&ch, ctx.client.id);
        }
        confirm(ctx, b"unsubscribe", Some(&ch));
    }
    sync_counts(ctx);
    Ok(())
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let targets: Vec<Vec<u8>> = if args.len() > 1 {
        args[1..].iter().map(|a| a.to_vec()).collect()
    } else {
        ctx.client.patterns.iter().cloned().collect()
    };
    if targets.is_empty() {
        confirm(ctx, b"punsubscribe", None);
    }
    for p in targets {
        if ctx.client.patterns.remove(&p) {
            ctx.shared.pubsub.lock().punsubscribe(&p, ctx.client.id);
        }
        confirm(ctx, b"punsubscribe", Some(&p));
    }
    sync_counts(ctx);
    Ok(())
}

fn publish(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let n = ctx.shared.pubsub.lock().publish(args[1], args[2]);
    ctx.out.int(n as i64);
    Ok(())
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "HELP",
    "    Print this help.",
];

fn pubsub(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    if eq_ic(sub, "channels") && args.len() <= 3 {
        let list = ctx.shared.pubsub.lock().channels(args.get(2).copied());
        ctx.out.array(list.len());
        for c in list {
            ctx.out.bulk(&c);
        }
    } else if eq_ic(sub, "numsub") {
        let ps = ctx.shared.pubsub.lock();
        ctx.out.array((args.len() - 2) * 2);
        for ch in &args[2..] {
            ctx.out.bulk(ch);
            ctx.out.int(ps.numsub(ch) as i64);
        }
    } else if eq_ic(sub, "numpat") && args.len() == 2 {
        let n = ctx.shared.pubsub.lock().numpat();
        ctx.out.int(n as i64);
    } else if eq_ic(sub, "help") && args.len() == 2 {
        ctx.out.array(PUBSUB_HELP.len());
        for l in PUBSUB_HELP {
            ctx.out.simple(l);
        }
    } else if ["channels", "numpat", "help"].iter().any(|s| eq_ic(sub, s)) {
        return Err(CmdError::Arity(format!(
            "pubsub|{}",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        )));
    } else {
        return Err(unknown_subcommand(sub, "pubsub"));
    }
    Ok(())
}

/// Drops every subscription of the client (RESET).
pub fn unsubscribe_all(ctx: &mut Ctx<'_>) {
    {
        let mut ps = ctx.shared.pubsub.lock();
        for c in std::mem::take(&mut ctx.client.channels) {
            ps.unsubscribe(&c, ctx.client.id);
        }
        for p in std::mem::take(&mut ctx.client.patterns) {
            ps.punsubscribe(&p, ctx.client.id);
        }
    }
    sync_counts(ctx);
}
