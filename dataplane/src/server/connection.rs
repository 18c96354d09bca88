//! One client connection: read → parse every complete request → run them under one lock
//! acquisition → one write for the whole batch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Shared;
use super::client::{Action, Client, ClientInfo, Push};
use crate::cmd::{Ctx, execute};
use crate::resp::reply::Out;
use crate::resp::request::{Limits, ParseError, Request, RequestParser};
use crate::store::now_ms;
use crate::util::buffer;

/// Serves one client until it quits, breaks the protocol, is killed or the server stops.
#[tracing::instrument(skip(sock, shared), fields(peer = %peer))]
pub async fn serve(sock: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = sock.set_nodelay(true);
    let laddr = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let info = Arc::new(ClientInfo::new(id, peer.to_string(), laddr));
    {
        // A script may hold the lock for long: a new client is then let in uncounted
        // rather than blocking this connection thread.
        let (maxclients, over) = match lock_store(&shared, &[], false) {
            Some(mut store) => {
                store.stats.connections_received += 1;
                let max = store.config.maxclients;
                let n = shared.client_count();
                if n >= max {
                    store.stats.rejected_connections += 1;
                }
                (max, n >= max)
            }
            None => (usize::MAX, false),
        };
        if over {
            let mut sock = sock;
            let _ = sock
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            tracing::debug!(maxclients, "client refused");
            return;
        }
    }
    shared.clients.lock().insert(id, info.clone());
    // Unregisters the client even if a handler panics (the normal path below also cleans up
    // WATCHed and blocked keys, which need the client's state).
    let mut registered = Registered {
        shared: shared.clone(),
        id,
        cleaned: false,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut client = Client::new(info.clone(), tx);
    let res = client_loop(sock, &shared, &mut client, rx).await;
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection closed");
    }
    cleanup(&shared, &mut client);
    registered.cleaned = true;
}

/// Removes a client from the client list, MONITOR and pub/sub when dropped.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
    /// Set once the normal cleanup ran: then there is nothing left to do.
    cleaned: bool,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.shared.clients.lock().remove(&self.id);
        self.shared.remove_monitor(self.id);
        self.shared.pubsub.lock().remove_client(self.id);
    }
}

fn cleanup(shared: &Shared, client: &mut Client) {
    shared.clients.lock().remove(&client.id);
    if client.info.monitor.load(Ordering::Relaxed) {
        shared.remove_monitor(client.id);
    }
    if client.subscriptions() > 0 {
        let mut ps = shared.pubsub.lock();
        for c in &client.channels {
            ps.unsubscribe(c, client.id);
        }
        for p in &client.patterns {
            ps.punsubscribe(p, client.id);
        }
    }
    if !client.watched.is_empty() || !client.blocked_keys.is_empty() {
        let mut store = shared.store.lock();
        for (db, key) in client.watched.drain(..) {
            if let Some(d) = store.dbs.get_mut(db) {
                d.unwatch(&key, &client.watch_flag);
            }
        }
        let db = client.db;
        for key in client.blocked_keys.drain(..) {
            store.dbs[db].unblock(&key, &client.waker);
        }
    }
}

fn encode_push(out: &mut Out, p: &Push, info: &ClientInfo) {
    info.push_queued.fetch_sub(p.size(), Ordering::Relaxed);
    match p {
        Push::Message { channel, data } => {
            out.push(3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(data);
        }
        Push::PMessage {
            pattern,
            channel,
            data,
        } => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(pattern);
            out.bulk(channel);
            out.bulk(data);
        }
        Push::Monitor(line) => {
            out.simple(line);
        }
    }
}

async fn client_loop(
    mut sock: TcpStream,
    shared: &Shared,
    client: &mut Client,
    mut rx: mpsc::UnboundedReceiver<Push>,
) -> std::io::Result<()> {
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut parser = RequestParser::new();
    // Big values go out by reference (`Out::bulk_shared`), written in place below.
    let mut out = Out::new();
    out.share_big = true;
    let shutdown = shared.shutdown.subscribe();
    // A kill, waited on for the connection's life. The server's shutdown kills every
    // registered connection; one registered after that sees the shutdown flag below.
    let info = client.info.clone();
    let stop = info.kill_requested();
    tokio::pin!(stop);
    loop {
        // Run every complete request already buffered.
        let (consumed, more, aof_wait) = process(shared, client, &mut parser, &rbuf, &mut out);
        rbuf.advance(consumed);
        if let Some(off) = aof_wait {
            // `appendfsync always`: the replies of this batch wait for its fsync.
            shared.aof_sync.wait_synced(off).await;
        }
        // A buffer that grew for one big request does not stay big (Redis shrinks idle query
        // buffers too).
        if rbuf.is_empty() && rbuf.capacity() > 256 * 1024 {
            rbuf = BytesMut::with_capacity(16 * 1024);
        }
        if !out.is_empty() {
            // A client that does not read its replies blocks these writes; CLIENT KILL, the
            // pub/sub queue limit and shutdown must still be able to close it.
            if out.has_shared() {
                tokio::select! {
                    biased;
                    r = write_pieces(&mut sock, &out) => r?,
                    _ = &mut stop => return Ok(()),
                }
            } else {
                // Most replies fit in the socket's buffer at once.
                let written = match sock.try_write(&out.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                if written < out.buf.len() {
                    tokio::select! {
                        biased;
                        r = sock.write_all(&out.buf[written..]) => r?,
                        _ = &mut stop => return Ok(()),
                    }
                }
            }
            shared
                .net_output
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
            if out.buf.capacity() > 1024 * 1024 {
                out.buf = Vec::with_capacity(16 * 1024);
            }
        }
        match client.action.take() {
            Some(Action::Close) => return Ok(()),
            Some(Action::Shutdown) => {
                shared.request_shutdown();
                return Ok(());
            }
            Some(Action::Script(args)) => {
                if !run_script(shared, client, args, &mut out).await {
                    return Ok(());
                }
                continue;
            }
            Some(Action::Replica(a)) => {
                client
                    .info
                    .kind
                    .store(super::client::KIND_REPLICA, Ordering::Relaxed);
                return super::repl::serve_replica(sock, shared, &client.info, *a).await;
            }
            Some(Action::Sleep(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Some(Action::Defer(work)) => {
                let finish = work.await;
                let wait = {
                    let mut store = shared.store.lock();
                    out.resp3 = client.resp3;
                    let now = now_ms();
                    let mut ctx = Ctx {
                        store: &mut store,
                        client,
                        out: &mut out,
                        shared,
                        now_ms: now,
                    };
                    let before = ctx.out.len();
                    if let Err(e) = finish(&mut ctx) {
                        ctx.out.truncate(before);
                        ctx.out.error(&e.text());
                    }
                    super::end_of_batch(&mut store)
                };
                if let Some(off) = wait {
                    shared.aof_sync.wait_synced(off).await;
                }
                continue;
            }
            Some(Action::Block { deadline }) => {
                client
                    .info
                    .unblock_requested
                    .store(false, Ordering::Relaxed);
                client.info.blocked.store(true, Ordering::Relaxed);
                let woke =
                    wait_unblocked(&mut sock, shared, &client.waker, &client.info, deadline).await;
                client.info.blocked.store(false, Ordering::Relaxed);
                {
                    let mut store = shared.store.lock();
                    let db = client.db;
                    for key in client.blocked_keys.drain(..) {
                        store.dbs[db].unblock(&key, &client.waker);
                    }
                }
                match woke {
                    BlockEnd::Woken => {}
                    BlockEnd::TimedOut => client.block_timed_out = true,
                    BlockEnd::Closed => return Ok(()),
                }
                continue; // run the blocked command again
            }
            None => {}
        }
        if more {
            // The batch stopped at the reply size cap with complete requests left: run them
            // now, without waiting for more input.
            continue;
        }
        if client.info.killed.load(Ordering::Relaxed) || *shutdown.borrow() {
            return Ok(());
        }
        // A big argument half read: grow the buffer to 4x what came (up to what completes
        // it), not by doubling: each growth copies what came so far. A declared length alone
        // allocates nothing (`huge_declared_lengths_allocate_nothing`).
        let need = parser.needed();
        if need > rbuf.capacity() {
            let limit = shared.query_buffer_limit.load(Ordering::Relaxed);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if let Some(target) = buffer::big_value_target(need, rbuf.len(), rbuf.capacity(), limit)
            {
                buffer::grow_exact(&mut rbuf, target);
            }
        }
        let idle = shared.idle_timeout.load(Ordering::Relaxed);
        let idle_limit = if idle > 0 && client.subscriptions() == 0 {
            Some(Duration::from_secs(idle))
        } else {
            None
        };
        tokio::select! {
            biased;
            n = sock.read_buf(&mut rbuf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                shared.net_input.fetch_add(n as u64, Ordering::Relaxed);
                let limit = shared.query_buffer_limit.load(Ordering::Relaxed);
                if rbuf.len() as u64 > limit {
                    tracing::warn!(client = client.id, "closing client that reached max query buffer length");
                    return Ok(());
                }
                client.info.qbuf.store(rbuf.len(), Ordering::Relaxed);
            }
            Some(p) = rx.recv() => {
                encode_push(&mut out, &p, &client.info);
                while let Ok(p) = rx.try_recv() {
                    encode_push(&mut out, &p, &client.info);
                    if out.len() > 64 * 1024 {
                        break;
                    }
                }
            }
            _ = &mut stop => return Ok(()),
            _ = sleep_opt(idle_limit) => return Ok(()),
        }
    }
}

/// Writes a reply holding big values by reference: the buffer's pieces and the values, with
/// `writev` (at most 1024 slices a call, Linux's `IOV_MAX`).
async fn write_pieces(sock: &mut TcpStream, out: &Out) -> std::io::Result<()> {
    let mut pieces = out.pieces();
    let mut rest: &mut [std::io::IoSlice<'_>] = &mut pieces;
    std::io::IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = sock.write_vectored(&rest[..rest.len().min(1024)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

enum BlockEnd {
    Woken,
    TimedOut,
    Closed,
}

async fn wait_unblocked(
    sock: &mut TcpStream,
    shared: &Shared,
    waker: &tokio::sync::Notify,
    info: &ClientInfo,
    deadline: Option<std::time::Instant>,
) -> BlockEnd {
    let mut shutdown = shared.shutdown.subscribe();
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    // A blocked client still notices its peer going away, as Redis does. Data arriving while
    // blocked (pipelined requests) waits in the socket until the block ends.
    let closed = async {
        let mut probe = [0u8; 1];
        match sock.peek(&mut probe).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending::<()>().await,
        }
    };
    // CLIENT UNBLOCK ends the block as a timeout; a permit left from an earlier block (the
    // flag is cleared when a block starts) is ignored.
    let unblocked = async {
        loop {
            info.unblock.notified().await;
            if info.unblock_requested.swap(false, Ordering::Relaxed) {
                return;
            }
        }
    };
    tokio::select! {
        _ = waker.notified() => BlockEnd::Woken,
        _ = timeout => BlockEnd::TimedOut,
        _ = unblocked => BlockEnd::TimedOut,
        _ = info.kill.notified() => BlockEnd::Closed,
        _ = shutdown.changed() => BlockEnd::Closed,
        _ = closed => BlockEnd::Closed,
    }
}

/// Takes the store lock for a request, or None when a script has run past
/// `busy-reply-threshold` and the request must be answered without it ([`busy_reply`]).
/// SHUTDOWN NOSAVE from an authenticated client outside MULTI (`may_shutdown`) stops the
/// script and then takes the lock.
fn lock_store<'a>(
    shared: &'a Shared,
    args: &[&[u8]],
    may_shutdown: bool,
) -> Option<parking_lot::MutexGuard<'a, crate::store::Store>> {
    if let Some(g) = shared.store.try_lock() {
        return Some(g);
    }
    loop {
        if shared.script_busy.past_threshold() {
            let is = |i: usize, w: &str| {
                args.get(i)
                    .is_some_and(|a| a.eq_ignore_ascii_case(w.as_bytes()))
            };
            if may_shutdown
                && is(0, "shutdown")
                && args.len() <= 5
                && !args
                    .iter()
                    .skip(1)
                    .any(|a| a.eq_ignore_ascii_case(b"save") || a.eq_ignore_ascii_case(b"abort"))
                && args
                    .iter()
                    .skip(1)
                    .any(|a| a.eq_ignore_ascii_case(b"nosave"))
            {
                shared
                    .script_busy
                    .kill
                    .store(crate::script::kill::SHUTDOWN, Ordering::Relaxed);
                return Some(shared.store.lock());
            }
            return None;
        }
        if let Some(g) = shared.store.try_lock_for(Duration::from_millis(5)) {
            return Some(g);
        }
    }
}

/// The reply to a request arriving while a script runs past the threshold: SCRIPT KILL and
/// FUNCTION KILL act, everything else gets `-BUSY`.
fn busy_reply(shared: &Shared, client: &mut Client, args: &[&[u8]], out: &mut Out) {
    out.resp3 = client.resp3;
    let busy = &shared.script_busy;
    if !client.authenticated && shared.auth_required.load(Ordering::Relaxed) {
        out.error("NOAUTH Authentication required.");
        return;
    }
    let is = |i: usize, w: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    if args.len() == 2 && (is(0, "script") || is(0, "function")) && is(1, "kill") {
        match busy.request_kill(is(0, "script")) {
            Ok(()) => out.ok(),
            Err(e) => out.error(e),
        }
        return;
    }
    if args.len() == 2 && is(0, "function") && is(1, "stats") && !busy.eval.load(Ordering::Relaxed)
    {
        // As Redis: FUNCTION STATS answers during a busy script (the running one only if it
        // is a function).
        let running = busy.running_call.lock().as_ref().map(|r| r.copy());
        let started = busy.started_ms.load(Ordering::Relaxed);
        let ms = now_ms().saturating_sub(started);
        crate::cmd::script::function_stats(
            out,
            running
                .as_ref()
                .map(|(n, c)| (n.as_str(), c.as_slice(), ms)),
            busy.libraries_count.load(Ordering::Relaxed) as usize,
            busy.functions_count.load(Ordering::Relaxed) as usize,
        );
        return;
    }
    if busy.eval.load(Ordering::Relaxed) {
        out.error(crate::script::BUSY_EVAL);
    } else {
        out.error(crate::script::BUSY_FUNCTION);
    }
}

/// Runs a script call on the script thread, with this connection's client state moved there
/// and back; appends its reply to `out`. False when the connection must close.
async fn run_script(
    shared: &Shared,
    client: &mut Client,
    args: Vec<Vec<u8>>,
    out: &mut Out,
) -> bool {
    let Some(arc) = shared.arc() else {
        return false;
    };
    let thread = shared
        .script_thread
        .get_or_init(|| crate::script::ScriptThread::start().ok());
    let Some(thread) = thread else {
        out.error("ERR cannot start the script thread");
        return true;
    };
    let (dtx, _drx) = mpsc::unbounded_channel();
    let info = client.info.clone();
    let owned = std::mem::replace(client, Client::new(info, dtx));
    let (otx, orx) = tokio::sync::oneshot::channel();
    let job = Box::new(move || {
        let mut owned = owned;
        let mut o = Out::new();
        let wait = {
            let mut store = arc.store.lock();
            o.resp3 = owned.resp3;
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let mut ctx = Ctx {
                store: &mut store,
                client: &mut owned,
                out: &mut o,
                shared: &arc,
                now_ms: now_ms(),
            };
            execute(&mut ctx, &argv);
            super::end_of_batch(&mut store)
        };
        let _ = otx.send((owned, o, wait));
    });
    if !thread.run(job) {
        return false;
    }
    match orx.await {
        Ok((c, o, wait)) => {
            *client = c;
            out.buf.extend_from_slice(&o.buf);
            if let Some(off) = wait {
                shared.aof_sync.wait_synced(off).await;
            }
            true
        }
        Err(_) => false,
    }
}

/// Parses and runs every complete request in `buf`, taking the store lock once for the batch.
/// Returns how many bytes were used, whether complete requests are left, and the AOF offset
/// to see fsynced before replying (`appendfsync always`).
fn process(
    shared: &Shared,
    client: &mut Client,
    parser: &mut RequestParser,
    buf: &[u8],
    out: &mut Out,
) -> (usize, bool, Option<u64>) {
    let mut pos = 0;
    let mut more = false;
    let mut guard = None;
    let mut argv: Vec<&[u8]> = Vec::with_capacity(8);
    let mut limits = Limits {
        max_bulk_len: shared.max_bulk_len.load(Ordering::Relaxed) as usize,
        authenticated: client.authenticated || !shared.auth_required.load(Ordering::Relaxed),
    };
    let mut now = 0;
    loop {
        if client.action.is_some() {
            break;
        }
        let req = parser.parse(&buf[pos..], &limits);
        let (consumed, inline) = match req {
            Ok(Request::Multibulk { consumed }) => {
                argv.clear();
                argv.extend(parser.spans().iter().map(|&(s, e)| &buf[pos + s..pos + e]));
                (consumed, None)
            }
            Ok(Request::Inline { consumed, args }) => (consumed, Some(args)),
            Ok(Request::Empty { consumed }) => {
                pos += consumed;
                continue;
            }
            Err(ParseError::Incomplete) => break,
            Err(ParseError::Protocol(msg)) => {
                out.error(&format!("ERR Protocol error: {msg}"));
                client.action = Some(Action::Close);
                pos = buf.len();
                break;
            }
        };
        let inline_v: Vec<&[u8]>;
        let args: &[&[u8]] = match &inline {
            Some(a) => {
                inline_v = a.iter().map(|x| x.as_slice()).collect();
                &inline_v
            }
            None => &argv,
        };
        let script_call =
            !args.is_empty() && client.multi.is_none() && crate::script::is_script_call(args[0]);
        if guard.is_none() {
            let may_shutdown = client.multi.is_none() && limits.authenticated;
            match lock_store(shared, args, may_shutdown) {
                Some(g) => {
                    now = now_ms();
                    guard = Some(g);
                }
                None => {
                    busy_reply(shared, client, args, out);
                    pos += consumed;
                    continue;
                }
            }
        }
        let Some(store) = guard.as_mut() else {
            break;
        };
        if script_call {
            // A script known to be short runs here; any other goes to the script thread
            // (see `crate::script`).
            if !store.scripting.runs_inline(args) {
                client.action = Some(Action::Script(args.iter().map(|a| a.to_vec()).collect()));
                pos += consumed;
                break;
            }
            client.script_inline = true;
        }
        out.resp3 = client.resp3;
        let mut ctx = Ctx {
            store: &mut *store,
            client,
            out,
            shared,
            now_ms: now,
        };
        if script_call {
            ctx.store.scripting.last_run_long = false;
        }
        execute(&mut ctx, args);
        client.script_inline = false;
        out.resp3 = client.resp3;
        let mut script_ran_long = false;
        if script_call {
            // What comes after it in the batch sees the time the script took, and a script
            // that took long (as `run_call` timed it) ends the lock hold: the rest of the
            // batch runs next round.
            now = now_ms();
            script_ran_long = store.scripting.last_run_long;
        }
        // A pipelined AUTH (or SLOTSRESTORE-ASYNC-AUTH) lifts the unauthenticated parse limits
        // for the requests behind it in the same buffer.
        limits.authenticated |= client.authenticated;
        if matches!(client.action, Some(Action::Block { .. })) {
            // Leave the request in the buffer: it runs again when the client is woken.
            break;
        }
        pos += consumed;
        // Bound the reply batch so one huge pipeline does not hold the lock for long.
        if out.len() > 4 * 1024 * 1024 || script_ran_long {
            more = true;
            break;
        }
    }
    let mut aof_wait = None;
    if let Some(store) = guard.as_mut() {
        // Still under the lock: the batch's commands reach the file before its replies leave.
        aof_wait = super::end_of_batch(store);
        client.info.db.store(client.db, Ordering::Relaxed);
        client.info.last_active.store(now, Ordering::Relaxed);
    }
    (pos, more, aof_wait)
}
