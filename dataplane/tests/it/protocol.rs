//! Protocol robustness: malformed input gets Redis's exact error and closes only that
//! connection; inline commands; deep pipelines; huge declared lengths allocate nothing;
//! thousands of concurrent connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Client, dribble_and_read_slowly, show, start_codis, start_redis};

/// Sends raw bytes and returns everything the server writes until it closes or goes quiet.
pub(crate) fn exchange(port: u16, input: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(input).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn malformed_requests_match_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let cases: &[&[u8]] = &[
        b"*1\r\n+PING\r\n",
        b"*x\r\n",
        b"*1\r\n$x\r\n",
        b"*1\r\n$-5\r\nPING\r\n",
        b"*1\r\n$1073741824\r\n",
        b"*3000000000\r\n",
        b"PING\r\n*1\r\n:1\r\n",
        b"SET \"unbalanced\r\n",
        b"PING\r\nECHO 'it''s'\r\n",
        b"*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\nPING\r\n",
        b"\r\n\r\nPING\r\n*0\r\n*-1\r\nPING\r\n",
        b"ECHO a\0b\r\nPING\0junk\nECHO \"x\0y\"\r\n",
        // Redis takes the byte after a header's CR, and the two after a bulk, as the line end
        // without checking them.
        b"*2\rX$4\rXECHO!!$1\r\nk\n\nPING\r\n",
        b"*2\r\n$4\r\nECHO\r\n$1\rXk\r\n",
        // A CR where a `$` is expected: the error text shows it as a space.
        b"*1\r\n\r\nPING\r\n",
    ];
    for case in cases {
        let (a, closed_a) = exchange(redis.port, case);
        let (b, closed_b) = exchange(codis.port, case);
        assert_eq!(show(&a), show(&b), "input {}", show(case));
        assert_eq!(
            closed_a,
            closed_b,
            "close behaviour for input {}",
            show(case)
        );
    }
    // The server is still fine for others.
    let mut c = Client::connect(codis.port);
    assert_eq!(c.cmd(&[b"PING"]).1, b"+PONG\r\n");
}

#[test]
fn too_long_lines_are_refused() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    for case in [vec![b'a'; 70 * 1024], {
        let mut v = b"*1\r\n$".to_vec();
        v.extend(vec![b'1'; 70 * 1024]);
        v
    }] {
        let (a, _) = exchange(redis.port, &case);
        let (b, _) = exchange(codis.port, &case);
        assert_eq!(show(&a), show(&b));
        assert!(
            b.starts_with(b"-ERR Protocol error: too big"),
            "{}",
            show(&b)
        );
    }
}

#[test]
fn deep_pipeline_answers_in_order() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let mut req = Vec::new();
    for i in 0..20_000 {
        req.extend(Client::encode(&[
            b"SET".to_vec(),
            format!("k{i}").into_bytes(),
            format!("v{i}").into_bytes(),
        ]));
        req.extend(Client::encode(&[
            b"GET".to_vec(),
            format!("k{i}").into_bytes(),
        ]));
    }
    let writer = {
        let mut s = TcpStream::connect(("127.0.0.1", codis.port)).unwrap();
        let mut reader = s.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            s.write_all(&req).unwrap();
        });
        let mut all = Vec::new();
        let mut buf = vec![0u8; 65536];
        let expected: usize = (0..20_000)
            .map(|i| 5 + format!("v{i}").len() + 4 + format!("{}", format!("v{i}").len()).len() + 1)
            .sum();
        while all.len() < expected {
            let n = reader.read(&mut buf).unwrap();
            assert!(n > 0);
            all.extend_from_slice(&buf[..n]);
        }
        t.join().unwrap();
        all
    };
    let mut pos = 0;
    for i in 0..20_000 {
        assert_eq!(&writer[pos..pos + 5], b"+OK\r\n");
        pos += 5;
        let v = format!("v{i}");
        let exp = format!("${}\r\n{v}\r\n", v.len());
        assert_eq!(&writer[pos..pos + exp.len()], exp.as_bytes(), "reply {i}");
        pos += exp.len();
    }
    assert_eq!(c.cmd(&[b"DBSIZE"]).1, b":20000\r\n");
}

#[test]
fn huge_declared_lengths_allocate_nothing() {
    let codis = start_codis(&[]);
    // Declare a 500 MB bulk and a 2 billion element multibulk, send a few bytes, keep open.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", codis.port)).unwrap();
        s.write_all(b"*2\r\n$3\r\nSET\r\n$524288000\r\nabc")
            .unwrap();
        held.push(s);
        let mut s = TcpStream::connect(("127.0.0.1", codis.port)).unwrap();
        s.write_all(b"*2147483647\r\n$4\r\nPING\r\n").unwrap();
        held.push(s);
    }
    let mut c = Client::connect(codis.port);
    assert_eq!(c.cmd(&[b"PING"]).1, b"+PONG\r\n");
    let (_, info) = c.cmd(&[b"INFO", b"memory"]);
    let text = String::from_utf8_lossy(&info).into_owned();
    if let Some(line) = text.lines().find(|l| l.starts_with("used_memory:")) {
        let used: u64 = line["used_memory:".len()..].trim().parse().unwrap();
        assert!(
            used < 64 * 1024 * 1024,
            "used_memory {used} after huge declared lengths"
        );
    }
    drop(held);
}

#[test]
fn inline_commands_work() {
    let codis = start_codis(&[]);
    let (out, _) = exchange(codis.port, b"set \"a b\" 'c d'\r\nget \"a b\"\ndbsize\r\n");
    assert_eq!(show(&out), show(b"+OK\r\n$3\r\nc d\r\n:1\r\n"));
}

#[test]
fn ten_thousand_connections() {
    // 10,000 connections need 10,000 descriptors in this process and in the server (which
    // inherits our limit). Where the limit is lower, use what it allows and say so.
    let limit = open_files_limit();
    let n = 10_000.min(limit.saturating_sub(200));
    if n < 10_000 {
        eprintln!("open files limit is {limit}: testing {n} connections instead of 10,000");
    }
    assert!(
        n >= 500,
        "open files limit {limit} is too low for this test"
    );
    let max = (n + 1).to_string();
    let codis = start_codis(&["--maxclients", &max]);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(("127.0.0.1", codis.port)).unwrap();
        conns.push(s);
    }
    // Every connection is served.
    for s in conns.iter_mut() {
        s.write_all(b"PING\r\n").unwrap();
    }
    for s in conns.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
    }
    let mut c = Client::connect(codis.port);
    let (_, raw) = c.cmd(&[b"CLIENT", b"ID"]);
    assert!(raw.starts_with(b":"), "{}", show(&raw));
    // One more than maxclients is refused with Redis's error.
    let (out, _) = exchange(codis.port, b"PING\r\n");
    assert_eq!(show(&out), show(b"-ERR max number of clients reached\r\n"));
}

#[test]
fn pipeline_with_replies_over_the_batch_cap_completes() {
    // 1,000 GETs of a 10 KB value answer 10 MB: more than one reply batch (4 MB). The client
    // sends everything, then only reads: every reply must still come.
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let value = vec![b'v'; 10_000];
    c.cmd(&[b"SET", b"big", &value]);
    let mut req = Vec::new();
    for _ in 0..1000 {
        req.extend(Client::encode(&[b"GET".to_vec(), b"big".to_vec()]));
    }
    c.send_raw(&req);
    for i in 0..1000 {
        let (_, raw) = c
            .read_reply()
            .unwrap_or_else(|| panic!("reply {i} missing"));
        assert_eq!(raw.len(), 10_000 + 2 + 8, "reply {i}");
    }
}

#[test]
fn active_expiry_in_one_big_slot() {
    // Many keys with a TTL in one slot (a hash tag): active expiry removes them all without
    // being asked, in bounded steps.
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    for i in 0..5000 {
        c.cmd(&[b"SET", format!("{{t}}:{i}").as_bytes(), b"v", b"PX", b"50"]);
    }
    let start = std::time::Instant::now();
    loop {
        let (_, raw) = c.cmd(&[b"DBSIZE"]);
        if raw == b":0\r\n" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "keys left: {}",
            show(&raw)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The soft limit on open files of this process (from /proc/self/limits).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// Big values: a SET arriving in small pieces (the query buffer grows for it), and big
/// replies that go out by reference (`Out::bulk_shared`) among small ones, in a pipeline, in
/// MULTI/EXEC, after changes in place (which must not reach replies already queued), from
/// GET, MGET, GETEX, GETSET, SET GET and GETDEL, to a client that reads slowly: byte for
/// byte what redis-server answers.
#[test]
fn big_values_in_pipelines_match_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 23) as u8).collect();
    let cmd = |args: &[&[u8]]| {
        let v: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        Client::encode(&v)
    };
    let mut req = Vec::new();
    for args in [
        &[&b"SET"[..], b"big", &big][..],
        &[b"SET", b"small", b"x"],
        &[b"GET", b"big"],
        &[b"GET", b"small"],
        &[b"MGET", b"big", b"small", b"big", b"nokey"],
        &[b"APPEND", b"big", b"tail"],
        &[b"GET", b"big"],
        &[b"MULTI"],
        &[b"GET", b"big"],
        &[b"SETRANGE", b"big", b"0", b"ZZ"],
        &[b"GET", b"big"],
        &[b"INCR", b"big"],
        &[b"EXEC"],
        &[b"GETRANGE", b"big", b"0", b"3"],
        &[b"STRLEN", b"big"],
        &[b"GET", b"big"],
        &[b"DEL", b"big"],
        &[b"GET", b"big"],
        &[b"SET", b"g", &big],
        &[b"GET", b"g"],
        &[b"SETRANGE", b"g", b"299999", b"XYZ"],
        &[b"GETEX", b"g", b"PERSIST"],
        &[b"SETBIT", b"g", b"2500000", b"1"],
        &[b"GETSET", b"g", b"v"],
        &[b"SET", b"g", &big, b"GET"],
        &[b"GETDEL", b"g"],
        &[b"GET", b"g"],
        &[b"ECHO", b"end of test"],
    ] {
        req.extend_from_slice(&cmd(args));
    }
    let last = b"$11\r\nend of test\r\n";
    let want = dribble_and_read_slowly(redis.port, &req, last);
    let got = dribble_and_read_slowly(codis.port, &req, last);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "replies differ from redis-server's");
}
