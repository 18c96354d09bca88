//! Integration tests: master-replica replication between codis-servers and with Debian's
//! redis-server 7 both ways; partial resync after a broken link; READONLY, promotion, WAIT.

use std::time::{Duration, Instant};

use dataplane::resp::frame::Frame;

use crate::persist::{bulks_text, compare, int, ok, populate};
use crate::support::{Client, start_codis, start_redis};

/// One field of `INFO replication` (or `stats`).
pub(crate) fn field(c: &mut Client, section: &str, name: &str) -> String {
    let info = bulks_text(ok(c, &[b"INFO", section.as_bytes()]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .to_string()
}

/// Waits until the replica's link is up and its offset is the master's.
pub(crate) fn wait_synced(m: &mut Client, r: &mut Client) {
    let start = Instant::now();
    loop {
        let mo = field(m, "replication", "master_repl_offset");
        let up = field(r, "replication", "master_link_status");
        let ro = field(r, "replication", "slave_repl_offset");
        if up == "up" && mo == ro {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replica not in sync: master {mo}, replica {ro} ({up})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` keys of every type, pipelined.
fn mixed(c: &mut Client, n: usize, prefix: &str) {
    let mut batch = Vec::new();
    let mut pending = 0;
    for i in 0..n {
        let k = format!("{prefix}:{i}").into_bytes();
        let v = format!("v{i}").into_bytes();
        let cmd: Vec<Vec<u8>> = match i % 6 {
            0 => vec![b"SET".to_vec(), k, v],
            1 => vec![b"RPUSH".to_vec(), k, v.clone(), b"b".to_vec(), v],
            2 => vec![b"SADD".to_vec(), k, v, b"7".to_vec()],
            3 => vec![
                b"HSET".to_vec(),
                k,
                b"f".to_vec(),
                v,
                b"g".to_vec(),
                b"1".to_vec(),
            ],
            4 => vec![
                b"ZADD".to_vec(),
                k,
                b"1.5".to_vec(),
                v,
                b"2".to_vec(),
                b"m".to_vec(),
            ],
            _ => vec![b"SET".to_vec(), k, [v, vec![b'x'; 60]].concat()],
        };
        batch.extend(Client::encode(&cmd));
        pending += 1;
        if i % 7 == 0 {
            batch.extend(Client::encode(&[
                b"PEXPIRE".to_vec(),
                format!("{prefix}:{i}").into_bytes(),
                b"500000".to_vec(),
            ]));
            pending += 1;
        }
        if pending >= 500 || i + 1 == n {
            c.send_raw(&batch);
            batch.clear();
            for _ in 0..pending {
                let (f, _) = c.read_reply().unwrap();
                assert!(!matches!(f, Frame::Error(_)), "{f:?}");
            }
            pending = 0;
        }
    }
}

/// Writes whose replay on a replica must be made deterministic (relative TTLs, random pops,
/// float increments), a transaction, expirations, several databases.
fn traffic(c: &mut Client, tag: &str) {
    let k = |s: &str| format!("{tag}:{s}").into_bytes();
    ok(c, &[b"SELECT", b"1"]);
    ok(c, &[b"SET", &k("ex"), b"v", b"EX", b"1000"]);
    ok(c, &[b"SETEX", &k("setex"), b"1000", b"v"]);
    ok(c, &[b"SET", &k("short"), b"v", b"PX", b"30"]);
    ok(c, &[b"SELECT", b"0"]);
    ok(c, &[b"SET", &k("f"), b"1"]);
    for _ in 0..3 {
        ok(c, &[b"INCRBYFLOAT", &k("f"), b"0.1"]);
    }
    ok(c, &[b"HINCRBYFLOAT", &k("hf"), b"x", b"2.5e-3"]);
    let members: Vec<Vec<u8>> = (0..40).map(|i| i.to_string().into_bytes()).collect();
    let mut sadd: Vec<&[u8]> = vec![b"SADD", b""];
    let sk = k("spop");
    sadd[1] = &sk;
    sadd.extend(members.iter().map(|m| m.as_slice()));
    ok(c, &sadd);
    ok(c, &[b"SPOP", &sk]);
    ok(c, &[b"SPOP", &sk, b"5"]);
    ok(c, &[b"EXPIRE", &sk, b"10000"]);
    ok(c, &[b"MULTI"]);
    c.cmd(&[b"INCR", &k("ctr")]);
    c.cmd(&[b"LPUSH", &k("l"), b"a", b"b"]);
    c.cmd(&[b"SELECT", b"1"]);
    c.cmd(&[b"SET", &k("in-multi"), b"1"]);
    ok(c, &[b"EXEC"]);
    ok(c, &[b"SELECT", b"0"]);
    ok(c, &[b"DEL", &k("l")]);
    ok(c, &[b"RPUSH", &k("l"), b"z"]);
}

/// Keys of every type on the master, then REPLICAOF with writes during the sync and after;
/// WAIT, and every key compared.
fn sync_under_traffic(m: &mut Client, r: &mut Client, master_port: u16, seed: u64) {
    populate(m, seed);
    mixed(m, 5_000, "pre");
    ok(
        r,
        &[
            b"REPLICAOF",
            b"127.0.0.1",
            master_port.to_string().as_bytes(),
        ],
    );
    traffic(m, "during");
    wait_synced(m, r);
    traffic(m, "after");
    assert_eq!(int(ok(m, &[b"WAIT", b"1", b"5000"])), 1);
    std::thread::sleep(Duration::from_millis(300));
    wait_synced(m, r);
    compare(m, r);
}

/// Waits until the master has accepted one partial resync.
fn wait_partial_resync(m: &mut Client) {
    let start = Instant::now();
    while field(m, "stats", "sync_partial_ok") != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no partial resync"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// codis master, codis replica: keys of every type before REPLICAOF, writes during the
/// sync and after; every key's DUMP compared.
#[test]
fn codis_replica_of_codis() {
    let master = start_codis(&[]);
    let replica = start_codis(&[]);
    let mut m = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    populate(&mut m, 11);
    mixed(&mut m, 50_000, "pre");
    ok(
        &mut r,
        &[
            b"REPLICAOF",
            b"127.0.0.1",
            master.port.to_string().as_bytes(),
        ],
    );
    // While the replica connects and loads.
    mixed(&mut m, 3_000, "during");
    traffic(&mut m, "during");
    wait_synced(&mut m, &mut r);
    traffic(&mut m, "after");
    mixed(&mut m, 2_000, "after");
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"1", b"5000"])), 1);
    std::thread::sleep(Duration::from_millis(300)); // let the PX 30 keys expire (DEL)
    wait_synced(&mut m, &mut r);
    compare(&mut m, &mut r);
    assert_eq!(field(&mut m, "replication", "connected_slaves"), "1");
    assert_eq!(field(&mut m, "stats", "sync_full"), "1");
    let role = bulks_text_array(ok(&mut r, &[b"ROLE"]));
    assert_eq!(role[0], "slave");
    assert_eq!(role[3], "connected");
}

fn bulks_text_array(f: Frame) -> Vec<String> {
    match f {
        Frame::Array(_, v) => v
            .into_iter()
            .map(|x| match x {
                Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(&b).into_owned(),
                Frame::Integer(i) => i.to_string(),
                o => format!("{o:?}"),
            })
            .collect(),
        o => panic!("not an array: {o:?}"),
    }
}

/// Debian's redis-server as the replica of a codis-server.
#[test]
fn redis_replica_of_codis() {
    let master = start_codis(&[]);
    let replica = start_redis(&[]);
    let mut m = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    sync_under_traffic(&mut m, &mut r, master.port, 12);
    // A broken link resumes with +CONTINUE.
    let before = field(&mut m, "stats", "sync_partial_ok");
    assert_eq!(before, "0");
    ok(&mut m, &[b"CLIENT", b"KILL", b"TYPE", b"slave"]);
    traffic(&mut m, "gap");
    wait_partial_resync(&mut m);
    wait_synced(&mut m, &mut r);
    compare(&mut m, &mut r);
    assert_eq!(field(&mut m, "stats", "sync_full"), "1");
}

/// codis-server as the replica of Debian's redis-server (diskless sync, `$EOF:` payload,
/// and then a disk-based one).
#[test]
fn codis_replica_of_redis() {
    for diskless in ["yes", "no"] {
        let master = start_redis(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let replica = start_codis(&[]);
        let mut m = Client::connect(master.port);
        let mut r = Client::connect(replica.port);
        sync_under_traffic(&mut m, &mut r, master.port, 13);
        // The replica's link dies: it resumes with PSYNC and the master accepts.
        ok(&mut r, &[b"CLIENT", b"KILL", b"TYPE", b"master"]);
        traffic(&mut m, "gap");
        wait_partial_resync(&mut m);
        wait_synced(&mut m, &mut r);
        compare(&mut m, &mut r);
    }
}

/// codis master and replica: the replica's link is killed mid-stream (CLIENT KILL TYPE
/// master on the replica) while the master keeps writing; it resumes with +CONTINUE.
#[test]
fn partial_resync_after_broken_link() {
    let master = start_codis(&["--repl-backlog-size", "64mb"]);
    let replica = start_codis(&[]);
    let mut m = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    populate(&mut m, 14);
    ok(
        &mut r,
        &[
            b"REPLICAOF",
            b"127.0.0.1",
            master.port.to_string().as_bytes(),
        ],
    );
    wait_synced(&mut m, &mut r);
    let mut w = Client::connect(master.port);
    let writer = std::thread::spawn(move || mixed(&mut w, 20_000, "stream"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        int(ok(&mut r, &[b"CLIENT", b"KILL", b"TYPE", b"master"])),
        1
    );
    writer.join().unwrap();
    wait_partial_resync(&mut m);
    wait_synced(&mut m, &mut r);
    compare(&mut m, &mut r);
    assert_eq!(field(&mut m, "stats", "sync_full"), "1");
}

/// A replica refuses writes; REPLICAOF NO ONE promotes it with the data kept and the old
/// id as replid2, so a second replica of the old master can continue from it.
#[test]
fn readonly_and_promotion() {
    let master = start_codis(&[]);
    let a = start_codis(&[]);
    let b = start_codis(&[]);
    let mut m = Client::connect(master.port);
    let mut ra = Client::connect(a.port);
    let mut rb = Client::connect(b.port);
    populate(&mut m, 15);
    for c in [&mut ra, &mut rb] {
        ok(
            c,
            &[
                b"REPLICAOF",
                b"127.0.0.1",
                master.port.to_string().as_bytes(),
            ],
        );
    }
    wait_synced(&mut m, &mut ra);
    wait_synced(&mut m, &mut rb);
    let (f, _) = ra.cmd(&[b"SET", b"x", b"1"]);
    assert_eq!(
        f,
        Frame::Error(b"READONLY You can't write against a read only replica.".to_vec())
    );
    let old_id = field(&mut m, "replication", "master_replid");
    // Sentinel sends it inside MULTI/EXEC.
    ok(&mut ra, &[b"MULTI"]);
    ra.cmd(&[b"REPLICAOF", b"NO", b"ONE"]);
    ok(&mut ra, &[b"EXEC"]);
    assert_eq!(field(&mut ra, "replication", "role"), "master");
    assert_eq!(field(&mut ra, "replication", "master_replid2"), old_id);
    compare(&mut m, &mut ra);
    ok(&mut ra, &[b"SET", b"x", b"1"]);
    ok(
        &mut rb,
        &[b"REPLICAOF", b"127.0.0.1", a.port.to_string().as_bytes()],
    );
    wait_synced(&mut ra, &mut rb);
    assert_eq!(field(&mut ra, "stats", "sync_partial_ok"), "1");
    assert_eq!(field(&mut ra, "stats", "sync_full"), "0");
    compare(&mut ra, &mut rb);
}

/// WAIT counts acknowledging replicas; with none it answers 0 after its timeout.
#[test]
fn wait_counts_replicas() {
    let master = start_codis(&[]);
    let mut m = Client::connect(master.port);
    ok(&mut m, &[b"SET", b"k", b"v"]);
    let t = Instant::now();
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"1", b"200"])), 0);
    assert!(t.elapsed() >= Duration::from_millis(190));
    let replica = start_codis(&[]);
    let mut r = Client::connect(replica.port);
    ok(
        &mut r,
        &[
            b"REPLICAOF",
            b"127.0.0.1",
            master.port.to_string().as_bytes(),
        ],
    );
    wait_synced(&mut m, &mut r);
    ok(&mut m, &[b"SET", b"k", b"v2"]);
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"1", b"5000"])), 1);
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"2", b"100"])), 1);
    let (f, _) = r.cmd(&[b"WAIT", b"1", b"10"]);
    assert!(matches!(f, Frame::Error(_)));
}

/// What redis-sentinel reads and sets: priorities under both names, `replicaof` at start,
/// CONFIG REWRITE without a file, CLIENT KILL TYPE normal.
#[test]
fn sentinel_facing_settings() {
    let master = start_codis(&[]);
    let port = master.port.to_string();
    let replica = start_codis(&["--replicaof", "127.0.0.1", &port, "--replica-priority", "7"]);
    let mut m = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    ok(&mut m, &[b"SET", b"k", b"v"]);
    wait_synced(&mut m, &mut r);
    assert_eq!(field(&mut r, "replication", "slave_priority"), "7");
    ok(&mut r, &[b"CONFIG", b"SET", b"slave-priority", b"9"]);
    assert_eq!(
        crate::persist::bulks(ok(&mut r, &[b"CONFIG", b"GET", b"replica-priority"]))[1],
        b"9"
    );
    assert_eq!(field(&mut r, "replication", "slave_read_only"), "1");
    assert_eq!(field(&mut r, "replication", "master_port"), port);
    let (f, _) = r.cmd(&[b"CONFIG", b"REWRITE"]);
    assert!(matches!(f, Frame::Error(_)), "{f:?}");
    let mut other = Client::connect(master.port);
    ok(&mut other, &[b"PING"]);
    // Kills `other` (and this client is skipped), never the replica.
    assert_eq!(
        int(ok(
            &mut m,
            &[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes"]
        )),
        1
    );
    assert_eq!(field(&mut m, "replication", "connected_slaves"), "1");
    let list = bulks_text(ok(&mut m, &[b"CLIENT", b"LIST", b"TYPE", b"replica"]));
    assert!(list.contains("flags=S"), "{list}");
    let list = bulks_text(ok(&mut r, &[b"CLIENT", b"LIST", b"TYPE", b"master"]));
    assert!(list.contains("flags=M"), "{list}");
}

/// Three Debian redis-sentinels fail a codis-server master over to one of its two codis
/// replicas: the promoted one (MULTI, REPLICAOF NO ONE, CONFIG REWRITE, CLIENT KILL, EXEC)
/// keeps the data and the other one follows it.
#[test]
fn sentinel_fails_over_codis_servers() {
    use crate::sentinel::{Sentinel, count, start_sentinel};
    let master = start_codis(&[]);
    let mp = master.port.to_string();
    let a = start_codis(&["--replicaof", "127.0.0.1", &mp]);
    let b = start_codis(&["--replicaof", "127.0.0.1", &mp]);
    let mut m = Client::connect(master.port);
    populate(&mut m, 16);
    for p in [a.port, b.port] {
        wait_synced(&mut m, &mut Client::connect(p));
    }
    let sentinels: Vec<Sentinel> = (0..3).map(|_| start_sentinel(master.port)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &sentinels {
        let mut c = Client::connect(s.port);
        while count(&c.run("SENTINEL replicas it-1")) < 2
            || count(&c.run("SENTINEL sentinels it-1")) < 2
        {
            assert!(
                Instant::now() < deadline,
                "sentinels never discovered everyone"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The reference is filled the same way, not by replication: a replica of the master,
    // even briefly, shows in its INFO and the sentinels would reconfigure it too.
    let reference = start_codis(&[]);
    let mut refc = Client::connect(reference.port);
    populate(&mut refc, 16);
    drop(m);
    drop(master);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (new, other) = loop {
        let ra = field(&mut Client::connect(a.port), "replication", "role");
        let rb = field(&mut Client::connect(b.port), "replication", "role");
        if ra == "master" {
            break (a.port, b.port);
        }
        if rb == "master" {
            break (b.port, a.port);
        }
        assert!(Instant::now() < deadline, "no failover");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Sentinel ends its reconfiguration with CLIENT KILL TYPE normal: fresh clients each
    // time until it is done.
    loop {
        let mut o = Client::connect(other);
        if field(&mut o, "replication", "master_port") == new.to_string()
            && field(&mut o, "replication", "master_link_status") == "up"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other replica never followed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut n = Client::connect(new);
    let mut o = Client::connect(other);
    ok(&mut n, &[b"SET", b"after-failover", b"1"]);
    wait_synced(&mut n, &mut o);
    ok(&mut n, &[b"DEL", b"after-failover"]);
    wait_synced(&mut n, &mut o);
    compare(&mut refc, &mut n);
    compare(&mut refc, &mut o);
    drop(reference);
}

/// Keys a slot migration moves away from a master reach its replica as DELs (sync and async
/// families); the migration itself is not replayed there.
#[test]
fn migrated_keys_leave_the_replica() {
    let src = start_codis(&[]);
    let dst = start_codis(&[]);
    let replica = start_codis(&["--replicaof", "127.0.0.1", &src.port.to_string()]);
    let mut m = Client::connect(src.port);
    let mut r = Client::connect(replica.port);
    mixed(&mut m, 3_000, "mig");
    wait_synced(&mut m, &mut r);
    let slot_of = |c: &mut Client, k: &[u8]| match ok(c, &[b"SLOTSHASHKEY", k]) {
        Frame::Array(_, v) => int(v[0].clone()),
        o => panic!("{o:?}"),
    };
    let s1 = slot_of(&mut m, b"mig:1").to_string().into_bytes();
    let s2 = slot_of(&mut m, b"mig:2").to_string().into_bytes();
    assert_ne!(s1, s2);
    let port = dst.port.to_string().into_bytes();
    loop {
        let f = ok(
            &mut m,
            &[b"SLOTSMGRTSLOT", b"127.0.0.1", &port, b"5000", &s1],
        );
        if matches!(&f, Frame::Array(_, v) if v.get(1) == Some(&Frame::Integer(0))) {
            break;
        }
    }
    loop {
        let f = ok(
            &mut m,
            &[
                b"SLOTSMGRTSLOT-ASYNC",
                b"127.0.0.1",
                &port,
                b"5000",
                b"50",
                b"4096",
                &s2,
                b"4",
            ],
        );
        if matches!(&f, Frame::Array(_, v) if v.get(1) == Some(&Frame::Integer(0))) {
            break;
        }
    }
    // The DELs of the last batch leave with the next command or the next cron tick.
    std::thread::sleep(Duration::from_millis(300));
    wait_synced(&mut m, &mut r);
    assert_eq!(int(ok(&mut r, &[b"EXISTS", b"mig:1", b"mig:2"])), 0);
    assert_eq!(int(ok(&mut r, &[b"DBSIZE"])), int(ok(&mut m, &[b"DBSIZE"])));
    let mut d = Client::connect(dst.port);
    assert_eq!(int(ok(&mut d, &[b"EXISTS", b"mig:1", b"mig:2"])), 2);
}

/// min-replicas-to-write, replica-serve-stale-data and writable replicas: the same scenario
/// on redis-server and codis-server gives the same replies, byte for byte.
#[test]
fn replica_safety_settings_match_redis() {
    type Start = fn(&[&str]) -> crate::support::Server;
    let mut transcripts: Vec<Vec<String>> = Vec::new();
    for start in [start_redis as Start, start_codis as Start] {
        let mut t = Vec::new();
        let master = start(&[
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "10",
        ]);
        let mut m = Client::connect(master.port);
        {
            // PSYNC behind another request in the same write.
            let mut p = Client::connect(master.port);
            let mut bytes = Client::encode(&[b"PING".to_vec()]);
            bytes.extend(Client::encode(&[
                b"PSYNC".to_vec(),
                b"?".to_vec(),
                b"-1".to_vec(),
            ]));
            p.send_raw(&bytes);
            for _ in 0..2 {
                t.push(crate::support::show(&p.read_reply().unwrap().1));
            }
        }
        let mut log = |c: &mut Client, args: &[&[u8]]| {
            t.push(crate::support::show(&c.cmd(args).1));
        };
        log(&mut m, &[b"SET", b"k", b"refused"]);
        log(&mut m, &[b"MULTI"]);
        log(&mut m, &[b"SET", b"k", b"refused"]);
        log(&mut m, &[b"EXEC"]);
        log(&mut m, &[b"GET", b"k"]);
        let replica = start(&["--replica-serve-stale-data", "no"]);
        let mut r = Client::connect(replica.port);
        ok(
            &mut r,
            &[
                b"REPLICAOF",
                b"127.0.0.1",
                master.port.to_string().as_bytes(),
            ],
        );
        wait_synced(&mut m, &mut r);
        // The first ACK makes the replica good.
        let start_t = Instant::now();
        while field(&mut m, "replication", "min_slaves_good_slaves") != "1" {
            assert!(start_t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(50));
        }
        log(&mut m, &[b"SET", b"k", b"accepted"]);
        wait_synced(&mut m, &mut r);
        log(&mut r, &[b"GET", b"k"]);
        // Writable replica: local writes are accepted and stay local.
        log(&mut r, &[b"SET", b"local", b"1"]);
        ok(&mut r, &[b"CONFIG", b"SET", b"replica-read-only", b"no"]);
        log(&mut r, &[b"SET", b"local", b"1"]);
        log(&mut m, &[b"EXISTS", b"local"]);
        // The master goes away: stale reads are refused, INFO and PING still answer.
        drop(m);
        drop(master);
        let start_t = Instant::now();
        while field(&mut r, "replication", "master_link_status") != "down" {
            assert!(start_t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
        log(&mut r, &[b"GET", b"k"]);
        log(&mut r, &[b"PING"]);
        log(
            &mut r,
            &[b"CONFIG", b"SET", b"replica-serve-stale-data", b"yes"],
        );
        log(&mut r, &[b"GET", b"k"]);
        transcripts.push(t);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert!(
        transcripts[0][1].starts_with("-ERR SYNC and PSYNC"),
        "{:?}",
        transcripts[0]
    );
    assert!(
        transcripts[0][2].starts_with("-NOREPLICAS"),
        "{:?}",
        transcripts[0]
    );
    assert!(transcripts[0].iter().any(|l| l.starts_with("-MASTERDOWN")));
}

/// Issue 15 item 4: a write through SLOTSMGRT-EXEC-WRAPPER (how the proxy sends writes to a
/// key of a migrating slot) reaches the replica exactly once, also inside MULTI/EXEC and for
/// commands whose propagation is rewritten (SPOP, EXPIRE); the target of an async migration
/// hands its restores to its own replica with absolute TTLs. Every key compared with DUMP.
#[test]
fn wrapper_writes_reach_the_replica_once() {
    let master = start_codis(&[]);
    let replica = start_codis(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut m = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    wait_synced(&mut m, &mut r);
    populate(&mut m, 15);
    ok(&mut m, &[b"SELECT", b"0"]);
    let w = |c: &mut Client, args: &[&[u8]]| {
        let mut v: Vec<&[u8]> = vec![b"SLOTSMGRT-EXEC-WRAPPER", args[1]];
        v.extend_from_slice(args);
        match ok(c, &v) {
            Frame::Array(_, v) => {
                assert_eq!(v[0], Frame::Integer(2), "{v:?}");
                v[1].clone()
            }
            o => panic!("{o:?}"),
        }
    };
    // The reproductions of the issue, verbatim.
    ok(&mut m, &[b"SET", b"k", b"10"]);
    assert_eq!(w(&mut m, &[b"INCR", b"k"]), Frame::Integer(11));
    ok(&mut m, &[b"RPUSH", b"l", b"a", b"b", b"c", b"d"]);
    w(&mut m, &[b"RPOP", b"l"]);
    // Rewritten propagation inside the wrapper, and the wrapper inside a transaction.
    ok(&mut m, &[b"SADD", b"s", b"1", b"2", b"3", b"4", b"5"]);
    w(&mut m, &[b"SPOP", b"s"]);
    w(&mut m, &[b"EXPIRE", b"k", b"1000"]);
    w(&mut m, &[b"INCRBYFLOAT", b"k", b"0.5"]);
    ok(&mut m, &[b"MULTI"]);
    ok(&mut m, &[b"SLOTSMGRT-EXEC-WRAPPER", b"l", b"RPOP", b"l"]);
    ok(
        &mut m,
        &[b"SLOTSMGRT-EXEC-WRAPPER", b"l", b"LPUSH", b"l", b"z"],
    );
    ok(&mut m, &[b"EXEC"]);
    // This server as the target of an async migration: a chunked list with a TTL.
    for (i, elems) in [&[&b"x"[..], b"y"][..], &[b"z"]].iter().enumerate() {
        let mut a: Vec<&[u8]> = vec![b"SLOTSRESTORE-ASYNC", b"list", b"q", b"100000", b"3"];
        a.extend_from_slice(elems);
        match ok(&mut m, &a) {
            Frame::Array(_, v) => assert_eq!(v[1], Frame::Bulk(b"0".to_vec()), "chunk {i}"),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"1", b"5000"])), 1);
    wait_synced(&mut m, &mut r);
    assert_eq!(
        bulks_text(ok(&mut r, &[b"GET", b"k"])),
        bulks_text(ok(&mut m, &[b"GET", b"k"]))
    );
    assert_eq!(int(ok(&mut r, &[b"LLEN", b"l"])), 3);
    for k in [&b"k"[..], b"q"] {
        assert_eq!(
            int(ok(&mut r, &[b"PEXPIRETIME", k])),
            int(ok(&mut m, &[b"PEXPIRETIME", k])),
            "expiry of {}",
            String::from_utf8_lossy(k)
        );
    }
    compare(&mut m, &mut r);
}

/// GEO writes (GEOADD, the STORE forms of GEORADIUS / GEORADIUSBYMEMBER / GEOSEARCHSTORE,
/// a STORE that empties its destination) reach a codis replica and a redis-server replica,
/// and come back from the master's AOF after a SIGKILL; the read-only searches propagate
/// nothing, and a replica refuses GEORADIUS (a write command) as Redis does but serves its
/// `_RO` form.
#[test]
fn geo_writes_reach_replicas_and_the_aof() {
    let dir = crate::support::TempDir::new("repl-geo");
    let aof = [
        "--dir",
        dir.path(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
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
    let writes = [
        "GEOADD {g}src 13.361389 38.115556 Palermo 15.087269 37.502669 Catania 12.5 41.9 Rome",
        "GEOADD {g}src CH XX 13.5 38.2 Palermo 0 0 nosuch",
        "GEOADD {g}src NX 2.35 48.85 Paris 2.35 48.85 Rome",
        "GEORADIUS {g}src 14 38 300 km STORE {g}r1",
        "GEORADIUS {g}src 14 38 300 km COUNT 1 STOREDIST {g}r2",
        "GEORADIUSBYMEMBER {g}src Rome 2000 km STOREDIST {g}r3",
        "GEOSEARCHSTORE {g}s1 {g}src FROMLONLAT 14 38 BYBOX 800 800 km",
        "GEOSEARCHSTORE {g}s2 {g}src FROMMEMBER Paris BYRADIUS 2000 km DESC COUNT 2 STOREDIST",
        "SET {g}gone x",
        "GEOSEARCHSTORE {g}gone {g}src FROMLONLAT 0 0 BYRADIUS 1 m",
        "SET {g}gone2 x",
        "GEORADIUS {g}nokey 0 0 1 km STORE {g}gone2",
    ];
    for w in writes {
        let args: Vec<&[u8]> = w.split(' ').map(str::as_bytes).collect();
        ok(&mut m, &args);
    }
    // Reads do not move the replication offset.
    let before = field(&mut m, "replication", "master_repl_offset");
    for read in [
        "GEORADIUS {g}src 14 38 300 km WITHDIST",
        "GEORADIUS_RO {g}src 14 38 300 km",
        "GEOSEARCH {g}src FROMMEMBER Rome BYRADIUS 100 km",
    ] {
        let args: Vec<&[u8]> = read.split(' ').map(str::as_bytes).collect();
        ok(&mut m, &args);
    }
    assert_eq!(field(&mut m, "replication", "master_repl_offset"), before);
    assert_eq!(int(ok(&mut m, &[b"WAIT", b"2", b"5000"])), 2);
    wait_synced(&mut m, &mut r1);
    wait_synced(&mut m, &mut r2);
    let keys = ["{g}src", "{g}r1", "{g}r2", "{g}r3", "{g}s1", "{g}s2"];
    let snapshot = |c: &mut Client| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                c.cmd(&[b"ZRANGE", k.as_bytes(), b"0", b"-1", b"WITHSCORES"])
                    .1
            })
            .collect();
        v.push(c.cmd(&[b"EXISTS", b"{g}gone", b"{g}gone2"]).1);
        v
    };
    let want = snapshot(&mut m);
    assert!(want[1].len() > 10 && want[4].len() > 10, "{want:?}");
    assert_eq!(want[6], b":0\r\n");
    assert_eq!(snapshot(&mut r1), want, "codis replica");
    assert_eq!(snapshot(&mut r2), want, "redis replica");
    // A replica refuses the write form, as Redis does, and serves the read-only one.
    for r in [&mut r1, &mut r2] {
        let (f, _) = r.cmd(&[b"GEORADIUS", b"{g}src", b"14", b"38", b"300", b"km"]);
        assert_eq!(
            f,
            Frame::Error(b"READONLY You can't write against a read only replica.".to_vec())
        );
        ok(
            r,
            &[b"GEORADIUS_RO", b"{g}src", b"14", b"38", b"300", b"km"],
        );
    }
    for r in [&mut r1, &mut r2] {
        assert_eq!(int(ok(r, &[b"DBSIZE"])), 6);
    }
    // The AOF replays to the same dataset.
    drop(m);
    drop(master);
    let restarted = start_codis(&aof);
    let mut m2 = Client::connect(restarted.port);
    assert_eq!(snapshot(&mut m2), want, "after AOF replay");
}
