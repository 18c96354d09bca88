//! COMMAND [COUNT | LIST | INFO | DOCS | GETKEYS | HELP], from our command table.
//!
//! Our table has no key specs, tips, subcommand entries or documentation, so COMMAND INFO
//! replies with Redis 7.0's shape but empty key specs, tips and subcommands; ACL categories
//! are derived from the flags and the command's family. COMMAND DOCS gives, per command, a map
//! with an empty `summary`, an empty `since`, the `group` (family) and an empty `complexity`.

use super::super::{
    CmdError, CmdResult, CommandSpec, Ctx, eq_ic, flags, registry, unknown_subcommand,
};
use super::{help_reply, sub_arity};
use crate::util::glob::glob_match;

pub(super) fn command(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let reg = registry();
    if args.len() == 1 {
        ctx.out.array(reg.commands.len());
        for c in &reg.commands {
            write_info(ctx, c);
        }
        return Ok(());
    }
    let sub = args[1];
    let n = args.len();
    if eq_ic(sub, "count") {
        if n != 2 {
            return Err(sub_arity("command", sub));
        }
        ctx.out.int(reg.commands.len() as i64);
    } else if eq_ic(sub, "info") {
        if n == 2 {
            ctx.out.array(reg.commands.len());
            for c in &reg.commands {
                write_info(ctx, c);
            }
        } else {
            ctx.out.array(n - 2);
            for name in &args[2..] {
                match reg.lookup(name) {
                    Some((_, c)) => write_info(ctx, c),
                    None => ctx.out.null(),
                }
            }
        }
    } else if eq_ic(sub, "docs") {
        let found: Vec<&CommandSpec> = if n == 2 {
            reg.commands.clone()
        } else {
            args[2..]
                .iter()
                .filter_map(|a| reg.lookup(a).map(|(_, c)| c))
                .collect()
        };
        ctx.out.map(found.len());
        for c in found {
            ctx.out.bulk(c.name.as_bytes());
            ctx.out.map(4);
            ctx.out.bulk(b"summary");
            ctx.out.bulk(b"");
            ctx.out.bulk(b"since");
            ctx.out.bulk(b"");
            ctx.out.bulk(b"group");
            ctx.out.bulk(family(c).1.as_bytes());
            ctx.out.bulk(b"complexity");
            ctx.out.bulk(b"");
        }
    } else if eq_ic(sub, "getkeys") {
        // Redis's arity for COMMAND GETKEYS is -4: a command with at least one argument.
        if n < 4 {
            return Err(sub_arity("command", sub));
        }
        let keys = get_keys(&args[2..])?;
        ctx.out.bulks(keys);
    } else if eq_ic(sub, "list") {
        let filter = match n {
            2 => None,
            5 if eq_ic(args[2], "filterby") => Some((args[3], args[4])),
            _ => return Err(CmdError::Syntax),
        };
        let names: Vec<&str> = match filter {
            None => reg.commands.iter().map(|c| c.name).collect(),
            Some((kind, val)) if eq_ic(kind, "pattern") => reg
                .commands
                .iter()
                .filter(|c| glob_match(val, c.name.as_bytes(), true))
                .map(|c| c.name)
                .collect(),
            Some((kind, val)) if eq_ic(kind, "aclcat") => reg
                .commands
                .iter()
                .filter(|c| {
                    acl_categories(c)
                        .iter()
                        .any(|cat| cat.as_bytes()[1..].eq_ignore_ascii_case(val))
                })
                .map(|c| c.name)
                .collect(),
            // No modules: a MODULE filter matches nothing.
            Some((kind, _)) if eq_ic(kind, "module") => Vec::new(),
            Some(_) => return Err(CmdError::Syntax),
        };
        ctx.out.bulks(names);
    } else if eq_ic(sub, "help") {
        if n != 2 {
            return Err(sub_arity("command", sub));
        }
        help_reply(
            ctx,
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
                "GETKEYSANDFLAGS <full-command>",
                "    Return the keys and the access flags from a full Redis command.",
            ],
        );
    } else {
        return Err(unknown_subcommand(sub, "command"));
    }
    Ok(())
}

/// The keys of a full command line, from the table's first/last/step positions.
fn get_keys<'a>(cmdline: &[&'a [u8]]) -> Result<Vec<&'a [u8]>, CmdError> {
    let Some((_, c)) = registry().lookup(cmdline[0]) else {
        return Err(CmdError::err("Invalid command specified"));
    };
    if c.first_key == 0 {
        return Err(CmdError::err("The command has no key arguments"));
    }
    let argc = cmdline.len() as i32;
    if (c.arity > 0 && argc != c.arity) || argc < -c.arity {
        return Err(CmdError::err(
            "Invalid number of arguments specified for command",
        ));
    }
    let last = if c.last_key < 0 {
        argc + c.last_key
    } else {
        c.last_key
    };
    let step = c.step.max(1);
    let mut keys = Vec::new();
    let mut i = c.first_key;
    while i <= last && i < argc {
        keys.push(cmdline[i as usize]);
        i += step;
    }
    Ok(keys)
}

/// The command's family: (ACL category, COMMAND DOCS group), from the table it came from.
fn family(c: &CommandSpec) -> (Option<&'static str>, &'static str) {
    use super::super as cmd;
    let tables: &[(&[CommandSpec], Option<&'static str>, &'static str)] = &[
        (cmd::keys::COMMANDS, Some("@keyspace"), "generic"),
        (cmd::dump::COMMANDS, Some("@keyspace"), "generic"),
        (cmd::string::COMMANDS, Some("@string"), "string"),
        (cmd::bits::COMMANDS, Some("@bitmap"), "bitmap"),
        (cmd::hash::COMMANDS, Some("@hash"), "hash"),
        (cmd::list::COMMANDS, Some("@list"), "list"),
        (cmd::set::COMMANDS, Some("@set"), "set"),
        (cmd::zset::COMMANDS, Some("@sortedset"), "sorted-set"),
        (cmd::geo::COMMANDS, Some("@geo"), "geo"),
        (cmd::hll::COMMANDS, Some("@hyperloglog"), "hyperloglog"),
        (cmd::tx::COMMANDS, Some("@transaction"), "transactions"),
        (cmd::pubsub::COMMANDS, Some("@pubsub"), "pubsub"),
        (cmd::connection::COMMANDS, Some("@connection"), "connection"),
        (cmd::slots::COMMANDS, None, "codis"),
    ];
    for (t, cat, group) in tables {
        if t.iter().any(|x| std::ptr::eq(x, c)) {
            return (*cat, group);
        }
    }
    // The server family: DBSIZE and the FLUSH commands are keyspace commands in Redis.
    match c.name {
        "dbsize" | "flushdb" | "flushall" | "swapdb" => (Some("@keyspace"), "server"),
        _ => (None, "server"),
    }
}

/// ACL categories, in Redis's category order (keyspace, read, write, <type>, pubsub, admin,
/// fast/slow, blocking, dangerous, connection, transaction).
fn acl_categories(c: &CommandSpec) -> Vec<&'static str> {
    let (fam, _) = family(c);
    let f = c.flags;
    let mut v = Vec::new();
    if fam == Some("@keyspace") {
        v.push("@keyspace");
    }
    if f & flags::READONLY != 0 {
        v.push("@read");
    }
    if f & flags::WRITE != 0 {
        v.push("@write");
    }
    if let Some(t) =
        fam.filter(|t| !matches!(*t, "@keyspace" | "@pubsub" | "@connection" | "@transaction"))
    {
        v.push(t);
    }
    if f & flags::PUBSUB != 0 || fam == Some("@pubsub") {
        v.push("@pubsub");
    }
    if f & flags::ADMIN != 0 {
        v.push("@admin");
    }
    v.push(if f & flags::FAST != 0 {
        "@fast"
    } else {
        "@slow"
    });
    if f & flags::BLOCKING != 0 {
        v.push("@blocking");
    }
    if f & flags::ADMIN != 0 || matches!(c.name, "flushdb" | "flushall" | "swapdb" | "keys") {
        v.push("@dangerous");
    }
    if let Some(t) = fam.filter(|t| matches!(*t, "@connection" | "@transaction")) {
        v.push(t);
    }
    v
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands.
fn write_info(ctx: &mut Ctx<'_>, c: &CommandSpec) {
    let o = &mut *ctx.out;
    o.array(10);
    o.bulk(c.name.as_bytes());
    o.int(c.arity as i64);
    let names = flags::names(c.flags);
    o.set(names.len());
    for n in names {
        o.simple(n);
    }
    o.int(c.first_key as i64);
    o.int(c.last_key as i64);
    o.int(c.step as i64);
    let cats = acl_categories(c);
    o.set(cats.len());
    for cat in cats {
        o.simple(cat);
    }
    o.set(0);
    o.array(0);
    o.array(0);
}
