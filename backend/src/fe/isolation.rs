//! Isolation between product lines (the deployment guide's physical and logical isolation).
//!
//! * *physical*: the product line's servers belong to it alone;
//! * *logical*: a server may be in groups of several product lines, with the same role
//!   (master or replica) in every one.
//!
//! The inventory lists every server of every product line as the dashboards last reported it,
//! by a normalised address (`localhost:6379` and `127.0.0.1:6379` are one server). Changes are
//! checked against it before they reach a dashboard ([`check_add`], [`check_promote`],
//! [`check_mode`]); rules already broken are listed by [`report`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::State;
use codis_model::fe::{
    IsolationMode, IsolationReport, IsolationSetting, Role, ServerPlace, SharedServer, Violation,
};
use parking_lot::RwLock;
use sqlx::SqlitePool;

use super::AppState;
use super::auth::Actor;
use super::changes::{Change, run_change};
use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::openapi::{ApiRoutes, Doc};
use super::products::Registry;

/// What a host name resolved to, or when its lookup last failed.
#[derive(Debug, Clone)]
enum Lookup {
    Found(String),
    Failed(Instant),
}

fn resolved() -> &'static RwLock<HashMap<String, Lookup>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Lookup>>> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// A failed lookup is not tried again for this long (a dead name must not cost every poll
/// a timeout).
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);
/// All the lookups of one [`resolve`] call end within this time.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(2);

/// The one spelling of every loopback and unspecified address: a server reached through any
/// of them (`0:6379`, `[::]:6379`, `127.0.0.2:6379`...) is on this machine, and treating
/// them as one server can only refuse too much, never let a shared server through.
const LOCAL: &str = "127.0.0.1";

fn canonical_ip(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return LOCAL.to_string();
    }
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// IPv4 as `inet_aton` (and so the C resolver, and so redis) reads it: `0`, `127.1`,
/// `2130706433`, `0x7f.0.0.1`, `0177.0.0.1` are all addresses.
fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let n = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let shift = 8 * (4 - head.len());
    if shift < 32 && u64::from(*last) >= 1u64 << shift {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(v | last))
}

/// A host as the inventory keys it: a canonical IP when it is one, or else the name in lower
/// case without a trailing dot.
enum Host {
    Ip(String),
    Name(String),
}

fn host_of(host: &str) -> Host {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(canonical_ip(ip)),
            Err(_) => Host::Name(host.to_ascii_lowercase()),
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Host::Ip(canonical_ip(ip));
    }
    if let Some(v4) = inet_aton(host) {
        return Host::Ip(canonical_ip(IpAddr::V4(v4)));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" {
        return Host::Ip(LOCAL.to_string());
    }
    Host::Name(name)
}

/// `ip:port` for an address, using names resolved so far ([`resolve`]): every loopback or
/// unspecified address (however written: `localhost.`, `0`, `[::]`, `[::ffff:127.0.0.1]`) is
/// 127.0.0.1, IPv6 addresses are bracketed, other names are lowercased until resolved.
pub fn normalize(addr: &str) -> String {
    let addr = addr.trim();
    let Some((host, port)) = addr.rsplit_once(':') else {
        return addr.to_ascii_lowercase();
    };
    let host = match host_of(host) {
        Host::Ip(ip) => ip,
        Host::Name(name) => match resolved().read().get(&name) {
            Some(Lookup::Found(ip)) => ip.clone(),
            _ => name,
        },
    };
    let port = port
        .parse::<u16>()
        .map(|p| p.to_string())
        .unwrap_or_else(|_| port.to_string());
    format!("{host}:{port}")
}

/// Resolves the host names of `addrs` not resolved yet, so [`normalize`] knows them: all at
/// once, within [`RESOLVE_DEADLINE`] overall; a name that fails (or is still unanswered at
/// the deadline) is not tried again for [`RETRY_FAILED_AFTER`].
pub async fn resolve(addrs: impl IntoIterator<Item = String>) {
    let mut names: Vec<String> = {
        let cache = resolved().read();
        addrs
            .into_iter()
            .filter_map(|addr| {
                let (host, _) = addr.rsplit_once(':')?;
                match host_of(host) {
                    Host::Ip(_) => None,
                    Host::Name(name) => match cache.get(&name) {
                        Some(Lookup::Found(_)) => None,
                        Some(Lookup::Failed(at)) if at.elapsed() < RETRY_FAILED_AFTER => None,
                        _ => Some(name),
                    },
                }
            })
            .collect()
    };
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return;
    }
    let lookups = names.iter().map(|name| async move {
        let found = tokio::net::lookup_host(format!("{name}:0"))
            .await
            .ok()
            .and_then(|mut it| it.next())
            .map(|sa| canonical_ip(sa.ip()));
        let entry = match found {
            Some(ip) => Lookup::Found(ip),
            None => Lookup::Failed(Instant::now()),
        };
        resolved().write().insert(name.clone(), entry);
    });
    let _ = tokio::time::timeout(RESOLVE_DEADLINE, futures_util::future::join_all(lookups)).await;
    let now = Instant::now();
    let mut cache = resolved().write();
    if cache.len() > 100_000 {
        cache.retain(|_, l| matches!(l, Lookup::Found(_)));
    }
    for name in names {
        // Unanswered at the deadline: failed for now.
        cache
            .entry(name)
            .and_modify(|l| {
                if let Lookup::Failed(at) = l
                    && at.elapsed() >= RETRY_FAILED_AFTER
                {
                    *at = now;
                }
            })
            .or_insert(Lookup::Failed(now));
    }
}

/// Every server's places, by normalised address.
pub type Inventory = BTreeMap<String, Vec<ServerPlace>>;

/// The inventory from the dashboards' last reports (rebuilt when a poll has happened since).
pub fn inventory(reg: &Registry) -> std::sync::Arc<Inventory> {
    let generation = reg.generation.load(std::sync::atomic::Ordering::Acquire);
    if let Some((g, inv)) = reg.inventory_cache.lock().as_ref()
        && *g == generation
    {
        return inv.clone();
    }
    let inv = std::sync::Arc::new(build_inventory(reg));
    *reg.inventory_cache.lock() = Some((generation, inv.clone()));
    inv
}

fn build_inventory(reg: &Registry) -> Inventory {
    let mut inv = Inventory::new();
    for p in reg.all() {
        let snap = p.snapshot.read();
        let Some(stats) = snap.stats() else {
            continue;
        };
        for g in &stats.group.models {
            for (i, s) in g.servers.iter().enumerate() {
                inv.entry(normalize(&s.addr))
                    .or_default()
                    .push(ServerPlace {
                        product: p.name.clone(),
                        group_id: g.id,
                        role: if i == 0 { "master" } else { "replica" }.to_string(),
                        addr: s.addr.clone(),
                    });
            }
        }
    }
    inv
}

/// Product lines whose servers nobody knows: their dashboards have not answered since
/// codis-fe started (or answer for another product), so the inventory lacks them.
pub fn unknown(reg: &Registry) -> Vec<String> {
    reg.all()
        .iter()
        .filter(|p| p.snapshot.read().overview.is_none())
        .map(|p| p.name.clone())
        .collect()
}

/// Refuses a server-adding or promoting change while some product line's servers are
/// unknown ([`unknown`]): the change could break a rule with servers nobody can see, so the
/// checks fail closed.
///
/// # Errors
/// 503 naming the product lines.
pub fn check_known(reg: &Registry) -> ApiResult<()> {
    let unknown = unknown(reg);
    if unknown.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = unknown
        .iter()
        .map(|name| {
            let err = reg
                .get(name)
                .and_then(|p| p.snapshot.read().error.clone())
                .unwrap_or_else(|| "not polled yet".into());
            format!("{name:?} ({err})")
        })
        .collect();
    Err(ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "isolation_unknown",
        format!(
            "the isolation rules cannot be checked: the servers of product line {} are              unknown because its dashboard has not answered since codis-fe started; try again              when it answers, or remove the product line",
            why.join(", ")
        ),
    ))
}

/// The stored modes (product lines never set are logical).
///
/// # Errors
/// Database errors.
pub async fn modes(db: &SqlitePool) -> ApiResult<BTreeMap<String, IsolationMode>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT product, mode FROM isolation")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(p, m)| {
            let mode = if m == "physical" {
                IsolationMode::Physical
            } else {
                IsolationMode::Logical
            };
            (p, mode)
        })
        .collect())
}

fn mode_of(modes: &BTreeMap<String, IsolationMode>, product: &str) -> IsolationMode {
    modes
        .get(product)
        .copied()
        .unwrap_or(IsolationMode::Logical)
}

fn place_text(p: &ServerPlace) -> String {
    format!(
        "{} of group {} in product {:?}",
        p.role, p.group_id, p.product
    )
}

/// Every rule broken now.
pub fn violations(inv: &Inventory, modes: &BTreeMap<String, IsolationMode>) -> Vec<Violation> {
    let mut out = Vec::new();
    for (server, places) in inv {
        let mut products: Vec<&str> = places.iter().map(|p| p.product.as_str()).collect();
        products.sort_unstable();
        products.dedup();
        if products.len() < 2 {
            continue;
        }
        for phys in products
            .iter()
            .filter(|p| mode_of(modes, p) == IsolationMode::Physical)
        {
            let others: Vec<String> = places
                .iter()
                .filter(|p| p.product != *phys)
                .map(place_text)
                .collect();
            out.push(Violation {
                server: server.clone(),
                rule: "physical".into(),
                message: format!(
                    "server {server} belongs to physically isolated product {phys:?} but is also {}",
                    others.join(", ")
                ),
                places: places.clone(),
            });
        }
        let first = &places[0];
        if let Some(other) = places.iter().find(|p| p.role != first.role) {
            out.push(Violation {
                server: server.clone(),
                rule: "role".into(),
                message: format!(
                    "server {server} is {} but {}; a shared server needs the same role everywhere",
                    place_text(first),
                    place_text(other)
                ),
                places: places.clone(),
            });
        }
    }
    out
}

/// Checks adding `addr` to `product`'s group `gid` as `role` (`master` when the group is empty).
///
/// # Errors
/// 409 naming the other product line, group and role.
pub fn check_add(
    inv: &Inventory,
    modes: &BTreeMap<String, IsolationMode>,
    product: &str,
    gid: i64,
    addr: &str,
    role: &str,
) -> ApiResult<()> {
    let server = normalize(addr);
    let Some(places) = inv.get(&server) else {
        return Ok(());
    };
    if let Some(same) = places.iter().find(|p| p.product == product) {
        return Err(ApiError::isolation(format!(
            "server {server} is already {} (written {:?}); one server cannot serve two groups \
             of a product line",
            place_text(same),
            same.addr
        )));
    }
    let elsewhere: Vec<&ServerPlace> = places.iter().filter(|p| p.product != product).collect();
    let Some(first) = elsewhere.first() else {
        return Ok(());
    };
    if mode_of(modes, product) == IsolationMode::Physical {
        return Err(ApiError::isolation(format!(
            "product {product:?} is physically isolated, but server {server} is already {}",
            place_text(first)
        )));
    }
    if let Some(p) = elsewhere
        .iter()
        .find(|p| mode_of(modes, &p.product) == IsolationMode::Physical)
    {
        return Err(ApiError::isolation(format!(
            "server {server} is {}, and product {:?} is physically isolated",
            place_text(p),
            p.product
        )));
    }
    if let Some(p) = elsewhere.iter().find(|p| p.role != role) {
        return Err(ApiError::isolation(format!(
            "server {server} would be {role} of group {gid} in product {product:?} but is {}; \
             a shared server needs the same role in every product line",
            place_text(p)
        )));
    }
    Ok(())
}

/// Checks promoting `addr` to master of `product`'s group (whose master is `old_master`).
///
/// # Errors
/// 409 naming the other product line, group and role.
pub fn check_promote(
    inv: &Inventory,
    product: &str,
    gid: i64,
    addr: &str,
    old_master: Option<&str>,
) -> ApiResult<()> {
    let server = normalize(addr);
    if let Some(p) = inv
        .get(&server)
        .into_iter()
        .flatten()
        .find(|p| p.product != product && p.role != "master")
    {
        return Err(ApiError::isolation(format!(
            "promoting {server} to master of group {gid} in product {product:?} would give it \
             different roles: it is {}",
            place_text(p)
        )));
    }
    if let Some(old) = old_master.map(normalize).filter(|o| *o != server)
        && let Some(p) = inv
            .get(&old)
            .into_iter()
            .flatten()
            .find(|p| p.product != product && p.role == "master")
    {
        return Err(ApiError::isolation(format!(
            "promoting {server} would make the old master {old} a replica of group {gid} in \
             product {product:?}, but it is {}",
            place_text(p)
        )));
    }
    Ok(())
}

/// Checks setting `product` to `mode`.
///
/// # Errors
/// 409 when physical isolation would be broken at once.
pub fn check_mode(inv: &Inventory, product: &str, mode: IsolationMode) -> ApiResult<()> {
    if mode == IsolationMode::Logical {
        return Ok(());
    }
    for (server, places) in inv {
        if places.iter().any(|p| p.product == product)
            && let Some(p) = places.iter().find(|p| p.product != product)
        {
            return Err(ApiError::isolation(format!(
                "product {product:?} cannot be physically isolated: its server {server} is also {}",
                place_text(p)
            )));
        }
    }
    Ok(())
}

/// The report, limited to the product lines `visible` accepts.
///
/// # Errors
/// Database errors.
pub async fn report(st: &AppState, visible: impl Fn(&str) -> bool) -> ApiResult<IsolationReport> {
    let inv = inventory(&st.products);
    let all_modes = modes(&st.db).await?;
    let mut modes = BTreeMap::new();
    for name in st.products.names() {
        if visible(&name) {
            modes.insert(name.clone(), mode_of(&all_modes, &name));
        }
    }
    let redact = |places: &[ServerPlace]| -> Vec<ServerPlace> {
        places
            .iter()
            .map(|p| {
                if visible(&p.product) {
                    p.clone()
                } else {
                    ServerPlace {
                        product: "(another product line)".into(),
                        group_id: 0,
                        role: p.role.clone(),
                        addr: String::new(),
                    }
                }
            })
            .collect()
    };
    let shared = inv
        .iter()
        .filter(|(_, places)| {
            let first = &places[0].product;
            places.iter().any(|p| p.product != *first) && places.iter().any(|p| visible(&p.product))
        })
        .map(|(server, places)| SharedServer {
            server: server.clone(),
            places: redact(places),
        })
        .collect();
    let violations = violations(&inv, &all_modes)
        .into_iter()
        .filter(|v| v.places.iter().any(|p| visible(&p.product)))
        .map(|mut v| {
            if v.places.iter().any(|p| !visible(&p.product)) {
                v.message = format!(
                    "server {} breaks the {} rule with a product line you cannot see",
                    v.server, v.rule
                );
            }
            v.places = redact(&v.places);
            v
        })
        .collect();
    let unknown = unknown(&st.products)
        .into_iter()
        .filter(|p| visible(p))
        .collect();
    Ok(IsolationReport {
        modes,
        shared,
        violations,
        unknown,
    })
}

/// `GET /api/v1/isolation`.
async fn isolation_report(
    State(st): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<IsolationReport>> {
    Ok(axum::Json(report(&st, |p| actor.can_see(p)).await?))
}

/// `GET /api/v1/products/{product}/isolation`.
async fn isolation_product(
    State(st): State<AppState>,
    actor: Actor,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::Json<IsolationReport>> {
    actor.require(&product, Role::Viewer)?;
    st.product(&product)?;
    let mut r = report(&st, |p| actor.can_see(p)).await?;
    r.modes.retain(|p, _| *p == product);
    r.shared
        .retain(|s| s.places.iter().any(|p| p.product == product));
    r.violations
        .retain(|v| v.places.iter().any(|p| p.product == product));
    r.unknown.retain(|p| *p == product);
    Ok(axum::Json(r))
}

/// `PUT /api/v1/products/{product}/isolation`.
async fn isolation_set(
    State(st): State<AppState>,
    actor: Actor,
    ctx: super::RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(body): ApiJson<IsolationSetting>,
) -> ApiResult<axum::Json<codis_model::fe::change::ChangeDone>> {
    actor.require(&product, Role::Admin)?;
    st.product(&product)?;
    let change = Change::new(&actor, &ctx, Some(&product), "isolation.set")
        .target(product.clone())
        .params(&body);
    run_change(&st, change, async {
        check_mode(&inventory(&st.products), &product, body.mode)?;
        sqlx::query("INSERT OR REPLACE INTO isolation (product, mode) VALUES (?, ?)")
            .bind(&product)
            .bind(body.mode.as_str())
            .execute(&st.db)
            .await?;
        Ok(())
    })
    .await
}

/// The isolation routes.
pub fn routes(r: ApiRoutes) -> ApiRoutes {
    r.get(
        "/api/v1/isolation",
        isolation_report,
        Doc::new("Every product line's isolation mode, shared servers and broken rules")
            .reply("IsolationReport"),
    )
    .get(
        "/api/v1/products/{product}/isolation",
        isolation_product,
        Doc::new("One product line's isolation mode, shared servers and broken rules")
            .reply("IsolationReport"),
    )
    .put(
        "/api/v1/products/{product}/isolation",
        isolation_set,
        Doc::new("Set a product line's isolation (admin of the product line)")
            .body("IsolationSetting")
            .reply("ChangeDone"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(product: &str, gid: i64, role: &str, addr: &str) -> ServerPlace {
        ServerPlace {
            product: product.into(),
            group_id: gid,
            role: role.into(),
            addr: addr.into(),
        }
    }

    #[test]
    fn normalize_tells_one_server_apart_however_written() {
        assert_eq!(normalize("localhost:6379"), "127.0.0.1:6379");
        assert_eq!(normalize("LOCALHOST:6379"), "127.0.0.1:6379");
        assert_eq!(normalize("127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(normalize("[::ffff:127.0.0.1]:6379"), "127.0.0.1:6379");
        for local in [
            "[::1]:6379",
            "[::]:6379",
            "[0::0]:6379",
            "[::ffff:0.0.0.0]:6379",
            "0:6379",
            "0.0.0.0:6379",
            "127.1:6379",
            "127.0.0.2:6379",
            "0x7f.0.0.1:6379",
            "0177.0.0.1:6379",
            "2130706433:6379",
            "localhost.:6379",
            "LocalHost.:6379",
        ] {
            assert_eq!(normalize(local), "127.0.0.1:6379", "{local}");
        }
        assert_eq!(normalize("[2001:DB8::1]:6379"), "[2001:db8::1]:6379");
        assert_eq!(normalize("10.1:6379"), "10.0.0.1:6379");
        assert_eq!(normalize("Redis-1.Example.:6379"), "redis-1.example:6379");
        // Names that only look numeric stay names.
        assert_eq!(normalize("1e100.net:6379"), "1e100.net:6379");
        assert_eq!(normalize("256.1.1.1:6379"), "256.1.1.1:6379");
        assert_eq!(normalize("08.1.1.1:6379"), "08.1.1.1:6379");
    }

    #[tokio::test]
    async fn failed_lookups_are_cached_and_bounded() {
        let started = Instant::now();
        resolve(["no-such-host.invalid:1".to_string()]).await;
        assert!(started.elapsed() <= RESOLVE_DEADLINE + Duration::from_millis(500));
        assert!(matches!(
            resolved().read().get("no-such-host.invalid"),
            Some(Lookup::Failed(_))
        ));
        // The second time costs nothing.
        let started = Instant::now();
        resolve(["no-such-host.invalid:2".to_string()]).await;
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn rules() {
        let mut inv = Inventory::new();
        inv.insert(
            "127.0.0.1:7001".into(),
            vec![
                place("a", 1, "master", "127.0.0.1:7001"),
                place("b", 2, "replica", "localhost:7001"),
            ],
        );
        let mut modes = BTreeMap::new();
        let v = violations(&inv, &modes);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rule, "role");
        modes.insert("a".to_string(), IsolationMode::Physical);
        let v = violations(&inv, &modes);
        assert_eq!(v.len(), 2);
        assert!(v[0].message.contains("\"a\""), "{}", v[0].message);
        // Adding the server to a physical product is refused, naming where it is.
        let e = check_add(&inv, &modes, "c", 1, "localhost:7001", "master").unwrap_err();
        assert!(e.message.contains("physically isolated"), "{}", e.message);
        let logical = BTreeMap::new();
        let e = check_add(&inv, &logical, "c", 3, "localhost:7001", "master").unwrap_err();
        assert!(
            e.message.contains("replica of group 2 in product \"b\""),
            "{}",
            e.message
        );
        check_add(&inv, &logical, "c", 3, "127.0.0.1:7002", "master").unwrap();
        // Promotion that would make roles differ.
        let e = check_promote(&inv, "c", 1, "127.0.0.1:7001", None).unwrap_err();
        assert!(e.message.contains("replica of group 2"), "{}", e.message);
        let e = check_promote(&inv, "c", 1, "127.0.0.1:9", Some("127.0.0.1:7001")).unwrap_err();
        assert!(e.message.contains("old master"), "{}", e.message);
        assert!(check_mode(&inv, "b", IsolationMode::Physical).is_err());
        assert!(check_mode(&inv, "z", IsolationMode::Physical).is_ok());
    }
}
