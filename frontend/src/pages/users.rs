//! Users and API tokens (global admins): create users, grant roles per product line, delete
//! them; create tokens (the secret shown once) and revoke them.

use std::time::Duration;

use codis_model::fe::{Role, RoleGrant, TokenCreate, UserCreate, UserList, UserUpdate};
use leptos::prelude::*;

use crate::api::{self, ApiError};
use crate::components::action::{ActionButton, ActionForm, act};
use crate::components::keyed::keyed;
use crate::components::poll::poll;
use crate::components::table::Table;
use crate::format;
use crate::session::use_session;

/// `shop:operator, *:viewer` → grants.
pub(crate) fn parse_grants(s: &str) -> Result<Vec<RoleGrant>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| {
            let (product, role) = g
                .split_once(':')
                .ok_or_else(|| format!("{g:?}: write product:role, e.g. shop:operator"))?;
            let role = Role::parse(role.trim())
                .ok_or_else(|| format!("{g:?}: the role is viewer, operator or admin"))?;
            Ok(RoleGrant {
                product: product.trim().to_string(),
                role,
            })
        })
        .collect()
}

/// Grants → `shop:operator, *:viewer`.
pub(crate) fn grants_text(g: &[RoleGrant]) -> String {
    g.iter()
        .map(|g| format!("{}:{}", g.product, g.role.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad(message: String) -> ApiError {
    ApiError { status: 0, message }
}

/// `/users`.
#[component]
pub(crate) fn UsersPage() -> impl IntoView {
    let session = use_session();
    let admin = Signal::derive(move || session.is_global_admin());
    let users = poll(Duration::from_secs(30), api::users);
    let tokens = poll(Duration::from_secs(30), api::tokens);
    let refresh_users = Callback::new(move |()| users.refresh());
    let refresh_tokens = Callback::new(move |()| tokens.refresh());

    let (name, password, grants, global) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(false),
    );
    let create_user = act(move || {
        let body = UserCreate {
            username: name.get_untracked().trim().to_string(),
            password: password.get_untracked(),
            roles: parse_grants(&grants.get_untracked()).unwrap_or_default(),
            global_admin: global.get_untracked(),
        };
        let check = parse_grants(&grants.get_untracked());
        async move {
            check.map_err(bad)?;
            let u = api::create_user(&body).await?;
            name.set(String::new());
            password.set(String::new());
            grants.set(String::new());
            Ok(format!("user {} created", u.username))
        }
    });

    let (t_name, t_role, t_products) = (
        RwSignal::new(String::new()),
        RwSignal::new("viewer".to_string()),
        RwSignal::new("*".to_string()),
    );
    let shown = RwSignal::new(None::<(String, String)>);
    let create_token = act(move || {
        let body = TokenCreate {
            name: t_name.get_untracked().trim().to_string(),
            role: Role::parse(&t_role.get_untracked()).unwrap_or(Role::Viewer),
            products: t_products
                .get_untracked()
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        };
        async move {
            let t = api::create_token(&body).await?;
            shown.set(Some((t.info.name.clone(), t.token)));
            t_name.set(String::new());
            Ok(String::new())
        }
    });

    // Keyed rows (user name, token id): a poll updates them in place, so a roles field being
    // edited, an open confirmation or an action's outcome stays.
    let user_names = Memo::new(move |_| {
        users.data.with(|l| {
            l.iter()
                .flat_map(|l| l.users.iter().map(|u| u.username.clone()))
                .collect::<Vec<_>>()
        })
    });
    let token_ids = Memo::new(move |_| {
        tokens.data.with(|l| {
            l.iter()
                .flat_map(|l| l.tokens.iter().map(|t| t.id))
                .collect::<Vec<_>>()
        })
    });
    let users_view = view! {
        {users.banner()}
        {move || (users.data.with(Option::is_none) && users.error.with(Option::is_none))
            .then(|| view! { <p class="muted">"Loading…"</p> })}
        <Table caption="Users" headers=vec!["User", "Global admin", "Roles (product:role, …)", "Created", "Locked until", "Delete"]>
            {keyed(user_names, move |n| user_row(n, users.data, admin, refresh_users))}
        </Table>
    };
    let token_row = move |id: i64| {
        let t = Memo::new(move |_| {
            tokens.data.with(|l| {
                l.iter()
                    .flat_map(|l| l.tokens.iter())
                    .find(|t| t.id == id)
                    .cloned()
            })
        });
        let Some(info) = t.get_untracked() else {
            return ().into_any();
        };
        let revoke = act(move || async move {
            api::revoke_token(id).await?;
            Ok("revoked".into())
        });
        let revoke = StoredValue::new_local(revoke);
        let revoked = Memo::new(move |_| t.with(|t| t.as_ref().and_then(|t| t.revoked_at)));
        let name = info.name.clone();
        view! {
            <tr data-token-id=id>
                <td>{id}</td>
                <th scope="row">{info.name.clone()}</th>
                <td>{info.role.as_str()}</td>
                <td>{info.products.join(", ")}</td>
                <td>{info.created_by.clone()}</td>
                <td>{format::time(info.created_at)}</td>
                <td>{Signal::derive(move || revoked.get().map(format::time).unwrap_or_default())}</td>
                <td>
                    {move || revoked.get().is_none().then(|| view! {
                        <ActionButton
                            label="Revoke"
                            title=format!("Revoke token {name}")
                            danger=true
                            confirm=format!("Revoke token {name}? Every tool using it is refused from now on.")
                            allowed=admin
                            action=revoke.get_value()
                            on_done=refresh_tokens
                        />
                    })}
                </td>
            </tr>
        }
        .into_any()
    };
    let tokens_view = view! {
        {tokens.banner()}
        {move || (tokens.data.with(Option::is_none) && tokens.error.with(Option::is_none))
            .then(|| view! { <p class="muted">"Loading…"</p> })}
        <Table caption="API tokens, newest first" headers=vec!["Id", "Name", "Role", "Product lines", "Created by", "Created", "Revoked", "Revoke"]>
            {keyed(token_ids, token_row)}
        </Table>
    };
    view! {
        <h1>"Users & tokens"</h1>
        <h2>"Users"</h2>
        <ActionForm name="Create a user" label="Create user" allowed=admin action=create_user on_done=refresh_users>
            <label>"User name" <input name="new-username" required autocomplete="off" bind:value=name /></label>
            <label>"Password (8 characters or more)" <input name="new-password" type="password" minlength="8" required autocomplete="new-password" bind:value=password /></label>
            <label>"Roles (product:role, …; * for every product)" <input name="new-roles" placeholder="shop:operator, *:viewer" bind:value=grants /></label>
            <label class="check"><input name="new-global" type="checkbox" bind:checked=global /> "Global admin"</label>
        </ActionForm>
        {users_view}
        <h2>"API tokens"</h2>
        <ActionForm name="Create an API token" label="Create token" allowed=admin action=create_token on_done=refresh_tokens>
            <label>"Name" <input name="token-name" required bind:value=t_name /></label>
            <label>
                "Role"
                <select name="token-role" on:change=move |ev| t_role.set(event_target_value(&ev))>
                    <option value="viewer">"viewer"</option>
                    <option value="operator">"operator"</option>
                    <option value="admin">"admin"</option>
                </select>
            </label>
            <label>"Product lines (comma-separated, * for all)" <input name="token-products" required bind:value=t_products /></label>
        </ActionForm>
        {move || shown.get().map(|(n, secret)| view! {
            <div class="secret" role="status">
                <p>{format!("Token {n}: copy it now, it is not shown again.")}</p>
                <code id="token-secret">{secret}</code>
                <button type="button" on:click=move |_| shown.set(None)>"I copied it"</button>
            </div>
        })}
        {tokens_view}
    }
}

fn user_row(
    username: String,
    users: RwSignal<Option<UserList>>,
    admin: Signal<bool>,
    refresh: Callback<()>,
) -> impl IntoView {
    let me = use_session()
        .me
        .with_untracked(|m| m.as_ref().map(|m| m.username.clone()));
    let u = Memo::new({
        let username = username.clone();
        move |_| {
            users.with(|l| {
                l.iter()
                    .flat_map(|l| l.users.iter())
                    .find(|u| u.username == username)
                    .cloned()
            })
        }
    });
    let Some(first) = u.get_untracked() else {
        return ().into_any();
    };
    let saved_roles = Memo::new(move |_| {
        u.with(|u| {
            u.as_ref()
                .map(|u| grants_text(&u.roles))
                .unwrap_or_default()
        })
    });

    let roles = RwSignal::new(saved_roles.get_untracked());
    // The field follows the server's value when that changes (not on every poll).
    Effect::new(move |prev: Option<String>| {
        let now = saved_roles.get();
        if prev.is_some_and(|p| p != now) {
            roles.set(now.clone());
        }
        now
    });
    let is_global = first.global_admin;
    let n1 = username.clone();
    let save = act(move || {
        let name = n1.clone();
        let parsed = parse_grants(&roles.get_untracked());
        async move {
            let body = UserUpdate {
                roles: Some(parsed.map_err(bad)?),
                ..UserUpdate::default()
            };
            api::update_user(&name, &body).await?;
            Ok("saved".into())
        }
    });
    let n2 = username.clone();
    let delete = act(move || {
        let name = n2.clone();
        async move {
            api::delete_user(&name).await?;
            Ok("deleted".into())
        }
    });
    let is_me = me.as_deref() == Some(username.as_str());
    let (form_name, label_for, label_text, input_id) = (
        format!("Roles of {username}"),
        format!("roles-{username}"),
        format!("Roles of {username}"),
        format!("roles-{username}"),
    );
    let (delete_title, delete_confirm) = (
        format!("Delete user {username}"),
        format!("Delete user {username}? Their sessions end now; their audit rows stay."),
    );
    view! {
        <tr>
            <th scope="row">{username}</th>
            <td>{if is_global { "yes" } else { "no" }}</td>
            <td>
                <ActionForm name=form_name label="Save roles" allowed=admin action=save on_done=refresh>
                    <label class="sr-only" for=label_for>{label_text}</label>
                    <input id=input_id.clone() name=input_id bind:value=roles />
                </ActionForm>
            </td>
            <td>{format::time(first.created_at)}</td>
            <td>
                {Signal::derive(move || {
                    let l = u.with(|u| u.as_ref().map_or(0, |u| u.locked_until));
                    if l > 0 { format::time(l) } else { String::new() }
                })}
            </td>
            <td>
                <ActionButton
                    label="Delete"
                    title=delete_title
                    danger=true
                    confirm=delete_confirm
                    allowed=Signal::derive(move || admin.get() && !is_me)
                    action=delete
                    on_done=refresh
                />
            </td>
        </tr>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip() {
        let g = parse_grants(" shop:operator, *:viewer ,").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].role, Role::Operator);
        assert_eq!(grants_text(&g), "shop:operator, *:viewer");
        assert!(parse_grants("shop").is_err());
        assert!(parse_grants("shop:root").is_err());
        assert_eq!(parse_grants("").unwrap(), vec![]);
    }
}
