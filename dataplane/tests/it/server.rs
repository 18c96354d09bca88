//! Integration tests: server commands (MONITOR, maxmemory, maxclients, INFO, SHUTDOWN,
//! active expiry).

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use dataplane::resp::frame::Frame;

use crate::support::{Client, show, start_codis};

/// INFO [section] parsed into field → value.
fn info(c: &mut Client, section: &str) -> HashMap<String, String> {
    let (f, raw) = c.cmd(&[b"INFO", section.as_bytes()]);
    let Frame::Bulk(text) = f else {
        panic!("INFO reply is not a bulk string: {}", show(&raw));
    };
    let text = String::from_utf8(text).expect("INFO is text");
    text.split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("INFO has no {k}"))
        .parse()
        .unwrap_or_else(|_| panic!("{k} is not a number"))
}

#[test]
fn monitor_sees_other_clients_commands() {
    let s = start_codis(&[]);
    let mut mon = Client::connect(s.port);
    assert_eq!(mon.run("MONITOR"), Frame::Simple(b"OK".to_vec()));
    let mut c = Client::connect(s.port);
    c.cmd(&[b"SET", b"k", b"a b\x00"]);
    let (f, raw) = mon.read_reply().expect("monitor line");
    let Frame::Simple(line) = f else {
        panic!("not a status line: {}", show(&raw));
    };
    let line = String::from_utf8(line).unwrap();
    assert!(
        line.ends_with(r#""SET" "k" "a b\x00""#) && line.contains("[0 127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn allkeys_lru_evicts_and_stays_near_the_limit() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    let base = num(&info(&mut c, "memory"), "used_memory");
    let limit = base + 2 * 1024 * 1024;
    let limit_s = limit.to_string();
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"]);
    let (f, raw) = c.cmd(&[b"CONFIG", b"SET", b"maxmemory", limit_s.as_bytes()]);
    assert_eq!(f, Frame::Simple(b"OK".to_vec()), "{}", show(&raw));
    let value = vec![b'x'; 1024];
    for i in 0..10_000 {
        let key = format!("key:{i}");
        let (f, raw) = c.cmd(&[b"SET", key.as_bytes(), &value]);
        assert_eq!(f, Frame::Simple(b"OK".to_vec()), "{}", show(&raw));
    }
    let keys = int(&c.run("DBSIZE").clone());
    assert!(keys > 0 && keys < 10_000, "dbsize {keys}");
    let m = info(&mut c, "all");
    assert!(num(&m, "evicted_keys") > 0);
    let used = num(&m, "used_memory");
    // Near the limit: a write may overshoot by what it allocated itself.
    assert!(used <= limit + 512 * 1024, "used {used} limit {limit}");
    assert_eq!(m["maxmemory_policy"], "allkeys-lru");
}

#[test]
fn noeviction_refuses_writes_over_the_limit() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    c.run("SET a 1");
    c.run("CONFIG SET maxmemory 1");
    let (_, raw) = c.cmd(&[b"SET", b"b", b"2"]);
    assert_eq!(
        raw,
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    // Reads still work.
    assert_eq!(c.run("GET a"), Frame::Bulk(b"1".to_vec()));
    c.run("CONFIG SET maxmemory 0");
    assert_eq!(c.run("SET b 2"), Frame::Simple(b"OK".to_vec()));
}

#[test]
fn maxclients_refuses_extra_connections() {
    let s = start_codis(&[]);
    let mut c1 = Client::connect(s.port);
    assert_eq!(
        c1.run("CONFIG SET maxclients 2"),
        Frame::Simple(b"OK".to_vec())
    );
    let mut c2 = Client::connect(s.port);
    assert_eq!(c2.run("PING"), Frame::Simple(b"PONG".to_vec()));
    let mut c3 = Client::connect(s.port);
    let (_, raw) = c3.read_reply().expect("an error before closing");
    assert_eq!(raw, b"-ERR max number of clients reached\r\n");
    assert!(c3.read_reply().is_none(), "connection closed");
    let m = info(&mut c1, "stats");
    assert_eq!(num(&m, "rejected_connections"), 1);
}

#[test]
fn info_fields_and_keyspace_match_dbsize() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    for i in 0..25 {
        c.cmd(&[b"SET", format!("k{i}").as_bytes(), b"v"]);
    }
    c.run("GET k1");
    c.run("GET nosuch");
    c.run("SELECT 2");
    c.run("SET x y");
    c.run("SELECT 0");
    let m = info(&mut c, "everything");
    assert_eq!(m["redis_version"], dataplane::server::REDIS_VERSION);
    assert_eq!(m["role"], "master");
    assert_eq!(num(&m, "tcp_port"), s.port as u64);
    assert!(num(&m, "process_id") > 0);
    assert_eq!(m["run_id"].len(), 40);
    assert_eq!(num(&m, "connected_clients"), 1);
    assert!(num(&m, "used_memory") > 0);
    assert!(num(&m, "used_memory_rss") > 0);
    assert_eq!(num(&m, "keyspace_hits"), 1);
    assert_eq!(num(&m, "keyspace_misses"), 1);
    assert_eq!(num(&m, "rdb_changes_since_last_save"), 26);
    assert!(num(&m, "total_commands_processed") >= 30);
    assert!(m["used_cpu_user"].parse::<f64>().is_ok());
    assert!(
        m["cmdstat_set"].starts_with("calls=26,usec="),
        "{}",
        m["cmdstat_set"]
    );
    let dbsize = int(&c.run("DBSIZE"));
    assert_eq!(m["db0"], format!("keys={dbsize},expires=0,avg_ttl=0"));
    assert_eq!(m["db2"], "keys=1,expires=0,avg_ttl=0");
    // Only the asked sections, in Redis's order.
    let (f, _) = c.cmd(&[b"INFO", b"keyspace", b"SERVER"]);
    let Frame::Bulk(text) = f else { panic!() };
    let text = String::from_utf8(text).unwrap();
    assert!(text.starts_with("# Server\r\n"));
    assert!(text.contains("\r\n\r\n# Keyspace\r\ndb0:keys=25,"));
    assert!(!text.contains("# Clients"));
}

#[test]
fn shutdown_stops_the_server() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    c.send_raw(b"*1\r\n$8\r\nSHUTDOWN\r\n");
    assert!(c.read_reply().is_none(), "SHUTDOWN closes without a reply");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", s.port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "server still accepting connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn active_expiry_removes_untouched_keys() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    for i in 0..100 {
        let k = format!("t{i}");
        c.cmd(&[b"SET", k.as_bytes(), b"v"]);
        let (f, raw) = c.cmd(&[b"DEBUG", b"SET-TTL", k.as_bytes(), b"100"]);
        assert_eq!(f, Frame::Simple(b"OK".to_vec()), "{}", show(&raw));
    }
    c.run("SET keep v");
    assert_eq!(int(&c.run("DBSIZE")), 101);
    assert!(info(&mut c, "keyspace")["db0"].starts_with("keys=101,expires=100,"));
    let start = Instant::now();
    while int(&c.run("DBSIZE")) != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "keys were not expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = info(&mut c, "all");
    assert_eq!(num(&m, "expired_keys"), 100);
    assert_eq!(m["db0"], "keys=1,expires=0,avg_ttl=0");
}

#[test]
fn slowlog_records_slow_commands() {
    let s = start_codis(&[]);
    let mut c = Client::connect(s.port);
    c.run("CONFIG SET slowlog-log-slower-than 0");
    c.run("CLIENT SETNAME me");
    c.cmd(&[b"SET", b"k", &[b'x'; 200]]);
    let (f, raw) = c.cmd(&[b"SLOWLOG", b"GET", b"1"]);
    let Frame::Array(_, entries) = f else {
        panic!("{}", show(&raw))
    };
    let Frame::Array(_, e) = &entries[0] else {
        panic!()
    };
    assert_eq!(e.len(), 6);
    let Frame::Array(_, args) = &e[3] else {
        panic!()
    };
    assert_eq!(args[0], Frame::Bulk(b"SET".to_vec()));
    let mut trimmed = vec![b'x'; 128];
    trimmed.extend_from_slice(b"... (72 more bytes)");
    assert_eq!(args[2], Frame::Bulk(trimmed));
    assert_eq!(e[5], Frame::Bulk(b"me".to_vec()));
    c.run("SLOWLOG RESET");
    c.run("CONFIG SET slowlog-log-slower-than -1");
    // The RESET itself may be logged before the threshold changed: at most one entry.
    assert!(int(&c.run("SLOWLOG LEN")) <= 1);
}

/// CLIENT KILL closes a connection whatever it is doing: idle, blocked in BLPOP, or stuck
/// writing replies its client does not read; and SHUTDOWN NOSAVE closes idle connections.
#[test]
fn client_kill_closes_idle_blocked_and_stuck_connections() {
    let s = start_codis(&["--io-threads", "1"]);
    let mut admin = Client::connect(s.port);
    let id_of = |c: &mut Client| int(&c.run("CLIENT ID"));
    let listed = |admin: &mut Client, id: i64| -> bool {
        let Frame::Bulk(list) = admin.run("CLIENT LIST") else {
            panic!("CLIENT LIST")
        };
        String::from_utf8_lossy(&list)
            .lines()
            .any(|l| l.starts_with(&format!("id={id} ")))
    };
    let gone_within = |admin: &mut Client, id: i64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while listed(admin, id) {
            assert!(Instant::now() < deadline, "client {id} still listed");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Idle.
    let mut idle = Client::connect(s.port);
    let idle_id = id_of(&mut idle);
    assert_eq!(int(&admin.run(&format!("CLIENT KILL ID {idle_id}"))), 1);
    gone_within(&mut admin, idle_id);
    assert!(idle.read_reply_within(Duration::from_secs(5)).is_none());
    // Blocked.
    let mut blocked = Client::connect(s.port);
    let blocked_id = id_of(&mut blocked);
    blocked.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nnolst\r\n$1\r\n0\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while num(&info(&mut admin, "clients"), "blocked_clients") == 0 {
        assert!(Instant::now() < deadline, "BLPOP did not block");
        std::thread::sleep(Duration::from_millis(10));
    }
    admin.run(&format!("CLIENT KILL ID {blocked_id}"));
    gone_within(&mut admin, blocked_id);
    assert!(blocked.read_reply_within(Duration::from_secs(5)).is_none());
    // Stuck writing: 64 MB of replies it never reads.
    assert_eq!(admin.run("SET big x"), Frame::Simple(b"OK".to_vec()));
    admin.run("SETRANGE big 1048575 x");
    let mut stuck = Client::connect(s.port);
    let stuck_id = id_of(&mut stuck);
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(64);
    stuck.send_raw(&get);
    std::thread::sleep(Duration::from_millis(300));
    admin.run(&format!("CLIENT KILL ID {stuck_id}"));
    gone_within(&mut admin, stuck_id);
    // Shutdown with idle connections: the server exits.
    let mut idle2 = Client::connect(s.port);
    assert_eq!(idle2.run("PING"), Frame::Simple(b"PONG".to_vec()));
    let _ = admin.try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(idle2.read_reply_within(Duration::from_secs(10)).is_none());
}
