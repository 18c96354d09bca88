//! `codis-proxy`: a stateless RESP proxy that routes each request by its key's slot to the
//! codis-server that owns it, following the slot table the dashboard pushes.
//!
//! # Layout
//! Data path:
//! - [`command`]: the command table (how each command is handled, Codis's flags).
//! - [`router`]: the 1024-slot table filled by the dashboard.
//! - [`backend`]: pipelined, shared connections to codis-servers (one pool per worker thread).
//! - [`session`]: one client: reader, reply queue, writer; [`io`]: socket reads and writes.
//! - [`forward`]: routing, replica reads, migration methods, multi-key splitting;
//!   [`merge`] combines split replies.
//! - [`local`]: commands answered by the proxy; [`tx`]: MULTI/EXEC; [`direct`]: blocking pops
//!   and subscriber mode.
//! - [`stats`]: counters; [`core`]: the running proxy, accept loop and worker threads.
//!
//! Around it:
//! - [`config`]: `proxy.toml` (Codis keys and defaults, size and duration syntax).
//! - [`cli`]: the command line (Codis's flags) and how it overrides the config.
//! - [`auth`]: token, xauth and the advertised addresses.
//! - [`admin`]: the admin HTTP API (Codis routes, plus `/metrics` for Prometheus);
//!   [`control`] implements it over the running proxy.
//! - [`metrics`]: the JSON, InfluxDB and statsd exporters and process usage sampling.
//! - [`dashboard`]: going online through a dashboard (`--dashboard`).
//! - [`rpc`]: the small HTTP client used to talk to the dashboard and the exporters' servers.
//! - [`logging`]: stderr or daily-rotated log file, level changeable at run time.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod command;
pub mod config;
pub mod control;
pub mod core;
pub mod dashboard;
pub mod direct;
pub mod forward;
pub mod io;
pub mod local;
pub use codis_host::logging;
pub mod merge;
pub mod metrics;
pub mod router;
pub mod rpc;
pub mod sentinel;
pub mod session;
pub mod stats;
pub mod tx;
