//! The progress of a product line's slot migrations.

use codis_model::fe::MigrationOverview;
use leptos::prelude::*;

use crate::format;

/// Done of total, as a whole percentage.
pub(crate) fn percent(done: i64, total: i64) -> i64 {
    if total <= 0 {
        100
    } else {
        (done * 100 / total).clamp(0, 100)
    }
}

/// A progress bar for the slots with an action, and a row per slot moving now (keys moved and
/// left, keys per second, time left). The fe forgets the total once nothing is left, so the bar
/// remembers the last run and shows it complete.
#[component]
pub(crate) fn MigrationBar(
    /// The product line's migrations (live).
    migration: Signal<Option<MigrationOverview>>,
) -> impl IntoView {
    // The largest total of the run seen last (a run ends when the fe reports no total).
    let last_total = RwSignal::new(0i64);
    Effect::new(move |was_running: Option<bool>| {
        let total = migration.with(|m| m.as_ref().map_or(0, |m| m.total));
        if total > 0 {
            if was_running == Some(true) {
                last_total.update(|t| *t = (*t).max(total));
            } else {
                last_total.set(total);
            }
        }
        total > 0
    });
    let counts = move || {
        let m = migration.get().unwrap_or_default();
        if m.total > 0 {
            (m.done, m.total)
        } else {
            let t = last_total.get();
            (t, t)
        }
    };
    let pct = move || {
        let (d, t) = counts();
        percent(d, t)
    };
    view! {
        <section class="migration" aria-label="Migration progress">
            {move || {
                let (done, total) = counts();
                if total == 0 {
                    view! { <p class="muted">"No slot is migrating."</p> }.into_any()
                } else {
                    let p = pct();
                    let text = if done == total {
                        format!("{done} of {total} slots moved (100%): done")
                    } else {
                        format!("{done} of {total} slots moved ({p}%)")
                    };
                    view! {
                        <div
                            id="migration-progress"
                            class="progress"
                            role="progressbar"
                            aria-valuemin="0"
                            aria-valuemax=total
                            aria-valuenow=done
                            data-percent=p
                        >
                            <div class="progress-fill" style=format!("width:{p}%")></div>
                        </div>
                        <p class="progress-text">{text}</p>
                    }
                        .into_any()
                }
            }}
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
