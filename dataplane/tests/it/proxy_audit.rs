//! The proxy command audit: every command Redis 7 (Debian's redis-server) and codis-server
//! know, subcommands included, is routed by key, handled by the proxy, or refused, as the
//! command table in docs/COMPATIBILITY.md says; every key position (Redis's key specs) and the
//! read/write flags agree with Redis's; blocking, pub/sub, no-auth and connection-state
//! commands get their own handling; and a live proxy refuses every refused command without its
//! backend seeing it.

use std::collections::{BTreeMap, BTreeSet};

use dataplane::proxy::command::{
    self, BlockingKeys, CONTAINER, CommandInfo, Handling, KeySpec, MASTER_ONLY, MAY_WRITE,
    SplitKind, WRITE,
};
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::proxy::TestProxy;
use crate::support::{Client, show, start_codis, start_redis};

/// One command as `COMMAND` reports it.
#[derive(Debug)]
struct ServerCommand {
    /// Lower case; `container|sub` for subcommands.
    name: String,
    flags: BTreeSet<String>,
    /// ACL categories (`@connection`...).
    categories: BTreeSet<String>,
    /// Every key spec, in a canonical text (see [`key_spec`]).
    key_specs: Vec<String>,
    has_subcommands: bool,
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Simple(b) | Frame::Bulk(b) => String::from_utf8_lossy(b).to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

fn items(f: &Frame) -> &[Frame] {
    match f {
        Frame::Array(_, v) | Frame::Map(v) => v,
        other => panic!("not an array: {other:?}"),
    }
}

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The value after `key` in a flat key/value array.
fn field<'a>(kv: &'a [Frame], key: &str) -> &'a Frame {
    kv.chunks(2)
        .find(|p| text(&p[0]) == key)
        .map(|p| &p[1])
        .unwrap_or_else(|| panic!("no {key} in {kv:?}"))
}

/// One of Redis's key specs as text: `range <begin> <lastkey> <keystep>[ /<limit>]`,
/// `keynum <begin> <keynumidx> <firstkey> <keystep>`, or `unknown <flag>`, where `<begin>` is
/// the index of an `index` search or `KEYWORD@startfrom` of a `keyword` search.
fn key_spec(spec: &[Frame]) -> String {
    let begin = items(field(spec, "begin_search"));
    let find = items(field(spec, "find_keys"));
    let btype = text(field(begin, "type"));
    let ftype = text(field(find, "type"));
    if btype == "unknown" || ftype == "unknown" {
        let flags: Vec<String> = items(field(spec, "flags")).iter().map(text).collect();
        let access = if flags.iter().any(|f| f == "RO") {
            "RO"
        } else {
            "OW"
        };
        return format!("unknown {access}");
    }
    let bspec = items(field(begin, "spec"));
    let begin = match btype.as_str() {
        "index" => int(field(bspec, "index")).to_string(),
        "keyword" => format!(
            "{}@{}",
            text(field(bspec, "keyword")),
            int(field(bspec, "startfrom"))
        ),
        other => panic!("begin_search type {other}"),
    };
    let fspec = items(field(find, "spec"));
    match ftype.as_str() {
        "range" => {
            let limit = int(field(fspec, "limit"));
            format!(
                "range {begin} {} {}{}",
                int(field(fspec, "lastkey")),
                int(field(fspec, "keystep")),
                if limit == 0 {
                    String::new()
                } else {
                    format!(" /{limit}")
                }
            )
        }
        "keynum" => format!(
            "keynum {begin} {} {} {}",
            int(field(fspec, "keynumidx")),
            int(field(fspec, "firstkey")),
            int(field(fspec, "keystep"))
        ),
        other => panic!("find_keys type {other}"),
    }
}

/// The proxy's key specs of a command it routes by key, in [`key_spec`]'s text.
fn proxy_key_specs(info: &CommandInfo) -> Option<Vec<String>> {
    let range = |index: u8, last: i8, step: u8| format!("range {index} {last} {step}");
    let specs = match info.handling {
        Handling::Forward(specs) => specs
            .iter()
            .map(|s| match *s {
                KeySpec::Range { index, last, step } => range(index, last, step),
                KeySpec::NumKeys { index } => format!("keynum {index} 0 1 1"),
                KeySpec::Keyword { keyword, from } => format!("range {keyword}@{from} 0 1"),
                KeySpec::SortStore => "unknown OW".into(),
            })
            .collect(),
        Handling::Split(SplitKind::Mset) | Handling::SameSlot => vec![range(1, -1, 2)],
        Handling::Split(_) => vec![range(1, -1, 1)],
        Handling::Blocking(BlockingKeys::AllButLast) => vec![range(1, -2, 1)],
        Handling::Blocking(BlockingKeys::FirstTwo) => vec![range(1, 0, 1), range(2, 0, 1)],
        Handling::Blocking(BlockingKeys::NumKeysAt2) => vec!["keynum 2 0 1 1".into()],
        _ => return None,
    };
    Some(specs)
}

fn collect(entries: &[Frame], out: &mut BTreeMap<String, ServerCommand>) {
    for e in entries {
        let e = items(e);
        let subs = e.get(9).map(items).unwrap_or(&[]);
        let cmd = ServerCommand {
            name: text(&e[0]).to_ascii_lowercase(),
            flags: items(&e[2]).iter().map(text).collect(),
            categories: e
                .get(6)
                .map(items)
                .unwrap_or(&[])
                .iter()
                .map(text)
                .collect(),
            key_specs: e
                .get(8)
                .map(items)
                .unwrap_or(&[])
                .iter()
                .map(|spec| key_spec(items(spec)))
                .collect(),
            has_subcommands: !subs.is_empty(),
        };
        out.entry(cmd.name.clone()).or_insert(cmd);
        collect(subs, out);
    }
}

/// `COMMAND` of a server, by name.
fn server_commands(port: u16) -> BTreeMap<String, ServerCommand> {
    let mut c = Client::connect(port);
    let (f, _) = c.cmd(&[b"COMMAND"]);
    let mut out = BTreeMap::new();
    collect(items(&f), &mut out);
    out
}

/// Where a forwarded command's keys are, in the documented table's words: argument numbers,
/// `N..` (to the last argument), `N..-2` (to the one before), `N..(step 2)`, `numkeys@N` (the
/// count at argument N, the keys after it), the keyword a key follows, `-` for none.
fn keys_text(specs: &[KeySpec]) -> String {
    let words: Vec<String> = specs
        .iter()
        .map(|s| match *s {
            KeySpec::Range { index, last, step } if last >= 0 => (index..=index + last as u8)
                .step_by(step as usize)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            KeySpec::Range {
                index,
                last: -1,
                step: 1,
            } => format!("{index}.."),
            KeySpec::Range { index, last, step } => format!("{index}..{last}(step {step})"),
            KeySpec::NumKeys { index } => format!("numkeys@{index}"),
            KeySpec::Keyword { keyword, .. } => keyword.to_string(),
            KeySpec::SortStore => "STORE".to_string(),
        })
        .collect();
    if words.is_empty() {
        "-".into()
    } else {
        words.join(" ")
    }
}

/// The proxy's class of a table entry, in the vocabulary of the documented table.
fn class(info: &CommandInfo) -> String {
    match info.handling {
        Handling::Forward(pos) => {
            let access = if info.is_read_only() {
                "read"
            } else if info.flags & (WRITE | MAY_WRITE) != 0 {
                "write"
            } else {
                assert!(info.flags & MASTER_ONLY != 0, "{}", info.name);
                "master"
            };
            format!("{access} {}", keys_text(pos))
        }
        Handling::Refuse => "refused".into(),
        Handling::Subcommand => "by subcommand".into(),
        Handling::Split(_) => "split".into(),
        Handling::SameSlot => "same slot".into(),
        Handling::Multi | Handling::Exec | Handling::Discard => "transaction".into(),
        Handling::Blocking(_) => "blocking".into(),
        Handling::Subscribe | Handling::Unsubscribe | Handling::PubSub => "pub/sub".into(),
        Handling::Broadcast(_) => "all groups".into(),
        Handling::Ping
        | Handling::Echo
        | Handling::Quit
        | Handling::Reset
        | Handling::Select
        | Handling::Auth
        | Handling::Hello
        | Handling::Info
        | Handling::SlotsInfo
        | Handling::SlotsScan
        | Handling::SlotsMapping
        | Handling::SlotsHashKey => "proxy".into(),
    }
}

/// The command table of docs/COMPATIBILITY.md: upper-case name → class.
fn documented() -> BTreeMap<String, String> {
    let manifest: std::path::PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = manifest.join("../docs/COMPATIBILITY.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc
        .find("### Command table")
        .expect("no command table in the doc");
    let mut out = BTreeMap::new();
    let mut seen_header = false;
    for line in doc[start..].lines().skip(1) {
        if line.starts_with("#") {
            break;
        }
        if !line.starts_with('|') {
            continue;
        }
        if !seen_header {
            seen_header = line.starts_with("| class |");
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        // Cells are split on `|` not escaped as `\|`.
        let cells: Vec<String> = line
            .replace("\\|", "\u{1}")
            .split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect();
        let class = cells[1].trim_matches('`').to_string();
        for name in cells[2].split_whitespace() {
            let prev = out.insert(name.to_string(), class.clone());
            assert!(prev.is_none(), "{name} twice in the documented table");
        }
    }
    assert!(out.len() > 200, "documented table not found or too small");
    out
}

/// Codis 3.2's NotAllow list (`pkg/proxy/mapper.go`), less what the proxy now supports
/// (SCRIPT: sent to every group, SCRIPT DEBUG still refused).
const CODIS_NOT_ALLOW: &[&str] = &[
    "ASKING",
    "BGREWRITEAOF",
    "BGSAVE",
    "BITOP",
    "CLIENT",
    "CLUSTER",
    "CONFIG",
    "DBSIZE",
    "DEBUG",
    "FLUSHALL",
    "FLUSHDB",
    "HOST:",
    "KEYS",
    "LASTSAVE",
    "LATENCY",
    "MIGRATE",
    "MONITOR",
    "MOVE",
    "OBJECT",
    "POST",
    "PSYNC",
    "RANDOMKEY",
    "READONLY",
    "READWRITE",
    "RENAME",
    "RENAMENX",
    "REPLCONF",
    "RESTORE",
    "RESTORE-ASKING",
    "SAVE",
    "SCAN",
    "SHUTDOWN",
    "SLAVEOF",
    "SLOTSCHECK",
    "SLOTSDEL",
    "SLOTSMGRTONE",
    "SLOTSMGRTSLOT",
    "SLOTSMGRTTAGONE",
    "SLOTSMGRTTAGSLOT",
    "SLOWLOG",
    "SYNC",
    "TIME",
    "UNWATCH",
    "WAIT",
    "WATCH",
];

/// Names in the proxy's table that no server reports: Codis's guards against HTTP sent to the
/// proxy port, and the proxy's own SLOTSMAPPING.
const PROXY_ONLY: &[&str] = &["HOST:", "POST", "SLOTSMAPPING"];

/// Keys Redis reads through SORT's `BY pattern` / `GET` (its `unknown RO` key spec): the proxy
/// refuses those options, as Redis Cluster does (tested live in `proxy_refusals.rs`).
const PATTERN_KEYS_REFUSED: &[&str] = &["sort", "sort_ro"];

/// Commands that change or read a connection's state, whatever their Redis categories, and
/// the handling each must have when the proxy does not refuse it.
const CONNECTION_STATE: &[(&str, Handling)] = &[
    ("auth", Handling::Auth),
    ("discard", Handling::Discard),
    ("echo", Handling::Echo),
    ("exec", Handling::Exec),
    ("hello", Handling::Hello),
    ("multi", Handling::Multi),
    ("ping", Handling::Ping),
    ("quit", Handling::Quit),
    ("reset", Handling::Reset),
    ("select", Handling::Select),
    ("asking", Handling::Refuse),
    ("client", Handling::Refuse),
    ("monitor", Handling::Refuse),
    ("readonly", Handling::Refuse),
    ("readwrite", Handling::Refuse),
    ("unwatch", Handling::Refuse),
    ("watch", Handling::Refuse),
];

/// True when a command with Redis flag `flag` is handled as it must be, if not refused.
fn special_handling(flag: &str, h: Handling) -> bool {
    match flag {
        "blocking" => matches!(h, Handling::Blocking(_)),
        "pubsub" => matches!(
            h,
            Handling::Subscribe | Handling::Unsubscribe | Handling::PubSub
        ),
        "no_multi" => matches!(
            h,
            Handling::Multi | Handling::Subscribe | Handling::Unsubscribe
        ),
        "no_auth" => matches!(
            h,
            Handling::Auth | Handling::Hello | Handling::Quit | Handling::Reset
        ),
        _ => false,
    }
}

/// `@connection` commands the proxy forwards: COMMAND only reads the server's command table.
const STATELESS_CONNECTION: &[&str] = &["command"];

/// Read-only for Redis, routed to the master by the proxy (Codis's flags): TOUCH updates
/// access times, which a replica would keep to itself.
const READS_ON_MASTER: &[&str] = &["touch"];

#[test]
fn proxy_command_audit() {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let redis_cmds = server_commands(redis.port);
    let codis_cmds = server_commands(codis.port);
    assert!(
        redis_cmds.len() > 300,
        "{} Redis commands",
        redis_cmds.len()
    );
    assert!(codis_cmds.contains_key("slotsmgrt-exec-wrapper"));
    let mut all: BTreeMap<&str, &ServerCommand> = BTreeMap::new();
    for (n, c) in codis_cmds.iter().chain(redis_cmds.iter()) {
        all.insert(n, c);
    }
    let doc = documented();
    let mut problems = Vec::new();
    let mut refused: Vec<(Vec<u8>, &'static CommandInfo)> = Vec::new();

    for (&name, cmd) in &all {
        let (top, sub) = match name.split_once('|') {
            Some((t, s)) => (t, Some(s)),
            None => (name, None),
        };
        // A container is looked up itself; a subcommand as the proxy resolves a request.
        let info = if cmd.has_subcommands {
            command::lookup(top.as_bytes())
        } else {
            command::resolve(top.as_bytes(), sub.map(str::as_bytes))
        };
        let Some(info) = info else {
            problems.push(format!("{name}: unknown to the proxy"));
            continue;
        };
        let got = class(info);
        let upper = name.to_ascii_uppercase();
        let want = doc
            .get(&upper)
            .or_else(|| sub.and_then(|_| doc.get(&top.to_ascii_uppercase())));
        if want != Some(&got) {
            problems.push(format!("{name}: proxy {got:?}, documented {want:?}"));
        }
        if sub.is_none()
            && redis_cmds.contains_key(name)
            && (info.flags & CONTAINER != 0) != cmd.has_subcommands
        {
            problems.push(format!("{name}: container flag disagrees with Redis"));
        }
        if info.handling == Handling::Refuse {
            let mut req = top.to_ascii_uppercase().into_bytes();
            if let Some(s) = sub {
                req.push(b' ');
                req.extend_from_slice(s.to_ascii_uppercase().as_bytes());
            }
            refused.push((req, info));
            continue;
        }
        // Everything else reaches a backend, or is the proxy's own: never a Redis admin
        // command.
        if cmd.flags.contains("admin") {
            problems.push(format!("{name}: Redis admin command not refused"));
        }
        // Commands that block, subscribe, skip authentication or change the connection's
        // state never reach a shared backend connection as plain requests.
        for flag in ["blocking", "pubsub", "no_multi", "no_auth"] {
            if cmd.flags.contains(flag) && !special_handling(flag, info.handling) {
                problems.push(format!(
                    "{name}: Redis flag {flag}, proxy {:?}",
                    info.handling
                ));
            }
        }
        let state = CONNECTION_STATE.iter().find(|(n, _)| *n == top);
        match state {
            Some((_, want)) if info.handling != *want => problems.push(format!(
                "{name}: connection state, proxy {:?}, want {want:?}",
                info.handling
            )),
            Some(_) => {}
            None if (cmd.categories.contains("@connection")
                || cmd.categories.contains("@transaction"))
                && !STATELESS_CONNECTION.contains(&top) =>
            {
                problems.push(format!(
                    "{name}: Redis {:?}, proxy {:?}: not in CONNECTION_STATE",
                    cmd.categories, info.handling
                ))
            }
            None => {}
        }
        let Some(specs) = proxy_key_specs(info) else {
            continue;
        };
        if !redis_cmds.contains_key(name) || cmd.has_subcommands {
            continue;
        }
        // Keys: every key Redis finds, the proxy finds at the same positions (it checks they
        // all lie in one slot and routes by the first).
        let mut want = cmd.key_specs.clone();
        if PATTERN_KEYS_REFUSED.contains(&name) {
            want.retain(|s| s != "unknown RO");
        }
        if specs != want && !(name.ends_with("|help") && want.is_empty()) {
            problems.push(format!("{name}: Redis key specs {want:?}, proxy {specs:?}"));
        }
        // Access: a write sent to a replica fails; a read kept on the master only costs.
        let proxy_read = info.flags & (WRITE | MAY_WRITE) == 0;
        if cmd.flags.contains("write") && proxy_read {
            problems.push(format!("{name}: Redis write, proxy read"));
        }
        if cmd.flags.contains("readonly") && !proxy_read && !READS_ON_MASTER.contains(&name) {
            problems.push(format!("{name}: Redis read, proxy write"));
        }
    }

    // The table and the documented table hold the same names, and nothing stale.
    for info in command::table() {
        let lower = info.name.to_ascii_lowercase();
        if !all.contains_key(lower.as_str()) && !PROXY_ONLY.contains(&info.name) {
            problems.push(format!(
                "{}: in the proxy's table, known to no server",
                info.name
            ));
        }
        if !doc.contains_key(info.name) {
            problems.push(format!(
                "{}: in the proxy's table, not documented",
                info.name
            ));
        }
    }
    for name in doc.keys() {
        if command::lookup(name.as_bytes()).is_none_or(|i| i.name != name) {
            problems.push(format!("{name}: documented, not in the proxy's table"));
        }
    }
    for name in PROXY_ONLY {
        let info = command::lookup(name.as_bytes()).unwrap();
        if info.handling == Handling::Refuse {
            refused.push((name.as_bytes().to_vec(), info));
        }
    }
    // Codis's refusals are the floor.
    for name in CODIS_NOT_ALLOW {
        match command::lookup(name.as_bytes()) {
            Some(i) if i.handling == Handling::Refuse => {}
            other => problems.push(format!("{name}: refused by Codis, proxy {other:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // A live proxy refuses every refused command; its backend sees none of them.
    let p = TestProxy::start(CoreConfig::default());
    p.assign(0..1024, &codis);
    let mut c = p.client();
    let requests: Vec<Vec<Vec<u8>>> = refused
        .iter()
        .map(|(req, _)| {
            let mut args: Vec<Vec<u8>> = req.split(|&b| b == b' ').map(<[u8]>::to_vec).collect();
            args.extend([b"k".to_vec(), b"1".to_vec()]);
            args
        })
        .collect();
    let replies = c
        .try_pipeline(&requests)
        .expect("proxy closed the connection");
    for ((req, info), reply) in refused.iter().zip(&replies) {
        let want = format!("ERR handle request, command '{}' is not allowed", info.name);
        assert_eq!(
            reply,
            &Frame::Error(want.into_bytes()),
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    for name in ["NOSUCHCMD", "SLOTSMGRT-NOSUCH", "GET-X", "MEMORY"] {
        let (f, raw) = c.cmd(&[name.as_bytes(), b"k"]);
        let want = format!(
            "ERR handle request, unknown command '{name}': codis-proxy does not support it"
        );
        assert_eq!(f, Frame::Error(want.into_bytes()), "{}", show(&raw));
    }
    assert_eq!(c.run("SET k v"), Frame::Simple(b"OK".to_vec()));
    let mut direct = Client::connect(codis.port);
    let Frame::Bulk(stats) = direct.run("INFO commandstats") else {
        panic!("INFO commandstats")
    };
    let stats = String::from_utf8_lossy(&stats).to_string();
    for line in stats.lines().filter_map(|l| l.strip_prefix("cmdstat_")) {
        let name = line.split(':').next().unwrap();
        let refused_here =
            command::lookup(name.as_bytes()).is_some_and(|i| i.handling == Handling::Refuse);
        assert!(!refused_here, "the backend ran {name}: {stats}");
    }
    assert!(stats.contains("cmdstat_set:"), "{stats}");
    eprintln!(
        "audit: {} commands and subcommands, {} refused ones sent through the proxy",
        all.len(),
        refused.len()
    );
}
