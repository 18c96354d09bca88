//! codis-proxy: a stateless RESP proxy that routes each request by its key's slot to the
//! codis-server that owns it, following the slot table the dashboard pushes.
//!
//! # Layout
//! - [`config`]: `proxy.toml` (Codis keys and defaults, size and duration syntax).
//! - [`cli`]: the command line (Codis's flags) and how it overrides the config.
//! - [`auth`]: token, xauth, advertised addresses and the proxy's identity.
//! - [`admin`]: the admin HTTP API (Codis routes, plus `/metrics` for Prometheus).
//! - [`metrics`]: the JSON, InfluxDB and statsd exporters and process usage sampling.
//! - [`dashboard`]: going online through a dashboard (`--dashboard`).
//! - [`rpc`]: the small HTTP client used to call the dashboard and the metrics servers.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod metrics;
pub mod rpc;
