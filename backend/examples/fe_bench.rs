//! codis-fe under load: 10 product lines of 100 groups (two servers each), each with its own
//! real dashboard (in this process, over a filesystem coordinator), behind the fe's API on a
//! loopback port. 20 concurrent clients then read the product list, and one product's full
//! picture, for a fixed time each; p50/p99/max latencies and throughput are printed.
//!
//! `cargo run --release -p backend --example fe_bench [-- SECONDS [ROUTE...]]`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::dashboard::api::AppState as DashState;
use backend::dashboard::config::DashboardConfig;
use backend::dashboard::{Topom, identity, serve};
use backend::fe::auth::SessionPolicy;
use backend::fe::products::{PollPolicy, Registry};
use backend::fe::{AppState, Settings, app, auth, db};
use serde_json::json;

const PRODUCTS: usize = 10;
const GROUPS: usize = 100;
const CLIENTS: usize = 20;

fn put_node(root: &Path, path: &str, v: &serde_json::Value) {
    let file = root.join("data").join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let root = std::env::temp_dir().join(format!("codis-fe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // Servers on closed loopback ports: probes fail at once, as for dead servers.
    for p in 0..PRODUCTS {
        for g in 1..=GROUPS {
            let port = 20_000 + p * 1000 + g * 2;
            let servers: Vec<_> = [port, port + 1]
                .iter()
                .map(|port| json!({"server": format!("127.0.0.1:{port}"), "datacenter": "", "action": {}, "replica_group": false}))
                .collect();
            put_node(
                &root,
                &format!("/codis3/p{p}/group/group-{g:04}"),
                &json!({"id": g, "servers": servers, "promoting": {}, "out_of_sync": false}),
            );
        }
        for s in 0..1024 {
            let gid = 1 + s * GROUPS / 1024;
            put_node(
                &root,
                &format!("/codis3/p{p}/slots/slot-{s:04}"),
                &json!({"id": s, "group_id": gid, "action": {}}),
            );
        }
    }
    let mut topoms = Vec::new();
    for p in 0..PRODUCTS {
        let product = format!("p{p}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = DashboardConfig {
            coordinator_name: "filesystem".into(),
            coordinator_addr: root.display().to_string(),
            product_name: product.clone(),
            admin_addr: addr.clone(),
            ..DashboardConfig::default()
        };
        let c =
            codis_coordinator::connect("filesystem", &config.coordinator_addr, "", Duration::ZERO)
                .unwrap();
        let topom = Topom::new(config, c, identity(&product, &addr, "").unwrap());
        loop {
            match topom.acquire_lock().await {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("lock {product}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let state = DashState {
            topom: topom.clone(),
            set_log_level: Arc::new(|_| Ok(())),
            version: "bench".into(),
            compile: "bench".into(),
        };
        tokio::spawn(serve(state, listener));
        topoms.push(topom);
    }
    let pool = db::open(&root.join("fe.db").to_string_lossy())
        .await
        .unwrap();
    auth::ensure_admin(&pool, Some("bench-password"))
        .await
        .unwrap();
    let c = codis_coordinator::connect(
        "filesystem",
        &root.display().to_string(),
        "",
        Duration::ZERO,
    )
    .unwrap();
    let registry = Registry::new(pool.clone(), Some(c), None, PollPolicy::default());
    registry.spawn_discovery();
    let st = AppState::new(
        pool,
        registry.clone(),
        Settings {
            session: SessionPolicy::default(),
            assets_dir: root.join("assets"),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fe_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(st)).await });

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = registry.all().len() == PRODUCTS
            && registry
                .all()
                .iter()
                .all(|p| p.snapshot.read().overview.is_some());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "dashboards never all answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{fe_addr}");
    let login = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"username": "admin", "password": "bench-password"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    println!(
        "codis-fe bench: {PRODUCTS} product lines x {GROUPS} groups (2 servers each), {CLIENTS} clients, {secs} s per route"
    );
    println!("| route | requests/s | p50 ms | p99 ms | max ms | reply bytes |");
    println!("|---|---|---|---|---|---|");
    let mut routes: Vec<String> = std::env::args().skip(2).collect();
    if routes.is_empty() {
        routes = vec!["/api/v1/products".into(), "/api/v1/products/p3".into()];
    }
    for route in &routes {
        let url = format!("{base}{route}");
        let stop = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let http = http.clone();
            let url = url.clone();
            let cookie = cookie.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut bytes = 0;
                while Instant::now() < stop {
                    let t = Instant::now();
                    let r = http
                        .get(&url)
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    bytes = r.bytes().await.unwrap().len();
                    lat.push(t.elapsed());
                }
                (lat, bytes)
            }));
        }
        let mut all = Vec::new();
        let mut bytes = 0;
        for t in tasks {
            let (l, b) = t.await.unwrap();
            all.extend(l);
            bytes = b;
        }
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
        println!(
            "| GET {route} | {:.0} | {:.1} | {:.1} | {:.1} | {bytes} |",
            all.len() as f64 / secs as f64,
            pct(0.50),
            pct(0.99),
            all.last().unwrap().as_secs_f64() * 1000.0
        );
    }
    for t in topoms {
        let _ = t.close().await;
    }
    let _ = std::fs::remove_dir_all(&root);
}
