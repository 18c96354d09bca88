//! A product line's groups and their servers: role, replication link and lag, memory and
//! maxmemory, keys, OPS, sync state, out-of-sync and HA warnings; create or remove a group, add
//! or remove a server, promote, replica-group toggle, resync one or all.

use std::collections::BTreeMap;

use codis_model::fe::Role;
use codis_model::fe::change::{
    GroupCreate, ReplicaGroup, ReplicaGroupAll, ServerAdd, ServerRef, SyncAction,
};
use codis_model::topom::{Group, RedisStats};
use leptos::prelude::*;

use crate::api;
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::keyed::keyed;
use crate::components::table::Table;
use crate::format;
use crate::pages::overview::use_live;

/// Keys in every database of an INFO keyspace section (`db0:keys=5,expires=0,...`).
pub(crate) fn info_keys(info: &BTreeMap<String, String>) -> i64 {
    info.iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys=")))
        .filter_map(|n| n.parse::<i64>().ok())
        .sum()
}

/// One server as shown.
#[derive(Debug, Clone, Default, PartialEq)]
struct Server {
    addr: String,
    master: bool,
    datacenter: String,
    link: String,
    lag: String,
    memory: String,
    keys: i64,
    ops: i64,
    sync: String,
    replica_group: bool,
    warning: Option<String>,
}

fn server_rows(g: &Group, stats: &BTreeMap<String, RedisStats>) -> Vec<Server> {
    let master = g.master().to_string();
    g.servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let st = stats.get(&s.addr);
            let info = st.and_then(|x| x.stats.as_ref());
            let field = |k: &str| info.and_then(|m| m.get(k)).cloned().unwrap_or_default();
            let num = |k: &str| field(k).parse::<i64>().unwrap_or(0);
            let down = match st {
                None => Some("not probed yet".to_string()),
                Some(x) if x.timeout => Some("does not answer (timeout)".into()),
                Some(x) => x
                    .error
                    .as_ref()
                    .map(|e| format!("does not answer: {}", e.cause)),
            };
            let (link, lag, mut warning) = if i == 0 {
                (
                    format!("{} replicas connected", field("connected_slaves")),
                    String::new(),
                    down.map(|d| format!("master {d}")),
                )
            } else {
                let link = field("master_link_status");
                let follows = field("master_addr");
                let warn = down.or_else(|| {
                    if !follows.is_empty() && follows != master {
                        Some(format!("replicates {follows}, not the group's master"))
                    } else if link != "up" {
                        Some("replication link is not up".into())
                    } else {
                        None
                    }
                });
                (
                    format!(
                        "{} ({})",
                        if link.is_empty() { "?" } else { &link },
                        follows
                    ),
                    format!("{}s", field("master_last_io_seconds_ago")),
                    warn,
                )
            };
            if s.action.state == "synced_failed" {
                warning = Some("SLAVEOF failed (sync again)".into());
            }
            let maxmem = num("maxmemory");
            Server {
                addr: s.addr.clone(),
                master: i == 0,
                datacenter: s.datacenter.clone(),
                link,
                lag,
                memory: format!(
                    "{} / {}",
                    format::bytes(num("used_memory")),
                    if maxmem > 0 {
                        format::bytes(maxmem)
                    } else {
                        "no limit".into()
                    }
                ),
                keys: info.map(info_keys).unwrap_or(0),
                ops: num("instantaneous_ops_per_sec"),
                sync: if s.action.state.is_empty() {
                    "–".into()
                } else {
                    s.action.state.clone()
                },
                replica_group: s.replica_group,
                warning,
            }
        })
        .collect()
}

/// `/products/:name/groups`.
///
/// Groups and servers are keyed rows (group id, server address): a poll updates their figures
/// in place, so what the user is doing in a row (typed text, an open confirmation, an action's
/// outcome) survives it.
#[component]
pub(crate) fn GroupsPage() -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let ids = Memo::new(move |_| {
        live.stats(|s| s.group.models.iter().map(|g| g.id).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    let empty = Memo::new(move |_| ids.with(Vec::is_empty));
    let new_gid = RwSignal::new(String::new());
    let create = act(move || {
        let p = live.name.get_untracked();
        let gid = new_gid.get_untracked();
        async move {
            let group_id = gid.trim().parse::<i64>().map_err(|_| api::ApiError {
                status: 0,
                message: format!("{gid:?} is not a group id (1 to 9999)"),
            })?;
            api::change("POST", &p, "/groups", Some(&GroupCreate { group_id })).await?;
            new_gid.set(String::new());
            Ok(format!("group {group_id} created"))
        }
    });
    let resync_all = act(move || {
        let p = live.name.get_untracked();
        async move {
            api::change::<()>("POST", &p, "/groups/resync-all", None).await?;
            Ok("every group resynced".into())
        }
    });
    let rg_all = |on: bool| {
        act(move || {
            let p = live.name.get_untracked();
            async move {
                api::change(
                    "PUT",
                    &p,
                    "/groups/replica-group-all",
                    Some(&ReplicaGroupAll { enabled: on }),
                )
                .await?;
                Ok(if on {
                    "replica groups on"
                } else {
                    "replica groups off"
                }
                .into())
            }
        })
    };
    view! {
        <h2>"Groups"</h2>
        <div class="toolbar">
            <ActionForm name="Create a group" label="Create group" allowed=can action=create on_done=refresh>
                <label>
                    "Group id"
                    <input name="group-id" type="number" min="1" max="9999" required bind:value=new_gid />
                </label>
            </ActionForm>
            <ActionButton
                label="Resync all groups"
                confirm="Push every group's slots to every proxy again?"
                allowed=can
                action=resync_all
                on_done=refresh
            />
            <ActionButton label="Replica groups on (all)" confirm="Let every replica of every group serve reads?" allowed=can action=rg_all(true) on_done=refresh />
            <ActionButton label="Replica groups off (all)" allowed=can action=rg_all(false) on_done=refresh />
        </div>
        {live.notice(empty, "No group yet.")}
        {keyed(ids, group_view)}
    }
}

/// One group's section; its figures follow the polls, its forms and buttons stay.
fn group_view(gid: i64) -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let name = live.name;
    let head = Memo::new(move |_| {
        live.stats(|s| {
            s.group
                .models
                .iter()
                .find(|g| g.id == gid)
                .map(|g| (g.out_of_sync, g.promoting.state.clone()))
        })
        .flatten()
        .unwrap_or_default()
    });
    let rows = Memo::new(move |_| {
        live.stats(|s| {
            s.group
                .models
                .iter()
                .find(|g| g.id == gid)
                .map(|g| server_rows(g, &s.group.stats))
        })
        .flatten()
        .unwrap_or_default()
    });
    let addrs =
        Memo::new(move |_| rows.with(|r| r.iter().map(|s| s.addr.clone()).collect::<Vec<_>>()));
    let empty = Memo::new(move |_| addrs.with(Vec::is_empty));
    let hide_table = Signal::derive(move || empty.get());
    let addr = RwSignal::new(String::new());
    let dc = RwSignal::new(String::new());
    let add = act(move || {
        let p = name.get_untracked();
        let body = ServerAdd {
            addr: addr.get_untracked().trim().to_string(),
            datacenter: dc.get_untracked(),
        };
        async move {
            api::change("POST", &p, &format!("/groups/{gid}/servers"), Some(&body)).await?;
            addr.set(String::new());
            Ok(format!("{} added to group {gid}", body.addr))
        }
    });
    let resync = act(move || {
        let p = name.get_untracked();
        async move {
            api::change::<()>("POST", &p, &format!("/groups/{gid}/resync"), None).await?;
            Ok(format!("group {gid} resynced"))
        }
    });
    let remove = act(move || {
        let p = name.get_untracked();
        async move {
            api::change::<()>("DELETE", &p, &format!("/groups/{gid}"), None).await?;
            Ok(format!("group {gid} removed"))
        }
    });
    view! {
        <section class="group" aria-label=format!("Group {gid}") data-group=gid>
            <div class="group-head">
                <h3>{format!("Group {gid}")}</h3>
                {move || head.with(|h| h.0).then(|| view! { <span class="bad">"out of sync: resync it"</span> })}
                {move || head.with(|h| (!h.1.is_empty()).then(|| view! { <span class="warn">{format!("promotion {}", h.1)}</span> }))}
                <ActionButton label="Resync" title=format!("Resync group {gid}") allowed=can action=resync on_done=refresh />
                <ActionButton
                    label="Remove group"
                    title=format!("Remove group {gid}")
                    danger=true
                    confirm=format!("Remove group {gid}? Only an empty group (no server, no slot) can be removed.")
                    allowed=Signal::derive(move || can.get() && empty.get())
                    action=remove
                    on_done=refresh
                />
            </div>
            <div hidden=hide_table>
                <Table
                    caption=format!("Servers of group {gid}")
                    headers=vec!["Server", "Role", "Data center", "Replication", "Lag", "Memory / max", "Keys", "OPS", "Sync", "Replica group", "Actions"]
                >
                    {keyed(addrs, move |a| server_row(gid, a, rows))}
                </Table>
            </div>
            <ActionForm name=format!("Add a server to group {gid}") label="Add server" allowed=can action=add on_done=refresh>
                <label>
                    "Server address"
                    <input name=format!("server-addr-{gid}") placeholder="127.0.0.1:6379" required bind:value=addr />
                </label>
                <label>
                    "Data center"
                    <input name=format!("server-dc-{gid}") bind:value=dc />
                </label>
            </ActionForm>
        </section>
    }
}

/// One server's row, keyed by its address; `rows` is its group's live rows.
fn server_row(gid: i64, addr: String, rows: Memo<Vec<Server>>) -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let name = live.name;
    let row = Memo::new({
        let addr = addr.clone();
        move |_| {
            rows.with(|r| r.iter().find(|s| s.addr == addr).cloned())
                .unwrap_or_default()
        }
    });
    // Signals rather than closures: one copy of the rendering code for every cell.
    let field = move |f: fn(&Server) -> String| Signal::derive(move || row.with(f));
    let master = Memo::new(move |_| row.with(|s| s.master));
    let rg = Memo::new(move |_| row.with(|s| s.replica_group));
    let warned = Memo::new(move |_| row.with(|s| s.warning.is_some()));
    let a = addr.clone();
    let (a1, a2, a3, a4) = (a.clone(), a.clone(), a.clone(), a.clone());
    let promote = act(move || {
        let (p, addr) = (name.get_untracked(), a1.clone());
        async move {
            api::change(
                "POST",
                &p,
                &format!("/groups/{gid}/promote"),
                Some(&ServerRef { addr: addr.clone() }),
            )
            .await?;
            Ok(format!("{addr} promoted"))
        }
    });
    let promote = StoredValue::new_local(promote);
    let remove = act(move || {
        let (p, addr) = (name.get_untracked(), a2.clone());
        async move {
            api::change::<()>(
                "DELETE",
                &p,
                &format!("/groups/{gid}/servers/{}", api::enc(&addr)),
                None,
            )
            .await?;
            Ok(format!("{addr} removed"))
        }
    });
    let sync = act(move || {
        let (p, addr) = (name.get_untracked(), a3.clone());
        async move {
            let body = SyncAction {
                addr,
                action: "create".into(),
            };
            api::change(
                "POST",
                &p,
                &format!("/groups/{gid}/sync-action"),
                Some(&body),
            )
            .await?;
            Ok("sync queued".into())
        }
    });
    let toggle = act(move || {
        let (p, addr) = (name.get_untracked(), a4.clone());
        // The state shown when the button was pressed.
        let enabled = !rg.get_untracked();
        async move {
            let body = ReplicaGroup { addr, enabled };
            api::change(
                "PUT",
                &p,
                &format!("/groups/{gid}/replica-group"),
                Some(&body),
            )
            .await?;
            Ok(String::new())
        }
    });
    let promote_view = {
        let a = a.clone();
        move || {
            (!master.get()).then(|| {
                view! {
                    <ActionButton
                        label="Promote"
                        title=format!("Promote {a}")
                        confirm=format!("Promote {a} to master of group {gid}? The group's slots are locked on every proxy during the switch.")
                        allowed=can
                        action=promote.get_value()
                        on_done=refresh
                    />
                }
            })
        }
    };
    let toggle_label = Signal::derive(move || {
        if rg.get() {
            "Replica group off"
        } else {
            "Replica group on"
        }
        .to_string()
    });
    let toggle_title = {
        let a = a.clone();
        Signal::derive(move || {
            format!(
                "Turn replica group {} for {a}",
                if rg.get() { "off" } else { "on" }
            )
        })
    };
    view! {
        <tr class:bad-row=warned data-server=a.clone()>
            <th scope="row">{a.clone()}</th>
            <td>{field(|s| if s.master { "master" } else { "replica" }.to_string())}</td>
            <td>{field(|s| s.datacenter.clone())}</td>
            <td>
                {field(|s| s.link.clone())} " "
                {move || row.with(|s| s.warning.clone()).map(|w| view! { <div class="bad">{w}</div> })}
            </td>
            <td>{field(|s| s.lag.clone())}</td>
            <td>{field(|s| s.memory.clone())}</td>
            <td class="num keys">{field(|s| format::count(s.keys))}</td>
            <td class="num">{field(|s| format::count(s.ops))}</td>
            <td>{field(|s| s.sync.clone())}</td>
            <td>{field(|s| if s.replica_group { "on" } else { "off" }.to_string())}</td>
            <td class="actions">
                {promote_view}
                <ActionButton label="Sync" title=format!("Sync {a}") allowed=can action=sync on_done=refresh />
                <ActionButton label=toggle_label title=toggle_title allowed=can action=toggle on_done=refresh />
                <ActionButton
                    label="Remove"
                    title=format!("Remove {a} from group {gid}")
                    danger=true
                    confirm=format!("Remove {a} from group {gid}? A master can only be removed when it is the last server.")
                    allowed=can
                    action=remove
                    on_done=refresh
                />
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_database() {
        let info: BTreeMap<String, String> = [
            ("db0", "keys=5,expires=1,avg_ttl=0"),
            ("db3", "keys=2,expires=0,avg_ttl=0"),
            ("dbx", "keys=100"),
            ("used_memory", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(info_keys(&info), 7);
    }
}
