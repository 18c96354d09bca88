//! Scripts and functions through codis-proxy over two codis-servers: EVAL / EVALSHA / FCALL
//! routed by their keys (CROSSSLOT across slots, keyless calls to slot 0's master), SCRIPT
//! and FUNCTION commands sent to every group with their replies combined, a group added
//! later, and SCRIPT KILL / FUNCTION KILL / UNKILLABLE / SHUTDOWN NOSAVE against a looping
//! script, and scripts and functions on the keys of a slot while it migrates (sync and
//! semi-async).

use std::time::{Duration, Instant};

use codis_model::slot_of;
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::proxy::TestProxy;
use crate::support::{Client, Server, show, start_codis};

/// A proxy over two codis-servers: slots 0..512 on `a`, 512..1024 on `b`.
fn two_groups() -> (TestProxy, Server, Server) {
    let a = start_codis(&[]);
    let b = start_codis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..512, &a);
    p.assign(512..1024, &b);
    (p, a, b)
}

/// A key (with `prefix`) whose slot lies in `range`.
fn key_in(prefix: &str, range: std::ops::Range<usize>) -> Vec<u8> {
    (0..)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .find(|k| range.contains(&slot_of(k)))
        .unwrap()
}

fn ok() -> Frame {
    Frame::Simple(b"OK".to_vec())
}

fn bulk(s: &[u8]) -> Frame {
    Frame::Bulk(s.to_vec())
}

fn err(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).to_string(),
        other => panic!("not an error: {other:?}"),
    }
}

fn ints(f: &Frame) -> Vec<i64> {
    match f {
        Frame::Array(_, v) => v
            .iter()
            .map(|i| match i {
                Frame::Integer(n) => *n,
                other => panic!("not an integer: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

const GET_SCRIPT: &[u8] = b"return redis.call('GET', KEYS[1])";
const LIB: &[u8] = b"#!lua name=mylib\n\
redis.register_function('myget', function(keys, args) return redis.call('GET', keys[1]) end)\n\
redis.register_function{function_name='myread', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}\n\
redis.register_function('myset', function(keys, args) return redis.call('SET', keys[1], args[1]) end)";

#[test]
fn scripts_route_by_key_and_script_commands_reach_every_group() {
    let (p, a, b) = two_groups();
    let mut c = p.client();
    let mut da = Client::connect(a.port);
    let mut db = Client::connect(b.port);
    let ka = key_in("ka", 1..512);
    let kb = key_in("kb", 512..1024);
    c.cmd(&[b"SET", &ka, b"va"]);
    c.cmd(&[b"SET", &kb, b"vb"]);

    // SCRIPT LOAD reaches both groups: EVALSHA works whichever group a key lives in.
    let (f, raw) = c.cmd(&[b"SCRIPT", b"LOAD", GET_SCRIPT]);
    let Frame::Bulk(sha) = f else {
        panic!("SCRIPT LOAD: {}", show(&raw))
    };
    for d in [&mut da, &mut db] {
        assert_eq!(ints(&d.cmd(&[b"SCRIPT", b"EXISTS", &sha]).0), vec![1]);
    }
    assert_eq!(c.cmd(&[b"EVALSHA", &sha, b"1", &ka]).0, bulk(b"va"));
    assert_eq!(c.cmd(&[b"EVALSHA_RO", &sha, b"1", &kb]).0, bulk(b"vb"));
    assert_eq!(c.cmd(&[b"EVAL", GET_SCRIPT, b"1", &kb]).0, bulk(b"vb"));
    assert_eq!(c.cmd(&[b"EVAL_RO", GET_SCRIPT, b"1", &ka]).0, bulk(b"va"));

    // Writes land on the owner of the key.
    let incr = b"return redis.call('INCR', KEYS[1])";
    let kn = key_in("n", 600..1024);
    assert_eq!(c.cmd(&[b"EVAL", incr, b"1", &kn]).0, Frame::Integer(1));
    assert_eq!(db.cmd(&[b"GET", &kn]).0, bulk(b"1"));
    assert_eq!(da.cmd(&[b"EXISTS", &kn]).0, Frame::Integer(0));

    // Keys in several slots: CROSSSLOT, before any backend sees the call; one tag is fine.
    let two = b"return redis.call('MGET', KEYS[1], KEYS[2])";
    let f = c.cmd(&[b"EVAL", two, b"2", &ka, &kb]).0;
    assert!(err(&f).starts_with("CROSSSLOT"), "{f:?}");
    let f = c.cmd(&[b"EVALSHA", &sha, b"2", &ka, &kb]).0;
    assert!(err(&f).starts_with("CROSSSLOT"), "{f:?}");
    c.cmd(&[b"SET", b"{t}x", b"1"]);
    c.cmd(&[b"SET", b"{t}y", b"2"]);
    assert_eq!(
        c.cmd(&[b"EVAL", two, b"2", b"{t}x", b"{t}y"]).0,
        Frame::Array(b'*', vec![bulk(b"1"), bulk(b"2")])
    );

    // A keyless call runs on the master of slot 0 (`a`).
    let set_kl = b"redis.call('SET', 'keyless', ARGV[1]) return 1";
    assert_eq!(c.cmd(&[b"EVAL", set_kl, b"0", b"x"]).0, Frame::Integer(1));
    assert_eq!(da.cmd(&[b"GET", b"keyless"]).0, bulk(b"x"));
    assert_eq!(db.cmd(&[b"EXISTS", b"keyless"]).0, Frame::Integer(0));
    // A bad numkeys gets the server's own error.
    let f = c.cmd(&[b"EVAL", b"return 1", b"5", &ka]).0;
    assert!(err(&f).contains("greater than"), "{f:?}");

    // SCRIPT EXISTS: 1 only where every group has the script.
    let only_a = b"return 'only on a'";
    let Frame::Bulk(sha_a) = da.cmd(&[b"SCRIPT", b"LOAD", only_a]).0 else {
        panic!()
    };
    assert_eq!(
        ints(&c.cmd(&[b"SCRIPT", b"EXISTS", &sha, &sha_a, b"ffff"]).0),
        vec![1, 0, 0]
    );
    // SCRIPT FLUSH empties every group.
    assert_eq!(c.cmd(&[b"SCRIPT", b"FLUSH"]).0, ok());
    for d in [&mut da, &mut db] {
        assert_eq!(ints(&d.cmd(&[b"SCRIPT", b"EXISTS", &sha]).0), vec![0]);
    }
    let f = c.cmd(&[b"EVALSHA", &sha, b"1", &kb]).0;
    assert!(err(&f).starts_with("NOSCRIPT"), "{f:?}");
    // A bad script: the error of a group, once.
    let f = c.cmd(&[b"SCRIPT", b"LOAD", b"return +"]).0;
    assert!(err(&f).contains("Error compiling script"), "{f:?}");
    // Not through the proxy: a debugging session on a shared connection.
    let f = c.cmd(&[b"SCRIPT", b"DEBUG", b"YES"]).0;
    assert_eq!(
        err(&f),
        "ERR handle request, command 'SCRIPT|DEBUG' is not allowed"
    );
    assert!(c.cmd(&[b"SCRIPT", b"HELP"]).1.starts_with(b"*"));
    // Inside MULTI: refused (one group's transaction cannot hold a call to every group).
    assert_eq!(c.run("MULTI"), ok());
    let f = c.cmd(&[b"SCRIPT", b"LOAD", GET_SCRIPT]).0;
    assert!(err(&f).contains("not allowed in MULTI"), "{f:?}");
    assert_eq!(
        c.cmd(&[b"EVAL", GET_SCRIPT, b"1", &ka]).0,
        Frame::Simple(b"QUEUED".to_vec())
    );
    assert!(err(&c.run("EXEC")).starts_with("EXECABORT"));

    // Functions: loaded on every group, called by key.
    assert_eq!(c.cmd(&[b"FUNCTION", b"LOAD", LIB]).0, bulk(b"mylib"));
    for d in [&mut da, &mut db] {
        let raw = d.cmd(&[b"FUNCTION", b"LIST"]).1;
        assert!(show(&raw).contains("mylib"), "{}", show(&raw));
    }
    assert_eq!(c.cmd(&[b"FCALL", b"myget", b"1", &ka]).0, bulk(b"va"));
    assert_eq!(c.cmd(&[b"FCALL_RO", b"myread", b"1", &kb]).0, bulk(b"vb"));
    assert_eq!(c.cmd(&[b"FCALL", b"myset", b"1", &kb, b"w"]).0, ok());
    assert_eq!(db.cmd(&[b"GET", &kb]).0, bulk(b"w"));
    let f = c.cmd(&[b"FCALL", b"myget", b"2", &ka, &kb]).0;
    assert!(err(&f).starts_with("CROSSSLOT"), "{f:?}");
    // Loading it again fails on every group: the error, once.
    let f = c.cmd(&[b"FUNCTION", b"LOAD", LIB]).0;
    assert!(err(&f).contains("already exists"), "{f:?}");
    assert_eq!(
        c.cmd(&[b"FUNCTION", b"LOAD", b"REPLACE", LIB]).0,
        bulk(b"mylib")
    );
    let raw = c.cmd(&[b"FUNCTION", b"LIST", b"WITHCODE"]).1;
    assert!(show(&raw).contains("myread"), "{}", show(&raw));
    let raw = c.cmd(&[b"FUNCTION", b"STATS"]).1;
    assert!(show(&raw).contains("libraries_count"), "{}", show(&raw));
    let Frame::Bulk(dump) = c.cmd(&[b"FUNCTION", b"DUMP"]).0 else {
        panic!("FUNCTION DUMP")
    };
    assert_eq!(c.cmd(&[b"FUNCTION", b"DELETE", b"mylib"]).0, ok());
    for d in [&mut da, &mut db] {
        assert_eq!(d.cmd(&[b"FUNCTION", b"LIST"]).0, Frame::Array(b'*', vec![]));
    }
    let f = c.cmd(&[b"FCALL", b"myget", b"1", &ka]).0;
    assert!(err(&f).contains("Function not found"), "{f:?}");
    assert_eq!(c.cmd(&[b"FUNCTION", b"RESTORE", &dump]).0, ok());
    assert_eq!(c.cmd(&[b"FCALL", b"myget", b"1", &ka]).0, bulk(b"va"));
    assert!(c.cmd(&[b"FUNCTION", b"HELP"]).1.starts_with(b"*"));

    // A group added later has no scripts: EVALSHA answers NOSCRIPT (clients re-send the
    // script with EVAL, as Redis clients do), and SCRIPT LOAD / FUNCTION LOAD REPLACE through
    // the proxy load it there too.
    let g3 = start_codis(&[]);
    p.assign(900..1024, &g3);
    let kc = key_in("kc", 900..1024);
    c.cmd(&[b"SET", &kc, b"vc"]);
    assert_eq!(Client::connect(g3.port).cmd(&[b"GET", &kc]).0, bulk(b"vc"));
    let Frame::Bulk(sha) = c.cmd(&[b"SCRIPT", b"LOAD", GET_SCRIPT]).0 else {
        panic!()
    };
    assert_eq!(c.cmd(&[b"EVALSHA", &sha, b"1", &kc]).0, bulk(b"vc"));
    assert_eq!(c.cmd(&[b"SCRIPT", b"FLUSH"]).0, ok());
    // Only the new group lacks it: EXISTS says 0, EVALSHA there NOSCRIPT, elsewhere fine.
    da.cmd(&[b"SCRIPT", b"LOAD", GET_SCRIPT]);
    db.cmd(&[b"SCRIPT", b"LOAD", GET_SCRIPT]);
    assert_eq!(ints(&c.cmd(&[b"SCRIPT", b"EXISTS", &sha]).0), vec![0]);
    let f = c.cmd(&[b"EVALSHA", &sha, b"1", &kc]).0;
    assert!(err(&f).starts_with("NOSCRIPT"), "{f:?}");
    assert_eq!(c.cmd(&[b"EVALSHA", &sha, b"1", &ka]).0, bulk(b"va"));
    assert_eq!(c.cmd(&[b"EVAL", GET_SCRIPT, b"1", &kc]).0, bulk(b"vc"));
    let f = c.cmd(&[b"FCALL", b"myget", b"1", &kc]).0;
    assert!(err(&f).contains("Function not found"), "{f:?}");
    let f = c.cmd(&[b"FUNCTION", b"LOAD", LIB]).0;
    assert!(err(&f).contains("already exists"), "{f:?}");
    assert_eq!(
        c.cmd(&[b"FUNCTION", b"LOAD", b"REPLACE", LIB]).0,
        bulk(b"mylib")
    );
    assert_eq!(c.cmd(&[b"FCALL", b"myget", b"1", &kc]).0, bulk(b"vc"));
    assert_eq!(c.cmd(&[b"FUNCTION", b"FLUSH"]).0, ok());
    assert_eq!(
        Client::connect(g3.port).cmd(&[b"FUNCTION", b"LIST"]).0,
        Frame::Array(b'*', vec![])
    );
}

/// Polls `f` every 10 ms until it is true; panics after `limit`.
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True once `port` answers a plain command with `-BUSY`.
fn busy(port: u16) -> bool {
    let f = Client::connect(port).cmd(&[b"GET", b"x"]).0;
    matches!(f, Frame::Error(ref e) if e.starts_with(b"BUSY"))
}

/// Runs `args` through the proxy on a thread of its own; the handle returns the reply.
fn call_in_thread(port: u16, args: &[&[u8]]) -> std::thread::JoinHandle<Option<Frame>> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        c.try_cmd(&refs)
    })
}

#[test]
fn busy_scripts_are_killed_through_the_proxy() {
    let (p, mut a, b) = two_groups();
    for s in [&a, &b] {
        let mut d = Client::connect(s.port);
        // `lua-time-limit` is the old name of `busy-reply-threshold`.
        assert_eq!(d.run("CONFIG SET lua-time-limit 50"), ok());
        assert_eq!(
            d.run("CONFIG GET busy-reply-threshold"),
            Frame::Array(b'*', vec![bulk(b"busy-reply-threshold"), bulk(b"50")])
        );
    }
    let mut c = p.client();
    let limit = Duration::from_secs(20);
    assert!(err(&c.cmd(&[b"SCRIPT", b"KILL"]).0).starts_with("NOTBUSY"));

    // A read-only looping script (keyless: on `a`, the master of slot 0): BUSY for the
    // others, SCRIPT KILL through the proxy stops it.
    let t = call_in_thread(p.port, &[b"EVAL", b"while true do end", b"0"]);
    wait_until(limit, "BUSY", || busy(a.port));
    assert!(!busy(b.port));
    let f = c.cmd(&[b"FUNCTION", b"KILL"]).0;
    assert!(err(&f).starts_with("BUSY"), "{f:?}");
    assert_eq!(c.cmd(&[b"SCRIPT", b"KILL"]).0, ok());
    let f = t.join().unwrap().expect("EVAL reply");
    assert!(err(&f).contains("killed by user"), "{f:?}");
    wait_until(limit, "not BUSY", || !busy(a.port));

    // The same with a function, on `b`.
    let lib = b"#!lua name=loop\nredis.register_function('spin', function(keys, args) while true do end end)";
    assert_eq!(c.cmd(&[b"FUNCTION", b"LOAD", lib]).0, bulk(b"loop"));
    let kb = key_in("kb", 512..1024);
    let t = call_in_thread(p.port, &[b"FCALL", b"spin", b"1", &kb]);
    wait_until(limit, "BUSY", || busy(b.port));
    assert_eq!(c.cmd(&[b"FUNCTION", b"KILL"]).0, ok());
    let f = t.join().unwrap().expect("FCALL reply");
    assert!(err(&f).contains("killed by user"), "{f:?}");
    wait_until(limit, "not BUSY", || !busy(b.port));

    // A script that wrote cannot be killed; SHUTDOWN NOSAVE stops its server.
    let ka = key_in("ka", 1..512);
    let t = call_in_thread(
        p.port,
        &[
            b"EVAL",
            b"redis.call('SET', KEYS[1], 'x') while true do end",
            b"1",
            &ka,
        ],
    );
    wait_until(limit, "BUSY", || busy(a.port));
    let f = c.cmd(&[b"SCRIPT", b"KILL"]).0;
    assert!(err(&f).starts_with("UNKILLABLE"), "{f:?}");
    let mut d = Client::connect(a.port);
    let _ = d.try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(
        a.wait_exit(limit).is_some(),
        "SHUTDOWN NOSAVE during a script"
    );
    // The caller gets an error, not a hang.
    match t.join().unwrap() {
        Some(Frame::Error(_)) | None => {}
        other => panic!("EVAL on a shut down server: {other:?}"),
    }
    // The other group is unharmed.
    assert_eq!(c.cmd(&[b"SET", &kb, b"1"]).0, ok());
}

/// Scripts and functions run through the proxy on the keys of a slot while it moves from one
/// server to another (`method` 0 sync: the keys are moved first; 1 semi-async: the call is
/// wrapped in SLOTSMGRT-EXEC-WRAPPER): no client error, every increment done exactly once,
/// and the slot empty on the source afterwards.
fn scripts_during_migration(method: i64) {
    use crate::proxy::{migrate_slot, migrating, owned};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let from = start_codis(&[]);
    let to = start_codis(&[]);
    let p = TestProxy::start(CoreConfig {
        threads: 2,
        ..CoreConfig::default()
    });
    p.assign(0..1024, &from);
    let body: &[u8] = b"redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])";
    let lib: &[u8] = b"#!lua name=mig\nredis.register_function('bump', function(keys) \
                       return redis.call('INCR', keys[1]) end)";
    let mut sha = Vec::new();
    for s in [&from, &to] {
        let mut d = Client::connect(s.port);
        match d.cmd(&[b"SCRIPT", b"LOAD", body]).0 {
            Frame::Bulk(b) => sha = b,
            other => panic!("{other:?}"),
        }
        assert_eq!(d.cmd(&[b"FUNCTION", b"LOAD", lib]).0, bulk(b"mig"));
    }
    let slot = slot_of(b"smig");
    let keys: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("{{smig}}:{i}").into_bytes())
        .collect();
    {
        let mut c = p.client();
        for k in &keys {
            assert_eq!(c.cmd(&[b"SET", k, b"0"]).0, ok());
        }
    }
    p.fill(&[migrating(slot, &from, &to, method)]);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let incrs = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, errors, incrs) = (stop.clone(), errors.clone(), incrs.clone());
            let (keys, sha, body) = (keys.clone(), sha.clone(), body.to_vec());
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[i % keys.len()];
                    let args: Vec<&[u8]> = match i % 3 {
                        0 => vec![b"EVALSHA", &sha, b"1", k],
                        1 => vec![b"EVAL", &body, b"1", k],
                        _ => vec![b"FCALL", b"bump", b"1", k],
                    };
                    match c.cmd(&args).0 {
                        Frame::Bulk(_) | Frame::Integer(_) => {
                            incrs.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("{}: {other:?}", show(args[0]));
                        }
                    }
                    i += 3;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    migrate_slot(&from, &to, slot, method);
    std::thread::sleep(Duration::from_millis(200));
    p.fill(&[owned(slot, &to)]);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "client errors");
    assert!(incrs.load(Ordering::Relaxed) > 0);
    let mut c = p.client();
    let mut sum = 0u64;
    for k in &keys {
        match c.cmd(&[b"GET", k]).0 {
            Frame::Bulk(v) => sum += String::from_utf8(v).unwrap().parse::<u64>().unwrap(),
            other => panic!("GET {}: {other:?}", show(k)),
        }
    }
    assert_eq!(sum, incrs.load(Ordering::Relaxed));
    let info = Client::connect(from.port)
        .cmd(&[b"SLOTSINFO", slot.to_string().as_bytes(), b"1"])
        .0;
    assert_eq!(info, Frame::Array(b'*', vec![]));
}

#[test]
fn scripts_during_sync_migration() {
    scripts_during_migration(0);
}

#[test]
fn scripts_during_semi_async_migration() {
    scripts_during_migration(1);
}
