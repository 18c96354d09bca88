//! The status reads of codis-admin (`--slots-status`, `--proxy-status`, `--group-status`):
//! a table for people by default, one JSON document for scripts with `--json`. Both are built
//! from the dashboard's stats document as JSON values, so a Codis 3.2 dashboard's stats read
//! as well as ours.
//!
//! The first column keeps Codis's markers (`[ ]` healthy, `[E]` error, `[T]` timeout, `[?]`
//! no probe yet, `[X]` replication differs from what the group expects), so scripts that grep
//! Codis's lines keep working.

use serde_json::{Value, json};

/// Renders rows as a left-aligned table with a header; columns are two spaces apart and the
/// last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(header.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.iter().cloned().map(line));
    lines.join("\n")
}

/// Codis's health marker of one probe (`RedisStats` or `ProxyStats` as JSON; `Null` when the
/// dashboard has not probed it yet).
fn marker(probe: &Value) -> (&'static str, &'static str) {
    if probe.is_null() {
        ("[?]", "unknown")
    } else if !probe["error"].is_null() {
        ("[E]", "error")
    } else if probe["timeout"].as_bool() == Some(true) || probe["stats"].is_null() {
        ("[T]", "timeout")
    } else {
        ("[ ]", "ok")
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// `--proxy-status`: one entry per proxy (sorted by id) with its health.
pub fn proxy_status_json(stats: &Value) -> Value {
    let models = stats["proxy"]["models"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let list: Vec<Value> = models
        .iter()
        .map(|p| {
            let token = text(&p["token"]);
            let probe = &stats["proxy"]["stats"][token.as_str()];
            let (_, status) = marker(probe);
            let mut entry = json!({
                "id": int(&p["id"]),
                "token": token,
                "admin_addr": p["admin_addr"],
                "proxy_addr": p["proxy_addr"],
                "datacenter": p["datacenter"],
                "status": status,
            });
            if status == "ok" {
                let s = &probe["stats"];
                entry["online"] = s["online"].clone();
                entry["sessions"] = json!(int(&s["sessions"]["alive"]));
                entry["ops_total"] = json!(int(&s["ops"]["total"]));
                entry["ops_fails"] = json!(int(&s["ops"]["fails"]));
                entry["qps"] = json!(int(&s["ops"]["qps"]));
            } else if status == "error" {
                entry["error"] = probe["error"]["Cause"].clone();
            }
            entry
        })
        .collect();
    Value::Array(list)
}

/// `--proxy-status` as a table: `[ ]`/`[E]`/`[T]`/`[?]`, id, token, addresses, sessions, QPS.
pub fn proxy_status_table(stats: &Value) -> String {
    let list = proxy_status_json(stats);
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let mark = match p["status"].as_str() {
                Some("ok") => "[ ]",
                Some("error") => "[E]",
                Some("timeout") => "[T]",
                _ => "[?]",
            };
            let ok = p["status"] == "ok";
            let num = |k: &str| {
                if ok {
                    int(&p[k]).to_string()
                } else {
                    "-".into()
                }
            };
            vec![
                mark.into(),
                format!("proxy-{}", int(&p["id"])),
                text(&p["token"]),
                text(&p["admin_addr"]),
                text(&p["proxy_addr"]),
                num("sessions"),
                num("qps"),
                if ok { String::new() } else { text(&p["error"]) },
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no proxy".into();
    }
    table(
        &[
            "", "PROXY", "TOKEN", "ADMIN", "ADDR", "SESSIONS", "QPS", "ERROR",
        ],
        &rows,
    )
}

/// `--group-status`: one entry per server, with what it replicates from (`NO:ONE` or
/// `<master>:<link status>`) and what the group expects.
pub fn group_status_json(stats: &Value) -> Value {
    let groups = stats["group"]["models"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut list = Vec::new();
    for g in &groups {
        let servers = g["servers"].as_array().cloned().unwrap_or_default();
        let master = servers
            .first()
            .map(|s| text(&s["server"]))
            .unwrap_or_default();
        for (i, s) in servers.iter().enumerate() {
            let addr = text(&s["server"]);
            let probe = &stats["group"]["stats"][addr.as_str()];
            let (_, mut status) = marker(probe);
            let expect = if i == 0 {
                "NO:ONE".to_string()
            } else {
                format!("{master}:up")
            };
            let mut entry = json!({
                "group": int(&g["id"]),
                "index": i,
                "server": addr,
                "datacenter": s["datacenter"],
                "role": if i == 0 { "master" } else { "replica" },
                "expected": expect,
            });
            if status == "ok" {
                let info = &probe["stats"];
                let replication = match info["master_addr"].as_str() {
                    Some(m) => format!("{m}:{}", text(&info["master_link_status"])),
                    None => "NO:ONE".into(),
                };
                if replication != expect {
                    status = "mismatch";
                }
                entry["replication"] = json!(replication);
                entry["used_memory"] = json!(int(&info["used_memory"]));
                entry["maxmemory"] = json!(int(&info["maxmemory"]));
            } else if status == "error" {
                entry["error"] = probe["error"]["Cause"].clone();
            }
            entry["status"] = json!(status);
            if let Some(state) = s["action"]["state"].as_str() {
                entry["sync_action"] = json!(state);
            }
            list.push(entry);
        }
    }
    Value::Array(list)
}

/// `--group-status` as a table; `[X]` marks a server whose replication is not what the group
/// expects.
pub fn group_status_table(stats: &Value) -> String {
    let list = group_status_json(stats);
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let status = s["status"].as_str().unwrap_or_default();
            let mark = match status {
                "ok" => "[ ]",
                "mismatch" => "[X]",
                "error" => "[E]",
                "timeout" => "[T]",
                _ => "[?]",
            };
            let replication = match status {
                "ok" => text(&s["replication"]),
                "mismatch" => format!(
                    "{} (want {})",
                    text(&s["replication"]),
                    text(&s["expected"])
                ),
                "error" => text(&s["error"]),
                _ => "-".into(),
            };
            vec![
                mark.into(),
                format!("group-{:04}", int(&s["group"])),
                int(&s["index"]).to_string(),
                text(&s["server"]),
                text(&s["role"]),
                replication,
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no group".into();
    }
    table(&["", "GROUP", "#", "SERVER", "ROLE", "REPLICATION"], &rows)
}

/// `--slots-status` as a table: runs of consecutive slots with the same group and action,
/// then a summary line.
pub fn slots_status_table(stats: &Value) -> String {
    let slots = stats["slots"].as_array().cloned().unwrap_or_default();
    let masters: std::collections::HashMap<i64, String> = stats["group"]["models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|g| (int(&g["id"]), text(&g["servers"][0]["server"])))
        .collect();
    let key = |s: &Value| {
        let state = text(&s["action"]["state"]);
        let action = if state.is_empty() {
            String::new()
        } else {
            format!("{state} -> group {}", int(&s["action"]["target_id"]))
        };
        (int(&s["group_id"]), action)
    };
    let mut rows = Vec::new();
    let (mut offline, mut moving) = (0, 0);
    let mut i = 0;
    while i < slots.len() {
        let k = key(&slots[i]);
        let mut j = i;
        while j + 1 < slots.len() && key(&slots[j + 1]) == k {
            j += 1;
        }
        let n = j - i + 1;
        if k.0 == 0 {
            offline += n;
        }
        if !k.1.is_empty() {
            moving += n;
        }
        let (gid, action) = k;
        rows.push(vec![
            format!("[{:04},{:04}]", int(&slots[i]["id"]), int(&slots[j]["id"])),
            n.to_string(),
            if gid == 0 {
                "offline".into()
            } else {
                format!("group-{gid:04}")
            },
            masters.get(&gid).cloned().unwrap_or_default(),
            action,
        ]);
        i = j + 1;
    }
    let mut out = table(&["SLOTS", "COUNT", "GROUP", "MASTER", "ACTION"], &rows);
    out.push_str(&format!(
        "\n{} slots: {} assigned, {offline} offline, {moving} with an action",
        slots.len(),
        slots.len() - offline
    ));
    let progress = text(&stats["slot_action"]["progress"]["status"]);
    if !progress.is_empty() {
        out.push_str(&format!("\nlast migration step: {progress}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Value {
        let mut slots: Vec<Value> = (0..1024)
            .map(|i| json!({"id": i, "group_id": if i < 512 { 1 } else { 0 }, "action": {}}))
            .collect();
        slots[3]["action"] = json!({"index": 1, "state": "pending", "target_id": 2});
        json!({
            "slots": slots,
            "group": {
                "models": [
                    {"id": 1, "servers": [
                        {"server": "h:1", "datacenter": "", "action": {}, "replica_group": false},
                        {"server": "h:2", "datacenter": "", "action": {"index": 2, "state": "synced"}, "replica_group": false}
                    ], "promoting": {}, "out_of_sync": false},
                    {"id": 2, "servers": [
                        {"server": "h:3", "datacenter": "", "action": {}, "replica_group": false}
                    ], "promoting": {}, "out_of_sync": false}
                ],
                "stats": {
                    "h:1": {"stats": {"used_memory": "10"}, "unixtime": 1},
                    "h:2": {"stats": {"master_addr": "h:1", "master_link_status": "down"}, "unixtime": 1},
                    "h:3": {"error": {"Cause": "connection refused"}, "unixtime": 1}
                }
            },
            "proxy": {
                "models": [
                    {"id": 1, "token": "t1", "admin_addr": "a:1", "proxy_addr": "p:1"},
                    {"id": 2, "token": "t2", "admin_addr": "a:2", "proxy_addr": "p:2"}
                ],
                "stats": {
                    "t1": {"stats": {"online": true, "sessions": {"alive": 3}, "ops": {"total": 9, "fails": 0, "qps": 4}}, "unixtime": 1},
                    "t2": {"timeout": true, "unixtime": 1}
                }
            },
            "slot_action": {"progress": {"status": ""}}
        })
    }

    #[test]
    fn slots_table_groups_runs() {
        let t = slots_status_table(&stats());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("SLOTS"), "{t}");
        assert!(
            lines[1].starts_with("[0000,0002]  3      group-0001  h:1"),
            "{t}"
        );
        assert!(lines[2].contains("pending -> group 2"), "{t}");
        assert!(lines[3].starts_with("[0004,0511]"), "{t}");
        assert!(lines[4].starts_with("[0512,1023]  512    offline"), "{t}");
        assert_eq!(
            lines[5],
            "1024 slots: 512 assigned, 512 offline, 1 with an action"
        );
    }

    #[test]
    fn group_status_marks_wrong_replication() {
        let j = group_status_json(&stats());
        assert_eq!(j[0]["status"], "ok");
        assert_eq!(j[1]["status"], "mismatch");
        assert_eq!(j[1]["replication"], "h:1:down");
        assert_eq!(j[1]["expected"], "h:1:up");
        assert_eq!(j[1]["sync_action"], "synced");
        assert_eq!(j[2]["status"], "error");
        let t = group_status_table(&stats());
        assert!(t.contains("[X]  group-0001  1  h:2"), "{t}");
        assert!(t.contains("[E]  group-0002"), "{t}");
        assert!(t.contains("connection refused"), "{t}");
    }

    #[test]
    fn proxy_status_marks_timeouts() {
        let j = proxy_status_json(&stats());
        assert_eq!(j[0]["status"], "ok");
        assert_eq!(j[0]["sessions"], 3);
        assert_eq!(j[1]["status"], "timeout");
        let t = proxy_status_table(&stats());
        assert!(
            t.lines().nth(1).unwrap().starts_with("[ ]  proxy-1  t1"),
            "{t}"
        );
        assert!(
            t.lines().nth(2).unwrap().starts_with("[T]  proxy-2  t2"),
            "{t}"
        );
        assert_eq!(proxy_status_table(&json!({})), "no proxy");
    }
}
