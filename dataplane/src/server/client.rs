//! Per-connection state: [`Client`] is owned by the connection task; [`ClientInfo`] is the part
//! other clients can see (CLIENT LIST / KILL), kept in atomics so updating it is cheap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::store::WatchFlag;

/// Work a command hands to its connection to run outside the store lock (network I/O such as
/// a slot migration). The future must not touch the store; what it returns is run under the
/// lock afterwards to write the reply.
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = Finish> + Send>>;

/// The second half of a deferred command: runs under the store lock and writes the reply.
pub type Finish = Box<dyn FnOnce(&mut crate::cmd::Ctx<'_>) -> crate::cmd::CmdResult + Send>;

/// Something the connection loop must do after a command, outside the store lock.
pub enum Action {
    /// Send the pending replies, then close (QUIT, protocol error).
    Close,
    /// Wait until a watched key changes or the deadline passes, then run the command again.
    Block {
        /// When to give up (None: never).
        deadline: Option<Instant>,
    },
    /// Stop the server (SHUTDOWN).
    Shutdown,
    /// Sleep, then continue (DEBUG SLEEP).
    Sleep(std::time::Duration),
    /// The client is a replica that just ran PSYNC/SYNC: the connection becomes its
    /// replication stream (`server::repl::serve_replica`).
    Replica(Box<crate::server::repl::Attach>),
    /// Await the future without holding the lock, then run its [`Finish`] under the lock to
    /// write the reply. Later requests of this client wait, as behind a blocking command.
    Defer(Deferred),
    /// Run this script call (EVAL, EVALSHA, FCALL...) on the script thread, so this
    /// connection thread keeps serving the other clients (and answers them `-BUSY`).
    Script(Vec<Vec<u8>>),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Close => f.write_str("Close"),
            Action::Block { deadline } => write!(f, "Block({deadline:?})"),
            Action::Shutdown => f.write_str("Shutdown"),
            Action::Sleep(d) => write!(f, "Sleep({d:?})"),
            Action::Defer(_) => f.write_str("Defer"),
            Action::Replica(_) => f.write_str("Replica"),
            Action::Script(_) => f.write_str("Script"),
        }
    }
}

/// A message pushed to a client from outside its own commands.
#[derive(Debug, Clone)]
pub enum Push {
    /// A PUBLISH to a subscribed channel.
    Message {
        /// Channel.
        channel: bytes::Bytes,
        /// Payload.
        data: bytes::Bytes,
    },
    /// A PUBLISH matching a subscribed pattern.
    PMessage {
        /// Pattern.
        pattern: bytes::Bytes,
        /// Channel.
        channel: bytes::Bytes,
        /// Payload.
        data: bytes::Bytes,
    },
    /// A MONITOR line.
    Monitor(Arc<str>),
}

impl Push {
    /// Approximate bytes this push takes while queued.
    pub fn size(&self) -> usize {
        match self {
            Push::Message { channel, data } => channel.len() + data.len() + 48,
            Push::PMessage {
                pattern,
                channel,
                data,
            } => pattern.len() + channel.len() + data.len() + 64,
            Push::Monitor(line) => line.len() + 16,
        }
    }
}

/// Most bytes of pushes (pub/sub messages, MONITOR lines) queued for one client before it is
/// disconnected, as Redis's `client-output-buffer-limit pubsub 32mb`: a subscriber that stops
/// reading must not make the server grow without bound.
pub const PUSH_QUEUE_LIMIT: usize = 32 * 1024 * 1024;

/// The sending side of a client's push queue, counting what is queued.
#[derive(Debug, Clone)]
pub struct PushSender {
    tx: mpsc::UnboundedSender<Push>,
    info: Arc<ClientInfo>,
}

impl PushSender {
    /// Wraps a client's channel.
    pub fn new(tx: mpsc::UnboundedSender<Push>, info: Arc<ClientInfo>) -> Self {
        PushSender { tx, info }
    }

    /// Queues a push. Returns false when the client is gone, or when its queue is over
    /// [`PUSH_QUEUE_LIMIT`]: the client is then disconnected and the push dropped.
    pub fn send(&self, p: Push) -> bool {
        if self.info.killed.load(Ordering::Relaxed) {
            return false;
        }
        let size = p.size();
        let queued = self.info.push_queued.fetch_add(size, Ordering::Relaxed) + size;
        if queued > PUSH_QUEUE_LIMIT {
            self.info.push_queued.fetch_sub(size, Ordering::Relaxed);
            self.info.request_kill();
            return false;
        }
        self.tx.send(p).is_ok()
    }
}

/// The shared, read-mostly view of a client.
#[derive(Debug)]
pub struct ClientInfo {
    /// Client id.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// Connection time.
    pub created: Instant,
    name: parking_lot::Mutex<String>,
    /// Selected database.
    pub db: AtomicUsize,
    last_cmd: AtomicUsize,
    /// Unix ms of the last command.
    pub last_active: AtomicU64,
    /// Wakes what waits for a kill of the connection (a blocked command, a replica's
    /// stream).
    pub kill: Notify,
    /// Wakes the connection's own loop when it is killed (see
    /// [`ClientInfo::kill_requested`]).
    kill_waker: atomic_waker::AtomicWaker,
    /// True once CLIENT KILL targeted it.
    pub killed: AtomicBool,
    /// Channel + pattern subscriptions.
    pub subs: AtomicUsize,
    /// Pattern subscriptions.
    pub psubs: AtomicUsize,
    /// Protocol version (2 or 3).
    pub resp: AtomicUsize,
    /// Flags string pieces: MULTI active.
    pub in_multi: AtomicBool,
    /// True for MONITOR clients.
    pub monitor: AtomicBool,
    /// True when blocked.
    pub blocked: AtomicBool,
    /// Set by `CLIENT UNBLOCK` (with `unblock` notified): the block ends as a timeout.
    pub unblock_requested: AtomicBool,
    /// Wakes a blocked connection for `CLIENT UNBLOCK`.
    pub unblock: Notify,
    /// CLIENT NO-EVICT.
    pub no_evict: AtomicBool,
    /// Bytes waiting in the query buffer.
    pub qbuf: AtomicUsize,
    /// Bytes of pushes queued for the client and not yet encoded.
    pub push_queued: AtomicUsize,
    /// [`KIND_NORMAL`], [`KIND_REPLICA`] or [`KIND_MASTER`] (CLIENT LIST / KILL TYPE).
    pub kind: std::sync::atomic::AtomicU8,
}

/// A normal client.
pub const KIND_NORMAL: u8 = 0;
/// A replica attached to us.
pub const KIND_REPLICA: u8 = 1;
/// Our link to our master.
pub const KIND_MASTER: u8 = 2;

impl ClientInfo {
    /// A new record.
    pub fn new(id: u64, addr: String, laddr: String) -> Self {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: parking_lot::Mutex::new(String::new()),
            db: AtomicUsize::new(0),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_active: AtomicU64::new(crate::store::now_ms()),
            kill: Notify::new(),
            kill_waker: atomic_waker::AtomicWaker::new(),
            killed: AtomicBool::new(false),
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            in_multi: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            unblock_requested: AtomicBool::new(false),
            unblock: Notify::new(),
            no_evict: AtomicBool::new(false),
            qbuf: AtomicUsize::new(0),
            push_queued: AtomicUsize::new(0),
            kind: std::sync::atomic::AtomicU8::new(KIND_NORMAL),
        }
    }

    /// The name set with CLIENT SETNAME.
    pub fn name(&self) -> String {
        self.name.lock().clone()
    }

    /// Sets the name.
    pub fn set_name(&self, n: String) {
        *self.name.lock() = n;
    }

    /// Records the last command (index in the registry).
    pub fn set_last_cmd(&self, id: usize) {
        self.last_cmd.store(id, Ordering::Relaxed);
    }

    /// The last command's name.
    pub fn last_cmd_name(&self) -> &'static str {
        let id = self.last_cmd.load(Ordering::Relaxed);
        crate::cmd::registry()
            .commands
            .get(id)
            .map(|c| c.name)
            .unwrap_or("NULL")
    }

    /// Asks the connection to close: wakes every wait on `kill` (the connection's loop keeps
    /// one for its life, a blocked command has its own), and leaves a permit for a wait that
    /// starts later.
    pub fn request_kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_waker.wake();
        self.kill.notify_waiters();
        self.kill.notify_one();
    }

    /// Ready once the connection is asked to close ([`ClientInfo::request_kill`]). Polled by
    /// the connection's loop every time it waits: a flag and a waker, where a `Notify`
    /// would take its lock at every poll.
    pub fn kill_requested(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.killed.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            self.kill_waker.register(cx.waker());
            if self.killed.load(Ordering::Acquire) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

/// State owned by one connection.
#[derive(Debug)]
pub struct Client {
    /// Unique id.
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Passed AUTH (or none needed).
    pub authenticated: bool,
    /// RESP3 after HELLO 3.
    pub resp3: bool,
    /// Commands queued by MULTI (None outside a transaction).
    pub multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A queued command was refused: EXEC must abort.
    pub multi_error: bool,
    /// True while EXEC runs queued commands (blocking commands do not block then).
    pub in_exec: bool,
    /// The script call being run was taken inline, on the connection's thread (see
    /// `crate::script`): it may be stopped and handed to the script thread.
    pub script_inline: bool,
    /// Raised when a WATCHed key changes.
    pub watch_flag: WatchFlag,
    /// WATCHed keys (db, key).
    pub watched: Vec<(usize, Vec<u8>)>,
    /// What the connection must do after this command.
    pub action: Option<Action>,
    /// Deadline of the blocking command being retried (outer None: not blocked).
    pub block_deadline: Option<Option<Instant>>,
    /// The blocking command's timeout has passed: reply with the timeout value now.
    pub block_timed_out: bool,
    /// Keys the client is blocked on.
    pub blocked_keys: Vec<Vec<u8>>,
    /// Woken when a key it is blocked on changes.
    pub waker: Arc<Notify>,
    /// Subscribed channels.
    pub channels: BTreeSet<Vec<u8>>,
    /// Subscribed patterns.
    pub patterns: BTreeSet<Vec<u8>>,
    /// Sender for pushes (pub/sub messages, MONITOR lines) to this client.
    pub push_tx: PushSender,
    /// The shared view.
    pub info: Arc<ClientInfo>,
    /// True for the link to our master: its writes are allowed on a read-only replica and
    /// are not propagated again (the raw stream is).
    pub is_master: bool,
    /// Replication offset after this client's last propagated write (WAIT).
    pub repl_woff: u64,
    /// `REPLCONF listening-port`.
    pub repl_port: u64,
    /// `REPLCONF capa eof`: the replica takes a diskless (`$EOF:<mark>`) payload.
    pub repl_capa_eof: bool,
}

impl Client {
    /// A new client.
    pub fn new(info: Arc<ClientInfo>, push_tx: mpsc::UnboundedSender<Push>) -> Self {
        Client {
            id: info.id,
            db: 0,
            authenticated: false,
            resp3: false,
            multi: None,
            multi_error: false,
            in_exec: false,
            script_inline: false,
            watch_flag: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            action: None,
            block_deadline: None,
            block_timed_out: false,
            blocked_keys: Vec::new(),
            waker: Arc::new(Notify::new()),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            push_tx: PushSender::new(push_tx, info.clone()),
            info,
            is_master: false,
            repl_woff: 0,
            repl_port: 0,
            repl_capa_eof: false,
        }
    }

    /// Number of subscriptions (channels + patterns).
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// True in RESP2 with at least one subscription: only (un)subscribe, PING, QUIT and RESET
    /// are accepted.
    pub fn in_pubsub_context(&self) -> bool {
        !self.resp3 && self.subscriptions() > 0
    }
}
