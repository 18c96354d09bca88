//! The Codis data plane: `codis-server`, a Redis 7 compatible server whose keyspace is split
//! into 1024 slots, and (later) `codis-proxy`.
//!
//! # Layout
//! - [`resp`]: the wire protocol, no sockets: request parsing ([`resp::request`]), reply
//!   writing ([`resp::reply`]) and a generic frame reader ([`resp::frame`]).
//! - [`store`]: the keyspace: 16 databases, each split into 1024 slot tables, values, expiry,
//!   eviction and memory accounting.
//! - [`cmd`]: one file per command family and the command table that dispatches to them.
//! - [`server`]: config (`redis.conf`), the listener, client connections, pub/sub and the
//!   background cycle (active expiry, stats).
//! - [`rdb`]: Redis's serialization format (DUMP / RESTORE payloads).
//! - [`proxy`]: codis-proxy: config, command line, admin HTTP API, auth, metrics exporters.
//! - [`util`]: glob matching and Redis's number parsing and formatting.

pub mod alloc;
pub mod cmd;
pub mod config;
pub mod proxy;
pub mod rdb;
pub mod resp;
pub mod script;
pub mod server;
pub mod store;
pub mod util;
