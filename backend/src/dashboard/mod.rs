//! codis-dashboard ("topom"): one product line's cluster state in a coordinator, the HTTP
//! API that changes it, and the loops that probe servers and proxies and migrate slots.
//!
//! # Layout
//! - [`config`]: the `dashboard.toml` file.
//! - [`cli`]: the command line (Codis's flags).
//! - [`topom`]: the state, its cache of the coordinator, the API lock, the lock node.
//! - [`slots`]: the proxies' view of a slot, slot actions, direct assignment.
//! - [`migrate`]: the migration state machine and its executors.
//! - [`rebalance`]: Codis's rebalance plan.
//! - [`groups`]: groups, servers, promotion, SLAVEOF actions.
//! - [`proxies`]: proxy create / online / reinit / remove.
//! - [`sentinels`]: redis-sentinel add / del / resync.
//! - [`stats`]: the probes and `/topom/stats`.
//! - [`api`]: the HTTP routes.
//! - [`error`]: the error type, [`DashboardError`].

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod groups;
pub mod migrate;
pub mod proxies;
pub mod rebalance;
pub mod sentinels;
pub mod slots;
pub mod stats;
pub mod topom;

use std::sync::Arc;

pub use error::DashboardError;
pub use topom::Topom;

use codis_model::topom::Topom as TopomModel;
use tokio::net::TcpListener;

/// Builds the dashboard's model once its admin listener is bound (`bound` = the listener's
/// address as bound; `host_admin` = `--host-admin`).
///
/// # Errors
/// When no address can be advertised.
pub fn identity(
    product: &str,
    bound: &str,
    host_admin: &str,
) -> Result<TopomModel, codis_host::HostError> {
    let admin_addr = codis_host::advertised_addr("tcp", bound, host_admin)?;
    Ok(TopomModel {
        token: codis_host::token(&[product, bound]),
        start_time: codis_host::now_go_string(),
        admin_addr,
        product_name: product.to_string(),
        pid: i64::from(std::process::id()),
        pwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        sys: codis_host::uname_a(),
    })
}

/// Starts the loops and serves the API on `listener` until the dashboard closes (shutdown
/// route or `topom.close()`).
///
/// # Errors
/// Serving errors.
pub async fn serve(state: api::AppState, listener: TcpListener) -> std::io::Result<()> {
    let topom = state.topom.clone();
    let loops = [
        tokio::spawn(topom.clone().run_probes()),
        tokio::spawn(topom.clone().run_slot_actions()),
        tokio::spawn(topom.clone().run_sync_actions()),
    ];
    if let Ok(ctx) = topom.snapshot().await {
        topom.rewatch_sentinels(ctx.sentinel.servers.clone());
    }
    let mut closed = topom.closed_signal();
    let app = api::app(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = closed.wait_for(|c| *c).await;
        })
        .await;
    for l in loops {
        l.abort();
    }
    result
}

/// Holds the dashboard lock for `topom`, as Codis does at start: retries every 2 s while
/// another dashboard holds it (`tries` times; Codis: 16), `remove_lock` first deletes a stale one.
///
/// # Errors
/// The last failure.
pub async fn take_lock(
    topom: &Arc<Topom>,
    remove_lock: bool,
    tries: u32,
) -> Result<(), DashboardError> {
    if remove_lock {
        let path = codis_coordinator::paths::topom_path(topom.product());
        tracing::warn!(path = %path, "removing the dashboard lock (--remove-lock)");
        topom.coordinator.delete(&path).await?;
    }
    let mut last = None;
    for attempt in 0..tries.max(1) {
        match topom.acquire_lock().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "can't take the dashboard lock; retrying in 2s");
                last = Some(e);
            }
        }
        if attempt + 1 < tries {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
    Err(last.unwrap_or(DashboardError::Closed))
}
