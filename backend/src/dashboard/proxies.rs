//! Proxies: create / online (register a proxy by its admin address), reinit (fill its 1024
//! slots, start it, give it the sentinels) and remove.

use codis_model::proxy::Proxy;

use super::error::{DashboardError, Result, invalid};
use super::topom::{Context, Topom};
use crate::proxy_client::ProxyClient;

impl Topom {
    async fn fetch_proxy(&self, addr: &str) -> Result<(Proxy, ProxyClient)> {
        let p = ProxyClient::model_of(&self.http, addr)
            .await
            .map_err(|source| DashboardError::Proxy {
                what: format!("proxy@{addr} fetch model failed"),
                source,
            })?;
        if p.product_name != self.product() {
            return invalid!(
                "proxy@{addr} serves product '{}', not '{}'",
                p.product_name,
                self.product()
            );
        }
        let c = self.proxy_client(&p);
        c.xping().await.map_err(|source| DashboardError::Proxy {
            what: format!("proxy@{addr} check xauth failed"),
            source,
        })?;
        Ok((p, c))
    }

    /// `proxy/create/:addr`: register a new proxy (its token must be unknown), then reinit it.
    ///
    /// # Errors
    /// Unreachable proxy, wrong product or auth, existing token; coordinator or proxy errors.
    pub async fn proxy_create(&self, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let (mut p, c) = self.fetch_proxy(addr).await?;
        if ctx.proxies.contains_key(&p.token) {
            return invalid!("proxy-[{}] already exists", p.token);
        }
        p.id = max_proxy_id(&ctx) + 1;
        locked.store_proxy(&p, true).await?;
        reinit(&ctx, &p, &c).await
    }

    /// `proxy/online/:addr`: like create, but a known proxy keeps its id (a restarted proxy).
    ///
    /// # Errors
    /// As [`Topom::proxy_create`].
    pub async fn proxy_online(&self, addr: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let (mut p, c) = self.fetch_proxy(addr).await?;
        p.id = match ctx.proxies.get(&p.token) {
            Some(old) => old.id,
            None => max_proxy_id(&ctx) + 1,
        };
        locked.store_proxy(&p, false).await?;
        reinit(&ctx, &p, &c).await
    }

    /// `proxy/reinit/:token`.
    ///
    /// # Errors
    /// Unknown token; proxy errors.
    pub async fn proxy_reinit(&self, token: &str) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let p = ctx.proxy(token)?.clone();
        let c = self.proxy_client(&p);
        reinit(&ctx, &p, &c).await
    }

    /// `proxy/remove/:token/:force`: shut the proxy down and forget it; with `force`, forget
    /// it even when it cannot be reached.
    ///
    /// # Errors
    /// Unknown token; shutdown failure without force; coordinator errors.
    pub async fn proxy_remove(&self, token: &str, force: bool) -> Result<()> {
        let mut locked = self.lock().await?;
        let ctx = locked.context().await?;
        let p = ctx.proxy(token)?.clone();
        if let Err(source) = self.proxy_client(&p).shutdown().await {
            tracing::warn!(proxy = %token, error = %source, force, "proxy shutdown failed");
            if !force {
                return Err(DashboardError::Proxy {
                    what: format!("proxy-[{token}] shutdown failed"),
                    source,
                });
            }
        }
        locked.remove_proxy(token).await?;
        self.probes.proxies.lock().remove(token);
        Ok(())
    }
}

fn max_proxy_id(ctx: &Context) -> i64 {
    ctx.proxies.values().map(|p| p.id).max().unwrap_or(0)
}

/// fillslots (all 1024) → start → sentinels.
async fn reinit(ctx: &Context, p: &Proxy, c: &ProxyClient) -> Result<()> {
    tracing::info!(proxy = %p.token, admin = %p.admin_addr, "proxy reinit");
    let proxy_err = |what: &str| {
        let what = format!("proxy-[{}] {what} failed", p.token);
        move |source| DashboardError::Proxy { what, source }
    };
    let slots = ctx.view().all(Some(p));
    c.fill_slots(&slots).await.map_err(proxy_err("fillslots"))?;
    c.start().await.map_err(proxy_err("start"))?;
    c.set_sentinels(&ctx.sentinel)
        .await
        .map_err(proxy_err("set sentinels"))?;
    Ok(())
}
