//! The audit history: filters (product, user, action, outcome, time range), paging, export.

use codis_model::fe::AuditPage as Page;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::components::ErrorView;
use crate::components::table::Table;
use crate::format;

const PAGE: i64 = 50;

/// `datetime-local` input (`YYYY-MM-DDTHH:MM`, local time) → Unix milliseconds.
fn local_ms(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(s)).get_time();
    if ms.is_nan() {
        String::new()
    } else {
        (ms as i64).to_string()
    }
}

/// `/audit`.
#[component]
pub(crate) fn AuditPage() -> impl IntoView {
    let product = RwSignal::new(String::new());
    let user = RwSignal::new(String::new());
    let action = RwSignal::new(String::new());
    let outcome = RwSignal::new(String::new());
    let since = RwSignal::new(String::new());
    let until = RwSignal::new(String::new());
    // The filters applied (the form edits the signals above; Apply copies them here).
    let applied = RwSignal::new(Vec::<(&'static str, String)>::new());
    // Pages seen: the `before` of each, to go back.
    let cursor = RwSignal::new(Vec::<i64>::new());
    let page = RwSignal::new(None::<api::ApiResult<Page>>);
    // Requests are numbered: only the newest one's answer is shown (a slow older answer
    // never overwrites it), and the pager waits for it.
    let seq = StoredValue::new(0u64);
    let loading = RwSignal::new(false);
    let load = move || {
        let mut q = applied.get_untracked();
        if let Some(b) = cursor.with_untracked(|c| c.last().copied()) {
            q.push(("before", b.to_string()));
        }
        q.push(("limit", PAGE.to_string()));
        let qs = api::query(&q);
        let mine = seq.get_value() + 1;
        seq.set_value(mine);
        loading.set(true);
        spawn_local(async move {
            let r = api::audit(&qs).await;
            if seq.get_value() == mine {
                page.set(Some(r));
                loading.set(false);
            }
        });
    };
    load();
    let apply = move |ev: SubmitEvent| {
        ev.prevent_default();
        applied.set(vec![
            ("product", product.get_untracked()),
            ("user", user.get_untracked()),
            ("action", action.get_untracked()),
            ("outcome", outcome.get_untracked()),
            ("since", local_ms(&since.get_untracked())),
            ("until", local_ms(&until.get_untracked())),
        ]);
        cursor.set(Vec::new());
        load();
    };
    let export = move |fmt: &'static str| {
        move || {
            let mut q = applied.get();
            q.push(("format", fmt.to_string()));
            api::audit_export_url(&api::query(&q))
        }
    };
    let table = move || match page.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <ErrorView error=e /> }.into_any(),
        Some(Ok(p)) => {
            let next = p.next_before;
            view! {
                <Table
                    caption=format!("{} matching rows, newest first", p.total)
                    headers=vec!["Time", "Actor", "Source", "Product", "Action", "Target", "Parameters", "Outcome", "Status", "Duration"]
                >
                    {p.items.into_iter().map(|i| {
                        let ok = i.outcome.as_deref() == Some("ok");
                        let failed = !ok && i.outcome.is_some();
                        view! {
                            <tr class:bad-row=failed>
                                <td>{format::time(i.time)}</td>
                                <td>{i.actor}</td>
                                <td>{i.source}</td>
                                <td class="audit-product">{i.product.unwrap_or_default()}</td>
                                <td class="audit-action">{i.action}</td>
                                <td>{i.target.unwrap_or_default()}</td>
                                <td class="params">{i.params.unwrap_or_default()}</td>
                                <td class:good=ok>{i.outcome.unwrap_or_else(|| "running".into())}</td>
                                <td>{i.status.map(|s| s.to_string()).unwrap_or_default()}</td>
                                <td class="num">{i.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </Table>
                <div class="pager" aria-busy=move || loading.get().to_string()>
                    <button
                        type="button"
                        disabled=move || loading.get() || cursor.with(Vec::is_empty)
                        on:click=move |_| {
                            cursor.update(|c| { c.pop(); });
                            load();
                        }
                    >
                        "Newer"
                    </button>
                    <button
                        type="button"
                        disabled=move || loading.get() || next.is_none()
                        on:click=move |_| {
                            if let Some(n) = next {
                                cursor.update(|c| c.push(n));
                                load();
                            }
                        }
                    >
                        "Older"
                    </button>
                </div>
            }.into_any()
        }
    };
    view! {
        <h1>"Audit history"</h1>
        <form class="filters" on:submit=apply aria-label="Filter the audit history">
            <label>"Product" <input name="product" bind:value=product /></label>
            <label>"User" <input name="user" bind:value=user /></label>
            <label>"Action (e.g. group. or slots.move)" <input name="action" bind:value=action /></label>
            <label>
                "Outcome"
                <select name="outcome" on:change=move |ev| outcome.set(event_target_value(&ev))>
                    <option value="">"any"</option>
                    <option value="ok">"ok"</option>
                    <option value="error">"error"</option>
                    <option value="running">"running"</option>
                </select>
            </label>
            <label>"From" <input name="since" type="datetime-local" bind:value=since /></label>
            <label>"Until" <input name="until" type="datetime-local" bind:value=until /></label>
            <button type="submit">"Apply"</button>
            <a class="button" href=export("csv") download="codis-fe-audit.csv">"Export CSV"</a>
            <a class="button" href=export("json") download="codis-fe-audit.json">"Export JSON"</a>
        </form>
        {table}
    }
}
