//! Processes, scratch directories, and tiny blocking HTTP and RESP clients for the
//! whole-cluster test. Every process is started on 127.0.0.1 (free ports) and killed on drop;
//! every directory is removed on drop. Missing binaries FAIL the test: nothing here skips.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Scratch directories, ports, binaries

/// A fresh directory under cargo's target tmpdir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago, never the same one twice in this process.
pub(crate) fn free_port() -> u16 {
    static ISSUED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut issued = ISSUED.lock().unwrap();
        if !issued.contains(&port) {
            issued.push(port);
            return port;
        }
    }
}

/// One of the workspace's binaries, next to this test binary's `deps/` directory.
pub(crate) fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`, which \
         builds every binary) first",
        bin.display()
    );
    bin
}

/// `name` on PATH, or a failure naming the package to install.
pub(crate) fn require_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found on PATH: install it with `apt-get install -y {package}`")
        })
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `within`.
pub(crate) fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process, SIGKILLed and reaped on drop. When the test is failing, the tail of its
/// logs is printed first.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Option<Child>,
    /// Files whose names start with one of these paths are its logs.
    logs: Vec<PathBuf>,
}

impl Proc {
    pub(crate) fn spawn(name: impl Into<String>, cmd: &mut Command, logs: Vec<PathBuf>) -> Proc {
        let name = name.into();
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            name,
            child: Some(child),
            logs,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last `lines` lines of each of its log files.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for base in &self.logs {
            let (Some(dir), Some(stem)) = (base.parent(), base.file_name()) else {
                continue;
            };
            let stem = stem.to_string_lossy().to_string();
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&stem))
                })
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let from = all.len().saturating_sub(lines);
                out.push_str(&format!("---- {} ({}) ----\n", self.name, f.display()));
                for l in &all[from..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(40));
        }
        self.kill();
    }
}

/// Sends `request`, returns whatever comes back within a second ("" if nothing answers).
pub(crate) fn tcp_exchange(port: u16, request: &[u8]) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = String::new();
    if stream.write_all(request).is_ok() {
        let _ = stream.read_to_string(&mut reply);
    }
    reply
}

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// Starts a standalone ZooKeeper (Debian's, STACK.md §4) on `port` with its data in `dir`
/// (so that a restart on the same port and directory finds its data), and waits for `imok`.
pub(crate) fn start_zookeeper(port: u16, dir: &Path) -> Proc {
    let java = require_binary("java", "zookeeper");
    assert!(
        Path::new(ZOOKEEPER_JAR).is_file(),
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} missing): apt-get install -y zookeeper"
    );
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=1000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n",
            data.display()
        ),
    )
    .unwrap();
    let log_path = dir.join("zk.out");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut proc = Proc::spawn(
        "zookeeper",
        Command::new(java)
            .arg("-Xmx256m")
            .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
            .args(["-cp", &format!("/etc/zookeeper/conf:{ZOOKEEPER_JAR}")])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log),
        vec![log_path],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            proc.alive(),
            "zookeeper exited at start on port {port}:\n{}",
            proc.log_tail(40)
        );
        if tcp_exchange(port, b"ruok") == "imok" {
            return proc;
        }
        assert!(
            Instant::now() < deadline,
            "zookeeper did not answer ruok on port {port} in 30 s:\n{}",
            proc.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a Debian redis-sentinel with no monitored master (the dashboard configures it).
pub(crate) fn start_sentinel(dir: &Path) -> (Proc, u16) {
    let bin = require_binary("redis-sentinel", "redis-sentinel");
    let port = free_port();
    let sdir = dir.join(format!("sentinel-{port}"));
    std::fs::create_dir_all(&sdir).unwrap();
    let conf = sdir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\n",
            sdir.display()
        ),
    )
    .unwrap();
    let log_path = sdir.join("sentinel.out");
    let log = std::fs::File::create(&log_path).unwrap();
    let proc = Proc::spawn(
        format!("redis-sentinel:{port}"),
        Command::new(bin)
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log),
        vec![log_path],
    );
    wait_for("redis-sentinel listening", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
    });
    (proc, port)
}

/// Starts a codis-server in `dir` on a free port; returns it and its port.
pub(crate) fn start_codis_server(dir: &Path) -> (Proc, u16) {
    for _attempt in 0..5 {
        let port = free_port();
        if let Some(proc) = start_codis_server_on(dir, port) {
            return (proc, port);
        }
    }
    panic!("codis-server: no free port after 5 attempts");
}

/// Starts a codis-server on `port` (in `dir`, without save points); `None` when it did not
/// come up there (the port was taken).
pub(crate) fn start_codis_server_on(dir: &Path, port: u16) -> Option<Proc> {
    start_codis_server_args(dir, port, &[])
}

/// Like [`start_codis_server_on`], with more command-line arguments (`extra`).
pub(crate) fn start_codis_server_args(dir: &Path, port: u16, extra: &[&str]) -> Option<Proc> {
    let log_path = dir.join(format!("server-{port}-{}.out", free_port()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut proc = Proc::spawn(
        format!("codis-server:{port}"),
        Command::new(workspace_bin("codis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--loglevel", "warning"])
            // No save points: several servers share `dir`.
            .args(["--save", ""])
            .args(extra)
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log),
        vec![log_path],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.alive() && Instant::now() < deadline {
        // Make sure the server answering is the one we started (the port may have been
        // taken by someone else between choosing and binding it).
        if server_pid(port) == Some(proc.pid()) {
            return Some(proc);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "codis-server did not start on port {port} (taken?):\n{}",
        proc.log_tail(10)
    );
    None
}

/// The `process_id` (INFO server) of the server answering on `port`, if one answers.
fn server_pid(port: u16) -> Option<u32> {
    let mut c = Resp::connect(port).ok()?;
    let Reply::Bulk(Some(info)) = c.call(&[b"INFO", b"server"]).ok()? else {
        return None;
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Starts codis-dashboard on `admin_port` against ZooKeeper on `zk_port`; waits until its
/// HTTP API answers.
pub(crate) fn start_dashboard(product: &str, zk_port: u16, admin_port: u16, dir: &Path) -> Proc {
    start_dashboard_with(product, zk_port, admin_port, dir, "")
}

/// Like [`start_dashboard`], with more `dashboard.toml` lines (`extra`).
pub(crate) fn start_dashboard_with(
    product: &str,
    zk_port: u16,
    admin_port: u16,
    dir: &Path,
    extra: &str,
) -> Proc {
    start_dashboard_method(product, zk_port, admin_port, dir, "semi-async", extra)
}

/// Like [`start_dashboard_with`], migrating slots with `method` (`sync` or `semi-async`).
pub(crate) fn start_dashboard_method(
    product: &str,
    zk_port: u16,
    admin_port: u16,
    dir: &Path,
    method: &str,
    extra: &str,
) -> Proc {
    let conf = dir.join("dashboard.toml");
    std::fs::write(
        &conf,
        format!(
            "coordinator_name = \"zookeeper\"\ncoordinator_addr = \"127.0.0.1:{zk_port}\"\n\
             product_name = \"{product}\"\nproduct_auth = \"\"\n\
             admin_addr = \"127.0.0.1:{admin_port}\"\n\
             migration_method = \"{method}\"\nmigration_parallel_slots = 100\n{extra}"
        ),
    )
    .unwrap();
    let log = dir.join("dashboard.log");
    let out_path = dir.join("dashboard.out");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .unwrap();
    let mut proc = Proc::spawn(
        "codis-dashboard",
        Command::new(workspace_bin("codis-dashboard"))
            .arg("--config")
            .arg(&conf)
            .args(["--zookeeper", &format!("127.0.0.1:{zk_port}")])
            .args(["--product_name", product, "--log-level", "info", "--log"])
            .arg(&log)
            .current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        vec![log, out_path],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            proc.alive(),
            "codis-dashboard exited at start:\n{}",
            proc.log_tail(40)
        );
        if http(admin_port, "GET", "/topom").is_ok_and(|(status, _)| status == 200) {
            return proc;
        }
        assert!(
            Instant::now() < deadline,
            "codis-dashboard did not answer on {admin_port} in 60 s:\n{}",
            proc.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A codis-proxy, going online the Codis way: it finds the dashboard in ZooKeeper.
#[derive(Debug)]
pub(crate) struct ProxyProc {
    pub(crate) proc: Proc,
    pub(crate) port: u16,
    pub(crate) admin: u16,
}

pub(crate) fn start_proxy(product: &str, zk_port: u16, dir: &Path) -> ProxyProc {
    start_proxy_on(product, Some(zk_port), free_port(), free_port(), dir)
}

/// Starts a codis-proxy on the given ports; with `zk_port` it finds the dashboard in
/// ZooKeeper and asks to be taken online, without it it waits for the dashboard to start it.
pub(crate) fn start_proxy_on(
    product: &str,
    zk_port: Option<u16>,
    port: u16,
    admin: u16,
    dir: &Path,
) -> ProxyProc {
    let conf = dir.join(format!("proxy-{port}.toml"));
    std::fs::write(
        &conf,
        format!(
            "product_name = \"{product}\"\nproduct_auth = \"\"\n\
             proxy_addr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:{admin}\"\n"
        ),
    )
    .unwrap();
    let out_path = dir.join(format!("proxy-{port}-{}.out", free_port()));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(workspace_bin("codis-proxy"));
    cmd.arg("--config").arg(&conf);
    if let Some(zk_port) = zk_port {
        cmd.args(["--zookeeper", &format!("127.0.0.1:{zk_port}")]);
    }
    let mut proc = Proc::spawn(
        format!("codis-proxy:{port}"),
        cmd.args(["--log-level", "warn"])
            .current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out),
        vec![out_path],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(proc.alive(), "codis-proxy exited:\n{}", proc.log_tail(40));
        assert!(
            Instant::now() < deadline,
            "codis-proxy admin port {admin} never opened:\n{}",
            proc.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ProxyProc { proc, port, admin }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A minimal HTTP/1.1 call (`Connection: close`): returns (status, body).
pub(crate) fn http(port: u16, method: &str, path: &str) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp).to_string();
    let status = resp
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad HTTP response: {resp:?}")))?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// Dashboard API and INFO

/// The dashboard's REST API as the whole-cluster tests drive it.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    pub(crate) port: u16,
    /// The product's token (`codis_model::auth::dashboard_xauth`).
    pub(crate) xauth: String,
}

impl Dashboard {
    /// `/api/topom/<p>` with `/X` replaced by the xauth.
    fn path(&self, p: &str) -> String {
        format!(
            "/api/topom/{}",
            p.replace("/X", &format!("/{}", self.xauth))
        )
    }

    /// `PUT`: (status, body), or the I/O error while the dashboard is down.
    pub(crate) fn try_put(&self, p: &str) -> Result<(u16, String), String> {
        http(self.port, "PUT", &self.path(p)).map_err(|e| e.to_string())
    }

    /// `PUT`; must answer 200 with JSON, which it returns.
    pub(crate) fn put(&self, p: &str) -> serde_json::Value {
        let (status, body) = self.try_put(p).unwrap_or_else(|e| panic!("PUT {p}: {e}"));
        assert_eq!(status, 200, "PUT {p}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("PUT {p}: {e}: {body}"))
    }

    /// `GET stats/X`, if it answers 200 with JSON.
    pub(crate) fn try_stats(&self) -> Result<serde_json::Value, String> {
        let (status, body) =
            http(self.port, "GET", &self.path("stats/X")).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// `GET stats/X`, waiting up to 30 s for the dashboard to answer.
    pub(crate) fn stats(&self) -> serde_json::Value {
        wait_for("dashboard stats", Duration::from_secs(30), || {
            self.try_stats().ok()
        })
    }
}

/// (group, action state) of every slot of a stats document; `None` unless it lists the
/// 1024 slots in order.
pub(crate) fn slot_table(stats: &serde_json::Value) -> Option<Vec<(i64, String)>> {
    let slots = stats["slots"].as_array()?;
    if slots.len() != 1024 {
        return None;
    }
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (s["id"].as_u64() == Some(i as u64)).then(|| {
                (
                    s["group_id"].as_i64().unwrap_or(0),
                    s["action"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

/// Field `field` of `INFO section` on the server at `port`.
pub(crate) fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let mut c = Resp::connect(port).ok()?;
    let Reply::Bulk(Some(text)) = c.call(&[b"INFO", section.as_bytes()]).ok()? else {
        return None;
    };
    String::from_utf8_lossy(&text).lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// RESP

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub(crate) fn bulk(v: &[u8]) -> Reply {
        Reply::Bulk(Some(v.to_vec()))
    }
}

/// A blocking RESP client (10 s read timeout).
#[derive(Debug)]
pub(crate) struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Resp {
    pub(crate) fn connect(port: u16) -> io::Result<Resp> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Resp {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// Appends one command, as a multibulk request, to `out`.
    pub(crate) fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)
    }

    pub(crate) fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = Vec::new();
        Self::encode(&mut out, args);
        self.send_raw(&out)?;
        self.read()
    }

    /// Sends every command at once, then reads one reply per command.
    pub(crate) fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        for c in cmds {
            let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            Self::encode(&mut out, &args);
        }
        self.send_raw(&out)?;
        (0..cmds.len()).map(|_| self.read()).collect()
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::other(format!(
                "bad reply line {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(io::Error::other)
    }

    fn number(text: &str) -> io::Result<i64> {
        text.parse()
            .map_err(|_| io::Error::other(format!("bad number {text:?}")))
    }

    /// Reads one reply.
    pub(crate) fn read(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(line.len().min(1));
        Ok(match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(Self::number(rest)?),
            "$" => {
                let n = Self::number(rest)?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.r.read_exact(&mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            "*" => {
                let n = Self::number(rest)?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    Reply::Array(Some(
                        (0..n).map(|_| self.read()).collect::<io::Result<_>>()?,
                    ))
                }
            }
            _ => return Err(io::Error::other(format!("bad reply line {line:?}"))),
        })
    }
}
