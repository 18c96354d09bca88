//! redis-sentinel management (spec §6.8): add and remove sentinels, and resync: make every
//! sentinel monitor exactly this product's group masters (`<product>-<gid>`) with the
//! `sentinel_*` settings, then tell the proxies which sentinels to watch.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::Arc;

use codis_redis::sentinel::{Masters, MastersSink};

use codis_model::topom::SentinelGroup;

use super::error::{DashboardError, Result, invalid};
use super::topom::{Context, Topom};
use crate::redis::{RedisClient, Value};

impl Topom {
    async fn sentinel_client(&self, addr: &str) -> Result<RedisClient> {
        // Sentinels never get the product's password.
        Ok(RedisClient::connect(addr, "", self.config.sentinel_client_timeout.get()).await?)
    }

    /// Whether a sentinel master name is one of this product's (`<product>-<integer>`).
    fn is_our_master(&self, name: &str) -> bool {
        name.strip_prefix(self.product())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|gid| gid.parse::<i64>().is_ok())
    }

    /// This product's masters as one sentinel sees them (`SENTINEL masters` / `slaves`).
    ///
    /// # Errors
    /// Connection or reply errors.
    pub async fn sentinel_monitored(&self, addr: &str) -> Result<BTreeMap<String, SentinelGroup>> {
        let mut c = self.sentinel_client(addr).await?;
        let masters = c.call(&[b"SENTINEL", b"masters"]).await?;
        let mut out = BTreeMap::new();
        for m in masters.as_array().unwrap_or_default() {
            let Some(fields) = m.as_pairs() else { continue };
            let Some(name) = fields.get("name").cloned() else {
                continue;
            };
            if !self.is_our_master(&name) {
                continue;
            }
            let slaves = c.call(&[b"SENTINEL", b"slaves", name.as_bytes()]).await?;
            let slaves = slaves
                .as_array()
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_pairs)
                .collect();
            out.insert(
                name,
                SentinelGroup {
                    master: fields,
                    slaves,
                },
            );
        }
        Ok(out)
    }

    async fn sentinel_remove_ours(&self, addr: &str) -> Result<()> {
        let names: Vec<String> = self.sentinel_monitored(addr).await?.into_keys().collect();
        let mut c = self.sentinel_client(addr).await?;
        for name in names {
            c.call(&[b"SENTINEL", b"REMOVE", name.as_bytes()]).await?;
        }
        Ok(())
    }

    async fn sentinel_monitor_all(&self, addr: &str, ctx: &Context) -> Result<()> {
        let mut c = self.sentinel_client(addr).await?;
        for g in ctx.groups.values() {
            let master = g.master();
            if master.is_empty() {
                continue;
            }
            let (host, port) = master
                .rsplit_once(':')
                .ok_or_else(|| DashboardError::Invalid(format!("bad master address {master}")))?;
            let ip = (host, port.parse::<u16>().unwrap_or(0))
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .map(|a| a.ip().to_string())
                .ok_or_else(|| DashboardError::Invalid(format!("can't resolve {master}")))?;
            let name = format!("{}-{}", self.product(), g.id);
            let quorum = self.config.sentinel_quorum.to_string();
            let _ = c
                .request(&[b"SENTINEL", b"REMOVE", name.as_bytes()])
                .await?;
            c.call(&[
                b"SENTINEL",
                b"MONITOR",
                name.as_bytes(),
                ip.as_bytes(),
                port.as_bytes(),
                quorum.as_bytes(),
            ])
            .await?;
            let mut set: Vec<Vec<u8>> = vec![
                b"SENTINEL".to_vec(),
                b"SET".to_vec(),
                name.clone().into_bytes(),
                b"parallel-syncs".to_vec(),
                self.config.sentinel_parallel_syncs.to_string().into_bytes(),
                b"down-after-milliseconds".to_vec(),
                self.config
                    .sentinel_down_after
                    .get()
                    .as_millis()
                    .to_string()
                    .into_bytes(),
                b"failover-timeout".to_vec(),
                self.config
                    .sentinel_failover_timeout
                    .get()
                    .as_millis()
                    .to_string()
                    .into_bytes(),
            ];
            if !self.config.product_auth.is_empty() {
                set.push(b"auth-pass".to_vec());
                set.push(self.config.product_auth.clone().into_bytes());
            }
            if !self.config.sentinel_notification_script.is_empty() {
                set.push(b"notification-script".to_vec());
                set.push(
                    self.config
                        .sentinel_notification_script
                        .clone()
                        .into_bytes(),
                );
            }
            if !self.config.sentinel_client_reconfig_script.is_empty() {
                set.push(b"client-reconfig-script".to_vec());
                set.push(
                    self.config
                        .sentinel_client_reconfig_script
                        .clone()
                        .into_bytes(),
                );
            }
            let args: Vec<&[u8]> = set.iter().map(Vec::as_slice).collect();
            c.call(&args).await?;
        }
        Ok(())
    }

    /// `sentinels/add/:addr`: check the sentinel answers (`SENTINEL FLUSHCONFIG`), add it,
    /// mark the list out of sync.
    ///
    /// # Errors
    /// Already there, unreachable; coordinator errors.
    pub async fn sentinel_add(&self, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if ctx.sentinel.servers.iter().any(|s| s == addr) {
            return invalid!("sentinel-[{addr}] already exists");
        }
        let mut c = self.sentinel_client(addr).await?;
        c.call(&[b"SENTINEL", b"FLUSHCONFIG"]).await?;
        let mut s = ctx.sentinel.clone();
        s.servers.push(addr.to_string());
        s.out_of_sync = true;
        locked.store_sentinel(&s).await
    }

    /// `sentinels/del/:addr/:force`: stop the sentinel monitoring our groups (errors abort
    /// unless `force`), drop it from the list.
    ///
    /// # Errors
    /// Unknown sentinel; its errors without force; coordinator errors.
    pub async fn sentinel_del(self: &Arc<Self>, addr: &str, force: bool) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        if !ctx.sentinel.servers.iter().any(|s| s == addr) {
            return invalid!("sentinel-[{addr}] doesn't exist");
        }
        let mut s = ctx.sentinel.clone();
        s.out_of_sync = true;
        locked.store_sentinel(&s).await?;
        if let Err(e) = self.sentinel_remove_ours(addr).await {
            tracing::warn!(sentinel = %addr, error = %e, force, "removing our masters failed");
            if !force {
                return Err(e);
            }
        }
        s.servers.retain(|x| x != addr);
        locked.store_sentinel(&s).await?;
        self.rewatch_sentinels(s.servers.clone());
        Ok(())
    }

    /// `sentinels/resync-all`: every sentinel monitors exactly our group masters; the
    /// proxies get the list.
    ///
    /// # Errors
    /// The first sentinel or proxy that failed; coordinator errors.
    pub async fn sentinel_resync_all(self: &Arc<Self>) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let mut s = ctx.sentinel.clone();
        s.out_of_sync = true;
        locked.store_sentinel(&s).await?;
        for addr in &s.servers {
            self.sentinel_remove_ours(addr).await?;
        }
        for addr in &s.servers {
            self.sentinel_monitor_all(addr, &ctx).await?;
        }
        for p in ctx.proxies.values() {
            self.proxy_client(p)
                .set_sentinels(&s)
                .await
                .map_err(|source| DashboardError::Proxy {
                    what: format!("proxy-[{}] set sentinels failed", p.token),
                    source,
                })?;
        }
        s.out_of_sync = false;
        locked.store_sentinel(&s).await?;
        self.rewatch_sentinels(s.servers.clone());
        Ok(())
    }
}

impl Topom {
    /// (Re)starts watching the sentinels' `+switch-master` (none: stops watching).
    pub fn rewatch_sentinels(self: &Arc<Self>, servers: Vec<String>) {
        let task = (!servers.is_empty()).then(|| {
            let me = Arc::downgrade(self);
            let sink: MastersSink = Arc::new(move |masters| {
                let me = me.clone();
                Box::pin(async move {
                    if let Some(me) = me.upgrade()
                        && let Err(e) = me.switch_masters(&masters).await
                    {
                        tracing::error!(error = %e, "sentinels: updating the groups failed");
                    }
                })
            });
            codis_redis::sentinel::watch(self.product().to_string(), servers, sink)
        });
        if let Some(old) = std::mem::replace(&mut *self.sentinel_watch.lock(), task) {
            old.abort();
        }
    }

    /// The sentinels elected these masters: put each at index 0 of its group (found by
    /// address, or by the `run_id` the probes saw), store the group, and push the group's
    /// slots to the proxies (beyond Codis, which left the group out of sync for the operator;
    /// it still does when a proxy cannot be reached).
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn switch_masters(&self, masters: &Masters) -> Result<()> {
        *self.probes.sentinel_masters.lock() = masters
            .iter()
            .map(|(g, a)| (g.to_string(), a.clone()))
            .collect();
        let mut locked = self.lock().await?;
        let mut ctx = locked.context().await?;
        let run_id = |addr: &str| -> Option<String> {
            self.probes
                .servers
                .lock()
                .get(addr)
                .and_then(|s| s.stats.as_ref())
                .and_then(|s| s.get("run_id").cloned())
        };
        for (&gid, addr) in masters {
            let Some(g) = ctx.groups.get(&gid) else {
                continue;
            };
            if g.master() == addr || g.servers.is_empty() {
                continue;
            }
            let wanted = run_id(addr);
            let index = g
                .servers
                .iter()
                .position(|s| s.addr == *addr || (wanted.is_some() && run_id(&s.addr) == wanted));
            let Some(index) = index else {
                tracing::warn!(group = gid, master = %addr, "sentinels elected a server that is not in the group");
                continue;
            };
            let mut g = g.clone();
            tracing::warn!(group = gid, from = %g.master(), to = %g.servers[index].addr, "sentinels switched the master");
            g.servers.swap(0, index);
            g.out_of_sync = true;
            locked.store_group(&g).await?;
            ctx.groups.insert(gid, g.clone());
            let slots: Vec<_> = ctx
                .slots
                .iter()
                .filter(|m| m.group_id == gid || m.action.target_id == gid)
                .cloned()
                .collect();
            match locked.resync_slots(&ctx, &slots).await {
                Ok(()) => {
                    g.out_of_sync = false;
                    locked.store_group(&g).await?;
                    ctx.groups.insert(gid, g);
                }
                Err(e) => {
                    tracing::warn!(group = gid, error = %e, "resync after the switch failed; the group stays out of sync");
                }
            }
        }
        Ok(())
    }
}
