//! codis-fe's web console: one page over every product line, built on codis-fe's REST API and
//! nothing else (whatever the page does, a tool can do with the same call).
//!
//! A Leptos 0.8 client-side app compiled to `wasm32-unknown-unknown` and bundled by `xtask/`
//! (wasm-bindgen, wasm-opt, gzip); codis-fe serves it from `--assets-dir`.
//!
//! # Layout
//! - [`app`]: the route table, the header and the login guard.
//! - [`api`]: the only place that sends requests; speaks `codis_model::fe` types.
//! - [`session`]: who is logged in and what their roles allow.
//! - [`format`]: numbers, bytes, times and slot ranges for people.
//! - `pages/`: one file per page; `components/`: tables, dialogs and action buttons, charts,
//!   the 1024-slot map, progress bars and the polling helper.

// `#[component]` turns each `pub(crate) fn` into a `pub` function and props struct; nothing here
// is exported (this is a binary), so the lint only reports the macro's expansion.
#![allow(unreachable_pub)]

mod api;
mod app;
mod components;
mod format;
mod json;
mod pages;
mod session;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
