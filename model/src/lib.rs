//! Types and functions that several Codis processes share: the proxy, the server, the dashboard
//! and the web UI (compiled to wasm32). No I/O lives here.
//!
//! # Layout
//! - [`slot`]: the 1024-slot hash of Codis 3.2 (`crc32(hashtag) % 1024`).
//! - [`proxy`]: the proxy's JSON documents (model, slot table, sentinels, stats, overview).

pub mod proxy;
pub mod slot;

pub use slot::{MAX_SLOT_NUM, hash_tag, slot_of};
