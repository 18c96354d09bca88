//! The dashboard's state: the product's cluster model, cached from the coordinator, and the
//! one mutex that serialises every change (Codis's `Topom`).
//!
//! - The coordinator is the truth. The cache is filled lazily and dropped wholesale after
//!   any failed write (so a write whose outcome is unknown is re-read), and on
//!   `PUT /api/topom/reload`.
//! - Every mutation runs under [`Topom::lock`]: read the context, check, write the nodes one by
//!   one, push the proxies. Background loops take the same lock only for short steps.
//! - Stats (server INFO, proxy stats, migration progress) live outside the lock, so
//!   `/topom/stats` answers even while a long operation holds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use codis_coordinator::{Coordinator, paths};
use codis_model::MAX_SLOT_NUM;
use codis_model::proxy::{Proxy, Sentinel, Slot};
use codis_model::topom::{
    CoordinatorStats, Group, ProxyStats, RedisStats, SlotMapping, SlotMigration,
    Topom as TopomModel,
};
use parking_lot::Mutex as SyncMutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard, watch};

use super::config::DashboardConfig;
use super::error::{DashboardError, Result, invalid};
use super::slots::SlotView;
use crate::proxy_client::{HttpClient, ProxyClient};

/// How long the dashboard's coordinator session lives (Codis: 1 minute).
pub const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(60);

/// The cached coordinator data; `None` = not loaded (or dropped after a failed write).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    slots: Option<Vec<SlotMapping>>,
    groups: Option<BTreeMap<i64, Group>>,
    proxies: Option<BTreeMap<String, Proxy>>,
    sentinel: Option<Sentinel>,
}

/// A consistent view of the cluster model, taken under the lock.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// All 1024 slots, by id.
    pub slots: Vec<SlotMapping>,
    /// Groups by id.
    pub groups: BTreeMap<i64, Group>,
    /// Proxies by token.
    pub proxies: BTreeMap<String, Proxy>,
    /// Sentinels.
    pub sentinel: Sentinel,
    /// Every Slot's `forward_method`.
    pub method: i64,
}

impl Context {
    /// A group, or an error naming it.
    ///
    /// # Errors
    /// [`DashboardError::Invalid`] when it does not exist.
    pub fn group(&self, gid: i64) -> Result<&Group> {
        self.groups
            .get(&gid)
            .ok_or_else(|| DashboardError::Invalid(format!("group-[{gid}] doesn't exist")))
    }

    /// A slot, or an error naming it.
    ///
    /// # Errors
    /// [`DashboardError::Invalid`] for an id outside 0..1024.
    pub fn slot(&self, sid: i64) -> Result<&SlotMapping> {
        usize::try_from(sid)
            .ok()
            .and_then(|i| self.slots.get(i))
            .ok_or_else(|| DashboardError::Invalid(format!("slot-[{sid}] doesn't exist")))
    }

    /// A proxy by token, or an error naming it.
    ///
    /// # Errors
    /// [`DashboardError::Invalid`] when it does not exist.
    pub fn proxy(&self, token: &str) -> Result<&Proxy> {
        self.proxies
            .get(token)
            .ok_or_else(|| DashboardError::Invalid(format!("proxy-[{token}] doesn't exist")))
    }

    /// The master of a group, or empty.
    pub fn master(&self, gid: i64) -> &str {
        self.groups.get(&gid).map_or("", Group::master)
    }

    /// The largest slot action index (0 when none).
    pub fn max_slot_action_index(&self) -> i64 {
        self.slots.iter().map(|m| m.action.index).max().unwrap_or(0)
    }

    /// The largest server sync action index (0 when none).
    pub fn max_sync_action_index(&self) -> i64 {
        self.groups
            .values()
            .flat_map(|g| &g.servers)
            .map(|s| s.action.index)
            .max()
            .unwrap_or(0)
    }

    /// True when some slot is served by, or moving to, the group.
    pub fn is_group_in_use(&self, gid: i64) -> bool {
        self.slots
            .iter()
            .any(|m| m.group_id == gid || m.action.target_id == gid)
    }

    /// The group that holds `addr`, and its index there.
    pub fn find_server(&self, addr: &str) -> Option<(i64, usize)> {
        self.groups.values().find_map(|g| {
            g.servers
                .iter()
                .position(|s| s.addr == addr)
                .map(|i| (g.id, i))
        })
    }

    /// The proxies' view of these slots (see `slots.rs`).
    pub fn view(&self) -> SlotView<'_> {
        SlotView::new(self)
    }
}

/// See [`Locked::executor_view`].
#[derive(Debug, Clone)]
pub struct ExecutorView {
    /// The slot's mapping.
    pub mapping: SlotMapping,
    /// Master of the source group (empty when offline).
    pub from: String,
    /// Master of the target group.
    pub dest: String,
    /// Either group is promoting.
    pub promoting: bool,
}

/// Counters and switches of the migration machinery (Codis's `topom.action`).
#[derive(Debug, Default)]
pub struct ActionState {
    /// Microseconds slept between migration steps.
    pub interval: AtomicI64,
    /// Starting or continuing migrations is paused.
    pub disabled: AtomicBool,
    /// The last status line.
    pub progress: SyncMutex<String>,
    /// Running migration executors.
    pub executor: AtomicI64,
    /// Beyond Codis: per slot, what is moving right now.
    pub migrating: SyncMutex<BTreeMap<i64, SlotMigration>>,
}

/// Probe results, refreshed by the background loops.
#[derive(Debug, Default)]
pub struct Probes {
    /// Server address → INFO.
    pub servers: SyncMutex<BTreeMap<String, RedisStats>>,
    /// Proxy token → stats.
    pub proxies: SyncMutex<BTreeMap<String, ProxyStats>>,
    /// Sentinel address → INFO.
    pub sentinels: SyncMutex<BTreeMap<String, RedisStats>>,
    /// Group id → master elected by the sentinels.
    pub sentinel_masters: SyncMutex<BTreeMap<String, String>>,
    /// The coordinator's health.
    pub coordinator: SyncMutex<CoordinatorStats>,
    /// The last context that loaded, for stats while the coordinator is down.
    pub last_context: SyncMutex<Option<Context>>,
}

/// One product's dashboard.
#[derive(Debug)]
pub struct Topom {
    /// The config (flags applied).
    pub config: DashboardConfig,
    /// The coordinator client.
    pub coordinator: Arc<dyn Coordinator>,
    /// Our identity, stored in the lock node.
    pub model: TopomModel,
    /// The dashboard xauth.
    pub xauth: String,
    /// Migration switches and progress.
    pub action: ActionState,
    /// What the loops learned.
    pub probes: Probes,
    /// HTTP client for proxies.
    pub http: HttpClient,
    cache: Mutex<Cache>,
    /// The `+switch-master` watcher, while sentinels are configured.
    pub(crate) sentinel_watch: SyncMutex<Option<tokio::task::JoinHandle<()>>>,
    online: AtomicBool,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
}

/// The held API lock with the cache behind it.
pub struct Locked<'a> {
    topom: &'a Topom,
    cache: MutexGuard<'a, Cache>,
}

impl std::fmt::Debug for Locked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locked")
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing these plain structs cannot fail.
    let _ = v.serialize(&mut ser);
    out
}

fn decode<T: DeserializeOwned>(path: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| DashboardError::BadData {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

impl Topom {
    /// A dashboard for `config.product_name` over `coordinator`, identified by `model`. Does
    /// not take the lock: see [`Topom::acquire_lock`].
    pub fn new(
        config: DashboardConfig,
        coordinator: Arc<dyn Coordinator>,
        model: TopomModel,
    ) -> Arc<Topom> {
        let xauth = codis_model::auth::dashboard_xauth(&config.product_name);
        let (shutdown, _) = watch::channel(false);
        let coordinator_stats = CoordinatorStats {
            name: coordinator.backend().name().to_string(),
            addr: config.coordinator_addr.clone(),
            online: true,
            ..CoordinatorStats::default()
        };
        let topom = Topom {
            config,
            coordinator,
            model,
            xauth,
            action: ActionState::default(),
            probes: Probes::default(),
            http: HttpClient::new(),
            cache: Mutex::new(Cache::default()),
            sentinel_watch: SyncMutex::new(None),
            online: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown,
        };
        *topom.probes.coordinator.lock() = coordinator_stats;
        Arc::new(topom)
    }

    /// The product name.
    pub fn product(&self) -> &str {
        &self.config.product_name
    }

    /// True once the lock is held and until close.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire) && !self.is_closed()
    }

    /// True after close.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves when the dashboard closes.
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Sleeps, returning early (false) when the dashboard closes.
    pub async fn sleep(&self, d: Duration) -> bool {
        let mut rx = self.closed_signal();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !self.is_closed(),
            _ = rx.changed() => false,
        }
    }

    /// Takes the product's lock: creates `/codis3/<product>/topom` with our model.
    ///
    /// Beyond Codis: a lock left by a dashboard that crashed on this very host and port (same
    /// token, its pid no longer running) is taken over, since we already hold its admin port;
    /// any other existing lock is refused, naming its holder.
    ///
    /// # Errors
    /// [`DashboardError::Invalid`] when another dashboard holds the lock; coordinator errors.
    pub async fn acquire_lock(&self) -> Result<()> {
        let path = paths::topom_path(self.product());
        let data = encode(&self.model);
        match self.coordinator.create(&path, &data).await {
            Ok(()) => {}
            Err(codis_coordinator::Error::NodeExists(_)) => {
                let held = self.coordinator.read(&path, false).await?;
                let holder: Option<TopomModel> =
                    held.as_deref().and_then(|d| serde_json::from_slice(d).ok());
                match holder {
                    Some(h) if h.token == self.model.token && !pid_alive(h.pid) => {
                        tracing::warn!(
                            pid = h.pid,
                            "taking over the stale lock of a dashboard that died on this host and port"
                        );
                        self.coordinator.update(&path, &data).await?;
                    }
                    Some(h) => {
                        return invalid!(
                            "product '{}' is locked by the dashboard at {} (pid {}, started {}); stop it, or remove a stale lock with --remove-lock",
                            self.product(),
                            h.admin_addr,
                            h.pid,
                            h.start_time
                        );
                    }
                    None => {
                        return invalid!(
                            "product '{}' is locked ({path} exists); remove a stale lock with --remove-lock",
                            self.product()
                        );
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.online.store(true, Ordering::Release);
        Ok(())
    }

    /// Closes: stops the loops and releases the lock.
    ///
    /// # Errors
    /// Coordinator errors while deleting the lock.
    pub async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _ = self.shutdown.send(true);
        if let Some(w) = self.sentinel_watch.lock().take() {
            w.abort();
        }
        let was_online = self.online.swap(false, Ordering::AcqRel);
        // Wait for the operation in progress, then release the lock.
        let _guard = self.cache.lock().await;
        if was_online {
            self.coordinator
                .delete(&paths::topom_path(self.product()))
                .await?;
        }
        let _ = self.coordinator.close().await;
        Ok(())
    }

    /// Takes the API lock.
    ///
    /// # Errors
    /// [`DashboardError::Closed`] after close.
    pub async fn lock(&self) -> Result<Locked<'_>> {
        if self.is_closed() {
            return Err(DashboardError::Closed);
        }
        let cache = self.cache.lock().await;
        if self.is_closed() {
            return Err(DashboardError::Closed);
        }
        Ok(Locked { topom: self, cache })
    }

    /// A client of one proxy's admin API.
    pub fn proxy_client(&self, p: &Proxy) -> ProxyClient {
        ProxyClient::new(
            self.http.clone(),
            &p.admin_addr,
            self.product(),
            &self.config.product_auth,
            &p.token,
        )
    }

    /// The context for read-only use (stats): loads under the lock, or falls back to the last
    /// context that loaded when the coordinator is unreachable or the lock is busy.
    ///
    /// # Errors
    /// When nothing was ever loaded and the coordinator fails.
    pub async fn snapshot(&self) -> Result<Context> {
        // Stats never wait behind a long operation (a proxy that does not answer holds the
        // lock for up to a minute): while the lock is busy, the last context serves.
        if self.cache.try_lock().is_err()
            && let Some(ctx) = self.probes.last_context.lock().clone()
        {
            return Ok(ctx);
        }
        let loaded = match self.lock().await {
            Ok(mut locked) => locked.context().await,
            Err(e) => Err(e),
        };
        match loaded {
            Ok(ctx) => Ok(ctx),
            Err(e) => self.probes.last_context.lock().clone().ok_or(e),
        }
    }
}

/// True when a process with this pid runs on this host.
fn pid_alive(pid: i64) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Locked<'_> {
    /// The dashboard.
    pub fn topom(&self) -> &Topom {
        self.topom
    }

    /// Drops the cache: the next context is read from the coordinator.
    pub fn reload(&mut self) {
        *self.cache = Cache::default();
    }

    /// The current model, reading what is not cached.
    ///
    /// # Errors
    /// Coordinator or decoding errors.
    pub async fn context(&mut self) -> Result<Context> {
        let result = self.fill().await;
        if result.is_err() {
            self.reload();
        }
        result?;
        let ctx = Context {
            slots: self.cache.slots.clone().unwrap_or_default(),
            groups: self.cache.groups.clone().unwrap_or_default(),
            proxies: self.cache.proxies.clone().unwrap_or_default(),
            sentinel: self.cache.sentinel.clone().unwrap_or_default(),
            method: self.topom.config.forward_method(),
        };
        *self.topom.probes.last_context.lock() = Some(ctx.clone());
        Ok(ctx)
    }

    async fn fill(&mut self) -> Result<()> {
        let coord = self.topom.coordinator.clone();
        let product = self.topom.product().to_string();
        if self.cache.slots.is_none() {
            let mut slots: Vec<SlotMapping> =
                (0..MAX_SLOT_NUM as i64).map(SlotMapping::offline).collect();
            for path in coord.list(&paths::slots_dir(&product), false).await? {
                if let Some(data) = coord.read(&path, false).await? {
                    let m: SlotMapping = decode(&path, &data)?;
                    match usize::try_from(m.id).ok().and_then(|i| slots.get_mut(i)) {
                        Some(slot) => *slot = m,
                        None => {
                            return Err(DashboardError::BadData {
                                path,
                                reason: format!("slot id {} out of range", m.id),
                            });
                        }
                    }
                }
            }
            self.cache.slots = Some(slots);
        }
        if self.cache.groups.is_none() {
            let mut groups = BTreeMap::new();
            for path in coord.list(&paths::group_dir(&product), false).await? {
                if let Some(data) = coord.read(&path, false).await? {
                    let g: Group = decode(&path, &data)?;
                    groups.insert(g.id, g);
                }
            }
            self.cache.groups = Some(groups);
        }
        if self.cache.proxies.is_none() {
            let mut proxies = BTreeMap::new();
            for path in coord.list(&paths::proxy_dir(&product), false).await? {
                if let Some(data) = coord.read(&path, false).await? {
                    let p: Proxy = decode(&path, &data)?;
                    proxies.insert(p.token.clone(), p);
                }
            }
            self.cache.proxies = Some(proxies);
        }
        if self.cache.sentinel.is_none() {
            let path = paths::sentinel_path(&product);
            let sentinel = match coord.read(&path, false).await? {
                Some(data) => decode(&path, &data)?,
                None => Sentinel::default(),
            };
            self.cache.sentinel = Some(sentinel);
        }
        Ok(())
    }

    /// What a migration executor needs before each step, read without copying the whole
    /// model: the slot's mapping, the two masters, and whether either group is promoting.
    ///
    /// # Errors
    /// Coordinator errors; a bad slot id.
    pub async fn executor_view(&mut self, sid: i64) -> Result<ExecutorView> {
        if let Err(e) = self.fill().await {
            self.reload();
            return Err(e);
        }
        let slots = self.cache.slots.as_deref().unwrap_or_default();
        let mapping = usize::try_from(sid)
            .ok()
            .and_then(|i| slots.get(i))
            .cloned()
            .ok_or_else(|| DashboardError::Invalid(format!("slot-[{sid}] doesn't exist")))?;
        let groups = self.cache.groups.as_ref();
        let group = |gid: i64| groups.and_then(|g| g.get(&gid));
        let master = |gid: i64| group(gid).map_or(String::new(), |g| g.master().to_string());
        let promoting = |gid: i64| group(gid).is_some_and(|g| !g.promoting.state.is_empty());
        Ok(ExecutorView {
            from: master(mapping.group_id),
            dest: master(mapping.action.target_id),
            promoting: promoting(mapping.group_id) || promoting(mapping.action.target_id),
            mapping,
        })
    }

    /// Runs a write; a failure drops the cache (the write may or may not have happened).
    async fn write(
        &mut self,
        op: impl std::future::Future<Output = codis_coordinator::Result<()>>,
    ) -> Result<()> {
        match op.await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "coordinator write failed; reloading the cache");
                self.reload();
                Err(e.into())
            }
        }
    }

    /// Stores one slot mapping.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn store_slot(&mut self, m: &SlotMapping) -> Result<()> {
        self.store_slots(std::slice::from_ref(m)).await
    }

    /// Stores several slot mappings (a few writes in flight at once).
    ///
    /// # Errors
    /// Coordinator errors (some of the slots may be written).
    pub async fn store_slots(&mut self, ms: &[SlotMapping]) -> Result<()> {
        let coord = self.topom.coordinator.clone();
        let product = self.topom.product().to_string();
        for chunk in ms.chunks(32) {
            let writes = chunk.iter().map(|m| {
                let path = paths::slot_path(&product, u32::try_from(m.id).unwrap_or(0));
                let data = encode(m);
                let coord = coord.clone();
                async move { coord.update(&path, &data).await }
            });
            let all = async {
                for r in futures_util::future::join_all(writes).await {
                    r?;
                }
                Ok(())
            };
            self.write(all).await?;
            if let Some(slots) = self.cache.slots.as_mut() {
                for m in chunk {
                    if let Some(s) = usize::try_from(m.id).ok().and_then(|i| slots.get_mut(i)) {
                        *s = m.clone();
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates or replaces a group node.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn store_group(&mut self, g: &Group) -> Result<()> {
        let path = paths::group_path(self.topom.product(), u32::try_from(g.id).unwrap_or(0));
        let coord = self.topom.coordinator.clone();
        let data = encode(g);
        self.write(async move { coord.update(&path, &data).await })
            .await?;
        if let Some(groups) = self.cache.groups.as_mut() {
            groups.insert(g.id, g.clone());
        }
        Ok(())
    }

    /// Deletes a group node.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn remove_group(&mut self, gid: i64) -> Result<()> {
        let path = paths::group_path(self.topom.product(), u32::try_from(gid).unwrap_or(0));
        let coord = self.topom.coordinator.clone();
        self.write(async move { coord.delete(&path).await }).await?;
        if let Some(groups) = self.cache.groups.as_mut() {
            groups.remove(&gid);
        }
        Ok(())
    }

    /// Creates (`create` = true, failing if present) or replaces a proxy node.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn store_proxy(&mut self, p: &Proxy, create: bool) -> Result<()> {
        let path = paths::proxy_path(self.topom.product(), &p.token);
        let coord = self.topom.coordinator.clone();
        let data = encode(p);
        self.write(async move {
            if create {
                coord.create(&path, &data).await
            } else {
                coord.update(&path, &data).await
            }
        })
        .await?;
        if let Some(proxies) = self.cache.proxies.as_mut() {
            proxies.insert(p.token.clone(), p.clone());
        }
        Ok(())
    }

    /// Deletes a proxy node.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn remove_proxy(&mut self, token: &str) -> Result<()> {
        let path = paths::proxy_path(self.topom.product(), token);
        let coord = self.topom.coordinator.clone();
        self.write(async move { coord.delete(&path).await }).await?;
        if let Some(proxies) = self.cache.proxies.as_mut() {
            proxies.remove(token);
        }
        Ok(())
    }

    /// Stores the sentinel list.
    ///
    /// # Errors
    /// Coordinator errors.
    pub async fn store_sentinel(&mut self, s: &Sentinel) -> Result<()> {
        let path = paths::sentinel_path(self.topom.product());
        let coord = self.topom.coordinator.clone();
        let data = encode(s);
        self.write(async move { coord.update(&path, &data).await })
            .await?;
        self.cache.sentinel = Some(s.clone());
        Ok(())
    }

    /// Pushes the proxies' view of `slots` to every proxy, all at once.
    ///
    /// # Errors
    /// The first proxy that failed (the others may have taken the new table).
    pub async fn resync_slots(&self, ctx: &Context, slots: &[SlotMapping]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let view = ctx.view();
        let calls = ctx.proxies.values().map(|p| {
            let table: Vec<Slot> = slots.iter().map(|m| view.to_slot(m, Some(p))).collect();
            let client = self.topom.proxy_client(p);
            let token = p.token.clone();
            async move { (token, client.fill_slots(&table).await) }
        });
        for (token, result) in futures_util::future::join_all(calls).await {
            if let Err(source) = result {
                tracing::error!(proxy = %token, error = %source, "resync slots failed");
                return Err(DashboardError::Proxy {
                    what: format!("proxy-[{token}] resync slots failed"),
                    source,
                });
            }
        }
        Ok(())
    }
}
