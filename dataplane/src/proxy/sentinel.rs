//! Following redis-sentinel failovers, as Codis's proxy does (`pkg/utils/redis/sentinel.go`).
//!
//! The watching itself (`+switch-master` subscriptions, `SENTINEL masters` by majority, the
//! highest `config-epoch` per `<product>-<gid>`) is `codis_redis::sentinel`, shared with the
//! dashboard. Here: what the proxy does with the result — re-route the slots whose master (or
//! migration source) is in a group whose master moved. The dashboard's next fill clears the
//! `switched` mark it leaves in the stats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::task::JoinHandle;

pub use codis_redis::sentinel::group_of;

use super::core::Proxy;

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
        let task = (!servers.is_empty()).then(|| {
            let state = self.clone();
            let sink: codis_redis::sentinel::MastersSink = Arc::new(move |masters| {
                let (proxy, state) = (proxy.clone(), state.clone());
                Box::pin(async move { switch_masters(&proxy, &masters, &state).await })
            });
            codis_redis::sentinel::watch(product, servers, sink)
        });
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
