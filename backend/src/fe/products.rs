//! The product lines the fe knows and what their dashboards last said.
//!
//! Product lines come from three sources, merged by name: the coordinator (every product under
//! `/codis3` with a dashboard lock), a `--dashboard-list` file, and product lines registered
//! through the API (SQLite). Discovery runs every few seconds; a coordinator that is down keeps
//! the last list. Each product line has one poll task that reads its dashboard's overview
//! (`GET /topom`) every interval with a bounded timeout, whatever the number of browsers, and
//! every request is served from that snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use codis_coordinator::Coordinator;
use codis_model::fe::{MigrationOverview, MigrationProgress, MigrationRun, ProductSummary};
use codis_model::topom::{Topom, TopomOverview, TopomStats};
use parking_lot::RwLock;
use sqlx::SqlitePool;
use tokio::task::JoinHandle;

use super::db::now_ms;
use super::history;

/// Where a product line was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Under `/codis3` in the coordinator.
    Coordinator,
    /// The `--dashboard-list` file.
    List,
    /// `POST /api/v1/products`.
    Registered,
}

impl Source {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Coordinator => "coordinator",
            Source::List => "list",
            Source::Registered => "registered",
        }
    }
}

/// What the last polls said.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The last overview that was read (kept when the dashboard stops answering).
    pub overview: Option<Arc<TopomOverview>>,
    /// The last poll's error (none: it answered).
    pub error: Option<String>,
    /// When the dashboard last answered (ms).
    pub updated_at: i64,
    /// The last poll ended (ms).
    pub polled_at: i64,
    /// When the poll that read `overview` began (ms): the overview shows every change the
    /// dashboard answered before then.
    pub read_from: i64,
    /// Per migrating slot: (moved, time ms, keys/s).
    rates: HashMap<i64, (i64, i64, f64)>,
    /// Migrations accepted through the fe, oldest first.
    runs: Vec<Run>,
    /// The last history sample (ms).
    last_sample: i64,
    /// The summary as of the last poll (isolation fields unset).
    pub summary: Option<ProductSummary>,
    /// The overview as JSON, serialised once per poll.
    pub topom_json: Option<bytes::Bytes>,
}

impl Snapshot {
    /// The stats of the last overview read, if it had any.
    pub fn stats(&self) -> Option<&TopomStats> {
        self.overview.as_ref().and_then(|o| o.stats.as_ref())
    }
}

/// One product line.
#[derive(Debug)]
pub struct Product {
    /// Its name.
    pub name: String,
    /// Its dashboard's admin address.
    pub dashboard: RwLock<String>,
    /// Where it was found.
    pub source: RwLock<Source>,
    /// The last polls.
    pub snapshot: RwLock<Snapshot>,
    poller: RwLock<Option<JoinHandle<()>>>,
}

impl Drop for Product {
    fn drop(&mut self) {
        if let Some(h) = self.poller.write().take() {
            h.abort();
        }
    }
}

/// Polling settings.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// Between two polls of one dashboard.
    pub interval: Duration,
    /// A poll that takes longer fails with a timeout.
    pub timeout: Duration,
    /// Between two discoveries.
    pub discover_every: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
            discover_every: Duration::from_secs(5),
        }
    }
}

/// Every product line.
#[derive(Debug)]
pub struct Registry {
    products: RwLock<BTreeMap<String, Arc<Product>>>,
    /// The last lists read from the list file and the database, kept when a read fails.
    last_list: parking_lot::Mutex<Vec<(String, String)>>,
    last_registered: parking_lot::Mutex<Vec<(String, String)>>,
    http: reqwest::Client,
    db: SqlitePool,
    coordinator: Option<Arc<dyn Coordinator>>,
    dashboard_list: Option<std::path::PathBuf>,
    /// Polling settings.
    pub policy: PollPolicy,
    /// Bumped by every poll; caches derived from every product line compare it.
    pub generation: std::sync::atomic::AtomicU64,
    /// The isolation inventory, with the generation it was built at.
    pub inventory_cache: parking_lot::Mutex<Option<(u64, Arc<super::isolation::Inventory>)>>,
}

impl Registry {
    /// A registry with no product line yet; call [`Registry::discover`] or
    /// [`Registry::spawn_discovery`].
    pub fn new(
        db: SqlitePool,
        coordinator: Option<Arc<dyn Coordinator>>,
        dashboard_list: Option<std::path::PathBuf>,
        policy: PollPolicy,
    ) -> Arc<Registry> {
        let http = reqwest::Client::builder()
            .connect_timeout(policy.timeout)
            .timeout(policy.timeout)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Arc::new(Registry {
            products: RwLock::new(BTreeMap::new()),
            last_list: parking_lot::Mutex::new(Vec::new()),
            last_registered: parking_lot::Mutex::new(Vec::new()),
            http,
            db,
            coordinator,
            dashboard_list,
            policy,
            generation: std::sync::atomic::AtomicU64::new(0),
            inventory_cache: parking_lot::Mutex::new(None),
        })
    }

    /// The HTTP client used for dashboards (bounded timeouts).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One product line.
    pub fn get(&self, name: &str) -> Option<Arc<Product>> {
        self.products.read().get(name).cloned()
    }

    /// Every product line, by name.
    pub fn all(&self) -> Vec<Arc<Product>> {
        self.products.read().values().cloned().collect()
    }

    /// Every product name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.products.read().keys().cloned().collect()
    }

    /// Reads every source and adds, updates or removes product lines.
    pub async fn discover(self: &Arc<Self>) {
        let mut found: BTreeMap<String, (String, Source)> = BTreeMap::new();
        let mut coordinator_ok = true;
        if let Some(c) = &self.coordinator {
            match list_coordinator(c.as_ref()).await {
                Ok(list) => {
                    for (name, dash) in list {
                        found.insert(name, (dash, Source::Coordinator));
                    }
                }
                Err(e) => {
                    coordinator_ok = false;
                    tracing::warn!(
                        "codis-fe: coordinator listing failed, keeping the last list: {e}"
                    );
                }
            }
        }
        if let Some(path) = &self.dashboard_list {
            match read_dashboard_list(path) {
                Ok(list) => *self.last_list.lock() = list,
                Err(e) => tracing::warn!(
                    "codis-fe: {}: {e}; keeping the last list read",
                    path.display()
                ),
            }
            for (name, dash) in self.last_list.lock().iter() {
                found
                    .entry(name.clone())
                    .or_insert((dash.clone(), Source::List));
            }
        }
        match sqlx::query_as::<_, (String, String)>("SELECT name, dashboard FROM products")
            .fetch_all(&self.db)
            .await
        {
            Ok(rows) => *self.last_registered.lock() = rows,
            Err(e) => tracing::warn!("codis-fe: registered products: {e}; keeping the last list"),
        }
        for (name, dash) in self.last_registered.lock().iter() {
            found
                .entry(name.clone())
                .or_insert((dash.clone(), Source::Registered));
        }
        let mut products = self.products.write();
        products.retain(|name, p| {
            found.contains_key(name) || (!coordinator_ok && *p.source.read() == Source::Coordinator)
        });
        for (name, (dash, source)) in found {
            if let Some(p) = products.get(&name) {
                *p.dashboard.write() = dash;
                *p.source.write() = source;
                continue;
            }
            let p = Arc::new(Product {
                name: name.clone(),
                dashboard: RwLock::new(dash),
                source: RwLock::new(source),
                snapshot: RwLock::new(Snapshot::default()),
                poller: RwLock::new(None),
            });
            let handle = tokio::spawn(poll_loop(Arc::downgrade(&p), self.clone()));
            *p.poller.write() = Some(handle);
            products.insert(name, p);
        }
    }

    /// Runs discovery now and then every `discover_every`.
    pub fn spawn_discovery(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.discover().await;
                tokio::time::sleep(me.policy.discover_every).await;
            }
        })
    }

    /// Polls one product line's dashboard now (tests, and right after a change).
    pub async fn poll_now(&self, p: &Product) {
        poll_once(p, self).await;
    }
}

async fn list_coordinator(
    c: &dyn Coordinator,
) -> Result<Vec<(String, String)>, codis_coordinator::Error> {
    let mut out = Vec::new();
    for path in c.list(codis_coordinator::paths::CODIS_DIR, false).await? {
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        if codis_coordinator::paths::validate_product(&name).is_err() {
            continue;
        }
        let lock = codis_coordinator::paths::topom_path(&name);
        if let Some(data) = c.read(&lock, false).await?
            && let Ok(t) = serde_json::from_slice::<Topom>(&data)
        {
            out.push((name, t.admin_addr));
        }
    }
    Ok(out)
}

/// Reads a Codis `--dashboard-list` file: `[{"name": P, "dashboard": ADDR}]`.
///
/// # Errors
/// Unreadable file or bad JSON.
pub fn read_dashboard_list(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        dashboard: String,
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let list: Vec<Entry> = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    Ok(list
        .into_iter()
        .filter(|e| codis_coordinator::paths::validate_product(&e.name).is_ok())
        .map(|e| (e.name, e.dashboard))
        .collect())
}

async fn poll_loop(p: std::sync::Weak<Product>, reg: Arc<Registry>) {
    loop {
        let Some(product) = p.upgrade() else { return };
        poll_once(&product, &reg).await;
        drop(product);
        tokio::time::sleep(reg.policy.interval).await;
    }
}

async fn poll_once(p: &Product, reg: &Registry) {
    // What the overview can show began no later than this.
    let started = now_ms();
    let dash = p.dashboard.read().clone();
    let result = if dash.is_empty() {
        Err("the product has no dashboard address (is its dashboard running?)".to_string())
    } else {
        fetch_overview(&reg.http, &dash).await
    };
    let now = now_ms();
    let mut names = Vec::new();
    let sample = {
        let mut s = p.snapshot.write();
        s.polled_at = now;
        match result {
            // A slower poll that began before the one already kept would put an older
            // picture back (and a change just made would seem undone).
            Ok(_) if started < s.read_from => None,
            Ok(mut ov) => {
                // Secrets never leave the poller: the fe serves this overview to viewers.
                if let Some(cfg) = ov.config.as_object_mut() {
                    cfg.retain(|k, _| !k.ends_with("_auth"));
                }
                if let Some(stats) = &ov.stats {
                    names = stats
                        .group
                        .models
                        .iter()
                        .flat_map(|g| g.servers.iter().map(|s| s.addr.clone()))
                        .collect();
                }
                if ov.model.product_name != p.name && !ov.model.product_name.is_empty() {
                    s.error = Some(format!(
                        "the dashboard at {dash} serves product {:?}, not {:?}",
                        ov.model.product_name, p.name
                    ));
                    None
                } else {
                    update_rates(&mut s, &ov, now);
                    update_runs(&mut s, &ov, started, now);
                    s.topom_json = serde_json::to_vec(&ov).ok().map(bytes::Bytes::from);
                    s.overview = Some(Arc::new(ov));
                    s.read_from = started;
                    s.error = None;
                    s.updated_at = now;
                    // A sample is taken from the first poll one poll interval short of
                    // SAMPLE_EVERY_MS after the last one (8 s with 2 s polls), so samples
                    // are never more than SAMPLE_EVERY_MS apart.
                    if now - s.last_sample >= sample_after(reg.policy.interval) {
                        s.last_sample = now;
                        let t = totals(s.overview.as_deref());
                        Some((now, t))
                    } else {
                        None
                    }
                }
            }
            Err(e) => {
                s.error = Some(e);
                None
            }
        }
    };
    let fresh = compute_summary(p, &p.snapshot.read());
    p.snapshot.write().summary = Some(fresh);
    reg.generation
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    super::isolation::resolve(names).await;
    if let Some((time, t)) = sample {
        history::store(&reg.db, &p.name, time, t.ops, t.memory, t.keys).await;
    }
}

/// Milliseconds after a history sample from which the next poll takes one.
fn sample_after(poll_interval: Duration) -> i64 {
    let interval = i64::try_from(poll_interval.as_millis()).unwrap_or(i64::MAX);
    history::SAMPLE_EVERY_MS - interval.min(history::SAMPLE_EVERY_MS / 2)
}

async fn fetch_overview(http: &reqwest::Client, dash: &str) -> Result<TopomOverview, String> {
    let url = format!("http://{dash}/topom");
    let resp = http.get(&url).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("dashboard {dash} timed out")
        } else {
            format!("dashboard {dash} unreachable: {}", root_cause(&e))
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("dashboard {dash} answered HTTP {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| {
        if e.is_timeout() {
            format!("dashboard {dash} timed out")
        } else {
            format!("dashboard {dash}: {e}")
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| format!("dashboard {dash}: bad overview: {e}"))
}

/// The innermost cause of an error, which says what happened (e.g. connection refused).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn update_rates(s: &mut Snapshot, ov: &TopomOverview, now: i64) {
    let Some(stats) = &ov.stats else { return };
    let mut rates = HashMap::new();
    for m in &stats.slot_action.migrating {
        let rate = match s.rates.get(&m.id) {
            Some(&(moved, t, old)) if now > t && m.moved >= moved => {
                let r = (m.moved - moved) as f64 * 1000.0 / (now - t) as f64;
                if old > 0.0 { 0.5 * r + 0.5 * old } else { r }
            }
            Some(&(_, _, old)) => old,
            None => 0.0,
        };
        rates.insert(m.id, (m.moved, now, rate));
    }
    s.rates = rates;
}

/// How long a finished migration stays listed.
const RUN_KEEP_MS: i64 = 120_000;
/// Migrations listed at most (the oldest finished ones go first).
const RUNS_MAX: usize = 16;

/// A migration accepted through the fe.
#[derive(Debug, Clone)]
struct Run {
    id: i64,
    what: String,
    started_at: i64,
    /// Slot -> the group it moves to.
    targets: BTreeMap<i64, i64>,
    /// Unix ms when every action of it was queued (None: still queueing).
    queued_at: Option<i64>,
    finished_at: Option<i64>,
}

/// `(done, with an action)` of a run in an overview: done means served by the target group
/// with no action left.
fn run_counts(run: &Run, ov: &TopomOverview) -> (i64, i64) {
    let Some(stats) = &ov.stats else {
        return (0, 0);
    };
    let (mut done, mut acting) = (0, 0);
    for (&sid, &to) in &run.targets {
        let Some(sl) = usize::try_from(sid).ok().and_then(|i| stats.slots.get(i)) else {
            continue;
        };
        if !sl.action.state.is_empty() {
            acting += 1;
        } else if sl.group_id == to {
            done += 1;
        }
    }
    (done, acting)
}

/// Marks the runs this overview shows finished, and forgets old ones. `asked` is when the
/// poll began: a run queued after that is judged by a later poll.
fn update_runs(s: &mut Snapshot, ov: &TopomOverview, asked: i64, now: i64) {
    for run in &mut s.runs {
        if run.finished_at.is_some() || run.queued_at.is_none_or(|q| q >= asked) {
            continue;
        }
        let (done, acting) = run_counts(run, ov);
        if acting == 0 || done == i64::try_from(run.targets.len()).unwrap_or(0) {
            run.finished_at = Some(now);
        }
    }
    s.runs
        .retain(|r| r.finished_at.is_none_or(|f| now - f < RUN_KEEP_MS));
    while s.runs.len() > RUNS_MAX {
        let Some(i) = s.runs.iter().position(|r| r.finished_at.is_some()) else {
            break;
        };
        s.runs.remove(i);
    }
}

/// Records a migration the fe accepted: `targets` maps each slot of it to its group. Its
/// total is fixed now, whatever the dashboard has queued yet. Returns its id, for
/// [`queued`].
pub fn start_run(p: &Product, what: String, targets: BTreeMap<i64, i64>, queued: bool) -> i64 {
    let now = now_ms();
    let mut s = p.snapshot.write();
    let id = s.runs.last().map_or(1, |r| r.id + 1);
    s.runs.push(Run {
        id,
        what,
        started_at: now,
        targets,
        queued_at: queued.then_some(now),
        finished_at: None,
    });
    id
}

/// Queueing of run `id` ended; when it stopped short, only the slots in `kept` are in it
/// (none: the whole plan was queued).
pub fn queued(p: &Product, id: i64, kept: Option<&[i64]>) {
    let now = now_ms();
    let mut s = p.snapshot.write();
    if let Some(run) = s.runs.iter_mut().find(|r| r.id == id) {
        if let Some(kept) = kept {
            run.targets.retain(|sid, _| kept.contains(sid));
        }
        run.queued_at = Some(now);
    }
    s.runs.retain(|r| !r.targets.is_empty());
}

/// A product line's totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Proxy OPS.
    pub ops: i64,
    /// Masters' used memory.
    pub memory: i64,
    /// Masters' keys.
    pub keys: i64,
}

fn stat_i64(m: &BTreeMap<String, String>, key: &str) -> i64 {
    m.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Keys of every database in an INFO map (`db0: keys=N,expires=...`).
pub fn info_keys(m: &BTreeMap<String, String>) -> i64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, v)| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|n| n.parse::<i64>().ok())
        })
        .sum()
}

/// Totals from an overview.
pub fn totals(ov: Option<&TopomOverview>) -> Totals {
    let mut t = Totals::default();
    let Some(stats) = ov.and_then(|o| o.stats.as_ref()) else {
        return t;
    };
    for ps in stats.proxy.stats.values() {
        if let Some(st) = &ps.stats {
            t.ops += st.ops.qps;
        }
    }
    for g in &stats.group.models {
        if let Some(master) = g.servers.first()
            && let Some(info) = stats
                .group
                .stats
                .get(&master.addr)
                .and_then(|s| s.stats.as_ref())
        {
            t.memory += stat_i64(info, "used_memory");
            t.keys += info_keys(info);
        }
    }
    t
}

/// Whether a server probe says the server answers.
fn answers(stats: Option<&codis_model::topom::RedisStats>) -> bool {
    stats.is_some_and(|s| !s.timeout && s.error.is_none() && s.stats.is_some())
}

/// The product line at a glance (isolation fields are filled by the caller), as of the last
/// poll.
pub fn summary(p: &Product) -> ProductSummary {
    let s = p.snapshot.read();
    match &s.summary {
        Some(sum) => sum.clone(),
        None => compute_summary(p, &s),
    }
}

fn compute_summary(p: &Product, s: &Snapshot) -> ProductSummary {
    let mut out = ProductSummary {
        name: p.name.clone(),
        dashboard: p.dashboard.read().clone(),
        source: p.source.read().as_str().to_string(),
        reachable: s.error.is_none() && s.overview.is_some(),
        error: s.error.clone(),
        updated_at: s.updated_at,
        ..ProductSummary::default()
    };
    if out.error.is_none() && s.overview.is_none() {
        out.error = Some("not polled yet".into());
    }
    let Some(ov) = s.overview.as_deref() else {
        out.trouble = 1000;
        return out;
    };
    let t = totals(Some(ov));
    out.ops = t.ops;
    out.memory = t.memory;
    out.keys = t.keys;
    if let Some(stats) = &ov.stats {
        out.coordinator = format!("{} {}", stats.coordinator.name, stats.coordinator.addr)
            .trim()
            .to_string();
        out.proxies_total = i64::try_from(stats.proxy.models.len()).unwrap_or(0);
        out.proxies_up = i64::try_from(
            stats
                .proxy
                .models
                .iter()
                .filter(|m| {
                    stats.proxy.stats.get(&m.token).is_some_and(|ps| {
                        !ps.timeout
                            && ps.error.is_none()
                            && ps.stats.as_ref().is_some_and(|s| s.online)
                    })
                })
                .count(),
        )
        .unwrap_or(0);
        for ps in stats.proxy.stats.values() {
            if let Some(st) = &ps.stats {
                out.sessions += st.sessions.alive;
            }
        }
        out.groups = i64::try_from(stats.group.models.len()).unwrap_or(0);
        for g in &stats.group.models {
            out.servers += i64::try_from(g.servers.len()).unwrap_or(0);
            if let Some(m) = g.servers.first()
                && !answers(stats.group.stats.get(&m.addr))
            {
                out.masters_down += 1;
            }
            if g.out_of_sync {
                out.replicas_out_of_sync += 1;
            }
            for r in g.servers.iter().skip(1) {
                let probe = stats.group.stats.get(&r.addr);
                let link_up = probe
                    .and_then(|p| p.stats.as_ref())
                    .is_some_and(|m| m.get("master_link_status").is_some_and(|v| v == "up"));
                if !answers(probe) || !link_up {
                    out.replicas_out_of_sync += 1;
                }
            }
        }
        for sl in &stats.slots {
            if !sl.action.state.is_empty() {
                out.slots_migrating += 1;
            } else if sl.group_id == 0 {
                out.slots_offline += 1;
            }
        }
    }
    out.trouble = trouble(&out);
    out
}

/// Higher means more trouble; the product list sorts by it.
pub fn trouble(s: &ProductSummary) -> i64 {
    let mut t = 0;
    if !s.reachable {
        t += 1000;
    }
    t += 100 * s.masters_down;
    t += 50 * s.violations;
    if s.slots_offline > 0 {
        t += 20;
    }
    t += 10 * s.replicas_out_of_sync;
    t += 10 * (s.proxies_total - s.proxies_up).max(0);
    t
}

/// Migrations of a product line.
pub fn migration(p: &Product) -> MigrationOverview {
    let s = p.snapshot.read();
    let Some(stats) = s.stats() else {
        return MigrationOverview::default();
    };
    let pending = i64::try_from(
        stats
            .slots
            .iter()
            .filter(|sl| !sl.action.state.is_empty())
            .count(),
    )
    .unwrap_or(0);
    let runs = s
        .runs
        .iter()
        .map(|r| {
            let total = i64::try_from(r.targets.len()).unwrap_or(0);
            let (done, _) = s.overview.as_deref().map_or((0, 0), |ov| run_counts(r, ov));
            MigrationRun {
                id: r.id,
                what: r.what.clone(),
                started_at: r.started_at,
                total,
                done,
                finished_at: r.finished_at,
            }
        })
        .collect();
    let running = stats
        .slot_action
        .migrating
        .iter()
        .map(|m| {
            let rate = s.rates.get(&m.id).map(|r| r.2).unwrap_or(0.0);
            let state = stats
                .slots
                .iter()
                .find(|sl| sl.id == m.id)
                .map(|sl| sl.action.state.clone())
                .unwrap_or_default();
            MigrationProgress {
                slot: m.id,
                from: m.from,
                to: m.to,
                state,
                moved: m.moved,
                remaining: m.remaining,
                keys_per_sec: rate,
                eta_secs: (rate > 0.0).then(|| m.remaining as f64 / rate),
            }
        })
        .collect();
    MigrationOverview {
        pending,
        runs,
        running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_samples_are_at_most_ten_seconds_apart() {
        // With 2 s polls, the first poll at or after 8 s samples: 8..10 s apart.
        assert_eq!(sample_after(Duration::from_secs(2)), 8_000);
        assert!(sample_after(Duration::from_secs(2)) + 2_000 <= history::SAMPLE_EVERY_MS);
        assert_eq!(sample_after(Duration::from_secs(60)), 5_000);
    }
}
