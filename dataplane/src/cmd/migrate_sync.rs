//! Codis slot migration commands (migrate_sync); see `../shared/spec/codis-3.2.md` §4.

use super::CommandSpec;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[];
