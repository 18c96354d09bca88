//! docs/OPERATIONS.md's deployment section, followed on loopback so the guide cannot rot
//! (issue 13): the `deploy/` example files with their hosts and ports moved to free loopback
//! ports, ZooKeeper, two codis-servers (the guide's 6379 and 6380 as master and replica),
//! codis-dashboard, codis-proxy finding the dashboard through ZooKeeper, codis-fe from the
//! example env file, a group made through the fe's REST API with a bearer token, the
//! rebalance preview then run, codis-admin's status reads, and `redis-benchmark -n 10000`
//! through the proxy. Each codis-admin, redis-cli, redis-benchmark and `$FE` curl command
//! line it runs is taken from OPERATIONS.md (with its hosts and ports moved), so the doc
//! cannot drift silently.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::support::{
    Proc, Resp, TempDir, free_port, http, start_zookeeper, wait_for, workspace_bin,
};

fn deploy(name: &str) -> String {
    let manifest: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let repo = manifest.parent().unwrap();
    std::fs::read_to_string(repo.join("deploy").join(name)).unwrap()
}

/// Replaces the value of `key` (a `key = value` TOML line or a `key value` redis.conf line).
fn set_line(text: &str, key: &str, line: &str) -> String {
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let word = l.split([' ', '=']).next().unwrap_or("");
            if !l.trim_start().starts_with('#') && word == key {
                found = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(
        found,
        "the example has no {key} line: the guide and deploy/ disagree"
    );
    out.join("\n") + "\n"
}

/// docs/OPERATIONS.md.
fn operations() -> String {
    let manifest: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    std::fs::read_to_string(manifest.parent().unwrap().join("docs/OPERATIONS.md")).unwrap()
}

/// A command line as docs/OPERATIONS.md prints it (the guide's hosts and ports), which the
/// doc must contain, so the doc cannot drift from what this test runs; returned with the
/// guide's addresses replaced by this test's (`subst`, in order).
fn documented(doc: &str, line: &str, subst: &[(&str, String)]) -> String {
    assert!(
        doc.contains(line),
        "docs/OPERATIONS.md no longer has `{line}`, which the guide test runs"
    );
    subst
        .iter()
        .fold(line.to_string(), |l, (from, to)| l.replace(from, to))
}

/// The doc's `curl ... [-X METHOD] [-d 'JSON' | -d @FILE] $FE[/path]` line: (method, path,
/// JSON body or `@FILE`).
fn doc_curl(doc: &str, line: &str, subst: &[(&str, String)]) -> (String, String, Option<String>) {
    let line = documented(doc, line, subst);
    let (args, path) = line.rsplit_once("$FE").expect("a $FE url");
    let body = args
        .split_once("-d ")
        .map(|(_, b)| b.trim().trim_matches('\'').to_string());
    let method = match args.split_once("-X ") {
        Some((_, m)) => m.split_whitespace().next().unwrap().to_string(),
        None if body.is_some() => "POST".into(),
        None => "GET".into(),
    };
    (method, path.trim().to_string(), body)
}

fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.out"));
    let out = std::fs::File::create(&log).unwrap();
    Proc::spawn(
        name,
        cmd.current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        vec![log],
    )
}

fn admin(args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("codis-admin"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn curl(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        cmd.args(["-d", &b.to_string()]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

#[test]
fn operations_guide_on_loopback() {
    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("guide");
    let dir = tmp.path();

    // 1. ZooKeeper.
    let zk_port = free_port();
    let zk_dir = dir.join("zookeeper");
    std::fs::create_dir_all(&zk_dir).unwrap();
    let _zk = start_zookeeper(zk_port, &zk_dir);
    let zk = format!("127.0.0.1:{zk_port}");

    // 4. codis-servers "6379" and "6380" from deploy/redis.conf.
    let mut servers = Vec::new();
    let mut server_ports = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let d = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut conf = deploy("redis.conf");
        conf = set_line(&conf, "bind", "bind 127.0.0.1");
        conf = set_line(&conf, "port", &format!("port {port}"));
        conf = set_line(&conf, "dir", &format!("dir {}", d.display()));
        conf = set_line(
            &conf,
            "pidfile",
            &format!("pidfile {}/redis.pid", d.display()),
        );
        conf = set_line(
            &conf,
            "logfile",
            &format!("logfile {}/redis.log", d.display()),
        );
        let path = d.join("redis.conf");
        std::fs::write(&path, conf).unwrap();
        let mut p = spawn(
            &format!("codis-server-{port}"),
            Command::new(workspace_bin("codis-server")).arg(&path),
            &d,
        );
        wait_for(
            &format!("codis-server {port}"),
            Duration::from_secs(20),
            || {
                assert!(p.alive(), "codis-server exited:\n{}", p.log_tail(20));
                Resp::connect(port).ok().map(drop)
            },
        );
        servers.push(p);
        server_ports.push(port);
    }

    // 2. codis-dashboard from deploy/dashboard.toml.
    let dash_port = free_port();
    let mut conf = deploy("dashboard.toml");
    conf = set_line(
        &conf,
        "coordinator_addr",
        &format!("coordinator_addr = \"{zk}\""),
    );
    conf = set_line(
        &conf,
        "admin_addr",
        &format!("admin_addr = \"127.0.0.1:{dash_port}\""),
    );
    let dash_conf = dir.join("dashboard.toml");
    std::fs::write(&dash_conf, conf).unwrap();
    let mut dashboard = spawn(
        "codis-dashboard",
        Command::new(workspace_bin("codis-dashboard"))
            .arg("--config")
            .arg(&dash_conf),
        dir,
    );
    wait_for("the dashboard", Duration::from_secs(60), || {
        assert!(
            dashboard.alive(),
            "dashboard exited:\n{}",
            dashboard.log_tail(20)
        );
        http(dash_port, "GET", "/topom")
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(drop)
    });
    let dash = format!("127.0.0.1:{dash_port}");

    // 3. codis-proxy from deploy/proxy.toml, online through ZooKeeper.
    let (proxy_port, proxy_admin) = (free_port(), free_port());
    let mut conf = deploy("proxy.toml");
    conf = set_line(
        &conf,
        "admin_addr",
        &format!("admin_addr = \"127.0.0.1:{proxy_admin}\""),
    );
    conf = set_line(
        &conf,
        "proxy_addr",
        &format!("proxy_addr = \"127.0.0.1:{proxy_port}\""),
    );
    conf = set_line(&conf, "jodis_addr", &format!("jodis_addr = \"{zk}\""));
    let proxy_conf = dir.join("proxy.toml");
    std::fs::write(&proxy_conf, conf).unwrap();
    let mut proxy = spawn(
        "codis-proxy",
        Command::new(workspace_bin("codis-proxy"))
            .arg("--config")
            .arg(&proxy_conf)
            .args(["--zookeeper", &zk]),
        dir,
    );
    wait_for("the proxy online", Duration::from_secs(30), || {
        assert!(proxy.alive(), "proxy exited:\n{}", proxy.log_tail(20));
        let (ok, out) = admin(&["--dashboard", &dash, "--proxy-status"]);
        (ok && out.contains(&format!("127.0.0.1:{proxy_port}"))).then_some(())
    });

    // 5. codis-fe with the flags of deploy/codis-fe.env.
    let env = deploy("codis-fe.env");
    let args_line = env
        .lines()
        .find_map(|l| l.strip_prefix("CODIS_FE_ARGS="))
        .expect("CODIS_FE_ARGS in deploy/codis-fe.env");
    let fe_port = free_port();
    let fe_args: Vec<String> = args_line
        .split_whitespace()
        .map(|a| {
            let (k, _) = a.split_once('=').unwrap_or((a, ""));
            match k {
                "--listen" => format!("--listen=127.0.0.1:{fe_port}"),
                "--zookeeper" => format!("--zookeeper={zk}"),
                "--assets-dir" => format!("--assets-dir={}", dir.join("assets").display()),
                "--db" => format!("--db={}", dir.join("fe.db").display()),
                "--pidfile" => format!("--pidfile={}", dir.join("fe.pid").display()),
                "--log" => format!("--log={}", dir.join("fe.log").display()),
                _ => a.to_string(),
            }
        })
        .collect();
    let password = "guide-admin-password";
    let mut fe = spawn(
        "codis-fe",
        Command::new(workspace_bin("codis-fe"))
            .args(&fe_args)
            .env("CODIS_FE_ADMIN_PASSWORD", password),
        dir,
    );
    let base = format!("http://127.0.0.1:{fe_port}");
    // A session for the admin, then a bearer token as the guide's curl lines use.
    let token = wait_for("codis-fe to log in", Duration::from_secs(30), || {
        assert!(fe.alive(), "codis-fe exited:\n{}", fe.log_tail(20));
        let jar_path = dir.join("cookies.txt");
        let out = Command::new("curl")
            .args(["-s", "-c"])
            .arg(&jar_path)
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(json!({"username": "admin", "password": password}).to_string())
            .arg(format!("{base}/api/v1/session"))
            .output()
            .ok()?;
        let me: Value = serde_json::from_slice(&out.stdout).ok()?;
        let jar = std::fs::read_to_string(&jar_path).ok()?;
        let cookie = jar
            .lines()
            .find_map(|l| {
                l.split('\t')
                    .nth(6)
                    .filter(|_| l.contains("codis_fe_session"))
            })?
            .to_string();
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("Cookie: codis_fe_session={cookie}")])
            .args([
                "-H",
                &format!("X-CSRF-Token: {}", me["csrf_token"].as_str()?),
            ])
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(json!({"name": "guide", "role": "operator", "products": ["*"]}).to_string())
            .arg(format!("{base}/api/v1/tokens"))
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["token"].as_str().map(str::to_string)
    });
    let product = "codis-product1";
    // The doc's command lines, with the guide's hosts and ports moved to this test's.
    let doc = operations();
    let subst: Vec<(&str, String)> = vec![
        ("http://192.168.188.125:9090", base.clone()),
        ("192.168.188.125:18080", dash.clone()),
        (
            "192.168.188.120:6379",
            format!("127.0.0.1:{}", server_ports[0]),
        ),
        (
            "192.168.188.121:6380",
            format!("127.0.0.1:{}", server_ports[1]),
        ),
        ("192.168.188.131", "127.0.0.1".into()),
        ("-p 19000", format!("-p {proxy_port}")),
        // 10 000 SETs and GETs, not the guide's million of every test.
        ("-n 1000000", "-n 10000".into()),
        ("-c 20 -d 100", "-c 20 -d 100 -t set,get".into()),
    ];
    let doc_admin = |line: &str| {
        let cmd = documented(&doc, line, &subst);
        let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        admin(&words)
    };
    let api = documented(
        &doc,
        "FE=http://192.168.188.125:9090/api/v1/products/codis-product1",
        &subst,
    )
    .trim_start_matches("FE=")
    .to_string();
    assert!(api.ends_with(product));
    wait_for(
        "codis-fe to find the product in ZooKeeper",
        Duration::from_secs(20),
        || {
            let (s, v) = curl("GET", &format!("{base}/api/v1/products"), &token, None);
            (s == 200
                && v["products"]
                    .as_array()?
                    .iter()
                    .any(|p| p["name"] == product && p["reachable"] == true))
            .then_some(())
        },
    );

    // 6. A group: master "6379", replica "6380", through the fe.
    for line in [
        r#"-d '{"group_id":1}' $FE/groups"#,
        r#"curl ... -d '{"addr":"192.168.188.120:6379"}' $FE/groups/1/servers"#,
        r#"curl ... -d '{"addr":"192.168.188.121:6380"}' $FE/groups/1/servers"#,
    ] {
        let (method, path, body) = doc_curl(&doc, line, &subst);
        let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
        let (s, v) = curl(&method, &format!("{api}{path}"), &token, Some(&body));
        assert_eq!(s, 200, "{line}: {v}");
    }
    wait_for(
        "the replica to replicate (--group-status)",
        Duration::from_secs(60),
        || {
            let (ok, out) =
                doc_admin("codis-admin --dashboard=192.168.188.125:18080 --group-status");
            (ok && !out.contains("[X]") && out.contains(&server_ports[1].to_string())).then_some(())
        },
    );

    // 7. Rebalance: codis-admin's preview, the fe's preview, then run exactly that plan.
    let (ok, out) = doc_admin("codis-admin --dashboard=192.168.188.125:18080 --rebalance ");
    assert!(ok && out.contains("[0000,1023] => 1"), "{out}");
    let (method, path, _) = doc_curl(&doc, "curl ... -X POST $FE/rebalance/preview", &subst);
    let (s, plan) = curl(&method, &format!("{api}{path}"), &token, None);
    assert_eq!(s, 200, "{plan}");
    let (method, path, body) = doc_curl(&doc, "curl ... -d @plan.json $FE/rebalance", &subst);
    assert_eq!(body.as_deref(), Some("@plan.json"));
    let (s, v) = curl(&method, &format!("{api}{path}"), &token, Some(&plan));
    assert_eq!(s, 200, "{v}");
    let (method, path, _) = doc_curl(&doc, "curl ... $FE ", &subst);
    wait_for("1024 slots assigned", Duration::from_secs(90), || {
        let (s, v) = curl(&method, &format!("{api}{path}"), &token, None);
        (s == 200 && v["summary"]["slots_offline"] == 0 && v["summary"]["slots_migrating"] == 0)
            .then_some(())
    });
    let (ok, out) = doc_admin("codis-admin --dashboard=192.168.188.125:18080 --slots-status");
    assert!(ok && out.contains("1023"), "{out}");

    // 9. Check through the proxy: SET/GET and redis-benchmark -n 10000.
    let run = |line: &str| {
        let cmd = documented(&doc, line, &subst);
        let words: Vec<&str> = cmd.split_whitespace().collect();
        Command::new(words[0])
            .args(&words[1..])
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    };
    let cli = |line: &str| {
        String::from_utf8_lossy(&run(line).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(cli("redis-cli -h 192.168.188.131 -p 19000 SET k v"), "OK");
    assert_eq!(cli("redis-cli -h 192.168.188.131 -p 19000 GET k"), "v");
    let out = run("redis-benchmark -h 192.168.188.131 -p 19000 -q -n 1000000 -c 20 -d 100");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    let (ok, out) = doc_admin("codis-admin --dashboard=192.168.188.125:18080 --proxy-status");
    assert!(ok && out.contains("[ ]"), "{out}");
    drop((servers, dashboard, proxy, fe));
}
