//! Commands the proxy answers itself, or sends to a backend named in the request:
//! PING, ECHO, SELECT, AUTH, HELLO, RESET, INFO, SLOTSINFO, SLOTSSCAN, SLOTSMAPPING,
//! SLOTSHASHKEY.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codis_model::slot::{MAX_SLOT_NUM, slot_of};

use super::backend::{Hold, Pending, Reply, encode_command};
use super::session::{Entry, Meta, Session};
use crate::server::REDIS_VERSION;
use crate::util::number::parse_i64;

fn arity_error(name: &str) -> Reply {
    Reply::data(Bytes::from(format!(
        "-ERR wrong number of arguments for '{name}' command\r\n"
    )))
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

impl Session {
    /// The backend address named by `addr`, if some slot uses it.
    fn known_backend(&self, addr: &[u8]) -> Option<Arc<str>> {
        let addr = std::str::from_utf8(addr).ok()?;
        let all = self.worker.proxy.router.addresses();
        all.binary_search_by(|a| (**a).cmp(addr))
            .ok()
            .map(|i| all[i].clone())
    }

    /// Sends `args` to the master `addr` on the session's database.
    fn send_to(&self, addr: &Arc<str>, args: &[&[u8]], meta: Meta) {
        let mut req = BytesMut::new();
        encode_command(&mut req, args);
        let conn = self.worker.pool.primary(addr, self.db);
        let p = Pending::new(self.shared.wake.clone());
        conn.send(&req, p.clone(), Hold::None);
        self.shared.push(Entry::Wait(p, meta));
    }

    /// `PING` (answered here), `PING message` (echoed, as Redis does), and Codis's
    /// `PING <backend addr> [message]` (sent to that backend).
    pub(super) async fn ping(&mut self, raw: Bytes, meta: Meta) {
        let argc = self.argc();
        if argc >= 2
            && let Some(addr) = self.known_backend(self.arg(&raw, 1))
        {
            let mut args: Vec<&[u8]> = vec![b"PING"];
            args.extend((2..argc).map(|i| self.arg(&raw, i)));
            self.send_to(&addr, &args, meta);
            return;
        }
        match argc {
            1 => self.reply_raw(&b"+PONG\r\n"[..], meta),
            2 => {
                let mut out = BytesMut::new();
                bulk(&mut out, self.arg(&raw, 1));
                self.reply_raw(out.freeze(), meta);
            }
            _ => self.reply_now(arity_error("ping"), meta),
        }
    }

    /// `ECHO message`.
    pub(super) fn echo(&self, raw: &Bytes, meta: Meta) {
        if self.argc() != 2 {
            self.reply_now(arity_error("echo"), meta);
            return;
        }
        let mut out = BytesMut::new();
        bulk(&mut out, self.arg(raw, 1));
        self.reply_raw(out.freeze(), meta);
    }

    /// `SELECT db`: later requests use that database's backend connections.
    pub(super) fn select(&mut self, raw: &Bytes, meta: Meta) {
        if self.argc() != 2 {
            self.reply_now(arity_error("select"), meta);
            return;
        }
        let n = self.worker.proxy.cfg.databases;
        match parse_i64(self.arg(raw, 1)) {
            Some(db) if db >= 0 && db < n as i64 => {
                self.db = db as u32;
                self.reply_raw(&b"+OK\r\n"[..], meta);
            }
            Some(_) => self.reply_raw(
                Bytes::from(format!("-ERR invalid DB index, only accept DB [0,{n})\r\n")),
                meta,
            ),
            None => self.reply_raw(&b"-ERR invalid DB index\r\n"[..], meta),
        }
    }

    /// `RESET`: as on Redis, the session starts over (database 0, no transaction, not
    /// authenticated when `session_auth` is set) and answers `+RESET`. Nothing is sent to a
    /// backend: its connections are shared with other clients.
    pub(super) fn reset(&mut self, meta: Meta) {
        if self.argc() != 1 {
            self.reply_now(arity_error("reset"), meta);
            return;
        }
        self.reset_state();
        self.reply_raw(&b"+RESET\r\n"[..], meta);
    }

    /// The state of a new session (RESET).
    pub(super) fn reset_state(&mut self) {
        self.tx = None;
        self.db = 0;
        self.authorized = self.worker.proxy.cfg.session_auth.is_empty();
    }

    /// Checks a password against `session_auth`; `Err` is the error line.
    fn check_password(&mut self, user: Option<&[u8]>, pass: &[u8]) -> Result<(), &'static [u8]> {
        let expected = &self.worker.proxy.cfg.session_auth;
        if expected.is_empty() {
            return Err(b"-ERR Client sent AUTH, but no password is set\r\n");
        }
        let user_ok = user.is_none_or(|u| u == b"default");
        if user_ok && pass == expected.as_bytes() {
            self.authorized = true;
            Ok(())
        } else {
            self.authorized = false;
            Err(b"-ERR invalid password\r\n")
        }
    }

    /// `AUTH [user] password` against `session_auth`.
    pub(super) fn auth(&mut self, raw: &Bytes, meta: Meta) {
        let res = match self.argc() {
            2 => self.check_password(None, self.arg(raw, 1)),
            3 => self.check_password(Some(self.arg(raw, 1)), self.arg(raw, 2)),
            _ => {
                self.reply_now(arity_error("auth"), meta);
                return;
            }
        };
        match res {
            Ok(()) => self.reply_raw(&b"+OK\r\n"[..], meta),
            Err(line) => self.reply_raw(line, meta),
        }
    }

    /// `HELLO [2 [AUTH user pass] [SETNAME name]]`: the proxy speaks RESP2 only.
    pub(super) fn hello(&mut self, raw: &Bytes, meta: Meta) {
        let argc = self.argc();
        if argc >= 2 {
            match parse_i64(self.arg(raw, 1)) {
                Some(2) => {}
                Some(3) => {
                    self.reply_raw(&b"-NOPROTO unsupported protocol version\r\n"[..], meta);
                    return;
                }
                _ => {
                    self.reply_raw(
                        &b"-ERR Protocol version is not an integer or out of range\r\n"[..],
                        meta,
                    );
                    return;
                }
            }
        }
        let mut i = 2;
        while i < argc {
            let opt = self.arg(raw, i).to_ascii_uppercase();
            if opt == b"AUTH" && i + 2 < argc {
                let (user, pass) = (self.arg(raw, i + 1), self.arg(raw, i + 2));
                if let Err(line) = self.check_password(Some(user), pass) {
                    self.reply_raw(line, meta);
                    return;
                }
                i += 3;
            } else if opt == b"SETNAME" && i + 1 < argc {
                i += 2;
            } else {
                let msg = format!(
                    "-ERR Syntax error in HELLO option '{}'\r\n",
                    String::from_utf8_lossy(self.arg(raw, i))
                );
                self.reply_raw(Bytes::from(msg), meta);
                return;
            }
        }
        if !self.authorized {
            self.reply_raw(&b"-NOAUTH Authentication required\r\n"[..], meta);
            return;
        }
        let mut out = BytesMut::new();
        out.extend_from_slice(b"*14\r\n");
        for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
            bulk(&mut out, k.as_bytes());
            bulk(&mut out, v.as_bytes());
        }
        bulk(&mut out, b"proto");
        out.extend_from_slice(b":2\r\n");
        bulk(&mut out, b"id");
        out.extend_from_slice(format!(":{}\r\n", self.id).as_bytes());
        for (k, v) in [("mode", "standalone"), ("role", "master")] {
            bulk(&mut out, k.as_bytes());
            bulk(&mut out, v.as_bytes());
        }
        bulk(&mut out, b"modules");
        out.extend_from_slice(b"*0\r\n");
        self.reply_raw(out.freeze(), meta);
    }

    /// `INFO [backend addr] [section]`: Codis sends it to the backend named by the first
    /// argument, or to the master of a pseudo-random slot.
    pub(super) async fn info(&mut self, raw: Bytes, meta: Meta) {
        let argc = self.argc();
        if argc >= 2
            && let Some(addr) = self.known_backend(self.arg(&raw, 1))
        {
            let mut args: Vec<&[u8]> = vec![b"INFO"];
            args.extend((2..argc).map(|i| self.arg(&raw, i)));
            self.send_to(&addr, &args, meta);
            return;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0);
        let slot = nanos % MAX_SLOT_NUM;
        let backend = self.worker.routes.borrow_mut().peek(slot).backend.clone();
        match backend {
            Some(addr) => {
                let args: Vec<&[u8]> = (0..argc).map(|i| self.arg(&raw, i)).collect();
                self.send_to(&addr, &args, meta);
            }
            None => self.reply_now(
                Reply::response_error("slot is not ready, may be offline"),
                meta,
            ),
        }
    }

    /// `SLOTSINFO <backend addr>`: the slot sizes of that backend.
    pub(super) async fn slots_info(&mut self, raw: &Bytes, meta: Meta) {
        if self.argc() != 2 {
            self.reply_now(arity_error("slotsinfo"), meta);
            return;
        }
        let name = self.arg(raw, 1);
        match self.known_backend(name) {
            Some(addr) => self.send_to(&addr, &[b"SLOTSINFO"], meta),
            None => {
                let msg = format!(
                    "-ERR backend server '{}' not found\r\n",
                    String::from_utf8_lossy(name)
                );
                self.reply_now(
                    Reply {
                        bytes: Bytes::from(msg),
                        failed: true,
                    },
                    meta,
                );
            }
        }
    }

    /// `SLOTSSCAN slot cursor [COUNT n]`: sent as is to the master of that slot.
    pub(super) async fn slots_scan(&mut self, raw: Bytes, meta: Meta) {
        if self.argc() < 3 {
            self.reply_now(arity_error("slotsscan"), meta);
            return;
        }
        let slot = match parse_i64(self.arg(&raw, 1)) {
            Some(s) if (0..MAX_SLOT_NUM as i64).contains(&s) => s as usize,
            _ => {
                let msg = format!(
                    "invalid slot number = {}",
                    String::from_utf8_lossy(self.arg(&raw, 1))
                );
                self.reply_now(Reply::request_error(&msg), meta);
                return;
            }
        };
        let backend = self.worker.routes.borrow_mut().peek(slot).backend.clone();
        match backend {
            Some(addr) => {
                let conn = self.worker.pool.primary(&addr, self.db);
                let p = Pending::new(self.shared.wake.clone());
                conn.send(&raw, p.clone(), Hold::None);
                self.shared.push(Entry::Wait(p, meta));
            }
            None => self.reply_now(
                Reply::response_error("slot is not ready, may be offline"),
                meta,
            ),
        }
    }

    /// `SLOTSMAPPING [slot]`: `[id, backend, migrate_from, [[replicas]...]]` per slot.
    pub(super) fn slots_mapping(&mut self, raw: &Bytes, meta: Meta) {
        let slots: Vec<usize> = match self.argc() {
            1 => (0..MAX_SLOT_NUM).collect(),
            2 => match parse_i64(self.arg(raw, 1)) {
                Some(s) if (0..MAX_SLOT_NUM as i64).contains(&s) => vec![s as usize],
                _ => {
                    let msg = format!(
                        "invalid slot number = {}",
                        String::from_utf8_lossy(self.arg(raw, 1))
                    );
                    self.reply_now(Reply::request_error(&msg), meta);
                    return;
                }
            },
            _ => {
                self.reply_now(arity_error("slotsmapping"), meta);
                return;
            }
        };
        let mut out = BytesMut::new();
        let one = slots.len() == 1;
        if !one {
            out.extend_from_slice(format!("*{}\r\n", slots.len()).as_bytes());
        }
        let mut routes = self.worker.routes.borrow_mut();
        for s in slots {
            let r = routes.peek(s);
            out.extend_from_slice(b"*4\r\n");
            bulk(&mut out, s.to_string().as_bytes());
            bulk(&mut out, r.backend.as_deref().unwrap_or("").as_bytes());
            bulk(&mut out, r.migrate_from.as_deref().unwrap_or("").as_bytes());
            out.extend_from_slice(format!("*{}\r\n", r.replica_groups.len()).as_bytes());
            for g in &r.replica_groups {
                out.extend_from_slice(format!("*{}\r\n", g.len()).as_bytes());
                for a in g {
                    bulk(&mut out, a.as_bytes());
                }
            }
        }
        drop(routes);
        self.reply_raw(out.freeze(), meta);
    }

    /// `SLOTSHASHKEY key...`: the slot of each key.
    pub(super) fn slots_hash_key(&self, raw: &Bytes, meta: Meta) {
        let argc = self.argc();
        let mut out = BytesMut::new();
        out.extend_from_slice(format!("*{}\r\n", argc - 1).as_bytes());
        for i in 1..argc {
            out.extend_from_slice(format!(":{}\r\n", slot_of(self.arg(raw, i))).as_bytes());
        }
        self.reply_raw(out.freeze(), meta);
    }
}
