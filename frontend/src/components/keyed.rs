//! Rows keyed by identity, so a poll updates a row in place instead of rebuilding it.

use std::hash::Hash;
use std::sync::Arc;

use leptos::prelude::*;

/// A row builder, type-erased so that every keyed list with the same key type shares one copy
/// of the keyed-list code (the bundle stays small).
type Row<K> = Arc<dyn Fn(K) -> AnyView + Send + Sync>;

/// One row per id of `ids`, built once by `row` when its id appears and dropped when it
/// leaves. The row reads its changing figures itself (its own memos), so what the user is
/// doing in it (typed text, an open confirmation, an action's outcome) survives the polls.
pub(crate) fn keyed<K, V, F>(ids: Memo<Vec<K>>, row: F) -> AnyView
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: IntoView + 'static,
    F: Fn(K) -> V + Send + Sync + 'static,
{
    keyed_rows(ids, Arc::new(move |k| row(k).into_any()))
}

fn keyed_rows<K>(ids: Memo<Vec<K>>, row: Row<K>) -> AnyView
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    view! { <For each=move || ids.get() key=K::clone children=move |k| row(k) /> }.into_any()
}
