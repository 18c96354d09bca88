//! Commands: one file per family, one table that dispatches to them.
//!
//! Each family file exports `COMMANDS: &[CommandSpec]`; [`registry`] merges them. A handler
//! is a plain function `fn(&mut Ctx, &[&[u8]]) -> CmdResult`: it reads its arguments (the
//! command name is `args[0]`), works on the locked [`Store`] through [`Ctx`], and writes its
//! reply into `ctx.out`. On error it returns [`CmdError`] *before* writing anything, and the
//! dispatcher writes the error line.
//!
//! To find where a command is handled: `grep -n '"name"' dataplane/src/cmd/*.rs`.

pub mod bits;
pub mod connection;
pub mod dump;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod migrate_async;
pub mod migrate_sync;
pub mod pubsub;
pub mod repl;
pub mod script;
pub mod server;
pub mod set;
pub mod slots;
pub mod string;
pub mod tx;
pub mod zset;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use crate::resp::reply::Out;
use crate::server::Shared;
use crate::server::client::{Action, Client};
use crate::store::{Db, Store};
use crate::util::number;

/// Command flags (a subset of Redis's, used by dispatch and COMMAND INFO).
pub mod flags {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1;
    /// Only reads.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory: refused when over `maxmemory` and nothing can be evicted.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/sub related.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed from scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// Reply is not deterministic.
    pub const RANDOM: u32 = 1 << 6;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 8;
    /// Constant or log time.
    pub const FAST: u32 = 1 << 9;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 10;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 11;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 12;
    /// Not shown to MONITOR.
    pub const SKIP_MONITOR: u32 = 1 << 13;
    /// Allowed in RESP2 subscriber mode.
    pub const SUB_CONTEXT: u32 = 1 << 14;
    /// Runs immediately even inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const TX_CONTROL: u32 = 1 << 15;
    /// Uses Codis's slot index.
    pub const SLOT: u32 = 1 << 16;

    /// Names of set flags as COMMAND INFO lists them.
    pub fn names(f: u32) -> Vec<&'static str> {
        let table = [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (ADMIN, "admin"),
            (PUBSUB, "pubsub"),
            (NOSCRIPT, "noscript"),
            (BLOCKING, "blocking"),
            (LOADING, "loading"),
            (STALE, "stale"),
            (SKIP_MONITOR, "skip_monitor"),
            (FAST, "fast"),
            (NO_AUTH, "no_auth"),
            (NO_MULTI, "no_multi"),
        ];
        table
            .iter()
            .filter(|(b, _)| f & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// What a handler may return instead of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`
    WrongType,
    /// `ERR syntax error`
    Syntax,
    /// `ERR value is not an integer or out of range`
    NotInteger,
    /// `ERR value is not a valid float`
    NotFloat,
    /// `ERR no such key`
    NoSuchKey,
    /// `ERR index out of range`
    OutOfRange,
    /// `ERR wrong number of arguments for '<name>' command`
    Arity(String),
    /// Any other error: the whole text after `-`, code included (`ERR ...`).
    Msg(String),
}

impl CmdError {
    /// An `ERR <text>` error.
    pub fn err(text: impl std::fmt::Display) -> Self {
        CmdError::Msg(format!("ERR {text}"))
    }

    /// The error line without the leading `-`.
    pub fn text(&self) -> String {
        match self {
            CmdError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::OutOfRange => "ERR index out of range".into(),
            CmdError::Arity(name) => {
                format!("ERR wrong number of arguments for '{name}' command")
            }
            CmdError::Msg(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// A handler's result.
pub type CmdResult = Result<(), CmdError>;

/// A command handler.
pub type Handler = fn(&mut Ctx<'_>, &[&[u8]]) -> CmdResult;

/// A command's table entry.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// The function that runs it.
    pub handler: Handler,
}

/// The positions of every key of request `args` (name first) run as `cmd`: the table's
/// first/last/step range, plus the keys Redis's key specs find beyond it (SORT's `STORE`
/// destination, the keys after a `numkeys`), from the proxy's complete command table.
/// Sorted, without duplicates.
pub(crate) fn key_positions(cmd: &CommandSpec, args: &[&[u8]]) -> Vec<usize> {
    let mut out = crate::proxy::command::request_key_positions(args);
    if cmd.first_key > 0 {
        let argc = args.len() as i32;
        let last = if cmd.last_key < 0 {
            argc + cmd.last_key
        } else {
            cmd.last_key.min(argc - 1)
        };
        let step = cmd.step.max(1) as usize;
        out.extend(
            (cmd.first_key..=last.max(0))
                .step_by(step)
                .map(|i| i as usize),
        );
    }
    out.retain(|&i| i < args.len());
    out.sort_unstable();
    out.dedup();
    out
}

/// Builds a [`CommandSpec`] (keeps the family tables one line per command).
pub const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        handler,
    }
}

/// Per-command counters (INFO commandstats).
#[derive(Debug, Default, Clone, Copy)]
pub struct CmdStat {
    /// Calls.
    pub calls: u64,
    /// Total microseconds.
    pub usec: u64,
    /// Calls refused before running (arity, OOM...).
    pub rejected: u64,
    /// Calls that ran and returned an error.
    pub failed: u64,
}

/// The merged command table.
#[derive(Debug)]
pub struct Registry {
    /// Every command, indexed by id.
    pub commands: Vec<&'static CommandSpec>,
    by_name: HashMap<&'static [u8], usize, foldhash::fast::FixedState>,
}

impl Registry {
    /// Looks a command up by name, case-insensitively.
    pub fn lookup(&self, name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
        let mut buf = [0u8; 40];
        if name.len() > buf.len() {
            return None;
        }
        for (d, s) in buf.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        self.by_name
            .get(&buf[..name.len()])
            .map(|&i| (i, self.commands[i]))
    }
}

/// The command table, built once.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let families: &[&'static [CommandSpec]] = &[
            connection::COMMANDS,
            keys::COMMANDS,
            dump::COMMANDS,
            string::COMMANDS,
            bits::COMMANDS,
            hash::COMMANDS,
            list::COMMANDS,
            set::COMMANDS,
            zset::COMMANDS,
            geo::COMMANDS,
            hll::COMMANDS,
            tx::COMMANDS,
            script::COMMANDS,
            pubsub::COMMANDS,
            repl::COMMANDS,
            server::COMMANDS,
            slots::COMMANDS,
            migrate_sync::COMMANDS,
            migrate_async::COMMANDS,
        ];
        let mut commands = Vec::new();
        let mut by_name = HashMap::with_hasher(foldhash::fast::FixedState::default());
        for fam in families {
            for c in fam.iter() {
                if by_name.insert(c.name.as_bytes(), commands.len()).is_none() {
                    commands.push(c);
                }
            }
        }
        Registry { commands, by_name }
    })
}

/// What a handler works with.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The locked store.
    pub store: &'a mut Store,
    /// The calling client's state.
    pub client: &'a mut Client,
    /// Where the reply goes.
    pub out: &'a mut Out,
    /// Server-wide state outside the store lock (clients, pub/sub).
    pub shared: &'a Shared,
    /// The time this command runs at (unix ms).
    pub now_ms: u64,
}

impl Ctx<'_> {
    /// The client's selected database.
    pub fn db(&mut self) -> &mut Db {
        &mut self.store.dbs[self.client.db]
    }

    /// The selected database and the reply buffer at once, for handlers that write a reply
    /// while holding a reference into the database.
    pub fn db_out(&mut self) -> (&mut Db, &mut Out) {
        (&mut self.store.dbs[self.client.db], &mut *self.out)
    }

    /// Marks `n` changes to the dataset (for `save` points and INFO).
    pub fn dirty(&mut self, n: u64) {
        self.store.dirty += n;
    }

    /// Blocks the client on `keys` until one changes or `timeout` passes (None: forever).
    /// The command is run again when woken; it must then reply, or call this again.
    /// Inside MULTI or once the timeout has passed, the caller must reply with its
    /// timeout reply instead (see [`Ctx::block_timed_out`] and [`Client::in_exec`]).
    pub fn block_on(&mut self, keys: &[&[u8]], timeout: Option<std::time::Duration>) {
        let deadline = *self
            .client
            .block_deadline
            .get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
        let waker = self.client.waker.clone();
        let db = self.client.db;
        for k in keys {
            self.store.dbs[db].block_on(k, &waker);
        }
        self.client.blocked_keys = keys.iter().map(|k| k.to_vec()).collect();
        self.client.action = Some(Action::Block { deadline });
    }

    /// True when a blocking command's timeout has passed (or it runs inside MULTI/EXEC) and
    /// it must now give its timeout reply instead of blocking again.
    pub fn block_timed_out(&self) -> bool {
        self.client.in_exec || self.client.block_timed_out
    }
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn arg_i64(a: &[u8]) -> Result<i64, CmdError> {
    number::parse_i64(a).ok_or(CmdError::NotInteger)
}

/// Parses a non-negative integer argument.
pub fn arg_usize(a: &[u8]) -> Result<usize, CmdError> {
    match number::parse_i64(a) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CmdError::NotInteger),
    }
}

/// Parses a float argument (`ERR value is not a valid float`).
pub fn arg_f64(a: &[u8]) -> Result<f64, CmdError> {
    number::parse_f64(a).ok_or(CmdError::NotFloat)
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn eq_ic(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// Redis's `unknown subcommand` error.
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        cmd.to_ascii_uppercase()
    ))
}

/// Redis's `unknown command` error text.
pub fn unknown_command_error(args: &[&[u8]]) -> String {
    fn cstr(b: &[u8]) -> String {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }
    let mut tail = String::new();
    for a in &args[1..] {
        if tail.len() >= 128 {
            break;
        }
        let room = 128 - tail.len();
        let s = cstr(a);
        let s: String = s.chars().take(room).collect();
        tail.push_str(&format!("'{s}' "));
    }
    let name: String = cstr(args[0]).chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {tail}")
}

/// Runs one command: lookup, arity, auth, MULTI queueing, maxmemory, the handler, stats.
pub fn execute(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let reg = registry();
    let Some((id, cmd)) = reg.lookup(args[0]) else {
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        let msg = unknown_command_error(args);
        reject(ctx, None, &msg);
        return;
    };
    let argc = args.len() as i32;
    if (cmd.arity > 0 && argc != cmd.arity) || (cmd.arity < 0 && argc < -cmd.arity) {
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        reject(ctx, Some(id), &CmdError::Arity(cmd.name.to_string()).text());
        return;
    }
    if !ctx.client.authenticated && cmd.flags & flags::NO_AUTH == 0 {
        if !ctx.store.config.requirepass.is_empty() {
            if ctx.client.multi.is_some() {
                ctx.client.multi_error = true;
            }
            reject(ctx, Some(id), "NOAUTH Authentication required.");
            return;
        }
        ctx.client.authenticated = true;
    }
    if ctx.client.in_pubsub_context() && cmd.flags & flags::SUB_CONTEXT == 0 {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.name
        );
        reject(ctx, Some(id), &msg);
        return;
    }
    // FUNCTION is flagged write for LOAD / DELETE / FLUSH / RESTORE; its other subcommands
    // read (Redis flags each subcommand), and a replica serves them.
    let writes = cmd.flags & flags::WRITE != 0
        && !(cmd.name == "function"
            && args.get(1).is_some_and(|s| {
                ["list", "dump", "stats", "kill", "help"]
                    .iter()
                    .any(|r| eq_ic(s, r))
            }));
    if writes
        && ctx.store.config.min_replicas_to_write > 0
        && ctx.store.repl.master.is_none()
        && !ctx.client.is_master
        && crate::server::repl::min_replicas(ctx.store).is_some_and(|(want, good)| good < want)
    {
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        reject(
            ctx,
            Some(id),
            "NOREPLICAS Not enough good replicas to write.",
        );
        return;
    }
    if writes
        && ctx.store.repl.master.is_some()
        && !ctx.client.is_master
        && ctx.store.config.get("replica-read-only").as_deref() != Some("no")
    {
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        reject(
            ctx,
            Some(id),
            "READONLY You can't write against a read only replica.",
        );
        return;
    }
    if (ctx.store.aof.write_error.is_some() || !ctx.store.persist.last_bgsave_ok)
        && (writes || cmd.name == "ping")
        && !ctx.client.is_master
        && ctx.store.repl.master.is_none()
        && let Some(msg) = disk_error(ctx.store)
    {
        // As Redis: writes (and PING, so monitoring notices) are refused while the dataset
        // cannot be persisted.
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        reject(ctx, Some(id), &msg);
        return;
    }
    if cmd.flags & flags::STALE == 0
        && !ctx.client.is_master
        && ctx
            .store
            .repl
            .master
            .as_ref()
            .is_some_and(|m| !m.link.up.load(std::sync::atomic::Ordering::Relaxed))
        && ctx.store.config.get("replica-serve-stale-data").as_deref() == Some("no")
    {
        reject(
            ctx,
            Some(id),
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        );
        return;
    }
    if ctx.client.multi.is_some() && cmd.flags & flags::TX_CONTROL == 0 {
        if cmd.flags & flags::NO_MULTI != 0 {
            ctx.client.multi_error = true;
            reject(
                ctx,
                Some(id),
                "ERR Command not allowed inside a transaction",
            );
            return;
        }
        if cmd.flags & flags::DENYOOM != 0 && oom(ctx) {
            ctx.client.multi_error = true;
            reject(
                ctx,
                Some(id),
                "OOM command not allowed when used memory > 'maxmemory'.",
            );
            return;
        }
        let queued = args.iter().map(|a| a.to_vec()).collect();
        if let Some(q) = ctx.client.multi.as_mut() {
            q.push(queued);
        }
        ctx.out.simple("QUEUED");
        return;
    }
    if cmd.flags & flags::DENYOOM != 0 && oom(ctx) {
        reject(
            ctx,
            Some(id),
            "OOM command not allowed when used memory > 'maxmemory'.",
        );
        return;
    }
    if cmd.flags & flags::WRITE != 0
        && ctx
            .store
            .migrate_async
            .write_conflicts(ctx.client.db, cmd, args)
    {
        // A direct write (not through SLOTSMGRT-EXEC-WRAPPER) to a key of the async batch in
        // flight: refused with a retryable error instead of being lost when the batch ends.
        reject(ctx, Some(id), "TRYAGAIN the key is being migrated, retry");
        return;
    }
    call(ctx, id, cmd, args);
}

/// Runs a command that passed all checks (also used by EXEC for queued commands).
///
/// Timing uses `quanta` (the CPU's timestamp counter): two `clock_gettime` calls per command
/// cost 8% of the server's time in a pipelined GET benchmark. Returns when the command
/// ended (a script's inline budget is checked against it).
pub fn call(
    ctx: &mut Ctx<'_>,
    id: usize,
    cmd: &'static CommandSpec,
    args: &[&[u8]],
) -> quanta::Instant {
    let start = quanta::Instant::now();
    ctx.store.command_started = start;
    ctx.store.command_ended = None;
    let before = ctx.out.len();
    let dirty = ctx.store.dirty;
    let res = (cmd.handler)(ctx, args);
    // The duration leaves propagation out, as Redis's does.
    let ended = ctx
        .store
        .command_ended
        .take()
        .unwrap_or_else(quanta::Instant::now);
    if ctx.store.repl.active() || ctx.store.aof.on {
        crate::server::repl::after_command(ctx, cmd, args, dirty);
    }
    let usec = ended.saturating_duration_since(start).as_micros() as u64;
    if ctx.store.cmdstats.len() <= id {
        ctx.store
            .cmdstats
            .resize(registry().commands.len(), CmdStat::default());
    }
    // A blocked command, or an inline script moved to the script thread, runs again later:
    // it is counted (and logged) then.
    let blocked = matches!(
        ctx.client.action,
        Some(Action::Block { .. } | Action::Script(_))
    );
    if !blocked {
        let st = &mut ctx.store.cmdstats[id];
        st.calls += 1;
        st.usec += usec;
        ctx.store.stats.total_commands += 1;
        ctx.client.block_deadline = None;
        ctx.client.block_timed_out = false;
    }
    if let Err(e) = res {
        ctx.out.truncate(before);
        let text = e.text();
        ctx.store.cmdstats[id].failed += 1;
        count_error(ctx.store, &text);
        ctx.out.error(&text);
    }
    ctx.client.info.set_last_cmd(id);
    if ctx.shared.has_monitors() && cmd.flags & flags::SKIP_MONITOR == 0 {
        ctx.shared.feed_monitors(ctx.client, args);
    }
    let threshold = ctx.store.config.slowlog_log_slower_than;
    if threshold >= 0 && usec as i64 >= threshold && !blocked {
        let name = ctx.client.info.name();
        let addr = ctx.client.info.addr.clone();
        let max = ctx.store.config.slowlog_max_len;
        ctx.store.slowlog.push(args, usec, &addr, &name, max);
    }
    ended
}

fn count_error(store: &mut Store, text: &str) {
    store.stats.total_error_replies += 1;
    let code = text.split(' ').next().unwrap_or("ERR").to_string();
    *store.errorstats.entry(code).or_insert(0) += 1;
}

fn reject(ctx: &mut Ctx<'_>, id: Option<usize>, msg: &str) {
    if let Some(id) = id {
        if ctx.store.cmdstats.len() <= id {
            ctx.store
                .cmdstats
                .resize(registry().commands.len(), CmdStat::default());
        }
        ctx.store.cmdstats[id].rejected += 1;
    }
    count_error(ctx.store, msg);
    ctx.out.error(msg);
}

/// The MISCONF error writes get while the last BGSAVE failed (`stop-writes-on-bgsave-error`
/// with `save` points) or the AOF cannot be written.
fn disk_error(store: &Store) -> Option<String> {
    if let Some(e) = &store.aof.write_error {
        return Some(format!("MISCONF Errors writing to the AOF file: {e}"));
    }
    if !store.persist.last_bgsave_ok
        && store.config.get("stop-writes-on-bgsave-error").as_deref() != Some("no")
        && !crate::server::persist::save_points(&store.config).is_empty()
    {
        return Some("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into());
    }
    None
}

fn oom(ctx: &mut Ctx<'_>) -> bool {
    if ctx.store.config.maxmemory == 0 {
        return false;
    }
    ctx.store.evict_to_fit(crate::alloc::allocated_bytes) == crate::store::evict::EvictOutcome::Oom
}
