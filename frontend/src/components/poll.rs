//! Live data: a read repeated every few seconds while the page is visible.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::ApiResult;

/// The latest answer of a repeated read, and a way to read again now.
#[derive(Debug)]
pub(crate) struct Poll<T: Send + Sync + 'static> {
    /// None until the first answer.
    pub(crate) data: RwSignal<Option<ApiResult<T>>>,
    tick: RwSignal<u64>,
}

impl<T: Send + Sync + 'static> Clone for Poll<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Poll<T> {}

impl<T: Send + Sync + 'static> Poll<T> {
    /// Reads again now (after a change).
    pub(crate) fn refresh(&self) {
        self.tick.update(|t| *t += 1);
    }
}

impl<T: Clone + Send + Sync + 'static> Poll<T> {
    /// The last good answer (reactive).
    pub(crate) fn ok(&self) -> Option<T> {
        self.data
            .with(|d| d.as_ref().and_then(|r| r.as_ref().ok().cloned()))
    }
}

/// Runs `fetch` now, whenever a signal it reads changes, and every `period` while the
/// document is visible (a hidden tab sends nothing). Answers that arrive after a newer request
/// was sent are dropped, so the page never goes back in time.
pub(crate) fn poll<T, F, Fut>(period: Duration, fetch: F) -> Poll<T>
where
    T: Send + Sync + 'static,
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = ApiResult<T>> + 'static,
{
    let data = RwSignal::new(None);
    let tick = RwSignal::new(0u64);
    let seq = Rc::new(Cell::new(0u64));
    Effect::new(move |_| {
        tick.track();
        let fut = fetch();
        let mine = seq.get() + 1;
        seq.set(mine);
        let seq = seq.clone();
        spawn_local(async move {
            let r = fut.await;
            if seq.get() == mine {
                data.set(Some(r));
            }
        });
    });
    let visible = || !document().hidden();
    if let Ok(h) = set_interval_with_handle(
        move || {
            if visible() {
                tick.update(|t| *t += 1);
            }
        },
        period,
    ) {
        on_cleanup(move || h.clear());
    }
    Poll { data, tick }
}
