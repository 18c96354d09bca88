//! codis-fe: one REST API (and the web UI's files) over every product line, with users, roles,
//! an audit history and isolation rules kept in SQLite.
//!
//! # Layout
//! - [`cli`]: the command line (Codis 3.2's flags plus `--db` and friends).
//! - [`db`]: SQLite (WAL, foreign keys), migrations from `migrations/`.
//! - [`auth`]: passwords, sessions, API tokens, CSRF, lock-out; the [`auth::Actor`] extractor.
//! - [`users`]: login/logout, `me`, users, tokens, registered product lines.
//! - [`products`]: discovery (coordinator, list file, registered) and one poller per dashboard.
//! - [`changes`]: reading a product line and every change, audited and isolation-checked.
//! - [`isolation`]: the server inventory, physical/logical rules, the report.
//! - [`audit`]: the append-only history, its queries and export.
//! - [`history`]: OPS/memory/keys samples for charts.
//! - [`codis_routes`]: Codis's `/list` and `?forward=` routes.
//! - [`openapi`]: the route list that builds both the router and `/api/openapi.json`.
//! - [`metrics`]: the Prometheus text of `/metrics`.
//!
//! The request path: [`track`] (metrics, refusal audit) → [`auth::Actor`] (who) →
//! `Actor::require` (may they) → [`changes::run_change`] (audit row, isolation check,
//! dashboard call, outcome).

pub mod audit;
pub mod auth;
pub mod changes;
pub mod cli;
pub mod codis_routes;
pub mod db;
pub mod error;
pub mod history;
pub mod isolation;
pub mod metrics;
pub mod openapi;
pub mod products;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use codis_model::fe::Role;
use sqlx::SqlitePool;
use tower::ServiceExt as _;
use tower_http::services::{ServeDir, ServeFile};

use self::auth::{Actor, ActorSlot, SessionPolicy};
use self::error::{ApiError, ApiResult};
use self::metrics::Metrics;
use self::openapi::{ApiRoutes, RouteDoc};
use self::products::{Product, Registry};

/// How the fe runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Session lifetimes and cookie flags.
    pub session: SessionPolicy,
    /// The UI's files (`index.html` and the wasm bundle).
    pub assets_dir: PathBuf,
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: SqlitePool,
    /// Every product line.
    pub products: Arc<Registry>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Client for dashboard changes (bounded, longer than polls).
    pub dashboard_http: reqwest::Client,
    /// Every documented route.
    pub route_docs: Arc<Vec<RouteDoc>>,
    /// Held by a change that adds or promotes a server, from its isolation check until the
    /// dashboard has answered, so two such changes cannot both pass the check.
    pub isolation_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// State over a database and a registry.
    pub fn new(db: SqlitePool, products: Arc<Registry>, settings: Settings) -> AppState {
        let dashboard_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .no_proxy()
            .build()
            .unwrap_or_default();
        AppState {
            db,
            products,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            dashboard_http,
            route_docs: Arc::new(api_routes().docs),
            isolation_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// A product line by name.
    ///
    /// # Errors
    /// 404.
    pub fn product(&self, name: &str) -> ApiResult<Arc<Product>> {
        self.products
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no product line {name:?}")))
    }

    /// A product line the caller has at least `role` on (403 before 404, so names of product
    /// lines the caller may not see are not revealed).
    ///
    /// # Errors
    /// 403, 404.
    pub fn product_for(&self, actor: &Actor, name: &str, role: Role) -> ApiResult<Arc<Product>> {
        actor.require(name, role)?;
        self.product(name)
    }
}

/// The client's address, for the audit history.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// IP address (or `local`).
    pub source: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestCtx {
            source: auth::source_of(parts),
        })
    }
}

/// Every `/api/v1` route.
pub fn api_routes() -> ApiRoutes {
    let r = ApiRoutes::default();
    let r = users::routes(r);
    let r = changes::routes(r);
    let r = isolation::routes(r);
    let r = history::routes(r);
    audit::routes(r)
}

async fn openapi_json(State(st): State<AppState>) -> Response {
    axum::Json(openapi::document(&st.route_docs)).into_response()
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    let all = st.products.all();
    let reachable = all
        .iter()
        .filter(|p| p.snapshot.read().error.is_none() && p.snapshot.read().overview.is_some())
        .count();
    // The newest row id counts rows (the history is append-only) without a table scan.
    let rows: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit")
        .fetch_one(&st.db)
        .await
        .unwrap_or(-1);
    let mut resp = st
        .metrics
        .render(all.len(), reachable, rows)
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API route (see /api/openapi.json)")
}

/// Everything not routed: Codis's `?forward=` requests, then the UI's files with an
/// `index.html` fallback so a reload on any page works.
async fn fallback(State(st): State<AppState>, req: Request) -> Response {
    if let Some(product) = codis_routes::forward_target(req.uri().query()) {
        let (mut parts, body) = req.into_parts();
        let actor = match Actor::from_request_parts(&mut parts, &st).await {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        };
        let ctx = RequestCtx {
            source: auth::source_of(&parts),
        };
        let req = Request::from_parts(parts, body);
        return match codis_routes::forward(st, actor, ctx, product, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    let dir = &st.settings.assets_dir;
    let index = dir.join("index.html");
    if !index.is_file() {
        return Html(NO_UI_PAGE).into_response();
    }
    let serve = ServeDir::new(dir)
        .precompressed_gzip()
        .precompressed_br()
        .fallback(ServeFile::new(index));
    match serve.oneshot(req).await {
        Ok(r) => {
            // frontend.js and frontend_bg.wasm keep their names across releases: the browser
            // may keep them but must revalidate (Last-Modified / If-Modified-Since, a 304 when
            // unchanged), so an upgrade never runs an old bundle against a new API.
            let mut r = r.into_response();
            r.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-cache"),
            );
            r
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

const NO_UI_PAGE: &str = "<!doctype html><html><head><title>codis-fe</title></head><body>\
<h1>codis-fe</h1><p>The REST API is at <a href=\"/api/openapi.json\">/api/openapi.json</a>. \
The web UI is not built in this assets folder (see --assets-dir).</p></body></html>";

/// Metrics for every request, and an audit row for every refused one (401, 403, 409) that
/// does not have one yet.
pub async fn track(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let forward_product = codis_routes::forward_target(req.uri().query());
    let api_like = path.starts_with("/api/")
        || path == "/list"
        || req.uri().query().is_some_and(|q| q.contains("forward="));
    let slot = ActorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let source = {
        let (mut parts, body) = req.into_parts();
        let source = auth::source_of(&parts);
        parts.extensions.insert(RequestCtx {
            source: source.clone(),
        });
        req = Request::from_parts(parts, body);
        source
    };
    // A change runs to its end even when the client goes away: hyper drops a request's
    // future when its connection closes, which would leave the change half done and its
    // audit row without an outcome.
    let unsafe_method = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let resp = if unsafe_method {
        match tokio::spawn(next.run(req)).await {
            Ok(r) => r,
            Err(e) => ApiError::internal(format!("request task: {e}")).into_response(),
        }
    } else {
        next.run(req).await
    };
    let status = resp.status();
    let route_label = route.unwrap_or_else(|| {
        if api_like {
            "other-api".into()
        } else {
            "static".into()
        }
    });
    st.metrics.observe(
        &route_label,
        metrics::method_label(&method),
        status.as_u16(),
        started.elapsed(),
    );
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::CONFLICT
    );
    let audited = resp
        .extensions()
        .get::<ApiError>()
        .is_some_and(|e| e.audited);
    let actor = slot.0.lock().clone();
    // Anonymous refusals are recorded once per client, route and minute: a logged-out page
    // that keeps polling must not fill the (append-only) history.
    let throttled = actor.is_none() && !first_this_minute(&source, &route_label);
    if api_like && refused && !audited && !throttled {
        let message = resp
            .extensions()
            .get::<ApiError>()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| status.to_string());
        let actor = actor.unwrap_or_else(|| "anonymous".into());
        let product = path
            .strip_prefix("/api/v1/products/")
            .and_then(|rest| rest.split('/').next())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or(forward_product);
        let entry = audit::Entry {
            actor,
            source,
            product,
            action: "refused".into(),
            target: Some(format!("{method} {path}").chars().take(512).collect()),
            params: None,
        };
        audit::record(&st.db, &entry, &message, status.as_u16()).await;
    }
    resp
}

fn first_this_minute(source: &str, route: &str) -> bool {
    static SEEN: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashMap<String, i64>>> =
        std::sync::OnceLock::new();
    let now = db::now_ms();
    let mut seen = SEEN.get_or_init(Default::default).lock();
    if seen.len() > 10_000 {
        seen.retain(|_, t| now - *t < 60_000);
    }
    let key = format!("{source} {route}");
    match seen.get(&key) {
        Some(t) if now - *t < 60_000 => false,
        _ => {
            seen.insert(key, now);
            true
        }
    }
}

/// The whole app: `/api/v1`, the OpenAPI document, `/metrics`, Codis's routes, the UI.
pub fn app(state: AppState) -> Router {
    let api = api_routes().router;
    Router::new()
        .merge(api)
        .route("/api/v1", get(api_not_found))
        .route("/api/v1/{*rest}", axum::routing::any(api_not_found))
        .route("/api/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        .route("/list", get(codis_routes::list))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

/// Completes the audit rows of changes that were running when codis-fe stopped.
///
/// # Errors
/// Database errors.
pub async fn close_interrupted_changes(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE audit SET outcome = 'interrupted: codis-fe stopped before the change completed', \
         status = 0 WHERE outcome IS NULL",
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Background upkeep: session and history pruning.
pub fn spawn_upkeep(st: &AppState) -> tokio::task::JoinHandle<()> {
    let st = st.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = auth::prune_sessions(&st.db, &st.settings.session).await {
                tracing::warn!("codis-fe: session prune: {e}");
            }
            history::prune(&st.db).await;
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    })
}
