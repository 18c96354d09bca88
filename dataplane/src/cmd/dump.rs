//! DUMP and RESTORE, with payloads byte-compatible with Redis 7.0's.

use super::CommandSpec;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[];
