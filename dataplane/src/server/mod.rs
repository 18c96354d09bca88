//! The codis-server process: shared state, the accept loop and the background cycle.
//!
//! - [`client`]: per-connection state.
//! - [`connection`]: the read → parse → execute → write loop of one client.
//! - [`pubsub`]: channel and pattern subscriptions.

pub mod aof;
pub mod client;
pub mod connection;
pub mod persist;
pub mod pubsub;
pub mod repl;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::{Store, now_ms};
use client::{Client, ClientInfo, Push, PushSender};

/// Called at the end of every lock hold that ran commands: the replicas get what the batch
/// fed to the stream, the AOF gets its commands. Returns the AOF offset the caller must see
/// fsynced before replying (`appendfsync always`); the replicas wait for it too, as in
/// Redis (docs/COMPATIBILITY.md).
pub fn end_of_batch(store: &mut Store) -> Option<u64> {
    let wait = aof::end_of_batch(store);
    store.repl.flush_after(wait);
    wait
}

/// The version we report as `redis_version`: the Redis release whose behaviour we follow.
pub const REDIS_VERSION: &str = "7.0.15";

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    /// The keyspace and everything that must change atomically with it.
    pub store: Mutex<Store>,
    /// Connected clients by id.
    pub clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    /// Pub/sub subscriptions.
    pub pubsub: Mutex<pubsub::PubSub>,
    monitors: Mutex<Vec<(u64, PushSender)>>,
    monitor_count: AtomicUsize,
    /// Next client id.
    pub next_id: AtomicU64,
    /// Flips to true when the server must stop.
    pub shutdown: watch::Sender<bool>,
    /// Process start.
    pub started: Instant,
    /// Unix ms at start.
    pub started_unix_ms: u64,
    /// True while `requirepass` is set (read without the store lock by the parser).
    pub auth_required: AtomicBool,
    /// `proto-max-bulk-len`, readable without the store lock.
    pub max_bulk_len: AtomicU64,
    /// `client-query-buffer-limit`, readable without the store lock.
    pub query_buffer_limit: AtomicU64,
    /// `timeout` (idle client seconds, 0 = never), readable without the store lock.
    pub idle_timeout: AtomicU64,
    /// Bytes read from clients.
    pub net_input: AtomicU64,
    /// Bytes written to clients.
    pub net_output: AtomicU64,
    /// Random run id (40 hex chars).
    pub run_id: String,
    /// The port actually bound.
    pub port: AtomicU64,
    /// The config file, if any (CONFIG REWRITE, INFO).
    pub config_file: Option<std::path::PathBuf>,
    /// The executable path (INFO).
    pub executable: String,
    /// The AOF fsync thread: connections wait on it, without the store lock, before
    /// replying under `appendfsync always`.
    pub aof_sync: Arc<aof::Syncer>,
    /// This value's own `Arc`, for background tasks started from a command handler (which
    /// only gets `&Shared`), such as the slot migration task.
    me: std::sync::Weak<Shared>,
    /// The running script as other clients see it (BUSY, SCRIPT KILL).
    pub script_busy: Arc<crate::script::Busy>,
    /// The thread scripts run on, started on first use.
    pub script_thread: std::sync::OnceLock<Option<crate::script::ScriptThread>>,
}

impl Shared {
    /// Shared state around a fresh store.
    pub fn new(config: Config, config_file: Option<std::path::PathBuf>) -> Arc<Self> {
        use rand::Rng;
        let mut rng = rand::rng();
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect();
        let (tx, _) = watch::channel(false);
        let store = Store::new(config.clone());
        let aof_sync = store.aof.syncer.clone();
        let script_busy = store.scripting.busy.clone();
        Arc::new_cyclic(|me| Shared {
            script_busy,
            script_thread: std::sync::OnceLock::new(),
            aof_sync,
            me: me.clone(),
            auth_required: AtomicBool::new(!config.requirepass.is_empty()),
            max_bulk_len: AtomicU64::new(config.proto_max_bulk_len),
            query_buffer_limit: AtomicU64::new(config.client_query_buffer_limit),
            idle_timeout: AtomicU64::new(config.timeout),
            port: AtomicU64::new(config.port as u64),
            store: Mutex::new(store),
            clients: Mutex::new(HashMap::new()),
            pubsub: Mutex::new(pubsub::PubSub::default()),
            monitors: Mutex::new(Vec::new()),
            monitor_count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            shutdown: tx,
            started: Instant::now(),
            started_unix_ms: now_ms(),
            net_input: AtomicU64::new(0),
            net_output: AtomicU64::new(0),
            run_id,
            config_file,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        })
    }

    /// The running script's state.
    pub fn script_busy(&self) -> &crate::script::Busy {
        &self.script_busy
    }

    /// A new `Arc` of this shared state (None only while it is being dropped).
    pub fn arc(&self) -> Option<Arc<Shared>> {
        self.me.upgrade()
    }

    /// Re-reads config values cached outside the lock (after CONFIG SET).
    pub fn refresh_cached_config(&self, config: &Config) {
        self.auth_required
            .store(!config.requirepass.is_empty(), Ordering::Relaxed);
        self.max_bulk_len
            .store(config.proto_max_bulk_len, Ordering::Relaxed);
        self.query_buffer_limit
            .store(config.client_query_buffer_limit, Ordering::Relaxed);
        self.idle_timeout.store(config.timeout, Ordering::Relaxed);
    }

    /// True when some client runs MONITOR.
    pub fn has_monitors(&self) -> bool {
        self.monitor_count.load(Ordering::Relaxed) > 0
    }

    /// Adds a MONITOR client.
    pub fn add_monitor(&self, id: u64, tx: PushSender) {
        let mut m = self.monitors.lock();
        m.push((id, tx));
        self.monitor_count.store(m.len(), Ordering::Relaxed);
    }

    /// Removes a MONITOR client.
    pub fn remove_monitor(&self, id: u64) {
        let mut m = self.monitors.lock();
        m.retain(|(i, _)| *i != id);
        self.monitor_count.store(m.len(), Ordering::Relaxed);
    }

    /// Sends a command line to every MONITOR client, formatted as Redis does.
    pub fn feed_monitors(&self, client: &Client, args: &[&[u8]]) {
        let now = now_ms();
        let mut line = format!(
            "{}.{:06} [{} {}]",
            now / 1000,
            (now % 1000) * 1000,
            client.db,
            client.info.addr
        );
        for a in args {
            line.push(' ');
            line.push_str(&repr(a));
        }
        let line: Arc<str> = line.into();
        for (id, tx) in self.monitors.lock().iter() {
            if *id != client.id {
                let _ = tx.send(Push::Monitor(line.clone()));
            }
        }
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    /// Asks the server to stop.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Quotes bytes as Redis's `sdscatrepr` does (`"a\x00b\n"`).
pub fn repr(a: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in a {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Binds a listening socket with Redis's options: `SO_REUSEADDR` and the `tcp-backlog` queue
/// length (tokio's default queue of 128 overflowed under connection bursts: SYNs were dropped
/// and clients waited a second for the retransmit).
///
/// # Errors
/// The address does not parse or cannot be bound.
pub fn bind_listener(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts clients on `listener` until shutdown is requested, running the background cycle
/// beside. Returns when every connection has been told to stop.
///
/// Connections are served by one single-threaded runtime per core ([`IoThreads`]): a
/// connection stays on its thread for life, so a request never wakes another thread, which
/// measured faster than tokio's work-stealing scheduler (fewer context switches).
pub async fn run(listener: TcpListener, shared: Arc<Shared>) {
    if let Ok(addr) = listener.local_addr() {
        shared.port.store(addr.port() as u64, Ordering::Relaxed);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = shared
        .store
        .lock()
        .config
        .get("io-threads")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(cores)
        .min(128);
    let mut io = IoThreads::start(threads, &shared);
    {
        let mut store = shared.store.lock();
        let to = store.config.get("replicaof").unwrap_or_default();
        if let Some((h, p)) = to.split_once(' ')
            && let Ok(p) = p.parse::<u16>()
        {
            repl::follow(&shared, &mut store, h.to_string(), p);
        }
    }
    let cron = tokio::spawn(cron(shared.clone()));
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((sock, peer)) => io.dispatch(sock, peer),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    cron.abort();
    // Tell every connection to stop.
    for c in shared.clients.lock().values() {
        c.request_kill();
    }
}

/// The connection threads: each runs a current-thread tokio runtime and receives accepted
/// sockets round-robin.
///
/// One more, the rescue thread, is started the first time a socket arrives while a script
/// running inline on a connection thread is past `busy-reply-threshold` (see
/// `crate::script`): the clients of that thread wait for it, so new connections go to the
/// rescue thread, where they get `-BUSY` and can send SCRIPT KILL or SHUTDOWN NOSAVE. They
/// stay there afterwards, as on any connection thread.
#[derive(Debug)]
pub struct IoThreads {
    senders: Vec<IoSender>,
    next: usize,
    rescue: Option<IoSender>,
    shared: Arc<Shared>,
}

type IoSender = mpsc::UnboundedSender<(std::net::TcpStream, std::net::SocketAddr)>;

/// Starts one connection thread named `name`.
fn spawn_io_thread(name: String, shared: &Arc<Shared>) -> Option<IoSender> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, std::net::SocketAddr)>();
    let shared = shared.clone();
    let syncer = shared.aof_sync.clone();
    let syncer2 = shared.aof_sync.clone();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || syncer.thread_idle())
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start an I/O thread runtime");
                return;
            }
        };
        rt.block_on(async move {
            tokio::spawn(aof::Relay::install(syncer2));
            while let Some((std_sock, peer)) = rx.recv().await {
                match tokio::net::TcpStream::from_std(std_sock) {
                    Ok(sock) => {
                        tokio::spawn(connection::serve(sock, peer, shared.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot register a connection")
                    }
                }
            }
        });
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start an I/O thread");
            None
        }
    }
}

impl IoThreads {
    /// Starts `n` threads serving connections with `shared`.
    pub fn start(n: usize, shared: &Arc<Shared>) -> Self {
        let senders = (0..n.max(1))
            .filter_map(|i| spawn_io_thread(format!("codis-io-{i}"), shared))
            .collect();
        IoThreads {
            senders,
            next: 0,
            rescue: None,
            shared: shared.clone(),
        }
    }

    /// Hands an accepted socket to the next thread (or to the rescue thread while an inline
    /// script is busy).
    pub fn dispatch(&mut self, sock: tokio::net::TcpStream, peer: std::net::SocketAddr) {
        let Ok(std_sock) = sock.into_std() else {
            return;
        };
        if self.shared.script_busy.stuck_inline() {
            if self.rescue.is_none() {
                self.rescue = spawn_io_thread("codis-io-rescue".into(), &self.shared);
            }
            if let Some(tx) = &self.rescue {
                let _ = tx.send((std_sock, peer));
                return;
            }
        }
        if self.senders.is_empty() {
            return;
        }
        let i = self.next % self.senders.len();
        self.next = self.next.wrapping_add(1);
        let _ = self.senders[i].send((std_sock, peer));
    }
}

/// Takes the store lock without blocking this runtime's worker for long: a script may hold
/// the lock for seconds, and a worker blocked on it stops the runtime's I/O driver (accept).
async fn lock_yielding(shared: &Shared) -> parking_lot::MutexGuard<'_, Store> {
    loop {
        if let Some(g) = shared.store.try_lock_for(Duration::from_millis(2)) {
            return g;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The background cycle: runs `hz` times a second, like Redis's `serverCron`.
async fn cron(shared: Arc<Shared>) {
    let mut last_ops = Instant::now();
    loop {
        let hz = lock_yielding(&shared).await.config.hz.max(1);
        tokio::time::sleep(Duration::from_millis(1000 / hz as u64)).await;
        let now = now_ms();
        let deadline = Instant::now() + Duration::from_millis(25 * 10 / hz as u64 + 1);
        // Active expiry, in short lock holds so clients are never stalled for long.
        loop {
            let mut store = lock_yielding(&shared).await;
            store.stats.expire_cycles += 1;
            let mut removed = 0;
            for db in &mut store.dbs {
                removed += db.active_expire(now, 200);
            }
            drop(store);
            if removed < 50 || Instant::now() >= deadline {
                break;
            }
        }
        let mut store = lock_yielding(&shared).await;
        store.lru_clock = crate::store::evict::lru_clock_now();
        store.sync_clock();
        if last_ops.elapsed() >= Duration::from_millis(100) {
            let el = last_ops.elapsed().as_secs_f64();
            let total = store.stats.total_commands;
            let ops = ((total - store.stats.ops_sample_commands) as f64 / el) as u64;
            store.stats.instantaneous_ops = ops;
            store.stats.ops_sample_commands = total;
            store.stats.ops_sample_time = now;
            last_ops = Instant::now();
        }
        if store.config.maxmemory > 0 {
            store.evict_to_fit(crate::alloc::allocated_bytes);
        } else {
            // Keeps the queue of kept values to look at short without eviction, too.
            store.settle_snapshot();
        }
        repl::cron(&mut store);
        persist::cron(&shared, &mut store);
        aof::cron(&shared, &mut store);
    }
}
