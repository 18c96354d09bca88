//! Pub/sub against redis-server: confirmations, messages and pattern messages must be the
//! same bytes, in RESP2 and RESP3.

use std::time::Duration;

use crate::support::{Client, show, start_codis, start_redis};

fn scenario(port: u16, resp3: bool) -> Vec<String> {
    let mut sub = Client::connect(port);
    let mut publ = Client::connect(port);
    let mut log = Vec::new();
    if resp3 {
        let (_, raw) = sub.cmd(&[b"HELLO", b"3"]);
        log.push(format!("hello is map: {}", raw.starts_with(b"%7")));
    }
    let push = |c: &mut Client, args: &[&[u8]], replies: usize, log: &mut Vec<String>| {
        let a: Vec<Vec<u8>> = args.iter().map(|x| x.to_vec()).collect();
        c.send_raw(&Client::encode(&a));
        for _ in 0..replies {
            let (_, raw) = c.read_reply().unwrap();
            log.push(show(&raw));
        }
    };
    push(&mut sub, &[b"SUBSCRIBE", b"news", b"a\x00b"], 2, &mut log);
    push(&mut sub, &[b"PSUBSCRIBE", b"n*", b"x?"], 2, &mut log);
    if !resp3 {
        push(&mut sub, &[b"GET", b"k"], 1, &mut log);
        push(&mut sub, &[b"PING"], 1, &mut log);
        push(&mut sub, &[b"PING", b"hi"], 1, &mut log);
    }
    push(&mut publ, &[b"PUBLISH", b"news", b"hello"], 1, &mut log);
    push(&mut publ, &[b"PUBLISH", b"a\x00b", b"bin\r\n"], 1, &mut log);
    push(&mut publ, &[b"PUBLISH", b"nobody", b"x"], 1, &mut log);
    push(
        &mut publ,
        &[b"PUBSUB", b"NUMSUB", b"news", b"zzz"],
        1,
        &mut log,
    );
    push(&mut publ, &[b"PUBSUB", b"NUMPAT"], 1, &mut log);
    push(&mut publ, &[b"PUBSUB", b"CHANNELS", b"new*"], 1, &mut log);
    // messages: news matches channel + pattern n*; a\0b channel only
    for _ in 0..3 {
        let (_, raw) = sub.read_reply().unwrap();
        log.push(show(&raw));
    }
    push(&mut sub, &[b"UNSUBSCRIBE", b"news"], 1, &mut log);
    push(&mut sub, &[b"UNSUBSCRIBE"], 1, &mut log);
    push(&mut sub, &[b"PUNSUBSCRIBE", b"x?"], 1, &mut log);
    push(&mut sub, &[b"PUNSUBSCRIBE"], 1, &mut log);
    push(&mut sub, &[b"UNSUBSCRIBE"], 1, &mut log);
    push(&mut sub, &[b"PING"], 1, &mut log);
    log
}

#[test]
fn pubsub_matches_redis() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    for resp3 in [false, true] {
        let a = scenario(redis.port, resp3);
        let b = scenario(codis.port, resp3);
        assert_eq!(a, b, "resp3={resp3}");
    }
}

#[test]
fn subscriber_disconnect_is_cleaned_up() {
    let codis = start_codis(&[]);
    {
        let mut sub = Client::connect(codis.port);
        sub.cmd(&[b"SUBSCRIBE", b"ch"]);
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Client::connect(codis.port);
    assert_eq!(c.cmd(&[b"PUBLISH", b"ch", b"x"]).1, b":0\r\n");
}

#[test]
fn subscriber_that_never_reads_is_disconnected() {
    // A subscriber that stops reading must not make the server grow without bound: past
    // 32 MB of queued messages it is disconnected (Redis's pubsub output buffer limit).
    let codis = start_codis(&[]);
    let mut sub = Client::connect(codis.port);
    sub.cmd(&[b"SUBSCRIBE", b"firehose"]);
    let mut publ = Client::connect(codis.port);
    let payload = vec![b'x'; 100_000];
    for _ in 0..1000 {
        publ.cmd(&[b"PUBLISH", b"firehose", &payload]);
    }
    // The subscriber is gone: publishing reaches nobody, and memory stays bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, raw) = publ.cmd(&[b"PUBLISH", b"firehose", b"x"]);
        if raw == b":0\r\n" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subscriber still connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, info) = publ.cmd(&[b"INFO", b"memory"]);
    let text = String::from_utf8_lossy(&info).into_owned();
    let used: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    assert!(used < 64 * 1024 * 1024, "used_memory {used}");
}
