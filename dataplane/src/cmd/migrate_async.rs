//! Codis's asynchronous slot migration (`../shared/spec/codis-3.2.md` §4, "Async family").
//!
//! Source side: SLOTSMGRTSLOT-ASYNC, SLOTSMGRTTAGSLOT-ASYNC, SLOTSMGRTONE-ASYNC,
//! SLOTSMGRTTAGONE-ASYNC pick a batch of keys, hand it to the DB's migration task and make the
//! caller wait (`Action::Defer`) until the target acknowledged every message; then the keys are
//! deleted here. SLOTSMGRT-ASYNC-FENCE / -CANCEL / -STATUS manage the batch,
//! SLOTSMGRT-EXEC-WRAPPER lets a proxy run a command on a key of a migrating slot.
//! Target side ([`restore`]): SLOTSRESTORE-ASYNC and its -AUTH / -SELECT, each answered with a
//! `SLOTSRESTORE-ASYNC-ACK code message` frame.
//!
//! Layout: [`State`] (in [`Store`], so it changes atomically with the keyspace) holds, per
//! source DB, the cached target connection's description and the in-flight [`batch::Batch`];
//! [`task`] owns the socket and streams the batch's messages with bounded bytes in flight,
//! taking the store lock only briefly to build the next messages.

mod batch;
mod restore;
mod task;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, oneshot};

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, registry, spec};
use crate::server::client::{Action, Finish};
use crate::store::Store;
use batch::Batch;

/// Commands of this family (names, arities and flags as codis-server 3.2 declares them; the
/// commands that make their caller wait may not run inside MULTI).
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "slotsmgrtslot-async",
        8,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        mgrt_slot,
    ),
    spec(
        "slotsmgrttagslot-async",
        8,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        mgrt_tagslot,
    ),
    spec(
        "slotsmgrtone-async",
        -7,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        mgrt_one,
    ),
    spec(
        "slotsmgrttagone-async",
        -7,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        mgrt_tagone,
    ),
    spec(
        "slotsmgrtone-async-dump",
        -4,
        READONLY | SLOT,
        (0, 0, 0),
        dump_one,
    ),
    spec(
        "slotsmgrttagone-async-dump",
        -4,
        READONLY | SLOT,
        (0, 0, 0),
        dump_tagone,
    ),
    spec(
        "slotsmgrt-async-fence",
        0,
        READONLY | NO_MULTI | SLOT,
        (0, 0, 0),
        fence,
    ),
    spec("slotsmgrt-async-cancel", 0, FAST | SLOT, (0, 0, 0), cancel),
    spec("slotsmgrt-async-status", 0, FAST | SLOT, (0, 0, 0), status),
    spec(
        "slotsmgrt-exec-wrapper",
        -3,
        WRITE | DENYOOM | SLOT,
        (0, 0, 0),
        exec_wrapper,
    ),
    spec(
        "slotsrestore-async",
        -2,
        WRITE | DENYOOM | SLOT,
        (0, 0, 0),
        restore::restore_async,
    ),
    spec(
        "slotsrestore-async-auth",
        2,
        NO_AUTH | FAST | LOADING | STALE | SLOT,
        (0, 0, 0),
        restore::auth,
    ),
    spec(
        "slotsrestore-async-select",
        2,
        FAST | LOADING | SLOT,
        (0, 0, 0),
        restore::select,
    ),
    spec("slotsrestore-async-ack", 3, WRITE | SLOT, (0, 0, 0), ack),
];

/// What a waiting caller learns when the batch ends: the number of keys moved, or why not.
type Outcome = Result<usize, String>;

/// Asynchronous migration state of the whole server (a field of [`Store`]).
#[derive(Debug, Default)]
pub struct State {
    /// Cached target connection per source DB.
    clients: HashMap<usize, CachedClient>,
    /// Generation of the last cached client created (tells a task it was replaced).
    next_gen: u64,
    /// Counters shown by `INFO migration`.
    pub stats: Stats,
}

/// Counters of `INFO migration`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Keys moved away (acknowledged by a target and deleted here).
    pub keys_moved: u64,
    /// Restore messages sent to targets.
    pub msgs_sent: u64,
    /// Bytes of restore messages sent to targets.
    pub bytes_sent: u64,
    /// Batches completed.
    pub batches_done: u64,
    /// Batches that failed or were canceled (their keys stay here).
    pub batches_failed: u64,
    /// SLOTSRESTORE-ASYNC messages applied as a target.
    pub restore_msgs: u64,
    /// SLOTSRESTORE-ASYNC messages refused as a target.
    pub restore_errors: u64,
}

/// One source DB's cached connection to a target, as the commands see it. The socket itself
/// belongs to the migration task.
#[derive(Debug)]
struct CachedClient {
    generation: u64,
    host: String,
    port: u16,
    /// True once AUTH/SELECT were sent on the connection.
    used: bool,
    /// Timeout (ms) of the last batch.
    timeout: u64,
    /// The batch in flight, if any.
    batch: Option<Batch>,
    /// Callers waiting for the batch (the migrate command and FENCEs).
    blocked: Vec<oneshot::Sender<Outcome>>,
    /// Wakes the task: a new batch, or the client was dropped.
    wake: Arc<Notify>,
    /// Updated by the task without the lock: messages awaiting an ACK, last progress (ms).
    progress: Arc<Progress>,
}

/// Live counters of a migration task.
#[derive(Debug, Default)]
struct Progress {
    sending_msgs: AtomicUsize,
    lastuse: AtomicU64,
}

impl State {
    /// True when `key` of `db` belongs to the batch in flight (the key itself, or a key with
    /// the same hash tag): writes to it must wait until the batch ends.
    pub fn is_migrating(&self, db: usize, key: &[u8]) -> bool {
        self.clients
            .get(&db)
            .and_then(|c| c.batch.as_ref())
            .is_some_and(|b| b.contains(key))
    }

    /// True when a write command `args` would touch a key of `db`'s batch in flight (any of
    /// its keys, [`super::key_positions`]: SORT's `STORE` destination and LMPOP's keys
    /// included). Such a write must wait: the key may already be on its way, and deleting it
    /// at the end of the batch would lose the write.
    pub fn write_conflicts(&self, db: usize, spec: &super::CommandSpec, args: &[&[u8]]) -> bool {
        if self.clients.is_empty() || !self.db_busy(db) {
            return false;
        }
        super::key_positions(spec, args)
            .into_iter()
            .any(|i| self.is_migrating(db, args[i]))
    }

    /// True when `db` has a batch in flight.
    pub fn db_busy(&self, db: usize) -> bool {
        self.clients.get(&db).is_some_and(|c| c.batch.is_some())
    }

    /// Drops the cached client of `db`: its waiting callers get `msg`, its task exits.
    /// Returns true if there was one.
    fn release(&mut self, db: usize, msg: &str) -> bool {
        let Some(c) = self.clients.remove(&db) else {
            return false;
        };
        if c.batch.is_some() {
            self.stats.batches_failed += 1;
        }
        for tx in c.blocked {
            let _ = tx.send(Err(msg.to_string()));
        }
        c.wake.notify_one();
        if let Some(b) = &c.batch {
            tracing::warn!(
                db,
                host = %c.host,
                port = c.port,
                pending_keys = b.pending(),
                "slotsmgrt_async: migration interrupted: {msg}"
            );
        }
        true
    }
}

/// The `INFO migration` section (not part of `INFO` / `INFO default`).
pub fn info_section(store: &Store) -> String {
    let st = &store.migrate_async;
    let in_flight = st.clients.values().filter(|c| c.batch.is_some()).count();
    let sending: usize = st
        .clients
        .values()
        .map(|c| c.progress.sending_msgs.load(Ordering::Relaxed))
        .sum();
    let pending: usize = st
        .clients
        .values()
        .filter_map(|c| c.batch.as_ref())
        .map(|b| b.pending())
        .sum();
    let s = &st.stats;
    let mut t = String::from("# Migration\r\n");
    let _ = write!(
        t,
        "migrate_async_connections:{}\r\nmigrate_async_batches_in_flight:{in_flight}\r\n\
         migrate_async_keys_in_flight:{pending}\r\nmigrate_async_sending_msgs:{sending}\r\n\
         migrate_async_keys_moved:{}\r\nmigrate_async_msgs_sent:{}\r\n\
         migrate_async_bytes_sent:{}\r\nmigrate_async_batches_done:{}\r\n\
         migrate_async_batches_failed:{}\r\nrestore_async_msgs:{}\r\n\
         restore_async_errors:{}\r\nmigrate_sync_keys_in_flight:{}\r\n\
         migrate_sync_waits:{}\r\n",
        st.clients.len(),
        s.keys_moved,
        s.msgs_sent,
        s.bytes_sent,
        s.batches_done,
        s.batches_failed,
        s.restore_msgs,
        s.restore_errors,
        store.migrate_sync.keys_in_flight(),
        store.migrate_sync.waits,
    );
    t
}

/// Parses a non-negative integer argument bounded by `i32::MAX`, with Codis's error text.
fn arg_bounded(a: &[u8], what: &str) -> Result<u64, CmdError> {
    match crate::util::number::parse_i64(a) {
        Some(n) if (0..=i32::MAX as i64).contains(&n) => Ok(n as u64),
        _ => Err(CmdError::err(format!(
            "invalid value of {what} ({})",
            String::from_utf8_lossy(a)
        ))),
    }
}

/// Batch parameters of a migrate command.
struct Params {
    host: String,
    port: u16,
    timeout: u64,
    maxbulks: usize,
    maxbytes: usize,
}

fn parse_params(args: &[&[u8]]) -> Result<Params, CmdError> {
    let host = String::from_utf8_lossy(args[1]).into_owned();
    let port = match crate::util::number::parse_i64(args[2]) {
        Some(p) if (1..65536).contains(&p) => p as u16,
        _ => {
            return Err(CmdError::err(format!(
                "invalid value of port ({})",
                String::from_utf8_lossy(args[2])
            )));
        }
    };
    let timeout = match arg_bounded(args[3], "timeout")? {
        0 => 30_000,
        t => t,
    };
    let maxbulks = match arg_bounded(args[4], "maxbulks")? {
        0 => 200,
        n => n.min(512 * 1024),
    } as usize;
    let maxbytes = match arg_bounded(args[5], "maxbytes")? {
        0 => 512 * 1024,
        n => n.min(i32::MAX as u64 / 2),
    } as usize;
    Ok(Params {
        host,
        port,
        timeout,
        maxbulks,
        maxbytes,
    })
}

fn mgrt_slot(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, false, false)
}

fn mgrt_tagslot(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, true, false)
}

fn mgrt_one(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, false, true)
}

fn mgrt_tagone(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, true, true)
}

/// The four migrate commands: select the batch, give it to the DB's task, make the caller
/// wait for the outcome.
fn migrate(ctx: &mut Ctx<'_>, args: &[&[u8]], usetag: bool, usekey: bool) -> CmdResult {
    let p = parse_params(args)?;
    let mut slot_numkeys = None;
    if !usekey {
        let slot = match crate::util::number::parse_i64(args[6]) {
            Some(s) if (0..codis_model::MAX_SLOT_NUM as i64).contains(&s) => s as usize,
            _ => {
                return Err(CmdError::err(format!(
                    "invalid value of slot ({})",
                    String::from_utf8_lossy(args[6])
                )));
            }
        };
        let numkeys = match arg_bounded(args[7], "numkeys")? {
            0 => 100,
            n => n as usize,
        };
        slot_numkeys = Some((slot, numkeys));
    }
    let dbi = ctx.client.db;
    if ctx.store.migrate_async.db_busy(dbi) {
        return Err(CmdError::err("the specified DB is being migrated"));
    }
    let now = ctx.now_ms;
    let mut batch = Batch::new(
        slot_numkeys.map(|(s, _)| s),
        p.timeout,
        p.maxbulks,
        p.maxbytes,
        crate::rdb::Limits::from_config(&ctx.store.config),
    );
    {
        let db = &mut ctx.store.dbs[dbi];
        match slot_numkeys {
            Some((slot, numkeys)) => batch.select_from_slot(db, slot, numkeys, usetag, now),
            None => batch.add_keys(db, &args[6..], usetag, now),
        }
    }
    let slot = batch.slot;
    if batch.is_empty() {
        // Nothing to send: answer at once, without opening a connection.
        write_outcome(ctx, slot, dbi, 0);
        return Ok(());
    }
    let Some(shared) = ctx.shared.arc() else {
        return Err(CmdError::err("server is shutting down"));
    };
    let st = &mut ctx.store.migrate_async;
    let reuse = st
        .clients
        .get(&dbi)
        .is_some_and(|c| c.host == p.host && c.port == p.port);
    if !reuse {
        st.release(dbi, "interrupted: build new connection");
        st.next_gen += 1;
        let generation = st.next_gen;
        let wake = Arc::new(Notify::new());
        let progress = Arc::new(Progress::default());
        progress.lastuse.store(now, Ordering::Relaxed);
        st.clients.insert(
            dbi,
            CachedClient {
                generation,
                host: p.host.clone(),
                port: p.port,
                used: false,
                timeout: p.timeout,
                batch: None,
                blocked: Vec::new(),
                wake: wake.clone(),
                progress,
            },
        );
        tokio::spawn(task::run(
            shared,
            task::Target {
                db: dbi,
                generation,
                host: p.host.clone(),
                port: p.port,
                connect_timeout: p.timeout,
            },
            wake,
        ));
    }
    let c = st
        .clients
        .get_mut(&dbi)
        .expect("cached client just ensured");
    c.timeout = p.timeout;
    c.progress.lastuse.store(now, Ordering::Relaxed);
    c.batch = Some(batch);
    let (tx, rx) = oneshot::channel();
    c.blocked.push(tx);
    c.wake.notify_one();
    defer_reply(ctx, rx, slot, dbi);
    Ok(())
}

/// Makes the caller wait for its batch's outcome, then writes the reply.
fn defer_reply(ctx: &mut Ctx<'_>, rx: oneshot::Receiver<Outcome>, slot: Option<usize>, db: usize) {
    let fut = async move {
        let res = rx
            .await
            .unwrap_or_else(|_| Err("interrupted: connection closed".to_string()));
        let finish: Finish = Box::new(move |ctx: &mut Ctx<'_>| match res {
            Ok(n) => {
                write_outcome(ctx, slot, db, n);
                Ok(())
            }
            Err(msg) => Err(CmdError::err(msg)),
        });
        finish
    };
    ctx.client.action = Some(Action::Defer(Box::pin(fut)));
}

/// `[moved, remaining_in_slot]` for the slot variants, `moved` for the key variants.
fn write_outcome(ctx: &mut Ctx<'_>, slot: Option<usize>, db: usize, moved: usize) {
    match slot {
        Some(s) => {
            let remaining = ctx.store.dbs[db].slot(s).keys.len();
            ctx.out.array(2);
            ctx.out.int(moved as i64);
            ctx.out.int(remaining as i64);
        }
        None => ctx.out.int(moved as i64),
    }
}

fn dump_one(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    dump(ctx, args, false)
}

fn dump_tagone(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    dump(ctx, args, true)
}

/// SLOTSMGRTONE-ASYNC-DUMP / SLOTSMGRTTAGONE-ASYNC-DUMP: the restore messages a migration of
/// these keys would send, as an array of commands.
fn dump(ctx: &mut Ctx<'_>, args: &[&[u8]], usetag: bool) -> CmdResult {
    let timeout = match arg_bounded(args[1], "timeout")? {
        0 => 30_000,
        t => t,
    };
    let maxbulks = match arg_bounded(args[2], "maxbulks")? {
        0 => 1000,
        n => n as usize,
    };
    let now = ctx.now_ms;
    let dbi = ctx.client.db;
    let lim = crate::rdb::Limits::from_config(&ctx.store.config);
    let db = &mut ctx.store.dbs[dbi];
    let mut batch = Batch::new(None, timeout, maxbulks, i32::MAX as usize, lim);
    batch.add_keys(db, &args[3..], usetag, now);
    let mut msgs = Vec::new();
    let mut sizes = std::collections::VecDeque::new();
    while !batch.exhausted() {
        batch.next_messages(db, now, &mut msgs, &mut sizes, usize::MAX);
    }
    ctx.out.array(sizes.len());
    ctx.out.raw(&msgs);
    Ok(())
}

/// SLOTSMGRT-ASYNC-FENCE: OK when no batch is in flight on this DB, else wait for it.
fn fence(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let dbi = ctx.client.db;
    let Some(c) = ctx
        .store
        .migrate_async
        .clients
        .get_mut(&dbi)
        .filter(|c| c.batch.is_some())
    else {
        ctx.out.ok();
        return Ok(());
    };
    let slot = c.batch.as_ref().and_then(|b| b.slot);
    let (tx, rx) = oneshot::channel();
    c.blocked.push(tx);
    defer_reply(ctx, rx, slot, dbi);
    Ok(())
}

/// SLOTSMGRT-ASYNC-CANCEL: drops this DB's cached connection (and its batch: the keys stay).
fn cancel(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let dbi = ctx.client.db;
    let dropped = ctx
        .store
        .migrate_async
        .release(dbi, "interrupted: canceled");
    ctx.out.int(dropped as i64);
    Ok(())
}

/// SLOTSMGRT-ASYNC-STATUS: nil, or a flat field/value array describing the cached client
/// and its batch (numbers as bulk strings, as Codis writes them).
fn status(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let dbi = ctx.client.db;
    let now = ctx.now_ms;
    let Some(c) = ctx.store.migrate_async.clients.get(&dbi) else {
        ctx.out.null_array();
        return Ok(());
    };
    let out = &mut *ctx.out;
    let lastuse = c.progress.lastuse.load(Ordering::Relaxed);
    out.array(18);
    out.bulk(b"host");
    out.bulk(c.host.as_bytes());
    let nums = [
        ("port", c.port as i64),
        ("used", c.used as i64),
        ("timeout", c.timeout as i64),
        ("lastuse", lastuse as i64),
        ("since_lastuse", now.saturating_sub(lastuse) as i64),
        (
            "sending_msgs",
            c.progress.sending_msgs.load(Ordering::Relaxed) as i64,
        ),
        ("blocked_clients", c.blocked.len() as i64),
    ];
    for (name, v) in nums {
        out.bulk(name.as_bytes());
        out.bulk(v.to_string().as_bytes());
    }
    out.bulk(b"batched_iterator");
    match &c.batch {
        None => out.null_array(),
        Some(b) => b.write_status(out),
    }
    Ok(())
}

/// SLOTSRESTORE-ASYNC-ACK: our migration task reads the target's ACKs itself, so one
/// arriving as a command comes from an ordinary client and is refused (and it is closed).
fn ack(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.client.action = Some(Action::Close);
    Err(CmdError::err("invalid client, permission denied"))
}

/// Whether a command may run inside SLOTSMGRT-EXEC-WRAPPER: a data command on keys. Codis 3.2
/// runs any command there; the proxy forwards the wrapper for writes to a migrating slot, so
/// here it refuses what a client must not reach through it (admin, connection and pub/sub
/// commands, commands without keys, blocking or transaction commands, the slot commands, and
/// MOVE, which leaves the database being migrated). Scripts and functions (EVAL, EVALSHA,
/// FCALL and their `_RO` forms) are wrappable: their keys are the `numkeys` after the script.
fn wrappable(cmd: &CommandSpec) -> bool {
    if crate::script::is_script_call(cmd.name.as_bytes()) {
        return true;
    }
    cmd.first_key > 0
        && cmd.flags & (ADMIN | PUBSUB | NOSCRIPT | BLOCKING | NO_MULTI | TX_CONTROL | SLOT) == 0
        && !cmd.name.starts_with("slots")
        && cmd.name != "move"
}

/// SLOTSMGRT-EXEC-WRAPPER hashkey command [args...]: `[code, reply]` where code -1 = bad
/// command, 0 = the key is not here (ask the target), 1 = the key is in the batch in flight
/// and the command writes (retry), 2 = executed here, with its reply (error or not).
fn exec_wrapper(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let inner = &args[2..];
    let name = String::from_utf8_lossy(args[2]).into_owned();
    let refuse = |ctx: &mut Ctx<'_>, code: i64, msg: String| {
        ctx.out.array(2);
        ctx.out.int(code);
        ctx.out.error(&msg);
        Ok(())
    };
    let Some((id, cmd)) = registry().lookup(args[2]) else {
        return refuse(ctx, -1, format!("ERR invalid command specified ({name})"));
    };
    let argc = inner.len() as i32;
    if (cmd.arity > 0 && argc != cmd.arity) || (cmd.arity < 0 && argc < -cmd.arity) {
        return refuse(
            ctx,
            -1,
            format!("ERR wrong number of arguments for command ({name})"),
        );
    }
    let nested_script = crate::script::is_script_call(cmd.name.as_bytes())
        && ctx
            .shared
            .script_busy()
            .running
            .load(std::sync::atomic::Ordering::Acquire);
    if !wrappable(cmd) || nested_script {
        return refuse(
            ctx,
            -1,
            format!("ERR command not allowed in SLOTSMGRT-EXEC-WRAPPER ({name})"),
        );
    }
    // The wrapper answers for the hashkey's slot only: every key of the command must be
    // there (a second key elsewhere may be on another group, or in another batch).
    let slot = codis_model::slot_of(args[1]);
    if super::key_positions(cmd, inner)
        .into_iter()
        .any(|i| codis_model::slot_of(inner[i]) != slot)
    {
        return refuse(
            ctx,
            -1,
            format!("ERR the keys are not all in the slot of the hashkey ({name})"),
        );
    }
    let dbi = ctx.client.db;
    let now = ctx.now_ms;
    if !ctx.store.dbs[dbi].contains(args[1], now) {
        return refuse(ctx, 0, "ERR the specified key doesn't exist".into());
    }
    if cmd.flags & READONLY == 0
        && (ctx.store.migrate_async.is_migrating(dbi, args[1])
            || ctx.store.migrate_async.write_conflicts(dbi, cmd, inner))
    {
        return refuse(ctx, 1, "ERR the specified key is being migrated".into());
    }
    ctx.out.array(2);
    ctx.out.int(2);
    super::call(ctx, id, cmd, inner);
    Ok(())
}
