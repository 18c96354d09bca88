//! Criterion benchmarks of the request hot path, without sockets: parsing a pipelined batch,
//! and parsing + executing GET/SET/HSET/LPUSH against a store (`cargo bench -p dataplane`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane::cmd::{Ctx, execute};
use dataplane::config::Config;
use dataplane::resp::reply::Out;
use dataplane::resp::request::{Limits, Request, RequestParser};
use dataplane::server::Shared;
use dataplane::server::client::{Client, ClientInfo};

// The server's allocator (it counts live bytes), so its cost is in the figures.
#[global_allocator]
static ALLOC: dataplane::alloc::CountingAlloc = dataplane::alloc::CountingAlloc;

fn batch(cmd: &str, n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:012}");
        let args: Vec<&[u8]> = match cmd {
            "SET" => vec![b"SET", key.as_bytes(), b"xxxxxxxxxxxxxxxx"],
            "HSET" => vec![b"HSET", b"hash", key.as_bytes(), b"xxxxxxxxxxxxxxxx"],
            "LPUSH" => vec![b"LPUSH", b"list", b"xxxxxxxxxxxxxxxx"],
            _ => vec![b"GET", key.as_bytes()],
        };
        b.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            b.extend_from_slice(a);
            b.extend_from_slice(b"\r\n");
        }
    }
    b
}

fn parse_only(c: &mut Criterion) {
    let buf = batch("SET", 16);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(16));
    g.bench_function("16 pipelined SETs", |b| {
        let mut p = RequestParser::new();
        let limits = Limits::default();
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Request::Multibulk { consumed }) = p.parse(&buf[pos..], &limits) {
                black_box(p.spans());
                pos += consumed;
            }
            pos
        })
    });
    g.finish();
}

/// A store with default config and one authenticated client (the receiver of its pushes is
/// returned to keep it open).
fn server_and_client() -> (
    std::sync::Arc<Shared>,
    Client,
    tokio::sync::mpsc::UnboundedReceiver<dataplane::server::client::Push>,
) {
    let shared = Shared::new(Config::default(), None);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let info = std::sync::Arc::new(ClientInfo::new(1, "bench".into(), "bench".into()));
    let mut client = Client::new(info, tx);
    client.authenticated = true;
    (shared, client, rx)
}

fn parse_and_execute(c: &mut Criterion) {
    let (shared, mut client, _rx) = server_and_client();
    let mut g = c.benchmark_group("execute");
    g.throughput(Throughput::Elements(16));
    for cmd in ["SET", "GET", "HSET", "LPUSH"] {
        let buf = batch(cmd, 16);
        g.bench_function(format!("16 pipelined {cmd}s"), |b| {
            let mut p = RequestParser::new();
            let limits = Limits::default();
            let mut out = Out::new();
            let mut argv: Vec<&[u8]> = Vec::with_capacity(4);
            b.iter(|| {
                out.buf.clear();
                let mut store = shared.store.lock();
                let mut pos = 0;
                while let Ok(Request::Multibulk { consumed }) = p.parse(&buf[pos..], &limits) {
                    argv.clear();
                    argv.extend(p.spans().iter().map(|&(s, e)| &buf[pos + s..pos + e]));
                    let mut ctx = Ctx {
                        store: &mut store,
                        client: &mut client,
                        out: &mut out,
                        shared: &shared,
                        now_ms: 1,
                    };
                    execute(&mut ctx, &argv);
                    pos += consumed;
                }
                out.buf.len()
            })
        });
    }
    g.finish();
}

/// Scripts as a connection runs a short one (inline, in its batch): the part of EVALSHA,
/// EVAL and FCALL that is not the network (`scripts/bench-script.sh` measures the whole).
fn scripts(c: &mut Criterion) {
    let (shared, mut client, _rx) = server_and_client();
    let body = "redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])";
    let lib = "#!lua name=bench\nredis.register_function('incrget', function(keys) \
               redis.call('INCR', keys[1]) return redis.call('GET', keys[1]) end)";
    let run = |args: &[&[u8]], client: &mut Client, out: &mut Out| {
        let mut store = shared.store.lock();
        // As the connection runs a script known to be short (inline, in its batch).
        client.script_inline = store.scripting.runs_inline(args);
        let mut ctx = Ctx {
            store: &mut store,
            client,
            out,
            shared: &shared,
            now_ms: 1,
        };
        execute(&mut ctx, args);
        client.script_inline = false;
    };
    let mut out = Out::new();
    run(
        &[b"SCRIPT", b"LOAD", body.as_bytes()],
        &mut client,
        &mut out,
    );
    run(
        &[b"FUNCTION", b"LOAD", lib.as_bytes()],
        &mut client,
        &mut out,
    );
    let sha = dataplane::script::sha1hex(body.as_bytes());
    let keys: Vec<String> = (0..16).map(|i| format!("k:{i}")).collect();
    let mut g = c.benchmark_group("script");
    g.throughput(Throughput::Elements(16));
    let forms: [(&str, [&[u8]; 2]); 3] = [
        ("EVALSHA", [b"EVALSHA", sha.as_bytes()]),
        ("EVAL", [b"EVAL", body.as_bytes()]),
        ("FCALL", [b"FCALL", b"incrget"]),
    ];
    for (name, head) in forms {
        g.bench_function(format!("16 {name} incr+get"), |b| {
            b.iter(|| {
                out.buf.clear();
                for k in &keys {
                    run(
                        &[head[0], head[1], b"1", k.as_bytes()],
                        &mut client,
                        &mut out,
                    );
                }
                out.buf.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_only, parse_and_execute, scripts);
criterion_main!(benches);
