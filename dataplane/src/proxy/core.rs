//! The running proxy: shared state, the accept loop and the worker threads.
//!
//! Sessions are served by worker threads, each a single-threaded tokio runtime with its own
//! backend connection pool, slot-table copy and counters: a request never crosses threads on
//! its way to a backend and back, and one write to a backend carries the requests of every
//! session of the thread that arrived meanwhile.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::io::{ClientStream, Listener, StdClient};
use tokio::sync::{mpsc, watch};

use super::backend::{BackendConfig, Pool};
use super::router::{RouteCache, Router};
use super::session;
use super::stats::{LocalStats, Stats};

/// Settings the data path needs (taken from proxy.toml and the command line).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// `session_auth`: the password clients must send (empty: none).
    pub session_auth: String,
    /// `proxy_max_clients`.
    pub max_clients: usize,
    /// `session_max_pipeline`: requests a session may have waiting for replies; the proxy
    /// stops reading from a client that reaches it until replies drain.
    pub session_max_pipeline: usize,
    /// `session_recv_timeout`: idle clients are closed after this (zero: never).
    pub session_recv_timeout: Duration,
    /// `session_send_timeout`: a client that does not read its replies for this long is closed.
    pub session_send_timeout: Duration,
    /// `session_break_on_failure`: close the client on a failed request.
    pub session_break_on_failure: bool,
    /// `session_max_pubsub_output`: bytes of pushes a subscriber may have queued and not yet
    /// written; reaching it disconnects the subscriber (0: no limit).
    pub max_pubsub_output: usize,
    /// Bytes of commands a transaction may queue between MULTI and EXEC; past it the
    /// transaction is discarded (EXEC answers EXECABORT) and its queue freed.
    pub max_tx_queued: usize,
    /// `backend_number_databases`.
    pub databases: u32,
    /// `backend_primary_only`.
    pub primary_only: bool,
    /// Backend connection settings.
    pub backend: BackendConfig,
    /// Worker threads.
    pub threads: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            session_auth: String::new(),
            max_clients: 1000,
            session_max_pipeline: 10000,
            session_recv_timeout: Duration::from_secs(30 * 60),
            session_send_timeout: Duration::from_secs(30),
            session_break_on_failure: false,
            max_pubsub_output: 32 * 1024 * 1024,
            max_tx_queued: 64 * 1024 * 1024,
            databases: 16,
            primary_only: false,
            backend: BackendConfig::default(),
            threads: 1,
        }
    }
}

/// State shared by the whole proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Data path settings.
    pub cfg: CoreConfig,
    /// The slot table.
    pub router: Arc<Router>,
    /// Counters.
    pub stats: Stats,
    online: AtomicBool,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    next_session: AtomicU64,
}

impl Proxy {
    /// A proxy that is not online yet (sessions are refused until [`start`](Self::start)).
    pub fn new(cfg: CoreConfig) -> Arc<Self> {
        Arc::new(Proxy {
            router: Arc::new(Router::new(cfg.primary_only)),
            cfg,
            stats: Stats::default(),
            online: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            next_session: AtomicU64::new(1),
        })
    }

    /// Goes online: sessions are accepted.
    pub fn start(&self) -> Result<(), &'static str> {
        if self.is_closed() {
            return Err("use of closed proxy");
        }
        self.online.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True once started and not closed.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst) && !self.is_closed()
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the proxy: stops accepting, lets sessions finish what they have read, and makes
    /// [`run`] return.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }

    /// A receiver that sees `true` once the proxy closes.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A new session id.
    pub fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a worker thread's sessions share.
#[derive(Debug)]
pub struct Worker {
    /// The proxy.
    pub proxy: Arc<Proxy>,
    /// This thread's copy of the slot table.
    pub routes: RefCell<RouteCache>,
    /// This thread's backend connections.
    pub pool: Pool,
    /// This thread's counters.
    pub stats: RefCell<LocalStats>,
}

impl Worker {
    fn new(proxy: Arc<Proxy>) -> Rc<Self> {
        Rc::new(Worker {
            routes: RefCell::new(RouteCache::new(proxy.router.clone())),
            pool: Pool::new(proxy.cfg.backend.clone()),
            stats: RefCell::new(LocalStats::default()),
            proxy,
        })
    }

    /// Every 100 ms: flushes counters and closes connections no slot uses any more.
    async fn housekeeping(self: Rc<Self>) {
        let mut pool_epoch = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.proxy.stats.absorb(&mut self.stats.borrow_mut());
            let epoch = self.proxy.router.epoch();
            if epoch != pool_epoch {
                pool_epoch = epoch;
                self.pool.retain(&self.proxy.router.addresses());
            }
        }
    }
}

type Accepted = StdClient;

fn start_workers(proxy: &Arc<Proxy>) -> Vec<mpsc::UnboundedSender<Accepted>> {
    let mut senders = Vec::new();
    for i in 0..proxy.cfg.threads.max(1) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Accepted>();
        let proxy = proxy.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("proxy-worker-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a worker runtime");
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let worker = Worker::new(proxy);
                    tokio::task::spawn_local(worker.clone().housekeeping());
                    while let Some(sock) = rx.recv().await {
                        match ClientStream::from_std(sock) {
                            Ok(sock) => {
                                tokio::task::spawn_local(session::serve(sock, worker.clone()));
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot register a session"),
                        }
                    }
                });
            });
        match spawned {
            Ok(_) => senders.push(tx),
            Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
        }
    }
    senders
}

/// Accepts clients on `listener` until the proxy closes, then waits (at most 10 s) for the
/// sessions to finish the requests they have read.
pub async fn run(listener: impl Into<Listener>, proxy: Arc<Proxy>) {
    let listener: Listener = listener.into();
    let workers = start_workers(&proxy);
    let mut closing = proxy.closing();
    let mut next = 0usize;
    let qps = tokio::spawn(qps_loop(proxy.clone()));
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok(sock) => {
                    if workers.is_empty() {
                        continue;
                    }
                    let _ = workers[next % workers.len()].send(sock);
                    next = next.wrapping_add(1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = closing.changed() => break,
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while proxy.stats.sessions_alive.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    qps.abort();
}

async fn qps_loop(proxy: Arc<Proxy>) {
    let mut last = proxy.stats.total.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = proxy.stats.total.load(Ordering::Relaxed);
        proxy
            .stats
            .qps
            .store(now.saturating_sub(last), Ordering::Relaxed);
        last = now;
    }
}

impl CoreConfig {
    /// The data-path settings of a `proxy.toml`, served by `threads` worker threads.
    pub fn from_config(c: &super::config::ProxyConfig, threads: usize) -> Self {
        CoreConfig {
            session_auth: c.session_auth.clone(),
            max_clients: c.proxy_max_clients,
            session_max_pipeline: c.session_max_pipeline,
            session_recv_timeout: c.session_recv_timeout.get(),
            session_send_timeout: c.session_send_timeout.get(),
            session_break_on_failure: c.session_break_on_failure,
            max_pubsub_output: c.session_max_pubsub_output.as_usize(),
            max_tx_queued: CoreConfig::default().max_tx_queued,
            databases: c.backend_number_databases,
            primary_only: c.backend_primary_only,
            backend: BackendConfig {
                auth: c.product_auth.clone(),
                primary_parallel: c.backend_primary_parallel,
                replica_parallel: c.backend_replica_parallel,
                ping_period: c.backend_ping_period.get(),
                recv_timeout: c.backend_recv_timeout.get(),
                send_timeout: c.backend_send_timeout.get(),
                max_pipeline: c.backend_max_pipeline.max(1),
                recv_bufsize: c.backend_recv_bufsize.as_usize(),
                send_bufsize: c.backend_send_bufsize.as_usize(),
            },
            threads,
        }
    }
}
