//! The RESP wire protocol, without sockets.
//!
//! - [`request`]: parses client requests (multibulk and inline) with Redis's limits and errors,
//!   and encodes them (`encode_command`: replication and AOF streams, proxy, migration).
//! - [`reply`]: [`reply::Out`], the buffer that command handlers write RESP2/RESP3 replies into.
//! - [`frame`]: reads any complete RESP2/RESP3 value (replies from a server, for tests,
//!   the proxy and the migration client).

pub mod frame;
pub mod reply;
pub mod request;
pub mod scan;
