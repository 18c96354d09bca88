//! The control plane of codis-rs: codis-dashboard and codis-admin (codis-fe's API comes with
//! its issue).
//!
//! # Layout
//! - [`admin`]: codis-admin, the command line.
//! - [`dashboard`]: codis-dashboard (state, API, loops).
//! - [`fe`]: codis-fe, the REST API and UI server over every product line.
//! - [`redis`]: `codis-redis`, the RESP client for codis-servers and sentinels (shared crate).
//! - [`proxy_client`]: the client of a codis-proxy's admin API.

pub mod admin;
pub mod dashboard;
pub mod fe;
pub mod proxy_client;
pub use codis_redis as redis;
