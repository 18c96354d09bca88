//! Small helpers that behave exactly like Redis's C helpers.
//!
//! - [`number`]: `string2ll`, `strtod`-style parsing and `%.17g` / human-friendly formatting.
//! - [`glob`]: `stringmatchlen`, the glob matcher of KEYS, SCAN MATCH, PSUBSCRIBE.
//! - [`buffer`]: growing a read buffer once for a big value half read.

pub mod buffer;
pub mod glob;
pub mod number;
