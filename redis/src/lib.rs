//! The Redis protocol as the control plane speaks it: a small async RESP2 client
//! ([`RedisClient`]: the dashboard's calls to codis-servers and sentinels) and the
//! redis-sentinel watcher ([`sentinel`]) that codis-proxy and codis-dashboard both run. Not on
//! any hot path; depends on tokio only.
//!
//! # Layout
//! - `client.rs`: [`RedisClient`], [`Value`], [`RedisError`], INFO parsing.
//! - [`sentinel`]: `+switch-master` subscriptions and `SENTINEL masters` by majority.

mod client;
pub mod sentinel;

pub use client::{RedisClient, RedisError, Value, encode, parse_info};
