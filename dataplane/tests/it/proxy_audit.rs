//! The proxy command audit: every command Redis 7 (Debian's redis-server) and codis-server
//! know, subcommands included, is routed by key, handled by the proxy, or refused, as the
//! command table in docs/COMPATIBILITY.md says; key positions and read/write flags agree
//! with Redis's; and a live proxy refuses every refused command without its backend seeing it.

use std::collections::{BTreeMap, BTreeSet};

use dataplane::proxy::command::{
    self, BlockingKeys, CONTAINER, CommandInfo, Handling, MASTER_ONLY, MAY_WRITE, WRITE,
};
use dataplane::proxy::core::CoreConfig;
use dataplane::resp::frame::Frame;

use crate::proxy::TestProxy;
use crate::support::{Client, show, start_codis, start_redis};

/// Where a command's first key is, by Redis's key specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstKey {
    /// No key.
    None,
    /// At this argument.
    At(usize),
    /// After a keyword (`STREAMS`): no fixed position.
    Keyword,
}

/// One command as `COMMAND` reports it.
#[derive(Debug)]
struct ServerCommand {
    /// Lower case; `container|sub` for subcommands.
    name: String,
    flags: BTreeSet<String>,
    first_key: FirstKey,
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

/// The first key of a command from its first key spec (Redis 7), or from the legacy
/// first-key field when the server gives no key specs (codis-server).
fn first_key(entry: &[Frame]) -> FirstKey {
    let specs = entry.get(8).map(items).unwrap_or(&[]);
    let Some(spec) = specs.first() else {
        return match int(&entry[3]) {
            0 => FirstKey::None,
            n => FirstKey::At(n as usize),
        };
    };
    let spec = items(spec);
    let begin = items(field(spec, "begin_search"));
    if text(field(begin, "type")) != "index" {
        return FirstKey::Keyword;
    }
    let index = int(field(items(field(begin, "spec")), "index")) as usize;
    let find = items(field(spec, "find_keys"));
    match text(field(find, "type")).as_str() {
        "range" => FirstKey::At(index),
        "keynum" => {
            FirstKey::At(index + int(field(items(field(find, "spec")), "firstkey")) as usize)
        }
        other => panic!("find_keys type {other}"),
    }
}

fn collect(entries: &[Frame], out: &mut BTreeMap<String, ServerCommand>) {
    for e in entries {
        let e = items(e);
        let subs = e.get(9).map(items).unwrap_or(&[]);
        let cmd = ServerCommand {
            name: text(&e[0]).to_ascii_lowercase(),
            flags: items(&e[2]).iter().map(text).collect(),
            first_key: first_key(e),
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
            match pos {
                0 => format!("{access} -"),
                n => format!("{access} {n}"),
            }
        }
        Handling::Refuse => "refused".into(),
        Handling::Subcommand => "by subcommand".into(),
        Handling::Split(_) => "split".into(),
        Handling::SameSlot => "same slot".into(),
        Handling::Multi | Handling::Exec | Handling::Discard => "transaction".into(),
        Handling::Blocking(_) => "blocking".into(),
        Handling::Subscribe | Handling::Unsubscribe | Handling::PubSub => "pub/sub".into(),
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

/// The argument the proxy routes a request by, for commands sent to the owner of a key.
fn routing_key(info: &CommandInfo) -> Option<usize> {
    match info.handling {
        Handling::Forward(pos) => Some(pos as usize),
        Handling::Split(_) | Handling::SameSlot => Some(1),
        Handling::Blocking(BlockingKeys::AllButLast | BlockingKeys::FirstTwo) => Some(1),
        Handling::Blocking(BlockingKeys::NumKeysAt2) => Some(3),
        _ => None,
    }
}

/// The command table of docs/COMPATIBILITY.md: upper-case name → class.
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/COMPATIBILITY.md");
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

/// Codis 3.2's NotAllow list (`pkg/proxy/mapper.go`), less what the proxy now supports.
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
    "SCRIPT",
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

/// Routed by another key than Redis's first: Codis routes ZINTERSTORE / ZUNIONSTORE by their
/// first source key (argument 3); Redis's first key is the destination. Every key of such a
/// command must lie in one slot anyway.
const OTHER_ROUTING_KEY: &[&str] = &["zinterstore", "zunionstore"];

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
        let Some(pos) = routing_key(info) else {
            continue;
        };
        if !redis_cmds.contains_key(name) || cmd.has_subcommands {
            continue;
        }
        // Keys: routing by another argument than Redis's first key picks the wrong slot.
        match cmd.first_key {
            FirstKey::Keyword => problems.push(format!(
                "{name}: keys after a keyword, routed by argument {pos}"
            )),
            FirstKey::None if pos != 0 && !name.ends_with("|help") => problems.push(format!(
                "{name}: no key for Redis, routed by argument {pos}"
            )),
            FirstKey::At(k) if k != pos && !OTHER_ROUTING_KEY.contains(&name) => {
                problems.push(format!("{name}: first key {k} for Redis, routed by {pos}"))
            }
            _ => {}
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
