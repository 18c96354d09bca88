//! Integration tests: the append-only file. SIGKILL with `appendfsync always` under load,
//! AOF directories written by codis-server loaded by a real redis-server and the reverse,
//! rewrites, a torn last record, Redis-before-7 single-file AOFs, turning AOF on at run time.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::resp::frame::Frame;

use crate::persist::{bulks_text, compare, int, ok, populate};
use crate::support::{Client, Server, TempDir, show, start_codis, start_redis};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn info(c: &mut Client) -> String {
    bulks_text(ok(c, &[b"INFO", b"persistence"]))
}

fn wait_rewrite(c: &mut Client) {
    let start = Instant::now();
    loop {
        let i = info(c);
        if i.contains("aof_rewrite_in_progress:0") && i.contains("aof_rewrite_scheduled:0") {
            assert!(i.contains("aof_last_bgrewrite_status:ok"), "{i}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "rewrite did not finish: {i}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn manifest(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

fn aof_codis(dir: &TempDir, extra: &[&str]) -> Server {
    let mut args = vec!["--dir", dir.path(), "--appendonly", "yes"];
    args.extend_from_slice(extra);
    start_codis(&args)
}

/// What one writer got acknowledged before the server died.
#[derive(Default)]
struct Acked {
    counter: i64,
    list_len: i64,
    keys: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Writes until `stop`: INCR of its counter, RPUSH to its list, SET of new keys (some with a
/// TTL), MULTI/EXEC pairs. Returns what was acknowledged.
fn writer(port: u16, id: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut c = Client::connect(port);
    let mut a = Acked::default();
    let counter = format!("counter:{id}");
    let list = format!("list:{id}");
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("k:{id}:{i}");
        let val = format!("v{i}-{}", "x".repeat((i % 50) as usize));
        let sent = match i % 4 {
            0 => c.try_cmd(&[b"INCR", counter.as_bytes()]).map(|f| {
                if let Frame::Integer(n) = f {
                    a.counter = n;
                }
            }),
            1 => c
                .try_cmd(&[b"RPUSH", list.as_bytes(), val.as_bytes()])
                .map(|f| {
                    if let Frame::Integer(n) = f {
                        a.list_len = n;
                    }
                }),
            2 => c
                .try_cmd(&[b"SET", key.as_bytes(), val.as_bytes(), b"EX", b"1000"])
                .map(|f| {
                    if f == Frame::Simple(b"OK".to_vec()) {
                        a.keys
                            .push((key.clone().into_bytes(), val.clone().into_bytes()));
                    }
                }),
            _ => {
                let k2 = format!("{key}:tx");
                let r = c.try_pipeline(&[
                    vec![b"MULTI".to_vec()],
                    vec![
                        b"SET".to_vec(),
                        k2.clone().into_bytes(),
                        val.clone().into_bytes(),
                    ],
                    vec![b"INCR".to_vec(), counter.clone().into_bytes()],
                    vec![b"EXEC".to_vec()],
                ]);
                r.map(|replies| {
                    if let Some(Frame::Array(_, items)) = replies.last()
                        && let [Frame::Simple(_), Frame::Integer(n)] = items.as_slice()
                    {
                        a.counter = *n;
                        a.keys.push((k2.into_bytes(), val.into_bytes()));
                    }
                })
            }
        };
        if sent.is_none() {
            break; // the server is gone
        }
    }
    a
}

#[test]
fn sigkill_with_appendfsync_always_loses_no_acknowledged_write() {
    let dir = TempDir::new("aof-sigkill");
    let codis = aof_codis(&dir, &["--appendfsync", "always"]);
    let port = codis.port;
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|id| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(port, id, stop))
        })
        .collect();
    // A rewrite while the writers run: the kill may land during it, or after it.
    std::thread::sleep(Duration::from_millis(700));
    let mut admin = Client::connect(port);
    assert_eq!(
        ok(&mut admin, &[b"BGREWRITEAOF"]),
        Frame::Simple(b"Background append only file rewriting started".to_vec())
    );
    wait_rewrite(&mut admin);
    std::thread::sleep(Duration::from_millis(500));
    drop(admin);
    drop(codis); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let writes: usize = acked.iter().map(|a| a.keys.len()).sum();
    assert!(writes > 100, "only {writes} acknowledged SETs");

    let back = aof_codis(&dir, &[]);
    let mut c = Client::connect(back.port);
    for (id, a) in acked.iter().enumerate() {
        let n = c.cmd(&[b"GET", format!("counter:{id}").as_bytes()]).0;
        let got: i64 = match n {
            Frame::Bulk(b) => String::from_utf8_lossy(&b).parse().unwrap(),
            Frame::Null => 0,
            o => panic!("{o:?}"),
        };
        // A write sent but not acknowledged may or may not be there; an acknowledged one is.
        assert!(
            got >= a.counter,
            "counter {id}: {got} < acknowledged {}",
            a.counter
        );
        assert!(got <= a.counter + 1, "counter {id}: {got} vs {}", a.counter);
        let len = int(ok(&mut c, &[b"LLEN", format!("list:{id}").as_bytes()]));
        assert!(len >= a.list_len && len <= a.list_len + 1, "list {id}");
        for (k, v) in &a.keys {
            let (f, raw) = c.cmd(&[b"GET", k]);
            assert_eq!(f, Frame::Bulk(v.clone()), "{}: {}", show(k), show(&raw));
        }
    }
    // The same files give real Redis the same dataset.
    let copy = TempDir::new("aof-sigkill-redis");
    copy_dir(&dir.join("appendonlydir"), &copy.join("appendonlydir"));
    let redis = start_redis(&["--dir", copy.path(), "--appendonly", "yes"]);
    let mut r = Client::connect(redis.port);
    assert_eq!(int(ok(&mut c, &[b"DBSIZE"])), int(ok(&mut r, &[b"DBSIZE"])));
    for (id, a) in acked.iter().enumerate() {
        let key = format!("counter:{id}");
        assert_eq!(
            c.cmd(&[b"GET", key.as_bytes()]).1,
            r.cmd(&[b"GET", key.as_bytes()]).1
        );
        for (k, _) in a.keys.iter().take(50) {
            assert_eq!(c.cmd(&[b"DUMP", k]).1, r.cmd(&[b"DUMP", k]).1);
        }
    }
}

/// `appendfsync always`: a client never reads a value before the write that made it is
/// fsynced (Redis fsyncs before it sends any reply of the event-loop iteration), so a value
/// someone read cannot vanish in a crash. The fsync thread is held with
/// `DEBUG PAUSE-AOF-FSYNC` while one client writes and another reads.
#[test]
fn appendfsync_always_reads_wait_for_the_fsync_of_what_they_see() {
    let dir = TempDir::new("aof-read-fsync");
    let codis = aof_codis(&dir, &["--appendfsync", "always"]);
    let mut admin = Client::connect(codis.port);
    let mut writer = Client::connect(codis.port);
    let mut reader = Client::connect(codis.port);
    assert_eq!(admin.run("SET k old"), Frame::Simple(b"OK".to_vec()));
    assert_eq!(
        admin.run("DEBUG PAUSE-AOF-FSYNC 1"),
        Frame::Simple(b"OK".to_vec())
    );
    // Its reply waits for the fsync, held.
    writer.send_raw(&Client::encode(&[
        b"SET".to_vec(),
        b"k".to_vec(),
        b"new".to_vec(),
    ]));
    // Read until the read sees the SET (a bug) or its reply is held (the SET ran: every
    // reply now waits for its fsync). Waiting longer here can only miss the bug, never fail
    // a correct server.
    loop {
        reader.send_raw(&Client::encode(&[b"GET".to_vec(), b"k".to_vec()]));
        match reader.read_reply_within(Duration::from_millis(300)) {
            Some((Frame::Bulk(v), _)) if v == b"old" => continue,
            Some((f, raw)) => panic!(
                "a read returned {f:?} ({}) while the write was not fsynced",
                show(&raw)
            ),
            None => break,
        }
    }
    assert_eq!(
        admin.run("DEBUG PAUSE-AOF-FSYNC 0"),
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(
        writer.read_reply().unwrap().0,
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(reader.read_reply().unwrap().0, Frame::Bulk(b"new".to_vec()));
    // Nothing pending: reads answer at once again, and what was read survives a crash.
    assert_eq!(reader.run("GET k"), Frame::Bulk(b"new".to_vec()));
    drop(codis); // SIGKILL
    let back = aof_codis(&dir, &[]);
    assert_eq!(
        Client::connect(back.port).run("GET k"),
        Frame::Bulk(b"new".to_vec())
    );
}

/// `appendfsync always`: a replica gets a write only after the master fsynced it, as from
/// Redis (its `beforeSleep` runs `flushAppendOnlyFile` before it writes any client's output,
/// replicas' included), so a replica never holds a write its master's AOF could lose.
#[test]
fn appendfsync_always_replicas_get_a_write_after_its_fsync() {
    let dir = TempDir::new("aof-repl-fsync");
    let master = aof_codis(&dir, &["--appendfsync", "always"]);
    let replica = start_codis(&[]);
    let mut admin = Client::connect(master.port);
    let mut r = Client::connect(replica.port);
    assert_eq!(admin.run("SET k old"), Frame::Simple(b"OK".to_vec()));
    let port = master.port.to_string();
    r.cmd(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]);
    let start = Instant::now();
    while r.run("GET k") != Frame::Bulk(b"old".to_vec()) {
        assert!(start.elapsed() < Duration::from_secs(20), "no sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        admin.run("DEBUG PAUSE-AOF-FSYNC 1"),
        Frame::Simple(b"OK".to_vec())
    );
    let mut writer = Client::connect(master.port);
    writer.send_raw(&Client::encode(&[
        b"SET".to_vec(),
        b"k".to_vec(),
        b"new".to_vec(),
    ]));
    // Once a read on the master is held, the SET has run (every reply waits for its fsync).
    let mut reader = Client::connect(master.port);
    loop {
        reader.send_raw(&Client::encode(&[b"GET".to_vec(), b"k".to_vec()]));
        match reader.read_reply_within(Duration::from_millis(300)) {
            Some((Frame::Bulk(v), _)) if v == b"old" => continue,
            Some((f, raw)) => panic!("{f:?} ({})", show(&raw)),
            None => break,
        }
    }
    let held = Instant::now();
    while held.elapsed() < Duration::from_millis(300) {
        assert_eq!(
            r.run("GET k"),
            Frame::Bulk(b"old".to_vec()),
            "the replica got a write its master has not fsynced"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        admin.run("DEBUG PAUSE-AOF-FSYNC 0"),
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(
        writer.read_reply().unwrap().0,
        Frame::Simple(b"OK".to_vec())
    );
    let start = Instant::now();
    while r.run("GET k") != Frame::Bulk(b"new".to_vec()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the write never reached the replica"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn codis_aof_loads_in_redis_and_redis_aof_loads_in_codis() {
    // Ours → Redis: a base from a rewrite, then increments written after it.
    let dir = TempDir::new("aof-to-redis");
    let codis = aof_codis(&dir, &[]);
    let mut c = Client::connect(codis.port);
    populate(&mut c, 11);
    ok(&mut c, &[b"BGREWRITEAOF"]);
    wait_rewrite(&mut c);
    let m = manifest(&dir);
    assert!(
        m.contains("appendonly.aof.2.base.rdb seq 2 type b")
            && m.contains("appendonly.aof.2.incr.aof seq 2 type i")
            && !m.contains("seq 1"),
        "{m}"
    );
    assert!(!dir.join("appendonlydir/appendonly.aof.1.base.rdb").exists());
    populate(&mut c, 12); // overwrites and adds, after the base
    ok(&mut c, &[b"DEL", b"k:0:2:"]);
    let copy = TempDir::new("aof-to-redis-copy");
    copy_dir(&dir.join("appendonlydir"), &copy.join("appendonlydir"));
    let redis = start_redis(&["--dir", copy.path(), "--appendonly", "yes"]);
    let mut r = Client::connect(redis.port);
    compare(&mut c, &mut r);
    // Restarted, ours reads its own files back to the same dataset.
    drop(codis);
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    compare(&mut r, &mut b);

    // Redis → ours: Redis's base and increments after its own rewrite.
    let rdir = TempDir::new("aof-from-redis");
    let redis2 = start_redis(&["--dir", rdir.path(), "--appendonly", "yes"]);
    let mut r2 = Client::connect(redis2.port);
    populate(&mut r2, 21);
    ok(&mut r2, &[b"BGREWRITEAOF"]);
    wait_rewrite(&mut r2);
    populate(&mut r2, 22);
    let copy2 = TempDir::new("aof-from-redis-copy");
    copy_dir(&rdir.join("appendonlydir"), &copy2.join("appendonlydir"));
    let codis2 = aof_codis(&copy2, &[]);
    let mut c2 = Client::connect(codis2.port);
    compare(&mut r2, &mut c2);
    // aof-use-rdb-preamble no: a base of commands, which Redis loads too.
    ok(
        &mut c2,
        &[b"CONFIG", b"SET", b"aof-use-rdb-preamble", b"no"],
    );
    ok(&mut c2, &[b"BGREWRITEAOF"]);
    wait_rewrite(&mut c2);
    let m = std::fs::read_to_string(copy2.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(m.contains(".base.aof"), "{m}");
    let copy3 = TempDir::new("aof-cmd-base");
    copy_dir(&copy2.join("appendonlydir"), &copy3.join("appendonlydir"));
    let redis3 = start_redis(&["--dir", copy3.path(), "--appendonly", "yes"]);
    let mut r3 = Client::connect(redis3.port);
    compare(&mut c2, &mut r3);
}

/// Appends `bytes` to the last increment listed in the manifest.
fn append_to_incr(dir: &TempDir, bytes: &[u8]) -> PathBuf {
    let m = manifest(dir);
    let last = m
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let path = dir.join(&format!("appendonlydir/{last}"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(bytes).unwrap();
    path
}

#[test]
fn torn_last_record_is_cut_as_redis_does() {
    let dir = TempDir::new("aof-torn");
    let codis = aof_codis(&dir, &[]);
    let mut c = Client::connect(codis.port);
    for i in 0..100 {
        ok(&mut c, &[b"SET", format!("key:{i}").as_bytes(), b"v"]);
    }
    drop(codis);
    // A command cut short, as a crash in the middle of a write leaves it.
    let torn: &[u8] = b"*3\r\n$3\r\nSET\r\n$5\r\ntorn1\r\n$3\r\nab";
    let incr = append_to_incr(&dir, torn);
    let size = std::fs::metadata(&incr).unwrap().len();

    // Redis and ours on the same bytes: both start, both without the torn command.
    let copy = TempDir::new("aof-torn-redis");
    copy_dir(&dir.join("appendonlydir"), &copy.join("appendonlydir"));
    let redis = start_redis(&["--dir", copy.path(), "--appendonly", "yes"]);
    let mut r = Client::connect(redis.port);
    // aof-load-truncated no: refused, the file untouched.
    let (_, err) = start_codis_expect_exit(&dir, &["--aof-load-truncated", "no"]);
    assert!(err.contains("Unexpected end of file"), "{err}");
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), size);
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    for x in [&mut r, &mut b] {
        assert_eq!(int(ok(x, &[b"DBSIZE"])), 100);
        assert_eq!(x.cmd(&[b"EXISTS", b"torn1"]).0, Frame::Integer(0));
    }
    // Cut back to the last whole command, and appended to after it.
    let cut = std::fs::metadata(&incr).unwrap().len();
    assert_eq!(cut, size - torn.len() as u64);
    ok(&mut b, &[b"SET", b"after", b"1"]);
    drop(back);

    // A MULTI without its EXEC at the end is reverted as a torn record.
    append_to_incr(
        &dir,
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\ntx\r\n$1\r\n1\r\n",
    );
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    assert_eq!(b.cmd(&[b"EXISTS", b"tx"]).0, Frame::Integer(0));
    assert_eq!(b.cmd(&[b"GET", b"after"]).0, Frame::Bulk(b"1".to_vec()));
    assert_eq!(int(ok(&mut b, &[b"DBSIZE"])), 101);
    drop(back);

    // Garbage is not a torn record: the server refuses to start, as Redis does.
    append_to_incr(&dir, b"hello\r\n*1\r\n$4\r\nPING\r\n");
    let (_, err) = start_codis_expect_exit(&dir, &[]);
    assert!(err.contains("Bad file format"), "{err}");
}

/// Runs codis-server on `dir` expecting it to exit at start; returns its stderr.
fn start_codis_expect_exit(dir: &TempDir, extra: &[&str]) -> (String, String) {
    let port = crate::support::free_port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codis-server"))
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
        .args(["--dir", dir.path(), "--appendonly", "yes"])
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "codis-server started");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn single_file_aof_of_older_redis_is_loaded_and_moved() {
    // Redis before 7 (and Codis 3.2's redis 3.2): `appendonly.aof` in `dir`, commands only.
    let dir = TempDir::new("aof-old");
    let mut cmds = Vec::new();
    for args in [
        vec!["SELECT", "0"],
        vec!["SET", "a", "1"],
        vec!["RPUSH", "l", "x", "y"],
        vec!["SELECT", "2"],
        vec!["SADD", "s", "m1", "m2"],
        vec!["PEXPIREAT", "s", "99999999999999"],
        vec!["MULTI"],
        vec!["INCR", "n"],
        vec!["EXEC"],
    ] {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        cmds.extend(Client::encode(&a));
    }
    std::fs::write(dir.join("appendonly.aof"), &cmds).unwrap();
    let codis = aof_codis(&dir, &[]);
    let mut c = Client::connect(codis.port);
    assert_eq!(c.cmd(&[b"GET", b"a"]).0, Frame::Bulk(b"1".to_vec()));
    ok(&mut c, &[b"SELECT", b"2"]);
    assert_eq!(int(ok(&mut c, &[b"SCARD", b"s"])), 2);
    assert!(int(ok(&mut c, &[b"PTTL", b"s"])) > 0);
    assert_eq!(c.cmd(&[b"GET", b"n"]).0, Frame::Bulk(b"1".to_vec()));
    assert!(!dir.join("appendonly.aof").exists());
    let m = manifest(&dir);
    assert_eq!(
        m,
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    ok(&mut c, &[b"SELECT", b"0"]);
    ok(&mut c, &[b"SET", b"b", b"2"]);
    drop(codis);
    // An RDB preamble followed by commands (Redis 4-6 with aof-use-rdb-preamble).
    let dir2 = TempDir::new("aof-preamble");
    {
        let src = start_codis(&["--dir", dir2.path()]);
        let mut s = Client::connect(src.port);
        populate(&mut s, 5);
        ok(&mut s, &[b"SAVE"]);
    }
    let mut data = std::fs::read(dir2.join("dump.rdb")).unwrap();
    data.extend(Client::encode(&[
        b"SET".to_vec(),
        b"tail".to_vec(),
        b"yes".to_vec(),
    ]));
    std::fs::write(dir2.join("appendonly.aof"), &data).unwrap();
    std::fs::remove_file(dir2.join("dump.rdb")).unwrap();
    let codis2 = aof_codis(&dir2, &[]);
    let mut c2 = Client::connect(codis2.port);
    assert_eq!(c2.cmd(&[b"GET", b"tail"]).0, Frame::Bulk(b"yes".to_vec()));
    let mirror = start_codis(&[]);
    let mut mc = Client::connect(mirror.port);
    populate(&mut mc, 5);
    ok(&mut mc, &[b"SET", b"tail", b"yes"]);
    compare(&mut mc, &mut c2);
    // Restarted from the upgraded directory: the first dataset is all there.
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    assert_eq!(b.cmd(&[b"GET", b"b"]).0, Frame::Bulk(b"2".to_vec()));
    assert_eq!(b.cmd(&[b"GET", b"a"]).0, Frame::Bulk(b"1".to_vec()));
}

#[test]
fn appendonly_turned_on_at_run_time_and_automatic_rewrite() {
    let dir = TempDir::new("aof-runtime");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    let mirror = start_redis(&[]);
    let mut m = Client::connect(mirror.port);
    for x in [&mut c, &mut m] {
        populate(x, 31);
    }
    let (f, raw) = c.cmd(&[b"CONFIG", b"SET", b"appendfsync", b"sometimes"]);
    assert!(matches!(f, Frame::Error(_)), "{}", show(&raw));
    ok(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"appendonly",
            b"yes",
            b"auto-aof-rewrite-min-size",
            b"200kb",
            b"auto-aof-rewrite-percentage",
            b"50",
        ],
    );
    wait_rewrite(&mut c);
    let i = info(&mut c);
    assert!(
        i.contains("aof_enabled:1") && i.contains("aof_rewrites:1"),
        "{i}"
    );
    // Enough writes to pass the automatic rewrite's threshold.
    let big = vec![b'z'; 1000];
    for n in 0..600 {
        for x in [&mut c, &mut m] {
            ok(x, &[b"SET", format!("big:{}", n % 300).as_bytes(), &big]);
        }
    }
    let start = Instant::now();
    while !info(&mut c).contains("aof_rewrites:2") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            info(&mut c)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_rewrite(&mut c);
    for x in [&mut c, &mut m] {
        populate(x, 32);
    }
    assert_eq!(
        c.cmd(&[b"CONFIG", b"SET", b"appenddirname", b"x"]).1,
        b"-ERR CONFIG SET failed (possibly related to argument 'appenddirname') - can't set immutable config\r\n"
    );
    drop(codis);
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    compare(&mut m, &mut b);
    // Turned off, writes no longer reach the files.
    ok(&mut b, &[b"CONFIG", b"SET", b"appendonly", b"no"]);
    let before = manifest(&dir);
    let len = |d: &TempDir| -> u64 {
        std::fs::read_dir(d.join("appendonlydir"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let size = len(&dir);
    ok(&mut b, &[b"SET", b"unlogged", b"1"]);
    assert_eq!(len(&dir), size);
    assert_eq!(manifest(&dir), before);
    assert!(info(&mut b).contains("aof_enabled:0"));
}

#[test]
fn replica_aof_holds_the_masters_dataset() {
    let master = start_codis(&[]);
    let mut mc = Client::connect(master.port);
    populate(&mut mc, 41); // before the replica attaches: reaches it in the full resync
    let dir = TempDir::new("aof-replica");
    let port = master.port.to_string();
    let replica = aof_codis(&dir, &["--replicaof", "127.0.0.1", &port]);
    let mut rc = Client::connect(replica.port);
    let start = Instant::now();
    while !bulks_text(ok(&mut rc, &[b"INFO", b"replication"])).contains("master_link_status:up") {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The full resync restarts the replica's AOF from the loaded dataset.
    wait_rewrite(&mut rc);
    populate(&mut mc, 42); // streamed: reaches the replica's AOF as commands
    for cmd in [
        "SELECT 5",
        "SET gone 1",
        "FLUSHDB",
        "SELECT 0",
        "SET last 1",
    ] {
        let args: Vec<&[u8]> = cmd.split(' ').map(|s| s.as_bytes()).collect();
        ok(&mut mc, &args);
    }
    assert_eq!(int(ok(&mut mc, &[b"WAIT", b"1", b"5000"])), 1);
    drop(replica); // SIGKILL
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    compare(&mut mc, &mut b);
    ok(&mut b, &[b"SELECT", b"0"]);
    assert_eq!(b.cmd(&[b"GET", b"last"]).0, Frame::Bulk(b"1".to_vec()));
}

/// Issue 15 item 4: a write through SLOTSMGRT-EXEC-WRAPPER is logged once, so a reload gives
/// the value the clients saw; a chunked async restore with a TTL reloads with the same expiry.
#[test]
fn wrapper_write_replays_once_from_the_aof() {
    let dir = TempDir::new("aof-wrapper");
    let codis = aof_codis(&dir, &["--appendfsync", "always"]);
    let mut c = Client::connect(codis.port);
    ok(&mut c, &[b"SET", b"k", b"10"]);
    ok(&mut c, &[b"SLOTSMGRT-EXEC-WRAPPER", b"k", b"INCR", b"k"]);
    ok(&mut c, &[b"RPUSH", b"l", b"a", b"b", b"c", b"d"]);
    ok(&mut c, &[b"SLOTSMGRT-EXEC-WRAPPER", b"l", b"RPOP", b"l"]);
    ok(
        &mut c,
        &[
            b"SLOTSRESTORE-ASYNC",
            b"list",
            b"q",
            b"100000",
            b"2",
            b"x",
            b"y",
        ],
    );
    let expiry = int(ok(&mut c, &[b"PEXPIRETIME", b"q"]));
    assert!(expiry > 0);
    drop(codis);
    let back = aof_codis(&dir, &[]);
    let mut b = Client::connect(back.port);
    assert_eq!(bulks_text(ok(&mut b, &[b"GET", b"k"])), "11");
    assert_eq!(int(ok(&mut b, &[b"LLEN", b"l"])), 3);
    assert_eq!(int(ok(&mut b, &[b"LLEN", b"q"])), 2);
    assert_eq!(int(ok(&mut b, &[b"PEXPIRETIME", b"q"])), expiry);
}
