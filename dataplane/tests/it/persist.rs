//! Integration tests: RDB files between codis-server and a real redis-server (both ways),
//! BGSAVE as a point-in-time snapshot, restart and damaged files.

use std::path::Path;
use std::time::{Duration, Instant};

use dataplane::rdb::Limits;
use dataplane::rdb::file;
use dataplane::resp::frame::Frame;

use crate::support::{Client, TempDir, show, start_codis, start_redis};

pub(crate) fn ok(c: &mut Client, args: &[&[u8]]) -> Frame {
    let (f, raw) = c.cmd(args);
    assert!(
        !matches!(f, Frame::Error(_)),
        "{:?}: {}",
        String::from_utf8_lossy(args[0]),
        show(&raw)
    );
    f
}

pub(crate) fn bulks(f: Frame) -> Vec<Vec<u8>> {
    match f {
        Frame::Array(_, v) => v
            .into_iter()
            .map(|x| match x {
                Frame::Bulk(b) => b,
                o => panic!("not a bulk: {o:?}"),
            })
            .collect(),
        o => panic!("not an array: {o:?}"),
    }
}

pub(crate) fn int(f: Frame) -> i64 {
    match f {
        Frame::Integer(i) => i,
        o => panic!("not an integer: {o:?}"),
    }
}

/// A small deterministic generator (xorshift).
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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const DBS: [usize; 3] = [0, 1, 9];

/// Builds, with ordinary commands, keys of every type and encoding, some with a TTL, in
/// several databases, some with binary names.
pub(crate) fn populate(c: &mut Client, seed: u64) {
    let mut r = Rng(seed | 1);
    for db in DBS {
        ok(c, &[b"SELECT", db.to_string().as_bytes()]);
        for i in 0..240u64 {
            let mut key = format!("k:{db}:{i}:").into_bytes();
            if i % 7 == 0 {
                key.extend(r.bytes(6)); // binary: \0, \r\n, anything
            }
            if i % 11 == 0 {
                key.extend_from_slice(b"{tag}");
            }
            match i % 12 {
                0 => {
                    ok(
                        c,
                        &[b"SET", &key, (r.next() as i64 >> 33).to_string().as_bytes()],
                    );
                }
                1 => {
                    let n = 1 + r.below(40) as usize;
                    ok(c, &[b"SET", &key, &r.bytes(n)]);
                }
                2 => {
                    ok(
                        c,
                        &[b"SET", &key, &b"abcdefgh".repeat(1 + r.below(300) as usize)],
                    );
                }
                3 => {
                    for _ in 0..1 + r.below(20) {
                        let n = 1 + r.below(10) as usize;
                        ok(c, &[b"RPUSH", &key, &r.bytes(n)]);
                    }
                }
                4 => {
                    // Several quicklist nodes.
                    let vals: Vec<Vec<u8>> = (0..300)
                        .map(|j| format!("elem-{j}-{}", "x".repeat(30)).into_bytes())
                        .collect();
                    let mut args: Vec<&[u8]> = vec![b"RPUSH", &key];
                    args.extend(vals.iter().map(|v| v.as_slice()));
                    ok(c, &args);
                }
                5 => {
                    let n = if r.below(2) == 0 { 10 } else { 600 }; // intset or hashtable
                    let vals: Vec<String> = (0..n)
                        .map(|_| (r.next() as i64 >> 40).to_string())
                        .collect();
                    let mut args: Vec<&[u8]> = vec![b"SADD", &key];
                    args.extend(vals.iter().map(|v| v.as_bytes()));
                    ok(c, &args);
                }
                6 => {
                    let vals: Vec<Vec<u8>> = (0..1 + r.below(30)).map(|_| r.bytes(8)).collect();
                    let mut args: Vec<&[u8]> = vec![b"SADD", &key];
                    args.extend(vals.iter().map(|v| v.as_slice()));
                    ok(c, &args);
                }
                7 => {
                    for j in 0..1 + r.below(20) {
                        ok(c, &[b"HSET", &key, format!("f{j}").as_bytes(), &r.bytes(5)]);
                    }
                }
                8 => {
                    // Hashtable: many fields, or one long value.
                    if r.below(2) == 0 {
                        for j in 0..200 {
                            ok(
                                c,
                                &[
                                    b"HSET",
                                    &key,
                                    format!("f{j}").as_bytes(),
                                    format!("{j}").as_bytes(),
                                ],
                            );
                        }
                    } else {
                        ok(c, &[b"HSET", &key, b"f", &[b'v'; 100]]);
                    }
                }
                9 => {
                    for _ in 0..1 + r.below(20) {
                        let score = (r.next() as i64 >> 44) as f64 / 8.0;
                        ok(
                            c,
                            &[b"ZADD", &key, score.to_string().as_bytes(), &r.bytes(4)],
                        );
                    }
                }
                10 => {
                    for j in 0..200 {
                        let score = match j {
                            0 => "inf".to_string(),
                            1 => "-inf".to_string(),
                            _ => ((r.next() as i64 >> 40) as f64 / 3.0).to_string(),
                        };
                        ok(
                            c,
                            &[b"ZADD", &key, score.as_bytes(), format!("m{j}").as_bytes()],
                        );
                    }
                }
                _ => {
                    ok(c, &[b"SET", &key, b"plain"]);
                }
            }
            if r.below(3) == 0 {
                ok(
                    c,
                    &[
                        b"PEXPIRE",
                        &key,
                        (100_000 + r.below(1_000_000)).to_string().as_bytes(),
                    ],
                );
            }
        }
    }
    ok(c, &[b"SELECT", b"0"]);
}

/// Every key of `a` is in `b` with the same value (same DUMP, or for hash tables the same
/// contents) and the same TTL presence, and both have the same number of keys.
pub(crate) fn compare(a: &mut Client, b: &mut Client) {
    let mut total = 0;
    for db in DBS {
        for c in [&mut *a, &mut *b] {
            ok(c, &[b"SELECT", db.to_string().as_bytes()]);
        }
        let keys = bulks(ok(a, &[b"KEYS", b"*"]));
        assert_eq!(
            int(ok(b, &[b"DBSIZE"])),
            keys.len() as i64,
            "db {db} sizes differ"
        );
        for k in &keys {
            let da = a.cmd(&[b"DUMP", k]).1;
            let db_ = b.cmd(&[b"DUMP", k]).1;
            let enc_a = a.cmd(&[b"OBJECT", b"ENCODING", k]).1;
            let enc_b = b.cmd(&[b"OBJECT", b"ENCODING", k]).1;
            assert_eq!(show(&enc_a), show(&enc_b), "encoding of {}", show(k));
            if da != db_ {
                // Hash tables iterate in an order of their own: compare contents.
                assert_eq!(enc_a, b"$9\r\nhashtable\r\n", "DUMP of {} differs", show(k));
                let ty = a.cmd(&[b"TYPE", k]).1;
                let cmd: &[u8] = if ty == b"+set\r\n" {
                    b"SMEMBERS"
                } else {
                    b"HGETALL"
                };
                let mut ma = bulks(ok(a, &[cmd, k]));
                let mut mb = bulks(ok(b, &[cmd, k]));
                if cmd == b"HGETALL" {
                    let pair = |v: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
                        v.chunks(2)
                            .map(|p| [p[0].clone(), p[1].clone()].concat())
                            .collect()
                    };
                    ma = pair(ma);
                    mb = pair(mb);
                }
                ma.sort();
                mb.sort();
                assert_eq!(ma, mb, "contents of {}", show(k));
            }
            let ta = int(ok(a, &[b"PTTL", k]));
            let tb = int(ok(b, &[b"PTTL", k]));
            assert_eq!(ta > 0, tb > 0, "TTL presence of {} ({ta} vs {tb})", show(k));
            assert_eq!(ta == -1, tb == -1, "TTL of {}", show(k));
        }
        total += keys.len();
    }
    assert!(total > 600, "only {total} keys compared");
}

#[test]
fn codis_save_loads_in_redis() {
    let dir = TempDir::new("persist-to-redis");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    populate(&mut c, 42);
    assert_eq!(ok(&mut c, &[b"SAVE"]), Frame::Simple(b"OK".to_vec()));
    assert!(Path::new(dir.path()).join("dump.rdb").exists());
    let redis = start_redis(&["--dir", dir.path(), "--dbfilename", "dump.rdb"]);
    let mut r = Client::connect(redis.port);
    compare(&mut c, &mut r);
    // rdbchecksum no and rdbcompression no load as well.
    ok(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"rdbchecksum",
            b"no",
            b"rdbcompression",
            b"no",
        ],
    );
    ok(&mut c, &[b"CONFIG", b"SET", b"dbfilename", b"plain.rdb"]);
    ok(&mut c, &[b"SAVE"]);
    let redis2 = start_redis(&["--dir", dir.path(), "--dbfilename", "plain.rdb"]);
    let mut r2 = Client::connect(redis2.port);
    compare(&mut c, &mut r2);
}

#[test]
fn redis_save_loads_in_codis() {
    let dir = TempDir::new("persist-from-redis");
    let redis = start_redis(&["--dir", dir.path()]);
    let mut r = Client::connect(redis.port);
    populate(&mut r, 7);
    ok(&mut r, &[b"SAVE"]);
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    compare(&mut r, &mut c);
    let info = bulks_text(ok(&mut c, &[b"INFO", b"persistence"]));
    assert!(info.contains("rdb_last_load_keys_loaded:720"), "{info}");
}

pub(crate) fn bulks_text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        o => panic!("not a bulk: {o:?}"),
    }
}

fn wait_bgsave(c: &mut Client) {
    let start = Instant::now();
    loop {
        let info = bulks_text(ok(c, &[b"INFO", b"persistence"]));
        if info.contains("rdb_bgsave_in_progress:0") {
            assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "BGSAVE did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Loads a file in-process: db → key → value (as a DUMP payload) and expiry.
/// (db, key) → (DUMP payload, expiry).
type Saved = std::collections::HashMap<(usize, Vec<u8>), (Vec<u8>, Option<u64>)>;

fn read_file(path: &Path) -> Saved {
    let data = std::fs::read(path).unwrap();
    let lim = Limits::default();
    let mut m = std::collections::HashMap::new();
    file::load(&data, &lim, 16, 0, |k| {
        let dump = dataplane::rdb::dump_payload(&k.value, &lim);
        m.insert((k.db, k.key.to_vec()), (dump, k.expire_ms));
    })
    .unwrap();
    m
}

fn fill(c: &mut Client, n: usize) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(Client::encode(&[
            b"SET".to_vec(),
            format!("key:{i}").into_bytes(),
            format!("value:{i}").into_bytes(),
        ]));
        if (i + 1) % 1000 == 0 || i + 1 == n {
            c.send_raw(&batch);
            batch.clear();
            for _ in 0..(i % 1000) + 1 {
                c.read_reply().unwrap();
            }
        }
    }
}

#[test]
fn bgsave_is_point_in_time() {
    let dir = TempDir::new("persist-bgsave");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    fill(&mut c, 200_000);
    ok(&mut c, &[b"SET", b"{a}x", b"0"]);
    ok(&mut c, &[b"SET", b"{b}y", b"0"]);
    ok(&mut c, &[b"SET", b"del:me", b"present"]);
    // A writer keeps {a}x and {b}y (different slots) equal, atomically.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = codis.port;
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = Client::connect(port);
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let v = n.to_string();
            let mut req = Client::encode(&[b"MULTI".to_vec()]);
            req.extend(Client::encode(&[
                b"SET".to_vec(),
                b"{a}x".to_vec(),
                v.clone().into_bytes(),
            ]));
            req.extend(Client::encode(&[
                b"SET".to_vec(),
                b"{b}y".to_vec(),
                v.into_bytes(),
            ]));
            req.extend(Client::encode(&[b"EXEC".to_vec()]));
            w.send_raw(&req);
            for _ in 0..4 {
                w.read_reply().unwrap();
            }
        }
        n
    });
    std::thread::sleep(Duration::from_millis(50));
    // BGSAVE and the writes after it in one batch: they run before the save thread's first
    // lock hold, so the snapshot must not see them.
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    req.extend(Client::encode(&[
        b"SET".to_vec(),
        b"after:bgsave".to_vec(),
        b"1".to_vec(),
    ]));
    req.extend(Client::encode(&[b"DEL".to_vec(), b"del:me".to_vec()]));
    req.extend(Client::encode(&[
        b"SET".to_vec(),
        b"key:7".to_vec(),
        b"changed".to_vec(),
    ]));
    req.extend(Client::encode(&[b"BGSAVE".to_vec()]));
    c.send_raw(&req);
    let replies: Vec<Vec<u8>> = (0..5).map(|_| c.read_reply().unwrap().1).collect();
    assert_eq!(replies[0], b"+Background saving started\r\n");
    assert_eq!(replies[4], b"-ERR Background save already in progress\r\n");
    wait_bgsave(&mut c);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let m = read_file(&Path::new(dir.path()).join("dump.rdb"));
    let x = &m[&(0, b"{a}x".to_vec())].0;
    let y = &m[&(0, b"{b}y".to_vec())].0;
    assert_eq!(x, y, "the snapshot saw half of a transaction");
    assert!(
        m.contains_key(&(0, b"del:me".to_vec())),
        "a key deleted after BGSAVE is missing"
    );
    assert!(
        !m.contains_key(&(0, b"after:bgsave".to_vec())),
        "a key set after BGSAVE is there"
    );
    assert_eq!(m.len(), 200_003);
    let k7 =
        dataplane::rdb::restore_payload(&m[&(0, b"key:7".to_vec())].0, &Limits::default()).unwrap();
    assert!(matches!(k7, dataplane::store::Value::Str(ref s) if &s[..] == b"value:7"));
    assert!(writes > 10, "the writer made only {writes} transactions");
    // BGSAVE SCHEDULE while a save runs: it runs from the cron once that one is done. (Asked
    // only now: a scheduled save during the first one would overwrite the file checked above.)
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    req.extend(Client::encode(&[b"BGSAVE".to_vec(), b"SCHEDULE".to_vec()]));
    c.send_raw(&req);
    assert_eq!(c.read_reply().unwrap().1, b"+Background saving started\r\n");
    assert_eq!(
        c.read_reply().unwrap().1,
        b"+Background saving scheduled\r\n"
    );
    let start = Instant::now();
    while !bulks_text(ok(&mut c, &[b"INFO", b"persistence"])).contains("rdb_saves:3") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "scheduled BGSAVE never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bgsave_survives_flushall() {
    let dir = TempDir::new("persist-flush");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    fill(&mut c, 50_000);
    ok(&mut c, &[b"SELECT", b"3"]);
    fill(&mut c, 1000);
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    req.extend(Client::encode(&[b"FLUSHALL".to_vec()]));
    req.extend(Client::encode(&[
        b"SET".to_vec(),
        b"new".to_vec(),
        b"1".to_vec(),
    ]));
    c.send_raw(&req);
    for _ in 0..3 {
        c.read_reply().unwrap();
    }
    wait_bgsave(&mut c);
    let m = read_file(&Path::new(dir.path()).join("dump.rdb"));
    assert_eq!(m.len(), 51_000);
    assert!(m.contains_key(&(3, b"key:999".to_vec())));
    assert!(!m.contains_key(&(3, b"new".to_vec())));
    assert_eq!(int(ok(&mut c, &[b"DBSIZE"])), 1);
}

#[test]
fn restart_keeps_data_and_damage_stops_startup() {
    let dir = TempDir::new("persist-restart");
    let mut codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    populate(&mut c, 99);
    ok(&mut c, &[b"SET", b"marker", b"here"]);
    ok(&mut c, &[b"PEXPIRE", b"marker", b"100000000"]);
    let before = int(ok(&mut c, &[b"LASTSAVE"]));
    c.send_raw(&Client::encode(&[b"SHUTDOWN".to_vec(), b"SAVE".to_vec()]));
    assert!(c.read_reply().is_none(), "SHUTDOWN replied");
    let st = codis
        .wait_exit(Duration::from_secs(20))
        .expect("codis-server did not exit");
    assert!(st.success());
    let path = Path::new(dir.path()).join("dump.rdb");
    let saved = std::fs::read(&path).unwrap();

    let codis2 = start_codis(&["--dir", dir.path()]);
    let mut c2 = Client::connect(codis2.port);
    assert_eq!(c2.cmd(&[b"GET", b"marker"]).1, b"$4\r\nhere\r\n");
    assert!(int(ok(&mut c2, &[b"PTTL", b"marker"])) > 0);
    assert!(int(ok(&mut c2, &[b"LASTSAVE"])) >= before);
    // DEBUG RELOAD keeps everything.
    let n = int(ok(&mut c2, &[b"DBSIZE"]));
    ok(&mut c2, &[b"DEBUG", b"RELOAD"]);
    assert_eq!(int(ok(&mut c2, &[b"DBSIZE"])), n);
    drop(c2);
    drop(codis2);

    // Truncated, then one flipped byte: a clear error, exit code 1, file untouched.
    for damaged in [saved[..saved.len() / 2].to_vec(), {
        let mut d = saved.clone();
        let i = d.len() / 3;
        d[i] ^= 0x55;
        d
    }] {
        std::fs::write(&path, &damaged).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_codis-server"))
            .args([
                "--port",
                &crate::support::free_port().to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--dir", dir.path(), "--save", ""])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Fatal error loading the DB"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            damaged,
            "the file was modified"
        );
    }
}

/// A failed BGSAVE with `save` points stops writes with MISCONF until a save succeeds, as
/// Redis's `stop-writes-on-bgsave-error`; the same replies from both servers.
#[test]
fn failed_bgsave_stops_writes_like_redis() {
    type Start = fn(&[&str]) -> crate::support::Server;
    let mut transcripts = Vec::new();
    for (i, start) in [start_redis as Start, start_codis as Start]
        .into_iter()
        .enumerate()
    {
        let dir = TempDir::new(&format!("persist-misconf-{i}"));
        let s = start(&["--dir", dir.path(), "--save", "3600 1"]);
        let mut c = Client::connect(s.port);
        ok(&mut c, &[b"SET", b"a", b"1"]);
        std::fs::remove_dir_all(&dir.0).unwrap(); // the save can't create its file
        ok(&mut c, &[b"BGSAVE"]);
        let t0 = Instant::now();
        while !bulks_text(ok(&mut c, &[b"INFO", b"persistence"]))
            .contains("rdb_bgsave_in_progress:0")
        {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut t = Vec::new();
        for args in [
            &[&b"SET"[..], b"b", b"2"][..],
            &[b"GET", b"a"],
            &[b"PING"],
            &[b"CONFIG", b"SET", b"stop-writes-on-bgsave-error", b"no"],
            &[b"SET", b"b", b"2"],
        ] {
            t.push(show(&c.cmd(args).1));
        }
        std::fs::create_dir_all(&dir.0).unwrap();
        transcripts.push(t);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert!(
        transcripts[0][0].starts_with("-MISCONF"),
        "{:?}",
        transcripts[0]
    );
}

fn info_field(c: &mut Client, section: &[u8], name: &str) -> String {
    let info = bulks_text(ok(c, &[b"INFO", section]));
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in INFO: {info}"))
        .trim()
        .to_string()
}

/// Pipelines `SET <prefix><i> <100 bytes>` for i in `range`; returns the error replies.
fn set_range(c: &mut Client, prefix: &str, range: std::ops::Range<usize>, tag: u8) -> Vec<String> {
    let mut errors = Vec::new();
    let mut batch = Vec::new();
    let mut pending = 0;
    let end = range.end;
    for i in range {
        let mut v = vec![tag; 100];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        batch.extend(Client::encode(&[
            b"SET".to_vec(),
            format!("{prefix}{i}").into_bytes(),
            v,
        ]));
        pending += 1;
        if pending == 500 || i + 1 == end {
            c.send_raw(&batch);
            batch.clear();
            for _ in 0..pending {
                if let (Frame::Error(e), _) = c.read_reply().unwrap() {
                    errors.push(String::from_utf8_lossy(&e).into_owned());
                }
            }
            pending = 0;
        }
    }
    errors
}

/// Issue 15, item 7: a BGSAVE near `maxmemory` (110% of `used_memory`, allkeys-lru) while
/// clients overwrite keys in every slot and add a few new ones must evict nothing: the
/// snapshot's copies are not counted as used memory (Redis's fork keeps them in the child),
/// and the file holds the dataset as it was at BGSAVE.
#[test]
fn bgsave_near_maxmemory_evicts_nothing() {
    const LOADED: usize = 60_000;
    const NEW: usize = 1_500;
    let dir = TempDir::new("persist-maxmem");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    assert!(set_range(&mut c, "key:", 0..LOADED, b'a').is_empty());
    let used: u64 = info_field(&mut c, b"memory", "used_memory")
        .parse()
        .unwrap();
    let max = (used * 11 / 10).to_string();
    ok(&mut c, &[b"CONFIG", b"SET", b"maxmemory", max.as_bytes()]);
    ok(
        &mut c,
        &[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"],
    );
    // BGSAVE, then (first in the same batch, so before the save thread's first lock hold)
    // overwrites of every loaded key and a few new keys.
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    req.extend(Client::encode(&[b"PING".to_vec()]));
    c.send_raw(&req);
    assert_eq!(c.read_reply().unwrap().1, b"+Background saving started\r\n");
    c.read_reply().unwrap();
    let mut errors = set_range(&mut c, "key:", 0..LOADED, b'b');
    errors.extend(set_range(&mut c, "new:", 0..NEW, b'c'));
    assert!(
        errors.is_empty(),
        "writes failed: {:?}",
        &errors[..errors.len().min(3)]
    );
    wait_bgsave(&mut c);
    let kept: u64 = info_field(&mut c, b"persistence", "rdb_last_cow_size")
        .parse()
        .unwrap();
    assert!(kept > 0, "no write ran during the save");
    // Before the fix the save's copies counted as used memory and about half of the keys
    // were evicted (27,879 of 60,000 here); then, until the save thread's 1 MiB file buffer
    // counted as the save's up to the fsync, a few (3 to 89).
    let evicted: i64 = info_field(&mut c, b"stats", "evicted_keys")
        .parse()
        .unwrap();
    assert_eq!(evicted, 0, "{evicted} keys evicted");
    assert_eq!(int(ok(&mut c, &[b"DBSIZE"])), (LOADED + NEW) as i64);
    // The file is the dataset at BGSAVE: every loaded key with its first value.
    let m = read_file(&Path::new(dir.path()).join("dump.rdb"));
    assert_eq!(m.len(), LOADED);
    for i in [0, 1, LOADED / 2, LOADED - 1] {
        let v = dataplane::rdb::restore_payload(
            &m[&(0, format!("key:{i}").into_bytes())].0,
            &Limits::default(),
        )
        .unwrap();
        assert!(
            matches!(v, dataplane::store::Value::Str(ref s) if s[8..].iter().all(|&b| b == b'a')),
            "key:{i} is not the value at BGSAVE"
        );
    }
}

/// `HSET big field:<i> value:<i>` for i below `fields` (a multiple of 1000).
fn big_hash(c: &mut Client, fields: usize) {
    let mut batch = Vec::new();
    for chunk in 0..fields / 1000 {
        let mut args = vec![b"HSET".to_vec(), b"big".to_vec()];
        for i in chunk * 1000..(chunk + 1) * 1000 {
            args.push(format!("field:{i}").into_bytes());
            args.push(format!("value:{i}").into_bytes());
        }
        batch.extend(Client::encode(&args));
    }
    c.send_raw(&batch);
    for _ in 0..fields / 1000 {
        c.read_reply().unwrap();
    }
}

/// Sends `BGSAVE`, `cmd`... and `INFO memory` in one batch (one lock hold, before the save
/// thread's first), checks the save started, and returns the other replies and
/// `mem_not_counted_for_evict` as the batch left it.
fn bgsave_then(c: &mut Client, cmds: &[&[&[u8]]]) -> (Vec<Frame>, u64) {
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    for cmd in cmds {
        req.extend(Client::encode(
            &cmd.iter().map(|a| a.to_vec()).collect::<Vec<_>>(),
        ));
    }
    req.extend(Client::encode(&[b"INFO".to_vec(), b"memory".to_vec()]));
    c.send_raw(&req);
    assert_eq!(c.read_reply().unwrap().1, b"+Background saving started\r\n");
    let replies = (0..cmds.len()).map(|_| c.read_reply().unwrap().0).collect();
    let info = bulks_text(c.read_reply().unwrap().0);
    let not_counted = info
        .lines()
        .find_map(|l| l.strip_prefix("mem_not_counted_for_evict:"))
        .expect("mem_not_counted_for_evict in INFO")
        .trim()
        .parse()
        .unwrap();
    wait_bgsave(c);
    (replies, not_counted)
}

/// Issue 15, item 7 (leftovers): what only the save holds is not counted for eviction, and
/// only that. A collection kept by reference counts once the live key lets go of it: after
/// EXPIRE (the value stays shared) a write copies it, and the old copy is the save's. A write
/// refused with WRONGTYPE copies nothing, so it counts nothing.
#[test]
fn bgsave_counts_exactly_what_only_the_save_holds() {
    const FIELDS: usize = 200_000;
    // `Value::approx_size` of a hash: at least its length times an entry.
    const HASH_BYTES: u64 = FIELDS as u64 * (2 * 24 + 8 + 9);
    let dir = TempDir::new("persist-cow-count");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    big_hash(&mut c, FIELDS);
    let (replies, not_counted) = bgsave_then(&mut c, &[&[b"SREM", b"big", b"x"]]);
    assert!(
        matches!(&replies[0], Frame::Error(e) if e.starts_with(b"WRONGTYPE")),
        "{replies:?}"
    );
    assert!(
        not_counted < HASH_BYTES / 2,
        "a refused write counted the hash it did not copy: {not_counted}"
    );
    let (replies, not_counted) = bgsave_then(
        &mut c,
        &[
            &[b"EXPIRE", b"big", b"100000"],
            &[b"HSET", b"big", b"after", b"1"],
        ],
    );
    assert_eq!(replies, [Frame::Integer(1), Frame::Integer(1)]);
    assert!(
        not_counted >= HASH_BYTES,
        "the copy the save holds after EXPIRE and HSET is not counted: {not_counted}"
    );
}

/// Issue 15, item 10: the save path never serialises under the store lock (it takes
/// refcounted point-in-time copies in short holds and serialises outside), so a big hash
/// does not stall other clients; writers during the save pay for what they change only.
#[test]
fn bgsave_of_a_big_hash_serialises_outside_the_lock() {
    let dir = TempDir::new("persist-bighash");
    let codis = start_codis(&["--dir", dir.path()]);
    let mut c = Client::connect(codis.port);
    let fields = 300_000;
    big_hash(&mut c, fields);
    for i in 0..1000 {
        ok(&mut c, &[b"SET", format!("small:{i}").as_bytes(), b"x"]);
    }
    // BGSAVE, then writes to the hash and to small keys while it runs.
    let mut req = Client::encode(&[b"BGSAVE".to_vec()]);
    req.extend(Client::encode(&[
        b"HSET".to_vec(),
        b"big".to_vec(),
        b"after".to_vec(),
        b"1".to_vec(),
    ]));
    req.extend(Client::encode(&[b"DEL".to_vec(), b"small:1".to_vec()]));
    c.send_raw(&req);
    for _ in 0..3 {
        c.read_reply().unwrap();
    }
    wait_bgsave(&mut c);
    assert_eq!(
        info_field(&mut c, b"persistence", "rdb_last_save_bytes_under_lock"),
        "0"
    );
    let m = read_file(&Path::new(dir.path()).join("dump.rdb"));
    assert_eq!(m.len(), 1001);
    assert!(m.contains_key(&(0, b"small:1".to_vec())));
    let v =
        dataplane::rdb::restore_payload(&m[&(0, b"big".to_vec())].0, &Limits::default()).unwrap();
    match v {
        dataplane::store::Value::Hash(h) => {
            assert_eq!(h.len(), fields);
            assert!(!h.contains_key(&b"after"[..]));
        }
        o => panic!("not a hash: {o:?}"),
    }
    assert_eq!(int(ok(&mut c, &[b"HLEN", b"big"])), fields as i64 + 1);
}

/// Issue 15, item 10: UNLINK of a big value and FLUSHALL / FLUSHDB ASYNC hand what they
/// remove to the background dropper thread (INFO `lazyfreed_objects`), as Redis's lazyfree.
#[test]
fn unlink_and_flush_async_free_in_the_background() {
    let codis = start_codis(&[]);
    let mut c = Client::connect(codis.port);
    let freed = |c: &mut Client| -> u64 {
        info_field(c, b"memory", "lazyfreed_objects")
            .parse()
            .unwrap()
    };
    let wait_freed = |c: &mut Client, n: u64| {
        let start = Instant::now();
        while freed(c) < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nothing freed in the background"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut args: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"big".to_vec()];
    args.extend((0..1000).map(|i| i.to_string().into_bytes()));
    c.send_raw(&Client::encode(&args));
    c.read_reply().unwrap();
    ok(&mut c, &[b"SET", b"small", b"1"]);
    assert_eq!(freed(&mut c), 0);
    // A small value is freed in place, a big one in the background.
    assert_eq!(
        int(ok(&mut c, &[b"UNLINK", b"small", b"big", b"missing"])),
        2
    );
    wait_freed(&mut c, 1);
    assert_eq!(int(ok(&mut c, &[b"EXISTS", b"big"])), 0);
    fill(&mut c, 1000);
    ok(&mut c, &[b"FLUSHDB", b"ASYNC"]);
    assert_eq!(int(ok(&mut c, &[b"DBSIZE"])), 0);
    wait_freed(&mut c, 2);
    fill(&mut c, 1000);
    ok(&mut c, &[b"FLUSHALL", b"ASYNC"]);
    assert_eq!(int(ok(&mut c, &[b"DBSIZE"])), 0);
    wait_freed(&mut c, 3);
    assert_eq!(
        info_field(&mut c, b"memory", "lazyfree_pending_objects"),
        "0"
    );
}
