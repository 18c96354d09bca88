//! The slot table: for each of the 1024 slots, where its keys live (the master of its group,
//! the group it migrates from, replica groups) and how requests reach them.
//!
//! The table is written by the admin API (`fillslots`) and read by every session on every
//! request. Readers keep a per-thread copy of the table ([`RouteCache`]) and only re-read the
//! shared one when its epoch changes, so the hot path takes no lock. Each route counts the
//! requests in flight through it; a fill swaps the route and then waits until the old one has
//! none left, as Codis does, so that no request routed by the old table is still on its way
//! once the dashboard is told the fill is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use codis_model::slot::MAX_SLOT_NUM;
use parking_lot::RwLock;
use tokio::sync::watch;

pub use codis_model::proxy::Slot;

/// Forwarding method while a slot migrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Move the key first (`SLOTSMGRTTAGONE` on the source), then forward to the target.
    Sync,
    /// Wrap the request in `SLOTSMGRT-EXEC-WRAPPER` on the source; forward to the target when
    /// the key is not there any more.
    SemiAsync,
}

/// The route of one slot.
#[derive(Debug)]
pub struct SlotRoute {
    /// Slot id.
    pub id: usize,
    /// Requests must wait until the slot is filled again.
    pub locked: bool,
    /// Address of the master that owns the slot (`None`: the slot is offline).
    pub backend: Option<Arc<str>>,
    /// Address of the master the slot migrates from.
    pub migrate_from: Option<Arc<str>>,
    /// How requests are forwarded while migrating.
    pub method: Method,
    /// Replica addresses, best group first (empty when reads go to the master only).
    pub replica_groups: Vec<Vec<Arc<str>>>,
    /// The slot as filled, returned by the admin API.
    pub model: Slot,
    /// Requests routed through this route and not yet answered.
    inflight: AtomicUsize,
}

impl SlotRoute {
    fn offline(id: usize) -> Self {
        SlotRoute {
            id,
            locked: false,
            backend: None,
            migrate_from: None,
            method: Method::Sync,
            replica_groups: Vec::new(),
            model: Slot {
                id: id as i64,
                ..Slot::default()
            },
            inflight: AtomicUsize::new(0),
        }
    }

    /// Requests holding this route (tests and diagnostics).
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }
}

/// One request's hold on a slot route, taken by [`RouteCache::acquire`]: the route counts it
/// in flight until the guard is dropped, on every path (reply, error, early return, panic), so
/// a fill waiting for the route can never wait forever.
#[derive(Debug)]
pub struct RouteGuard(Arc<SlotRoute>);

impl std::ops::Deref for RouteGuard {
    type Target = SlotRoute;

    fn deref(&self) -> &SlotRoute {
        &self.0
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a fill was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FillError {
    /// The slot id is out of range.
    #[error("use of invalid slot id")]
    InvalidSlot,
    /// The forward method is neither 0 nor 1.
    #[error("use of invalid forwarder method")]
    InvalidMethod,
}

/// The shared slot table.
#[derive(Debug)]
pub struct Router {
    routes: RwLock<Vec<Arc<SlotRoute>>>,
    epoch: AtomicU64,
    changed: watch::Sender<u64>,
    primary_only: bool,
}

fn addr(s: &str) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| Arc::from(s))
}

impl Router {
    /// A table with every slot offline. `primary_only` ignores replica groups.
    pub fn new(primary_only: bool) -> Self {
        let routes = (0..MAX_SLOT_NUM)
            .map(|i| Arc::new(SlotRoute::offline(i)))
            .collect();
        Router {
            routes: RwLock::new(routes),
            epoch: AtomicU64::new(1),
            changed: watch::channel(1).0,
            primary_only,
        }
    }

    /// The current epoch; it changes with every fill.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A receiver told about every fill (sessions waiting on a locked slot).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The slots as filled (admin API).
    pub fn slots(&self) -> Vec<Slot> {
        self.routes.read().iter().map(|r| r.model.clone()).collect()
    }

    /// Every group master some slot uses (owners and migration sources), sorted: where the
    /// proxy sends SCRIPT and FUNCTION commands that concern every group.
    pub fn masters(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in self.routes.read().iter() {
            out.extend(r.backend.iter().cloned());
            out.extend(r.migrate_from.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Every backend address some slot uses (masters, sources and replicas).
    pub fn addresses(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in self.routes.read().iter() {
            out.extend(r.backend.iter().cloned());
            out.extend(r.migrate_from.iter().cloned());
            for g in &r.replica_groups {
                out.extend(g.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Validates a fill without applying it.
    fn check(slot: &Slot) -> Result<(), FillError> {
        if slot.id < 0 || slot.id as usize >= MAX_SLOT_NUM {
            return Err(FillError::InvalidSlot);
        }
        if !matches!(slot.forward_method, 0 | 1) {
            return Err(FillError::InvalidMethod);
        }
        Ok(())
    }

    fn route_of(&self, slot: &Slot) -> SlotRoute {
        let id = slot.id as usize;
        let replica_groups = if self.primary_only {
            Vec::new()
        } else {
            slot.replica_groups
                .iter()
                .map(|g| g.iter().filter_map(|a| addr(a)).collect::<Vec<_>>())
                .filter(|g| !g.is_empty())
                .collect()
        };
        SlotRoute {
            id,
            locked: slot.locked,
            backend: addr(&slot.backend_addr),
            migrate_from: addr(&slot.migrate_from),
            method: if slot.forward_method == 1 {
                Method::SemiAsync
            } else {
                Method::Sync
            },
            replica_groups,
            model: slot.clone(),
            inflight: AtomicUsize::new(0),
        }
    }

    /// Applies a fill: every slot is validated first (nothing changes if one is invalid), then
    /// swapped; returns once no request routed by a replaced route is still in flight.
    pub async fn fill(&self, slots: &[Slot]) -> Result<(), FillError> {
        for s in slots {
            Self::check(s)?;
        }
        let mut old = Vec::with_capacity(slots.len());
        {
            let mut routes = self.routes.write();
            for s in slots {
                let id = s.id as usize;
                let new = Arc::new(self.route_of(s));
                old.push(std::mem::replace(&mut routes[id], new));
            }
        }
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed.send_replace(epoch);
        for route in old {
            while route.inflight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(())
    }

    /// Takes every slot offline (proxy shutdown).
    pub async fn clear(&self) {
        let slots: Vec<Slot> = (0..MAX_SLOT_NUM)
            .map(|i| Slot {
                id: i as i64,
                ..Slot::default()
            })
            .collect();
        // Offline slots are always valid.
        let _ = self.fill(&slots).await;
    }
}

/// A per-thread copy of the table, refreshed when the router's epoch changes.
#[derive(Debug)]
pub struct RouteCache {
    router: Arc<Router>,
    epoch: u64,
    routes: Vec<Arc<SlotRoute>>,
}

impl RouteCache {
    /// A cache of `router`, filled now.
    pub fn new(router: Arc<Router>) -> Self {
        let mut cache = RouteCache {
            router,
            epoch: 0,
            routes: Vec::new(),
        };
        cache.refresh();
        cache
    }

    /// The router this cache copies.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Re-reads the shared table if it changed; returns true when it did.
    pub fn refresh(&mut self) -> bool {
        let epoch = self.router.epoch();
        if epoch == self.epoch {
            return false;
        }
        let routes = self.router.routes.read();
        self.routes.clear();
        self.routes.extend(routes.iter().cloned());
        self.epoch = epoch;
        true
    }

    /// The route of `slot` for one request, counted as in flight until the guard is dropped.
    /// Never returns a route a concurrent fill has already replaced and stopped waiting for.
    pub fn acquire(&mut self, slot: usize) -> RouteGuard {
        loop {
            self.refresh();
            let route = self.routes[slot].clone();
            route.inflight.fetch_add(1, Ordering::SeqCst);
            let guard = RouteGuard(route);
            if self.router.epoch() == self.epoch {
                return guard;
            }
            // A fill happened between the refresh and the increment: it may not see us (the
            // guard's drop gives the count back).
        }
    }

    /// The current route of `slot`, not counted as in flight (for decisions only).
    pub fn peek(&mut self, slot: usize) -> &Arc<SlotRoute> {
        self.refresh();
        &self.routes[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: i64, backend: &str) -> Slot {
        Slot {
            id,
            backend_addr: backend.into(),
            ..Slot::default()
        }
    }

    #[tokio::test]
    async fn fill_changes_routes_and_epoch() {
        let router = Arc::new(Router::new(false));
        let mut cache = RouteCache::new(router.clone());
        assert!(cache.peek(5).backend.is_none());
        router.fill(&[slot(5, "127.0.0.1:6379")]).await.unwrap();
        assert_eq!(cache.peek(5).backend.as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(router.slots()[5].backend_addr, "127.0.0.1:6379");
        assert_eq!(router.addresses().len(), 1);
    }

    #[tokio::test]
    async fn invalid_fill_changes_nothing() {
        let router = Router::new(false);
        let bad = Slot {
            forward_method: 7,
            ..slot(1, "a:1")
        };
        assert_eq!(
            router.fill(&[slot(0, "a:1"), bad]).await,
            Err(FillError::InvalidMethod)
        );
        assert_eq!(
            router.fill(&[slot(1024, "a:1")]).await,
            Err(FillError::InvalidSlot)
        );
        assert!(router.slots()[0].backend_addr.is_empty());
    }

    #[tokio::test]
    async fn fill_waits_for_inflight_requests() {
        let router = Arc::new(Router::new(false));
        let mut cache = RouteCache::new(router.clone());
        let held = cache.acquire(3);
        let r2 = router.clone();
        let fill = tokio::spawn(async move { r2.fill(&[slot(3, "b:2")]).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !fill.is_finished(),
            "fill must wait for the request in flight"
        );
        drop(held);
        fill.await.unwrap().unwrap();
        assert_eq!(cache.acquire(3).backend.as_deref(), Some("b:2"));
    }
}
