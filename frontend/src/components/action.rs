//! Buttons and forms that change something: hidden behind a confirmation when destructive,
//! disabled when the caller's role does not allow them (the server refuses them anyway), and
//! showing the server's answer (its error message, or what was done) right beside them.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::ApiResult;

/// An action: a call whose success text is shown to the user.
pub(crate) type Act = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ApiResult<String>>>>>;

/// Wraps an async closure as an [`Act`].
pub(crate) fn act<F, Fut>(f: F) -> Act
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = ApiResult<String>> + 'static,
{
    Rc::new(move || Box::pin(f()))
}

/// The state of one action: running, its last error and its last success text.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    done: RwSignal<Option<String>>,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
            done: RwSignal::new(None),
        }
    }

    fn run(self, action: StoredValue<Act, LocalStorage>, on_done: Option<Callback<()>>) {
        if self.busy.get_untracked() {
            return;
        }
        self.busy.set(true);
        self.error.set(None);
        self.done.set(None);
        let fut = action.with_value(|a| a());
        spawn_local(async move {
            let r = fut.await;
            self.busy.set(false);
            match r {
                Ok(text) => {
                    self.done.set(Some(text));
                    if let Some(cb) = on_done {
                        cb.run(());
                    }
                }
                Err(e) => self.error.set(Some(e.message)),
            }
        });
    }

    fn view(self) -> impl IntoView {
        view! {
            <span class="outcome" aria-live="polite">
                {move || self.busy.get().then(|| view! { <span class="muted">"working…"</span> })}
                {move || self.error.get().map(|e| view! { <span class="err" role="alert">{e}</span> })}
                {move || self.done.get().filter(|t| !t.is_empty()).map(|t| view! { <span class="ok">{t}</span> })}
            </span>
        }
    }
}

/// A modal question: what will happen, Cancel (focused first, and Escape) or the action.
#[component]
fn ConfirmDialog(
    /// Shown or not.
    open: RwSignal<bool>,
    /// What the action will do.
    message: Signal<String>,
    /// The confirming button's text.
    #[prop(into)]
    yes: Signal<String>,
    /// Runs when confirmed.
    on_yes: Callback<()>,
) -> impl IntoView {
    let cancel: NodeRef<html::Button> = NodeRef::new();
    Effect::new(move |_| {
        if open.get() {
            request_animation_frame(move || {
                if let Some(b) = cancel.get_untracked() {
                    let _ = b.focus();
                }
            });
        }
    });
    view! {
        <div
            class="modal-backdrop"
            hidden=move || !open.get()
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    open.set(false);
                }
            }
        >
            <div class="modal" role="dialog" aria-modal="true" aria-label="Confirm">
                <p class="modal-text">{move || message.get()}</p>
                <div class="modal-buttons">
                    <button type="button" node_ref=cancel on:click=move |_| open.set(false)>
                        "Cancel"
                    </button>
                    <button
                        type="button"
                        class="danger confirm-yes"
                        on:click=move |_| {
                            open.set(false);
                            on_yes.run(());
                        }
                    >
                        {yes}
                    </button>
                </div>
            </div>
        </div>
    }
}

/// A button that runs an action. Its texts may follow the live data; the button itself (and
/// its confirmation and outcome) stays as long as its row does.
#[component]
pub(crate) fn ActionButton(
    /// The button's text.
    #[prop(into)]
    label: Signal<String>,
    /// What the action will do; when set, the user must confirm first.
    #[prop(optional, into)]
    confirm: Option<Signal<String>>,
    /// The caller's role allows it.
    #[prop(into)]
    allowed: Signal<bool>,
    /// Styled as dangerous.
    #[prop(optional)]
    danger: bool,
    /// The action.
    action: Act,
    /// Runs after a success.
    #[prop(optional)]
    on_done: Option<Callback<()>>,
    /// A longer accessible name (when the label is short, e.g. in a table row).
    #[prop(optional, into)]
    title: Option<Signal<String>>,
) -> impl IntoView {
    let action = StoredValue::new_local(action);
    let out = Outcome::new();
    let open = RwSignal::new(false);
    let has_confirm = confirm.is_some();
    let message = confirm.unwrap_or_default();
    let title = title.unwrap_or(label);
    let denied_title = move || {
        let title = title.get();
        if allowed.get() {
            title
        } else {
            format!("{title} (not allowed now: your role, or the dashboard does not answer)")
        }
    };
    view! {
        <span class="action">
            <button
                type="button"
                class="act"
                class:danger=danger
                disabled=move || !allowed.get() || out.busy.get()
                title=denied_title
                aria-label=denied_title
                on:click=move |_| {
                    if has_confirm {
                        open.set(true);
                    } else {
                        out.run(action, on_done);
                    }
                }
            >
                {label}
            </button>
            {has_confirm
                .then(|| {
                    view! {
                        <ConfirmDialog
                            open
                            message
                            yes=label
                            on_yes=Callback::new(move |()| out.run(action, on_done))
                        />
                    }
                })}
            {out.view()}
        </span>
    }
}

/// A form whose submit (its button or Enter in a field) runs an action.
#[component]
pub(crate) fn ActionForm(
    /// The submit button's text.
    #[prop(into)]
    label: String,
    /// What the action will do; when set, the user must confirm first.
    #[prop(optional, into)]
    confirm: Option<Signal<String>>,
    /// The caller's role allows it.
    #[prop(into)]
    allowed: Signal<bool>,
    /// The action.
    action: Act,
    /// Runs after a success.
    #[prop(optional)]
    on_done: Option<Callback<()>>,
    /// Accessible name of the form.
    #[prop(into)]
    name: String,
    /// The fields.
    children: Children,
) -> impl IntoView {
    let action = StoredValue::new_local(action);
    let out = Outcome::new();
    let open = RwSignal::new(false);
    let has_confirm = confirm.is_some();
    let message = confirm.unwrap_or_default();
    view! {
        <form
            class="action-form"
            aria-label=name
            on:submit=move |ev: SubmitEvent| {
                ev.prevent_default();
                if !allowed.get_untracked() {
                    return;
                }
                if has_confirm {
                    open.set(true);
                } else {
                    out.run(action, on_done);
                }
            }
        >
            <fieldset disabled=move || !allowed.get()>
                {children()}
                <button type="submit" class="act" disabled=move || out.busy.get()>
                    {label.clone()}
                </button>
            </fieldset>
            {has_confirm
                .then(|| {
                    view! {
                        <ConfirmDialog
                            open
                            message
                            yes=label.clone()
                            on_yes=Callback::new(move |()| out.run(action, on_done))
                        />
                    }
                })}
            {out.view()}
        </form>
    }
}
