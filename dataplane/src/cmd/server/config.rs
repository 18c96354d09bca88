//! CONFIG GET | SET | RESETSTAT | REWRITE | HELP.

use std::sync::atomic::Ordering;

use super::super::{CmdError, CmdResult, Ctx, eq_ic, unknown_subcommand};
use super::{help_reply, sub_arity};
use crate::config::{Config, KNOWN, SetError};
use crate::util::glob::glob_match;

/// Parameters Redis refuses to change at run time (`can't set immutable config`). `port` and
/// `bind` are mutable in Redis, but we do not re-bind the listener, so they are refused too.
const IMMUTABLE: &[&str] = &[
    "databases",
    "daemonize",
    "supervised",
    "io-threads",
    "tcp-backlog",
    "port",
    "bind",
    "appendfilename",
    "appenddirname",
];

/// Parameters Redis protects unless `enable-protected-configs` is set (`dir`...).
const PROTECTED: &[&str] = &["dir"];

pub(super) fn config(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "get") {
        if n < 3 {
            return Err(sub_arity("config", sub));
        }
        config_get(ctx, &args[2..]);
    } else if eq_ic(sub, "set") {
        if n < 4 {
            return Err(sub_arity("config", sub));
        }
        config_set(ctx, &args[2..])?;
    } else if eq_ic(sub, "resetstat") {
        if n != 2 {
            return Err(sub_arity("config", sub));
        }
        reset_stats(ctx);
        ctx.out.ok();
    } else if eq_ic(sub, "rewrite") {
        if n != 2 {
            return Err(sub_arity("config", sub));
        }
        let Some(path) = ctx.shared.config_file.clone() else {
            return Err(CmdError::err("The server is running without a config file"));
        };
        let replicaof = ctx
            .store
            .repl
            .master
            .as_ref()
            .map(|m| format!("replicaof {} {}", m.host, m.port));
        rewrite(&ctx.store.config, &path, replicaof.as_deref()).map_err(|e| {
            tracing::warn!(error = %e, "CONFIG REWRITE failed");
            CmdError::err(format!("Rewriting config file: {e}"))
        })?;
        ctx.out.ok();
    } else if eq_ic(sub, "help") {
        if n != 2 {
            return Err(sub_arity("config", sub));
        }
        help_reply(
            ctx,
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        );
    } else {
        return Err(unknown_subcommand(sub, "config"));
    }
    Ok(())
}

/// CONFIG GET pattern...: a map of every matching parameter. A pattern without glob
/// characters that names a parameter is echoed as typed (Redis replies `MAXMEMORY` for
/// `CONFIG GET MAXMEMORY`).
fn config_get(ctx: &mut Ctx<'_>, patterns: &[&[u8]]) {
    let cfg = &ctx.store.config;
    let names = cfg.names();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in patterns {
        let is_glob = p.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        if !is_glob {
            let lower = String::from_utf8_lossy(p).to_ascii_lowercase();
            if let Some(v) = cfg.get(&lower)
                && seen.insert(lower)
            {
                out.push((String::from_utf8_lossy(p).into_owned(), v));
            }
            continue;
        }
        for name in &names {
            if glob_match(p, name.as_bytes(), true)
                && seen.insert(name.clone())
                && let Some(v) = cfg.get(name)
            {
                out.push((name.clone(), v));
            }
        }
    }
    ctx.out.map(out.len());
    for (k, v) in out {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
}

/// CONFIG SET name value [name value ...]: all or nothing. Names are checked first (unknown,
/// immutable, duplicate), then values are applied to a copy that replaces the live config only
/// if every value was valid.
fn config_set(ctx: &mut Ctx<'_>, pairs: &[&[u8]]) -> CmdResult {
    if !pairs.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let known = |name: &str| KNOWN.contains(&name) || ctx.store.config.get(name).is_some();
    let mut names: Vec<String> = Vec::with_capacity(pairs.len() / 2);
    for (i, pair) in pairs.chunks(2).enumerate() {
        let typed = String::from_utf8_lossy(pair[0]).into_owned();
        let name = typed.to_ascii_lowercase();
        if !known(&name) {
            return Err(CmdError::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{typed}'"
            )));
        }
        let fail = |why: &str| {
            CmdError::err(format!(
                "CONFIG SET failed (possibly related to argument '{typed}') - {why}"
            ))
        };
        if IMMUTABLE.contains(&name.as_str()) {
            return Err(fail("can't set immutable config"));
        }
        if PROTECTED.contains(&name.as_str()) {
            return Err(fail("can't set protected config"));
        }
        if names[..i].contains(&name) {
            return Err(fail("duplicate parameter"));
        }
        names.push(name);
    }
    let mut cfg = ctx.store.config.clone();
    for (name, pair) in names.iter().zip(pairs.chunks(2)) {
        let val = String::from_utf8_lossy(pair[1]);
        let res = cfg.set(name, &val);
        match res {
            Ok(()) => {}
            Err(SetError::Unknown) => {
                return Err(CmdError::err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{name}'"
                )));
            }
            Err(SetError::Invalid(why)) => {
                return Err(CmdError::err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - {why}"
                )));
            }
        }
    }
    let aof_was = crate::server::aof::configured(&ctx.store.config);
    let aof_now = crate::server::aof::configured(&cfg);
    if aof_now && !aof_was {
        // Turned on with the new settings (dir, appendfsync, preamble) in place.
        let old = std::mem::replace(&mut ctx.store.config, cfg.clone());
        if let Err(e) = crate::server::aof::start(ctx.shared, ctx.store) {
            ctx.store.config = old;
            tracing::warn!(error = %e, "can't turn on AOF");
            return Err(CmdError::err(format!(
                "CONFIG SET failed (possibly related to argument 'appendonly') - {e}"
            )));
        }
    } else if aof_was && !aof_now {
        crate::server::aof::stop(ctx.store);
    }
    if let Some(p) = cfg
        .get("appendfsync")
        .and_then(|v| crate::server::aof::Fsync::parse(&v))
        && p != ctx.store.aof.policy()
    {
        ctx.store.aof.set_policy(p);
    }
    ctx.store.config = cfg;
    ctx.shared.refresh_cached_config(&ctx.store.config);
    ctx.store.sync_clock();
    ctx.out.ok();
    Ok(())
}

/// CONFIG RESETSTAT: the counters Redis resets (commands, connections, keyspace hits and
/// misses, expired and evicted keys, network bytes, errors, per-command stats).
fn reset_stats(ctx: &mut Ctx<'_>) {
    let st = &mut ctx.store.stats;
    st.total_commands = 0;
    st.connections_received = 0;
    st.rejected_connections = 0;
    st.evicted_keys = 0;
    st.expired_stale_perc = 0.0;
    st.total_error_replies = 0;
    st.instantaneous_ops = 0;
    st.ops_sample_commands = 0;
    st.expire_cycles = 0;
    for c in &mut ctx.store.cmdstats {
        *c = Default::default();
    }
    ctx.store.errorstats.clear();
    for db in &mut ctx.store.dbs {
        db.hits = 0;
        db.misses = 0;
        db.expired = 0;
    }
    ctx.shared.net_input.store(0, Ordering::Relaxed);
    ctx.shared.net_output.store(0, Ordering::Relaxed);
}

/// Quotes a config value for the file when it is empty or holds spaces or quotes.
fn quote(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// One `name value` line as the config file holds it (`bind` and `save` are word lists).
fn directive(cfg: &Config, name: &str) -> Option<String> {
    let v = cfg.get(name)?;
    Some(match name {
        "bind" => format!("bind {v}"),
        "save" if !v.is_empty() => format!("save {v}"),
        _ => format!("{name} {}", quote(&v)),
    })
}

/// CONFIG REWRITE: keeps the file's comments and unknown lines, replaces each known directive
/// (its first occurrence; later duplicates are dropped) with the current value, and appends the
/// parameters that differ from the defaults and were not in the file. `replicaof` (or the
/// old `slaveof`) follows the replication state, as Redis writes it, so a replica set up by
/// `SLAVEOF` + `CONFIG REWRITE` (the dashboard's sync action) stays one after a restart.
fn rewrite(cfg: &Config, path: &std::path::Path, replicaof: Option<&str>) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let defaults = Config::default();
    let all = cfg.names();
    let mut done = std::collections::HashSet::new();
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        let word = t
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if word == "replicaof" || word == "slaveof" {
            if done.insert("replicaof".to_string())
                && let Some(r) = replicaof
            {
                out.push_str(r);
                out.push('\n');
            }
            continue;
        }
        // Old ziplist names are aliases of the listpack ones.
        let canon = word.replace("ziplist", "listpack");
        if t.starts_with('#') || word.is_empty() || !all.contains(&canon) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if !done.insert(canon.clone()) {
            continue;
        }
        if let Some(d) = directive(cfg, &canon) {
            out.push_str(&d);
            out.push('\n');
        }
    }
    let mut header = false;
    for name in &all {
        if name.contains("ziplist") || done.contains(name) || name == "dir" {
            continue;
        }
        if cfg.get(name) == defaults.get(name) {
            continue;
        }
        if !header {
            out.push_str("# Generated by CONFIG REWRITE\n");
            header = true;
        }
        if let Some(d) = directive(cfg, name) {
            out.push_str(&d);
            out.push('\n');
        }
    }
    if !done.contains("replicaof")
        && let Some(r) = replicaof
    {
        if !header {
            out.push_str("# Generated by CONFIG REWRITE\n");
        }
        out.push_str(r);
        out.push('\n');
    }
    let tmp = path.with_extension("rewrite.tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_and_updates_values() {
        let dir = std::env::temp_dir().join(format!("codis-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("redis.conf");
        std::fs::write(
            &path,
            "# my comment\nmaxmemory 1mb\nunknown-thing 5\nhz 10\nhz 11\nhash-max-ziplist-entries 7\n",
        )
        .unwrap();
        let mut cfg = Config::default();
        cfg.set("maxmemory", "2mb").unwrap();
        cfg.set("hash-max-listpack-entries", "9").unwrap();
        cfg.set("maxmemory-policy", "allkeys-lru").unwrap();
        cfg.set("requirepass", "a b").unwrap();
        rewrite(&cfg, &path, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# my comment\nmaxmemory 2097152\nunknown-thing 5\nhz 10\nhash-max-listpack-entries 9\n\
             # Generated by CONFIG REWRITE\nrequirepass \"a b\"\nmaxmemory-policy allkeys-lru\n"
        );
        // The result loads back to the same values.
        let mut back = Config::default();
        back.load_file(&path).unwrap();
        assert_eq!(back.maxmemory, 2 * 1024 * 1024);
        assert_eq!(back.requirepass, "a b");
        assert_eq!(back.hash_max_listpack_entries, 9);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rewrite_follows_the_replication_state() {
        let dir = std::env::temp_dir().join(format!("codis-rewrite-repl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("redis.conf");
        let mut cfg = Config::default();
        cfg.set("port", "6380").unwrap();
        // A replica made by SLAVEOF gets the line; an old slaveof line is replaced.
        std::fs::write(&path, "port 6380\n").unwrap();
        rewrite(&cfg, &path, Some("replicaof 127.0.0.1 6379")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("replicaof 127.0.0.1 6379\n"), "{text}");
        std::fs::write(
            &path,
            "slaveof 10.0.0.1 1\nport 6380\nreplicaof 10.0.0.2 2\n",
        )
        .unwrap();
        rewrite(&cfg, &path, Some("replicaof 127.0.0.1 6379")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "replicaof 127.0.0.1 6379\nport 6380\n");
        // A promoted master (SLAVEOF NO ONE) loses it.
        rewrite(&cfg, &path, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "port 6380\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
