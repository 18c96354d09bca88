//! The whole cluster as real processes (issue 5's proof): ZooKeeper, four codis-servers, the
//! dashboard and two proxies. Groups are created and rebalanced, 100,000 keys are written, half
//! the slots are migrated under client load while the dashboard is SIGKILLed and restarted, then
//! ZooKeeper goes away for 30 s. Clients must see no error at all, and every key, counter and
//! slot must end where it belongs.
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`; `cargo test --workspace`
//! builds them) and Debian's ZooKeeper (`apt-get install -y zookeeper`); it fails without them.

#[path = "cluster/admin.rs"]
mod admin;
#[path = "cluster/consistency.rs"]
mod consistency;
#[path = "cluster/fe.rs"]
mod fe;
#[path = "cluster/guide.rs"]
mod guide;
#[path = "cluster/quickstart.rs"]
mod quickstart;
mod support;
#[path = "cluster/ui.rs"]
mod ui;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codis_model::auth::dashboard_xauth;
use codis_model::slot_of;
use serde_json::Value;
use support::{
    Dashboard, Proc, Reply, Resp, TempDir, free_port, start_codis_server, start_codis_server_on,
    start_dashboard, start_dashboard_with, start_proxy, start_proxy_on, start_sentinel,
    start_zookeeper, wait_for,
};
use support::{info_field, slot_table};

const PRODUCT: &str = "e2e";
const KEYS: usize = 100_000;
const BATCH: usize = 1000;
/// Client threads per proxy.
const THREADS_PER_PROXY: usize = 2;
/// INCR counters per client thread.
const COUNTERS: usize = 64;
const OUTAGE: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    format!("k:{i}")
}

fn value(i: usize) -> String {
    format!("v:{i}")
}

/// Counter `n` of client thread `t`; each thread owns its counters, so every INCR reply is
/// known in advance.
fn counter(t: usize, n: usize) -> String {
    format!("c:{{{t}-{n}}}")
}

// ---------------------------------------------------------------------------------------------
// Dashboard API

/// How many slots are in each action state ("" = idle).
fn states(table: &[(i64, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, s) in table {
        *out.entry(s.clone()).or_insert(0) += 1;
    }
    out
}

/// The target group of slot `sid` in step 4.
fn target(sid: usize) -> Option<i64> {
    match sid {
        0..=255 => Some(3),
        512..=767 => Some(4),
        _ => None,
    }
}

/// Slots of step 4 that already sit idle in their target group.
fn moved(table: &[(i64, String)]) -> usize {
    table
        .iter()
        .enumerate()
        .filter(|(sid, (gid, state))| target(*sid) == Some(*gid) && state.is_empty())
        .count()
}

// ---------------------------------------------------------------------------------------------
// Client load

#[derive(Debug, Default)]
struct Report {
    ops: u64,
    errors: u64,
    /// The first few errors, for the failure message.
    samples: Vec<String>,
    /// Acknowledged INCRs per counter.
    incrs: HashMap<String, i64>,
}

impl Report {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.samples.len() < 10 {
            self.samples.push(what);
        }
    }
}

/// Tiny xorshift, so that the load needs no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One client thread on `port` until `stop`: pipelines of 3 INCRs on its own counters, 3 GETs
/// and 2 SETs (same value) on the k:* keys; every error reply, wrong value or I/O error counts.
fn client(t: usize, port: u16, stop: Arc<AtomicBool>) -> Report {
    let mut rep = Report::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678));
    let mut conn: Option<Resp> = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Resp::connect(port) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    rep.error(format!("thread {t}: connect: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        // (command, expected reply, counter it increments)
        let mut batch: Vec<(Vec<String>, Reply, Option<String>)> = Vec::new();
        for _ in 0..3 {
            let name = counter(t, rng.below(COUNTERS));
            let next = rep.incrs.get(&name).copied().unwrap_or(0) + 1;
            // Two INCRs of one counter in a batch: the second expects one more.
            let pending = batch
                .iter()
                .filter(|(_, _, c)| c.as_deref() == Some(name.as_str()))
                .count() as i64;
            batch.push((
                vec!["INCR".into(), name.clone()],
                Reply::Int(next + pending),
                Some(name),
            ));
        }
        for _ in 0..3 {
            let i = rng.below(KEYS);
            batch.push((
                vec!["GET".into(), key(i)],
                Reply::bulk(value(i).as_bytes()),
                None,
            ));
        }
        for _ in 0..2 {
            let i = rng.below(KEYS);
            batch.push((
                vec!["SET".into(), key(i), value(i)],
                Reply::Status("OK".into()),
                None,
            ));
        }
        let mut out = Vec::new();
        for (args, _, _) in &batch {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            Resp::encode(&mut out, &args);
        }
        if let Err(e) = c.send_raw(&out) {
            rep.error(format!("thread {t}: write: {e}"));
            conn = None;
            continue;
        }
        for (args, want, incr) in &batch {
            match c.read() {
                Ok(got) => {
                    rep.ops += 1;
                    if let (Some(name), Reply::Int(_)) = (incr, &got) {
                        // Acknowledged: the server applied it.
                        *rep.incrs.entry(name.clone()).or_insert(0) += 1;
                    }
                    if &got != want {
                        rep.error(format!("thread {t}: {args:?}: got {got:?}, want {want:?}"));
                    }
                }
                Err(e) => {
                    rep.error(format!("thread {t}: {args:?}: {e}"));
                    conn = None;
                    break;
                }
            }
        }
    }
    rep
}

// ---------------------------------------------------------------------------------------------
// The scenario

#[test]
fn cluster_survives_migration_dashboard_crash_and_zookeeper_outage() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t0 = Instant::now();
    let dir = TempDir::new("cluster");
    let zk_dir = dir.path().join("zk");
    std::fs::create_dir_all(&zk_dir).unwrap();

    // 1. ZooKeeper, 4 codis-servers, the dashboard, 2 proxies.
    let zk_port = free_port();
    let mut zk = start_zookeeper(zk_port, &zk_dir);
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(start_codis_server(dir.path()));
    }
    let addr = |i: usize| format!("127.0.0.1:{}", servers[i].1);
    let d_port = free_port();
    let mut dashboard = start_dashboard(PRODUCT, zk_port, d_port, dir.path());
    let d = Dashboard {
        port: d_port,
        xauth: dashboard_xauth(PRODUCT),
    };
    let proxy_a = start_proxy(PRODUCT, zk_port, dir.path());
    let proxy_b = start_proxy(PRODUCT, zk_port, dir.path());
    let t = Instant::now();
    wait_for(
        "both proxies in proxy.models, online",
        Duration::from_secs(30),
        || {
            let s = d.stats();
            let models = s["proxy"]["models"].as_array()?.clone();
            let online: BTreeSet<String> = models
                .iter()
                .filter(|m| {
                    let token = m["token"].as_str().unwrap_or("");
                    s["proxy"]["stats"][token]["stats"]["online"] == Value::Bool(true)
                })
                .filter_map(|m| m["admin_addr"].as_str().map(str::to_string))
                .collect();
            let want: BTreeSet<String> = [proxy_a.admin, proxy_b.admin]
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            (online == want).then_some(())
        },
    );
    eprintln!(
        "[{:>6.1?}] cluster up: zookeeper :{zk_port}, servers {:?}, dashboard :{d_port}, \
         proxies :{} :{} online after {:.1?}",
        t0.elapsed(),
        servers.iter().map(|s| s.1).collect::<Vec<_>>(),
        proxy_a.port,
        proxy_b.port,
        t.elapsed()
    );

    // 2. Groups 1 and 2, rebalanced.
    for (gid, s) in [(1, 0), (2, 1)] {
        assert_eq!(d.put(&format!("group/create/X/{gid}")), "OK");
        assert_eq!(d.put(&format!("group/add/X/{gid}/{}", addr(s))), "OK");
    }
    let t = Instant::now();
    let plan = d.put("slots/rebalance/X/1");
    assert_eq!(
        plan.as_object().map(|p| p.len()),
        Some(1024),
        "rebalance plan: {plan}"
    );
    wait_for(
        "every slot in group 1 or 2, idle",
        Duration::from_secs(60),
        || {
            let table = slot_table(&d.stats()).expect("stats.slots: 1024 slots in order");
            table
                .iter()
                .all(|(g, st)| (*g == 1 || *g == 2) && st.is_empty())
                .then_some(())
        },
    );
    eprintln!(
        "[{:>6.1?}] rebalance of 1024 offline slots onto groups 1, 2: {:.1?}",
        t0.elapsed(),
        t.elapsed()
    );

    // 3. 100,000 keys through proxy A, a sample read through proxy B.
    let t = Instant::now();
    let mut a = Resp::connect(proxy_a.port).unwrap();
    for start in (0..KEYS).step_by(BATCH) {
        let cmds: Vec<Vec<Vec<u8>>> = (start..start + BATCH)
            .map(|i| vec![b"SET".to_vec(), key(i).into_bytes(), value(i).into_bytes()])
            .collect();
        for (n, r) in a.pipeline(&cmds).unwrap().into_iter().enumerate() {
            assert_eq!(r, Reply::Status("OK".into()), "SET {}", key(start + n));
        }
    }
    let mut b = Resp::connect(proxy_b.port).unwrap();
    let sample: Vec<usize> = (0..KEYS).step_by(97).collect();
    let mut args = vec![b"MGET".to_vec()];
    args.extend(sample.iter().map(|&i| key(i).into_bytes()));
    let got = b.pipeline(&[args]).unwrap().remove(0);
    let want = Reply::Array(Some(
        sample
            .iter()
            .map(|&i| Reply::bulk(value(i).as_bytes()))
            .collect(),
    ));
    assert!(got == want, "sample MGET through proxy B differs");
    eprintln!(
        "[{:>6.1?}] wrote {KEYS} keys through proxy A in {:.1?}; {} sampled through proxy B",
        t0.elapsed(),
        t.elapsed(),
        sample.len()
    );

    // 4. Groups 3 and 4; clients on both proxies; half the slots move.
    for (gid, s) in [(3, 2), (4, 3)] {
        assert_eq!(d.put(&format!("group/create/X/{gid}")), "OK");
        assert_eq!(d.put(&format!("group/add/X/{gid}/{}", addr(s))), "OK");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<JoinHandle<Report>> = (0..2 * THREADS_PER_PROXY)
        .map(|t| {
            let port = if t % 2 == 0 {
                proxy_a.port
            } else {
                proxy_b.port
            };
            let stop = stop.clone();
            std::thread::spawn(move || client(t, port, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t_migration = Instant::now();
    assert_eq!(d.put("slots/action/create-range/X/0/255/3"), "OK");
    assert_eq!(d.put("slots/action/create-range/X/512/767/4"), "OK");

    // 5. SIGKILL the dashboard mid-migration, restart it on the same port.
    // Killed once a few slots are done while others are queued and at least one is past
    // `pending` (its keys are moving between two servers).
    let (done, table) = wait_for(
        "some slots migrated while others are still queued or moving",
        Duration::from_secs(120),
        || {
            let table = slot_table(&d.stats()).expect("stats.slots: 1024 slots in order");
            let done = moved(&table);
            let st = states(&table);
            assert!(
                done < 512,
                "the migration finished before the dashboard could be killed"
            );
            let moving = st
                .iter()
                .any(|(s, n)| *n > 0 && !s.is_empty() && s != "pending");
            let queued = st.get("pending").copied().unwrap_or(0) > 0;
            (done >= 16 && moving && queued).then_some((done, table))
        },
    );
    dashboard.kill();
    eprintln!(
        "[{:>6.1?}] dashboard SIGKILLed {:.1?} into the migration: {done}/512 slots moved, \
         states {:?}",
        t0.elapsed(),
        t_migration.elapsed(),
        states(&table)
    );
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    dashboard = start_dashboard(PRODUCT, zk_port, d_port, dir.path());
    eprintln!(
        "[{:>6.1?}] dashboard restarted (lock taken over) in {:.1?}",
        t0.elapsed(),
        t.elapsed()
    );
    let mut last_print = Instant::now();
    let final_table = wait_for(
        "the migration to finish after the restart",
        Duration::from_secs(120),
        || {
            let table = slot_table(&d.stats()).expect("stats.slots: 1024 slots in order");
            let idle = table.iter().all(|(_, s)| s.is_empty());
            if last_print.elapsed() > Duration::from_secs(10) {
                last_print = Instant::now();
                eprintln!(
                    "[{:>6.1?}]   {}/512 slots moved, states {:?}",
                    t0.elapsed(),
                    moved(&table),
                    states(&table)
                );
            }
            (idle && moved(&table) == 512).then_some(table)
        },
    );
    eprintln!(
        "[{:>6.1?}] migration of 512 slots done in {:.1?} (dashboard down ~2 s of it)",
        t0.elapsed(),
        t_migration.elapsed()
    );
    for (sid, (gid, _)) in final_table.iter().enumerate() {
        match target(sid) {
            Some(want) => assert_eq!(*gid, want, "slot {sid}"),
            None => assert!(*gid == 1 || *gid == 2, "slot {sid} in group {gid}"),
        }
    }

    // 6. ZooKeeper goes away for 30 s; the dashboard keeps answering and notices.
    let t_outage = Instant::now();
    zk.kill();
    let mut polls = 0;
    let mut slowest = Duration::ZERO;
    let mut noticed: Option<Duration> = None;
    while t_outage.elapsed() < OUTAGE {
        let t_poll = Instant::now();
        let s = d
            .try_stats()
            .unwrap_or_else(|e| panic!("stats during the ZooKeeper outage: {e}"));
        polls += 1;
        let online = s["coordinator"]["online"].as_bool();
        match noticed {
            None if online == Some(false) => {
                noticed = Some(t_outage.elapsed());
                eprintln!(
                    "[{:>6.1?}] ZooKeeper down: dashboard reports coordinator offline after \
                     {:.1?} ({})",
                    t0.elapsed(),
                    t_outage.elapsed(),
                    s["coordinator"]["error"]
                );
            }
            // The probe's read gives up after the coordinator's operation timeout (at most
            // 10 s, codis_coordinator::MAX_OPERATION_TIMEOUT); probes run every second.
            None => assert!(
                t_outage.elapsed() < Duration::from_secs(15),
                "coordinator.online is still {online:?} 15 s into the outage"
            ),
            Some(_) => assert_eq!(
                online,
                Some(false),
                "coordinator.online during the outage, {:.1?} in",
                t_outage.elapsed()
            ),
        }
        slowest = slowest.max(t_poll.elapsed());
        assert!(
            t_poll.elapsed() < Duration::from_secs(5),
            "stats took {:.1?} during the outage",
            t_poll.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(noticed.is_some(), "the outage was never reported");
    zk = start_zookeeper(zk_port, &zk_dir);
    let outage = t_outage.elapsed();
    let t = Instant::now();
    wait_for(
        "coordinator.online == true after ZooKeeper is back",
        Duration::from_secs(30),
        || (d.stats()["coordinator"]["online"] == Value::Bool(true)).then_some(()),
    );
    eprintln!(
        "[{:>6.1?}] ZooKeeper answered again after a {outage:.1?} outage ({polls} stats polls \
         answered, slowest {slowest:.1?}); the dashboard reported it online {:.1?} later",
        t0.elapsed(),
        t.elapsed()
    );
    // The dashboard still works against the coordinator: the slot table is intact and both
    // proxies are still online.
    let s = d.stats();
    assert_eq!(
        slot_table(&s).expect("stats.slots"),
        final_table,
        "slot table after the outage"
    );
    for m in s["proxy"]["models"].as_array().unwrap() {
        let token = m["token"].as_str().unwrap();
        assert_eq!(
            s["proxy"]["stats"][token]["stats"]["online"],
            Value::Bool(true),
            "proxy {} after the outage",
            m["admin_addr"]
        );
    }

    // 7. Stop the clients: no error at all; every key, counter and slot where it belongs.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<Report> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    let ops: u64 = reports.iter().map(|r| r.ops).sum();
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    eprintln!(
        "[{:>6.1?}] clients: {ops} replies over {:.1?}, {errors} errors ({:?} per thread)",
        t0.elapsed(),
        t_migration.elapsed(),
        reports
            .iter()
            .map(|r| (r.ops, r.errors))
            .collect::<Vec<_>>()
    );
    let samples: Vec<&String> = reports.iter().flat_map(|r| &r.samples).collect();
    assert_eq!(errors, 0, "client errors, first ones: {samples:#?}");

    let mut b = Resp::connect(proxy_b.port).unwrap();
    for start in (0..KEYS).step_by(BATCH) {
        let mut args = vec![b"MGET".to_vec()];
        args.extend((start..start + BATCH).map(|i| key(i).into_bytes()));
        let Reply::Array(Some(values)) = b.pipeline(&[args]).unwrap().remove(0) else {
            panic!("MGET from {start}: not an array");
        };
        for (n, v) in values.into_iter().enumerate() {
            let i = start + n;
            assert_eq!(v, Reply::bulk(value(i).as_bytes()), "{}", key(i));
        }
    }
    let mut counters: BTreeMap<String, i64> = BTreeMap::new();
    for r in &reports {
        counters.extend(r.incrs.iter().map(|(k, v)| (k.clone(), *v)));
    }
    let names: Vec<Vec<Vec<u8>>> = counters
        .keys()
        .map(|k| vec![b"GET".to_vec(), k.clone().into_bytes()])
        .collect();
    for ((name, acked), got) in counters.iter().zip(b.pipeline(&names).unwrap()) {
        assert_eq!(
            got,
            Reply::bulk(acked.to_string().as_bytes()),
            "counter {name}: acknowledged INCRs"
        );
    }
    let incrs: i64 = counters.values().sum();
    eprintln!(
        "[{:>6.1?}] {KEYS} keys and {} counters ({incrs} INCRs) read back through proxy B",
        t0.elapsed(),
        counters.len()
    );

    // Every server holds exactly the keys of its group's slots (SLOTSINFO: [slot, count]).
    let mut per_slot = vec![0i64; 1024];
    for name in (0..KEYS).map(key).chain(counters.keys().cloned()) {
        per_slot[slot_of(name.as_bytes())] += 1;
    }
    for (i, (_, port)) in servers.iter().enumerate() {
        let gid = i as i64 + 1;
        let mut c = Resp::connect(*port).unwrap();
        let Reply::Array(Some(rows)) = c.call(&[b"SLOTSINFO"]).unwrap() else {
            panic!("SLOTSINFO on S{gid}: not an array");
        };
        let held: BTreeMap<usize, i64> = rows
            .into_iter()
            .map(|row| match row {
                Reply::Array(Some(pair)) => match pair.as_slice() {
                    [Reply::Int(s), Reply::Int(n)] => (*s as usize, *n),
                    other => panic!("SLOTSINFO row on S{gid}: {other:?}"),
                },
                other => panic!("SLOTSINFO row on S{gid}: {other:?}"),
            })
            .collect();
        let slots: BTreeSet<usize> = held.keys().copied().collect();
        match gid {
            3 => assert!(
                slots.iter().all(|s| (0..=255).contains(s)),
                "S3 holds slots outside 0-255: {slots:?}"
            ),
            4 => assert!(
                slots.iter().all(|s| (512..=767).contains(s)),
                "S4 holds slots outside 512-767: {slots:?}"
            ),
            _ => assert!(
                slots.iter().all(|s| target(*s).is_none()),
                "S{gid} still holds moved slots: {:?}",
                slots
                    .iter()
                    .filter(|s| target(**s).is_some())
                    .collect::<Vec<_>>()
            ),
        }
        let want: BTreeMap<usize, i64> = final_table
            .iter()
            .enumerate()
            .filter(|(sid, (g, _))| *g == gid && per_slot[*sid] > 0)
            .map(|(sid, _)| (sid, per_slot[sid]))
            .collect();
        assert!(
            held == want,
            "S{gid}: SLOTSINFO differs from the keys of group {gid}'s slots: {} slots held, {} \
             expected; first differences: {:?}",
            held.len(),
            want.len(),
            held.iter()
                .filter(|(s, n)| want.get(s) != Some(n))
                .take(5)
                .collect::<Vec<_>>()
        );
        eprintln!(
            "[{:>6.1?}] S{gid} (:{port}): {} slots, {} keys, as expected",
            t0.elapsed(),
            held.len(),
            held.values().sum::<i64>()
        );
    }
    // 8. A proxy that restarts (same host and ports, so the same token) without being told
    // where the dashboard is: the dashboard's probe sees it waiting and takes it online again.
    let (a_port, a_admin) = (proxy_a.port, proxy_a.admin);
    drop(proxy_a);
    let restarted = start_proxy_on(PRODUCT, None, a_port, a_admin, dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Resp::connect(restarted.port)
            && let Ok(reply) = c.call(&[b"GET", key(7).as_bytes()])
            && reply == Reply::bulk(value(7).as_bytes())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted proxy was never taken online again:\n{}",
            restarted.proc.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "[{:>6.1?}] proxy A restarted and taken online again by the dashboard",
        t0.elapsed()
    );
    drop(dashboard);
    drop(zk);
    eprintln!("[{:>6.1?}] done", t0.elapsed());
}

/// One whole-cluster test at a time: they share the 2 cores.
pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Issue 6's failover: a group of one codis-server master and two replicas (the dashboard runs
/// their SLAVEOF), three Debian redis-sentinels configured by the dashboard
/// (`sentinel_down_after = 5s`), a proxy. The master is SIGKILLed under load: every write that
/// `WAIT 1` acknowledged survives, the proxy serves from the promoted replica, the dashboard
/// puts it first in the group, and the old master, restarted, comes back as a replica.
#[test]
fn failover_keeps_acknowledged_writes() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let t0 = Instant::now();
    let dir = TempDir::new("failover");
    let zk_dir = dir.path().join("zk");
    std::fs::create_dir_all(&zk_dir).unwrap();
    let zk_port = free_port();
    let _zk = start_zookeeper(zk_port, &zk_dir);
    let mut servers: Vec<(Proc, u16)> = (0..3).map(|_| start_codis_server(dir.path())).collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.1).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let d_port = free_port();
    let _dashboard = start_dashboard_with(
        PRODUCT,
        zk_port,
        d_port,
        dir.path(),
        "sentinel_down_after = \"5s\"\nsentinel_failover_timeout = \"30s\"\n",
    );
    let d = Dashboard {
        port: d_port,
        xauth: dashboard_xauth(PRODUCT),
    };
    d.put("group/create/X/1");
    for p in &ports {
        d.put(&format!("group/add/X/1/{}", addr(*p)));
    }
    // The dashboard queued and runs the replicas' SLAVEOF.
    wait_for(
        "two replicas attached and in sync",
        Duration::from_secs(30),
        || {
            let n = info_field(ports[0], "replication", "connected_slaves")?;
            (n == "2").then_some(())
        },
    );
    d.put("slots/rebalance/X/1");
    wait_for("all slots on group 1", Duration::from_secs(30), || {
        let s = d.stats();
        s["slots"]
            .as_array()?
            .iter()
            .all(|m| m["group_id"] == 1 && m["action"] == serde_json::json!({}))
            .then_some(())
    });
    let sentinels: Vec<(Proc, u16)> = (0..3).map(|_| start_sentinel(dir.path())).collect();
    for (_, p) in &sentinels {
        d.put(&format!("sentinels/add/X/{}", addr(*p)));
    }
    d.put("sentinels/resync-all/X");
    let proxy = start_proxy(PRODUCT, zk_port, dir.path());
    wait_for("proxy online", Duration::from_secs(30), || {
        let mut c = Resp::connect(proxy.port).ok()?;
        matches!(c.call(&[b"PING"]).ok()?, Reply::Status(s) if s == "PONG").then_some(())
    });
    // The sentinels must know each other and both replicas before a failover can happen.
    wait_for(
        "sentinels see 2 replicas and 2 other sentinels",
        Duration::from_secs(40),
        || {
            sentinels
                .iter()
                .all(|(_, p)| {
                    let mut c = Resp::connect(*p).unwrap();
                    let Ok(Reply::Array(Some(m))) =
                        c.call(&[b"SENTINEL", b"master", format!("{PRODUCT}-1").as_bytes()])
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
                    field("num-slaves").as_deref() == Some("2")
                        && field("num-other-sentinels").as_deref() == Some("2")
                })
                .then_some(())
        },
    );
    eprintln!(
        "[{:>6.1?}] group of 3, sentinels and proxy ready",
        t0.elapsed()
    );

    // Load: a proxy client writing; a direct client writing to the master with WAIT 1.
    let stop = Arc::new(AtomicBool::new(false));
    let proxy_port = proxy.port;
    let s2 = stop.clone();
    let load = std::thread::spawn(move || {
        let mut errors: Vec<Instant> = Vec::new();
        let mut ok = 0u64;
        let mut c = Resp::connect(proxy_port).unwrap();
        let mut i = 0u64;
        while !s2.load(Ordering::Relaxed) {
            i += 1;
            let k = format!("p:{i}");
            match c.call(&[b"SET", k.as_bytes(), b"v"]) {
                Ok(Reply::Status(_)) => ok += 1,
                Ok(_) => errors.push(Instant::now()),
                Err(_) => {
                    errors.push(Instant::now());
                    std::thread::sleep(Duration::from_millis(50));
                    if let Ok(n) = Resp::connect(proxy_port) {
                        c = n;
                    }
                }
            }
        }
        (ok, errors)
    });
    let master_port = ports[0];
    let s3 = stop.clone();
    let acked = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(mut c) = Resp::connect(master_port) else {
            return acked;
        };
        let mut i = 0u64;
        while !s3.load(Ordering::Relaxed) {
            i += 1;
            let k = format!("w:{i}");
            if !matches!(c.call(&[b"SET", k.as_bytes(), b"v"]), Ok(Reply::Status(_))) {
                break;
            }
            match c.call(&[b"WAIT", b"1", b"1000"]) {
                Ok(Reply::Int(n)) if n >= 1 => acked.push(k),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    servers[0].0.kill();
    eprintln!("[{:>6.1?}] master :{master_port} SIGKILLed", t0.elapsed());
    let new_master = wait_for(
        "the dashboard switched group 1 to a replica",
        Duration::from_secs(60),
        || {
            let s = d.stats();
            let first = s["group"]["models"][0]["servers"][0]["server"]
                .as_str()?
                .to_string();
            (first != addr(master_port)).then_some(first)
        },
    );
    let switched = killed.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let (ok, errors) = load.join().unwrap();
    let acked = acked.join().unwrap();
    let window = match (errors.first(), errors.last()) {
        (Some(a), Some(b)) => format!(
            "{:.1?} from {:.1?} after the kill",
            b.duration_since(*a),
            a.duration_since(killed)
        ),
        _ => "none".to_string(),
    };
    eprintln!(
        "[{:>6.1?}] new master {new_master}: dashboard switched {switched:.1?} after the kill; proxy writes: {ok} ok, {} errors, error window {window}; {} writes acknowledged by WAIT 1",
        t0.elapsed(),
        errors.len(),
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "no write was acknowledged by WAIT 1 before the kill"
    );
    // Every write WAIT acknowledged is on the new master, read through the proxy.
    let mut c = Resp::connect(proxy.port).unwrap();
    let gets: Vec<Vec<Vec<u8>>> = acked
        .iter()
        .map(|k| vec![b"GET".to_vec(), k.clone().into_bytes()])
        .collect();
    for (k, got) in acked.iter().zip(c.pipeline(&gets).unwrap()) {
        assert_eq!(got, Reply::bulk(b"v"), "acknowledged write {k} lost");
    }
    // The proxy serves writes again, from the new master.
    assert!(matches!(
        c.call(&[b"SET", b"after", b"1"]).unwrap(),
        Reply::Status(_)
    ));
    // The old master, restarted, is turned into a replica of the new one by the sentinels.
    let restarted = start_codis_server_on(dir.path(), master_port).expect("restart the old master");
    servers[0].0 = restarted;
    wait_for(
        "the old master replicates the new one",
        Duration::from_secs(60),
        || {
            let role = info_field(master_port, "replication", "role")?;
            let host = info_field(master_port, "replication", "master_port")?;
            (role == "slave" && addr(host.parse().ok()?) == new_master).then_some(())
        },
    );
    eprintln!(
        "[{:>6.1?}] the old master came back as a replica of {new_master}",
        t0.elapsed()
    );
}
