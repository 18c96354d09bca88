//! The append-only file, in Redis 7's multi-part layout (`appenddirname`, a manifest, one
//! base and incremental files; see [`manifest`]).
//!
//! - Every command that changed the dataset is encoded under the store lock, by the same
//!   path that feeds replicas (`repl::after_command`), into [`State`]'s buffer, with its own
//!   `SELECT` tracking.
//! - At the end of each batch (`connection::process`), still under the lock, the buffer is
//!   written to the current incremental file, so replies never leave before their commands
//!   reached the file: a SIGKILL loses no acknowledged write with any `appendfsync`.
//! - fsync runs on the [`Syncer`] thread, out of the lock. With `appendfsync always` a
//!   connection waits for the thread to have synced its batch before it writes its replies:
//!   concurrent clients share one fsync (group commit). `everysec` syncs once a second,
//!   `no` leaves it to the kernel.
//! - BGREWRITEAOF opens a new incremental file and lists it in the manifest, then writes a
//!   new base (an RDB file) from a copy-on-write snapshot taken in the same lock hold, like
//!   BGSAVE (`persist::Job`); the new manifest (new base + new increment) replaces the old one
//!   and the old files are deleted. Turning AOF on at run time (or after a replica's full
//!   resync) appends to an increment that the manifest lists only once the base is written,
//!   as Redis's `AOF_WAIT_REWRITE`.
//! - [`load`] replays the files at start, with Redis's handling of a torn last record.

pub mod load;
pub mod manifest;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;
use super::persist::{self, Job};
use crate::config::Config;
use crate::resp::request::encode_command;
use crate::store::{Store, now_ms};
use manifest::{Entry, Manifest};

/// After a failed rewrite, the next automatic one waits this long (Redis's 5 s... for
/// `AOF_WAIT_REWRITE`, 1 s).
const RETRY_DELAY_MS: u64 = 5000;

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// fsync before replying.
    Always,
    /// fsync once a second.
    EverySec,
    /// Never fsync explicitly.
    No,
}

impl Fsync {
    /// Parses a config value.
    pub fn parse(s: &str) -> Option<Fsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::EverySec),
            "no" => Some(Fsync::No),
            _ => None,
        }
    }

    fn from_config(c: &Config) -> Fsync {
        c.get("appendfsync")
            .and_then(|v| Fsync::parse(&v))
            .unwrap_or(Fsync::EverySec)
    }
}

/// Why an AOF operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// A file or the directory could not be written or read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is malformed.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The cause.
        #[source]
        source: manifest::ManifestError,
    },
    /// A background save or rewrite holds the snapshot machinery.
    #[error("Background append only file rewriting already in progress")]
    Busy,
    /// A loaded file is not a valid AOF (`load`).
    #[error("{0}")]
    Load(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AofError + 'a {
    move |source| AofError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `dir`/`appenddirname`.
pub fn dir(c: &Config) -> PathBuf {
    Path::new(&c.dir).join(
        c.get("appenddirname")
            .unwrap_or_else(|| "appendonlydir".into()),
    )
}

/// `appendfilename`.
pub fn filename(c: &Config) -> String {
    c.get("appendfilename")
        .unwrap_or_else(|| "appendonly.aof".into())
}

/// True when `appendonly yes` is configured.
pub fn configured(c: &Config) -> bool {
    c.get("appendonly").as_deref() == Some("yes")
}

// ---------------------------------------------------------------------------------------
// The fsync thread.

#[derive(Debug)]
struct SyncFile {
    file: Arc<File>,
    /// Stream offset at which writes moved to the next file (u64::MAX: current).
    upto: u64,
}

#[derive(Debug)]
struct SyncState {
    files: Vec<SyncFile>,
    /// `appendfsync always`: stream bytes handed over by the batches, written by the
    /// thread together with the fsync (one write for many clients).
    pending: Vec<u8>,
    written: u64,
    synced: u64,
    policy: Fsync,
    in_progress: bool,
    error: Option<String>,
    delayed: u64,
    /// `always`: a connection thread went idle with replies waiting for this fsync.
    kicked: bool,
    /// `always`: when bytes first waited unsynced (the fallback when no thread goes idle).
    pending_since: Option<Instant>,
}

/// Syncs the AOF files out of the store lock and tells waiting connections how far the
/// stream is durable.
#[derive(Debug)]
pub struct Syncer {
    m: std::sync::Mutex<SyncState>,
    /// Held by whoever writes `pending` to a file (taken before `m`), so chunks land in
    /// stream order.
    write_lock: std::sync::Mutex<()>,
    cv: Condvar,
    /// Bytes of stream known to be on stable storage.
    synced: watch::Sender<u64>,
    started: AtomicBool,
    /// Highest offset a connection waits for (`always`), and the synced offset, readable
    /// without the lock by the connection threads' park hook.
    requested: std::sync::atomic::AtomicU64,
    synced_fast: std::sync::atomic::AtomicU64,
    /// `DEBUG PAUSE-AOF-FSYNC 1`: the thread writes and syncs nothing until resumed (tests
    /// hold an fsync to observe what waits for it).
    paused: AtomicBool,
}

impl Default for Syncer {
    fn default() -> Self {
        Syncer {
            write_lock: std::sync::Mutex::new(()),
            m: std::sync::Mutex::new(SyncState {
                files: Vec::new(),
                pending: Vec::new(),
                written: 0,
                synced: 0,
                policy: Fsync::EverySec,
                in_progress: false,
                error: None,
                delayed: 0,
                kicked: false,
                pending_since: None,
            }),
            cv: Condvar::new(),
            synced: watch::channel(0).0,
            started: AtomicBool::new(false),
            requested: std::sync::atomic::AtomicU64::new(0),
            synced_fast: std::sync::atomic::AtomicU64::new(0),
            paused: AtomicBool::new(false),
        }
    }
}

impl Syncer {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_thread(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("codis-aof-fsync".into())
            .spawn(move || me.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the AOF fsync thread");
            self.started.store(false, Ordering::Release);
        }
    }

    fn run(&self) {
        let mut last = Instant::now();
        let mut g = self.lock();
        loop {
            let pending = g.written > g.synced && !self.paused.load(Ordering::Acquire);
            if pending && g.pending_since.is_none() {
                g.pending_since = Some(Instant::now());
            }
            let due = pending
                && match g.policy {
                    // When a connection thread has run everything ready (its park hook
                    // kicks), so one fsync covers all it appended; after 1 ms regardless.
                    Fsync::Always => {
                        g.kicked
                            || g.pending_since
                                .is_some_and(|t| t.elapsed() >= Duration::from_millis(1))
                    }
                    Fsync::EverySec => last.elapsed() >= Duration::from_secs(1),
                    Fsync::No => false,
                };
            if !due {
                let wait = match g.policy {
                    Fsync::Always if pending => Duration::from_millis(1),
                    Fsync::EverySec if pending => {
                        Duration::from_secs(1).saturating_sub(last.elapsed())
                    }
                    _ => Duration::from_secs(1),
                };
                g = self
                    .cv
                    .wait_timeout(g, wait.max(Duration::from_millis(1)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            drop(g);
            let wl = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            g = self.lock();
            let chunk = std::mem::take(&mut g.pending);
            g.kicked = false;
            g.pending_since = None;
            let files: Vec<Arc<File>> = g.files.iter().map(|f| f.file.clone()).collect();
            let target = g.written;
            let policy = g.policy;
            g.in_progress = true;
            drop(g);
            write_chunk(files.last(), &chunk);
            drop(wl);
            let t0 = Instant::now();
            let mut err = None;
            for f in &files {
                if let Err(e) = f.sync_data() {
                    err = Some(e);
                }
            }
            last = Instant::now();
            g = self.lock();
            g.in_progress = false;
            if t0.elapsed() > Duration::from_secs(2) {
                g.delayed += 1;
            }
            match err {
                None => {
                    g.synced = g.synced.max(target);
                    let synced = g.synced;
                    g.files.retain(|f| f.upto > synced);
                    g.error = None;
                    self.synced_fast.store(synced, Ordering::Release);
                    self.synced.send_replace(synced);
                }
                Some(e) if policy == Fsync::Always => {
                    // The acknowledgements waiting on this fsync cannot be honoured, and after
                    // a failed fsync the kernel may have dropped the dirty pages: Redis exits.
                    tracing::error!(error = %e, "Can't persist AOF for fsync error when the AOF fsync policy is 'always'. Exiting...");
                    std::process::exit(1);
                }
                Some(e) => {
                    tracing::warn!(error = %e, "AOF fsync failed");
                    g.error = Some(e.to_string());
                }
            }
        }
    }

    /// The writer appended `n` bytes: returns the stream offset after them.
    fn wrote(&self, n: u64) -> u64 {
        let mut g = self.lock();
        g.written += n;
        g.written
    }

    /// `appendfsync always`: hands a batch's bytes to the thread, which writes and syncs
    /// them; returns the stream offset after them.
    fn hand_off(&self, buf: &mut Vec<u8>) -> u64 {
        let mut g = self.lock();
        g.written += buf.len() as u64;
        if g.pending.is_empty() {
            std::mem::swap(&mut g.pending, buf);
        } else {
            g.pending.extend_from_slice(buf);
        }
        buf.clear();
        g.written
    }

    /// Writes what was handed over to the current file now (the caller holds `write_lock`).
    fn flush_pending(&self, g: &mut SyncState) {
        if !g.pending.is_empty() {
            let chunk = std::mem::take(&mut g.pending);
            write_chunk(g.files.last().map(|f| &f.file), &chunk);
        }
    }

    /// Writes now go to `file`.
    fn switch(&self, file: Arc<File>) {
        let _wl = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut g = self.lock();
        self.flush_pending(&mut g);
        let w = g.written;
        for f in &mut g.files {
            if f.upto == u64::MAX {
                f.upto = w;
            }
        }
        g.files.push(SyncFile {
            file,
            upto: u64::MAX,
        });
    }

    fn set_policy(&self, p: Fsync) {
        let _wl = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut g = self.lock();
        self.flush_pending(&mut g);
        g.policy = p;
        self.cv.notify_one();
    }

    /// fsyncs everything written, on the caller's thread (AOF turned off, shutdown), and
    /// forgets the files.
    fn sync_all_and_close(&self) {
        let _wl = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut g = self.lock();
        self.flush_pending(&mut g);
        for f in &g.files {
            if let Err(e) = f.file.sync_data() {
                tracing::warn!(error = %e, "AOF fsync failed");
            }
        }
        g.files.clear();
        g.synced = g.written;
        self.synced_fast.store(g.synced, Ordering::Release);
        self.synced.send_replace(g.synced);
    }

    /// Waits until the stream is durable up to `off` (`appendfsync always`). The fsync
    /// starts when the connection thread goes idle ([`Syncer::thread_idle`]): by then every
    /// connection of the thread with a request ready has run it and appended, and one fsync
    /// covers them all, as Redis's one fsync per event-loop iteration does.
    pub async fn wait_synced(&self, off: u64) {
        if self.synced_fast.load(Ordering::Acquire) >= off {
            return;
        }
        self.requested.fetch_max(off, Ordering::AcqRel);
        if let Some(relay) = RELAY.with(|r| r.borrow().clone()) {
            loop {
                let notified = relay.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if relay.synced.load(Ordering::Acquire) >= off {
                    return;
                }
                notified.await;
            }
        }
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|&v| v >= off).await;
    }

    /// The park hook of the connection threads: they have nothing left to run, so the
    /// replies waiting for an fsync may as well have it now. One atomic load otherwise.
    pub fn thread_idle(&self) {
        if self.requested.load(Ordering::Acquire) > self.synced_fast.load(Ordering::Acquire) {
            let mut g = self.lock();
            g.kicked = true;
            self.cv.notify_one();
        }
    }

    /// `DEBUG PAUSE-AOF-FSYNC`: holds (or releases) the fsync thread. Connections waiting
    /// for an fsync keep waiting while it is held.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        let _g = self.lock();
        self.cv.notify_one();
    }

    fn pending_fsync(&self) -> (bool, u64) {
        let g = self.lock();
        (g.in_progress, g.delayed)
    }
}

thread_local! {
    static RELAY: std::cell::RefCell<Option<Arc<Relay>>> = const { std::cell::RefCell::new(None) };
}

/// One per connection thread: wakes the thread's connections waiting for an fsync from the
/// thread itself, so an fsync costs one cross-thread wake-up per thread instead of one per
/// waiting client.
#[derive(Debug, Default)]
pub struct Relay {
    synced: std::sync::atomic::AtomicU64,
    notify: tokio::sync::Notify,
}

impl Relay {
    /// Installs a relay for the calling connection thread and returns the task to spawn on
    /// its runtime.
    pub fn install(syncer: Arc<Syncer>) -> impl std::future::Future<Output = ()> + Send {
        let relay = Arc::new(Relay::default());
        RELAY.with(|r| *r.borrow_mut() = Some(relay.clone()));
        async move {
            let mut rx = syncer.synced.subscribe();
            loop {
                let v = *rx.borrow_and_update();
                relay.synced.store(v, Ordering::Release);
                relay.notify.notify_waiters();
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes handed-over bytes to `file`. Under `appendfsync always` a failed write cannot be
/// acknowledged nor retried safely: Redis exits, and so do we.
fn write_chunk(file: Option<&Arc<File>>, chunk: &[u8]) {
    if chunk.is_empty() {
        return;
    }
    let res = match file {
        Some(f) => (&**f).write_all(chunk),
        None => Err(std::io::Error::other("no AOF file open")),
    };
    if let Err(e) = res {
        tracing::error!(error = %e, "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// The state kept in the store.

/// A rewrite in progress.
#[derive(Debug)]
pub struct Rewrite {
    started: Instant,
    cancel: Arc<AtomicBool>,
    /// The increment opened when it started (None: AOF was off).
    incr: Option<Entry>,
    /// The base it writes.
    base: Entry,
}

/// AOF state kept in the [`Store`].
#[derive(Debug)]
pub struct State {
    /// Commands are being appended (`appendonly yes`, files open).
    pub on: bool,
    buf: Vec<u8>,
    sel_db: Option<usize>,
    /// A MULTI was written and its EXEC not yet.
    pub(crate) multi_open: bool,
    file: Option<Arc<File>>,
    file_len: u64,
    /// Stream offset after the last bytes written or handed to the fsync thread.
    stream_end: u64,
    /// The manifest as on disk (plus sequence numbers already used).
    manifest: Manifest,
    /// Turned on, the increment in use is not listed yet: the manifest is written when the
    /// first base is (`AOF_WAIT_REWRITE`).
    wait_rewrite: Option<Entry>,
    /// Bytes of base plus increments.
    pub current_size: u64,
    /// `current_size` after the last rewrite (auto-aof-rewrite-percentage's reference).
    pub base_size: u64,
    /// The rewrite in progress.
    pub rewrite: Option<Rewrite>,
    /// BGREWRITEAOF asked while a save ran: starts when it ends.
    pub rewrite_scheduled: bool,
    last_rewrite_ok: bool,
    last_rewrite_secs: i64,
    last_rewrite_try_ms: u64,
    rewrites: u64,
    rewrite_failures: u64,
    /// The last write error (writes are refused with MISCONF while set).
    pub write_error: Option<String>,
    policy: Fsync,
    /// The fsync thread (shared with the connections, which wait on it without the lock).
    pub syncer: Arc<Syncer>,
}

impl Default for State {
    fn default() -> Self {
        State {
            on: false,
            buf: Vec::new(),
            sel_db: None,
            multi_open: false,
            file: None,
            file_len: 0,
            stream_end: 0,
            manifest: Manifest::default(),
            wait_rewrite: None,
            current_size: 0,
            base_size: 0,
            rewrite: None,
            rewrite_scheduled: false,
            last_rewrite_ok: true,
            last_rewrite_secs: -1,
            last_rewrite_try_ms: 0,
            rewrites: 0,
            rewrite_failures: 0,
            write_error: None,
            policy: Fsync::EverySec,
            syncer: Arc::new(Syncer::default()),
        }
    }
}

impl State {
    /// Bytes appended and not yet written to the file (Redis's `aof_buf`, not counted for
    /// maxmemory).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends one command run against `db` to the buffer.
    pub fn append(&mut self, db: usize, args: &[&[u8]]) {
        if self.sel_db != Some(db) {
            encode_command(&mut self.buf, &[b"SELECT", db.to_string().as_bytes()]);
            self.sel_db = Some(db);
        }
        encode_command(&mut self.buf, args);
    }

    /// Writes the buffer to the current file. Returns the stream offset after it, or None
    /// when nothing was written.
    fn write_pending(&mut self) -> Option<u64> {
        if self.buf.is_empty() {
            return None;
        }
        let Some(f) = self.file.clone() else {
            self.buf.clear();
            return None;
        };
        if self.policy == Fsync::Always {
            let n = self.buf.len() as u64;
            self.file_len += n;
            self.current_size += n;
            self.stream_end = self.syncer.hand_off(&mut self.buf);
            return Some(self.stream_end);
        }
        match (&*f).write_all(&self.buf) {
            Ok(()) => {
                let n = self.buf.len() as u64;
                self.file_len += n;
                self.current_size += n;
                self.buf.clear();
                if self.buf.capacity() > 4 << 20 {
                    self.buf = Vec::new();
                }
                if self.write_error.take().is_some() {
                    tracing::warn!("AOF write error looks solved, Redis can write again.");
                }
                self.stream_end = self.syncer.wrote(n);
                Some(self.stream_end)
            }
            Err(e) => {
                // Cut a partial record off, so the file stays a sequence of whole
                // commands; the buffer is kept and written again by the cron.
                let _ = f.set_len(self.file_len);
                if self.policy == Fsync::Always {
                    tracing::error!(error = %e, "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                    std::process::exit(1);
                }
                if self.write_error.is_none() {
                    tracing::warn!(error = %e, "Error writing to the AOF file");
                }
                self.write_error = Some(e.to_string());
                None
            }
        }
    }

    /// `appendfsync` changed.
    pub fn set_policy(&mut self, p: Fsync) {
        self.policy = p;
        self.syncer.set_policy(p);
    }

    /// The current fsync policy.
    pub fn policy(&self) -> Fsync {
        self.policy
    }

    /// Opens a new increment in `dir` and makes it the file written to.
    fn open_incr(&mut self, dir: &Path, entry: &Entry) -> Result<(), AofError> {
        let f = create_append(&dir.join(&entry.name))?;
        self.use_file(Arc::new(f), 0);
        Ok(())
    }

    fn use_file(&mut self, f: Arc<File>, len: u64) {
        self.syncer.switch(f.clone());
        self.file = Some(f);
        self.file_len = len;
        self.sel_db = None;
    }
}

/// Writes what the batch appended. Called at the end of every batch run under the lock;
/// returns the stream offset the caller must see synced before replying
/// (`appendfsync always`).
///
/// Under `always` that is the end of the stream when the batch ran, whether the batch wrote
/// or not: a read may return what another client wrote and is still waiting for, and that
/// value must be durable before anyone sees it (Redis fsyncs before it sends any reply of the
/// event-loop iteration). With nothing pending it costs one atomic load.
pub fn end_of_batch(store: &mut Store) -> Option<u64> {
    if !store.aof.on {
        return None;
    }
    super::repl::flush_expired(store);
    let wrote = store.aof.write_pending();
    if store.aof.policy != Fsync::Always {
        return None;
    }
    let off = wrote.unwrap_or(store.aof.stream_end);
    (store.aof.syncer.synced_fast.load(Ordering::Acquire) < off).then_some(off)
}

fn set_expired_log(store: &mut Store) {
    let on = store.aof.on || store.repl.active();
    for db in &mut store.dbs {
        db.log_expired(on);
    }
}

fn ensure_dir(dir: &Path) -> Result<(), AofError> {
    std::fs::create_dir_all(dir).map_err(io("can't create the AOF directory", dir))
}

/// Reads the manifest in `dir` (None: there is none).
///
/// # Errors
/// It exists but cannot be read or parsed.
pub fn read_manifest(dir: &Path, name: &str) -> Result<Option<Manifest>, AofError> {
    let path = dir.join(manifest::manifest_name(name));
    match std::fs::read_to_string(&path) {
        Ok(t) => Manifest::parse(&t)
            .map(Some)
            .map_err(|source| AofError::Manifest { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("can't read the AOF manifest", &path)(e)),
    }
}

/// Creates (or empties) `path` and opens it for appending: every write lands at the end,
/// also after a failed write was cut off.
fn create_append(path: &Path) -> Result<File, AofError> {
    File::create(path).map_err(io("can't create the append-only file", path))?;
    open_append(path)
}

fn open_append(path: &Path) -> Result<File, AofError> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io("can't open the append-only file", path))
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Sets up appending after the data was loaded at start (`appendonly yes`): opens the last
/// increment of the manifest, or creates the files Redis 7 creates (a base written from the
/// loaded dataset, a first increment, the manifest). `upgrade`: the dataset came from an
/// old single-file `appendonly.aof` in `dir`, which moves into the AOF directory as the base.
///
/// # Errors
/// The directory or files cannot be created.
pub fn open_at_start(store: &mut Store, upgrade: bool) -> Result<(), AofError> {
    let dir = dir(&store.config);
    let name = filename(&store.config);
    ensure_dir(&dir)?;
    store.aof.set_policy(Fsync::from_config(&store.config));
    let existing = if upgrade {
        None
    } else {
        read_manifest(&dir, &name)?
    };
    let mut m = match existing {
        Some(m) => m,
        None => {
            let mut m = Manifest::default();
            if upgrade {
                let old = Path::new(&store.config.dir).join(&name);
                let dest = dir.join(&name);
                std::fs::rename(&old, &dest).map_err(io("can't move the old AOF", &old))?;
                m.base_seq = 1;
                m.base = Some(Entry {
                    name: name.clone(),
                    seq: 1,
                    kind: manifest::Kind::Base,
                });
                tracing::info!(file = %dest.display(), "Successfully migrated an old-style AOF into the AOF directory");
            } else {
                let rdb = persist::flag(&store.config, "aof-use-rdb-preamble");
                let base = m.next_base(&name, rdb);
                let path = dir.join(&base.name);
                persist::write_aof_base(store, &path, rdb).map_err(|e| {
                    AofError::Load(format!("can't write the AOF base {}: {e}", path.display()))
                })?;
                tracing::info!(file = %base.name, "Creating AOF base file on server start");
                m.base = Some(base);
            }
            m
        }
    };
    // History files left by an interrupted rewrite go now.
    for h in m.history.drain(..) {
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
    let (file, len) = match m.incr.last() {
        Some(last) => {
            let path = dir.join(&last.name);
            (open_append(&path)?, file_size(&path))
        }
        None => {
            let e = m.next_incr(&name);
            let f = create_append(&dir.join(&e.name))?;
            tracing::info!(file = %e.name, "Creating AOF incr file on server start");
            m.incr.push(e);
            (f, 0)
        }
    };
    manifest::persist(&dir, &name, &m).map_err(io("can't write the AOF manifest", &dir))?;
    store.aof.current_size = m
        .replay_order()
        .iter()
        .map(|e| file_size(&dir.join(&e.name)))
        .sum();
    store.aof.base_size = store.aof.current_size;
    store.aof.manifest = m;
    store.aof.use_file(Arc::new(file), len);
    store.aof.on = true;
    store.aof.syncer.ensure_thread();
    set_expired_log(store);
    Ok(())
}

/// Turns AOF on at run time (CONFIG SET appendonly yes): appends from now on, and starts
/// the rewrite that writes the first base (scheduled if a save runs).
///
/// # Errors
/// The directory or the increment cannot be created.
pub fn start(shared: &Shared, store: &mut Store) -> Result<(), AofError> {
    if store.aof.on {
        return Ok(());
    }
    let dir = dir(&store.config);
    let name = filename(&store.config);
    ensure_dir(&dir)?;
    if let Some(m) = read_manifest(&dir, &name).ok().flatten() {
        store.aof.manifest = m;
    }
    store.aof.set_policy(Fsync::from_config(&store.config));
    let e = store.aof.manifest.next_incr(&name);
    store.aof.open_incr(&dir, &e)?;
    store.aof.wait_rewrite = Some(e);
    store.aof.on = true;
    store.aof.multi_open = false;
    store.aof.syncer.ensure_thread();
    set_expired_log(store);
    if let Err(e) = start_rewrite(shared, store) {
        tracing::info!(reason = %e, "AOF rewrite scheduled");
        store.aof.rewrite_scheduled = true;
    }
    tracing::info!("Background append only file rewriting started by CONFIG SET appendonly yes");
    Ok(())
}

/// Turns AOF off (CONFIG SET appendonly no): writes and fsyncs what is buffered, stops a
/// rewrite. The files stay.
pub fn stop(store: &mut Store) {
    if !store.aof.on {
        return;
    }
    store.aof.write_pending();
    store.aof.syncer.sync_all_and_close();
    if let Some(r) = store.aof.rewrite.take() {
        r.cancel.store(true, Ordering::Relaxed);
        persist::end_snapshot(store);
        tracing::warn!("Killing running AOF rewrite");
    }
    store.aof.rewrite_scheduled = false;
    if let Some(e) = store.aof.wait_rewrite.take() {
        // Never listed: nothing refers to it.
        let _ = std::fs::remove_file(dir(&store.config).join(&e.name));
    }
    store.aof.on = false;
    store.aof.file = None;
    store.aof.buf.clear();
    store.aof.write_error = None;
    set_expired_log(store);
}

/// The exit path: what is buffered is written and fsynced.
pub fn shutdown(store: &mut Store) {
    if store.aof.on {
        store.aof.write_pending();
        store.aof.syncer.sync_all_and_close();
    }
    if let Some(r) = store.aof.rewrite.take() {
        r.cancel.store(true, Ordering::Relaxed);
    }
}

/// A replica loaded a new dataset from its master: the AOF starts over from it.
pub fn restart_after_sync(shared: &Shared, store: &mut Store) {
    if !store.aof.on {
        return;
    }
    stop(store);
    if let Err(e) = start(shared, store) {
        tracing::warn!(error = %e, "can't turn the AOF on again after a full resync");
    }
}

/// BGREWRITEAOF: a new increment, then a new base from a point-in-time snapshot.
///
/// # Errors
/// A save or rewrite runs ([`AofError::Busy`]), or the files cannot be created.
pub fn start_rewrite(shared: &Shared, store: &mut Store) -> Result<(), AofError> {
    if persist::snapshot_busy(store) {
        return Err(AofError::Busy);
    }
    let Some(arc) = shared.arc() else {
        return Err(AofError::Busy);
    };
    let dir = dir(&store.config);
    let name = filename(&store.config);
    ensure_dir(&dir)?;
    store.aof.last_rewrite_try_ms = now_ms();
    store.aof.rewrite_scheduled = false;
    let incr = if store.aof.on {
        store.aof.write_pending();
        let e = store.aof.manifest.next_incr(&name);
        if store.aof.wait_rewrite.is_some() {
            // Not listed yet: the snapshot taken now covers what the previous one holds.
            store.aof.open_incr(&dir, &e)?;
            if let Some(old) = store.aof.wait_rewrite.replace(e.clone()) {
                let _ = std::fs::remove_file(dir.join(&old.name));
            }
        } else {
            // Listed before it is used: a crash during the rewrite loses nothing.
            let path = dir.join(&e.name);
            let f = create_append(&path)?;
            let mut m = store.aof.manifest.clone();
            m.incr.push(e.clone());
            manifest::persist(&dir, &name, &m).map_err(io("can't write the AOF manifest", &dir))?;
            store.aof.manifest = m;
            store.aof.use_file(Arc::new(f), 0);
        }
        Some(e)
    } else {
        None
    };
    let rdb = persist::flag(&store.config, "aof-use-rdb-preamble");
    let base = store.aof.manifest.next_base(&name, rdb);
    let mut job = Job::prepare(arc.clone(), store);
    job.mark_aof_base();
    let cancel = job.cancel_flag();
    store.aof.rewrite = Some(Rewrite {
        started: Instant::now(),
        cancel: cancel.clone(),
        incr,
        base: base.clone(),
    });
    let tmp = dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let dest = dir.join(&base.name);
    let checksum = store.config.get("rdbchecksum").is_none_or(|v| v != "no");
    let spawned = std::thread::Builder::new()
        .name("codis-aof-rewrite".into())
        .spawn(move || {
            let res = if rdb {
                job.write_file(&tmp, &dest, checksum)
            } else {
                job.write_aof_commands(&tmp, &dest)
            };
            let mut s = arc.store.lock();
            finish_rewrite(&mut s, &cancel, res.map_err(|e| e.to_string()));
        });
    if let Err(e) = spawned {
        store.aof.rewrite = None;
        persist::end_snapshot(store);
        return Err(io("can't start the rewrite thread", &dir)(e));
    }
    tracing::info!("Background append only file rewriting started");
    Ok(())
}

fn finish_rewrite(store: &mut Store, cancel: &AtomicBool, res: Result<(), String>) {
    if cancel.load(Ordering::Relaxed) {
        return;
    }
    let Some(r) = store.aof.rewrite.take() else {
        return;
    };
    persist::end_snapshot(store);
    let secs = r.started.elapsed().as_secs_f64();
    store.aof.last_rewrite_secs = secs.round() as i64;
    let dir = dir(&store.config);
    let name = filename(&store.config);
    let res = res.and_then(|()| {
        let old = store.aof.manifest.clone();
        let mut m = old.clone();
        m.base = Some(r.base.clone());
        m.history.clear();
        m.incr = match (&r.incr, &store.aof.wait_rewrite) {
            (_, Some(w)) => vec![w.clone()],
            (Some(e), None) => vec![e.clone()],
            (None, None) => Vec::new(),
        };
        manifest::persist(&dir, &name, &m).map_err(|e| e.to_string())?;
        for e in old.base.iter().chain(&old.history).chain(&old.incr) {
            if !m.incr.contains(e) && m.base.as_ref() != Some(e) {
                let _ = std::fs::remove_file(dir.join(&e.name));
            }
        }
        store.aof.manifest = m;
        Ok(())
    });
    match res {
        Ok(()) => {
            store.aof.wait_rewrite = None;
            store.aof.current_size = file_size(&dir.join(&r.base.name)) + store.aof.file_len;
            store.aof.base_size = store.aof.current_size;
            store.aof.rewrites += 1;
            store.aof.rewrite_failures = 0;
            store.aof.last_rewrite_ok = true;
            tracing::info!(
                elapsed_ms = (secs * 1000.0) as u64,
                "Background AOF rewrite finished successfully"
            );
        }
        Err(e) => {
            let _ = std::fs::remove_file(dir.join(&r.base.name));
            store.aof.rewrite_failures += 1;
            store.aof.last_rewrite_ok = false;
            if store.aof.wait_rewrite.is_some() {
                // AOF is not really on until a base exists: keep trying.
                store.aof.rewrite_scheduled = true;
            }
            tracing::warn!(error = %e, "Background AOF rewrite failed");
        }
    }
}

/// Called by the server cron: writes what expirations and background work appended,
/// retries a failed write, starts scheduled and automatic rewrites.
pub fn cron(shared: &Shared, store: &mut Store) {
    if store.aof.on {
        super::repl::flush_expired(store);
        store.aof.write_pending();
    }
    if store.aof.rewrite.is_some() || persist::snapshot_busy(store) {
        return;
    }
    let now = now_ms();
    let may_retry = store.aof.last_rewrite_ok
        || now.saturating_sub(store.aof.last_rewrite_try_ms) > RETRY_DELAY_MS;
    if store.aof.rewrite_scheduled && may_retry {
        if let Err(e) = start_rewrite(shared, store) {
            tracing::warn!(error = %e, "scheduled AOF rewrite failed to start");
            store.aof.last_rewrite_ok = false;
            store.aof.rewrite_scheduled = true;
        }
        return;
    }
    if !store.aof.on || store.aof.wait_rewrite.is_some() || !may_retry {
        return;
    }
    let pct: u64 = store
        .config
        .get("auto-aof-rewrite-percentage")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let min = store
        .config
        .get("auto-aof-rewrite-min-size")
        .and_then(|v| crate::config::parse_memory(&v))
        .unwrap_or(64 << 20);
    let (cur, base) = (store.aof.current_size, store.aof.base_size.max(1));
    if pct > 0 && cur > min && cur.saturating_sub(base) * 100 / base >= pct {
        tracing::info!(
            growth_pct = cur.saturating_sub(base) * 100 / base,
            "Starting automatic rewriting of AOF"
        );
        if let Err(e) = start_rewrite(shared, store) {
            tracing::warn!(error = %e, "automatic AOF rewrite failed to start");
        }
    }
}

/// The AOF lines of INFO `# Persistence`.
pub fn info(store: &Store, out: &mut Vec<String>) {
    let a = &store.aof;
    let cur = a
        .rewrite
        .as_ref()
        .map(|r| r.started.elapsed().as_secs() as i64)
        .unwrap_or(-1);
    out.push(format!("aof_enabled:{}", a.on as u8));
    out.push(format!(
        "aof_rewrite_in_progress:{}",
        a.rewrite.is_some() as u8
    ));
    out.push(format!(
        "aof_rewrite_scheduled:{}",
        a.rewrite_scheduled as u8
    ));
    out.push(format!("aof_last_rewrite_time_sec:{}", a.last_rewrite_secs));
    out.push(format!("aof_current_rewrite_time_sec:{cur}"));
    out.push(format!(
        "aof_last_bgrewrite_status:{}",
        if a.last_rewrite_ok { "ok" } else { "err" }
    ));
    out.push(format!("aof_rewrites:{}", a.rewrites));
    out.push(format!(
        "aof_rewrites_consecutive_failures:{}",
        a.rewrite_failures
    ));
    out.push(format!(
        "aof_last_write_status:{}",
        if a.write_error.is_some() { "err" } else { "ok" }
    ));
    out.push("aof_last_cow_size:0".into());
    out.push("module_fork_in_progress:0".into());
    out.push("module_fork_last_cow_size:0".into());
    if a.on {
        let (in_progress, delayed) = a.syncer.pending_fsync();
        out.push(format!("aof_current_size:{}", a.current_size));
        out.push(format!("aof_base_size:{}", a.base_size));
        out.push(format!("aof_pending_rewrite:{}", a.rewrite_scheduled as u8));
        out.push(format!("aof_buffer_length:{}", a.buf.len()));
        out.push(format!("aof_pending_bio_fsync:{}", in_progress as u8));
        out.push(format!("aof_delayed_fsync:{delayed}"));
    }
}
