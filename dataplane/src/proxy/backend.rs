//! Connections from the proxy to codis-servers.
//!
//! Each worker thread keeps its own [`Pool`]: for every backend address and database,
//! `backend_primary_parallel` (or `backend_replica_parallel` for replicas) shared, pipelined
//! connections. Requests of every session of the thread are appended to one write buffer per
//! connection and written together, so many clients' requests go out in one write; replies
//! come back in order and are handed to the waiting requests ([`Pending`]) without being
//! decoded (only delimited, by [`ReplyScanner`]).
//!
//! A connection that cannot be established fails its queued requests with a clear error and
//! retries with exponential back-off; while it is down, new requests fail at once instead of
//! waiting. A connection that stops answering for `backend_recv_timeout` is reset.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::router::RouteGuard;

/// The largest bulk reply whose declared length the reader trusts to size its buffer at
/// once: Redis's default `proto-max-bulk-len` (512 MB) and its header.
const MAX_TRUSTED_BULK: usize = 512 * 1024 * 1024 + 64;
use crate::resp::scan::{ReplyScanner, ScanError};

/// Settings of backend connections (from proxy.toml).
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// `product_auth`: sent as `AUTH` on every connection when not empty.
    pub auth: String,
    /// Connections per master address and database.
    pub primary_parallel: usize,
    /// Connections per replica address and database (0: never read from replicas).
    pub replica_parallel: usize,
    /// Idle connections are pinged this often (zero: never).
    pub ping_period: Duration,
    /// A connection with requests waiting and no reply for this long is reset.
    pub recv_timeout: Duration,
    /// A write that makes no progress for this long resets the connection.
    pub send_timeout: Duration,
    /// Most requests in flight on one connection; more wait for room.
    pub max_pipeline: usize,
    /// Socket buffer sizes (0: the system's default).
    pub recv_bufsize: usize,
    /// Socket send buffer size (0: the system's default).
    pub send_bufsize: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            auth: String::new(),
            primary_parallel: 1,
            replica_parallel: 1,
            ping_period: Duration::from_secs(5),
            recv_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_pipeline: 20480,
            recv_bufsize: 128 * 1024,
            send_bufsize: 128 * 1024,
        }
    }
}

/// A reply for a client: the RESP bytes, and whether the proxy itself failed the request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Complete RESP value.
    pub bytes: Bytes,
    /// True when the proxy produced an error (counted in `ops.fails`).
    pub failed: bool,
}

impl Reply {
    /// A reply received from a backend.
    pub fn data(bytes: Bytes) -> Self {
        Reply {
            bytes,
            failed: false,
        }
    }

    /// `-ERR handle response, <reason>`: the proxy could not get a reply.
    pub fn response_error(reason: &str) -> Self {
        Reply {
            bytes: Bytes::from(format!("-ERR handle response, {reason}\r\n")),
            failed: true,
        }
    }

    /// `-ERR Protocol error: <msg>` (the connection closes after it). CR and LF in the text
    /// become spaces, as Redis's error replies do, so the reply stays one line.
    pub fn protocol_error(msg: &str) -> Self {
        let text: String = msg
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        Reply {
            bytes: Bytes::from(format!("-ERR Protocol error: {text}\r\n")),
            failed: true,
        }
    }

    /// `-ERR handle request, <reason>`: the proxy refused or could not route the request.
    pub fn request_error(reason: &str) -> Self {
        Reply {
            bytes: Bytes::from(format!("-ERR handle request, {reason}\r\n")),
            failed: true,
        }
    }
}

/// A request waiting for its reply. The session holds it in its reply queue; the backend
/// connection completes it and wakes the session's writer.
#[derive(Debug)]
pub struct Pending {
    reply: RefCell<Option<Reply>>,
    wake: Rc<Notify>,
}

impl Pending {
    /// A pending reply that wakes `wake` when completed.
    pub fn new(wake: Rc<Notify>) -> Rc<Self> {
        Rc::new(Pending {
            reply: RefCell::new(None),
            wake,
        })
    }

    /// Stores the reply and wakes the owner.
    pub fn complete(&self, reply: Reply) {
        *self.reply.borrow_mut() = Some(reply);
        self.wake.notify_one();
    }

    /// True once completed.
    pub fn is_ready(&self) -> bool {
        self.reply.borrow().is_some()
    }

    /// Takes the reply out (once ready).
    pub fn take(&self) -> Option<Reply> {
        self.reply.borrow_mut().take()
    }

    /// A clone of the reply, leaving it in place.
    pub fn peek(&self) -> Option<Reply> {
        self.reply.borrow().clone()
    }

    /// Waits until completed, then takes the reply.
    pub async fn wait(self: &Rc<Self>) -> Reply {
        loop {
            if let Some(r) = self.take() {
                return r;
            }
            self.wake.notified().await;
        }
    }
}

/// Slot routes a request holds (counted in flight) until its reply arrives; dropping it
/// releases them.
#[derive(Debug)]
pub enum Hold {
    /// None (keepalives, requests to a named backend).
    None,
    /// One route.
    One(RouteGuard),
    /// Several (a split request grouped by backend).
    Many(Vec<RouteGuard>),
}

/// A request on a connection, waiting for its reply.
#[derive(Debug)]
struct Waiter {
    pending: Rc<Pending>,
    /// The slot routes the request was sent through, released when answered.
    routes: Hold,
    /// Replies to drop before the one that completes `pending` (a MULTI ... EXEC block).
    skip: u32,
}

impl Waiter {
    fn finish(self, reply: Reply) {
        let Waiter {
            pending, routes, ..
        } = self;
        drop(routes);
        pending.complete(reply);
    }
}

/// Health of a connection, as seen by the sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Connecting (first time or again); requests queue.
    Connecting,
    /// Connected and answering.
    Up,
    /// Connected, but the server answered MASTERDOWN or LOADING: not used for replica reads.
    Stale,
    /// The last attempt failed; requests fail at once until the retry.
    Down(Rc<str>),
}

#[derive(Debug)]
struct ConnState {
    out: BytesMut,
    waiting: VecDeque<Waiter>,
    health: Health,
    /// Replies received since the last keepalive check.
    progress: u64,
    /// The pool dropped this connection: finish what is queued, then stop.
    retired: bool,
}

/// One shared, pipelined connection to a backend database.
#[derive(Debug)]
pub struct BackendConn {
    /// `host:port`.
    pub addr: Arc<str>,
    /// Database selected on it.
    pub db: u32,
    state: RefCell<ConnState>,
    wake_writer: Notify,
    /// Wakes sessions waiting for room in the pipeline.
    room: Notify,
    kill: Notify,
}

impl BackendConn {
    fn new(addr: Arc<str>, db: u32) -> Rc<Self> {
        Rc::new(BackendConn {
            addr,
            db,
            state: RefCell::new(ConnState {
                out: BytesMut::with_capacity(16 * 1024),
                waiting: VecDeque::new(),
                health: Health::Connecting,
                progress: 0,
                retired: false,
            }),
            wake_writer: Notify::new(),
            room: Notify::new(),
            kill: Notify::new(),
        })
    }

    /// The connection's health.
    pub fn health(&self) -> Health {
        self.state.borrow().health.clone()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.state.borrow().waiting.len()
    }

    /// Queues `request` (complete RESP bytes) and completes `pending` with its reply. When the
    /// connection is down the request fails at once. `route` is released when answered.
    pub fn send(&self, request: &[u8], pending: Rc<Pending>, routes: Hold) {
        self.send_block(request, 0, pending, routes);
    }

    /// Like [`send`](Self::send) for a block of `skip + 1` requests whose first `skip` replies
    /// are dropped (a `MULTI ... EXEC` block answered by its `EXEC` reply).
    pub fn send_block(&self, request: &[u8], skip: u32, pending: Rc<Pending>, routes: Hold) {
        let waiter = Waiter {
            pending,
            routes,
            skip,
        };
        let mut st = self.state.borrow_mut();
        if let Health::Down(reason) = &st.health {
            let reply = Reply::response_error(&format!("backend conn failure, {reason}"));
            drop(st);
            waiter.finish(reply);
            return;
        }
        let was_empty = st.out.is_empty();
        st.out.extend_from_slice(request);
        st.waiting.push_back(waiter);
        drop(st);
        if was_empty {
            self.wake_writer.notify_one();
        }
    }

    /// Waits until the connection has room for another request (`backend_max_pipeline`).
    pub async fn reserve(&self, max: usize) {
        while self.state.borrow().waiting.len() >= max {
            self.room.notified().await;
        }
    }

    fn fail_all(&self, reason: &str) {
        let waiters: Vec<Waiter> = {
            let mut st = self.state.borrow_mut();
            st.out.clear();
            st.waiting.drain(..).collect()
        };
        for w in waiters {
            w.finish(Reply::response_error(reason));
        }
        self.room.notify_waiters();
    }

    fn set_health(&self, h: Health) {
        self.state.borrow_mut().health = h;
    }

    /// Connects, then serves the connection until the pool retires it.
    async fn run(self: Rc<Self>, cfg: Rc<BackendConfig>) {
        let mut failures: u32 = 0;
        loop {
            if self.state.borrow().retired && self.in_flight() == 0 {
                return;
            }
            self.set_health(Health::Connecting);
            match connect(&self.addr, self.db, &cfg).await {
                Ok(stream) => {
                    failures = 0;
                    self.set_health(Health::Up);
                    let err = self.serve(stream, &cfg).await;
                    if self.state.borrow().retired && self.in_flight() == 0 {
                        return;
                    }
                    if let Some(err) = err {
                        tracing::warn!(backend = %self.addr, db = self.db, error = %err, "backend connection lost");
                        self.fail_all(&format!("backend conn reset, {err}"));
                    }
                }
                Err(err) => {
                    failures += 1;
                    let reason: Rc<str> = Rc::from(err.as_str());
                    if failures == 1 || failures.is_multiple_of(100) {
                        tracing::warn!(backend = %self.addr, db = self.db, error = %err, failures, "cannot connect to backend");
                    }
                    self.set_health(Health::Down(reason));
                    self.fail_all(&format!("backend conn failure, {err}"));
                    if self.state.borrow().retired {
                        return;
                    }
                    // 50 ms doubling up to 5 s; the first retries come quickly.
                    let backoff = if failures <= 3 {
                        Duration::from_millis(50)
                    } else {
                        Duration::from_millis(50u64 << (failures - 3).min(7))
                            .min(Duration::from_secs(5))
                    };
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Runs the reader, the writer and the keepalive of one established connection; returns
    /// the error that ended it (`None` when retired).
    async fn serve(self: &Rc<Self>, stream: TcpStream, cfg: &BackendConfig) -> Option<String> {
        let stream = &stream;
        let writer = async {
            let mut spare = BytesMut::with_capacity(16 * 1024);
            loop {
                {
                    let mut st = self.state.borrow_mut();
                    if st.out.is_empty() {
                        if st.retired && st.waiting.is_empty() {
                            return None;
                        }
                    } else {
                        std::mem::swap(&mut st.out, &mut spare);
                    }
                }
                if spare.is_empty() {
                    self.wake_writer.notified().await;
                    continue;
                }
                match tokio::time::timeout(cfg.send_timeout, super::io::write_all(stream, &spare))
                    .await
                {
                    Ok(Ok(())) => spare.clear(),
                    Ok(Err(e)) => return Some(e.to_string()),
                    Err(_) => return Some("send timeout".to_string()),
                }
            }
        };
        let reader = async {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let mut scanner = ReplyScanner::new();
            loop {
                // A big value half read: room for all of it at once (growing by doubling
                // copies what came each time). The server's own length, up to Redis's
                // largest bulk (`proto-max-bulk-len` 512 MB); a bogus one grows as usual.
                let need = scanner.needed();
                if need > buf.capacity() && need <= MAX_TRUSTED_BULK {
                    crate::util::buffer::grow_exact(&mut buf, need);
                }
                match super::io::read_some(stream, &mut buf).await {
                    Ok(0) => return Some("connection closed by server".to_string()),
                    Ok(_) => {}
                    Err(e) => return Some(e.to_string()),
                }
                loop {
                    match scanner.scan(&buf) {
                        Ok(len) => {
                            let bytes = buf.split_to(len).freeze();
                            if let Err(e) = self.deliver(bytes, cfg) {
                                return Some(e);
                            }
                        }
                        Err(ScanError::Incomplete) => break,
                        Err(ScanError::Invalid(why)) => {
                            return Some(format!("bad reply from server: {why}"));
                        }
                    }
                }
                let st = self.state.borrow();
                if st.retired && st.waiting.is_empty() && st.out.is_empty() {
                    return None;
                }
            }
        };
        let watchdog = async {
            let tick = Duration::from_secs(1);
            let mut idle = Duration::ZERO;
            let mut stalled = Duration::ZERO;
            let mut last_progress = 0;
            loop {
                tokio::time::sleep(tick).await;
                let (waiting, progress) = {
                    let st = self.state.borrow();
                    (st.waiting.len(), st.progress)
                };
                if waiting == 0 {
                    stalled = Duration::ZERO;
                    idle += tick;
                    if !cfg.ping_period.is_zero() && idle >= cfg.ping_period {
                        idle = Duration::ZERO;
                        // A keepalive whose reply nobody waits for.
                        let dummy = Pending::new(Rc::new(Notify::new()));
                        self.send(b"*1\r\n$4\r\nPING\r\n", dummy, Hold::None);
                    }
                } else {
                    idle = Duration::ZERO;
                    if progress == last_progress {
                        stalled += tick;
                        if !cfg.recv_timeout.is_zero() && stalled >= cfg.recv_timeout {
                            return Some("recv timeout".to_string());
                        }
                    } else {
                        stalled = Duration::ZERO;
                    }
                }
                last_progress = progress;
            }
        };
        tokio::select! {
            e = writer => e,
            e = reader => e,
            e = watchdog => e,
            _ = self.kill.notified() => Some("killed".to_string()),
        }
    }

    /// Hands one reply to the oldest waiting request.
    fn deliver(&self, bytes: Bytes, _cfg: &BackendConfig) -> Result<(), String> {
        let waiter = {
            let mut st = self.state.borrow_mut();
            st.progress += 1;
            let stale = bytes.starts_with(b"-MASTERDOWN") || bytes.starts_with(b"-LOADING");
            if stale {
                st.health = Health::Stale;
            } else if st.health == Health::Stale {
                st.health = Health::Up;
            }
            let Some(front) = st.waiting.front_mut() else {
                return Err("reply without a request".to_string());
            };
            if front.skip > 0 {
                front.skip -= 1;
                return Ok(());
            }
            st.waiting.pop_front()
        };
        if let Some(w) = waiter {
            w.finish(Reply::data(bytes));
            self.room.notify_one();
        }
        Ok(())
    }
}

/// Opens a connection to `addr`, authenticates and selects `db`.
async fn connect(addr: &str, db: u32, cfg: &BackendConfig) -> Result<TcpStream, String> {
    let stream = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("dial {addr}: {e}")),
        Err(_) => return Err(format!("dial {addr}: timeout")),
    };
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(&stream);
    if cfg.recv_bufsize > 0 {
        let _ = sock.set_recv_buffer_size(cfg.recv_bufsize);
    }
    if cfg.send_bufsize > 0 {
        let _ = sock.set_send_buffer_size(cfg.send_bufsize);
    }
    let _ = sock.set_keepalive(true);
    handshake(stream, addr, db, &cfg.auth).await
}

/// Sends `AUTH` (if `auth` is set) and `SELECT db` (if not 0) and checks their replies.
pub async fn handshake(
    mut stream: TcpStream,
    addr: &str,
    db: u32,
    auth: &str,
) -> Result<TcpStream, String> {
    let mut req = BytesMut::new();
    let mut expected = 0;
    if !auth.is_empty() {
        encode_command(&mut req, &[b"AUTH", auth.as_bytes()]);
        expected += 1;
    }
    if db != 0 {
        encode_command(&mut req, &[b"SELECT", db.to_string().as_bytes()]);
        expected += 1;
    }
    if expected == 0 {
        return Ok(stream);
    }
    let io = async {
        stream.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(256);
        let mut scanner = ReplyScanner::new();
        let mut got = 0;
        while got < expected {
            match scanner.scan(&buf) {
                Ok(len) => {
                    let reply = buf.split_to(len);
                    if reply.first() == Some(&b'-') {
                        let text = String::from_utf8_lossy(&reply[1..reply.len() - 2]).to_string();
                        return Err(format!("{addr} refused the handshake: {text}"));
                    }
                    got += 1;
                }
                Err(ScanError::Incomplete) => {
                    if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err(format!("{addr} closed the connection"));
                    }
                }
                Err(ScanError::Invalid(why)) => {
                    return Err(format!("bad reply from {addr}: {why}"));
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(5), io).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("{addr}: handshake timeout")),
    }
}

pub use crate::resp::request::encode_command;

#[derive(Debug)]
struct ConnSet {
    conns: Vec<Rc<BackendConn>>,
    next: Cell<usize>,
}

/// The connections of one worker thread, by address, database and role.
#[derive(Debug)]
pub struct Pool {
    cfg: Rc<BackendConfig>,
    sets: RefCell<HashMap<SetKey, Rc<ConnSet>, foldhash::fast::RandomState>>,
}

/// Address, database, replica.
type SetKey = (Arc<str>, u32, bool);

impl Pool {
    /// An empty pool.
    pub fn new(cfg: BackendConfig) -> Self {
        Pool {
            cfg: Rc::new(cfg),
            sets: RefCell::new(HashMap::default()),
        }
    }

    /// The pool's settings.
    pub fn config(&self) -> &BackendConfig {
        &self.cfg
    }

    fn set(&self, addr: &Arc<str>, db: u32, replica: bool) -> Rc<ConnSet> {
        let key = (addr.clone(), db, replica);
        if let Some(s) = self.sets.borrow().get(&key) {
            return s.clone();
        }
        let n = if replica {
            self.cfg.replica_parallel
        } else {
            self.cfg.primary_parallel
        }
        .max(1);
        let conns: Vec<Rc<BackendConn>> = (0..n)
            .map(|_| {
                let c = BackendConn::new(addr.clone(), db);
                tokio::task::spawn_local(c.clone().run(self.cfg.clone()));
                c
            })
            .collect();
        let set = Rc::new(ConnSet {
            conns,
            next: Cell::new(0),
        });
        self.sets.borrow_mut().insert(key, set.clone());
        set
    }

    /// A connection to the master `addr` on `db`: always returns one, preferring a healthy one
    /// among the parallel connections.
    pub fn primary(&self, addr: &Arc<str>, db: u32) -> Rc<BackendConn> {
        let set = self.set(addr, db, false);
        if set.conns.len() == 1 {
            return set.conns[0].clone();
        }
        let start = set.next.get();
        set.next.set(start.wrapping_add(1));
        let n = set.conns.len();
        for i in 0..n {
            let c = &set.conns[(start + i) % n];
            if c.health() == Health::Up {
                return c.clone();
            }
        }
        set.conns[start % n].clone()
    }

    /// A healthy connection to the replica `addr` on `db`, if any.
    pub fn replica(&self, addr: &Arc<str>, db: u32) -> Option<Rc<BackendConn>> {
        if self.cfg.replica_parallel == 0 {
            return None;
        }
        let set = self.set(addr, db, true);
        let start = set.next.get();
        set.next.set(start.wrapping_add(1));
        let n = set.conns.len();
        (0..n)
            .map(|i| &set.conns[(start + i) % n])
            .find(|c| c.health() == Health::Up)
            .cloned()
    }

    /// Closes the connections to addresses not in `keep` (after a slot table change); they
    /// finish their queued requests first.
    pub fn retain(&self, keep: &[Arc<str>]) {
        self.sets.borrow_mut().retain(|(addr, _, _), set| {
            let used = keep.binary_search(addr).is_ok();
            if !used {
                for c in &set.conns {
                    c.state.borrow_mut().retired = true;
                    c.wake_writer.notify_one();
                }
            }
            used
        });
    }

    /// Number of connections (all states).
    pub fn len(&self) -> usize {
        self.sets.borrow().values().map(|s| s.conns.len()).sum()
    }

    /// True when the pool has no connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resets every connection to `addr` (used when a backend is known to be replaced).
    pub fn kill(&self, addr: &str) {
        for ((a, _, _), set) in self.sets.borrow().iter() {
            if &**a == addr {
                for c in &set.conns {
                    c.kill.notify_one();
                }
            }
        }
    }
}
