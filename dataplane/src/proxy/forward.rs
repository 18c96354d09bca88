//! Sending requests to backends: routing by slot, replica reads, the two migration methods,
//! and splitting multi-key commands.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use codis_model::slot::{has_tag, hash_tag, slot_of};
use tokio::sync::Notify;

use super::backend::{BackendConn, Hold, Pending, Reply, encode_command, handshake};
use super::command::{BroadcastKind, CommandInfo, Handling, KeySpec, SplitKind};
use super::merge::{Merge, MergeKind, Part, int_reply};
use super::router::{Method, RouteGuard, SlotRoute};
use super::session::{Entry, Meta, Session};

/// Gives up on a key that stays in an in-flight migration batch this long.
const MIGRATION_RETRY_LIMIT: Duration = Duration::from_secs(30);

impl Session {
    /// Handles every command that is neither refused nor `QUIT`/`AUTH`.
    pub(super) async fn dispatch(&mut self, raw: Bytes, info: &'static CommandInfo, meta: Meta) {
        match info.handling {
            Handling::Forward(specs) => self.forward_keys(raw, info, specs, meta).await,
            Handling::PubSub => {
                // Every publish and subscription goes through the master of slot 0.
                let p = self.route_request(&raw, b"", false).await;
                self.shared.push(Entry::Wait(p, meta));
            }
            Handling::Split(kind) => self.split(raw, kind, info, meta).await,
            Handling::Broadcast(kind) => self.broadcast(raw, kind, meta).await,
            Handling::SameSlot => self.same_slot(raw, info, meta).await,
            Handling::Multi => self.multi(meta),
            Handling::Exec => self.exec(meta).await,
            Handling::Discard => self.discard(meta),
            Handling::Blocking(_) => self.blocking(raw, info, meta).await,
            Handling::Subscribe => self.subscribe(raw, meta).await,
            Handling::Unsubscribe => self.unsubscribe_idle(&raw, meta),
            Handling::Ping => self.ping(raw, meta).await,
            Handling::Echo => self.echo(&raw, meta),
            Handling::Select => self.select(&raw, meta),
            Handling::Hello => self.hello(&raw, meta),
            Handling::Info => self.info(raw, meta).await,
            Handling::SlotsInfo => self.slots_info(&raw, meta).await,
            Handling::SlotsScan => self.slots_scan(raw, meta).await,
            Handling::SlotsMapping => self.slots_mapping(&raw, meta),
            Handling::SlotsHashKey => self.slots_hash_key(&raw, meta),
            Handling::Refuse
            | Handling::Quit
            | Handling::Auth
            | Handling::Reset
            | Handling::Subcommand => self.refuse(info, meta),
        }
    }

    /// Waits until the slot table changes after `epoch`.
    pub(super) async fn wait_for_fill(&self, epoch: u64) {
        let mut rx = self.worker.proxy.router.subscribe();
        if *rx.borrow_and_update() != epoch {
            return;
        }
        let _ = rx.changed().await;
    }

    /// Sends the current request (complete RESP in `raw`, its arguments the session's spans)
    /// to the backend that owns `key`, following a migration if the slot is moving; the
    /// returned reply completes when it is answered.
    pub(super) async fn route_request(
        &mut self,
        raw: &[u8],
        key: &[u8],
        read_only: bool,
    ) -> Rc<Pending> {
        let slot = slot_of(key);
        loop {
            let epoch = self.worker.proxy.router.epoch();
            let route = self.worker.routes.borrow_mut().acquire(slot);
            if route.locked {
                drop(route);
                self.wait_for_fill(epoch).await;
                continue;
            }
            let pending = Pending::new(self.shared.wake.clone());
            let Some(backend) = route.backend.clone() else {
                drop(route);
                pending.complete(Reply::response_error("slot is not ready, may be offline"));
                return pending;
            };
            if let Some(from) = route.migrate_from.clone()
                && !key.is_empty()
            {
                // The arguments as the parser delimited them: what the backend would run.
                let args: Vec<&[u8]> = self.spans().iter().map(|&(a, b)| &raw[a..b]).collect();
                return self
                    .forward_migrating(raw, &args, key, route, backend, from)
                    .await;
            }
            let conn = self.connection(&route, &backend, read_only);
            conn.reserve(self.worker.pool.config().max_pipeline).await;
            conn.send(raw, pending.clone(), Hold::One(route));
            return pending;
        }
    }

    /// The connection for a request on `route`: a healthy replica for reads when the slot has
    /// replica groups (best group first), else the master.
    fn connection(&self, route: &SlotRoute, master: &Arc<str>, read_only: bool) -> Rc<BackendConn> {
        if read_only && !route.replica_groups.is_empty() && route.migrate_from.is_none() {
            let seed = self.seed.get().wrapping_add(1);
            self.seed.set(seed);
            for group in &route.replica_groups {
                let n = group.len();
                for i in 0..n {
                    if let Some(c) = self.worker.pool.replica(&group[(seed + i) % n], self.db) {
                        return c;
                    }
                }
            }
        }
        self.worker.pool.primary(master, self.db)
    }

    /// Sends `request` to `conn` and waits for its reply (a step the session must finish
    /// before the next request, such as a migration pre-step).
    pub(super) async fn call(&self, conn: &BackendConn, request: &[u8]) -> Reply {
        let p = Pending::new(Rc::new(Notify::new()));
        conn.send(request, p.clone(), Hold::None);
        p.wait().await
    }

    /// Sync method: asks the source to migrate the key's tag group now (`SLOTSMGRTTAGONE`).
    async fn migrate_key_now(
        &self,
        from: &Arc<str>,
        target: &str,
        key: &[u8],
    ) -> Result<(), Reply> {
        let (host, port) = target.rsplit_once(':').unwrap_or((target, "0"));
        let mut req = BytesMut::new();
        encode_command(
            &mut req,
            &[
                b"SLOTSMGRTTAGONE",
                host.as_bytes(),
                port.as_bytes(),
                b"3000",
                key,
            ],
        );
        let src = self.worker.pool.primary(from, self.db);
        let reply = self.call(&src, &req).await;
        if reply.failed {
            return Err(reply);
        }
        if int_reply(&reply.bytes).is_none() {
            let text = String::from_utf8_lossy(&reply.bytes);
            return Err(Reply::response_error(&format!(
                "bad slotsmgrt resp: {}",
                text.trim_end()
            )));
        }
        Ok(())
    }

    /// Forwards one request on a migrating slot: `raw` is the request, `args` its arguments
    /// (`route` is held until the request is answered).
    async fn forward_migrating(
        &mut self,
        raw: &[u8],
        args: &[&[u8]],
        key: &[u8],
        route: RouteGuard,
        target: Arc<str>,
        from: Arc<str>,
    ) -> Rc<Pending> {
        let pending = Pending::new(self.shared.wake.clone());
        match route.method {
            Method::Sync => {
                if let Err(e) = self.migrate_key_now(&from, &target, key).await {
                    drop(route);
                    pending.complete(e);
                    return pending;
                }
                let conn = self.worker.pool.primary(&target, self.db);
                conn.send(raw, pending.clone(), Hold::One(route));
                pending
            }
            Method::SemiAsync => {
                let mut wrapped = BytesMut::new();
                wrap_request(&mut wrapped, key, args);
                let src = self.worker.pool.primary(&from, self.db);
                let started = std::time::Instant::now();
                let mut attempt: u64 = 0;
                loop {
                    let reply = self.call(&src, &wrapped).await;
                    if reply.failed {
                        drop(route);
                        pending.complete(reply);
                        return pending;
                    }
                    match wrapper_reply(&reply.bytes) {
                        Some((0, _)) => {
                            let conn = self.worker.pool.primary(&target, self.db);
                            conn.send(raw, pending.clone(), Hold::One(route));
                            return pending;
                        }
                        Some((2, inner)) => {
                            drop(route);
                            pending.complete(Reply::data(inner));
                            return pending;
                        }
                        Some((1, _)) => {
                            if self.shared.closed.get() {
                                drop(route);
                                pending.complete(Reply::response_error("request is broken"));
                                return pending;
                            }
                            if started.elapsed() > MIGRATION_RETRY_LIMIT {
                                drop(route);
                                pending.complete(Reply::response_error(
                                    "key stayed in a migration batch too long",
                                ));
                                return pending;
                            }
                            attempt += 1;
                            if attempt >= 5 {
                                tokio::time::sleep(Duration::from_millis(attempt.min(20))).await;
                            }
                        }
                        Some((_, inner)) if inner.first() == Some(&b'-') => {
                            drop(route);
                            pending.complete(Reply::data(inner));
                            return pending;
                        }
                        _ => {
                            drop(route);
                            let text = String::from_utf8_lossy(&reply.bytes).trim_end().to_string();
                            pending.complete(Reply::response_error(&format!(
                                "bad exec-wrapper resp: {text}"
                            )));
                            return pending;
                        }
                    }
                }
            }
        }
    }

    /// [`Self::stable_route`] plus the slot's master; the error is the reply for the client
    /// (the slot offline included).
    pub(super) async fn stable_backend(
        &mut self,
        slot: usize,
        keys: &[Bytes],
    ) -> Result<(RouteGuard, Arc<str>), Reply> {
        let route = self.stable_route(slot, keys).await?;
        match route.backend.clone() {
            Some(backend) => Ok((route, backend)),
            None => Err(Reply::response_error("slot is not ready, may be offline")),
        }
    }

    /// A route for a request that cannot be wrapped (transactions, blocking pops): waits out a
    /// locked slot; on a migrating slot moves the keys first (sync) or waits until the
    /// migration of the slot ends (semi-async). The route is returned held.
    pub(super) async fn stable_route(
        &mut self,
        slot: usize,
        keys: &[Bytes],
    ) -> Result<RouteGuard, Reply> {
        let started = std::time::Instant::now();
        loop {
            let epoch = self.worker.proxy.router.epoch();
            let route = self.worker.routes.borrow_mut().acquire(slot);
            if route.backend.is_none() {
                drop(route);
                return Err(Reply::response_error("slot is not ready, may be offline"));
            }
            let migrating = route.migrate_from.clone();
            match migrating {
                _ if route.locked => {}
                None => return Ok(route),
                Some(from) if route.method == Method::Sync => {
                    let target = route.backend.clone().unwrap_or_else(|| Arc::from(""));
                    for k in keys {
                        if let Err(e) = self.migrate_key_now(&from, &target, k).await {
                            drop(route);
                            return Err(e);
                        }
                    }
                    return Ok(route);
                }
                Some(_) => {}
            }
            drop(route);
            if started.elapsed() > MIGRATION_RETRY_LIMIT {
                return Err(Reply::response_error("slot is migrating, try again later"));
            }
            tokio::select! {
                _ = self.wait_for_fill(epoch) => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// A command forwarded as it came, to the owner of the slot of all its keys (found by its
    /// key specs). Keys of one tag group (one key, or keys sharing a `{tag}`) follow a
    /// migration as one key does; keys of several groups in the slot go through
    /// [`Self::stable_route`], since the migration steps move or check one tag group.
    async fn forward_keys(
        &mut self,
        raw: Bytes,
        info: &CommandInfo,
        specs: &[KeySpec],
        meta: Meta,
    ) {
        if let [KeySpec::Range { index, last: 0, .. }] = specs {
            // One key (most commands): no key list to build.
            let i = *index as usize;
            let key = if i < self.argc() {
                self.arg_bytes(&raw, i)
            } else {
                Bytes::new()
            };
            if let Some(r) = self.check_forward(&raw, info, &[]) {
                self.reply_now(r, meta);
                return;
            }
            let p = self.route_request(&raw, &key, info.is_read_only()).await;
            self.shared.push(Entry::Wait(p, meta));
            return;
        }
        let keys = self.command_keys(&raw, specs);
        if let Some(r) = self.check_forward(&raw, info, &keys) {
            self.reply_now(r, meta);
            return;
        }
        let one_group = keys.iter().all(|k| {
            k == &keys[0] || (has_tag(k) && has_tag(&keys[0]) && hash_tag(k) == hash_tag(&keys[0]))
        });
        if one_group {
            let key = keys.first().cloned().unwrap_or_default();
            let p = self.route_request(&raw, &key, info.is_read_only()).await;
            self.shared.push(Entry::Wait(p, meta));
            return;
        }
        let (route, backend) = match self.stable_backend(slot_of(&keys[0]), &keys).await {
            Ok(r) => r,
            Err(e) => {
                self.reply_now(e, meta);
                return;
            }
        };
        let conn = self.connection(&route, &backend, info.is_read_only());
        conn.reserve(self.worker.pool.config().max_pipeline).await;
        let p = Pending::new(self.shared.wake.clone());
        conn.send(&raw, p.clone(), Hold::One(route));
        self.shared.push(Entry::Wait(p, meta));
    }

    /// MGET, MSET, DEL, UNLINK, EXISTS, TOUCH: one sub-request per backend connection (keys of
    /// one backend stay together), merged in key order.
    async fn split(&mut self, raw: Bytes, kind: SplitKind, info: &CommandInfo, meta: Meta) {
        let argc = self.argc();
        let step = if kind == SplitKind::Mset { 2 } else { 1 };
        if argc < 2 || !(argc - 1).is_multiple_of(step) || argc - 1 == step {
            // Wrong arity (the backend replies Redis's error) or a single key: as is.
            let key = if argc > 1 {
                self.arg_bytes(&raw, 1)
            } else {
                Bytes::new()
            };
            let p = self.route_request(&raw, &key, info.is_read_only()).await;
            self.shared.push(Entry::Wait(p, meta));
            return;
        }
        let nkeys = (argc - 1) / step;
        struct Group {
            conn: Rc<BackendConn>,
            positions: Vec<u32>,
            routes: Vec<RouteGuard>,
        }
        'retry: loop {
            let epoch = self.worker.proxy.router.epoch();
            let mut groups: Vec<Group> = Vec::new();
            // Dropping them (retry or error) releases the routes taken so far.
            let mut moving: Vec<(u32, RouteGuard)> = Vec::new();
            for i in 0..nkeys {
                let key = self.arg(&raw, 1 + i * step);
                let route = self.worker.routes.borrow_mut().acquire(slot_of(key));
                if route.locked {
                    drop(route);
                    self.wait_for_fill(epoch).await;
                    continue 'retry;
                }
                let Some(backend) = route.backend.clone() else {
                    drop(route);
                    let r = Reply::response_error("slot is not ready, may be offline");
                    self.reply_now(r, meta);
                    return;
                };
                if route.migrate_from.is_some() {
                    moving.push((i as u32, route));
                    continue;
                }
                let conn = self.connection(&route, &backend, info.is_read_only());
                match groups.iter_mut().find(|g| Rc::ptr_eq(&g.conn, &conn)) {
                    Some(g) => {
                        g.positions.push(i as u32);
                        g.routes.push(route);
                    }
                    None => groups.push(Group {
                        conn,
                        positions: vec![i as u32],
                        routes: vec![route],
                    }),
                }
            }
            if moving.is_empty() && groups.len() == 1 {
                // Every key on one connection: the request goes as it came.
                let g = groups.pop().expect("one group");
                let p = Pending::new(self.shared.wake.clone());
                g.conn.reserve(self.worker.pool.config().max_pipeline).await;
                g.conn.send(&raw, p.clone(), Hold::Many(g.routes));
                self.shared.push(Entry::Wait(p, meta));
                return;
            }
            let name = self.arg(&raw, 0);
            let mut parts = Vec::with_capacity(groups.len() + moving.len());
            for g in groups {
                let mut args: Vec<&[u8]> = Vec::with_capacity(1 + g.positions.len() * step);
                args.push(name);
                for &i in &g.positions {
                    let first = 1 + i as usize * step;
                    for j in 0..step {
                        args.push(self.arg(&raw, first + j));
                    }
                }
                let mut sub = BytesMut::new();
                encode_command(&mut sub, &args);
                let p = Pending::new(self.shared.wake.clone());
                g.conn.reserve(self.worker.pool.config().max_pipeline).await;
                g.conn.send(&sub, p.clone(), Hold::Many(g.routes));
                parts.push(Part {
                    pending: p,
                    positions: g.positions,
                });
            }
            for (i, route) in moving {
                let first = 1 + i as usize * step;
                let key = self.arg_bytes(&raw, first);
                let mut args: Vec<&[u8]> = vec![name];
                for j in 0..step {
                    args.push(self.arg(&raw, first + j));
                }
                let mut sub = BytesMut::new();
                encode_command(&mut sub, &args);
                let target = route.backend.clone().unwrap_or_else(|| Arc::from(""));
                let from = route.migrate_from.clone().unwrap_or_else(|| Arc::from(""));
                let p = self
                    .forward_migrating(&sub, &args, &key, route, target, from)
                    .await;
                parts.push(Part {
                    pending: p,
                    positions: vec![i],
                });
            }
            let merge = Merge {
                kind: MergeKind::Split(kind),
                nkeys,
                parts,
                failed: None,
            };
            self.shared.push(Entry::Merge(Box::new(merge), meta));
            return;
        }
    }

    /// A SCRIPT / FUNCTION subcommand sent as it came to every group's master (the owners of
    /// slots and the sources of migrating ones), the replies combined by `kind`
    /// ([`super::merge::merge_broadcast`]). A group that owns no slot yet is not reached.
    async fn broadcast(&mut self, raw: Bytes, kind: BroadcastKind, meta: Meta) {
        let masters = self.worker.proxy.router.masters();
        if masters.is_empty() {
            let r = Reply::response_error("slot is not ready, may be offline");
            self.reply_now(r, meta);
            return;
        }
        let mut parts = Vec::with_capacity(masters.len());
        for addr in masters {
            let p = Pending::new(self.shared.wake.clone());
            if kind == BroadcastKind::OneSucceeded {
                // SCRIPT KILL / FUNCTION KILL: the shared connection to the busy server may be
                // the one waiting for the script's reply, so the kill goes on a new one.
                let auth = self.worker.pool.config().auth.clone();
                tokio::task::spawn_local(one_shot(addr, auth, raw.clone(), p.clone()));
            } else {
                let conn = self.worker.pool.primary(&addr, self.db);
                conn.reserve(self.worker.pool.config().max_pipeline).await;
                conn.send(&raw, p.clone(), Hold::None);
            }
            parts.push(Part {
                pending: p,
                positions: Vec::new(),
            });
        }
        let merge = Merge {
            kind: MergeKind::Broadcast(kind),
            nkeys: 0,
            parts,
            failed: None,
        };
        self.shared.push(Entry::Merge(Box::new(merge), meta));
    }

    /// MSETNX: atomic only within one server, so every key must lie in one slot.
    async fn same_slot(&mut self, raw: Bytes, info: &CommandInfo, meta: Meta) {
        let argc = self.argc();
        let first = if argc > 1 {
            slot_of(self.arg(&raw, 1))
        } else {
            0
        };
        let same = (1..argc)
            .step_by(2)
            .all(|i| slot_of(self.arg(&raw, i)) == first);
        if !same {
            let msg = format!(
                "keys of '{}' must all lie in one slot (use a {{hash tag}})",
                info.name
            );
            self.reply_now(Reply::request_error(&msg), meta);
            return;
        }
        let key = if argc > 1 {
            self.arg_bytes(&raw, 1)
        } else {
            Bytes::new()
        };
        let p = self.route_request(&raw, &key, false).await;
        self.shared.push(Entry::Wait(p, meta));
    }
}

/// Sends `request` to `addr` on a connection of its own (database 0), completing `pending`
/// with the reply (or the proxy's error after 5 s).
async fn one_shot(addr: Arc<str>, auth: String, request: Bytes, pending: Rc<Pending>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let stream = tokio::net::TcpStream::connect(&*addr)
            .await
            .map_err(|e| format!("dial {addr}: {e}"))?;
        let mut stream = handshake(stream, &addr, 0, &auth).await?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(256);
        loop {
            match crate::resp::scan::ReplyScanner::new().scan(&buf) {
                Ok(len) => return Ok(buf.split_to(len).freeze()),
                Err(crate::resp::scan::ScanError::Incomplete) => {}
                Err(crate::resp::scan::ScanError::Invalid(why)) => {
                    return Err(format!("bad reply from {addr}: {why}"));
                }
            }
            if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err(format!("{addr} closed the connection"));
            }
        }
    };
    let reply = match tokio::time::timeout(Duration::from_secs(5), io).await {
        Ok(Ok(bytes)) => Reply::data(bytes),
        Ok(Err(e)) => Reply::response_error(&e),
        Err(_) => Reply::response_error(&format!("{addr}: timeout")),
    };
    pending.complete(reply);
}

/// Appends `SLOTSMGRT-EXEC-WRAPPER key args...`: the request `args` (as the parser delimited
/// them) run by the source of a migrating slot if `key` is still there.
pub fn wrap_request(out: &mut BytesMut, key: &[u8], args: &[&[u8]]) {
    let mut all: Vec<&[u8]> = Vec::with_capacity(args.len() + 2);
    all.push(b"SLOTSMGRT-EXEC-WRAPPER");
    all.push(key);
    all.extend_from_slice(args);
    encode_command(out, &all);
}

/// Splits an `SLOTSMGRT-EXEC-WRAPPER` reply `[code, value]` into the code and the raw value.
pub fn wrapper_reply(b: &Bytes) -> Option<(i64, Bytes)> {
    let rest = b.strip_prefix(b"*2\r\n:")?;
    let cr = memchr::memchr(b'\r', rest)?;
    // Found by fuzzing: a CR at the very end made the value's start lie past the end.
    if rest.get(cr + 1) != Some(&b'\n') {
        return None;
    }
    let code = crate::util::number::parse_i64(&rest[..cr])?;
    let start = b.len() - rest.len() + cr + 2;
    Some((code, b.slice(start..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_reply_parts() {
        let b = Bytes::from_static(b"*2\r\n:2\r\n$3\r\nabc\r\n");
        assert_eq!(
            wrapper_reply(&b),
            Some((2, Bytes::from_static(b"$3\r\nabc\r\n")))
        );
        let b = Bytes::from_static(b"*2\r\n:-1\r\n-ERR x\r\n");
        assert_eq!(
            wrapper_reply(&b),
            Some((-1, Bytes::from_static(b"-ERR x\r\n")))
        );
        assert_eq!(wrapper_reply(&Bytes::from_static(b"-ERR\r\n")), None);
        assert_eq!(wrapper_reply(&Bytes::from_static(b"*2\r\n:2\r")), None);
    }

    #[test]
    fn wrapped_request() {
        let mut out = BytesMut::new();
        wrap_request(&mut out, b"k", &[b"SET", b"k", b"a\r\nb"]);
        assert_eq!(
            &out[..],
            &b"*5\r\n$22\r\nSLOTSMGRT-EXEC-WRAPPER\r\n$1\r\nk\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"[..]
        );
    }
}
