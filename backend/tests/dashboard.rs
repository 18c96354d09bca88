//! codis-dashboard in-process, over a filesystem coordinator laid out exactly as Codis 3.2
//! writes it: the API's routes, JSON and errors, the lock, slot actions, rebalance and the
//! migration state machine on offline slots. (Whole-cluster runs with real servers, proxies
//! and ZooKeeper are in `tests/`.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend::dashboard::api::{AppState, app};
use backend::dashboard::config::DashboardConfig;
use backend::dashboard::{Topom, identity};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const PRODUCT: &str = "compat";

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "codis-dashboard-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a node the way Codis's filesystem client stores it: `R/data/<path>`.
fn put(root: &Path, path: &str, text: &str) {
    let file = root.join("data").join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

fn get(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join("data").join(path.trim_start_matches('/'))).ok()
}

// Fixtures in Codis 3.2's exact layout (Go's json.MarshalIndent with 4 spaces).
const GROUP_1: &str = r#"{
    "id": 1,
    "servers": [
        {
            "server": "127.0.0.1:1",
            "datacenter": "dc1",
            "action": {},
            "replica_group": false
        },
        {
            "server": "127.0.0.1:2",
            "datacenter": "dc1",
            "action": {
                "index": 3,
                "state": "synced"
            },
            "replica_group": true
        }
    ],
    "promoting": {},
    "out_of_sync": false
}"#;

const GROUP_2: &str = r#"{
    "id": 2,
    "servers": [
        {
            "server": "127.0.0.1:3",
            "datacenter": "",
            "action": {},
            "replica_group": false
        }
    ],
    "promoting": {},
    "out_of_sync": false
}"#;

const SLOT_7: &str = r#"{
    "id": 7,
    "group_id": 1,
    "action": {}
}"#;

const SLOT_8: &str = r#"{
    "id": 8,
    "group_id": 1,
    "action": {
        "index": 5,
        "state": "pending",
        "target_id": 2
    }
}"#;

const PROXY: &str = r#"{
    "id": 1,
    "token": "4d6d2b1b5c3f4b1d8f9d2a0e7c6b5a49",
    "start_time": "2017-03-08 11:58:36.108469463 +0800 CST",
    "admin_addr": "127.0.0.1:1",
    "proto_type": "tcp4",
    "proxy_addr": "127.0.0.1:2",
    "jodis_path": "/jodis/compat/proxy-4d6d2b1b5c3f4b1d8f9d2a0e7c6b5a49",
    "product_name": "compat",
    "pid": 4242,
    "pwd": "/opt/codis",
    "sys": "Linux codis 4.4.0 x86_64 GNU/Linux",
    "hostname": "codis",
    "datacenter": "dc1"
}"#;

const SENTINEL: &str = r#"{
    "servers": [
        "127.0.0.1:26379"
    ],
    "out_of_sync": false
}"#;

fn fixtures(root: &Path) {
    put(root, "/codis3/compat/group/group-0001", GROUP_1);
    put(root, "/codis3/compat/group/group-0002", GROUP_2);
    put(root, "/codis3/compat/slots/slot-0007", SLOT_7);
    put(root, "/codis3/compat/slots/slot-0008", SLOT_8);
    put(
        root,
        "/codis3/compat/proxy/proxy-4d6d2b1b5c3f4b1d8f9d2a0e7c6b5a49",
        PROXY,
    );
    put(root, "/codis3/compat/sentinel", SENTINEL);
}

struct Dash {
    topom: Arc<Topom>,
    app: axum::Router,
    xauth: String,
    root: PathBuf,
    _dir: TempDir,
}

async fn dashboard(tag: &str, with_fixtures: bool) -> Dash {
    let dir = TempDir::new(tag);
    if with_fixtures {
        fixtures(&dir.0);
    }
    let config = DashboardConfig {
        coordinator_name: "filesystem".into(),
        coordinator_addr: dir.0.display().to_string(),
        product_name: PRODUCT.into(),
        admin_addr: "127.0.0.1:0".into(),
        ..DashboardConfig::default()
    };
    let coordinator = codis_coordinator::connect(
        "filesystem",
        &config.coordinator_addr,
        "",
        Duration::from_secs(5),
    )
    .unwrap();
    let model = identity(PRODUCT, "127.0.0.1:18080", "").unwrap();
    let topom = Topom::new(config, coordinator, model);
    topom.acquire_lock().await.unwrap();
    let state = AppState {
        topom: topom.clone(),
        set_log_level: Arc::new(|_| Ok(())),
        version: "test".into(),
        compile: "test".into(),
    };
    Dash {
        xauth: topom.xauth.clone(),
        app: app(state),
        topom,
        root: dir.0.clone(),
        _dir: dir,
    }
}

impl Dash {
    async fn call(&self, method: &str, uri: &str, body: &str) -> (u16, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn put_ok(&self, route: &str) {
        let (status, body) = self.call("PUT", &format!("/api/topom/{route}"), "").await;
        assert_eq!((status, body.as_str()), (200, "\"OK\""), "PUT {route}");
    }

    async fn put_err(&self, route: &str) -> String {
        let (status, body) = self.call("PUT", &format!("/api/topom/{route}"), "").await;
        assert_eq!(status, 800, "PUT {route}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["Cause"].as_str().unwrap().to_string()
    }

    async fn stats(&self) -> Value {
        let (status, body) = self
            .call("GET", &format!("/api/topom/stats/{}", self.xauth), "")
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Codis 3.2 metadata reads as it is and is served back unchanged; what we write back is in
/// the same layout, byte for byte.
#[tokio::test]
async fn codis_metadata_is_read_and_served_back_unchanged() {
    let d = dashboard("compat", true).await;
    let stats = d.stats().await;
    let groups = stats["group"]["models"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let fixture: Value = serde_json::from_str(GROUP_1).unwrap();
    assert_eq!(groups[0], fixture);
    let slots = stats["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1024);
    assert_eq!(slots[7], serde_json::from_str::<Value>(SLOT_7).unwrap());
    assert_eq!(slots[8], serde_json::from_str::<Value>(SLOT_8).unwrap());
    assert_eq!(
        slots[9],
        serde_json::json!({"id": 9, "group_id": 0, "action": {}})
    );
    assert_eq!(
        stats["proxy"]["models"][0],
        serde_json::from_str::<Value>(PROXY).unwrap()
    );
    assert_eq!(
        stats["sentinels"]["model"],
        serde_json::from_str::<Value>(SENTINEL).unwrap()
    );
    // The proxies' view: slot 7 on group 1's master, with the replica group; slot 8 pending
    // still on its source.
    let (status, body) = d
        .call("GET", &format!("/api/topom/slots/{}", d.xauth), "")
        .await;
    assert_eq!(status, 200);
    let view: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        view[7],
        serde_json::json!({"id": 7, "backend_addr": "127.0.0.1:1", "backend_addr_group_id": 1,
            "forward_method": 1, "replica_groups": [["127.0.0.1:2"]]})
    );
    assert_eq!(view[0], serde_json::json!({"id": 0, "forward_method": 1}));
    // A write goes back in Codis's exact text.
    d.put_ok(&format!("group/replica-groups/{}/1/127.0.0.1:2/1", d.xauth))
        .await;
    // The group serves slots, so a replica change marks it out of sync until a resync.
    assert_eq!(
        get(&d.root, "/codis3/compat/group/group-0001").unwrap(),
        GROUP_1.replace("\"out_of_sync\": false", "\"out_of_sync\": true")
    );
    d.put_ok(&format!("slots/action/remove/{}/8", d.xauth))
        .await;
    assert_eq!(
        get(&d.root, "/codis3/compat/slots/slot-0008").unwrap(),
        "{\n    \"id\": 8,\n    \"group_id\": 1,\n    \"action\": {}\n}"
    );
    // The lock node is our Topom model.
    let lock: Value = serde_json::from_str(&get(&d.root, "/codis3/compat/topom").unwrap()).unwrap();
    assert_eq!(lock["product_name"], PRODUCT);
    assert_eq!(lock["pid"], std::process::id());
    d.topom.close().await.unwrap();
    assert!(get(&d.root, "/codis3/compat/topom").is_none());
}

#[tokio::test]
async fn the_lock_refuses_a_second_dashboard() {
    let d = dashboard("lock", false).await;
    let coordinator = codis_coordinator::connect(
        "filesystem",
        d.root.to_str().unwrap(),
        "",
        Duration::from_secs(5),
    )
    .unwrap();
    let config = DashboardConfig {
        coordinator_addr: d.root.display().to_string(),
        product_name: PRODUCT.into(),
        ..DashboardConfig::default()
    };
    // Another host/port: a different token, so the lock is not taken over.
    let other = Topom::new(
        config,
        coordinator,
        identity(PRODUCT, "127.0.0.1:18081", "").unwrap(),
    );
    let err = other.acquire_lock().await.unwrap_err().to_string();
    assert!(err.contains("is locked by the dashboard at"), "{err}");
    d.topom.close().await.unwrap();
    other.acquire_lock().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn errors_are_codis_800_and_change_nothing() {
    let d = dashboard("errors", true).await;
    let before = d.stats().await;
    // xauth
    let cause = d.put_err("group/create/wrong/3").await;
    assert_eq!(cause, "invalid xauth, please check product name & auth");
    let x = d.xauth.clone();
    // bad numbers and ranges
    assert!(
        d.put_err(&format!("group/create/{x}/abc"))
            .await
            .contains("not an integer")
    );
    assert!(
        d.put_err(&format!("group/create/{x}/0"))
            .await
            .contains("out of range")
    );
    assert!(
        d.put_err(&format!("group/create/{x}/10000"))
            .await
            .contains("out of range")
    );
    assert_eq!(
        d.put_err(&format!("group/create/{x}/1")).await,
        "group-[1] already exists"
    );
    assert_eq!(
        d.put_err(&format!("group/remove/{x}/1")).await,
        "group-[1] isn't empty"
    );
    assert_eq!(
        d.put_err(&format!("group/remove/{x}/9")).await,
        "group-[9] doesn't exist"
    );
    assert!(
        d.put_err(&format!("group/del/{x}/1/127.0.0.1:1"))
            .await
            .contains("can't remove master")
    );
    assert!(
        d.put_err(&format!("group/promote/{x}/1/127.0.0.1:1"))
            .await
            .contains("can't promote master")
    );
    assert_eq!(
        d.put_err(&format!("slots/action/create/{x}/8/2")).await,
        "slot-[8] action already exists"
    );
    assert_eq!(
        d.put_err(&format!("slots/action/create/{x}/7/1")).await,
        "slot-[7] already in group-[1]"
    );
    assert_eq!(
        d.put_err(&format!("slots/action/create/{x}/1024/1")).await,
        "slot-[1024] doesn't exist"
    );
    assert_eq!(
        d.put_err(&format!("slots/action/create/{x}/1/5")).await,
        "group-[5] doesn't exist"
    );
    assert!(
        d.put_err(&format!("slots/action/create-range/{x}/5/9/2"))
            .await
            .contains("slot-[8] action already exists")
    );
    assert!(
        d.put_err(&format!("slots/action/create-range/{x}/9/5/2"))
            .await
            .contains("invalid slot range")
    );
    assert_eq!(
        d.put_err(&format!("slots/action/remove/{x}/7")).await,
        "slot-[7] action doesn't exist"
    );
    assert!(
        d.put_err(&format!("proxy/reinit/{x}/nope"))
            .await
            .contains("doesn't exist")
    );
    // bad bodies
    let (status, body) = d
        .call("PUT", &format!("/api/topom/slots/assign/{x}"), "{not json")
        .await;
    assert_eq!(status, 800);
    assert!(body.contains("bad request body"), "{body}");
    let (status, body) = d
        .call(
            "PUT",
            &format!("/api/topom/slots/assign/{x}"),
            r#"[{"id": 1, "group_id": 7}]"#,
        )
        .await;
    assert_eq!(status, 800);
    assert!(body.contains("group-[7] doesn't exist"), "{body}");
    let (status, body) = d
        .call(
            "PUT",
            &format!("/api/topom/slots/assign/{x}/offline"),
            r#"[{"id": 1, "group_id": 1}]"#,
        )
        .await;
    assert_eq!(status, 800);
    assert!(body.contains("should be 0"), "{body}");
    // An unreachable server is refused with the reason.
    assert!(
        d.put_err(&format!("group/add/{x}/2/127.0.0.1:1"))
            .await
            .contains("127.0.0.1:1")
    );
    let after = d.stats().await;
    assert_eq!(before["slots"], after["slots"]);
    assert_eq!(before["group"]["models"], after["group"]["models"]);
    d.topom.close().await.unwrap();
}

/// Rebalance previews its plan, then queues it; offline slots are assigned through those
/// actions (no proxy and no key to move, so no server is contacted).
#[tokio::test]
async fn rebalance_preview_then_offline_slots_are_assigned() {
    let d = dashboard("rebalance", true).await;
    let x = d.xauth.clone();
    d.put_ok(&format!("slots/action/remove/{x}/8")).await;
    // Proxies are unreachable fixtures: forget them first (force).
    d.put_ok(&format!(
        "proxy/remove/{x}/4d6d2b1b5c3f4b1d8f9d2a0e7c6b5a49/1"
    ))
    .await;
    let (status, body) = d
        .call("PUT", &format!("/api/topom/slots/rebalance/{x}/0"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    let plan: std::collections::BTreeMap<String, i64> = serde_json::from_str(&body).unwrap();
    // Slots 7 and 8 are in group 1; the 1022 offline slots are split to even both groups.
    assert_eq!(plan.len(), 1022);
    let to1 = plan.values().filter(|g| **g == 1).count();
    assert_eq!(to1 + 2, 512);
    // Preview changed nothing.
    assert!(
        d.stats().await["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == serde_json::json!({}))
    );
    let (status, body) = d
        .call("PUT", &format!("/api/topom/slots/rebalance/{x}/1"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    let stats = d.stats().await;
    assert_eq!(stats["slot_action"]["pending"], 1022);
    assert_eq!(stats["slots"][0]["action"]["state"], "pending");
    // The loop assigns them.
    let topom = d.topom.clone();
    let worker = tokio::spawn(topom.clone().run_slot_actions());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = d.stats().await;
        if stats["slot_action"]["pending"] == 0 {
            let slots = stats["slots"].as_array().unwrap();
            let g1 = slots.iter().filter(|s| s["group_id"] == 1).count();
            let g2 = slots.iter().filter(|s| s["group_id"] == 2).count();
            assert_eq!((g1, g2), (512, 512));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "migration did not finish: {}",
            stats["slot_action"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&d.root, "/codis3/compat/slots/slot-0000").unwrap(),
        "{\n    \"id\": 0,\n    \"group_id\": 1,\n    \"action\": {}\n}"
    );
    // Balanced now: nothing to do.
    let (_, body) = d
        .call("PUT", &format!("/api/topom/slots/rebalance/{x}/0"), "")
        .await;
    assert_eq!(body, "{}");
    d.topom.close().await.unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn overview_model_and_plain_routes() {
    let d = dashboard("overview", false).await;
    let (status, body) = d.call("GET", "/topom", "").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model"]["product_name"], PRODUCT);
    assert_eq!(v["config"]["coordinator_name"], "filesystem");
    assert!(v["config"].get("product_auth").is_none());
    assert_eq!(v["stats"]["coordinator"]["online"], true);
    assert!(
        body.starts_with("{\n    \"version\""),
        "4-space JSON: {body}"
    );
    let (status, body) = d.call("GET", "/api/topom/model", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["pid"],
        std::process::id()
    );
    let (status, body) = d
        .call("GET", &format!("/api/topom/xping/{}", d.xauth), "")
        .await;
    assert_eq!((status, body.as_str()), (200, "\"OK\""));
    d.put_ok(&format!("group/create/{}/3", d.xauth)).await;
    d.put_ok(&format!("slots/action/interval/{}/2000000", d.xauth))
        .await;
    d.put_ok(&format!("slots/action/disabled/{}/1", d.xauth))
        .await;
    let s = d.stats().await;
    assert_eq!(s["slot_action"]["interval"], 1_000_000);
    assert_eq!(s["slot_action"]["disabled"], true);
    assert_eq!(s["group"]["models"][0]["id"], 3);
    assert_eq!(s["group"]["models"][0]["servers"], serde_json::json!([]));
    d.put_ok(&format!("group/remove/{}/3", d.xauth)).await;
    d.put_ok(&format!("reload/{}", d.xauth)).await;
    assert!(
        d.stats().await["group"]["models"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    d.put_ok(&format!("shutdown/{}", d.xauth)).await;
    assert!(d.topom.is_closed());
    let (status, _) = d
        .call("PUT", &format!("/api/topom/group/create/{}/4", d.xauth), "")
        .await;
    assert_eq!(status, 800);
    let _ = StatusCode::OK;
}

/// Manual failover: the promoted replica becomes `servers[0]`, the old master goes last, the
/// sync actions are cleared and the promotion leaves no state behind. (The servers are
/// unreachable fixtures, so the SLAVEOF NO ONE on the new master fails; Codis only logs it,
/// and so do we.)
#[tokio::test]
async fn promote_reorders_the_group() {
    let d = dashboard("promote", true).await;
    let x = d.xauth.clone();
    d.put_ok(&format!(
        "proxy/remove/{x}/4d6d2b1b5c3f4b1d8f9d2a0e7c6b5a49/1"
    ))
    .await;
    assert!(
        d.put_err(&format!("group/promote/{x}/1/127.0.0.1:9"))
            .await
            .contains("doesn't have server")
    );
    d.put_ok(&format!("group/promote/{x}/1/127.0.0.1:2")).await;
    let g = &d.stats().await["group"]["models"][0];
    assert_eq!(g["servers"][0]["server"], "127.0.0.1:2");
    assert_eq!(g["servers"][1]["server"], "127.0.0.1:1");
    assert_eq!(g["servers"][0]["action"], serde_json::json!({}));
    assert_eq!(g["promoting"], serde_json::json!({}));
    assert_eq!(g["out_of_sync"], false);
    // Slots of the group now point at the new master.
    let (_, body) = d.call("GET", &format!("/api/topom/slots/{x}"), "").await;
    let view: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(view[7]["backend_addr"], "127.0.0.1:2");
    // A replica's SLAVEOF can be queued and removed again.
    d.put_ok(&format!("group/action/create/{x}/127.0.0.1:1"))
        .await;
    let g = &d.stats().await["group"]["models"][0];
    assert_eq!(g["servers"][1]["action"]["state"], "pending");
    assert!(
        d.put_err(&format!("group/action/create/{x}/127.0.0.1:1"))
            .await
            .contains("already exist")
    );
    d.put_ok(&format!("group/action/remove/{x}/127.0.0.1:1"))
        .await;
    d.topom.close().await.unwrap();
}

/// A child process killed (and its directory removed) on drop.
struct Proc {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(program: &str, args: &[String], port: u16, dir: PathBuf) -> Proc {
    let child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is needed (apt-get install redis-server redis-sentinel): {e}")
        });
    let p = Proc { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{program} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn redis_server(replica_of: Option<u16>) -> Proc {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("codis-dashboard-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(m) = replica_of {
        args.extend([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            m.to_string(),
        ]);
    }
    spawn("redis-server", &args, port, dir)
}

fn sentinel() -> Proc {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("codis-dashboard-sentinel-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\n",
            dir.display()
        ),
    )
    .unwrap();
    spawn("redis-sentinel", &[conf.display().to_string()], port, dir)
}

/// Sentinel HA: the dashboard configures three Debian redis-sentinels (resync-all: they monitor
/// `<product>-<gid>` with the `sentinel_*` settings), and when they fail the master over, the
/// dashboard's `+switch-master` watch puts the promoted replica first in the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_are_configured_and_a_failover_reorders_the_group() {
    let master = redis_server(None);
    let replica = redis_server(Some(master.port));
    let sentinels: Vec<Proc> = (0..3).map(|_| sentinel()).collect();
    let dir = TempDir::new("ha");
    let (m, r) = (
        format!("127.0.0.1:{}", master.port),
        format!("127.0.0.1:{}", replica.port),
    );
    // Group 1 = [master, replica], written as Codis stores it (redis-server is not a
    // codis-server, so `group/add` would refuse it).
    put(
        &dir.0,
        "/codis3/compat/group/group-0001",
        &GROUP_1
            .replace("127.0.0.1:1", &m)
            .replace("127.0.0.1:2", &r),
    );
    put(&dir.0, "/codis3/compat/slots/slot-0007", SLOT_7);
    let config = DashboardConfig {
        coordinator_addr: dir.0.display().to_string(),
        product_name: PRODUCT.into(),
        sentinel_down_after: codis_model::units::TimeSize::from_secs(1),
        sentinel_failover_timeout: codis_model::units::TimeSize::from_secs(5),
        ..DashboardConfig::default()
    };
    let coordinator = codis_coordinator::connect(
        "filesystem",
        &config.coordinator_addr,
        "",
        Duration::from_secs(5),
    )
    .unwrap();
    let topom = Topom::new(
        config,
        coordinator,
        identity(PRODUCT, "127.0.0.1:18082", "").unwrap(),
    );
    topom.acquire_lock().await.unwrap();
    let state = AppState {
        topom: topom.clone(),
        set_log_level: Arc::new(|_| Ok(())),
        version: "test".into(),
        compile: "test".into(),
    };
    let d = Dash {
        xauth: topom.xauth.clone(),
        app: app(state),
        topom: topom.clone(),
        root: dir.0.clone(),
        _dir: dir,
    };
    let x = d.xauth.clone();
    for s in &sentinels {
        d.put_ok(&format!("sentinels/add/{x}/127.0.0.1:{}", s.port))
            .await;
    }
    assert!(
        d.put_err(&format!(
            "sentinels/add/{x}/127.0.0.1:{}",
            sentinels[0].port
        ))
        .await
        .contains("already exists")
    );
    assert_eq!(d.stats().await["sentinels"]["model"]["out_of_sync"], true);
    d.put_ok(&format!("sentinels/resync-all/{x}")).await;
    assert_eq!(d.stats().await["sentinels"]["model"]["out_of_sync"], false);
    let (status, body) = d
        .call(
            "GET",
            &format!(
                "/api/topom/sentinels/info/127.0.0.1:{}/monitored",
                sentinels[1].port
            ),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let monitored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        monitored["compat-1"]["master"]["port"],
        master.port.to_string()
    );
    assert_eq!(
        monitored["compat-1"]["master"]["down-after-milliseconds"],
        "1000"
    );
    assert_eq!(monitored["compat-1"]["master"]["quorum"], "2");
    // The sentinels find each other and the replica through the master (hello messages)
    // before a failover can get a quorum.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &sentinels {
        loop {
            let (_, body) = d
                .call(
                    "GET",
                    &format!("/api/topom/sentinels/info/127.0.0.1:{}/monitored", s.port),
                    "",
                )
                .await;
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            let master = &v["compat-1"]["master"];
            if master["num-other-sentinels"] == "2" && master["num-slaves"] == "1" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinels never discovered each other: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Kill the master: the sentinels promote the replica, the dashboard follows.
    let t0 = Instant::now();
    drop(master);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = d.stats().await;
        let g = &stats["group"]["models"][0];
        if g["servers"][0]["server"] == r.as_str() {
            assert_eq!(g["servers"][1]["server"], m.as_str());
            assert_eq!(stats["sentinels"]["masters"]["1"], r.as_str());
            eprintln!(
                "dashboard switched group 1 to the promoted replica {:?} after the kill",
                t0.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never switched: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Removing a sentinel stops it monitoring our groups.
    d.put_ok(&format!(
        "sentinels/del/{x}/127.0.0.1:{}/0",
        sentinels[2].port
    ))
    .await;
    let (_, body) = d
        .call(
            "GET",
            &format!(
                "/api/topom/sentinels/info/127.0.0.1:{}/monitored",
                sentinels[2].port
            ),
            "",
        )
        .await;
    assert_eq!(body, "{}");
    d.topom.close().await.unwrap();
}

fn etcd() -> Proc {
    let port = free_port();
    let peer = free_port();
    let dir = std::env::temp_dir().join(format!("codis-dashboard-etcd-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (client_url, peer_url) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{peer}"),
    );
    let args: Vec<String> = [
        "--name",
        "t",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("t={peer_url}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    spawn("etcd", &args, port, dir)
}

/// The dashboard over a real etcd (Debian's etcd-server, v3 API): the lock, groups and slots
/// land at Codis's paths as v3 keys, a second dashboard reads them back after a reload, and
/// the lock is released at close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_over_etcd() {
    let e = etcd();
    let addr = format!("127.0.0.1:{}", e.port);
    let config = DashboardConfig {
        coordinator_name: "etcd".into(),
        coordinator_addr: addr.clone(),
        product_name: PRODUCT.into(),
        ..DashboardConfig::default()
    };
    let open = |config: DashboardConfig, port: &str| {
        let coordinator =
            codis_coordinator::connect("etcd", &addr, "", Duration::from_secs(10)).unwrap();
        Topom::new(config, coordinator, identity(PRODUCT, port, "").unwrap())
    };
    // etcd takes a moment to elect itself leader.
    let topom = open(config.clone(), "127.0.0.1:18083");
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(err) = topom.acquire_lock().await {
        assert!(Instant::now() < deadline, "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    topom.group_create(4).await.unwrap();
    topom.slots_assign(&[], false).await.unwrap();
    topom.slot_create_action(9, 4).await.unwrap_err(); // empty group
    let coordinator =
        codis_coordinator::connect("etcd", &addr, "", Duration::from_secs(10)).unwrap();
    let group = coordinator
        .read("/codis3/compat/group/group-0004", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(group).unwrap(),
        "{\n    \"id\": 4,\n    \"servers\": [],\n    \"promoting\": {},\n    \"out_of_sync\": false\n}"
    );
    let lock: Value = serde_json::from_slice(
        &coordinator
            .read("/codis3/compat/topom", true)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(lock["admin_addr"], "127.0.0.1:18083");
    // A second dashboard is refused while the first holds the lock, then takes over.
    let second = open(config, "127.0.0.1:18084");
    assert!(
        second
            .acquire_lock()
            .await
            .unwrap_err()
            .to_string()
            .contains("is locked")
    );
    topom.close().await.unwrap();
    assert!(
        coordinator
            .read("/codis3/compat/topom", false)
            .await
            .unwrap()
            .is_none()
    );
    second.acquire_lock().await.unwrap();
    let stats = second.stats().await.unwrap();
    assert_eq!(stats.group.models.len(), 1);
    assert_eq!(stats.group.models[0].id, 4);
    assert!(stats.coordinator.online);
    assert_eq!(stats.coordinator.name, "etcd");
    second.close().await.unwrap();
}

fn admin(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codis-admin"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The two binaries as an operator runs them: codis-dashboard over a folder, driven by
/// codis-admin with Codis's flags (and codis-admin reading the coordinator directly).
#[test]
fn codis_admin_drives_the_dashboard_binary() {
    let dir = TempDir::new("admin");
    let port = free_port();
    let conf = dir.0.join("dashboard.toml");
    std::fs::write(
        &conf,
        format!(
            "coordinator_name = \"filesystem\"\ncoordinator_addr = \"{}\"\nproduct_name = \"adm\"\nadmin_addr = \"127.0.0.1:{port}\"\n",
            dir.0.join("coord").display()
        ),
    )
    .unwrap();
    let dash = spawn(
        env!("CARGO_BIN_EXE_codis-dashboard"),
        &[
            "--config".to_string(),
            conf.display().to_string(),
            "--log-level".into(),
            "warn".into(),
        ],
        port,
        dir.0.join("unused"),
    );
    let d = format!("--dashboard=127.0.0.1:{port}");
    let (code, out, err) = admin(&[&d, "--create-group", "--gid=3"]);
    assert_eq!((code, out.trim()), (0, "\"OK\""), "{err}");
    let (code, _, err) = admin(&[&d, "--create-group", "--gid=3"]);
    assert_eq!(code, 1);
    assert!(err.contains("group-[3] already exists"), "{err}");
    let (code, out, _) = admin(&[&d, "--list-group"]);
    assert_eq!(code, 0);
    let groups: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(groups[0]["id"], 3);
    let (code, out, _) = admin(&[&d, "model"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["product_name"],
        "adm"
    );
    // Without --confirm, slots-assign only prints the body it would send.
    let (code, out, _) = admin(&[&d, "--slots-assign", "--beg=0", "--end=3", "--offline"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let (code, _, err) = admin(&[&d, "--rebalance"]);
    assert_eq!(code, 1);
    assert!(err.contains("no valid group"), "{err}");
    let (code, _, err) = admin(&[&d, "--slot-action", "--create", "--sid=1"]);
    assert_eq!(code, 2, "a missing flag is a usage error: {err}");
    assert!(err.contains("--gid"), "{err}");
    // The coordinator directly.
    let fs = format!("--filesystem={}", dir.0.join("coord").display());
    let (code, out, _) = admin(&[&fs, "--dashboard-list"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "adm");
    assert_eq!(list[0]["dashboard"], format!("127.0.0.1:{port}"));
    let (code, out, _) = admin(&[&fs, "--config-dump", "--product=adm"]);
    assert_eq!(code, 0);
    let dump: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dump["slots"].as_array().unwrap().len(), 1024);
    assert_eq!(dump["group"][0]["id"], 3);
    // A Codis 2 tree (as codis-config 2.x wrote it) dumps with -1 and converts to Codis 3.
    let coord = dir.0.join("coord");
    put(
        &coord,
        "/zk/codis/db_old/slots/slot_0",
        r#"{"product_name":"old","id":0,"group_id":1,"state":{"status":"online","migrate_status":{"from":-1,"to":-1},"last_op_ts":"0"}}"#,
    );
    put(
        &coord,
        "/zk/codis/db_old/slots/slot_1",
        r#"{"product_name":"old","id":1,"group_id":0,"state":{"status":"offline","migrate_status":{"from":-1,"to":-1},"last_op_ts":"0"}}"#,
    );
    put(
        &coord,
        "/zk/codis/db_old/servers/group_1/127.0.0.1:6380",
        r#"{"type":"slave","group_id":1,"addr":"127.0.0.1:6380"}"#,
    );
    put(
        &coord,
        "/zk/codis/db_old/servers/group_1/127.0.0.1:6379",
        r#"{"type":"master","group_id":1,"addr":"127.0.0.1:6379"}"#,
    );
    let (code, out, err) = admin(&[&fs, "--config-dump", "--product=old", "-1"]);
    assert_eq!(code, 0, "{err}");
    let v1: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v1["slots"]["slot_0"]["state"]["status"], "online");
    assert_eq!(v1["servers"]["group_1"]["127.0.0.1:6379"]["type"], "master");
    let v1_file = dir.0.join("v1.json");
    std::fs::write(&v1_file, &out).unwrap();
    let (code, out, err) = admin(&[&format!("--config-convert={}", v1_file.display())]);
    assert_eq!(code, 0, "{err}");
    let v3: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v3["slots"],
        serde_json::json!([{"id": 0, "group_id": 1, "action": {}}])
    );
    assert_eq!(v3["group"][0]["servers"][0]["server"], "127.0.0.1:6379");
    assert_eq!(v3["group"][0]["servers"][1]["server"], "127.0.0.1:6380");
    let v3_file = dir.0.join("v3.json");
    std::fs::write(&v3_file, &out).unwrap();
    let restore = format!("--config-restore={}", v3_file.display());
    // Restoring into the running dashboard's product is refused while it answers.
    let (code, _, err) = admin(&[&fs, &restore, "--product=adm", "--confirm"]);
    assert_eq!(code, 1);
    assert!(err.contains("locked by a running dashboard"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) = admin(&[&fs, &restore, "--product=new", "--confirm"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = admin(&[&fs, "--config-dump", "--product=new"]);
    let dump: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dump["slots"][0]["group_id"], 1);
    assert_eq!(dump["group"], v3["group"]);
    let (code, _, err) = admin(&[&fs, "--config-dump", "--product=nothing", "-1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no Codis 2 tree"), "{err}");
    std::fs::write(&v1_file, "{not json").unwrap();
    let (code, _, err) = admin(&[&format!("--config-convert={}", v1_file.display())]);
    assert_eq!(code, 1);
    assert!(err.starts_with("codis-admin: decode "), "{err}");
    // Shut the dashboard down through codis-admin: it exits and releases the lock.
    let (code, _, err) = admin(&[&d, "--shutdown"]);
    assert_eq!(code, 0, "{err}");
    let mut dash = dash;
    let deadline = Instant::now() + Duration::from_secs(10);
    while dash.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the dashboard did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, out, _) = admin(&[&fs, "--dashboard-list"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["dashboard"],
        ""
    );
}

/// The files in `deploy/` as the binaries read them: each example config through its real
/// loader with no unknown key, the fe's flags file through codis-fe's flag parser, and every
/// `ExecStart`/`ExecStartPre` of the systemd units through the binary's own flag parser, so
/// the examples cannot rot.
#[test]
fn deploy_examples_parse_with_the_real_loaders() {
    use clap::Parser as _;
    let deploy = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("../deploy");

    let dash = DashboardConfig::load_file(&deploy.join("dashboard.toml")).unwrap();
    dash.validate().unwrap();
    assert_eq!(dash.coordinator_name, "zookeeper");
    let text = std::fs::read_to_string(deploy.join("dashboard.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let known = DashboardConfig::keys();
    for key in table.keys() {
        assert!(known.contains(key), "dashboard.toml: unknown key {key}");
    }

    use dataplane::proxy::config::ProxyConfig;
    let text = std::fs::read_to_string(deploy.join("proxy.toml")).unwrap();
    assert_eq!(ProxyConfig::unknown_keys(&text), Vec::<String>::new());
    let proxy = ProxyConfig::load_file(&deploy.join("proxy.toml")).unwrap();
    proxy.validate().unwrap();
    assert_eq!(proxy.product_name, dash.product_name);

    let mut server = dataplane::config::Config::default();
    let warnings = server.load_file(&deploy.join("redis.conf")).unwrap();
    assert_eq!(
        warnings,
        Vec::<String>::new(),
        "redis.conf: keys codis-server ignores"
    );
    assert_eq!(server.get("port").as_deref(), Some("6379"));

    // codis-fe: KEY=VALUE lines; the flags in CODIS_FE_ARGS, split on spaces as systemd does.
    let env_text = std::fs::read_to_string(deploy.join("codis-fe.env")).unwrap();
    let env: std::collections::HashMap<&str, &str> = env_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .collect();
    assert!(env.contains_key("CODIS_FE_ADMIN_PASSWORD"));
    let fe_args = env["CODIS_FE_ARGS"];

    let units = deploy.join("systemd");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().replace("\\\n", " ");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            text.contains("Restart=on-failure"),
            "{name}: restart policy"
        );
        assert!(text.contains("LimitNOFILE="), "{name}: file limit");
        for line in text.lines() {
            let Some(cmd) = line
                .strip_prefix("ExecStart=")
                .or_else(|| line.strip_prefix("ExecStartPre="))
            else {
                continue;
            };
            let cmd = cmd.replace("$CODIS_FE_ARGS", fe_args).replace("%i", "6379");
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let bin = words[0].rsplit('/').next().unwrap();
            let checked = match bin {
                "codis-dashboard" => backend::dashboard::cli::DashboardArgs::try_parse_from(&words)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                "codis-proxy" => dataplane::proxy::cli::ProxyArgs::try_parse_from(&words)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                "codis-fe" => backend::fe::cli::FeArgs::try_parse_from(&words)
                    .map(|a| assert!(a.zookeeper.is_some() && a.db.is_some()))
                    .map_err(|e| e.to_string()),
                // redis-server's command line: [--test-config] CONFIG.
                // Its config's folder must be writable: CONFIG REWRITE (after the dashboard's
                // SLAVEOF) writes a temporary file there and renames it.
                "codis-server" => {
                    let conf = words.last().unwrap();
                    let folder = conf.rsplit_once('/').map_or("", |(d, _)| d);
                    let writable = text
                        .lines()
                        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
                        .flat_map(str::split_whitespace)
                        .any(|p| p.replace("%i", "6379") == folder);
                    if !conf.ends_with(".conf") {
                        Err(format!("no config file in {cmd}"))
                    } else if !writable {
                        Err(format!("{folder} is not in ReadWritePaths"))
                    } else {
                        Ok(())
                    }
                }
                other => Err(format!("unknown binary {other}")),
            };
            checked.unwrap_or_else(|e| panic!("{name}: {cmd}: {e}"));
            seen.push(bin.to_string());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        ["codis-dashboard", "codis-fe", "codis-proxy", "codis-server"]
    );
    // systemd deletes a unit's RuntimeDirectory when the unit stops: one each, or the others
    // lose their pid files.
    let mut runtime_dirs = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        runtime_dirs.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("RuntimeDirectory="))
                .flat_map(str::split_whitespace)
                .map(str::to_string),
        );
    }
    let count = runtime_dirs.len();
    runtime_dirs.sort();
    runtime_dirs.dedup();
    assert_eq!(
        runtime_dirs.len(),
        count,
        "shared RuntimeDirectory: {runtime_dirs:?}"
    );
    for f in ["keepalived/keepalived.conf", "keepalived/check-proxy.sh"] {
        assert!(deploy.join(f).is_file(), "{f}");
    }
}
