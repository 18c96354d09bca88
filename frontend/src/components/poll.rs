//! Live data: a read repeated every few seconds while the page is visible.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{ApiError, ApiResult};
use crate::format;

/// A read that never answers (the browser's fetch has no timeout) must not stop the polling
/// for good: after this long a new one is sent anyway.
const GIVE_UP_MS: i64 = 30_000;

/// The latest good answer of a repeated read, the last failure beside it, and a way to read
/// again now.
#[derive(Debug)]
pub(crate) struct Poll<T: Send + Sync + 'static> {
    /// The last good answer, kept when a later read fails (None until the first one).
    pub(crate) data: RwSignal<Option<T>>,
    /// The last read's failure; cleared by the next success.
    pub(crate) error: RwSignal<Option<ApiError>>,
    /// When the last good answer arrived (Unix ms; 0: never).
    pub(crate) at: RwSignal<i64>,
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

    /// A banner when the last read failed: the reason, and the time of the data still shown
    /// (or the error alone when there is none).
    pub(crate) fn banner(&self) -> impl IntoView + use<T> {
        let (data, error, at) = (self.data, self.error, self.at);
        let has_data = Memo::new(move |_| data.with(Option::is_some));
        move || {
            let e = error.get()?;
            Some(if has_data.get() {
                view! {
                    <p class="err stale" role="alert">
                        {format!(
                            "data unavailable: {}, showing data from {}",
                            e.message,
                            format::clock(at.get()),
                        )}
                    </p>
                }
                .into_any()
            } else {
                view! { <p class="err" role="alert">{e.message}</p> }.into_any()
            })
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Poll<T> {
    /// The last good answer (reactive).
    pub(crate) fn ok(&self) -> Option<T> {
        self.data.get()
    }
}

/// Runs `fetch` now, whenever a signal it reads changes, and every `period` while the
/// document is visible (a hidden tab sends nothing). A period tick is skipped while a request
/// is in flight (for up to 30 s), so a slow answer is still applied; a request sent because an input changed
/// (or [`Poll::refresh`]) drops the answers of the requests before it, and an input change
/// forgets the data of the old inputs.
pub(crate) fn poll<T, F, Fut>(period: Duration, fetch: F) -> Poll<T>
where
    T: Send + Sync + 'static,
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = ApiResult<T>> + 'static,
{
    let data = RwSignal::new(None);
    let error = RwSignal::new(None);
    let at = RwSignal::new(0i64);
    let tick = RwSignal::new(0u64);
    let busy = RwSignal::new(false);
    let seq = Rc::new(Cell::new(0u64));
    // When the newest read was sent (Unix ms).
    let at_send = Rc::new(Cell::new(0i64));
    let at_send_fx = at_send.clone();
    Effect::new(move |last_tick: Option<u64>| {
        let at_send = &at_send_fx;
        let t = tick.get();
        let fut = fetch();
        if last_tick == Some(t) {
            // An input changed, not the clock: the data shown belongs to the old inputs.
            data.set(None);
            error.set(None);
            at.set(0);
        }
        let mine = seq.get() + 1;
        seq.set(mine);
        busy.set(true);
        at_send.set(format::now_ms());
        let seq = seq.clone();
        spawn_local(async move {
            let r = fut.await;
            if seq.get() != mine {
                return;
            }
            busy.set(false);
            match r {
                Ok(v) => {
                    data.set(Some(v));
                    error.set(None);
                    at.set(format::now_ms());
                }
                Err(e) => error.set(Some(e)),
            }
        });
        t
    });
    let sent_at = at_send;
    let due = move || {
        !document().hidden()
            && (!busy.get_untracked() || format::now_ms() - sent_at.get() > GIVE_UP_MS)
    };
    if let Ok(h) = set_interval_with_handle(
        move || {
            if due() {
                tick.update(|t| *t += 1);
            }
        },
        period,
    ) {
        on_cleanup(move || h.clear());
    }
    Poll {
        data,
        error,
        at,
        tick,
    }
}
