//! Who is logged in, and what their roles allow (the server still checks every call).

use codis_model::fe::{Me, Role};
use leptos::prelude::*;

/// The session, shared by every page through the context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// The logged-in caller, or none.
    pub(crate) me: RwSignal<Option<Me>>,
    /// `GET /me` has answered (before that we do not know whether to show the login).
    pub(crate) ready: RwSignal<bool>,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            me: RwSignal::new(None),
            ready: RwSignal::new(false),
        }
    }

    /// True when the caller has at least `role` on `product` (reactive).
    pub(crate) fn can(&self, product: &str, role: Role) -> bool {
        self.me
            .with(|me| me.as_ref().and_then(|m| role_on(m, product)) >= Some(role))
    }

    /// True for a global administrator (reactive).
    pub(crate) fn is_global_admin(&self) -> bool {
        self.me
            .with(|me| me.as_ref().is_some_and(|m| m.global_admin))
    }
}

/// The session from the context.
pub(crate) fn use_session() -> Session {
    expect_context::<Session>()
}

/// The strongest role `me` has on `product` (`*` grants count; a global admin is admin).
pub(crate) fn role_on(me: &Me, product: &str) -> Option<Role> {
    if me.global_admin {
        return Some(Role::Admin);
    }
    me.roles
        .iter()
        .filter(|g| g.product == "*" || g.product == product)
        .map(|g| g.role)
        .max()
}

/// A short description of the roles for the header.
pub(crate) fn roles_label(me: &Me) -> String {
    if me.global_admin {
        return "global admin".into();
    }
    if me.roles.is_empty() {
        return "no role".into();
    }
    me.roles
        .iter()
        .map(|g| {
            let on = if g.product == "*" {
                "all products"
            } else {
                &g.product
            };
            format!("{} on {on}", g.role.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use codis_model::fe::RoleGrant;

    use super::*;

    fn me(grants: &[(&str, Role)], global: bool) -> Me {
        Me {
            username: "u".into(),
            global_admin: global,
            roles: grants
                .iter()
                .map(|(p, r)| RoleGrant {
                    product: (*p).into(),
                    role: *r,
                })
                .collect(),
            csrf_token: String::new(),
        }
    }

    #[test]
    fn strongest_matching_grant_wins() {
        let m = me(&[("*", Role::Viewer), ("shop", Role::Operator)], false);
        assert_eq!(role_on(&m, "shop"), Some(Role::Operator));
        assert_eq!(role_on(&m, "ads"), Some(Role::Viewer));
        assert_eq!(role_on(&me(&[("shop", Role::Admin)], false), "ads"), None);
        assert_eq!(role_on(&me(&[], true), "x"), Some(Role::Admin));
        assert_eq!(roles_label(&m), "viewer on all products, operator on shop");
    }
}
