//! codis-proxy under hostile or unlucky request flows: malformed framing on a migrating slot,
//! blocking calls and subscribers while slots move, and the bounds on what one client can make
//! the proxy hold in memory.

use std::sync::mpsc;
use std::time::Duration;

use codis_model::proxy::Slot;
use codis_model::slot_of;
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::protocol::exchange;
use crate::proxy::{TestProxy, addr};
use crate::support::{Server, show, start_codis, start_redis};

/// Fills the proxy's table from another thread and waits for the fill to return; a fill that
/// does not return within a minute means a slot is wedged (a request never released it).
fn fill_returns(p: &TestProxy, slots: Vec<Slot>) {
    let router = p.proxy.router.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(router.fill(&slots));
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(ok) => assert!(ok, "fill refused"),
        Err(_) => panic!("the fill never returned: a request still holds the slot"),
    }
}

fn migrating(slot: usize, from: &Server, to: &Server, method: i64) -> Slot {
    Slot {
        id: slot as i64,
        backend_addr: addr(to),
        migrate_from: addr(from),
        forward_method: method,
        ..Slot::default()
    }
}

fn owned(slot: usize, by: &Server) -> Slot {
    Slot {
        id: slot as i64,
        backend_addr: addr(by),
        ..Slot::default()
    }
}

/// Item 9 of issue 15: framing that Redis accepts (a header's `\r` followed by any byte, a bulk
/// followed by any two bytes) on a key of a semi-async migrating slot is wrapped from the
/// parser's own spans: the reply is right, and the slot's migration can still end.
#[test]
fn lax_framing_on_a_migrating_slot_is_wrapped_and_never_wedges_it() {
    let from = start_codis(&[]);
    let to = start_codis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &from);
    let mut c = p.client();
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
    let slot = slot_of(b"k");
    fill_returns(&p, vec![migrating(slot, &from, &to, 1)]);
    let cases: &[(&[u8], &[u8])] = &[
        // A header's CR not followed by LF (the old re-parse panicked on this one).
        (b"*2\r\n$3\rXGET\r\n$1\r\nk\r\n", b"$1\r\nv\r\n"),
        // The key's header ends with CR and a byte that is not LF.
        (b"*2\r\n$3\r\nGET\r\n$1\rXk\r\n", b"$1\r\nv\r\n"),
        // Bulks followed by two bytes that are not CR LF.
        (b"*3\r\n$6\r\nAPPENDxx$1\r\nk..$1\r\nw!!", b":2\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\n\n", b"$2\r\nvw\r\n"),
    ];
    for (req, want) in cases {
        c.send_raw(req);
        let got = c.read_reply().expect("the proxy closed the session").1;
        assert_eq!(show(&got), show(want), "request {}", show(req));
    }
    // The migration ends: the fill that finishes it returns.
    fill_returns(&p, vec![owned(slot, &to)]);
    let mut other = p.client();
    assert_eq!(other.run("PING"), Frame::Simple(b"PONG".to_vec()));
}

/// The proxy frames requests exactly as Redis does (it forwards them unchanged, so it must see
/// the same arguments the server will), and its protocol errors stay one line.
#[test]
fn proxy_framing_matches_redis() {
    let redis = start_redis(&[]);
    let backend = start_redis(&[]);
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &backend);
    let cases: &[&[u8]] = &[
        b"*2\rX$4\rXECHO!!$1\r\nk\n\nPING\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\rXk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*1\r\n\r\nPING\r\n",
        b"*1\r\n$4\r\nPING\n\n*1\r\n+PING\r\n",
    ];
    for case in cases {
        let (a, closed_a) = exchange(redis.port, case);
        let (b, closed_b) = exchange(p.port, case);
        assert_eq!(show(&a), show(&b), "input {}", show(case));
        assert_eq!(closed_a, closed_b, "close behaviour for {}", show(case));
    }
}
