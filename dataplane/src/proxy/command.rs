//! The proxy's command table: for each command, how the proxy handles it (forward by key,
//! answer locally, split across slots, refuse...) and Codis's routing flags.
//!
//! Names follow Codis 3.2's `pkg/proxy/mapper.go` table (flags `Write`, `MasterOnly`,
//! `MayWrite`, `NotAllow`), extended to every command of Redis 7.0 and of codis-server, and
//! with the commands we support where Codis refused them (MULTI/EXEC, pub/sub, blocking pops,
//! MSETNX within one slot). The table is complete: a command not in it is refused (Codis
//! forwarded it by its first key, which let any client reach a backend's internal and admin
//! commands). `tests/it/proxy_audit.rs` checks it against `COMMAND` of Redis and
//! codis-server and against the table in docs/COMPATIBILITY.md.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The command writes.
pub const WRITE: u8 = 1;
/// The command reads but must go to the master (cursors, slot scans).
pub const MASTER_ONLY: u8 = 2;
/// The command may write (scripts).
pub const MAY_WRITE: u8 = 4;
/// The command is refused by the proxy.
pub const NOT_ALLOW: u8 = 8;
/// The command is a Redis container command (`CONFIG GET`, `XINFO STREAM`...): Redis names
/// it `name|subcommand` in its errors.
pub const CONTAINER: u8 = 16;

/// How the proxy handles a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Forwarded to the master (or a replica, for reads) of the slot of its keys, found by
    /// these key specs (Redis's, see [`KeySpec`]). Every key must lie in one slot (else
    /// `CROSSSLOT`, as Redis Cluster); no key at all means slot 0.
    Forward(&'static [KeySpec]),
    /// Refused with `command '<OP>' is not allowed`.
    Refuse,
    /// A container whose subcommands are handled differently: the entry `NAME|SUB` decides
    /// (see [`resolve`]).
    Subcommand,
    /// `PING [addr|message]`.
    Ping,
    /// `ECHO message`.
    Echo,
    /// `QUIT`.
    Quit,
    /// `RESET`: the proxy resets the session (never sent to a backend).
    Reset,
    /// `SELECT db`.
    Select,
    /// `AUTH [user] password`.
    Auth,
    /// `HELLO [protover ...]`.
    Hello,
    /// `INFO [addr|section]`.
    Info,
    /// `SLOTSINFO addr`.
    SlotsInfo,
    /// `SLOTSSCAN slot cursor ...`: forwarded to the master of the slot named by argument 1.
    SlotsScan,
    /// `SLOTSMAPPING [slot]`.
    SlotsMapping,
    /// `SLOTSHASHKEY key...`.
    SlotsHashKey,
    /// A multi-key command split by key and merged.
    Split(SplitKind),
    /// `MSETNX`: forwarded when every key lies in one slot, refused otherwise.
    SameSlot,
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// A blocking pop whose keys start at position 1 and end before the last argument
    /// (BLPOP, BRPOP, BZPOPMIN, BZPOPMAX), or at fixed positions (BRPOPLPUSH, BLMOVE).
    Blocking(BlockingKeys),
    /// SUBSCRIBE / PSUBSCRIBE: the session becomes a subscriber.
    Subscribe,
    /// UNSUBSCRIBE / PUNSUBSCRIBE outside subscriber mode.
    Unsubscribe,
    /// PUBLISH / PUBSUB: sent to the pub/sub server (the master of slot 0).
    PubSub,
    /// A SCRIPT / FUNCTION subcommand about the scripts or libraries a server holds: sent to
    /// every group's master, the replies combined as the kind says.
    Broadcast(BroadcastKind),
}

/// How the replies of a command sent to every group's master are combined (Redis Cluster's
/// `request_policy:all_shards` with its `response_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastKind {
    /// SCRIPT LOAD / FLUSH, FUNCTION LOAD / DELETE / FLUSH / RESTORE: the first error if any
    /// group failed, else the reply every group gave (an error when they differ).
    AllSucceeded,
    /// SCRIPT EXISTS: per sha, 1 only when every group has the script.
    LogicalAnd,
    /// SCRIPT KILL / FUNCTION KILL: `OK` when some group stopped a script; else the first
    /// error that is not `NOTBUSY`; else `NOTBUSY`. Sent on connections of their own (a
    /// shared connection may be waiting for the running script's reply).
    OneSucceeded,
    /// FUNCTION STATS: the reply of a group running a script, else the first group's.
    Stats,
    /// FUNCTION LIST / DUMP, SCRIPT HELP / FUNCTION HELP: the first group's reply (every
    /// group holds the same libraries when they were loaded through the proxy).
    First,
}

/// Where the keys of a blocking command are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingKeys {
    /// Arguments 1 .. len-1 (the last is the timeout).
    AllButLast,
    /// Arguments 1 and 2 (source, destination).
    FirstTwo,
    /// `numkeys` at argument 2, keys after it (BLMPOP / BZMPOP `timeout numkeys key...`).
    NumKeysAt2,
}

/// Where some of a command's keys are, after Redis's key specs (`COMMAND INFO`): a command's
/// keys are those every spec of its list finds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// Arguments `index` to `index + last` (`last` ≥ 0) or to `argc + last` (`last` < 0, -1
    /// being the last argument), every `step` (Redis: `index` search, `range` keys).
    Range { index: u8, last: i8, step: u8 },
    /// The number of keys at argument `index`, the keys right after it (Redis: `index` search,
    /// `keynum` keys with keynumidx 0, firstkey 1, keystep 1).
    NumKeys { index: u8 },
    /// The argument after the first `keyword` found from argument `from` on (Redis: `keyword`
    /// search, one key).
    Keyword { keyword: &'static str, from: u8 },
    /// SORT's `STORE` destination, found by walking SORT's options as Redis parses them (Redis
    /// marks it `unknown`).
    SortStore,
}

const fn range(index: u8, last: i8, step: u8) -> KeySpec {
    KeySpec::Range { index, last, step }
}

/// No key.
const NO_KEY: &[KeySpec] = &[];
/// The key at argument 1.
const K1: &[KeySpec] = &[range(1, 0, 1)];
/// The key at argument 2 (subcommand at 1, or `numkeys`-less second position).
const K2: &[KeySpec] = &[range(2, 0, 1)];
/// Two keys: source and destination (or the reverse).
const K1_K2: &[KeySpec] = &[range(1, 0, 1), range(2, 0, 1)];
/// Every argument from 1.
const K_ALL: &[KeySpec] = &[range(1, -1, 1)];
/// A destination then every argument from 2.
const K1_REST: &[KeySpec] = &[range(1, 0, 1), range(2, -1, 1)];
/// `LCS key1 key2`.
const K_LCS: &[KeySpec] = &[range(1, 1, 1)];
/// `numkeys` at argument 1.
const NUMKEYS1: &[KeySpec] = &[KeySpec::NumKeys { index: 1 }];
/// `numkeys` at argument 2 (scripts).
const NUMKEYS2: &[KeySpec] = &[KeySpec::NumKeys { index: 2 }];
/// A destination, then `numkeys` at argument 2.
const K1_NUMKEYS2: &[KeySpec] = &[range(1, 0, 1), KeySpec::NumKeys { index: 2 }];
/// GEORADIUS: the key, and the `STORE` / `STOREDIST` destinations.
const K_GEORADIUS: &[KeySpec] = &[
    range(1, 0, 1),
    KeySpec::Keyword {
        keyword: "STORE",
        from: 6,
    },
    KeySpec::Keyword {
        keyword: "STOREDIST",
        from: 6,
    },
];
/// GEORADIUSBYMEMBER: the key, and the `STORE` / `STOREDIST` destinations.
const K_GEORADIUSBYMEMBER: &[KeySpec] = &[
    range(1, 0, 1),
    KeySpec::Keyword {
        keyword: "STORE",
        from: 5,
    },
    KeySpec::Keyword {
        keyword: "STOREDIST",
        from: 5,
    },
];
/// SORT: the key and its `STORE` destination.
const K_SORT: &[KeySpec] = &[range(1, 0, 1), KeySpec::SortStore];

/// The argument positions of the keys of a request of `argc` arguments (`arg(i)` is argument
/// `i`), by `specs`. A malformed request (a bad `numkeys`) yields the keys found before it:
/// the backend answers it with Redis's error.
pub fn key_positions<'a>(
    specs: &[KeySpec],
    argc: usize,
    arg: impl Fn(usize) -> &'a [u8],
) -> Vec<usize> {
    let mut out = Vec::new();
    for spec in specs {
        match *spec {
            KeySpec::Range { index, last, step } => {
                let index = index as usize;
                if index >= argc {
                    continue;
                }
                let end = if last >= 0 {
                    index + last as usize
                } else {
                    match argc.checked_sub(last.unsigned_abs() as usize) {
                        Some(e) => e,
                        None => continue,
                    }
                };
                let end = end.min(argc - 1);
                out.extend((index..=end).step_by(step.max(1) as usize));
            }
            KeySpec::NumKeys { index } => {
                let index = index as usize;
                if index >= argc {
                    continue;
                }
                match crate::util::number::parse_i64(arg(index)) {
                    Some(n) if n > 0 && (n as u64) < (argc - index) as u64 => {
                        out.extend(index + 1..=index + n as usize)
                    }
                    _ => {}
                }
            }
            KeySpec::Keyword { keyword, from } => {
                if let Some(i) = (from as usize..argc.saturating_sub(1))
                    .find(|&i| arg(i).eq_ignore_ascii_case(keyword.as_bytes()))
                {
                    out.push(i + 1);
                }
            }
            KeySpec::SortStore => {
                let mut store = None;
                walk_sort_options(argc, &arg, |opt, j| {
                    if opt == SortOption::Store {
                        store = Some(j + 1);
                    }
                    true
                });
                out.extend(store);
            }
        }
    }
    out
}

/// The positions of the keys of request `args` (name first) by Redis's key specs, when this
/// table forwards the command by key ([`Handling::Forward`]); empty otherwise. The server
/// uses it too: its own table has only Redis's legacy first/last/step range, which misses
/// SORT's `STORE` destination and the keys after a `numkeys`.
pub fn request_key_positions(args: &[&[u8]]) -> Vec<usize> {
    let Some(name) = args.first() else {
        return Vec::new();
    };
    match resolve(name, args.get(1).copied()) {
        Some(CommandInfo {
            handling: Forward(specs),
            ..
        }) => key_positions(specs, args.len(), |i| args[i]),
        _ => Vec::new(),
    }
}

/// An option of SORT, as Redis parses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortOption {
    /// ASC, DESC, ALPHA.
    Flag,
    /// `LIMIT offset count`.
    Limit,
    /// `STORE destination`.
    Store,
    /// `BY pattern`.
    By,
    /// `GET pattern`.
    Get,
}

/// Walks SORT's options from argument 2 as Redis does, calling `visit(option, position)` until
/// it returns false; stops at the first argument Redis would reject (a syntax error the
/// backend reports).
fn walk_sort_options<'a>(
    argc: usize,
    arg: &impl Fn(usize) -> &'a [u8],
    mut visit: impl FnMut(SortOption, usize) -> bool,
) {
    let mut j = 2;
    while j < argc {
        let a = arg(j).to_ascii_lowercase();
        let left = argc - j - 1;
        let (opt, width) = match &a[..] {
            b"asc" | b"desc" | b"alpha" => (SortOption::Flag, 1),
            b"limit" if left >= 2 => (SortOption::Limit, 3),
            b"store" if left >= 1 => (SortOption::Store, 2),
            b"by" if left >= 1 => (SortOption::By, 2),
            b"get" if left >= 1 => (SortOption::Get, 2),
            _ => return,
        };
        if !visit(opt, j) {
            return;
        }
        j += width;
    }
}

/// The error for an option the proxy refuses in a request of a command it forwards (`None`:
/// the request may go): SORT's `BY pattern` and `GET`, which read keys of other slots (Redis
/// Cluster's errors), and COPY's `DB`, which would write another database than the session's.
pub fn refused_option<'a>(
    info: &CommandInfo,
    argc: usize,
    arg: impl Fn(usize) -> &'a [u8],
) -> Option<&'static str> {
    match info.name {
        "SORT" | "SORT_RO" => {
            let mut denied = None;
            walk_sort_options(argc, &arg, |opt, j| {
                denied = match opt {
                    // `BY` without `*` only means "do not sort".
                    SortOption::By if arg(j + 1).contains(&b'*') => {
                        Some("ERR BY option of SORT denied in Cluster mode.")
                    }
                    SortOption::Get => Some("ERR GET option of SORT denied in Cluster mode."),
                    _ => None,
                };
                denied.is_none()
            });
            denied
        }
        "COPY" => (3..argc)
            .any(|i| arg(i).eq_ignore_ascii_case(b"DB"))
            .then_some("ERR handle request, COPY's DB option is not allowed"),
        _ => None,
    }
}

/// How a split command's sub-replies are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// `MGET k...`: one array of every sub-reply's single element.
    Mget,
    /// `MSET k v ...`: the last status reply.
    Mset,
    /// `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: the sum of integer replies.
    Sum,
}

/// One entry of the table.
#[derive(Debug)]
pub struct CommandInfo {
    /// Upper-case name, as reported in stats (`opstr`).
    pub name: &'static str,
    /// Codis's flags.
    pub flags: u8,
    /// How the proxy handles it.
    pub handling: Handling,
    /// Index in [`table`], used for per-command statistics.
    pub index: usize,
}

impl CommandInfo {
    /// True when the command may be served by a replica.
    pub fn is_read_only(&self) -> bool {
        self.flags & (WRITE | MAY_WRITE | MASTER_ONLY | NOT_ALLOW) == 0
    }
}

use Handling::*;

const F: Handling = Forward(K1);

/// `(name, flags, handling)` for every known command.
const COMMANDS: &[(&str, u8, Handling)] = &[
    // Answered by the proxy.
    ("AUTH", 0, Auth),
    ("ECHO", 0, Echo),
    ("HELLO", 0, Hello),
    ("INFO", 0, Info),
    ("PING", 0, Ping),
    ("QUIT", 0, Quit),
    ("RESET", 0, Reset),
    ("SELECT", 0, Select),
    ("SLOTSHASHKEY", 0, SlotsHashKey),
    ("SLOTSINFO", MASTER_ONLY, SlotsInfo),
    ("SLOTSMAPPING", 0, SlotsMapping),
    ("SLOTSSCAN", MASTER_ONLY, SlotsScan),
    // Split across slots.
    ("MGET", 0, Split(SplitKind::Mget)),
    ("MSET", WRITE, Split(SplitKind::Mset)),
    ("DEL", WRITE, Split(SplitKind::Sum)),
    ("UNLINK", WRITE, Split(SplitKind::Sum)),
    ("EXISTS", 0, Split(SplitKind::Sum)),
    ("TOUCH", WRITE, Split(SplitKind::Sum)),
    ("MSETNX", WRITE, SameSlot),
    // Session state, supported when every key lies in one slot.
    ("MULTI", 0, Multi),
    ("EXEC", WRITE, Exec),
    ("DISCARD", 0, Discard),
    ("BLPOP", WRITE, Blocking(BlockingKeys::AllButLast)),
    ("BRPOP", WRITE, Blocking(BlockingKeys::AllButLast)),
    ("BZPOPMIN", WRITE, Blocking(BlockingKeys::AllButLast)),
    ("BZPOPMAX", WRITE, Blocking(BlockingKeys::AllButLast)),
    ("BRPOPLPUSH", WRITE, Blocking(BlockingKeys::FirstTwo)),
    ("BLMOVE", WRITE, Blocking(BlockingKeys::FirstTwo)),
    ("BLMPOP", WRITE, Blocking(BlockingKeys::NumKeysAt2)),
    ("BZMPOP", WRITE, Blocking(BlockingKeys::NumKeysAt2)),
    ("SUBSCRIBE", 0, Subscribe),
    ("PSUBSCRIBE", 0, Subscribe),
    ("UNSUBSCRIBE", 0, Unsubscribe),
    ("PUNSUBSCRIBE", 0, Unsubscribe),
    ("PUBLISH", WRITE, PubSub),
    ("PUBSUB", CONTAINER, PubSub),
    // Refused: Codis's NotAllow list (less what we support), plus Redis 7 commands that would
    // change the state of a shared backend connection or of a whole server.
    ("ACL", NOT_ALLOW | CONTAINER, Refuse),
    ("ASKING", NOT_ALLOW, Refuse),
    ("BGREWRITEAOF", NOT_ALLOW, Refuse),
    ("BGSAVE", NOT_ALLOW, Refuse),
    ("BITOP", NOT_ALLOW, Refuse),
    ("CLIENT", NOT_ALLOW | CONTAINER, Refuse),
    ("CLUSTER", NOT_ALLOW | CONTAINER, Refuse),
    ("CONFIG", NOT_ALLOW | CONTAINER, Refuse),
    ("DBSIZE", NOT_ALLOW, Refuse),
    ("DEBUG", NOT_ALLOW, Refuse),
    ("FAILOVER", NOT_ALLOW, Refuse),
    ("FLUSHALL", NOT_ALLOW, Refuse),
    ("FLUSHDB", NOT_ALLOW, Refuse),
    ("FUNCTION", CONTAINER, Subcommand),
    ("HOST:", NOT_ALLOW, Refuse),
    ("KEYS", NOT_ALLOW, Refuse),
    ("LASTSAVE", NOT_ALLOW, Refuse),
    ("LATENCY", NOT_ALLOW | CONTAINER, Refuse),
    ("LOLWUT", NOT_ALLOW, Refuse),
    ("MIGRATE", NOT_ALLOW, Refuse),
    ("MODULE", NOT_ALLOW | CONTAINER, Refuse),
    ("MONITOR", NOT_ALLOW, Refuse),
    ("MOVE", NOT_ALLOW, Refuse),
    ("OBJECT", NOT_ALLOW | CONTAINER, Refuse),
    ("PFDEBUG", NOT_ALLOW, Refuse),
    ("PFSELFTEST", NOT_ALLOW, Refuse),
    ("POST", NOT_ALLOW, Refuse),
    ("PSYNC", NOT_ALLOW, Refuse),
    ("RANDOMKEY", NOT_ALLOW, Refuse),
    ("READONLY", NOT_ALLOW, Refuse),
    ("READWRITE", NOT_ALLOW, Refuse),
    ("RENAME", NOT_ALLOW, Refuse),
    ("RENAMENX", NOT_ALLOW, Refuse),
    ("REPLCONF", NOT_ALLOW, Refuse),
    ("REPLICAOF", NOT_ALLOW, Refuse),
    ("RESTORE", NOT_ALLOW, Refuse),
    // Reveals the addresses of a group's master and replicas.
    ("ROLE", NOT_ALLOW, Refuse),
    ("RESTORE-ASKING", NOT_ALLOW, Refuse),
    ("SAVE", NOT_ALLOW, Refuse),
    ("SCAN", NOT_ALLOW, Refuse),
    ("SCRIPT", CONTAINER, Subcommand),
    ("SHUTDOWN", NOT_ALLOW, Refuse),
    ("SLAVEOF", NOT_ALLOW, Refuse),
    ("SLOWLOG", NOT_ALLOW | CONTAINER, Refuse),
    ("SPUBLISH", NOT_ALLOW, Refuse),
    ("SSUBSCRIBE", NOT_ALLOW, Refuse),
    ("SUNSUBSCRIBE", NOT_ALLOW, Refuse),
    ("SWAPDB", NOT_ALLOW, Refuse),
    ("SYNC", NOT_ALLOW, Refuse),
    ("TIME", NOT_ALLOW, Refuse),
    ("UNWATCH", NOT_ALLOW, Refuse),
    ("WAIT", NOT_ALLOW, Refuse),
    ("WATCH", NOT_ALLOW, Refuse),
    // Stream reads name their keys after `STREAMS` and may block a shared connection.
    ("XREAD", NOT_ALLOW, Refuse),
    ("XREADGROUP", NOT_ALLOW, Refuse),
    // codis-server's internal commands: slot checks and migration (the dashboard and the
    // proxy send them on connections of their own, never for a client).
    ("SLOTSCHECK", NOT_ALLOW, Refuse),
    ("SLOTSDEL", NOT_ALLOW, Refuse),
    ("SLOTSMGRT-ASYNC-CANCEL", NOT_ALLOW, Refuse),
    ("SLOTSMGRT-ASYNC-FENCE", NOT_ALLOW, Refuse),
    ("SLOTSMGRT-ASYNC-STATUS", NOT_ALLOW, Refuse),
    ("SLOTSMGRT-EXEC-WRAPPER", NOT_ALLOW, Refuse),
    ("SLOTSMGRTONE", NOT_ALLOW, Refuse),
    ("SLOTSMGRTONE-ASYNC", NOT_ALLOW, Refuse),
    ("SLOTSMGRTONE-ASYNC-DUMP", NOT_ALLOW, Refuse),
    ("SLOTSMGRTSLOT", NOT_ALLOW, Refuse),
    ("SLOTSMGRTSLOT-ASYNC", NOT_ALLOW, Refuse),
    ("SLOTSMGRTTAGONE", NOT_ALLOW, Refuse),
    ("SLOTSMGRTTAGONE-ASYNC", NOT_ALLOW, Refuse),
    ("SLOTSMGRTTAGONE-ASYNC-DUMP", NOT_ALLOW, Refuse),
    ("SLOTSMGRTTAGSLOT", NOT_ALLOW, Refuse),
    ("SLOTSMGRTTAGSLOT-ASYNC", NOT_ALLOW, Refuse),
    ("SLOTSRESTORE", NOT_ALLOW, Refuse),
    ("SLOTSRESTORE-ASYNC", NOT_ALLOW, Refuse),
    ("SLOTSRESTORE-ASYNC-ACK", NOT_ALLOW, Refuse),
    ("SLOTSRESTORE-ASYNC-AUTH", NOT_ALLOW, Refuse),
    ("SLOTSRESTORE-ASYNC-SELECT", NOT_ALLOW, Refuse),
    // MEMORY: only `MEMORY USAGE key` is about a key.
    ("MEMORY", CONTAINER, Subcommand),
    ("MEMORY|USAGE", 0, Forward(K2)),
    ("MEMORY|DOCTOR", NOT_ALLOW, Refuse),
    ("MEMORY|HELP", NOT_ALLOW, Refuse),
    ("MEMORY|MALLOC-STATS", NOT_ALLOW, Refuse),
    ("MEMORY|PURGE", NOT_ALLOW, Refuse),
    ("MEMORY|STATS", NOT_ALLOW, Refuse),
    // Scripts and function libraries live on every group's master.
    (
        "SCRIPT|LOAD",
        MAY_WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "SCRIPT|FLUSH",
        MAY_WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "SCRIPT|EXISTS",
        MASTER_ONLY,
        Broadcast(BroadcastKind::LogicalAnd),
    ),
    (
        "SCRIPT|KILL",
        MASTER_ONLY,
        Broadcast(BroadcastKind::OneSucceeded),
    ),
    ("SCRIPT|HELP", 0, Broadcast(BroadcastKind::First)),
    // Would put a shared backend connection in debugging mode.
    ("SCRIPT|DEBUG", NOT_ALLOW, Refuse),
    (
        "FUNCTION|LOAD",
        WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "FUNCTION|DELETE",
        WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "FUNCTION|FLUSH",
        WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "FUNCTION|RESTORE",
        WRITE,
        Broadcast(BroadcastKind::AllSucceeded),
    ),
    (
        "FUNCTION|LIST",
        MASTER_ONLY,
        Broadcast(BroadcastKind::First),
    ),
    (
        "FUNCTION|DUMP",
        MASTER_ONLY,
        Broadcast(BroadcastKind::First),
    ),
    (
        "FUNCTION|STATS",
        MASTER_ONLY,
        Broadcast(BroadcastKind::Stats),
    ),
    (
        "FUNCTION|KILL",
        MASTER_ONLY,
        Broadcast(BroadcastKind::OneSucceeded),
    ),
    ("FUNCTION|HELP", 0, Broadcast(BroadcastKind::First)),
    // Master-only reads.
    ("HSCAN", MASTER_ONLY, F),
    ("SSCAN", MASTER_ONLY, F),
    ("ZSCAN", MASTER_ONLY, F),
    // Writes.
    ("APPEND", WRITE, F),
    ("BITFIELD", WRITE, F),
    ("COPY", WRITE, Forward(K1_K2)),
    ("DECR", WRITE, F),
    ("DECRBY", WRITE, F),
    ("EVAL", WRITE, Forward(NUMKEYS2)),
    ("EVALSHA", WRITE, Forward(NUMKEYS2)),
    ("EXPIRE", WRITE, F),
    ("EXPIREAT", WRITE, F),
    ("FCALL", WRITE, Forward(NUMKEYS2)),
    ("GEOADD", WRITE, F),
    ("GEORADIUS", WRITE, Forward(K_GEORADIUS)),
    ("GEORADIUSBYMEMBER", WRITE, Forward(K_GEORADIUSBYMEMBER)),
    ("GEOSEARCHSTORE", WRITE, Forward(K1_K2)),
    ("GETDEL", WRITE, F),
    ("GETEX", WRITE, F),
    ("GETSET", WRITE, F),
    ("HDEL", WRITE, F),
    ("HINCRBY", WRITE, F),
    ("HINCRBYFLOAT", WRITE, F),
    ("HMSET", WRITE, F),
    ("HSET", WRITE, F),
    ("HSETNX", WRITE, F),
    ("INCR", WRITE, F),
    ("INCRBY", WRITE, F),
    ("INCRBYFLOAT", WRITE, F),
    ("LINSERT", WRITE, F),
    ("LMOVE", WRITE, Forward(K1_K2)),
    ("LMPOP", WRITE, Forward(NUMKEYS1)),
    ("LPOP", WRITE, F),
    ("LPUSH", WRITE, F),
    ("LPUSHX", WRITE, F),
    ("LREM", WRITE, F),
    ("LSET", WRITE, F),
    ("LTRIM", WRITE, F),
    ("PERSIST", WRITE, F),
    ("PEXPIRE", WRITE, F),
    ("PEXPIREAT", WRITE, F),
    ("PFADD", WRITE, F),
    ("PFMERGE", WRITE, Forward(K1_REST)),
    ("PSETEX", WRITE, F),
    ("RPOP", WRITE, F),
    ("RPOPLPUSH", WRITE, Forward(K1_K2)),
    ("RPUSH", WRITE, F),
    ("RPUSHX", WRITE, F),
    ("SADD", WRITE, F),
    ("SDIFFSTORE", WRITE, Forward(K1_REST)),
    ("SET", WRITE, F),
    ("SETBIT", WRITE, F),
    ("SETEX", WRITE, F),
    ("SETNX", WRITE, F),
    ("SETRANGE", WRITE, F),
    ("SINTERSTORE", WRITE, Forward(K1_REST)),
    ("SMOVE", WRITE, Forward(K1_K2)),
    ("SORT", WRITE, Forward(K_SORT)),
    ("SPOP", WRITE, F),
    ("SREM", WRITE, F),
    ("SUNIONSTORE", WRITE, Forward(K1_REST)),
    ("XACK", WRITE, F),
    ("XADD", WRITE, F),
    ("XAUTOCLAIM", WRITE, F),
    ("XCLAIM", WRITE, F),
    ("XDEL", WRITE, F),
    ("XGROUP", WRITE | CONTAINER, Forward(K2)),
    ("XSETID", WRITE, F),
    ("XTRIM", WRITE, F),
    ("ZADD", WRITE, F),
    ("ZDIFFSTORE", WRITE, Forward(K1_NUMKEYS2)),
    ("ZINCRBY", WRITE, F),
    ("ZINTERSTORE", WRITE, Forward(K1_NUMKEYS2)),
    ("ZMPOP", WRITE, Forward(NUMKEYS1)),
    ("ZPOPMAX", WRITE, F),
    ("ZPOPMIN", WRITE, F),
    ("ZRANGESTORE", WRITE, Forward(K1_K2)),
    ("ZREM", WRITE, F),
    ("ZREMRANGEBYLEX", WRITE, F),
    ("ZREMRANGEBYRANK", WRITE, F),
    ("ZREMRANGEBYSCORE", WRITE, F),
    ("ZUNIONSTORE", WRITE, Forward(K1_NUMKEYS2)),
    // Reads.
    ("BITCOUNT", 0, F),
    ("BITFIELD_RO", 0, F),
    ("BITPOS", 0, F),
    ("COMMAND", CONTAINER, Forward(NO_KEY)),
    ("DUMP", 0, F),
    ("EVAL_RO", 0, Forward(NUMKEYS2)),
    ("EVALSHA_RO", 0, Forward(NUMKEYS2)),
    ("EXPIRETIME", 0, F),
    ("FCALL_RO", 0, Forward(NUMKEYS2)),
    ("GEODIST", 0, F),
    ("GEOHASH", 0, F),
    ("GEOPOS", 0, F),
    ("GEORADIUS_RO", 0, F),
    ("GEORADIUSBYMEMBER_RO", 0, F),
    ("GEOSEARCH", 0, F),
    ("GET", 0, F),
    ("GETBIT", 0, F),
    ("GETRANGE", 0, F),
    ("HEXISTS", 0, F),
    ("HGET", 0, F),
    ("HGETALL", 0, F),
    ("HKEYS", 0, F),
    ("HLEN", 0, F),
    ("HMGET", 0, F),
    ("HRANDFIELD", 0, F),
    ("HSTRLEN", 0, F),
    ("HVALS", 0, F),
    ("LCS", 0, Forward(K_LCS)),
    ("LINDEX", 0, F),
    ("LLEN", 0, F),
    ("LPOS", 0, F),
    ("LRANGE", 0, F),
    ("PEXPIRETIME", 0, F),
    ("PFCOUNT", 0, Forward(K_ALL)),
    ("PTTL", 0, F),
    ("SCARD", 0, F),
    ("SDIFF", 0, Forward(K_ALL)),
    ("SINTER", 0, Forward(K_ALL)),
    ("SINTERCARD", 0, Forward(NUMKEYS1)),
    ("SISMEMBER", 0, F),
    ("SMEMBERS", 0, F),
    ("SMISMEMBER", 0, F),
    ("SORT_RO", 0, Forward(K1)),
    ("SRANDMEMBER", 0, F),
    ("STRLEN", 0, F),
    ("SUBSTR", 0, F),
    ("SUNION", 0, Forward(K_ALL)),
    ("TTL", 0, F),
    ("TYPE", 0, F),
    ("XINFO", CONTAINER, Forward(K2)),
    ("XLEN", 0, F),
    ("XPENDING", 0, F),
    ("XRANGE", 0, F),
    ("XREVRANGE", 0, F),
    ("ZCARD", 0, F),
    ("ZCOUNT", 0, F),
    ("ZDIFF", 0, Forward(NUMKEYS1)),
    ("ZINTER", 0, Forward(NUMKEYS1)),
    ("ZINTERCARD", 0, Forward(NUMKEYS1)),
    ("ZLEXCOUNT", 0, F),
    ("ZMSCORE", 0, F),
    ("ZRANDMEMBER", 0, F),
    ("ZRANGE", 0, F),
    ("ZRANGEBYLEX", 0, F),
    ("ZRANGEBYSCORE", 0, F),
    ("ZRANK", 0, F),
    ("ZREVRANGE", 0, F),
    ("ZREVRANGEBYLEX", 0, F),
    ("ZREVRANGEBYSCORE", 0, F),
    ("ZREVRANK", 0, F),
    ("ZSCORE", 0, F),
    ("ZUNION", 0, Forward(NUMKEYS1)),
];

struct Table {
    entries: Vec<CommandInfo>,
    by_name: HashMap<&'static [u8], usize, foldhash::fast::RandomState>,
}

fn build() -> Table {
    let entries: Vec<CommandInfo> = COMMANDS
        .iter()
        .enumerate()
        .map(|(index, &(name, flags, handling))| CommandInfo {
            name,
            flags,
            handling,
            index,
        })
        .collect();
    let by_name = entries
        .iter()
        .map(|c| (c.name.as_bytes(), c.index))
        .collect();
    Table { entries, by_name }
}

fn table_ref() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// Every known command, indexed by [`CommandInfo::index`].
pub fn table() -> &'static [CommandInfo] {
    &table_ref().entries
}

/// Looks a command up by name (any case). Names longer than 64 bytes are never known.
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    let mut upper = [0u8; 64];
    let upper = &mut upper[..name.len()];
    for (u, &b) in upper.iter_mut().zip(name) {
        *u = b.to_ascii_uppercase();
    }
    let t = table_ref();
    t.by_name.get(&*upper).map(|&i| &t.entries[i])
}

/// The entry deciding how a request is handled: the command's own, or, for a container
/// marked [`Handling::Subcommand`], the entry `NAME|SUB` of its subcommand `sub` (argument 1).
/// `None`: the command (or that subcommand) is unknown, and the request is refused.
pub fn resolve(name: &[u8], sub: Option<&[u8]>) -> Option<&'static CommandInfo> {
    let info = lookup(name)?;
    if info.handling != Subcommand {
        return Some(info);
    }
    let sub = sub?;
    let mut full = Vec::with_capacity(info.name.len() + 1 + sub.len());
    full.extend_from_slice(info.name.as_bytes());
    full.push(b'|');
    full.extend_from_slice(sub);
    lookup(&full)
}

/// The name Redis gives a command in its errors: lower case, `container|subcommand` for the
/// subcommands of a container (`config|get`).
pub fn redis_name(info: &CommandInfo, sub: Option<&[u8]>) -> String {
    let mut name = info.name.to_ascii_lowercase();
    if info.flags & CONTAINER != 0
        && let Some(sub) = sub
    {
        name.push('|');
        name.push_str(&String::from_utf8_lossy(sub).to_ascii_lowercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"get").unwrap().name, "GET");
        assert_eq!(lookup(b"MgEt").unwrap().handling, Split(SplitKind::Mget));
        assert!(lookup(b"nosuch").is_none());
        assert!(lookup(&[b'a'; 65]).is_none());
    }

    #[test]
    fn names_are_unique_and_upper_case() {
        let mut seen = std::collections::HashSet::new();
        for &(name, _, _) in COMMANDS {
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(name, name.to_ascii_uppercase());
        }
    }

    #[test]
    fn subcommands_resolve_by_their_own_entry() {
        let usage = resolve(b"memory", Some(b"usage")).unwrap();
        assert_eq!((usage.name, usage.handling), ("MEMORY|USAGE", Forward(K2)));
        assert_eq!(resolve(b"MEMORY", Some(b"purge")).unwrap().handling, Refuse);
        assert!(resolve(b"MEMORY", Some(b"nosuch")).is_none());
        assert!(resolve(b"MEMORY", None).is_none());
        // Other containers are handled as a whole.
        assert_eq!(resolve(b"config", Some(b"get")).unwrap().name, "CONFIG");
        assert_eq!(resolve(b"get", Some(b"k")).unwrap().name, "GET");
        assert!(resolve(b"nosuch", None).is_none());
        let config = lookup(b"CONFIG").unwrap();
        assert_eq!(redis_name(config, Some(b"GET")), "config|get");
        assert_eq!(redis_name(lookup(b"GET").unwrap(), Some(b"k")), "get");
        assert_eq!(redis_name(usage, Some(b"k")), "memory|usage");
    }

    fn positions(name: &str, req: &str) -> Vec<usize> {
        let args: Vec<&[u8]> = req.split(' ').map(str::as_bytes).collect();
        let Forward(specs) = lookup(name.as_bytes()).unwrap().handling else {
            panic!("{name} not forwarded")
        };
        key_positions(specs, args.len(), |i| args[i])
    }

    #[test]
    fn every_key_of_a_request_is_found() {
        assert_eq!(positions("GET", "GET k"), vec![1]);
        assert_eq!(positions("RPOPLPUSH", "RPOPLPUSH a b"), vec![1, 2]);
        assert_eq!(
            positions("SUNIONSTORE", "SUNIONSTORE d a b c"),
            vec![1, 2, 3, 4]
        );
        assert_eq!(positions("SDIFF", "SDIFF a b"), vec![1, 2]);
        assert_eq!(positions("LCS", "LCS a b LEN"), vec![1, 2]);
        assert_eq!(
            positions("ZUNIONSTORE", "ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            vec![1, 3, 4]
        );
        assert_eq!(positions("ZINTER", "ZINTER 2 a b"), vec![2, 3]);
        assert_eq!(positions("LMPOP", "LMPOP 1 a LEFT"), vec![2]);
        assert_eq!(positions("EVAL", "EVAL s 2 a b x"), vec![3, 4]);
        assert_eq!(positions("EVAL", "EVAL s 0 x"), Vec::<usize>::new());
        // A bad numkeys: the backend answers with Redis's error.
        assert_eq!(positions("ZUNIONSTORE", "ZUNIONSTORE d 9 a"), vec![1]);
        assert_eq!(positions("ZUNIONSTORE", "ZUNIONSTORE d -1 a"), vec![1]);
        assert_eq!(positions("ZINTER", "ZINTER x a"), Vec::<usize>::new());
        assert_eq!(
            positions("GEORADIUS", "GEORADIUS g 0 0 1 km COUNT 2 STORE d"),
            vec![1, 9]
        );
        assert_eq!(
            positions(
                "GEORADIUSBYMEMBER",
                "GEORADIUSBYMEMBER g m 1 km STOREDIST d"
            ),
            vec![1, 6]
        );
        assert_eq!(
            positions("SORT", "SORT l LIMIT 0 1 ALPHA STORE d"),
            vec![1, 7]
        );
        assert_eq!(positions("SORT", "SORT l STORE a STORE b"), vec![1, 5]);
        assert_eq!(positions("SORT", "SORT l BY store"), vec![1]);
        assert_eq!(positions("XINFO", "XINFO STREAM s"), vec![2]);
        assert_eq!(positions("XINFO", "XINFO HELP"), Vec::<usize>::new());
        assert_eq!(positions("COMMAND", "COMMAND COUNT"), Vec::<usize>::new());
    }

    #[test]
    fn refused_options() {
        let check = |req: &str| {
            let args: Vec<&[u8]> = req.split(' ').map(str::as_bytes).collect();
            refused_option(lookup(args[0]).unwrap(), args.len(), |i| args[i])
        };
        assert_eq!(
            check("SORT l BY w_*"),
            Some("ERR BY option of SORT denied in Cluster mode.")
        );
        assert_eq!(
            check("SORT_RO l LIMIT 0 1 GET #"),
            Some("ERR GET option of SORT denied in Cluster mode.")
        );
        assert_eq!(check("SORT l BY nosort STORE d"), None);
        // Redis stops at a syntax error before it sees BY.
        assert_eq!(check("SORT l foo BY w_*"), None);
        assert!(check("COPY a b DB 15").is_some());
        assert!(check("copy a b replace db 0").is_some());
        assert_eq!(check("COPY a b REPLACE"), None);
        assert_eq!(check("GET db"), None);
    }

    #[test]
    fn internal_commands_are_refused() {
        for name in [
            "SLOTSMGRT-EXEC-WRAPPER",
            "SLOTSMGRT-ASYNC-CANCEL",
            "SLOTSMGRTONE-ASYNC",
            "SLOTSRESTORE",
            "SLOTSRESTORE-ASYNC-SELECT",
            "SLOTSRESTORE-ASYNC-AUTH",
        ] {
            assert_eq!(lookup(name.as_bytes()).unwrap().handling, Refuse, "{name}");
        }
    }

    #[test]
    fn codis_refusals_are_kept() {
        for name in [
            "KEYS", "MOVE", "OBJECT", "RENAME", "SCAN", "FLUSHALL", "WATCH", "CLIENT",
        ] {
            assert_eq!(lookup(name.as_bytes()).unwrap().handling, Refuse, "{name}");
        }
        assert!(lookup(b"get").unwrap().is_read_only());
        assert!(!lookup(b"hscan").unwrap().is_read_only());
        assert!(!lookup(b"set").unwrap().is_read_only());
    }
}
