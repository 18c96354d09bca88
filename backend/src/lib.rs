//! The control plane of codis-rs: codis-dashboard today (codis-fe's API and codis-admin come
//! with their issues).
//!
//! # Layout
//! - [`dashboard`]: codis-dashboard (state, API, loops).
//! - [`redis`]: a small RESP client for codis-servers and sentinels.
//! - [`proxy_client`]: the client of a codis-proxy's admin API.

pub mod dashboard;
pub mod proxy_client;
pub mod redis;
