//! Server commands: INFO DBSIZE FLUSHDB FLUSHALL CONFIG COMMAND TIME LASTSAVE ROLE SLOWLOG
//! LATENCY MEMORY SHUTDOWN MONITOR DEBUG SWAPDB SAVE BGSAVE BGREWRITEAOF.
//!
//! INFO, CONFIG and COMMAND are large enough to live in their own files under `server/`.

mod command;
mod config;
mod info;

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec, unknown_subcommand};
use crate::server::client::Action;
use crate::server::{aof, persist};
use crate::store::Value;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("dbsize", 1, READONLY | FAST, (0, 0, 0), dbsize),
    spec("flushdb", -1, WRITE, (0, 0, 0), flushdb),
    spec("flushall", -1, WRITE, (0, 0, 0), flushall),
    spec("info", -1, LOADING | STALE, (0, 0, 0), info::info),
    spec(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        config::config,
    ),
    spec("command", -1, LOADING | STALE, (0, 0, 0), command::command),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), time),
    spec("lastsave", 1, LOADING | STALE | FAST, (0, 0, 0), lastsave),
    spec("slowlog", -2, ADMIN | LOADING | STALE, (0, 0, 0), slowlog),
    spec(
        "latency",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        latency,
    ),
    spec("memory", -2, READONLY, (0, 0, 0), memory),
    spec(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
        (0, 0, 0),
        shutdown,
    ),
    spec(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        monitor,
    ),
    spec(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        debug,
    ),
    spec("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), save),
    spec("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), bgsave),
    spec("bgrewriteaof", 1, ADMIN | NOSCRIPT, (0, 0, 0), bgrewriteaof),
];

/// Writes a HELP reply: the header line for `cmd` followed by `lines`, as simple strings.
fn help_reply(ctx: &mut Ctx<'_>, cmd: &str, lines: &[&str]) {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        ctx.out.simple(l);
    }
    ctx.out.simple("HELP");
    ctx.out.simple("    Prints this help.");
}

/// Arity error of a subcommand (`'config|get'`), as Redis 7 names them.
fn sub_arity(cmd: &str, sub: &[u8]) -> CmdError {
    CmdError::Arity(format!(
        "{cmd}|{}",
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    ))
}

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowLogEntry {
    /// Entry id.
    pub id: u64,
    /// Unix seconds.
    pub time: u64,
    /// Duration in microseconds.
    pub usec: u64,
    /// Arguments (trimmed like Redis: at most 32, each at most 128 bytes).
    pub args: Vec<Vec<u8>>,
    /// Client address.
    pub addr: String,
    /// Client name.
    pub name: String,
}

/// The slow log (newest first).
#[derive(Debug, Default)]
pub struct SlowLog {
    /// Entries, newest first.
    pub entries: std::collections::VecDeque<SlowLogEntry>,
    /// Next id.
    pub next_id: u64,
}

impl SlowLog {
    /// Records a slow command.
    pub fn push(&mut self, args: &[&[u8]], usec: u64, addr: &str, name: &str, max: usize) {
        const MAX_ARGC: usize = 32;
        const MAX_STRING: usize = 128;
        let mut v: Vec<Vec<u8>> = Vec::new();
        let n = args.len().min(MAX_ARGC);
        for (i, a) in args.iter().take(n).enumerate() {
            if i == MAX_ARGC - 1 && args.len() > MAX_ARGC {
                v.push(format!("... ({} more arguments)", args.len() - MAX_ARGC + 1).into_bytes());
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                v.push(s);
            } else {
                v.push(a.to_vec());
            }
        }
        self.entries.push_front(SlowLogEntry {
            id: self.next_id,
            time: crate::store::now_ms() / 1000,
            usec,
            args: v,
            addr: addr.to_string(),
            name: name.to_string(),
        });
        self.next_id += 1;
        while self.entries.len() > max {
            self.entries.pop_back();
        }
    }
}

/// Latency monitor samples per event.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// event → samples (unix seconds, ms), oldest first, at most 160.
    pub events: std::collections::BTreeMap<String, std::collections::VecDeque<(u64, u64)>>,
}

impl LatencyMonitor {
    /// Records a latency sample of `ms` milliseconds for `event` at unix second `now_s`,
    /// keeping the newest 160 samples per event.
    pub fn record(&mut self, event: &str, now_s: u64, ms: u64) {
        let samples = self.events.entry(event.to_string()).or_default();
        match samples.back_mut() {
            Some(last) if last.0 == now_s => last.1 = last.1.max(ms),
            _ => samples.push_back((now_s, ms)),
        }
        while samples.len() > 160 {
            samples.pop_front();
        }
    }
}

fn dbsize(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

/// The flush mode: true for ASYNC (the old values are freed by the background dropper
/// thread, as Redis's lazyfree).
fn flush_mode_ok(args: &[&[u8]]) -> Result<bool, super::CmdError> {
    if args.len() > 2
        || (args.len() == 2 && !super::eq_ic(args[1], "async") && !super::eq_ic(args[1], "sync"))
    {
        return Err(super::CmdError::Syntax);
    }
    Ok(args.len() == 2 && super::eq_ic(args[1], "async"))
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_mode_ok(args)?;
    let n = ctx.db().len() as u64;
    ctx.db().clear_with(lazy);
    ctx.dirty(n);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_mode_ok(args)?;
    let n = ctx.store.total_keys() as u64;
    for db in &mut ctx.store.dbs {
        db.clear_with(lazy);
    }
    ctx.dirty(n + 1);
    ctx.out.ok();
    Ok(())
}

fn time(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

fn lastsave(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.out.int((ctx.store.lastsave / 1000) as i64);
    Ok(())
}

/// BGREWRITEAOF: a new AOF base from a point-in-time snapshot (see `server::aof`);
/// scheduled when a background save runs.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.store.aof.rewrite.is_some() {
        return Err(CmdError::err(
            "Background append only file rewriting already in progress",
        ));
    }
    if persist::snapshot_busy(ctx.store) {
        ctx.store.aof.rewrite_scheduled = true;
        ctx.out
            .simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    match aof::start_rewrite(ctx.shared, ctx.store) {
        Ok(()) => {
            ctx.out
                .simple("Background append only file rewriting started");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "BGREWRITEAOF failed to start");
            Err(CmdError::err(
                "Can't execute an AOF background rewriting. Please check the server logs for more information.",
            ))
        }
    }
}

/// SAVE: writes the RDB file now, blocking every client meanwhile (as Redis does).
fn save(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    match persist::save_sync(ctx.store) {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(persist::SaveError::InProgress) => {
            Err(CmdError::err("Background save already in progress"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "SAVE failed");
            Err(CmdError::Msg("ERR".into()))
        }
    }
}

/// BGSAVE [SCHEDULE]: a point-in-time save by a background thread (see `server::persist`).
fn bgsave(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let schedule = match args.len() {
        1 => false,
        2 if eq_ic(args[1], "schedule") => true,
        _ => return Err(CmdError::Syntax),
    };
    if ctx.store.persist.bgsave.is_some() && !schedule {
        return Err(CmdError::err("Background save already in progress"));
    }
    if persist::snapshot_busy(ctx.store) {
        if schedule {
            ctx.store.persist.scheduled = true;
            ctx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CmdError::err(
            "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    match persist::start_bgsave(ctx.shared, ctx.store) {
        Ok(()) => {
            ctx.out.simple("Background saving started");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "BGSAVE failed to start");
            Err(CmdError::Msg("ERR".into()))
        }
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. A background save is cancelled; the dataset
/// is saved when SAVE is given or `save` points are configured, unless NOSAVE. A failed save
/// refuses to shut down unless FORCE, as Redis does.
fn shutdown(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut nosave, mut save, mut abort, mut force) = (false, false, false, false);
    for a in &args[1..] {
        if eq_ic(a, "nosave") {
            nosave = true;
        } else if eq_ic(a, "save") {
            save = true;
        } else if eq_ic(a, "now") {
        } else if eq_ic(a, "force") {
            force = true;
        } else if eq_ic(a, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (nosave && save) || (abort && args.len() > 2) {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    persist::cancel_bgsave(ctx.store);
    aof::shutdown(ctx.store);
    if save || (!nosave && !persist::save_points(&ctx.store.config).is_empty()) {
        tracing::warn!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = persist::save_sync(ctx.store) {
            tracing::warn!(error = %e, "Error trying to save the DB, can't exit.");
            if !force {
                return Err(CmdError::err("Errors trying to SHUTDOWN. Check logs."));
            }
        }
    }
    ctx.store.persist.shutdown_handled = true;
    tracing::warn!("User requested shutdown...");
    // No reply: the connection closes and the server stops, as Redis does.
    ctx.client.action = Some(Action::Shutdown);
    Ok(())
}

fn monitor(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    if ctx.client.info.monitor.load(Ordering::Relaxed) {
        // Redis ignores a second MONITOR silently.
        return Ok(());
    }
    ctx.shared
        .add_monitor(ctx.client.id, ctx.client.push_tx.clone());
    ctx.client.info.monitor.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// SLOWLOG GET [count] | LEN | RESET | HELP.
fn slowlog(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "help") {
        if n != 2 {
            return Err(sub_arity("slowlog", sub));
        }
        help_reply(
            ctx,
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        );
    } else if eq_ic(sub, "get") {
        if n > 3 {
            return Err(CmdError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(sub)
            )));
        }
        let count = match args.get(2) {
            None => 10,
            Some(a) => match crate::util::number::parse_i64(a) {
                Some(-1) => usize::MAX,
                Some(c) if c >= 0 => c as usize,
                _ => {
                    return Err(CmdError::err("count should be greater than or equal to -1"));
                }
            },
        };
        let entries = &ctx.store.slowlog.entries;
        let k = count.min(entries.len());
        ctx.out.array(k);
        for e in entries.iter().take(k) {
            ctx.out.array(6);
            ctx.out.int(e.id as i64);
            ctx.out.int(e.time as i64);
            ctx.out.int(e.usec as i64);
            ctx.out.bulks(e.args.iter());
            ctx.out.bulk(e.addr.as_bytes());
            ctx.out.bulk(e.name.as_bytes());
        }
    } else if eq_ic(sub, "len") {
        if n != 2 {
            return Err(sub_arity("slowlog", sub));
        }
        ctx.out.int(ctx.store.slowlog.entries.len() as i64);
    } else if eq_ic(sub, "reset") {
        if n != 2 {
            return Err(sub_arity("slowlog", sub));
        }
        ctx.store.slowlog.entries.clear();
        ctx.out.ok();
    } else {
        return Err(unknown_subcommand(sub, "slowlog"));
    }
    Ok(())
}

/// LATENCY LATEST | HISTORY event | RESET [event...] | DOCTOR | GRAPH event | HELP.
///
/// Samples are whatever was recorded with [`LatencyMonitor::record`]; the report texts of
/// DOCTOR are Redis's for the two states we can be in (disabled, or enabled with no spike).
fn latency(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "help") && n == 2 {
        help_reply(
            ctx,
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        );
    } else if eq_ic(sub, "latest") && n == 2 {
        let ev = &ctx.store.latency.events;
        ctx.out.array(ev.len());
        for (name, samples) in ev {
            let (t, last) = samples.back().copied().unwrap_or((0, 0));
            let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
            ctx.out.array(4);
            ctx.out.bulk(name.as_bytes());
            ctx.out.int(t as i64);
            ctx.out.int(last as i64);
            ctx.out.int(max as i64);
        }
    } else if eq_ic(sub, "history") {
        if n != 3 {
            return Err(sub_arity("latency", sub));
        }
        let name = String::from_utf8_lossy(args[2]).into_owned();
        match ctx.store.latency.events.get(&name) {
            None => ctx.out.array(0),
            Some(samples) => {
                ctx.out.array(samples.len());
                for (t, ms) in samples {
                    ctx.out.array(2);
                    ctx.out.int(*t as i64);
                    ctx.out.int(*ms as i64);
                }
            }
        }
    } else if eq_ic(sub, "graph") {
        if n != 3 {
            return Err(sub_arity("latency", sub));
        }
        let name = String::from_utf8_lossy(args[2]).into_owned();
        if !ctx.store.latency.events.contains_key(&name) {
            return Err(CmdError::err(format!(
                "No samples available for event '{name}'"
            )));
        }
        return Err(CmdError::err("LATENCY GRAPH is not supported"));
    } else if eq_ic(sub, "reset") {
        let ev = &mut ctx.store.latency.events;
        let removed = if n == 2 {
            let k = ev.len();
            ev.clear();
            k
        } else {
            args[2..]
                .iter()
                .filter(|a| ev.remove(&*String::from_utf8_lossy(a)).is_some())
                .count()
        };
        ctx.out.int(removed as i64);
    } else if eq_ic(sub, "doctor") && n == 2 {
        let text = if ctx.store.config.latency_monitor_threshold == 0 {
            "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string()
        } else if ctx.store.latency.events.is_empty() {
            "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".to_string()
        } else {
            let mut t =
                String::from("Dave, I have observed latency spikes in this Redis instance.\n\n");
            for (i, (name, samples)) in ctx.store.latency.events.iter().enumerate() {
                let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
                let avg = samples.iter().map(|s| s.1).sum::<u64>() / samples.len().max(1) as u64;
                t.push_str(&format!(
                    "{}. {name}: {} latency spikes (average {avg}ms, worst {max}ms).\n",
                    i + 1,
                    samples.len()
                ));
            }
            t
        };
        ctx.out.verbatim(text.as_bytes());
    } else if eq_ic(sub, "histogram") {
        // Per-command latency histograms are not tracked.
        ctx.out.map(0);
    } else if ["latest", "doctor"].iter().any(|s| eq_ic(sub, s)) || eq_ic(sub, "help") {
        return Err(sub_arity("latency", sub));
    } else {
        return Err(unknown_subcommand(sub, "latency"));
    }
    Ok(())
}

/// Bytes as Redis's `bytesToHuman` writes them (`894.90K`, `1.00M`, `0B`).
pub(crate) fn bytes_human(n: u64) -> String {
    let units = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    for u in units {
        if v < 1024.0 || u == "E" {
            return format!("{v:.2}{u}");
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at the last unit")
}

/// Process resident set size in bytes (from /proc/self/statm; 0 where unavailable).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Highest `used_memory` seen when INFO or MEMORY looked at it.
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Current allocated bytes, updating the recorded peak; returns (used, peak).
pub(crate) fn used_and_peak() -> (usize, usize) {
    let used = crate::alloc::allocated_bytes();
    let peak = PEAK.fetch_max(used, Ordering::Relaxed).max(used);
    (used, peak)
}

/// Fixed per-key overhead (hash table entry, key header, value header) counted by MEMORY
/// USAGE on top of the key and value bytes.
const KEY_OVERHEAD: usize = 48;

/// Estimated memory of one key: its name, its value and the table entry holding them.
fn key_usage(key: &[u8], v: &Value) -> usize {
    KEY_OVERHEAD + key.len() + std::mem::size_of::<Value>() + v.heap_size()
}

/// MEMORY USAGE key [SAMPLES n] | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP.
fn memory(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "help") {
        if n != 2 {
            return Err(sub_arity("memory", sub));
        }
        help_reply(
            ctx,
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        );
    } else if eq_ic(sub, "usage") {
        if n < 3 {
            return Err(sub_arity("memory", sub));
        }
        // SAMPLES is parsed and checked, but the estimate always covers every element.
        let mut i = 3;
        while i < n {
            if eq_ic(args[i], "samples") && i + 1 < n {
                if arg_i64(args[i + 1])? < 0 {
                    return Err(CmdError::Syntax);
                }
                i += 2;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        let now = ctx.now_ms;
        match ctx.db().peek(args[2], now) {
            None => ctx.out.null(),
            Some(e) => {
                let size = key_usage(args[2], &e.value);
                ctx.out.int(size as i64);
            }
        }
    } else if eq_ic(sub, "stats") {
        if n != 2 {
            return Err(sub_arity("memory", sub));
        }
        memory_stats(ctx);
    } else if eq_ic(sub, "doctor") {
        if n != 2 {
            return Err(sub_arity("memory", sub));
        }
        let (used, _) = used_and_peak();
        let text = if used < 5 * 1024 * 1024 {
            "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting."
        } else {
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base."
        };
        ctx.out.verbatim(text.as_bytes());
    } else if eq_ic(sub, "malloc-stats") {
        if n != 2 {
            return Err(sub_arity("memory", sub));
        }
        ctx.out
            .verbatim(b"Stats not supported for the current allocator");
    } else if eq_ic(sub, "purge") {
        if n != 2 {
            return Err(sub_arity("memory", sub));
        }
        crate::alloc::purge();
        ctx.out.ok();
    } else {
        return Err(unknown_subcommand(sub, "memory"));
    }
    Ok(())
}

fn memory_stats(ctx: &mut Ctx<'_>) {
    let (used, peak) = used_and_peak();
    let rss = rss_bytes();
    let keys = ctx.store.total_keys();
    let dbs: Vec<(usize, usize, usize)> = ctx
        .store
        .dbs
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| (d.id, d.len(), d.expires_len()))
        .collect();
    // Per-key table overhead, as Redis's overhead.hashtable.* figures.
    let entry = KEY_OVERHEAD;
    let overhead: usize = dbs.iter().map(|(_, k, e)| (k + e) * entry).sum();
    let dataset = used.saturating_sub(overhead);
    let o = &mut *ctx.out;
    o.map(15 + dbs.len());
    let int = |o: &mut crate::resp::reply::Out, k: &str, v: u64| {
        o.bulk(k.as_bytes());
        o.int(v as i64);
    };
    int(o, "peak.allocated", peak as u64);
    int(o, "total.allocated", used as u64);
    int(o, "startup.allocated", 0);
    int(o, "replication.backlog", 0);
    int(o, "clients.slaves", 0);
    int(o, "clients.normal", 0);
    int(o, "aof.buffer", 0);
    for (id, k, e) in &dbs {
        o.bulk(format!("db.{id}").as_bytes());
        o.map(2);
        int(o, "overhead.hashtable.main", (k * entry) as u64);
        int(o, "overhead.hashtable.expires", (e * entry) as u64);
    }
    int(o, "overhead.total", overhead as u64);
    int(o, "keys.count", keys as u64);
    int(
        o,
        "keys.bytes-per-key",
        used.checked_div(keys).unwrap_or(0) as u64,
    );
    int(o, "dataset.bytes", dataset as u64);
    o.bulk(b"dataset.percentage");
    o.double(if used > 0 {
        dataset as f64 * 100.0 / used as f64
    } else {
        0.0
    });
    o.bulk(b"peak.percentage");
    o.double(if peak > 0 {
        used as f64 * 100.0 / peak as f64
    } else {
        0.0
    });
    o.bulk(b"fragmentation");
    o.double(if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    });
    int(o, "fragmentation.bytes", rss.saturating_sub(used as u64));
}

/// The encoding OBJECT ENCODING / DEBUG OBJECT report for a value (Redis 7.0 names).
fn encoding(v: &Value) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && crate::util::number::parse_i64(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            if h.hashtable {
                "hashtable"
            } else {
                "listpack"
            }
        }
        Value::Set(s) => {
            if s.hashtable {
                "hashtable"
            } else {
                "intset"
            }
        }
        Value::ZSet(z) => {
            if z.skiplist {
                "skiplist"
            } else {
                "listpack"
            }
        }
    }
}

/// DEBUG: the subset tests and tools need. Unlike Redis (which disables DEBUG unless
/// `enable-debug-command` is set) it is always available.
///
/// Codis extension: `DEBUG SET-TTL key ms` gives an existing key a TTL of `ms` milliseconds
/// (lets tests exercise expiry without depending on the EXPIRE family).
fn debug(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "help") && n == 2 {
        help_reply(
            ctx,
            "DEBUG",
            &[
                "OBJECT <key>",
                "    Show low level info about the key and associated value.",
                "PAUSE-AOF-FSYNC <0|1>",
                "    Hold (1) or release (0) the AOF fsync thread; replies waiting for an fsync wait while it is held (codis-server extension, for tests).",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not accessed (otherwise the Redis behavior). Setting it to 1 reenables back the default.",
                "SET-TTL <key> <milliseconds>",
                "    Give an existing key a time to live (codis-server extension).",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ],
        );
    } else if eq_ic(sub, "sleep") && n == 3 {
        let secs = crate::util::number::parse_f64(args[2]).unwrap_or(0.0);
        if secs > 0.0 && secs.is_finite() {
            ctx.client.action = Some(Action::Sleep(Duration::from_secs_f64(secs.min(1e6))));
        }
        ctx.out.ok();
    } else if eq_ic(sub, "object") && n == 3 {
        let now = ctx.now_ms;
        let clock = ctx.store.lru_clock;
        let Some(e) = ctx.db().peek(args[2], now) else {
            return Err(CmdError::NoSuchKey);
        };
        let enc = encoding(&e.value);
        let ser = e.value.heap_size().max(1);
        let idle = crate::store::evict::idle_secs(e.lru, clock);
        let line = format!(
            "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{ser} lru:{} lru_seconds_idle:{idle}",
            e.lru
        );
        ctx.out.simple(&line);
    } else if eq_ic(sub, "reload") {
        debug_reload(ctx, &args[2..])?;
        ctx.out.ok();
    } else if eq_ic(sub, "pause-aof-fsync") && n == 3 {
        let paused = match args[2] {
            b"0" => false,
            b"1" => true,
            _ => return Err(CmdError::err("DEBUG PAUSE-AOF-FSYNC takes 0 or 1")),
        };
        ctx.store.aof.syncer.set_paused(paused);
        ctx.out.ok();
    } else if eq_ic(sub, "set-active-expire") && n == 3 {
        // Accepted for compatibility; active expiry always runs.
        ctx.out.ok();
    } else if eq_ic(sub, "set-ttl") && n == 4 {
        let ms = arg_i64(args[3])?;
        let now = ctx.now_ms;
        if !ctx.db().contains(args[2], now) {
            return Err(CmdError::NoSuchKey);
        }
        let at = (now as i64).saturating_add(ms).max(0) as u64;
        ctx.db().set_expire(args[2], at);
        ctx.out.ok();
    } else {
        return Err(unknown_subcommand(sub, "debug"));
    }
    Ok(())
}

/// DEBUG RELOAD [NOSAVE] [NOFLUSH] [MERGE]: save the RDB file, empty the keyspace and load it
/// back (NOSAVE skips the save; NOFLUSH and MERGE are accepted as Redis's, loading over the
/// current keys).
fn debug_reload(ctx: &mut Ctx<'_>, opts: &[&[u8]]) -> CmdResult {
    let (mut nosave, mut noflush) = (false, false);
    for o in opts {
        if eq_ic(o, "nosave") {
            nosave = true;
        } else if eq_ic(o, "noflush") || eq_ic(o, "merge") {
            noflush = true;
        } else {
            return Err(CmdError::err(
                "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    if !nosave && let Err(e) = persist::save_sync(ctx.store) {
        tracing::warn!(error = %e, "DEBUG RELOAD: save failed");
        return Err(CmdError::err("Error trying to save the DB"));
    }
    if !noflush {
        for db in &mut ctx.store.dbs {
            db.clear();
        }
        ctx.store.scripting.flush_functions();
    }
    match persist::load(ctx.store) {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "DEBUG RELOAD: load failed");
            Err(CmdError::err(
                "Error trying to load the RDB dump, check server logs.",
            ))
        }
    }
}
