//! Codis 3.2's own fe routes, kept so existing scripts and bookmarks work: `GET /list` (the
//! product names) and any path with `?forward=<product>`, reverse-proxied to that product's
//! dashboard. Unlike Codis they are behind the same login, roles and audit as the REST API,
//! and only the dashboard routes Codis's UI uses pass ([`classify`]): reads need a viewer,
//! changes an operator (reload, shutdown and log level an admin), adding and promoting a
//! server go through the isolation checks, and secrets are removed from overviews.

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

/// What a forwarded request is allowed to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// A read of the dashboard's own state.
    Read,
    /// `group/info` or `sentinels/info` of an address, which must belong to the product.
    ReadAbout(String),
    /// A change needing this role.
    Change(Role),
    /// `group/add`: (group id, address).
    AddServer(i64, String),
    /// `group/promote`: (group id, address).
    Promote(i64, String),
}

/// A forwarded request once sorted: what it may do, and what the dashboard is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// What it may do.
    pub kind: Forwarded,
    /// The decoded path (xauth redacted), for the audit history.
    pub route: String,
    /// The path the dashboard gets, rebuilt from the checked segments and encoded again:
    /// never the client's own spelling, which the dashboard and the HTTP client might
    /// decode or normalise differently (`%3A`, `%2e%2e`).
    pub path: String,
}

/// Percent-decodes one path segment, and accepts it only when it is something a dashboard
/// route holds: letters, digits and `-_.:[]` (names, numbers, the xauth, `host:port`,
/// `[v6]:port`), and neither `.` nor `..`.
fn decode_segment(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (h, l) = (*b.get(i + 1)?, *b.get(i + 2)?);
            if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                return None;
            }
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(h) * 16 + digit(l));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let ok = !out.is_empty()
        && out != b"."
        && out != b".."
        && out
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:[]".contains(c));
    // Only ASCII passed, so this is valid UTF-8.
    ok.then(|| String::from_utf8(out).ok()).flatten()
}

/// A decoded segment as it goes into a URL path (`[` and `]` are not path characters).
fn encode_segment(seg: &str) -> String {
    seg.replace('[', "%5B").replace(']', "%5D")
}

/// Sorts a forwarded request into what it may do, or refuses it: 400 when a path segment
/// decodes to something no dashboard route holds (`..`, `/`, control characters, bad
/// escapes), 403 when it is not a route Codis's UI uses, 422 when an address is not
/// `host:port`. Routes are matched on the decoded segments, so `127.0.0.1%3A7001` is the
/// address `127.0.0.1:7001` for the checks as it is for the dashboard.
///
/// # Errors
/// 400, 403, 422.
pub fn classify(method: &Method, path: &str) -> ApiResult<Classified> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    let mut segs = Vec::new();
    for seg in raw.split('/') {
        let decoded = decode_segment(seg).ok_or_else(|| {
            ApiError::bad_request(format!(
                "path segment {seg:?} of {path:?} is not allowed in a forwarded route"
            ))
        })?;
        segs.push(decoded);
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let decoded = format!("/{}", segs.join("/"));
    let refuse = || {
        ApiError::forbidden(format!(
            "{method} {decoded} is not a dashboard route codis-fe forwards (see /api/v1)"
        ))
    };
    let addr = |a: &str| super::changes::check_addr(a).map(|()| a.to_string());
    let gid = |g: &str| g.parse::<i64>().map_err(|_| refuse());
    let read = matches!(*method, Method::GET | Method::HEAD);
    let kind = match segs.as_slice() {
        ["topom"] | ["topom", "model" | "stats" | "slots"] if read => Forwarded::Read,
        ["api", "topom", "model"] if read => Forwarded::Read,
        ["api", "topom", "stats" | "slots" | "xping", _] if read => Forwarded::Read,
        ["api", "topom", "group" | "sentinels", "info", a]
        | ["api", "topom", "sentinels", "info", a, "monitored"]
            if read =>
        {
            Forwarded::ReadAbout(addr(a)?)
        }
        _ if *method != Method::PUT => return Err(refuse()),
        ["api", "topom", "reload" | "shutdown", _] | ["api", "topom", "loglevel", _, _] => {
            Forwarded::Change(Role::Admin)
        }
        ["api", "topom", "group", "add", _, g, a]
        | ["api", "topom", "group", "add", _, g, a, _] => Forwarded::AddServer(gid(g)?, addr(a)?),
        ["api", "topom", "group", "promote", _, g, a] => Forwarded::Promote(gid(g)?, addr(a)?),
        ["api", "topom", "proxy", "create" | "online", _, a]
        | ["api", "topom", "group", "del", _, _, a]
        | ["api", "topom", "group", "replica-groups", _, _, a, _]
        | ["api", "topom", "group", "action", "create" | "remove", _, a]
        | ["api", "topom", "sentinels", "add", _, a]
        | ["api", "topom", "sentinels", "del", _, a, _] => {
            addr(a)?;
            Forwarded::Change(Role::Operator)
        }
        ["api", "topom", "proxy", "reinit", _, _]
        | ["api", "topom", "proxy", "remove", _, _, _]
        | [
            "api",
            "topom",
            "group",
            "create" | "remove" | "resync",
            _,
            _,
        ]
        | ["api", "topom", "group", "resync-all", _]
        | ["api", "topom", "group", "replica-groups-all", _, _]
        | ["api", "topom", "slots", "action", "create", _, _, _]
        | ["api", "topom", "slots", "action", "create-some", _, _, _, _]
        | [
            "api",
            "topom",
            "slots",
            "action",
            "create-range",
            _,
            _,
            _,
            _,
        ]
        | [
            "api",
            "topom",
            "slots",
            "action",
            "remove" | "interval" | "disabled",
            _,
            _,
        ]
        | ["api", "topom", "slots", "assign", _]
        | ["api", "topom", "slots", "assign", _, "offline"]
        | ["api", "topom", "slots", "rebalance", _, _]
        | ["api", "topom", "sentinels", "resync-all", _] => Forwarded::Change(Role::Operator),
        _ => return Err(refuse()),
    };
    let path = format!(
        "/{}",
        segs.iter()
            .map(|s| encode_segment(s))
            .collect::<Vec<_>>()
            .join("/")
    );
    Ok(Classified {
        kind,
        route: redact_xauth(&decoded),
        path,
    })
}

/// Removes secrets (`*_auth` keys) from a dashboard overview's `config`.
pub fn strip_secrets(v: &mut serde_json::Value) {
    if let Some(cfg) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
        cfg.retain(|k, _| !k.ends_with("_auth"));
    }
}

/// Any request with `?forward=<product>`.
pub async fn forward(
    st: AppState,
    actor: Actor,
    ctx: RequestCtx,
    product: String,
    req: Request,
) -> ApiResult<Response> {
    let Classified {
        kind,
        route,
        path: dash_path,
    } = classify(req.method(), req.uri().path())?;
    let needed = match &kind {
        Forwarded::Read | Forwarded::ReadAbout(_) => Role::Viewer,
        Forwarded::Change(r) => *r,
        Forwarded::AddServer(..) | Forwarded::Promote(..) => Role::Operator,
    };
    actor.require(&product, needed)?;
    let write = !matches!(kind, Forwarded::Read | Forwarded::ReadAbout(_));
    let p = st
        .products
        .get(&product)
        .ok_or_else(|| ApiError::forbidden(format!("unknown product {product:?}")))?;
    if let Forwarded::ReadAbout(addr) = &kind {
        let known = {
            let snap = p.snapshot.read();
            snap.stats().is_some_and(|s| {
                s.group
                    .models
                    .iter()
                    .flat_map(|g| &g.servers)
                    .any(|srv| srv.addr == *addr)
                    || s.sentinels.model.servers.iter().any(|a| a == addr)
            })
        };
        if !known {
            return Err(ApiError::forbidden(format!(
                "{addr:?} is not a server or sentinel of product {product:?}"
            )));
        }
    }
    let dash = p.dashboard.read().clone();
    let method = req.method().clone();
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(req.into_body(), MAX_FORWARD_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    // Dashboard routes take no query: only the rebuilt path is sent.
    let url = format!("http://{dash}{dash_path}");
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
        let change = Change::new(&actor, &ctx, Some(&product), "codis.forward")
            .target(format!("{method} {route}"));
        let (_, out) = run_change_with(&st, change, async {
            let guard = match &kind {
                Forwarded::AddServer(gid, addr) => {
                    Some(super::changes::isolation_check_add(&st, &p, *gid, addr).await?)
                }
                Forwarded::Promote(gid, addr) => {
                    Some(super::changes::isolation_check_promote(&st, &p, *gid, addr).await?)
                }
                _ => None,
            };
            let (status, ct, bytes) = send.await?;
            if guard.is_some() {
                // The next check (waiting for the lock) must see this change.
                st.products.poll_now(&p).await;
                drop(guard);
            }
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
        let (status, ct, bytes) = send.await?;
        let overview = dash_path.starts_with("/topom") || dash_path == "/api/topom/model";
        let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(mut v) if overview && status.is_success() => {
                strip_secrets(&mut v);
                axum::body::Bytes::from(serde_json::to_vec_pretty(&v).unwrap_or_default())
            }
            _ => bytes,
        };
        (status, ct, bytes)
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
