//! The one place that builds URLs and sends requests to codis-fe's REST API (`/api/v1`).
//!
//! It speaks only in `codis_model::fe`'s request and response types. Every change (POST, PUT,
//! DELETE) carries the session's CSRF token; every failure becomes an [`ApiError`] holding the
//! server's own message, so a page can show it where the user acted.

use std::cell::RefCell;
use std::fmt;

use codis_model::fe::change::{ChangeDone, RebalancePlan};
use codis_model::fe::{
    AuditPage, History, IsolationMode, IsolationReport, IsolationSetting, LoginRequest, Me,
    ProductDetail, ProductList, TokenCreate, TokenCreated, TokenList, User, UserCreate, UserList,
    UserUpdate,
};
use gloo_net::http::{Request, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed call: the HTTP status (0: no answer) and the server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status; 0 when the request never got an answer.
    pub(crate) status: u16,
    /// The server's `message`, or what went wrong on the way.
    pub(crate) message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A call's result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

thread_local! {
    /// The CSRF token of the session (from the login or `GET /me`).
    static CSRF: RefCell<String> = const { RefCell::new(String::new()) };
    /// Called when the server answers 401 (the session expired or was revoked).
    static ON_UNAUTHORIZED: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Remembers the CSRF token sent with every change.
pub(crate) fn set_csrf(token: &str) {
    CSRF.with(|c| *c.borrow_mut() = token.to_string());
}

/// Sets what happens when a call answers 401.
pub(crate) fn on_unauthorized(f: impl Fn() + 'static) {
    ON_UNAUTHORIZED.with(|c| *c.borrow_mut() = Some(Box::new(f)));
}

/// Percent-encodes one path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}

/// Builds `?k=v&...` from the pairs whose value is not empty.
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn builder(method: &str, url: &str) -> RequestBuilder {
    match method {
        "POST" => Request::post(url),
        "PUT" => Request::put(url),
        "DELETE" => Request::delete(url),
        _ => Request::get(url),
    }
}

fn net(e: impl fmt::Display) -> ApiError {
    ApiError {
        status: 0,
        message: format!("codis-fe did not answer: {e}"),
    }
}

/// Sends one request; `path` is below `/api/v1`.
async fn call<T: DeserializeOwned>(method: &str, path: &str, body: Option<String>) -> ApiResult<T> {
    let url = format!("/api/v1{path}");
    let mut b = builder(method, &url).header("Accept", "application/json");
    if method != "GET" {
        let token = CSRF.with(|c| c.borrow().clone());
        b = b.header("X-CSRF-Token", &token);
    }
    let req = match body {
        Some(json) => b
            .header("Content-Type", "application/json")
            .body(json)
            .map_err(net)?,
        None => b.build().map_err(net)?,
    };
    let resp = req.send().await.map_err(net)?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let text = if text.is_empty() { "null" } else { &text };
        return crate::json::from_str(text).map_err(|e| ApiError {
            status,
            message: format!("unexpected reply from codis-fe: {e}"),
        });
    }
    if status == 401 && path != "/session" && path != "/me" {
        ON_UNAUTHORIZED.with(|c| {
            if let Some(f) = c.borrow().as_ref() {
                f();
            }
        });
    }
    let message = crate::json::from_str::<codis_model::fe::ErrorBody>(&text)
        .map(|e| e.message)
        .unwrap_or_else(|_| {
            format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )
        });
    Err(ApiError { status, message })
}

async fn get<T: DeserializeOwned>(path: &str) -> ApiResult<T> {
    call("GET", path, None).await
}

async fn send<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &B,
) -> ApiResult<T> {
    let json = serde_json::to_string(body).map_err(net)?;
    call(method, path, Some(json)).await
}

// --- session -----------------------------------------------------------------------------

/// `POST /session`.
pub(crate) async fn login(username: String, password: String) -> ApiResult<Me> {
    let me: Me = send("POST", "/session", &LoginRequest { username, password }).await?;
    set_csrf(&me.csrf_token);
    Ok(me)
}

/// `DELETE /session`.
pub(crate) async fn logout() -> ApiResult<()> {
    call::<serde_json::Value>("DELETE", "/session", None)
        .await
        .map(drop)
}

/// `GET /me`.
pub(crate) async fn me() -> ApiResult<Me> {
    let me: Me = get("/me").await?;
    set_csrf(&me.csrf_token);
    Ok(me)
}

// --- product lines -----------------------------------------------------------------------

/// `GET /products`.
pub(crate) async fn products() -> ApiResult<ProductList> {
    get("/products").await
}

/// `GET /products/{p}`.
pub(crate) async fn product(p: &str) -> ApiResult<ProductDetail> {
    get(&format!("/products/{}", enc(p))).await
}

/// `GET /products/{p}/history`.
pub(crate) async fn history(p: &str, metric: &str, since_ms: i64) -> ApiResult<History> {
    get(&format!(
        "/products/{}/history?metric={metric}&since={since_ms}",
        enc(p)
    ))
    .await
}

/// A change on a product line: `method /products/{p}{rest}` with an optional JSON body.
pub(crate) async fn change<B: Serialize>(
    method: &str,
    p: &str,
    rest: &str,
    body: Option<&B>,
) -> ApiResult<ChangeDone> {
    let path = format!("/products/{}{rest}", enc(p));
    match body {
        Some(b) => send(method, &path, b).await,
        None => call(method, &path, None).await,
    }
}

/// `POST /products/{p}/rebalance/preview`.
pub(crate) async fn rebalance_preview(p: &str) -> ApiResult<RebalancePlan> {
    call(
        "POST",
        &format!("/products/{}/rebalance/preview", enc(p)),
        None,
    )
    .await
}

// --- isolation and audit -----------------------------------------------------------------

/// `GET /isolation`.
pub(crate) async fn isolation() -> ApiResult<IsolationReport> {
    get("/isolation").await
}

/// `PUT /products/{p}/isolation`.
pub(crate) async fn set_isolation(p: &str, mode: IsolationMode) -> ApiResult<ChangeDone> {
    send(
        "PUT",
        &format!("/products/{}/isolation", enc(p)),
        &IsolationSetting { mode },
    )
    .await
}

/// `GET /audit` with a query string made by [`query`].
pub(crate) async fn audit(query: &str) -> ApiResult<AuditPage> {
    get(&format!("/audit{query}")).await
}

/// The URL of `GET /audit/export` (a plain link: the cookie goes with it).
pub(crate) fn audit_export_url(query: &str) -> String {
    format!("/api/v1/audit/export{query}")
}

// --- users and tokens --------------------------------------------------------------------

/// `GET /users`.
pub(crate) async fn users() -> ApiResult<UserList> {
    get("/users").await
}

/// `POST /users`.
pub(crate) async fn create_user(u: &UserCreate) -> ApiResult<User> {
    send("POST", "/users", u).await
}

/// `PUT /users/{name}`.
pub(crate) async fn update_user(name: &str, u: &UserUpdate) -> ApiResult<User> {
    send("PUT", &format!("/users/{}", enc(name)), u).await
}

/// `DELETE /users/{name}`.
pub(crate) async fn delete_user(name: &str) -> ApiResult<ChangeDone> {
    call("DELETE", &format!("/users/{}", enc(name)), None).await
}

/// `GET /tokens`.
pub(crate) async fn tokens() -> ApiResult<TokenList> {
    get("/tokens").await
}

/// `POST /tokens`.
pub(crate) async fn create_token(t: &TokenCreate) -> ApiResult<TokenCreated> {
    send("POST", "/tokens", t).await
}

/// `DELETE /tokens/{id}`.
pub(crate) async fn revoke_token(id: i64) -> ApiResult<ChangeDone> {
    call("DELETE", &format!("/tokens/{id}"), None).await
}
