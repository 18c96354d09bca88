//! String commands.

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, spec};
use crate::store::{SmallBytes, Value};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READONLY | FAST, (1, 1, 1), get),
    spec("set", -3, WRITE | DENYOOM, (1, 1, 1), set),
];

fn get(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.get(args[1], now) {
        None => out.null(),
        Some(Value::Str(s)) => out.bulk(s),
        Some(_) => return Err(CmdError::WrongType),
    }
    Ok(())
}

fn set(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() != 3 {
        return Err(CmdError::Syntax);
    }
    ctx.db().set(args[1], Value::Str(SmallBytes::new(args[2])));
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}
