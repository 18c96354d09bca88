//! Requests that need a backend connection of the session's own (Codis refused them):
//! blocking pops (BLPOP, BRPOP, BLMOVE, BZPOPMIN, ...) whose keys lie in one slot, and
//! subscriber mode (SUBSCRIBE / PSUBSCRIBE through the master of slot 0, where PUBLISH goes).
//!
//! A blocking pop holds the session (later requests wait, as they would on Redis) while the
//! proxy keeps reading the client to notice if it goes away. In subscriber mode the proxy
//! relays between the client and its connection; after every UNSUBSCRIBE it sends a marker
//! PING so it learns exactly when the backend leaves subscriber mode. The marker is random per
//! subscription, so a client's own PING can never pass for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use codis_model::slot::slot_of;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::backend::{Reply, handshake};
use super::command::{self, BlockingKeys, CommandInfo, Handling};
use super::merge::array_items;
use super::session::{Direct, Entry, Meta, Session};
use crate::resp::scan::{ReplyScanner, ScanError};

/// Prefix of the argument of the PING sent after an UNSUBSCRIBE; a random token follows.
const MARKER_PREFIX: &str = "codis-proxy-unsubscribe-marker-";

/// A marker no client can guess (it never reaches the client).
fn new_marker() -> Vec<u8> {
    format!("{MARKER_PREFIX}{:032x}", rand::random::<u128>()).into_bytes()
}

/// Reads one complete reply from a direct connection (cancel-safe: bytes read stay in `buf`).
async fn read_reply(d: &mut Direct) -> Result<Bytes, String> {
    loop {
        match ReplyScanner::new().scan(&d.buf) {
            Ok(len) => return Ok(d.buf.split_to(len).freeze()),
            Err(ScanError::Invalid(why)) => return Err(format!("bad reply from server: {why}")),
            Err(ScanError::Incomplete) => {}
        }
        if d.buf.capacity() - d.buf.len() < 4096 {
            d.buf.reserve(16 * 1024);
        }
        match d.stream.read_buf(&mut d.buf).await {
            Ok(0) => return Err("connection closed by server".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Session {
    /// The session's own connection to `addr` on its database (reused when it matches).
    async fn direct_conn(&mut self, addr: &Arc<str>) -> Result<Direct, String> {
        if let Some(d) = self.direct.take()
            && d.addr == *addr
            && d.db == self.db
            && d.buf.is_empty()
        {
            return Ok(d);
        }
        let stream = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            TcpStream::connect(&**addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("dial {addr}: {e}")),
            Err(_) => return Err(format!("dial {addr}: timeout")),
        };
        let _ = stream.set_nodelay(true);
        let auth = self.worker.pool.config().auth.clone();
        let stream = handshake(stream, addr, self.db, &auth).await?;
        Ok(Direct {
            addr: addr.clone(),
            db: self.db,
            stream,
            buf: BytesMut::with_capacity(4096),
            client_id: None,
        })
    }

    /// The session's own connection to the master `backend` of a slot; the error is the reply
    /// for the client (slot offline, or the backend unreachable).
    async fn open_direct(&mut self, backend: Option<Arc<str>>) -> Result<Direct, Reply> {
        let Some(addr) = backend else {
            return Err(Reply::response_error("slot is not ready, may be offline"));
        };
        self.direct_conn(&addr)
            .await
            .map_err(|e| Reply::response_error(&format!("backend conn failure, {e}")))
    }

    /// A blocking pop: all keys in one slot, sent on the session's own connection once every
    /// earlier request of the session is answered. If the slot's owner changes while the call
    /// waits (the slot migrates or moves), the call is ended on the old owner (`CLIENT UNBLOCK
    /// <id> TIMEOUT`, so an element it already popped is never lost) and, unless it got one,
    /// sent again to the new owner with the time left.
    pub(super) async fn blocking(&mut self, raw: Bytes, info: &CommandInfo, meta: Meta) {
        let Handling::Blocking(k) = info.handling else {
            return;
        };
        let keys = self.blocking_keys(&raw, k);
        if keys.is_empty() {
            // Malformed: the backend answers at once with Redis's error, without blocking.
            let p = self.route_request(&raw, b"", false).await;
            self.shared.push(Entry::Wait(p, meta));
            return;
        }
        let slot = slot_of(&keys[0]);
        if keys.iter().any(|k| slot_of(k) != slot) {
            let msg = format!(
                "keys of '{}' must all lie in one slot (use a {{hash tag}})",
                info.name
            );
            self.reply_now(Reply::request_error(&msg), meta);
            return;
        }
        // Earlier requests first: a pipelined `DEL q` + `BLPOP q 1` must not run reversed.
        while !self.shared.queue.borrow().is_empty() && !self.shared.closed.get() {
            self.shared.room.notified().await;
        }
        let args: Vec<Bytes> = (0..self.argc()).map(|i| self.arg_bytes(&raw, i)).collect();
        let timeout_at = if k == BlockingKeys::NumKeysAt2 {
            1
        } else {
            args.len() - 1
        };
        // The client's deadline (`None`: wait for ever, or a timeout the backend will refuse).
        let deadline = std::str::from_utf8(&args[timeout_at])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e12)
            .map(|t| Instant::now() + Duration::from_secs_f64(t));
        let mut request = raw;
        loop {
            let mut changes = self.worker.proxy.router.subscribe();
            changes.borrow_and_update();
            let route = match self.stable_route(slot, &keys).await {
                Ok(r) => r,
                Err(e) => {
                    self.reply_now(e, meta);
                    return;
                }
            };
            let backend = route.backend.clone();
            // A blocked call must not hold the slot: a fill (a migration step) would wait for it.
            drop(route);
            let mut d = match self.open_direct(backend).await {
                Ok(d) => d,
                Err(r) => {
                    self.reply_now(r, meta);
                    return;
                }
            };
            if d.client_id.is_none() {
                d.client_id = Some(client_id(&mut d).await);
            }
            if let Err(e) = d.stream.write_all(&request).await {
                self.reply_now(
                    Reply::response_error(&format!("backend conn reset, {e}")),
                    meta,
                );
                return;
            }
            let mut moved = false;
            let mut check = true;
            let mut watching = true;
            // When to send (again) `CLIENT UNBLOCK`: `:0` means the call is not blocked yet
            // (or already answered), so it is retried until the call ends.
            let mut unblock_at: Option<Instant> = None;
            let reply = loop {
                if check && !moved && !self.still_owner(slot, &d.addr) {
                    moved = true;
                    unblock_at = Some(Instant::now());
                }
                check = false;
                if let Some(at) = unblock_at
                    && Instant::now() >= at
                {
                    let Some(id) = d.client_id.flatten() else {
                        // No CLIENT ID: closing the connection ends the call.
                        break None;
                    };
                    unblock_at = match self.unblock(&d.addr, id).await {
                        None => break None,
                        Some(true) => None,
                        Some(false) => Some(Instant::now() + Duration::from_millis(50)),
                    };
                }
                let retry = async {
                    match unblock_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = read_reply(&mut d) => break Some(r),
                    alive = self.client_alive() => {
                        if !alive {
                            // Dropping the connection unblocks the server side.
                            self.set_quit();
                            return;
                        }
                    }
                    r = changes.changed(), if !moved && watching => match r {
                        Ok(()) => check = true,
                        Err(_) => watching = false,
                    },
                    _ = retry => {}
                }
            };
            match reply {
                Some(Ok(bytes)) if !(moved && is_null(&bytes)) => {
                    self.shared
                        .push(Entry::Ready(Reply::data(bytes), Some(meta)));
                    self.direct = Some(d);
                    return;
                }
                Some(Err(e)) => {
                    self.reply_now(
                        Reply::response_error(&format!("backend conn reset, {e}")),
                        meta,
                    );
                    return;
                }
                // Ended because the slot moved: again, on the new owner, with the time left.
                Some(Ok(bytes)) => {
                    self.direct = Some(d);
                    if !self.retimed(&mut request, &args, timeout_at, deadline) {
                        self.shared
                            .push(Entry::Ready(Reply::data(bytes), Some(meta)));
                        return;
                    }
                }
                None => {
                    drop(d);
                    if !self.retimed(&mut request, &args, timeout_at, deadline) {
                        // What Redis answers a blocking call that timed out (the proxy speaks
                        // RESP2 only).
                        self.reply_raw(Bytes::from_static(b"*-1\r\n"), meta);
                        return;
                    }
                }
            }
        }
    }

    /// True while `addr` is where `slot`'s keys are written: its owner, or the target of its
    /// migration (a migration away from `addr` makes this false).
    fn still_owner(&self, slot: usize, addr: &Arc<str>) -> bool {
        self.worker.routes.borrow_mut().peek(slot).backend.as_ref() == Some(addr)
    }

    /// `CLIENT UNBLOCK id TIMEOUT` on `addr`: whether the call was blocked there (`None`: the
    /// backend refused or failed).
    async fn unblock(&self, addr: &Arc<str>, id: i64) -> Option<bool> {
        let mut req = BytesMut::new();
        let id = id.to_string();
        super::backend::encode_command(
            &mut req,
            &[b"CLIENT", b"UNBLOCK", id.as_bytes(), b"TIMEOUT"],
        );
        let conn = self.worker.pool.primary(addr, self.db);
        let r = self.call(&conn, &req).await;
        match &r.bytes[..] {
            _ if r.failed => None,
            b":1\r\n" => Some(true),
            b":0\r\n" => Some(false),
            _ => None,
        }
    }

    /// Rewrites `request` with the time left before `deadline` as its timeout; false when no
    /// time is left.
    fn retimed(
        &self,
        request: &mut Bytes,
        args: &[Bytes],
        timeout_at: usize,
        deadline: Option<Instant>,
    ) -> bool {
        let Some(deadline) = deadline else {
            // Wait for ever (timeout 0): the same request.
            return true;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return false;
        }
        let t = format!("{:.3}", left.as_secs_f64());
        let mut parts: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        parts[timeout_at] = t.as_bytes();
        let mut out = BytesMut::new();
        super::backend::encode_command(&mut out, &parts);
        *request = out.freeze();
        true
    }

    /// `UNSUBSCRIBE` / `PUNSUBSCRIBE` outside subscriber mode: Redis's replies, locally.
    pub(super) fn unsubscribe_idle(&mut self, raw: &Bytes, meta: Meta) {
        let kind = self.arg(raw, 0).to_ascii_lowercase();
        let mut out = BytesMut::new();
        let mut one = |ch: Option<&[u8]>| {
            out.extend_from_slice(b"*3\r\n");
            out.extend_from_slice(format!("${}\r\n", kind.len()).as_bytes());
            out.extend_from_slice(&kind);
            out.extend_from_slice(b"\r\n");
            match ch {
                Some(c) => {
                    out.extend_from_slice(format!("${}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(b"$-1\r\n"),
            }
            out.extend_from_slice(b":0\r\n");
        };
        if self.argc() == 1 {
            one(None);
        } else {
            for i in 1..self.argc() {
                one(Some(self.arg(raw, i)));
            }
        }
        self.reply_raw(out.freeze(), meta);
    }

    /// Subscriber mode: relays between the client and a connection of its own to the pub/sub
    /// server until the client has no subscription left (or leaves).
    pub(super) async fn subscribe(&mut self, raw: Bytes, meta: Meta) {
        if self.argc() < 2 {
            // As Redis: an error, and the session stays in normal mode.
            let name = self.arg(&raw, 0).to_ascii_lowercase();
            let msg = format!(
                "-ERR wrong number of arguments for '{}' command\r\n",
                String::from_utf8_lossy(&name)
            );
            self.reply_raw(msg, meta);
            return;
        }
        // Replies to earlier requests go first.
        while !self.shared.queue.borrow().is_empty() && !self.shared.closed.get() {
            self.shared.room.notified().await;
        }
        let backend = self.worker.routes.borrow_mut().peek(0).backend.clone();
        let mut d = match self.open_direct(backend).await {
            Ok(d) => d,
            Err(r) => {
                self.reply_now(r, meta);
                return;
            }
        };
        self.worker
            .stats
            .borrow_mut()
            .record(&meta.op, 0, false, false);
        if d.stream.write_all(&raw).await.is_err() {
            self.reply_now(Reply::response_error("backend conn reset"), meta);
            self.set_quit();
            return;
        }
        // Markers sent and not yet answered; client requests wait while there is one (the
        // client is still watched, to notice it leaving).
        let marker = new_marker();
        let mut markers = 0usize;
        // A RESET waits for its marker: then the session leaves subscriber mode.
        let mut resetting = false;
        // The pub/sub server is the master of slot 0, where PUBLISH goes: when the slot table
        // moves it, the subscriptions move to the new one.
        let mut changes = self.worker.proxy.router.subscribe();
        changes.borrow_and_update();
        let mut watching = true;
        let mut server_changed = false;
        let mut subs = Subscriptions::default();
        loop {
            if markers == 0 && server_changed {
                server_changed = false;
                let now = self.worker.routes.borrow_mut().peek(0).backend.clone();
                if let Some(addr) = now
                    && addr != d.addr
                {
                    match self.resubscribe(&addr, &subs).await {
                        // The old connection closes, ending its subscriptions.
                        Ok(Some(nd)) => d = nd,
                        Ok(None) => {
                            self.set_quit();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(backend = %addr, error = %e, "cannot move subscriptions");
                        }
                    }
                }
            }
            if markers == 0 {
                // Forward what the client already sent.
                loop {
                    let req = match self.parse_next() {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(msg) => {
                            self.shared
                                .push(Entry::Ready(Reply::protocol_error(&msg), None));
                            self.set_quit();
                            return;
                        }
                    };
                    // Only what Redis allows a RESP2 subscriber reaches the connection.
                    let info = self.resolve(&req);
                    if let Some(c) = info {
                        self.worker.stats.borrow_mut().record(
                            &super::stats::OpId::Known(c.index),
                            0,
                            false,
                            false,
                        );
                    }
                    let mut out = BytesMut::from(&req[..]);
                    match info.map(|c| (c, c.handling)) {
                        Some((_, Handling::Subscribe | Handling::Ping)) => {}
                        Some((_, Handling::Unsubscribe)) => {
                            super::backend::encode_command(&mut out, &[b"PING", &marker]);
                            markers += 1;
                        }
                        Some((_, Handling::Quit)) => {
                            self.shared.push(Entry::Ready(
                                Reply::data(Bytes::from_static(b"+OK\r\n")),
                                None,
                            ));
                            self.set_quit();
                            return;
                        }
                        Some((_, Handling::Reset)) if self.argc() == 1 => {
                            // Answered once the replies to earlier requests are relayed.
                            out.clear();
                            super::backend::encode_command(&mut out, &[b"PING", &marker]);
                            markers += 1;
                            resetting = true;
                        }
                        other => {
                            let reply = match other {
                                None => super::session::unknown_command(self.arg(&req, 0)),
                                Some((c, Handling::Refuse)) => super::session::not_allowed(c),
                                Some((c, Handling::Reset)) => Reply::data(Bytes::from(format!(
                                    "-ERR wrong number of arguments for '{}' command\r\n",
                                    command::redis_name(c, None)
                                ))),
                                Some((c, _)) => {
                                    let sub = (self.argc() > 1).then(|| self.arg(&req, 1));
                                    Reply::data(Bytes::from(format!(
                                        "-ERR Can't execute '{}': only (P|S)SUBSCRIBE / \
                                         (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed \
                                         in this context\r\n",
                                        command::redis_name(c, sub)
                                    )))
                                }
                            };
                            self.shared.push(Entry::Ready(reply, None));
                            continue;
                        }
                    }
                    if d.stream.write_all(&out).await.is_err() {
                        self.shared.push(Entry::Ready(
                            Reply::response_error("backend conn reset"),
                            None,
                        ));
                        self.set_quit();
                        return;
                    }
                    if markers > 0 {
                        break;
                    }
                }
            }
            tokio::select! {
                r = read_reply(&mut d) => match r {
                    Ok(bytes) => {
                        if markers > 0
                            && let Some(still_subscribed) = marker_reply(&bytes, &marker)
                        {
                            markers -= 1;
                            if resetting {
                                // Dropping the connection ends its subscriptions.
                                self.reset_state();
                                self.shared.push(Entry::Ready(
                                    Reply::data(Bytes::from_static(b"+RESET\r\n")),
                                    None,
                                ));
                                return;
                            }
                            if !still_subscribed {
                                // Back to normal: requests after this go through the router.
                                return;
                            }
                            continue;
                        }
                        subs.track(&bytes);
                        if !self.push_message(bytes) {
                            self.set_quit();
                            return;
                        }
                    }
                    Err(e) => {
                        let r = Reply::response_error(&format!("backend conn reset, {e}"));
                        self.shared.push(Entry::Ready(r, None));
                        self.set_quit();
                        return;
                    }
                },
                alive = self.client_alive() => {
                    if !alive {
                        self.set_quit();
                        return;
                    }
                }
                r = changes.changed(), if watching => match r {
                    Ok(()) => server_changed = true,
                    Err(_) => watching = false,
                },
            }
        }
    }

    /// A connection to the new pub/sub server `addr` holding `subs`; messages that arrive
    /// while it subscribes are relayed. `Ok(None)`: the client was dropped (output limit).
    async fn resubscribe(
        &mut self,
        addr: &Arc<str>,
        subs: &Subscriptions,
    ) -> Result<Option<Direct>, String> {
        let mut d = self.direct_conn(addr).await?;
        let mut req = BytesMut::new();
        for (cmd, set) in [
            (&b"SUBSCRIBE"[..], &subs.channels),
            (b"PSUBSCRIBE", &subs.patterns),
        ] {
            if !set.is_empty() {
                let mut args: Vec<&[u8]> = vec![cmd];
                args.extend(set.iter().map(|c| &c[..]));
                super::backend::encode_command(&mut req, &args);
            }
        }
        d.stream.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut expected = subs.channels.len() + subs.patterns.len();
        while expected > 0 {
            let bytes = read_reply(&mut d).await?;
            if Subscriptions::is_confirmation(&bytes) {
                expected -= 1;
            } else if !self.push_message(bytes) {
                return Ok(None);
            }
        }
        Ok(Some(d))
    }
}

/// The channels and patterns a subscriber holds, learnt from the server's confirmations.
#[derive(Debug, Default)]
struct Subscriptions {
    channels: std::collections::BTreeSet<Bytes>,
    patterns: std::collections::BTreeSet<Bytes>,
}

impl Subscriptions {
    /// `[kind, name, count]` of a (un)subscribe confirmation.
    fn parse(b: &Bytes) -> Option<(Bytes, Bytes)> {
        let items = array_items(b)?;
        if items.len() != 3 || items[2].first() != Some(&b':') {
            return None;
        }
        Some((bulk_text(&items[0])?, bulk_text(&items[1])?))
    }

    fn is_confirmation(b: &Bytes) -> bool {
        matches!(Self::parse(b), Some((k, _)) if k.eq_ignore_ascii_case(b"subscribe") || k.eq_ignore_ascii_case(b"psubscribe"))
    }

    fn track(&mut self, b: &Bytes) {
        let Some((kind, name)) = Self::parse(b) else {
            return;
        };
        match kind.to_ascii_lowercase().as_slice() {
            b"subscribe" => {
                self.channels.insert(name);
            }
            b"psubscribe" => {
                self.patterns.insert(name);
            }
            b"unsubscribe" => {
                self.channels.remove(&name);
            }
            b"punsubscribe" => {
                self.patterns.remove(&name);
            }
            _ => {}
        }
    }
}

/// The content of a RESP bulk string item (`$n\r\n...\r\n`).
fn bulk_text(item: &Bytes) -> Option<Bytes> {
    let rest = item.strip_prefix(b"$")?;
    let cr = memchr::memchr(b'\r', rest)?;
    let n: usize = std::str::from_utf8(&rest[..cr]).ok()?.parse().ok()?;
    let start = 1 + cr + 2;
    (item.len() >= start + n).then(|| item.slice(start..start + n))
}

/// The backend id of a direct connection (`CLIENT ID`), if it has one.
async fn client_id(d: &mut Direct) -> Option<i64> {
    d.stream
        .write_all(b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n")
        .await
        .ok()?;
    let r = read_reply(d).await.ok()?;
    let s = r.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    crate::util::number::parse_i64(s)
}

/// A null reply (RESP2 null array or bulk, RESP3 null): what a blocking call answers when it
/// times out.
fn is_null(b: &[u8]) -> bool {
    b == b"*-1\r\n" || b == b"$-1\r\n" || b == b"_\r\n"
}

/// For the reply to a marker PING: `Some(true)` while still subscribed (`[pong, marker]`),
/// `Some(false)` once out of subscriber mode (the bulk marker); `None` for other replies.
fn marker_reply(b: &Bytes, marker: &[u8]) -> Option<bool> {
    let bulk = format!(
        "${}\r\n{}\r\n",
        marker.len(),
        String::from_utf8_lossy(marker)
    );
    if b[..] == *bulk.as_bytes() {
        return Some(false);
    }
    let items = array_items(b)?;
    if items.len() == 2
        && items[0].eq_ignore_ascii_case(b"$4\r\npong\r\n")
        && items[1][..] == *bulk.as_bytes()
    {
        return Some(true);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_recognised() {
        let marker = new_marker();
        assert_ne!(marker, new_marker());
        let text = String::from_utf8_lossy(&marker).to_string();
        let bulk = Bytes::from(format!("${}\r\n{text}\r\n", marker.len()));
        assert_eq!(marker_reply(&bulk, &marker), Some(false));
        let arr = Bytes::from(format!(
            "*2\r\n$4\r\npong\r\n${}\r\n{text}\r\n",
            marker.len()
        ));
        assert_eq!(marker_reply(&arr, &marker), Some(true));
        assert_eq!(
            marker_reply(
                &Bytes::from_static(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
                &marker
            ),
            None
        );
        // Another session's marker, or a prefix of this one, is a client's PING.
        assert_eq!(marker_reply(&bulk, &new_marker()), None);
        let short = Bytes::from(format!("${}\r\n{MARKER_PREFIX}\r\n", MARKER_PREFIX.len()));
        assert_eq!(marker_reply(&short, &marker), None);
    }
}
