//! Following redis-sentinel failovers, as Codis's proxy and dashboard do
//! (`pkg/utils/redis/sentinel.go`).
//!
//! [`watch`] subscribes to `+switch-master` on every sentinel. Once a majority is subscribed,
//! and whenever a message names one of this product's groups (`<product>-<gid>`), it asks
//! every sentinel for `SENTINEL masters`, takes for each group the master with the highest
//! `config-epoch` among a majority of answers, and hands the result to the caller's
//! [`MastersSink`] — up to 10 rounds, 5 s apart, until two have succeeded. The proxy re-routes
//! its slots with it; the dashboard re-orders its groups.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{RedisClient, Value};

/// How long one subscription lives before it is renewed.
const SUBSCRIPTION_LIFE: Duration = Duration::from_secs(15 * 60);
/// Pause before re-subscribing to a sentinel that failed.
const RETRY: Duration = Duration::from_secs(10);
/// Timeout of connecting to a sentinel and of `SENTINEL masters`.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Group id → master address, as the sentinels agree.
pub type Masters = BTreeMap<i64, String>;

/// What to do with the masters the sentinels agreed on.
pub type MastersSink =
    Arc<dyn Fn(Masters) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

enum Event {
    Subscribed,
    Switched(String),
}

/// Watches `servers` for `product` until the returned task is aborted.
pub fn watch(product: String, servers: Vec<String>, sink: MastersSink) -> JoinHandle<()> {
    tokio::spawn(watch_loop(product, servers, sink))
}

async fn watch_loop(product: String, servers: Vec<String>, sink: MastersSink) {
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
            let (product, servers, sink) = (product.clone(), servers.clone(), sink.clone());
            rounds = Some(tokio::spawn(async move {
                refresh_rounds(&product, &servers, &sink).await;
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

fn is_bulk(v: &Value, text: &[u8]) -> bool {
    matches!(v, Value::Bulk(Some(b)) if b == text)
}

async fn subscribe_once(server: &str, tx: &mpsc::UnboundedSender<Event>) -> Result<(), String> {
    // Sentinels never get a password.
    let mut conn = RedisClient::connect(server, "", SENTINEL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    conn.send(&[b"SUBSCRIBE", b"+switch-master"])
        .await
        .map_err(|e| e.to_string())?;
    let confirm = conn.read_push().await.map_err(|e| e.to_string())?;
    if !confirm
        .as_array()
        .is_some_and(|v| v.first().is_some_and(|f| is_bulk(f, b"subscribe")))
    {
        return Err(format!("unexpected reply to SUBSCRIBE: {confirm:?}"));
    }
    let _ = tx.send(Event::Subscribed);
    loop {
        let msg = conn.read_push().await.map_err(|e| e.to_string())?;
        if let Some([kind, _, payload]) = msg.as_array()
            && is_bulk(kind, b"message")
            && let Some(text) = payload.as_text()
        {
            // "<master name> <old ip> <old port> <new ip> <new port>"
            tracing::warn!(sentinel = %server, event = %text, "+switch-master");
            if let Some(name) = text.split_whitespace().next() {
                let _ = tx.send(Event::Switched(name.to_string()));
            }
        }
    }
}

/// Up to 10 rounds, 5 s apart, until two have succeeded: ask the sentinels, hand over.
async fn refresh_rounds(product: &str, servers: &[String], sink: &MastersSink) {
    let mut successes = 0;
    for round in 0..10 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        match masters_of(product, servers).await {
            Some(masters) => {
                sink(masters).await;
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
pub async fn masters_of(product: &str, servers: &[String]) -> Option<Masters> {
    let answers = join_all(servers.iter().map(|s| sentinel_masters(s.clone()))).await;
    let ok: Vec<Vec<HashMap<String, String>>> = answers.into_iter().flatten().collect();
    if ok.len() < servers.len() / 2 + 1 {
        return None;
    }
    Some(choose_masters(product, &ok))
}

/// For each of `product`'s groups, the master with the highest `config-epoch` among the
/// sentinels' `SENTINEL masters` answers.
pub fn choose_masters(product: &str, answers: &[Vec<HashMap<String, String>>]) -> Masters {
    let mut best: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for m in answers.iter().flatten() {
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
        match best.get(&gid) {
            Some((e, _)) if *e >= epoch => {}
            _ => {
                best.insert(gid, (epoch, format!("{ip}:{port}")));
            }
        }
    }
    best.into_iter().map(|(g, (_, a))| (g, a)).collect()
}

/// Runs futures concurrently and collects their outputs in order.
async fn join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
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
        let mut conn = RedisClient::connect(&server, "", SENTINEL_TIMEOUT).await?;
        conn.call(&[b"SENTINEL", b"masters"]).await
    };
    let reply = match tokio::time::timeout(SENTINEL_TIMEOUT, q).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(sentinel = %server, error = %e, "SENTINEL masters failed");
            return None;
        }
        Err(_) => return None,
    };
    Some(
        reply
            .as_array()?
            .iter()
            .filter_map(|m| m.as_pairs().map(|p| p.into_iter().collect()))
            .collect(),
    )
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

    #[test]
    fn highest_epoch_wins() {
        let m = |name: &str, ip: &str, epoch: &str| -> HashMap<String, String> {
            [
                ("name", name),
                ("ip", ip),
                ("port", "6379"),
                ("config-epoch", epoch),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let answers = vec![
            vec![m("demo-1", "10.0.0.1", "1"), m("other-1", "10.0.0.9", "9")],
            vec![m("demo-1", "10.0.0.2", "2"), m("demo-2", "10.0.0.3", "0")],
        ];
        let got = choose_masters("demo", &answers);
        assert_eq!(got[&1], "10.0.0.2:6379");
        assert_eq!(got[&2], "10.0.0.3:6379");
        assert_eq!(got.len(), 2);
    }
}
