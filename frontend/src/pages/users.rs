//! Users and API tokens (global admins): create users, grant roles per product line, delete
//! them; create tokens (the secret shown once) and revoke them.

use std::time::Duration;

use codis_model::fe::{Role, RoleGrant, TokenCreate, User, UserCreate, UserUpdate};
use leptos::prelude::*;

use crate::api::{self, ApiError};
use crate::components::ErrorView;
use crate::components::action::{ActionButton, ActionForm, act};
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

    let users_view = move || {
        match users.data.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <ErrorView error=e /> }.into_any(),
        Some(Ok(l)) => view! {
            <Table caption="Users" headers=vec!["User", "Global admin", "Roles (product:role, …)", "Created", "Locked until", "Delete"]>
                {l.users.into_iter().map(|u| user_row(u, admin, refresh_users)).collect_view()}
            </Table>
        }.into_any(),
    }
    };
    let tokens_view = move || {
        match tokens.data.get() {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <ErrorView error=e /> }.into_any(),
        Some(Ok(l)) => view! {
            <Table caption="API tokens, newest first" headers=vec!["Id", "Name", "Role", "Product lines", "Created by", "Created", "Revoked", "Revoke"]>
                {l.tokens.into_iter().map(|t| {
                    let id = t.id;
                    let revoke = act(move || async move {
                        api::revoke_token(id).await?;
                        Ok("revoked".into())
                    });
                    let active = t.revoked_at.is_none();
                    view! {
                        <tr>
                            <td>{t.id}</td>
                            <th scope="row">{t.name.clone()}</th>
                            <td>{t.role.as_str()}</td>
                            <td>{t.products.join(", ")}</td>
                            <td>{t.created_by}</td>
                            <td>{format::time(t.created_at)}</td>
                            <td>{t.revoked_at.map(format::time).unwrap_or_default()}</td>
                            <td>
                                {active.then(|| view! {
                                    <ActionButton
                                        label="Revoke"
                                        title=format!("Revoke token {}", t.name)
                                        danger=true
                                        confirm=format!("Revoke token {}? Every tool using it is refused from now on.", t.name)
                                        allowed=admin
                                        action=revoke
                                        on_done=refresh_tokens
                                    />
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </Table>
        }.into_any(),
    }
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

fn user_row(u: User, admin: Signal<bool>, refresh: Callback<()>) -> impl IntoView {
    let me = use_session()
        .me
        .with_untracked(|m| m.as_ref().map(|m| m.username.clone()));
    let username = u.username.clone();
    let roles = RwSignal::new(grants_text(&u.roles));
    let is_global = u.global_admin;
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
            <td>{format::time(u.created_at)}</td>
            <td>{if u.locked_until > 0 { format::time(u.locked_until) } else { String::new() }}</td>
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
