//! Connection commands: PING ECHO QUIT SELECT AUTH HELLO RESET CLIENT.

use std::sync::atomic::Ordering;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec, unknown_subcommand};
use crate::server::client::Action;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("ping", -1, FAST | SUB_CONTEXT, (0, 0, 0), ping),
    spec("echo", 2, FAST, (0, 0, 0), echo),
    spec(
        "quit",
        -1,
        NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT,
        (0, 0, 0),
        quit,
    ),
    spec("select", 2, LOADING | STALE | FAST, (0, 0, 0), select),
    spec(
        "auth",
        -2,
        NO_AUTH | FAST | STALE | SKIP_MONITOR,
        (0, 0, 0),
        auth,
    ),
    spec(
        "hello",
        -1,
        NO_AUTH | FAST | STALE | SKIP_MONITOR,
        (0, 0, 0),
        hello,
    ),
    spec(
        "reset",
        1,
        NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT,
        (0, 0, 0),
        reset,
    ),
    spec("client", -2, ADMIN | STALE | NOSCRIPT, (0, 0, 0), client),
];

fn ping(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::Arity("ping".into()));
    }
    if ctx.client.in_pubsub_context() {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).copied().unwrap_or(b""));
    } else if let Some(msg) = args.get(1) {
        ctx.out.bulk(msg);
    } else {
        ctx.out.simple("PONG");
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}

fn quit(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    ctx.client.action = Some(Action::Close);
    Ok(())
}

fn select(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let id = arg_i64(args[1])?;
    if id < 0 || id as usize >= ctx.store.dbs.len() || id > i32::MAX as i64 {
        return Err(CmdError::err("DB index is out of range"));
    }
    ctx.client.db = id as usize;
    ctx.out.ok();
    Ok(())
}

/// Checks a username/password pair against `requirepass` (only the `default` user exists).
fn check_password(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> CmdResult {
    let required = ctx.store.config.requirepass.as_bytes();
    if user == b"default" && (required.is_empty() || required == pass) {
        ctx.client.authenticated = true;
        return Ok(());
    }
    Err(CmdError::Msg(
        "WRONGPASS invalid username-password pair or user is disabled.".into(),
    ))
}

fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if args.len() == 2 && ctx.store.config.requirepass.is_empty() {
        return Err(CmdError::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let (user, pass) = if args.len() == 2 {
        (&b"default"[..], args[1])
    } else {
        (args[1], args[2])
    };
    check_password(ctx, user, pass)?;
    ctx.out.ok();
    Ok(())
}

fn hello(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut proto = if ctx.client.resp3 { 3 } else { 2 };
    let mut i = 1;
    if args.len() >= 2 {
        let v = crate::util::number::parse_i64(args[1])
            .ok_or_else(|| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Msg("NOPROTO unsupported protocol version".into()));
        }
        proto = v;
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq_ic(args[i], "auth") && more >= 2 {
            check_password(ctx, args[i + 1], args[i + 2])?;
            i += 3;
        } else if eq_ic(args[i], "setname") && more >= 1 {
            validate_name(args[i + 1])?;
            setname = Some(args[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args[i])
            )));
        }
    }
    if !ctx.client.authenticated && !ctx.store.config.requirepass.is_empty() {
        return Err(CmdError::Msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(n) = setname {
        ctx.client
            .info
            .set_name(String::from_utf8_lossy(n).into_owned());
    }
    ctx.client.resp3 = proto == 3;
    ctx.out.resp3 = proto == 3;
    ctx.client
        .info
        .resp
        .store(proto as usize, Ordering::Relaxed);
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(crate::server::REDIS_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.int(proto);
    ctx.out.bulk(b"id");
    ctx.out.int(ctx.client.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

fn reset(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    super::tx::discard_transaction(ctx);
    super::tx::unwatch_all(ctx);
    super::pubsub::unsubscribe_all(ctx);
    if ctx.client.info.monitor.swap(false, Ordering::Relaxed) {
        ctx.shared.remove_monitor(ctx.client.id);
    }
    ctx.client.db = 0;
    ctx.client.resp3 = false;
    ctx.out.resp3 = false;
    ctx.client.info.resp.store(2, Ordering::Relaxed);
    ctx.client.info.set_name(String::new());
    if !ctx.store.config.requirepass.is_empty() {
        ctx.client.authenticated = false;
    }
    ctx.out.simple("RESET");
    Ok(())
}

fn validate_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// One CLIENT LIST line for a client.
pub fn client_line(c: &crate::server::client::ClientInfo, now_ms: u64) -> String {
    let mut flags = String::new();
    match c.kind.load(Ordering::Relaxed) {
        crate::server::client::KIND_REPLICA => flags.push('S'),
        crate::server::client::KIND_MASTER => flags.push('M'),
        _ => {}
    }
    if c.monitor.load(Ordering::Relaxed) {
        flags.push('O');
    }
    if c.subs.load(Ordering::Relaxed) + c.psubs.load(Ordering::Relaxed) > 0 {
        flags.push('P');
    }
    if c.in_multi.load(Ordering::Relaxed) {
        flags.push('x');
    }
    if c.blocked.load(Ordering::Relaxed) {
        flags.push('b');
    }
    if c.no_evict.load(Ordering::Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let idle = now_ms.saturating_sub(c.last_active.load(Ordering::Relaxed)) / 1000;
    let cmd = c.last_cmd_name();
    format!(
        "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.name(),
        c.created.elapsed().as_secs(),
        idle,
        flags,
        c.db.load(Ordering::Relaxed),
        c.subs.load(Ordering::Relaxed),
        c.psubs.load(Ordering::Relaxed),
        if c.in_multi.load(Ordering::Relaxed) {
            0
        } else {
            -1
        },
        c.qbuf.load(Ordering::Relaxed),
        cmd,
        c.resp.load(Ordering::Relaxed),
    )
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
    "    TYPE (normal|master|replica|pubsub), USER <username>, SKIPME (YES|NO).",
    "LIST [options ...]",
    "    Return information about client connections. Options: TYPE, ID.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

fn client(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "id") && n == 2 {
        ctx.out.int(ctx.client.id as i64);
    } else if eq_ic(sub, "getname") && n == 2 {
        let name = ctx.client.info.name();
        if name.is_empty() {
            ctx.out.null()
        } else {
            ctx.out.bulk(name.as_bytes())
        }
    } else if eq_ic(sub, "setname") && n == 3 {
        validate_name(args[2])?;
        ctx.client
            .info
            .set_name(String::from_utf8_lossy(args[2]).into_owned());
        ctx.out.ok();
    } else if eq_ic(sub, "info") && n == 2 {
        ctx.client.info.set_last_cmd(usize::MAX);
        let mut line = client_line(&ctx.client.info, ctx.now_ms);
        line = line.replace("cmd=NULL", "cmd=client|info");
        line.push('\n');
        ctx.out.verbatim(line.as_bytes());
    } else if eq_ic(sub, "list") {
        let mut ids: Option<Vec<u64>> = None;
        let mut kind: Option<Vec<u8>> = None;
        let mut i = 2;
        while i < n {
            if eq_ic(args[i], "type") && i + 1 < n {
                let t = args[i + 1].to_ascii_lowercase();
                if !["normal", "master", "replica", "slave", "pubsub"]
                    .contains(&String::from_utf8_lossy(&t).as_ref())
                {
                    return Err(CmdError::err(format!(
                        "Unknown client type '{}'",
                        String::from_utf8_lossy(args[i + 1])
                    )));
                }
                kind = Some(t);
                i += 2;
            } else if eq_ic(args[i], "id") && i + 1 < n {
                let mut v = Vec::new();
                for a in &args[i + 1..] {
                    match crate::util::number::parse_i64(a) {
                        Some(id) if id > 0 => v.push(id as u64),
                        _ => return Err(CmdError::err("Invalid client ID")),
                    }
                }
                ids = Some(v);
                i = n;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        let mut clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
        clients.sort_by_key(|c| c.id);
        let mut text = String::new();
        for c in clients {
            if let Some(ids) = &ids
                && !ids.contains(&c.id)
            {
                continue;
            }
            if let Some(k) = &kind {
                let is_pubsub =
                    c.subs.load(Ordering::Relaxed) + c.psubs.load(Ordering::Relaxed) > 0;
                let ck = c.kind.load(Ordering::Relaxed);
                let matches = match k.as_slice() {
                    b"pubsub" => is_pubsub,
                    b"normal" => !is_pubsub && ck == crate::server::client::KIND_NORMAL,
                    b"master" => ck == crate::server::client::KIND_MASTER,
                    b"replica" | b"slave" => ck == crate::server::client::KIND_REPLICA,
                    _ => false,
                };
                if !matches {
                    continue;
                }
            }
            let mut line = client_line(&c, ctx.now_ms);
            if c.id == ctx.client.id {
                line = line.replace(&format!("cmd={}", c.last_cmd_name()), "cmd=client|list");
            }
            text.push_str(&line);
            text.push('\n');
        }
        ctx.out.verbatim(text.as_bytes());
    } else if eq_ic(sub, "kill") && n >= 3 {
        client_kill(ctx, args)?;
    } else if eq_ic(sub, "unblock") && (n == 3 || n == 4) {
        // Only TIMEOUT (the default): the blocked command answers as if it timed out.
        let id = crate::util::number::parse_i64(args[2]).ok_or(CmdError::NotInteger)?;
        if n == 4 && !eq_ic(args[3], "timeout") {
            return Err(if eq_ic(args[3], "error") {
                CmdError::err("CLIENT UNBLOCK ERROR is not supported, use TIMEOUT")
            } else {
                CmdError::err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
            });
        }
        let target = u64::try_from(id)
            .ok()
            .and_then(|id| ctx.shared.clients.lock().get(&id).cloned());
        match target {
            Some(c) if c.blocked.load(Ordering::Relaxed) => {
                c.unblock_requested.store(true, Ordering::Relaxed);
                c.unblock.notify_one();
                ctx.out.int(1);
            }
            _ => ctx.out.int(0),
        }
    } else if eq_ic(sub, "no-evict") && n == 3 {
        let on = if eq_ic(args[2], "on") {
            true
        } else if eq_ic(args[2], "off") {
            false
        } else {
            return Err(CmdError::Syntax);
        };
        ctx.client.info.no_evict.store(on, Ordering::Relaxed);
        ctx.out.ok();
    } else if eq_ic(sub, "help") && n == 2 {
        ctx.out.array(CLIENT_HELP.len());
        for l in CLIENT_HELP {
            ctx.out.simple(l);
        }
    } else if [
        "id", "getname", "setname", "info", "kill", "no-evict", "help", "list", "unblock",
    ]
    .iter()
    .any(|s| eq_ic(sub, s))
    {
        return Err(CmdError::Arity(format!(
            "client|{}",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        )));
    } else {
        return Err(unknown_subcommand(sub, "client"));
    }
    Ok(())
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(args[2]);
        let Some(c) = clients.iter().find(|c| c.addr == addr) else {
            return Err(CmdError::err("No such client"));
        };
        c.request_kill();
        ctx.out.ok();
        return Ok(());
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut kind: Option<String> = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        let v = args[i + 1];
        if eq_ic(args[i], "id") {
            match crate::util::number::parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(CmdError::err("client-id should be greater than 0")),
            }
        } else if eq_ic(args[i], "addr") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(args[i], "laddr") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(args[i], "type") {
            let t = String::from_utf8_lossy(v).to_ascii_lowercase();
            if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                return Err(CmdError::err(format!("Unknown client type '{t}'")));
            }
            kind = Some(t);
        } else if eq_ic(args[i], "user") {
            if v != b"default" {
                return Err(CmdError::err(format!(
                    "No such user '{}'",
                    String::from_utf8_lossy(v)
                )));
            }
        } else if eq_ic(args[i], "skipme") {
            if eq_ic(v, "yes") {
                skipme = true;
            } else if eq_ic(v, "no") {
                skipme = false;
            } else {
                return Err(CmdError::Syntax);
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let mut killed = 0;
    for c in clients {
        if id.is_some_and(|i| i != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || (skipme && c.id == ctx.client.id)
        {
            continue;
        }
        if let Some(k) = &kind {
            let is_pubsub = c.subs.load(Ordering::Relaxed) + c.psubs.load(Ordering::Relaxed) > 0;
            let ck = c.kind.load(Ordering::Relaxed);
            let ok = match k.as_str() {
                "pubsub" => is_pubsub,
                "normal" => !is_pubsub && ck == crate::server::client::KIND_NORMAL,
                "master" => ck == crate::server::client::KIND_MASTER,
                "replica" | "slave" => ck == crate::server::client::KIND_REPLICA,
                _ => false,
            };
            if !ok {
                continue;
            }
        }
        if c.id == ctx.client.id {
            ctx.client.action = Some(Action::Close);
        } else {
            c.request_kill();
        }
        killed += 1;
    }
    ctx.out.int(killed);
    Ok(())
}
