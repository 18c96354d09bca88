//! codis-fe's REST API (`/api/v1`): every request and response body, shared by the fe server,
//! the web UI (wasm32) and tests. Field names are the wire contract; keep them stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::topom::TopomOverview;

/// Every error reply: a stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `isolation`,
    /// `locked`, `dashboard_unreachable`, `dashboard_timeout`, `dashboard_error`, `internal`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// A role on a product line, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything about the product line.
    Viewer,
    /// Also changes groups, proxies, slots and sentinels.
    Operator,
    /// Also sets the product line's isolation.
    Admin,
}

impl Role {
    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A role granted on one product line (`"*"`: every product line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Product name or `*`.
    pub product: String,
    /// The role.
    pub role: Role,
}

/// `POST /api/v1/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `GET /api/v1/me`, and the reply of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// User name, or `token:<name>` for an API token.
    pub username: String,
    /// Global administrator (users, tokens, product registration, every product line).
    pub global_admin: bool,
    /// Roles per product line.
    pub roles: Vec<RoleGrant>,
    /// The value to send in the `X-CSRF-Token` header with every cookie-authenticated change
    /// (empty for a token).
    pub csrf_token: String,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreate {
    /// 1 to 64 characters.
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    /// Roles per product line.
    #[serde(default)]
    pub roles: Vec<RoleGrant>,
    /// Global administrator.
    #[serde(default)]
    pub global_admin: bool,
}

/// `PUT /api/v1/users/{username}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdate {
    /// A new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The new roles (replacing the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleGrant>>,
    /// Global administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_admin: Option<bool>,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User name.
    pub username: String,
    /// Global administrator.
    pub global_admin: bool,
    /// Roles per product line.
    pub roles: Vec<RoleGrant>,
    /// Created (Unix milliseconds).
    pub created_at: i64,
    /// Locked out until (Unix milliseconds; 0 when not locked).
    pub locked_until: i64,
}

/// `GET /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// Every user, by name.
    pub users: Vec<User>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreate {
    /// A label.
    pub name: String,
    /// The role the token carries.
    pub role: Role,
    /// The product lines it applies to (`["*"]`: every one).
    pub products: Vec<String>,
}

/// An API token as listed (the secret is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id (for revocation).
    pub id: i64,
    /// Its label.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its product lines.
    pub products: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// Created (Unix milliseconds).
    pub created_at: i64,
    /// Revoked (Unix milliseconds), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// The reply of `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The secret, for `Authorization: Bearer ...`; shown only here.
    pub token: String,
    /// The token's record.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// Every token, newest first.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/products`: registers a product line by its dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRegister {
    /// Product name (Codis's rule: a word character, then word characters, `.` or `-`).
    pub name: String,
    /// The dashboard's admin address, `host:port`.
    pub dashboard: String,
}

/// Isolation of a product line's servers from other product lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// Its servers belong to it alone.
    Physical,
    /// Its servers may serve other product lines, with the same role in each.
    Logical,
}

impl IsolationMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationMode::Physical => "physical",
            IsolationMode::Logical => "logical",
        }
    }
}

/// `PUT /api/v1/products/{product}/isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationSetting {
    /// The mode.
    pub mode: IsolationMode,
}

/// One server's place in one product line, as the dashboards report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPlace {
    /// Product line.
    pub product: String,
    /// Group id.
    pub group_id: i64,
    /// `master` or `replica`.
    pub role: String,
    /// The address as that dashboard writes it.
    pub addr: String,
}

/// A broken isolation rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The server (normalised: `ip:port`).
    pub server: String,
    /// `physical` (a physical product line's server used elsewhere) or `role` (different roles).
    pub rule: String,
    /// What is wrong, naming the product lines, groups and roles.
    pub message: String,
    /// Every place of the server.
    pub places: Vec<ServerPlace>,
}

/// `GET /api/v1/isolation` and `GET /api/v1/products/{product}/isolation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationReport {
    /// Mode per product line (product lines never set are `logical`).
    pub modes: BTreeMap<String, IsolationMode>,
    /// Every server used by more than one product line.
    pub shared: Vec<SharedServer>,
    /// The rules broken now.
    pub violations: Vec<Violation>,
    /// Product lines whose servers are unknown (their dashboards have not answered since
    /// codis-fe started): the report may miss their servers, and servers cannot be added or
    /// promoted anywhere until they answer.
    #[serde(default)]
    pub unknown: Vec<String>,
}

/// A server in several product lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedServer {
    /// Normalised address.
    pub server: String,
    /// Its places.
    pub places: Vec<ServerPlace>,
}

/// One product line at a glance (`GET /api/v1/products`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductSummary {
    /// Product name.
    pub name: String,
    /// The dashboard's admin address (empty when unknown).
    pub dashboard: String,
    /// Where the fe learned of it: `coordinator`, `list` or `registered`.
    pub source: String,
    /// The last poll of the dashboard succeeded.
    pub reachable: bool,
    /// Why it is not reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the dashboard last answered (Unix milliseconds; 0: never).
    pub updated_at: i64,
    /// Coordinator `name addr` as the dashboard reports it.
    pub coordinator: String,
    /// Proxies online.
    pub proxies_up: i64,
    /// Proxies registered.
    pub proxies_total: i64,
    /// Groups.
    pub groups: i64,
    /// Servers in every group.
    pub servers: i64,
    /// Groups whose master does not answer.
    pub masters_down: i64,
    /// Replicas whose replication link is not up, or groups marked out of sync.
    pub replicas_out_of_sync: i64,
    /// Slots with no group.
    pub slots_offline: i64,
    /// Slots with a migration action.
    pub slots_migrating: i64,
    /// Operations per second through the proxies.
    pub ops: i64,
    /// Bytes used by the masters.
    pub memory: i64,
    /// Keys on the masters.
    pub keys: i64,
    /// Client sessions on the proxies.
    pub sessions: i64,
    /// Isolation mode.
    pub isolation: Option<IsolationMode>,
    /// Isolation rules broken now that involve this product line.
    pub violations: i64,
    /// A weight for sorting by trouble (higher: more trouble).
    pub trouble: i64,
}

/// `GET /api/v1/products`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductList {
    /// Every product line, most trouble first, then by name.
    pub products: Vec<ProductSummary>,
}

/// The progress of one slot migration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    /// Slot.
    pub slot: i64,
    /// Source group.
    pub from: i64,
    /// Target group.
    pub to: i64,
    /// Action state.
    pub state: String,
    /// Keys moved so far.
    pub moved: i64,
    /// Keys left.
    pub remaining: i64,
    /// Keys per second over the last polls.
    pub keys_per_sec: f64,
    /// Seconds left at that rate (none when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// `GET /api/v1/products/{product}`: the product line's full picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductDetail {
    /// The summary (the same as in the list).
    pub summary: ProductSummary,
    /// Slots with an action: done and total, and each running migration.
    pub migration: MigrationOverview,
    /// The dashboard's own overview (`GET /topom`: config, model and stats), as last polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topom: Option<TopomOverview>,
}

/// Every migration of a product line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationOverview {
    /// Slots with an action now.
    pub pending: i64,
    /// Each migration the fe accepted (a rebalance, a range or some slots moved), oldest
    /// first; a finished one stays listed for a while.
    #[serde(default)]
    pub runs: Vec<MigrationRun>,
    /// Each slot migrating now.
    pub running: Vec<MigrationProgress>,
}

/// One migration accepted through the fe: its size is fixed when it is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRun {
    /// Its number (ascending in this fe's life).
    pub id: i64,
    /// What was asked: `rebalance`, `slots 0-511 -> group 2`, `8 slots group 1 -> 2`.
    pub what: String,
    /// Unix ms when it was accepted.
    pub started_at: i64,
    /// Slots in it (the plan's size).
    pub total: i64,
    /// Slots of it served by their target group with no action left: `total - remaining`.
    pub done: i64,
    /// Unix ms when no slot of it had an action any more (done, or stopped short when
    /// `done < total`: an action was removed or its queueing failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// One sample of a product line's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Unix milliseconds.
    pub time: i64,
    /// The metric's value.
    pub value: i64,
}

/// `GET /api/v1/products/{product}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// `ops`, `memory` or `keys`.
    pub metric: String,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditItem {
    /// Row id (ascending with time).
    pub id: i64,
    /// Unix milliseconds when it began.
    pub time: i64,
    /// `user:<name>`, `token:<name>` or `anonymous`.
    pub actor: String,
    /// Client address.
    pub source: String,
    /// Product line, if the change concerns one.
    pub product: Option<String>,
    /// What was done, e.g. `group.create`.
    pub action: String,
    /// What it was done to, e.g. a group id or server address.
    pub target: Option<String>,
    /// Parameters as JSON text.
    pub params: Option<String>,
    /// `ok`, an error text, or none while the change runs.
    pub outcome: Option<String>,
    /// The HTTP status answered.
    pub status: Option<i64>,
    /// How long it took.
    pub duration_ms: Option<i64>,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditItem>,
    /// Rows matching the filters.
    pub total: i64,
    /// Pass as `before` for the next (older) page; none on the last page.
    pub next_before: Option<i64>,
}

/// Bodies of the change routes.
pub mod change {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// `POST .../groups`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GroupCreate {
        /// 1..=9999.
        pub group_id: i64,
    }

    /// `POST .../groups/{gid}/servers`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ServerAdd {
        /// `host:port`.
        pub addr: String,
        /// Data center label.
        #[serde(default)]
        pub datacenter: String,
    }

    /// `POST .../groups/{gid}/promote`, `POST .../groups/{gid}/sync-action`,
    /// `DELETE .../groups/{gid}/servers` (as a query), `PUT .../replica-group`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ServerRef {
        /// `host:port` as stored in the group.
        pub addr: String,
    }

    /// `PUT .../groups/{gid}/replica-group`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReplicaGroup {
        /// The server (`*`: every server of every group).
        pub addr: String,
        /// On or off.
        pub enabled: bool,
    }

    /// `PUT .../groups/replica-group-all`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReplicaGroupAll {
        /// On or off, for every server of every group.
        pub enabled: bool,
    }

    /// `POST .../groups/{gid}/sync-action`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SyncAction {
        /// The server.
        pub addr: String,
        /// `create` (queue a SLAVEOF) or `remove`.
        pub action: String,
    }

    /// `POST .../proxies`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ProxyCreate {
        /// The proxy's admin address.
        pub addr: String,
    }

    /// `POST .../slots/assign` (direct, no data moved) and `POST .../slots/move`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SlotRange {
        /// First slot.
        pub begin: i64,
        /// Last slot (inclusive).
        pub end: i64,
        /// Target group (0 with assign: make the slots offline).
        pub group_id: i64,
    }

    /// `POST .../slots/move-some`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SlotsMoveSome {
        /// Source group.
        pub from: i64,
        /// Target group.
        pub to: i64,
        /// How many slots.
        pub count: i64,
    }

    /// `PUT .../slots/action`: fields left out are unchanged.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SlotActionSettings {
        /// Pause (true) or resume migrations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub disabled: Option<bool>,
        /// Microseconds between migration steps (0..=1000000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub interval: Option<i64>,
    }

    /// The reply of `POST .../rebalance/preview`, and the body of `POST .../rebalance`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RebalancePlan {
        /// Slot → target group.
        pub plan: BTreeMap<i64, i64>,
    }

    /// `POST .../sentinels`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SentinelAdd {
        /// `host:port`.
        pub addr: String,
    }

    /// The reply of every change: `{"ok": true}` plus what the dashboard answered.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ChangeDone {
        /// Always true (a failure is an error reply).
        pub ok: bool,
        /// The audit row that records it.
        pub audit_id: i64,
    }
}
