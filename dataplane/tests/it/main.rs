//! The integration test binary of the data plane (one binary, many modules, to keep CI fast).
//! Every test starts real processes on free loopback ports.

mod aof;
mod blocking;
mod blocking_zset;
mod diff;
mod dump;
mod geo;
mod migrate_async;
mod migrate_sync;
mod persist;
mod protocol;
mod proxy;
mod proxy_audit;
mod proxy_flow;
mod proxy_refusals;
mod proxy_script;
mod pubsub;
mod repl;
mod scripting;
mod sentinel;
mod server;
mod slots;
mod support;
