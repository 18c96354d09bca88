//! Scripts and functions beyond one server: a script's writes (as their effects) and FUNCTION
//! LOAD / DELETE / FLUSH / RESTORE reach a codis replica and a redis-server replica, and the
//! AOF replays to the same data and libraries.

use std::time::{Duration, Instant};

use dataplane::resp::frame::Frame;

use crate::persist::{compare, ok, populate};
use crate::repl::{field, wait_synced};
use crate::support::{Client, TempDir, show, start_codis, start_redis};

const LIB_V1: &[u8] = b"#!lua name=lib\n\
redis.register_function('bump', function(keys, args) redis.call('HINCRBY', keys[1], args[1], 1) return redis.call('ZINCRBY', keys[2], 1, args[1]) end)\n\
redis.register_function{function_name='peek', callback=function(keys) return redis.call('HGETALL', keys[1]) end, flags={'no-writes'}}";
const LIB_V2: &[u8] = b"#!lua name=lib\n\
redis.register_function('bump', function(keys, args) redis.call('HINCRBY', keys[1], args[1], 10) return redis.call('ZINCRBY', keys[2], 10, args[1]) end)\n\
redis.register_function{function_name='peek', callback=function(keys) return redis.call('HGETALL', keys[1]) end, flags={'no-writes'}}";
const OTHER_LIB: &[u8] =
    b"#!lua name=other\nredis.register_function('noop', function() return 1 end)";

/// The libraries of a server from `FUNCTION LIST WITHCODE`: name, code and function names
/// with their flags, sorted (Redis lists functions in its dict's order).
fn libraries(c: &mut Client) -> String {
    let (f, raw) = c.cmd(&[b"FUNCTION", b"LIST", b"WITHCODE"]);
    let Frame::Array(_, libs) = f else {
        panic!("FUNCTION LIST: {}", show(&raw))
    };
    let text = |f: &Frame| match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).to_string(),
        other => format!("{other:?}"),
    };
    let get = |kv: &[Frame], key: &str| -> Frame {
        kv.chunks(2)
            .find(|p| text(&p[0]) == key)
            .map(|p| p[1].clone())
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let mut out = Vec::new();
    for lib in libs {
        let Frame::Array(_, kv) = lib else { panic!() };
        let Frame::Array(_, funcs) = get(&kv, "functions") else {
            panic!()
        };
        let mut names: Vec<String> = funcs
            .iter()
            .map(|f| {
                let Frame::Array(_, fkv) = f else { panic!() };
                format!("{} {:?}", text(&get(fkv, "name")), get(fkv, "flags"))
            })
            .collect();
        names.sort();
        out.push(format!(
            "{} {names:?}\n{}",
            text(&get(&kv, "library_name")),
            text(&get(&kv, "library_code"))
        ));
    }
    out.sort();
    out.join("\n")
}

#[test]
fn script_effects_and_functions_reach_replicas_and_the_aof() {
    let dir = TempDir::new("script-repl");
    let aof = [
        "--dir",
        dir.path(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ];
    let master = start_codis(&aof);
    let port = master.port.to_string();
    let codis_replica = start_codis(&["--replicaof", "127.0.0.1", &port]);
    let redis_replica = start_redis(&["--replicaof", "127.0.0.1", &port]);
    let mut m = Client::connect(master.port);
    let mut r1 = Client::connect(codis_replica.port);
    let mut r2 = Client::connect(redis_replica.port);
    wait_synced(&mut m, &mut r1);
    wait_synced(&mut m, &mut r2);

    // A dataset of every type for the comparisons, then the scripts.
    populate(&mut m, 11);
    ok(&mut m, &[b"SELECT", b"0"]);
    ok(
        &mut m,
        &[b"SADD", b"pool", b"a", b"b", b"c", b"d", b"e", b"f"],
    );
    let scripts: &[&[&[u8]]] = &[
        // Several writes of several types.
        &[
            b"redis.call('INCR', KEYS[1]) redis.call('HSET', KEYS[2], 'f', ARGV[1]) \
              redis.call('RPUSH', KEYS[3], 'x', 'y', 'z') return redis.call('LPOP', KEYS[3])",
            b"3",
            b"counter",
            b"hash",
            b"list",
            b"v1",
        ],
        // Non-deterministic commands: the replicas get the effects, not the script.
        &[
            b"local m = redis.call('SPOP', KEYS[1]) redis.call('SET', KEYS[2], m) \
              redis.call('SET', KEYS[3], redis.call('TIME')[1]) \
              redis.call('SET', KEYS[4], redis.call('SRANDMEMBER', KEYS[1])) return m",
            b"4",
            b"pool",
            b"popped",
            b"time",
            b"rand",
        ],
        // Expiries, another database, and a key deleted.
        &[
            b"redis.call('SET', KEYS[1], 'e', 'PX', 600000) redis.call('SELECT', 1) \
              redis.call('SET', KEYS[2], 'in db 1') redis.call('SELECT', 0) \
              redis.call('DEL', KEYS[3]) return 1",
            b"3",
            b"expiring",
            b"db1key",
            b"counter",
        ],
    ];
    for s in scripts {
        let mut args: Vec<&[u8]> = vec![b"EVAL"];
        args.extend_from_slice(s);
        ok(&mut m, &args);
    }
    // A script that fails half way: its first write stays, and propagates.
    let (f, _) = m.cmd(&[
        b"EVAL",
        b"redis.call('SET', KEYS[1], 'before') redis.call('INCR', KEYS[2]) return 1",
        b"2",
        b"partial",
        b"hash",
    ]);
    assert!(matches!(f, Frame::Error(_)), "{f:?}");
    // EVALSHA and the read-only forms: nothing to propagate for reads.
    let Frame::Bulk(sha) = ok(
        &mut m,
        &[
            b"SCRIPT",
            b"LOAD",
            b"return redis.call('INCRBY', KEYS[1], ARGV[1])",
        ],
    ) else {
        panic!("SCRIPT LOAD")
    };
    ok(&mut m, &[b"EVALSHA", &sha, b"1", b"bysha", b"7"]);
    let before = field(&mut m, "replication", "master_repl_offset");
    ok(
        &mut m,
        &[
            b"EVAL_RO",
            b"return redis.call('GET', KEYS[1])",
            b"1",
            b"bysha",
        ],
    );
    assert_eq!(field(&mut m, "replication", "master_repl_offset"), before);

    // Functions: loaded, replaced, another loaded and deleted; FCALL writes.
    ok(&mut m, &[b"FUNCTION", b"LOAD", LIB_V1]);
    ok(&mut m, &[b"FCALL", b"bump", b"2", b"fh", b"fz", b"m1"]);
    ok(&mut m, &[b"FUNCTION", b"LOAD", b"REPLACE", LIB_V2]);
    ok(&mut m, &[b"FCALL", b"bump", b"2", b"fh", b"fz", b"m1"]);
    ok(&mut m, &[b"FUNCTION", b"LOAD", OTHER_LIB]);
    ok(&mut m, &[b"FUNCTION", b"DELETE", b"other"]);

    ok(&mut m, &[b"WAIT", b"2", b"5000"]);
    wait_synced(&mut m, &mut r1);
    wait_synced(&mut m, &mut r2);
    let want_libs = libraries(&mut m);
    assert!(want_libs.contains("args[1], 10)"), "{want_libs}");
    assert!(!want_libs.contains("noop"), "{want_libs}");
    for (name, r) in [("codis", &mut r1), ("redis", &mut r2)] {
        assert_eq!(libraries(r), want_libs, "{name} replica libraries");
        ok(r, &[b"SELECT", b"0"]);
        ok(&mut m, &[b"SELECT", b"0"]);
        // The replica runs the read-only function itself.
        assert_eq!(
            show(&r.cmd(&[b"FCALL_RO", b"peek", b"1", b"fh"]).1),
            show(&m.cmd(&[b"FCALL_RO", b"peek", b"1", b"fh"]).1),
            "{name} replica FCALL_RO"
        );
        compare(&mut m, r);
    }
    ok(&mut m, &[b"SELECT", b"0"]);
    assert_eq!(
        show(&m.cmd(&[b"ZSCORE", b"fz", b"m1"]).1),
        "$2\\r\\n11\\r\\n"
    );

    // The AOF (flushed by a clean shutdown) replays to the same dataset and libraries.
    let mut master = master;
    let _ = m.try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(master.wait_exit(Duration::from_secs(20)).is_some());
    drop(master);
    let restarted = start_codis(&aof);
    let mut m2 = Client::connect(restarted.port);
    assert_eq!(libraries(&mut m2), want_libs, "libraries after AOF replay");
    compare(&mut m2, &mut r1);
    ok(&mut m2, &[b"SELECT", b"0"]);
    assert_eq!(
        show(&m2.cmd(&[b"FCALL", b"bump", b"2", b"fh", b"fz", b"m1"]).1),
        "$2\\r\\n21\\r\\n"
    );

    // FUNCTION FLUSH and RESTORE reach the replica of the restarted server.
    let Frame::Bulk(dump) = ok(&mut m2, &[b"FUNCTION", b"DUMP"]) else {
        panic!("FUNCTION DUMP")
    };
    let port2 = restarted.port.to_string();
    let replica2 = start_redis(&["--replicaof", "127.0.0.1", &port2]);
    let mut r3 = Client::connect(replica2.port);
    wait_synced(&mut m2, &mut r3);
    assert_eq!(
        libraries(&mut r3),
        want_libs,
        "full sync carries the libraries"
    );
    ok(&mut m2, &[b"FUNCTION", b"FLUSH"]);
    wait_synced(&mut m2, &mut r3);
    assert_eq!(
        r3.cmd(&[b"FUNCTION", b"LIST"]).0,
        Frame::Array(b'*', vec![])
    );
    ok(&mut m2, &[b"FUNCTION", b"RESTORE", &dump]);
    wait_synced(&mut m2, &mut r3);
    assert_eq!(libraries(&mut r3), want_libs, "after FUNCTION RESTORE");
}

/// Function libraries in RDB files (Redis 7's `FUNCTION2` opcode): redis-server loads our
/// dump.rdb and we load its, DEBUG RELOAD keeps them, and a full resync carries them both
/// ways.
#[test]
fn function_libraries_in_rdb_files_both_ways() {
    // codis-server → redis-server.
    let d1 = TempDir::new("rdb-func-codis");
    let codis = start_codis(&["--dir", d1.path()]);
    let mut c = Client::connect(codis.port);
    ok(&mut c, &[b"FUNCTION", b"LOAD", LIB_V1]);
    ok(&mut c, &[b"FUNCTION", b"LOAD", OTHER_LIB]);
    ok(&mut c, &[b"FCALL", b"bump", b"2", b"h", b"z", b"m"]);
    let want = libraries(&mut c);
    assert!(want.contains("name=other"), "{want}");
    // DEBUG RELOAD saves, empties and loads back: the libraries survive.
    ok(&mut c, &[b"DEBUG", b"RELOAD"]);
    assert_eq!(libraries(&mut c), want, "after DEBUG RELOAD");
    ok(&mut c, &[b"SAVE"]);
    let redis = start_redis(&["--dir", d1.path()]);
    let mut r = Client::connect(redis.port);
    assert_eq!(libraries(&mut r), want, "redis-server loading our dump.rdb");
    assert_eq!(
        show(&r.cmd(&[b"FCALL", b"bump", b"2", b"h", b"z", b"m"]).1),
        "$1\\r\\n2\\r\\n"
    );
    assert_eq!(show(&r.cmd(&[b"FCALL", b"noop", b"0"]).1), ":1\\r\\n");

    // redis-server → codis-server.
    let d2 = TempDir::new("rdb-func-redis");
    let redis = start_redis(&["--dir", d2.path()]);
    let mut r = Client::connect(redis.port);
    ok(&mut r, &[b"HSET", b"h", b"m", b"2"]);
    ok(&mut r, &[b"ZADD", b"z", b"2", b"m"]);
    ok(&mut r, &[b"FUNCTION", b"LOAD", LIB_V2]);
    ok(&mut r, &[b"SAVE"]);
    let want2 = libraries(&mut r);
    let codis2 = start_codis(&["--dir", d2.path()]);
    let mut c2 = Client::connect(codis2.port);
    assert_eq!(
        libraries(&mut c2),
        want2,
        "codis-server loading redis's dump.rdb"
    );
    assert_eq!(
        show(&c2.cmd(&[b"FCALL", b"bump", b"2", b"h", b"z", b"m"]).1),
        "$2\\r\\n12\\r\\n"
    );
    // FUNCTION DUMP payloads agree too.
    assert_eq!(
        show(&c2.cmd(&[b"FUNCTION", b"DUMP"]).1),
        show(&r.cmd(&[b"FUNCTION", b"DUMP"]).1)
    );

    // A codis replica of redis-server gets redis's libraries (and drops its own).
    let replica = start_codis(&[]);
    let mut rc = Client::connect(replica.port);
    ok(&mut rc, &[b"FUNCTION", b"LOAD", OTHER_LIB]);
    let rport = redis.port.to_string();
    ok(&mut rc, &[b"REPLICAOF", b"127.0.0.1", rport.as_bytes()]);
    wait_synced(&mut r, &mut rc);
    assert_eq!(libraries(&mut rc), want2, "codis replica of redis-server");
}

/// An AOF rewrite keeps the libraries, with the RDB preamble (`FUNCTION2` records) and
/// without it (`FUNCTION LOAD` commands).
#[test]
fn aof_rewrite_keeps_function_libraries() {
    let dir = TempDir::new("aof-func");
    for preamble in ["yes", "no"] {
        let args = [
            "--dir",
            dir.path(),
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            preamble,
        ];
        let mut s = start_codis(&args);
        let mut c = Client::connect(s.port);
        ok(&mut c, &[b"FUNCTION", b"FLUSH"]);
        ok(&mut c, &[b"FUNCTION", b"LOAD", LIB_V1]);
        ok(&mut c, &[b"FCALL", b"bump", b"2", b"h", b"z", b"m"]);
        ok(&mut c, &[b"BGREWRITEAOF"]);
        let start = Instant::now();
        while field(&mut c, "persistence", "aof_rewrite_in_progress") != "0"
            || field(&mut c, "persistence", "aof_rewrite_scheduled") != "0"
        {
            assert!(start.elapsed() < Duration::from_secs(30), "rewrite stuck");
            std::thread::sleep(Duration::from_millis(20));
        }
        let want = libraries(&mut c);
        let _ = c.try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        assert!(s.wait_exit(Duration::from_secs(20)).is_some());
        drop(s);
        let s2 = start_codis(&args);
        let mut c2 = Client::connect(s2.port);
        assert_eq!(libraries(&mut c2), want, "preamble {preamble}");
        assert!(want.contains("name=lib"), "{want}");
    }
}

/// True once a fresh connection to `port` gets `-BUSY` for a plain command.
fn busy(port: u16) -> bool {
    let f = Client::connect(port).cmd(&[b"GET", b"probe"]).0;
    matches!(f, Frame::Error(ref e) if e.starts_with(b"BUSY"))
}

fn wait_busy(port: u16) {
    let start = Instant::now();
    while !busy(port) {
        assert!(start.elapsed() < Duration::from_secs(20), "never BUSY");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn in_thread(port: u16, args: &[&[u8]]) -> std::thread::JoinHandle<Frame> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    std::thread::spawn(move || {
        let mut c = Client::connect(port);
        c.send_raw(&Client::encode(&args));
        // Long runs on a loaded machine (a debug build, CI's two cores) outlast the usual
        // 10 s read timeout.
        c.read_reply_within(Duration::from_secs(120))
            .expect("reply")
            .0
    })
}

fn err_text(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).into_owned(),
        other => panic!("not an error: {other:?}"),
    }
}

/// Short scripts run inline on the connection's thread (one I/O thread here, so every client
/// shares it). One that then runs long without effects moves to the script thread: the other
/// clients get `-BUSY` and SCRIPT KILL stops it. A script cannot `pcall` its way out of a
/// kill, and FUNCTION STATS answers while a function is busy.
#[test]
fn long_inline_scripts_move_to_the_script_thread_and_stay_killable() {
    let s = start_codis(&["--io-threads", "1"]);
    let mut c = Client::connect(s.port);
    ok(&mut c, &[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]);
    // TIME first: a command that is not a write does not pin the run to its thread.
    let body: &[u8] = b"local t = redis.call('TIME') \
                        if ARGV[1] == 'spin' then local i = 0 while true do i = i + 1 end end \
                        return redis.call('INCR', KEYS[1])";
    let sha = match ok(&mut c, &[b"SCRIPT", b"LOAD", body]) {
        Frame::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ok(&mut c, &[b"EVALSHA", &sha, b"1", b"n", b"go"]),
        Frame::Integer(1)
    );
    // Now inline: a pipeline keeps its order around the script calls.
    let pipe = [
        vec![
            b"EVALSHA".to_vec(),
            sha.clone(),
            b"1".to_vec(),
            b"n".to_vec(),
            b"go".to_vec(),
        ],
        vec![b"GET".to_vec(), b"n".to_vec()],
        vec![
            b"EVAL".to_vec(),
            body.to_vec(),
            b"1".to_vec(),
            b"n".to_vec(),
            b"go".to_vec(),
        ],
        vec![b"INCR".to_vec(), b"n".to_vec()],
    ];
    let replies = c.try_pipeline(&pipe).expect("pipeline");
    assert_eq!(
        replies,
        vec![
            Frame::Integer(2),
            Frame::Bulk(b"2".to_vec()),
            Frame::Integer(3),
            Frame::Integer(4)
        ]
    );

    // The same script spinning: moved off the connection thread, so BUSY and SCRIPT KILL
    // reach the server.
    let t = in_thread(s.port, &[b"EVALSHA", &sha, b"1", b"n", b"spin"]);
    wait_busy(s.port);
    assert_eq!(
        Client::connect(s.port).cmd(&[b"SCRIPT", b"KILL"]).0,
        Frame::Simple(b"OK".to_vec())
    );
    let f = t.join().unwrap();
    assert!(err_text(&f).contains("killed by user"), "{f:?}");
    assert_eq!(ok(&mut c, &[b"GET", b"n"]), Frame::Bulk(b"4".to_vec()));
    // It still runs when asked normally.
    assert_eq!(
        ok(&mut c, &[b"EVALSHA", &sha, b"1", b"n", b"go"]),
        Frame::Integer(5)
    );

    // pcall, xpcall and coroutine.resume do not catch the kill.
    for spin in [
        &b"while true do pcall(function() while true do end end) end"[..],
        b"while true do xpcall(function() while true do end end, function(e) return e end) end",
        b"while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    ] {
        let t = in_thread(s.port, &[b"EVAL", spin, b"0"]);
        wait_busy(s.port);
        assert_eq!(
            Client::connect(s.port).cmd(&[b"SCRIPT", b"KILL"]).0,
            Frame::Simple(b"OK".to_vec())
        );
        let f = t.join().unwrap();
        assert!(
            err_text(&f).contains("killed by user"),
            "{}: {f:?}",
            show(spin)
        );
    }

    // A function that spins after inline runs: FUNCTION STATS names it while it is busy.
    let lib = b"#!lua name=spinlib\nredis.register_function('maybe_spin', function(keys, args) \
                if args[1] == 'spin' then while true do end end return 1 end)";
    assert_eq!(
        ok(&mut c, &[b"FUNCTION", b"LOAD", lib]),
        Frame::Bulk(b"spinlib".to_vec())
    );
    for _ in 0..2 {
        assert_eq!(
            ok(&mut c, &[b"FCALL", b"maybe_spin", b"0", b"go"]),
            Frame::Integer(1)
        );
    }
    let t = in_thread(s.port, &[b"FCALL", b"maybe_spin", b"0", b"spin"]);
    wait_busy(s.port);
    let (stats, raw) = Client::connect(s.port).cmd(&[b"FUNCTION", b"STATS"]);
    let text = show(&raw);
    assert!(matches!(stats, Frame::Array(..)), "{text}");
    for want in [
        "running_script",
        "maybe_spin",
        "FCALL",
        "spin",
        "libraries_count",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert_eq!(
        Client::connect(s.port).cmd(&[b"FUNCTION", b"KILL"]).0,
        Frame::Simple(b"OK".to_vec())
    );
    let f = t.join().unwrap();
    assert!(err_text(&f).contains("killed by user"), "{f:?}");
    let (stats, raw) = c.cmd(&[b"FUNCTION", b"STATS"]);
    assert!(matches!(stats, Frame::Array(..)), "{}", show(&raw));
    assert!(!show(&raw).contains("maybe_spin"), "{}", show(&raw));

    // The Lua memory limit still holds for a script's own allocations (it is off only
    // while our code converts values), inline or not, and the server goes on.
    let grow: &[u8] = b"local s = 'x' for i = 1, 40 do s = s .. s end return #s";
    for _ in 0..2 {
        let f = c.cmd(&[b"EVAL", grow, b"0"]).0;
        assert!(err_text(&f).contains("not enough memory"), "{f:?}");
    }
    // cmsgpack and struct refuse hostile input with an error: nesting past 64 levels,
    // lengths and offsets past the end of the input (no allocation of what they claim).
    for (script, want) in [
        (
            &b"return cmsgpack.unpack(string.rep('\\145', 100000))"[..],
            "nesting too deep",
        ),
        (
            b"return cmsgpack.unpack('\\221\\127\\255\\255\\255')",
            "Missing bytes",
        ),
        (
            b"return cmsgpack.unpack('\\223\\127\\255\\255\\255')",
            "Missing bytes",
        ),
        (
            b"return struct.unpack('!8 i4', 'abcd', 1e300)",
            "data string too short",
        ),
        (
            b"return struct.unpack('c2147483647', 'x')",
            "data string too short",
        ),
        (
            b"return struct.pack('c2147483647', 'x')",
            "string too short",
        ),
    ] {
        let f = c.cmd(&[b"EVAL", script, b"0"]).0;
        assert!(err_text(&f).contains(want), "{}: {f:?}", show(script));
    }
    assert_eq!(
        ok(&mut c, &[b"EVAL", b"return redis.call('PING')", b"0"]),
        Frame::Simple(b"PONG".to_vec())
    );

    // The string metatable is out of reach: string functions cannot be replaced for later
    // scripts, and the bytecode check cannot be fooled.
    for (script, want) in [
        (
            &b"return type(getmetatable(''))"[..],
            Frame::Bulk(b"boolean".to_vec()),
        ),
        (b"return ('abc'):upper()", Frame::Bulk(b"ABC".to_vec())),
        (
            b"pcall(function() getmetatable('').__index.byte = function() return 0 end end) \
              pcall(function() string.byte = function() return 0 end end) \
              return {string.byte('A'), loadstring('\\27Lua') == nil}",
            Frame::Array(b'*', vec![Frame::Integer(65), Frame::Integer(1)]),
        ),
    ] {
        assert_eq!(c.cmd(&[b"EVAL", script, b"0"]).0, want, "{}", show(script));
    }

    // A script that wrote, then spins inline on the only connection thread: it cannot move,
    // but connections made meanwhile are served by the rescue thread (BUSY, UNKILLABLE)
    // and SHUTDOWN NOSAVE stops it and the server.
    let body: &[u8] = b"redis.call('SET', KEYS[1], ARGV[1]) \
                        if ARGV[1] == 'spin' then while true do end end return 1";
    for _ in 0..2 {
        assert_eq!(
            ok(&mut c, &[b"EVAL", body, b"1", b"w", b"go"]),
            Frame::Integer(1)
        );
    }
    let t = in_thread(s.port, &[b"EVAL", body, b"1", b"w", b"spin"]);
    // Past the threshold first: a connection made before would land on the busy thread.
    std::thread::sleep(Duration::from_millis(300));
    wait_busy(s.port);
    let f = Client::connect(s.port).cmd(&[b"SCRIPT", b"KILL"]).0;
    assert!(err_text(&f).starts_with("UNKILLABLE"), "{f:?}");
    let _ = Client::connect(s.port).try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    let _ = t.join();
    let mut s = s;
    assert!(
        s.wait_exit(Duration::from_secs(20)).is_some(),
        "the server did not stop"
    );
}

/// Thousands of cached scripts and loaded functions (each used to hold one of the ~8000 slots
/// of mlua's reference stack: past that nothing compiled), and library calls that would
/// allocate without bound outside the Lua memory limit, or walk a self-referencing table
/// forever where no hook can stop them.
#[test]
fn script_caches_and_libraries_resist_hostile_input() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    let loads: Vec<Vec<Vec<u8>>> = (0..9000)
        .map(|i| {
            vec![
                b"SCRIPT".to_vec(),
                b"LOAD".to_vec(),
                format!("return {i}").into_bytes(),
            ]
        })
        .collect();
    let replies = c.try_pipeline(&loads).expect("SCRIPT LOADs");
    assert!(replies.iter().all(|f| matches!(f, Frame::Bulk(_))));
    let Frame::Bulk(last) = &replies[8999] else {
        unreachable!()
    };
    assert_eq!(ok(&mut c, &[b"EVALSHA", last, b"0"]), Frame::Integer(8999));
    assert_eq!(
        ok(&mut c, &[b"EVAL", b"return 'still compiles'", b"0"]),
        Frame::Bulk(b"still compiles".to_vec())
    );
    for (script, want) in [
        (
            &b"local t = {} for i = 1, 50 do t[i] = t end return cmsgpack.pack(t)"[..],
            "input too large",
        ),
        (
            b"return cmsgpack.unpack(string.rep('\\0', 1000000))",
            "too many return values",
        ),
        (
            b"return struct.unpack(string.rep('i0', 1000000), '')",
            "too many results",
        ),
    ] {
        let f = c.cmd(&[b"EVAL", script, b"0"]).0;
        assert!(err_text(&f).contains(want), "{}: {f:?}", show(script));
    }
    assert_eq!(
        ok(
            &mut c,
            &[b"EVAL", b"return #cmsgpack.pack(redis.call('PING'))", b"0"]
        ),
        Frame::Integer(9) // {ok='PONG'}: a one-pair map
    );
}

/// Loads `body` (a script of one key and one argument that returns 1 and runs short with the
/// argument `quick`) and runs it twice so: its next run starts inline. Returns its SHA1.
fn load_short_script(c: &mut Client, body: &[u8]) -> Vec<u8> {
    let sha = match ok(c, &[b"SCRIPT", b"LOAD", body]) {
        Frame::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    for _ in 0..2 {
        assert_eq!(
            ok(c, &[b"EVALSHA", &sha, b"1", b"w", b"quick"]),
            Frame::Integer(1)
        );
    }
    sha
}

/// An inline run whose budget went by inside a command (a slow KEYS) moves to the script
/// thread before its first write: the write and the loop after it run there, so other
/// clients of the same connection thread are answered (`-BUSY`), not left waiting.
#[test]
fn an_inline_run_past_its_budget_moves_before_its_first_write() {
    let s = start_codis(&["--io-threads", "1"]);
    let mut c = Client::connect(s.port);
    ok(&mut c, &[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]);
    // 300,000 keys: the KEYS below then takes a few hundred ms, past the 100 ms budget.
    ok(
        &mut c,
        &[
            b"EVAL",
            b"for i = 1, 300000 do redis.call('SET', 'key:with:some:length:' .. i, i) end",
            b"0",
        ],
    );
    let body: &[u8] = b"if ARGV[1] == 'slow' then redis.call('KEYS', '*e*e*e*e*e*e*e*e*z') end \
        redis.call('SET', KEYS[1], ARGV[1]) \
        if ARGV[1] == 'slow' then local i = 0 while i < 30000000 do i = i + 1 end end \
        return 1";
    let sha = load_short_script(&mut c, body);
    let t = in_thread(s.port, &[b"EVALSHA", &sha, b"1", b"w", b"slow"]);
    wait_busy(s.port);
    assert_eq!(t.join().unwrap(), Frame::Integer(1));
    assert_eq!(ok(&mut c, &[b"GET", b"w"]), Frame::Bulk(b"slow".to_vec()));
}

/// The same when the budget went by in Lua's C functions (string.rep here), which the hook's
/// instruction count does not see: the run still moves before its first write, so a client
/// of the same connection thread is answered `-BUSY` instead of waiting for the whole run.
#[test]
fn an_inline_run_past_its_budget_in_c_functions_moves_before_its_first_write() {
    let s = start_codis(&["--io-threads", "1"]);
    let mut c = Client::connect(s.port);
    ok(&mut c, &[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]);
    let body: &[u8] = b"if ARGV[1] == 'slow' then \
            for i = 1, 150 do local s = string.rep('x', 4194304) end end \
        redis.call('SET', KEYS[1], ARGV[1]) \
        if ARGV[1] == 'slow' then local i = 0 while i < 60000000 do i = i + 1 end end \
        return 1";
    let sha = load_short_script(&mut c, body);
    // Connected before the run: served by the same (only) connection thread.
    let mut other = Client::connect(s.port);
    assert_eq!(other.run("PING"), Frame::Simple(b"PONG".to_vec()));
    let t = in_thread(s.port, &[b"EVALSHA", &sha, b"1", b"w", b"slow"]);
    // A probe queued behind the inline run is answered when the run moves (`-BUSY`, or the
    // value if it gets the store lock before the script thread does: the run then goes on
    // there for seconds), or after the whole run if it stayed. One answered at once came
    // before the run started: probe again.
    let mut moved = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let sent = Instant::now();
        other.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nprobe\r\n");
        let reply = other.read_reply_within(Duration::from_secs(30));
        match reply {
            Some((Frame::Error(e), _)) if e.starts_with(b"BUSY") => {
                moved = Some(true);
                break;
            }
            Some((Frame::Null, _)) if sent.elapsed() < Duration::from_millis(200) => {
                assert!(!t.is_finished(), "the run ended before a probe saw it");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some((Frame::Null, _)) => {
                // Answered late: moved if the run still goes on (the script thread holds
                // the lock, a new client gets `-BUSY`), stayed if it is over (it wrote
                // `slow`). Neither: the probe was only late because the machine is busy
                // (the run has not written yet): probe again.
                if busy(s.port) {
                    moved = Some(true);
                    break;
                }
                match Client::connect(s.port).cmd(&[b"GET", b"w"]).0 {
                    Frame::Error(e) if e.starts_with(b"BUSY") => {
                        moved = Some(true);
                        break;
                    }
                    Frame::Bulk(v) if v == b"slow" => {
                        moved = Some(false);
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        moved,
        Some(true),
        "the run stayed inline (None: never started)"
    );
    assert_eq!(t.join().unwrap(), Frame::Integer(1));
    assert_eq!(ok(&mut c, &[b"GET", b"w"]), Frame::Bulk(b"slow".to_vec()));
}

/// Function names are found in any case, as in Redis; a library may register two names that
/// differ only in case (Redis 7.0 accepts it, then crashes when that library is replaced or
/// deleted). Here one of the two answers FCALL, and replacing or deleting the library leaves
/// the others callable and FUNCTION STATS right.
#[test]
fn function_names_in_any_case_and_libraries_with_case_twins() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    let twins: &[u8] = b"#!lua name=twins\n\
        redis.register_function('Ab', function() return 8 end)\n\
        redis.register_function('aB', function() return 9 end)\n\
        redis.register_function('solo', function() return 7 end)";
    ok(&mut c, &[b"FUNCTION", b"LOAD", twins]);
    ok(
        &mut c,
        &[
            b"FUNCTION",
            b"LOAD",
            b"#!lua name=keep\nredis.register_function('kept', function() return 1 end)",
        ],
    );
    let stats_count = |c: &mut Client| -> i64 {
        let Frame::Array(_, items) = ok(c, &[b"FUNCTION", b"STATS"]) else {
            panic!("FUNCTION STATS")
        };
        let Some(Frame::Array(_, engine)) = items.last().and_then(|e| match e {
            Frame::Array(_, v) => v.last().cloned(),
            _ => None,
        }) else {
            panic!("{items:?}")
        };
        match engine.last() {
            Some(Frame::Integer(n)) => *n,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(stats_count(&mut c), 4);
    // Written exactly as registered: that one; else one of the two.
    assert_eq!(ok(&mut c, &[b"FCALL", b"Ab", b"0"]), Frame::Integer(8));
    assert_eq!(ok(&mut c, &[b"FCALL", b"aB", b"0"]), Frame::Integer(9));
    for name in [&b"ab"[..], b"AB"] {
        let f = ok(&mut c, &[b"FCALL", name, b"0"]);
        assert!(matches!(f, Frame::Integer(8 | 9)), "{}: {f:?}", show(name));
    }
    assert_eq!(ok(&mut c, &[b"FCALL", b"SOLO", b"0"]), Frame::Integer(7));
    // Another library cannot take a twin's name in any case.
    let f = c
        .cmd(&[
            b"FUNCTION",
            b"LOAD",
            b"#!lua name=thief\nredis.register_function('AB', function() return 0 end)",
        ])
        .0;
    assert!(err_text(&f).contains("Function AB already exists"), "{f:?}");
    ok(
        &mut c,
        &[
            b"FUNCTION",
            b"LOAD",
            b"REPLACE",
            b"#!lua name=twins\nredis.register_function('AB', function() return 10 end)",
        ],
    );
    assert_eq!(ok(&mut c, &[b"FCALL", b"aB", b"0"]), Frame::Integer(10));
    assert_eq!(stats_count(&mut c), 2);
    let f = c.cmd(&[b"FCALL", b"solo", b"0"]).0;
    assert!(err_text(&f).contains("Function not found"), "{f:?}");
    ok(&mut c, &[b"FUNCTION", b"DELETE", b"twins"]);
    let f = c.cmd(&[b"FCALL", b"ab", b"0"]).0;
    assert!(err_text(&f).contains("Function not found"), "{f:?}");
    assert_eq!(ok(&mut c, &[b"FCALL", b"KEPT", b"0"]), Frame::Integer(1));
    assert_eq!(stats_count(&mut c), 1);
}

/// FUNCTION RESTORE changes nothing when it is refused, whatever the order of the payload's
/// libraries, and REPLACE does not trip over the libraries it replaces: replies compared
/// with redis-server's, each server restoring a payload it dumped itself.
#[test]
fn function_restore_is_all_or_nothing_as_in_redis() {
    let lib = |name: &str, funcs: &[&str]| -> Vec<u8> {
        let mut code = format!("#!lua name={name}\n");
        for f in funcs {
            code.push_str(&format!(
                "redis.register_function('{f}', function() return '{name}.{f}' end)\n"
            ));
        }
        code.into_bytes()
    };
    let session = |port: u16| -> Vec<String> {
        let mut c = Client::connect(port);
        let mut replies = Vec::new();
        let mut run = |c: &mut Client, args: &[&[u8]]| -> Frame {
            let (f, raw) = c.cmd(args);
            // The command's words but a payload (each server's own dump).
            let words: Vec<&[u8]> = args.iter().copied().filter(|a| a.len() < 40).collect();
            replies.push(format!("{} -> {}", show(&words.join(&b' ')), show(&raw)));
            f
        };
        // Payload 1: b{g} then c{F}; payload 2: b{f} then z{g}.
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("b", &["g"])]);
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("c", &["F"])]);
        let Frame::Bulk(p1) = run(&mut c, &[b"FUNCTION", b"DUMP"]) else {
            panic!("FUNCTION DUMP")
        };
        run(&mut c, &[b"FUNCTION", b"FLUSH"]);
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("b", &["f"])]);
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("z", &["g"])]);
        let Frame::Bulk(p2) = run(&mut c, &[b"FUNCTION", b"DUMP"]) else {
            panic!("FUNCTION DUMP")
        };
        run(&mut c, &[b"FUNCTION", b"FLUSH"]);
        // APPEND refused on c's F (a's f in another case): b must not be left behind.
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("a", &["f"])]);
        run(&mut c, &[b"FUNCTION", b"RESTORE", &p1, b"APPEND"]);
        run(&mut c, &[b"FCALL", b"g", b"0"]);
        run(&mut c, &[b"FCALL", b"f", b"0"]);
        // REPLACE: z{f} is replaced by payload 2's z{g}, so b{f} may take f.
        run(&mut c, &[b"FUNCTION", b"FLUSH"]);
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("z", &["f"])]);
        run(&mut c, &[b"FUNCTION", b"RESTORE", &p2, b"REPLACE"]);
        run(&mut c, &[b"FCALL", b"f", b"0"]);
        run(&mut c, &[b"FCALL", b"G", b"0"]);
        // REPLACE refused on a function of a library it does not replace.
        run(&mut c, &[b"FUNCTION", b"FLUSH"]);
        run(&mut c, &[b"FUNCTION", b"LOAD", &lib("q", &["G"])]);
        run(&mut c, &[b"FUNCTION", b"RESTORE", &p2, b"REPLACE"]);
        run(&mut c, &[b"FCALL", b"f", b"0"]);
        run(&mut c, &[b"FUNCTION", b"RESTORE", &p2, b"FLUSH"]);
        run(&mut c, &[b"FCALL", b"g", b"0"]);
        replies
    };
    let r = start_redis(&[]);
    let s = start_codis(&[]);
    let want = session(r.port);
    let got = session(s.port);
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        // Each server restores the dump it made; the dumps themselves are not compared.
        if !w.starts_with("FUNCTION DUMP") {
            assert_eq!(w, g);
        }
    }
}
