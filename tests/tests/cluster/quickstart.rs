//! The README's first command as a new user runs it (issue 13's proof): `scripts/cluster.sh`
//! from a fresh clone, on free ports, until its ready line; keys through both proxies with
//! redis-cli; both product lines healthy in the fe's API; SIGTERM (then SIGINT) leaves no
//! process and no port behind; a second start on the same data folder finds the same keys,
//! audit history and isolation modes. Before that: a port in use is named, a bad port
//! variable is one line.
//!
//! The binaries are the ones this test run built (`CODIS_BIN_DIR`), so the clone is not
//! compiled a second time; everything else is the clone's own script.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::{TempDir, workspace_bin};

/// `n` consecutive free ports below the ephemeral range (outgoing connections take ports
/// there, which the script's port check would find taken).
fn free_range(n: u16) -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = u16::try_from(std::process::id() % 5000).unwrap_or(0);
    for _ in 0..500 {
        let step = NEXT.fetch_add(n + 1, std::sync::atomic::Ordering::Relaxed);
        let base = 21_000 + (seed * 2 + step) % 9_000;
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

struct Platform {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGINT first (the script stops what it started), then make sure.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(clone: &Path, data: &Path, env: &[(String, String)]) -> Platform {
    let bin_dir = workspace_bin("codis-fe").parent().unwrap().to_path_buf();
    let mut cmd = Command::new("bash");
    cmd.arg(clone.join("scripts/cluster.sh"))
        .arg("--data")
        .arg(data)
        .current_dir(clone)
        .env("CODIS_BIN_DIR", &bin_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The bundle scripts/test.sh built (CODIS_UI_DIST, else where xtask puts it).
    let ui = std::env::var("CODIS_UI_DIST").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
                .join("../target")
                .display()
                .to_string()
        });
        format!("{target}/ui-dist")
    });
    assert!(
        Path::new(&ui).join("index.html").is_file(),
        "the web UI bundle is missing in {ui}: cargo run -p xtask -- dist {ui}"
    );
    cmd.env("CODIS_UI_DIR", ui);
    let mut child = cmd.spawn().expect("bash scripts/cluster.sh");
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                let _ = tx.send(line);
            }
        });
    }
    Platform { child, lines }
}

impl Platform {
    /// Waits for the script to exit by itself: its status and every line it printed.
    fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "scripts/cluster.sh did not exit");
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader threads end with the pipes.
        let mut seen = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            seen.push(l);
        }
        (status, seen.join("\n"))
    }

    /// Sends `signal` and waits until the script has stopped everything; its exit code.
    fn stop(&mut self, signal: &str) -> Option<i32> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the script did not stop on SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_ready(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no ready line in 240 s:\n{}",
                seen.join("\n")
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(l) = self.lines.try_recv() {
                    seen.push(l);
                }
                panic!("scripts/cluster.sh exited ({status}):\n{}", seen.join("\n"));
            }
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(500)))
            {
                let ready = line.starts_with("codis-rs platform is ready");
                seen.push(line);
                if ready {
                    // The lines after it (URLs, redis-cli) come at once.
                    std::thread::sleep(Duration::from_millis(300));
                    while let Ok(l) = self.lines.try_recv() {
                        seen.push(l);
                    }
                    return seen;
                }
            }
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is needed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fe_products(port: u16, password: &str) -> serde_json::Value {
    fe_get(port, password, "/api/v1/products")
}

/// GET `path` of the fe's REST API as the admin.
fn fe_get(port: u16, password: &str, path: &str) -> serde_json::Value {
    let body = json!({"username": "admin", "password": password}).to_string();
    let out = Command::new("curl")
        .args([
            "-sf",
            "-c",
            "-",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ])
        .arg(format!("http://127.0.0.1:{port}/api/v1/session"))
        .output()
        .expect("curl");
    let jar = String::from_utf8_lossy(&out.stdout).to_string();
    let cookie = jar
        .lines()
        .find_map(|l| {
            l.split('\t')
                .nth(6)
                .filter(|_| l.contains("codis_fe_session"))
        })
        .expect("a session cookie")
        .to_string();
    let out = Command::new("curl")
        .args([
            "-sf",
            "--noproxy",
            "*",
            "-H",
            &format!("Cookie: codis_fe_session={cookie}"),
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn readme_first_command_starts_stops_and_restarts_the_platform() {
    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("quickstart");
    let clone = tmp.path().join("clone");
    let manifest: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let repo = manifest.parent().unwrap();
    let st = Command::new("git")
        .args(["clone", "-q", "--no-hardlinks"])
        .arg(repo)
        .arg(&clone)
        .status()
        .expect("git");
    assert!(st.success(), "git clone of the workspace failed");
    let data = tmp.path().join("data");
    let base = free_range(6);
    let others = free_range(7);
    let ports: Vec<(String, u16)> = [
        "FE_PORT",
        "P1_DASHBOARD_PORT",
        "P2_DASHBOARD_PORT",
        "P1_PROXY_PORT",
        "P2_PROXY_PORT",
        "P1_PROXY_ADMIN_PORT",
        "P2_PROXY_ADMIN_PORT",
    ]
    .iter()
    .zip(others..)
    .map(|(k, p)| (k.to_string(), p))
    .collect();
    let port = |k: &str| ports.iter().find(|(n, _)| n == k).unwrap().1;
    let mut env: Vec<(String, String)> = ports
        .iter()
        .map(|(k, p)| (k.clone(), p.to_string()))
        .collect();
    env.push(("SERVER_BASE_PORT".into(), base.to_string()));
    let password = "quickstart-password";
    env.push(("CODIS_FE_ADMIN_PASSWORD".into(), password.into()));
    let all_ports: Vec<u16> = ports
        .iter()
        .map(|(_, p)| *p)
        .chain(base..base + 6)
        .collect();

    // A port in use is named before anything starts; a port variable that is no number is
    // one line, not a Python traceback.
    let holder = TcpListener::bind(("127.0.0.1", port("P2_PROXY_PORT"))).unwrap();
    let (status, out) = start(&clone, &data, &env).wait_exit();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "port {} (product2 proxy) is already in use",
            port("P2_PROXY_PORT")
        )),
        "{out}"
    );
    drop(holder);
    let mut bad_env = env.clone();
    bad_env.push(("FE_PORT".into(), "abc".into()));
    let (status, out) = start(&clone, &data, &bad_env).wait_exit();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("FE_PORT='abc' is not a valid port"), "{out}");
    assert!(!out.contains("Traceback"), "{out}");

    let mut p = start(&clone, &data, &env);
    let lines = p.wait_ready().join("\n");
    assert!(
        lines.contains(&format!("http://127.0.0.1:{}/", port("FE_PORT"))),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("redis-cli -p {}", port("P1_PROXY_PORT"))),
        "{lines}"
    );
    assert!(
        lines.contains(password),
        "the admin login is printed: {lines}"
    );
    let (p1, p2) = (port("P1_PROXY_PORT"), port("P2_PROXY_PORT"));
    assert_eq!(redis_cli(p1, &["SET", "qs:one", "1"]), "OK");
    assert_eq!(redis_cli(p2, &["SET", "qs:two", "2"]), "OK");
    assert_eq!(redis_cli(p1, &["GET", "qs:one"]), "1");
    assert_eq!(redis_cli(p2, &["GET", "qs:two"]), "2");
    assert_eq!(redis_cli(p1, &["GET", "product1:sample:1"]), "value 1");
    // The console is served: the page and its WebAssembly.
    for path in ["/", "/frontend_bg.wasm", "/products/product1/slots"] {
        let out = Command::new("curl")
            .args([
                "-s",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://127.0.0.1:{}{path}", port("FE_PORT")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "GET {path}");
    }
    let products = fe_products(port("FE_PORT"), password);
    for name in ["product1", "product2"] {
        let prod = products["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {products}"));
        assert_eq!(prod["reachable"], true, "{prod}");
        assert_eq!(prod["masters_down"], 0, "{prod}");
        assert_eq!(prod["replicas_out_of_sync"], 0, "{prod}");
        assert_eq!(prod["slots_offline"], 0, "{prod}");
    }

    let audit_ids = |v: &serde_json::Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect()
    };
    let first_audit = audit_ids(&fe_get(
        port("FE_PORT"),
        password,
        "/api/v1/audit?limit=1000",
    ));
    assert!(
        !first_audit.is_empty(),
        "the first start left no audit rows"
    );

    // SIGTERM: every process and port goes away.
    assert_eq!(p.stop("TERM"), Some(143));
    for port in &all_ports {
        assert!(
            TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "port {port} still answers after SIGTERM"
        );
    }
    let leftover = Command::new("pgrep")
        .arg("-f")
        .arg(data.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
    drop(p);

    // Again on the same data: same keys.
    let mut p = start(&clone, &data, &env);
    let lines = p.wait_ready().join("\n");
    assert!(lines.contains("restarted on the same data"), "{lines}");
    assert_eq!(redis_cli(p1, &["GET", "qs:one"]), "1");
    assert_eq!(redis_cli(p2, &["GET", "qs:two"]), "2");
    let again = fe_products(port("FE_PORT"), password);
    assert_eq!(again["products"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(
        again["products"][0]["groups"].as_i64().unwrap()
            + again["products"][1]["groups"].as_i64().unwrap(),
        3,
        "same groups: {again}"
    );
    let audit = audit_ids(&fe_get(
        port("FE_PORT"),
        password,
        "/api/v1/audit?limit=1000",
    ));
    for id in &first_audit {
        assert!(
            audit.contains(id),
            "audit row {id} of the first run is gone"
        );
    }
    let modes = fe_get(port("FE_PORT"), password, "/api/v1/isolation");
    assert_eq!(modes["modes"]["product1"], "physical", "{modes}");
    assert_eq!(modes["modes"]["product2"], "logical", "{modes}");
    // SIGINT this time.
    assert_eq!(p.stop("INT"), Some(130));
    drop(p);
    let leftover = Command::new("pgrep")
        .arg("-f")
        .arg(data.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
}

/// Ctrl-C or SIGTERM while `scripts/cluster.sh` builds stops the whole build, not only cargo
/// (a background job of a script ignores SIGINT, so rustc used to keep running), and the
/// script exits 130 / 143. A fake `cargo` on PATH stands in for the build: it starts a child
/// (its "rustc") and waits.
#[test]
fn cluster_sh_interrupted_build_stops_cargo_and_its_children() {
    let tmp = TempDir::new("quickstart-build");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("cargo");
    std::fs::write(
        &fake,
        "#!/bin/sh\nsleep 1000 &\necho $! > \"$FAKE_RUSTC_PID.tmp\"\n\
         mv \"$FAKE_RUSTC_PID.tmp\" \"$FAKE_RUSTC_PID\"\nwait\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let manifest: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let script = manifest.parent().unwrap().join("scripts/cluster.sh");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (signal, want) in [("INT", 130), ("TERM", 143)] {
        let pid_file = tmp.path().join(format!("rustc-{signal}.pid"));
        let mut child = Command::new("bash")
            .arg(&script)
            .args(["--data", &tmp.path().join("data").display().to_string()])
            .env_remove("CODIS_BIN_DIR")
            .env("CODIS_UI_DIR", tmp.path().join("no-ui"))
            .env("FAKE_RUSTC_PID", &pid_file)
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pid_file.exists() {
            assert!(Instant::now() < deadline, "the fake cargo never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let rustc = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("scripts/cluster.sh did not stop on SIG{signal} during the build");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(want), "exit status after SIG{signal}");
        // Gone, or a zombie waiting for a reaper that is not ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{rustc}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if stat.is_empty() || state == Some('Z') {
                break;
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill").arg(&rustc).status();
                panic!("the build's child {rustc} survived SIG{signal} (state {state:?})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
