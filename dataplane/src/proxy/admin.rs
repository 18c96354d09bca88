//! The proxy's admin HTTP API, with Codis 3.2's routes and conventions, served with hyper:
//!
//! | Method & route | Returns |
//! |---|---|
//! | GET `/` | redirect to `/proxy` |
//! | GET `/proxy` | overview (all stats flags) |
//! | GET `/proxy/model`, `/api/proxy/model` | proxy model |
//! | GET `/proxy/stats` | stats, all flags |
//! | GET `/proxy/slots` | slot table |
//! | GET `/api/proxy/xping/:xauth` | `"OK"` |
//! | GET `/api/proxy/stats/:xauth[/:flags]` | stats (flags 1 commands, 2 slots, 4 runtime) |
//! | GET `/api/proxy/slots/:xauth` | slot table |
//! | PUT `/api/proxy/start/:xauth` | go online |
//! | PUT `/api/proxy/stats/reset/:xauth` | zero the counters |
//! | PUT `/api/proxy/forcegc/:xauth` | nothing to do in Rust; `"OK"` |
//! | PUT `/api/proxy/shutdown/:xauth` | close the proxy |
//! | PUT `/api/proxy/loglevel/:xauth/:value` | set the log level |
//! | PUT `/api/proxy/fillslots/:xauth` (body `[]Slot`) | fill slots |
//! | PUT `/api/proxy/sentinels/:xauth` (body `Sentinel`) | set sentinels |
//! | PUT `/api/proxy/sentinels/:xauth/rewatch` | resubscribe to the sentinels |
//! | GET `/metrics` | Prometheus text exposition (not in Codis) |
//!
//! Successful replies are JSON indented with 4 spaces (`Content-Type: application/json;
//! charset=utf-8`); mutations reply `"OK"`. Failures reply HTTP status **800** with
//! `{"Cause": "<message>", "Stack": []}`, the convention Codis clients expect.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codis_model::proxy::{Overview, STATS_FULL, STATS_SLOTS, Sentinel, Slot, Stats};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::cli;
use super::metrics;
use super::rpc::to_json_pretty;

/// What the admin API needs from the running proxy; implemented by the proxy core.
pub trait AdminApi: Send + Sync + 'static {
    /// The proxy model.
    fn model(&self) -> codis_model::proxy::Proxy;
    /// The config as the overview shows it ([`super::config::ProxyConfig::to_json`]).
    fn config_json(&self) -> serde_json::Value;
    /// This proxy's xauth.
    fn xauth(&self) -> String;
    /// The stats; `flags`: 1 per-command, 2 slots, 4 runtime.
    fn stats(&self, flags: u32) -> codis_model::proxy::Stats;
    /// The slot table.
    fn slots(&self) -> Vec<codis_model::proxy::Slot>;
    /// Fills slots (waits for in-flight requests of each slot).
    fn fill_slots(
        &self,
        slots: Vec<codis_model::proxy::Slot>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
    /// Goes online.
    fn start(&self) -> Result<(), String>;
    /// Zeroes the counters (sessions.total := alive).
    fn reset_stats(&self);
    /// Closes the proxy (the process then exits).
    fn shutdown(&self);
    /// Sets the log level (already checked to be a Codis level name).
    fn set_log_level(&self, level: &str) -> Result<(), String>;
    /// Sets the sentinels and (re)subscribes.
    fn set_sentinels(&self, s: codis_model::proxy::Sentinel) -> Result<(), String>;
    /// Resubscribes to the current sentinels.
    fn rewatch_sentinels(&self) -> Result<(), String>;
    /// Whether the proxy is closed.
    fn is_closed(&self) -> bool;
}

/// Largest request body accepted (a full slot table is about 100 KiB).
pub const MAX_BODY: usize = 64 << 20;

/// Codis's error status.
const STATUS_ERROR: u16 = 800;

/// Error messages of Codis's xauth check.
pub const ERR_MISSING_XAUTH: &str = "missing xauth, please check product name & auth";
/// See [`ERR_MISSING_XAUTH`].
pub const ERR_INVALID_XAUTH: &str = "invalid xauth, please check product name & auth";
/// The error of any authenticated call on a closed proxy.
pub const ERR_CLOSED_PROXY: &str = "use of closed proxy";

/// The overview document (`GET /proxy`, the JSON metrics report). Slots are included only
/// when `flags` has [`STATS_SLOTS`].
pub fn overview(api: &dyn AdminApi, flags: u32) -> Overview {
    Overview {
        version: cli::VERSION.to_string(),
        compile: cli::compile_info(),
        config: api.config_json(),
        model: api.model(),
        stats: api.stats(flags),
        slots: if flags & STATS_SLOTS != 0 {
            api.slots()
        } else {
            Vec::new()
        },
    }
}

/// Serves the admin API on `listener` until `shutdown` becomes `true` (or its sender is
/// dropped). Connections in progress are closed gracefully.
pub async fn serve(
    listener: TcpListener,
    api: Arc<dyn AdminApi>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin api listening");
    }
    let mut backoff = Duration::from_millis(5);
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => {
                    backoff = Duration::from_millis(5);
                    conn
                }
                Err(e) => {
                    // Out of file descriptors and similar: wait a little, don't spin.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let api = api.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(api.as_ref(), peer, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, %peer, "admin connection error");
                    }
                }
                // The guard `wait_for` returns is not `Send`: drop it before awaiting again.
                _ = async { drop(conn_shutdown.wait_for(|down| *down).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tracing::info!("admin api stopped");
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A 200 reply with `v` as indented JSON.
fn json_reply<T: Serialize + ?Sized>(v: &T) -> Reply {
    match to_json_pretty(v) {
        Ok(body) => reply(StatusCode::OK, "application/json; charset=utf-8", body),
        Err(e) => error_reply(&format!("encode json failed: {e}")),
    }
}

/// Codis's error reply: status 800, `{"Cause": ..., "Stack": []}`.
fn error_reply(cause: &str) -> Reply {
    #[derive(Serialize)]
    struct RemoteError<'a> {
        #[serde(rename = "Cause")]
        cause: &'a str,
        #[serde(rename = "Stack")]
        stack: [(); 0],
    }
    let body = to_json_pretty(&RemoteError { cause, stack: [] }).unwrap_or_default();
    let status = StatusCode::from_u16(STATUS_ERROR).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, "application/json; charset=utf-8", body)
}

fn ok_reply() -> Reply {
    json_reply("OK")
}

fn not_found() -> Reply {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n",
    )
}

/// Decodes `%XX` escapes of a path segment (invalid escapes are kept as written).
fn percent_decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Codis's xauth check, in Codis's order: closed proxy, missing, invalid.
fn verify_xauth(api: &dyn AdminApi, xauth: &str) -> Result<(), &'static str> {
    if api.is_closed() {
        return Err(ERR_CLOSED_PROXY);
    }
    if xauth.is_empty() {
        return Err(ERR_MISSING_XAUTH);
    }
    if xauth != api.xauth() {
        return Err(ERR_INVALID_XAUTH);
    }
    Ok(())
}

/// Reads and decodes a JSON body of at most [`MAX_BODY`] bytes.
async fn read_json<T: serde::de::DeserializeOwned>(body: Incoming) -> Result<T, String> {
    // A declared Content-Length over the cap is refused before reading anything.
    if hyper::body::Body::size_hint(&body).lower() > MAX_BODY as u64 {
        return Err(format!("request body is larger than {MAX_BODY} bytes"));
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let cause = if e.is::<http_body_util::LengthLimitError>() {
                format!("request body is larger than {MAX_BODY} bytes")
            } else {
                format!("read request body failed: {e}")
            };
            return Err(cause);
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("decode json body failed: {e}"))
}

/// Logs non-GET calls under `/api/` with the caller, as Codis does.
fn log_api_call(req: &Request<Incoming>, peer: SocketAddr) {
    let path = req.uri().path();
    if req.method() == Method::GET || !path.starts_with("/api/") {
        return;
    }
    let forwarded = ["x-real-ip", "x-forwarded-for"]
        .iter()
        .find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    tracing::warn!(method = %req.method(), %path, %peer, forwarded, "admin api call");
}

/// Routes one request.
async fn handle(api: &dyn AdminApi, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    log_api_call(&req, peer);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs: Vec<String> = if path == "/" {
        Vec::new()
    } else {
        path.trim_start_matches('/')
            .split('/')
            .map(percent_decode)
            .collect()
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();

    if method == Method::GET {
        return match segs.as_slice() {
            [] => {
                let mut resp = reply(StatusCode::FOUND, "text/html; charset=utf-8", "");
                resp.headers_mut()
                    .insert(LOCATION, HeaderValue::from_static("/proxy"));
                resp
            }
            ["proxy"] => json_reply(&overview(api, STATS_FULL)),
            ["proxy", "model"] | ["api", "proxy", "model"] => json_reply(&api.model()),
            ["proxy", "stats"] => json_reply(&api.stats(STATS_FULL)),
            ["proxy", "slots"] => json_reply(&api.slots()),
            ["metrics"] => {
                let text = metrics::render_prometheus(&api.stats(codis_model::proxy::STATS_CMDS));
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                )
            }
            ["api", "proxy", "xping", xauth] => match verify_xauth(api, xauth) {
                Ok(()) => ok_reply(),
                Err(cause) => error_reply(cause),
            },
            ["api", "proxy", "stats", xauth] => match verify_xauth(api, xauth) {
                Ok(()) => json_reply(&api.stats(0)),
                Err(cause) => error_reply(cause),
            },
            ["api", "proxy", "stats", xauth, flags] => match verify_xauth(api, xauth) {
                Ok(()) => match parse_flags(flags) {
                    Ok(f) => json_reply::<Stats>(&api.stats(f)),
                    Err(cause) => error_reply(&cause),
                },
                Err(cause) => error_reply(cause),
            },
            ["api", "proxy", "slots", xauth] => match verify_xauth(api, xauth) {
                Ok(()) => json_reply::<[Slot]>(&api.slots()),
                Err(cause) => error_reply(cause),
            },
            _ => not_found(),
        };
    }

    if method != Method::PUT {
        return not_found();
    }
    let (xauth, action) = match segs.as_slice() {
        ["api", "proxy", "start", x] => (*x, Put::Start),
        ["api", "proxy", "stats", "reset", x] => (*x, Put::ResetStats),
        ["api", "proxy", "forcegc", x] => (*x, Put::ForceGc),
        ["api", "proxy", "shutdown", x] => (*x, Put::Shutdown),
        ["api", "proxy", "loglevel", x, value] => (*x, Put::LogLevel(value.to_string())),
        ["api", "proxy", "fillslots", x] => (*x, Put::FillSlots),
        ["api", "proxy", "sentinels", x] => (*x, Put::SetSentinels),
        ["api", "proxy", "sentinels", x, "rewatch"] => (*x, Put::Rewatch),
        _ => return not_found(),
    };
    if let Err(cause) = verify_xauth(api, xauth) {
        return error_reply(cause);
    }
    let result = match action {
        Put::Start => api.start(),
        Put::ResetStats => {
            api.reset_stats();
            Ok(())
        }
        // Nothing to collect in a process without a garbage collector.
        Put::ForceGc => Ok(()),
        Put::Shutdown => {
            api.shutdown();
            Ok(())
        }
        Put::LogLevel(value) => set_log_level(api, &value),
        Put::FillSlots => match read_json::<Vec<Slot>>(req.into_body()).await {
            Ok(slots) => api.fill_slots(slots).await,
            Err(cause) => Err(cause),
        },
        Put::SetSentinels => match read_json::<Sentinel>(req.into_body()).await {
            Ok(s) => api.set_sentinels(s),
            Err(cause) => Err(cause),
        },
        Put::Rewatch => api.rewatch_sentinels(),
    };
    match result {
        Ok(()) => ok_reply(),
        Err(cause) => error_reply(&cause),
    }
}

/// The authenticated PUT actions.
enum Put {
    Start,
    ResetStats,
    ForceGc,
    Shutdown,
    LogLevel(String),
    FillSlots,
    SetSentinels,
    Rewatch,
}

fn set_log_level(api: &dyn AdminApi, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("missing loglevel".into());
    }
    if cli::parse_log_level(value).is_none() {
        return Err("invalid loglevel".into());
    }
    api.set_log_level(value)?;
    tracing::warn!("set loglevel to {value}");
    Ok(())
}

/// Parses the `:flags` segment like Go's `strconv.Atoi` then `uint32` conversion.
fn parse_flags(s: &str) -> Result<u32, String> {
    s.parse::<i64>()
        .map(|n| n as u32)
        .map_err(|_| format!("strconv.Atoi: parsing \"{s}\": invalid syntax"))
}

#[cfg(test)]
pub(crate) mod tests;
