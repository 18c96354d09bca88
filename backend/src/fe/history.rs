//! Metric history: every product line's OPS, memory and keys, sampled by the poller at least
//! every [`SAMPLE_EVERY_MS`] (while the dashboard answers) and kept [`KEEP_MS`], so charts show the past, not only what
//! happened since a page was opened.

use axum::extract::State;
use codis_model::fe::{History, HistoryPoint, Role};
use serde::Deserialize;
use sqlx::SqlitePool;

use super::AppState;
use super::auth::Actor;
use super::db::now_ms;
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::openapi::{ApiRoutes, Doc};

/// Samples are at most this far apart (the poller takes one a poll interval early).
pub const SAMPLE_EVERY_MS: i64 = 10_000;
/// Samples are kept 7 days.
pub const KEEP_MS: i64 = 7 * 24 * 3600 * 1000;

/// Stores one sample.
pub async fn store(db: &SqlitePool, product: &str, time: i64, ops: i64, memory: i64, keys: i64) {
    let res = sqlx::query(
        "INSERT OR REPLACE INTO history (product, time, ops, memory, keys) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(product)
    .bind(time)
    .bind(ops)
    .bind(memory)
    .bind(keys)
    .execute(db)
    .await;
    if let Err(e) = res {
        tracing::warn!("codis-fe: history sample of {product}: {e}");
    }
}

/// Deletes samples older than [`KEEP_MS`].
pub async fn prune(db: &SqlitePool) {
    if let Err(e) = sqlx::query("DELETE FROM history WHERE time < ?")
        .bind(now_ms() - KEEP_MS)
        .execute(db)
        .await
    {
        tracing::warn!("codis-fe: history prune: {e}");
    }
}

/// Query of the history route.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// `ops`, `memory` or `keys`.
    pub metric: Option<String>,
    /// From (Unix ms; default: an hour ago).
    pub since: Option<i64>,
}

/// At most this many points are returned (older samples are thinned evenly).
const MAX_POINTS: usize = 2000;

/// `GET /api/v1/products/{product}/history`.
async fn history_get(
    State(st): State<AppState>,
    actor: Actor,
    ApiPath(product): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<axum::Json<History>> {
    actor.require(&product, Role::Viewer)?;
    st.product(&product)?;
    let metric = q.metric.unwrap_or_else(|| "ops".into());
    let column = match metric.as_str() {
        "ops" => "ops",
        "memory" => "memory",
        "keys" => "keys",
        other => {
            return Err(ApiError::invalid(format!(
                "metric must be ops, memory or keys, not {other:?}"
            )));
        }
    };
    let since = q.since.unwrap_or_else(|| now_ms() - 3600 * 1000);
    let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT time, {column} FROM history WHERE product = ? AND time >= ? ORDER BY time"
    )))
    .bind(&product)
    .bind(since)
    .fetch_all(&st.db)
    .await?;
    let step = rows.len().div_ceil(MAX_POINTS).max(1);
    let points = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0)
        .map(|(_, (time, value))| HistoryPoint { time, value })
        .collect();
    Ok(axum::Json(History { metric, points }))
}

/// The history route.
pub fn routes(r: ApiRoutes) -> ApiRoutes {
    r.get(
        "/api/v1/products/{product}/history",
        history_get,
        Doc::new(
            "A product line's OPS, memory or keys over time (sampled every 10 s, kept 7 days)",
        )
        .query(&["metric", "since"])
        .reply("History"),
    )
}
