//! A product line's proxies: address, admin address, data center, sessions, commands, errors,
//! OPS and status; add, remove, force-remove and reinit.

use codis_model::fe::Role;
use codis_model::fe::change::ProxyCreate;
use leptos::prelude::*;

use crate::api;
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::table::Table;
use crate::format;
use crate::pages::overview::use_live;

/// One proxy's row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    token: String,
    addr: String,
    admin: String,
    datacenter: String,
    sessions: String,
    commands: i64,
    errors: i64,
    ops: i64,
    status: Result<String, String>,
}

/// `/products/:name/proxies`.
#[component]
pub(crate) fn ProxiesPage() -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let rows = Memo::new(move |_| {
        live.stats(|s| {
            s.proxy
                .models
                .iter()
                .map(|p| {
                    let st = s.proxy.stats.get(&p.token);
                    let doc = st.and_then(|x| x.stats.as_ref());
                    let status = match st {
                        None => Err("not probed yet".to_string()),
                        Some(x) if x.timeout => Err("timeout".into()),
                        Some(x) if x.error.is_some() => Err(x
                            .error
                            .as_ref()
                            .map(|e| e.cause.clone())
                            .unwrap_or_default()),
                        Some(_) if doc.is_some_and(|d| d.online) => Ok("online".into()),
                        Some(_) => Err("waiting (not online)".into()),
                    };
                    Row {
                        id: p.id,
                        token: p.token.clone(),
                        addr: p.proxy_addr.clone(),
                        admin: p.admin_addr.clone(),
                        datacenter: p.datacenter.clone(),
                        sessions: doc
                            .map(|d| format!("{} / {}", d.sessions.alive, d.sessions.total))
                            .unwrap_or_default(),
                        commands: doc.map(|d| d.ops.total).unwrap_or(0),
                        errors: doc.map(|d| d.ops.fails + d.ops.redis.errors).unwrap_or(0),
                        ops: doc.map(|d| d.ops.qps).unwrap_or(0),
                        status,
                    }
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    });
    let addr = RwSignal::new(String::new());
    let add = act(move || {
        let p = live.name.get_untracked();
        let body = ProxyCreate {
            addr: addr.get_untracked().trim().to_string(),
        };
        async move {
            api::change("POST", &p, "/proxies", Some(&body)).await?;
            addr.set(String::new());
            Ok(format!("proxy {} added", body.addr))
        }
    });
    view! {
        <h2>"Proxies"</h2>
        <ActionForm name="Add a proxy" label="Add proxy" allowed=can action=add on_done=refresh>
            <label>
                "Admin address"
                <input name="proxy-addr" placeholder="127.0.0.1:11080" required bind:value=addr />
            </label>
        </ActionForm>
        {move || {
            let rows = rows.get();
            if rows.is_empty() {
                return view! { <p class="muted">"No proxy in this product line."</p> }.into_any();
            }
            view! {
                <Table
                    caption="Proxies"
                    headers=vec![
                        "Id", "Proxy address", "Admin address", "Data center", "Sessions (alive / total)",
                        "Commands", "Errors", "OPS", "Status", "Actions",
                    ]
                >
                    {rows.into_iter().map(|r| proxy_row(r, can, refresh)).collect_view()}
                </Table>
            }
                .into_any()
        }}
    }
}

fn proxy_row(r: Row, can: Signal<bool>, refresh: Callback<()>) -> impl IntoView {
    let live = use_live();
    let token = r.token.clone();
    let t2 = token.clone();
    let t3 = token.clone();
    let admin = r.admin.clone();
    let reinit = act(move || {
        let (p, t) = (live.name.get_untracked(), token.clone());
        async move {
            api::change::<()>(
                "POST",
                &p,
                &format!("/proxies/{}/reinit", api::enc(&t)),
                None,
            )
            .await?;
            Ok("reinitialised".into())
        }
    });
    let remove = |force: bool, t: String| {
        act(move || {
            let (p, t) = (live.name.get_untracked(), t.clone());
            async move {
                let q = if force { "?force=1" } else { "" };
                api::change::<()>("DELETE", &p, &format!("/proxies/{}{q}", api::enc(&t)), None)
                    .await?;
                Ok("removed".into())
            }
        })
    };
    let (status_class, status) = match &r.status {
        Ok(s) => ("good", s.clone()),
        Err(e) => ("bad", e.clone()),
    };
    view! {
        <tr>
            <td>{r.id}</td>
            <td>{r.addr}</td>
            <td>{r.admin.clone()}</td>
            <td>{r.datacenter}</td>
            <td class="num">{r.sessions}</td>
            <td class="num">{format::count(r.commands)}</td>
            <td class="num" class:bad={r.errors > 0}>{format::count(r.errors)}</td>
            <td class="num">{format::count(r.ops)}</td>
            <td class=status_class>{status}</td>
            <td class="actions">
                <ActionButton label="Reinit" title=format!("Reinit proxy {admin}") allowed=can action=reinit on_done=refresh />
                <ActionButton
                    label="Remove"
                    title=format!("Remove proxy {}", r.admin)
                    danger=true
                    confirm=format!("Remove proxy {} ({}) from the product line? It is told to go offline first.", r.admin, t2)
                    allowed=can
                    action=remove(false, t2.clone())
                    on_done=refresh
                />
                <ActionButton
                    label="Force remove"
                    title=format!("Force-remove proxy {}", r.admin)
                    danger=true
                    confirm=format!("Force-remove proxy {}? It is removed even if it does not answer, and may keep serving an old slot table.", r.admin)
                    allowed=can
                    action=remove(true, t3)
                    on_done=refresh
                />
            </td>
        </tr>
    }
}
