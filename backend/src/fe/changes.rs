//! Reading a product line and changing it. Every change is authorised (operator on the product
//! line), checked against the isolation rules where it adds or promotes a server, recorded in
//! the audit history before it is sent to the dashboard, completed with its outcome after, and
//! followed by an immediate poll so the next read shows it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use codis_model::auth::dashboard_xauth;
use codis_model::fe::change::{
    ChangeDone, GroupCreate, ProxyCreate, RebalancePlan, ReplicaGroup, ReplicaGroupAll,
    SentinelAdd, ServerAdd, ServerRef, SlotActionSettings, SlotRange, SlotsMoveSome, SyncAction,
};
use codis_model::fe::{ProductList, Role};
use codis_model::topom::SlotMapping;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Actor;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::openapi::{ApiRoutes, Doc};
use super::products::{self, Product, root_cause};
use super::{AppState, RequestCtx, audit, isolation};

/// A change about to be made.
#[derive(Debug, Clone)]
pub struct Change {
    /// Its audit row.
    pub entry: audit::Entry,
}

impl Change {
    /// A change by `actor`.
    pub fn new(actor: &Actor, ctx: &RequestCtx, product: Option<&str>, action: &str) -> Self {
        Change {
            entry: audit::Entry {
                actor: actor.name.clone(),
                source: ctx.source.clone(),
                product: product.map(str::to_string),
                action: action.to_string(),
                target: None,
                params: None,
            },
        }
    }

    /// What it is done to.
    pub fn target(mut self, t: impl Into<String>) -> Self {
        self.entry.target = Some(t.into());
        self
    }

    /// Its parameters.
    pub fn params<T: Serialize>(mut self, p: &T) -> Self {
        self.entry.params = serde_json::to_string(p).ok();
        self
    }
}

/// Records the change, runs it, completes the record with the outcome.
///
/// # Errors
/// The change's own error (marked as audited), or a database error before it ran.
pub async fn run_change_with<T>(
    st: &AppState,
    change: Change,
    work: impl Future<Output = ApiResult<T>>,
) -> ApiResult<(i64, T)> {
    let started = Instant::now();
    let id = audit::begin(&st.db, &change.entry).await?;
    match work.await {
        Ok(v) => {
            audit::finish(&st.db, id, "ok", 200, started).await;
            st.metrics.changes_ok();
            Ok((id, v))
        }
        Err(mut e) => {
            audit::finish(&st.db, id, &e.message, e.status.as_u16(), started).await;
            st.metrics.changes_failed();
            e.audited = true;
            Err(e)
        }
    }
}

/// [`run_change_with`] for changes that answer [`ChangeDone`].
///
/// # Errors
/// See [`run_change_with`].
pub async fn run_change(
    st: &AppState,
    change: Change,
    work: impl Future<Output = ApiResult<()>>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let (audit_id, ()) = run_change_with(st, change, work).await?;
    Ok(axum::Json(ChangeDone { ok: true, audit_id }))
}

/// Checks a `host:port` address: a host name or IP, a port 1..65535, nothing else (it goes
/// into a dashboard URL path).
///
/// # Errors
/// 422.
pub fn check_addr(addr: &str) -> ApiResult<()> {
    let bad = || ApiError::invalid(format!("{addr:?} is not a host:port address"));
    let (host, port_text) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port_text.parse().map_err(|_| bad())?;
    // One spelling per port ("06379" and "+6379" would be the same server).
    if port == 0 || port.to_string() != port_text || host.is_empty() || host.len() > 253 {
        return Err(bad());
    }
    let ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if ok { Ok(()) } else { Err(bad()) }
}

fn check_gid(gid: i64) -> ApiResult<()> {
    if (1..=9999).contains(&gid) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "group id {gid} is not in 1..9999"
        )))
    }
}

fn check_slot(sid: i64) -> ApiResult<()> {
    if (0..1024).contains(&sid) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("slot {sid} is not in 0..1023")))
    }
}

/// Calls a dashboard route (`PUT /api/topom/<route>`, where `{X}` in `route` is the xauth).
///
/// # Errors
/// 502 unreachable, 504 timed out, 409 the dashboard refused (with its cause).
pub async fn dashboard_put(
    st: &AppState,
    p: &Product,
    route: &str,
    body: Option<&Value>,
) -> ApiResult<Value> {
    let dash = p.dashboard.read().clone();
    if dash.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dashboard_unreachable",
            format!("product {:?} has no dashboard address", p.name),
        ));
    }
    let url = format!(
        "http://{dash}/api/topom/{}",
        route.replace("{X}", &dashboard_xauth(&p.name))
    );
    let mut req = st.dashboard_http.put(&url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| dashboard_error(&dash, &e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| dashboard_error(&dash, &e))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let cause = value
        .get("Cause")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "dashboard_error",
        format!("dashboard {dash} refused: {cause}"),
    ))
}

fn dashboard_error(dash: &str, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "dashboard_timeout",
            format!("dashboard {dash} did not answer in time"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dashboard_unreachable",
            format!("dashboard {dash} unreachable: {}", root_cause(e)),
        )
    }
}

/// Runs a dashboard route as an audited change, then polls the product line. (Every caller
/// passes the audit fields side by side with the route, which reads best at the call sites.)
#[allow(clippy::too_many_arguments)]
async fn dashboard_change(
    st: &AppState,
    actor: &Actor,
    ctx: &RequestCtx,
    p: &Product,
    action: &str,
    target: String,
    params: &impl Serialize,
    route: String,
    body: Option<Value>,
) -> ApiResult<axum::Json<ChangeDone>> {
    actor.require(&p.name, Role::Operator)?;
    let change = Change::new(actor, ctx, Some(&p.name), action)
        .target(target)
        .params(params);
    let res = run_change(st, change, async {
        dashboard_put(st, p, &route, body.as_ref()).await.map(drop)
    })
    .await;
    st.products.poll_now(p).await;
    res
}

/// Groups of a product line as last polled.
fn groups_of(p: &Product) -> Vec<codis_model::topom::Group> {
    p.snapshot
        .read()
        .stats()
        .map(|s| s.group.models.clone())
        .unwrap_or_default()
}

// ---- reads ----

/// `GET /api/v1/products`.
async fn products_list(
    State(st): State<AppState>,
    actor: Actor,
) -> ApiResult<axum::Json<ProductList>> {
    let inv = isolation::inventory(&st.products);
    let modes = isolation::modes(&st.db).await?;
    let violations = isolation::violations(&inv, &modes);
    let mut list: Vec<_> = st
        .products
        .all()
        .into_iter()
        .filter(|p| actor.can_see(&p.name))
        .map(|p| {
            let mut s = products::summary(&p);
            s.isolation = Some(
                modes
                    .get(&p.name)
                    .copied()
                    .unwrap_or(codis_model::fe::IsolationMode::Logical),
            );
            s.violations = i64::try_from(
                violations
                    .iter()
                    .filter(|v| v.places.iter().any(|pl| pl.product == p.name))
                    .count(),
            )
            .unwrap_or(0);
            s.trouble = products::trouble(&s);
            s
        })
        .collect();
    list.sort_by(|a, b| b.trouble.cmp(&a.trouble).then_with(|| a.name.cmp(&b.name)));
    Ok(axum::Json(ProductList { products: list }))
}

/// `GET /api/v1/products/{product}`.
async fn products_get(
    State(st): State<AppState>,
    actor: Actor,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::response::Response> {
    actor.require(&product, Role::Viewer)?;
    let p = st.product(&product)?;
    let inv = isolation::inventory(&st.products);
    let modes = isolation::modes(&st.db).await?;
    let mut summary = products::summary(&p);
    summary.isolation = Some(
        modes
            .get(&p.name)
            .copied()
            .unwrap_or(codis_model::fe::IsolationMode::Logical),
    );
    summary.violations = i64::try_from(
        isolation::violations(&inv, &modes)
            .iter()
            .filter(|v| v.places.iter().any(|pl| pl.product == p.name))
            .count(),
    )
    .unwrap_or(0);
    summary.trouble = products::trouble(&summary);
    // The overview was serialised once by the poller; splice it in rather than cloning and
    // serialising a hundred groups' probes per request.
    let migration = products::migration(&p);
    let topom = p.snapshot.read().topom_json.clone();
    let mut body = Vec::with_capacity(topom.as_ref().map_or(0, |t| t.len()) + 2048);
    body.extend_from_slice(b"{\"summary\":");
    serde_json::to_writer(&mut body, &summary).map_err(ApiError::internal)?;
    body.extend_from_slice(b",\"migration\":");
    serde_json::to_writer(&mut body, &migration).map_err(ApiError::internal)?;
    if let Some(t) = topom {
        body.extend_from_slice(b",\"topom\":");
        body.extend_from_slice(&t);
    }
    body.push(b'}');
    let mut resp = axum::response::IntoResponse::into_response(body);
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

// ---- groups ----

async fn groups_create(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<GroupCreate>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(b.group_id)?;
    let route = format!("group/create/{{X}}/{}", b.group_id);
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.create",
        b.group_id.to_string(),
        &b,
        route,
        None,
    )
    .await
}

async fn groups_remove(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    let route = format!("group/remove/{{X}}/{gid}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.remove",
        gid.to_string(),
        &(),
        route,
        None,
    )
    .await
}

async fn groups_add_server(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<ServerAdd>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    check_addr(&b.addr)?;
    if !b
        .datacenter
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(ApiError::invalid(
            "datacenter: letters, digits, - and _ only",
        ));
    }
    let change = Change::new(&actor, &ctx, Some(&p.name), "group.add-server")
        .target(format!("group {gid}: {}", b.addr))
        .params(&b);
    let res = run_change(&st, change, async {
        let _guard = isolation_check_add(&st, &p, gid, &b.addr).await?;
        let route = if b.datacenter.is_empty() {
            format!("group/add/{{X}}/{gid}/{}", b.addr)
        } else {
            format!("group/add/{{X}}/{gid}/{}/{}", b.addr, b.datacenter)
        };
        dashboard_put(&st, &p, &route, None).await?;
        st.products.poll_now(&p).await;
        Ok(())
    })
    .await;
    st.products.poll_now(&p).await;
    res
}

/// Takes the isolation lock (one server-adding or promoting change at a time, across every
/// product line), refreshes every product line's picture, and checks adding `addr` to group
/// `gid` of `p`. Hold the guard until the dashboard has answered and `p` was polled again.
///
/// # Errors
/// 409 with the rule broken.
pub async fn isolation_check_add(
    st: &AppState,
    p: &Product,
    gid: i64,
    addr: &str,
) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
    let guard = isolation_lock(st).await?;
    refresh_all(st).await;
    isolation::check_known(&st.products)?;
    isolation::resolve([addr.to_string()]).await;
    let role = match groups_of(p).iter().find(|g| g.id == gid) {
        Some(g) if !g.servers.is_empty() => "replica",
        _ => "master",
    };
    let inv = isolation::inventory(&st.products);
    let modes = isolation::modes(&st.db).await?;
    isolation::check_add(&inv, &modes, &p.name, gid, addr, role)?;
    Ok(guard)
}

/// Like [`isolation_check_add`], for promoting `addr` in group `gid`.
///
/// # Errors
/// 409 with the rule broken.
pub async fn isolation_check_promote(
    st: &AppState,
    p: &Product,
    gid: i64,
    addr: &str,
) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
    let guard = isolation_lock(st).await?;
    refresh_all(st).await;
    isolation::check_known(&st.products)?;
    isolation::resolve([addr.to_string()]).await;
    let old = groups_of(p)
        .into_iter()
        .find(|g| g.id == gid)
        .and_then(|g| g.servers.first().map(|s| s.addr.clone()));
    isolation::check_promote(
        &isolation::inventory(&st.products),
        &p.name,
        gid,
        addr,
        old.as_deref(),
    )?;
    Ok(guard)
}

/// How long a server-adding or promoting change waits for the one before it.
const ISOLATION_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The isolation lock, within [`ISOLATION_LOCK_WAIT`].
async fn isolation_lock(st: &AppState) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
    tokio::time::timeout(ISOLATION_LOCK_WAIT, st.isolation_lock.clone().lock_owned())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "another change that adds or promotes a server is still running after {} s; \
                     try again in a moment",
                    ISOLATION_LOCK_WAIT.as_secs()
                ),
            )
        })
}

/// A product line read this recently is not polled again before a check. (A change under
/// the isolation lock polls its product line before letting go, so the last change's
/// servers are always in the picture.)
const FRESH_ENOUGH_MS: i64 = 1_000;

/// Polls every product line now (concurrently), so a check sees the latest picture; those
/// polled within [`FRESH_ENOUGH_MS`] are current enough already.
async fn refresh_all(st: &AppState) {
    let now = super::db::now_ms();
    let stale: Vec<_> = st
        .products
        .all()
        .into_iter()
        .filter(|p| {
            let s = p.snapshot.read();
            s.overview.is_none() || now - s.read_from > FRESH_ENOUGH_MS
        })
        .collect();
    futures_util::future::join_all(stale.iter().map(|p| st.products.poll_now(p))).await;
}

async fn groups_del_server(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid, addr)): ApiPath<(String, i64, String)>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    check_addr(&addr)?;
    let route = format!("group/del/{{X}}/{gid}/{addr}");
    let target = format!("group {gid}: {addr}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.del-server",
        target,
        &(),
        route,
        None,
    )
    .await
}

async fn groups_promote(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<ServerRef>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    check_addr(&b.addr)?;
    let change = Change::new(&actor, &ctx, Some(&p.name), "group.promote")
        .target(format!("group {gid}: {}", b.addr))
        .params(&b);
    let res = run_change(&st, change, async {
        let _guard = isolation_check_promote(&st, &p, gid, &b.addr).await?;
        let route = format!("group/promote/{{X}}/{gid}/{}", b.addr);
        dashboard_put(&st, &p, &route, None).await?;
        st.products.poll_now(&p).await;
        Ok(())
    })
    .await;
    st.products.poll_now(&p).await;
    res
}

async fn groups_replica_group(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<ReplicaGroup>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    check_addr(&b.addr)?;
    let route = format!(
        "group/replica-groups/{{X}}/{gid}/{}/{}",
        b.addr,
        u8::from(b.enabled)
    );
    let target = format!("group {gid}: {}", b.addr);
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.replica-group",
        target,
        &b,
        route,
        None,
    )
    .await
}

async fn groups_replica_group_all(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<ReplicaGroupAll>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    let route = format!("group/replica-groups-all/{{X}}/{}", u8::from(b.enabled));
    let action = "group.replica-group-all";
    dashboard_change(&st, &actor, &ctx, &p, action, "all".into(), &b, route, None).await
}

async fn groups_resync(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    let route = format!("group/resync/{{X}}/{gid}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.resync",
        gid.to_string(),
        &(),
        route,
        None,
    )
    .await
}

async fn groups_resync_all(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    let route = "group/resync-all/{X}".to_string();
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "group.resync-all",
        "all".into(),
        &(),
        route,
        None,
    )
    .await
}

async fn groups_sync_action(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, gid)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<SyncAction>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(gid)?;
    check_addr(&b.addr)?;
    let verb = match b.action.as_str() {
        "create" | "remove" => b.action.clone(),
        other => {
            return Err(ApiError::invalid(format!(
                "action must be create or remove, not {other:?}"
            )));
        }
    };
    let route = format!("group/action/{verb}/{{X}}/{}", b.addr);
    let target = format!("group {gid}: {}", b.addr);
    let action = format!("group.sync-action.{verb}");
    dashboard_change(&st, &actor, &ctx, &p, &action, target, &b, route, None).await
}

// ---- proxies ----

async fn proxies_create(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<ProxyCreate>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_addr(&b.addr)?;
    let route = format!("proxy/create/{{X}}/{}", b.addr);
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "proxy.create",
        b.addr.clone(),
        &b,
        route,
        None,
    )
    .await
}

/// `?force=1`.
#[derive(Debug, Deserialize, Serialize)]
struct ForceQuery {
    force: Option<u8>,
}

fn check_token(token: &str) -> ApiResult<()> {
    if !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("{token:?} is not a proxy token")))
    }
}

async fn proxies_remove(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, token)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_token(&token)?;
    let force = u8::from(q.force.unwrap_or(0) != 0);
    let route = format!("proxy/remove/{{X}}/{token}/{force}");
    let action = if force == 1 {
        "proxy.force-remove"
    } else {
        "proxy.remove"
    };
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        action,
        token.clone(),
        &q,
        route,
        None,
    )
    .await
}

async fn proxies_reinit(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, token)): ApiPath<(String, String)>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_token(&token)?;
    let route = format!("proxy/reinit/{{X}}/{token}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "proxy.reinit",
        token.clone(),
        &(),
        route,
        None,
    )
    .await
}

// ---- slots ----

async fn slots_assign(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<SlotRange>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_slot(b.begin)?;
    check_slot(b.end)?;
    if b.begin > b.end {
        return Err(ApiError::invalid("begin must not be after end"));
    }
    if b.group_id != 0 {
        check_gid(b.group_id)?;
    }
    let body: Vec<SlotMapping> = (b.begin..=b.end)
        .map(|id| SlotMapping {
            group_id: b.group_id,
            ..SlotMapping::offline(id)
        })
        .collect();
    let body = serde_json::to_value(body).map_err(ApiError::internal)?;
    let route = if b.group_id == 0 {
        "slots/assign/{X}/offline".to_string()
    } else {
        "slots/assign/{X}".to_string()
    };
    let target = format!("slots {}-{}", b.begin, b.end);
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "slots.assign",
        target,
        &b,
        route,
        Some(body),
    )
    .await
}

async fn slots_move(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<SlotRange>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_slot(b.begin)?;
    check_slot(b.end)?;
    check_gid(b.group_id)?;
    if b.begin > b.end {
        return Err(ApiError::invalid("begin must not be after end"));
    }
    let route = format!(
        "slots/action/create-range/{{X}}/{}/{}/{}",
        b.begin, b.end, b.group_id
    );
    let target = format!("slots {}-{}", b.begin, b.end);
    let res = dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "slots.move",
        target.clone(),
        &b,
        route,
        None,
    )
    .await;
    if res.is_ok() {
        let targets = (b.begin..=b.end).map(|sid| (sid, b.group_id)).collect();
        let what = format!("{target} -> group {}", b.group_id);
        products::start_run(&p, what, targets, true);
    }
    res
}

async fn slots_move_some(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<SlotsMoveSome>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_gid(b.from)?;
    check_gid(b.to)?;
    if !(1..=1024).contains(&b.count) {
        return Err(ApiError::invalid("count must be in 1..1024"));
    }
    let route = format!(
        "slots/action/create-some/{{X}}/{}/{}/{}",
        b.from, b.to, b.count
    );
    let target = format!("group {} -> {}", b.from, b.to);
    let res = dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "slots.move-some",
        target.clone(),
        &b,
        route,
        None,
    )
    .await;
    if res.is_ok() {
        // The dashboard picks the slots: the newest actions from `from` to `to` (as just
        // polled) are this move's.
        let mut picked: Vec<(i64, i64)> = {
            let snap = p.snapshot.read();
            snap.stats()
                .map(|st| {
                    st.slots
                        .iter()
                        .filter(|sl| {
                            !sl.action.state.is_empty()
                                && sl.group_id == b.from
                                && sl.action.target_id == b.to
                        })
                        .map(|sl| (sl.action.index, sl.id))
                        .collect()
                })
                .unwrap_or_default()
        };
        picked.sort_unstable_by(|a, b| b.cmp(a));
        let targets: BTreeMap<i64, i64> = picked
            .into_iter()
            .take(usize::try_from(b.count).unwrap_or(0))
            .map(|(_, sid)| (sid, b.to))
            .collect();
        if !targets.is_empty() {
            let what = format!("{} slots {target}", targets.len());
            products::start_run(&p, what, targets, true);
        }
    }
    res
}

async fn slots_action(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<SlotActionSettings>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    if let Some(i) = b.interval
        && !(0..=1_000_000).contains(&i)
    {
        return Err(ApiError::invalid(
            "interval must be in 0..1000000 microseconds",
        ));
    }
    if b.interval.is_none() && b.disabled.is_none() {
        return Err(ApiError::invalid("give disabled, interval or both"));
    }
    let change = Change::new(&actor, &ctx, Some(&p.name), "slots.action-settings")
        .target("slot actions")
        .params(&b);
    let res = run_change(&st, change, async {
        if let Some(d) = b.disabled {
            let route = format!("slots/action/disabled/{{X}}/{}", u8::from(d));
            dashboard_put(&st, &p, &route, None).await?;
        }
        if let Some(i) = b.interval {
            let route = format!("slots/action/interval/{{X}}/{i}");
            dashboard_put(&st, &p, &route, None).await?;
        }
        Ok(())
    })
    .await;
    st.products.poll_now(&p).await;
    res
}

async fn slots_cancel(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, sid)): ApiPath<(String, i64)>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_slot(sid)?;
    let route = format!("slots/action/remove/{{X}}/{sid}");
    let target = format!("slot {sid}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "slots.cancel",
        target,
        &(),
        route,
        None,
    )
    .await
}

// ---- rebalance ----

/// A confirmed rebalance queues its actions within this time.
const REBALANCE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

async fn rebalance_preview(
    State(st): State<AppState>,
    actor: Actor,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::Json<RebalancePlan>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    let v = dashboard_put(&st, &p, "slots/rebalance/{X}/0", None).await?;
    let raw: BTreeMap<String, i64> = serde_json::from_value(v).unwrap_or_default();
    let plan = raw
        .into_iter()
        .filter_map(|(k, g)| k.parse::<i64>().ok().map(|s| (s, g)))
        .collect();
    Ok(axum::Json(RebalancePlan { plan }))
}

async fn rebalance_confirm(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<RebalancePlan>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    if b.plan.is_empty() {
        return Err(ApiError::invalid("the plan is empty: nothing to move"));
    }
    for (&sid, &gid) in &b.plan {
        check_slot(sid)?;
        check_gid(gid)?;
    }
    let change = Change::new(&actor, &ctx, Some(&p.name), "rebalance")
        .target(format!("{} slots", b.plan.len()))
        .params(&b);
    // The progress counts the whole plan from now on, while its actions are being queued.
    let run = products::start_run(&p, "rebalance".into(), b.plan.clone(), false);
    let queued = std::sync::atomic::AtomicUsize::new(0);
    let res = run_change(&st, change, async {
        // Exactly the previewed plan: one action per slot, in slot order, within a bounded
        // time overall (each call is bounded too); what was queued before a stop is reported.
        let deadline = tokio::time::Instant::now() + REBALANCE_DEADLINE;
        for (done, (sid, gid)) in b.plan.iter().enumerate() {
            queued.store(done, std::sync::atomic::Ordering::Relaxed);
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "dashboard_timeout",
                    format!(
                        "stopped after queueing {done} of {} slots: the dashboard is too slow; \
                         preview again to queue the rest",
                        b.plan.len()
                    ),
                ));
            }
            let route = format!("slots/action/create/{{X}}/{sid}/{gid}");
            dashboard_put(&st, &p, &route, None)
                .await
                .map_err(|mut e| {
                    e.message = format!(
                        "slot {sid} -> group {gid} (after {done} of {} queued): {}",
                        b.plan.len(),
                        e.message
                    );
                    e
                })?;
        }
        queued.store(b.plan.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
    .await;
    if res.is_ok() {
        products::queued(&p, run, None);
    } else {
        let n = queued.load(std::sync::atomic::Ordering::Relaxed);
        let kept: Vec<i64> = b.plan.keys().take(n).copied().collect();
        products::queued(&p, run, Some(&kept));
    }
    st.products.poll_now(&p).await;
    res
}

// ---- sentinels ----

async fn sentinels_add(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
    ApiJson(b): ApiJson<SentinelAdd>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_addr(&b.addr)?;
    let route = format!("sentinels/add/{{X}}/{}", b.addr);
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "sentinel.add",
        b.addr.clone(),
        &b,
        route,
        None,
    )
    .await
}

async fn sentinels_remove(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath((product, addr)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    check_addr(&addr)?;
    let force = u8::from(q.force.unwrap_or(0) != 0);
    let route = format!("sentinels/del/{{X}}/{addr}/{force}");
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "sentinel.remove",
        addr.clone(),
        &q,
        route,
        None,
    )
    .await
}

async fn sentinels_resync_all(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::Json<ChangeDone>> {
    let p = st.product_for(&actor, &product, Role::Operator)?;
    let route = "sentinels/resync-all/{X}".to_string();
    dashboard_change(
        &st,
        &actor,
        &ctx,
        &p,
        "sentinel.resync-all",
        "all".into(),
        &(),
        route,
        None,
    )
    .await
}

/// The product routes.
pub fn routes(r: ApiRoutes) -> ApiRoutes {
    const P: &str = "/api/v1/products/{product}";
    let _ = P;
    r.get(
        "/api/v1/products",
        products_list,
        Doc::new("Every product line with its health at a glance, most trouble first")
            .reply("ProductList"),
    )
    .get(
        "/api/v1/products/{product}",
        products_get,
        Doc::new("A product line's full picture: summary, migrations and the dashboard's overview")
            .reply("ProductDetail"),
    )
    .post(
        "/api/v1/products/{product}/groups",
        groups_create,
        Doc::new("Create a group")
            .body("GroupCreate")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}/groups/{gid}",
        groups_remove,
        Doc::new("Remove an empty group").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/groups/{gid}/servers",
        groups_add_server,
        Doc::new("Add a server to a group (isolation rules checked)")
            .body("ServerAdd")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}/groups/{gid}/servers/{addr}",
        groups_del_server,
        Doc::new("Remove a server from a group").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/groups/{gid}/promote",
        groups_promote,
        Doc::new("Promote a replica to master (isolation rules checked)")
            .body("ServerRef")
            .reply("ChangeDone"),
    )
    .put(
        "/api/v1/products/{product}/groups/{gid}/replica-group",
        groups_replica_group,
        Doc::new("Turn a server's replica-group flag on or off")
            .body("ReplicaGroup")
            .reply("ChangeDone"),
    )
    .put(
        "/api/v1/products/{product}/groups/replica-group-all",
        groups_replica_group_all,
        Doc::new("Turn every server's replica-group flag on or off")
            .body("ReplicaGroupAll")
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/groups/{gid}/resync",
        groups_resync,
        Doc::new("Push a group's slots to every proxy again").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/groups/resync-all",
        groups_resync_all,
        Doc::new("Push every group's slots to every proxy again").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/groups/{gid}/sync-action",
        groups_sync_action,
        Doc::new("Queue (create) or drop (remove) a server's SLAVEOF action")
            .body("SyncAction")
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/proxies",
        proxies_create,
        Doc::new("Add a proxy by its admin address")
            .body("ProxyCreate")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}/proxies/{token}",
        proxies_remove,
        Doc::new("Remove a proxy (force=1 even when it does not answer)")
            .query(&["force"])
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/proxies/{token}/reinit",
        proxies_reinit,
        Doc::new("Push the slot table and sentinels to a proxy again").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/slots/assign",
        slots_assign,
        Doc::new("Assign a slot range to a group without moving data (group 0: offline)")
            .body("SlotRange")
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/slots/move",
        slots_move,
        Doc::new("Migrate a slot range to a group")
            .body("SlotRange")
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/slots/move-some",
        slots_move_some,
        Doc::new("Migrate N slots from one group to another")
            .body("SlotsMoveSome")
            .reply("ChangeDone"),
    )
    .put(
        "/api/v1/products/{product}/slots/action",
        slots_action,
        Doc::new("Pause or resume migrations, set the interval between steps")
            .body("SlotActionSettings")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}/slots/{sid}/action",
        slots_cancel,
        Doc::new("Cancel a slot's pending migration").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/rebalance/preview",
        rebalance_preview,
        Doc::new("The rebalance plan (slot -> group), not run").reply("RebalancePlan"),
    )
    .post(
        "/api/v1/products/{product}/rebalance",
        rebalance_confirm,
        Doc::new("Run exactly the given (previewed) plan")
            .body("RebalancePlan")
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/sentinels",
        sentinels_add,
        Doc::new("Add a sentinel")
            .body("SentinelAdd")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}/sentinels/{addr}",
        sentinels_remove,
        Doc::new("Remove a sentinel (force=1 even when it does not answer)")
            .query(&["force"])
            .reply("ChangeDone"),
    )
    .post(
        "/api/v1/products/{product}/sentinels/resync-all",
        sentinels_resync_all,
        Doc::new("Make every sentinel watch every group's master again").reply("ChangeDone"),
    )
}
