//! One client connection to the proxy.
//!
//! A session is two halves sharing a reply queue:
//! - the reader parses requests, answers what the proxy answers itself, and sends the rest to
//!   backends (see [`super::forward`]), pushing one queue entry per request in request order;
//! - the writer waits for the entry at the head of the queue to be complete, writes it, and
//!   moves on, so replies always leave in request order however backends answer.
//!
//! The reader never waits for a reply, except where ordering demands it (a request on a
//! migrating slot, a blocking pop, entering subscriber mode), exactly like Codis.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use super::backend::{Pending, Reply};
use super::command::{self, CommandInfo, Handling};
use super::core::Worker;
use super::io::{ClientStream, Socket, read_some, write_all, write_all_pieces};
use super::merge::Merge;
use super::stats::OpId;
use crate::resp::request::{Limits, ParseError, Request, RequestParser, encode_command_spans};
use crate::util::buffer;

/// Input read ahead while the session waits for a blocking call: beyond this the proxy stops
/// reading the client until the call is answered (back-pressure, as for a full pipeline).
pub const MAX_INPUT_WHILE_WAITING: usize = 1024 * 1024;

/// What a queue entry needs to be counted when written.
#[derive(Debug)]
pub struct Meta {
    /// The command.
    pub op: OpId,
    /// When the request was read.
    pub start: Instant,
}

/// One reply to write, in request order.
#[derive(Debug)]
pub enum Entry {
    /// Known already.
    Ready(Reply, Option<Meta>),
    /// Waiting for a backend.
    Wait(Rc<Pending>, Meta),
    /// Waiting for several backends; merged when all answered.
    Merge(Box<Merge>, Meta),
    /// A reply or message in subscriber mode, counted in [`SessionShared::pushed`] until
    /// written.
    Push(Bytes),
    /// Close the connection once everything before is written.
    Close,
}

impl Entry {
    fn is_ready(&self) -> bool {
        match self {
            Entry::Ready(..) | Entry::Push(_) | Entry::Close => true,
            Entry::Wait(p, _) => p.is_ready(),
            Entry::Merge(m, _) => m.is_ready(),
        }
    }
}

/// State shared by a session's reader and writer.
#[derive(Debug)]
pub struct SessionShared {
    /// Replies in request order.
    pub queue: RefCell<VecDeque<Entry>>,
    /// Wakes the writer (a reply completed, or an entry was pushed).
    pub wake: Rc<Notify>,
    /// Wakes the reader when the writer made room in the queue.
    pub room: Notify,
    /// Set when either half stops.
    pub closed: Cell<bool>,
    /// Wakes the reader when the writer stopped.
    pub kill: Notify,
    /// Bytes of [`Entry::Push`] queued or being written (the subscriber's output buffer).
    pub pushed: Cell<usize>,
    /// Set (with `abort` notified) to drop the client at once, unwritten replies included.
    pub aborted: Cell<bool>,
    /// Wakes the writer to stop, even in the middle of a write.
    pub abort: Notify,
}

impl SessionShared {
    /// Appends an entry and wakes the writer.
    pub fn push(&self, e: Entry) {
        self.queue.borrow_mut().push_back(e);
        self.wake.notify_one();
    }

    /// Drops the client now: the writer stops (mid-write too) and nothing more is written.
    pub fn abort(&self) {
        self.aborted.set(true);
        self.closed.set(true);
        self.abort.notify_one();
        self.wake.notify_one();
        self.kill.notify_one();
    }
}

/// Decrements `sessions.alive` when the session ends.
struct AliveGuard(Rc<Worker>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0
            .proxy
            .stats
            .sessions_alive
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Serves one client until it quits, fails or the proxy closes.
pub async fn serve(sock: ClientStream, worker: Rc<Worker>) {
    use std::sync::atomic::Ordering;
    let proxy = worker.proxy.clone();
    let alive = proxy.stats.sessions_alive.fetch_add(1, Ordering::SeqCst) + 1;
    proxy.stats.sessions_total.fetch_add(1, Ordering::Relaxed);
    let _guard = AliveGuard(worker.clone());
    if alive as usize > proxy.cfg.max_clients {
        let _ = write_all(&sock, b"-ERR max number of clients reached\r\n").await;
        worker.stats.borrow_mut().session_failure();
        return;
    }
    if !proxy.is_online() {
        let _ = write_all(&sock, b"-ERR router is not online\r\n").await;
        worker.stats.borrow_mut().session_failure();
        return;
    }
    let sock = Rc::new(sock);
    let shared = Rc::new(SessionShared {
        queue: RefCell::new(VecDeque::new()),
        wake: Rc::new(Notify::new()),
        room: Notify::new(),
        closed: Cell::new(false),
        kill: Notify::new(),
        pushed: Cell::new(0),
        aborted: Cell::new(false),
        abort: Notify::new(),
    });
    let mut session = Session {
        id: proxy.session_id(),
        worker: worker.clone(),
        shared: shared.clone(),
        sock: sock.clone(),
        closing: proxy.closing(),
        idle: Box::pin(tokio::time::sleep(proxy.cfg.session_recv_timeout)),
        last_read: Instant::now(),
        inbuf: BytesMut::new(),
        parser: RequestParser::new(),
        spans: Vec::new(),
        db: 0,
        authorized: proxy.cfg.session_auth.is_empty(),
        quit: false,
        now: Instant::now(),
        seed: Cell::new(0),
        tx: None,
        direct: None,
    };
    let reader = async {
        session.read_loop().await;
        shared.push(Entry::Close);
    };
    let writer = write_loop(sock.clone(), shared.clone(), worker.clone());
    tokio::join!(reader, writer);
    tracing::trace!("session closed");
}

/// Replies of at least this many bytes are not copied into the session's output buffer: they
/// go out as they came from the backend, between the buffer's pieces (`writev`).
const BIG_REPLY: usize = 64 * 1024;

async fn write_loop(sock: Rc<ClientStream>, shared: Rc<SessionShared>, worker: Rc<Worker>) {
    let cfg = &worker.proxy.cfg;
    let mut out = BytesMut::new();
    // When a big reply is queued: the output in order, `out` holding what follows the last.
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut pieces_len = 0;
    loop {
        if shared.aborted.get() {
            break;
        }
        let mut close = false;
        let mut now = None;
        // Bytes of subscriber pushes in `out`, uncounted once written.
        let mut pushed = 0;
        loop {
            let entry = {
                let mut q = shared.queue.borrow_mut();
                match q.front() {
                    Some(e) if e.is_ready() => q.pop_front(),
                    _ => None,
                }
            };
            let Some(entry) = entry else { break };
            let (reply, meta) = match entry {
                Entry::Close => {
                    close = true;
                    break;
                }
                Entry::Ready(r, m) => (r, m),
                Entry::Push(b) => {
                    pushed += b.len();
                    (Reply::data(b), None)
                }
                Entry::Wait(p, m) => (
                    p.take().unwrap_or_else(|| Reply::response_error("lost")),
                    Some(m),
                ),
                Entry::Merge(m, meta) => (m.merge(), Some(meta)),
            };
            if let Some(meta) = meta {
                let now = *now.get_or_insert_with(Instant::now);
                let usecs = now.saturating_duration_since(meta.start).as_micros() as u64;
                let redis_error = reply.bytes.first() == Some(&b'-');
                worker
                    .stats
                    .borrow_mut()
                    .record(&meta.op, usecs, reply.failed, redis_error);
            }
            if reply.bytes.len() >= BIG_REPLY {
                if !out.is_empty() {
                    pieces_len += out.len();
                    pieces.push(out.split().freeze());
                }
                pieces_len += reply.bytes.len();
                pieces.push(reply.bytes);
            } else {
                out.extend_from_slice(&reply.bytes);
            }
            if reply.failed && cfg.session_break_on_failure {
                close = true;
                break;
            }
            if out.len() + pieces_len >= 256 * 1024 {
                break;
            }
        }
        shared.room.notify_one();
        if !out.is_empty() || !pieces.is_empty() {
            if !pieces.is_empty() && !out.is_empty() {
                pieces.push(out.split().freeze());
            }
            let write = async {
                let write = async {
                    if pieces.is_empty() {
                        write_all(&*sock, &out).await
                    } else {
                        write_all_pieces(&*sock, &pieces).await
                    }
                };
                if cfg.session_send_timeout.is_zero() {
                    write.await.map_err(|e| e.to_string())
                } else {
                    match tokio::time::timeout(cfg.session_send_timeout, write).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err("send timeout".to_string()),
                    }
                }
            };
            let res = tokio::select! {
                r = write => r,
                _ = shared.abort.notified() => Err("dropped by the proxy".to_string()),
            };
            shared
                .pushed
                .set(shared.pushed.get().saturating_sub(pushed));
            out.clear();
            if out.capacity() > 1024 * 1024 {
                out = BytesMut::new();
            }
            pieces.clear();
            pieces_len = 0;
            if let Err(e) = res {
                tracing::debug!(error = %e, "client write failed");
                break;
            }
            if !close {
                continue;
            }
        }
        if close {
            sock.shutdown_write();
            break;
        }
        shared.wake.notified().await;
    }
    shared.closed.set(true);
    shared.kill.notify_one();
    shared.room.notify_one();
    shared.queue.borrow_mut().clear();
}

/// An open transaction (after MULTI).
#[derive(Debug, Default)]
pub struct Tx {
    /// The queued requests, as RESP.
    pub block: BytesMut,
    /// How many.
    pub count: u32,
    /// The slot every key lies in (`None`: no key yet).
    pub slot: Option<usize>,
    /// Keys, for the sync-migration pre-step.
    pub keys: Vec<Bytes>,
    /// A queued command was refused: EXEC aborts.
    pub aborted: bool,
}

/// A session's own connection to one backend, for blocking pops and subscriptions.
#[derive(Debug)]
pub struct Direct {
    /// Backend address.
    pub addr: std::sync::Arc<str>,
    /// Database selected.
    pub db: u32,
    /// The connection.
    pub stream: TcpStream,
    /// Bytes read and not yet delimited.
    pub buf: BytesMut,
    /// The connection's `CLIENT ID` on the backend (asked before its first blocking call;
    /// `None` until then, or when the backend has no `CLIENT ID`).
    pub client_id: Option<Option<i64>>,
}

/// The reader half and the per-client state.
#[derive(Debug)]
pub struct Session {
    /// Session id (HELLO).
    pub id: u64,
    /// The worker thread's shared state.
    pub worker: Rc<Worker>,
    /// The queue shared with the writer.
    pub shared: Rc<SessionShared>,
    sock: Rc<ClientStream>,
    closing: watch::Receiver<bool>,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    last_read: Instant,
    inbuf: BytesMut,
    parser: RequestParser,
    spans: Vec<(usize, usize)>,
    /// Selected database.
    pub db: u32,
    /// True once AUTH succeeded (or when no session_auth is set).
    pub authorized: bool,
    quit: bool,
    /// When the current batch of requests was read.
    pub now: Instant,
    /// Varies replica choice between requests.
    pub seed: Cell<usize>,
    /// The open transaction.
    pub tx: Option<Tx>,
    /// The session's own backend connection (blocking pops).
    pub direct: Option<Direct>,
}

/// Outcome of reading from the client.
enum ReadOutcome {
    Data,
    Closed,
}

impl Session {
    async fn read_loop(&mut self) {
        loop {
            loop {
                if self.shared.closed.get() {
                    return;
                }
                match self.parse_next() {
                    Ok(Some(raw)) => self.handle(raw).await,
                    Ok(None) => break,
                    Err(msg) => {
                        self.worker.stats.borrow_mut().session_failure();
                        self.shared
                            .push(Entry::Ready(Reply::protocol_error(&msg), None));
                        return;
                    }
                }
                if self.quit {
                    return;
                }
                let max = self.worker.proxy.cfg.session_max_pipeline.max(1);
                while self.shared.queue.borrow().len() >= max && !self.shared.closed.get() {
                    self.shared.room.notified().await;
                }
            }
            match self.read_more().await {
                ReadOutcome::Data => self.now = self.last_read,
                ReadOutcome::Closed => return,
            }
        }
    }

    /// Reads from the client into `inbuf`, honouring the idle timeout and proxy shutdown.
    async fn read_more(&mut self) -> ReadOutcome {
        if self.inbuf.is_empty() && self.inbuf.capacity() > 1024 * 1024 {
            // Give back the memory of a big request.
            self.inbuf = BytesMut::new();
        }
        // A big argument half read: grow the buffer to 4x what came (up to what completes
        // it), not by doubling: each growth copies what came so far. A declared length alone
        // allocates nothing.
        if let Some(target) = buffer::big_value_target(
            self.parser.needed(),
            self.inbuf.len(),
            self.inbuf.capacity(),
            usize::MAX,
        ) {
            buffer::grow_exact(&mut self.inbuf, target);
        }
        let timeout = self.worker.proxy.cfg.session_recv_timeout;
        loop {
            if self.shared.closed.get() {
                return ReadOutcome::Closed;
            }
            if *self.closing.borrow_and_update() {
                // The proxy is closing: serve what the client already sent, then stop.
                if self.inbuf.capacity() - self.inbuf.len() < 4096 {
                    self.inbuf.reserve(16 * 1024);
                }
                return match self.sock.try_read_buf(&mut self.inbuf) {
                    Ok(n) if n > 0 => ReadOutcome::Data,
                    _ => ReadOutcome::Closed,
                };
            }
            // The idle timer is only re-armed when it fires, not on every read.
            let res = tokio::select! {
                r = read_some(&*self.sock, &mut self.inbuf) => r,
                _ = self.closing.changed() => continue,
                _ = self.shared.kill.notified() => return ReadOutcome::Closed,
                _ = &mut self.idle, if !timeout.is_zero() => {
                    let idle_until = self.last_read + timeout;
                    if Instant::now() >= idle_until {
                        return ReadOutcome::Closed;
                    }
                    self.idle.as_mut().reset(idle_until.into());
                    continue;
                }
            };
            return match res {
                Ok(n) if n > 0 => {
                    self.last_read = Instant::now();
                    ReadOutcome::Data
                }
                _ => ReadOutcome::Closed,
            };
        }
    }

    /// Argument `i` of the current request.
    pub fn arg<'a>(&self, raw: &'a Bytes, i: usize) -> &'a [u8] {
        let (a, b) = self.spans[i];
        &raw[a..b]
    }

    /// Argument `i` as shared bytes.
    pub fn arg_bytes(&self, raw: &Bytes, i: usize) -> Bytes {
        let (a, b) = self.spans[i];
        raw.slice(a..b)
    }

    /// Where the arguments of the current request lie in its bytes.
    pub fn spans(&self) -> &[(usize, usize)] {
        &self.spans
    }

    /// Number of arguments of the current request.
    pub fn argc(&self) -> usize {
        self.spans.len()
    }

    /// Queues a reply known now.
    pub fn reply_now(&self, reply: Reply, meta: Meta) {
        self.shared.push(Entry::Ready(reply, Some(meta)));
    }

    /// Queues a plain RESP reply known now.
    pub fn reply_raw(&self, bytes: impl Into<Bytes>, meta: Meta) {
        self.reply_now(Reply::data(bytes.into()), meta);
    }

    /// The table entry for the current request (`None`: unknown, refused).
    pub fn resolve(&self, raw: &Bytes) -> Option<&'static CommandInfo> {
        let sub = (self.argc() > 1).then(|| self.arg(raw, 1));
        command::resolve(self.arg(raw, 0), sub)
    }

    async fn handle(&mut self, raw: Bytes) {
        let info = self.resolve(&raw);
        let op = match info {
            Some(c) => OpId::Known(c.index),
            // One counter for every unknown name: names chosen by clients must not grow the
            // stats without bound.
            None => OpId::Unknown("UNKNOWN".into()),
        };
        let meta = Meta {
            op,
            start: self.now,
        };
        let Some(info) = info else {
            // As Redis: an unknown command inside MULTI makes EXEC fail.
            if let Some(tx) = self.tx.as_mut() {
                tx.aborted = true;
            }
            self.refuse_unknown(&raw, meta);
            return;
        };
        if self.tx.is_some()
            && !matches!(
                info.handling,
                Handling::Exec
                    | Handling::Discard
                    | Handling::Multi
                    | Handling::Quit
                    | Handling::Reset
            )
        {
            self.queue_in_tx(raw, info, meta);
            return;
        }
        match info.handling {
            Handling::Refuse => self.refuse(info, meta),
            Handling::Quit => {
                self.reply_raw(&b"+OK\r\n"[..], meta);
                self.quit = true;
            }
            Handling::Reset => self.reset(meta),
            Handling::Auth => self.auth(&raw, meta),
            _ if !self.authorized => {
                self.reply_raw(&b"-NOAUTH Authentication required\r\n"[..], meta);
            }
            _ => self.dispatch(raw, info, meta).await,
        }
    }

    /// Replies `command '<OP>' is not allowed`.
    pub fn refuse(&self, info: &CommandInfo, meta: Meta) {
        self.reply_now(not_allowed(info), meta);
    }

    /// Refuses a command the table does not know (never sent to a backend).
    pub fn refuse_unknown(&self, raw: &Bytes, meta: Meta) {
        self.reply_now(unknown_command(self.arg(raw, 0)), meta);
    }

    /// Queues a reply or message of subscriber mode. Returns false, having dropped the client
    /// instead, when the pushes not yet written would reach `session_max_pubsub_output`
    /// (Redis's pubsub output buffer hard limit).
    pub fn push_message(&self, bytes: Bytes) -> bool {
        use std::sync::atomic::Ordering;
        let stats = &self.worker.proxy.stats;
        let limit = self.worker.proxy.cfg.max_pubsub_output;
        let total = self.shared.pushed.get() + bytes.len();
        if limit > 0 && total >= limit {
            tracing::warn!(
                session = self.id,
                queued = total,
                limit,
                "subscriber disconnected: pubsub output limit reached"
            );
            stats.pubsub_output_kills.fetch_add(1, Ordering::Relaxed);
            self.shared.abort();
            return false;
        }
        self.shared.pushed.set(total);
        stats
            .pubsub_output_peak
            .fetch_max(total as u64, Ordering::Relaxed);
        self.shared.push(Entry::Push(bytes));
        true
    }

    /// Reads the client while waiting for something else; returns false once the client is
    /// gone (the data read stays in `inbuf` for later).
    pub async fn client_alive(&mut self) -> bool {
        if self.inbuf.len() >= MAX_INPUT_WHILE_WAITING {
            // Enough read ahead: stop reading until the wait ends (or the proxy closes).
            tokio::select! {
                _ = self.closing.changed() => {}
                _ = self.shared.kill.notified() => {}
            }
            return false;
        }
        matches!(self.read_more().await, ReadOutcome::Data)
    }

    /// The next complete request in the input (its arguments become the current ones), or
    /// `None` when more bytes are needed; `Err` is a protocol error.
    pub fn parse_next(&mut self) -> Result<Option<Bytes>, String> {
        // Before AUTH (when session_auth is set), Redis's small limits for unauthenticated
        // clients: at most 10 arguments of at most 16 KiB.
        let limits = Limits {
            authenticated: self.authorized,
            ..Limits::default()
        };
        next_request(&mut self.parser, &mut self.inbuf, &limits, &mut self.spans)
    }

    /// Marks the session as quitting after the current request.
    pub fn set_quit(&mut self) {
        self.quit = true;
    }
}

/// The reply to a refused command: `-ERR handle request, command '<OP>' is not allowed`.
pub fn not_allowed(info: &CommandInfo) -> Reply {
    Reply::request_error(&format!("command '{}' is not allowed", info.name))
}

/// The reply to a command missing from the proxy's table: `-ERR handle request, unknown
/// command '<name>': codis-proxy does not support it` (the name as sent, at most 128 bytes,
/// non-printable bytes escaped).
pub fn unknown_command(name: &[u8]) -> Reply {
    let shown = name[..name.len().min(128)].escape_ascii().to_string();
    Reply::request_error(&format!(
        "unknown command '{shown}': codis-proxy does not support it"
    ))
}

/// Takes the next complete request out of a client's input: its bytes (RESP as received, or an
/// inline request re-encoded as RESP), with `spans` set to where its arguments lie in them;
/// `None` when more bytes are needed; `Err` is a protocol error. This is all the proxy does
/// with a client's bytes before routing (the fuzz target `proxy_request` runs it).
pub fn next_request(
    parser: &mut RequestParser,
    inbuf: &mut BytesMut,
    limits: &Limits,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Option<Bytes>, String> {
    loop {
        match parser.parse(inbuf, limits) {
            Ok(Request::Multibulk { consumed }) => {
                spans.clear();
                spans.extend_from_slice(parser.spans());
                return Ok(Some(inbuf.split_to(consumed).freeze()));
            }
            Ok(Request::Inline { consumed, args }) => {
                inbuf.advance(consumed);
                let mut raw = BytesMut::new();
                let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                encode_command_spans(&mut raw, &refs, spans);
                return Ok(Some(raw.freeze()));
            }
            Ok(Request::Empty { consumed }) => inbuf.advance(consumed),
            Err(ParseError::Incomplete) => return Ok(None),
            Err(ParseError::Protocol(msg)) => return Err(msg),
        }
    }
}
