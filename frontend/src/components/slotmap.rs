//! The 1024 slots as a 64 × 16 grid, coloured by group, with migrating and offline slots
//! marked. Dragging across it selects a range (the range can also be typed next to it).

use codis_model::topom::SlotMapping;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

const COLS: i64 = 64;
const CELL: i64 = 10;

/// A group's colour (offline slots are grey).
pub(crate) fn group_color(gid: i64) -> &'static str {
    const PALETTE: [&str; 12] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#e15759", "#9c755f",
        "#ff9da7", "#86bcb6", "#8cd17d", "#d4a6c8",
    ];
    if gid <= 0 {
        "#d0d0d0"
    } else {
        PALETTE[((gid - 1) % PALETTE.len() as i64) as usize]
    }
}

/// One slot as drawn: its group and whether it has an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cell {
    gid: i64,
    target: i64,
    busy: bool,
}

fn slot_at(ev: &web_sys::MouseEvent) -> Option<i64> {
    let el = ev.target()?.dyn_into::<web_sys::Element>().ok()?;
    el.get_attribute("data-slot")?.parse().ok()
}

/// The slot map.
#[component]
pub(crate) fn SlotMap(
    /// The slots, in order (live).
    slots: Signal<Vec<SlotMapping>>,
    /// The selected range, inclusive.
    selection: RwSignal<Option<(i64, i64)>>,
) -> impl IntoView {
    let cells = Memo::new(move |_| {
        slots.with(|s| {
            let mut out = vec![Cell::default(); 1024];
            for m in s {
                if let Some(c) = usize::try_from(m.id).ok().and_then(|i| out.get_mut(i)) {
                    *c = Cell {
                        gid: m.group_id,
                        target: m.action.target_id,
                        busy: !m.action.state.is_empty(),
                    };
                }
            }
            out
        })
    });
    let anchor = RwSignal::new(None::<i64>);
    let extend = move |to: i64| {
        if let Some(a) = anchor.get_untracked() {
            selection.set(Some((a.min(to), a.max(to))));
        }
    };
    let rects = (0..1024i64)
        .map(|i| {
            let x = (i % COLS) * CELL;
            let y = (i / COLS) * CELL;
            let cell = move || cells.with(|c| c[i as usize]);
            let selected =
                move || selection.get().is_some_and(|(a, b)| (a..=b).contains(&i));
            view! {
                <rect
                    x=x
                    y=y
                    width=CELL - 1
                    height=CELL - 1
                    data-slot=i
                    fill=move || group_color(cell().gid)
                    class:busy=move || cell().busy
                    class:sel=selected
                >
                    <title>
                        {move || {
                            let c = cell();
                            match (c.gid, c.busy) {
                                (0, false) => format!("slot {i}: offline"),
                                (g, false) => format!("slot {i}: group {g}"),
                                (g, true) => format!("slot {i}: group {g}, moving to group {}", c.target),
                            }
                        }}
                    </title>
                </rect>
            }
        })
        .collect_view();
    let legend = move || {
        let mut groups: std::collections::BTreeMap<i64, (usize, usize)> = Default::default();
        cells.with(|c| {
            for cell in c {
                let e = groups.entry(cell.gid).or_default();
                e.0 += 1;
                if cell.busy {
                    e.1 += 1;
                }
            }
        });
        groups
            .into_iter()
            .map(|(gid, (n, busy))| {
                let name = if gid == 0 { "offline".to_string() } else { format!("group {gid}") };
                let busy = if busy > 0 { format!(", {busy} migrating") } else { String::new() };
                view! {
                    <li>
                        <span class="swatch" style=format!("background:{}", group_color(gid))></span>
                        {format!("{name}: {n} slots{busy}")}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <div class="slotmap">
            <svg
                viewBox=format!("0 0 {} {}", COLS * CELL, 1024 / COLS * CELL)
                role="img"
                aria-label="Slot map: 1024 slots coloured by group; drag to select a range"
                on:mousedown=move |ev| {
                    if let Some(s) = slot_at(&ev) {
                        ev.prevent_default();
                        anchor.set(Some(s));
                        selection.set(Some((s, s)));
                    }
                }
                on:mouseover=move |ev| {
                    if ev.buttons() & 1 == 1 && let Some(s) = slot_at(&ev) {
                        extend(s);
                    }
                }
                on:mouseup=move |_| anchor.set(None)
            >
                {rects}
            </svg>
            <ul class="legend">{legend}</ul>
        </div>
    }
}
