//! The dashboard's ("topom") documents: what it stores in the coordinator (Topom, SlotMapping,
//! Group, the sentinel list) and what its HTTP API returns (stats, overview).
//!
//! Field names, order and omit-when-empty rules are Codis 3.2's (Go `encoding/json` with
//! `omitempty`), so a Codis deployment's coordinator data reads as it is and Codis's tools can
//! read ours. Types that the dashboard adds beyond Codis are marked; they only add fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::proxy::{Proxy, Sentinel, Stats as ProxyStatsDoc};

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Go encodes a nil slice as `null`; read it as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Action states (`pkg/models/action.go`).
pub mod action {
    /// No action.
    pub const NOTHING: &str = "";
    /// Queued, nothing done yet.
    pub const PENDING: &str = "pending";
    /// Stored before the proxies are told.
    pub const PREPARING: &str = "preparing";
    /// Every proxy has locked the slot (or the group).
    pub const PREPARED: &str = "prepared";
    /// Keys are moving.
    pub const MIGRATING: &str = "migrating";
    /// Done; the next step clears the action.
    pub const FINISHED: &str = "finished";
    /// A server's SLAVEOF is running.
    pub const SYNCING: &str = "syncing";
    /// A server's SLAVEOF succeeded.
    pub const SYNCED: &str = "synced";
    /// A server's SLAVEOF failed.
    pub const SYNCED_FAILED: &str = "synced_failed";
}

/// The dashboard's identity; also the content of `/codis3/<product>/topom`, which doubles as
/// the product's dashboard lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Topom {
    /// Token: MD5 of the host's MACs, the product and the admin listener address.
    pub token: String,
    /// Start time, Go `time.Time.String()` format.
    pub start_time: String,
    /// Advertised admin (HTTP) address.
    pub admin_addr: String,
    /// Product name.
    pub product_name: String,
    /// Process id.
    pub pid: i64,
    /// Working directory.
    pub pwd: String,
    /// `uname -a`.
    pub sys: String,
}

/// `SlotMapping.action`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotAction {
    /// Order of the action among all pending ones (max + 1 when created).
    #[serde(skip_serializing_if = "is_zero")]
    pub index: i64,
    /// One of [`action`]'s states.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Group the slot moves to.
    #[serde(skip_serializing_if = "is_zero")]
    pub target_id: i64,
}

/// A slot's assignment (`/codis3/<product>/slots/slot-%04d`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotMapping {
    /// Slot number.
    pub id: i64,
    /// Group serving the slot; 0 when offline.
    pub group_id: i64,
    /// The migration in progress, if any.
    pub action: SlotAction,
}

impl SlotMapping {
    /// The mapping of a slot nobody touched yet: offline, idle.
    pub fn offline(id: i64) -> SlotMapping {
        SlotMapping {
            id,
            ..SlotMapping::default()
        }
    }
}

/// `GroupServer.action` and `Group.promoting`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerAction {
    /// Order among pending actions (max + 1); for `promoting`, the server's index.
    #[serde(skip_serializing_if = "is_zero")]
    pub index: i64,
    /// One of [`action`]'s states.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
}

/// One server of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupServer {
    /// `host:port` of the codis-server.
    #[serde(rename = "server")]
    pub addr: String,
    /// Data center, used to rank replicas for reads.
    pub datacenter: String,
    /// The sync (SLAVEOF) action of this server.
    pub action: ServerAction,
    /// Serves reads for its group when true.
    pub replica_group: bool,
}

/// A group: one master (`servers[0]`) and its replicas (`/codis3/<product>/group/group-%04d`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    /// 1..=9999.
    pub id: i64,
    /// Master first.
    #[serde(deserialize_with = "null_as_empty")]
    pub servers: Vec<GroupServer>,
    /// The manual failover in progress, if any.
    pub promoting: ServerAction,
    /// The proxies' view of this group may be stale (resync it).
    pub out_of_sync: bool,
}

impl Group {
    /// The master's address, or empty when the group has no server.
    pub fn master(&self) -> &str {
        self.servers.first().map_or("", |s| s.addr.as_str())
    }

    /// True while a promotion holds the group's slots locked on the proxies.
    pub fn is_promoting_prepared(&self) -> bool {
        self.promoting.state == action::PREPARED
    }
}

/// The error of a remote call as Codis encodes it (`{"Cause": ..., "Stack": [...]}`, Go field
/// names). Also the body of every failed dashboard or proxy API call (HTTP status 800).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteError {
    /// The message.
    #[serde(rename = "Cause")]
    pub cause: String,
    /// Go's stack frames; we send none.
    #[serde(rename = "Stack", skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<serde_json::Value>>,
}

impl RemoteError {
    /// An error with this message and no stack.
    pub fn new(cause: impl Into<String>) -> RemoteError {
        RemoteError {
            cause: cause.into(),
            stack: None,
        }
    }
}

/// One monitored master as a sentinel reports it (`SENTINEL masters`/`slaves` maps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SentinelGroup {
    /// The master's fields.
    pub master: BTreeMap<String, String>,
    /// Its replicas' fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slaves: Vec<BTreeMap<String, String>>,
}

/// What the dashboard last learned of one codis-server or sentinel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisStats {
    /// INFO fields (plus `maxmemory` and `master_addr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<BTreeMap<String, String>>,
    /// Why the last probe failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
    /// For a sentinel: this product's masters it monitors, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<BTreeMap<String, SentinelGroup>>,
    /// When the probe finished (Unix seconds).
    pub unixtime: i64,
    /// The probe did not answer within 1 s.
    #[serde(skip_serializing_if = "is_false")]
    pub timeout: bool,
}

/// What the dashboard last learned of one proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyStats {
    /// The proxy's stats document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<ProxyStatsDoc>,
    /// Why the last probe failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
    /// When the probe finished (Unix seconds).
    pub unixtime: i64,
    /// The probe did not answer within 1 s.
    #[serde(skip_serializing_if = "is_false")]
    pub timeout: bool,
}

/// `stats.group`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupStats {
    /// Every group, by id.
    pub models: Vec<Group>,
    /// Server address → last probe.
    pub stats: BTreeMap<String, RedisStats>,
}

/// `stats.proxy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyGroupStats {
    /// Every proxy, by id.
    pub models: Vec<Proxy>,
    /// Proxy token → last probe.
    pub stats: BTreeMap<String, ProxyStats>,
}

/// `stats.slot_action.progress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotActionProgress {
    /// `""`, `[OK] Slot[%04d]@DB[%d]=%d` (keys left) or `[ERROR] Slot[%04d]: <error>`.
    pub status: String,
}

/// Beyond Codis: the progress of one migrating slot, so a console can draw it without
/// polling the servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotMigration {
    /// The slot.
    pub id: i64,
    /// Source group.
    pub from: i64,
    /// Target group.
    pub to: i64,
    /// Keys left in the database being moved, as the last migration call reported.
    pub remaining: i64,
    /// Keys moved so far.
    pub moved: i64,
}

/// `stats.slot_action`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotActionStats {
    /// Microseconds slept between migration steps.
    pub interval: i64,
    /// Migrations are paused.
    pub disabled: bool,
    /// The last status line.
    pub progress: SlotActionProgress,
    /// Migration executors running now.
    pub executor: i64,
    /// Beyond Codis: slots with an action (any state).
    #[serde(default)]
    pub pending: i64,
    /// Beyond Codis: the slots moving right now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrating: Vec<SlotMigration>,
}

/// `stats.sentinels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SentinelsStats {
    /// The stored sentinel list.
    pub model: Sentinel,
    /// Sentinel address → last probe.
    pub stats: BTreeMap<String, RedisStats>,
    /// Group id (decimal string) → master address, as the sentinels elected it.
    pub masters: BTreeMap<String, String>,
}

/// Beyond Codis: the coordinator's health as the dashboard sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorStats {
    /// `zookeeper`, `etcd` or `filesystem`.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// The last check succeeded.
    pub online: bool,
    /// The last error, when not online.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// When it was last checked (Unix seconds).
    pub unixtime: i64,
}

/// `GET /topom/stats`, `/api/topom/stats/:xauth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopomStats {
    /// The dashboard is shutting down.
    pub closed: bool,
    /// All 1024 slots.
    pub slots: Vec<SlotMapping>,
    /// Groups and server probes.
    pub group: GroupStats,
    /// Proxies and proxy probes.
    pub proxy: ProxyGroupStats,
    /// Migration state.
    pub slot_action: SlotActionStats,
    /// Sentinels.
    pub sentinels: SentinelsStats,
    /// Beyond Codis: the coordinator's health.
    #[serde(default)]
    pub coordinator: CoordinatorStats,
}

/// `GET /topom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopomOverview {
    /// Version string.
    pub version: String,
    /// Build description.
    pub compile: String,
    /// The config as JSON, secrets removed (coordinator_auth kept, as Codis does).
    pub config: serde_json::Value,
    /// The dashboard model.
    pub model: Topom,
    /// The stats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<TopomStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_json<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        v.serialize(&mut ser).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn idle_slot_has_an_empty_action() {
        let s = SlotMapping::offline(5);
        assert_eq!(
            go_json(&s),
            "{\n    \"id\": 5,\n    \"group_id\": 0,\n    \"action\": {}\n}"
        );
    }

    #[test]
    fn migrating_slot() {
        let s = SlotMapping {
            id: 1,
            group_id: 2,
            action: SlotAction {
                index: 7,
                state: action::MIGRATING.into(),
                target_id: 3,
            },
        };
        let text = go_json(&s);
        assert_eq!(
            text,
            r#"{
    "id": 1,
    "group_id": 2,
    "action": {
        "index": 7,
        "state": "migrating",
        "target_id": 3
    }
}"#
        );
        assert_eq!(serde_json::from_str::<SlotMapping>(&text).unwrap(), s);
    }

    #[test]
    fn group_layout() {
        let g = Group {
            id: 1,
            servers: vec![GroupServer {
                addr: "127.0.0.1:6379".into(),
                datacenter: String::new(),
                action: ServerAction::default(),
                replica_group: false,
            }],
            promoting: ServerAction::default(),
            out_of_sync: false,
        };
        assert_eq!(
            go_json(&g),
            r#"{
    "id": 1,
    "servers": [
        {
            "server": "127.0.0.1:6379",
            "datacenter": "",
            "action": {},
            "replica_group": false
        }
    ],
    "promoting": {},
    "out_of_sync": false
}"#
        );
        let nil: Group = serde_json::from_str(r#"{"id":2,"servers":null}"#).unwrap();
        assert!(nil.servers.is_empty());
        assert_eq!(g.master(), "127.0.0.1:6379");
    }

    #[test]
    fn remote_error_uses_go_names() {
        let e = RemoteError::new("boom");
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"Cause":"boom"}"#);
        let back: RemoteError =
            serde_json::from_str(r#"{"Cause":"x","Stack":[{"Name":"a","File":"b","Line":1}]}"#)
                .unwrap();
        assert_eq!(back.cause, "x");
    }
}
