//! Following redis-sentinel failovers, as Codis's proxy does (`pkg/utils/redis/sentinel.go`).
//!
//! The proxy subscribes to `+switch-master` on every sentinel the dashboard gave it. Once a
//! majority is subscribed, and whenever a message names one of this product's groups
//! (`<product>-<gid>`), it asks every sentinel for `SENTINEL masters`, takes for each group the
//! master with the highest `config-epoch` among a majority of answers, and re-routes the slots
//! whose master (or migration source) is in a group whose master moved. The dashboard's next
//! fill clears the `switched` mark it leaves in the stats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::backend::encode_command;
use super::core::Proxy;
use crate::resp::frame::{Frame, FrameError};

/// How long one subscription lives before it is renewed.
const SUBSCRIPTION_LIFE: Duration = Duration::from_secs(15 * 60);
/// Pause before re-subscribing to a sentinel that failed.
const RETRY: Duration = Duration::from_secs(10);
/// Timeout of connecting to a sentinel and of `SENTINEL masters`.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy knows of its sentinels (reported in `stats.sentinels`).
#[derive(Debug, Default)]
pub struct SentinelState {
    /// The sentinels watched.
    pub servers: Mutex<Vec<String>>,
    /// Group id → master address, as last agreed by the sentinels.
    pub masters: Mutex<BTreeMap<String, String>>,
    /// Some slot was switched to a new master since the dashboard's last fill.
    pub switched: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SentinelState {
    /// Watches `servers` from now on (stops watching the previous list); an empty list stops.
    pub fn watch(self: &Arc<Self>, proxy: Arc<Proxy>, product: String, servers: Vec<String>) {
        *self.servers.lock() = servers.clone();
        let task = (!servers.is_empty())
            .then(|| tokio::spawn(watch_loop(proxy, product, servers, self.clone())));
        if let Some(old) = std::mem::replace(&mut *self.task.lock(), task) {
            old.abort();
        }
    }

    /// Stops watching.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

enum Event {
    Subscribed,
    Switched(String),
}

async fn watch_loop(
    proxy: Arc<Proxy>,
    product: String,
    servers: Vec<String>,
    state: Arc<SentinelState>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let subscribers: Vec<JoinHandle<()>> = servers
        .iter()
        .map(|s| tokio::spawn(subscribe_loop(s.clone(), tx.clone())))
        .collect();
    drop(tx);
    let majority = servers.len() / 2 + 1;
    let mut subscribed = 0;
    let mut rounds: Option<JoinHandle<()>> = None;
    while let Some(ev) = rx.recv().await {
        let trigger = match ev {
            Event::Subscribed => {
                subscribed += 1;
                subscribed == majority
            }
            Event::Switched(name) => group_of(&product, &name).is_some(),
        };
        if trigger {
            if let Some(r) = rounds.take() {
                r.abort();
            }
            let (proxy, product, servers, state) = (
                proxy.clone(),
                product.clone(),
                servers.clone(),
                state.clone(),
            );
            rounds = Some(tokio::spawn(async move {
                refresh_rounds(&proxy, &product, &servers, &state).await;
            }));
        }
    }
    for s in subscribers {
        s.abort();
    }
}

/// Keeps a `+switch-master` subscription on one sentinel.
async fn subscribe_loop(server: String, tx: mpsc::UnboundedSender<Event>) {
    loop {
        let res = tokio::time::timeout(SUBSCRIPTION_LIFE, subscribe_once(&server, &tx)).await;
        if let Ok(Err(e)) = res {
            tracing::warn!(sentinel = %server, error = %e, "sentinel subscription failed");
            tokio::time::sleep(RETRY).await;
        }
        if tx.is_closed() {
            return;
        }
    }
}

async fn subscribe_once(server: &str, tx: &mpsc::UnboundedSender<Event>) -> Result<(), String> {
    let mut conn = Conn::connect(server).await?;
    conn.send(&[b"SUBSCRIBE", b"+switch-master"]).await?;
    let confirm = conn.read().await?;
    if !matches!(&confirm, Frame::Array(_, v) if v.first() == Some(&Frame::Bulk(b"subscribe".to_vec())))
    {
        return Err(format!("unexpected reply to SUBSCRIBE: {confirm:?}"));
    }
    let _ = tx.send(Event::Subscribed);
    loop {
        let msg = conn.read().await?;
        if let Frame::Array(_, v) = msg
            && v.len() == 3
            && v[0] == Frame::Bulk(b"message".to_vec())
            && let Frame::Bulk(payload) = &v[2]
        {
            // "<master name> <old ip> <old port> <new ip> <new port>"
            let text = String::from_utf8_lossy(payload);
            tracing::warn!(sentinel = %server, event = %text, "+switch-master");
            if let Some(name) = text.split_whitespace().next() {
                let _ = tx.send(Event::Switched(name.to_string()));
            }
        }
    }
}

/// Up to 10 rounds, 5 s apart, until two have succeeded: ask the sentinels, switch.
async fn refresh_rounds(
    proxy: &Arc<Proxy>,
    product: &str,
    servers: &[String],
    state: &SentinelState,
) {
    let mut successes = 0;
    for round in 0..10 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        match masters_of(product, servers).await {
            Some(masters) => {
                switch_masters(proxy, &masters, state).await;
                successes += 1;
                if successes >= 2 {
                    return;
                }
            }
            None => tracing::warn!("sentinels: no majority answered SENTINEL masters"),
        }
    }
}

/// The group id of a sentinel master name `<product>-<gid>`.
pub fn group_of(product: &str, name: &str) -> Option<i64> {
    let rest = name.strip_prefix(product)?.strip_prefix('-')?;
    rest.parse().ok()
}

/// Asks every sentinel; with a majority of answers, the master of each group with the highest
/// config epoch.
async fn masters_of(product: &str, servers: &[String]) -> Option<BTreeMap<i64, String>> {
    let answers = futures_join_all(servers.iter().map(|s| sentinel_masters(s.clone()))).await;
    let ok: Vec<Vec<HashMap<String, String>>> = answers.into_iter().flatten().collect();
    if ok.len() < servers.len() / 2 + 1 {
        return None;
    }
    let mut best: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for masters in ok {
        for m in masters {
            let Some(gid) = m.get("name").and_then(|n| group_of(product, n)) else {
                continue;
            };
            let (Some(ip), Some(port)) = (m.get("ip"), m.get("port")) else {
                continue;
            };
            let epoch: i64 = m
                .get("config-epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let addr = format!("{ip}:{port}");
            match best.get(&gid) {
                Some((e, _)) if *e >= epoch => {}
                _ => {
                    best.insert(gid, (epoch, addr));
                }
            }
        }
    }
    Some(best.into_iter().map(|(g, (_, a))| (g, a)).collect())
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<JoinHandle<T>> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

async fn sentinel_masters(server: String) -> Option<Vec<HashMap<String, String>>> {
    let q = async {
        let mut conn = Conn::connect(&server).await?;
        conn.send(&[b"SENTINEL", b"masters"]).await?;
        conn.read().await
    };
    let reply = match tokio::time::timeout(SENTINEL_TIMEOUT, q).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(sentinel = %server, error = %e, "SENTINEL masters failed");
            return None;
        }
        Err(_) => return None,
    };
    let Frame::Array(_, masters) = reply else {
        return None;
    };
    Some(
        masters
            .into_iter()
            .filter_map(|m| match m {
                Frame::Array(_, kv) => Some(
                    kv.chunks(2)
                        .filter_map(|p| match p {
                            [Frame::Bulk(k), Frame::Bulk(v)] => Some((
                                String::from_utf8_lossy(k).to_string(),
                                String::from_utf8_lossy(v).to_string(),
                            )),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect(),
    )
}

/// Re-routes every slot whose master or migration source belongs to a group whose master is
/// now another address.
pub async fn switch_masters(proxy: &Proxy, masters: &BTreeMap<i64, String>, state: &SentinelState) {
    *state.masters.lock() = masters
        .iter()
        .map(|(g, a)| (g.to_string(), a.clone()))
        .collect();
    let mut changed = Vec::new();
    for mut slot in proxy.router.slots() {
        let mut dirty = false;
        if let Some(a) = masters.get(&slot.backend_addr_group_id)
            && !slot.backend_addr.is_empty()
            && *a != slot.backend_addr
        {
            slot.backend_addr = a.clone();
            dirty = true;
        }
        if let Some(a) = masters.get(&slot.migrate_from_group_id)
            && !slot.migrate_from.is_empty()
            && *a != slot.migrate_from
        {
            slot.migrate_from = a.clone();
            dirty = true;
        }
        if dirty {
            changed.push(slot);
        }
    }
    if changed.is_empty() {
        return;
    }
    tracing::warn!(
        slots = changed.len(),
        ?masters,
        "sentinels: switching masters"
    );
    if let Err(e) = proxy.router.fill(&changed).await {
        tracing::error!(error = %e, "sentinels: switching masters failed");
        return;
    }
    state.switched.store(true, Ordering::SeqCst);
}

/// A plain RESP connection to a sentinel.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: &str) -> Result<Conn, String> {
        let stream = tokio::time::timeout(SENTINEL_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("dial {addr}: timeout"))?
            .map_err(|e| format!("dial {addr}: {e}"))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let mut req = bytes::BytesMut::new();
        encode_command(&mut req, args);
        self.stream.write_all(&req).await.map_err(|e| e.to_string())
    }

    async fn read(&mut self) -> Result<Frame, String> {
        loop {
            match Frame::parse(&self.buf, 0) {
                Ok((f, n)) => {
                    self.buf.drain(..n);
                    return Ok(f);
                }
                Err(FrameError::Incomplete) => {}
                Err(FrameError::Invalid(e)) => return Err(format!("bad reply: {e}")),
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".to_string());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert_eq!(group_of("demo", "demo-3"), Some(3));
        assert_eq!(group_of("demo", "demo-x"), None);
        assert_eq!(group_of("demo", "other-3"), None);
        assert_eq!(group_of("demo", "demo3"), None);
    }
}
