//! Master-replica replication, Redis's protocol (PSYNC2).
//!
//! Master side:
//! - [`State`] lives in the [`Store`], so the replication stream is appended under the same
//!   lock acquisition that made a command's effect final (`cmd::call`): the stream order is
//!   the execution order by construction.
//! - Until a replica first attaches there is no backlog and propagation is one branch.
//!   After that, every command that changed the dataset (`dirty` moved) is encoded once,
//!   appended to the backlog (a ring of `repl-backlog-size` bytes) and queued, as shared
//!   bytes, on each attached replica's channel. Expirations and evictions go out as `DEL`;
//!   commands whose effect depends on the clock or on chance are rewritten ([`rewrite`]).
//! - `PSYNC`/`SYNC` (`cmd/repl.rs`) either continues from the backlog (`+CONTINUE`) or
//!   serialises the keyspace into an RDB payload under the lock and registers the replica in
//!   the same hold, so the stream starts exactly at the snapshot point. The connection task
//!   then becomes [`serve_replica`]: it writes the payload and the stream, and reads
//!   `REPLCONF ACK`.
//!
//! Replica side ([`link`]): `REPLICAOF host port` starts a task that does the handshake,
//! loads the payload into fresh databases, then runs the master's commands through the
//! normal dispatcher as a client flagged `master`, feeding the same bytes into its own
//! backlog (so its offset is the master's, and a promoted replica can serve a partial
//! resync).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Shared;
use super::client::ClientInfo;
use crate::cmd::{CommandSpec, Ctx};
use crate::rdb::Limits;
use crate::resp::request::encode_command;
use crate::store::{Store, now_ms};

pub mod link;

/// A replica attached to this master.
#[derive(Debug)]
pub struct ReplicaLink {
    /// Its client id.
    pub id: u64,
    /// Its IP address.
    pub ip: String,
    /// The port it listens on (`REPLCONF listening-port`).
    pub port: u64,
    /// Last offset it acknowledged.
    pub ack: AtomicU64,
    /// Unix ms of its last ACK.
    pub last_ack_ms: AtomicU64,
    /// True once the payload has been sent (`state=online`).
    pub online: AtomicBool,
    /// Stream bytes queued and not yet written to the socket.
    queued: std::sync::atomic::AtomicUsize,
    /// Woken when the master drops the replica (output buffer limit).
    closed: tokio::sync::Notify,
    tx: mpsc::UnboundedSender<Chunk>,
}

/// Stream bytes for one replica, and the AOF offset that must be fsynced before they are
/// written (`appendfsync always`: as Redis, replicas get a batch after its fsync).
type Chunk = (Bytes, Option<u64>);

/// Most stream bytes queued for one replica before it is dropped, as Redis's
/// `client-output-buffer-limit replica 256mb`: a replica that stops reading must not make the
/// master grow without bound (it resyncs when it reconnects).
const REPLICA_QUEUE_LIMIT: usize = 256 * 1024 * 1024;

/// The backlog: the last `size` bytes of the stream.
#[derive(Debug)]
struct Backlog {
    buf: VecDeque<u8>,
    size: usize,
}

/// The replica side's view of its master (set by REPLICAOF).
#[derive(Debug)]
pub struct MasterCfg {
    /// Master host.
    pub host: String,
    /// Master port.
    pub port: u16,
    /// Shared with the link task.
    pub link: Arc<link::LinkState>,
}

/// Replication state, kept in the store.
#[derive(Debug)]
pub struct State {
    /// This server's replication id.
    pub replid: String,
    /// The previous id (after a promotion), or forty zeros.
    pub replid2: String,
    /// Bytes of stream produced (or, on a replica, applied) so far.
    pub offset: u64,
    /// First offset not valid for `replid2` (-1: none).
    pub second_offset: i64,
    backlog: Option<Backlog>,
    /// Attached replicas.
    pub replicas: Vec<Arc<ReplicaLink>>,
    stream_db: Option<usize>,
    pub(crate) multi_open: bool,
    /// Full resyncs served.
    pub sync_full: u64,
    /// Partial resyncs accepted.
    pub sync_partial_ok: u64,
    /// Partial resyncs refused.
    pub sync_partial_err: u64,
    /// Set on a replica.
    pub master: Option<MasterCfg>,
    last_ping_ms: u64,
    /// A full-resync payload is being serialised with copy-on-write (BGSAVE waits).
    pub snapshotting: bool,
    /// Stream bytes fed during the current lock hold, sent to the replicas as one chunk by
    /// [`State::flush`] at the end of the batch.
    pending: Vec<u8>,
    /// Reused encoding buffer.
    scratch: Vec<u8>,
}

/// A new random 40-hex-digit replication id.
pub fn new_replid() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

impl Default for State {
    fn default() -> Self {
        State {
            replid: new_replid(),
            replid2: "0".repeat(40),
            offset: 0,
            second_offset: -1,
            backlog: None,
            replicas: Vec::new(),
            stream_db: None,
            multi_open: false,
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
            master: None,
            last_ping_ms: 0,
            snapshotting: false,
            pending: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

impl State {
    /// True once a backlog exists: commands are then propagated.
    #[inline]
    pub fn active(&self) -> bool {
        self.backlog.is_some()
    }

    /// Creates the backlog (first replica, or on a replica that got its first payload).
    pub fn ensure_backlog(&mut self, size: usize) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog {
                buf: VecDeque::new(),
                size: size.max(16 * 1024),
            });
        }
    }

    /// A new, empty backlog (a replica after a full resync: a new history).
    pub fn reset_backlog(&mut self) {
        let size = self.backlog_size();
        self.backlog = None;
        self.ensure_backlog(size);
        self.stream_db = None;
    }

    /// Backlog size setting, bytes.
    pub fn backlog_size(&self) -> usize {
        self.backlog.as_ref().map(|b| b.size).unwrap_or(1 << 20)
    }

    /// First offset the backlog holds.
    pub fn backlog_first(&self) -> u64 {
        let len = self.backlog.as_ref().map(|b| b.buf.len()).unwrap_or(0) as u64;
        self.offset + 1 - len
    }

    /// Bytes in the backlog.
    pub fn backlog_len(&self) -> usize {
        self.backlog.as_ref().map(|b| b.buf.len()).unwrap_or(0)
    }

    /// Appends bytes to the stream: backlog and offset now, the attached replicas at the
    /// end of the batch ([`State::flush`]).
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.offset += bytes.len() as u64;
        if let Some(b) = self.backlog.as_mut() {
            b.buf.extend(bytes);
            let over = b.buf.len().saturating_sub(b.size);
            if over > 0 {
                b.buf.drain(..over);
            }
        }
        if !self.replicas.is_empty() {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// Bytes of stream waiting for replicas (this batch's, plus the longest replica queue:
    /// queued chunks are shared): Redis does not count replica output buffers for maxmemory.
    pub fn buffered_bytes(&self) -> usize {
        let queued = self
            .replicas
            .iter()
            .map(|r| r.queued.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        self.pending.len() + queued
    }

    /// Sends what the batch fed to every attached replica, as one shared chunk. Called at
    /// the end of every lock hold that may have fed the stream (`server::end_of_batch`,
    /// the cron), and before a replica is added (its stream starts after this point).
    pub fn flush(&mut self) {
        self.flush_after(None)
    }

    /// [`State::flush`] for a batch whose AOF must be fsynced up to `fsync` before the
    /// replicas see it (`appendfsync always`). Redis feeds replicas through the same client
    /// output buffers as replies, written in `beforeSleep` after `flushAppendOnlyFile`.
    pub fn flush_after(&mut self, fsync: Option<u64>) {
        if self.pending.is_empty() {
            return;
        }
        if self.replicas.is_empty() {
            self.pending.clear();
            return;
        }
        {
            let bytes = std::mem::take(&mut self.pending);
            let n = bytes.len();
            let shared = Bytes::from(bytes);
            self.replicas.retain(|r| {
                if r.queued.fetch_add(n, Ordering::Relaxed) + n > REPLICA_QUEUE_LIMIT {
                    tracing::warn!(
                        replica = r.id,
                        "replica output buffer over its limit: dropped"
                    );
                    r.closed.notify_one();
                    return false;
                }
                r.tx.send((shared.clone(), fsync)).is_ok()
            });
        }
    }

    /// The backlog from `from` (an offset the caller checked is held) to the end.
    fn backlog_from(&self, from: u64) -> Vec<u8> {
        let first = self.backlog_first();
        match &self.backlog {
            Some(b) => b
                .buf
                .iter()
                .skip((from - first) as usize)
                .copied()
                .collect(),
            None => Vec::new(),
        }
    }

    /// Propagates one command run against `db`.
    pub fn propagate(&mut self, db: usize, args: &[&[u8]]) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        if self.stream_db != Some(db) {
            encode_command(&mut buf, &[b"SELECT", db.to_string().as_bytes()]);
            self.stream_db = Some(db);
        }
        encode_command(&mut buf, args);
        self.feed(&buf);
        if buf.capacity() <= 64 * 1024 {
            self.scratch = buf;
        }
    }

    /// Forgets the stream's selected db (the next command is preceded by SELECT).
    pub fn reset_stream_db(&mut self) {
        self.stream_db = None;
    }

    /// REPLICAOF NO ONE / a new master: the current id becomes `replid2`.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid());
        self.second_offset = self.offset as i64 + 1;
    }
}

/// `min-replicas-to-write` when set (with `min-replicas-max-lag`), and the replicas that
/// count as good: online, with an ACK no older than the lag.
pub fn min_replicas(store: &Store) -> Option<(usize, usize)> {
    let (want, lag) = (
        store.config.min_replicas_to_write,
        store.config.min_replicas_max_lag,
    );
    if want == 0 || lag == 0 {
        return None;
    }
    let now = now_ms();
    let good = store
        .repl
        .replicas
        .iter()
        .filter(|r| {
            r.online.load(Ordering::Relaxed)
                && now.saturating_sub(r.last_ack_ms.load(Ordering::Relaxed)) / 1000 <= lag
        })
        .count();
    Some((want as usize, good))
}

/// Makes this server a replica of `host:port` (REPLICAOF, or `replicaof` at start): the
/// link task starts; replicas attached to us are dropped to resync with the new history.
pub fn follow(shared: &Arc<Shared>, store: &mut Store, host: String, port: u16) {
    if let Some(m) = store.repl.master.take() {
        m.link.stop();
    }
    for r in store.repl.replicas.drain(..) {
        if let Some(c) = shared.clients.lock().get(&r.id) {
            c.request_kill();
        }
    }
    for db in &mut store.dbs {
        db.readonly_expire = true;
    }
    let state = Arc::new(link::LinkState::default());
    store.repl.master = Some(MasterCfg {
        host: host.clone(),
        port,
        link: state.clone(),
    });
    tracing::info!(master = %format!("{host}:{port}"), "REPLICAOF enabled");
    tokio::spawn(link::run(shared.clone(), host, port, state));
}

/// Called by the server cron: pings attached replicas every 10 s
/// (`repl-ping-replica-period`), so they can tell a silent master from a dead one.
pub fn cron(store: &mut Store) {
    flush_expired(store);
    let now = now_ms();
    let r = &mut store.repl;
    if r.master.is_none() && !r.replicas.is_empty() && now.saturating_sub(r.last_ping_ms) >= 10_000
    {
        r.last_ping_ms = now;
        let mut b = Vec::new();
        encode_command(&mut b, &[b"PING"]);
        r.feed(&b);
    }
    store.repl.flush();
}

/// Sends the DELs for keys that expired or were evicted, logged by the dbs, to the
/// replicas and the AOF.
pub fn flush_expired(store: &mut Store) {
    let to_repl = store.repl.active();
    if !to_repl && !store.aof.on {
        return;
    }
    for i in 0..store.dbs.len() {
        let keys = store.dbs[i].take_expired_log();
        for k in keys {
            emit(store, i, &[b"DEL", &k], to_repl);
        }
    }
}

/// One command's effect, to the replicas (when `to_repl`) and to the AOF (when on).
fn emit(store: &mut Store, db: usize, args: &[&[u8]], to_repl: bool) {
    if to_repl {
        store.repl.propagate(db, args);
    }
    if store.aof.on {
        store.aof.append(db, args);
    }
}

/// Called by the dispatcher after a command ran, when a backlog exists (`State::active`):
/// propagates it if it changed the dataset.
pub fn after_command(ctx: &mut Ctx<'_>, cmd: &'static CommandSpec, args: &[&[u8]], dirty: u64) {
    // On a replica, the master's stream is fed into the backlog raw (link.rs); only the AOF
    // gets the commands it applies.
    let to_repl = !ctx.client.is_master && ctx.store.repl.active();
    let to_aof = ctx.store.aof.on;
    if !to_repl && !to_aof {
        return;
    }
    if !ctx.client.is_master {
        flush_expired(ctx.store);
    }
    let is_exec = cmd.name == "exec";
    if is_exec {
        if to_repl && ctx.store.repl.multi_open {
            ctx.store.repl.multi_open = false;
            ctx.store.repl.propagate(ctx.client.db, &[b"EXEC"]);
            ctx.client.repl_woff = ctx.store.repl.offset;
        }
        if to_aof && ctx.store.aof.multi_open {
            ctx.store.aof.multi_open = false;
            ctx.store.aof.append(ctx.client.db, &[b"EXEC"]);
        }
        return;
    }
    if ctx.store.dirty == dirty || cmd.flags & crate::cmd::flags::WRITE == 0 {
        return;
    }
    if cmd.name == "slotsmgrt-exec-wrapper" {
        // The wrapped command ran through `cmd::call`, which propagated it (rewritten where
        // needed) at its own depth: the wrapper adds no effect of its own.
        return;
    }
    if cmd.flags & crate::cmd::flags::SLOT != 0
        && (cmd.name.starts_with("slotsmgrt") || cmd.name == "slotsrestore-async-ack")
    {
        // A slot migration's source: the keys it moves away reach the replicas as DELs
        // (logged by the dbs); replaying the migration itself there would migrate again.
        return;
    }
    if ctx.client.in_exec {
        if to_repl && !ctx.store.repl.multi_open {
            ctx.store.repl.multi_open = true;
            ctx.store.repl.propagate(ctx.client.db, &[b"MULTI"]);
        }
        if to_aof && !ctx.store.aof.multi_open {
            ctx.store.aof.multi_open = true;
            ctx.store.aof.append(ctx.client.db, &[b"MULTI"]);
        }
    }
    let db = ctx.client.db;
    // The master already sent the commands in their replayable form.
    let rewritten = if ctx.client.is_master {
        None
    } else {
        rewrite(ctx, cmd, args)
    };
    match rewritten {
        Some(cmds) => {
            for c in cmds {
                let v: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
                emit(ctx.store, db, &v, to_repl);
            }
        }
        None => emit(ctx.store, db, args, to_repl),
    }
    if to_repl {
        ctx.client.repl_woff = ctx.store.repl.offset;
    }
}

fn has_opt(args: &[&[u8]], names: &[&str]) -> bool {
    args.iter()
        .any(|a| names.iter().any(|n| a.eq_ignore_ascii_case(n.as_bytes())))
}

/// The commands sent instead of `args` when running them again on a replica could give a
/// different result: relative TTLs become absolute, random picks and float arithmetic
/// become their outcome. None: propagate as executed.
fn rewrite(ctx: &mut Ctx<'_>, cmd: &CommandSpec, args: &[&[u8]]) -> Option<Vec<Vec<Vec<u8>>>> {
    let now = ctx.now_ms;
    let key = args.get(1).copied().unwrap_or_default();
    let v = |s: &[u8]| s.to_vec();
    match cmd.name {
        "expire" | "pexpire" | "expireat" | "pexpireat" | "getex" => {
            let db = ctx.db();
            if !db.contains(key, now) {
                return Some(vec![vec![v(b"DEL"), v(key)]]);
            }
            Some(vec![match db.expire_at(key) {
                Some(at) => vec![v(b"PEXPIREAT"), v(key), at.to_string().into_bytes()],
                None => vec![v(b"PERSIST"), v(key)],
            }])
        }
        "set" | "setex" | "psetex" => {
            if cmd.name == "set" && !has_opt(&args[3..], &["ex", "px", "exat"]) {
                return None;
            }
            let db = ctx.db();
            let at = db.expire_at(key);
            let val = match db.get(key, now) {
                Some(crate::store::value::Value::Str(s)) => s.to_vec(),
                _ => return Some(vec![vec![v(b"DEL"), v(key)]]),
            };
            let mut c = vec![v(b"SET"), v(key), val];
            if let Some(at) = at {
                c.push(v(b"PXAT"));
                c.push(at.to_string().into_bytes());
            }
            Some(vec![c])
        }
        // An async migration's chunk sets the TTL relative to now: the replicas and the AOF
        // get the chunk without it (TTL 0: no expiry) and the expiry as an absolute time.
        "slotsrestore-async" if args.len() > 3 && !args[1].eq_ignore_ascii_case(b"delete") => {
            let mut chunk: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            chunk[3] = v(b"0");
            let mut out = vec![chunk];
            if let Some(at) = ctx.db().expire_at(args[2]) {
                out.push(vec![
                    v(b"PEXPIREAT"),
                    v(args[2]),
                    at.to_string().into_bytes(),
                ]);
            }
            Some(out)
        }
        "incrbyfloat" => {
            let val = match ctx.db().get(key, now) {
                Some(crate::store::value::Value::Str(s)) => s.to_vec(),
                _ => return None,
            };
            Some(vec![vec![v(b"SET"), v(key), val, v(b"KEEPTTL")]])
        }
        "spop" | "hincrbyfloat" | "restore" | "slotsrestore" => {
            // The key's resulting state, whole.
            let lim = Limits::from_config(&ctx.store.config);
            let mut out = Vec::new();
            let keys: Vec<&[u8]> = if cmd.name == "slotsrestore" {
                args[1..].chunks(3).map(|c| c[0]).collect()
            } else {
                vec![key]
            };
            for k in keys {
                let db = ctx.db();
                let at = db.expire_at(k);
                match db.get(k, now) {
                    None => out.push(vec![v(b"DEL"), v(k)]),
                    Some(val) => out.push(vec![
                        v(b"RESTORE"),
                        v(k),
                        at.unwrap_or(0).to_string().into_bytes(),
                        crate::rdb::dump_payload(val, &lim),
                        v(b"REPLACE"),
                        v(b"ABSTTL"),
                    ]),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// A full resync's payload.
#[derive(Debug)]
pub enum Payload {
    /// Serialised under the lock (a BGSAVE was running).
    Ready(Vec<u8>),
    /// Being serialised by a snapshot thread.
    Pending(tokio::sync::oneshot::Receiver<Result<Vec<u8>, String>>),
    /// Streamed by a snapshot thread in chunks, sent diskless-style (`$EOF:<mark>`) to a
    /// replica that announced `capa eof`; the channel closes early if the thread failed.
    Stream(mpsc::Receiver<Bytes>),
}

/// What the PSYNC handler hands to the connection task.
#[derive(Debug)]
pub struct Attach {
    /// The payload of a full resync (None: partial, the backlog is already queued).
    pub rdb: Option<Payload>,
    /// The replica's record.
    pub link: Arc<ReplicaLink>,
    /// Its stream.
    pub rx: mpsc::UnboundedReceiver<Chunk>,
}

/// Starts the payload: a point-in-time snapshot serialised by a thread in short lock holds
/// (`persist::Job`, slot copy-on-write), so the master keeps serving; under the lock when
/// a BGSAVE already uses the copy-on-write state.
fn start_payload(shared: &Shared, store: &mut Store, capa_eof: bool) -> Payload {
    let arc = shared.arc();
    let busy = super::persist::snapshot_busy(store);
    let (Some(arc), false) = (arc, busy) else {
        // Another snapshot holds the copy-on-write state: serialised under the lock (counted
        // in INFO `rdb_last_save_bytes_under_lock`).
        let image = super::persist::rdb_image(store, false);
        store.persist.last_bytes_under_lock += image.len() as u64;
        return Payload::Ready(image);
    };
    let job = super::persist::Job::prepare(arc.clone(), store);
    store.repl.snapshotting = true;
    if capa_eof {
        let (tx, rx) = mpsc::channel(4);
        let arc2 = arc.clone();
        let spawned = std::thread::Builder::new()
            .name("codis-repl-rdb".into())
            .spawn(move || {
                let t0 = std::time::Instant::now();
                let res = job.stream(tx);
                let mut s = arc2.store.lock();
                s.repl.snapshotting = false;
                for db in &mut s.dbs {
                    db.cow = None;
                }
                drop(s);
                match res {
                    Ok(()) => tracing::info!(
                        elapsed_ms = t0.elapsed().as_millis() as u64,
                        "replication payload streamed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "replication payload failed"),
                }
            });
        if spawned.is_ok() {
            return Payload::Stream(rx);
        }
        store.repl.snapshotting = false;
        for db in &mut store.dbs {
            db.cow = None;
        }
        return Payload::Ready(super::persist::rdb_image(store, false));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("codis-repl-rdb".into())
        .spawn(move || {
            let t0 = std::time::Instant::now();
            let res = job.payload().map_err(|e| e.to_string());
            let mut s = arc.store.lock();
            s.repl.snapshotting = false;
            for db in &mut s.dbs {
                db.cow = None;
            }
            drop(s);
            tracing::info!(
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "replication payload serialised"
            );
            let _ = tx.send(res);
        });
    match spawned {
        Ok(_) => Payload::Pending(rx),
        Err(_) => {
            store.repl.snapshotting = false;
            for db in &mut store.dbs {
                db.cow = None;
            }
            Payload::Ready(super::persist::rdb_image(store, false))
        }
    }
}

/// PSYNC/SYNC: decides full or partial resync, registers the replica. Returns the reply
/// line and what the connection must do next.
pub fn psync(
    shared: &Shared,
    store: &mut Store,
    client: &crate::server::client::Client,
    replid: &[u8],
    offset: i64,
    sync: bool,
) -> (String, Attach) {
    let (info, port, capa_eof) = (&*client.info, client.repl_port, client.repl_capa_eof);
    let (tx, rx) = mpsc::unbounded_channel();
    let ip = info
        .addr
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default();
    let link = Arc::new(ReplicaLink {
        id: info.id,
        ip,
        port,
        ack: AtomicU64::new(0),
        last_ack_ms: AtomicU64::new(now_ms()),
        online: AtomicBool::new(false),
        queued: std::sync::atomic::AtomicUsize::new(0),
        closed: tokio::sync::Notify::new(),
        tx,
    });
    let r = &mut store.repl;
    let id = String::from_utf8_lossy(replid);
    let id_ok = id.eq_ignore_ascii_case(&r.replid)
        || (id.eq_ignore_ascii_case(&r.replid2) && offset <= r.second_offset);
    let in_backlog =
        r.active() && offset >= r.backlog_first() as i64 && offset <= r.offset as i64 + 1;
    if !sync && id_ok && in_backlog {
        r.sync_partial_ok += 1;
        r.flush();
        let pending = r.backlog_from(offset as u64);
        if !pending.is_empty() {
            link.queued.fetch_add(pending.len(), Ordering::Relaxed);
            let _ = link.tx.send((Bytes::from(pending), None));
        }
        link.online.store(true, Ordering::Relaxed);
        link.ack.store(offset as u64 - 1, Ordering::Relaxed);
        r.replicas.push(link.clone());
        tracing::info!(replica = %info.addr, offset, "partial resynchronization accepted");
        let reply = format!("+CONTINUE {}\r\n", r.replid);
        return (
            reply,
            Attach {
                rdb: None,
                link,
                rx,
            },
        );
    }
    if !sync && id != "?" {
        r.sync_partial_err += 1;
    }
    r.sync_full += 1;
    let size = crate::config::parse_memory(
        &store
            .config
            .get("repl-backlog-size")
            .unwrap_or_else(|| "1mb".into()),
    )
    .unwrap_or(1 << 20) as usize;
    store.repl.ensure_backlog(size);
    for db in &mut store.dbs {
        db.log_expired(true);
    }
    store.repl.flush();
    // SYNC (the old protocol) expects a length-prefixed payload.
    let rdb = start_payload(shared, store, capa_eof && !sync);
    let r = &mut store.repl;
    r.reset_stream_db();
    r.replicas.push(link.clone());
    tracing::info!(replica = %info.addr, offset = r.offset, "full resync");
    let reply = if sync {
        String::new()
    } else {
        format!("+FULLRESYNC {} {}\r\n", r.replid, r.offset)
    };
    (
        reply,
        Attach {
            rdb: Some(rdb),
            link,
            rx,
        },
    )
}

/// The connection task of an attached replica: payload, then the stream; reads ACKs.
pub async fn serve_replica(
    mut sock: TcpStream,
    shared: &Shared,
    info: &ClientInfo,
    mut a: Attach,
) -> std::io::Result<()> {
    let res = async {
        let mut rbuf = BytesMut::with_capacity(1024);
        match a.rdb.take() {
            Some(Payload::Stream(mut rx)) => {
                // Diskless: `$EOF:<40 random chars>`, the payload as it is produced, the mark.
                let mark = new_replid();
                sock.write_all(format!("$EOF:{mark}\r\n").as_bytes())
                    .await?;
                let mut complete = false;
                while let Some(chunk) = rx.recv().await {
                    // The thread sends an empty chunk once the payload is whole.
                    complete = chunk.is_empty();
                    sock.write_all(&chunk).await?;
                    shared
                        .net_output
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                if !complete {
                    return Err(std::io::Error::other("replication payload failed"));
                }
                sock.write_all(mark.as_bytes()).await?;
                // As Redis: after a diskless payload the stream starts once the replica has
                // acknowledged (it has loaded the payload); a replica looking for the mark at
                // the end of what it read would take stream bytes for payload.
                let before = a.link.last_ack_ms.load(Ordering::Relaxed);
                let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                    while a.link.last_ack_ms.load(Ordering::Relaxed) == before {
                        if sock.read_buf(&mut rbuf).await? == 0 {
                            return Err(std::io::Error::other("replica closed the connection"));
                        }
                        read_acks(&mut rbuf, &a.link);
                    }
                    Ok(())
                })
                .await;
                match waited {
                    Ok(r) => r?,
                    Err(_) => return Err(std::io::Error::other("no ACK after the payload")),
                }
                a.link.online.store(true, Ordering::Relaxed);
            }
            Some(p) => {
                let rdb = match p {
                    Payload::Ready(b) => b,
                    Payload::Stream(_) => {
                        return Err(std::io::Error::other("payload kind mismatch"));
                    }
                    Payload::Pending(mut rx) => loop {
                        // Newlines keep the replica's read timeout from firing meanwhile.
                        tokio::select! {
                            r = &mut rx => match r {
                                Ok(Ok(b)) => break b,
                                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                                Err(_) => return Err(std::io::Error::other("payload thread gone")),
                            },
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                                sock.write_all(b"\n").await?;
                            }
                        }
                    },
                };
                sock.write_all(format!("${}\r\n", rdb.len()).as_bytes())
                    .await?;
                sock.write_all(&rdb).await?;
                a.link.online.store(true, Ordering::Relaxed);
            }
            None => {}
        }
        let mut shutdown = shared.shutdown.subscribe();
        let mut out: Vec<u8> = Vec::new();
        loop {
            tokio::select! {
                b = a.rx.recv() => {
                    let Some((b, fsync)) = b else { return Ok(()) };
                    out.clear();
                    out.extend_from_slice(&b);
                    let mut fsync = fsync;
                    while out.len() < 1 << 20 {
                        match a.rx.try_recv() {
                            Ok((b, f)) => {
                                out.extend_from_slice(&b);
                                fsync = fsync.max(f);
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(off) = fsync {
                        shared.aof_sync.wait_synced(off).await;
                    }
                    sock.write_all(&out).await?;
                    a.link.queued.fetch_sub(out.len(), Ordering::Relaxed);
                    shared.net_output.fetch_add(out.len() as u64, Ordering::Relaxed);
                }
                n = sock.read_buf(&mut rbuf) => {
                    if n? == 0 {
                        return Ok(());
                    }
                    read_acks(&mut rbuf, &a.link);
                }
                _ = info.kill.notified() => return Ok(()),
                _ = a.link.closed.notified() => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    let mut store = shared.store.lock();
    store.repl.replicas.retain(|r| !Arc::ptr_eq(r, &a.link));
    tracing::info!(replica = %info.addr, "replica detached");
    res
}

/// Parses `REPLCONF ACK <offset>` requests from a replica.
fn read_acks(rbuf: &mut BytesMut, link: &ReplicaLink) {
    let mut p = crate::resp::request::RequestParser::new();
    let lim = crate::resp::request::Limits {
        max_bulk_len: 1 << 20,
        authenticated: true,
    };
    loop {
        match p.parse(rbuf, &lim) {
            Ok(crate::resp::request::Request::Multibulk { consumed }) => {
                let args: Vec<&[u8]> = p.spans().iter().map(|&(s, e)| &rbuf[s..e]).collect();
                if args.len() >= 3
                    && args[0].eq_ignore_ascii_case(b"replconf")
                    && args[1].eq_ignore_ascii_case(b"ack")
                    && let Some(o) = crate::util::number::parse_i64(args[2])
                {
                    link.ack.store(o.max(0) as u64, Ordering::Relaxed);
                    link.last_ack_ms.store(now_ms(), Ordering::Relaxed);
                }
                rbuf.advance(consumed);
            }
            Ok(crate::resp::request::Request::Inline { consumed, .. })
            | Ok(crate::resp::request::Request::Empty { consumed }) => rbuf.advance(consumed),
            Err(crate::resp::request::ParseError::Incomplete) => return,
            Err(_) => {
                rbuf.clear();
                return;
            }
        }
    }
}

/// The `# Replication` section of INFO.
pub fn info(store: &Store, out: &mut String) {
    use std::fmt::Write as _;
    let r = &store.repl;
    let mut f = |l: String| {
        let _ = write!(out, "{l}\r\n");
    };
    f("# Replication".into());
    match &r.master {
        Some(m) => {
            let l = &m.link;
            let up = l.up.load(Ordering::Relaxed);
            f("role:slave".into());
            f(format!("master_host:{}", m.host));
            f(format!("master_port:{}", m.port));
            f(format!(
                "master_link_status:{}",
                if up { "up" } else { "down" }
            ));
            let last = l.last_io_ms.load(Ordering::Relaxed);
            let ago = if last == 0 {
                -1
            } else {
                (now_ms().saturating_sub(last) / 1000) as i64
            };
            f(format!("master_last_io_seconds_ago:{ago}"));
            f(format!(
                "master_sync_in_progress:{}",
                l.syncing.load(Ordering::Relaxed) as u8
            ));
            if !up {
                let since = l.down_since_ms.load(Ordering::Relaxed);
                let secs = if since == 0 {
                    -1
                } else {
                    (now_ms().saturating_sub(since) / 1000) as i64
                };
                f(format!("master_link_down_since_seconds:{secs}"));
            }
            f(format!("slave_read_repl_offset:{}", r.offset));
            f(format!("slave_repl_offset:{}", r.offset));
            f(format!(
                "slave_priority:{}",
                store.config.get("replica-priority").unwrap_or("100".into())
            ));
            f(format!(
                "slave_read_only:{}",
                (store.config.get("replica-read-only").as_deref() != Some("no")) as u8
            ));
            f("replica_announced:1".into());
        }
        None => f("role:master".into()),
    }
    f(format!("connected_slaves:{}", r.replicas.len()));
    if let Some((_, n)) = min_replicas(store) {
        f(format!("min_slaves_good_slaves:{n}"));
    }
    let now = now_ms();
    for (i, s) in r.replicas.iter().enumerate() {
        let online = s.online.load(Ordering::Relaxed);
        f(format!(
            "slave{i}:ip={},port={},state={},offset={},lag={}",
            s.ip,
            s.port,
            if online { "online" } else { "wait_bgsave" },
            s.ack.load(Ordering::Relaxed),
            now.saturating_sub(s.last_ack_ms.load(Ordering::Relaxed)) / 1000
        ));
    }
    f("master_failover_state:no-failover".into());
    f(format!("master_replid:{}", r.replid));
    f(format!("master_replid2:{}", r.replid2));
    f(format!("master_repl_offset:{}", r.offset));
    f(format!("second_repl_offset:{}", r.second_offset));
    f(format!("repl_backlog_active:{}", r.active() as u8));
    f(format!("repl_backlog_size:{}", r.backlog_size()));
    f(format!(
        "repl_backlog_first_byte_offset:{}",
        if r.active() { r.backlog_first() } else { 0 }
    ));
    f(format!("repl_backlog_histlen:{}", r.backlog_len()));
}
