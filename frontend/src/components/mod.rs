//! Widgets shared by the pages.

pub(crate) mod action;
pub(crate) mod chart;
pub(crate) mod keyed;
pub(crate) mod poll;
pub(crate) mod progress;
pub(crate) mod slotmap;
pub(crate) mod table;

use leptos::prelude::*;

use crate::api::ApiError;

/// A failed read, shown where the data would be.
#[component]
pub(crate) fn ErrorView(
    /// The failure.
    error: ApiError,
) -> impl IntoView {
    view! { <p class="err" role="alert">{error.message}</p> }
}

/// One figure with its label.
#[component]
pub(crate) fn Stat(
    /// What it is.
    #[prop(into)]
    label: String,
    /// The value (reactive).
    #[prop(into)]
    value: Signal<String>,
    /// Marks the figure as a problem.
    #[prop(optional, into)]
    bad: Signal<bool>,
) -> impl IntoView {
    view! {
        <div class="stat" class:bad=move || bad.get()>
            <div class="stat-value">{move || value.get()}</div>
            <div class="stat-label">{label}</div>
        </div>
    }
}

/// A status cell: the text of `status`, marked good (`Ok`) or bad (`Err`).
#[component]
pub(crate) fn StatusCell(
    /// What to show, and whether it is a problem.
    #[prop(into)]
    status: Signal<Result<String, String>>,
) -> impl IntoView {
    view! {
        <td
            class:good=move || status.with(Result::is_ok)
            class:bad=move || status.with(Result::is_err)
        >
            {move || status.with(|s| match s {
                Ok(s) | Err(s) => s.clone(),
            })}
        </td>
    }
}
