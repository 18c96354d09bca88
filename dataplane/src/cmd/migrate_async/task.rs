//! The migration task of one source DB: owns the connection to the target, streams each
//! batch's restore messages and reads the target's ACKs.
//!
//! Flow control follows Codis: messages are built while fewer than 3 are unacknowledged or
//! the unacknowledged bytes stay under the batch's `maxbytes`; every ACK frees room for more.
//! The store lock is taken only to build the next few hundred KiB of messages, to finish the
//! batch (delete the moved keys, wake the callers) or to give up; never across network I/O.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

use super::{CachedClient, Progress};
use crate::resp::frame::{Frame, FrameError};
use crate::server::Shared;
use crate::store::{Store, Value, now_ms};

/// Where a task sends, and which cached client it serves.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Source DB index.
    pub db: usize,
    /// Generation of the cached client: when the DB's client has another, this task is stale.
    pub generation: u64,
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// The first batch's timeout (ms), bounding the connect wait.
    pub connect_timeout: u64,
}

/// At most this many bytes of messages are built per store lock hold.
const BUILD_STEP: usize = 256 * 1024;
/// A cached connection without a batch is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs until the cached client is dropped (CANCEL, another target, idle timeout) or fails.
pub(super) async fn run(shared: Arc<Shared>, t: Target, wake: Arc<Notify>) {
    let wait = Duration::from_millis(t.connect_timeout.clamp(1, 1000));
    let sock = match tokio::time::timeout(wait, TcpStream::connect((t.host.as_str(), t.port))).await
    {
        Ok(Ok(s)) => s,
        res => {
            let err = match res {
                Ok(Err(e)) => e.to_string(),
                _ => "timeout".to_string(),
            };
            tracing::warn!(host = %t.host, port = t.port, db = t.db, error = %err, "slotsmgrt_async: connect failed");
            release(
                &shared,
                &t,
                &format!("create client to {}:{} failed", t.host, t.port),
            );
            return;
        }
    };
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    loop {
        let has_batch = {
            let st = shared.store.lock();
            match client(&st, &t) {
                Some(c) => c.batch.is_some(),
                None => return,
            }
        };
        if !has_batch {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = tokio::time::sleep(IDLE_TIMEOUT) => {
                    let mut st = shared.store.lock();
                    if client(&st, &t).is_some_and(|c| c.batch.is_none()) {
                        st.migrate_async.release(t.db, "interrupted: idle timeout");
                        return;
                    }
                    continue;
                }
                r = rd.read_buf(&mut rbuf) => {
                    // An idle target has nothing to say: it closed the connection, or sent
                    // something unexpected; either way the connection is done.
                    let _ = r;
                    release(&shared, &t, "interrupted: connection closed");
                    return;
                }
            }
        }
        let res = run_batch(&shared, &t, &wake, &mut rd, &mut wr, &mut rbuf).await;
        if let Err(msg) = res {
            release(&shared, &t, &msg);
            return;
        }
    }
}

/// The DB's cached client, if it is still this task's.
fn client<'a>(st: &'a Store, t: &Target) -> Option<&'a CachedClient> {
    st.migrate_async
        .clients
        .get(&t.db)
        .filter(|c| c.generation == t.generation)
}

/// Drops the DB's cached client if it is still this task's.
fn release(shared: &Shared, t: &Target, msg: &str) {
    let mut st = shared.store.lock();
    if client(&st, t).is_some() {
        st.migrate_async.release(t.db, msg);
    }
}

/// One command as RESP.
fn encode(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::resp::request::encode_command(&mut out, parts);
    out
}

/// Checks one frame from the target: it must be `SLOTSRESTORE-ASYNC-ACK 0 <msg>`.
fn check_ack(f: Frame) -> Result<(), String> {
    if let Frame::Array(_, items) = &f
        && let [Frame::Bulk(name), Frame::Bulk(code), Frame::Bulk(msg)] = items.as_slice()
        && name.eq_ignore_ascii_case(b"SLOTSRESTORE-ASYNC-ACK")
    {
        return match crate::util::number::parse_i64(code) {
            Some(0) => Ok(()),
            _ => Err(format!(
                "interrupted: ack error [{}] {}",
                String::from_utf8_lossy(code),
                String::from_utf8_lossy(msg)
            )),
        };
    }
    match f {
        Frame::Error(e) => Err(format!(
            "interrupted: target replied {}",
            String::from_utf8_lossy(&e)
        )),
        other => Err(format!(
            "interrupted: unexpected reply from target ({other:?})"
        )),
    }
}

/// Reads every complete ACK in `rbuf`; returns how many.
fn take_acks(rbuf: &mut BytesMut) -> Result<usize, String> {
    let mut n = 0;
    loop {
        match Frame::parse(rbuf, 0) {
            Ok((f, used)) => {
                rbuf.advance(used);
                check_ack(f)?;
                n += 1;
            }
            Err(FrameError::Incomplete) => return Ok(n),
            Err(FrameError::Invalid(e)) => {
                return Err(format!("interrupted: protocol error from target ({e})"));
            }
        }
    }
}

/// Sends the DB's batch and waits for all its ACKs; then deletes the moved keys and wakes
/// the callers. An error leaves every key on the source.
async fn run_batch(
    shared: &Shared,
    t: &Target,
    wake: &Notify,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    rbuf: &mut BytesMut,
) -> Result<(), String> {
    let canceled = || "interrupted: canceled".to_string();
    let (timeout, maxbytes, progress, handshake) = {
        let mut st = shared.store.lock();
        let pass = st.config.requirepass.clone();
        let c = st
            .migrate_async
            .clients
            .get_mut(&t.db)
            .filter(|c| c.generation == t.generation)
            .ok_or_else(canceled)?;
        let b = c.batch.as_ref().ok_or_else(canceled)?;
        let mut handshake = Vec::new();
        if !c.used {
            c.used = true;
            if !pass.is_empty() {
                handshake.push(encode(&[b"SLOTSRESTORE-ASYNC-AUTH", pass.as_bytes()]));
            }
            handshake.push(encode(&[
                b"SLOTSRESTORE-ASYNC-SELECT",
                t.db.to_string().as_bytes(),
            ]));
        }
        (
            Duration::from_millis(b.timeout.max(1)),
            b.maxbytes,
            c.progress.clone(),
            handshake,
        )
    };
    // AUTH and SELECT go first and are acknowledged before any data, so a refused password
    // fails cleanly before the target sees a key.
    if !handshake.is_empty() {
        let n = handshake.len();
        let buf = handshake.concat();
        tokio::time::timeout(timeout, wr.write_all(&buf))
            .await
            .map_err(|_| "interrupted: migration timeout".to_string())?
            .map_err(|e| format!("interrupted: {e}"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = 0;
        while got < n {
            let r = tokio::time::timeout_at(deadline, rd.read_buf(rbuf))
                .await
                .map_err(|_| "interrupted: migration timeout".to_string())?;
            match r {
                Ok(0) | Err(_) => return Err("interrupted: connection closed".into()),
                Ok(_) => got += take_acks(rbuf)?,
            }
        }
    }
    let mut out: Vec<u8> = Vec::new();
    let mut wpos = 0;
    let mut sizes: VecDeque<usize> = VecDeque::new();
    let mut inflight = 0usize;
    let mut exhausted = false;
    let mut last_progress = Instant::now();
    loop {
        if !exhausted && (sizes.len() < 3 || inflight < maxbytes) {
            let mut st = shared.store.lock();
            let Store {
                dbs, migrate_async, ..
            } = &mut *st;
            let c = migrate_async
                .clients
                .get_mut(&t.db)
                .filter(|c| c.generation == t.generation)
                .ok_or_else(canceled)?;
            let b = c.batch.as_mut().ok_or_else(canceled)?;
            let room = maxbytes
                .saturating_sub(inflight)
                .clamp(16 * 1024, BUILD_STEP);
            let before = out.len();
            let n = b.next_messages(&mut dbs[t.db], now_ms(), &mut out, &mut sizes, room);
            exhausted = b.exhausted();
            inflight += out.len() - before;
            migrate_async.stats.msgs_sent += n as u64;
            migrate_async.stats.bytes_sent += (out.len() - before) as u64;
            progress.sending_msgs.store(sizes.len(), Ordering::Relaxed);
        }
        if sizes.is_empty() {
            if exhausted {
                return finish(shared, t, &progress);
            }
            continue;
        }
        let deadline = tokio::time::Instant::from_std(last_progress + timeout);
        tokio::select! {
            r = wr.write(&out[wpos..]), if wpos < out.len() => {
                let n = r.map_err(|e| format!("interrupted: {e}"))?;
                if n == 0 {
                    return Err("interrupted: connection closed".into());
                }
                wpos += n;
                last_progress = Instant::now();
                if wpos == out.len() {
                    out.clear();
                    wpos = 0;
                    if out.capacity() > 4 * 1024 * 1024 {
                        out = Vec::new();
                    }
                }
            }
            r = rd.read_buf(rbuf) => {
                match r {
                    Ok(0) | Err(_) => return Err("interrupted: connection closed".into()),
                    Ok(_) => {}
                }
                let acks = take_acks(rbuf)?;
                for _ in 0..acks {
                    let size = sizes
                        .pop_front()
                        .ok_or_else(|| "interrupted: unexpected ack".to_string())?;
                    inflight -= size;
                }
                if acks > 0 {
                    last_progress = Instant::now();
                    progress.lastuse.store(now_ms(), Ordering::Relaxed);
                    progress.sending_msgs.store(sizes.len(), Ordering::Relaxed);
                }
            }
            _ = wake.notified() => {
                let st = shared.store.lock();
                if client(&st, t).is_none() {
                    return Err(canceled());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err("interrupted: migration timeout".into());
            }
        }
    }
}

/// Every message was acknowledged: delete the moved keys here and wake the callers. Big
/// values are dropped after the lock is released.
fn finish(shared: &Shared, t: &Target, progress: &Progress) -> Result<(), String> {
    let mut garbage: Vec<Value> = Vec::new();
    {
        let mut st = shared.store.lock();
        let Store {
            dbs,
            migrate_async,
            dirty,
            ..
        } = &mut *st;
        let c = migrate_async
            .clients
            .get_mut(&t.db)
            .filter(|c| c.generation == t.generation)
            .ok_or_else(|| "interrupted: canceled".to_string())?;
        let Some(batch) = c.batch.take() else {
            return Ok(());
        };
        let moved = batch.removed.len();
        for k in &batch.removed {
            if let Some(v) = dbs[t.db].remove(k) {
                // Replicas get the move as a DEL (server::repl).
                dbs[t.db].note_removed(k);
                *dirty += 1;
                if v.len() > 1024 {
                    garbage.push(v);
                }
            }
        }
        progress.sending_msgs.store(0, Ordering::Relaxed);
        progress.lastuse.store(now_ms(), Ordering::Relaxed);
        for tx in c.blocked.drain(..) {
            let _ = tx.send(Ok(moved));
        }
        migrate_async.stats.keys_moved += moved as u64;
        migrate_async.stats.batches_done += 1;
    }
    // Free big values on a throwaway thread (Redis's lazyfree): dropping a million-field
    // hash takes milliseconds, which would stall every connection of this I/O thread.
    if !garbage.is_empty() {
        let spawned = std::thread::Builder::new()
            .name("codis-lazyfree".into())
            .spawn(move || drop(garbage));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "lazy free thread failed to start; freeing inline");
        }
    }
    Ok(())
}
