//! The control plane of codis-rs: codis-dashboard today (codis-fe's API and codis-admin come
//! with their issues).
//!
//! # Layout
//! - [`dashboard`]: codis-dashboard (state, API, loops).
//! - [`redis`]: `codis-redis`, the RESP client for codis-servers and sentinels (shared crate).
//! - [`proxy_client`]: the client of a codis-proxy's admin API.

pub mod dashboard;
pub mod proxy_client;
pub use codis_redis as redis;
