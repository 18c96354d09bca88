//! The JSON documents a codis-proxy exchanges with the dashboard, the FE and codis-admin: the
//! proxy model, the slot table (`fillslots`), the sentinel list, the stats and the overview.
//!
//! Field names, field order and the omit-when-empty rules follow Codis 3.2 exactly (Go's
//! `encoding/json` with `omitempty`), so that Codis tools can read what we write and the other
//! way round. Integers that are Go `int` are `i64` here so that out-of-range values reach the
//! code that checks them (for example a slot id of -1) instead of failing to parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Writes a float the way Go's `encoding/json` does for the values stats hold: an integral
/// value without a fraction (`0`, not `0.0`).
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Forwarding methods of a migrating slot ([`Slot::forward_method`]).
pub mod forward_method {
    /// Synchronous: `SLOTSMGRTTAGONE` the key to the target, then send the request there.
    pub const SYNC: i64 = 0;
    /// Semi-asynchronous: wrap the request in `SLOTSMGRT-EXEC-WRAPPER` on the source.
    pub const SEMI_ASYNC: i64 = 1;

    /// Parses the names codis-admin and the dashboard config use (`sync`, `semi-async`,
    /// case-insensitive).
    pub fn parse(s: &str) -> Option<i64> {
        match s.to_ascii_uppercase().as_str() {
            "SYNC" => Some(SYNC),
            "SEMI-ASYNC" => Some(SEMI_ASYNC),
            _ => None,
        }
    }
}

/// One entry of a proxy's slot table, as pushed by `PUT /api/proxy/fillslots/:xauth` and
/// returned by `/proxy/slots`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Slot {
    /// Slot number, 0..1024 when valid.
    pub id: i64,
    /// Requests on this slot wait until a later fill unlocks it.
    #[serde(skip_serializing_if = "is_false")]
    pub locked: bool,
    /// Master that serves the slot; empty when the slot is offline.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backend_addr: String,
    /// Group of `backend_addr`.
    #[serde(skip_serializing_if = "is_zero")]
    pub backend_addr_group_id: i64,
    /// Master the slot is migrating away from; empty when not migrating.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub migrate_from: String,
    /// Group of `migrate_from`.
    #[serde(skip_serializing_if = "is_zero")]
    pub migrate_from_group_id: i64,
    /// One of [`forward_method`]'s constants; omitted when 0 (sync).
    #[serde(skip_serializing_if = "is_zero")]
    pub forward_method: i64,
    /// Replicas usable for reads, highest priority group first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replica_groups: Vec<Vec<String>>,
}

/// A proxy as registered on the coordinator (`/codis3/<product>/proxy/proxy-<token>`) and
/// returned by `/proxy/model`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Proxy {
    /// Assigned by the dashboard (max + 1); omitted when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub id: i64,
    /// Stable identity: MD5 of the host's MACs, the product and the listener addresses.
    pub token: String,
    /// Start time, Go `time.Time.String()` format.
    pub start_time: String,
    /// Advertised admin (HTTP) address.
    pub admin_addr: String,
    /// Network of the proxy listener (`tcp4`, `unix`, ...).
    pub proto_type: String,
    /// Advertised RESP address.
    pub proxy_addr: String,
    /// Jodis node path; omitted when jodis is off.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jodis_path: String,
    /// Product (cluster) name.
    pub product_name: String,
    /// Process id.
    pub pid: i64,
    /// Working directory.
    pub pwd: String,
    /// `uname -a`.
    pub sys: String,
    /// Host name.
    pub hostname: String,
    /// `proxy_datacenter` from the config.
    pub datacenter: String,
}

/// The sentinels a product uses (`/codis3/<product>/sentinel`, body of
/// `PUT /api/proxy/sentinels/:xauth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sentinel {
    /// Sentinel addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Set by the dashboard when the sentinels were not reconfigured after a change.
    pub out_of_sync: bool,
}

/// `stats.sentinels`: what the proxy watches and what it learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SentinelStats {
    /// Sentinels being watched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Group id (as a decimal string) → master address, as last reported by the sentinels.
    /// A `BTreeMap` so keys come out sorted as strings, like Go's map encoding.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub masters: BTreeMap<String, String>,
    /// Some slot was switched to a new master since the last dashboard fill.
    #[serde(skip_serializing_if = "is_false")]
    pub switched: bool,
}

/// `stats.ops.redis`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisOpStats {
    /// Error replies delivered to clients.
    pub errors: i64,
}

/// Per-command counters (`stats.ops.cmd[]`), sorted by `opstr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpStats {
    /// Command name, upper case.
    pub opstr: String,
    /// Number of calls.
    pub calls: i64,
    /// Total microseconds from receipt to reply.
    pub usecs: i64,
    /// `usecs / calls`.
    pub usecs_percall: i64,
    /// Calls that failed in the proxy.
    pub fails: i64,
    /// Error replies delivered.
    pub redis_errtype: i64,
}

/// `stats.ops`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpsStats {
    /// Every decoded request.
    pub total: i64,
    /// Requests that failed in the proxy, plus session-level failures.
    pub fails: i64,
    /// Error replies from the backends.
    pub redis: RedisOpStats,
    /// Requests per second (delta of `total` over the last second).
    pub qps: i64,
    /// Per-command counters; only with stats flag 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<OpStats>,
}

/// `stats.sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionStats {
    /// Sessions ever accepted (reset to `alive` by `stats/reset`).
    pub total: i64,
    /// Sessions open now.
    pub alive: i64,
}

/// `stats.rusage.raw`: `/proc/self/stat` figures; times in nanoseconds (Go `time.Duration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RawUsage {
    /// User CPU time, ns.
    pub utime: i64,
    /// System CPU time, ns.
    pub stime: i64,
    /// User CPU time of waited-for children, ns.
    pub cutime: i64,
    /// System CPU time of waited-for children, ns.
    pub cstime: i64,
    /// OS threads.
    pub num_threads: i64,
    /// Virtual memory size, bytes.
    pub vm_size: i64,
    /// Resident set size, bytes.
    pub vm_rss: i64,
}

/// `stats.rusage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rusage {
    /// When the sample was taken, Go `time.Time.String()` format.
    pub now: String,
    /// CPU use over the last sample interval, 1.0 = one core.
    #[serde(serialize_with = "go_float")]
    pub cpu: f64,
    /// Resident set size, bytes.
    pub mem: i64,
    /// Raw figures, absent when `/proc` could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawUsage>,
}

/// `stats.backend`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendStats {
    /// `backend_primary_only` from the config.
    pub primary_only: bool,
}

/// `stats.runtime.general` (Go `runtime.MemStats` names; see [`RuntimeStats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeGeneral {
    /// Bytes allocated and live.
    pub alloc: u64,
    /// Bytes obtained from the OS.
    pub sys: u64,
    /// Go pointer lookups (always 0 here).
    pub lookups: u64,
    /// Allocations (0 when not counted).
    pub mallocs: u64,
    /// Frees (0 when not counted).
    pub frees: u64,
}

/// `stats.runtime.heap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeHeap {
    /// Live heap bytes.
    pub alloc: u64,
    /// Heap bytes obtained from the OS.
    pub sys: u64,
    /// Idle heap bytes.
    pub idle: u64,
    /// Heap bytes in use.
    pub inuse: u64,
    /// Live objects.
    pub objects: u64,
}

/// `stats.runtime.gc` (a Rust process has no GC: all zero).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeGc {
    /// Completed GC cycles.
    pub num: u32,
    /// Fraction of CPU spent in GC.
    #[serde(serialize_with = "go_float")]
    pub cpu_fraction: f64,
    /// Total GC pause, milliseconds.
    pub total_pausems: u64,
}

/// `stats.runtime` (stats flag 4). The shape is Go's; a Rust proxy fills what has a meaning
/// for it (allocator bytes, worker threads, tasks) and leaves the Go-only figures at 0 so that
/// Codis tools still parse it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeStats {
    /// Allocator totals.
    pub general: RuntimeGeneral,
    /// Heap figures.
    pub heap: RuntimeHeap,
    /// Garbage collector figures.
    pub gc: RuntimeGc,
    /// Worker threads (Go: GOMAXPROCS).
    pub num_procs: i64,
    /// Live async tasks (Go: goroutines).
    pub num_goroutines: i64,
    /// Go cgo calls (always 0 here).
    pub num_cgo_call: i64,
    /// Off-heap bytes (always 0 here).
    pub mem_offheap: i64,
}

/// The proxy's stats document (`/proxy/stats`, `/api/proxy/stats/:xauth[/:flags]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Started (`/api/proxy/start`) and not closed.
    pub online: bool,
    /// Closed (shutting down).
    pub closed: bool,
    /// Sentinel watching.
    pub sentinels: SentinelStats,
    /// Request counters.
    pub ops: OpsStats,
    /// Client sessions.
    pub sessions: SessionStats,
    /// Process resource use.
    pub rusage: Rusage,
    /// Backend settings.
    pub backend: BackendStats,
    /// Runtime figures; only with stats flag 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
}

/// Stats flag: include per-command counters (`ops.cmd`).
pub const STATS_CMDS: u32 = 1;
/// Stats flag: include the slot table (overview only).
pub const STATS_SLOTS: u32 = 2;
/// Stats flag: include `runtime`.
pub const STATS_RUNTIME: u32 = 4;
/// All stats flags (Go `StatsFull`).
pub const STATS_FULL: u32 = u32::MAX;

/// `GET /proxy`: everything about a proxy in one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Overview {
    /// Version string (`--version`'s first line without `version: `).
    pub version: String,
    /// Build description (`--version`'s second line without `compile: `).
    pub compile: String,
    /// The config as JSON, secrets removed.
    pub config: serde_json::Value,
    /// The proxy model.
    pub model: Proxy,
    /// The stats.
    pub stats: Stats,
    /// The slot table; only with stats flag 2, omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
}

/// Whether `name` is a valid product name: Go's `^\w[\w\.\-]*$` (ASCII word characters, then
/// also `.` and `-`).
pub fn is_valid_product_name(name: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((&first, rest)) => {
            word(first) && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// The jodis node path of a proxy: `/jodis/<product>/proxy-<token>`, or with
/// `jodis_compatible` the Codis 2 path `/zk/codis/db_<product>/proxy/<token>` (no `proxy-`
/// prefix there, whatever Codis's config comment says).
pub fn jodis_path(product: &str, token: &str, compatible: bool) -> String {
    if compatible {
        format!("/zk/codis/db_{product}/proxy/{token}")
    } else {
        format!("/jodis/{product}/proxy-{token}")
    }
}

/// Formats a UTC instant (seconds and nanoseconds since the Unix epoch) like Go's
/// `time.Time.String()` does for a UTC time: `2017-03-08 11:58:36.123456789 +0000 UTC`, the
/// fraction without trailing zeros and left out when zero. Used for `start_time` and
/// `rusage.now`.
pub fn format_go_time(unix_secs: i64, nanos: u32) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let mut out = format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `json.MarshalIndent(v, "", "    ")`.
    fn go_json<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        v.serialize(&mut ser).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn round_trip<T>(v: &T, expected: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        assert_eq!(go_json(v), expected);
        let back: T = serde_json::from_str(expected).unwrap();
        assert_eq!(&back, v);
    }

    #[test]
    fn slot_minimal_omits_empty_fields() {
        round_trip(
            &Slot {
                id: 7,
                ..Slot::default()
            },
            "{\n    \"id\": 7\n}",
        );
    }

    #[test]
    fn slot_full() {
        let slot = Slot {
            id: 1023,
            locked: true,
            backend_addr: "10.0.0.2:6379".into(),
            backend_addr_group_id: 2,
            migrate_from: "10.0.0.1:6379".into(),
            migrate_from_group_id: 1,
            forward_method: forward_method::SEMI_ASYNC,
            replica_groups: vec![vec!["10.0.0.3:6379".into()], vec![]],
        };
        let expected = r#"{
    "id": 1023,
    "locked": true,
    "backend_addr": "10.0.0.2:6379",
    "backend_addr_group_id": 2,
    "migrate_from": "10.0.0.1:6379",
    "migrate_from_group_id": 1,
    "forward_method": 1,
    "replica_groups": [
        [
            "10.0.0.3:6379"
        ],
        []
    ]
}"#;
        round_trip(&slot, expected);
    }

    #[test]
    fn slot_sync_method_is_omitted() {
        let slot = Slot {
            id: 3,
            backend_addr: "a:1".into(),
            ..Slot::default()
        };
        assert_eq!(slot.forward_method, forward_method::SYNC);
        assert_eq!(
            go_json(&slot),
            "{\n    \"id\": 3,\n    \"backend_addr\": \"a:1\"\n}"
        );
    }

    #[test]
    fn slot_list_from_dashboard() {
        let body = r#"[{"id":0,"backend_addr":"127.0.0.1:6379","backend_addr_group_id":1},
                       {"id":1,"locked":true}]"#;
        let slots: Vec<Slot> = serde_json::from_str(body).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].backend_addr_group_id, 1);
        assert!(slots[1].locked);
        assert!(slots[1].backend_addr.is_empty());
    }

    #[test]
    fn proxy_model() {
        let p = Proxy {
            id: 0,
            token: "c0d8a6fa5b6d7b0a1e4c7c1c4a9ec8c2".into(),
            start_time: "2017-03-08 11:58:36.123 +0000 UTC".into(),
            admin_addr: "host1:11080".into(),
            proto_type: "tcp4".into(),
            proxy_addr: "host1:19000".into(),
            jodis_path: String::new(),
            product_name: "codis-demo".into(),
            pid: 4242,
            pwd: "/opt/codis".into(),
            sys: "Linux host1 5.10.0 x86_64 GNU/Linux".into(),
            hostname: "host1".into(),
            datacenter: String::new(),
        };
        let expected = r#"{
    "token": "c0d8a6fa5b6d7b0a1e4c7c1c4a9ec8c2",
    "start_time": "2017-03-08 11:58:36.123 +0000 UTC",
    "admin_addr": "host1:11080",
    "proto_type": "tcp4",
    "proxy_addr": "host1:19000",
    "product_name": "codis-demo",
    "pid": 4242,
    "pwd": "/opt/codis",
    "sys": "Linux host1 5.10.0 x86_64 GNU/Linux",
    "hostname": "host1",
    "datacenter": ""
}"#;
        round_trip(&p, expected);
        let with_id = Proxy {
            id: 3,
            jodis_path: "/jodis/codis-demo/proxy-x".into(),
            ..p
        };
        let json = go_json(&with_id);
        assert!(json.starts_with("{\n    \"id\": 3,\n    \"token\""));
        assert!(json.contains(
            "\"proxy_addr\": \"host1:19000\",\n    \"jodis_path\": \"/jodis/codis-demo/proxy-x\",\n    \"product_name\""
        ));
    }

    #[test]
    fn sentinel() {
        round_trip(&Sentinel::default(), "{\n    \"out_of_sync\": false\n}");
        let s = Sentinel {
            servers: vec!["127.0.0.1:26379".into()],
            out_of_sync: true,
        };
        round_trip(
            &s,
            "{\n    \"servers\": [\n        \"127.0.0.1:26379\"\n    ],\n    \"out_of_sync\": true\n}",
        );
    }

    #[test]
    fn stats_minimal() {
        let expected = r#"{
    "online": false,
    "closed": false,
    "sentinels": {},
    "ops": {
        "total": 0,
        "fails": 0,
        "redis": {
            "errors": 0
        },
        "qps": 0
    },
    "sessions": {
        "total": 0,
        "alive": 0
    },
    "rusage": {
        "now": "",
        "cpu": 0,
        "mem": 0
    },
    "backend": {
        "primary_only": false
    }
}"#;
        round_trip(&Stats::default(), expected);
    }

    #[test]
    fn stats_full() {
        let mut stats = Stats {
            online: true,
            ..Stats::default()
        };
        stats.sentinels.servers = vec!["s1:26379".into()];
        stats
            .sentinels
            .masters
            .insert("10".into(), "m10:6379".into());
        stats.sentinels.masters.insert("2".into(), "m2:6379".into());
        stats.sentinels.switched = true;
        stats.ops = OpsStats {
            total: 100,
            fails: 1,
            redis: RedisOpStats { errors: 2 },
            qps: 10,
            cmd: vec![OpStats {
                opstr: "GET".into(),
                calls: 90,
                usecs: 900,
                usecs_percall: 10,
                fails: 1,
                redis_errtype: 2,
            }],
        };
        stats.sessions = SessionStats { total: 5, alive: 3 };
        stats.rusage = Rusage {
            now: "2017-03-08 11:58:36 +0000 UTC".into(),
            cpu: 0.25,
            mem: 4096,
            raw: Some(RawUsage {
                utime: 10_000_000,
                stime: 20_000_000,
                cutime: 0,
                cstime: 0,
                num_threads: 4,
                vm_size: 8192,
                vm_rss: 4096,
            }),
        };
        stats.backend.primary_only = true;
        stats.runtime = Some(RuntimeStats {
            general: RuntimeGeneral {
                alloc: 1000,
                ..RuntimeGeneral::default()
            },
            heap: RuntimeHeap {
                alloc: 1000,
                inuse: 1000,
                ..RuntimeHeap::default()
            },
            gc: RuntimeGc::default(),
            num_procs: 2,
            num_goroutines: 7,
            num_cgo_call: 0,
            mem_offheap: 0,
        });
        let expected = r#"{
    "online": true,
    "closed": false,
    "sentinels": {
        "servers": [
            "s1:26379"
        ],
        "masters": {
            "10": "m10:6379",
            "2": "m2:6379"
        },
        "switched": true
    },
    "ops": {
        "total": 100,
        "fails": 1,
        "redis": {
            "errors": 2
        },
        "qps": 10,
        "cmd": [
            {
                "opstr": "GET",
                "calls": 90,
                "usecs": 900,
                "usecs_percall": 10,
                "fails": 1,
                "redis_errtype": 2
            }
        ]
    },
    "sessions": {
        "total": 5,
        "alive": 3
    },
    "rusage": {
        "now": "2017-03-08 11:58:36 +0000 UTC",
        "cpu": 0.25,
        "mem": 4096,
        "raw": {
            "utime": 10000000,
            "stime": 20000000,
            "cutime": 0,
            "cstime": 0,
            "num_threads": 4,
            "vm_size": 8192,
            "vm_rss": 4096
        }
    },
    "backend": {
        "primary_only": true
    },
    "runtime": {
        "general": {
            "alloc": 1000,
            "sys": 0,
            "lookups": 0,
            "mallocs": 0,
            "frees": 0
        },
        "heap": {
            "alloc": 1000,
            "sys": 0,
            "idle": 0,
            "inuse": 1000,
            "objects": 0
        },
        "gc": {
            "num": 0,
            "cpu_fraction": 0,
            "total_pausems": 0
        },
        "num_procs": 2,
        "num_goroutines": 7,
        "num_cgo_call": 0,
        "mem_offheap": 0
    }
}"#;
        round_trip(&stats, expected);
    }

    #[test]
    fn stats_from_go_with_integer_cpu() {
        // Go writes a float64 of 0 as `0`; it must still parse.
        let s: Stats =
            serde_json::from_str(r#"{"online":true,"rusage":{"cpu":0,"mem":1}}"#).unwrap();
        assert!(s.online);
        assert_eq!(s.rusage.mem, 1);
    }

    #[test]
    fn overview() {
        let o = Overview {
            version: "v1".into(),
            compile: "c1".into(),
            config: serde_json::json!({"product_name": "p"}),
            model: Proxy::default(),
            stats: Stats::default(),
            slots: vec![Slot {
                id: 0,
                ..Slot::default()
            }],
        };
        let json = go_json(&o);
        assert!(json.starts_with(
            "{\n    \"version\": \"v1\",\n    \"compile\": \"c1\",\n    \"config\": {\n        \"product_name\": \"p\"\n    },\n    \"model\": {"
        ));
        assert!(
            json.ends_with("\"slots\": [\n        {\n            \"id\": 0\n        }\n    ]\n}")
        );
        let back: Overview = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o);
        let no_slots = Overview { slots: vec![], ..o };
        assert!(!go_json(&no_slots).contains("slots"));
    }

    #[test]
    fn product_names() {
        for ok in ["codis-demo", "a", "_x", "p1.v2-x_y", "9"] {
            assert!(is_valid_product_name(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "é"] {
            assert!(!is_valid_product_name(bad), "{bad}");
        }
    }

    #[test]
    fn jodis_paths() {
        assert_eq!(jodis_path("demo", "tok", false), "/jodis/demo/proxy-tok");
        assert_eq!(
            jodis_path("demo", "tok", true),
            "/zk/codis/db_demo/proxy/tok"
        );
    }

    #[test]
    fn go_time_format() {
        assert_eq!(format_go_time(0, 0), "1970-01-01 00:00:00 +0000 UTC");
        // 2017-03-08T11:58:36Z = 1488974316 (date -u -d @1488974316).
        assert_eq!(
            format_go_time(1_488_974_316, 123_000_000),
            "2017-03-08 11:58:36.123 +0000 UTC"
        );
        assert_eq!(
            format_go_time(951_782_400, 1),
            "2000-02-29 00:00:00.000000001 +0000 UTC"
        );
        assert_eq!(format_go_time(-1, 0), "1969-12-31 23:59:59 +0000 UTC");
    }

    #[test]
    fn forward_method_names() {
        assert_eq!(forward_method::parse("sync"), Some(forward_method::SYNC));
        assert_eq!(
            forward_method::parse("Semi-Async"),
            Some(forward_method::SEMI_ASYNC)
        );
        assert_eq!(forward_method::parse("async"), None);
    }
}
