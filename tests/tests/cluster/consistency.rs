//! A consistency check under faults (issue 15), Jepsen-style and bounded in time: ZooKeeper,
//! two groups of a codis-server master and one replica (all `appendonly yes`), a dashboard,
//! two proxies and three redis-sentinels configured by the dashboard, as real processes.
//!
//! Client threads, half on each proxy, run a model-checked workload on keys of their own:
//! counters (INCR), lists (RPUSH of unique elements), sets (SADD of unique members) and
//! registers (SET of unique values). After every round a client writes a probe key (db 1) on
//! both groups' masters and runs `WAIT 1`: the proxy-acknowledged operations since the last
//! such checkpoint are then *durable* (a replica holds them, so a failover keeps them),
//! unless a master changed in between (the old one may have died before its replica had them). Meanwhile a block of
//! slots holding half of the keys migrates back and forth between the groups, first with
//! `migration_method = "sync"`, then (after a dashboard SIGKILL and restart) "semi-async";
//! group 1's master is SIGKILLed (the sentinels fail over, the old master comes back as a
//! replica); a proxy is SIGKILLed and restarted.
//!
//! Afterwards, traffic stopped and migrations done: every durable operation is present exactly
//! once on the master owning its slot (an operation that got an error or no reply may or may
//! not be; one acknowledged but not yet covered by a WAIT may be lost by the failover, never
//! doubled), no key is left on the other master, and every replica's dataset equals its
//! master's (key by key, with DUMP).
//!
//! `CONSISTENCY_SECS` (default 40) sets how long the faults run, `CONSISTENCY_CLIENTS`
//! (default 8) the number of client threads; `scripts/consistency.sh` runs a bigger size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{
    Dashboard, Proc, ProxyProc, Reply, Resp, TempDir, free_port, start_codis_server_args,
    start_dashboard_method, start_proxy_on, start_sentinel, start_zookeeper, wait_for,
};
use crate::support::{info_field, slot_table};
use codis_model::auth::dashboard_xauth;
use codis_model::slot_of;
use serde_json::Value;

const PRODUCT: &str = "consistency";
/// The slots that migrate back and forth.
const HOT: std::ops::RangeInclusive<usize> = 0..=31;
/// The hot slot holding half of the clients' keys and the ballast.
const MODEL_SLOT: usize = 7;
/// Keys of each kind per client.
const KEYS_PER_KIND: usize = 4;
/// Sentinels fail over after 5 s; a semi-async step moves at most 100 keys, so a hot slot
/// with its ballast takes several steps (writes meet the slot mid-migration).
const DASHBOARD_EXTRA: &str = "sentinel_down_after = \"5s\"\nsentinel_failover_timeout = \"30s\"\n\
                               migration_async_numkeys = 100\n";

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboard

/// Group `gid`'s servers as ports, master first.
fn group_ports(stats: &Value, gid: i64) -> Option<Vec<u16>> {
    let g = stats["group"]["models"]
        .as_array()?
        .iter()
        .find(|g| g["id"].as_i64() == Some(gid))?;
    g["servers"]
        .as_array()?
        .iter()
        .map(|s| s["server"].as_str()?.rsplit(':').next()?.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Counter,
    List,
    Set,
    Register,
}

const KINDS: [Kind; 4] = [Kind::Counter, Kind::List, Kind::Set, Kind::Register];

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Counter => "c",
            Kind::List => "l",
            Kind::Set => "s",
            Kind::Register => "r",
        }
    }
}

/// What is known of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Acknowledged by the proxy, then covered by `WAIT 1` on both masters.
    Durable,
    /// Acknowledged by the proxy, not (yet) covered by a WAIT: a failover may lose it.
    Acked,
    /// An error reply or no reply: it may or may not have been applied.
    Maybe,
}

#[derive(Debug, Clone)]
struct Op {
    /// Element, member or value written (empty for INCR).
    item: String,
    fate: Fate,
    /// INCR: the value; RPUSH: the length.
    reply: Option<i64>,
}

/// The name of key `i` of `kind` of client `t`: even keys hash to [`MODEL_SLOT`], odd ones
/// outside the hot slots (the hash tag, shared by the four kinds, is searched for).
fn key_name(kind: Kind, t: usize, i: usize) -> String {
    let tag = (0..)
        .map(|n| format!("{{{t}.{i}.{n}}}"))
        .find(|k| {
            let slot = slot_of(k.as_bytes());
            if i.is_multiple_of(2) {
                slot == MODEL_SLOT
            } else {
                !HOT.contains(&slot)
            }
        })
        .unwrap();
    format!("{}:{tag}", kind.prefix())
}

/// Everything one client did, per key.
#[derive(Debug, Default)]
struct History {
    ops: BTreeMap<(Kind, usize), Vec<Op>>,
    /// Online check failures (a reply no correct execution can give).
    violations: Vec<String>,
    /// Error replies and I/O errors by message (shortened).
    errors: BTreeMap<String, u64>,
    rounds: u64,
    checkpoints_ok: u64,
    checkpoints_failed: u64,
}

impl History {
    fn error(&mut self, e: &str) {
        let short: String = e.chars().take(60).collect();
        *self.errors.entry(short).or_insert(0) += 1;
    }

    fn count(&self, fate: Fate) -> usize {
        self.ops
            .values()
            .flatten()
            .filter(|o| o.fate == fate)
            .count()
    }
}

/// The masters of groups 1 and 2 (ports), kept current by the monitor thread.
type Masters = Arc<Mutex<[u16; 2]>>;

/// One client thread: rounds of INCR, RPUSH, SADD and SET (pipelined) through the proxy on
/// `port`, each round followed by a probe write and `WAIT 1 1000` on both masters.
fn client(t: usize, port: Arc<AtomicU64>, masters: Masters, stop: Arc<AtomicBool>) -> History {
    let mut h = History::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((t as u64 + 1) * 0x1234_5678);
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let names: HashMap<(Kind, usize), String> = KINDS
        .iter()
        .flat_map(|&k| (0..KEYS_PER_KIND).map(move |i| ((k, i), key_name(k, t, i))))
        .collect();
    let mut proxy: Option<Resp> = None;
    let mut direct: HashMap<u16, Resp> = HashMap::new();
    // Acknowledged operations not yet covered by a WAIT: (kind, key, index, the masters
    // when the operation was sent).
    let mut uncovered: Vec<(Kind, usize, usize, [u16; 2])> = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match proxy.as_mut() {
            Some(c) => c,
            None => match Resp::connect(port.load(Ordering::Relaxed) as u16) {
                Ok(c) => proxy.insert(c),
                Err(e) => {
                    h.error(&format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        h.rounds += 1;
        let sent_under = *masters.lock().unwrap();
        let mut round: Vec<(Kind, usize, usize)> = Vec::new();
        let mut out = Vec::new();
        for kind in KINDS {
            let i = next(KEYS_PER_KIND);
            seq += 1;
            let item = match kind {
                Kind::Counter => String::new(),
                _ => format!("{t}.{seq}"),
            };
            let name = &names[&(kind, i)];
            let args: Vec<&[u8]> = match kind {
                Kind::Counter => vec![b"INCR", name.as_bytes()],
                Kind::List => vec![b"RPUSH", name.as_bytes(), item.as_bytes()],
                Kind::Set => vec![b"SADD", name.as_bytes(), item.as_bytes()],
                Kind::Register => vec![b"SET", name.as_bytes(), item.as_bytes()],
            };
            Resp::encode(&mut out, &args);
            let ops = h.ops.entry((kind, i)).or_default();
            ops.push(Op {
                item,
                fate: Fate::Maybe,
                reply: None,
            });
            round.push((kind, i, ops.len() - 1));
        }
        if let Err(e) = c.send_raw(&out) {
            h.error(&format!("write: {e}"));
            proxy = None;
            continue;
        }
        let mut broken = false;
        for &(kind, i, n) in &round {
            if broken {
                break;
            }
            let reply = match c.read() {
                Ok(r) => r,
                Err(e) => {
                    h.error(&format!("read: {e}"));
                    broken = true;
                    continue;
                }
            };
            if let Reply::Error(e) = &reply {
                h.error(e);
                continue;
            }
            let name = &names[&(kind, i)];
            let ops = h.ops.get_mut(&(kind, i)).unwrap();
            let (before, this) = ops.split_at_mut(n);
            let op = &mut this[0];
            // What the reply may be, given what came before on this key.
            let attempted = before.len() as i64;
            let durable = before.iter().filter(|o| o.fate == Fate::Durable).count() as i64;
            let bad = match (kind, &reply) {
                (Kind::Counter | Kind::List, Reply::Int(v)) => {
                    op.reply = Some(*v);
                    let floor = match kind {
                        // A counter never goes below the last durable INCR's value.
                        Kind::Counter => before
                            .iter()
                            .filter(|o| o.fate == Fate::Durable)
                            .filter_map(|o| o.reply)
                            .max()
                            .unwrap_or(0),
                        _ => durable,
                    };
                    !(floor < *v && *v <= attempted + 1)
                }
                (Kind::Set, Reply::Int(v)) => *v != 1,
                (Kind::Register, Reply::Status(s)) => s != "OK",
                _ => true,
            };
            if bad {
                h.violations.push(format!(
                    "{name}: operation {n} got {reply:?} ({attempted} before, {durable} durable)"
                ));
            }
            op.fate = Fate::Acked;
            uncovered.push((kind, i, n, sent_under));
        }
        if broken {
            proxy = None;
        }
        if round
            .iter()
            .any(|&(kind, i, n)| h.ops[&(kind, i)][n].fate == Fate::Maybe)
        {
            // A backend or the proxy is down: do not spin on errors.
            std::thread::sleep(Duration::from_millis(20));
        }
        // The checkpoint: a write then WAIT on each master covers everything acknowledged
        // before it, wherever the slot was, as long as the masters are those the operation
        // was sent under. One acknowledged by a master that died before its replica had it
        // is lost in the failover, and a WAIT on the promoted replica does not bring it back:
        // such an operation stays merely acknowledged.
        let ports = *masters.lock().unwrap();
        let mut covered = true;
        for p in ports {
            let conn = match direct.entry(p) {
                std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::hash_map::Entry::Vacant(v) => Resp::connect(p)
                    .ok()
                    .and_then(|mut c| {
                        matches!(c.call(&[b"SELECT", b"1"]), Ok(Reply::Status(_))).then_some(c)
                    })
                    .map(|c| v.insert(c)),
            };
            let Some(conn) = conn else {
                covered = false;
                continue;
            };
            let probe = format!("probe:{t}");
            let r = conn.pipeline(&[
                vec![b"INCR".to_vec(), probe.into_bytes()],
                vec![b"WAIT".to_vec(), b"1".to_vec(), b"1000".to_vec()],
            ]);
            match r.as_deref() {
                Ok([Reply::Int(_), Reply::Int(n)]) if *n >= 1 => {}
                Ok(_) => covered = false,
                Err(_) => {
                    covered = false;
                    direct.remove(&p);
                }
            }
        }
        if covered {
            h.checkpoints_ok += 1;
            for (kind, i, n, under) in uncovered.drain(..) {
                if under == ports {
                    h.ops.get_mut(&(kind, i)).unwrap()[n].fate = Fate::Durable;
                }
            }
        } else {
            h.checkpoints_failed += 1;
        }
    }
    h
}

/// Writes `count` ballast keys (`b:<n>`, each its own tag group) into [`MODEL_SLOT`] through
/// the proxy on `port`: migrating it then takes long enough (several semi-async steps) for
/// client writes to meet it mid-migration.
fn write_ballast(port: u16, count: usize) -> usize {
    let names: Vec<String> = (0u64..)
        .map(|n| format!("b:{n}"))
        .filter(|k| slot_of(k.as_bytes()) == MODEL_SLOT)
        .take(count)
        .collect();
    let mut c = Resp::connect(port).unwrap();
    let value = "x".repeat(100);
    for chunk in names.chunks(1000) {
        let cmds: Vec<Vec<Vec<u8>>> = chunk
            .iter()
            .map(|k| {
                vec![
                    b"SET".to_vec(),
                    k.clone().into_bytes(),
                    value.clone().into_bytes(),
                ]
            })
            .collect();
        for (k, r) in chunk.iter().zip(c.pipeline(&cmds).unwrap()) {
            assert_eq!(r, Reply::Status("OK".into()), "SET {k}");
        }
    }
    names.len()
}

/// While the faults run, reads the clients' lists in [`MODEL_SLOT`] on every server (masters
/// and replicas, direct connections) every few milliseconds: an element never appears twice
/// anywhere, even for a moment (a write applied twice on a replica is erased when its key
/// migrates away, so the final comparison alone could miss it). Returns the violations and
/// the number of passes.
fn audit_lists(ports: Vec<u16>, nclients: usize, stop: Arc<AtomicBool>) -> (Vec<String>, u64) {
    let names: Vec<String> = (0..nclients)
        .flat_map(|t| {
            (0..KEYS_PER_KIND)
                .step_by(2)
                .map(move |i| key_name(Kind::List, t, i))
        })
        .collect();
    let mut conns: HashMap<u16, Resp> = HashMap::new();
    let mut bad = Vec::new();
    let mut passes = 0;
    while !stop.load(Ordering::Relaxed) {
        passes += 1;
        for &p in &ports {
            let c = match conns.entry(p) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => match Resp::connect(p) {
                    Ok(c) => v.insert(c),
                    Err(_) => continue,
                },
            };
            let cmds: Vec<Vec<Vec<u8>>> = names
                .iter()
                .map(|n| {
                    vec![
                        b"LRANGE".to_vec(),
                        n.clone().into_bytes(),
                        b"0".to_vec(),
                        b"-1".to_vec(),
                    ]
                })
                .collect();
            let Ok(replies) = c.pipeline(&cmds) else {
                conns.remove(&p);
                continue;
            };
            for (name, r) in names.iter().zip(replies) {
                let Reply::Array(Some(items)) = r else {
                    continue;
                };
                let mut seen = HashSet::new();
                for it in items {
                    let Reply::Bulk(Some(b)) = it else {
                        continue;
                    };
                    if !seen.insert(b.clone()) && bad.len() < 50 {
                        bad.push(format!(
                            "server :{p}: {name} holds {} twice",
                            String::from_utf8_lossy(&b)
                        ));
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (bad, passes)
}

// ---------------------------------------------------------------------------------------------
// Final checks

/// The value of a key read from a master.
#[derive(Debug)]
enum Found {
    Missing,
    Str(String),
    Items(Vec<String>),
}

fn read_key(c: &mut Resp, kind: Kind, name: &str) -> Found {
    let k = name.as_bytes();
    let reply = match kind {
        Kind::Counter | Kind::Register => c.call(&[b"GET", k]),
        Kind::List => c.call(&[b"LRANGE", k, b"0", b"-1"]),
        Kind::Set => c.call(&[b"SMEMBERS", k]),
    }
    .unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match reply {
        Reply::Bulk(None) => Found::Missing,
        Reply::Bulk(Some(b)) => Found::Str(text(&b)),
        Reply::Array(Some(items)) if items.is_empty() => Found::Missing,
        Reply::Array(Some(items)) => Found::Items(
            items
                .into_iter()
                .map(|i| match i {
                    Reply::Bulk(Some(b)) => text(&b),
                    other => panic!("{name}: item {other:?}"),
                })
                .collect(),
        ),
        other => panic!("{name}: {other:?}"),
    }
}

/// Checks one key's final value against its history; the violations found.
fn check_key(name: &str, kind: Kind, ops: &[Op], found: &Found) -> Vec<String> {
    let mut bad = Vec::new();
    let durable: Vec<&Op> = ops.iter().filter(|o| o.fate == Fate::Durable).collect();
    match (kind, found) {
        (Kind::Counter, Found::Missing | Found::Str(_)) => {
            let v: i64 = match found {
                Found::Str(s) => s.parse().unwrap_or(-1),
                _ => 0,
            };
            let floor = durable.iter().filter_map(|o| o.reply).max().unwrap_or(0);
            let floor = floor.max(durable.len() as i64);
            if v < floor || v > ops.len() as i64 {
                bad.push(format!(
                    "{name} = {v}: {} INCRs durable (last reply {floor}), {} acknowledged, \
                     {} attempted",
                    durable.len(),
                    ops.iter().filter(|o| o.fate != Fate::Maybe).count(),
                    ops.len()
                ));
            }
        }
        (Kind::List | Kind::Set, Found::Missing | Found::Items(_)) => {
            let items: &[String] = match found {
                Found::Items(v) => v,
                _ => &[],
            };
            let index: HashMap<&str, usize> = ops
                .iter()
                .enumerate()
                .map(|(n, o)| (o.item.as_str(), n))
                .collect();
            let mut seen = HashSet::new();
            let mut last = None;
            for it in items {
                match index.get(it.as_str()) {
                    None => bad.push(format!("{name}: {it} was never written")),
                    Some(&n) => {
                        if !seen.insert(n) {
                            bad.push(format!("{name}: {it} present twice"));
                        }
                        if kind == Kind::List && last.is_some_and(|l| l > n) {
                            bad.push(format!("{name}: {it} out of order"));
                        }
                        last = Some(n);
                    }
                }
            }
            let lost: Vec<&str> = ops
                .iter()
                .enumerate()
                .filter(|(n, o)| o.fate == Fate::Durable && !seen.contains(n))
                .map(|(_, o)| o.item.as_str())
                .collect();
            if !lost.is_empty() {
                bad.push(format!(
                    "{name}: {} durable items lost, e.g. {:?}",
                    lost.len(),
                    &lost[..lost.len().min(3)]
                ));
            }
        }
        (Kind::Register, Found::Missing | Found::Str(_)) => {
            let last_durable = ops.iter().rposition(|o| o.fate == Fate::Durable);
            let at = match found {
                Found::Str(v) => match ops.iter().position(|o| &o.item == v) {
                    Some(n) => Some(n),
                    None => {
                        bad.push(format!("{name} = {v}: never written"));
                        return bad;
                    }
                },
                _ => None,
            };
            if let Some(d) = last_durable
                && at.is_none_or(|n| n < d)
            {
                bad.push(format!(
                    "{name} = {found:?}: older than the last durable write {}",
                    ops[d].item
                ));
            }
        }
        _ => bad.push(format!("{name}: unexpected value {found:?}")),
    }
    bad
}

/// How many commands ran through SLOTSMGRT-EXEC-WRAPPER on `port` (INFO commandstats).
fn wrapper_calls(port: u16) -> u64 {
    info_field(port, "commandstats", "cmdstat_slotsmgrt-exec-wrapper")
        .and_then(|v| v.strip_prefix("calls=")?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Every key of database `db` on `port` (SCAN to completion).
fn all_keys(port: u16, db: &[u8]) -> Vec<Vec<u8>> {
    let mut c = Resp::connect(port).unwrap();
    assert!(matches!(
        c.call(&[b"SELECT", db]).unwrap(),
        Reply::Status(_)
    ));
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Reply::Array(Some(r)) = c.call(&[b"SCAN", &cursor, b"COUNT", b"1000"]).unwrap() else {
            panic!("SCAN on {port}");
        };
        let [Reply::Bulk(Some(next)), Reply::Array(Some(batch))] = r.as_slice() else {
            panic!("SCAN on {port}: {r:?}");
        };
        for k in batch {
            if let Reply::Bulk(Some(k)) = k {
                keys.push(k.clone());
            }
        }
        cursor = next.clone();
        if cursor == b"0" {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Compares a replica's dataset with its master's, key by key with DUMP (databases 0 and 1).
/// Returns the differences.
fn compare_replica(master: u16, replica: u16) -> Vec<String> {
    let mut diffs = Vec::new();
    for db in [&b"0"[..], b"1"] {
        let mk = all_keys(master, db);
        let rk = all_keys(replica, db);
        let ms: HashSet<&Vec<u8>> = mk.iter().collect();
        let rs: HashSet<&Vec<u8>> = rk.iter().collect();
        let show = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
        for k in mk.iter().filter(|k| !rs.contains(k)) {
            diffs.push(format!(
                "db {}: {} only on the master",
                show(&db.to_vec()),
                show(k)
            ));
        }
        for k in rk.iter().filter(|k| !ms.contains(k)) {
            diffs.push(format!(
                "db {}: {} only on the replica",
                show(&db.to_vec()),
                show(k)
            ));
        }
        let mut m = Resp::connect(master).unwrap();
        let mut r = Resp::connect(replica).unwrap();
        for c in [&mut m, &mut r] {
            assert!(matches!(
                c.call(&[b"SELECT", db]).unwrap(),
                Reply::Status(_)
            ));
        }
        for k in mk.iter().filter(|k| rs.contains(k)) {
            let a = m.call(&[b"DUMP", k]).unwrap();
            let b = r.call(&[b"DUMP", k]).unwrap();
            if a != b {
                let value = |c: &mut Resp| -> String {
                    let t = match c.call(&[b"TYPE", k]).unwrap() {
                        Reply::Status(t) => t,
                        other => format!("{other:?}"),
                    };
                    let v = match t.as_str() {
                        "string" => c.call(&[b"GET", k]),
                        "list" => c.call(&[b"LRANGE", k, b"0", b"-1"]),
                        "set" => c.call(&[b"SORT", k, b"ALPHA"]),
                        _ => c.call(&[b"TYPE", k]),
                    }
                    .unwrap();
                    let s = format!("{t} {v:?}");
                    s.chars().take(160).collect()
                };
                diffs.push(format!(
                    "db {}: {}: master {} / replica {}",
                    show(&db.to_vec()),
                    show(k),
                    value(&mut m),
                    value(&mut r)
                ));
            }
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// The scenario

/// Sets `stop` when dropped, so threads end also when the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Migration figures.
#[derive(Debug, Default)]
struct Moves {
    rounds: u64,
    slots: BTreeMap<String, u64>,
    /// create-range calls the dashboard refused (retried), and the last refusal.
    refused: u64,
    last_refusal: String,
}

/// Moves the hot slots to the other group, waits until they are there, and again, until
/// `stop`. Tolerates the dashboard being down (it is restarted meanwhile).
fn migrator(d: Dashboard, method: Arc<Mutex<String>>, stop: Arc<AtomicBool>) -> Moves {
    let mut moves = Moves::default();
    let (beg, end) = (*HOT.start(), *HOT.end());
    loop {
        let Some(table) = d.try_stats().ok().as_ref().and_then(slot_table) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let idle = table[HOT].iter().all(|(_, s)| s.is_empty());
        if !idle {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return moves;
        }
        let to = if table[beg].0 == 1 { 2 } else { 1 };
        let m = method.lock().unwrap().clone();
        match d.try_put(&format!("slots/action/create-range/X/{beg}/{end}/{to}")) {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                // E.g. a group without a reachable master during the failover: try again.
                moves.refused += 1;
                moves.last_refusal = format!("HTTP {status}: {body}");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        }
        let started = Instant::now();
        loop {
            if let Some(t) = d.try_stats().ok().as_ref().and_then(slot_table)
                && t[HOT].iter().all(|(g, s)| *g == to && s.is_empty())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "slots {beg}-{end} did not reach group {to} in 180 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moves.rounds += 1;
        *moves.slots.entry(m).or_insert(0) += HOT.count() as u64;
    }
}

fn server_dir(root: &std::path::Path, port: u16) -> std::path::PathBuf {
    let d = root.join(format!("server-{port}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start_server(root: &std::path::Path, port: u16) -> Option<Proc> {
    let d = server_dir(root, port);
    start_codis_server_args(
        root,
        port,
        &["--dir", d.to_str().unwrap(), "--appendonly", "yes"],
    )
}

#[test]
fn acknowledged_writes_survive_migrations_failover_and_restarts_replicas_equal_masters() {
    let secs = env_or("CONSISTENCY_SECS", 40);
    let nclients = env_or("CONSISTENCY_CLIENTS", 8).max(2) as usize;
    let ballast = env_or("CONSISTENCY_BALLAST", 4000) as usize;
    let _serial = crate::SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t0 = Instant::now();
    let log = |what: String| eprintln!("[{:>6.1?}] {what}", t0.elapsed());
    let dir = TempDir::new("consistency");
    let root = dir.path();
    let zk_dir = root.join("zk");
    std::fs::create_dir_all(&zk_dir).unwrap();

    // 1. ZooKeeper, 4 codis-servers with AOF, the dashboard (sync), 3 sentinels, 2 proxies.
    let zk_port = free_port();
    let _zk = start_zookeeper(zk_port, &zk_dir);
    let mut servers: Vec<(Proc, u16)> = Vec::new();
    while servers.len() < 4 {
        let port = free_port();
        if let Some(p) = start_server(root, port) {
            servers.push((p, port));
        }
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.1).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let d_port = free_port();
    let d = Dashboard {
        port: d_port,
        xauth: dashboard_xauth(PRODUCT),
    };
    let mut dashboard =
        start_dashboard_method(PRODUCT, zk_port, d_port, root, "sync", DASHBOARD_EXTRA);
    for (gid, m, r) in [(1, ports[0], ports[1]), (2, ports[2], ports[3])] {
        d.put(&format!("group/create/X/{gid}"));
        d.put(&format!("group/add/X/{gid}/{}", addr(m)));
        d.put(&format!("group/add/X/{gid}/{}", addr(r)));
    }
    wait_for("both replicas attached", Duration::from_secs(30), || {
        [ports[0], ports[2]]
            .iter()
            .all(|&p| info_field(p, "replication", "connected_slaves").as_deref() == Some("1"))
            .then_some(())
    });
    d.put("slots/rebalance/X/1");
    wait_for(
        "every slot in group 1 or 2",
        Duration::from_secs(60),
        || {
            let t = slot_table(&d.stats())?;
            t.iter()
                .all(|(g, s)| (*g == 1 || *g == 2) && s.is_empty())
                .then_some(())
        },
    );
    let sentinels: Vec<(Proc, u16)> = (0..3).map(|_| start_sentinel(root)).collect();
    for (_, p) in &sentinels {
        d.put(&format!("sentinels/add/X/{}", addr(*p)));
    }
    d.put("sentinels/resync-all/X");
    let mut proxies: Vec<ProxyProc> = (0..2)
        .map(|_| start_proxy_on(PRODUCT, Some(zk_port), free_port(), free_port(), root))
        .collect();
    for p in &proxies {
        let port = p.port;
        wait_for("proxy online", Duration::from_secs(30), || {
            let mut c = Resp::connect(port).ok()?;
            matches!(c.call(&[b"GET", b"x"]).ok()?, Reply::Bulk(None)).then_some(())
        });
    }
    wait_for(
        "the sentinels see each master's replica and each other",
        Duration::from_secs(60),
        || {
            sentinels
                .iter()
                .all(|(_, p)| {
                    (1..=2).all(|gid| {
                        let Ok(mut c) = Resp::connect(*p) else {
                            return false;
                        };
                        let name = format!("{PRODUCT}-{gid}");
                        let Ok(Reply::Array(Some(m))) =
                            c.call(&[b"SENTINEL", b"master", name.as_bytes()])
                        else {
                            return false;
                        };
                        let field = |k: &str| {
                            m.chunks(2).find_map(|kv| match kv {
                                [Reply::Bulk(Some(key)), Reply::Bulk(Some(v))]
                                    if key == k.as_bytes() =>
                                {
                                    Some(String::from_utf8_lossy(v).into_owned())
                                }
                                _ => None,
                            })
                        };
                        field("num-slaves").as_deref() == Some("1")
                            && field("num-other-sentinels").as_deref() == Some("2")
                    })
                })
                .then_some(())
        },
    );
    write_ballast(proxies[1].port, ballast);
    log(format!(
        "cluster up ({ballast} ballast keys in slot {MODEL_SLOT}): servers {ports:?} (group 1: {} + {}, group 2: {} + {}), dashboard :{d_port}, \
         proxies :{} :{}; {secs} s of faults, {nclients} clients",
        ports[0], ports[1], ports[2], ports[3], proxies[0].port, proxies[1].port
    ));

    // 2. Clients, the masters monitor, the migrator.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let stop_moves = Arc::new(AtomicBool::new(false));
    let _moves_guard = StopOnDrop(stop_moves.clone());
    let masters: Masters = Arc::new(Mutex::new([ports[0], ports[2]]));
    let proxy_ports: Vec<Arc<AtomicU64>> = proxies
        .iter()
        .map(|p| Arc::new(AtomicU64::new(p.port as u64)))
        .collect();
    let clients: Vec<JoinHandle<History>> = (0..nclients)
        .map(|t| {
            let (port, masters, stop) = (proxy_ports[t % 2].clone(), masters.clone(), stop.clone());
            std::thread::spawn(move || client(t, port, masters, stop))
        })
        .collect();
    let monitor = {
        let (d, masters, stop) = (d.clone(), masters.clone(), stop_moves.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = d.try_stats() {
                    for gid in 1..=2 {
                        if let Some(m) = group_ports(&s, gid).and_then(|g| g.first().copied()) {
                            masters.lock().unwrap()[gid as usize - 1] = m;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let auditor = {
        let (ports, stop) = (ports.clone(), stop.clone());
        std::thread::spawn(move || audit_lists(ports, nclients, stop))
    };
    let method = Arc::new(Mutex::new("sync".to_string()));
    let migrator = {
        let (d, method, stop) = (d.clone(), method.clone(), stop_moves.clone());
        std::thread::spawn(move || migrator(d, method, stop))
    };
    let faults_from = Instant::now();
    let at = |frac: f64| {
        let until = Duration::from_secs_f64(secs as f64 * frac);
        if let Some(rest) = until.checked_sub(faults_from.elapsed()) {
            std::thread::sleep(rest);
        }
    };

    // 3. The dashboard is SIGKILLed (probably mid-migration) and comes back semi-async.
    at(0.3);
    dashboard.kill();
    *method.lock().unwrap() = "semi-async".into();
    dashboard = start_dashboard_method(
        PRODUCT,
        zk_port,
        d_port,
        root,
        "semi-async",
        DASHBOARD_EXTRA,
    );
    log("dashboard SIGKILLed and restarted with migration_method = semi-async".into());

    // 4. Group 1's master is SIGKILLed; the sentinels promote its replica; it comes back.
    // Killed while the clients' slot is moving out of group 1 (semi-async): its replica,
    // promoted, holds whatever the writes through SLOTSMGRT-EXEC-WRAPPER left there.
    at(0.5);
    let waiting = Instant::now();
    let moving = loop {
        let found = d.try_stats().ok().and_then(|s| {
            s["slot_action"]["migrating"]
                .as_array()?
                .iter()
                .find(|m| {
                    m["from"].as_i64() == Some(1)
                        && m["moved"].as_i64().is_some_and(|n| n > 0)
                        && m["id"].as_u64() == Some(MODEL_SLOT as u64)
                })
                .cloned()
        });
        if found.is_some() || waiting.elapsed() > Duration::from_secs(secs.max(30)) {
            break found;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let old = ports[0];
    let wrapped = wrapper_calls(old);
    servers[0].0.kill();
    let killed = Instant::now();
    log(format!(
        "group 1's master :{old} SIGKILLed, {}",
        match &moving {
            Some(m) => format!(
                "slot {} moving out of it ({} keys moved)",
                m["id"], m["moved"]
            ),
            None => format!("slot {MODEL_SLOT} was not seen moving out of it"),
        }
    ));
    log(format!(
        "it had run {wrapped} writes through SLOTSMGRT-EXEC-WRAPPER"
    ));
    let new_master = wait_for(
        "the dashboard to switch group 1 to its replica",
        Duration::from_secs(90),
        || {
            let g = group_ports(&d.try_stats().ok()?, 1)?;
            (g.first() != Some(&old)).then(|| g[0])
        },
    );
    log(format!(
        "group 1's master is now :{new_master} ({:.1?} after the kill)",
        killed.elapsed()
    ));
    servers[0].0 = start_server(root, old).expect("restart the old master on its port");
    wait_for(
        "the old master to replicate the new one, link up",
        Duration::from_secs(90),
        || {
            let role = info_field(old, "replication", "role")?;
            let port = info_field(old, "replication", "master_port")?;
            let link = info_field(old, "replication", "master_link_status")?;
            (role == "slave" && port == new_master.to_string() && link == "up").then_some(())
        },
    );
    log(format!(
        "the old master :{old} is a replica of :{new_master}"
    ));

    // 5. Proxy 0 is SIGKILLed and restarted on the same ports.
    at(0.75);
    let (pp, pa) = (proxies[0].port, proxies[0].admin);
    proxies[0].proc.kill();
    proxies[0] = start_proxy_on(PRODUCT, Some(zk_port), pp, pa, root);
    wait_for(
        "the restarted proxy online",
        Duration::from_secs(30),
        || {
            let mut c = Resp::connect(pp).ok()?;
            matches!(c.call(&[b"GET", b"x"]).ok()?, Reply::Bulk(None)).then_some(())
        },
    );
    log(format!("proxy :{pp} SIGKILLed, restarted and online"));

    // 6. Stop the traffic, then the migrations.
    at(1.0);
    stop.store(true, Ordering::Relaxed);
    let histories: Vec<History> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let (audit, audit_passes) = auditor.join().unwrap();
    log("traffic stopped".into());
    stop_moves.store(true, Ordering::Relaxed);
    let moves = migrator.join().unwrap();
    monitor.join().unwrap();
    let stats = d.stats();
    let table = slot_table(&stats).expect("slot table");
    assert!(
        table
            .iter()
            .all(|(g, s)| (*g == 1 || *g == 2) && s.is_empty()),
        "slots not idle in groups 1 and 2 at the end"
    );
    log(format!("migrations done: {moves:?}"));

    // 7. Replicas catch up: same offset as their master, link up.
    let groups: Vec<Vec<u16>> = (1..=2)
        .map(|gid| group_ports(&stats, gid).expect("group servers"))
        .collect();
    for g in &groups {
        assert_eq!(g.len(), 2, "group servers {g:?}");
        let (m, r) = (g[0], g[1]);
        wait_for(
            &format!("replica :{r} caught up with :{m}"),
            Duration::from_secs(60),
            || {
                let mo = info_field(m, "replication", "master_repl_offset")?;
                let ro = info_field(r, "replication", "slave_repl_offset")?;
                let link = info_field(r, "replication", "master_link_status")?;
                let rm = info_field(r, "replication", "master_port")?;
                (link == "up" && rm == m.to_string() && mo == ro).then_some(())
            },
        );
    }

    // 8. The checks.
    let mut violations: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (t, h) in histories.iter().enumerate() {
        violations
            .entry("replies")
            .or_default()
            .extend(h.violations.iter().map(|v| format!("client {t}: {v}")));
    }
    violations
        .entry("lists during the run")
        .or_default()
        .extend(audit);
    let mut conns: Vec<Resp> = groups
        .iter()
        .map(|g| Resp::connect(g[0]).unwrap())
        .collect();
    let mut keys = 0;
    for (t, h) in histories.iter().enumerate() {
        for (&(kind, i), ops) in &h.ops {
            let name = key_name(kind, t, i);
            let owner = table[slot_of(name.as_bytes())].0 as usize - 1;
            let found = read_key(&mut conns[owner], kind, &name);
            violations
                .entry("masters")
                .or_default()
                .extend(check_key(&name, kind, ops, &found));
            let other = &mut conns[1 - owner];
            if other.call(&[b"EXISTS", name.as_bytes()]).unwrap() != Reply::Int(0) {
                violations.entry("placement").or_default().push(format!(
                    "{name} (slot {}, group {}) is also on group {}'s master",
                    slot_of(name.as_bytes()),
                    owner + 1,
                    2 - owner
                ));
            }
            keys += 1;
        }
    }
    for (gid, g) in groups.iter().enumerate() {
        violations.entry("replicas").or_default().extend(
            compare_replica(g[0], g[1])
                .into_iter()
                .map(|d| format!("group {}: {d}", gid + 1)),
        );
    }

    // 9. Figures, then the verdict.
    let sum = |f: &dyn Fn(&History) -> u64| histories.iter().map(f).sum::<u64>();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for h in &histories {
        for (e, n) in &h.errors {
            *errors.entry(e.clone()).or_insert(0) += n;
        }
    }
    eprintln!("---- consistency figures ----");
    eprintln!(
        "clients {nclients}, faults {secs} s, rounds {}, operations {} (durable {}, acknowledged \
         not covered by WAIT {}, indeterminate {}), {keys} keys",
        sum(&|h| h.rounds),
        sum(&|h| h.ops.values().map(|o| o.len() as u64).sum()),
        sum(&|h| h.count(Fate::Durable) as u64),
        sum(&|h| h.count(Fate::Acked) as u64),
        sum(&|h| h.count(Fate::Maybe) as u64),
    );
    eprintln!(
        "WAIT checkpoints: {} ok, {} failed",
        sum(&|h| h.checkpoints_ok),
        sum(&|h| h.checkpoints_failed)
    );
    eprintln!(
        "migrations: {} rounds of {} slots, slots moved by method {:?}",
        moves.rounds,
        HOT.count(),
        moves.slots
    );
    eprintln!("failovers: 1, dashboard restarts: 1, proxy restarts: 1");
    eprintln!("list audits during the run: {audit_passes} passes over the 4 servers");
    eprintln!("client errors: {errors:?}");
    let mut failed = Vec::new();
    for (what, list) in &violations {
        eprintln!(
            "check {what}: {}",
            if list.is_empty() {
                "ok".to_string()
            } else {
                format!("{} violations", list.len())
            }
        );
        for v in list.iter().take(15) {
            eprintln!("    {v}");
        }
        if !list.is_empty() {
            failed.push(format!("{what} ({})", list.len()));
        }
    }
    eprintln!(
        "result: {}",
        if failed.is_empty() { "PASS" } else { "FAIL" }
    );
    assert!(
        failed.is_empty(),
        "consistency violated: {}",
        failed.join(", ")
    );
    drop(dashboard);
    drop(proxies);
    drop(sentinels);
    drop(servers);
}
