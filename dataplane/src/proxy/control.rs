//! The control plane of a running proxy: what the admin API ([`super::admin::AdminApi`])
//! reads and changes, and the jodis registration that follows the proxy's online state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use codis_model::proxy::{
    BackendStats, OpStats, OpsStats, RedisOpStats, STATS_CMDS, STATS_RUNTIME, Sentinel,
    SentinelStats, SessionStats, Slot, Stats,
};
use parking_lot::Mutex;
use tracing::level_filters::LevelFilter;

use super::admin::AdminApi;
use super::cli::parse_log_level;
use super::config::ProxyConfig;
use super::core::Proxy;
use super::logging::LevelHandle;
use super::metrics::{UsageSampler, runtime_stats};
use super::sentinel::SentinelState;

/// The running proxy as the admin API sees it.
#[derive(Debug)]
pub struct Control {
    proxy: Arc<Proxy>,
    config: ProxyConfig,
    model: codis_model::proxy::Proxy,
    xauth: String,
    level: Option<LevelHandle>,
    usage: Arc<UsageSampler>,
    sentinel: Arc<SentinelState>,
    jodis: Mutex<Option<codis_coordinator::jodis::Jodis>>,
    runtime: tokio::runtime::Handle,
}

impl Control {
    /// Wraps a proxy; must be called inside the tokio runtime that serves the admin API.
    pub fn new(
        proxy: Arc<Proxy>,
        config: ProxyConfig,
        model: codis_model::proxy::Proxy,
        xauth: String,
        level: Option<LevelHandle>,
    ) -> Arc<Self> {
        Arc::new(Control {
            usage: UsageSampler::spawn(proxy.closing()),
            proxy,
            config,
            model,
            xauth,
            level,
            sentinel: Arc::new(SentinelState::default()),
            jodis: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The proxy.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Registers the proxy in jodis when `jodis_addr` is set (after going online).
    fn register_jodis(&self) -> Result<(), String> {
        let c = &self.config;
        if c.jodis_addr.is_empty() || self.model.jodis_path.is_empty() {
            return Ok(());
        }
        let mut slot = self.jodis.lock();
        if slot.is_some() {
            return Ok(());
        }
        let data = codis_coordinator::jodis::jodis_data(
            &self.model.proxy_addr,
            &self.model.admin_addr,
            &self.model.start_time,
            &self.model.token,
        );
        let _guard = self.runtime.enter();
        let j = codis_coordinator::jodis::Jodis::start(
            &c.jodis_name,
            &c.jodis_addr,
            &c.jodis_auth,
            c.jodis_timeout.get(),
            &self.model.jodis_path,
            data,
        )
        .map_err(|e| format!("jodis: {e}"))?;
        tracing::info!(path = %self.model.jodis_path, "jodis registration started");
        *slot = Some(j);
        Ok(())
    }

    /// Closes the proxy and removes the jodis node.
    pub async fn close(&self) {
        self.proxy.close();
        self.sentinel.stop();
        let j = self.jodis.lock().take();
        if let Some(j) = j
            && let Err(e) = j.close().await
        {
            tracing::warn!(error = %e, "jodis: removing the node failed");
        }
    }
}

impl AdminApi for Control {
    fn model(&self) -> codis_model::proxy::Proxy {
        self.model.clone()
    }

    fn config_json(&self) -> serde_json::Value {
        self.config.to_json()
    }

    fn xauth(&self) -> String {
        self.xauth.clone()
    }

    fn stats(&self, flags: u32) -> Stats {
        let s = &self.proxy.stats;
        let cmd = if flags & STATS_CMDS != 0 {
            s.commands()
                .into_iter()
                .map(|c| {
                    let k = c.counters;
                    OpStats {
                        opstr: c.opstr,
                        calls: k.calls as i64,
                        usecs: k.usecs as i64,
                        usecs_percall: k.usecs.checked_div(k.calls).unwrap_or(0) as i64,
                        fails: k.fails as i64,
                        redis_errtype: k.redis_errors as i64,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let runtime = (flags & STATS_RUNTIME != 0).then(|| {
            let mut r = runtime_stats(crate::alloc::allocated_bytes() as u64);
            r.num_procs = self.proxy.cfg.threads as i64;
            r
        });

        Stats {
            online: self.proxy.is_online(),
            closed: self.proxy.is_closed(),
            sentinels: SentinelStats {
                servers: self.sentinel.servers.lock().clone(),
                masters: self.sentinel.masters.lock().clone(),
                switched: self.sentinel.switched.load(Ordering::SeqCst),
            },
            ops: OpsStats {
                total: s.total.load(Ordering::Relaxed) as i64,
                fails: s.fails.load(Ordering::Relaxed) as i64,
                redis: RedisOpStats {
                    errors: s.redis_errors.load(Ordering::Relaxed) as i64,
                },
                qps: s.qps.load(Ordering::Relaxed) as i64,
                cmd,
            },
            sessions: SessionStats {
                total: s.sessions_total.load(Ordering::Relaxed) as i64,
                alive: s.sessions_alive.load(Ordering::Relaxed) as i64,
            },
            rusage: self.usage.rusage(),
            backend: BackendStats {
                primary_only: self.proxy.cfg.primary_only,
            },
            runtime,
        }
    }

    fn slots(&self) -> Vec<Slot> {
        self.proxy.router.slots()
    }

    fn fill_slots(
        &self,
        slots: Vec<Slot>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.proxy.is_closed() {
                return Err("use of closed proxy".to_string());
            }
            self.proxy
                .router
                .fill(&slots)
                .await
                .map_err(|e| e.to_string())?;
            // The dashboard's table supersedes a sentinel switch.
            self.sentinel.switched.store(false, Ordering::SeqCst);
            Ok(())
        })
    }

    fn start(&self) -> Result<(), String> {
        self.proxy.start().map_err(str::to_string)?;
        self.register_jodis()
    }

    fn reset_stats(&self) {
        self.proxy.stats.reset();
    }

    fn shutdown(&self) {
        self.proxy.close();
    }

    fn set_log_level(&self, level: &str) -> Result<(), String> {
        let lvl: LevelFilter =
            parse_log_level(level).ok_or_else(|| format!("invalid log level '{level}'"))?;
        match &self.level {
            Some(h) => h.set(lvl),
            None => Ok(()),
        }
    }

    fn set_sentinels(&self, s: Sentinel) -> Result<(), String> {
        if self.proxy.is_closed() {
            return Err("use of closed proxy".to_string());
        }
        let _guard = self.runtime.enter();
        self.sentinel.watch(
            self.proxy.clone(),
            self.config.product_name.clone(),
            s.servers,
        );
        Ok(())
    }

    fn rewatch_sentinels(&self) -> Result<(), String> {
        if self.proxy.is_closed() {
            return Err("use of closed proxy".to_string());
        }
        let servers = self.sentinel.servers.lock().clone();
        let _guard = self.runtime.enter();
        self.sentinel.watch(
            self.proxy.clone(),
            self.config.product_name.clone(),
            servers,
        );
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.proxy.is_closed()
    }
}
