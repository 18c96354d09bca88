//! The login form.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api;
use crate::session::use_session;

/// `/login`: user name and password, submitted by Enter or the button.
#[component]
pub(crate) fn LoginPage() -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let query = use_query_map();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let next = move || {
        query
            .with_untracked(|q| q.get("next"))
            .filter(|n| n.starts_with('/') && !n.starts_with("//") && n != "/login")
            .unwrap_or_else(|| "/".into())
    };
    // Already logged in (e.g. a reload of /login): go on.
    let nav = navigate.clone();
    Effect::new(move |_| {
        if session.me.with(Option::is_some) {
            nav(&next(), Default::default());
        }
    });
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        let (u, p) = (username.get_untracked(), password.get_untracked());
        spawn_local(async move {
            match api::login(u, p).await {
                Ok(me) => {
                    password.set(String::new());
                    session.me.set(Some(me));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="login">
            <h1>"Log in to Codis"</h1>
            <form on:submit=submit aria-label="Log in">
                <label>
                    "User name"
                    <input
                        name="username"
                        autocomplete="username"
                        required
                        autofocus
                        bind:value=username
                    />
                </label>
                <label>
                    "Password"
                    <input
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                        bind:value=password
                    />
                </label>
                <button type="submit" id="login-submit" disabled=move || busy.get()>
                    "Log in"
                </button>
                {move || error.get().map(|e| view! { <p class="err" role="alert">{e}</p> })}
            </form>
        </section>
    }
}
