//! codis-fe in-process: real dashboards (in this process, on loopback ports, over a filesystem
//! coordinator laid out as Codis writes it) behind the fe's REST API, driven with `oneshot`.
//! Roles for every route, CSRF, tokens, lock-out, the audit history, isolation rules, Codis's
//! routes, the OpenAPI document and an unreachable dashboard. Whole-cluster runs with real
//! servers and proxies are in `tests/tests/cluster/fe.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use backend::dashboard::api::AppState as DashState;
use backend::dashboard::config::DashboardConfig;
use backend::dashboard::{Topom, identity, serve};
use backend::fe::auth::SessionPolicy;
use backend::fe::products::{PollPolicy, Registry};
use backend::fe::{AppState, Settings, app, auth, db};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("codis-fe-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn put_node(root: &Path, path: &str, v: &Value) {
    let file = root.join("data").join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn group(id: i64, servers: &[&str]) -> Value {
    json!({
        "id": id,
        "servers": servers.iter().map(|s| json!({
            "server": s, "datacenter": "", "action": {}, "replica_group": false
        })).collect::<Vec<_>>(),
        "promoting": {},
        "out_of_sync": false
    })
}

/// Starts a dashboard for `product` on a free port over the coordinator at `root`.
async fn start_dashboard(root: &Path, product: &str) -> (Arc<Topom>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = DashboardConfig {
        coordinator_name: "filesystem".into(),
        coordinator_addr: root.display().to_string(),
        product_name: product.into(),
        admin_addr: addr.clone(),
        coordinator_auth: "zkuser:zksecret".into(),
        ..DashboardConfig::default()
    };
    let coordinator =
        codis_coordinator::connect("filesystem", &config.coordinator_addr, "", Duration::ZERO)
            .unwrap();
    let model = identity(product, &addr, "").unwrap();
    let topom = Topom::new(config, coordinator, model);
    topom.acquire_lock().await.unwrap();
    let state = DashState {
        topom: topom.clone(),
        set_log_level: Arc::new(|_| Ok(())),
        version: "test".into(),
        compile: "test".into(),
    };
    tokio::spawn(serve(state, listener));
    (topom, addr)
}

struct Env {
    app: axum::Router,
    st: AppState,
    root: PathBuf,
    dashboards: Vec<(Arc<Topom>, String)>,
    _dir: TempDir,
}

const ADMIN_PW: &str = "admin-password-1";

/// Two product lines, `alpha` (group 1: 127.0.0.1:1 master, 127.0.0.1:2 replica) and `beta`
/// (group 1: 127.0.0.1:3 master, localhost:2 replica: the same server as alpha's replica).
async fn env(tag: &str) -> Env {
    let dir = TempDir::new(tag);
    let root = dir.0.clone();
    put_node(
        &root,
        "/codis3/alpha/group/group-0001",
        &group(1, &["127.0.0.1:1", "127.0.0.1:2"]),
    );
    put_node(
        &root,
        "/codis3/beta/group/group-0001",
        &group(1, &["127.0.0.1:3", "localhost:2"]),
    );
    let mut dashboards = Vec::new();
    for p in ["alpha", "beta"] {
        dashboards.push(start_dashboard(&root, p).await);
    }
    let pool = db::open(":memory:").await.unwrap();
    auth::ensure_admin(&pool, Some(ADMIN_PW)).await.unwrap();
    let coordinator = codis_coordinator::connect(
        "filesystem",
        &root.display().to_string(),
        "",
        Duration::ZERO,
    )
    .unwrap();
    let policy = PollPolicy {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        discover_every: Duration::from_millis(300),
    };
    let registry = Registry::new(pool.clone(), Some(coordinator), None, policy);
    registry.spawn_discovery();
    let st = AppState::new(
        pool,
        registry,
        Settings {
            session: SessionPolicy::default(),
            assets_dir: root.join("no-assets"),
        },
    );
    let e = Env {
        app: app(st.clone()),
        st,
        root,
        dashboards,
        _dir: dir,
    };
    e.wait_reachable(&["alpha", "beta"]).await;
    e
}

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Who {
    Anonymous,
    /// Session cookie and CSRF token.
    Session(String, String),
    Bearer(String),
}

struct Reply {
    status: u16,
    body: Value,
    text: String,
    headers: axum::http::HeaderMap,
}

impl Env {
    async fn call(&self, who: &Who, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let mut rb = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "fe.test");
        match who {
            Who::Anonymous => {}
            Who::Session(cookie, csrf) => {
                rb = rb
                    .header(header::COOKIE, format!("{}={cookie}", auth::SESSION_COOKIE))
                    .header(auth::CSRF_HEADER, csrf.as_str());
            }
            Who::Bearer(t) => rb = rb.header(header::AUTHORIZATION, format!("Bearer {t}")),
        }
        let req = match body {
            Some(b) => rb
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => rb.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers,
        }
    }

    async fn login(&self, user: &str, password: &str) -> Who {
        let r = self
            .call(
                &Who::Anonymous,
                "POST",
                "/api/v1/session",
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(r.status, 200, "login {user}: {}", r.text);
        let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        Who::Session(value, r.body["csrf_token"].as_str().unwrap().to_string())
    }

    async fn admin(&self) -> Who {
        self.login("admin", ADMIN_PW).await
    }

    async fn user(&self, admin: &Who, name: &str, roles: Value) -> Who {
        let r = self
            .call(
                admin,
                "POST",
                "/api/v1/users",
                Some(json!({"username": name, "password": "password-of-user", "roles": roles})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        self.login(name, "password-of-user").await
    }

    async fn wait_reachable(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = names.iter().all(|n| {
                self.st.products.get(n).is_some_and(|p| {
                    let s = p.snapshot.read();
                    s.error.is_none() && s.overview.is_some()
                })
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "products {names:?} never became reachable"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn audit_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit")
            .fetch_one(&self.st.db)
            .await
            .unwrap()
    }

    async fn last_audit(&self) -> (String, Option<String>, String, Option<String>, Option<i64>) {
        sqlx::query_as(
            "SELECT actor, product, action, outcome, status FROM audit ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&self.st.db)
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_are_found_with_health_and_isolation() {
    let e = env("list").await;
    let admin = e.admin().await;
    let r = e.call(&admin, "GET", "/api/v1/products", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.body["products"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for p in list {
        assert_eq!(p["reachable"], true, "{p}");
        assert_eq!(p["source"], "coordinator");
        assert_eq!(p["groups"], 1);
        assert_eq!(p["servers"], 2);
        assert_eq!(p["slots_offline"], 1024);
        // 127.0.0.1:2 is alpha's replica and, written as localhost:2, beta's replica: shared
        // with the same role, so no violation yet.
        assert_eq!(p["violations"], 0, "{p}");
        assert_eq!(p["isolation"], "logical");
    }
    let r = e.call(&admin, "GET", "/api/v1/products/alpha", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["summary"]["name"], "alpha");
    assert_eq!(r.body["topom"]["model"]["product_name"], "alpha");
    assert_eq!(
        r.body["topom"]["stats"]["slots"].as_array().unwrap().len(),
        1024
    );
    let r = e
        .call(
            &admin,
            "GET",
            "/api/v1/products/alpha/history?metric=memory&since=0",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.body["points"].as_array().unwrap().is_empty(),
        "the first poll is sampled: {}",
        r.text
    );
    let r = e
        .call(
            &admin,
            "GET",
            "/api/v1/products/alpha/history?metric=bogus",
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    let r = e.call(&admin, "GET", "/api/v1/products/nope", None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = e.call(&admin, "GET", "/api/v1/isolation", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["shared"][0]["server"], "127.0.0.1:2", "{}", r.text);
    assert_eq!(r.body["violations"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_roles_and_every_change_is_audited_once() {
    let e = env("roles").await;
    let admin = e.admin().await;
    let viewer = e
        .user(
            &admin,
            "vera",
            json!([{"product": "alpha", "role": "viewer"}]),
        )
        .await;
    let operator = e
        .user(
            &admin,
            "otto",
            json!([{"product": "alpha", "role": "operator"}]),
        )
        .await;

    // Reads: anonymous 401, a viewer of alpha reads alpha but not beta.
    for uri in [
        "/api/v1/products/alpha",
        "/api/v1/products/alpha/history?metric=ops",
    ] {
        assert_eq!(
            e.call(&Who::Anonymous, "GET", uri, None).await.status,
            401,
            "{uri}"
        );
        assert_eq!(e.call(&viewer, "GET", uri, None).await.status, 200, "{uri}");
    }
    assert_eq!(
        e.call(&viewer, "GET", "/api/v1/products/beta", None)
            .await
            .status,
        403
    );
    let r = e.call(&viewer, "GET", "/api/v1/products", None).await;
    assert_eq!(
        r.body["products"].as_array().unwrap().len(),
        1,
        "a viewer sees only alpha"
    );

    // Changes: anonymous 401, viewer 403, operator and admin succeed; exactly one completed
    // audit row per change, with the right fields.
    let changes: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/api/v1/products/alpha/groups".into(),
            Some(json!({"group_id": 7})),
            "group.create",
        ),
        (
            "PUT",
            "/api/v1/products/alpha/slots/action".into(),
            Some(json!({"interval": 100})),
            "slots.action-settings",
        ),
        (
            "POST",
            "/api/v1/products/alpha/groups/7/resync".into(),
            None,
            "group.resync",
        ),
        (
            "DELETE",
            "/api/v1/products/alpha/groups/7".into(),
            None,
            "group.remove",
        ),
    ];
    for (method, uri, body, action) in &changes {
        assert_eq!(
            e.call(&Who::Anonymous, method, uri, body.clone())
                .await
                .status,
            401
        );
        let before = e.audit_count().await;
        let r = e.call(&viewer, method, uri, body.clone()).await;
        assert_eq!(r.status, 403, "{method} {uri}: {}", r.text);
        assert_eq!(e.audit_count().await, before + 1, "a refusal is recorded");
        let (actor, _, act, outcome, status) = e.last_audit().await;
        assert_eq!(
            (actor.as_str(), act.as_str(), status),
            ("user:vera", "refused", Some(403))
        );
        assert!(outcome.unwrap().contains("viewer"));

        let before = e.audit_count().await;
        let r = e.call(&operator, method, uri, body.clone()).await;
        assert_eq!(r.status, 200, "{method} {uri}: {}", r.text);
        assert_eq!(r.body["ok"], true);
        assert_eq!(e.audit_count().await, before + 1, "{method} {uri}");
        let (actor, product, act, outcome, status) = e.last_audit().await;
        assert_eq!(actor, "user:otto");
        assert_eq!(product.as_deref(), Some("alpha"));
        assert_eq!(act, *action);
        assert_eq!(outcome.as_deref(), Some("ok"));
        assert_eq!(status, Some(200));
    }
    // The group really reached the dashboard and went away again.
    assert!(
        !e.dashboards[0]
            .0
            .snapshot()
            .await
            .unwrap()
            .groups
            .contains_key(&7)
    );

    // A dashboard refusal is a 409 with its cause, and still one completed row.
    let before = e.audit_count().await;
    let r = e
        .call(&operator, "DELETE", "/api/v1/products/alpha/groups/9", None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["code"], "dashboard_error");
    assert_eq!(e.audit_count().await, before + 1);
    let (_, _, act, outcome, status) = e.last_audit().await;
    assert_eq!((act.as_str(), status), ("group.remove", Some(409)));
    assert!(outcome.unwrap().contains("refused"));

    // Operators cannot set isolation, manage users or read the user list; admins can.
    let iso = json!({"mode": "logical"});
    assert_eq!(
        e.call(
            &operator,
            "PUT",
            "/api/v1/products/alpha/isolation",
            Some(iso.clone())
        )
        .await
        .status,
        403
    );
    assert_eq!(
        e.call(&admin, "PUT", "/api/v1/products/alpha/isolation", Some(iso))
            .await
            .status,
        200
    );
    assert_eq!(
        e.call(&operator, "GET", "/api/v1/users", None).await.status,
        403
    );
    assert_eq!(
        e.call(&operator, "GET", "/api/v1/tokens", None)
            .await
            .status,
        403
    );
    assert_eq!(
        e.call(&admin, "GET", "/api/v1/users", None).await.status,
        200
    );

    // Bad input: honest statuses.
    let r = e
        .call(
            &operator,
            "POST",
            "/api/v1/products/alpha/groups",
            Some(json!({"group_id": 0})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = e
        .call(
            &operator,
            "POST",
            "/api/v1/products/alpha/groups",
            Some(json!({"gid": 1})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = e
        .call(
            &operator,
            "POST",
            "/api/v1/products/alpha/groups/1/servers",
            Some(json!({"addr": "1.2.3.4:5/../x"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let mut rb = Request::builder()
        .method("POST")
        .uri("/api/v1/products/alpha/groups");
    if let Who::Session(c, t) = &operator {
        rb = rb
            .header(header::COOKIE, format!("{}={c}", auth::SESSION_COOKIE))
            .header(auth::CSRF_HEADER, t.as_str());
    }
    let resp = e
        .app
        .clone()
        .oneshot(
            rb.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // The audit history: newest first, filtered; a viewer of alpha sees alpha's rows only.
    let r = e
        .call(&admin, "GET", "/api/v1/audit?product=alpha&limit=3", None)
        .await;
    assert_eq!(r.status, 200);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first"
    );
    assert!(r.body["next_before"].is_i64());
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/beta/groups",
            Some(json!({"group_id": 8})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = e
        .call(&viewer, "GET", "/api/v1/audit?product=beta", None)
        .await;
    let items = r.body["items"].as_array().unwrap();
    assert!(
        items.iter().all(|i| i["actor"] == "user:vera"),
        "only its own refusals: {}",
        r.text
    );
    let r = e
        .call(
            &admin,
            "GET",
            "/api/v1/audit?product=beta&action=group.create",
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = e
        .call(
            &admin,
            "GET",
            "/api/v1/audit/export?format=csv&action=group.",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.starts_with("id,time,actor"), "{}", r.text);
    assert!(r.text.contains("group.create"));
    assert!(!r.text.contains("slots.action-settings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_origin_tokens_and_lockout() {
    let e = env("csrf").await;
    let admin = e.admin().await;
    let Who::Session(cookie, csrf) = admin.clone() else {
        unreachable!()
    };
    // A cookie write without the CSRF header: 403.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/products/alpha/groups")
        .header(header::HOST, "fe.test")
        .header(header::COOKIE, format!("{}={cookie}", auth::SESSION_COOKIE))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"group_id": 5}"#))
        .unwrap();
    assert_eq!(
        e.app.clone().oneshot(req).await.unwrap().status().as_u16(),
        403
    );
    // With the header but from a foreign Origin: 403.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/products/alpha/groups")
        .header(header::HOST, "fe.test")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::COOKIE, format!("{}={cookie}", auth::SESSION_COOKIE))
        .header(auth::CSRF_HEADER, &csrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"group_id": 5}"#))
        .unwrap();
    assert_eq!(
        e.app.clone().oneshot(req).await.unwrap().status().as_u16(),
        403
    );
    // Same origin with the header: fine.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/products/alpha/groups")
        .header(header::HOST, "fe.test")
        .header(header::ORIGIN, "http://fe.test")
        .header(header::COOKIE, format!("{}={cookie}", auth::SESSION_COOKIE))
        .header(auth::CSRF_HEADER, &csrf)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"group_id": 5}"#))
        .unwrap();
    assert_eq!(
        e.app.clone().oneshot(req).await.unwrap().status().as_u16(),
        200
    );

    // API tokens: shown once, Bearer without CSRF, scoped, revocable.
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "ci", "role": "operator", "products": ["alpha"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    let id = r.body["id"].as_i64().unwrap();
    let tool = Who::Bearer(token.clone());
    let r = e
        .call(
            &tool,
            "POST",
            "/api/v1/products/alpha/groups",
            Some(json!({"group_id": 6})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(e.last_audit().await.0, "token:ci");
    assert_eq!(
        e.call(
            &tool,
            "POST",
            "/api/v1/products/beta/groups",
            Some(json!({"group_id": 6}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        e.call(&tool, "GET", "/api/v1/users", None).await.status,
        403
    );
    let r = e.call(&admin, "GET", "/api/v1/tokens", None).await;
    assert!(!r.text.contains(&token), "the secret is never listed");
    assert_eq!(
        e.call(&admin, "DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        e.call(&tool, "GET", "/api/v1/products", None).await.status,
        401
    );

    // Logout ends the session.
    assert_eq!(
        e.call(&admin, "DELETE", "/api/v1/session", None)
            .await
            .status,
        200
    );
    assert_eq!(e.call(&admin, "GET", "/api/v1/me", None).await.status, 401);

    // Lock-out after repeated failures, even with the right password afterwards.
    for _ in 0..auth::LOCKOUT_AFTER {
        let r = e
            .call(
                &Who::Anonymous,
                "POST",
                "/api/v1/session",
                Some(json!({"username": "admin", "password": "wrong"})),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = e
        .call(
            &Who::Anonymous,
            "POST",
            "/api/v1/session",
            Some(json!({"username": "admin", "password": ADMIN_PW})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (429, Some("locked")),
        "{}",
        r.text
    );
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE action = 'login' AND outcome != 'ok'")
            .fetch_one(&e.st.db)
            .await
            .unwrap();
    assert_eq!(
        failed,
        i64::from(auth::LOCKOUT_AFTER as u8) + 1,
        "failed logins are recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_plain_data_and_the_history_is_append_only() {
    let e = env("inject").await;
    let admin = e.admin().await;
    let name = "x'); DROP TABLE users; --<script>alert(1)</script>";
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": name, "password": "long-enough-pw", "roles": []})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], name);
    let who = e.login(name, "long-enough-pw").await;
    let r = e.call(&who, "GET", "/api/v1/me", None).await;
    assert_eq!(r.body["username"], name);
    let enc = name
        .replace(' ', "%20")
        .replace('\'', "%27")
        .replace(';', "%3B")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('(', "%28")
        .replace(')', "%29");
    let r = e
        .call(&admin, "GET", &format!("/api/v1/audit?user={enc}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "login"),
        "{}",
        r.text
    );
    // Product names in paths are data too.
    let r = e
        .call(&admin, "GET", "/api/v1/products/alpha'%20OR%20'1'='1", None)
        .await;
    assert_eq!(r.status, 404);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products",
            Some(json!({"name": "a'b", "dashboard": "127.0.0.1:1"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // The database refuses edits of completed rows and every delete.
    let id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM audit")
        .fetch_one(&e.st.db)
        .await
        .unwrap();
    let upd = sqlx::query("UPDATE audit SET outcome = 'tampered' WHERE id = ?")
        .bind(id)
        .execute(&e.st.db)
        .await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = sqlx::query("DELETE FROM audit").execute(&e.st.db).await;
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert!(e.audit_count().await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_rules_refuse_changes_and_report_violations() {
    let e = env("iso").await;
    let admin = e.admin().await;
    // alpha cannot be physical: its replica 127.0.0.1:2 is beta's replica too.
    let r = e
        .call(
            &admin,
            "PUT",
            "/api/v1/products/alpha/isolation",
            Some(json!({"mode": "physical"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("isolation")),
        "{}",
        r.text
    );
    assert!(
        r.body["message"].as_str().unwrap().contains("\"beta\""),
        "{}",
        r.text
    );
    // Adding beta's master to alpha's group 1 as a replica: roles would differ.
    let before = e.audit_count().await;
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/alpha/groups/1/servers",
            Some(json!({"addr": "localhost:3"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("isolation")),
        "{}",
        r.text
    );
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.contains("master of group 1 in product \"beta\""),
        "{msg}"
    );
    assert_eq!(
        e.audit_count().await,
        before + 1,
        "the refused change has one row"
    );
    let (_, _, act, outcome, status) = e.last_audit().await;
    assert_eq!((act.as_str(), status), ("group.add-server", Some(409)));
    assert!(outcome.unwrap().contains("beta"));
    // Promoting the shared replica in beta would make it master there and replica in alpha.
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/beta/groups/1/promote",
            Some(json!({"addr": "localhost:2"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("replica of group 1 in product \"alpha\""),
        "{}",
        r.text
    );
    // A physical product line refuses a server used elsewhere.
    let gamma_group = group(1, &["127.0.0.1:9"]);
    put_node(&e.root, "/codis3/gamma/group/group-0001", &gamma_group);
    let _gamma = start_dashboard(&e.root, "gamma").await;
    e.st.products.discover().await;
    e.wait_reachable(&["gamma"]).await;
    let r = e
        .call(
            &admin,
            "PUT",
            "/api/v1/products/gamma/isolation",
            Some(json!({"mode": "physical"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/gamma/groups/1/servers",
            Some(json!({"addr": "127.0.0.1:1"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("physically isolated"),
        "{}",
        r.text
    );
    // A violation made directly on the dashboard (behind the fe's back) is reported.
    put_node(
        &e.root,
        "/codis3/alpha/group/group-0002",
        &group(2, &["127.0.0.1:9"]),
    );
    let (topom, addr) = &e.dashboards[0];
    let _ = topom;
    let xauth = codis_model::auth::dashboard_xauth("alpha");
    reqwest::Client::new()
        .put(format!("http://{addr}/api/topom/reload/{xauth}"))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = e.call(&admin, "GET", "/api/v1/isolation", None).await;
        let v = r.body["violations"].as_array().unwrap();
        if v.iter()
            .any(|v| v["rule"] == "physical" && v["server"] == "127.0.0.1:9")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "violation never reported: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = e.call(&admin, "GET", "/api/v1/products", None).await;
    let gamma = r.body["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "gamma")
        .unwrap()
        .clone();
    assert_eq!(gamma["violations"], 1, "{gamma}");
    let troubles: Vec<i64> = r.body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["trouble"].as_i64().unwrap())
        .collect();
    assert!(
        troubles.windows(2).all(|w| w[0] >= w[1]),
        "most trouble first: {troubles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_preview_then_confirm_runs_that_plan() {
    let e = env("rebalance").await;
    let op = e.admin().await;
    let r = e
        .call(
            &op,
            "POST",
            "/api/v1/products/alpha/rebalance/preview",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let plan = r.body["plan"].as_object().unwrap().clone();
    assert_eq!(plan.len(), 1024, "every offline slot goes to group 1");
    // Confirm a smaller plan: exactly those slots get actions.
    let small = json!({"plan": {"3": 1, "4": 1}});
    let r = e
        .call(&op, "POST", "/api/v1/products/alpha/rebalance", Some(small))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ctx = e.dashboards[0].0.snapshot().await.unwrap();
        let s3 = ctx.slots[3].clone();
        let s4 = ctx.slots[4].clone();
        if s3.group_id == 1 && s4.group_id == 1 {
            assert_eq!(ctx.slots[5].group_id, 0, "only the confirmed plan ran");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots 3 and 4 never assigned: {s3:?} {s4:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The fe counts that run against the plan's size (2 slots), not against the slots that
    // have an action at some moment, and keeps it listed, finished, once both moved.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = e.call(&op, "GET", "/api/v1/products/alpha", None).await;
        let runs = r.body["migration"]["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(runs.len(), 1, "one run: {}", r.body["migration"]);
        assert_eq!(runs[0]["what"], "rebalance");
        assert_eq!(runs[0]["total"], 2, "{}", runs[0]);
        let done = runs[0]["done"].as_i64().unwrap();
        assert!((0..=2).contains(&done), "{}", runs[0]);
        if done == 2 && runs[0]["finished_at"].is_i64() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished: {}",
            runs[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = e
        .call(
            &op,
            "POST",
            "/api/v1/products/alpha/rebalance",
            Some(json!({"plan": {"2000": 1}})),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_files_are_revalidated() {
    let e = env("ui-cache").await;
    let assets = e.root.join("no-assets");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(
        assets.join("index.html"),
        "<!doctype html><title>ui</title>",
    )
    .unwrap();
    std::fs::write(assets.join("frontend.js"), "export default 1;").unwrap();
    for uri in ["/frontend.js", "/", "/products/alpha"] {
        let r = e.call(&Who::Anonymous, "GET", uri, None).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text);
        assert_eq!(
            r.headers.get(header::CACHE_CONTROL).unwrap(),
            "no-cache",
            "{uri}: the bundle's names never change, so the browser must revalidate"
        );
    }
    // Revalidation: an unchanged file answers 304.
    let r = e.call(&Who::Anonymous, "GET", "/frontend.js", None).await;
    let modified = r.headers.get(header::LAST_MODIFIED).unwrap().clone();
    let req = Request::builder()
        .uri("/frontend.js")
        .header(header::HOST, "fe.test")
        .header(header::IF_MODIFIED_SINCE, modified)
        .body(Body::empty())
        .unwrap();
    let resp = e.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codis_routes_openapi_metrics_and_a_dead_dashboard() {
    let e = env("codis").await;
    let admin = e.admin().await;
    // Codis's routes, behind the login.
    assert_eq!(
        e.call(&Who::Anonymous, "GET", "/list", None).await.status,
        401
    );
    let r = e.call(&admin, "GET", "/list", None).await;
    assert_eq!(r.body, json!(["alpha", "beta"]));
    let r = e.call(&admin, "GET", "/topom?forward=alpha", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["model"]["product_name"], "alpha");
    let xauth = codis_model::auth::dashboard_xauth("alpha");
    let before = e.audit_count().await;
    let r = e
        .call(
            &admin,
            "PUT",
            &format!("/api/topom/group/create/{xauth}/42?forward=alpha"),
            None,
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, "\"OK\""));
    assert_eq!(e.audit_count().await, before + 1);
    let (_, product, act, outcome, _) = e.last_audit().await;
    assert_eq!(
        (product.as_deref(), act.as_str(), outcome.as_deref()),
        (Some("alpha"), "codis.forward", Some("ok"))
    );
    assert_eq!(
        e.call(&admin, "GET", "/topom?forward=nope", None)
            .await
            .status,
        403
    );

    // The OpenAPI document: every route answers (no 404/405), every schema it names exists.
    let r = e
        .call(&Who::Anonymous, "GET", "/api/openapi.json", None)
        .await;
    assert_eq!(r.status, 200);
    let doc = r.body.clone();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in backend::fe::openapi::referenced_schemas(&doc) {
        assert!(
            schemas.contains_key(&name),
            "schema {name} is referenced but not defined"
        );
    }
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let uri = path
                .replace("{product}", "alpha")
                .replace("{gid}", "1")
                .replace("{sid}", "1")
                .replace("{id}", "1")
                .replace("{addr}", "127.0.0.1:1")
                .replace("{token}", "abc")
                .replace("{username}", "nobody");
            let r = e
                .call(&Who::Anonymous, &method.to_uppercase(), &uri, None)
                .await;
            assert!(
                ![404, 405].contains(&r.status),
                "{method} {path} is documented but not routed ({})",
                r.status
            );
            n += 1;
        }
    }
    assert!(n > 35, "only {n} routes documented");
    let r = e.call(&admin, "GET", "/api/v1/no/such/route", None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (404, Some("not_found"))
    );

    // Metrics.
    let r = e.call(&Who::Anonymous, "GET", "/metrics", None).await;
    assert!(
        r.text
            .contains("codis_fe_requests_total{route=\"/api/v1/products/{product}/groups\""),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("codis_fe_dashboards_reachable 2"),
        "{}",
        r.text
    );

    // A dashboard that stops answering: its product is unreachable with the reason within
    // seconds; the other keeps answering.
    e.dashboards[1].0.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = e.call(&admin, "GET", "/api/v1/products", None).await;
        let beta = r.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "beta")
            .cloned();
        // Closing drops the lock: the product leaves the coordinator, or shows unreachable.
        let gone_or_down = beta
            .as_ref()
            .is_none_or(|b| b["reachable"] == false && b["error"].is_string());
        if gone_or_down {
            let alpha = r.body["products"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "alpha")
                .unwrap()
                .clone();
            assert_eq!(alpha["reachable"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "beta still reachable: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A registered product line whose dashboard is dead: unreachable with the reason.
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products",
            Some(json!({"name": "ghost", "dashboard": "127.0.0.1:1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = e.call(&admin, "GET", "/api/v1/products", None).await;
    let ghost = r.body["products"][0].clone();
    assert_eq!(
        ghost["name"], "ghost",
        "unreachable sorts first: {}",
        r.text
    );
    assert_eq!(ghost["reachable"], false);
    assert!(
        ghost["error"].as_str().unwrap().contains("unreachable"),
        "{ghost}"
    );
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/ghost/groups",
            Some(json!({"group_id": 1})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (502, Some("dashboard_unreachable")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_database_from_a_newer_fe_is_refused() {
    let dir = TempDir::new("schema");
    let path = dir.0.join("fe.db");
    let path = path.to_str().unwrap();
    let pool = db::open(path).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999999999999, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err = db::open(path).await.unwrap_err().to_string();
    assert!(err.contains("newer than this codis-fe knows"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_findings_stay_fixed() {
    let e = env("review").await;
    let admin = e.admin().await;
    let viewer = e
        .user(
            &admin,
            "vic",
            json!([{"product": "alpha", "role": "viewer"}]),
        )
        .await;
    let operator = e
        .user(
            &admin,
            "opal",
            json!([{"product": "alpha", "role": "operator"}]),
        )
        .await;
    let xauth = codis_model::auth::dashboard_xauth("alpha");

    // Secrets never reach a viewer, by either route.
    let r = e.call(&viewer, "GET", "/api/v1/products/alpha", None).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.text.contains("zksecret"),
        "coordinator_auth leaked: {}",
        &r.text[..300.min(r.text.len())]
    );
    assert!(
        r.body["topom"]["config"]["product_name"].is_string(),
        "the overview is spliced in"
    );
    let r = e.call(&viewer, "GET", "/topom?forward=alpha", None).await;
    assert_eq!(r.status, 200);
    assert!(!r.text.contains("zksecret"));

    // Forwarded reads about an address outside the product, and routes the UI never uses,
    // are refused; shutdown needs an admin.
    let r = e
        .call(
            &viewer,
            "GET",
            "/api/topom/group/info/10.9.9.9:7777?forward=alpha",
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = e
        .call(
            &viewer,
            "GET",
            "/api/topom/group/info/127.0.0.1:1?forward=alpha",
            None,
        )
        .await;
    assert_ne!(
        r.status, 403,
        "a server of the product may be inspected: {}",
        r.text
    );
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/shutdown/{xauth}?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = e
        .call(&operator, "DELETE", "/api/topom/model?forward=alpha", None)
        .await;
    assert_eq!(r.status, 403);
    let r = e
        .call(
            &viewer,
            "PUT",
            &format!("/api/topom/group/create/{xauth}/44?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    // The isolation rules hold on Codis's routes too.
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/group/add/{xauth}/1/localhost:3?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("beta"), "{}", r.text);
    // Another spelling of a server already in the product, and odd port spellings.
    let r = e
        .call(
            &operator,
            "POST",
            "/api/v1/products/alpha/groups",
            Some(json!({"group_id": 2})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = e
        .call(
            &operator,
            "POST",
            "/api/v1/products/alpha/groups/2/servers",
            Some(json!({"addr": "localhost:1"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("isolation")),
        "{}",
        r.text
    );
    for addr in ["127.0.0.1:06379", "127.0.0.1:+6379", "127.0.0.1:0"] {
        let r = e
            .call(
                &operator,
                "POST",
                "/api/v1/products/alpha/groups/2/servers",
                Some(json!({"addr": addr})),
            )
            .await;
        assert_eq!(r.status, 422, "{addr}: {}", r.text);
    }

    // A viewer's isolation report does not name product lines it cannot see.
    let r = e.call(&viewer, "GET", "/api/v1/isolation", None).await;
    assert!(!r.text.contains("beta"), "{}", r.text);
    assert!(r.text.contains("another product line"), "{}", r.text);

    // The audit history cannot be overwritten.
    let res = sqlx::query(
        "INSERT OR REPLACE INTO audit (id, time, actor, source, action, outcome) \
         VALUES (1, 0, 'x', 'x', 'login', 'ok')",
    )
    .execute(&e.st.db)
    .await;
    assert!(res.unwrap_err().to_string().contains("append-only"));

    // The last global administrator cannot be demoted or deleted.
    let r = e
        .call(
            &admin,
            "PUT",
            "/api/v1/users/admin",
            Some(json!({"global_admin": false})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": "vic", "password": "another-password"})),
        )
        .await;
    assert_eq!(r.status, 409, "a duplicate user is a conflict: {}", r.text);

    // Concurrent wrong passwords all count: the account locks.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let app = e.app.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .method("POST")
                .uri("/api/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"username": "opal", "password": "nope-nope"}).to_string(),
                ))
                .unwrap();
            app.oneshot(req).await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 401 || s == 429, "{s}");
    }
    let r = e
        .call(
            &Who::Anonymous,
            "POST",
            "/api/v1/session",
            Some(json!({"username": "opal", "password": "password-of-user"})),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    // Unknown names lock the same way, so a lock-out does not tell which names exist.
    for _ in 0..auth::LOCKOUT_AFTER {
        let r = e
            .call(
                &Who::Anonymous,
                "POST",
                "/api/v1/session",
                Some(json!({"username": "nobody-here", "password": "x"})),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = e
        .call(
            &Who::Anonymous,
            "POST",
            "/api/v1/session",
            Some(json!({"username": "nobody-here", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, 429);
}

/// A valid body for each request schema, so a refusal comes from the role check and not from
/// the body.
fn example_body(schema: Option<&str>) -> Option<Value> {
    Some(match schema? {
        "LoginRequest" => json!({"username": "x", "password": "y"}),
        "UserCreate" => json!({"username": "newbie", "password": "password-123"}),
        "UserUpdate" => json!({"roles": [{"product": "alpha", "role": "viewer"}]}),
        "TokenCreate" => json!({"name": "t", "role": "viewer", "products": ["alpha"]}),
        "ProductRegister" => json!({"name": "delta", "dashboard": "127.0.0.1:1"}),
        "IsolationSetting" => json!({"mode": "logical"}),
        "GroupCreate" => json!({"group_id": 50}),
        "ServerAdd" => json!({"addr": "127.0.0.1:4"}),
        "ServerRef" => json!({"addr": "127.0.0.1:1"}),
        "ReplicaGroup" => json!({"addr": "127.0.0.1:1", "enabled": true}),
        "ReplicaGroupAll" => json!({"enabled": false}),
        "SyncAction" => json!({"addr": "127.0.0.1:2", "action": "remove"}),
        "ProxyCreate" => json!({"addr": "127.0.0.1:1"}),
        "SlotRange" => json!({"begin": 0, "end": 0, "group_id": 1}),
        "SlotsMoveSome" => json!({"from": 1, "to": 1, "count": 1}),
        "SlotActionSettings" => json!({"interval": 10}),
        "RebalancePlan" => json!({"plan": {"5": 1}}),
        "SentinelAdd" => json!({"addr": "127.0.0.1:1"}),
        other => panic!("no example body for schema {other}"),
    })
}

/// Every documented route, for an anonymous caller, a viewer, an operator and an admin:
/// 401, 403 and not-refused where each belongs, and every change leaves exactly one completed
/// audit row (the refusals included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_for_every_role() {
    let e = env("matrix").await;
    let admin = e.admin().await;
    let viewer = e
        .user(
            &admin,
            "vera",
            json!([{"product": "alpha", "role": "viewer"}]),
        )
        .await;
    let operator = e
        .user(
            &admin,
            "otto",
            json!([{"product": "alpha", "role": "operator"}]),
        )
        .await;
    let docs = backend::fe::api_routes().docs;
    assert!(docs.len() > 35);
    let session_route = |d: &backend::fe::openapi::RouteDoc| d.path == "/api/v1/session";
    let global_admin_only =
        |path: &str| path.starts_with("/api/v1/users") || path.starts_with("/api/v1/tokens");
    for (who_name, who) in [
        ("anonymous", Who::Anonymous),
        ("viewer", viewer),
        ("operator", operator),
        ("admin", admin),
    ] {
        for d in docs.iter().filter(|d| !session_route(d)) {
            let uri = d
                .path
                .replace("{product}", "alpha")
                .replace("{gid}", "1")
                .replace("{sid}", "5")
                .replace("{addr}", "127.0.0.1:9")
                .replace("{token}", "abc")
                .replace("{username}", "vera")
                .replace("{id}", "999");
            let method = d.method.to_uppercase();
            // The rebalance preview is a POST that changes nothing.
            let change = method != "GET" && !d.path.ends_with("/rebalance/preview");
            let registry_change = d.path == "/api/v1/products" && change
                || d.path == "/api/v1/products/{product}" && method == "DELETE";
            let needs_global_admin = global_admin_only(d.path) || registry_change;
            let needs_admin = d.path.ends_with("/isolation") && change;
            let before = e.audit_count().await;
            let r = e.call(&who, &method, &uri, example_body(d.doc.body)).await;
            let what = format!("{who_name} {method} {uri}: {} {:.300}", r.status, r.text);
            let expected_refusal = match who_name {
                "anonymous" => Some(401),
                "viewer" if change || needs_global_admin || d.path.ends_with("/preview") => {
                    Some(403)
                }
                "operator" if needs_global_admin || needs_admin => Some(403),
                _ => None,
            };
            match expected_refusal {
                Some(s) => assert_eq!(r.status, s, "{what}"),
                None => assert!(![401, 403].contains(&r.status), "{what}"),
            }
            if change {
                let after = e.audit_count().await;
                let rows = after - before;
                // Anonymous refusals are recorded once per client, route and minute.
                if who_name != "anonymous" {
                    assert_eq!(rows, 1, "one audit row: {what}");
                }
            }
            let running: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE outcome IS NULL")
                    .fetch_one(&e.st.db)
                    .await
                    .unwrap();
            assert_eq!(running, 0, "a row left without outcome after {what}");
        }
    }
}

/// Adds product line `gamma` (group 1: `servers`) with its own dashboard, physically isolated.
async fn physical_gamma(e: &Env, admin: &Who, servers: &[&str]) -> (Arc<Topom>, String) {
    put_node(
        &e.root,
        "/codis3/gamma/group/group-0001",
        &group(1, servers),
    );
    let gamma = start_dashboard(&e.root, "gamma").await;
    e.st.products.discover().await;
    e.wait_reachable(&["gamma"]).await;
    let r = e
        .call(
            admin,
            "PUT",
            "/api/v1/products/gamma/isolation",
            Some(json!({"mode": "physical"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    gamma
}

async fn last_audit_target(e: &Env) -> Option<String> {
    sqlx::query_scalar("SELECT target FROM audit ORDER BY id DESC LIMIT 1")
        .fetch_one(&e.st.db)
        .await
        .unwrap()
}

/// Codis's forwarded routes decode each path segment before checking it: a percent-encoded
/// address is checked like a plain one, dot segments and encoded slashes are refused, and the
/// dashboard gets a path rebuilt from the checked parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_paths_are_decoded_checked_and_rebuilt() {
    let e = env("fwdpath").await;
    let admin = e.admin().await;
    let operator = e
        .user(
            &admin,
            "opie",
            json!([{"product": "alpha", "role": "operator"}, {"product": "beta", "role": "operator"}]),
        )
        .await;
    let _gamma = physical_gamma(&e, &admin, &["127.0.0.1:7001"]).await;
    let xa = codis_model::auth::dashboard_xauth("alpha");
    let xb = codis_model::auth::dashboard_xauth("beta");
    // A: an encoded ':' does not hide the server from the isolation check.
    for uri in [
        format!("/api/topom/group/add/{xa}/1/127.0.0.1%3A7001?forward=alpha"),
        format!("/api/topom/group/add/{xa}/1/127.0.0.1%3a7001/dc1?forward=alpha"),
        format!("/api/topom/group/add/{xa}/1/%31%32%37.0.0.1%3A7001?forward=alpha"),
    ] {
        let r = e.call(&operator, "PUT", &uri, None).await;
        assert_eq!(r.status, 409, "{uri}: {}", r.text);
        assert!(r.text.contains("gamma"), "{uri}: {}", r.text);
    }
    // Promoting beta's copy of the shared replica (alpha's replica too), spelled encoded.
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/group/promote/{xb}/1/localhost%3A2?forward=beta"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("alpha"), "{}", r.text);
    let alpha = e.dashboards[0].0.snapshot().await.unwrap();
    let servers: Vec<String> = alpha
        .groups
        .values()
        .flat_map(|g| g.servers.iter().map(|s| s.addr.clone()))
        .collect();
    assert!(!servers.iter().any(|s| s.contains("7001")), "{servers:?}");
    // An address that is not host:port is refused before the dashboard sees it.
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/group/add/{xa}/1/127.0.0.1%3A7001%3A1?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // An encoded add that passes the checks reaches the dashboard decoded (which then finds
    // no server there), and the audit row shows the decoded route.
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/group/add/{xa}/1/127.0.0.1%3A7002?forward=alpha"),
            None,
        )
        .await;
    assert!(r.text.contains("redis 127.0.0.1:7002"), "{}", r.text);
    assert_eq!(
        last_audit_target(&e).await.as_deref(),
        Some("PUT /api/topom/group/add/{xauth}/1/127.0.0.1:7002")
    );
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/group/create/{xa}/%34%33?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        last_audit_target(&e).await.as_deref(),
        Some("PUT /api/topom/group/create/{xauth}/43")
    );
    let alpha = e.dashboards[0].0.snapshot().await.unwrap();
    assert!(alpha.groups.contains_key(&43), "{:?}", alpha.groups.keys());

    // B: dot segments, encoded or not, and encoded slashes never reach admin-only routes.
    for uri in [
        format!("/api/topom/group/replica-groups/%2e%2e/%2e%2e/shutdown/{xa}?forward=alpha"),
        format!("/api/topom/group/replica-groups/%2E%2E/%2E%2E/shutdown/{xa}?forward=alpha"),
        format!("/api/topom/group/replica-groups/../../shutdown/{xa}?forward=alpha"),
        format!("/api/topom/group/replica-groups/{xa}/1/..%2F..%2Fshutdown/1?forward=alpha"),
        format!("/api/topom/group/resync/{xa}/.?forward=alpha"),
        format!("/api/topom/group/resync/{xa}/1%00?forward=alpha"),
        format!("/api/topom/group/resync/{xa}/%zz?forward=alpha"),
        format!("/api/topom//group/resync/{xa}/1?forward=alpha"),
    ] {
        let r = e.call(&operator, "PUT", &uri, None).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.text);
    }
    let r = e.call(&admin, "GET", "/topom?forward=alpha", None).await;
    assert_eq!(r.status, 200, "the dashboard is still up: {}", r.text);
    // Routes are told apart by what they decode to: an encoded shutdown is still admin-only.
    let r = e
        .call(
            &operator,
            "PUT",
            &format!("/api/topom/%73hutdown/{xa}?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("admin"), "{}", r.text);
}

/// Every spelling of a loopback or unspecified address is the one local server, for the checks
/// and for the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_spellings_are_one_server() {
    let e = env("spell").await;
    let admin = e.admin().await;
    let _gamma = physical_gamma(&e, &admin, &["127.0.0.1:7001"]).await;
    for addr in [
        "0:7001",
        "0.0.0.0:7001",
        "127.1:7001",
        "2130706433:7001",
        "127.0.0.2:7001",
        "[::]:7001",
        "[0::0]:7001",
        "[::ffff:0.0.0.0]:7001",
        "[::1]:7001",
        "[::ffff:127.0.0.1]:7001",
        "localhost.:7001",
        "LocalHost:7001",
    ] {
        let r = e
            .call(
                &admin,
                "POST",
                "/api/v1/products/alpha/groups/1/servers",
                Some(json!({ "addr": addr })),
            )
            .await;
        assert_eq!(r.status, 409, "{addr}: {}", r.text);
        assert!(r.text.contains("gamma"), "{addr}: {}", r.text);
    }
    // Written another way behind the fe's back, the server is still found in the report.
    put_node(
        &e.root,
        "/codis3/alpha/group/group-0002",
        &group(2, &["0:7001"]),
    );
    let xauth = codis_model::auth::dashboard_xauth("alpha");
    reqwest::Client::new()
        .put(format!(
            "http://{}/api/topom/reload/{xauth}",
            e.dashboards[0].1
        ))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = e.call(&admin, "GET", "/api/v1/isolation", None).await;
        let found = r.body["violations"].as_array().unwrap().iter().any(|v| {
            v["rule"] == "physical"
                && v["server"] == "127.0.0.1:7001"
                && v["places"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["addr"] == "0:7001")
        });
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "never reported: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A product line whose dashboard never answered since the fe started has servers nobody
/// knows: adds and promotes are refused (503, naming it) until it answers or is removed, and
/// the report lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_fails_closed_while_a_product_line_is_unknown() {
    let e = env("unknown").await;
    let admin = e.admin().await;
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products",
            Some(json!({"name": "ghost", "dashboard": "127.0.0.1:1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/alpha/groups/1/servers",
            Some(json!({"addr": "127.0.0.1:7005"})),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("ghost"), "{}", r.text);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/alpha/groups/1/promote",
            Some(json!({"addr": "127.0.0.1:2"})),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    let xa = codis_model::auth::dashboard_xauth("alpha");
    let r = e
        .call(
            &admin,
            "PUT",
            &format!("/api/topom/group/add/{xa}/1/127.0.0.1:7005?forward=alpha"),
            None,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    let r = e.call(&admin, "GET", "/api/v1/isolation", None).await;
    assert_eq!(r.body["unknown"], json!(["ghost"]), "{}", r.text);
    // Removed, it no longer blocks.
    let r = e
        .call(&admin, "DELETE", "/api/v1/products/ghost", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = e
        .call(
            &admin,
            "POST",
            "/api/v1/products/alpha/groups/1/servers",
            Some(json!({"addr": "127.0.0.1:7005"})),
        )
        .await;
    // The dashboard is asked now (and finds no server at that address).
    assert_eq!(r.body["code"], "dashboard_error", "{}", r.text);
    let r = e.call(&admin, "GET", "/api/v1/isolation", None).await;
    assert_eq!(r.body["unknown"], json!([]), "{}", r.text);
}

/// A login sent from `ip` (as if through a socket).
async fn login_from(app: &axum::Router, ip: &str, user: &str, password: &str) -> u16 {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": user, "password": password}).to_string(),
        ))
        .unwrap();
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    app.clone().oneshot(req).await.unwrap().status().as_u16()
}

/// Many bad logins from one source (unknown names, so no account locks) neither hold the
/// password checkers while they wait out their delay nor fill the queue for everyone: the
/// administrator, from elsewhere, still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_from_one_source_does_not_lock_out_others() {
    let e = env("flood").await;
    let mut flood = Vec::new();
    for i in 0..150 {
        let app = e.app.clone();
        flood.push(tokio::spawn(async move {
            login_from(&app, "10.66.0.1", &format!("nobody-{i}"), "wrong-password").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let s = login_from(&e.app, "10.77.0.1", "admin", ADMIN_PW).await;
    assert_eq!(s, 200, "the administrator is turned away");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut limited = 0;
    for t in flood {
        let s = t.await.unwrap();
        assert!(s == 401 || s == 429, "{s}");
        limited += usize::from(s == 429);
    }
    assert!(limited > 0, "one source is limited");
}

/// Two global administrators demoting (or deleting) each other at once: one of them stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_global_admin_survives_concurrent_demotions() {
    let e = env("lastadmin").await;
    let admin = e.admin().await;
    for round in 0..5 {
        let name = format!("second-{round}");
        let r = e
            .call(
                &admin,
                "POST",
                "/api/v1/users",
                Some(
                    json!({"username": name, "password": "password-of-user", "global_admin": true}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let second = e.login(&name, "password-of-user").await;
        let other = format!("/api/v1/users/{name}");
        let (a, b) = if round % 2 == 0 {
            let body = Some(json!({"global_admin": false}));
            tokio::join!(
                e.call(&second, "PUT", "/api/v1/users/admin", body.clone()),
                e.call(&admin, "PUT", &other, body),
            )
        } else {
            tokio::join!(
                e.call(&second, "DELETE", "/api/v1/users/admin", None),
                e.call(&admin, "DELETE", &other, None),
            )
        };
        let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE global_admin != 0")
            .fetch_one(&e.st.db)
            .await
            .unwrap();
        assert!(
            admins >= 1,
            "round {round}: {} {} / {} {}",
            a.status,
            a.text,
            b.status,
            b.text
        );
        assert!(
            a.status == 200 || b.status == 200,
            "round {round}: neither succeeded: {} / {}",
            a.text,
            b.text
        );
        if a.status == 200 && round % 2 == 1 {
            return; // `second` deleted admin: the test's administrator is gone.
        }
        // Back to one global administrator, admin, for the next round.
        sqlx::query("UPDATE users SET global_admin = 1 WHERE username = 'admin'")
            .execute(&e.st.db)
            .await
            .unwrap();
        sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(&name)
            .execute(&e.st.db)
            .await
            .unwrap();
    }
}

/// Every documented route says what it answers, and every schema named resolves, so a
/// conformance checker (schemathesis) has something to hold each reply against.
#[test]
fn every_documented_route_has_a_reply_schema() {
    let docs = backend::fe::api_routes().docs;
    for d in &docs {
        assert!(
            d.doc.reply.is_some(),
            "{} {} documents no reply schema",
            d.method,
            d.path
        );
    }
    let doc = backend::fe::openapi::document(&docs);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in backend::fe::openapi::referenced_schemas(&doc) {
        assert!(schemas.contains_key(&name), "schema {name} is not defined");
    }
}
