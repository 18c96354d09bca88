//! Integration tests: migrate_sync (SLOTSRESTORE and the synchronous SLOTSMGRT* family).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataplane::resp::frame::{Frame, FrameError};

use crate::support::{Client, free_port, show, start_codis};

/// A raw reply as text (no escaping: error lines contain quotes).
fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn ints(f: &Frame) -> Vec<i64> {
    match f {
        Frame::Array(_, items) => items.iter().map(int).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn bulk(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Bulk(b) => b.clone(),
        other => panic!("not a bulk: {other:?}"),
    }
}

fn ok(c: &mut Client, args: &[&[u8]]) {
    let (_, raw) = c.cmd(args);
    assert_eq!(
        show(&raw),
        "+OK\\r\\n",
        "{:?}",
        args.first().map(|a| show(a))
    );
}

/// Every key of the current db with its DUMP payload and PTTL.
fn snapshot(c: &mut Client) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    let (f, _) = c.cmd(&[b"KEYS", b"*"]);
    let Frame::Array(_, keys) = f else {
        panic!("KEYS: {f:?}")
    };
    let mut m = BTreeMap::new();
    for k in keys {
        let k = bulk(&k);
        let dump = bulk(&c.cmd(&[b"DUMP", &k]).0);
        let pttl = int(&c.cmd(&[b"PTTL", &k]).0);
        m.insert(k, (dump, pttl));
    }
    m
}

/// Checks that `after` holds exactly the keys of `before`, same payloads, TTLs close.
fn assert_same(
    before: &BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    after: &BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
) {
    assert_eq!(before.len(), after.len(), "key count");
    for (k, (dump, pttl)) in before {
        let (d2, p2) = after
            .get(k)
            .unwrap_or_else(|| panic!("missing key {}", show(k)));
        assert!(dump == d2, "payload differs for {}", show(k));
        if *pttl < 0 {
            assert_eq!(*p2, *pttl, "ttl of {}", show(k));
        } else {
            assert!(
                *p2 > 0 && *p2 <= *pttl && pttl - p2 < 30_000,
                "ttl of {}: {pttl} -> {p2}",
                show(k)
            );
        }
    }
}

/// Fills the current db with a varied dataset; returns the tags used for tagged keys.
fn populate(c: &mut Client, rng: &mut Rng) -> Vec<String> {
    for i in 0..600 {
        let k = format!("str:{i}");
        let v = rng.bytes(40);
        c.cmd(&[b"SET", k.as_bytes(), &v]);
    }
    for i in 0..20 {
        c.cmd(&[b"SET", format!("empty:{i}").as_bytes(), b""]);
        c.cmd(&[
            b"SET",
            format!("int:{i}").as_bytes(),
            (i * 1000).to_string().as_bytes(),
        ]);
    }
    for k in [
        &b"bin\x00key"[..],
        b"cr\r\nlf",
        b"\x00",
        b"\r\n",
        b"{\x00}\r\n",
    ] {
        let v = rng.bytes(10);
        c.cmd(&[b"SET", k, &v]);
    }
    for i in 0..60 {
        let k = format!("list:{i}");
        let n = 1 + rng.below(20);
        let mut args: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), k.into_bytes()];
        args.extend((0..n).map(|_| rng.bytes(12)));
        c.cmd(&args.iter().map(|a| &a[..]).collect::<Vec<_>>());
        let k = format!("hash:{i}");
        let mut args: Vec<Vec<u8>> = vec![b"HSET".to_vec(), k.into_bytes()];
        for j in 0..1 + rng.below(20) {
            args.push(format!("f{j}").into_bytes());
            args.push(rng.bytes(12));
        }
        c.cmd(&args.iter().map(|a| &a[..]).collect::<Vec<_>>());
        let k = format!("set:{i}");
        let mut args: Vec<Vec<u8>> = vec![b"SADD".to_vec(), k.into_bytes()];
        for j in 0..1 + rng.below(20) {
            // Half intsets, half string sets.
            if i % 2 == 0 {
                args.push(j.to_string().into_bytes());
            } else {
                args.push(rng.bytes(8));
            }
        }
        c.cmd(&args.iter().map(|a| &a[..]).collect::<Vec<_>>());
    }
    // Big values, encoded as hashtables / quicklists.
    let big: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("element-{i}").into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![b"RPUSH", b"big:list"];
    args.extend(big.iter().map(|b| &b[..]));
    c.cmd(&args);
    let mut args: Vec<&[u8]> = vec![b"SADD", b"big:set"];
    args.extend(big.iter().map(|b| &b[..]));
    c.cmd(&args);
    let mut args: Vec<&[u8]> = vec![b"HSET", b"big:hash"];
    for b in &big {
        args.push(b);
        args.push(b);
    }
    c.cmd(&args);
    // TTLs.
    for i in 0..100 {
        let k = format!("ttl:{i}");
        let ms = 100_000 + rng.below(1_000_000);
        c.cmd(&[b"SET", k.as_bytes(), b"v", b"PX", ms.to_string().as_bytes()]);
    }
    c.cmd(&[b"PEXPIRE", b"big:hash", b"500000"]);
    // Tagged keys.
    let tags: Vec<String> = (0..30).map(|t| format!("tag{t}")).collect();
    for t in &tags {
        for n in 0..1 + rng.below(8) {
            let k = format!("{{{t}}}:{n}");
            c.cmd(&[b"SET", k.as_bytes(), &rng.bytes(20)]);
        }
        c.cmd(&[b"RPUSH", format!("{{{t}}}:list").as_bytes(), b"a", b"b"]);
    }
    tags
}

#[test]
fn migrates_every_slot_byte_for_byte() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let mut s = Client::connect(src.port);
    let mut d = Client::connect(dst.port);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let tags = populate(&mut s, &mut rng);
    // A second database, to exercise SELECT on the cached socket.
    ok(&mut s, &[b"SELECT", b"3"]);
    for i in 0..50 {
        s.cmd(&[b"SET", format!("db3:{i}").as_bytes(), b"x"]);
    }
    let before3 = snapshot(&mut s);
    ok(&mut s, &[b"SELECT", b"0"]);
    let before = snapshot(&mut s);
    let port = dst.port.to_string();
    let port = port.as_bytes();

    // A few keys one by one.
    for k in ["str:1", "list:1", "hash:1", "set:1", "big:list", "ttl:1"] {
        let r = s
            .cmd(&[b"SLOTSMGRTONE", b"127.0.0.1", port, b"1000", k.as_bytes()])
            .0;
        assert_eq!(int(&r), 1, "{k}");
    }
    let r = s
        .cmd(&[b"SLOTSMGRTONE", b"127.0.0.1", port, b"1000", b"str:1"])
        .0;
    assert_eq!(int(&r), 0, "already moved");
    // Tag groups: the whole group moves at once.
    let t0 = &tags[0];
    let n0 = before
        .keys()
        .filter(|k| k.starts_with(format!("{{{t0}}}").as_bytes()))
        .count() as i64;
    let r = s
        .cmd(&[
            b"SLOTSMGRTTAGONE",
            b"127.0.0.1",
            port,
            b"1000",
            format!("{{{t0}}}:0").as_bytes(),
        ])
        .0;
    assert_eq!(int(&r), n0);
    let t1 = &tags[1];
    let n1 = before
        .keys()
        .filter(|k| k.starts_with(format!("{{{t1}}}").as_bytes()))
        .count() as i64;
    let slot1 = codis_model::slot_of(format!("{{{t1}}}").as_bytes());
    let only_tag1 = before
        .keys()
        .all(|k| codis_model::slot_of(k) != slot1 || k.starts_with(format!("{{{t1}}}").as_bytes()));
    let r = ints(
        &s.cmd(&[
            b"SLOTSMGRTTAGSLOT",
            b"127.0.0.1",
            port,
            b"1000",
            slot1.to_string().as_bytes(),
        ])
        .0,
    );
    if only_tag1 {
        assert_eq!(r, vec![n1, 0]);
    } else {
        assert!(r[0] >= 1, "{r:?}");
    }
    // Untagged key through TAGONE: like ONE.
    let r = s
        .cmd(&[b"SLOTSMGRTTAGONE", b"127.0.0.1", port, b"0", b"str:2"])
        .0;
    assert_eq!(int(&r), 1);

    // Everything else, slot by slot, as the dashboard does.
    loop {
        let (f, _) = s.cmd(&[b"SLOTSINFO"]);
        let Frame::Array(_, slots) = f else { panic!() };
        if slots.is_empty() {
            break;
        }
        for sl in slots {
            let slot = ints(&sl)[0].to_string();
            loop {
                let r = ints(
                    &s.cmd(&[
                        b"SLOTSMGRTSLOT",
                        b"127.0.0.1",
                        port,
                        b"1000",
                        slot.as_bytes(),
                    ])
                    .0,
                );
                assert!(r[0] == 1 || r[0] == 0, "{r:?}");
                if r[1] == 0 {
                    break;
                }
            }
        }
    }
    // Database 3, with the tag variant of the slot loop.
    ok(&mut s, &[b"SELECT", b"3"]);
    for slot in 0..1024 {
        let slot = slot.to_string();
        loop {
            let r = ints(
                &s.cmd(&[
                    b"SLOTSMGRTTAGSLOT",
                    b"127.0.0.1",
                    port,
                    b"1000",
                    slot.as_bytes(),
                ])
                .0,
            );
            if r[1] == 0 {
                break;
            }
        }
    }
    assert_eq!(int(&s.cmd(&[b"DBSIZE"]).0), 0);
    ok(&mut s, &[b"SELECT", b"0"]);
    assert_eq!(int(&s.cmd(&[b"DBSIZE"]).0), 0);
    assert_eq!(show(&s.cmd(&[b"SLOTSINFO"]).1), "*0\\r\\n");
    ok(&mut s, &[b"SLOTSCHECK"]);

    let after = snapshot(&mut d);
    assert_same(&before, &after);
    ok(&mut d, &[b"SLOTSCHECK"]);
    ok(&mut d, &[b"SELECT", b"3"]);
    let after3 = snapshot(&mut d);
    assert_same(&before3, &after3);
    ok(&mut d, &[b"SLOTSCHECK"]);
}

#[test]
fn migrates_with_requirepass() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let other = start_codis(&[]);
    for (srv, pass) in [(&src, "s3cret"), (&dst, "s3cret"), (&other, "different")] {
        let mut c = Client::connect(srv.port);
        ok(
            &mut c,
            &[b"CONFIG", b"SET", b"requirepass", pass.as_bytes()],
        );
    }
    let mut s = Client::connect(src.port);
    ok(&mut s, &[b"AUTH", b"s3cret"]);
    for i in 0..20 {
        s.cmd(&[b"SET", format!("{{a}}:{i}").as_bytes(), b"v"]);
        s.cmd(&[b"SET", format!("k:{i}").as_bytes(), b"v"]);
    }
    let port = dst.port.to_string();
    let r = s
        .cmd(&[
            b"SLOTSMGRTTAGONE",
            b"127.0.0.1",
            port.as_bytes(),
            b"1000",
            b"{a}:0",
        ])
        .0;
    assert_eq!(int(&r), 20);
    // The cached socket is already authenticated: more keys go over it.
    for i in 0..20 {
        let k = format!("k:{i}");
        let r = s
            .cmd(&[
                b"SLOTSMGRTONE",
                b"127.0.0.1",
                port.as_bytes(),
                b"1000",
                k.as_bytes(),
            ])
            .0;
        assert_eq!(int(&r), 1);
    }
    assert_eq!(int(&s.cmd(&[b"DBSIZE"]).0), 0);
    let mut d = Client::connect(dst.port);
    ok(&mut d, &[b"AUTH", b"s3cret"]);
    assert_eq!(int(&d.cmd(&[b"DBSIZE"]).0), 40);
    // A target with another password refuses the AUTH: the key stays.
    s.cmd(&[b"SET", b"stay", b"v"]);
    let port = other.port.to_string();
    let (_, raw) = s.cmd(&[
        b"SLOTSMGRTONE",
        b"127.0.0.1",
        port.as_bytes(),
        b"1000",
        b"stay",
    ]);
    assert_eq!(text(&raw), "-ERR error on slotsrestore, auth failed\r\n");
    assert_eq!(int(&s.cmd(&[b"EXISTS", b"stay"]).0), 1);
}

#[test]
fn unreachable_or_dead_target_keeps_keys() {
    let src = start_codis(&[]);
    let mut s = Client::connect(src.port);
    for i in 0..10 {
        s.cmd(&[b"SET", format!("k:{i}").as_bytes(), b"v"]);
    }
    // Nobody listens there.
    let port = free_port().to_string();
    let (_, raw) = s.cmd(&[
        b"SLOTSMGRTONE",
        b"127.0.0.1",
        port.as_bytes(),
        b"200",
        b"k:0",
    ]);
    assert!(show(&raw).starts_with("-IOERR "), "{}", show(&raw));
    let slot = codis_model::slot_of(b"k:1").to_string();
    let (_, raw) = s.cmd(&[
        b"SLOTSMGRTSLOT",
        b"127.0.0.1",
        port.as_bytes(),
        b"200",
        slot.as_bytes(),
    ]);
    assert!(show(&raw).starts_with("-IOERR "), "{}", show(&raw));
    // Unknown host.
    let (_, raw) = s.cmd(&[
        b"SLOTSMGRTONE",
        b"no-such-host.invalid",
        b"6379",
        b"200",
        b"k:0",
    ]);
    assert!(
        text(&raw).starts_with("-ERR Can't connect to target node: "),
        "{}",
        show(&raw)
    );

    // A target that dies after the socket was cached.
    let dst = start_codis(&[]);
    let port = dst.port.to_string();
    let r = s
        .cmd(&[
            b"SLOTSMGRTONE",
            b"127.0.0.1",
            port.as_bytes(),
            b"1000",
            b"k:0",
        ])
        .0;
    assert_eq!(int(&r), 1);
    drop(dst);
    std::thread::sleep(Duration::from_millis(100));
    for i in 1..10 {
        let k = format!("k:{i}");
        let (_, raw) = s.cmd(&[
            b"SLOTSMGRTONE",
            b"127.0.0.1",
            port.as_bytes(),
            b"300",
            k.as_bytes(),
        ]);
        assert!(show(&raw).starts_with("-IOERR "), "{}", show(&raw));
    }
    assert_eq!(int(&s.cmd(&[b"DBSIZE"]).0), 9);

    // A target that accepts but never answers: the timeout ends the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let (_, raw) = s.cmd(&[b"SLOTSMGRTONE", b"127.0.0.1", port.as_bytes(), b"0", b"k:1"]);
    assert_eq!(
        text(&raw),
        "-IOERR error or timeout reading from target\r\n"
    );
    // A target that answers with an error.
    let (tx, _rx) = mpsc::channel();
    let (reply_tx, reply_rx) = mpsc::channel();
    reply_tx.send("-ERR nope".to_string()).unwrap();
    let port = fake_target(tx, reply_rx);
    let (_, raw) = s.cmd(&[
        b"SLOTSMGRTONE",
        b"127.0.0.1",
        port.to_string().as_bytes(),
        b"1000",
        b"k:1",
    ]);
    assert_eq!(
        text(&raw),
        "-ERR error on slotsrestore, migration failed\r\n"
    );
    assert_eq!(int(&s.cmd(&[b"DBSIZE"]).0), 9);
    // The source keeps serving while nobody answers it.
    let silent2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent2.local_addr().unwrap().port().to_string();
    s.send_raw(&Client::encode(&[
        b"SLOTSMGRTONE".to_vec(),
        b"127.0.0.1".to_vec(),
        port.into_bytes(),
        b"1500".to_vec(),
        b"k:2".to_vec(),
    ]));
    let mut other = Client::connect(src.port);
    let t = std::time::Instant::now();
    assert_eq!(int(&other.cmd(&[b"EXISTS", b"k:2"]).0), 1);
    assert!(t.elapsed() < Duration::from_millis(1000));
    let (_, raw) = s.read_reply().unwrap();
    assert!(show(&raw).starts_with("-IOERR "), "{}", show(&raw));
}

/// A fake target on a free port: answers `+OK` to everything but SLOTSRESTORE; for each
/// SLOTSRESTORE it sends the request's arguments to `tx`, then waits for the reply line to
/// write on `replies` (so a test decides when the source gets its answer).
fn fake_target(tx: mpsc::Sender<Vec<Vec<u8>>>, replies: mpsc::Receiver<String>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut sock, _)) = l.accept() else {
            return;
        };
        let mut buf = Vec::new();
        let mut tmp = [0u8; 65536];
        loop {
            match Frame::parse(&buf, 0) {
                Ok((Frame::Array(_, items), n)) => {
                    buf.drain(..n);
                    let args: Vec<Vec<u8>> = items
                        .iter()
                        .map(|f| match f {
                            Frame::Bulk(b) => b.clone(),
                            _ => Vec::new(),
                        })
                        .collect();
                    if args[0].eq_ignore_ascii_case(b"SLOTSRESTORE") {
                        if tx.send(args).is_err() {
                            return;
                        }
                        let Ok(r) = replies.recv() else { return };
                        let _ = sock.write_all(format!("{r}\r\n").as_bytes());
                    } else {
                        let _ = sock.write_all(b"+OK\r\n");
                    }
                    continue;
                }
                Ok(_) => return,
                Err(FrameError::Incomplete) => {}
                Err(FrameError::Invalid(_)) => return,
            }
            match sock.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    });
    port
}

fn send_mgrtone(s: &mut Client, port: u16, key: &[u8]) {
    s.send_raw(&Client::encode(&[
        b"SLOTSMGRTONE".to_vec(),
        b"127.0.0.1".to_vec(),
        port.to_string().into_bytes(),
        b"5000".to_vec(),
        key.to_vec(),
    ]));
}

#[test]
fn key_modified_during_io_is_not_lost() {
    let src = start_codis(&[]);
    let mut s = Client::connect(src.port);
    let mut w = Client::connect(src.port);
    let wait = Duration::from_secs(5);

    // The target holds its reply back until the key was modified on the source.
    let (tx, rx) = mpsc::channel();
    let (reply_tx, reply_rx) = mpsc::channel();
    let port = fake_target(tx, reply_rx);
    ok(&mut w, &[b"SET", b"k", b"v1"]);
    send_mgrtone(&mut s, port, b"k");
    let first = rx.recv_timeout(wait).unwrap();
    assert_eq!(first[1], b"k");
    ok(&mut w, &[b"SET", b"k", b"v2"]);
    let v2_dump = bulk(&w.cmd(&[b"DUMP", b"k"]).0);
    assert_ne!(first[3], v2_dump);
    reply_tx.send("+OK".into()).unwrap();
    // The source notices and sends the new value again before deleting anything.
    let second = rx.recv_timeout(wait).unwrap();
    assert_eq!(second[1], b"k");
    assert_eq!(second[3], v2_dump);
    assert_eq!(int(&w.cmd(&[b"EXISTS", b"k"]).0), 1);
    reply_tx.send("+OK".into()).unwrap();
    let (f, raw) = s.read_reply().unwrap();
    assert_eq!(int(&f), 1, "{}", show(&raw));
    assert_eq!(int(&w.cmd(&[b"EXISTS", b"k"]).0), 0);

    // The second attempt fails: the modified key stays on the source.
    ok(&mut w, &[b"SET", b"j", b"v1"]);
    send_mgrtone(&mut s, port, b"j");
    rx.recv_timeout(wait).unwrap();
    assert_eq!(int(&w.cmd(&[b"APPEND", b"j", b"-more"]).0), 7);
    reply_tx.send("+OK".into()).unwrap();
    rx.recv_timeout(wait).unwrap();
    reply_tx.send("-ERR target refused".into()).unwrap();
    let (_, raw) = s.read_reply().unwrap();
    assert_eq!(
        text(&raw),
        "-ERR error on slotsrestore, migration failed\r\n"
    );
    assert_eq!(bulk(&w.cmd(&[b"GET", b"j"]).0), b"v1-more");

    // A key that keeps changing: after a few rounds SLOTSMGRTONE gives up with an error and
    // the key stays; a key deleted meanwhile is simply gone.
    let (tx, rx) = mpsc::channel();
    let (reply_tx, reply_rx) = mpsc::channel();
    let port = fake_target(tx, reply_rx);
    ok(&mut w, &[b"SET", b"hot", b"0"]);
    send_mgrtone(&mut s, port, b"hot");
    for _ in 0..4 {
        rx.recv_timeout(wait).unwrap();
        w.cmd(&[b"INCR", b"hot"]);
        reply_tx.send("+OK".into()).unwrap();
    }
    let (_, raw) = s.read_reply().unwrap();
    assert!(text(&raw).starts_with("-ERR "), "{}", show(&raw));
    assert_eq!(bulk(&w.cmd(&[b"GET", b"hot"]).0), b"4");
    ok(&mut w, &[b"SET", b"gone", b"x"]);
    send_mgrtone(&mut s, port, b"gone");
    rx.recv_timeout(wait).unwrap();
    w.cmd(&[b"DEL", b"gone"]);
    reply_tx.send("+OK".into()).unwrap();
    let (f, raw) = s.read_reply().unwrap();
    assert_eq!(int(&f), 0, "{}", show(&raw));
}

#[test]
fn slotsrestore_checks_everything_first() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    c.cmd(&[b"SET", b"a", b"1"]);
    c.cmd(&[b"RPUSH", b"l", b"x", b"y"]);
    let pa = bulk(&c.cmd(&[b"DUMP", b"a"]).0);
    let pl = bulk(&c.cmd(&[b"DUMP", b"l"]).0);
    c.cmd(&[b"FLUSHALL"]);
    c.cmd(&[b"SET", b"old", b"o"]);
    c.cmd(&[b"EXPIRE", b"old", b"100"]);
    // Replaces, TTL 0 = persistent (the old TTL goes too), TTL > 0 in ms.
    ok(
        &mut c,
        &[b"SLOTSRESTORE", b"old", b"0", &pa, b"n", b"50000", &pl],
    );
    assert_eq!(bulk(&c.cmd(&[b"GET", b"old"]).0), b"1");
    assert_eq!(int(&c.cmd(&[b"TTL", b"old"]).0), -1);
    let pttl = int(&c.cmd(&[b"PTTL", b"n"]).0);
    assert!(pttl > 40_000 && pttl <= 50_000, "{pttl}");
    assert_eq!(int(&c.cmd(&[b"LLEN", b"n"]).0), 2);
    // One bad triple: nothing is written.
    let cases: &[(&[&[u8]], &str)] = &[
        (
            &[b"x", b"0", &pa, b"y", b"0", b"garbage"],
            "-ERR dump payload version or checksum are wrong",
        ),
        (
            &[b"x", b"0", &pa, b"y", b"-1", &pa],
            "-ERR invalid ttl value, must be >= 0",
        ),
        (
            &[b"x", b"0", &pa, b"y", b"1.5", &pa],
            "-ERR value is not an integer or out of range",
        ),
        (
            &[b"x", b"0", &pa, b"y"],
            "-ERR wrong number of arguments for 'slotsrestore' command",
        ),
        (
            &[b"x", b"0"],
            "-ERR wrong number of arguments for 'slotsrestore' command",
        ),
    ];
    for (args, want) in cases {
        let mut full: Vec<&[u8]> = vec![b"SLOTSRESTORE"];
        full.extend_from_slice(args);
        let (_, raw) = c.cmd(&full);
        assert_eq!(text(&raw), format!("{want}\r\n"));
        assert_eq!(int(&c.cmd(&[b"EXISTS", b"x"]).0), 0);
    }
    // A payload with a good checksum but a broken body.
    let mut bad = pl.clone();
    bad[1] ^= 0xff;
    let (_, raw) = c.cmd(&[b"SLOTSRESTORE", b"x", b"0", &bad]);
    assert!(show(&raw).starts_with("-ERR "), "{}", show(&raw));
}

#[test]
fn argument_errors() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let port = free_port().to_string();
    let p = port.as_bytes();
    let cases: &[(&[&[u8]], &str)] = &[
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"1024"],
            "-ERR invalid slot number = 1024",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"-1"],
            "-ERR invalid slot number = -1",
        ),
        (
            &[b"SLOTSMGRTTAGSLOT", b"127.0.0.1", p, b"100", b"99999"],
            "-ERR invalid slot number = 99999",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"x"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"4294967296"],
            "-ERR value is out of range",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"4294967296", b"1"],
            "-ERR value is out of range",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"-5", b"1"],
            "-ERR invalid timeout = -5",
        ),
        (
            &[b"SLOTSMGRTONE", b"127.0.0.1", p, b"-1", b"k"],
            "-ERR invalid timeout = -1",
        ),
        (
            &[b"SLOTSMGRTTAGONE", b"127.0.0.1", p, b"abc", b"k"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &[b"SLOTSMGRTONE", b"127.0.0.1", b"notaport", b"100", b"k"],
            "-ERR Can't connect to target node: invalid port 'notaport'",
        ),
        (
            &[b"SLOTSMGRTONE", b"127.0.0.1", b"70000", b"100", b"k"],
            "-ERR Can't connect to target node: invalid port '70000'",
        ),
        (
            &[b"SLOTSMGRTONE", b"127.0.0.1", p, b"100"],
            "-ERR wrong number of arguments for 'slotsmgrtone' command",
        ),
        (
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"1", b"2"],
            "-ERR wrong number of arguments for 'slotsmgrtslot' command",
        ),
        (
            &[b"SLOTSMGRTTAGSLOT", b"127.0.0.1"],
            "-ERR wrong number of arguments for 'slotsmgrttagslot' command",
        ),
        (
            &[b"SLOTSMGRTTAGONE"],
            "-ERR wrong number of arguments for 'slotsmgrttagone' command",
        ),
        (
            &[b"SLOTSRESTORE", b"k", b"0"],
            "-ERR wrong number of arguments for 'slotsrestore' command",
        ),
    ];
    for (args, want) in cases {
        let (_, raw) = c.cmd(args);
        assert_eq!(text(&raw), format!("{want}\r\n"), "{:?}", show(args[0]));
    }
    // An empty slot answers without contacting the (absent) target, as Codis.
    let (_, raw) = c.cmd(&[b"SLOTSMGRTSLOT", b"127.0.0.1", p, b"100", b"7"]);
    assert_eq!(show(&raw), "*2\\r\\n:0\\r\\n:0\\r\\n");
    let (_, raw) = c.cmd(&[b"SLOTSMGRTTAGSLOT", b"127.0.0.1", p, b"100", b"7"]);
    assert_eq!(show(&raw), "*2\\r\\n:0\\r\\n:0\\r\\n");
    // Refused inside MULTI (the I/O cannot run under EXEC's lock).
    ok(&mut c, &[b"MULTI"]);
    let (_, raw) = c.cmd(&[b"SLOTSMGRTONE", b"127.0.0.1", p, b"100", b"k"]);
    assert_eq!(
        text(&raw),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    c.cmd(&[b"DISCARD"]);
}

/// `connected_clients` from INFO.
fn connected_clients(c: &mut Client) -> i64 {
    let info = bulk(&c.cmd(&[b"INFO", b"clients"]).0);
    let info = String::from_utf8(info).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn cached_socket_closes_after_15s_idle() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let mut s = Client::connect(src.port);
    let mut d = Client::connect(dst.port);
    let port = dst.port.to_string();
    for i in 0..3 {
        let k = format!("k{i}");
        s.cmd(&[b"SET", k.as_bytes(), b"v"]);
        let r = s
            .cmd(&[
                b"SLOTSMGRTONE",
                b"127.0.0.1",
                port.as_bytes(),
                b"1000",
                k.as_bytes(),
            ])
            .0;
        assert_eq!(int(&r), 1);
    }
    // One cached connection served every call.
    assert_eq!(connected_clients(&mut d), 2);
    std::thread::sleep(Duration::from_secs(18));
    assert_eq!(connected_clients(&mut d), 1);
    // A new one is opened on demand.
    s.cmd(&[b"SET", b"again", b"v"]);
    let r = s
        .cmd(&[
            b"SLOTSMGRTONE",
            b"127.0.0.1",
            port.as_bytes(),
            b"1000",
            b"again",
        ])
        .0;
    assert_eq!(int(&r), 1);
    assert_eq!(int(&d.cmd(&[b"EXISTS", b"again"]).0), 1);
}

#[test]
fn pipelined_requests_keep_their_order() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let mut s = Client::connect(src.port);
    ok(&mut s, &[b"MSET", b"a", b"1", b"b", b"2"]);
    let port = dst.port.to_string().into_bytes();
    let mgrt = |k: &[u8]| {
        vec![
            b"SLOTSMGRTONE".to_vec(),
            b"127.0.0.1".to_vec(),
            port.clone(),
            b"1000".to_vec(),
            k.to_vec(),
        ]
    };
    let mut batch = Client::encode(&mgrt(b"a"));
    batch.extend(Client::encode(&[
        b"EXISTS".to_vec(),
        b"a".to_vec(),
        b"b".to_vec(),
    ]));
    batch.extend(Client::encode(&mgrt(b"b")));
    batch.extend(Client::encode(&[b"PING".to_vec()]));
    s.send_raw(&batch);
    let replies: Vec<String> = (0..4).map(|_| text(&s.read_reply().unwrap().1)).collect();
    assert_eq!(replies, [":1\r\n", ":1\r\n", ":1\r\n", "+PONG\r\n"]);
}

/// A migration target in front of a real codis-server: forwards every command and its reply,
/// but holds the first SLOTSRESTORE until released. Counts the SLOTSRESTOREs it forwarded.
struct SlowTarget {
    port: u16,
    state: std::sync::Arc<(std::sync::Mutex<SlowState>, std::sync::Condvar)>,
}

#[derive(Default)]
struct SlowState {
    arrived: usize,
    restores: usize,
    holding: bool,
    released: bool,
}

impl SlowTarget {
    fn start(real: u16) -> SlowTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: std::sync::Arc<(std::sync::Mutex<SlowState>, std::sync::Condvar)> =
            Default::default();
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let st = st.clone();
                std::thread::spawn(move || {
                    let mut up = Client::connect(real);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 64 * 1024];
                    loop {
                        match Frame::parse(&buf, 0) {
                            Ok((Frame::Array(_, items), n)) => {
                                buf.drain(..n);
                                let args: Vec<Vec<u8>> = items
                                    .into_iter()
                                    .map(|f| match f {
                                        Frame::Bulk(b) => b,
                                        o => panic!("{o:?}"),
                                    })
                                    .collect();
                                if args[0].eq_ignore_ascii_case(b"SLOTSRESTORE") {
                                    let (m, cv) = &*st;
                                    let mut s = m.lock().unwrap();
                                    s.arrived += 1;
                                    if s.arrived == 1 {
                                        s.holding = true;
                                        cv.notify_all();
                                        while !s.released {
                                            s = cv.wait(s).unwrap();
                                        }
                                    }
                                    s.restores += 1;
                                }
                                up.send_raw(&Client::encode(&args));
                                let (_, raw) = up.read_reply().unwrap();
                                if conn.write_all(&raw).is_err() {
                                    return;
                                }
                            }
                            Ok((o, _)) => panic!("{o:?}"),
                            Err(FrameError::Incomplete) => match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            },
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                });
            }
        });
        SlowTarget { port, state }
    }

    fn wait_holding(&self) {
        let (m, cv) = &*self.state;
        let mut s = m.lock().unwrap();
        while !s.holding {
            s = cv.wait(s).unwrap();
        }
    }

    fn release(&self) {
        let (m, cv) = &*self.state;
        m.lock().unwrap().released = true;
        cv.notify_all();
    }

    fn restores(&self) -> usize {
        self.state.0.lock().unwrap().restores
    }
}

/// Issue 15 item 8: two concurrent SLOTSMGRTTAGONE of the same key (two proxy sessions, or
/// the dashboard and a proxy). The first one's SLOTSRESTORE is slow; the second must not
/// serialise the same old value and finish first, or a write acknowledged by the target after
/// it would be replaced by the first one's stale restore.
#[test]
fn concurrent_transfers_of_a_key_never_restore_a_stale_value() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let slow = SlowTarget::start(dst.port);
    let mut c = Client::connect(src.port);
    ok(&mut c, &[b"SET", b"{t}k", b"old"]);
    let port = slow.port.to_string();
    let migrate = move |srcport: u16, port: String| {
        let mut m = Client::connect(srcport);
        let (f, raw) = m.cmd(&[
            b"SLOTSMGRTTAGONE",
            b"127.0.0.1",
            port.as_bytes(),
            b"10000",
            b"{t}k",
        ]);
        assert!(matches!(f, Frame::Integer(_)), "{}", text(&raw));
        int(&f)
    };
    let (p1, sp) = (port.clone(), src.port);
    let first = std::thread::spawn(move || migrate(sp, p1));
    slow.wait_holding();
    let (p2, sp) = (port.clone(), src.port);
    let (done_tx, done_rx) = mpsc::channel();
    let second = std::thread::spawn(move || {
        let n = migrate(sp, p2);
        let _ = done_tx.send(());
        n
    });
    let mut d = Client::connect(dst.port);
    // Either the second transfer completes on its own (it serialised the old value: the
    // defect), or the source reports it waiting for the first one.
    let mut wrote_early = false;
    loop {
        if done_rx.try_recv().is_ok() {
            // The key is reported moved: a client writes it on the target.
            ok(&mut d, &[b"SET", b"{t}k", b"new"]);
            wrote_early = true;
            break;
        }
        let info = text(&c.cmd(&[b"INFO", b"migration"]).1);
        let waits: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("migrate_sync_waits:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if waits > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    slow.release();
    let moved = first.join().unwrap() + second.join().unwrap();
    if !wrote_early {
        ok(&mut d, &[b"SET", b"{t}k", b"new"]);
    }
    assert_eq!(bulk(&d.cmd(&[b"GET", b"{t}k"]).0), b"new");
    assert_eq!(moved, 1, "the key moved once");
    assert_eq!(slow.restores(), 1, "one SLOTSRESTORE of the key");
    assert_eq!(int(&c.cmd(&[b"EXISTS", b"{t}k"]).0), 0);
    assert!(!wrote_early, "the second transfer waited for the first");
}

/// A transfer waiting for another transfer of the same key (whose target stalls) gives up
/// after its own timeout with an error, keeps the key, and leaves the first one to finish.
#[test]
fn a_transfer_waiting_for_a_stalled_one_times_out() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let slow = SlowTarget::start(dst.port);
    let mut c = Client::connect(src.port);
    ok(&mut c, &[b"SET", b"{t}k", b"v"]);
    let port = slow.port.to_string();
    let migrate = move |srcport: u16, port: String, timeout: &'static [u8]| {
        let mut m = Client::connect(srcport);
        m.cmd(&[
            b"SLOTSMGRTTAGONE",
            b"127.0.0.1",
            port.as_bytes(),
            timeout,
            b"{t}k",
        ])
    };
    let (p1, sp) = (port.clone(), src.port);
    let first = std::thread::spawn(move || migrate(sp, p1, b"10000"));
    slow.wait_holding();
    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    let second = std::thread::spawn(move || {
        let _ = done_tx.send(migrate(sp, port, b"300"));
    });
    let reply = done_rx.recv_timeout(Duration::from_secs(5));
    let waited = started.elapsed();
    slow.release();
    let (f, raw) = reply.expect("the waiting transfer never gave up");
    assert!(
        matches!(&f, Frame::Error(e) if e.starts_with(b"IOERR timeout waiting")),
        "{}",
        text(&raw)
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    second.join().unwrap();
    // The first transfer is unaffected and moves the key once.
    assert_eq!(int(&first.join().unwrap().0), 1);
    assert_eq!(slow.restores(), 1);
    assert_eq!(int(&c.cmd(&[b"EXISTS", b"{t}k"]).0), 0);
    let info = text(&c.cmd(&[b"INFO", b"migration"]).1);
    assert!(info.contains("migrate_sync_keys_in_flight:0"), "{info}");
}
