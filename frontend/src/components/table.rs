//! Tables: a caption, column headers, rows that scroll sideways on a narrow screen.

use leptos::prelude::*;

/// A data table.
#[component]
pub(crate) fn Table(
    /// What the table lists (read by screen readers; shown).
    #[prop(into)]
    caption: String,
    /// Column headers.
    headers: Vec<&'static str>,
    /// The rows (`<tr>` elements).
    children: Children,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table>
                <caption>{caption}</caption>
                <thead>
                    <tr>
                        {headers.into_iter().map(|h| view! { <th scope="col">{h}</th> }).collect_view()}
                    </tr>
                </thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}
