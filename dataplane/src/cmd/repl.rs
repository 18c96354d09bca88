//! Replication commands: PSYNC, SYNC, REPLCONF, REPLICAOF/SLAVEOF, ROLE, WAIT.
//! The machinery is in `server::repl`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::server::client::{Action, Finish};
use crate::server::repl;

/// Replication commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec("psync", -3, ADMIN | NO_MULTI | NOSCRIPT, (0, 0, 0), psync),
    spec("sync", 1, ADMIN | NO_MULTI | NOSCRIPT, (0, 0, 0), sync),
    spec(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        replconf,
    ),
    spec(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE,
        (0, 0, 0),
        replicaof,
    ),
    spec("slaveof", 3, ADMIN | NOSCRIPT | STALE, (0, 0, 0), replicaof),
    spec(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        (0, 0, 0),
        role,
    ),
    spec("wait", 3, NOSCRIPT, (0, 0, 0), wait),
];

fn psync(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    start_sync(ctx, args[1], arg_i64(args[2])?, false)
}

fn sync(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    start_sync(ctx, b"?", -1, true)
}

fn start_sync(ctx: &mut Ctx<'_>, replid: &[u8], offset: i64, sync: bool) -> CmdResult {
    if ctx.client.is_master {
        return Err(CmdError::err("Replica can't be used as master"));
    }
    if let Some(m) = &ctx.store.repl.master
        && !m.link.up.load(Ordering::Relaxed)
    {
        return Err(CmdError::Msg(
            "NOMASTERLINK Can't SYNC while not connected with my master".into(),
        ));
    }
    if !ctx.out.is_empty() {
        // Earlier replies of the batch are not written yet: the payload would follow them
        // on the same socket, and Redis refuses this too.
        return Err(CmdError::err(
            "SYNC and PSYNC are invalid with pending output",
        ));
    }
    let (reply, attach) = repl::psync(ctx.shared, ctx.store, ctx.client, replid, offset, sync);
    ctx.out.raw(reply.as_bytes());
    ctx.client.action = Some(Action::Replica(Box::new(attach)));
    Ok(())
}

/// `REPLCONF listening-port <port> | capa <..> | ack <offset> | getack * | ip-address <ip>`.
fn replconf(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in args[1..].chunks(2) {
        let (opt, val) = (pair[0], pair[1]);
        if eq_ic(opt, "listening-port") {
            ctx.client.repl_port = super::arg_usize(val)? as u64;
        } else if eq_ic(opt, "ack") {
            // Only sent on the replication stream (read by serve_replica); never answered.
            return Ok(());
        } else if eq_ic(opt, "getack") {
            // Answered by the link task on a replica; a normal client gets nothing.
            return Ok(());
        } else if eq_ic(opt, "capa") {
            if eq_ic(val, "eof") {
                ctx.client.repl_capa_eof = true;
            }
        } else if eq_ic(opt, "ip-address") || eq_ic(opt, "rdb-only") {
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    ctx.out.ok();
    Ok(())
}

/// `REPLICAOF host port` / `REPLICAOF NO ONE` (and SLAVEOF).
fn replicaof(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if eq_ic(args[1], "no") && eq_ic(args[2], "one") {
        if let Some(m) = ctx.store.repl.master.take() {
            m.link.stop();
            ctx.store.repl.shift_replid();
            let active = ctx.store.repl.active() || ctx.store.aof.on;
            for db in &mut ctx.store.dbs {
                db.readonly_expire = false;
                db.log_expired(active);
            }
            tracing::info!(
                replid = %ctx.store.repl.replid,
                "MASTER MODE enabled (user request)"
            );
        }
        ctx.out.ok();
        return Ok(());
    }
    let host = String::from_utf8_lossy(args[1]).into_owned();
    let port = match crate::util::number::parse_i64(args[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Err(CmdError::err("Invalid master port")),
    };
    if let Some(m) = &ctx.store.repl.master {
        if m.host == host && m.port == port {
            ctx.out.simple("OK Already connected to specified master");
            return Ok(());
        }
        m.link.stop();
    }
    let Some(shared) = ctx.shared.arc() else {
        return Err(CmdError::err("server is shutting down"));
    };
    repl::follow(&shared, ctx.store, host, port);
    ctx.out.ok();
    Ok(())
}

fn role(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let r = &ctx.store.repl;
    match &r.master {
        Some(m) => {
            ctx.out.array(5);
            ctx.out.bulk(b"slave");
            ctx.out.bulk(m.host.as_bytes());
            ctx.out.int(m.port as i64);
            ctx.out.bulk(m.link.state_name().as_bytes());
            ctx.out.int(if m.link.up.load(Ordering::Relaxed) {
                r.offset as i64
            } else {
                -1
            });
        }
        None => {
            ctx.out.array(3);
            ctx.out.bulk(b"master");
            ctx.out.int(r.offset as i64);
            let online: Vec<_> = r
                .replicas
                .iter()
                .filter(|s| s.online.load(Ordering::Relaxed))
                .collect();
            ctx.out.array(online.len());
            for s in online {
                ctx.out.array(3);
                ctx.out.bulk(s.ip.as_bytes());
                ctx.out.bulk(s.port.to_string().as_bytes());
                ctx.out
                    .bulk(s.ack.load(Ordering::Relaxed).to_string().as_bytes());
            }
        }
    }
    Ok(())
}

/// `WAIT numreplicas timeout`: replicas whose ACK covers this client's last write.
fn wait(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let want = arg_i64(args[1])?;
    let timeout = arg_i64(args[2])?;
    if timeout < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if ctx.store.repl.master.is_some() {
        return Err(CmdError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let target = ctx.client.repl_woff;
    let links: Vec<_> = ctx.store.repl.replicas.clone();
    let count = move |links: &[Arc<repl::ReplicaLink>]| {
        links
            .iter()
            .filter(|l| l.online.load(Ordering::Relaxed) && l.ack.load(Ordering::Relaxed) >= target)
            .count() as i64
    };
    let now = count(&links);
    if now >= want || ctx.client.in_exec {
        ctx.out.int(now);
        return Ok(());
    }
    // Ask the replicas for their offset now rather than at their next second.
    let mut getack = Vec::new();
    crate::resp::request::encode_command(&mut getack, &[b"REPLCONF", b"GETACK", b"*"]);
    ctx.store.repl.feed(&getack);
    ctx.store.repl.flush();
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
    ctx.client.action = Some(Action::Defer(Box::pin(async move {
        let n = loop {
            let n = count(&links);
            if n >= want || deadline.is_some_and(|d| Instant::now() >= d) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let f: Finish = Box::new(move |ctx: &mut Ctx<'_>| {
            ctx.out.int(n);
            Ok(())
        });
        f
    })));
    Ok(())
}
