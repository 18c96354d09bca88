//! The dashboard's HTTP API: Codis 3.2's routes (spec §6.4), JSON indented with 4 spaces,
//! mutations answering `"OK"`, failures answering HTTP 800 with `{"Cause": ...}`.
//!
//! Path parameters are taken as text and parsed here, so a bad number gets a Codis-style
//! error body rather than a framework rejection.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, put};
use codis_model::topom::{RemoteError, SlotMapping, TopomOverview};
use serde::Serialize;

use super::error::DashboardError;
use super::topom::Topom;

/// Sets the log level at run time (`loglevel` route); returns an error text for a bad level.
pub type LogLevelSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The dashboard.
    pub topom: Arc<Topom>,
    /// Run-time log level control.
    pub set_log_level: LogLevelSetter,
    /// Version line shown in the overview.
    pub version: String,
    /// Build line shown in the overview.
    pub compile: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// An API failure: status 800, Codis's error body.
#[derive(Debug)]
pub struct ApiError(String);

impl From<DashboardError> for ApiError {
    fn from(e: DashboardError) -> Self {
        ApiError(e.to_string())
    }
}

impl ApiError {
    fn new(msg: impl Into<String>) -> Self {
        ApiError(msg.into())
    }
}

/// Codis's remote-error status.
const STATUS_REMOTE_ERROR: u16 = 800;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(STATUS_REMOTE_ERROR).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = RemoteError {
            cause: self.0,
            stack: Some(Vec::new()),
        };
        let mut resp = json(&body).into_response();
        *resp.status_mut() = status;
        resp
    }
}

/// A 200 reply with the value as 4-space-indented JSON.
#[derive(Debug)]
pub struct Json<T>(T);

fn json<T: Serialize>(v: T) -> Json<T> {
    Json(v)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        if let Err(e) = self.0.serialize(&mut ser) {
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        let mut resp = out.into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        resp
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn ok() -> ApiResult<&'static str> {
    Ok(json("OK"))
}

fn check_xauth(s: &AppState, xauth: &str) -> Result<(), ApiError> {
    if xauth.is_empty() {
        return Err(ApiError::new(
            "missing xauth, please check product name & auth",
        ));
    }
    if xauth != s.topom.xauth {
        return Err(ApiError::new(
            "invalid xauth, please check product name & auth",
        ));
    }
    Ok(())
}

fn int(name: &str, text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(format!("invalid {name} = '{text}', not an integer")))
}

/// The dashboard's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/topom") }))
        .route("/topom", get(overview))
        .route("/topom/model", get(model))
        .route("/api/topom/model", get(model))
        .route("/topom/stats", get(stats))
        .route("/api/topom/stats/{xauth}", get(stats_x))
        .route("/topom/slots", get(slots))
        .route("/api/topom/slots/{xauth}", get(slots_x))
        .route("/api/topom/xping/{xauth}", get(xping))
        .route("/api/topom/reload/{xauth}", put(reload))
        .route("/api/topom/shutdown/{xauth}", put(shutdown))
        .route("/api/topom/loglevel/{xauth}/{value}", put(loglevel))
        .route("/api/topom/proxy/create/{xauth}/{addr}", put(proxy_create))
        .route("/api/topom/proxy/online/{xauth}/{addr}", put(proxy_online))
        .route("/api/topom/proxy/reinit/{xauth}/{token}", put(proxy_reinit))
        .route(
            "/api/topom/proxy/remove/{xauth}/{token}/{force}",
            put(proxy_remove),
        )
        .route("/api/topom/group/create/{xauth}/{gid}", put(group_create))
        .route("/api/topom/group/remove/{xauth}/{gid}", put(group_remove))
        .route("/api/topom/group/resync/{xauth}/{gid}", put(group_resync))
        .route("/api/topom/group/resync-all/{xauth}", put(group_resync_all))
        .route("/api/topom/group/add/{xauth}/{gid}/{addr}", put(group_add))
        .route(
            "/api/topom/group/add/{xauth}/{gid}/{addr}/{dc}",
            put(group_add_dc),
        )
        .route("/api/topom/group/del/{xauth}/{gid}/{addr}", put(group_del))
        .route(
            "/api/topom/group/promote/{xauth}/{gid}/{addr}",
            put(group_promote),
        )
        .route(
            "/api/topom/group/replica-groups/{xauth}/{gid}/{addr}/{value}",
            put(group_replica),
        )
        .route(
            "/api/topom/group/replica-groups-all/{xauth}/{value}",
            put(group_replica_all),
        )
        .route(
            "/api/topom/group/action/create/{xauth}/{addr}",
            put(sync_create),
        )
        .route(
            "/api/topom/group/action/remove/{xauth}/{addr}",
            put(sync_remove),
        )
        .route("/api/topom/group/info/{addr}", get(group_info))
        .route(
            "/api/topom/slots/action/create/{xauth}/{sid}/{gid}",
            put(slot_create),
        )
        .route(
            "/api/topom/slots/action/create-some/{xauth}/{src}/{dst}/{num}",
            put(slot_create_some),
        )
        .route(
            "/api/topom/slots/action/create-range/{xauth}/{beg}/{end}/{gid}",
            put(slot_create_range),
        )
        .route(
            "/api/topom/slots/action/remove/{xauth}/{sid}",
            put(slot_remove),
        )
        .route(
            "/api/topom/slots/action/interval/{xauth}/{value}",
            put(slot_interval),
        )
        .route(
            "/api/topom/slots/action/disabled/{xauth}/{value}",
            put(slot_disabled),
        )
        .route("/api/topom/slots/assign/{xauth}", put(slots_assign))
        .route(
            "/api/topom/slots/assign/{xauth}/offline",
            put(slots_assign_offline),
        )
        .route(
            "/api/topom/slots/rebalance/{xauth}/{confirm}",
            put(slots_rebalance),
        )
        .route("/api/topom/sentinels/add/{xauth}/{addr}", put(sentinel_add))
        .route(
            "/api/topom/sentinels/del/{xauth}/{addr}/{force}",
            put(sentinel_del),
        )
        .route(
            "/api/topom/sentinels/resync-all/{xauth}",
            put(sentinel_resync_all),
        )
        .route("/api/topom/sentinels/info/{addr}", get(sentinel_info))
        .route(
            "/api/topom/sentinels/info/{addr}/monitored",
            get(sentinel_monitored),
        )
        .with_state(state)
}

async fn overview(State(s): State<AppState>) -> ApiResult<TopomOverview> {
    let stats = s.topom.stats().await.ok();
    Ok(json(TopomOverview {
        version: s.version.clone(),
        compile: s.compile.clone(),
        config: s.topom.config.to_json(),
        model: s.topom.model.clone(),
        stats,
    }))
}

async fn model(State(s): State<AppState>) -> ApiResult<codis_model::topom::Topom> {
    Ok(json(s.topom.model.clone()))
}

async fn stats(State(s): State<AppState>) -> ApiResult<codis_model::topom::TopomStats> {
    Ok(json(s.topom.stats().await?))
}

async fn stats_x(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
) -> ApiResult<codis_model::topom::TopomStats> {
    check_xauth(&s, &xauth)?;
    stats(State(s)).await
}

async fn slots(State(s): State<AppState>) -> ApiResult<Vec<codis_model::proxy::Slot>> {
    let ctx = s.topom.snapshot().await?;
    Ok(json(ctx.view().all(None)))
}

async fn slots_x(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
) -> ApiResult<Vec<codis_model::proxy::Slot>> {
    check_xauth(&s, &xauth)?;
    slots(State(s)).await
}

async fn xping(State(s): State<AppState>, Path(xauth): Path<String>) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    ok()
}

async fn reload(State(s): State<AppState>, Path(xauth): Path<String>) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    let mut locked = s.topom.lock().await?;
    locked.reload();
    locked.context().await?;
    ok()
}

async fn shutdown(State(s): State<AppState>, Path(xauth): Path<String>) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.close().await?;
    ok()
}

async fn loglevel(
    State(s): State<AppState>,
    Path((xauth, value)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    (s.set_log_level)(&value).map_err(ApiError::new)?;
    ok()
}

async fn proxy_create(
    State(s): State<AppState>,
    Path((xauth, addr)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.proxy_create(&addr).await?;
    ok()
}

async fn proxy_online(
    State(s): State<AppState>,
    Path((xauth, addr)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.proxy_online(&addr).await?;
    ok()
}

async fn proxy_reinit(
    State(s): State<AppState>,
    Path((xauth, token)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.proxy_reinit(&token).await?;
    ok()
}

async fn proxy_remove(
    State(s): State<AppState>,
    Path((xauth, token, force)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    let force = int("force", &force)? != 0;
    s.topom.proxy_remove(&token, force).await?;
    ok()
}

async fn group_create(
    State(s): State<AppState>,
    Path((xauth, gid)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_create(int("gid", &gid)?).await?;
    ok()
}

async fn group_remove(
    State(s): State<AppState>,
    Path((xauth, gid)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_remove(int("gid", &gid)?).await?;
    ok()
}

async fn group_resync(
    State(s): State<AppState>,
    Path((xauth, gid)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_resync(int("gid", &gid)?).await?;
    ok()
}

async fn group_resync_all(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_resync_all().await?;
    ok()
}

async fn group_add(
    State(s): State<AppState>,
    Path((xauth, gid, addr)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .group_add_server(int("gid", &gid)?, "", &addr)
        .await?;
    ok()
}

async fn group_add_dc(
    State(s): State<AppState>,
    Path((xauth, gid, addr, dc)): Path<(String, String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .group_add_server(int("gid", &gid)?, &dc, &addr)
        .await?;
    ok()
}

async fn group_del(
    State(s): State<AppState>,
    Path((xauth, gid, addr)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_del_server(int("gid", &gid)?, &addr).await?;
    ok()
}

async fn group_promote(
    State(s): State<AppState>,
    Path((xauth, gid, addr)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.group_promote(int("gid", &gid)?, &addr).await?;
    ok()
}

async fn group_replica(
    State(s): State<AppState>,
    Path((xauth, gid, addr, value)): Path<(String, String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .group_set_replica(int("gid", &gid)?, &addr, int("value", &value)? != 0)
        .await?;
    ok()
}

async fn group_replica_all(
    State(s): State<AppState>,
    Path((xauth, value)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .group_set_replica_all(int("value", &value)? != 0)
        .await?;
    ok()
}

async fn sync_create(
    State(s): State<AppState>,
    Path((xauth, addr)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.sync_create_action(&addr).await?;
    ok()
}

async fn sync_remove(
    State(s): State<AppState>,
    Path((xauth, addr)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.sync_remove_action(&addr).await?;
    ok()
}

async fn group_info(
    State(s): State<AppState>,
    Path(addr): Path<String>,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    Ok(json(
        s.topom.server_info(&addr, Duration::from_secs(1)).await?,
    ))
}

async fn slot_create(
    State(s): State<AppState>,
    Path((xauth, sid, gid)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .slot_create_action(int("sid", &sid)?, int("gid", &gid)?)
        .await?;
    ok()
}

async fn slot_create_some(
    State(s): State<AppState>,
    Path((xauth, src, dst, num)): Path<(String, String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .slot_create_action_some(int("src", &src)?, int("dst", &dst)?, int("num", &num)?)
        .await?;
    ok()
}

async fn slot_create_range(
    State(s): State<AppState>,
    Path((xauth, beg, end, gid)): Path<(String, String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .slot_create_action_range(int("beg", &beg)?, int("end", &end)?, int("gid", &gid)?)
        .await?;
    ok()
}

async fn slot_remove(
    State(s): State<AppState>,
    Path((xauth, sid)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.slot_remove_action(int("sid", &sid)?).await?;
    ok()
}

async fn slot_interval(
    State(s): State<AppState>,
    Path((xauth, value)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.set_slot_action_interval(int("value", &value)?);
    ok()
}

async fn slot_disabled(
    State(s): State<AppState>,
    Path((xauth, value)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.set_slot_action_disabled(int("value", &value)? != 0);
    ok()
}

fn slot_body(body: &Bytes) -> Result<Vec<SlotMapping>, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(format!(
            "bad request body, expected a JSON array of slot mappings: {e}"
        ))
    })
}

async fn slots_assign(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
    body: Bytes,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.slots_assign(&slot_body(&body)?, false).await?;
    ok()
}

async fn slots_assign_offline(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
    body: Bytes,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.slots_assign(&slot_body(&body)?, true).await?;
    ok()
}

async fn slots_rebalance(
    State(s): State<AppState>,
    Path((xauth, confirm)): Path<(String, String)>,
) -> ApiResult<std::collections::BTreeMap<String, i64>> {
    check_xauth(&s, &xauth)?;
    let plan = s
        .topom
        .slots_rebalance(int("confirm", &confirm)? != 0)
        .await?;
    // Go encodes the map's integer keys as strings, sorted as strings.
    Ok(json(
        plan.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    ))
}

async fn sentinel_add(
    State(s): State<AppState>,
    Path((xauth, addr)): Path<(String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.sentinel_add(&addr).await?;
    ok()
}

async fn sentinel_del(
    State(s): State<AppState>,
    Path((xauth, addr, force)): Path<(String, String, String)>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom
        .sentinel_del(&addr, int("force", &force)? != 0)
        .await?;
    ok()
}

async fn sentinel_resync_all(
    State(s): State<AppState>,
    Path(xauth): Path<String>,
) -> ApiResult<&'static str> {
    check_xauth(&s, &xauth)?;
    s.topom.sentinel_resync_all().await?;
    ok()
}

async fn sentinel_info(
    Path(addr): Path<String>,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let mut c = crate::redis::RedisClient::connect(&addr, "", Duration::from_secs(1))
        .await
        .map_err(|e| ApiError::new(e.to_string()))?;
    Ok(json(
        c.info(None)
            .await
            .map_err(|e| ApiError::new(e.to_string()))?,
    ))
}

async fn sentinel_monitored(
    State(s): State<AppState>,
    Path(addr): Path<String>,
) -> ApiResult<std::collections::BTreeMap<String, codis_model::topom::SentinelGroup>> {
    Ok(json(s.topom.sentinel_monitored(&addr).await?))
}
