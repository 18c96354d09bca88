//! A product line's slots: the 1024-slot map, moving a range (dragged or typed) or N slots to a
//! group, a rebalance shown before it runs, the migrations' progress, and the migration
//! settings (pause, interval).

use std::collections::BTreeMap;

use codis_model::fe::Role;
use codis_model::fe::change::{RebalancePlan, SlotActionSettings, SlotRange, SlotsMoveSome};
use leptos::prelude::*;

use crate::api::{self, ApiError};
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::progress::MigrationBar;
use crate::components::slotmap::SlotMap;
use crate::format;
use crate::pages::overview::use_live;

fn bad_input(message: String) -> ApiError {
    ApiError { status: 0, message }
}

fn parse_num(what: &str, s: &str) -> Result<i64, ApiError> {
    s.trim()
        .parse()
        .map_err(|_| bad_input(format!("{what}: {s:?} is not a number")))
}

/// Moves of a plan, by (from group, to group): how many slots.
pub(crate) fn plan_moves(plan: &RebalancePlan, current: &[i64]) -> BTreeMap<(i64, i64), usize> {
    let mut out = BTreeMap::new();
    for (sid, to) in &plan.plan {
        let from = usize::try_from(*sid)
            .ok()
            .and_then(|i| current.get(i))
            .copied()
            .unwrap_or(0);
        if from != *to {
            *out.entry((from, *to)).or_insert(0) += 1;
        }
    }
    out
}

/// `/products/:name/slots`.
#[component]
pub(crate) fn SlotsPage() -> impl IntoView {
    let live = use_live();
    let can = live.can(Role::Operator);
    let refresh = live.refresh();
    let name = live.name;
    let slots = Signal::derive(move || live.stats(|s| s.slots.clone()).unwrap_or_default());
    let selection = RwSignal::new(None::<(i64, i64)>);
    let range_text = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some((a, b)) = selection.get() {
            range_text.set(if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            });
        }
    });
    let target = RwSignal::new(String::new());
    let move_range = act(move || {
        let p = name.get_untracked();
        let (text, to) = (range_text.get_untracked(), target.get_untracked());
        async move {
            let (begin, end) = format::parse_range(&text)
                .ok_or_else(|| bad_input(format!("{text:?} is not a slot range such as 0-511")))?;
            let group_id = parse_num("target group", &to)?;
            api::change(
                "POST",
                &p,
                "/slots/move",
                Some(&SlotRange {
                    begin,
                    end,
                    group_id,
                }),
            )
            .await?;
            Ok(format!(
                "slots {begin}-{end} queued to move to group {group_id}"
            ))
        }
    });
    let move_confirm = Signal::derive(move || {
        format!(
            "Move slots {} to group {}? Their keys are migrated while clients keep running.",
            range_text.get(),
            target.get()
        )
    });
    let (some_from, some_to, some_n) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let move_some = act(move || {
        let p = name.get_untracked();
        let (f, t, n) = (
            some_from.get_untracked(),
            some_to.get_untracked(),
            some_n.get_untracked(),
        );
        async move {
            let body = SlotsMoveSome {
                from: parse_num("from", &f)?,
                to: parse_num("to", &t)?,
                count: parse_num("count", &n)?,
            };
            api::change("POST", &p, "/slots/move-some", Some(&body)).await?;
            Ok(format!(
                "{} slots queued from group {} to group {}",
                body.count, body.from, body.to
            ))
        }
    });
    let some_confirm = Signal::derive(move || {
        format!(
            "Move {} slots from group {} to group {}?",
            some_n.get(),
            some_from.get(),
            some_to.get()
        )
    });
    // Rebalance: the plan is shown first, then run exactly as shown.
    let plan = RwSignal::new(None::<RebalancePlan>);
    // What the last run of a plan did (the plan's view, with its button, is gone by then).
    let started = RwSignal::new(None::<String>);
    let preview = act(move || {
        let p = name.get_untracked();
        started.set(None);
        async move {
            let got = api::rebalance_preview(&p).await?;
            let n = got.plan.len();
            plan.set(Some(got));
            Ok(if n == 0 {
                "already balanced".into()
            } else {
                String::new()
            })
        }
    });
    let run_plan = act(move || {
        let p = name.get_untracked();
        let body = plan.get_untracked().unwrap_or_default();
        async move {
            api::change("POST", &p, "/rebalance", Some(&body)).await?;
            plan.set(None);
            started.set(Some(format!(
                "rebalance started: {} slots",
                body.plan.len()
            )));
            Ok(String::new())
        }
    });
    let run_plan = StoredValue::new_local(run_plan);
    // Rebuilt only when the plan changes: never by a poll, so the confirmation and the running
    // request's state stay (the map it is compared with is the one of the preview's time).
    let plan_view = move || {
        let pl = plan.get()?;
        if pl.plan.is_empty() {
            return None;
        }
        let current: Vec<i64> = slots.with_untracked(|s| s.iter().map(|m| m.group_id).collect());
        let moves = plan_moves(&pl, &current);
        let n: usize = moves.values().sum();
        let confirm = format!("Run the rebalance: move {n} slots as listed?");
        Some(view! {
            <div class="plan" id="rebalance-plan">
                <h3>"Rebalance plan"</h3>
                <ul>
                    {moves
                        .into_iter()
                        .map(|((from, to), k)| {
                            let from = if from == 0 { "offline".to_string() } else { format!("group {from}") };
                            view! { <li>{format!("{k} slots: {from} → group {to}")}</li> }
                        })
                        .collect_view()}
                </ul>
                <ActionButton label="Run this plan" confirm=confirm allowed=can action=run_plan.get_value() on_done=refresh />
                <button type="button" on:click=move |_| plan.set(None)>"Discard"</button>
            </div>
        })
    };
    let migration = Signal::derive(move || live.with(|d| d.migration.clone()));
    let settings = Memo::new(move |_| {
        live.stats(|s| {
            (
                s.slot_action.disabled,
                s.slot_action.interval,
                s.slot_action.progress.status.clone(),
            )
        })
    });
    let pause = |disabled: bool| {
        act(move || {
            let p = name.get_untracked();
            async move {
                let body = SlotActionSettings {
                    disabled: Some(disabled),
                    interval: None,
                };
                api::change("PUT", &p, "/slots/action", Some(&body)).await?;
                Ok(if disabled {
                    "migrations paused"
                } else {
                    "migrations resumed"
                }
                .into())
            }
        })
    };
    let interval = RwSignal::new(String::new());
    let set_interval = act(move || {
        let p = name.get_untracked();
        let v = interval.get_untracked();
        async move {
            let body = SlotActionSettings {
                disabled: None,
                interval: Some(parse_num("interval", &v)?),
            };
            api::change("PUT", &p, "/slots/action", Some(&body)).await?;
            Ok("interval set".into())
        }
    });
    view! {
        <h2>"Slots"</h2>
        {live.notice(Memo::new(|_| false), "")}
        <SlotMap slots selection />
        <div class="slot-forms">
            <ActionForm name="Move a slot range" label="Move range" confirm=move_confirm allowed=can action=move_range on_done=refresh>
                <label>
                    "Slots (drag on the map or type, e.g. 0-511)"
                    <input
                        name="slot-range"
                        required
                        prop:value=move || range_text.get()
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            selection.set(format::parse_range(&v));
                            range_text.set(v);
                        }
                    />
                </label>
                <label>
                    "To group"
                    <input name="slot-target" type="number" min="0" required bind:value=target />
                </label>
            </ActionForm>
            <ActionForm name="Move some slots" label="Move slots" confirm=some_confirm allowed=can action=move_some on_done=refresh>
                <label>"From group" <input name="some-from" type="number" required bind:value=some_from /></label>
                <label>"To group" <input name="some-to" type="number" required bind:value=some_to /></label>
                <label>"How many" <input name="some-count" type="number" min="1" required bind:value=some_n /></label>
            </ActionForm>
        </div>
        <h2>"Rebalance"</h2>
        <p class="muted">"The plan is computed by the dashboard and shown here before anything moves."</p>
        <ActionButton label="Preview rebalance" allowed=can action=preview />
        {plan_view}
        {move || started.get().map(|t| view! { <p class="ok" role="status" id="rebalance-started">{t}</p> })}
        <h2>"Migrations"</h2>
        <MigrationBar migration />
        {move || settings.get().map(|(disabled, iv, status)| view! {
            <p>
                {if disabled { "Migrations are paused. " } else { "Migrations run. " }}
                {format!("Interval between steps: {iv} µs. ")}
                {(!status.is_empty()).then(|| format!("Last status: {status}"))}
            </p>
        })}
        <div class="toolbar">
            <ActionButton label="Pause migrations" allowed=can action=pause(true) on_done=refresh />
            <ActionButton label="Resume migrations" allowed=can action=pause(false) on_done=refresh />
            <ActionForm name="Migration interval" label="Set interval" allowed=can action=set_interval on_done=refresh>
                <label>"Interval (µs, 0 to 1000000)" <input name="interval" type="number" min="0" max="1000000" required bind:value=interval /></label>
            </ActionForm>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_counted_by_source_and_target() {
        let plan = RebalancePlan {
            plan: [(0, 1), (1, 2), (2, 2), (3, 1)].into_iter().collect(),
        };
        let current = vec![0, 0, 2, 1];
        let m = plan_moves(&plan, &current);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![((0, 1), 1), ((0, 2), 1)]
        );
    }
}
