//! A product line's proxies: address, admin address, data center, sessions, commands, errors,
//! OPS and status; add, remove, force-remove and reinit.

use codis_model::fe::Role;
use codis_model::fe::change::ProxyCreate;
use leptos::prelude::*;

use crate::api;
use crate::components::StatusCell;
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::keyed::keyed;
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

impl Default for Row {
    fn default() -> Row {
        Row {
            id: 0,
            token: String::new(),
            addr: String::new(),
            admin: String::new(),
            datacenter: String::new(),
            sessions: String::new(),
            commands: 0,
            errors: 0,
            ops: 0,
            status: Err(String::new()),
        }
    }
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
    let tokens =
        Memo::new(move |_| rows.with(|r| r.iter().map(|r| r.token.clone()).collect::<Vec<_>>()));
    let empty = Memo::new(move |_| tokens.with(Vec::is_empty));
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
        {live.notice(empty, "No proxy in this product line.")}
        <div hidden=move || empty.get()>
            <Table
                caption="Proxies"
                headers=vec![
                    "Id", "Proxy address", "Admin address", "Data center", "Sessions (alive / total)",
                    "Commands", "Errors", "OPS", "Status", "Actions",
                ]
            >
                {keyed(tokens, move |t| proxy_row(t, rows, can, refresh))}
            </Table>
        </div>
    }
}

/// One proxy's row, keyed by its token; `rows` is every proxy's live row.
fn proxy_row(
    token: String,
    rows: Memo<Vec<Row>>,
    can: Signal<bool>,
    refresh: Callback<()>,
) -> impl IntoView {
    let live = use_live();
    let r = Memo::new({
        let token = token.clone();
        move |_| {
            rows.with(|rs| rs.iter().find(|r| r.token == token).cloned())
                .unwrap_or_else(|| Row {
                    token: token.clone(),
                    status: Err("removed".into()),
                    ..Row::default()
                })
        }
    });
    // The addresses are the proxy's identity (its token is made from them).
    let (admin, addr) = r.with_untracked(|r| (r.admin.clone(), r.addr.clone()));
    let t2 = token.clone();
    let t3 = token.clone();
    let t1 = token.clone();
    let reinit = act(move || {
        let (p, t) = (live.name.get_untracked(), t1.clone());
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
    // Signals rather than closures: one copy of the rendering code for every cell.
    let field = move |f: fn(&Row) -> String| Signal::derive(move || r.with(f));
    let flag = move |f: fn(&Row) -> bool| Signal::derive(move || r.with(f));
    view! {
        <tr data-token=token.clone()>
            <td>{field(|r| r.id.to_string())}</td>
            <td>{addr}</td>
            <td>{admin.clone()}</td>
            <td>{field(|r| r.datacenter.clone())}</td>
            <td class="num">{field(|r| r.sessions.clone())}</td>
            <td class="num">{field(|r| format::count(r.commands))}</td>
            <td class="num" class:bad=flag(|r| r.errors > 0)>{field(|r| format::count(r.errors))}</td>
            <td class="num">{field(|r| format::count(r.ops))}</td>
            <StatusCell status=Signal::derive(move || r.with(|r| r.status.clone())) />
            <td class="actions">
                <ActionButton label="Reinit" title=format!("Reinit proxy {admin}") allowed=can action=reinit on_done=refresh />
                <ActionButton
                    label="Remove"
                    title=format!("Remove proxy {admin}")
                    danger=true
                    confirm=format!("Remove proxy {admin} ({t2}) from the product line? It is told to go offline first.")
                    allowed=can
                    action=remove(false, t2.clone())
                    on_done=refresh
                />
                <ActionButton
                    label="Force remove"
                    title=format!("Force-remove proxy {admin}")
                    danger=true
                    confirm=format!("Force-remove proxy {admin}? It is removed even if it does not answer, and may keep serving an old slot table.")
                    allowed=can
                    action=remove(true, t3)
                    on_done=refresh
                />
            </td>
        </tr>
    }
}
