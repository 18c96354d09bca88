//! Fuzzes what codis-proxy does with a client's bytes for a key of a migrating slot: the
//! session's request reader (`next_request`, resumable over split input), the arguments taken
//! from its spans, and the `SLOTSMGRT-EXEC-WRAPPER` request built from them. Never a panic;
//! the bytes forwarded unchanged must parse, for a backend, to exactly the arguments the proxy
//! routed by; the wrapper must parse back to `[wrapper, key, args...]`; and the wrapper reply
//! splitter must accept any backend bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use dataplane::proxy::forward::{wrap_request, wrapper_reply};
use dataplane::proxy::session::next_request;
use dataplane::resp::request::{Limits, Request, RequestParser};
use libfuzzer_sys::fuzz_target;

type Args = Vec<Vec<u8>>;

/// Parses one complete request from `bytes` as a backend would (a fresh parser; the proxy's
/// backend connections are authenticated, and an inline request of an unauthenticated client
/// may become a longer multibulk).
fn backend_view(bytes: &[u8], limits: &Limits) -> (Args, usize) {
    let limits = &Limits { authenticated: true, ..*limits };
    let mut p = RequestParser::new();
    match p.parse(bytes, limits) {
        Ok(Request::Multibulk { consumed }) => {
            let args = p.spans().iter().map(|&(s, e)| bytes[s..e].to_vec()).collect();
            (args, consumed)
        }
        other => panic!("forwarded bytes do not parse as one request: {other:?}"),
    }
}

fn run(data: &[u8], split: usize, limits: &Limits) -> Vec<Result<Args, String>> {
    let mut parser = RequestParser::new();
    let mut inbuf = BytesMut::new();
    let mut spans = Vec::new();
    let mut out = Vec::new();
    let cut = split.min(data.len());
    inbuf.extend_from_slice(&data[..cut]);
    let mut fed_all = cut == data.len();
    loop {
        match next_request(&mut parser, &mut inbuf, limits, &mut spans) {
            Ok(Some(raw)) => {
                assert!(!spans.is_empty());
                let args: Vec<&[u8]> = spans
                    .iter()
                    .map(|&(a, b)| {
                        assert!(a <= b && b <= raw.len());
                        &raw[a..b]
                    })
                    .collect();
                // What the backend sees of the bytes forwarded unchanged.
                let (seen, consumed) = backend_view(&raw, limits);
                assert_eq!(consumed, raw.len());
                assert_eq!(seen, args.iter().map(|a| a.to_vec()).collect::<Args>());
                // The wrapper for the key at position 1 (or none).
                let key: &[u8] = args.get(1).copied().unwrap_or(b"");
                let mut wrapped = BytesMut::new();
                wrap_request(&mut wrapped, key, &args);
                let unlimited = Limits { max_bulk_len: usize::MAX, authenticated: true };
                let (w, consumed) = backend_view(&wrapped, &unlimited);
                assert_eq!(consumed, wrapped.len());
                assert_eq!(w.len(), args.len() + 2);
                assert_eq!(w[0], b"SLOTSMGRT-EXEC-WRAPPER");
                assert_eq!(w[1], key);
                assert!(w[2..].iter().zip(&args).all(|(a, b)| a == b));
                out.push(Ok(w[2..].to_vec()));
            }
            Ok(None) => {
                if fed_all {
                    return out;
                }
                inbuf.extend_from_slice(&data[cut..]);
                fed_all = true;
            }
            Err(msg) => {
                out.push(Err(msg));
                return out;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_bulk_len: 1 << 20, authenticated: data.first() != Some(&b'!') };
    let whole = run(data, data.len(), &limits);
    let split = if data.is_empty() { 0 } else { data[data.len() - 1] as usize % (data.len() + 1) };
    assert_eq!(whole, run(data, split, &limits));
    // A backend's reply to the wrapper: any bytes, never a panic.
    let reply = Bytes::copy_from_slice(data);
    if let Some((_, inner)) = wrapper_reply(&reply) {
        assert!(inner.len() < reply.len());
    }
});
