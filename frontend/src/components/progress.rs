//! The progress of a product line's slot migrations.

use codis_model::fe::{MigrationOverview, MigrationRun};
use leptos::prelude::*;

use crate::components::keyed::keyed;
use crate::format;

/// Done of total, as a whole percentage (an empty plan is done).
pub(crate) fn percent(done: i64, total: i64) -> i64 {
    if total <= 0 {
        100
    } else {
        (done * 100 / total).clamp(0, 100)
    }
}

/// A progress bar per migration accepted through the fe (a rebalance, a range or some slots
/// moved), as the fe counts it: the total is the plan's size, fixed when it was accepted, and
/// done is the slots already served by their target group. Then a row per slot moving now
/// (keys moved and left, keys per second, time left).
#[component]
pub(crate) fn MigrationBar(
    /// The product line's migrations (live).
    migration: Signal<Option<MigrationOverview>>,
) -> impl IntoView {
    let ids = Memo::new(move |_| {
        migration.with(|m| {
            m.iter()
                .flat_map(|m| m.runs.iter().map(|r| r.id))
                .collect::<Vec<_>>()
        })
    });
    let pending = Memo::new(move |_| migration.with(|m| m.as_ref().map_or(0, |m| m.pending)));
    let run_bar = move |id: i64| {
        let run = Memo::new(move |_| {
            migration.with(|m| {
                m.iter()
                    .flat_map(|m| m.runs.iter())
                    .find(|r| r.id == id)
                    .cloned()
                    .unwrap_or_default()
            })
        });
        let what = run.with_untracked(|r| r.what.clone());
        let pct = Memo::new(move |_| run.with(|r| percent(r.done, r.total)));
        let num =
            move |f: fn(&MigrationRun) -> i64| Signal::derive(move || run.with(f).to_string());
        let text = Signal::derive(move || {
            run.with(|r| {
                let state = match r.finished_at {
                    Some(_) if r.done >= r.total => ": done".to_string(),
                    Some(_) => ": stopped (actions removed or not all queued)".to_string(),
                    None => String::new(),
                };
                format!(
                    "{}: {} of {} slots moved ({}%){state}",
                    r.what,
                    r.done,
                    r.total,
                    percent(r.done, r.total)
                )
            })
        });
        view! {
            <div class="migration-run" data-run=id>
                <div
                    class="progress"
                    role="progressbar"
                    aria-label=what
                    aria-valuemin="0"
                    aria-valuemax=num(|r| r.total)
                    aria-valuenow=num(|r| r.done)
                    data-percent=num(|r| percent(r.done, r.total))
                    data-total=num(|r| r.total)
                >
                    <div class="progress-fill" style=Signal::derive(move || format!("width:{}%", pct.get()))></div>
                </div>
                <p class="progress-text">{text}</p>
            </div>
        }
    };
    view! {
        <section class="migration" aria-label="Migration progress">
            {move || {
                (ids.with(Vec::is_empty))
                    .then(|| {
                        let n = pending.get();
                        let text = if n == 0 {
                            "No slot is migrating.".to_string()
                        } else {
                            format!("{n} slots have a pending action.")
                        };
                        view! { <p class="muted">{text}</p> }
                    })
            }}
            {keyed(ids, run_bar)}
            {move || {
                let running = migration.get().map(|m| m.running).unwrap_or_default();
                (!running.is_empty())
                    .then(|| {
                        view! {
                            <ul class="running">
                                {running
                                    .into_iter()
                                    .map(|r| {
                                        let eta = r
                                            .eta_secs
                                            .map(format::duration)
                                            .unwrap_or_else(|| "unknown".into());
                                        view! {
                                            <li>
                                                {format!(
                                                    "slot {}: group {} → {} ({}), {} keys moved, {} left, {:.0} keys/s, time left {}",
                                                    r.slot,
                                                    r.from,
                                                    r.to,
                                                    r.state,
                                                    format::count(r.moved),
                                                    format::count(r.remaining),
                                                    r.keys_per_sec,
                                                    eta,
                                                )}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent() {
        assert_eq!(super::percent(0, 0), 100);
        assert_eq!(super::percent(512, 1024), 50);
        assert_eq!(super::percent(1024, 1024), 100);
    }
}
