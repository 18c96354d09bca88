//! The route table, the header and the login guard.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, ParentRoute, Redirect, Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::path;

use crate::api;
use crate::pages;
use crate::session::{Session, roles_label, use_session};

/// The whole app.
#[component]
pub(crate) fn App() -> impl IntoView {
    let session = Session::new();
    provide_context(session);
    api::on_unauthorized(move || session.me.set(None));
    spawn_local(async move {
        if let Ok(me) = api::me().await {
            session.me.set(Some(me));
        }
        session.ready.set(true);
    });
    view! {
        <Router>
            <a class="skip" href="#main">"Skip to content"</a>
            <Header />
            <main id="main" tabindex="-1">
                <Show
                    when=move || session.ready.get()
                    fallback=|| view! { <p class="muted">"Loading…"</p> }
                >
                    <Routes fallback=|| view! { <p>"There is no such page."</p> }>
                        <Route path=path!("/login") view=pages::login::LoginPage />
                        <Route path=path!("/") view=|| guard(pages::products::ProductsPage) />
                        <Route path=path!("/isolation") view=|| guard(pages::isolation::IsolationPage) />
                        <Route path=path!("/audit") view=|| guard(pages::audit::AuditPage) />
                        <Route path=path!("/users") view=|| guard(pages::users::UsersPage) />
                        <ParentRoute
                            path=path!("/products/:name")
                            view=|| guard(pages::overview::ProductShell)
                        >
                            <Route path=path!("") view=pages::overview::OverviewPage />
                            <Route path=path!("proxies") view=pages::proxies::ProxiesPage />
                            <Route path=path!("groups") view=pages::groups::GroupsPage />
                            <Route path=path!("slots") view=pages::slots::SlotsPage />
                            <Route path=path!("sentinels") view=pages::sentinels::SentinelsPage />
                        </ParentRoute>
                    </Routes>
                </Show>
            </main>
        </Router>
    }
}

/// A page that needs a login: without one, the login page (coming back here after it).
fn guard<V: IntoView + 'static>(page: fn() -> V) -> AnyView {
    let session = use_session();
    let loc = use_location();
    view! {
        <Show
            when=move || session.me.with(Option::is_some)
            fallback=move || {
                let next = loc.pathname.get_untracked();
                view! { <Redirect path=format!("/login?next={}", api::enc(&next)) /> }
            }
        >
            {page()}
        </Show>
    }
    .into_any()
}

/// The header: navigation, who is logged in, logout.
#[component]
fn Header() -> impl IntoView {
    let session = use_session();
    // Without a session the login guard sends every page to the login form.
    let logout = move |_| {
        spawn_local(async move {
            let _ = api::logout().await;
            session.me.set(None);
        });
    };
    view! {
        <header class="top">
            <A href="/" attr:class="brand">
                "Codis"
            </A>
            <Show when=move || session.me.with(Option::is_some)>
                <nav aria-label="Main">
                    <A href="/" exact=true>
                        "Product lines"
                    </A>
                    <A href="/isolation">"Isolation"</A>
                    <A href="/audit">"Audit"</A>
                    <Show when=move || session.is_global_admin()>
                        <A href="/users">"Users & tokens"</A>
                    </Show>
                </nav>
                <div class="who">
                    <span id="who-name">
                        {move || session.me.with(|m| m.as_ref().map(|m| m.username.clone()))}
                    </span>
                    <span class="muted" id="who-role">
                        {move || session.me.with(|m| m.as_ref().map(roles_label))}
                    </span>
                    <button type="button" id="logout" on:click=logout>
                        "Log out"
                    </button>
                </div>
            </Show>
        </header>
    }
}
