//! Every product line with its health at a glance, most trouble first.

use std::time::Duration;

use codis_model::fe::{IsolationMode, ProductSummary};
use leptos::prelude::*;
use leptos_router::components::A;

use crate::api;
use crate::components::poll::poll;
use crate::components::table::Table;
use crate::format;

/// `/`: the product lines.
#[component]
pub(crate) fn ProductsPage() -> impl IntoView {
    let list = poll(Duration::from_secs(5), api::products);
    // The first list on screen: a Performance API mark, so "time from navigation to an
    // interactive product list" can be measured (scripts/bench-ui.sh, the browser test).
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        let shown = list.data.with(Option::is_some);
        if shown && let Some(perf) = window().performance() {
            let _ = perf.mark("codis:products");
        }
        shown
    });
    view! {
        <h1>"Product lines"</h1>
        {list.banner()}
        {move || match list.data.get() {
            None if list.error.with(Option::is_some) => ().into_any(),
            None => view! { <p class="muted">"Loading…"</p> }.into_any(),
            Some(l) if l.products.is_empty() => {
                view! {
                    <p>
                        "No product line yet: start a dashboard on the coordinator, or register one with "
                        <code>"POST /api/v1/products"</code>"."
                    </p>
                }
                    .into_any()
            }
            Some(l) => {
                view! {
                    <Table
                        caption=format!("{} product lines, most trouble first", l.products.len())
                        headers=vec![
                            "Product",
                            "Dashboard",
                            "Proxies",
                            "Groups",
                            "Masters down",
                            "Replicas out of sync",
                            "Slots offline / migrating",
                            "OPS",
                            "Memory",
                            "Keys",
                            "Isolation",
                        ]
                    >
                        {l.products.into_iter().map(row).collect_view()}
                    </Table>
                }
                    .into_any()
            }
        }}
    }
}

fn row(p: ProductSummary) -> impl IntoView {
    let href = format!("/products/{}", api::enc(&p.name));
    let dashboard = if p.reachable {
        view! { <span class="good">"up"</span> " " <span class="muted">{p.dashboard.clone()}</span> }
            .into_any()
    } else {
        let why = p.error.clone().unwrap_or_else(|| "unreachable".into());
        let title = why.clone();
        view! { <span class="bad" title=title>"unreachable: " {why}</span> }.into_any()
    };
    let bad = |n: i64| if n > 0 { "bad" } else { "" };
    let isolation = match p.isolation {
        Some(IsolationMode::Physical) => "physical",
        _ => "logical",
    };
    let (name, key) = (p.name.clone(), p.name.clone());
    view! {
        <tr data-product=key class:trouble={p.trouble > 0} class:down={!p.reachable}>
            <th scope="row">
                <A href=href>{name}</A>
            </th>
            <td>{dashboard}</td>
            <td class=bad(p.proxies_total - p.proxies_up)>{format!("{} / {} up", p.proxies_up, p.proxies_total)}</td>
            <td>{format!("{} ({} servers)", p.groups, p.servers)}</td>
            <td class=bad(p.masters_down)>{p.masters_down}</td>
            <td class=bad(p.replicas_out_of_sync)>{p.replicas_out_of_sync}</td>
            <td class=bad(p.slots_offline)>{format!("{} / {}", p.slots_offline, p.slots_migrating)}</td>
            <td class="num">{format::count(p.ops)}</td>
            <td class="num">{format::bytes(p.memory)}</td>
            <td class="num keys">{format::count(p.keys)}</td>
            <td class=bad(p.violations)>
                {isolation}
                {(p.violations > 0).then(|| format!(", {} violations", p.violations))}
            </td>
        </tr>
    }
}
