//! Login and logout, the caller's identity, users and their roles, API tokens, and product
//! lines registered by hand. Everything but login, logout and `me` needs a global admin.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use codis_model::fe::{
    LoginRequest, Me, ProductRegister, Role, RoleGrant, TokenCreate, TokenCreated, TokenInfo,
    TokenList, User, UserCreate, UserList, UserUpdate,
};
use sqlx::SqlitePool;

use super::auth::{self, Actor, Credential};
use super::changes::{Change, check_addr, run_change, run_change_with};
use super::db::now_ms;
use super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use super::openapi::{ApiRoutes, Doc};
use super::{AppState, RequestCtx, audit};

fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid(format!(
            "{kind} must be 1 to 64 characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{kind} must not contain control characters"
        )));
    }
    Ok(())
}

fn check_grants(grants: &[RoleGrant]) -> ApiResult<()> {
    for g in grants {
        if g.product != "*" && codis_coordinator::paths::validate_product(&g.product).is_err() {
            return Err(ApiError::invalid(format!(
                "{:?} is not a product name (or \"*\")",
                g.product
            )));
        }
    }
    Ok(())
}

/// `POST /api/v1/session`.
async fn session_login(
    State(st): State<AppState>,
    ctx: RequestCtx,
    ApiJson(b): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let entry = audit::Entry {
        actor: format!("user:{}", b.username.chars().take(64).collect::<String>()),
        source: ctx.source.clone(),
        product: None,
        action: "login".into(),
        target: None,
        params: None,
    };
    match auth::login(&st.db, &ctx.source, &b.username, &b.password).await {
        Ok(ok) => {
            audit::record(&st.db, &entry, "ok", 200).await;
            let cookie = auth::session_cookie(&ok.session_id, &st.settings.session);
            let mut resp = axum::Json(ok.me).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(mut e) => {
            audit::record(&st.db, &entry, &e.message, e.status.as_u16()).await;
            e.audited = true;
            Err(e)
        }
    }
}

/// `DELETE /api/v1/session`.
async fn session_logout(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
) -> ApiResult<Response> {
    if let Credential::Session { id_hash, .. } = &actor.credential {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&st.db)
            .await?;
    }
    let entry = audit::Entry {
        actor: actor.name.clone(),
        source: ctx.source,
        action: "logout".into(),
        ..audit::Entry::default()
    };
    audit::record(&st.db, &entry, "ok", 200).await;
    let mut resp = axum::Json(serde_json::json!({"ok": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(&st.settings.session)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `GET /api/v1/me`.
async fn me_get(actor: Actor) -> axum::Json<Me> {
    axum::Json(actor.me())
}

async fn load_user(db: &SqlitePool, username: &str) -> ApiResult<User> {
    let row: Option<(i64, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, username, global_admin, created_at, locked_until FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(db)
    .await?;
    let (id, username, global_admin, created_at, locked_until) =
        row.ok_or_else(|| ApiError::not_found(format!("no user {username:?}")))?;
    Ok(User {
        username,
        global_admin: global_admin != 0,
        roles: auth::user_roles(db, id).await?,
        created_at,
        locked_until,
    })
}

/// `GET /api/v1/users`.
async fn users_list(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<UserList>> {
    actor.require_global_admin()?;
    let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users ORDER BY username")
        .fetch_all(&st.db)
        .await?;
    let mut users = Vec::with_capacity(names.len());
    for n in names {
        users.push(load_user(&st.db, &n).await?);
    }
    Ok(axum::Json(UserList { users }))
}

/// `GET /api/v1/users/{username}`.
async fn users_get(
    State(st): State<AppState>,
    actor: Actor,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<axum::Json<User>> {
    actor.require_global_admin()?;
    Ok(axum::Json(load_user(&st.db, &username).await?))
}

async fn set_roles(db: &SqlitePool, user_id: i64, roles: &[RoleGrant]) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM user_roles WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for g in roles {
        sqlx::query("INSERT OR REPLACE INTO user_roles (user_id, product, role) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(&g.product)
            .bind(g.role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The refusal when a change would leave no global administrator.
fn last_admin() -> ApiError {
    ApiError::conflict("this would leave no global administrator; make another user one first")
}

/// Parameters of a user change as audited (never the password).
#[derive(serde::Serialize)]
struct UserParams<'a> {
    roles: Option<&'a [RoleGrant]>,
    global_admin: Option<bool>,
    password_changed: bool,
}

/// `POST /api/v1/users`.
async fn users_create(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiJson(b): ApiJson<UserCreate>,
) -> ApiResult<axum::Json<User>> {
    actor.require_global_admin()?;
    check_name("username", &b.username)?;
    auth::check_password(&b.password)?;
    check_grants(&b.roles)?;
    let change = Change::new(&actor, &ctx, None, "user.create")
        .target(b.username.clone())
        .params(&UserParams {
            roles: Some(&b.roles),
            global_admin: Some(b.global_admin),
            password_changed: true,
        });
    let (_, user) = run_change_with(&st, change, async {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(&b.username)
            .fetch_optional(&st.db)
            .await?;
        if exists.is_some() {
            return Err(ApiError::conflict(format!("user {:?} exists", b.username)));
        }
        let hash = auth::hash_password(b.password.clone()).await?;
        let id = sqlx::query(
            "INSERT INTO users (username, password_hash, global_admin, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&b.username)
        .bind(hash)
        .bind(i64::from(b.global_admin))
        .bind(now_ms())
        .execute(&st.db)
        .await?
        .last_insert_rowid();
        set_roles(&st.db, id, &b.roles).await?;
        load_user(&st.db, &b.username).await
    })
    .await?;
    Ok(axum::Json(user))
}

/// `PUT /api/v1/users/{username}`.
async fn users_update(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<UserUpdate>,
) -> ApiResult<axum::Json<User>> {
    actor.require_global_admin()?;
    if let Some(p) = &b.password {
        auth::check_password(p)?;
    }
    if let Some(r) = &b.roles {
        check_grants(r)?;
    }
    let change = Change::new(&actor, &ctx, None, "user.update")
        .target(username.clone())
        .params(&UserParams {
            roles: b.roles.as_deref(),
            global_admin: b.global_admin,
            password_changed: b.password.is_some(),
        });
    let (_, user) = run_change_with(&st, change, async {
        let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(&username)
            .fetch_optional(&st.db)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {username:?}")))?;
        if b.global_admin == Some(false) {
            // The check is part of the statement that demotes (as of the delete below), so
            // two administrators demoting each other at once cannot both succeed: SQLite
            // runs one write statement at a time.
            let n = sqlx::query(
                "UPDATE users SET global_admin = 0 WHERE id = ? AND (global_admin = 0 OR \
                 EXISTS (SELECT 1 FROM users AS o WHERE o.global_admin != 0 AND o.id != users.id))",
            )
            .bind(id)
            .execute(&st.db)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(last_admin());
            }
        }
        if let Some(p) = &b.password {
            let hash = auth::hash_password(p.clone()).await?;
            sqlx::query(
                "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?",
            )
            .bind(hash)
            .bind(id)
            .execute(&st.db)
            .await?;
            // A new password ends the user's sessions.
            sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                .bind(id)
                .execute(&st.db)
                .await?;
        }
        if b.global_admin == Some(true) {
            sqlx::query("UPDATE users SET global_admin = 1 WHERE id = ?")
                .bind(id)
                .execute(&st.db)
                .await?;
        }
        if let Some(r) = &b.roles {
            set_roles(&st.db, id, r).await?;
        }
        load_user(&st.db, &username).await
    })
    .await?;
    Ok(axum::Json(user))
}

/// `DELETE /api/v1/users/{username}`.
async fn users_delete(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<axum::Json<codis_model::fe::change::ChangeDone>> {
    actor.require_global_admin()?;
    let change = Change::new(&actor, &ctx, None, "user.delete").target(username.clone());
    run_change(&st, change, async {
        if actor.name == format!("user:{username}") {
            return Err(ApiError::conflict("you cannot delete your own account"));
        }
        let n = sqlx::query(
            "DELETE FROM users WHERE username = ? AND (global_admin = 0 OR \
             EXISTS (SELECT 1 FROM users AS o WHERE o.global_admin != 0 AND o.id != users.id))",
        )
        .bind(&username)
        .execute(&st.db)
        .await?
        .rows_affected();
        if n > 0 {
            return Ok(());
        }
        let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = ?")
            .bind(&username)
            .fetch_optional(&st.db)
            .await?
            .is_some();
        Err(if exists {
            last_admin()
        } else {
            ApiError::not_found(format!("no user {username:?}"))
        })
    })
    .await
}

/// `api_tokens` columns as selected by [`tokens_list`].
type TokenRow = (i64, String, String, String, String, i64, Option<i64>);

fn token_info(r: TokenRow) -> TokenInfo {
    TokenInfo {
        id: r.0,
        name: r.1,
        role: Role::parse(&r.2).unwrap_or(Role::Viewer),
        products: serde_json::from_str(&r.3).unwrap_or_default(),
        created_by: r.4,
        created_at: r.5,
        revoked_at: r.6,
    }
}

/// `GET /api/v1/tokens`.
async fn tokens_list(State(st): State<AppState>, actor: Actor) -> ApiResult<axum::Json<TokenList>> {
    actor.require_global_admin()?;
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, name, role, products, created_by, created_at, revoked_at FROM api_tokens \
         ORDER BY id DESC",
    )
    .fetch_all(&st.db)
    .await?;
    Ok(axum::Json(TokenList {
        tokens: rows.into_iter().map(token_info).collect(),
    }))
}

/// `POST /api/v1/tokens`.
async fn tokens_create(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiJson(b): ApiJson<TokenCreate>,
) -> ApiResult<axum::Json<TokenCreated>> {
    actor.require_global_admin()?;
    check_name("name", &b.name)?;
    if b.products.is_empty() {
        return Err(ApiError::invalid(
            "products: name at least one product line, or \"*\"",
        ));
    }
    let grants: Vec<RoleGrant> = b
        .products
        .iter()
        .map(|p| RoleGrant {
            product: p.clone(),
            role: b.role,
        })
        .collect();
    check_grants(&grants)?;
    let change = Change::new(&actor, &ctx, None, "token.create")
        .target(b.name.clone())
        .params(&b);
    let (_, created) = run_change_with(&st, change, async {
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = ? AND revoked_at IS NULL")
                .bind(&b.name)
                .fetch_optional(&st.db)
                .await?;
        if taken.is_some() {
            return Err(ApiError::conflict(format!(
                "an active token is named {:?} already (the audit history names tokens)",
                b.name
            )));
        }
        let secret = format!("cfe_{}", auth::random_hex(24));
        let products = serde_json::to_string(&b.products).map_err(ApiError::internal)?;
        let now = now_ms();
        let id = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, role, products, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&b.name)
        .bind(auth::secret_hash(&secret))
        .bind(b.role.as_str())
        .bind(&products)
        .bind(&actor.name)
        .bind(now)
        .execute(&st.db)
        .await?
        .last_insert_rowid();
        Ok(TokenCreated {
            token: secret,
            info: TokenInfo {
                id,
                name: b.name.clone(),
                role: b.role,
                products: b.products.clone(),
                created_by: actor.name.clone(),
                created_at: now,
                revoked_at: None,
            },
        })
    })
    .await?;
    Ok(axum::Json(created))
}

/// `DELETE /api/v1/tokens/{id}`.
async fn tokens_revoke(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<axum::Json<codis_model::fe::change::ChangeDone>> {
    actor.require_global_admin()?;
    let change = Change::new(&actor, &ctx, None, "token.revoke").target(id.to_string());
    run_change(&st, change, async {
        let n =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&st.db)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(ApiError::not_found(format!("no active token {id}")));
        }
        Ok(())
    })
    .await
}

/// `POST /api/v1/products`.
async fn products_register(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiJson(b): ApiJson<ProductRegister>,
) -> ApiResult<axum::Json<codis_model::fe::change::ChangeDone>> {
    actor.require_global_admin()?;
    codis_coordinator::paths::validate_product(&b.name)
        .map_err(|_| ApiError::invalid(format!("{:?} is not a product name", b.name)))?;
    check_addr(&b.dashboard)?;
    let change = Change::new(&actor, &ctx, Some(&b.name), "product.register")
        .target(b.name.clone())
        .params(&b);
    let res = run_change(&st, change, async {
        if st.products.get(&b.name).is_some() {
            return Err(ApiError::conflict(format!(
                "product {:?} is known already",
                b.name
            )));
        }
        sqlx::query("INSERT INTO products (name, dashboard, created_at) VALUES (?, ?, ?)")
            .bind(&b.name)
            .bind(&b.dashboard)
            .bind(now_ms())
            .execute(&st.db)
            .await?;
        Ok(())
    })
    .await;
    st.products.discover().await;
    if let Some(p) = st.products.get(&b.name) {
        st.products.poll_now(&p).await;
    }
    res
}

/// `DELETE /api/v1/products/{product}`: forgets a registered product line.
async fn products_unregister(
    State(st): State<AppState>,
    actor: Actor,
    ctx: RequestCtx,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<axum::Json<codis_model::fe::change::ChangeDone>> {
    actor.require_global_admin()?;
    let change =
        Change::new(&actor, &ctx, Some(&product), "product.unregister").target(product.clone());
    let res = run_change(&st, change, async {
        let n = sqlx::query("DELETE FROM products WHERE name = ?")
            .bind(&product)
            .execute(&st.db)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApiError::not_found(format!(
                "product {product:?} was not registered through the API"
            )));
        }
        Ok(())
    })
    .await;
    st.products.discover().await;
    res
}

/// The routes.
pub fn routes(r: ApiRoutes) -> ApiRoutes {
    r.post(
        "/api/v1/session",
        session_login,
        Doc::new("Log in: sets the session cookie and returns the CSRF token")
            .body("LoginRequest")
            .reply("Me"),
    )
    .delete(
        "/api/v1/session",
        session_logout,
        Doc::new("Log out").reply("Ok"),
    )
    .get(
        "/api/v1/me",
        me_get,
        Doc::new("Who is calling, with roles and CSRF token").reply("Me"),
    )
    .get(
        "/api/v1/users",
        users_list,
        Doc::new("Every user (global admin)").reply("UserList"),
    )
    .post(
        "/api/v1/users",
        users_create,
        Doc::new("Create a user (global admin)")
            .body("UserCreate")
            .reply("User"),
    )
    .get(
        "/api/v1/users/{username}",
        users_get,
        Doc::new("One user (global admin)").reply("User"),
    )
    .put(
        "/api/v1/users/{username}",
        users_update,
        Doc::new("Change a user's password, roles or global admin flag (global admin)")
            .body("UserUpdate")
            .reply("User"),
    )
    .delete(
        "/api/v1/users/{username}",
        users_delete,
        Doc::new("Delete a user (global admin)").reply("ChangeDone"),
    )
    .get(
        "/api/v1/tokens",
        tokens_list,
        Doc::new("Every API token, without secrets (global admin)").reply("TokenList"),
    )
    .post(
        "/api/v1/tokens",
        tokens_create,
        Doc::new("Create an API token; the secret is shown once (global admin)")
            .body("TokenCreate")
            .reply("TokenCreated"),
    )
    .delete(
        "/api/v1/tokens/{id}",
        tokens_revoke,
        Doc::new("Revoke an API token (global admin)").reply("ChangeDone"),
    )
    .post(
        "/api/v1/products",
        products_register,
        Doc::new("Register a product line by its dashboard address (global admin)")
            .body("ProductRegister")
            .reply("ChangeDone"),
    )
    .delete(
        "/api/v1/products/{product}",
        products_unregister,
        Doc::new("Forget a product line registered through the API (global admin)")
            .reply("ChangeDone"),
    )
}
