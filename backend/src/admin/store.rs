//! codis-admin's coordinator commands (`--remove-lock`, `--config-dump [-1]`,
//! `--config-convert`, `--config-restore`, `--dashboard-list`): they read and write Codis
//! 3.2's paths directly, as Codis's `cmd/admin/admin.go` does.
//!
//! Beyond Codis: `--remove-lock` and `--config-restore --confirm` refuse while the dashboard
//! named in the lock still answers at its address (Codis deletes or writes behind its back);
//! `--force` does it anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use codis_coordinator::{Coordinator, paths};
use codis_model::MAX_SLOT_NUM;
use codis_model::proxy::Proxy;
use codis_model::topom::{Group, GroupServer, SlotMapping, Topom};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AdminError, pretty};
use crate::proxy_client::HttpClient;

/// Group ids run 1..=9999.
const MAX_GROUP_ID: i64 = 9999;

/// Codis's `ConfigV3`: what `--config-dump` prints and `--config-restore` reads. Empty lists
/// are omitted, as Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigV3 {
    /// Slot mappings (all 1024 in a dump; only online ones after a conversion).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotMapping>,
    /// Groups, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<Group>,
    /// Proxies, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy: Vec<Proxy>,
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError::Invalid(msg.into())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    c: &Arc<dyn Coordinator>,
    path: &str,
) -> Result<Option<T>, AdminError> {
    match c.read(path, false).await? {
        None => Ok(None),
        Some(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| bad(format!("decode {path}: {e}"))),
    }
}

async fn read_dir<T: serde::de::DeserializeOwned>(
    c: &Arc<dyn Coordinator>,
    dir: &str,
) -> Result<Vec<T>, AdminError> {
    let mut out = Vec::new();
    for path in c.list(dir, false).await? {
        if let Some(v) = read_json(c, &path).await? {
            out.push(v);
        }
    }
    Ok(out)
}

/// `--config-dump --product=P`: slots (all 1024), groups and proxies of a product.
///
/// # Errors
/// The coordinator fails, a node does not decode, or the product has no group and no proxy.
pub async fn dump_v3(c: &Arc<dyn Coordinator>, product: &str) -> Result<ConfigV3, AdminError> {
    let mut group: Vec<Group> = read_dir(c, &paths::group_dir(product)).await?;
    let mut proxy: Vec<Proxy> = read_dir(c, &paths::proxy_dir(product)).await?;
    if group.is_empty() && proxy.is_empty() {
        return Err(bad(format!(
            "product '{product}' not found: it has no group and no proxy"
        )));
    }
    let mut slots: Vec<SlotMapping> = (0..MAX_SLOT_NUM as i64).map(SlotMapping::offline).collect();
    for s in read_dir::<SlotMapping>(c, &paths::slots_dir(product)).await? {
        if let Some(slot) = usize::try_from(s.id).ok().and_then(|i| slots.get_mut(i)) {
            *slot = s;
        }
    }
    group.sort_by_key(|g| g.id);
    proxy.sort_by_key(|p| p.id);
    Ok(ConfigV3 {
        slots,
        group,
        proxy,
    })
}

/// `--config-dump -1`: the Codis 2 tree under `/zk/codis/db_<product>`, recursively, as JSON
/// (a node with children becomes an object by child name; a leaf its JSON value or null).
///
/// # Errors
/// The coordinator fails, a leaf is not JSON, or the tree does not exist.
pub async fn dump_v1(c: &Arc<dyn Coordinator>, product: &str) -> Result<Value, AdminError> {
    let root = format!("/zk/codis/db_{product}");
    let tree = dump_v1_node(c, root).await?;
    if !tree.is_object() {
        return Err(bad(format!(
            "product '{product}' not found: no Codis 2 tree at /zk/codis/db_{product}"
        )));
    }
    Ok(tree)
}

fn dump_v1_node(
    c: &Arc<dyn Coordinator>,
    path: String,
) -> futures_util::future::BoxFuture<'_, Result<Value, AdminError>> {
    Box::pin(async move {
        // A filesystem leaf is a file, which cannot be listed: read it instead.
        let children = match c.list(&path, false).await {
            Ok(children) => children,
            Err(list_err) => {
                return match c.read(&path, false).await {
                    Ok(data) => leaf(&path, data),
                    Err(_) => Err(list_err.into()),
                };
            }
        };
        if children.is_empty() {
            // An empty filesystem directory cannot be read: it is an empty node.
            return match c.read(&path, false).await {
                Ok(data) => leaf(&path, data),
                Err(_) => Ok(Value::Null),
            };
        }
        let mut map = serde_json::Map::new();
        for child in children {
            let name = paths::base_name(&child).to_string();
            map.insert(name, dump_v1_node(c, child).await?);
        }
        Ok(Value::Object(map))
    })
}

fn leaf(path: &str, data: Option<Vec<u8>>) -> Result<Value, AdminError> {
    match data {
        Some(d) if !d.is_empty() => {
            serde_json::from_slice(&d).map_err(|e| bad(format!("decode {path}: {e}")))
        }
        _ => Ok(Value::Null),
    }
}

/// `--config-convert=FILE`: a Codis 2 dump (`--config-dump -1`) to a Codis 3 config: online
/// slots become `{id, group_id}`, servers (`addr`, `group_id`, `type`) become groups with the
/// master first. Servers of one group are taken in name order (Go's map order is random).
///
/// # Errors
/// The dump is not a Codis 2 tree, a slot status is neither online nor offline, a slot is
/// listed twice, or a group id is outside 1..=9999.
pub fn convert_v1(v1: &Value) -> Result<ConfigV3, AdminError> {
    let root = v1
        .as_object()
        .ok_or_else(|| bad("not a Codis 2 dump: want a JSON object"))?;
    let mut out = ConfigV3::default();
    if let Some(slots) = root.get("slots").filter(|v| !v.is_null()) {
        let slots = slots
            .as_object()
            .ok_or_else(|| bad("not a Codis 2 dump: 'slots' is not an object"))?;
        let mut found: BTreeMap<i64, SlotMapping> = BTreeMap::new();
        for (name, s) in slots {
            let sid = s["id"]
                .as_i64()
                .ok_or_else(|| bad(format!("slot {name}: no id")))?;
            let gid = s["group_id"].as_i64().unwrap_or(0);
            match s["state"]["status"].as_str() {
                Some("online") => {}
                Some("offline") => continue,
                other => {
                    return Err(bad(format!(
                        "slot-{sid:04}: invalid slot status {}",
                        other.unwrap_or("(none)")
                    )));
                }
            }
            if !(0..MAX_SLOT_NUM as i64).contains(&sid) {
                return Err(bad(format!("invalid slot id = {sid}")));
            }
            if found.contains_key(&sid) {
                return Err(bad(format!("slot-{sid:04} already exists")));
            }
            found.insert(
                sid,
                SlotMapping {
                    id: sid,
                    group_id: gid,
                    ..SlotMapping::default()
                },
            );
        }
        out.slots = found.into_values().collect();
    }
    if let Some(servers) = root.get("servers").filter(|v| !v.is_null()) {
        let groups = servers
            .as_object()
            .ok_or_else(|| bad("not a Codis 2 dump: 'servers' is not an object"))?;
        let mut found: BTreeMap<i64, Group> = BTreeMap::new();
        for (gname, members) in groups {
            let Some(members) = members.as_object() else {
                continue;
            };
            for (sname, m) in members {
                let addr = m["addr"]
                    .as_str()
                    .ok_or_else(|| bad(format!("server {gname}/{sname}: no addr")))?;
                let gid = m["group_id"].as_i64().unwrap_or(0);
                if !(1..=MAX_GROUP_ID).contains(&gid) {
                    return Err(bad(format!("invalid group = {gid}")));
                }
                let g = found.entry(gid).or_insert_with(|| Group {
                    id: gid,
                    ..Group::default()
                });
                let server = GroupServer {
                    addr: addr.to_string(),
                    ..GroupServer::default()
                };
                if m["type"] == "master" {
                    g.servers.insert(0, server);
                } else {
                    g.servers.push(server);
                }
            }
        }
        out.group = found.into_values().collect();
    }
    Ok(out)
}

/// Codis's checks of a config before a restore: unique proxies, groups and server
/// addresses, group ids 1..=9999, no promotion, valid unique slots without action, each
/// assigned slot's group present and non-empty (Codis also refuses offline slots; we restore
/// them offline).
///
/// # Errors
/// The first check that fails.
pub fn validate_v3(config: &ConfigV3) -> Result<(), AdminError> {
    let mut tokens = std::collections::HashSet::new();
    for p in &config.proxy {
        if !tokens.insert(p.token.as_str()) {
            return Err(bad(format!("proxy-{} already exists", p.token)));
        }
    }
    let mut groups: BTreeMap<i64, &Group> = BTreeMap::new();
    let mut addrs = std::collections::HashSet::new();
    for g in &config.group {
        if !(1..=MAX_GROUP_ID).contains(&g.id) {
            return Err(bad(format!("invalid group id = {}", g.id)));
        }
        if groups.insert(g.id, g).is_some() {
            return Err(bad(format!("group-{:04} already exists", g.id)));
        }
        if !g.promoting.state.is_empty() {
            return Err(bad(format!("group-{:04} is promoting", g.id)));
        }
        for s in &g.servers {
            if !addrs.insert(s.addr.as_str()) {
                return Err(bad(format!("server {} already exists", s.addr)));
            }
        }
    }
    let mut sids = std::collections::HashSet::new();
    for s in &config.slots {
        if !(0..MAX_SLOT_NUM as i64).contains(&s.id) {
            return Err(bad(format!("invalid slot id = {}", s.id)));
        }
        if !sids.insert(s.id) {
            return Err(bad(format!("slot-{:04} already exists", s.id)));
        }
        if !s.action.state.is_empty() {
            return Err(bad(format!("slot-{:04} action is not empty", s.id)));
        }
        // Beyond Codis: an offline slot (group 0) is restored offline, so that a dump of a
        // product with unassigned slots can be restored.
        if s.group_id != 0 && groups.get(&s.group_id).is_none_or(|g| g.servers.is_empty()) {
            return Err(bad(format!(
                "slot-{:04} with group-{:04} doesn't exist or empty",
                s.id, s.group_id
            )));
        }
    }
    Ok(())
}

/// `--config-restore --confirm`: writes slots, groups and proxies of `config` into an empty
/// product.
///
/// # Errors
/// The product already has groups or proxies, or the coordinator fails.
pub async fn restore_v3(
    c: &Arc<dyn Coordinator>,
    product: &str,
    config: &ConfigV3,
) -> Result<(), AdminError> {
    let groups = c.list(&paths::group_dir(product), false).await?;
    let proxies = c.list(&paths::proxy_dir(product), false).await?;
    if !groups.is_empty() || !proxies.is_empty() {
        return Err(bad(format!(
            "product '{product}' is not empty: it has {} group(s) and {} proxy(ies)",
            groups.len(),
            proxies.len()
        )));
    }
    for s in &config.slots {
        let sid = u32::try_from(s.id).unwrap_or_default();
        c.update(&paths::slot_path(product, sid), &encode(s))
            .await?;
    }
    for g in &config.group {
        let gid = u32::try_from(g.id).unwrap_or_default();
        c.update(&paths::group_path(product, gid), &encode(g))
            .await?;
    }
    for p in &config.proxy {
        c.update(&paths::proxy_path(product, &p.token), &encode(p))
            .await?;
    }
    Ok(())
}

/// A model as Codis stores it: JSON indented with 4 spaces.
fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    pretty(&serde_json::to_value(v).unwrap_or_default()).into_bytes()
}

/// The dashboard holding the product's lock, if its node exists and the dashboard answers at
/// the address it recorded (1 s to answer).
///
/// # Errors
/// The coordinator fails.
pub async fn live_lock_holder(
    c: &Arc<dyn Coordinator>,
    product: &str,
) -> Result<Option<Topom>, AdminError> {
    let Some(lock) = read_json::<Topom>(c, &paths::topom_path(product)).await? else {
        return Ok(None);
    };
    let url = format!("http://{}/api/topom/model", lock.admin_addr);
    let answer = HttpClient::new()
        .call::<(), Topom>(
            reqwest::Method::GET,
            &url,
            None,
            Some(Duration::from_secs(1)),
        )
        .await;
    Ok(match answer {
        Ok(model) if model.product_name == product => Some(lock),
        _ => None,
    })
}

/// `--dashboard-list`: `[{"name": product, "dashboard": admin_addr or ""}]`.
///
/// # Errors
/// The coordinator fails.
pub async fn dashboard_list(c: &Arc<dyn Coordinator>) -> Result<Value, AdminError> {
    let mut list = Vec::new();
    for path in c.list(paths::CODIS_DIR, false).await? {
        let name = paths::base_name(&path).to_string();
        let dashboard = match c.read(&paths::topom_path(&name), false).await? {
            Some(data) => serde_json::from_slice::<Topom>(&data)
                .map(|t| t.admin_addr)
                .unwrap_or_default(),
            None => String::new(),
        };
        list.push(serde_json::json!({"name": name, "dashboard": dashboard}));
    }
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codis2_dump_converts() {
        let v1 = json!({
            "slots": {
                "slot_0": {"product_name": "p", "id": 0, "group_id": 1,
                           "state": {"status": "online", "last_op_ts": "0"}},
                "slot_1": {"product_name": "p", "id": 1, "group_id": 2,
                           "state": {"status": "online"}},
                "slot_2": {"product_name": "p", "id": 2, "group_id": 0,
                           "state": {"status": "offline"}}
            },
            "servers": {
                "group_1": {
                    "10.0.0.1:6380": {"type": "slave", "group_id": 1, "addr": "10.0.0.1:6380"},
                    "10.0.0.1:6379": {"type": "master", "group_id": 1, "addr": "10.0.0.1:6379"}
                },
                "group_2": {
                    "10.0.0.2:6379": {"type": "master", "group_id": 2, "addr": "10.0.0.2:6379"}
                }
            },
            "proxy": {"proxy_1": {"addr": "x"}}
        });
        let v3 = convert_v1(&v1).unwrap();
        assert_eq!(v3.slots.len(), 2);
        assert_eq!((v3.slots[1].id, v3.slots[1].group_id), (1, 2));
        assert_eq!(v3.group.len(), 2);
        assert_eq!(v3.group[0].servers[0].addr, "10.0.0.1:6379");
        assert_eq!(v3.group[0].servers[1].addr, "10.0.0.1:6380");
        assert!(v3.proxy.is_empty());
        validate_v3(&v3).unwrap();
        let text = pretty(&serde_json::to_value(&v3).unwrap());
        assert!(!text.contains("\"proxy\""), "omitempty: {text}");

        let bad_status = json!({"slots": {"slot_0": {"id": 0, "state": {"status": "migrate"}}}});
        assert!(
            convert_v1(&bad_status)
                .unwrap_err()
                .to_string()
                .contains("invalid slot status")
        );
        let bad_gid =
            json!({"servers": {"group_0": {"a": {"addr": "a", "group_id": 0, "type": "master"}}}});
        assert!(
            convert_v1(&bad_gid)
                .unwrap_err()
                .to_string()
                .contains("invalid group = 0")
        );
    }

    #[test]
    fn restore_checks_as_codis_does() {
        let group = |id: i64, addr: &str| Group {
            id,
            servers: vec![GroupServer {
                addr: addr.into(),
                ..GroupServer::default()
            }],
            ..Group::default()
        };
        let slot = |id: i64, gid: i64| SlotMapping {
            id,
            group_id: gid,
            ..SlotMapping::default()
        };
        let ok = ConfigV3 {
            slots: vec![slot(0, 1)],
            group: vec![group(1, "a:1")],
            proxy: vec![],
        };
        validate_v3(&ok).unwrap();
        let mut c = ok.clone();
        c.group.push(group(2, "a:1"));
        assert!(
            validate_v3(&c)
                .unwrap_err()
                .to_string()
                .contains("server a:1 already exists")
        );
        let mut c = ok.clone();
        c.slots.push(slot(1, 7));
        assert!(
            validate_v3(&c)
                .unwrap_err()
                .to_string()
                .contains("group-0007 doesn't exist")
        );
        let mut c = ok.clone();
        c.slots[0].action.state = "pending".into();
        assert!(
            validate_v3(&c)
                .unwrap_err()
                .to_string()
                .contains("action is not empty")
        );
        let mut c = ok;
        c.group[0].id = 10000;
        assert!(
            validate_v3(&c)
                .unwrap_err()
                .to_string()
                .contains("invalid group id")
        );
    }
}
