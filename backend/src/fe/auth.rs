//! Who is calling: passwords (argon2), browser sessions (random ids kept hashed, in an
//! HttpOnly SameSite=Strict cookie), API tokens (kept hashed, scoped to a role and product
//! lines), CSRF and Origin checks for cookie-authenticated changes, and login lock-out.
//!
//! Every handler that needs a caller takes an [`Actor`]; the role checks are
//! [`Actor::require`] and [`Actor::require_global_admin`]. The UI may hide buttons; these decide.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use codis_model::fe::{Me, Role, RoleGrant};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use super::AppState;
use super::db::now_ms;
use super::error::{ApiError, ApiResult};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "codis_fe_session";
/// The header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Failed logins in a row before an account is locked.
pub const LOCKOUT_AFTER: i64 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_FOR_MS: i64 = 5 * 60 * 1000;

/// A session's lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after login, whatever happens.
    pub absolute: Duration,
    /// Mark the cookie `Secure` (the fe is reached over TLS).
    pub secure_cookie: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: Duration::from_secs(60 * 60),
            absolute: Duration::from_secs(24 * 60 * 60),
            secure_cookie: false,
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of a secret, in hex: what the database keeps of session ids and tokens.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// `n` random bytes in hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

/// Hashes a password with argon2id (off the async threads).
///
/// # Errors
/// Internal error when hashing fails.
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password_sync(&password))
        .await
        .map_err(ApiError::internal)?
}

fn hash_password_sync(password: &str) -> ApiResult<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Checks a password against a stored hash (off the async threads).
pub async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Checks a new password's strength.
///
/// # Errors
/// 422 when it is too short or too long.
pub fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 8 {
        return Err(ApiError::invalid("a password needs at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(ApiError::invalid("a password is at most 1024 bytes"));
    }
    Ok(())
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session.
    Session {
        /// The user.
        user_id: i64,
        /// The session's CSRF token.
        csrf: String,
        /// Hash of the session id.
        id_hash: String,
    },
    /// An API token.
    Token {
        /// Token id.
        token_id: i64,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `user:<name>` or `token:<name>`, as the audit history writes it.
    pub name: String,
    /// User name, or `token:<name>`.
    pub username: String,
    /// How messages name the caller (`user "x"`, `token "y"`).
    pub display: String,
    /// Global administrator.
    pub global_admin: bool,
    /// Roles per product line (`*`: all).
    pub roles: Vec<RoleGrant>,
    /// How it authenticated.
    pub credential: Credential,
}

impl Actor {
    /// The strongest role on a product line.
    pub fn role_on(&self, product: &str) -> Option<Role> {
        if self.global_admin {
            return Some(Role::Admin);
        }
        self.roles
            .iter()
            .filter(|g| g.product == product || g.product == "*")
            .map(|g| g.role)
            .max()
    }

    /// Fails with 403 unless the caller has at least `role` on `product`.
    ///
    /// # Errors
    /// 403.
    pub fn require(&self, product: &str, role: Role) -> ApiResult<()> {
        match self.role_on(product) {
            Some(r) if r >= role => Ok(()),
            Some(r) => Err(ApiError::forbidden(format!(
                "{} is {} on product {product:?}; this needs {}",
                self.display,
                r.as_str(),
                role.as_str()
            ))),
            None => Err(ApiError::forbidden(format!(
                "{} has no role on product {product:?}",
                self.display
            ))),
        }
    }

    /// Fails with 403 unless the caller is a global administrator.
    ///
    /// # Errors
    /// 403.
    pub fn require_global_admin(&self) -> ApiResult<()> {
        if self.global_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} is not a global administrator",
                self.display
            )))
        }
    }

    /// Whether the caller may see a product line at all.
    pub fn can_see(&self, product: &str) -> bool {
        self.role_on(product).is_some()
    }

    /// The `GET /api/v1/me` view.
    pub fn me(&self) -> Me {
        Me {
            username: self.username.clone(),
            global_admin: self.global_admin,
            roles: self.roles.clone(),
            csrf_token: match &self.credential {
                Credential::Session { csrf, .. } => csrf.clone(),
                Credential::Token { .. } => String::new(),
            },
        }
    }
}

/// Filled by the extractor so the refusal recorder knows who was refused.
#[derive(Debug, Clone, Default)]
pub struct ActorSlot(pub Arc<Mutex<Option<String>>>);

/// The client address of a request (`local` in tests without a socket).
pub fn source_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".to_string())
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Loads a user's roles.
///
/// # Errors
/// Database errors.
pub async fn user_roles(db: &SqlitePool, user_id: i64) -> ApiResult<Vec<RoleGrant>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT product, role FROM user_roles WHERE user_id = ? ORDER BY product")
            .bind(user_id)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(product, role)| Role::parse(&role).map(|role| RoleGrant { product, role }))
        .collect())
}

async fn actor_from_token(db: &SqlitePool, token: &str) -> ApiResult<Actor> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, name, role, products FROM api_tokens \
         WHERE token_hash = ? AND revoked_at IS NULL",
    )
    .bind(secret_hash(token))
    .fetch_optional(db)
    .await?;
    let Some((token_id, name, role, products)) = row else {
        return Err(ApiError::unauthorized("invalid or revoked API token"));
    };
    let role = Role::parse(&role).ok_or_else(|| ApiError::internal("bad role in api_tokens"))?;
    let products: Vec<String> = serde_json::from_str(&products).map_err(ApiError::internal)?;
    Ok(Actor {
        name: format!("token:{name}"),
        username: format!("token:{name}"),
        display: format!("token {name:?}"),
        global_admin: false,
        roles: products
            .into_iter()
            .map(|product| RoleGrant { product, role })
            .collect(),
        credential: Credential::Token { token_id },
    })
}

async fn actor_from_session(
    db: &SqlitePool,
    policy: &SessionPolicy,
    session_id: &str,
) -> ApiResult<Actor> {
    let id_hash = secret_hash(session_id);
    let row: Option<(i64, String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT s.user_id, s.csrf, s.created_at, s.last_seen, u.username, u.global_admin \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
    )
    .bind(&id_hash)
    .fetch_optional(db)
    .await?;
    let Some((user_id, csrf, created_at, last_seen, username, global_admin)) = row else {
        return Err(ApiError::unauthorized(
            "not logged in (unknown or ended session)",
        ));
    };
    let now = now_ms();
    let idle = i64::try_from(policy.idle.as_millis()).unwrap_or(i64::MAX);
    let absolute = i64::try_from(policy.absolute.as_millis()).unwrap_or(i64::MAX);
    if now - last_seen > idle || now - created_at > absolute {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(&id_hash)
            .execute(db)
            .await?;
        return Err(ApiError::unauthorized("the session expired; log in again"));
    }
    if now - last_seen > 10_000 {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE id_hash = ?")
            .bind(now)
            .bind(&id_hash)
            .execute(db)
            .await?;
    }
    Ok(Actor {
        name: format!("user:{username}"),
        display: format!("user {username:?}"),
        username,
        global_admin: global_admin != 0,
        roles: user_roles(db, user_id).await?,
        credential: Credential::Session {
            user_id,
            csrf,
            id_hash,
        },
    })
}

/// A cookie-authenticated change must carry the session's CSRF token and, when the browser
/// sends an Origin, come from this fe's own origin.
fn check_csrf(parts: &Parts, csrf: &str) -> ApiResult<()> {
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        // Behind a reverse proxy the browser's host arrives as X-Forwarded-Host; over HTTP/2
        // the authority is in the URI.
        let hosts: Vec<&str> = [
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
            parts
                .headers
                .get("x-forwarded-host")
                .and_then(|h| h.to_str().ok()),
            parts.uri.authority().map(|a| a.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|h| !h.is_empty())
        .collect();
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if origin_host.is_empty() || !hosts.contains(&origin_host) {
            return Err(ApiError::forbidden(format!(
                "cross-origin change refused (Origin {origin:?})"
            )));
        }
    }
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent.is_empty() {
        return Err(ApiError::forbidden(
            "a change with a session cookie needs the X-CSRF-Token header (from GET /api/v1/me)",
        ));
    }
    if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
        return Err(ApiError::forbidden("wrong X-CSRF-Token"));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(actor.clone());
        }
        let actor = if let Some(token) = bearer(&parts.headers) {
            actor_from_token(&st.db, token).await?
        } else if let Some(sid) = cookie_value(&parts.headers, SESSION_COOKIE) {
            let actor = actor_from_session(&st.db, &st.settings.session, sid).await?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if let Credential::Session { csrf, .. } = &actor.credential
                && !safe
            {
                if let Some(slot) = parts.extensions.get::<ActorSlot>() {
                    *slot.0.lock() = Some(actor.name.clone());
                }
                check_csrf(parts, csrf)?;
            }
            actor
        } else {
            return Err(ApiError::unauthorized(
                "log in first (POST /api/v1/session) or send Authorization: Bearer <token>",
            ));
        };
        if let Some(slot) = parts.extensions.get::<ActorSlot>() {
            *slot.0.lock() = Some(actor.name.clone());
        }
        parts.extensions.insert(actor.clone());
        Ok(actor)
    }
}

/// The outcome of a login attempt.
#[derive(Debug)]
pub struct LoginOk {
    /// The cookie value (the session id).
    pub session_id: String,
    /// The caller as `GET /api/v1/me` shows it.
    pub me: Me,
}

/// Checks a password, with lock-out after [`LOCKOUT_AFTER`] failures and a growing delay on
/// each failure, and opens a session. `source` is the client's address: one source has at
/// most [`PER_SOURCE_QUEUE`] logins under way and [`PER_SOURCE_CHECKS`] password checks at
/// once, and [`PER_SOURCE_FAILURES`] failures a minute, so a crowd of bad logins from one
/// place cannot keep everyone else out.
///
/// # Errors
/// 401 wrong name or password; 429 locked, or too many logins at once or failed from
/// `source`.
pub async fn login(
    db: &SqlitePool,
    source: &str,
    username: &str,
    password: &str,
) -> ApiResult<LoginOk> {
    let turn = SourceTurn::take(source, now_ms())?;
    let result = check_login(db, &turn, username, password).await;
    if let Err(e) = &result
        && e.status == axum::http::StatusCode::UNAUTHORIZED
    {
        turn.failed(now_ms());
    }
    result
}

async fn check_login(
    db: &SqlitePool,
    turn: &SourceTurn,
    username: &str,
    password: &str,
) -> ApiResult<LoginOk> {
    // Password checks run a few at a time (argon2 takes ~19 MiB and tens of milliseconds
    // each), at most PER_SOURCE_CHECKS of them for one source; a crowd of logins waits its
    // turn or, past a queue, is told to come back later. Both turns end before the delay
    // that follows a failure: a waiting failure must not hold a password checker.
    let source_permit = turn.checks.clone().acquire_owned().await.ok();
    let permit = hash_permit()?.await;
    let permits = (source_permit, permit);
    let row: Option<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT id, password_hash, global_admin, locked_until FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(db)
    .await?;
    let now = now_ms();
    let Some((user_id, stored, global_admin, locked_until)) = row else {
        // Same work, delay and lock-out as for a real user, so names cannot be probed.
        if unknown_locked(username, now) {
            return Err(locked_error(LOCKOUT_FOR_MS));
        }
        let dummy = tokio::task::spawn_blocking(dummy_hash)
            .await
            .unwrap_or_default();
        let _ = verify_password(password.to_string(), dummy).await;
        let failed = unknown_failed(username, now);
        drop(permits);
        tokio::time::sleep(failure_delay(failed)).await;
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    if locked_until > now {
        return Err(locked_error(locked_until - now));
    }
    if !verify_password(password.to_string(), stored).await {
        // One statement, so concurrent failures all count.
        let (failed,): (i64,) = sqlx::query_as(
            "UPDATE users SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END \
             WHERE id = ? RETURNING failed_logins",
        )
        .bind(LOCKOUT_AFTER)
        .bind(now + LOCKOUT_FOR_MS)
        .bind(user_id)
        .fetch_one(db)
        .await?;
        if failed >= LOCKOUT_AFTER {
            sqlx::query("UPDATE users SET failed_logins = 0 WHERE id = ?")
                .bind(user_id)
                .execute(db)
                .await?;
        }
        drop(permits);
        tokio::time::sleep(failure_delay(failed)).await;
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?")
        .bind(user_id)
        .execute(db)
        .await?;
    let session_id = random_hex(32);
    let csrf = random_hex(16);
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(secret_hash(&session_id))
    .bind(user_id)
    .bind(&csrf)
    .bind(now)
    .bind(now)
    .execute(db)
    .await?;
    Ok(LoginOk {
        session_id,
        me: Me {
            username: username.to_string(),
            global_admin: global_admin != 0,
            roles: user_roles(db, user_id).await?,
            csrf_token: csrf,
        },
    })
}

fn failure_delay(failed: i64) -> Duration {
    Duration::from_millis(100 * u64::try_from(failed.clamp(1, 10)).unwrap_or(1))
}

fn locked_error(left_ms: i64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "locked",
        format!(
            "too many failed logins; the account is locked for {} more seconds",
            (left_ms + 999) / 1000
        ),
    )
}

/// Password checks running at once.
const HASH_CONCURRENCY: usize = 2;
/// Logins allowed to wait for a password check.
const HASH_QUEUE: usize = 64;

fn hash_permits() -> &'static Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(HASH_CONCURRENCY)))
}

/// A turn at password checking, or 429 when too many logins wait already.
fn hash_permit()
-> ApiResult<impl std::future::Future<Output = Option<tokio::sync::OwnedSemaphorePermit>>> {
    static WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    use std::sync::atomic::Ordering;
    if WAITING.fetch_add(1, Ordering::AcqRel) >= HASH_QUEUE {
        WAITING.fetch_sub(1, Ordering::AcqRel);
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many logins at once; try again in a moment",
        ));
    }
    Ok(async {
        let permit = hash_permits().clone().acquire_owned().await.ok();
        WAITING.fetch_sub(1, Ordering::AcqRel);
        permit
    })
}

/// Logins one source may have under way (checking or waiting out a failure's delay).
pub const PER_SOURCE_QUEUE: usize = 32;
/// Password checks one source may run at once.
pub const PER_SOURCE_CHECKS: usize = 1;
/// Failed logins allowed from one source per minute. Lock-out stops guessing at one
/// account; this stops one source trying many names.
pub const PER_SOURCE_FAILURES: i64 = 100;

/// One source's logins: under way, and failures in the current minute.
#[derive(Debug)]
struct SourceState {
    checks: Arc<tokio::sync::Semaphore>,
    under_way: usize,
    minute_start: i64,
    failures: i64,
}

fn sources() -> &'static Mutex<std::collections::HashMap<String, SourceState>> {
    static MAP: std::sync::OnceLock<Mutex<std::collections::HashMap<String, SourceState>>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// A login under way from one source; dropping it ends it.
struct SourceTurn {
    source: String,
    checks: Arc<tokio::sync::Semaphore>,
}

impl SourceTurn {
    /// A turn for `source`, or 429 when it has too many logins under way or failed lately.
    fn take(source: &str, now: i64) -> ApiResult<SourceTurn> {
        let mut map = sources().lock();
        if map.len() > 10_000 {
            map.retain(|_, s| s.under_way > 0 || now - s.minute_start < 60_000);
        }
        let s = map
            .entry(source.to_string())
            .or_insert_with(|| SourceState {
                checks: Arc::new(tokio::sync::Semaphore::new(PER_SOURCE_CHECKS)),
                under_way: 0,
                minute_start: now,
                failures: 0,
            });
        if now - s.minute_start >= 60_000 {
            s.minute_start = now;
            s.failures = 0;
        }
        let busy = |message: String| {
            ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "busy", message)
        };
        if s.failures >= PER_SOURCE_FAILURES {
            return Err(busy(format!(
                "too many failed logins from {source}; try again in {} seconds",
                (60_000 - (now - s.minute_start) + 999) / 1000
            )));
        }
        if s.under_way >= PER_SOURCE_QUEUE {
            return Err(busy(format!(
                "too many logins at once from {source}; try again in a moment"
            )));
        }
        s.under_way += 1;
        Ok(SourceTurn {
            source: source.to_string(),
            checks: s.checks.clone(),
        })
    }

    fn failed(&self, now: i64) {
        if let Some(s) = sources().lock().get_mut(&self.source) {
            if now - s.minute_start >= 60_000 {
                s.minute_start = now;
                s.failures = 0;
            }
            s.failures += 1;
        }
    }
}

impl Drop for SourceTurn {
    fn drop(&mut self) {
        if let Some(s) = sources().lock().get_mut(&self.source) {
            s.under_way = s.under_way.saturating_sub(1);
        }
    }
}

/// Failed logins of names that do not exist: (failures, locked until), so they lock like
/// real accounts.
fn unknown_failures() -> &'static Mutex<std::collections::HashMap<String, (i64, i64)>> {
    static MAP: std::sync::OnceLock<Mutex<std::collections::HashMap<String, (i64, i64)>>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| Mutex::new(std::collections::HashMap::new()))
}

fn unknown_key(username: &str) -> String {
    username.chars().take(128).collect()
}

fn unknown_locked(username: &str, now: i64) -> bool {
    unknown_failures()
        .lock()
        .get(&unknown_key(username))
        .is_some_and(|&(_, until)| until > now)
}

fn unknown_failed(username: &str, now: i64) -> i64 {
    let mut map = unknown_failures().lock();
    if map.len() > 100_000 {
        map.retain(|_, (_, until)| *until > now);
        if map.len() > 100_000 {
            map.clear();
        }
    }
    let e = map.entry(unknown_key(username)).or_insert((0, 0));
    e.0 += 1;
    let failed = e.0;
    if e.0 >= LOCKOUT_AFTER {
        *e = (0, now + LOCKOUT_FOR_MS);
    }
    failed
}

/// An argon2 hash of a random password nobody knows, checked for unknown user names.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password_sync(&random_hex(16)).unwrap_or_default())
        .clone()
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(session_id: &str, policy: &SessionPolicy) -> String {
    format!(
        "{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        policy.absolute.as_secs(),
        if policy.secure_cookie { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn clear_cookie(policy: &SessionPolicy) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if policy.secure_cookie { "; Secure" } else { "" }
    )
}

/// Creates the `admin` account on a database with no user. Returns the generated password
/// when none was given (to print once).
///
/// # Errors
/// Database errors, or a given password that is too short.
pub async fn ensure_admin(db: &SqlitePool, password: Option<&str>) -> ApiResult<Option<String>> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?;
    if users > 0 {
        return Ok(None);
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_string(), false),
        None => (random_hex(12), true),
    };
    check_password(&password)?;
    let hash = hash_password(password.clone()).await?;
    sqlx::query(
        "INSERT INTO users (username, password_hash, global_admin, created_at) \
         VALUES ('admin', ?, 1, ?)",
    )
    .bind(hash)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(generated.then_some(password))
}

/// Deletes sessions past their lifetimes.
///
/// # Errors
/// Database errors.
pub async fn prune_sessions(db: &SqlitePool, policy: &SessionPolicy) -> ApiResult<()> {
    let now = now_ms();
    let idle = i64::try_from(policy.idle.as_millis()).unwrap_or(i64::MAX);
    let absolute = i64::try_from(policy.absolute.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM sessions WHERE last_seen < ? OR created_at < ?")
        .bind(now.saturating_sub(idle))
        .bind(now.saturating_sub(absolute))
        .execute(db)
        .await?;
    Ok(())
}
