//! Integration tests: blocking sorted set pops (BZPOPMIN, BZPOPMAX, BZMPOP), each scenario
//! run against redis-server and codis-server with the raw replies compared.

use std::time::{Duration, Instant};

use crate::support::{Client, Server, show, start_codis, start_redis};

fn raw(c: &mut Client, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
    c.cmd(&args).1
}

/// Blocks a client with `block`, runs `wake` (if any) from a second client after a short
/// pause, and returns the blocked client's reply followed by `after` replies.
fn scenario(server: &Server, setup: &[&str], block: &str, wake: &[&str], after: &[&str]) -> String {
    let mut a = Client::connect(server.port);
    let mut b = Client::connect(server.port);
    for s in setup {
        raw(&mut b, s);
    }
    let args: Vec<Vec<u8>> = block.split(' ').map(|s| s.as_bytes().to_vec()).collect();
    a.send_raw(&Client::encode(&args));
    std::thread::sleep(Duration::from_millis(100));
    let mut out = String::new();
    for w in wake {
        out.push_str(&show(&raw(&mut b, w)));
        out.push('|');
    }
    let (_, reply) = a.read_reply().expect("blocked client closed");
    out.push_str(&show(&reply));
    for s in after {
        out.push('|');
        out.push_str(&show(&raw(&mut a, s)));
    }
    out
}

fn compare(setup: &[&str], block: &str, wake: &[&str], after: &[&str]) {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let want = scenario(&redis, setup, block, wake, after);
    let got = scenario(&codis, setup, block, wake, after);
    assert_eq!(got, want, "scenario {block:?}");
}

#[test]
fn bzpopmin_woken_by_zadd_on_second_key() {
    compare(
        &[],
        "BZPOPMIN k1 k2 0",
        &["ZADD k2 2 b 1 a"],
        &["ZRANGE k2 0 -1 WITHSCORES"],
    );
}

#[test]
fn bzpopmax_woken_and_key_deleted_when_emptied() {
    compare(
        &[],
        "BZPOPMAX k 0",
        &["ZADD k 5 only"],
        &["ZCARD k", "GET k"],
    );
}

#[test]
fn bzmpop_woken_pops_count() {
    compare(
        &[],
        "BZMPOP 0 2 k1 k2 MAX COUNT 2",
        &["ZADD k1 1 a 2 b 3 c"],
        &["ZRANGE k1 0 -1"],
    );
}

#[test]
fn bzpopmin_ignores_unrelated_writes() {
    compare(
        &[],
        "BZPOPMIN k 0",
        &["ZADD other 1 x", "SET str v", "ZADD k 7 m"],
        &[],
    );
}

#[test]
fn bzpop_resp3_reply() {
    compare(&[], "BZPOPMIN k 0", &["ZADD k 1.5 a"], &[]);
    let codis = start_codis(&[]);
    let mut a = Client::connect(codis.port);
    raw(&mut a, "HELLO 3");
    let mut b = Client::connect(codis.port);
    a.send_raw(&Client::encode(&[
        b"BZPOPMIN".to_vec(),
        b"k".to_vec(),
        b"0".to_vec(),
    ]));
    std::thread::sleep(Duration::from_millis(100));
    raw(&mut b, "ZADD k 1.5 a");
    let (_, reply) = a.read_reply().unwrap();
    assert_eq!(show(&reply), show(b"*3\r\n$1\r\nk\r\n$1\r\na\r\n,1.5\r\n"));
}

#[test]
fn bzpop_timeouts() {
    for server in [start_redis(&[]), start_codis(&[])] {
        let mut c = Client::connect(server.port);
        let t = Instant::now();
        assert_eq!(
            raw(&mut c, "BZPOPMIN nokey 0.2"),
            b"*-1\r\n",
            "{}",
            server.name
        );
        assert!(t.elapsed() >= Duration::from_millis(150), "{}", server.name);
        assert_eq!(
            raw(&mut c, "BZMPOP 0.1 1 nokey MIN"),
            b"*-1\r\n",
            "{}",
            server.name
        );
        // The connection stays usable after a timeout.
        assert_eq!(raw(&mut c, "ZADD k 1 a"), b":1\r\n", "{}", server.name);
        assert_eq!(
            raw(&mut c, "BZPOPMAX nokey k 1"),
            b"*3\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\n1\r\n",
            "{}",
            server.name
        );
    }
}
