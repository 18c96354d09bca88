//! Codis 3.2's own fe routes, kept so existing scripts and bookmarks work: `GET /list` (the
//! product names) and any path with `?forward=<product>`, reverse-proxied to that product's
//! dashboard. Unlike Codis they are behind the same login and roles as the REST API: reads
//! need a viewer, changes an operator, and every change is audited.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use codis_model::fe::Role;

use super::auth::Actor;
use super::changes::{Change, run_change_with};
use super::error::{ApiError, ApiResult};
use super::{AppState, RequestCtx};

/// The largest body forwarded to a dashboard.
const MAX_FORWARD_BODY: usize = 8 << 20;

/// `GET /list`: the product lines the caller may see, sorted.
pub async fn list(State(st): State<AppState>, actor: Actor) -> axum::Json<Vec<String>> {
    axum::Json(
        st.products
            .names()
            .into_iter()
            .filter(|n| actor.can_see(n))
            .collect(),
    )
}

/// The `forward` query parameter, if any.
pub fn forward_target(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "forward").then(|| v.to_string())
    })
}

/// Any request with `?forward=<product>`.
pub async fn forward(
    st: AppState,
    actor: Actor,
    ctx: RequestCtx,
    product: String,
    req: Request,
) -> ApiResult<Response> {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    actor.require(&product, if write { Role::Operator } else { Role::Viewer })?;
    let p = st
        .products
        .get(&product)
        .ok_or_else(|| ApiError::forbidden(format!("unknown product {product:?}")))?;
    let dash = p.dashboard.read().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(req.into_body(), MAX_FORWARD_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    let url = format!("http://{dash}{path_q}");
    let send = async {
        let mut rb = st
            .dashboard_http
            .request(method.clone(), &url)
            .timeout(Duration::from_secs(30));
        if let Some(ct) = content_type {
            rb = rb.header(header::CONTENT_TYPE, ct);
        }
        let resp = rb.body(body.to_vec()).send().await.map_err(|e| {
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
                    format!(
                        "dashboard {dash} unreachable: {}",
                        super::products::root_cause(&e)
                    ),
                )
            }
        })?;
        let status = resp.status();
        let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = resp.bytes().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "dashboard_unreachable",
                e.to_string(),
            )
        })?;
        Ok::<_, ApiError>((status, ct, bytes))
    };
    let (status, ct, bytes) = if write {
        let path = path_q.split('?').next().unwrap_or("").to_string();
        let change = Change::new(&actor, &ctx, Some(&product), "codis.forward")
            .target(format!("{method} {}", redact_xauth(&path)));
        let (_, out) = run_change_with(&st, change, async {
            let (status, ct, bytes) = send.await?;
            if status.is_success() {
                Ok((status, ct, bytes))
            } else {
                let cause = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("Cause").and_then(|c| c.as_str()).map(str::to_string))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                // Keep Codis's reply for the old UI; the audit row gets the cause.
                Err(ApiError::new(
                    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                    "dashboard_error",
                    cause,
                ))
            }
        })
        .await?;
        st.products.poll_now(&p).await;
        out
    } else {
        send.await?
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    if let Some(ct) = ct {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    } else {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    Ok(resp.into_response())
}

/// Dashboard routes carry the xauth as a path segment after the verb; it is not a secret
/// worth keeping (it derives from the product name) but it clutters the history.
fn redact_xauth(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() == 32 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                "{xauth}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
