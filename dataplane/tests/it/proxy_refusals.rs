//! What a proxy client must never reach (issue 15, items 1 and 2): codis-server's internal
//! commands, admin commands, commands the proxy does not know, and anything but pub/sub
//! commands in subscriber mode. Backends are our codis-server, as in a Codis deployment.

use std::time::{Duration, Instant};

use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::proxy::TestProxy;
use crate::support::{Client, Server, show, start_codis, start_redis};

fn err_text(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).to_string(),
        other => panic!("not an error: {other:?}"),
    }
}

fn refusal(name: &str) -> String {
    format!("ERR handle request, command '{name}' is not allowed")
}

/// A proxy with every slot on one codis-server.
fn one_backend(cfg: CoreConfig) -> (TestProxy, Server) {
    let s = start_codis(&[]);
    let p = TestProxy::start(cfg);
    p.assign(0..1024, &s);
    (p, s)
}

/// `INFO commandstats` lines of a backend naming `needle`.
fn backend_calls(s: &Server, needle: &str) -> Vec<String> {
    let mut c = Client::connect(s.port);
    let Frame::Bulk(info) = c.run("INFO commandstats") else {
        panic!("INFO commandstats")
    };
    String::from_utf8_lossy(&info)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn exec_wrapper_does_not_reach_a_backend() {
    let (p, s) = one_backend(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("SET x 1"), Frame::Simple(b"OK".to_vec()));
    let f = c.run("SLOTSMGRT-EXEC-WRAPPER x FLUSHALL");
    assert_eq!(err_text(&f), refusal("SLOTSMGRT-EXEC-WRAPPER"));
    let f = c.run("SLOTSMGRT-EXEC-WRAPPER x CONFIG GET maxmemory");
    assert_eq!(err_text(&f), refusal("SLOTSMGRT-EXEC-WRAPPER"));
    // Inline, and in lower case, it is the same command.
    c.send_raw(b"slotsmgrt-exec-wrapper x FLUSHALL\r\n");
    let f = c.read_reply().unwrap().0;
    assert_eq!(err_text(&f), refusal("SLOTSMGRT-EXEC-WRAPPER"));
    let mut direct = Client::connect(s.port);
    assert_eq!(direct.run("EXISTS x"), Frame::Integer(1));
    assert_eq!(c.run("GET x"), Frame::Bulk(b"1".to_vec()));
    assert_eq!(backend_calls(&s, "slotsmgrt"), Vec::<String>::new());
}

#[test]
fn migration_commands_do_not_reach_a_backend() {
    let (p, s) = one_backend(CoreConfig::default());
    let elsewhere = start_codis(&[]);
    let mut c = p.client();
    assert_eq!(c.run("SET x 1"), Frame::Simple(b"OK".to_vec()));
    let port = elsewhere.port.to_string();
    let attacks: Vec<(&str, Vec<&str>)> = vec![
        // Streams a key to a host of the client's choice, then deletes it here.
        (
            "SLOTSMGRTONE-ASYNC",
            vec![
                "SLOTSMGRTONE-ASYNC",
                "127.0.0.1",
                &port,
                "3000",
                "200",
                "1048576",
                "x",
            ],
        ),
        (
            "SLOTSMGRTTAGSLOT-ASYNC",
            vec![
                "SLOTSMGRTTAGSLOT-ASYNC",
                "127.0.0.1",
                &port,
                "3000",
                "200",
                "1048576",
                "0",
                "1",
            ],
        ),
        (
            "SLOTSMGRTONE",
            vec!["SLOTSMGRTONE", "127.0.0.1", &port, "3000", "x"],
        ),
        // Cancels the dashboard's migration, or waits on it.
        ("SLOTSMGRT-ASYNC-CANCEL", vec!["SLOTSMGRT-ASYNC-CANCEL"]),
        ("SLOTSMGRT-ASYNC-FENCE", vec!["SLOTSMGRT-ASYNC-FENCE"]),
        ("SLOTSMGRT-ASYNC-STATUS", vec!["SLOTSMGRT-ASYNC-STATUS"]),
        // Switch the database or the auth state of a shared backend connection.
        (
            "SLOTSRESTORE-ASYNC-SELECT",
            vec!["SLOTSRESTORE-ASYNC-SELECT", "1"],
        ),
        (
            "SLOTSRESTORE-ASYNC-AUTH",
            vec!["SLOTSRESTORE-ASYNC-AUTH", "wrong"],
        ),
        (
            "SLOTSRESTORE-ASYNC",
            vec!["SLOTSRESTORE-ASYNC", "delete", "x"],
        ),
        (
            "SLOTSRESTORE-ASYNC-ACK",
            vec!["SLOTSRESTORE-ASYNC-ACK", "0", "1"],
        ),
        ("SLOTSRESTORE", vec!["SLOTSRESTORE", "y", "0", "payload"]),
        ("SLOTSDEL", vec!["SLOTSDEL", "0"]),
    ];
    for (name, args) in &attacks {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let (f, raw) = c.cmd(&args);
        assert_eq!(err_text(&f), refusal(name), "{name}: {}", show(&raw));
        // The shared connections still serve db 0, authenticated.
        assert_eq!(c.run("GET x"), Frame::Bulk(b"1".to_vec()), "after {name}");
    }
    let mut other = p.client();
    assert_eq!(other.run("GET x"), Frame::Bulk(b"1".to_vec()));
    let mut target = Client::connect(elsewhere.port);
    assert_eq!(target.run("DBSIZE"), Frame::Integer(0));
    assert_eq!(Client::connect(s.port).run("DBSIZE"), Frame::Integer(1));
    assert_eq!(backend_calls(&s, "slots"), Vec::<String>::new());
}

#[test]
fn unknown_commands_are_refused_by_the_proxy() {
    let (p, s) = one_backend(CoreConfig::default());
    let mut c = p.client();
    let f = c.run("NOSUCHCMD x");
    assert_eq!(
        err_text(&f),
        "ERR handle request, unknown command 'NOSUCHCMD': codis-proxy does not support it"
    );
    // The name is shown as sent, escaped, and cut at 128 bytes.
    let (f, _) = c.cmd(&[b"no\r\nsuch", b"x"]);
    assert_eq!(
        err_text(&f),
        "ERR handle request, unknown command 'no\\r\\nsuch': codis-proxy does not support it"
    );
    let long = vec![b'z'; 1000];
    let (f, _) = c.cmd(&[&long]);
    assert!(
        err_text(&f).contains(&format!("'{}'", "z".repeat(128))),
        "{f:?}"
    );
    // A subcommand the proxy does not know, of a container it resolves by subcommand.
    let f = c.run("MEMORY NOSUCH x");
    assert!(err_text(&f).contains("unknown command 'MEMORY'"), "{f:?}");
    let f = c.run("MEMORY PURGE");
    assert_eq!(err_text(&f), refusal("MEMORY|PURGE"));
    assert!(matches!(c.run("MEMORY USAGE nokey"), Frame::Null));
    // Inside MULTI, an unknown or refused command aborts the transaction.
    for bad in ["NOSUCHCMD x", "SLOTSMGRT-EXEC-WRAPPER {t}a FLUSHALL"] {
        assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
        assert_eq!(c.run("SET {t}a 1"), Frame::Simple(b"QUEUED".to_vec()));
        let _ = err_text(&c.run(bad));
        assert!(err_text(&c.run("EXEC")).starts_with("EXECABORT"), "{bad}");
        assert_eq!(c.run("GET {t}a"), Frame::Null, "{bad}");
    }
    assert_eq!(backend_calls(&s, "slotsmgrt"), Vec::<String>::new());
    assert_eq!(backend_calls(&s, "exec"), Vec::<String>::new());
    // The session survived all of it.
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
}

#[test]
fn subscriber_mode_relays_only_pub_sub_commands() {
    let (p, s) = one_backend(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("SET x 1"), Frame::Simple(b"OK".to_vec()));
    // The reproduction: RESET went to the backend, and what followed was relayed.
    let f = c.run("SUBSCRIBE chan");
    assert!(matches!(&f, Frame::Array(_, v) if v.len() == 3), "{f:?}");
    assert_eq!(c.run("RESET"), Frame::Simple(b"RESET".to_vec()));
    assert_eq!(err_text(&c.run("FLUSHALL")), refusal("FLUSHALL"));
    assert_eq!(err_text(&c.run("CONFIG GET port")), refusal("CONFIG"));
    assert_eq!(Client::connect(s.port).run("EXISTS x"), Frame::Integer(1));
    let f = c.run("SUBSCRIBE chan");
    assert!(matches!(&f, Frame::Array(_, v) if v.len() == 3), "{f:?}");
    // Refused commands get the proxy's refusal, others Redis's subscriber-mode error.
    assert_eq!(err_text(&c.run("CONFIG GET port")), refusal("CONFIG"));
    let only = "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed \
                in this context";
    for (cmd, name) in [
        ("GET x", "get"),
        ("MEMORY USAGE x", "memory|usage"),
        ("XINFO STREAM x", "xinfo|stream"),
        ("SELECT 1", "select"),
        ("AUTH x", "auth"),
    ] {
        assert_eq!(
            err_text(&c.run(cmd)),
            format!("ERR Can't execute '{name}': {only}"),
            "{cmd}"
        );
    }
    assert!(err_text(&c.run("NOSUCHCMD")).contains("unknown command 'NOSUCHCMD'"));
    assert_eq!(
        c.run("PING"),
        Frame::Array(
            b'*',
            vec![Frame::Bulk(b"pong".to_vec()), Frame::Bulk(Vec::new())]
        )
    );
    assert_eq!(
        err_text(&c.run("RESET now")),
        "ERR wrong number of arguments for 'reset' command"
    );
    // RESET leaves subscriber mode in the proxy, then FLUSHALL is refused as usual.
    assert_eq!(c.run("RESET"), Frame::Simple(b"RESET".to_vec()));
    assert_eq!(err_text(&c.run("FLUSHALL")), refusal("FLUSHALL"));
    assert_eq!(Client::connect(s.port).run("EXISTS x"), Frame::Integer(1));
    assert_eq!(c.run("GET x"), Frame::Bulk(b"1".to_vec()));
    // The subscription is gone from the backend.
    let mut other = p.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match other.run("PUBLISH chan m") {
            Frame::Integer(0) => break,
            Frame::Integer(1) => {
                assert!(Instant::now() < deadline, "still subscribed after RESET");
                std::thread::sleep(Duration::from_millis(10));
            }
            f => panic!("{f:?}"),
        }
    }
    // Pipelined: the subscribe confirmation comes before +RESET.
    c.send_raw(b"SUBSCRIBE a\r\nRESET\r\nGET x\r\n");
    let f = c.read_reply().unwrap().0;
    assert!(matches!(&f, Frame::Array(_, v) if v[0] == Frame::Bulk(b"subscribe".to_vec())));
    assert_eq!(c.read_reply().unwrap().0, Frame::Simple(b"RESET".to_vec()));
    assert_eq!(c.read_reply().unwrap().0, Frame::Bulk(b"1".to_vec()));
    assert_eq!(backend_calls(&s, "flushall"), Vec::<String>::new());
    assert_eq!(backend_calls(&s, "config"), Vec::<String>::new());
    assert_eq!(backend_calls(&s, "reset"), Vec::<String>::new());
}

#[test]
fn reset_starts_the_session_over() {
    let (p, _s) = one_backend(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("SELECT 1"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("SET y 1"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("SET y 2"), Frame::Simple(b"QUEUED".to_vec()));
    assert_eq!(c.run("RESET"), Frame::Simple(b"RESET".to_vec()));
    assert_eq!(err_text(&c.run("EXEC")), "ERR EXEC without MULTI");
    assert_eq!(c.run("GET y"), Frame::Null);
    assert_eq!(c.run("SELECT 1"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("GET y"), Frame::Bulk(b"1".to_vec()));
    // With session_auth, RESET logs the client out, as Redis does with requirepass.
    let cfg = CoreConfig {
        session_auth: "secret".into(),
        ..CoreConfig::default()
    };
    let (p, _s) = one_backend(cfg);
    let mut c = p.client();
    assert_eq!(c.run("AUTH secret"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.run("GET y"), Frame::Null);
    assert_eq!(c.run("RESET"), Frame::Simple(b"RESET".to_vec()));
    assert!(err_text(&c.run("GET y")).starts_with("NOAUTH"));
}

/// Polls `cond` until it holds; panics with `what` after 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn array(items: &[&str]) -> Frame {
    Frame::Array(
        b'*',
        items
            .iter()
            .map(|i| Frame::Bulk(i.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn a_client_ping_never_passes_for_the_unsubscribe_marker() {
    let (p, s) = one_backend(CoreConfig::default());
    let forged = "codis-proxy-unsubscribe-marker";
    // The review's reproduction: the session was wedged, never saw the client leave, and kept
    // its backend connection (1000 of them exhausted max_clients).
    for _ in 0..3 {
        let mut c = p.client();
        c.send_raw(format!("SUBSCRIBE c\r\nPING {forged}\r\n").as_bytes());
        let f = c.read_reply().unwrap().0;
        assert!(matches!(&f, Frame::Array(_, v) if v.len() == 3), "{f:?}");
        assert_eq!(c.read_reply().unwrap().0, array(&["pong", forged]));
        drop(c);
    }
    eventually("a session outlived its client", || {
        p.proxy
            .stats
            .sessions_alive
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
    });
    let mut direct = Client::connect(s.port);
    eventually("a subscription outlived its client", || {
        direct.run("PUBSUB NUMSUB c")
            == Frame::Array(b'*', vec![Frame::Bulk(b"c".to_vec()), Frame::Integer(0)])
    });
    // Pipelined before UNSUBSCRIBE, the client's PING gets its own reply, and the session
    // leaves subscriber mode only after UNSUBSCRIBE.
    let mut c = p.client();
    assert_eq!(c.run("SET x 1"), Frame::Simple(b"OK".to_vec()));
    for marker in [forged.to_string(), format!("{forged}-0123")] {
        c.send_raw(
            format!("SUBSCRIBE c\r\nPING {marker}\r\nUNSUBSCRIBE\r\nPING\r\nGET x\r\n").as_bytes(),
        );
        let f = c.read_reply().unwrap().0;
        assert!(matches!(&f, Frame::Array(_, v) if v.len() == 3), "{f:?}");
        assert_eq!(c.read_reply().unwrap().0, array(&["pong", &marker]));
        let f = c.read_reply().unwrap().0;
        assert!(
            matches!(&f, Frame::Array(_, v) if v[0] == Frame::Bulk(b"unsubscribe".to_vec())),
            "{f:?}"
        );
        assert_eq!(c.read_reply().unwrap().0, Frame::Simple(b"PONG".to_vec()));
        assert_eq!(c.read_reply().unwrap().0, Frame::Bulk(b"1".to_vec()));
    }
}

#[test]
fn subscribe_without_a_channel_stays_in_normal_mode() {
    let (p, _s) = one_backend(CoreConfig::default());
    let mut c = p.client();
    assert_eq!(c.run("SET x 1"), Frame::Simple(b"OK".to_vec()));
    for name in ["subscribe", "psubscribe"] {
        assert_eq!(
            err_text(&c.run(&name.to_ascii_uppercase())),
            format!("ERR wrong number of arguments for '{name}' command")
        );
        assert_eq!(c.run("GET x"), Frame::Bulk(b"1".to_vec()), "{name}");
    }
}

/// Two Redis backends, slots 0..512 on the first, 512..1024 on the second.
fn two_backends() -> (TestProxy, Server, Server) {
    let a = start_redis(&[]);
    let b = start_redis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..512, &a);
    p.assign(512..1024, &b);
    (p, a, b)
}

#[test]
fn keys_of_a_request_must_lie_in_one_slot() {
    use codis_model::slot_of;
    let (p, ra, rb) = two_backends();
    let mut c = p.client();
    // `a` and `b` on different backends.
    let a = "a".to_string();
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|k| (slot_of(k.as_bytes()) < 512) != (slot_of(a.as_bytes()) < 512))
        .unwrap();
    assert_eq!(c.run(&format!("RPUSH {a} x")), Frame::Integer(1));
    let crossslot = "CROSSSLOT Keys in request don't hash to the same slot";
    let requests = [
        format!("RPOPLPUSH {a} {b}"),
        format!("LMOVE {a} {b} LEFT LEFT"),
        format!("SMOVE {a} {b} m"),
        format!("COPY {a} {b}"),
        format!("SORT {a} STORE {b}"),
        format!("SORT {a} LIMIT 0 1 ALPHA STORE {b}"),
        format!("ZRANGESTORE {b} {a} 0 -1"),
        format!("SUNIONSTORE {b} {a}"),
        format!("SDIFFSTORE {b} {a}"),
        format!("SINTERSTORE {b} {a}"),
        format!("SDIFF {a} {b}"),
        format!("SUNION {a} {b}"),
        format!("SINTER {a} {b}"),
        format!("LCS {a} {b}"),
        format!("PFMERGE {b} {a}"),
        format!("PFCOUNT {a} {b}"),
        format!("ZUNIONSTORE {b} 1 {a}"),
        format!("ZINTERSTORE {b} 1 {a}"),
        format!("ZDIFFSTORE {b} 1 {a}"),
        format!("ZUNION 2 {a} {b}"),
        format!("ZINTER 2 {a} {b}"),
        format!("ZDIFF 2 {a} {b}"),
        format!("ZINTERCARD 2 {a} {b}"),
        format!("SINTERCARD 2 {a} {b}"),
        format!("LMPOP 2 {a} {b} LEFT"),
        format!("ZMPOP 2 {a} {b} MIN"),
        format!("GEOSEARCHSTORE {b} {a} FROMLONLAT 0 0 BYRADIUS 1 km"),
        format!("GEORADIUS {a} 0 0 1 km STORE {b}"),
        format!("GEORADIUSBYMEMBER {a} m 1 km STOREDIST {b}"),
        format!("EVAL return 2 {a} {b}"),
    ];
    for req in &requests {
        assert_eq!(err_text(&c.run(req)), crossslot, "{req}");
    }
    // Nothing was written: `b` exists nowhere, `a` still holds its element.
    for r in [&ra, &rb] {
        assert_eq!(
            Client::connect(r.port).run(&format!("EXISTS {b}")),
            Frame::Integer(0)
        );
    }
    assert_eq!(c.run(&format!("LLEN {a}")), Frame::Integer(1));
    // Inside MULTI the same request aborts the transaction.
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(err_text(&c.run(&format!("RPOPLPUSH {a} {b}"))), crossslot);
    assert!(err_text(&c.run("EXEC")).starts_with("EXECABORT"));
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(
        c.run(&format!("LLEN {a}")),
        Frame::Simple(b"QUEUED".to_vec())
    );
    assert_eq!(err_text(&c.run(&format!("SUNIONSTORE {a} {b}"))), crossslot);
    assert!(err_text(&c.run("EXEC")).starts_with("EXECABORT"));
    // Hash tags put keys in one slot; keys of one slot in different tag groups work too.
    assert_eq!(c.run("RPUSH {t}a x y"), Frame::Integer(2));
    assert_eq!(c.run("RPOPLPUSH {t}a {t}b"), Frame::Bulk(b"y".to_vec()));
    assert_eq!(c.run("LMOVE {t}b t LEFT LEFT"), Frame::Bulk(b"y".to_vec()));
    assert_eq!(c.run("ZUNIONSTORE {t}z 1 {t}q"), Frame::Integer(0));
    assert_eq!(c.run("SORT {t}a ALPHA STORE {t}s"), Frame::Integer(1));
    assert_eq!(
        c.run("LRANGE {t}s 0 -1"),
        Frame::Array(b'*', vec![Frame::Bulk(b"x".to_vec())])
    );
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(
        c.run("RPOPLPUSH {t}a {t}c"),
        Frame::Simple(b"QUEUED".to_vec())
    );
    assert_eq!(
        c.run("EXEC"),
        Frame::Array(b'*', vec![Frame::Bulk(b"x".to_vec())])
    );
    // Scripts without keys still run.
    assert_eq!(c.run("EVAL return 0 0"), Frame::Null);
}

#[test]
fn options_that_reach_other_keys_or_databases_are_refused() {
    let s = start_redis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &s);
    let mut c = p.client();
    assert_eq!(c.run("SET {k}1 v"), Frame::Simple(b"OK".to_vec()));
    // COPY ... DB writes another database than the session's.
    for req in ["COPY {k}1 {k}2 DB 15", "COPY {k}1 {k}2 REPLACE db 0"] {
        assert_eq!(
            err_text(&c.run(req)),
            "ERR handle request, COPY's DB option is not allowed",
            "{req}"
        );
    }
    let mut direct = Client::connect(s.port);
    assert_eq!(direct.run("SELECT 15"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(direct.run("DBSIZE"), Frame::Integer(0));
    assert_eq!(c.run("COPY {k}1 {k}2"), Frame::Integer(1));
    // SORT's BY pattern and GET read keys of other slots: Redis Cluster's errors.
    assert_eq!(c.run("RPUSH l 2 1"), Frame::Integer(2));
    assert_eq!(c.run("SET w_1 9"), Frame::Simple(b"OK".to_vec()));
    for cmd in ["SORT", "SORT_RO"] {
        assert_eq!(
            err_text(&c.run(&format!("{cmd} l BY w_*"))),
            "ERR BY option of SORT denied in Cluster mode.",
            "{cmd}"
        );
        for get in ["GET x_*", "GET #", "LIMIT 0 1 GET #"] {
            assert_eq!(
                err_text(&c.run(&format!("{cmd} l {get}"))),
                "ERR GET option of SORT denied in Cluster mode.",
                "{cmd} {get}"
            );
        }
        assert_eq!(
            c.run(&format!("{cmd} l BY nosort")),
            Frame::Array(
                b'*',
                vec![Frame::Bulk(b"2".to_vec()), Frame::Bulk(b"1".to_vec())]
            )
        );
        assert_eq!(
            c.run(&format!("{cmd} l")),
            Frame::Array(
                b'*',
                vec![Frame::Bulk(b"1".to_vec()), Frame::Bulk(b"2".to_vec())]
            )
        );
    }
    // Inside MULTI too.
    assert_eq!(c.run("MULTI"), Frame::Simple(b"OK".to_vec()));
    assert!(err_text(&c.run("SORT l GET #")).starts_with("ERR GET option"));
    assert!(err_text(&c.run("EXEC")).starts_with("EXECABORT"));
    // ROLE reveals the group's master and replica addresses; COMMAND is forwarded.
    assert_eq!(err_text(&c.run("ROLE")), refusal("ROLE"));
    assert!(matches!(c.run("COMMAND COUNT"), Frame::Integer(n) if n > 200));
}
