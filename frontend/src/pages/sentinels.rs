//! A product line's sentinels: address, status, masters and down counts; add, remove, resync.

use codis_model::fe::Role;
use codis_model::fe::change::SentinelAdd;
use leptos::prelude::*;

use crate::api;
use crate::components::action::{ActionButton, ActionForm, act};
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
        {move || {
            let (rows, out_of_sync, masters) = data.get();
            view! {
                {out_of_sync.then(|| view! { <p class="bad">"The sentinels are out of sync: resync them."</p> })}
                {if rows.is_empty() {
                    view! { <p class="muted">"No sentinel in this product line."</p> }.into_any()
                } else {
                    view! {
                        <Table caption="Sentinels" headers=vec!["Address", "Status", "Masters watched", "Masters down", "Actions"]>
                            {rows.into_iter().map(|r| sentinel_row(r, can, refresh)).collect_view()}
                        </Table>
                    }.into_any()
                }}
                {(!masters.is_empty()).then(|| view! {
                    <h3>"Masters as the sentinels elected them"</h3>
                    <ul>{masters.into_iter().map(|(g, m)| view! { <li>{format!("group {g}: {m}")}</li> }).collect_view()}</ul>
                })}
            }
        }}
    }
}

fn sentinel_row(r: Row, can: Signal<bool>, refresh: Callback<()>) -> impl IntoView {
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
    let (cls, status) = match &r.status {
        Ok(s) => ("good", s.clone()),
        Err(e) => ("bad", e.clone()),
    };
    view! {
        <tr>
            <th scope="row">{r.addr.clone()}</th>
            <td class=cls>{status}</td>
            <td class="num">{r.masters}</td>
            <td class="num" class:bad={r.down > 0}>{r.down}</td>
            <td class="actions">
                <ActionButton
                    label="Remove"
                    title=format!("Remove sentinel {}", r.addr)
                    danger=true
                    confirm=format!("Remove sentinel {}? It stops watching this product line's masters.", r.addr)
                    allowed=can
                    action=remove(false, r.addr.clone())
                    on_done=refresh
                />
                <ActionButton
                    label="Force remove"
                    title=format!("Force-remove sentinel {}", r.addr)
                    danger=true
                    confirm=format!("Force-remove sentinel {} even though it may not answer?", r.addr)
                    allowed=can
                    action=remove(true, r.addr.clone())
                    on_done=refresh
                />
            </td>
        </tr>
    }
}
