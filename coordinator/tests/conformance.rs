//! One conformance suite, run against the three coordinator backends.
//!
//! ZooKeeper (Debian's `zookeeper`, run with `java`) and etcd (`etcd-server`) are started by the
//! tests themselves, on free loopback ports in fresh directories, and killed when the test ends.
//! A missing binary FAILS the test with the package to install: these tests never skip.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use codis_coordinator::jodis::jodis_data;
use codis_coordinator::{Coordinator, Error, FsCoordinator, Jodis, connect, paths};

/// zookeeper-client and etcd leases want a few seconds; ZooKeeper here runs with tickTime=1000,
/// so it accepts sessions from 2 s.
const TIMEOUT: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------------------
// Scratch directories and daemons

/// A fresh directory under the target dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("coord-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ports the kernel had free a moment ago (all bound at once, so they differ).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// `name` on PATH, or a failure naming the package to install.
fn require_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found on PATH: install it with `apt-get install -y {package}`")
        })
}

/// A daemon we started; killed (and its directory removed) on drop.
struct Daemon {
    name: &'static str,
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Daemon {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }

    /// Waits until `ready` says yes while the child is still running (so the server answering
    /// is the one we started, not someone else's on a reused port).
    fn wait_ready(&mut self, ready: impl Fn(u16) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if ready(self.port) {
                return self.child.try_wait().unwrap().is_none();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} did not become ready on port {} in 30 s:\n{}",
            self.name,
            self.port,
            self.log()
        );
    }

    /// Kills the process now (SIGKILL), keeping the directory.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain request/response over TCP with short timeouts; empty on any failure.
fn tcp_exchange(port: u16, request: &[u8]) -> String {
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

/// Starts a standalone ZooKeeper on a free port (or on `port`), in `dir` (or a new one).
fn start_zookeeper_at(port: Option<u16>, dir: Option<TempDir>) -> Daemon {
    let java = require_binary("java", "zookeeper");
    assert!(
        Path::new(ZOOKEEPER_JAR).is_file(),
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} missing): apt-get install -y zookeeper"
    );
    let mut dir = dir.unwrap_or_else(|| TempDir::new("zk"));
    for _attempt in 0..3 {
        let port = port.unwrap_or_else(|| free_ports::<1>()[0]);
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=1000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok\n",
                data.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let child = Command::new(&java)
            .arg("-Xmx128m")
            .arg(format!("-Dzookeeper.log.dir={}", dir.path().display()))
            .args(["-cp", &format!("/etc/zookeeper/conf:{ZOOKEEPER_JAR}")])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning java for zookeeper");
        let mut daemon = Daemon {
            name: "zookeeper",
            child,
            port,
            dir,
        };
        if daemon.wait_ready(|port| tcp_exchange(port, b"ruok") == "imok") {
            return daemon;
        }
        eprintln!(
            "zookeeper exited on port {port}, retrying:\n{}",
            daemon.log()
        );
        daemon.kill();
        dir = std::mem::replace(&mut daemon.dir, TempDir::new("zk-unused"));
    }
    panic!("zookeeper did not start in 3 attempts");
}

fn start_zookeeper() -> Daemon {
    start_zookeeper_at(None, None)
}

/// Starts a single-member etcd on free client and peer ports.
fn start_etcd() -> Daemon {
    let etcd = require_binary("etcd", "etcd-server");
    let mut dir = TempDir::new("etcd");
    for _attempt in 0..3 {
        let [port, peer] = free_ports::<2>();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let child = Command::new(&etcd)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning etcd");
        let mut daemon = Daemon {
            name: "etcd",
            child,
            port,
            dir,
        };
        let healthy = |port| {
            tcp_exchange(port, b"GET /health HTTP/1.0\r\n\r\n").contains("\"health\":\"true\"")
        };
        if daemon.wait_ready(healthy) {
            return daemon;
        }
        eprintln!("etcd exited on port {port}, retrying:\n{}", daemon.log());
        daemon.kill();
        dir = std::mem::replace(&mut daemon.dir, TempDir::new("etcd-unused"));
        let _ = std::fs::remove_dir_all(dir.path().join("data"));
    }
    panic!("etcd did not start in 3 attempts");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls `check` every 50 ms until it holds, failing after `within`.
async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn value(c: &dyn Coordinator, path: &str) -> Option<Vec<u8>> {
    c.read(path, false).await.unwrap()
}

fn full(paths: &[&str], dir: &str) -> Vec<String> {
    paths.iter().map(|p| format!("{dir}/{p}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The suite

/// Create/update/read/list/delete semantics, on nodes under `root` (a product directory).
async fn conformance(c: &dyn Coordinator, product: &str) {
    let root = paths::product_dir(product);
    let topom = paths::topom_path(product);

    // read: optional and must, on a missing node.
    assert_eq!(c.read(&topom, false).await.unwrap(), None);
    let err = c.read(&topom, true).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound(p) if *p == topom), "{err}");

    // create, then create again: exists error, value kept.
    c.create(&topom, b"{\"token\": 1}").await.unwrap();
    assert_eq!(
        c.read(&topom, true).await.unwrap().unwrap(),
        b"{\"token\": 1}"
    );
    let err = c.create(&topom, b"other").await.unwrap_err();
    assert!(matches!(&err, Error::NodeExists(p) if *p == topom), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(value(c, &topom).await.unwrap(), b"{\"token\": 1}");

    // update: replaces, and creates missing nodes with their parents.
    c.update(&topom, b"two").await.unwrap();
    assert_eq!(value(c, &topom).await.unwrap(), b"two");
    for sid in [3, 0, 2, 1] {
        c.update(
            &paths::slot_path(product, sid),
            format!("slot {sid}").as_bytes(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        value(c, &paths::slot_path(product, 2)).await.unwrap(),
        b"slot 2"
    );
    c.create(&paths::group_path(product, 1), b"g1")
        .await
        .unwrap();
    c.update(&paths::sentinel_path(product), b"").await.unwrap();
    assert_eq!(value(c, &paths::sentinel_path(product)).await.unwrap(), b"");
    let binary: Vec<u8> = (0..=255).collect();
    c.update(&paths::group_path(product, 2), &binary)
        .await
        .unwrap();
    assert_eq!(
        value(c, &paths::group_path(product, 2)).await.unwrap(),
        binary
    );

    // list: full paths of the direct children only, sorted.
    let slots = paths::slots_dir(product);
    assert_eq!(
        c.list(&slots, true).await.unwrap(),
        full(
            &["slot-0000", "slot-0001", "slot-0002", "slot-0003"],
            &slots
        )
    );
    assert_eq!(
        c.list(&root, true).await.unwrap(),
        full(&["group", "sentinel", "slots", "topom"], &root)
    );
    let products = c.list(paths::CODIS_DIR, true).await.unwrap();
    assert!(products.contains(&root), "{products:?}");
    assert_eq!(paths::base_name(&root), product);

    // list: a missing node is empty, or an error with must.
    let proxies = paths::proxy_dir(product);
    assert_eq!(c.list(&proxies, false).await.unwrap(), Vec::<String>::new());
    let err = c.list(&proxies, true).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound(p) if *p == proxies), "{err}");

    // delete: gone afterwards; deleting a missing node is fine.
    c.delete(&paths::slot_path(product, 1)).await.unwrap();
    assert_eq!(value(c, &paths::slot_path(product, 1)).await, None);
    c.delete(&paths::slot_path(product, 1)).await.unwrap();
    c.delete(&paths::proxy_path(product, "never"))
        .await
        .unwrap();
    assert_eq!(
        c.list(&slots, true).await.unwrap(),
        full(&["slot-0000", "slot-0002", "slot-0003"], &slots)
    );

    // Paths are checked the same way everywhere.
    for bad in ["relative", "/a/../b", "/a//b", "/a/"] {
        let err = c.read(bad, false).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath(_)), "{bad}: {err}");
    }
    assert!(matches!(
        c.create("/", b"x").await.unwrap_err(),
        Error::InvalidPath(_)
    ));
}

/// Ephemeral nodes: visible to others, gone when the owner closes or drops its client, and the
/// watch fires when they go.
async fn ephemeral(connect_one: impl Fn() -> Arc<dyn Coordinator>, product: &str) {
    let observer = connect_one();
    let path = paths::jodis_path(product, "a");

    let owner = connect_one();
    let watch = owner.create_ephemeral(&path, b"alive").await.unwrap();
    assert_eq!(value(&*observer, &path).await.unwrap(), b"alive");
    assert_eq!(
        observer
            .list(&format!("/jodis/{product}"), true)
            .await
            .unwrap(),
        [path.as_str()]
    );
    let err = observer.create_ephemeral(&path, b"dup").await.unwrap_err();
    assert!(matches!(err, Error::NodeExists(_)), "{err}");

    // close(): the node goes at once and the watch fires.
    owner.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("watch fired after close");
    wait_until(
        "ephemeral node gone after close",
        Duration::from_secs(5),
        || async { value(&*observer, &path).await.is_none() },
    )
    .await;
    let err = owner.read(&path, false).await.unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err}");
    let err = owner.create_ephemeral(&path, b"again").await.unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err}");

    // drop: the node goes too (session closed / lease revoked).
    let owner = connect_one();
    let _watch = owner.create_ephemeral(&path, b"dropped").await.unwrap();
    assert_eq!(value(&*observer, &path).await.unwrap(), b"dropped");
    drop(owner);
    wait_until(
        "ephemeral node gone after drop",
        Duration::from_secs(5),
        || async { value(&*observer, &path).await.is_none() },
    )
    .await;

    // Deleted by someone else: the owner's watch fires.
    let owner = connect_one();
    let watch = owner.create_ephemeral(&path, b"deleted").await.unwrap();
    observer.delete(&path).await.unwrap();
    tokio::time::timeout(TIMEOUT + Duration::from_secs(3), watch)
        .await
        .expect("watch fired after delete");
    owner.close().await.unwrap();
    observer.close().await.unwrap();
}

/// Jodis: registers, registers again after the node is lost, removes the node on close.
async fn jodis(name: &str, addr: &str, product: &str) {
    let observer = connect(name, addr, "", TIMEOUT).unwrap();
    let path = paths::proxy_jodis_path(product, "t1", false);
    let data = jodis_data("127.0.0.1:19000", "127.0.0.1:11080", "now", "t1");
    let jodis = Jodis::start(name, addr, "", TIMEOUT, &path, data.clone()).unwrap();
    assert_eq!(jodis.path(), path);
    // The node is visible a moment before create_ephemeral returns to the jodis task.
    wait_until("jodis registered", Duration::from_secs(5), || async {
        value(&*observer, &path).await.as_ref() == Some(&data) && jodis.is_registered()
    })
    .await;

    observer.delete(&path).await.unwrap();
    wait_until(
        "jodis registered again",
        TIMEOUT + Duration::from_secs(5),
        || async { value(&*observer, &path).await.as_ref() == Some(&data) },
    )
    .await;

    jodis.close().await.unwrap();
    assert_eq!(value(&*observer, &path).await, None);

    // The Codis 2 path works the same way.
    let compat = paths::proxy_jodis_path(product, "t2", true);
    let jodis = Jodis::start(name, addr, "", TIMEOUT, &compat, b"{}".to_vec()).unwrap();
    wait_until(
        "compat jodis registered",
        Duration::from_secs(5),
        || async { value(&*observer, &compat).await.is_some() },
    )
    .await;
    jodis.close().await.unwrap();
    assert_eq!(value(&*observer, &compat).await, None);
    observer.close().await.unwrap();
}

/// After the coordinator goes away, operations fail within their bound instead of hanging.
async fn fails_when_gone(c: &dyn Coordinator, daemon: &mut Daemon, path: &str) {
    daemon.kill();
    let started = Instant::now();
    let err = c.read(path, false).await.unwrap_err();
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(3),
        "{:?}: {err}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_conformance() {
    let root = TempDir::new("fs");
    let addr = root.path().to_str().unwrap();
    let c = connect("fs", addr, "", TIMEOUT).unwrap();
    conformance(&*c, "demo").await;

    // The layout is Codis's: R/data/<path>, a temp dir, a lock file.
    let file = root.path().join("data/codis3/demo/topom");
    assert_eq!(std::fs::read(file).unwrap(), b"two");
    assert!(root.path().join("temp").is_dir());
    assert!(root.path().join("data.lck").is_file());
    assert_eq!(
        std::fs::read_dir(root.path().join("temp")).unwrap().count(),
        0,
        "temp files left"
    );

    // A second client on the same root sees the same nodes.
    let other = connect("filesystem", addr, "ignored:auth", TIMEOUT).unwrap();
    assert_eq!(value(&*other, "/codis3/demo/topom").await.unwrap(), b"two");

    // No ephemeral nodes, so no jodis either.
    let err = c
        .create_ephemeral("/jodis/demo/proxy-a", b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported("filesystem")), "{err}");
    let err = Jodis::start("fs", addr, "", TIMEOUT, "/jodis/demo/proxy-a", Vec::new()).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");

    c.close().await.unwrap();
    assert!(matches!(
        c.read("/codis3", false).await.unwrap_err(),
        Error::Closed(_)
    ));

    // A root that cannot be created gives an error, not a hang.
    let bad = connect("fs", &format!("{addr}/data/codis3/demo/topom"), "", TIMEOUT).unwrap();
    let err = bad.update("/x", b"x").await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_lock_contention_fails_fast() {
    let root = TempDir::new("fs-lock");
    let addr = root.path().to_str().unwrap();
    let a = FsCoordinator::new(addr).unwrap();
    let b = connect("fs", addr, "", TIMEOUT).unwrap();
    a.create("/codis3/demo/topom", b"a").await.unwrap();

    // Another process holding the lock (mid-operation) makes every operation fail at once.
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(a.lock_file())
        .unwrap();
    held.try_lock().unwrap();
    let started = Instant::now();
    for result in [
        b.read("/codis3/demo/topom", false).await.map(|_| ()),
        b.update("/codis3/demo/topom", b"b").await,
        b.list("/codis3", false).await.map(|_| ()),
        b.delete("/codis3/demo/topom").await,
        a.create("/codis3/demo/x", b"a").await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err}");
        assert!(
            err.to_string().contains("locked by another client"),
            "{err}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    held.unlock().unwrap();

    // Released: both work again, and the lock file says who held it last (or nobody).
    b.update("/codis3/demo/topom", b"b").await.unwrap();
    assert_eq!(value(&a, "/codis3/demo/topom").await.unwrap(), b"b");
    assert_eq!(std::fs::read(a.lock_file()).unwrap(), b"");

    // Two clients hammering the same root at once: each call succeeds or fails fast with
    // Locked, and nothing waits.
    let a: Arc<dyn Coordinator> = Arc::new(a);
    let mut tasks = Vec::new();
    for (i, client) in [a, b].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut locked = 0;
            for n in 0..200 {
                let path = format!("/codis3/demo/c{i}-{n}");
                match client.update(&path, b"x").await {
                    Ok(()) => {}
                    Err(Error::Locked(_)) => locked += 1,
                    Err(err) => panic!("{err}"),
                }
            }
            locked
        }));
    }
    let started = Instant::now();
    for task in tasks {
        let locked = task.await.unwrap();
        assert!(locked < 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_conformance() {
    let mut zk = start_zookeeper();
    let addr = zk.addr();
    let c = connect("zk", &addr, "", TIMEOUT).unwrap();
    conformance(&*c, "demo").await;
    let connect_one = || connect("zookeeper", &addr, "", TIMEOUT).unwrap();
    ephemeral(connect_one, "demo").await;
    jodis("zookeeper", &addr, "demo").await;
    fails_when_gone(&*c, &mut zk, "/codis3/demo/topom").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_redials_after_session_loss() {
    let mut zk = start_zookeeper();
    let port = zk.port;
    let addr = zk.addr();
    let c = connect("zk", &addr, "", Duration::from_secs(2)).unwrap();
    c.update("/codis3/demo/topom", b"first").await.unwrap();
    let path = paths::jodis_path("demo", "t");
    let jodis = Jodis::start(
        "zk",
        &addr,
        "",
        Duration::from_secs(2),
        &path,
        b"j".to_vec(),
    )
    .unwrap();
    wait_until("jodis registered", Duration::from_secs(5), || async {
        c.read(&path, false).await.ok().flatten().is_some()
    })
    .await;

    // A new server on the same port, with empty data: it does not know the old sessions, so
    // both clients must notice the loss, dial again and carry on.
    zk.kill();
    let dir = std::mem::replace(&mut zk.dir, TempDir::new("zk-unused"));
    let _ = std::fs::remove_dir_all(dir.path().join("data"));
    let _zk = start_zookeeper_at(Some(port), Some(dir));
    wait_until(
        "client works on the new server",
        Duration::from_secs(15),
        || async { c.read("/codis3/demo/topom", false).await.is_ok() },
    )
    .await;
    assert_eq!(
        value(&*c, "/codis3/demo/topom").await,
        None,
        "a new server, no old data"
    );
    c.update("/codis3/demo/topom", b"second").await.unwrap();
    wait_until(
        "jodis registered on the new server",
        Duration::from_secs(15),
        || async { c.read(&path, false).await.ok().flatten().is_some() && jodis.is_registered() },
    )
    .await;
    jodis.close().await.unwrap();
    assert_eq!(value(&*c, &path).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_digest_auth() {
    let zk = start_zookeeper();
    let addr = zk.addr();
    let owner = connect("zk", &addr, "codis:secret", TIMEOUT).unwrap();
    owner.create("/codis3/secure/topom", b"x").await.unwrap();
    owner
        .update("/codis3/secure/slots/slot-0000", b"s")
        .await
        .unwrap();
    assert_eq!(value(&*owner, "/codis3/secure/topom").await.unwrap(), b"x");

    // The same credentials on another session: full access.
    let same = connect("zk", &addr, "codis:secret", TIMEOUT).unwrap();
    assert_eq!(value(&*same, "/codis3/secure/topom").await.unwrap(), b"x");
    same.update("/codis3/secure/topom", b"y").await.unwrap();
    assert_eq!(same.list("/codis3/secure", true).await.unwrap().len(), 2);

    // No auth, or a wrong password: refused (leaves and directories alike).
    for auth in ["", "codis:wrong", "other:secret"] {
        let c = connect("zk", &addr, auth, TIMEOUT).unwrap();
        let err = c.read("/codis3/secure/topom", false).await.unwrap_err();
        assert!(err.to_string().contains("not authorized"), "{auth}: {err}");
        let err = c.update("/codis3/secure/topom", b"z").await.unwrap_err();
        assert!(err.to_string().contains("not authorized"), "{auth}: {err}");
        let err = c.list("/codis3/secure", false).await.unwrap_err();
        assert!(err.to_string().contains("not authorized"), "{auth}: {err}");
        let err = c
            .create("/codis3/secure/group/group-0001", b"g")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not authorized"), "{auth}: {err}");
    }
    assert_eq!(value(&*owner, "/codis3/secure/topom").await.unwrap(), b"y");
    assert!(matches!(
        connect("zk", &addr, "nouser", TIMEOUT).unwrap_err(),
        Error::InvalidAuth
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conformance() {
    let mut etcd = start_etcd();
    let addr = etcd.addr();
    let c = connect("etcd", &addr, "", TIMEOUT).unwrap();
    conformance(&*c, "demo").await;
    // An endpoint list whose first endpoint is down: the next one answers.
    let [closed] = free_ports::<1>();
    let c2 = connect(
        "etcd",
        &format!("127.0.0.1:{closed},http://{addr}"),
        "",
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(value(&*c2, "/codis3/demo/topom").await.unwrap(), b"two");
    let connect_one = || connect("etcd", &addr, "", TIMEOUT).unwrap();
    ephemeral(connect_one, "demo").await;
    jodis("etcd", &addr, "demo").await;
    fails_when_gone(&*c, &mut etcd, "/codis3/demo/topom").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_user_auth() {
    let etcd = start_etcd();
    let addr = etcd.addr();
    let http = reqwest::Client::new();
    for (api, body) in [
        (
            "/v3/auth/user/add",
            serde_json::json!({"name": "root", "password": "rootpw"}),
        ),
        ("/v3/auth/role/add", serde_json::json!({"name": "root"})),
        (
            "/v3/auth/user/grant",
            serde_json::json!({"user": "root", "role": "root"}),
        ),
        ("/v3/auth/enable", serde_json::json!({})),
    ] {
        let reply = http
            .post(format!("http://{addr}{api}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            reply.status().is_success(),
            "{api}: {}",
            reply.text().await.unwrap()
        );
    }

    let c = connect("etcd", &addr, "root:rootpw", TIMEOUT).unwrap();
    c.create("/codis3/secure/topom", b"x").await.unwrap();
    assert_eq!(value(&*c, "/codis3/secure/topom").await.unwrap(), b"x");
    let watch = c
        .create_ephemeral("/jodis/secure/proxy-a", b"j")
        .await
        .unwrap();
    assert_eq!(
        c.list("/jodis/secure", true).await.unwrap(),
        ["/jodis/secure/proxy-a"]
    );

    for auth in ["", "root:wrong"] {
        let other = connect("etcd", &addr, auth, TIMEOUT).unwrap();
        let err = other.read("/codis3/secure/topom", false).await.unwrap_err();
        assert!(matches!(err, Error::Etcd { .. }), "{auth}: {err}");
    }
    c.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_coordinators_fail_fast() {
    let [port] = free_ports::<1>(); // nothing listens there any more
    let addr = format!("127.0.0.1:{port}");
    for name in ["zk", "etcd"] {
        let c = connect(name, &addr, "", Duration::from_secs(2)).unwrap();
        for _ in 0..2 {
            let started = Instant::now();
            let err = c.read("/codis3/demo/topom", false).await.unwrap_err();
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "{name}: {took:?}: {err}");
            let message = err.to_string();
            assert!(
                message.starts_with(if name == "zk" { "zookeeper" } else { "etcd" }),
                "{message}"
            );
            eprintln!("{name}: {message} ({took:?})");
        }
        let started = Instant::now();
        assert!(
            c.create_ephemeral("/jodis/demo/proxy-x", b"x")
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        c.close().await.unwrap();
    }
    let err = connect("consul", &addr, "", Duration::ZERO).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid coordinator name = \"consul\" (want zk, zookeeper, etcd, fs or filesystem)"
    );
    assert!(matches!(
        connect("zk", " ", "", Duration::ZERO).unwrap_err(),
        Error::InvalidAddr(_)
    ));
}
