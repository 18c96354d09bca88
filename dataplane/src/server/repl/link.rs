//! The replica side: the link to our master (`REPLICAOF host port`).
//!
//! One task per REPLICAOF: connect, handshake (`PING`, `AUTH` with `masterauth`,
//! `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`, `PSYNC <replid> <offset+1>`,
//! or `PSYNC ? -1` the first time), then either load the payload into fresh databases
//! (`+FULLRESYNC`) or keep the data (`+CONTINUE`), and apply the stream. A broken link is
//! retried every second with a partial resync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::cmd::{Ctx, execute};
use crate::rdb::Limits;
use crate::rdb::file;
use crate::resp::reply::Out;
use crate::resp::request::encode_command;
use crate::resp::request::{self, Request, RequestParser};
use crate::server::Shared;
use crate::server::client::{Client, ClientInfo, KIND_MASTER};
use crate::store::{Db, now_ms};

/// What the link task shares with INFO, ROLE and REPLICAOF.
#[derive(Debug, Default)]
pub struct LinkState {
    /// The stream is flowing (`master_link_status:up`).
    pub up: AtomicBool,
    /// A payload is being received or loaded.
    pub syncing: AtomicBool,
    /// Connected, handshake in progress.
    pub connecting: AtomicBool,
    /// Unix ms of the last byte from the master.
    pub last_io_ms: AtomicU64,
    /// Unix ms the link went down (0: never up).
    pub down_since_ms: AtomicU64,
    /// The link broke inside a MULTI block: its queued commands are lost, so the next
    /// sync must be a full one (our offset already counts them).
    need_full: AtomicBool,
    /// The master client's selected db, kept across a partial resync.
    db: std::sync::atomic::AtomicUsize,
    stopped: AtomicBool,
    kill: Notify,
}

impl LinkState {
    /// Ends the link task (REPLICAOF NO ONE or another master).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
        self.kill.notify_one();
    }

    /// ROLE's state word.
    pub fn state_name(&self) -> &'static str {
        if self.up.load(Ordering::Relaxed) {
            "connected"
        } else if self.syncing.load(Ordering::Relaxed) {
            "sync"
        } else if self.connecting.load(Ordering::Relaxed) {
            "handshake"
        } else {
            "connect"
        }
    }
}

type Res<T> = Result<T, String>;

/// Redis's default `repl-timeout` (60 s).
const REPL_TIMEOUT_MS: u64 = 60_000;

/// Runs the link until stopped.
pub async fn run(shared: Arc<Shared>, host: String, port: u16, state: Arc<LinkState>) {
    loop {
        if state.stopped.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = session(&shared, &host, port, &state).await {
            tracing::warn!(master = %format!("{host}:{port}"), error = %e, "replication link lost");
        }
        if state.up.swap(false, Ordering::Relaxed) {
            state.down_since_ms.store(now_ms(), Ordering::Relaxed);
        }
        state.syncing.store(false, Ordering::Relaxed);
        state.connecting.store(false, Ordering::Relaxed);
        if state.stopped.load(Ordering::Relaxed) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = state.kill.notified() => {}
        }
    }
}

async fn read_line(sock: &mut TcpStream, rd: &mut BytesMut) -> Res<String> {
    loop {
        if let Some(i) = rd.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&rd[..i]).trim_end().to_string();
            rd.advance(i + 1);
            if line.is_empty() {
                // A keepalive newline while the master prepares the payload.
                continue;
            }
            return Ok(line);
        }
        if rd.len() > 64 * 1024 {
            return Err("line too long".into());
        }
        fill(sock, rd).await?;
    }
}

async fn fill(sock: &mut TcpStream, rd: &mut BytesMut) -> Res<()> {
    let n = tokio::time::timeout(Duration::from_secs(60), sock.read_buf(rd))
        .await
        .map_err(|_| "timeout reading from master".to_string())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed by master".into());
    }
    Ok(())
}

async fn command(sock: &mut TcpStream, rd: &mut BytesMut, args: &[&[u8]]) -> Res<String> {
    let mut b = Vec::new();
    encode_command(&mut b, args);
    sock.write_all(&b).await.map_err(|e| e.to_string())?;
    read_line(sock, rd).await
}

async fn session(shared: &Arc<Shared>, host: &str, port: u16, state: &LinkState) -> Res<()> {
    let mut sock = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((host, port)))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = sock.set_nodelay(true);
    state.connecting.store(true, Ordering::Relaxed);
    let mut rd = BytesMut::with_capacity(64 * 1024);
    let (auth, myport, replid, offset, backlog) = {
        let s = shared.store.lock();
        (
            s.config.masterauth.clone(),
            shared.port.load(Ordering::Relaxed),
            s.repl.replid.clone(),
            s.repl.offset,
            s.repl.active(),
        )
    };
    let pong = command(&mut sock, &mut rd, &[b"PING"]).await?;
    if pong.starts_with('-') && !pong.starts_with("-NOAUTH") && !pong.starts_with("-NOPERM") {
        return Err(format!("error reply to PING: {pong}"));
    }
    if !auth.is_empty() {
        let r = command(&mut sock, &mut rd, &[b"AUTH", auth.as_bytes()]).await?;
        if r.starts_with('-') {
            return Err(format!("unable to AUTH to MASTER: {r}"));
        }
    }
    let p = myport.to_string();
    let _ = command(
        &mut sock,
        &mut rd,
        &[b"REPLCONF", b"listening-port", p.as_bytes()],
    )
    .await?;
    let _ = command(
        &mut sock,
        &mut rd,
        &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
    )
    .await?;
    // A replica that has a history (a former master, or a broken link) asks to continue it.
    let full = state.need_full.swap(false, Ordering::Relaxed);
    let (id, off) = if (backlog || offset > 0) && !full {
        (replid.clone(), (offset + 1).to_string())
    } else {
        ("?".to_string(), "-1".to_string())
    };
    let reply = command(
        &mut sock,
        &mut rd,
        &[b"PSYNC", id.as_bytes(), off.as_bytes()],
    )
    .await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let new_id = it.next().unwrap_or_default().to_string();
        let new_off: u64 = it.next().and_then(|o| o.parse().ok()).unwrap_or(0);
        state.syncing.store(true, Ordering::Relaxed);
        let payload = read_payload(&mut sock, &mut rd, state).await?;
        load_payload(shared, payload, new_id, new_off).await?;
        state.db.store(0, Ordering::Relaxed);
        tracing::info!(master = %format!("{host}:{port}"), "MASTER <-> REPLICA sync: Finished with success");
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let mut s = shared.store.lock();
        if !new_id.is_empty() && !new_id.eq_ignore_ascii_case(&s.repl.replid) {
            s.repl.replid2 = std::mem::replace(&mut s.repl.replid, new_id.to_string());
            s.repl.second_offset = s.repl.offset as i64 + 1;
        }
        tracing::info!(master = %format!("{host}:{port}"), "partial resynchronization accepted");
    } else {
        return Err(format!("unexpected reply to PSYNC: {reply}"));
    }
    state.syncing.store(false, Ordering::Relaxed);
    stream(shared, sock, rd, host, port, state).await
}

async fn read_payload(sock: &mut TcpStream, rd: &mut BytesMut, state: &LinkState) -> Res<Vec<u8>> {
    let head = read_line(sock, rd).await?;
    state.last_io_ms.store(now_ms(), Ordering::Relaxed);
    let Some(spec) = head.strip_prefix('$') else {
        return Err(format!("bad payload header: {head}"));
    };
    if let Some(mark) = spec.strip_prefix("EOF:") {
        // Diskless: the payload ends with the 40-byte mark.
        let mark = mark.as_bytes().to_vec();
        let mut data: Vec<u8> = Vec::new();
        loop {
            let from = data.len().saturating_sub(mark.len());
            data.extend_from_slice(rd);
            rd.clear();
            if let Some(i) = data[from..]
                .windows(mark.len())
                .position(|w| w == mark.as_slice())
            {
                let end = from + i;
                rd.extend_from_slice(&data[end + mark.len()..]);
                data.truncate(end);
                return Ok(data);
            }
            fill(sock, rd).await?;
        }
    }
    let len: usize = spec
        .parse()
        .map_err(|_| format!("bad payload length: {head}"))?;
    while rd.len() < len {
        fill(sock, rd).await?;
    }
    let data = rd.split_to(len).to_vec();
    Ok(data)
}

async fn load_payload(shared: &Arc<Shared>, payload: Vec<u8>, id: String, off: u64) -> Res<()> {
    let (lim, n) = {
        let s = shared.store.lock();
        (Limits::from_config(&s.config), s.dbs.len())
    };
    let built = tokio::task::spawn_blocking(move || {
        let mut dbs: Vec<Db> = (0..n).map(Db::new).collect();
        let info = file::load(&payload, &lim, n, now_ms(), |k| {
            let db = &mut dbs[k.db];
            db.set(&k.key, k.value);
            if let Some(at) = k.expire_ms {
                db.set_expire(&k.key, at);
            }
        });
        info.map(|i| (dbs, i))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("bad RDB payload from master: {e}"))?;
    let (mut dbs, info) = built;
    {
        let mut s = shared.store.lock();
        for (live, new) in s.dbs.iter_mut().zip(dbs.iter_mut()) {
            live.swap_contents(new);
            live.readonly_expire = true;
        }
        // The master's libraries replace ours, as its keys do.
        s.scripting.flush_functions();
        if let Err(e) = crate::server::persist::load_libraries(&mut s, &info.functions) {
            tracing::warn!(error = %e, "full resync: a function library of the master failed to load");
        }
        s.repl.replid = id;
        s.repl.offset = off;
        s.repl.replid2 = "0".repeat(40);
        s.repl.second_offset = -1;
        s.repl.reset_backlog();
        s.dirty += info.keys_loaded;
        s.persist.last_load_keys_loaded = info.keys_loaded;
        crate::server::aof::restart_after_sync(shared, &mut s);
    }
    // The old keyspace is freed without the lock.
    drop(dbs);
    Ok(())
}

async fn stream(
    shared: &Arc<Shared>,
    mut sock: TcpStream,
    mut rd: BytesMut,
    host: &str,
    port: u16,
    state: &LinkState,
) -> Res<()> {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let laddr = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let info = Arc::new(ClientInfo::new(id, format!("{host}:{port}"), laddr));
    info.kind.store(KIND_MASTER, Ordering::Relaxed);
    shared.clients.lock().insert(id, info.clone());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut client = Client::new(info.clone(), tx);
    client.is_master = true;
    client.authenticated = true;
    client.db = state.db.load(Ordering::Relaxed);
    state.last_io_ms.store(now_ms(), Ordering::Relaxed);
    state.up.store(true, Ordering::Relaxed);
    state.connecting.store(false, Ordering::Relaxed);
    let res = async {
        // The master may wait for this first ACK before it streams (Redis does after a
        // diskless payload).
        send_ack(shared, &mut sock).await?;
        let mut parser = RequestParser::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut shutdown = shared.shutdown.subscribe();
        loop {
            let ack = apply(shared, &mut client, &mut parser, &mut rd)?;
            if ack {
                send_ack(shared, &mut sock).await?;
            }
            tokio::select! {
                n = sock.read_buf(&mut rd) => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed by master".to_string());
                    }
                    state.last_io_ms.store(now_ms(), Ordering::Relaxed);
                    shared.net_input.fetch_add(n as u64, Ordering::Relaxed);
                }
                _ = tick.tick() => {
                    // The master pings every 10 s: silence for `repl-timeout` means a dead
                    // link (a peer that vanished without closing the connection).
                    let last = state.last_io_ms.load(Ordering::Relaxed);
                    if now_ms().saturating_sub(last) > REPL_TIMEOUT_MS {
                        return Err("timeout: no data from master".to_string());
                    }
                    send_ack(shared, &mut sock).await?
                }
                _ = info.kill.notified() => return Err("master link killed (CLIENT KILL)".to_string()),
                _ = state.kill.notified() => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    state.db.store(client.db, Ordering::Relaxed);
    if client.multi.is_some() {
        state.need_full.store(true, Ordering::Relaxed);
    }
    shared.clients.lock().remove(&id);
    res
}

async fn send_ack(shared: &Shared, sock: &mut TcpStream) -> Res<()> {
    let off = shared.store.lock().repl.offset.to_string();
    let mut b = Vec::new();
    encode_command(&mut b, &[b"REPLCONF", b"ACK", off.as_bytes()]);
    sock.write_all(&b).await.map_err(|e| e.to_string())
}

/// Applies every complete command in `rd` under one lock hold; returns true when the
/// master asked for an ACK.
fn apply(
    shared: &Shared,
    client: &mut Client,
    parser: &mut RequestParser,
    rd: &mut BytesMut,
) -> Res<bool> {
    let lim = request::Limits {
        max_bulk_len: usize::MAX / 2,
        authenticated: true,
    };
    let mut pos = 0;
    let mut getack = false;
    let mut out = Out::new();
    let mut guard = None;
    let mut argv: Vec<&[u8]> = Vec::new();
    loop {
        let consumed = match parser.parse(&rd[pos..], &lim) {
            Ok(Request::Multibulk { consumed }) => consumed,
            Ok(Request::Inline { consumed, .. }) | Ok(Request::Empty { consumed }) => {
                pos += consumed;
                continue;
            }
            Err(request::ParseError::Incomplete) => break,
            Err(request::ParseError::Protocol(m)) => {
                return Err(format!("protocol error from master: {m}"));
            }
        };
        argv.clear();
        argv.extend(parser.spans().iter().map(|&(s, e)| &rd[pos + s..pos + e]));
        let store = guard.get_or_insert_with(|| {
            let mut s = shared.store.lock();
            for db in &mut s.dbs {
                db.master_view = true;
            }
            s
        });
        if argv.len() >= 2
            && argv[0].eq_ignore_ascii_case(b"replconf")
            && argv[1].eq_ignore_ascii_case(b"getack")
        {
            getack = true;
        } else {
            out.buf.clear();
            let mut ctx = Ctx {
                store: &mut *store,
                client: &mut *client,
                out: &mut out,
                shared,
                now_ms: now_ms(),
            };
            execute(&mut ctx, &argv);
            client.action = None;
        }
        // Our offset is the master's: the same bytes go into our backlog.
        store.repl.feed(&rd[pos..pos + consumed]);
        pos += consumed;
    }
    if let Some(mut s) = guard {
        for db in &mut s.dbs {
            db.master_view = false;
        }
        crate::server::end_of_batch(&mut s);
    }
    rd.advance(pos);
    Ok(getack)
}
