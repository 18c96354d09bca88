//! codis-proxy under hostile or unlucky request flows: malformed framing on a migrating slot,
//! blocking calls and subscribers while slots move, and the bounds on what one client can make
//! the proxy hold in memory.

use std::sync::mpsc;
use std::time::Duration;

use codis_model::proxy::Slot;
use codis_model::slot_of;
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::protocol::exchange;
use crate::proxy::{TestProxy, migrate_slot, migrating, owned};
use crate::support::{Server, show, start_codis, start_redis};

/// Fills the proxy's table from another thread and waits for the fill to return; a fill that
/// does not return within a minute means a slot is wedged (a request never released it).
fn fill_returns(p: &TestProxy, slots: Vec<Slot>) {
    let router = p.proxy.router.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(router.fill(&slots));
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(ok) => assert!(ok, "fill refused"),
        Err(_) => panic!("the fill never returned: a request still holds the slot"),
    }
}

/// Item 9 of issue 15: framing that Redis accepts (a header's `\r` followed by any byte, a bulk
/// followed by any two bytes) on a key of a semi-async migrating slot is wrapped from the
/// parser's own spans: the reply is right, and the slot's migration can still end.
#[test]
fn lax_framing_on_a_migrating_slot_is_wrapped_and_never_wedges_it() {
    let from = start_codis(&[]);
    let to = start_codis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &from);
    let mut c = p.client();
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
    let slot = slot_of(b"k");
    fill_returns(&p, vec![migrating(slot, &from, &to, 1)]);
    let cases: &[(&[u8], &[u8])] = &[
        // A header's CR not followed by LF (the old re-parse panicked on this one).
        (b"*2\r\n$3\rXGET\r\n$1\r\nk\r\n", b"$1\r\nv\r\n"),
        // The key's header ends with CR and a byte that is not LF.
        (b"*2\r\n$3\r\nGET\r\n$1\rXk\r\n", b"$1\r\nv\r\n"),
        // Bulks followed by two bytes that are not CR LF.
        (b"*3\r\n$6\r\nAPPENDxx$1\r\nk..$1\r\nw!!", b":2\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\n\n", b"$2\r\nvw\r\n"),
    ];
    for (req, want) in cases {
        c.send_raw(req);
        let got = c.read_reply().expect("the proxy closed the session").1;
        assert_eq!(show(&got), show(want), "request {}", show(req));
    }
    // The migration ends: the fill that finishes it returns.
    fill_returns(&p, vec![owned(slot, &to)]);
    let mut other = p.client();
    assert_eq!(other.run("PING"), Frame::Simple(b"PONG".to_vec()));
}

/// The proxy frames requests exactly as Redis does (it forwards them unchanged, so it must see
/// the same arguments the server will), and its protocol errors stay one line.
#[test]
fn proxy_framing_matches_redis() {
    let redis = start_redis(&[]);
    let backend = start_redis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &backend);
    let cases: &[&[u8]] = &[
        b"*2\rX$4\rXECHO!!$1\r\nk\n\nPING\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\rXk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*1\r\n\r\nPING\r\n",
        b"*1\r\n$4\r\nPING\n\n*1\r\n+PING\r\n",
    ];
    for case in cases {
        let (a, closed_a) = exchange(redis.port, case);
        let (b, closed_b) = exchange(p.port, case);
        assert_eq!(show(&a), show(&b), "input {}", show(case));
        assert_eq!(closed_a, closed_b, "close behaviour for {}", show(case));
    }
}

fn proxy_on(backend: &Server, cfg: CoreConfig) -> TestProxy {
    let p = TestProxy::start(cfg);
    p.assign(0..1024, backend);
    p
}

/// Item 6 of issue 15: a subscriber that does not read is disconnected once the pushes queued
/// for it reach `session_max_pubsub_output` (Redis's pubsub output buffer hard limit), and the
/// queue never held more than that.
#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_output_limit() {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let backend = start_redis(&[]);
    let limit = 1024 * 1024;
    let p = proxy_on(
        &backend,
        CoreConfig {
            max_pubsub_output: limit,
            ..CoreConfig::default()
        },
    );
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").unwrap();
    let mut got = [0u8; 64];
    let mut n = 0;
    while !got[..n].ends_with(b":1\r\n") {
        n += sub.read(&mut got[n..]).unwrap();
    }
    // 40 MB published, far more than the socket buffers between proxy and subscriber hold.
    let mut publ = p.client();
    let msg = "m".repeat(100_000);
    for _ in 0..400 {
        match publ.run(&format!("PUBLISH news {msg}")) {
            Frame::Integer(_) => {}
            other => panic!("PUBLISH: {other:?}"),
        }
    }
    // The subscriber was disconnected: reading drains what was sent, then the end.
    sub.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match sub.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => total += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the subscriber was never disconnected ({total} bytes read): {e}"),
        }
    }
    assert!(total < 40_000_000, "the subscriber got everything: {total}");
    let stats = &p.proxy.stats;
    assert_eq!(stats.pubsub_output_kills.load(Ordering::Relaxed), 1);
    let peak = stats.pubsub_output_peak.load(Ordering::Relaxed);
    assert!(peak > 0 && peak < limit as u64, "peak {peak}");
    // The proxy serves others, and the publisher sees no subscriber left.
    assert_eq!(publ.run("PUBLISH news x"), Frame::Integer(0));
}

/// Item 6: while a blocking pop waits, the proxy reads at most about a MiB ahead from that
/// client, then stops reading it (back-pressure); the session carries on once the pop returns.
#[test]
fn input_read_while_a_pop_waits_is_bounded() {
    let backend = start_redis(&[]);
    let p = proxy_on(&backend, CoreConfig::default());
    let mut c = p.client();
    let mut w = c.try_clone_writer();
    c.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
    // One SET of a 64 MB value pipelined behind it.
    let size = 64 << 20;
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${size}\r\n").into_bytes();
    req.resize(req.len() + size, b'x');
    req.extend_from_slice(b"\r\n");
    let (tx, rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        for chunk in req.chunks(1 << 20) {
            w.send_raw(chunk);
            sent += chunk.len();
            let _ = tx.send(sent);
        }
    });
    // The writer stalls: the proxy stopped reading long before the end.
    while let Ok(sent) = rx.recv_timeout(Duration::from_secs(3)) {
        assert!(
            sent < size,
            "the proxy read the whole 64 MB while the pop waited"
        );
    }
    // The pop is answered, then the SET goes through.
    let mut pusher = p.client();
    assert_eq!(pusher.run("RPUSH q job"), Frame::Integer(1));
    let (f, _) = c.read_reply().unwrap();
    assert_eq!(
        f,
        Frame::Array(
            b'*',
            vec![Frame::Bulk(b"q".to_vec()), Frame::Bulk(b"job".to_vec())]
        )
    );
    writer.join().unwrap();
    assert_eq!(c.read_reply().unwrap().0, Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("STRLEN big"), Frame::Integer(size as i64));
}

/// Item 6: a transaction never closed cannot queue without bound: past `max_tx_queued` the
/// transaction is discarded (EXEC answers EXECABORT) and nothing more is kept.
#[test]
fn an_unclosed_transaction_is_bounded() {
    let backend = start_redis(&[]);
    let p = proxy_on(
        &backend,
        CoreConfig {
            max_tx_queued: 1 << 20,
            ..CoreConfig::default()
        },
    );
    let mut c = p.client();
    let v = "v".repeat(600_000);
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(
        c.run(&format!("SET k {v}")),
        Frame::Simple(b"QUEUED".to_vec())
    );
    let e = match c.run(&format!("SET k {v}")) {
        Frame::Error(e) => String::from_utf8_lossy(&e).to_string(),
        other => panic!("queued past the limit: {other:?}"),
    };
    assert!(e.contains("transaction discarded"), "{e}");
    assert_eq!(
        c.run(&format!("SET k {v}")),
        Frame::Simple(b"QUEUED".to_vec())
    );
    match c.run("EXEC") {
        Frame::Error(e) => assert!(e.starts_with(b"EXECABORT"), "{}", show(&e)),
        other => panic!("EXEC ran: {other:?}"),
    }
    assert_eq!(c.run("GET k"), Frame::Null);
}

/// Item 6: with `session_auth` set, a client that has not authenticated gets Redis's limits
/// (at most 10 arguments, bulks of at most 16 KiB), with redis-server's exact replies.
#[test]
fn unauthenticated_clients_get_redis_limits() {
    let redis = start_redis(&[]);
    let mut admin = crate::support::Client::connect(redis.port);
    assert_eq!(
        admin.run("CONFIG SET requirepass pw"),
        Frame::Simple(b"OK".to_vec())
    );
    let backend = start_redis(&[]);
    let p = proxy_on(
        &backend,
        CoreConfig {
            session_auth: "pw".into(),
            ..CoreConfig::default()
        },
    );
    let mut big_bulk = b"*2\r\n$3\r\nGET\r\n$16384\r\n".to_vec();
    big_bulk.extend(vec![b'a'; 16384]);
    big_bulk.extend_from_slice(b"\r\n");
    let cases: Vec<Vec<u8>> = vec![
        b"*11\r\n".to_vec(),
        b"*10\r\n$1\r\na\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n$16385\r\n".to_vec(),
        b"*1\r\n$16385\r\n".to_vec(),
        big_bulk,
    ];
    for case in &cases {
        let (a, closed_a) = exchange(redis.port, case);
        let (b, closed_b) = exchange(p.port, case);
        // The proxy's NOAUTH text is Codis's (no final dot); the protocol errors are Redis's.
        let a = show(&a).replace("required.", "required");
        assert_eq!(a, show(&b), "input {}", show(case));
        assert_eq!(closed_a, closed_b, "close behaviour for {}", show(case));
    }
    // After AUTH the limits are gone.
    let mut c = p.client();
    assert_eq!(c.run("AUTH pw"), Frame::Simple(b"OK".to_vec()));
    let mut args: Vec<&[u8]> = vec![b"DEL"];
    args.extend(std::iter::repeat_n(&b"k"[..], 11));
    assert_eq!(c.cmd(&args).0, Frame::Integer(0));
}

/// Moves `slot` from `from` to `to` as the dashboard does: the proxy learns the migration
/// (`method` 0 sync, 1 semi-async), the source moves the slot, the proxy learns the end.
fn move_slot(p: &TestProxy, slot: usize, from: &Server, to: &Server, method: i64) {
    fill_returns(p, vec![migrating(slot, from, to, method)]);
    migrate_slot(from, to, slot, method);
    fill_returns(p, vec![owned(slot, to)]);
}

/// Item 5 of issue 15, verbatim: `BLPOP q 0` through the proxy, the slot of q moves to the
/// other group, `LPUSH q hello` through the proxy: the BLPOP returns hello.
#[test]
fn a_blocked_pop_follows_its_slot() {
    let a = start_codis(&[]);
    let b = start_codis(&[]);
    let p = proxy_on(&a, CoreConfig::default());
    let slot = slot_of(b"q");
    let mut waiter = p.client();
    waiter.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
    // The pop is blocked on a before the move starts.
    let mut direct_a = crate::support::Client::connect(a.port);
    loop {
        if let Frame::Bulk(info) = direct_a.run("INFO clients")
            && String::from_utf8_lossy(&info).contains("blocked_clients:1")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    move_slot(&p, slot, &a, &b, 1);
    let mut pusher = p.client();
    assert_eq!(pusher.run("LPUSH q hello"), Frame::Integer(1));
    assert_eq!(
        waiter.read_reply().expect("the pop never returned").0,
        Frame::Array(
            b'*',
            vec![Frame::Bulk(b"q".to_vec()), Frame::Bulk(b"hello".to_vec())]
        )
    );
    // The element was taken once, from the new owner.
    assert_eq!(pusher.run("LLEN q"), Frame::Integer(0));
    // Back with the sync method: a pop with a timeout that moves still times out as asked.
    waiter.send_raw(b"*3\r\n$5\r\nBRPOP\r\n$1\r\nq\r\n$1\r\n2\r\n");
    move_slot(&p, slot, &b, &a, 0);
    assert_eq!(waiter.read_reply().unwrap().0, Frame::Null);
    // And one that waits for ever gets what is pushed after a sync move.
    waiter.send_raw(b"*3\r\n$5\r\nBRPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
    move_slot(&p, slot, &a, &b, 0);
    assert_eq!(pusher.run("LPUSH q again"), Frame::Integer(1));
    assert_eq!(
        waiter.read_reply().expect("the pop never returned").0,
        Frame::Array(
            b'*',
            vec![Frame::Bulk(b"q".to_vec()), Frame::Bulk(b"again".to_vec())]
        )
    );
}

/// Item 5: a blocking pop runs after the requests pipelined before it (a `DEL q` queued on the
/// shared connection must not be overtaken by the pop on the session's own connection).
#[test]
fn a_blocking_pop_keeps_pipeline_order() {
    let backend = start_redis(&[]);
    let p = proxy_on(&backend, CoreConfig::default());
    let mut c = p.client();
    for round in 0..5 {
        assert_eq!(c.run("RPUSH q x"), Frame::Integer(1));
        let mut req = Vec::new();
        for i in 0..2000 {
            req.extend_from_slice(format!("SET k{i} {i}\r\n").as_bytes());
        }
        req.extend_from_slice(b"DEL q\r\nBLPOP q 0.2\r\n");
        c.send_raw(&req);
        for _ in 0..2000 {
            assert_eq!(c.read_reply().unwrap().0, Frame::Simple(b"OK".to_vec()));
        }
        assert_eq!(
            c.read_reply().unwrap().0,
            Frame::Integer(1),
            "round {round}"
        );
        assert_eq!(
            c.read_reply().unwrap().0,
            Frame::Null,
            "round {round}: the pop ran before the DEL"
        );
    }
}

/// What the proxy uses to move a blocked pop: `CLIENT UNBLOCK <id> [TIMEOUT]` on codis-server
/// answers as redis-server does, and the blocked call answers as if it timed out.
#[test]
fn client_unblock_matches_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    for server in [&redis, &codis] {
        let mut blocked = crate::support::Client::connect(server.port);
        let id = match blocked.run("CLIENT ID") {
            Frame::Integer(n) => n,
            other => panic!("CLIENT ID: {other:?}"),
        };
        blocked.send_raw(b"BLPOP nothing 0\r\n");
        let mut admin = crate::support::Client::connect(server.port);
        let unblock = format!("CLIENT UNBLOCK {id} TIMEOUT");
        let got = loop {
            match admin.run(&unblock) {
                Frame::Integer(0) => std::thread::sleep(Duration::from_millis(10)),
                other => break other,
            }
        };
        assert_eq!(got, Frame::Integer(1));
        assert_eq!(blocked.read_reply().unwrap().1, b"*-1\r\n");
        assert_eq!(admin.run(&unblock), Frame::Integer(0));
        assert_eq!(
            admin.run("CLIENT UNBLOCK 999999"),
            Frame::Integer(0),
            "port {}",
            server.port
        );
        assert_eq!(
            show(&admin.cmd(&[b"CLIENT", b"UNBLOCK", b"1", b"FOO"]).1),
            "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\\r\\n"
        );
    }
}

/// Item 5: subscribers follow the pub/sub server (the master of slot 0, where PUBLISH goes)
/// when slot 0 moves to another group.
#[test]
fn subscribers_follow_slot_zero() {
    let a = start_redis(&[]);
    let b = start_redis(&[]);
    let p = proxy_on(&a, CoreConfig::default());
    let mut sub = p.client();
    sub.send_raw(b"SUBSCRIBE news\r\nPSUBSCRIBE n*\r\n");
    sub.read_reply().unwrap();
    sub.read_reply().unwrap();
    fill_returns(&p, vec![owned(0, &b)]);
    // PUBLISH goes to b at once; the subscriber's session moves when it sees the new table.
    let mut publ = p.client();
    let mut n = 0;
    while n < 100 {
        match publ.run("PUBLISH news hello") {
            Frame::Integer(2) => break,
            Frame::Integer(0) => n += 1,
            other => panic!("PUBLISH: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        n < 100,
        "the subscriber never moved to the new pub/sub server"
    );
    let mut got = Vec::new();
    while got.len() < 2 {
        match sub.read_reply().unwrap().0 {
            Frame::Array(_, v) if v[0] == Frame::Bulk(b"message".to_vec()) => got.push(v),
            Frame::Array(_, v) if v[0] == Frame::Bulk(b"pmessage".to_vec()) => got.push(v),
            other => panic!("unexpected push: {other:?}"),
        }
    }
    assert!(
        got.iter()
            .all(|v| v.last() == Some(&Frame::Bulk(b"hello".to_vec())))
    );
    // Leaving subscriber mode still works on the new server.
    sub.send_raw(b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n");
    sub.read_reply().unwrap();
    sub.read_reply().unwrap();
    assert_eq!(sub.run("PING"), Frame::Simple(b"PONG".to_vec()));
}
