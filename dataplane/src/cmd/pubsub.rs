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

/// Channels or patterns: which set of the client and which registry calls a command uses.
#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Channel)
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Pattern)
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Channel)
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Pattern)
}

fn subscribe_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: Kind) -> CmdResult {
    for name in &args[1..] {
        let (new, verb): (bool, &[u8]) = match kind {
            Kind::Channel => (ctx.client.channels.insert(name.to_vec()), b"subscribe"),
            Kind::Pattern => (ctx.client.patterns.insert(name.to_vec()), b"psubscribe"),
        };
        if new {
            let mut ps = ctx.shared.pubsub.lock();
            match kind {
                Kind::Channel => ps.subscribe(name, ctx.client.id, &ctx.client.push_tx),
                Kind::Pattern => ps.psubscribe(name, ctx.client.id, &ctx.client.push_tx),
            };
        }
        confirm(ctx, verb, Some(name));
    }
    sync_counts(ctx);
    Ok(())
}

/// (P)UNSUBSCRIBE: the named channels/patterns, or all of the client's when none is named.
fn unsubscribe_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: Kind) -> CmdResult {
    let (current, verb): (&std::collections::BTreeSet<Vec<u8>>, &[u8]) = match kind {
        Kind::Channel => (&ctx.client.channels, b"unsubscribe"),
        Kind::Pattern => (&ctx.client.patterns, b"punsubscribe"),
    };
    let targets: Vec<Vec<u8>> = if args.len() > 1 {
        args[1..].iter().map(|a| a.to_vec()).collect()
    } else {
        current.iter().cloned().collect()
    };
    if targets.is_empty() {
        confirm(ctx, verb, None);
    }
    for name in targets {
        let removed = match kind {
            Kind::Channel => ctx.client.channels.remove(&name),
            Kind::Pattern => ctx.client.patterns.remove(&name),
        };
        if removed {
            let mut ps = ctx.shared.pubsub.lock();
            match kind {
                Kind::Channel => ps.unsubscribe(&name, ctx.client.id),
                Kind::Pattern => ps.punsubscribe(&name, ctx.client.id),
            };
        }
        confirm(ctx, verb, Some(&name));
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
