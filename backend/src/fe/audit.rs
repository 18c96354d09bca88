//! The audit history: every change made through the fe is inserted before it is sent to the
//! dashboard and completed after (outcome, status, duration); logins, failed logins and refused
//! requests are recorded as completed rows. The database refuses edits of completed rows and
//! every delete (see `migrations/`). Read with filters and paging, or export as CSV or JSON.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use codis_model::fe::{AuditItem, AuditPage};
use serde::Deserialize;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::AppState;
use super::auth::Actor;
use super::db::now_ms;
use super::error::{ApiError, ApiQuery, ApiResult};
use super::openapi::{ApiRoutes, Doc};

/// What a row says, before its outcome is known.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// `user:<name>`, `token:<name>` or `anonymous`.
    pub actor: String,
    /// Client address.
    pub source: String,
    /// Product line, if any.
    pub product: Option<String>,
    /// Action name, e.g. `group.create`.
    pub action: String,
    /// Target, e.g. a group id.
    pub target: Option<String>,
    /// Parameters, JSON text.
    pub params: Option<String>,
}

/// Inserts a row with no outcome yet; returns its id.
///
/// # Errors
/// Database errors (the change must then not run).
pub async fn begin(db: &SqlitePool, e: &Entry) -> ApiResult<i64> {
    let id = sqlx::query(
        "INSERT INTO audit (time, actor, source, product, action, target, params) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(now_ms())
    .bind(&e.actor)
    .bind(&e.source)
    .bind(&e.product)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.params)
    .execute(db)
    .await?
    .last_insert_rowid();
    Ok(id)
}

/// Completes a row begun by [`begin`].
pub async fn finish(db: &SqlitePool, id: i64, outcome: &str, status: u16, started: Instant) {
    let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    if let Err(e) = sqlx::query(
        "UPDATE audit SET outcome = ?, status = ?, duration_ms = ? WHERE id = ? AND outcome IS NULL",
    )
    .bind(outcome)
    .bind(i64::from(status))
    .bind(ms)
    .bind(id)
    .execute(db)
    .await
    {
        tracing::error!("audit row {id} could not be completed: {e}");
    }
}

/// Inserts a completed row (logins, refusals).
pub async fn record(db: &SqlitePool, e: &Entry, outcome: &str, status: u16) -> Option<i64> {
    let res = sqlx::query(
        "INSERT INTO audit (time, actor, source, product, action, target, params, outcome, \
         status, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
    )
    .bind(now_ms())
    .bind(&e.actor)
    .bind(&e.source)
    .bind(&e.product)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.params)
    .bind(outcome)
    .bind(i64::from(status))
    .execute(db)
    .await;
    match res {
        Ok(r) => Some(r.last_insert_rowid()),
        Err(err) => {
            tracing::error!("audit row could not be written: {err}");
            None
        }
    }
}

/// Marks a response whose request already has its audit row.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// Query of `GET /api/v1/audit` and its export.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Only this product line.
    pub product: Option<String>,
    /// Only this actor (`user:<name>`, `token:<name>`), or a user name.
    pub user: Option<String>,
    /// Only this action (exact) or prefix ending in `.` (e.g. `group.`).
    pub action: Option<String>,
    /// `ok`, `error` (every other completed outcome) or `running`.
    pub outcome: Option<String>,
    /// From this time (Unix ms, inclusive).
    pub since: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub until: Option<i64>,
    /// Rows with an id below this (paging, newest first).
    pub before: Option<i64>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<i64>,
    /// Export format: `csv` or `json`.
    pub format: Option<String>,
}

type Row = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn item(r: Row) -> AuditItem {
    AuditItem {
        id: r.0,
        time: r.1,
        actor: r.2,
        source: r.3,
        product: r.4,
        action: r.5,
        target: r.6,
        params: r.7,
        outcome: r.8,
        status: r.9,
        duration_ms: r.10,
    }
}

/// Adds the filters, and what the caller may see: a global admin sees every row, anyone else
/// the rows of the product lines they have a role on and their own rows.
fn filters(qb: &mut QueryBuilder<Sqlite>, q: &AuditQuery, actor: &Actor) {
    qb.push(" WHERE 1 = 1");
    if let Some(p) = &q.product {
        qb.push(" AND product = ").push_bind(p);
    }
    if let Some(u) = &q.user {
        if u.contains(':') {
            qb.push(" AND actor = ").push_bind(u);
        } else {
            qb.push(" AND actor = ").push_bind(format!("user:{u}"));
        }
    }
    if let Some(a) = &q.action {
        if let Some(prefix) = a.strip_suffix('.') {
            qb.push(" AND substr(action, 1, ")
                .push_bind(i64::try_from(prefix.len() + 1).unwrap_or(0))
                .push(") = ")
                .push_bind(format!("{prefix}."));
        } else {
            qb.push(" AND action = ").push_bind(a);
        }
    }
    match q.outcome.as_deref() {
        Some("ok") => {
            qb.push(" AND outcome = 'ok'");
        }
        Some("error") => {
            qb.push(" AND outcome IS NOT NULL AND outcome != 'ok'");
        }
        Some("running") => {
            qb.push(" AND outcome IS NULL");
        }
        _ => {}
    }
    if let Some(s) = q.since {
        qb.push(" AND time >= ").push_bind(s);
    }
    if let Some(u) = q.until {
        qb.push(" AND time < ").push_bind(u);
    }
    if !actor.global_admin {
        qb.push(" AND (actor = ").push_bind(&actor.name);
        if actor.roles.iter().any(|g| g.product == "*") {
            qb.push(" OR product IS NOT NULL");
        } else {
            for g in &actor.roles {
                qb.push(" OR product = ").push_bind(&g.product);
            }
        }
        qb.push(")");
    }
}

fn check_query(q: &AuditQuery) -> ApiResult<()> {
    if let Some(o) = &q.outcome
        && !matches!(o.as_str(), "ok" | "error" | "running")
    {
        return Err(ApiError::invalid(format!(
            "outcome must be ok, error or running, not {o:?}"
        )));
    }
    if let Some(l) = q.limit
        && !(1..=1000).contains(&l)
    {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    Ok(())
}

/// `GET /api/v1/audit`.
async fn audit_list(
    State(st): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    check_query(&q)?;
    let limit = q.limit.unwrap_or(100);
    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM audit");
    filters(&mut count, &q, &actor);
    let total: i64 = count.build_query_scalar().fetch_one(&st.db).await?;
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT id, time, actor, source, product, action, target, params, outcome, status, \
         duration_ms FROM audit",
    );
    filters(&mut qb, &q, &actor);
    if let Some(b) = q.before {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<Row> = qb.build_query_as().fetch_all(&st.db).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let items: Vec<AuditItem> = rows.into_iter().map(item).collect();
    let next_before = if more {
        items.last().map(|i| i.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        items,
        total,
        next_before,
    }))
}

fn csv_field(s: &str) -> String {
    // A leading =, +, - or @ would be a formula in a spreadsheet: quote it away.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('\'') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `GET /api/v1/audit/export?format=csv|json`: every matching row, oldest first.
async fn audit_export(
    State(st): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    check_query(&q)?;
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "csv" | "json") {
        return Err(ApiError::invalid("format must be csv or json"));
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT id, time, actor, source, product, action, target, params, outcome, status, \
         duration_ms FROM audit",
    );
    filters(&mut qb, &q, &actor);
    qb.push(" ORDER BY id ASC LIMIT 1000000");
    let rows: Vec<Row> = qb.build_query_as().fetch_all(&st.db).await?;
    let items: Vec<AuditItem> = rows.into_iter().map(item).collect();
    if format == "json" {
        let mut resp = axum::Json(items).into_response();
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"codis-fe-audit.json\""),
        );
        return Ok(resp);
    }
    let mut out = String::from(
        "id,time,actor,source,product,action,target,params,outcome,status,duration_ms\n",
    );
    for i in items {
        let opt = |o: &Option<String>| csv_field(o.as_deref().unwrap_or(""));
        let num = |o: Option<i64>| o.map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            i.id,
            i.time,
            csv_field(&i.actor),
            csv_field(&i.source),
            opt(&i.product),
            csv_field(&i.action),
            opt(&i.target),
            opt(&i.params),
            opt(&i.outcome),
            num(i.status),
            num(i.duration_ms)
        ));
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"codis-fe-audit.csv\""),
    );
    Ok(resp)
}

/// The audit routes.
pub fn routes(r: ApiRoutes) -> ApiRoutes {
    r.get(
        "/api/v1/audit",
        audit_list,
        Doc::new("The audit history, newest first, filtered and paged")
            .query(&[
                "product", "user", "action", "outcome", "since", "until", "before", "limit",
            ])
            .reply("AuditPage"),
    )
    .get(
        "/api/v1/audit/export",
        audit_export,
        Doc::new("Every matching audit row, oldest first, as CSV or JSON")
            .reply("AuditItems")
            .also_csv()
            .query(&[
                "format", "product", "user", "action", "outcome", "since", "until",
            ]),
    )
}
