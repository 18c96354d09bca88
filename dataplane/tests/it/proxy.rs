//! Integration tests of codis-proxy against real backends (Debian's redis-server, and our
//! codis-server for migrations). The proxy runs in-process on a free port; its slot table is
//! filled directly, as the dashboard's `fillslots` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use codis_model::proxy::Slot;
use codis_model::slot_of;
use dataplane::proxy::core::{CoreConfig, Proxy, run};
use dataplane::resp::frame::Frame;

use crate::support::{Client, Server, dribble_and_read_slowly, show, start_codis, start_redis};

/// A proxy running on its own thread, closed on drop.
pub(crate) struct TestProxy {
    pub(crate) proxy: Arc<Proxy>,
    pub(crate) port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestProxy {
    pub(crate) fn start(cfg: CoreConfig) -> TestProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy::new(cfg);
        let p2 = proxy.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                run(l, p2).await;
            });
        });
        proxy.start().unwrap();
        TestProxy {
            proxy,
            port,
            thread: Some(thread),
        }
    }

    pub(crate) fn fill(&self, slots: &[Slot]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(self.proxy.router.fill(slots)).unwrap();
    }

    /// Slots `range` served by `backend`.
    pub(crate) fn assign(&self, range: std::ops::Range<usize>, backend: &Server) {
        let slots: Vec<Slot> = range
            .map(|i| Slot {
                id: i as i64,
                backend_addr: addr(backend),
                ..Slot::default()
            })
            .collect();
        self.fill(&slots);
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.proxy.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn addr(s: &Server) -> String {
    format!("127.0.0.1:{}", s.port)
}

fn bulk(f: &Frame) -> Option<Vec<u8>> {
    match f {
        Frame::Bulk(b) => Some(b.clone()),
        Frame::Null => None,
        other => panic!("not a bulk: {other:?}"),
    }
}

fn err_text(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).to_string(),
        other => panic!("not an error: {other:?}"),
    }
}

/// A proxy over two redis-servers: slots 0..512 on `a`, 512..1024 on `b`.
fn two_backends(cfg: CoreConfig) -> (TestProxy, Server, Server) {
    let a = start_redis(&[]);
    let b = start_redis(&[]);
    let p = TestProxy::start(cfg);
    p.assign(0..512, &a);
    p.assign(512..1024, &b);
    (p, a, b)
}

fn owner<'a>(key: &[u8], a: &'a Server, b: &'a Server) -> &'a Server {
    if slot_of(key) < 512 { a } else { b }
}

#[test]
fn routes_by_slot_and_keeps_order_in_deep_pipelines() {
    let (p, a, b) = two_backends(CoreConfig::default());
    let mut c = p.client();
    let n = 20_000;
    let mut buf = Vec::new();
    for i in 0..n {
        let k = format!("key:{i}").into_bytes();
        let v = format!("value-{i}").into_bytes();
        buf.extend_from_slice(&Client::encode(&[b"SET".to_vec(), k.clone(), v]));
        buf.extend_from_slice(&Client::encode(&[b"GET".to_vec(), k]));
    }
    let writer = {
        let mut w = c.try_clone_writer();
        std::thread::spawn(move || w.send_raw(&buf))
    };
    for i in 0..n {
        let (set, raw) = c.read_reply().unwrap();
        assert_eq!(
            set,
            Frame::Simple(b"OK".to_vec()),
            "SET {i}: {}",
            show(&raw)
        );
        let (get, _) = c.read_reply().unwrap();
        assert_eq!(
            bulk(&get),
            Some(format!("value-{i}").into_bytes()),
            "GET {i}"
        );
    }
    writer.join().unwrap();
    // Every key lives on the backend that owns its slot, and only there.
    let mut ca = Client::connect(a.port);
    let mut cb = Client::connect(b.port);
    for i in (0..n).step_by(97) {
        let k = format!("key:{i}");
        let (on_a, on_b) = (
            ca.run(&format!("EXISTS {k}")),
            cb.run(&format!("EXISTS {k}")),
        );
        let expect_a = std::ptr::eq(owner(k.as_bytes(), &a, &b), &a);
        assert_eq!(on_a, Frame::Integer(expect_a as i64), "{k} on a");
        assert_eq!(on_b, Frame::Integer(!expect_a as i64), "{k} on b");
    }
}

#[test]
fn multi_key_commands_split_and_merge_like_one_redis() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let single = start_redis(&[]);
    let mut via = p.client();
    let mut direct = Client::connect(single.port);
    let script = [
        "MSET k1 v1 k2 v2 k3 v3 k4 v4 {t}x 1 {t}y 2",
        "MGET k1 k2 nosuch k3 k4 {t}x {t}y k1",
        "MGET k1",
        "EXISTS k1 k2 nosuch k1",
        "TOUCH k1 k2 k3 nosuch",
        "DEL k1 nosuch k2",
        "MGET k1 k2 k3",
        "UNLINK k3 k4",
        "EXISTS k1 k2 k3 k4",
        "MSET onlykey",
        "MSET a 1 b",
        "MGET",
        "DEL",
        "MSETNX {t}a 1 {t}b 2",
        "MSETNX {t}a 1 {t}c 2",
        "MGET {t}a {t}b {t}c",
        "RPUSH list a",
        "MGET list k1 {t}a",
    ];
    for line in script {
        let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        let (_, got) = via.cmd(&args);
        let (_, want) = direct.cmd(&args);
        assert_eq!(show(&got), show(&want), "{line}");
    }
    // MSETNX across slots is refused, naming the command.
    let f = via.run("MSETNX a 1 b 2");
    assert!(err_text(&f).contains("MSETNX"), "{f:?}");
}

#[test]
fn refused_and_local_commands() {
    let (p, a, _b) = two_backends(CoreConfig::default());
    let mut c = p.client();
    for cmd in [
        "KEYS *",
        "MOVE k 1",
        "OBJECT encoding k",
        "RENAME a b",
        "FLUSHALL",
        "SCAN 0",
    ] {
        let name = cmd.split(' ').next().unwrap();
        let e = err_text(&c.run(cmd));
        assert_eq!(
            e,
            format!("ERR handle request, command '{name}' is not allowed"),
            "{cmd}"
        );
    }
    assert_eq!(c.run("PING"), Frame::Simple(b"PONG".to_vec()));
    assert_eq!(c.run("PING hello"), Frame::Bulk(b"hello".to_vec()));
    assert_eq!(c.run("ECHO hi"), Frame::Bulk(b"hi".to_vec()));
    // PING/INFO with a backend address go to that backend (Codis).
    assert_eq!(
        c.run(&format!("PING {}", addr(&a))),
        Frame::Simple(b"PONG".to_vec())
    );
    let info = bulk(&c.run(&format!("INFO {} server", addr(&a)))).unwrap();
    assert!(String::from_utf8_lossy(&info).contains(&format!("tcp_port:{}", a.port)));
    assert!(bulk(&c.run("INFO")).is_some());
    let e = err_text(&c.run("SLOTSINFO 1.2.3.4:5"));
    assert_eq!(e, "ERR backend server '1.2.3.4:5' not found");
    assert_eq!(
        c.run("SLOTSHASHKEY a b c"),
        Frame::Array(
            b'*',
            vec![
                Frame::Integer(579),
                Frame::Integer(1017),
                Frame::Integer(879)
            ]
        )
    );
    match c.run("SLOTSMAPPING 3") {
        Frame::Array(_, items) => {
            assert_eq!(items[0], Frame::Bulk(b"3".to_vec()));
            assert_eq!(items[1], Frame::Bulk(addr(&a).into_bytes()));
        }
        other => panic!("{other:?}"),
    }
    match c.run("SLOTSMAPPING") {
        Frame::Array(_, items) => assert_eq!(items.len(), 1024),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err_text(&c.run("SELECT 16")),
        "ERR invalid DB index, only accept DB [0,16)"
    );
    assert_eq!(err_text(&c.run("SELECT x")), "ERR invalid DB index");
    assert!(err_text(&c.run("HELLO 3")).starts_with("NOPROTO"));
    match c.run("HELLO 2") {
        Frame::Array(_, items) => assert_eq!(items.len(), 14),
        other => panic!("{other:?}"),
    }
    // An unknown command is refused by the proxy (Codis forwarded it).
    assert_eq!(
        err_text(&c.run("NOSUCHCMD x")),
        "ERR handle request, unknown command 'NOSUCHCMD': codis-proxy does not support it"
    );
    // The connection survived all of it.
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
}

#[test]
fn select_isolates_databases() {
    let (p, a, b) = two_backends(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("SELECT 3"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("SET dbkey three"), Frame::Simple(b"OK".to_vec()));
    let mut other = p.client();
    assert_eq!(other.run("GET dbkey"), Frame::Null);
    assert_eq!(c.run("GET dbkey"), Frame::Bulk(b"three".to_vec()));
    let mut direct = Client::connect(owner(b"dbkey", &a, &b).port);
    direct.run("SELECT 3");
    assert_eq!(direct.run("GET dbkey"), Frame::Bulk(b"three".to_vec()));
}

#[test]
fn session_auth() {
    let cfg = CoreConfig {
        session_auth: "secret".into(),
        ..CoreConfig::default()
    };
    let (p, _a, _b) = two_backends(cfg);
    let mut c = p.client();
    assert_eq!(err_text(&c.run("GET k")), "NOAUTH Authentication required");
    assert_eq!(err_text(&c.run("AUTH wrong")), "ERR invalid password");
    assert_eq!(c.run("AUTH secret"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("GET k"), Frame::Null);
    assert_eq!(err_text(&c.run("AUTH wrong")), "ERR invalid password");
    assert_eq!(err_text(&c.run("GET k")), "NOAUTH Authentication required");
    // Without session_auth, AUTH is an error as in Redis.
    let (p2, _c, _d) = two_backends(CoreConfig::default());
    assert_eq!(
        err_text(&p2.client().run("AUTH x")),
        "ERR Client sent AUTH, but no password is set"
    );
}

#[test]
fn backend_auth_with_product_auth() {
    let a = start_redis(&[]);
    Client::connect(a.port).run("CONFIG SET requirepass prod");
    let mut cfg = CoreConfig::default();
    cfg.backend.auth = "prod".into();
    let p = TestProxy::start(cfg);
    p.assign(0..1024, &a);
    let mut c = p.client();
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("SELECT 2"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("GET k"), Frame::Null);
}

#[test]
fn dead_backend_fails_fast_and_recovers() {
    let (p, a, b) = two_backends(CoreConfig::default());
    let key_b = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| slot_of(k.as_bytes()) >= 512)
        .unwrap();
    let key_a = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| slot_of(k.as_bytes()) < 512)
        .unwrap();
    let mut c = p.client();
    assert_eq!(
        c.run(&format!("SET {key_b} 1")),
        Frame::Simple(b"OK".to_vec())
    );
    let port_b = b.port;
    drop(b);
    let t = Instant::now();
    for _ in 0..5 {
        let e = err_text(&c.run(&format!("GET {key_b}")));
        assert!(e.starts_with("ERR handle response, backend conn"), "{e}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "errors must come quickly"
    );
    // The other backend is unaffected.
    assert_eq!(
        c.run(&format!("SET {key_a} 2")),
        Frame::Simple(b"OK".to_vec())
    );
    // The backend comes back on the same port: the proxy reconnects by itself.
    let _b2 = restart_redis_on(port_b);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match c.run(&format!("SET {key_b} 3")) {
            Frame::Simple(s) if s == b"OK" => break,
            other => {
                assert!(Instant::now() < deadline, "never recovered: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    drop(a);
}

/// A process killed on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts redis-server on a given port (after a backend was killed).
fn restart_redis_on(port: u16) -> KillOnDrop {
    let child = KillOnDrop(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn offline_slots_and_locked_slots() {
    let a = start_redis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(
        err_text(&c.run("GET k")),
        "ERR handle response, slot is not ready, may be offline"
    );
    // A locked slot holds requests until it is filled again.
    let s = slot_of(b"k") as i64;
    p.fill(&[Slot {
        id: s,
        locked: true,
        backend_addr: addr(&a),
        ..Slot::default()
    }]);
    c.send_raw(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    std::thread::sleep(Duration::from_millis(200));
    p.fill(&[Slot {
        id: s,
        backend_addr: addr(&a),
        ..Slot::default()
    }]);
    assert_eq!(c.read_reply().unwrap().0, Frame::Null);
}

#[test]
fn transactions_within_one_slot() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("SET {u}a 1"), Frame::Simple(b"QUEUED".to_vec()));
    assert_eq!(c.run("INCR {u}a"), Frame::Simple(b"QUEUED".to_vec()));
    assert_eq!(c.run("MGET {u}a {u}b"), Frame::Simple(b"QUEUED".to_vec()));
    let exec = c.run("EXEC");
    assert_eq!(
        exec,
        Frame::Array(
            b'*',
            vec![
                Frame::Simple(b"OK".to_vec()),
                Frame::Integer(2),
                Frame::Array(b'*', vec![Frame::Bulk(b"2".to_vec()), Frame::Null]),
            ]
        )
    );
    // Keys in two slots: the transaction is refused as a whole.
    c.run("MULTI");
    c.run("SET a 1");
    assert!(err_text(&c.run("SET b 2")).contains("one slot"));
    assert!(err_text(&c.run("EXEC")).starts_with("EXECABORT"));
    assert_eq!(c.run("GET a"), Frame::Null);
    assert_eq!(err_text(&c.run("EXEC")), "ERR EXEC without MULTI");
    c.run("MULTI");
    c.run("SET a 1");
    assert_eq!(c.run("DISCARD"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("GET a"), Frame::Null);
}

#[test]
fn blocking_pops_wait_for_a_push() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let mut waiter = p.client();
    waiter.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nqueue\r\n$1\r\n5\r\n");
    waiter.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nafter\r\n");
    std::thread::sleep(Duration::from_millis(200));
    let mut pusher = p.client();
    // Other clients are not blocked by the waiting one.
    assert_eq!(pusher.run("SET after x"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(pusher.run("RPUSH queue job"), Frame::Integer(1));
    let got = waiter.read_reply().unwrap().0;
    assert_eq!(
        got,
        Frame::Array(
            b'*',
            vec![Frame::Bulk(b"queue".to_vec()), Frame::Bulk(b"job".to_vec())]
        )
    );
    assert_eq!(waiter.read_reply().unwrap().0, Frame::Bulk(b"x".to_vec()));
    // Timeout, and keys in different slots.
    assert_eq!(waiter.run("BRPOP nothing 0.1"), Frame::Null);
    assert!(err_text(&waiter.run("BLPOP a b 1")).contains("one slot"));
}

#[test]
fn publish_and_subscribe() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let mut sub = p.client();
    let f = sub.run("SUBSCRIBE news");
    assert_eq!(
        f,
        Frame::Array(
            b'*',
            vec![
                Frame::Bulk(b"subscribe".to_vec()),
                Frame::Bulk(b"news".to_vec()),
                Frame::Integer(1)
            ]
        )
    );
    let mut publ = p.client();
    assert_eq!(publ.run("PUBLISH news hello"), Frame::Integer(1));
    let msg = sub.read_reply().unwrap().0;
    assert_eq!(
        msg,
        Frame::Array(
            b'*',
            vec![
                Frame::Bulk(b"message".to_vec()),
                Frame::Bulk(b"news".to_vec()),
                Frame::Bulk(b"hello".to_vec())
            ]
        )
    );
    // Other commands are refused while subscribed, as by Redis.
    assert!(err_text(&sub.run("GET k")).contains("only (P|S)SUBSCRIBE"));
    // Leaving subscriber mode gives the session back to the router.
    let f = sub.run("UNSUBSCRIBE");
    assert!(
        matches!(&f, Frame::Array(_, v) if v[2] == Frame::Integer(0)),
        "{f:?}"
    );
    assert_eq!(sub.run("SET k v"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(publ.run("PUBLISH news again"), Frame::Integer(0));
}

#[test]
fn bad_input_is_refused_without_harm() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let mut good = p.client();
    // Malformed RESP: a protocol error, then the connection closes.
    let mut bad = p.client();
    bad.send_raw(b"*1\r\n$x\r\n");
    let e = err_text(&bad.read_reply().unwrap().0);
    assert!(e.starts_with("ERR Protocol error"), "{e}");
    assert!(bad.read_reply().is_none());
    // A 1 GB bulk header is refused before any byte of it is stored.
    let mut huge = p.client();
    huge.send_raw(b"*2\r\n$3\r\nGET\r\n$1073741824\r\n");
    let e = err_text(&huge.read_reply().unwrap().0);
    assert!(e.contains("invalid bulk length"), "{e}");
    assert!(huge.read_reply().is_none());
    // Others are unaffected.
    assert_eq!(good.run("SET ok 1"), Frame::Simple(b"OK".to_vec()));
}

#[test]
fn a_client_that_never_reads_is_bounded() {
    let cfg = CoreConfig {
        session_max_pipeline: 1000,
        session_send_timeout: Duration::from_secs(2),
        ..CoreConfig::default()
    };
    let (p, _a, _b) = two_backends(cfg);
    let mut c = p.client();
    c.run(&format!("SET big {}", "x".repeat(100_000)));
    // Send far more GETs than fit in socket buffers, never reading.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000);
    let mut sent = 0;
    for _ in 0..200 {
        use std::io::Write;
        if s.write_all(&req).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(
        sent < 200,
        "the proxy must stop reading a client that does not read"
    );
    // Others are served meanwhile.
    assert_eq!(c.run("SET other 1"), Frame::Simple(b"OK".to_vec()));
    // The stuck client is disconnected after session_send_timeout.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.proxy.stats.sessions_alive.load(Ordering::SeqCst) > 1 {
        assert!(Instant::now() < deadline, "stuck client never closed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn max_clients_and_not_online() {
    let cfg = CoreConfig {
        max_clients: 2,
        ..CoreConfig::default()
    };
    let (p, _a, _b) = two_backends(cfg);
    let mut c1 = p.client();
    let mut c2 = p.client();
    assert_eq!(c1.run("PING"), Frame::Simple(b"PONG".to_vec()));
    assert_eq!(c2.run("PING"), Frame::Simple(b"PONG".to_vec()));
    let mut c3 = p.client();
    let (f, _) = c3.read_reply().unwrap();
    assert_eq!(err_text(&f), "ERR max number of clients reached");
    assert!(c3.read_reply().is_none());
    // A proxy not started yet refuses sessions.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = Proxy::new(CoreConfig::default());
    let p2 = proxy.clone();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(
            async move { run(tokio::net::TcpListener::from_std(listener).unwrap(), p2).await },
        );
    });
    let mut c = Client::connect(port);
    assert_eq!(
        err_text(&c.read_reply().unwrap().0),
        "ERR router is not online"
    );
    proxy.close();
    t.join().unwrap();
}

#[test]
fn many_connections() {
    let cfg = CoreConfig {
        max_clients: 20_000,
        ..CoreConfig::default()
    };
    let (p, _a, _b) = two_backends(cfg);
    let n = 2_000;
    let mut conns: Vec<Client> = (0..n).map(|_| p.client()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send_raw(format!("SET conn:{i} {i}\r\n").as_bytes());
    }
    for c in conns.iter_mut() {
        assert_eq!(c.read_reply().unwrap().0, Frame::Simple(b"OK".to_vec()));
    }
    assert_eq!(
        p.proxy.stats.sessions_alive.load(Ordering::SeqCst),
        n as u64
    );
    drop(conns);
    let mut c = p.client();
    assert_eq!(c.run("GET conn:1999"), Frame::Bulk(b"1999".to_vec()));
}

/// The proxy's entry for `slot` while it moves from `from` to `to` (`method` 0 sync, 1
/// semi-async).
pub(crate) fn migrating(slot: usize, from: &Server, to: &Server, method: i64) -> Slot {
    Slot {
        id: slot as i64,
        backend_addr: addr(to),
        migrate_from: addr(from),
        forward_method: method,
        ..Slot::default()
    }
}

/// The proxy's entry for `slot` owned by `by` alone.
pub(crate) fn owned(slot: usize, by: &Server) -> Slot {
    Slot {
        id: slot as i64,
        backend_addr: addr(by),
        ..Slot::default()
    }
}

/// Moves every key of `slot` from `from` to `to` as the dashboard does, with
/// SLOTSMGRTTAGSLOT (`method` 0) or SLOTSMGRTTAGSLOT-ASYNC (1) until the slot is empty.
pub(crate) fn migrate_slot(from: &Server, to: &Server, slot: usize, method: i64) {
    let mut src = Client::connect(from.port);
    let to_port = to.port.to_string();
    let slot_s = slot.to_string();
    loop {
        let f = if method == 0 {
            src.cmd(&[
                b"SLOTSMGRTTAGSLOT",
                b"127.0.0.1",
                to_port.as_bytes(),
                b"3000",
                slot_s.as_bytes(),
            ])
            .0
        } else {
            src.cmd(&[
                b"SLOTSMGRTTAGSLOT-ASYNC",
                b"127.0.0.1",
                to_port.as_bytes(),
                b"3000",
                b"200",
                b"1048576",
                slot_s.as_bytes(),
                b"100",
            ])
            .0
        };
        match f {
            Frame::Array(_, v) if v.len() == 2 && v[1] == Frame::Integer(0) => break,
            Frame::Array(_, _) => {}
            other => panic!("migration step failed: {other:?}"),
        }
    }
}

/// Moves slot `slot` from `from` to `to` through the proxy while clients read and write its
/// keys: zero client errors, and every key correct afterwards.
fn migration_under_load(method: i64) {
    let from = start_codis(&[]);
    let to = start_codis(&[]);
    let cfg = CoreConfig {
        threads: 2,
        ..CoreConfig::default()
    };
    let p = TestProxy::start(cfg);
    p.assign(0..1024, &from);
    // 3000 keys in one slot (hash tag), some with big values to make batches chunk.
    let slot = slot_of(b"mig") as i64;
    let keys: Vec<String> = (0..3000).map(|i| format!("{{mig}}:{i}")).collect();
    {
        let mut c = p.client();
        let mut buf = Vec::new();
        for k in &keys {
            buf.extend_from_slice(format!("SET {k} 0\r\n").as_bytes());
        }
        buf.extend_from_slice(b"RPUSH {mig}:list");
        for i in 0..5000 {
            buf.extend_from_slice(format!(" e{i}").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        c.send_raw(&buf);
        for _ in 0..=keys.len() {
            c.read_reply().unwrap();
        }
    }
    // Prepare: the proxy learns the migration before the source starts moving keys.
    p.fill(&[migrating(slot as usize, &from, &to, method)]);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, errors, ops) = (stop.clone(), errors.clone(), ops.clone());
            let keys = keys.clone();
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[i % keys.len()];
                    match c.run(&format!("INCR {k}")) {
                        Frame::Integer(_) => {}
                        other => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("INCR {k}: {other:?}");
                        }
                    }
                    if let Frame::Error(e) = c.run(&format!("MGET {k} {{mig}}:0 other")) {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("MGET: {}", String::from_utf8_lossy(&e));
                    }
                    if let Frame::Error(e) = c.run("LLEN {mig}:list") {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("LLEN: {}", String::from_utf8_lossy(&e));
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                    i += 4;
                }
                c
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // Migrate the slot as the dashboard does.
    migrate_slot(&from, &to, slot as usize, method);
    std::thread::sleep(Duration::from_millis(200));
    // Finish: the slot belongs to the target alone.
    p.fill(&[owned(slot as usize, &to)]);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "client errors during migration"
    );
    assert!(ops.load(Ordering::Relaxed) > 0);
    // Every increment landed exactly once: the sum of values equals the INCRs done.
    let mut c = p.client();
    let mut sum = 0i64;
    for k in &keys {
        if let Some(v) = bulk(&c.run(&format!("GET {k}"))) {
            sum += String::from_utf8(v).unwrap().parse::<i64>().unwrap();
        }
    }
    assert_eq!(sum as u64, ops.load(Ordering::Relaxed));
    assert_eq!(c.run("LLEN {mig}:list"), Frame::Integer(5000));
    let mut direct = Client::connect(from.port);
    assert_eq!(
        direct.run(&format!("SLOTSINFO {slot} 1")),
        Frame::Array(b'*', vec![])
    );
}

#[test]
fn sync_migration_is_invisible_to_clients() {
    migration_under_load(0);
}

#[test]
fn semi_async_migration_is_invisible_to_clients() {
    migration_under_load(1);
}

/// A minimal HTTP/1.1 call: returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The codis-proxy binary, driven like the dashboard drives it: waiting, filled and started
/// over the admin API with its xauth, serving, reporting stats, shut down over the API.
#[test]
fn binary_is_driven_through_the_admin_api() {
    let a = start_redis(&[]);
    let port = crate::support::free_port();
    let admin = crate::support::free_port();
    let dir = std::env::temp_dir().join(format!("codis-proxy-test-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("proxy.toml");
    std::fs::write(
        &conf,
        format!(
            "product_name = \"it\"\nproduct_auth = \"\"\nproxy_addr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:{admin}\"\n"
        ),
    )
    .unwrap();
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_codis-proxy"))
            .args([
                "--config",
                conf.to_str().unwrap(),
                "--ncpu",
                "2",
                "--log-level",
                "warn",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < deadline, "admin port never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not online yet: sessions are refused.
    let mut c = Client::connect(port);
    assert_eq!(
        err_text(&c.read_reply().unwrap().0),
        "ERR router is not online"
    );
    // The model gives the token; the xauth follows from it.
    let (status, model) = http(admin, "GET", "/api/proxy/model", "");
    assert_eq!(status, 200);
    let model: serde_json::Value = serde_json::from_str(&model).unwrap();
    let token = model["token"].as_str().unwrap();
    let xauth = dataplane::proxy::auth::proxy_xauth("it", "", token);
    let (status, body) = http(admin, "PUT", "/api/proxy/start/wrong", "");
    assert_eq!(status, 800, "{body}");
    assert!(body.contains("invalid xauth"), "{body}");
    let slots: Vec<serde_json::Value> = (0..1024)
        .map(|i| serde_json::json!({"id": i, "backend_addr": addr(&a)}))
        .collect();
    let (status, body) = http(
        admin,
        "PUT",
        &format!("/api/proxy/fillslots/{xauth}"),
        &serde_json::to_string(&slots).unwrap(),
    );
    assert_eq!((status, body.trim()), (200, "\"OK\""));
    let (status, _) = http(admin, "PUT", &format!("/api/proxy/start/{xauth}"), "");
    assert_eq!(status, 200);
    let mut c = Client::connect(port);
    for i in 0..100 {
        assert_eq!(
            c.run(&format!("SET s{i} {i}")),
            Frame::Simple(b"OK".to_vec())
        );
    }
    assert_eq!(c.run("GET s7"), Frame::Bulk(b"7".to_vec()));
    assert!(matches!(c.run("KEYS *"), Frame::Error(_)));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stats) = http(admin, "GET", &format!("/api/proxy/stats/{xauth}/1"), "");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["online"], true);
    assert_eq!(stats["ops"]["total"], 102, "{stats}");
    // The refused KEYS, and the session refused before the proxy was online.
    assert_eq!(stats["ops"]["fails"], 2, "{stats}");
    let set = stats["ops"]["cmd"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["opstr"] == "SET")
        .unwrap();
    assert_eq!(set["calls"], 100);
    let (_, slots) = http(admin, "GET", "/proxy/slots", "");
    let slots: Vec<serde_json::Value> = serde_json::from_str(&slots).unwrap();
    assert_eq!(slots.len(), 1024);
    assert_eq!(slots[5]["backend_addr"], addr(&a));
    let (status, metrics) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains("SET"), "{metrics}");
    // Shutdown over the API: the process exits by itself.
    let (status, _) = http(admin, "PUT", &format!("/api/proxy/shutdown/{xauth}"), "");
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "proxy did not exit after shutdown"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads go to the first replica group when `backend_replica_parallel` > 0; writes and
/// master-only reads stay on the master; `backend_primary_only` ignores replicas.
#[test]
fn reads_prefer_replicas() {
    // Two independent servers stand for master and replica, with different values under the
    // same key, so the answer tells which one served the read.
    let master = start_redis(&[]);
    let replica = start_redis(&[]);
    Client::connect(master.port).run("SET where master");
    Client::connect(replica.port).run("SET where replica");
    let slots: Vec<Slot> = (0..1024)
        .map(|i| Slot {
            id: i,
            backend_addr: addr(&master),
            replica_groups: vec![vec![addr(&replica)]],
            ..Slot::default()
        })
        .collect();
    let p = TestProxy::start(CoreConfig::default());
    p.fill(&slots);
    let mut c = p.client();
    // The replica connection is dialled on first use; until it is up, reads use the master.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.run("GET where") != Frame::Bulk(b"replica".to_vec()) {
        assert!(Instant::now() < deadline, "reads never reached the replica");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.run("SET other 1"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(
        Client::connect(master.port).run("GET other"),
        Frame::Bulk(b"1".to_vec())
    );
    // HSCAN is a master-only read.
    Client::connect(master.port).run("HSET h f master");
    match c.run("HSCAN h 0") {
        Frame::Array(_, v) => assert_eq!(
            v[1],
            Frame::Array(
                b'*',
                vec![Frame::Bulk(b"f".to_vec()), Frame::Bulk(b"master".to_vec())]
            )
        ),
        other => panic!("{other:?}"),
    }
    // primary_only: replicas are ignored.
    let p2 = TestProxy::start(CoreConfig {
        primary_only: true,
        ..CoreConfig::default()
    });
    p2.fill(&slots);
    let mut c2 = p2.client();
    for _ in 0..20 {
        assert_eq!(c2.run("GET where"), Frame::Bulk(b"master".to_vec()));
    }
}

/// Closing the proxy lets sessions finish the requests they already sent.
#[test]
fn shutdown_finishes_requests_in_flight() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let mut c = p.client();
    let n = 5000;
    let mut buf = Vec::new();
    for i in 0..n {
        buf.extend_from_slice(format!("SET graceful:{i} {i}\r\n").as_bytes());
    }
    c.send_raw(&buf);
    std::thread::sleep(Duration::from_millis(100));
    p.proxy.close();
    for i in 0..n {
        let (f, _) = c.read_reply().unwrap_or_else(|| panic!("reply {i} lost"));
        assert_eq!(f, Frame::Simple(b"OK".to_vec()), "reply {i}");
    }
    assert!(
        c.read_reply().is_none(),
        "the session ends after its replies"
    );
}

/// A single-member etcd on free loopback ports, killed on drop.
struct Etcd {
    child: KillOnDrop,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_etcd() -> Etcd {
    let port = crate::support::free_port();
    let peer = crate::support::free_port();
    let dir = std::env::temp_dir().join(format!("codis-it-etcd-{port}"));
    let child = std::process::Command::new("etcd")
        .args(["--name", "it", "--data-dir", dir.to_str().unwrap()])
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{port}")])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["--initial-cluster", &format!("it=http://127.0.0.1:{peer}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd is not installed (apt-get install etcd-server)");
    let etcd = Etcd {
        child: KillOnDrop(child),
        port,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            http(port, "GET", "/health", "")
        } else {
            (0, String::new())
        };
        if status == 200 && body.contains("true") {
            return etcd;
        }
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With `jodis_name`/`jodis_addr`, the proxy registers itself in the coordinator once online
/// and removes the node when it stops.
#[test]
fn jodis_registration_follows_the_proxy() {
    let etcd = start_etcd();
    let a = start_redis(&[]);
    let port = crate::support::free_port();
    let admin = crate::support::free_port();
    let dir = std::env::temp_dir().join(format!("codis-proxy-jodis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("proxy.toml");
    std::fs::write(
        &conf,
        format!(
            "product_name = \"jd\"\nproxy_addr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:{admin}\"\njodis_name = \"etcd\"\njodis_addr = \"127.0.0.1:{}\"\njodis_timeout = \"4s\"\n",
            etcd.port
        ),
    )
    .unwrap();
    let slots = dir.join("slots.json");
    let all: Vec<serde_json::Value> = (0..1024)
        .map(|i| serde_json::json!({"id": i, "backend_addr": addr(&a)}))
        .collect();
    std::fs::write(&slots, serde_json::to_string(&all).unwrap()).unwrap();
    let child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_codis-proxy"))
            .args([
                "--config",
                conf.to_str().unwrap(),
                "--fillslots",
                slots.to_str().unwrap(),
            ])
            .args(["--log-level", "warn"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let coord = codis_coordinator::connect(
        "etcd",
        &format!("127.0.0.1:{}", etcd.port),
        "",
        Duration::from_secs(5),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let node = loop {
        let list = rt
            .block_on(coord.list("/jodis/jd", false))
            .unwrap_or_default();
        if let Some(path) = list.into_iter().next() {
            break path;
        }
        assert!(Instant::now() < deadline, "jodis node never appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    let data = rt.block_on(coord.read(&node, true)).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(v["state"], "online");
    assert!(node.ends_with(v["token"].as_str().unwrap()), "{node}");
    // The proxy serves, then stops on SIGTERM and takes its node away.
    assert_eq!(
        Client::connect(port).run("SET j 1"),
        Frame::Simple(b"OK".to_vec())
    );
    let pid = child.0.id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while rt.block_on(coord.read(&node, false)).unwrap().is_some() {
        assert!(Instant::now() < deadline, "jodis node outlived the proxy");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A backend that accepts connections but never answers: requests fail with a clear error
/// after `backend_recv_timeout`, never hang; other backends keep serving.
#[test]
fn silent_backend_times_out() {
    let good = start_redis(&[]);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        // Accept and keep connections open without reading or writing.
        let mut conns = Vec::new();
        silent.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok((s, _)) = silent.accept() {
                conns.push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut cfg = CoreConfig::default();
    cfg.backend.recv_timeout = Duration::from_secs(2);
    let p = TestProxy::start(cfg);
    p.assign(0..512, &good);
    let slots: Vec<Slot> = (512..1024)
        .map(|i| Slot {
            id: i,
            backend_addr: silent_addr.clone(),
            ..Slot::default()
        })
        .collect();
    p.fill(&slots);
    let key = (0..)
        .map(|i| format!("s{i}"))
        .find(|k| slot_of(k.as_bytes()) >= 512)
        .unwrap();
    let mut c = p.client();
    let t = Instant::now();
    let e = err_text(&c.run(&format!("GET {key}")));
    assert!(
        e.contains("backend conn reset") && e.contains("timeout"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    let near = (0..)
        .map(|i| format!("n{i}"))
        .find(|k| slot_of(k.as_bytes()) < 512)
        .unwrap();
    let mut other = p.client();
    assert_eq!(
        other.run(&format!("SET {near} 1")),
        Frame::Simple(b"OK".to_vec())
    );
    drop(held);
}

/// 10,000 clients on the `codis-proxy` binary: all served, memory bounded, and a new client
/// still served afterwards.
#[test]
fn ten_thousand_clients_on_the_binary() {
    let a = start_redis(&[]);
    let port = crate::support::free_port();
    let admin = crate::support::free_port();
    let dir = std::env::temp_dir().join(format!("codis-proxy-10k-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("proxy.toml");
    std::fs::write(
        &conf,
        format!(
            "product_name = \"tk\"\nproxy_addr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:{admin}\"\nproxy_max_clients = 20000\n"
        ),
    )
    .unwrap();
    let slots = dir.join("slots.json");
    let all: Vec<serde_json::Value> = (0..1024)
        .map(|i| serde_json::json!({"id": i, "backend_addr": addr(&a)}))
        .collect();
    std::fs::write(&slots, serde_json::to_string(&all).unwrap()).unwrap();
    let child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_codis-proxy"))
            .args([
                "--config",
                conf.to_str().unwrap(),
                "--fillslots",
                slots.to_str().unwrap(),
            ])
            .args(["--ncpu", "2", "--log-level", "error"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "proxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let n = 10_000;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    {
        use std::io::{Read, Write};
        for s in &mut conns {
            s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        }
        for s in &mut conns {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"+PONG\r\n");
        }
    }
    let with_clients = rss();
    assert!(
        with_clients < 256 << 20,
        "RSS with {n} clients: {} MiB",
        with_clients >> 20
    );
    drop(conns);
    let mut c = Client::connect(port);
    assert_eq!(c.run("SET tenk 1"), Frame::Simple(b"OK".to_vec()));
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `proto_type = "unix"`: clients on a unix socket are served like TCP ones.
#[test]
fn unix_socket_clients() {
    use std::io::{Read, Write};
    let a = start_redis(&[]);
    let path = std::env::temp_dir().join(format!("codis-proxy-{}.sock", a.port));
    let proxy = Proxy::new(CoreConfig::default());
    let (p2, path2) = (proxy.clone(), path.clone());
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = dataplane::proxy::io::Listener::bind("unix", path2.to_str().unwrap())
                .await
                .unwrap();
            run(l, p2).await
        });
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slots: Vec<Slot> = (0..1024)
        .map(|i| Slot {
            id: i,
            backend_addr: addr(&a),
            ..Slot::default()
        })
        .collect();
    rt.block_on(proxy.router.fill(&slots)).unwrap();
    proxy.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(s) => break s,
            Err(_) => {
                assert!(Instant::now() < deadline, "unix socket never appeared");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"SET u 1\r\nGET u\r\n").unwrap();
    let want = b"+OK\r\n$1\r\n1\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, want);
    proxy.close();
    t.join().unwrap();
    assert!(!path.exists(), "the socket file is removed on close");
}

/// A multi-key command whose keys share a slot but not a tag group (so one `SLOTSMGRTTAGONE`
/// does not move them all) on a slot in sync migration: every key is moved before it runs.
#[test]
fn sync_migration_moves_every_key_of_a_request() {
    let from = start_codis(&[]);
    let to = start_codis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &from);
    let k1 = "k0".to_string();
    let slot = slot_of(k1.as_bytes());
    let k2 = (1..)
        .map(|i| format!("k{i}"))
        .find(|k| slot_of(k.as_bytes()) == slot)
        .unwrap();
    let mut c = p.client();
    assert_eq!(c.run(&format!("SADD {k1} m1")), Frame::Integer(1));
    assert_eq!(c.run(&format!("SADD {k2} m2")), Frame::Integer(1));
    p.fill(&[Slot {
        id: slot as i64,
        backend_addr: addr(&to),
        migrate_from: addr(&from),
        forward_method: 0,
        ..Slot::default()
    }]);
    assert_eq!(
        c.run(&format!("SUNIONSTORE {k1} {k1} {k2}")),
        Frame::Integer(2)
    );
    assert_eq!(c.run(&format!("SCARD {k2}")), Frame::Integer(1));
    let mut src = Client::connect(from.port);
    assert_eq!(src.run("DBSIZE"), Frame::Integer(0));
    let mut dst = Client::connect(to.port);
    assert_eq!(dst.run(&format!("SCARD {k1}")), Frame::Integer(2));
    assert_eq!(dst.run(&format!("SCARD {k2}")), Frame::Integer(1));
}

/// Big values through the proxy: a SET arriving in small pieces (the session's buffer grows
/// for it), big replies passed on without a copy (`writev`) among small ones and merged MGET
/// replies, to a client that reads slowly: the same bytes as one redis-server answers.
#[test]
fn big_values_pass_through_like_one_redis() {
    let (p, _a, _b) = two_backends(CoreConfig::default());
    let single = start_redis(&[]);
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 23) as u8).collect();
    let mut big2 = big.clone();
    big2.reverse();
    let mut req = Vec::new();
    for args in [
        &[&b"SET"[..], b"big1", &big][..],
        &[b"SET", b"big2", &big2],
        &[b"SET", b"small", b"x"],
        &[b"GET", b"big1"],
        &[b"GET", b"small"],
        &[b"MGET", b"big1", b"small", b"big2", b"nokey"],
        &[b"APPEND", b"big1", b"tail"],
        &[b"GET", b"big1"],
        &[b"GETRANGE", b"big2", b"0", b"3"],
        &[b"GET", b"big2"],
        &[b"SET", b"endk", b"end-of-test"],
        &[b"GET", b"endk"],
    ] {
        let v: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        req.extend_from_slice(&Client::encode(&v));
    }
    let last = b"$11\r\nend-of-test\r\n";
    let want = dribble_and_read_slowly(single.port, &req, last);
    let got = dribble_and_read_slowly(p.port, &req, last);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "replies differ from one redis-server's");
}

/// A backend that declares an absurd bulk length (a corrupted stream, a service that is not
/// Redis) does not make the proxy reserve it: the proxy stays up, and when that backend
/// goes away the waiting client gets an error, as for any broken backend.
#[test]
fn a_bogus_bulk_length_from_a_backend_reserves_nothing() {
    use std::io::{Read, Write};
    for header in [&b"$1099511627776\r\n"[..], b"$9223372036854775800\r\n"] {
        let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fake_addr = fake.local_addr().unwrap().to_string();
        let header = header.to_vec();
        let backend = std::thread::spawn(move || {
            let (mut s, _) = fake.accept().unwrap();
            let mut buf = [0u8; 1024];
            // The proxy may probe first (PING, AUTH, SELECT): answer until a GET comes.
            loop {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "proxy closed the backend connection");
                let got = &buf[..n];
                if got.windows(3).any(|w| w.eq_ignore_ascii_case(b"GET")) {
                    break;
                }
                s.write_all(b"+OK\r\n").unwrap();
            }
            s.write_all(&header).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            // Gone with the value never sent.
        });
        let p = TestProxy::start(CoreConfig::default());
        let slots: Vec<Slot> = (0..1024)
            .map(|i| Slot {
                id: i,
                backend_addr: fake_addr.clone(),
                ..Slot::default()
            })
            .collect();
        p.fill(&slots);
        let mut c = p.client();
        c.send_raw(&Client::encode(&[b"GET".to_vec(), b"k".to_vec()]));
        backend.join().unwrap();
        let (reply, raw) = c
            .read_reply_within(Duration::from_secs(20))
            .expect("an answer once the backend is gone");
        assert!(
            matches!(reply, Frame::Error(_)),
            "GET answered {}",
            show(&raw)
        );
        assert_eq!(p.client().run("PING"), Frame::Simple(b"PONG".to_vec()));
    }
}
