//! Integration tests: blocking list commands (BLPOP, BRPOP, BLMOVE, BLMPOP...).
//!
//! Each scenario runs against Debian's redis-server too, so the expected replies are checked
//! against the reference as well as against our server.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Server, show, start_codis, start_redis};

/// Runs `scenario` on a fresh redis-server and a fresh codis-server.
fn on_both(scenario: fn(u16)) {
    for server in [start_redis(&[]), start_codis(&[])] {
        let Server { port, name, .. } = &server;
        eprintln!("scenario on {name}");
        scenario(*port);
    }
}

/// Sends `args` from a new connection on another thread; the join handle yields the raw
/// reply and how long it took.
fn spawn_cmd(port: u16, args: &[&str]) -> thread::JoinHandle<(Vec<u8>, Duration)> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        let mut c = Client::connect(port);
        let refs: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let start = Instant::now();
        let (_, raw) = c.cmd(&refs);
        (raw, start.elapsed())
    })
}

/// Runs one command and returns its raw reply.
fn raw(c: &mut Client, args: &[&str]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.cmd(&refs).1
}

/// Lets a spawned client reach its blocking command.
fn settle() {
    thread::sleep(Duration::from_millis(200));
}

fn assert_reply(got: &[u8], want: &[u8]) {
    assert_eq!(show(got), show(want));
}

#[test]
fn blpop_is_served_by_a_push() {
    on_both(|port| {
        let waiter = spawn_cmd(port, &["BLPOP", "k", "5"]);
        settle();
        let mut c = Client::connect(port);
        assert_reply(&raw(&mut c, &["RPUSH", "k", "v"]), b":1\r\n");
        let (reply, took) = waiter.join().unwrap();
        assert_reply(&reply, b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
        assert!(took < Duration::from_secs(4), "took {took:?}");
        assert_reply(&raw(&mut c, &["LLEN", "k"]), b":0\r\n");
    });
}

#[test]
fn timeout_replies_nil_after_the_timeout() {
    on_both(|port| {
        let mut c = Client::connect(port);
        let start = Instant::now();
        assert_reply(&raw(&mut c, &["BLPOP", "nokey", "0.3"]), b"*-1\r\n");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "took {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        // The connection is usable afterwards.
        assert_reply(&raw(&mut c, &["RPUSH", "nokey", "a"]), b":1\r\n");
        let start = Instant::now();
        assert_reply(
            &raw(&mut c, &["BRPOPLPUSH", "none", "d", "0.2"]),
            b"*-1\r\n",
        );
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_reply(
            &raw(&mut c, &["BLMPOP", "0.2", "2", "none", "none2", "LEFT"]),
            b"*-1\r\n",
        );
    });
}

#[test]
fn blmove_delivers_to_the_destination() {
    on_both(|port| {
        let waiter = spawn_cmd(port, &["BLMOVE", "src", "dst", "RIGHT", "LEFT", "5"]);
        settle();
        let mut c = Client::connect(port);
        assert_reply(&raw(&mut c, &["RPUSH", "dst", "old"]), b":1\r\n");
        assert_reply(&raw(&mut c, &["RPUSH", "src", "x", "y"]), b":2\r\n");
        let (reply, _) = waiter.join().unwrap();
        assert_reply(&reply, b"$1\r\ny\r\n");
        assert_reply(
            &raw(&mut c, &["LRANGE", "dst", "0", "-1"]),
            b"*2\r\n$1\r\ny\r\n$3\r\nold\r\n",
        );
        assert_reply(
            &raw(&mut c, &["LRANGE", "src", "0", "-1"]),
            b"*1\r\n$1\r\nx\r\n",
        );
    });
}

#[test]
fn first_non_empty_key_wins() {
    on_both(|port| {
        let mut c = Client::connect(port);
        raw(&mut c, &["RPUSH", "k2", "b"]);
        raw(&mut c, &["RPUSH", "k3", "c"]);
        assert_reply(
            &raw(&mut c, &["BLPOP", "k1", "k2", "k3", "0"]),
            b"*2\r\n$2\r\nk2\r\n$1\r\nb\r\n",
        );
        assert_reply(
            &raw(
                &mut c,
                &["BLMPOP", "0", "3", "k1", "k2", "k3", "RIGHT", "COUNT", "5"],
            ),
            b"*2\r\n$2\r\nk3\r\n*1\r\n$1\r\nc\r\n",
        );
        // Blocked on several keys: a push to any of them serves the client.
        let waiter = spawn_cmd(port, &["BRPOP", "k1", "k2", "k3", "5"]);
        settle();
        raw(&mut c, &["LPUSH", "k3", "x", "y"]);
        let (reply, _) = waiter.join().unwrap();
        assert_reply(&reply, b"*2\r\n$2\r\nk3\r\n$1\r\nx\r\n");
    });
}

#[test]
fn blocking_commands_inside_multi_do_not_block() {
    on_both(|port| {
        let mut c = Client::connect(port);
        let start = Instant::now();
        assert_reply(&raw(&mut c, &["MULTI"]), b"+OK\r\n");
        for cmd in [
            &["BLPOP", "k", "0"][..],
            &["BRPOP", "k", "k2", "0"],
            &["BRPOPLPUSH", "k", "d", "0"],
            &["BLMOVE", "k", "d", "LEFT", "LEFT", "0"],
            &["BLMPOP", "0", "1", "k", "LEFT"],
        ] {
            assert_reply(&raw(&mut c, cmd), b"+QUEUED\r\n");
        }
        assert_reply(
            &raw(&mut c, &["EXEC"]),
            b"*5\r\n*-1\r\n*-1\r\n$-1\r\n$-1\r\n*-1\r\n",
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn timeout_zero_waits_until_another_connection_pushes() {
    on_both(|port| {
        let waiter = spawn_cmd(port, &["BRPOP", "k", "0"]);
        thread::sleep(Duration::from_millis(500));
        assert!(!waiter.is_finished(), "BRPOP with timeout 0 returned early");
        let mut c = Client::connect(port);
        assert_reply(&raw(&mut c, &["LPUSH", "k", "a", "b"]), b":2\r\n");
        let (reply, _) = waiter.join().unwrap();
        assert_reply(&reply, b"*2\r\n$1\r\nk\r\n$1\r\na\r\n");
        assert_reply(
            &raw(&mut c, &["LRANGE", "k", "0", "-1"]),
            b"*1\r\n$1\r\nb\r\n",
        );
    });
}

#[test]
fn each_element_goes_to_one_blocked_client() {
    on_both(|port| {
        let first = spawn_cmd(port, &["BLPOP", "k", "5"]);
        let second = spawn_cmd(port, &["BLPOP", "k", "5"]);
        settle();
        let mut c = Client::connect(port);
        raw(&mut c, &["RPUSH", "k", "one"]);
        thread::sleep(Duration::from_millis(200));
        let served = [first.is_finished(), second.is_finished()];
        assert_eq!(served.iter().filter(|&&s| s).count(), 1, "{served:?}");
        raw(&mut c, &["RPUSH", "k", "two"]);
        let mut got = [first.join().unwrap().0, second.join().unwrap().0];
        got.sort();
        assert_reply(&got[0], b"*2\r\n$1\r\nk\r\n$3\r\none\r\n");
        assert_reply(&got[1], b"*2\r\n$1\r\nk\r\n$3\r\ntwo\r\n");
        assert_reply(&raw(&mut c, &["LLEN", "k"]), b":0\r\n");
    });
}

#[test]
fn blmpop_is_served_with_its_count() {
    on_both(|port| {
        let waiter = spawn_cmd(port, &["BLMPOP", "5", "2", "a", "b", "RIGHT", "COUNT", "2"]);
        settle();
        let mut c = Client::connect(port);
        raw(&mut c, &["RPUSH", "b", "1", "2", "3"]);
        let (reply, _) = waiter.join().unwrap();
        assert_reply(&reply, b"*2\r\n$1\r\nb\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
    });
}

#[test]
fn a_key_turned_into_a_string_keeps_the_client_blocked() {
    on_both(|port| {
        let waiter = spawn_cmd(port, &["BLPOP", "k", "5"]);
        settle();
        let mut c = Client::connect(port);
        assert_reply(&raw(&mut c, &["SET", "k", "str"]), b"+OK\r\n");
        thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "BLPOP returned on a string key");
        raw(&mut c, &["FLUSHALL"]);
        raw(&mut c, &["RPUSH", "k", "v"]);
        let (reply, _) = waiter.join().unwrap();
        assert_reply(&reply, b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    });
}

#[test]
fn blocked_timeout_keeps_its_deadline_across_wakeups() {
    on_both(|port| {
        // Pushes that another client consumes first wake the blocked client without
        // serving it; it must still time out at its original deadline.
        let waiter = spawn_cmd(port, &["BLPOP", "k", "1"]);
        settle();
        let mut c = Client::connect(port);
        for _ in 0..3 {
            raw(&mut c, &["MULTI"]);
            raw(&mut c, &["RPUSH", "k", "x"]);
            raw(&mut c, &["LPOP", "k"]);
            raw(&mut c, &["EXEC"]);
            thread::sleep(Duration::from_millis(100));
        }
        let (reply, took) = waiter.join().unwrap();
        assert_reply(&reply, b"*-1\r\n");
        assert!(took >= Duration::from_millis(900), "took {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    });
}
