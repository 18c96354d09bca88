//! codis-fe as a real process over real product lines (issue 11's proof): two product lines on
//! a filesystem coordinator (their dashboards, codis-servers and a proxy each) and one on
//! ZooKeeper, registered through the API. Groups, servers, proxies and a rebalance go through
//! the fe and reach the dashboards; isolation refusals carry their messages; a violation made
//! behind the fe's back is reported; a killed dashboard makes only its product unreachable.
//! Then schemathesis fuzzes the API from its own OpenAPI document.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::{
    Proc, Reply, Resp, TempDir, free_port, http, start_codis_server, start_dashboard,
    start_proxy_on, start_zookeeper, wait_for, workspace_bin,
};

pub(super) const ADMIN_PW: &str = "fe-e2e-admin-pw";

/// A logged-in client of the fe's API (cookie + CSRF token, or a bearer token).
pub(super) struct Fe {
    port: u16,
    auth: Vec<(String, String)>,
}

fn raw_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to codis-fe");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let resp = String::from_utf8_lossy(&resp).to_string();
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

impl Fe {
    pub(super) fn login(port: u16) -> Fe {
        let (status, head, body) = raw_http(
            port,
            "POST",
            "/api/v1/session",
            &[],
            &json!({"username": "admin", "password": ADMIN_PW}).to_string(),
        );
        assert_eq!(status, 200, "login: {body}");
        let cookie = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let me: Value = serde_json::from_str(&body).unwrap();
        Fe {
            port,
            auth: vec![
                ("Cookie".into(), cookie),
                (
                    "X-CSRF-Token".into(),
                    me["csrf_token"].as_str().unwrap().to_string(),
                ),
            ],
        }
    }

    pub(super) fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, _, body) = raw_http(self.port, method, path, &self.auth, &text);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub(super) fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    pub(super) fn product(&self, name: &str) -> Option<Value> {
        let (_, v) = self.call("GET", "/api/v1/products", None);
        v["products"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }
}

/// A dashboard over the filesystem coordinator at `root`.
pub(super) fn start_fs_dashboard(product: &str, root: &Path, port: u16, dir: &Path) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("dashboard.toml");
    std::fs::write(
        &conf,
        format!(
            "coordinator_name = \"filesystem\"\ncoordinator_addr = \"{}\"\n\
             product_name = \"{product}\"\nproduct_auth = \"\"\nadmin_addr = \"127.0.0.1:{port}\"\n",
            root.display()
        ),
    )
    .unwrap();
    let out_path = dir.join("dashboard.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut proc = Proc::spawn(
        format!("codis-dashboard:{product}"),
        Command::new(workspace_bin("codis-dashboard"))
            .arg("--config")
            .arg(&conf)
            .current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        vec![out_path],
    );
    wait_for(
        &format!("dashboard {product} on {port}"),
        Duration::from_secs(60),
        || {
            assert!(
                proc.alive(),
                "codis-dashboard {product} exited:\n{}",
                proc.log_tail(30)
            );
            http(port, "GET", "/topom")
                .ok()
                .filter(|(s, _)| *s == 200)
                .map(drop)
        },
    );
    proc
}

pub(super) fn start_fe(root: &Path, dir: &Path, port: u16) -> Proc {
    start_fe_with(root, dir, port, &dir.join("assets"))
}

/// codis-fe serving the web UI from `assets`.
pub(super) fn start_fe_with(root: &Path, dir: &Path, port: u16, assets: &Path) -> Proc {
    let out_path = dir.join("fe.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut proc = Proc::spawn(
        "codis-fe",
        Command::new(workspace_bin("codis-fe"))
            .arg("--filesystem")
            .arg(root)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--db")
            .arg(dir.join("fe.db"))
            .args(["--poll-interval", "0.5", "--assets-dir"])
            .arg(assets)
            .env("CODIS_FE_ADMIN_PASSWORD", ADMIN_PW)
            .current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        vec![out_path],
    );
    wait_for("codis-fe to listen", Duration::from_secs(30), || {
        assert!(proc.alive(), "codis-fe exited:\n{}", proc.log_tail(30));
        TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
    });
    proc
}

#[test]
fn fe_manages_product_lines_on_real_dashboards() {
    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("fe");
    let root = tmp.path().join("coordinator");
    std::fs::create_dir_all(&root).unwrap();

    let (_s1, p1) = start_codis_server(tmp.path());
    let (_s2, p2) = start_codis_server(tmp.path());
    let (_s3, p3) = start_codis_server(tmp.path());
    let (_s4, p4) = start_codis_server(tmp.path());

    let shop_port = free_port();
    let _shop = start_fs_dashboard("shop", &root, shop_port, &tmp.path().join("shop"));
    let ads_port = free_port();
    let mut ads = start_fs_dashboard("ads", &root, ads_port, &tmp.path().join("ads"));
    let zk_port = free_port();
    let zk_dir = tmp.path().join("zk");
    std::fs::create_dir_all(&zk_dir).unwrap();
    let _zk = start_zookeeper(zk_port, &zk_dir);
    let zkp_port = free_port();
    let zkp_dir = tmp.path().join("zkp");
    std::fs::create_dir_all(&zkp_dir).unwrap();
    let _zkp = start_dashboard("zkp", zk_port, zkp_port, &zkp_dir);

    let fe_port = free_port();
    let _fe = start_fe(&root, tmp.path(), fe_port);
    let fe = Fe::login(fe_port);

    // The ZooKeeper product line is registered by hand; the two others are found.
    fe.ok(
        "POST",
        "/api/v1/products",
        Some(json!({"name": "zkp", "dashboard": format!("127.0.0.1:{zkp_port}")})),
    );
    wait_for(
        "three reachable product lines",
        Duration::from_secs(20),
        || {
            ["shop", "ads", "zkp"]
                .iter()
                .all(|n| fe.product(n).is_some_and(|p| p["reachable"] == true))
                .then_some(())
        },
    );
    assert_eq!(fe.product("zkp").unwrap()["source"], "registered");
    assert_eq!(fe.product("shop").unwrap()["source"], "coordinator");

    // shop: two groups with a server each, a proxy, and a rebalance, all through the fe.
    let s = |p: u16| format!("127.0.0.1:{p}");
    fe.ok(
        "POST",
        "/api/v1/products/shop/groups",
        Some(json!({"group_id": 1})),
    );
    fe.ok(
        "POST",
        "/api/v1/products/shop/groups/1/servers",
        Some(json!({"addr": s(p1)})),
    );
    fe.ok(
        "POST",
        "/api/v1/products/shop/groups",
        Some(json!({"group_id": 2})),
    );
    fe.ok(
        "POST",
        "/api/v1/products/shop/groups/2/servers",
        Some(json!({"addr": s(p2)})),
    );
    let shop_stats = support_stats(shop_port, "shop");
    let groups = shop_stats["group"]["models"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{shop_stats}");
    assert_eq!(groups[0]["servers"][0]["server"], s(p1));
    let proxy = start_proxy_on("shop", None, free_port(), free_port(), tmp.path());
    fe.ok(
        "POST",
        "/api/v1/products/shop/proxies",
        Some(json!({"addr": format!("127.0.0.1:{}", proxy.admin)})),
    );
    let plan = fe.ok("POST", "/api/v1/products/shop/rebalance/preview", None);
    assert_eq!(plan["plan"].as_object().unwrap().len(), 1024, "{plan}");
    fe.ok("POST", "/api/v1/products/shop/rebalance", Some(plan));
    wait_for("shop's slots assigned", Duration::from_secs(60), || {
        let p = fe.product("shop")?;
        (p["slots_offline"] == 0 && p["slots_migrating"] == 0 && p["proxies_up"] == 1).then_some(())
    });
    let mut c = Resp::connect(proxy.port).unwrap();
    for i in 0..50 {
        let k = format!("k{i}");
        c.call(&[b"SET", k.as_bytes(), b"v"]).unwrap();
    }
    assert_eq!(c.call(&[b"GET", b"k7"]).unwrap(), Reply::bulk(b"v"));
    wait_for("shop's keys counted", Duration::from_secs(10), || {
        (fe.product("shop")?["keys"].as_i64()? == 50).then_some(())
    });
    let detail = fe.ok("GET", "/api/v1/products/shop", None);
    assert_eq!(detail["summary"]["groups"], 2);
    assert_eq!(
        detail["topom"]["stats"]["proxy"]["models"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // ads: one group; isolation refusals name the other product line.
    fe.ok(
        "POST",
        "/api/v1/products/ads/groups",
        Some(json!({"group_id": 1})),
    );
    fe.ok(
        "POST",
        "/api/v1/products/ads/groups/1/servers",
        Some(json!({"addr": s(p3)})),
    );
    let (status, v) = fe.call(
        "POST",
        "/api/v1/products/ads/groups/1/servers",
        Some(json!({"addr": format!("localhost:{p1}")})),
    );
    assert_eq!(status, 409, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("master of group 1 in product \"shop\""),
        "role mismatch: {msg}"
    );
    fe.ok(
        "PUT",
        "/api/v1/products/shop/isolation",
        Some(json!({"mode": "physical"})),
    );
    fe.ok(
        "POST",
        "/api/v1/products/ads/groups",
        Some(json!({"group_id": 2})),
    );
    let (status, v) = fe.call(
        "POST",
        "/api/v1/products/ads/groups/2/servers",
        Some(json!({"addr": s(p2)})),
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("\"shop\" is physically isolated"),
        "{v}"
    );
    let (status, _) = fe.call(
        "POST",
        "/api/v1/products/zkp/groups",
        Some(json!({"group_id": 1})),
    );
    assert_eq!(status, 200);
    fe.ok(
        "POST",
        "/api/v1/products/zkp/groups/1/servers",
        Some(json!({"addr": s(p4)})),
    );

    // A violation made on a dashboard directly, behind the fe's back, is reported.
    let xauth = codis_model::auth::dashboard_xauth("ads");
    let (status, body) = http(
        ads_port,
        "PUT",
        &format!("/api/topom/group/add/{xauth}/2/{}", s(p2)),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the violation in the report",
        Duration::from_secs(10),
        || {
            let (_, r) = fe.call("GET", "/api/v1/isolation", None);
            r["violations"]
                .as_array()?
                .iter()
                .any(|v| v["rule"] == "physical" && v["server"] == s(p2))
                .then_some(())
        },
    );
    assert_eq!(fe.product("shop").unwrap()["violations"], 1);

    // Every change above left one completed audit row.
    let (_, audit) = fe.call(
        "GET",
        "/api/v1/audit?product=shop&action=group.&limit=100",
        None,
    );
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{audit}");
    assert!(
        items
            .iter()
            .all(|i| i["outcome"] == "ok" && i["actor"] == "user:admin")
    );

    // schemathesis, from the fe's own OpenAPI document, with an operator token on every
    // product line (every dashboard up: a dead one's 502 is the documented answer, but a
    // server error all the same to schemathesis): no 5xx, no undocumented status, no reply that contradicts the schema.
    let token = fe.ok(
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "fuzz", "role": "operator", "products": ["*"]})),
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new("schemathesis")
        .arg("run")
        .arg(format!("http://127.0.0.1:{fe_port}/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "15"])
        .args(["--workers", "1", "--request-timeout", "30"])
        .output()
        .expect("schemathesis is needed (pip install schemathesis; scripts/test.sh installs it)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");

    // A killed dashboard: its product line is unreachable within seconds, the others answer.
    ads.kill();
    wait_for("ads unreachable", Duration::from_secs(10), || {
        let p = fe.product("ads")?;
        (p["reachable"] == false && p["error"].as_str()?.contains("unreachable")).then_some(())
    });
    let started = Instant::now();
    assert_eq!(fe.call("GET", "/api/v1/products/shop", None).0, 200);
    let (status, v) = fe.call(
        "POST",
        "/api/v1/products/ads/groups",
        Some(json!({"group_id": 3})),
    );
    assert_eq!(status, 502, "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fe.product("shop").unwrap()["reachable"], true);
}

fn support_stats(port: u16, product: &str) -> Value {
    let xauth = codis_model::auth::dashboard_xauth(product);
    let (status, body) = http(port, "GET", &format!("/api/topom/stats/{xauth}")).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
