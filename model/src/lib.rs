//! Types and functions that several Codis processes share: the proxy, the server, the dashboard
//! and the web UI (compiled to wasm32). No I/O lives here.
//!
//! # Layout
//! - [`slot`]: the 1024-slot hash of Codis 3.2 (`crc32(hashtag) % 1024`).
//! - [`proxy`]: the proxy's JSON documents (model, slot table, sentinels, stats, overview).
//! - [`units`]: byte sizes and durations in Codis's config syntax (`"32mb"`, `"30s"`).
//! - [`topom`]: the dashboard's documents (Topom, SlotMapping, Group, stats, overview).
//! - [`auth`]: token and xauth hashing (MD5 / SHA-256 of Codis's segments), so the web UI can
//!   compute the dashboard xauth; the host facts a token needs live in `codis-host`.

pub mod auth;
pub mod fe;
pub mod proxy;
pub mod slot;
pub mod topom;
pub mod units;

pub use slot::{MAX_SLOT_NUM, hash_tag, slot_of};
