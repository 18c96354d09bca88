//! RDB persistence: SAVE, BGSAVE, loading at start, `save` points.
//!
//! - SAVE serialises the whole keyspace under the store lock (it blocks, as Redis's does).
//! - BGSAVE cannot fork (the server is multi-threaded). It marks every non-empty db for
//!   copy-on-write (`store::snapshot`) under the lock, then a thread takes the keys in short
//!   lock holds (at most ~1 ms, [`HOLD_KEYS`] keys or [`HOLD_BYTES`] of strings: clones, a
//!   collection's is a reference count) and serialises and writes them with the lock
//!   released. Writers keep a key's value before changing it, so the file is the keyspace
//!   as it was when BGSAVE started.
//! - Both write `temp-<pid>.rdb` (BGSAVE: `temp-bgsave-<pid>.rdb`) in `dir`, fsync it and
//!   rename it over `dbfilename`, so a crash never leaves a half-written dump in place.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use codis_model::MAX_SLOT_NUM;

use super::Shared;
use crate::config::Config;
use crate::rdb::file::{self, FileError, FileWriter, LoadInfo};
use crate::rdb::{Limits, Writer};
use crate::store::snapshot::Taken;
use crate::store::{Store, now_ms};

/// Longest the save thread holds the store lock at a time.
const HOLD: Duration = Duration::from_millis(1);
/// Most bytes of strings copied per lock hold (written out before the next hold).
const HOLD_BYTES: usize = 1 << 20;
/// Most keys taken per lock hold.
const HOLD_KEYS: usize = 4096;
/// After a failed BGSAVE, `save` points wait this long before trying again (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
const RETRY_DELAY_MS: u64 = 5000;

/// Persistence state kept in the [`Store`] (INFO `# Persistence`).
#[derive(Debug)]
pub struct State {
    /// The background save in progress.
    pub bgsave: Option<BgSave>,
    /// BGSAVE SCHEDULE asked for a save once the current one ends.
    pub scheduled: bool,
    /// Whether the last background save succeeded.
    pub last_bgsave_ok: bool,
    /// Duration of the last background save (-1: none yet).
    pub last_bgsave_time_sec: i64,
    /// Unix ms of the last BGSAVE attempt.
    pub last_bgsave_try: u64,
    /// Successful saves since start.
    pub rdb_saves: u64,
    /// Keys loaded / skipped as expired by the last load.
    pub last_load_keys_loaded: u64,
    /// See `last_load_keys_loaded`.
    pub last_load_keys_expired: u64,
    /// SHUTDOWN already saved (or was told not to): the exit path must not save again.
    pub shutdown_handled: bool,
    /// Keys whose value writers kept during the last background save.
    pub last_cow_slots: u64,
    /// Bytes the snapshot thread holds right now (taken, not yet written): with the
    /// copy-on-write state, not counted for maxmemory.
    pub inflight: Arc<AtomicU64>,
    /// Longest lock hold (µs) of the current or last snapshot thread.
    pub max_hold_us: Arc<AtomicU64>,
    /// Bytes the last snapshot serialised while holding the store lock (the snapshot
    /// thread never does; a replica payload built under the lock does).
    pub last_bytes_under_lock: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            bgsave: None,
            scheduled: false,
            last_bgsave_ok: true,
            last_bgsave_time_sec: -1,
            last_bgsave_try: 0,
            rdb_saves: 0,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            shutdown_handled: false,
            last_cow_slots: 0,
            inflight: Arc::default(),
            max_hold_us: Arc::default(),
            last_bytes_under_lock: 0,
        }
    }
}

/// A background save in progress.
#[derive(Debug)]
pub struct BgSave {
    /// When it started.
    pub started: Instant,
    /// Set to stop it (SHUTDOWN, FLUSHALL does not need it).
    pub cancel: Arc<AtomicBool>,
    /// `dirty` when it started: what is left after it is what changed meanwhile.
    pub dirty_at_start: u64,
    /// Keys in the snapshot.
    pub keys_total: u64,
    /// Keys written so far.
    pub keys_done: Arc<AtomicU64>,
}

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A background save is running.
    #[error("Background save already in progress")]
    InProgress,
    /// Writing the file failed.
    #[error("failed saving the RDB file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The save was cancelled (shutdown).
    #[error("background save cancelled")]
    Cancelled,
}

/// Why loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("can't read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a loadable RDB file.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: FileError,
    },
}

/// The dump file: `dir`/`dbfilename`.
pub fn rdb_path(c: &Config) -> PathBuf {
    Path::new(&c.dir).join(c.get("dbfilename").unwrap_or_else(|| "dump.rdb".into()))
}

/// `save` points as (seconds, changes) pairs (empty: no automatic saves).
pub fn save_points(c: &Config) -> Vec<(u64, u64)> {
    let v = c.get("save").unwrap_or_default();
    let n: Vec<u64> = v
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    n.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

/// A yes/no setting that is on unless set to `no`.
pub(crate) fn flag(c: &Config, name: &str) -> bool {
    c.get(name).is_none_or(|v| v != "no")
}

fn aux() -> Vec<(&'static str, String)> {
    file::aux_fields(crate::alloc::allocated_bytes() as u64, now_ms() / 1000)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SaveError + '_ {
    move |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens a temp file in the dump's directory.
fn create_temp(
    c: &Config,
    name: &str,
) -> Result<(PathBuf, FileWriter<BufWriter<File>>), SaveError> {
    let tmp = Path::new(&c.dir).join(name);
    let f = File::create(&tmp).map_err(io_err(&tmp))?;
    let w = BufWriter::with_capacity(1 << 20, f);
    Ok((tmp, FileWriter::new(w, flag(c, "rdbchecksum"))))
}

/// Finishes a temp file: EOF and checksum, fsync, rename over the dump.
fn commit(tmp: &Path, dest: &Path, fw: FileWriter<BufWriter<File>>) -> Result<(), SaveError> {
    let res = (|| {
        let f = fw.finish()?.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(tmp, dest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    res.map_err(io_err(dest))
}

/// SAVE: writes the whole keyspace now, under the lock the caller holds.
///
/// # Errors
/// A background save runs, or the file could not be written.
pub fn save_sync(store: &mut Store) -> Result<(), SaveError> {
    if store.persist.bgsave.is_some() {
        return Err(SaveError::InProgress);
    }
    let start = Instant::now();
    let dest = rdb_path(&store.config);
    let (tmp, mut fw) = create_temp(&store.config, &format!("temp-{}.rdb", std::process::id()))?;
    if let Err(e) = write_keyspace(store, &mut fw, &aux()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&dest)(e));
    }
    commit(&tmp, &dest, fw)?;
    store.dirty = 0;
    store.lastsave = now_ms();
    store.persist.rdb_saves += 1;
    store.persist.last_bgsave_ok = true;
    tracing::info!(
        elapsed_ms = start.elapsed().as_millis() as u64,
        "DB saved on disk"
    );
    Ok(())
}

/// BGSAVE: starts a point-in-time background save.
///
/// # Errors
/// A save already runs.
pub fn start_bgsave(shared: &Shared, store: &mut Store) -> Result<(), SaveError> {
    if snapshot_busy(store) {
        return Err(SaveError::InProgress);
    }
    let Some(shared) = shared.arc() else {
        return Err(SaveError::Cancelled);
    };
    let job = Job::prepare(shared, store);
    let (cancel, keys_done) = (job.cancel.clone(), job.keys_done.clone());
    let keys_total = job.keys_total;
    let dest = rdb_path(&store.config);
    let temp = create_temp(
        &store.config,
        &format!("temp-bgsave-{}.rdb", std::process::id()),
    );
    store.persist.last_bgsave_try = now_ms();
    store.persist.bgsave = Some(BgSave {
        started: Instant::now(),
        cancel: cancel.clone(),
        dirty_at_start: store.dirty,
        keys_total,
        keys_done: keys_done.clone(),
    });
    let spawned = std::thread::Builder::new()
        .name("codis-bgsave".into())
        .spawn(move || {
            let res = temp.and_then(|(tmp, fw)| job.run(&tmp, &dest, fw));
            job.finished(res);
        });
    if let Err(e) = spawned {
        end_snapshot(store);
        store.persist.bgsave = None;
        store.persist.last_bgsave_ok = false;
        return Err(SaveError::Io {
            path: PathBuf::from("(thread)"),
            source: e,
        });
    }
    tracing::info!("Background saving started");
    Ok(())
}

/// True while a snapshot (BGSAVE, an AOF rewrite, a replica's payload) holds the dbs'
/// copy-on-write state: only one runs at a time.
pub fn snapshot_busy(store: &Store) -> bool {
    store.persist.bgsave.is_some() || store.repl.snapshotting || store.aof.rewrite.is_some()
}

/// Bytes held for the running snapshot (kept values, tables moved aside, what the thread
/// holds): what a forked Redis child's copy-on-write pages would be, so not counted for
/// maxmemory.
pub fn snapshot_bytes(store: &Store) -> usize {
    let kept: usize = store.dbs.iter().map(|d| d.snapshot_bytes()).sum();
    kept + store.persist.inflight.load(Ordering::Relaxed) as usize
}

/// Drops every db's copy-on-write state.
pub(crate) fn end_snapshot(store: &mut Store) {
    for db in &mut store.dbs {
        if let Some(c) = db.cow.take() {
            store.persist.last_cow_slots += c.copied;
        }
    }
}

/// Stops a background save (SHUTDOWN): its thread removes its temp file.
pub fn cancel_bgsave(store: &mut Store) {
    if let Some(b) = store.persist.bgsave.take() {
        b.cancel.store(true, Ordering::Relaxed);
        end_snapshot(store);
        tracing::warn!("There is a background save in progress: cancelled");
    }
}

/// A point-in-time serialisation of the keyspace, run by a thread in short lock holds
/// (BGSAVE's file, a replica's full-resync payload).
pub(crate) struct Job {
    shared: Arc<Shared>,
    plan: Vec<(usize, usize, usize)>,
    aux: Vec<(&'static str, String)>,
    /// The function libraries at the snapshot point.
    functions: Vec<Vec<u8>>,
    lim: Limits,
    compress: bool,
    cancel: Arc<AtomicBool>,
    keys_done: Arc<AtomicU64>,
    keys_total: u64,
    inflight: Arc<AtomicU64>,
    max_hold_us: Arc<AtomicU64>,
}

impl Job {
    /// Marks every non-empty db for copy-on-write (under the caller's lock): the snapshot
    /// point is now.
    pub(crate) fn prepare(shared: Arc<Shared>, store: &mut Store) -> Job {
        let lim = Limits::from_config(&store.config);
        let compress = flag(&store.config, "rdbcompression");
        let mut plan = Vec::new();
        let mut keys_total = 0;
        for db in &mut store.dbs {
            if db.is_empty() {
                continue;
            }
            plan.push((db.id, db.len(), db.expires_len()));
            keys_total += db.len() as u64;
            db.cow = Some(Box::default());
        }
        store.persist.max_hold_us.store(0, Ordering::Relaxed);
        store.persist.inflight.store(0, Ordering::Relaxed);
        store.persist.last_bytes_under_lock = 0;
        store.persist.last_cow_slots = 0;
        Job {
            shared,
            plan,
            aux: aux(),
            functions: store.scripting.library_codes(),
            lim,
            compress,
            cancel: Arc::new(AtomicBool::new(false)),
            keys_done: Arc::new(AtomicU64::new(0)),
            keys_total,
            inflight: store.persist.inflight.clone(),
            max_hold_us: store.persist.max_hold_us.clone(),
        }
    }

    /// The file is an AOF base (`aof-base:1` in its AUX fields).
    pub(crate) fn mark_aof_base(&mut self) {
        mark_aof_base(&mut self.aux);
    }

    /// Set to stop the job.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Writes the snapshot as an RDB file at `tmp`, then fsyncs and renames it to `dest`.
    pub(crate) fn write_file(
        &self,
        tmp: &Path,
        dest: &Path,
        checksum: bool,
    ) -> Result<(), SaveError> {
        // The thread's bytes count until its writer (and its buffers) is dropped.
        let _reset = ZeroOnDrop(&self.inflight);
        let f = File::create(tmp).map_err(io_err(tmp))?;
        let fw = FileWriter::new(BufWriter::with_capacity(1 << 20, f), checksum);
        self.run(tmp, dest, fw)
    }

    /// Writes the snapshot as AOF commands (`aof-use-rdb-preamble no`): `SELECT`, then one
    /// `RESTORE key ttl payload REPLACE ABSTTL` per key.
    pub(crate) fn write_aof_commands(&self, tmp: &Path, dest: &Path) -> Result<(), SaveError> {
        let rdb = self.payload()?;
        let res = (|| -> Result<(), SaveError> {
            let f = File::create(tmp).map_err(io_err(tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            write_commands(
                &rdb,
                &self.lim,
                self.plan.iter().map(|p| p.0).max().unwrap_or(0) + 1,
                &mut w,
            )
            .map_err(io_err(tmp))?;
            let f = w.into_inner().map_err(|e| io_err(tmp)(e.into_error()))?;
            f.sync_all().map_err(io_err(tmp))?;
            if self.cancel.load(Ordering::Relaxed) {
                return Err(SaveError::Cancelled);
            }
            std::fs::rename(tmp, dest).map_err(io_err(dest))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        res
    }

    /// Serialises the snapshot as a stream of chunks of about 1 MiB sent on `tx` (a
    /// replica's diskless full resync): the payload is never whole in memory, and a slow
    /// replica slows the thread down (the channel is bounded) instead of growing a buffer.
    pub(crate) fn stream(
        &self,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), SaveError> {
        // The thread's bytes count until its writer (and its buffers) is dropped.
        let _reset = ZeroOnDrop(&self.inflight);
        let mut fw = FileWriter::new(
            ChunkSender {
                buf: Vec::new(),
                tx,
            },
            true,
        );
        // The chunk being filled plus the channel's 4.
        self.write_all(&mut fw, 5 << 20)?;
        let mut out = fw.finish().map_err(|source| SaveError::Io {
            path: PathBuf::from("(replica)"),
            source,
        })?;
        out.send()
            .and_then(|()| {
                out.tx
                    .blocking_send(bytes::Bytes::new())
                    .map_err(|_| std::io::Error::other("the replica went away"))
            })
            .map_err(|source| SaveError::Io {
                path: PathBuf::from("(replica)"),
                source,
            })
    }

    /// Serialises the snapshot into an in-memory RDB payload (a replica's full resync).
    pub(crate) fn payload(&self) -> Result<Vec<u8>, SaveError> {
        let _reset = ZeroOnDrop(&self.inflight);
        let mut fw = FileWriter::new(Vec::new(), true);
        self.write_all(&mut fw, 0)?;
        fw.finish().map_err(|source| SaveError::Io {
            path: PathBuf::from("(memory)"),
            source,
        })
    }

    fn run(
        &self,
        tmp: &Path,
        dest: &Path,
        mut fw: FileWriter<BufWriter<File>>,
    ) -> Result<(), SaveError> {
        let res = self.write_all(&mut fw, 1 << 20);
        if let Err(e) = res {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        if self.cancel.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(tmp);
            return Err(SaveError::Cancelled);
        }
        commit(tmp, dest, fw)
    }

    /// Takes the snapshot in short lock holds and writes it to `fw` (whose buffers hold
    /// about `io_buffer` bytes: counted as the thread's, not for maxmemory).
    fn write_all<W: std::io::Write>(
        &self,
        fw: &mut FileWriter<W>,
        io_buffer: usize,
    ) -> Result<(), SaveError> {
        let e = |source| SaveError::Io {
            path: PathBuf::from("temp file"),
            source,
        };
        fw.header(&self.aux).map_err(e)?;
        fw.functions(&self.functions).map_err(e)?;
        let mut w = Writer::new();
        w.compress = self.compress;
        self.inflight.store(io_buffer as u64, Ordering::Relaxed);
        for &(id, keys, expires) in &self.plan {
            fw.select_db(id, keys, expires).map_err(e)?;
            let mut slot = 0;
            while slot < MAX_SLOT_NUM {
                let mut taken = Taken::default();
                {
                    let mut store = self.shared.store.lock();
                    if self.cancel.load(Ordering::Relaxed) {
                        return Err(SaveError::Cancelled);
                    }
                    let t0 = Instant::now();
                    let (mut keys, mut bytes) = (HOLD_KEYS, HOLD_BYTES);
                    let db = &mut store.dbs[id];
                    while slot < MAX_SLOT_NUM {
                        if db.snapshot_take(slot, &mut keys, &mut bytes, &mut taken) {
                            slot += 1;
                        }
                        if keys == 0 || bytes == 0 || t0.elapsed() >= HOLD {
                            break;
                        }
                    }
                    if slot == MAX_SLOT_NUM {
                        // This db is done: its writers stop paying for copy-on-write.
                        let copied = db.cow.take().map_or(0, |c| c.copied);
                        store.persist.last_cow_slots += copied;
                    }
                    self.inflight.store(
                        (io_buffer + w.buf.capacity() + taken.bytes) as u64,
                        Ordering::Relaxed,
                    );
                    self.max_hold_us
                        .fetch_max(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                // Serialise and write without the lock.
                for t in &taken.tables {
                    w.buf.clear();
                    let n = file::write_slot(&mut w, t, &self.lim);
                    self.keys_done.fetch_add(n as u64, Ordering::Relaxed);
                    fw.raw(&w.buf).map_err(e)?;
                }
                for r in &taken.records {
                    w.buf.clear();
                    file::write_key(&mut w, &r.key, &r.value, r.expire, &self.lim);
                    fw.raw(&w.buf).map_err(e)?;
                }
                self.keys_done
                    .fetch_add(taken.records.len() as u64, Ordering::Relaxed);
                // The last reference to a value changed meanwhile is freed here, off the lock.
                drop(taken);
                if w.buf.capacity() > 4 * HOLD_BYTES {
                    w.buf = Vec::new();
                }
                self.inflight
                    .store((io_buffer + w.buf.capacity()) as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn finished(&self, res: Result<(), SaveError>) {
        let mut store = self.shared.store.lock();
        if self.cancel.load(Ordering::Relaxed) {
            return;
        }
        let Some(b) = store.persist.bgsave.take() else {
            return;
        };
        end_snapshot(&mut store);
        let secs = b.started.elapsed().as_secs_f64();
        store.persist.last_bgsave_time_sec = secs.round() as i64;
        match res {
            Ok(()) => {
                store.dirty = store.dirty.saturating_sub(b.dirty_at_start);
                store.lastsave = now_ms();
                store.persist.rdb_saves += 1;
                store.persist.last_bgsave_ok = true;
                tracing::info!(
                    elapsed_ms = (secs * 1000.0) as u64,
                    "Background saving terminated with success"
                );
            }
            Err(e) => {
                store.persist.last_bgsave_ok = false;
                tracing::warn!(error = %e, "Background saving error");
            }
        }
    }
}

/// Sets a counter to 0 when dropped (the snapshot thread's bytes, however it ends).
struct ZeroOnDrop<'a>(&'a AtomicU64);

impl Drop for ZeroOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A `Write` that hands ~1 MiB chunks to a bounded channel (blocking when it is full).
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the replica went away"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rewrites an RDB image as AOF commands.
fn write_commands(
    rdb: &[u8],
    lim: &Limits,
    databases: usize,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut err = None;
    let mut db = None;
    let mut buf = Vec::new();
    let res = file::load(rdb, lim, databases.max(16), now_ms(), |k| {
        if err.is_some() {
            return;
        }
        buf.clear();
        if db != Some(k.db) {
            crate::resp::request::encode_command(
                &mut buf,
                &[b"SELECT", k.db.to_string().as_bytes()],
            );
            db = Some(k.db);
        }
        let payload = crate::rdb::dump_payload(&k.value, lim);
        let ttl = k.expire_ms.unwrap_or(0).to_string();
        crate::resp::request::encode_command(
            &mut buf,
            &[
                b"RESTORE",
                &k.key,
                ttl.as_bytes(),
                &payload,
                b"REPLACE",
                b"ABSTTL",
            ],
        );
        if let Err(e) = w.write_all(&buf) {
            err = Some(e);
        }
    });
    let info = match res {
        Ok(info) => info,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    if let Some(e) = err {
        return Err(e);
    }
    for code in &info.functions {
        buf.clear();
        crate::resp::request::encode_command(&mut buf, &[b"FUNCTION", b"LOAD", code]);
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Writes the whole keyspace as an AOF base at `path`, under the caller's lock (the base
/// created at start, from the dataset just loaded).
///
/// # Errors
/// The file cannot be written.
pub fn write_aof_base(store: &Store, path: &Path, rdb: bool) -> Result<(), SaveError> {
    let image = rdb_image(store, true);
    let tmp = path.with_extension("tmp");
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        if rdb {
            std::io::Write::write_all(&mut f, &image)?;
        } else {
            let lim = Limits::from_config(&store.config);
            let mut w = BufWriter::new(&mut f);
            write_commands(&image, &lim, store.dbs.len(), &mut w)?;
            std::io::Write::flush(&mut w)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io_err(path))
}

/// Writes the header with `aux`, then every db of the keyspace, under the caller's lock
/// (SAVE, the in-memory images below).
fn write_keyspace<W: std::io::Write>(
    store: &Store,
    fw: &mut FileWriter<W>,
    aux: &[(&'static str, String)],
) -> std::io::Result<()> {
    let lim = Limits::from_config(&store.config);
    let mut w = Writer::new();
    w.compress = flag(&store.config, "rdbcompression");
    fw.header(aux)?;
    fw.functions(&store.scripting.library_codes())?;
    for db in &store.dbs {
        if db.is_empty() {
            continue;
        }
        fw.select_db(db.id, db.len(), db.expires_len())?;
        for s in 0..MAX_SLOT_NUM {
            w.buf.clear();
            file::write_slot(&mut w, db.slot(s), &lim);
            fw.raw(&w.buf)?;
        }
    }
    Ok(())
}

/// Sets the `aof-base` AUX field: the file is an AOF base.
fn mark_aof_base(aux: &mut [(&'static str, String)]) {
    for (k, v) in aux {
        if *k == "aof-base" {
            *v = "1".into();
        }
    }
}

/// The whole keyspace as an in-memory RDB image, under the caller's lock (a replica's
/// payload when no snapshot thread can run, an AOF base at start); `aof_base` sets the
/// `aof-base` AUX field.
pub(crate) fn rdb_image(store: &Store, aof_base: bool) -> Vec<u8> {
    let mut fw = FileWriter::new(Vec::new(), flag(&store.config, "rdbchecksum"));
    let mut aux = aux();
    if aof_base {
        mark_aof_base(&mut aux);
    }
    // Writing to memory cannot fail.
    let _ = write_keyspace(store, &mut fw, &aux);
    fw.finish().unwrap_or_default()
}

/// Called by the server cron: starts a scheduled BGSAVE, or one a `save` point asks for.
pub fn cron(shared: &Shared, store: &mut Store) {
    if snapshot_busy(store) {
        return;
    }
    let now = now_ms();
    if store.persist.scheduled {
        store.persist.scheduled = false;
        if let Err(e) = start_bgsave(shared, store) {
            tracing::warn!(error = %e, "scheduled BGSAVE failed to start");
        }
        return;
    }
    if store.dirty == 0 {
        return;
    }
    let since = now.saturating_sub(store.lastsave);
    let may_retry = store.persist.last_bgsave_ok
        || now.saturating_sub(store.persist.last_bgsave_try) > RETRY_DELAY_MS;
    for (secs, changes) in save_points(&store.config) {
        if store.dirty >= changes && since >= secs * 1000 && may_retry {
            tracing::info!("{changes} changes in {secs} seconds. Saving...");
            if let Err(e) = start_bgsave(shared, store) {
                tracing::warn!(error = %e, "BGSAVE failed to start");
            }
            return;
        }
    }
}

/// Loads the function libraries of an RDB image (replacing libraries of the same name).
///
/// # Errors
/// A library does not load (its error, as FUNCTION LOAD would give it).
pub fn load_libraries(store: &mut Store, codes: &[Vec<u8>]) -> Result<(), FileError> {
    for code in codes {
        store
            .scripting
            .load_library(code, true)
            .map_err(|e| FileError::Unsupported {
                offset: 0,
                what: format!("a function library that does not load: {e}"),
            })?;
    }
    Ok(())
}

/// Loads `dir`/`dbfilename` into the (empty) store, if the file exists.
///
/// # Errors
/// The file exists but cannot be read or is not a valid RDB file; the store is then unchanged.
pub fn load(store: &mut Store) -> Result<Option<LoadInfo>, LoadError> {
    let path = rdb_path(&store.config);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Io { path, source }),
    };
    let lim = Limits::from_config(&store.config);
    let n = store.dbs.len();
    let dbs = &mut store.dbs;
    let info = file::load(&data, &lim, n, now_ms(), |k| {
        let db = &mut dbs[k.db];
        db.set(&k.key, k.value);
        if let Some(at) = k.expire_ms {
            db.set_expire(&k.key, at);
        }
    })
    .map_err(|source| LoadError::Format {
        path: path.clone(),
        source,
    })?;
    load_libraries(store, &info.functions).map_err(|source| LoadError::Format {
        path: path.clone(),
        source,
    })?;
    store.persist.last_load_keys_loaded = info.keys_loaded;
    store.persist.last_load_keys_expired = info.keys_expired;
    store.dirty = 0;
    Ok(Some(info))
}

/// The `# Persistence` section of INFO.
pub fn info(store: &Store, out: &mut String) {
    use std::fmt::Write as _;
    let p = &store.persist;
    let (in_progress, cur_secs, done, total) = match &p.bgsave {
        Some(b) => (
            1,
            b.started.elapsed().as_secs() as i64,
            b.keys_done.load(Ordering::Relaxed),
            b.keys_total,
        ),
        None => (0, -1, 0, 0),
    };
    let mut f = |l: String| {
        let _ = write!(out, "{l}\r\n");
    };
    f("# Persistence".into());
    f("loading:0".into());
    f("async_loading:0".into());
    f("current_cow_peak:0".into());
    f(format!("current_cow_size:{}", snapshot_bytes(store)));
    f("current_cow_size_age:0".into());
    f("current_fork_perc:0.00".into());
    f(format!("current_save_keys_processed:{done}"));
    f(format!("current_save_keys_total:{total}"));
    f(format!("rdb_changes_since_last_save:{}", store.dirty));
    f(format!("rdb_bgsave_in_progress:{in_progress}"));
    f(format!("rdb_last_save_time:{}", store.lastsave / 1000));
    f(format!(
        "rdb_last_bgsave_status:{}",
        if p.last_bgsave_ok { "ok" } else { "err" }
    ));
    f(format!(
        "rdb_last_bgsave_time_sec:{}",
        p.last_bgsave_time_sec
    ));
    f(format!("rdb_current_bgsave_time_sec:{cur_secs}"));
    f(format!("rdb_saves:{}", p.rdb_saves));
    f(format!("rdb_last_cow_size:{}", p.last_cow_slots));
    f(format!(
        "rdb_last_save_max_hold_us:{}",
        p.max_hold_us.load(Ordering::Relaxed)
    ));
    f(format!(
        "rdb_last_save_bytes_under_lock:{}",
        p.last_bytes_under_lock
    ));
    f(format!(
        "rdb_last_load_keys_expired:{}",
        p.last_load_keys_expired
    ));
    f(format!(
        "rdb_last_load_keys_loaded:{}",
        p.last_load_keys_loaded
    ));
    let mut lines = Vec::new();
    super::aof::info(store, &mut lines);
    for l in lines {
        f(l);
    }
}
