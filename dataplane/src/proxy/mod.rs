//! `codis-proxy`: speaks RESP to clients and routes each request by slot to the codis-server
//! that owns it, as Codis 3.2's proxy does.
//!
//! - [`command`]: the command table (how each command is handled, Codis's flags).
//! - [`router`]: the 1024-slot table filled by the dashboard.
//! - [`backend`]: pipelined, shared connections to codis-servers (one pool per worker thread).
//! - [`session`]: one client: reader, reply queue, writer.
//! - [`forward`]: routing, replica reads, migration methods, multi-key splitting;
//!   [`merge`] combines split replies.
//! - [`local`]: commands answered by the proxy; [`tx`]: MULTI/EXEC; [`direct`]: blocking pops
//!   and subscriber mode.
//! - [`stats`]: counters; [`core`]: the running proxy, accept loop and worker threads.

pub mod backend;
pub mod command;
pub mod core;
pub mod direct;
pub mod forward;
pub mod local;
pub mod merge;
pub mod router;
pub mod session;
pub mod stats;
pub mod tx;
