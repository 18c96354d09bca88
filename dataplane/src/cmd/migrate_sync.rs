//! Codis's synchronous slot migration (`../shared/spec/codis-3.2.md` §4): SLOTSRESTORE on the
//! target side; SLOTSMGRTSLOT, SLOTSMGRTONE, SLOTSMGRTTAGSLOT and SLOTSMGRTTAGONE on the
//! source side.
//!
//! A migration runs in two halves so the store lock is never held during network I/O:
//! 1. under the lock, the handler picks the keys, serializes them (DUMP payloads and remaining
//!    TTLs), WATCHes each key with a private flag and hands a future to the connection
//!    ([`Action::Defer`]);
//! 2. the future sends `SLOTSRESTORE` over a cached blocking socket on a blocking thread;
//! 3. back under the lock, every key whose flag was not raised is deleted. A key that was
//!    modified meanwhile is kept and sent again (up to [`MAX_ROUNDS`] rounds), so the target's
//!    copy is always replaced by the newest value before the source lets go of it: nothing is
//!    lost.
//!
//! Other clients keep being served while the I/O runs; the migrating client waits for its reply
//! like a blocked client.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use codis_model::slot::{has_tag, slot_of, tag_crc};

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, spec};
use crate::rdb::{self, Limits};
use crate::resp::frame::{Frame, FrameError};
use crate::resp::request::encode_command;
use crate::server::client::{Action, Finish};
use crate::store::WatchFlag;
use crate::util::number::parse_i64;

/// Commands of this family.
///
/// The migrating commands are refused inside MULTI: their I/O cannot run under the store lock
/// that EXEC holds (Codis, single-threaded, ran them inline).
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "slotsrestore",
        -4,
        WRITE | DENYOOM,
        (1, -1, 3),
        slotsrestore,
    ),
    spec(
        "slotsmgrtslot",
        5,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        slotsmgrtslot,
    ),
    spec(
        "slotsmgrtone",
        5,
        WRITE | NO_MULTI | SLOT,
        (4, 4, 1),
        slotsmgrtone,
    ),
    spec(
        "slotsmgrttagslot",
        5,
        WRITE | NO_MULTI | SLOT,
        (0, 0, 0),
        slotsmgrttagslot,
    ),
    spec(
        "slotsmgrttagone",
        5,
        WRITE | NO_MULTI | SLOT,
        (4, 4, 1),
        slotsmgrttagone,
    ),
];

/// Synchronous migration state of the whole server (a field of [`crate::store::Store`]).
///
/// Codis ran each transfer atomically in its one thread. Here the I/O runs without the store
/// lock, so two transfers of the same key (two proxy sessions, or the dashboard and a proxy)
/// could both serialise the old value; if the second finished first and a client then wrote
/// the key on the target, the first one's late SLOTSRESTORE would replace that write. So a
/// key belongs to one transfer at a time: a transfer that selects a key another one is
/// sending waits until that one ends, then selects again (the key is usually gone by then).
#[derive(Debug, Default)]
pub struct State {
    /// Keys being sent, by (db, key): the transfer that owns them and who waits for it.
    in_flight: HashMap<(usize, Vec<u8>), InFlight>,
    /// Id of the last transfer started.
    next_id: u64,
    /// Transfers that had to wait for another transfer of the same key (`INFO migration`).
    pub waits: u64,
}

#[derive(Debug)]
struct InFlight {
    owner: u64,
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl State {
    /// Keys being sent by synchronous transfers (`INFO migration`).
    pub fn keys_in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Ends a transfer: its keys are free again and the transfers waiting for them go on.
fn release(ctx: &mut Ctx<'_>, job: &Job) {
    let st = &mut ctx.store.migrate_sync;
    for key in &job.owned {
        if let Some(e) = st.in_flight.remove(&(job.db, key.clone())) {
            for w in e.waiters {
                let _ = w.send(());
            }
        }
    }
}

/// Cached sockets idle longer than this are closed (Codis's `slotsmgrt_cleanup`: > 15 s).
const IDLE_CLOSE: Duration = Duration::from_secs(15);

/// Writes to the target go out in chunks of this size, each bounded by the timeout.
const WRITE_CHUNK: usize = 64 * 1024;

/// How many times keys modified during the I/O are sent again before giving up.
const MAX_ROUNDS: u32 = 4;

/// Codis's `parse_int`: an integer that fits a C `int`.
fn arg_int(a: &[u8]) -> Result<i64, CmdError> {
    let v = parse_i64(a).ok_or(CmdError::NotInteger)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(CmdError::err("value is out of range"));
    }
    Ok(v)
}

/// The sync family's timeout argument in ms: 0 means 100, negative is an error.
fn arg_timeout(a: &[u8]) -> Result<Duration, CmdError> {
    let v = arg_int(a)?;
    if v < 0 {
        return Err(CmdError::err(format!("invalid timeout = {v}")));
    }
    Ok(Duration::from_millis(if v == 0 { 100 } else { v as u64 }))
}

/// Codis's `parse_slot`: an int in 0..1024.
fn arg_slot(a: &[u8]) -> Result<usize, CmdError> {
    let v = arg_int(a)?;
    if v < 0 || v >= codis_model::MAX_SLOT_NUM as i64 {
        return Err(CmdError::err(format!("invalid slot number = {v}")));
    }
    Ok(v as usize)
}

// ---------------------------------------------------------------------------------------------
// SLOTSRESTORE (target side)

/// `SLOTSRESTORE key ttlms payload [key ttlms payload ...]`: checks every triple first, then
/// writes them all (replacing existing keys); ttl 0 means no expiry.
fn slotsrestore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if !(args.len() - 1).is_multiple_of(3) {
        return Err(CmdError::Arity("slotsrestore".into()));
    }
    let lim = Limits::from_config(&ctx.store.config);
    let mut decoded = Vec::with_capacity((args.len() - 1) / 3);
    for t in args[1..].chunks_exact(3) {
        let ttl = parse_i64(t[1]).ok_or(CmdError::NotInteger)?;
        if ttl < 0 {
            return Err(CmdError::err("invalid ttl value, must be >= 0"));
        }
        if !rdb::verify_payload(t[2]) {
            return Err(CmdError::err("dump payload version or checksum are wrong"));
        }
        let value =
            rdb::restore_payload(t[2], &lim).map_err(|_| CmdError::err("bad data format"))?;
        decoded.push((t[0], ttl, value));
    }
    let now = ctx.now_ms;
    let n = decoded.len() as u64;
    let db = ctx.db();
    for (key, ttl, value) in decoded {
        if db.contains(key, now) {
            // As Codis: allowed (a retried migration), but worth a line in the log.
            tracing::warn!(slot = slot_of(key), key = %String::from_utf8_lossy(key),
                "slotsrestore: key already exists");
        }
        // `set` replaces an existing key and drops its TTL.
        db.set(key, value);
        if ttl > 0 {
            db.set_expire(key, now.saturating_add(ttl as u64));
        }
    }
    ctx.dirty(n);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Source side: choosing keys

/// Which migration command runs; decides the key selection and the reply shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SLOTSMGRTSLOT: one random key of the slot; `[succ, remaining]`.
    Slot,
    /// SLOTSMGRTONE: that key; integer 0/1.
    One,
    /// SLOTSMGRTTAGSLOT: the tag group of a random key; `[n, remaining]`.
    TagSlot,
    /// SLOTSMGRTTAGONE: the tag group of that key; integer n.
    TagOne,
}

/// Where to send keys.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    timeout: Duration,
}

impl Target {
    /// The cache key, `host:port`.
    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn slotsmgrtslot(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, Kind::Slot)
}

fn slotsmgrtone(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, Kind::One)
}

fn slotsmgrttagslot(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, Kind::TagSlot)
}

fn slotsmgrttagone(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    migrate(ctx, args, Kind::TagOne)
}

/// Parses `host port timeout slot|key`, picks the keys and defers the I/O.
fn migrate(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: Kind) -> CmdResult {
    let timeout = arg_timeout(args[3])?;
    let slot = match kind {
        Kind::Slot | Kind::TagSlot => Some(arg_slot(args[4])?),
        Kind::One | Kind::TagOne => None,
    };
    if ctx.client.in_exec {
        return Err(CmdError::err("Command not allowed inside a transaction"));
    }
    let host = String::from_utf8_lossy(args[1]).into_owned();
    // Codis passes the port through atoi() and fails at connect time; a clear error up front
    // is friendlier and changes nothing for valid input.
    let port = match std::str::from_utf8(args[2])
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(p) if p > 0 => p,
        _ => {
            return Err(CmdError::err(format!(
                "Can't connect to target node: invalid port '{}'",
                String::from_utf8_lossy(args[2])
            )));
        }
    };
    let target = Target {
        host,
        port,
        timeout,
    };
    let keys: Vec<Vec<u8>> = match kind {
        Kind::Slot | Kind::TagSlot => {
            let slot = slot.unwrap_or_default();
            let Some(key) = random_slot_key(ctx, slot) else {
                // Empty slot: Codis replies without contacting the target.
                ctx.out.array(2);
                ctx.out.int(0);
                ctx.out.int(0);
                return Ok(());
            };
            select_keys(ctx, &key, kind == Kind::TagSlot)
        }
        Kind::One | Kind::TagOne => select_keys(ctx, args[4], kind == Kind::TagOne),
    };
    ctx.store.migrate_sync.next_id += 1;
    let job = Job {
        id: ctx.store.migrate_sync.next_id,
        kind,
        slot,
        target,
        db: ctx.client.db,
        migrated: 0,
        round: 1,
        owned: Vec::new(),
    };
    start_round(ctx, job, keys);
    Ok(())
}

/// A random key of the slot (possibly expired: the caller's lookup expires it, as Codis).
fn random_slot_key(ctx: &mut Ctx<'_>, slot: usize) -> Option<Vec<u8>> {
    use rand::Rng;
    let keys = &ctx.db().slot(slot).keys;
    if keys.is_empty() {
        return None;
    }
    let i = rand::rng().random_range(0..keys.len());
    keys.get_index(i).map(|(k, _)| k.to_vec())
}

/// The live keys to migrate for `key`: the key itself, or with `tag` and a tagged key, every
/// tagged key of its slot whose tag has the same crc (Codis's tag group).
fn select_keys(ctx: &mut Ctx<'_>, key: &[u8], tag: bool) -> Vec<Vec<u8>> {
    let now = ctx.now_ms;
    let db = ctx.db();
    if !tag || !has_tag(key) {
        return if db.contains(key, now) {
            vec![key.to_vec()]
        } else {
            Vec::new()
        };
    }
    let group: Vec<Vec<u8>> = db
        .tag_group(tag_crc(key))
        .map(|g| g.iter().map(|k| k.to_vec()).collect())
        .unwrap_or_default();
    group.into_iter().filter(|k| db.contains(k, now)).collect()
}

/// One key on its way: its name, remaining TTL (0: none) and DUMP payload.
#[derive(Debug)]
struct Item {
    key: Vec<u8>,
    ttl: i64,
    payload: Vec<u8>,
}

/// A migration command in flight, carried across rounds.
#[derive(Debug)]
struct Job {
    kind: Kind,
    slot: Option<usize>,
    target: Target,
    db: usize,
    /// Keys deleted from the source so far.
    migrated: usize,
    round: u32,
    /// Its id in [`State::in_flight`].
    id: u64,
    /// The keys it holds in [`State::in_flight`] until it ends.
    owned: Vec<Vec<u8>>,
}

/// Serializes `keys` under the lock, watches them and defers the send; first waits for any
/// other transfer that is sending one of them.
fn start_round(ctx: &mut Ctx<'_>, mut job: Job, keys: Vec<Vec<u8>>) {
    let st = &mut ctx.store.migrate_sync;
    let mut busy = Vec::new();
    for key in &keys {
        if let Some(e) = st.in_flight.get_mut(&(job.db, key.clone()))
            && e.owner != job.id
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            e.waiters.push(tx);
            busy.push(rx);
        }
    }
    if !busy.is_empty() {
        st.waits += 1;
        // The wait is part of the transfer, so it has the transfer's timeout: a stalled
        // owner (a target that stops reading) must not hang this client for good.
        let timeout = job.target.timeout;
        let work = async move {
            let freed = tokio::time::timeout(timeout, async {
                for rx in busy {
                    // An error only means the owner is gone: free either way.
                    let _ = rx.await;
                }
            })
            .await
            .is_ok();
            let finish: Finish = Box::new(move |ctx: &mut Ctx<'_>| {
                if !freed {
                    // As a failed send: what this job holds is freed, nothing is deleted.
                    release(ctx, &job);
                    return Err(CmdError::Msg(
                        "IOERR timeout waiting for another migration of the same keys".into(),
                    ));
                }
                // Select again: keys moved meanwhile are gone; tag groups may have changed.
                let keys = match (job.kind, keys.first()) {
                    (Kind::TagSlot | Kind::TagOne, Some(k)) => select_keys(ctx, &k.clone(), true),
                    _ => keys,
                };
                start_round(ctx, job, keys);
                Ok(())
            });
            finish
        };
        ctx.client.action = Some(Action::Defer(Box::pin(work)));
        return;
    }
    for key in &keys {
        let slot = st
            .in_flight
            .entry((job.db, key.clone()))
            .or_insert_with(|| InFlight {
                owner: job.id,
                waiters: Vec::new(),
            });
        if slot.owner == job.id && !job.owned.contains(key) {
            job.owned.push(key.clone());
        }
    }
    let lim = Limits::from_config(&ctx.store.config);
    let now = ctx.now_ms;
    let password = ctx.store.config.requirepass.clone();
    let db = &mut ctx.store.dbs[job.db];
    let mut items = Vec::with_capacity(keys.len());
    let mut flags: Vec<(Vec<u8>, WatchFlag)> = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(entry) = db.peek(&key, now) else {
            continue;
        };
        let payload = rdb::dump_payload(&entry.value, &lim);
        let ttl = match db.expire_at(&key) {
            Some(at) => (at as i64 - now as i64).max(1),
            None => 0,
        };
        let flag: WatchFlag = Arc::new(AtomicBool::new(false));
        db.watch(&key, &flag);
        flags.push((key.clone(), flag));
        items.push(Item { key, ttl, payload });
    }
    let target = job.target.clone();
    let dbi = job.db;
    let work = async move {
        let sent = tokio::task::spawn_blocking(move || send(&target, dbi, &password, &items))
            .await
            .unwrap_or_else(|e| Err(format!("ERR migration task failed: {e}")));
        let finish: Finish = Box::new(move |ctx: &mut Ctx<'_>| finish(ctx, job, flags, sent));
        finish
    };
    ctx.client.action = Some(Action::Defer(Box::pin(work)));
}

/// Runs under the lock after the I/O: deletes what was migrated unchanged, sends modified keys
/// again, and writes the reply.
fn finish(
    ctx: &mut Ctx<'_>,
    mut job: Job,
    flags: Vec<(Vec<u8>, WatchFlag)>,
    sent: Result<(), String>,
) -> CmdResult {
    let now = ctx.now_ms;
    let db = &mut ctx.store.dbs[job.db];
    for (key, flag) in &flags {
        db.unwatch(key, flag);
    }
    if let Err(e) = sent {
        // Nothing is deleted: every key is still on the source.
        release(ctx, &job);
        return Err(CmdError::Msg(e));
    }
    let mut changed = Vec::new();
    let mut deleted = 0;
    for (key, flag) in flags {
        if flag.load(Ordering::Relaxed) {
            // Modified (or expired, or flushed) while we were sending: the target may hold an
            // older version, so the source keeps it and sends it again if it still exists.
            if db.contains(&key, now) {
                changed.push(key);
            }
        } else if db.remove(&key).is_some() {
            // Replicas get the move as a DEL (server::repl).
            db.note_removed(&key);
            deleted += 1;
        }
    }
    job.migrated += deleted;
    ctx.dirty(deleted as u64);
    if !changed.is_empty() && job.round < MAX_ROUNDS {
        job.round += 1;
        start_round(ctx, job, changed);
        return Ok(());
    }
    release(ctx, &job);
    match job.kind {
        Kind::Slot | Kind::TagSlot => {
            let remaining = ctx.store.dbs[job.db]
                .slot(job.slot.unwrap_or_default())
                .keys
                .len();
            ctx.out.array(2);
            ctx.out.int(job.migrated as i64);
            ctx.out.int(remaining as i64);
        }
        Kind::One | Kind::TagOne => {
            if !changed.is_empty() {
                // A caller (the proxy) must not go on to the target while the source still
                // holds a newer version.
                return Err(CmdError::err(
                    "keys were modified during migration, try again",
                ));
            }
            ctx.out.int(job.migrated as i64);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The outbound connection

/// A cached connection to a target.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// The db last SELECTed on it.
    db: Option<usize>,
    /// The password last sent with AUTH.
    auth: Option<String>,
    last_use: Instant,
}

/// Idle connections by `host:port`. A connection in use is taken out of the map and put back
/// only after a successful exchange, so a failure simply drops (closes) it.
static CONNS: Mutex<Option<HashMap<String, Conn>>> = Mutex::new(None);

fn with_cache<R>(f: impl FnOnce(&mut HashMap<String, Conn>) -> R) -> R {
    let mut guard = CONNS.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// Closes cached connections idle for more than [`IDLE_CLOSE`].
fn sweep() {
    with_cache(|m| m.retain(|_, c| c.last_use.elapsed() <= IDLE_CLOSE));
}

/// Starts, once, a thread that sweeps the cache every second.
fn start_sweeper() {
    static START: Once = Once::new();
    START.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("slotsmgrt-sweep".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    sweep();
                }
            });
    });
}

/// A connection to the target: the cached one, or a new one.
fn connect(t: &Target) -> Result<Conn, String> {
    sweep();
    if let Some(c) = with_cache(|m| m.remove(&t.name())) {
        return Ok(c);
    }
    let addrs: Vec<_> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("ERR Can't connect to target node: {e}"))?
        .collect();
    let Some(addr) = addrs.first() else {
        return Err("ERR Can't connect to target node: no address".into());
    };
    let stream = TcpStream::connect_timeout(addr, t.timeout)
        .map_err(|_| "IOERR error or timeout connecting to the client".to_string())?;
    let _ = stream.set_nodelay(true);
    tracing::info!(addr = %t.name(), "slotsmgrt: connected to target");
    start_sweeper();
    Ok(Conn {
        stream,
        db: None,
        auth: None,
        last_use: Instant::now(),
    })
}

/// Sends the items with one SLOTSRESTORE (after AUTH / SELECT when needed) and checks the
/// replies. Blocking: runs on a blocking thread. The error is the client's reply line.
fn send(t: &Target, db: usize, password: &str, items: &[Item]) -> Result<(), String> {
    let mut conn = connect(t)?;
    if items.is_empty() {
        // Codis connects even when the key turns out to be absent; nothing to send.
        conn.last_use = Instant::now();
        with_cache(|m| m.insert(t.name(), conn));
        return Ok(());
    }
    let mut buf = Vec::new();
    let need_auth = !password.is_empty() && conn.auth.as_deref() != Some(password);
    if need_auth {
        encode_command(&mut buf, &[b"AUTH", password.as_bytes()]);
    }
    let need_select = conn.db != Some(db);
    if need_select {
        encode_command(&mut buf, &[b"SELECT", db.to_string().as_bytes()]);
    }
    let ttls: Vec<String> = items.iter().map(|i| i.ttl.to_string()).collect();
    let mut args: Vec<&[u8]> = Vec::with_capacity(1 + 3 * items.len());
    args.push(b"SLOTSRESTORE");
    for (i, ttl) in items.iter().zip(&ttls) {
        args.push(&i.key);
        args.push(ttl.as_bytes());
        args.push(&i.payload);
    }
    encode_command(&mut buf, &args);
    drop(args);

    for chunk in buf.chunks(WRITE_CHUNK) {
        write_chunk(&mut conn.stream, chunk, t.timeout).map_err(|e| {
            tracing::warn!(addr = %t.name(), error = %e, "slotsmgrt: writing to target failed");
            "IOERR error or timeout writing to target".to_string()
        })?;
    }
    let mut rbuf = Vec::new();
    if need_auth {
        match read_reply(&mut conn.stream, &mut rbuf, t.timeout) {
            Err(_) => return Err("IOERR error or timeout reading from target".into()),
            Ok(Frame::Simple(_)) => conn.auth = Some(password.to_string()),
            Ok(_) => return Err("ERR error on slotsrestore, auth failed".into()),
        }
    }
    if need_select {
        match read_reply(&mut conn.stream, &mut rbuf, t.timeout) {
            Err(_) => return Err("IOERR error or timeout reading from target".into()),
            Ok(Frame::Simple(_)) => conn.db = Some(db),
            Ok(_) => return Err("ERR error on slotsrestore, select failed".into()),
        }
    }
    match read_reply(&mut conn.stream, &mut rbuf, t.timeout) {
        Err(_) => return Err("IOERR error or timeout reading from target".into()),
        Ok(Frame::Error(e)) => {
            tracing::warn!(addr = %t.name(), reply = %String::from_utf8_lossy(&e),
                "slotsmgrt: migration failed");
            return Err("ERR error on slotsrestore, migration failed".into());
        }
        Ok(_) => {}
    }
    conn.last_use = Instant::now();
    with_cache(|m| m.insert(t.name(), conn));
    Ok(())
}

/// Writes all of `chunk` within `timeout`.
fn write_chunk(s: &mut TcpStream, chunk: &[u8], timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pos = 0;
    while pos < chunk.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_write_timeout(Some(left))?;
        match s.write(&chunk[pos..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => pos += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one reply within `timeout`. `buf` keeps bytes read past it for the next call.
fn read_reply(s: &mut TcpStream, buf: &mut Vec<u8>, timeout: Duration) -> std::io::Result<Frame> {
    let deadline = Instant::now() + timeout;
    let mut tmp = [0u8; 4096];
    loop {
        match Frame::parse(buf, 0) {
            Ok((f, n)) => {
                buf.drain(..n);
                return Ok(f);
            }
            Err(FrameError::Incomplete) => {}
            Err(FrameError::Invalid(e)) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut tmp) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_and_slot_arguments() {
        assert_eq!(arg_timeout(b"0").unwrap(), Duration::from_millis(100));
        assert_eq!(arg_timeout(b"2500").unwrap(), Duration::from_millis(2500));
        assert_eq!(
            arg_timeout(b"-1").unwrap_err().text(),
            "ERR invalid timeout = -1"
        );
        assert_eq!(
            arg_timeout(b"2147483648").unwrap_err().text(),
            "ERR value is out of range"
        );
        assert_eq!(arg_timeout(b"x").unwrap_err(), CmdError::NotInteger);
        assert_eq!(arg_slot(b"1023").unwrap(), 1023);
        assert_eq!(
            arg_slot(b"1024").unwrap_err().text(),
            "ERR invalid slot number = 1024"
        );
    }

    #[test]
    fn encodes_multibulk() {
        let mut b = Vec::new();
        encode_command(&mut b, &[b"SELECT", b"3"]);
        assert_eq!(b, b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n");
    }
}
