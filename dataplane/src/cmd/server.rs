//! Server commands: INFO DBSIZE FLUSHDB FLUSHALL CONFIG COMMAND TIME SLOWLOG LATENCY MEMORY
//! SHUTDOWN MONITOR DEBUG SWAPDB LASTSAVE.

use super::flags::*;
use super::{CmdResult, CommandSpec, Ctx, spec};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("dbsize", 1, READONLY | FAST, (0, 0, 0), dbsize),
    spec("flushdb", -1, WRITE, (0, 0, 0), flushdb),
    spec("flushall", -1, WRITE, (0, 0, 0), flushall),
];

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowLogEntry {
    /// Entry id.
    pub id: u64,
    /// Unix seconds.
    pub time: u64,
    /// Duration in microseconds.
    pub usec: u64,
    /// Arguments (trimmed like Redis: at most 32, each at most 128 bytes).
    pub args: Vec<Vec<u8>>,
    /// Client address.
    pub addr: String,
    /// Client name.
    pub name: String,
}

/// The slow log (newest first).
#[derive(Debug, Default)]
pub struct SlowLog {
    /// Entries, newest first.
    pub entries: std::collections::VecDeque<SlowLogEntry>,
    /// Next id.
    pub next_id: u64,
}

impl SlowLog {
    /// Records a slow command.
    pub fn push(&mut self, args: &[&[u8]], usec: u64, addr: &str, name: &str, max: usize) {
        const MAX_ARGC: usize = 32;
        const MAX_STRING: usize = 128;
        let mut v: Vec<Vec<u8>> = Vec::new();
        let n = args.len().min(MAX_ARGC);
        for (i, a) in args.iter().take(n).enumerate() {
            if i == MAX_ARGC - 1 && args.len() > MAX_ARGC {
                v.push(format!("... ({} more arguments)", args.len() - MAX_ARGC + 1).into_bytes());
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                v.push(s);
            } else {
                v.push(a.to_vec());
            }
        }
        self.entries.push_front(SlowLogEntry {
            id: self.next_id,
            time: crate::store::now_ms() / 1000,
            usec,
            args: v,
            addr: addr.to_string(),
            name: name.to_string(),
        });
        self.next_id += 1;
        while self.entries.len() > max {
            self.entries.pop_back();
        }
    }
}

/// Latency monitor samples per event.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// event → samples (unix seconds, ms), oldest first, at most 160.
    pub events: std::collections::BTreeMap<String, std::collections::VecDeque<(u64, u64)>>,
}

fn dbsize(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

fn flush_mode_ok(args: &[&[u8]]) -> CmdResult {
    if args.len() > 2
        || (args.len() == 2 && !super::eq_ic(args[1], "async") && !super::eq_ic(args[1], "sync"))
    {
        return Err(super::CmdError::Syntax);
    }
    Ok(())
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    flush_mode_ok(args)?;
    let n = ctx.db().len() as u64;
    ctx.db().clear();
    ctx.dirty(n);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    flush_mode_ok(args)?;
    let n = ctx.store.total_keys() as u64;
    for db in &mut ctx.store.dbs {
        db.clear();
    }
    ctx.dirty(n + 1);
    ctx.out.ok();
    Ok(())
}
