//! MULTI / EXEC / DISCARD through the proxy (Codis refused them).
//!
//! The proxy queues the commands itself and, at EXEC, sends `MULTI`, the commands and `EXEC`
//! as one block on the shared connection to the slot's master. Nothing of another client can
//! come between them (a block is appended to the connection's buffer at once), and the
//! client gets the `EXEC` reply. Every key of a transaction must lie in one slot; WATCH is
//! not supported (it would need a connection of its own for the whole session).

use bytes::Bytes;
use codis_model::slot::slot_of;

use super::backend::{Hold, Pending, Reply};
use super::command::{self, BlockingKeys, CommandInfo, Handling, KeySpec, SplitKind};
use super::session::{Entry, Meta, Session, Tx};
use crate::util::number::parse_i64;

/// Redis Cluster's reply to a request whose keys lie in several slots.
pub(super) const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

impl Session {
    /// The keys of a request, by how the proxy routes it (`None`: the command is not allowed
    /// inside a transaction).
    pub(super) fn request_keys(&self, raw: &Bytes, info: &CommandInfo) -> Option<Vec<Bytes>> {
        let argc = self.argc();
        let keys = match info.handling {
            Handling::Forward(specs) => {
                let keys = self.command_keys(raw, specs);
                if keys.is_empty() {
                    vec![Bytes::new()]
                } else {
                    keys
                }
            }
            Handling::Split(kind) => {
                let step = if kind == SplitKind::Mset { 2 } else { 1 };
                (1..argc)
                    .step_by(step)
                    .map(|i| self.arg_bytes(raw, i))
                    .collect()
            }
            Handling::SameSlot => (1..argc)
                .step_by(2)
                .map(|i| self.arg_bytes(raw, i))
                .collect(),
            Handling::Blocking(k) => self.blocking_keys(raw, k),
            Handling::PubSub => vec![Bytes::new()],
            Handling::Ping | Handling::Echo => Vec::new(),
            _ => return None,
        };
        Some(keys)
    }

    /// Every key of a request of a forwarded command, by its key specs, in order.
    pub(super) fn command_keys(&self, raw: &Bytes, specs: &[KeySpec]) -> Vec<Bytes> {
        command::key_positions(specs, self.argc(), |i| self.arg(raw, i))
            .into_iter()
            .map(|i| self.arg_bytes(raw, i))
            .collect()
    }

    /// The reply refusing a request of a forwarded command before it reaches a backend: an
    /// option the proxy refuses, or keys in several slots (Redis Cluster's `CROSSSLOT`).
    pub(super) fn check_forward(
        &self,
        raw: &Bytes,
        info: &CommandInfo,
        keys: &[Bytes],
    ) -> Option<Reply> {
        if let Some(e) = command::refused_option(info, self.argc(), |i| self.arg(raw, i)) {
            return Some(Reply::data(Bytes::from(format!("-{e}\r\n"))));
        }
        let slot = slot_of(keys.first()?);
        if keys.iter().any(|k| slot_of(k) != slot) {
            return Some(Reply::data(Bytes::from_static(CROSSSLOT)));
        }
        None
    }

    /// The keys of a blocking command (empty when its arguments are malformed).
    pub(super) fn blocking_keys(&self, raw: &Bytes, k: BlockingKeys) -> Vec<Bytes> {
        let argc = self.argc();
        match k {
            BlockingKeys::AllButLast => (1..argc.saturating_sub(1))
                .map(|i| self.arg_bytes(raw, i))
                .collect(),
            BlockingKeys::FirstTwo if argc >= 3 => {
                vec![self.arg_bytes(raw, 1), self.arg_bytes(raw, 2)]
            }
            BlockingKeys::NumKeysAt2 if argc >= 4 => match parse_i64(self.arg(raw, 2)) {
                Some(n) if n > 0 && (n as usize) + 3 <= argc => (3..3 + n as usize)
                    .map(|i| self.arg_bytes(raw, i))
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// `MULTI`.
    pub(super) fn multi(&mut self, meta: Meta) {
        if self.tx.is_some() {
            self.reply_raw(&b"-ERR MULTI calls can not be nested\r\n"[..], meta);
            return;
        }
        self.tx = Some(Tx::default());
        self.reply_raw(&b"+OK\r\n"[..], meta);
    }

    /// `DISCARD`.
    pub(super) fn discard(&mut self, meta: Meta) {
        if self.tx.take().is_none() {
            self.reply_raw(&b"-ERR DISCARD without MULTI\r\n"[..], meta);
            return;
        }
        self.reply_raw(&b"+OK\r\n"[..], meta);
    }

    /// A command received between MULTI and EXEC.
    pub(super) fn queue_in_tx(&mut self, raw: Bytes, info: &'static CommandInfo, meta: Meta) {
        if info.handling == Handling::Refuse {
            if let Some(tx) = self.tx.as_mut() {
                tx.aborted = true;
            }
            self.refuse(info, meta);
            return;
        }
        if !self.authorized {
            self.reply_raw(&b"-NOAUTH Authentication required\r\n"[..], meta);
            return;
        }
        let Some(keys) = self.request_keys(&raw, info) else {
            if let Some(tx) = self.tx.as_mut() {
                tx.aborted = true;
            }
            let msg = format!("command '{}' is not allowed in MULTI", info.name);
            self.reply_now(Reply::request_error(&msg), meta);
            return;
        };
        if let Handling::Forward(_) = info.handling
            && let Some(r) = self.check_forward(&raw, info, &keys)
        {
            if let Some(tx) = self.tx.as_mut() {
                tx.aborted = true;
            }
            self.reply_now(r, meta);
            return;
        }
        let max = self.worker.proxy.cfg.max_tx_queued;
        let Some(tx) = self.tx.as_mut() else { return };
        if tx.block.len() + raw.len() > max {
            *tx = Tx {
                aborted: true,
                ..Tx::default()
            };
            let msg = format!("transaction discarded: more than {max} bytes queued");
            self.reply_now(Reply::request_error(&msg), meta);
            return;
        }
        for k in &keys {
            let s = slot_of(k);
            match tx.slot {
                None => tx.slot = Some(s),
                Some(t) if t == s => {}
                Some(_) => {
                    tx.aborted = true;
                    let r = Reply::request_error(
                        "keys of a transaction must all lie in one slot (use a {hash tag})",
                    );
                    self.reply_now(r, meta);
                    return;
                }
            }
        }
        if tx.aborted {
            // EXEC will abort: nothing more is kept (Redis still answers QUEUED).
            self.reply_raw(&b"+QUEUED\r\n"[..], meta);
            return;
        }
        tx.block.extend_from_slice(&raw);
        tx.count += 1;
        // Copies: a slice would keep the whole input buffer it came from alive.
        tx.keys.extend(
            keys.iter()
                .filter(|k| !k.is_empty())
                .map(|k| Bytes::copy_from_slice(k)),
        );
        self.reply_raw(&b"+QUEUED\r\n"[..], meta);
    }

    /// `EXEC`: sends the block and answers with the backend's `EXEC` reply.
    pub(super) async fn exec(&mut self, meta: Meta) {
        let Some(mut tx) = self.tx.take() else {
            self.reply_raw(&b"-ERR EXEC without MULTI\r\n"[..], meta);
            return;
        };
        if tx.aborted {
            self.reply_raw(
                &b"-EXECABORT Transaction discarded because of previous errors.\r\n"[..],
                meta,
            );
            return;
        }
        if tx.count == 0 {
            self.reply_raw(&b"*0\r\n"[..], meta);
            return;
        }
        tx.keys.sort();
        tx.keys.dedup();
        let (route, backend) = match self.stable_backend(tx.slot.unwrap_or(0), &tx.keys).await {
            Ok(r) => r,
            Err(e) => {
                self.reply_now(e, meta);
                return;
            }
        };
        let mut block = bytes::BytesMut::with_capacity(tx.block.len() + 32);
        block.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        block.extend_from_slice(&tx.block);
        block.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        let conn = self.worker.pool.primary(&backend, self.db);
        let p = Pending::new(self.shared.wake.clone());
        conn.send_block(&block, tx.count + 1, p.clone(), Hold::One(route));
        self.shared.push(Entry::Wait(p, meta));
    }
}
