//! Integration tests: DUMP / RESTORE between a real redis-server and codis-server, both ways.
//!
//! Values of every type and encoding are built on redis-server with its own commands, DUMPed
//! there and RESTOREd into codis-server; codis-server's DUMP of the restored key must equal
//! Redis's byte for byte whenever Redis's encoding is deterministic (everything but hash
//! tables), and RESTOREd back into redis-server it must give the same contents and encoding.
//! The reverse direction starts from values built in codis-server (RESTOREd from payloads our
//! own codec writes).

use dataplane::rdb::{self, Limits};
use dataplane::resp::frame::Frame;
use dataplane::store::{HashValue, ListValue, SetValue, SmallBytes, Value, ZSet};

use crate::support::{Client, show, start_codis, start_redis};

fn call(c: &mut Client, args: &[&[u8]]) -> Frame {
    c.cmd(args).0
}

fn ok(c: &mut Client, args: &[&[u8]]) {
    let (f, raw) = c.cmd(args);
    assert!(
        !matches!(f, Frame::Error(_)),
        "{:?} failed: {}",
        String::from_utf8_lossy(args[0]),
        show(&raw)
    );
}

fn bulk(f: Frame) -> Vec<u8> {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => b,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn items(f: Frame) -> Vec<Vec<u8>> {
    match f {
        Frame::Array(_, v) | Frame::Map(v) => v.into_iter().map(bulk).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The contents of a key on redis-server, in a comparable form.
fn contents(c: &mut Client, key: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let ty = bulk(call(c, &[b"TYPE", key]));
    let data = match &ty[..] {
        b"string" => vec![bulk(call(c, &[b"GET", key]))],
        b"list" => items(call(c, &[b"LRANGE", key, b"0", b"-1"])),
        b"hash" => {
            let flat = items(call(c, &[b"HGETALL", key]));
            let mut pairs: Vec<Vec<u8>> = flat
                .chunks(2)
                .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                .collect();
            pairs.sort();
            pairs
        }
        b"set" => {
            let mut m = items(call(c, &[b"SMEMBERS", key]));
            m.sort();
            m
        }
        b"zset" => items(call(c, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])),
        other => panic!("unexpected type {}", show(other)),
    };
    (ty, data)
}

/// Asserts two payloads are equal, reporting where they first differ (they can be large).
fn same_bytes(ours: &[u8], theirs: &[u8], what: &str) {
    if ours != theirs {
        let at = ours.iter().zip(theirs).take_while(|(a, b)| a == b).count();
        let ctx = |p: &[u8]| show(&p[at.saturating_sub(16)..(at + 32).min(p.len())]);
        panic!(
            "{what}: DUMP differs at byte {at} (lengths {} vs {}): ours ...{}... redis ...{}...",
            ours.len(),
            theirs.len(),
            ctx(ours),
            ctx(theirs)
        );
    }
}

fn encoding(c: &mut Client, key: &[u8]) -> Vec<u8> {
    bulk(call(c, &[b"OBJECT", b"ENCODING", key]))
}

fn cmd_owned(c: &mut Client, args: Vec<Vec<u8>>) {
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    ok(c, &refs);
}

fn with_key(cmd: &str, key: &str, rest: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v = vec![cmd.as_bytes().to_vec(), key.as_bytes().to_vec()];
    v.extend(rest);
    v
}

/// Deterministic pseudo-random bytes (incompressible).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Builds values of every type and encoding on redis-server; returns their keys.
fn build_on_redis(r: &mut Client) -> Vec<String> {
    let mut keys = Vec::new();
    let strings: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"0".to_vec(),
        b"-1".to_vec(),
        b"123".to_vec(),
        b"-2147483648".to_vec(),
        b"2147483648".to_vec(),
        b"12345678901".to_vec(),
        b"9223372036854775807".to_vec(),
        b"-9223372036854775808".to_vec(),
        b"007".to_vec(),
        b"1.5".to_vec(),
        b"a\x00b\r\nc".to_vec(),
        vec![b'a'; 20],
        vec![b'a'; 21],
        vec![b'a'; 1000],
        b"abcabcabcabcabcabcabcabcabcabcabc".repeat(30),
        noise(1000, 1),
        (0..20000u32)
            .flat_map(|i| format!("line {} of text\n", i % 300).into_bytes())
            .collect(),
    ];
    for (i, s) in strings.into_iter().enumerate() {
        let k = format!("str:{i}");
        cmd_owned(r, vec![b"SET".to_vec(), k.clone().into_bytes(), s]);
        keys.push(k);
    }

    let lists: Vec<Vec<Vec<u8>>> = vec![
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        [
            "0",
            "1",
            "-1",
            "127",
            "128",
            "4095",
            "-4096",
            "4096",
            "65535",
            "-32769",
            "8388608",
            "1099511627776",
            "9223372036854775807",
            "-9223372036854775808",
            "00",
            "-0",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        vec![
            b"a\x00b".to_vec(),
            b"\r\n".to_vec(),
            Vec::new(),
            noise(100, 2),
        ],
        (0..1000)
            .map(|i| format!("item:{i}").into_bytes())
            .collect(),
        (0..1000)
            .map(|i| format!("{}", i * 997 - 300000).into_bytes())
            .collect(),
        (0..10).map(|i| noise(5000, i)).collect(),
        (0..200).map(|i| vec![b'a' + (i % 26) as u8; 300]).collect(),
        (0..50).map(|i| vec![b'x'; 200 * i]).collect(),
    ];
    for (i, l) in lists.into_iter().enumerate() {
        let k = format!("list:{i}");
        cmd_owned(r, with_key("RPUSH", &k, l));
        keys.push(k);
    }

    let hashes: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
        vec![
            (b"f".to_vec(), b"v".to_vec()),
            (b"n".to_vec(), b"1".to_vec()),
            (b"neg".to_vec(), b"-5000".to_vec()),
            (b"bin\x00".to_vec(), b"\r\n\x00".to_vec()),
            (b"".to_vec(), b"".to_vec()),
        ],
        (0..1000)
            .map(|i| {
                (
                    format!("field:{i}").into_bytes(),
                    format!("{i}").into_bytes(),
                )
            })
            .collect(),
        vec![
            (b"small".to_vec(), b"1".to_vec()),
            (b"big".to_vec(), vec![b'v'; 100]),
        ],
        (0..128)
            .map(|i| (format!("{i}").into_bytes(), noise(30, i)))
            .collect(),
    ];
    for (i, h) in hashes.into_iter().enumerate() {
        let k = format!("hash:{i}");
        cmd_owned(
            r,
            with_key(
                "HSET",
                &k,
                h.into_iter().flat_map(|(f, v)| [f, v]).collect(),
            ),
        );
        keys.push(k);
    }

    let sets: Vec<Vec<Vec<u8>>> = vec![
        vec![b"3".to_vec(), b"1".to_vec(), b"2".to_vec()],
        vec![
            b"-5".to_vec(),
            b"100000".to_vec(),
            b"1099511627776".to_vec(),
        ],
        (0..512)
            .map(|i| format!("{}", i * 3 - 700).into_bytes())
            .collect(),
        (0..1000).map(|i| format!("{i}").into_bytes()).collect(),
        vec![
            b"a".to_vec(),
            b"\x00".to_vec(),
            b"\r\n".to_vec(),
            b"1".to_vec(),
        ],
        (0..1000)
            .map(|i| format!("member:{i}").into_bytes())
            .collect(),
    ];
    for (i, s) in sets.into_iter().enumerate() {
        let k = format!("set:{i}");
        cmd_owned(r, with_key("SADD", &k, s));
        keys.push(k);
    }

    let zsets: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![
            ("0.1", b"a".to_vec()),
            ("inf", b"b".to_vec()),
            ("-inf", b"c".to_vec()),
            ("0", b"d".to_vec()),
            ("-1.5", b"e\x00\r\n".to_vec()),
            ("1e20", b"f".to_vec()),
            ("3", b"g".to_vec()),
            ("-4503599627370496", b"h".to_vec()),
            ("4503599627370495", b"i".to_vec()),
            ("1", b"".to_vec()),
        ],
        vec![("1", vec![b'm'; 100]), ("2", b"x".to_vec())],
        vec![
            ("inf", b"x".to_vec()),
            ("-inf", b"y".to_vec()),
            ("0.1", b"z".to_vec()),
        ],
    ];
    for (i, z) in zsets.into_iter().enumerate() {
        let k = format!("zset:{i}");
        cmd_owned(
            r,
            with_key(
                "ZADD",
                &k,
                z.into_iter()
                    .flat_map(|(s, m)| [s.as_bytes().to_vec(), m])
                    .collect(),
            ),
        );
        keys.push(k);
    }
    let big: Vec<Vec<u8>> = (0..1000)
        .flat_map(|i| {
            [
                format!("{}", (i as f64) / 7.0 - 50.0).into_bytes(),
                format!("m{i}").into_bytes(),
            ]
        })
        .collect();
    cmd_owned(r, with_key("ZADD", "zset:big", big));
    keys.push("zset:big".into());
    keys
}

#[test]
fn redis_payloads_restore_into_codis_and_back() {
    redis_to_codis_and_back(&[]);
}

/// Other encoding thresholds: count-limited and small list nodes, tiny listpacks and intsets.
#[test]
fn redis_payloads_with_other_thresholds() {
    redis_to_codis_and_back(&[
        "--list-max-listpack-size",
        "5",
        "--hash-max-listpack-entries",
        "4",
        "--hash-max-listpack-value",
        "8",
        "--zset-max-listpack-entries",
        "3",
        "--zset-max-listpack-value",
        "1000",
        "--set-max-intset-entries",
        "2",
    ]);
    redis_to_codis_and_back(&["--list-max-listpack-size", "-1"]);
    redis_to_codis_and_back(&["--list-max-listpack-size", "-5"]);
    redis_to_codis_and_back(&["--list-max-listpack-size", "0"]);
}

fn redis_to_codis_and_back(config: &[&str]) {
    let redis = start_redis(config);
    let codis = start_codis(config);
    let mut r = Client::connect(redis.port);
    let mut c = Client::connect(codis.port);
    let keys = build_on_redis(&mut r);
    for k in &keys {
        let key = k.as_bytes();
        let payload = bulk(call(&mut r, &[b"DUMP", key]));
        let (f, raw) = c.cmd(&[b"RESTORE", key, b"0", &payload]);
        assert_eq!(f, Frame::Simple(b"OK".to_vec()), "{k}: {}", show(&raw));
        let ours = bulk(call(&mut c, &[b"DUMP", key]));
        let enc = encoding(&mut r, key);
        if enc != b"hashtable" {
            same_bytes(&ours, &payload, &format!("{k} ({})", show(&enc)));
        }
        // Back into redis-server: same contents and encoding.
        let back = format!("{k}:back");
        let (f, raw) = r.cmd(&[b"RESTORE", back.as_bytes(), b"0", &ours]);
        assert_eq!(f, Frame::Simple(b"OK".to_vec()), "{k}: {}", show(&raw));
        assert_eq!(
            contents(&mut r, key),
            contents(&mut r, back.as_bytes()),
            "{k}"
        );
        assert_eq!(
            show(&enc),
            show(&encoding(&mut r, back.as_bytes())),
            "{k}: encoding"
        );
    }
}

#[test]
fn codis_values_restore_into_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let mut r = Client::connect(redis.port);
    let mut c = Client::connect(codis.port);
    let sb = |s: &[u8]| SmallBytes::new(s);

    // Values made in codis-server: strings with SET, collections RESTOREd from our own codec.
    let mut values: Vec<(&str, Value, &str)> = Vec::new();
    let mut l = ListValue::new();
    for i in 0..3000 {
        l.push_back(match i % 4 {
            0 => SmallBytes::from(format!("{}", i as i64 * 12345 - 99999).into_bytes()),
            1 => sb(b"bin\x00\r\n"),
            2 => SmallBytes::from(noise(i % 700, i as u64)),
            _ => SmallBytes::from(vec![b'r'; i % 5000]),
        });
    }
    values.push((
        "list",
        Value::List(dataplane::store::CowArc::new(l)),
        "quicklist",
    ));
    let mut h = HashValue::default();
    for i in 0..1000 {
        h.insert(
            SmallBytes::from(format!("f\x00{i}").into_bytes()),
            SmallBytes::from(format!("{}", -i).into_bytes()),
        );
    }
    h.hashtable = true;
    values.push((
        "hash",
        Value::Hash(dataplane::store::CowArc::new(h)),
        "hashtable",
    ));
    let mut h = HashValue::default();
    h.insert(sb(b"a"), sb(b"1"));
    h.insert(sb(b"b\r\n"), sb(b""));
    values.push((
        "smallhash",
        Value::Hash(dataplane::store::CowArc::new(h)),
        "listpack",
    ));
    let mut s = SetValue::default();
    for i in 0..400 {
        s.insert(SmallBytes::from(format!("{}", i64::MAX - i).into_bytes()));
    }
    values.push((
        "intset",
        Value::Set(dataplane::store::CowArc::new(s)),
        "intset",
    ));
    let mut s = SetValue::default();
    for i in 0..1000 {
        s.insert(SmallBytes::from(format!("m{i}").into_bytes()));
    }
    s.hashtable = true;
    values.push((
        "set",
        Value::Set(dataplane::store::CowArc::new(s)),
        "hashtable",
    ));
    let mut z = ZSet::default();
    for i in 0..1000 {
        z.insert(
            format!("m{i}").as_bytes(),
            if i % 3 == 0 {
                0.1 * i as f64
            } else {
                -(i as f64)
            },
        );
    }
    z.insert(b"top", f64::INFINITY);
    z.insert(b"bottom", f64::NEG_INFINITY);
    z.skiplist = true;
    values.push((
        "zset",
        Value::ZSet(dataplane::store::CowArc::new(z)),
        "skiplist",
    ));
    let mut z = ZSet::default();
    z.insert(b"a", 0.1);
    z.insert(b"b", f64::INFINITY);
    z.insert(b"c", 2.0);
    values.push((
        "smallzset",
        Value::ZSet(dataplane::store::CowArc::new(z)),
        "listpack",
    ));

    for (k, v, enc) in &values {
        let payload = rdb::dump_payload(v, &Limits::default());
        ok(&mut c, &[b"RESTORE", k.as_bytes(), b"0", &payload]);
        let ours = bulk(call(&mut c, &[b"DUMP", k.as_bytes()]));
        same_bytes(&ours, &payload, k);
        ok(&mut r, &[b"RESTORE", k.as_bytes(), b"0", &ours]);
        assert_eq!(
            show(enc.as_bytes()),
            show(&encoding(&mut r, k.as_bytes())),
            "{k}"
        );
        let (_, got) = contents(&mut r, k.as_bytes());
        let expect: Vec<Vec<u8>> = match v {
            Value::List(l) => l.iter().map(|e| e.to_vec()).collect(),
            Value::Hash(h) => {
                let mut p: Vec<Vec<u8>> = h
                    .iter()
                    .map(|(f, v)| [&f[..], b"=", &v[..]].concat())
                    .collect();
                p.sort();
                p
            }
            Value::Set(s) => {
                let mut m: Vec<Vec<u8>> = s.iter().map(|e| e.to_vec()).collect();
                m.sort();
                m
            }
            Value::ZSet(z) => z
                .iter()
                .flat_map(|(m, s)| {
                    [
                        m.to_vec(),
                        dataplane::util::number::fmt_double(s).into_bytes(),
                    ]
                })
                .collect(),
            Value::Str(s) => vec![s.to_vec()],
        };
        assert!(got == expect, "{k}: contents differ");
        // Redis's DUMP of what it loaded matches ours where its encoding is deterministic.
        if *enc != "hashtable" {
            same_bytes(&bulk(call(&mut r, &[b"DUMP", k.as_bytes()])), &ours, k);
        }
    }

    // Strings SET in codis-server DUMP exactly as in redis-server.
    for (i, s) in [
        b"x".to_vec(),
        b"-77".to_vec(),
        vec![b'z'; 500],
        noise(300, 9),
    ]
    .iter()
    .enumerate()
    {
        let k = format!("s{i}");
        ok(&mut c, &[b"SET", k.as_bytes(), s]);
        ok(&mut r, &[b"SET", k.as_bytes(), s]);
        assert_eq!(
            bulk(call(&mut c, &[b"DUMP", k.as_bytes()])),
            bulk(call(&mut r, &[b"DUMP", k.as_bytes()]))
        );
    }
}

#[test]
fn restore_ttl_and_replace() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let p = rdb::dump_payload(&Value::Str(SmallBytes::new(b"v")), &Limits::default());
    ok(&mut c, &[b"RESTORE", b"k", b"100000", &p]);
    assert_eq!(call(&mut c, &[b"GET", b"k"]), Frame::Bulk(b"v".to_vec()));
    // An absolute TTL in the past creates nothing, and REPLACE deletes the old key.
    ok(&mut c, &[b"RESTORE", b"k", b"1", &p, b"REPLACE", b"ABSTTL"]);
    assert_eq!(call(&mut c, &[b"GET", b"k"]), Frame::Null);
    // A short TTL expires.
    ok(&mut c, &[b"RESTORE", b"k", b"50", &p, b"IDLETIME", b"10"]);
    std::thread::sleep(std::time::Duration::from_millis(120));
    assert_eq!(call(&mut c, &[b"GET", b"k"]), Frame::Null);
}

/// Issue 15 item 3, verbatim: a DUMP payload declaring an LZF string of 2^50 bytes, with a
/// valid CRC, aborted codis-server. Now RESTORE and SLOTSRESTORE answer Redis's error and the
/// server keeps serving; a payload that expands beyond its input is refused the same way.
#[test]
fn restore_of_a_huge_declared_lzf_string_is_refused() {
    let srv = start_codis(&[]);
    let mut c = Client::connect(srv.port);
    let payload = |declared: u64| {
        let mut p = vec![rdb::types::STRING, 0xc0 | rdb::types::ENC_LZF, 2, 0x81];
        p.extend_from_slice(&declared.to_be_bytes());
        p.extend_from_slice(&[0x00, b'a']);
        p.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
        let crc = rdb::crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    for declared in [1u64 << 50, 1 << 20, u64::MAX] {
        let p = payload(declared);
        assert_eq!(
            call(&mut c, &[b"RESTORE", b"k", b"0", &p]),
            Frame::Error(b"ERR Bad data format".to_vec())
        );
        assert!(matches!(
            call(&mut c, &[b"SLOTSRESTORE", b"k", b"0", &p]),
            Frame::Error(_)
        ));
        assert_eq!(call(&mut c, &[b"PING"]), Frame::Simple(b"PONG".to_vec()));
    }
    assert_eq!(call(&mut c, &[b"EXISTS", b"k"]), Frame::Integer(0));
}
