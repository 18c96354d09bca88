//! codis-proxy follows a redis-sentinel failover: Debian's redis-server as master and replica,
//! three Debian redis-sentinels, the proxy watching them as the dashboard would configure it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codis_model::proxy::Slot;
use dataplane::proxy::core::CoreConfig;
use dataplane::proxy::sentinel::SentinelState;
use dataplane::resp::frame::Frame;

use crate::proxy::{TestProxy, addr};
use crate::support::{Client, free_port, start_redis};

/// A redis-sentinel process, killed on drop.
pub(crate) struct Sentinel {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn start_sentinel(master_port: u16) -> Sentinel {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("codis-it-sentinel-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\n\
             sentinel monitor it-1 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds it-1 1000\n\
             sentinel failover-timeout it-1 5000\n\
             sentinel parallel-syncs it-1 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new("redis-sentinel")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-sentinel is not installed (apt-get install redis-sentinel)");
    let s = Sentinel { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sentinel did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

pub(crate) fn count(f: &Frame) -> usize {
    match f {
        Frame::Array(_, v) => v.len(),
        _ => 0,
    }
}

#[test]
fn proxy_follows_a_sentinel_failover() {
    let master = start_redis(&[]);
    let replica = start_redis(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = match Client::connect(replica.port).run("INFO replication") {
            Frame::Bulk(b) => String::from_utf8_lossy(&b).to_string(),
            other => panic!("{other:?}"),
        };
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(Instant::now() < deadline, "replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sentinels: Vec<Sentinel> = (0..3).map(|_| start_sentinel(master.port)).collect();
    // Wait until the sentinels know the replica and each other (needed to agree on a failover).
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &sentinels {
        let mut c = Client::connect(s.port);
        while count(&c.run("SENTINEL replicas it-1")) < 1
            || count(&c.run("SENTINEL sentinels it-1")) < 2
        {
            assert!(
                Instant::now() < deadline,
                "sentinels never discovered each other"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let p = TestProxy::start(CoreConfig::default());
    let slots: Vec<Slot> = (0..1024)
        .map(|i| Slot {
            id: i,
            backend_addr: addr(&master),
            backend_addr_group_id: 1,
            ..Slot::default()
        })
        .collect();
    p.fill(&slots);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(SentinelState::default());
    {
        let _g = rt.enter();
        let servers = sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        state.watch(p.proxy.clone(), "it".to_string(), servers);
    }
    let mut c = p.client();
    assert_eq!(c.run("SET before 1"), Frame::Simple(b"OK".to_vec()));
    // The master dies; the sentinels promote the replica and the proxy follows.
    drop(master);
    let killed = Instant::now();
    let mut errors = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.run("SET after 2") {
            Frame::Simple(s) if s == b"OK" => break,
            _ => errors += 1,
        }
        assert!(
            Instant::now() < deadline,
            "the proxy never switched to the new master"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "failover: traffic served by the new master {:?} after the kill, {errors} failed requests",
        killed.elapsed()
    );
    assert_eq!(c.run("GET before"), Frame::Bulk(b"1".to_vec()));
    assert_eq!(
        Client::connect(replica.port).run("GET after"),
        Frame::Bulk(b"2".to_vec())
    );
    assert!(state.switched.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(state.masters.lock().get("1"), Some(&addr(&replica)));
    assert_eq!(p.proxy.router.slots()[7].backend_addr, addr(&replica));
    state.stop();
}
