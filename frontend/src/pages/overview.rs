//! A product line: the tabs around its pages, the live data they share, and its overview
//! (figures, charts with history, dashboard and coordinator, migrations).

use std::time::Duration;

use codis_model::fe::{History, ProductDetail, Role};
use codis_model::topom::TopomStats;
use leptos::prelude::*;
use leptos_router::components::{A, Outlet};
use leptos_router::hooks::use_params_map;

use crate::api;
use crate::components::Stat;
use crate::components::chart::LineChart;
use crate::components::poll::{Poll, poll};
use crate::components::progress::MigrationBar;
use crate::format;
use crate::session::use_session;

/// How often a product line's pages read its state.
pub(crate) const LIVE_PERIOD: Duration = Duration::from_secs(3);

/// The product line shown, polled every few seconds and shared by its pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    /// Its name (from the URL).
    pub(crate) name: Memo<String>,
    /// `GET /products/{name}`, live.
    pub(crate) detail: Poll<ProductDetail>,
    /// Why the figures shown are not live now (the fe does not answer, or the product's
    /// dashboard does not); None when they are.
    pub(crate) trouble: Memo<Option<String>>,
    /// There are figures to show (live or not).
    pub(crate) loaded: Memo<bool>,
}

impl Live {
    fn new(name: Memo<String>, detail: Poll<ProductDetail>) -> Live {
        let trouble = Memo::new(move |_| {
            if let Some(e) = detail.error.get() {
                return Some(format!("data unavailable: {}", e.message));
            }
            detail.data.with(|d| {
                let s = &d.as_ref()?.summary;
                (!s.reachable).then(|| {
                    format!(
                        "dashboard unreachable: {} (showing its last answer, from {})",
                        s.error.as_deref().unwrap_or("no answer"),
                        format::clock(s.updated_at),
                    )
                })
            })
        });
        let loaded = Memo::new(move |_| detail.data.with(Option::is_some));
        Live {
            name,
            detail,
            trouble,
            loaded,
        }
    }

    /// Reads the dashboard's stats, if there are any (reactive).
    pub(crate) fn stats<R>(&self, f: impl FnOnce(&TopomStats) -> R) -> Option<R> {
        self.detail
            .data
            .with(|d| d.as_ref()?.topom.as_ref()?.stats.as_ref().map(f))
    }

    /// Reads the product detail, if there is one (reactive).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&ProductDetail) -> R) -> Option<R> {
        self.detail.data.with(|d| d.as_ref().map(f))
    }

    /// Whether the caller has `role` on this product line and its dashboard answers now
    /// (reactive): actions are disabled while the figures are not live.
    pub(crate) fn can(&self, role: Role) -> Signal<bool> {
        let session = use_session();
        let (name, trouble, loaded) = (self.name, self.trouble, self.loaded);
        Signal::derive(move || {
            session.can(&name.get(), role) && loaded.get() && trouble.with(Option::is_none)
        })
    }

    /// What a tab shows above its rows: why the data is not live, "Loading…", or `empty`
    /// when the live data has no row (`is_empty`). Never says "empty" for data it lacks.
    pub(crate) fn notice(
        &self,
        is_empty: Memo<bool>,
        empty: &'static str,
    ) -> impl IntoView + use<> {
        let (trouble, loaded) = (self.trouble, self.loaded);
        move || {
            if let Some(t) = trouble.get() {
                Some(view! { <p class="bad live-trouble" role="status">{t}</p> }.into_any())
            } else if !loaded.get() {
                Some(view! { <p class="muted">"Loading…"</p> }.into_any())
            } else if is_empty.get() {
                Some(view! { <p class="muted">{empty}</p> }.into_any())
            } else {
                None
            }
        }
    }

    /// Reads again now: after a change.
    pub(crate) fn refresh(&self) -> Callback<()> {
        let detail = self.detail;
        Callback::new(move |()| detail.refresh())
    }
}

/// The live product line from the context.
pub(crate) fn use_live() -> Live {
    expect_context::<Live>()
}

/// `/products/:name/*`: the product's name, health and tabs around its pages.
#[component]
pub(crate) fn ProductShell() -> impl IntoView {
    let params = use_params_map();
    let name = Memo::new(move |_| params.with(|p| p.get("name").unwrap_or_default()));
    let detail = poll(LIVE_PERIOD, move || {
        let n = name.get();
        async move { api::product(&n).await }
    });
    let live = Live::new(name, detail);
    provide_context(live);
    let base = move || format!("/products/{}", api::enc(&name.get()));
    let head = Memo::new(move |_| {
        detail.data.with(|d| {
            d.as_ref().map(|d| {
                (
                    d.summary.reachable,
                    d.summary.error.clone(),
                    d.summary.updated_at,
                )
            })
        })
    });
    let status = move || match head.get() {
        None if detail.error.with(Option::is_some) => ().into_any(),
        None => view! { <span class="muted">"loading…"</span> }.into_any(),
        Some((false, why, at)) => {
            let why = why.unwrap_or_else(|| "unreachable".into());
            view! {
                <span class="bad" role="status">
                    "dashboard unreachable: " {why} " (figures are from " {format::time(at)} ")"
                </span>
            }
            .into_any()
        }
        Some(_) => view! { <span class="good">"dashboard up"</span> }.into_any(),
    };
    view! {
        <div class="product-head">
            <h1>{move || name.get()}</h1>
            {status}
        </div>
        {detail.banner()}
        <nav class="tabs" aria-label="Product line">
            <A href=move || base() exact=true>"Overview"</A>
            <A href=move || format!("{}/proxies", base())>"Proxies"</A>
            <A href=move || format!("{}/groups", base())>"Groups"</A>
            <A href=move || format!("{}/slots", base())>"Slots"</A>
            <A href=move || format!("{}/sentinels", base())>"Sentinels"</A>
        </nav>
        <Outlet />
    }
}

/// The history range shown by the charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    fn ms(self) -> i64 {
        match self {
            Range::Hour => 3_600_000,
            Range::Day => 86_400_000,
            Range::Week => 7 * 86_400_000,
        }
    }
}

fn history_poll(live: Live, metric: &'static str, range: RwSignal<Range>) -> Poll<History> {
    poll(Duration::from_secs(15), move || {
        let n = live.name.get();
        let since = format::now_ms() - range.get().ms();
        async move { api::history(&n, metric, since).await }
    })
}

/// `/products/:name`: figures, charts and the product's dashboard.
#[component]
pub(crate) fn OverviewPage() -> impl IntoView {
    let live = use_live();
    let range = RwSignal::new(Range::Hour);
    let ops = history_poll(live, "ops", range);
    let memory = history_poll(live, "memory", range);
    let keys = history_poll(live, "keys", range);
    let points =
        |p: Poll<History>| Signal::derive(move || p.ok().map(|h| h.points).unwrap_or_default());
    let sum = move |f: fn(&codis_model::fe::ProductSummary) -> String| {
        Signal::derive(move || live.with(|d| f(&d.summary)).unwrap_or_else(|| "–".into()))
    };
    let migration = Signal::derive(move || live.with(|d| d.migration.clone()));
    let range_button = move |r: Range, label: &'static str| {
        view! {
            <button
                type="button"
                aria-pressed=move || (range.get() == r).to_string()
                class:on=move || range.get() == r
                on:click=move |_| range.set(r)
            >
                {label}
            </button>
        }
    };
    let about = move || {
        live.with(|d| {
            let s = &d.summary;
            let t = d.topom.as_ref();
            let coord = t
                .and_then(|t| t.stats.as_ref())
                .map(|st| {
                    let c = &st.coordinator;
                    let state = if c.online {
                        "online".to_string()
                    } else {
                        format!("offline: {}", c.error)
                    };
                    format!("{} {} ({state})", c.name, c.addr)
                })
                .unwrap_or_else(|| s.coordinator.clone());
            view! {
                <dl class="facts">
                    <dt>"Dashboard"</dt>
                    <dd>{s.dashboard.clone()} " (found via " {s.source.clone()} ")"</dd>
                    <dt>"Coordinator"</dt>
                    <dd>{coord}</dd>
                    <dt>"Version"</dt>
                    <dd>{t.map(|t| t.version.clone()).unwrap_or_default()}</dd>
                    <dt>"Dashboard started"</dt>
                    <dd>{t.map(|t| t.model.start_time.clone()).unwrap_or_default()}</dd>
                    <dt>"Last answer"</dt>
                    <dd>{format::time(s.updated_at)}</dd>
                </dl>
            }
        })
    };
    view! {
        {live.notice(Memo::new(|_| false), "")}
        <section class="stats" aria-label="Live figures">
            <Stat label="OPS" value=sum(|s| format::count(s.ops)) />
            <Stat label="Memory" value=sum(|s| format::bytes(s.memory)) />
            <Stat label="Keys" value=sum(|s| format::count(s.keys)) />
            <Stat label="Sessions" value=sum(|s| format::count(s.sessions)) />
            <Stat
                label="Proxies up"
                value=sum(|s| format!("{} / {}", s.proxies_up, s.proxies_total))
                bad=Signal::derive(move || live.with(|d| d.summary.proxies_up < d.summary.proxies_total).unwrap_or(false))
            />
            <Stat label="Groups" value=sum(|s| format!("{} ({} servers)", s.groups, s.servers)) />
            <Stat
                label="Masters down"
                value=sum(|s| s.masters_down.to_string())
                bad=Signal::derive(move || live.with(|d| d.summary.masters_down > 0).unwrap_or(false))
            />
            <Stat
                label="Slots offline"
                value=sum(|s| s.slots_offline.to_string())
                bad=Signal::derive(move || live.with(|d| d.summary.slots_offline > 0).unwrap_or(false))
            />
        </section>
        <h2>"Migrations"</h2>
        <MigrationBar migration />
        <div class="chart-head">
            <h2>"History"</h2>
            <div class="seg" role="group" aria-label="History range">
                {range_button(Range::Hour, "Last hour")}
                {range_button(Range::Day, "Last day")}
                {range_button(Range::Week, "Last week")}
            </div>
        </div>
        <div class="charts">
            <LineChart title="OPS" points=points(ops) fmt=format::count />
            <LineChart title="Memory" points=points(memory) fmt=format::bytes />
            <LineChart title="Keys" points=points(keys) fmt=format::count />
        </div>
        <h2>"Dashboard"</h2>
        {about}
    }
}
