//! The background probes (spec §6.3) and the stats document built from them: every server's
//! INFO, every proxy's stats (re-onlining a proxy that restarted), the coordinator's health.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use codis_coordinator::paths;
use codis_model::topom::{
    GroupStats, ProxyGroupStats, ProxyStats, RedisStats, RemoteError, SentinelGroup,
    SentinelsStats, SlotActionProgress, SlotActionStats, TopomStats,
};

use super::error::Result;
use super::migrate::pending_actions;
use super::topom::Topom;

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

fn unixtime() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How a probe ended: its value, its error, or no answer within the bound.
enum Probe<T> {
    Done(T),
    Failed(RemoteError),
    TimedOut,
}

/// Runs a probe bounded by `after`.
async fn probe<T, E: std::fmt::Display>(
    after: Duration,
    fut: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Probe<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Probe::Done(v),
        Ok(Err(e)) => Probe::Failed(RemoteError::new(e.to_string())),
        Err(_) => Probe::TimedOut,
    }
}

/// INFO fields, and for a sentinel this product's masters it monitors.
type RedisProbe = (
    BTreeMap<String, String>,
    Option<BTreeMap<String, SentinelGroup>>,
);

/// A server's or sentinel's probe as stats show it.
fn redis_stats(p: Probe<RedisProbe>) -> RedisStats {
    let mut out = RedisStats {
        unixtime: unixtime(),
        ..RedisStats::default()
    };
    match p {
        Probe::Done((info, sentinel)) => {
            out.stats = Some(info);
            out.sentinel = sentinel;
        }
        Probe::Failed(e) => out.error = Some(e),
        Probe::TimedOut => out.timeout = true,
    }
    out
}

impl Topom {
    /// Probes every server and proxy once a second while online, and the coordinator in a
    /// loop of its own (an unreachable coordinator takes up to 10 s to give up, which must not
    /// slow the other probes down).
    pub async fn run_probes(self: Arc<Self>) {
        let me = self.clone();
        let coordinator = tokio::spawn(async move {
            while !me.is_closed() {
                if me.is_online() {
                    me.check_coordinator().await;
                }
                if !me.sleep(Duration::from_secs(1)).await {
                    break;
                }
            }
        });
        while !self.is_closed() {
            if self.is_online() {
                tokio::join!(self.refresh_servers(), self.refresh_proxies());
            }
            if !self.sleep(Duration::from_secs(1)).await {
                break;
            }
        }
        coordinator.abort();
    }

    /// INFO (+ maxmemory, master_addr) of every group server, 1 s each, all at once.
    async fn refresh_servers(&self) {
        let Ok(ctx) = self.snapshot().await else {
            return;
        };
        let addrs: Vec<String> = ctx
            .groups
            .values()
            .flat_map(|g| g.servers.iter().map(|s| s.addr.clone()))
            .collect();
        let probes = addrs.into_iter().map(|addr| async move {
            let info = async {
                Ok::<_, super::DashboardError>((
                    self.server_info(&addr, PROBE_TIMEOUT).await?,
                    None,
                ))
            };
            let stats = redis_stats(probe(PROBE_TIMEOUT, info).await);
            (addr, stats)
        });
        let all: BTreeMap<String, RedisStats> = futures_util::future::join_all(probes)
            .await
            .into_iter()
            .collect();
        *self.probes.servers.lock() = all;
        let sentinels = ctx.sentinel.servers.iter().map(|addr| async move {
            let sentinel = async {
                let mut c = crate::redis::RedisClient::connect(addr, "", PROBE_TIMEOUT).await?;
                let info = c.info(None).await?;
                let monitored = self.sentinel_monitored(addr).await.ok();
                Ok::<_, super::DashboardError>((info, monitored))
            };
            let stats = redis_stats(probe(PROBE_TIMEOUT * 2, sentinel).await);
            (addr.clone(), stats)
        });
        let sentinels: BTreeMap<String, RedisStats> = futures_util::future::join_all(sentinels)
            .await
            .into_iter()
            .collect();
        *self.probes.sentinels.lock() = sentinels;
    }

    /// Stats of every proxy; a proxy that answers but is not online (it restarted) is
    /// re-onlined (fillslots, start, sentinels).
    async fn refresh_proxies(&self) {
        let Ok(ctx) = self.snapshot().await else {
            return;
        };
        let probes = ctx.proxies.values().map(|p| async move {
            let client = self.proxy_client(p);
            let mut stats = ProxyStats {
                unixtime: unixtime(),
                ..ProxyStats::default()
            };
            match probe(PROBE_TIMEOUT, client.stats(PROBE_TIMEOUT)).await {
                Probe::Done(s) => stats.stats = Some(s),
                Probe::Failed(e) => stats.error = Some(e),
                Probe::TimedOut => stats.timeout = true,
            }
            (p.token.clone(), stats)
        });
        let all: BTreeMap<String, ProxyStats> = futures_util::future::join_all(probes)
            .await
            .into_iter()
            .collect();
        let restarted: Vec<String> = all
            .iter()
            .filter(|(_, s)| s.stats.as_ref().is_some_and(|s| !s.online && !s.closed))
            .map(|(t, _)| t.clone())
            .collect();
        *self.probes.proxies.lock() = all;
        for token in restarted {
            tracing::warn!(proxy = %token, "proxy is not online; reinit");
            if let Err(e) = self.proxy_reinit(&token).await {
                tracing::warn!(proxy = %token, error = %e, "proxy reinit failed");
            }
        }
    }

    /// Reads the lock node: records the coordinator's health, and puts the node back if it
    /// vanished while we hold the product (for example after the coordinator lost data).
    async fn check_coordinator(&self) {
        let path = paths::topom_path(self.product());
        let result = self.coordinator.read(&path, false).await;
        let mut restore = false;
        {
            let mut c = self.probes.coordinator.lock();
            c.unixtime = unixtime();
            match &result {
                Ok(node) => {
                    if !c.online {
                        tracing::info!("coordinator is reachable again");
                    }
                    c.online = true;
                    c.error.clear();
                    restore = node.is_none();
                }
                Err(e) => {
                    if c.online {
                        tracing::error!(error = %e, "coordinator is unreachable");
                    }
                    c.online = false;
                    c.error = e.to_string();
                }
            }
        }
        if restore && self.is_online() {
            tracing::warn!(path = %path, "the dashboard lock node is gone; writing it again");
            let data = serde_json::to_vec_pretty(&self.model).unwrap_or_default();
            if let Err(e) = self.coordinator.create(&path, &data).await {
                tracing::error!(error = %e, "can't restore the dashboard lock node");
            }
        }
    }

    /// The stats document (`/topom/stats`).
    ///
    /// # Errors
    /// When the model was never loaded and the coordinator fails.
    pub async fn stats(&self) -> Result<TopomStats> {
        let ctx = self.snapshot().await?;
        let mut group = GroupStats {
            models: ctx.groups.values().cloned().collect(),
            stats: BTreeMap::new(),
        };
        {
            let probes = self.probes.servers.lock();
            for s in ctx.groups.values().flat_map(|g| &g.servers) {
                if let Some(p) = probes.get(&s.addr) {
                    group.stats.insert(s.addr.clone(), p.clone());
                }
            }
        }
        let mut proxies: Vec<_> = ctx.proxies.values().cloned().collect();
        proxies.sort_by_key(|p| p.id);
        let mut proxy = ProxyGroupStats {
            models: proxies,
            stats: BTreeMap::new(),
        };
        {
            let probes = self.probes.proxies.lock();
            for p in &proxy.models {
                if let Some(s) = probes.get(&p.token) {
                    proxy.stats.insert(p.token.clone(), s.clone());
                }
            }
        }
        let slot_action = SlotActionStats {
            interval: self.action.interval.load(Ordering::Acquire),
            disabled: self.action.disabled.load(Ordering::Acquire),
            progress: SlotActionProgress {
                status: self.action.progress.lock().clone(),
            },
            executor: self.action.executor.load(Ordering::Acquire),
            pending: pending_actions(&ctx),
            migrating: self.action.migrating.lock().values().cloned().collect(),
        };
        let sentinels = SentinelsStats {
            model: ctx.sentinel.clone(),
            stats: self.probes.sentinels.lock().clone(),
            masters: self.probes.sentinel_masters.lock().clone(),
        };
        Ok(TopomStats {
            closed: self.is_closed(),
            slots: ctx.slots,
            group,
            proxy,
            slot_action,
            sentinels,
            coordinator: self.probes.coordinator.lock().clone(),
        })
    }
}
