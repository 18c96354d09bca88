//! A product line's sentinels: address, status, masters and down counts; add, remove, resync.

use codis_model::fe::Role;
use codis_model::fe::change::SentinelAdd;
use leptos::prelude::*;

use crate::api;
use crate::components::StatusCell;
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::keyed::keyed;
use crate::components::table::Table;
use crate::pages::overview::use_live;

/// One sentinel as shown.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    addr: String,
    status: Result<String, String>,
    masters: usize,
    down: usize,
}

/// `/products/:name/sentinels`.
#[component]
pub(crate) fn SentinelsPage() -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let name = live.name;
    let data = Memo::new(move |_| {
        live.stats(|s| {
            let rows: Vec<Row> = s
                .sentinels
                .model
                .servers
                .iter()
                .map(|addr| {
                    let st = s.sentinels.stats.get(addr);
                    let status = match st {
                        None => Err("not probed yet".to_string()),
                        Some(x) if x.timeout => Err("timeout".into()),
                        Some(x) => match &x.error {
                            Some(e) => Err(e.cause.clone()),
                            None => Ok("online".into()),
                        },
                    };
                    let masters = st.and_then(|x| x.sentinel.as_ref());
                    let down = masters
                        .map(|m| {
                            m.values()
                                .filter(|g| {
                                    g.master.get("flags").is_some_and(|f| f.contains("down"))
                                })
                                .count()
                        })
                        .unwrap_or(0);
                    Row {
                        addr: addr.clone(),
                        status,
                        masters: masters.map_or(0, |m| m.len()),
                        down,
                    }
                })
                .collect();
            (
                rows,
                s.sentinels.model.out_of_sync,
                s.sentinels.masters.clone(),
            )
        })
        .unwrap_or_default()
    });
    let rows = Memo::new(move |_| data.with(|d| d.0.clone()));
    let addrs =
        Memo::new(move |_| rows.with(|r| r.iter().map(|r| r.addr.clone()).collect::<Vec<_>>()));
    let empty = Memo::new(move |_| addrs.with(Vec::is_empty));
    let addr = RwSignal::new(String::new());
    let add = act(move || {
        let p = name.get_untracked();
        let body = SentinelAdd {
            addr: addr.get_untracked().trim().to_string(),
        };
        async move {
            api::change("POST", &p, "/sentinels", Some(&body)).await?;
            addr.set(String::new());
            Ok(format!("sentinel {} added", body.addr))
        }
    });
    let resync = act(move || {
        let p = name.get_untracked();
        async move {
            api::change::<()>("POST", &p, "/sentinels/resync-all", None).await?;
            Ok("sentinels resynced".into())
        }
    });
    view! {
        <h2>"Sentinels"</h2>
        <div class="toolbar">
            <ActionForm name="Add a sentinel" label="Add sentinel" allowed=can action=add on_done=refresh>
                <label>"Sentinel address" <input name="sentinel-addr" placeholder="127.0.0.1:26379" required bind:value=addr /></label>
            </ActionForm>
            <ActionButton
                label="Resync all sentinels"
                confirm="Make every sentinel watch every group's master again (their monitors are reset)?"
                allowed=can
                action=resync
                on_done=refresh
            />
        </div>
        {live.notice(empty, "No sentinel in this product line.")}
        {move || data.with(|d| d.1).then(|| view! { <p class="bad">"The sentinels are out of sync: resync them."</p> })}
        <div hidden=move || empty.get()>
            <Table caption="Sentinels" headers=vec!["Address", "Status", "Masters watched", "Masters down", "Actions"]>
                {keyed(addrs, move |a| sentinel_row(a, rows, can, refresh))}
            </Table>
        </div>
        {move || {
            let masters = data.with(|d| d.2.clone());
            (!masters.is_empty()).then(|| view! {
                <h3>"Masters as the sentinels elected them"</h3>
                <ul>{masters.into_iter().map(|(g, m)| view! { <li>{format!("group {g}: {m}")}</li> }).collect_view()}</ul>
            })
        }}
    }
}

/// One sentinel's row, keyed by its address; `rows` is every sentinel's live row.
fn sentinel_row(
    addr: String,
    rows: Memo<Vec<Row>>,
    can: Signal<bool>,
    refresh: Callback<()>,
) -> impl IntoView {
    let r = Memo::new({
        let addr = addr.clone();
        move |_| {
            rows.with(|rs| rs.iter().find(|r| r.addr == addr).cloned())
                .unwrap_or_else(|| Row {
                    addr: addr.clone(),
                    status: Err("removed".into()),
                    masters: 0,
                    down: 0,
                })
        }
    });
    let name = use_live().name;
    let remove = |force: bool, a: String| {
        act(move || {
            let (p, a) = (name.get_untracked(), a.clone());
            async move {
                let q = if force { "?force=1" } else { "" };
                api::change::<()>(
                    "DELETE",
                    &p,
                    &format!("/sentinels/{}{q}", api::enc(&a)),
                    None,
                )
                .await?;
                Ok("removed".into())
            }
        })
    };
    // Signals rather than closures: one copy of the rendering code for every cell.
    let field = move |f: fn(&Row) -> String| Signal::derive(move || r.with(f));
    let flag = move |f: fn(&Row) -> bool| Signal::derive(move || r.with(f));
    view! {
        <tr data-sentinel=addr.clone()>
            <th scope="row">{addr.clone()}</th>
            <StatusCell status=Signal::derive(move || r.with(|r| r.status.clone())) />
            <td class="num">{field(|r| r.masters.to_string())}</td>
            <td class="num" class:bad=flag(|r| r.down > 0)>{field(|r| r.down.to_string())}</td>
            <td class="actions">
                <ActionButton
                    label="Remove"
                    title=format!("Remove sentinel {addr}")
                    danger=true
                    confirm=format!("Remove sentinel {addr}? It stops watching this product line's masters.")
                    allowed=can
                    action=remove(false, addr.clone())
                    on_done=refresh
                />
                <ActionButton
                    label="Force remove"
                    title=format!("Force-remove sentinel {addr}")
                    danger=true
                    confirm=format!("Force-remove sentinel {addr} even though it may not answer?")
                    allowed=can
                    action=remove(true, addr.clone())
                    on_done=refresh
                />
            </td>
        </tr>
    }
}
