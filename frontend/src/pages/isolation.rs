//! Isolation: every server address across the product lines (who uses it, in which group and
//! role), each product line's mode with a switch for admins, and the broken rules in red.

use std::collections::BTreeMap;
use std::time::Duration;

use codis_model::fe::{IsolationMode, Role, ServerPlace};
use leptos::prelude::*;

use crate::api;
use crate::components::action::{ActionButton, act};
use crate::components::keyed::keyed;
use crate::components::poll::poll;
use crate::components::table::Table;
use crate::session::use_session;

/// Every server of every product line the caller may read, by address.
async fn inventory() -> api::ApiResult<BTreeMap<String, Vec<ServerPlace>>> {
    let mut out: BTreeMap<String, Vec<ServerPlace>> = BTreeMap::new();
    for p in api::products().await?.products {
        let Ok(d) = api::product(&p.name).await else {
            continue;
        };
        let Some(stats) = d.topom.and_then(|t| t.stats) else {
            continue;
        };
        for g in stats.group.models {
            for (i, s) in g.servers.iter().enumerate() {
                out.entry(s.addr.clone()).or_default().push(ServerPlace {
                    product: p.name.clone(),
                    group_id: g.id,
                    role: if i == 0 { "master" } else { "replica" }.into(),
                    addr: s.addr.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `/isolation`.
#[component]
pub(crate) fn IsolationPage() -> impl IntoView {
    let session = use_session();
    let report = poll(Duration::from_secs(10), api::isolation);
    let servers = poll(Duration::from_secs(15), inventory);
    let refresh = Callback::new(move |()| {
        report.refresh();
    });
    // Keyed rows: a poll updates a product line's mode and count in place, so an open
    // confirmation or the switch's outcome stays.
    let products = Memo::new(move |_| {
        report.data.with(|r| {
            r.as_ref()
                .map(|r| r.modes.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let counts = Memo::new(move |_| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        report.data.with(|r| {
            for v in r.iter().flat_map(|r| &r.violations) {
                for p in &v.places {
                    *counts.entry(p.product.clone()).or_default() += 1;
                }
            }
        });
        counts
    });
    let modes = Memo::new(move |_| {
        report
            .data
            .with(|r| r.as_ref().map(|r| r.modes.clone()).unwrap_or_default())
    });
    let mode_row = move |product: String| {
        let allowed = Signal::derive({
            let product = product.clone();
            move || session.can(&product, Role::Admin)
        });
        let mode = Memo::new({
            let product = product.clone();
            move |_| modes.with(|m| m.get(&product).copied().unwrap_or(IsolationMode::Logical))
        });
        let to = move || match mode.get() {
            IsolationMode::Physical => IsolationMode::Logical,
            IsolationMode::Logical => IsolationMode::Physical,
        };
        let p2 = product.clone();
        let switch = act(move || {
            let p = p2.clone();
            // The mode shown when the button was pressed.
            let to = match mode.get_untracked() {
                IsolationMode::Physical => IsolationMode::Logical,
                IsolationMode::Logical => IsolationMode::Physical,
            };
            async move {
                api::set_isolation(&p, to).await?;
                Ok(format!("{p} is now {}", to.as_str()))
            }
        });
        let explain = Signal::derive({
            let product = product.clone();
            move || match to() {
                IsolationMode::Physical => format!(
                    "Make {product} physically isolated? Its servers may then serve no other product line; servers it shares now are reported as violations."
                ),
                IsolationMode::Logical => format!(
                    "Make {product} logically isolated? Its servers may then be shared with other product lines, with the same role in each."
                ),
            }
        });
        let label = Signal::derive(move || format!("Make {}", to().as_str()));
        let title = Signal::derive({
            let product = product.clone();
            move || format!("Make {product} {}", to().as_str())
        });
        let n = Memo::new({
            let product = product.clone();
            move |_| counts.with(|c| c.get(&product).copied().unwrap_or(0))
        });
        let bad = Memo::new(move |_| n.get() > 0);
        view! {
            <tr data-product=product.clone()>
                <th scope="row">{product.clone()}</th>
                <td class="mode">{Signal::derive(move || mode.get().as_str().to_string())}</td>
                <td class:bad=bad>{Signal::derive(move || n.get().to_string())}</td>
                <td>
                    <ActionButton label title confirm=explain allowed action=switch on_done=refresh />
                </td>
            </tr>
        }
    };
    let violations = Memo::new(move |_| {
        report.data.with(|r| {
            r.as_ref()
                .map(|r| (r.violations.clone(), r.shared.len(), r.unknown.clone()))
        })
    });
    let modes_view = view! {
        {report.banner()}
        {move || (report.data.with(Option::is_none) && report.error.with(Option::is_none))
            .then(|| view! { <p class="muted">"Loading…"</p> })}
        <Table caption="Isolation mode of each product line" headers=vec!["Product", "Mode", "Violations", "Change"]>
            {keyed(products, mode_row)}
        </Table>
        <h2>"Violations"</h2>
        {move || violations.get().map(|(violations, shared, unknown)| view! {
            {(!unknown.is_empty()).then(|| view! {
                <p class="bad">{format!(
                    "Servers unknown (dashboard never answered): {}. Adds and promotes are refused until they are known.",
                    unknown.join(", ")
                )}</p>
            })}
            {if violations.is_empty() {
                view! { <p class="good">"No isolation rule is broken."</p> }.into_any()
            } else {
                view! {
                    <ul class="violations">
                        {violations.into_iter().map(|v| view! {
                            <li class="bad"><strong>{v.server}</strong> " (" {v.rule} "): " {v.message}</li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <p class="muted">{format!("{shared} servers are shared by several product lines.")}</p>
        })}
    };
    let inventory_view = move || {
        match servers.data.get() {
        None if servers.error.with(Option::is_some) => ().into_any(),
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(inv) => view! {
            <Table caption="Every server, with the product lines, groups and roles that use it" headers=vec!["Server", "Used by"]>
                {inv.into_iter().map(|(addr, places)| {
                    let shared = places.iter().map(|p| &p.product).collect::<std::collections::BTreeSet<_>>().len() > 1;
                    view! {
                        <tr class:warn-row=shared>
                            <th scope="row">{addr}</th>
                            <td>{places.iter().map(|p| format!("{} group {} ({})", p.product, p.group_id, p.role)).collect::<Vec<_>>().join("; ")}</td>
                        </tr>
                    }
                }).collect_view()}
            </Table>
        }.into_any(),
    }
    };
    view! {
        <h1>"Isolation"</h1>
        <p class="muted">
            "Physical: a product line's servers are its own. Logical: a server may serve several product lines with the same role in each."
        </p>
        {modes_view}
        <h2>"Servers"</h2>
        {servers.banner()}
        {inventory_view}
    }
}
