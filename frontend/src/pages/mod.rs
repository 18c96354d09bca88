//! One page per file; each is reachable by its own URL (see `app.rs`).

pub(crate) mod audit;
pub(crate) mod groups;
pub(crate) mod isolation;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod products;
pub(crate) mod proxies;
pub(crate) mod sentinels;
pub(crate) mod slots;
pub(crate) mod users;
