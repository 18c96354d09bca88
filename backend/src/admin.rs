//! codis-admin: Codis 3.2's command line over a dashboard, a proxy or the coordinator
//! (spec §7).
//!
//! Reads print 4-space-indented JSON as Codis does, except the status reads
//! (`--slots-status`, `--proxy-status`, `--group-status`), which print a table unless
//! `--json` is given; `--json` is accepted on every read. Every failure is one line on
//! stderr (see [`AdminError`]) and a non-zero exit code: 2 for a usage error, 1 otherwise.
//!
//! # Layout
//! - this file: the flags, the dashboard and proxy commands, the error type.
//! - [`status`]: the status tables and their JSON.
//! - [`store`]: the coordinator commands (dump, convert, restore, lock, dashboard list).

pub mod status;
pub mod store;

use std::time::Duration;

use clap::Parser;
use codis_model::MAX_SLOT_NUM;
use codis_model::auth::{dashboard_xauth, proxy_xauth};
use codis_model::proxy::Slot;
use codis_model::topom::SlotMapping;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::debug;

use crate::proxy_client::{HttpClient, RpcError};

/// Errors of codis-admin. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command line asks for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// Nothing answers at the address.
    #[error("{kind} {addr} is not reachable: {reason}")]
    Unreachable {
        /// `dashboard` or `proxy`.
        kind: &'static str,
        /// The address given.
        addr: String,
        /// The root cause (connection refused, timed out, ...).
        reason: String,
    },
    /// The dashboard or proxy refused the call; `cause` is its `Cause`.
    #[error("{kind} {addr}: {cause}")]
    Remote {
        /// `dashboard` or `proxy`.
        kind: &'static str,
        /// The address given.
        addr: String,
        /// The remote `Cause`.
        cause: String,
    },
    /// Something answers, but not as a Codis dashboard or proxy would.
    #[error("{kind} {addr}: {detail}")]
    Unexpected {
        /// `dashboard` or `proxy`.
        kind: &'static str,
        /// The address given.
        addr: String,
        /// What was wrong.
        detail: String,
    },
    /// The proxy refused the xauth computed from `--auth`.
    #[error(
        "proxy {addr} refused the xauth ({cause}): give the product's product_auth with --auth"
    )]
    Auth {
        /// The proxy's admin address.
        addr: String,
        /// The proxy's `Cause`.
        cause: String,
    },
    /// A running dashboard holds the product's lock.
    #[error(
        "product '{product}' is locked by a running dashboard at {addr} (pid {pid}): shut it \
         down first (codis-admin --dashboard={addr} --shutdown), or add --force"
    )]
    LockHeld {
        /// The product.
        product: String,
        /// The dashboard's admin address.
        addr: String,
        /// Its pid.
        pid: i64,
    },
    /// The coordinator failed.
    #[error("coordinator: {0}")]
    Coordinator(#[from] codis_coordinator::Error),
    /// The input or the stored data breaks a rule (unknown proxy, invalid config, ...).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or parsed.
    #[error("{0}")]
    File(String),
}

impl AdminError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// `codis-admin` arguments: Codis's long flags (`-x` addr, `-t` token, `-g` gid, `-a` auth,
/// `-v` debug), plus `--json`, `--pid` and `--force` on the coordinator commands.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "codis-admin",
    about = "Codis admin: drive a dashboard, a proxy or the coordinator.",
    disable_version_flag = true
)]
pub struct AdminArgs {
    /// Debug logging (each call made) on stderr.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Print reads as JSON (the status reads print tables otherwise).
    #[arg(long)]
    pub json: bool,
    /// Dashboard admin address (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Proxy admin address (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub proxy: Option<String>,
    /// ZooKeeper ensemble.
    #[arg(long, value_name = "ADDR")]
    pub zookeeper: Option<String>,
    /// etcd endpoints.
    #[arg(long, value_name = "ADDR")]
    pub etcd: Option<String>,
    /// Filesystem coordinator root.
    #[arg(long, value_name = "ROOT")]
    pub filesystem: Option<String>,
    /// Coordinator auth (`user:password`).
    #[arg(
        long = "zookeeper-auth",
        alias = "etcd-auth",
        value_name = "USR:PWD",
        default_value = ""
    )]
    pub coordinator_auth: String,
    /// product_auth (for the proxy's xauth).
    #[arg(short = 'a', long, default_value = "")]
    pub auth: String,
    /// Product name (coordinator commands).
    #[arg(long)]
    pub product: Option<String>,
    /// What to print: config, model, stats, slots, group, proxy (default: the whole overview).
    pub part: Option<String>,

    /// Shut the dashboard or proxy down.
    #[arg(long)]
    pub shutdown: bool,
    /// Make the dashboard reload the coordinator's data.
    #[arg(long)]
    pub reload: bool,
    /// Set the log level of the dashboard or proxy.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The groups (stats.group.models).
    #[arg(long = "list-group")]
    pub list_group: bool,
    /// The proxies (stats.proxy.models).
    #[arg(long = "list-proxy")]
    pub list_proxy: bool,
    /// Slots: a table of slot ranges (JSON: the proxies' slot table).
    #[arg(long = "slots-status")]
    pub slots_status: bool,
    /// Proxies with their health.
    #[arg(long = "proxy-status")]
    pub proxy_status: bool,
    /// Group servers with their replication against what the group expects.
    #[arg(long = "group-status")]
    pub group_status: bool,
    #[arg(long = "create-group")]
    pub create_group: bool,
    #[arg(long = "remove-group")]
    pub remove_group: bool,
    #[arg(long = "resync-group")]
    pub resync_group: bool,
    #[arg(long = "group-add")]
    pub group_add: bool,
    #[arg(long = "group-del")]
    pub group_del: bool,
    #[arg(long = "promote-server")]
    pub promote_server: bool,
    #[arg(long = "replica-groups")]
    pub replica_groups: bool,
    #[arg(long)]
    pub enable: bool,
    #[arg(long)]
    pub disable: bool,
    #[arg(long = "sync-action")]
    pub sync_action: bool,
    #[arg(long = "create-proxy")]
    pub create_proxy: bool,
    #[arg(long = "online-proxy")]
    pub online_proxy: bool,
    #[arg(long = "remove-proxy")]
    pub remove_proxy: bool,
    #[arg(long = "reinit-proxy")]
    pub reinit_proxy: bool,
    #[arg(long = "slots-assign")]
    pub slots_assign: bool,
    #[arg(long = "slot-action")]
    pub slot_action: bool,
    #[arg(long)]
    pub rebalance: bool,
    #[arg(long = "sentinel-add")]
    pub sentinel_add: bool,
    #[arg(long = "sentinel-del")]
    pub sentinel_del: bool,
    #[arg(long = "sentinel-resync")]
    pub sentinel_resync: bool,

    // Action modifiers.
    #[arg(long)]
    pub create: bool,
    #[arg(long)]
    pub remove: bool,
    #[arg(long = "create-some")]
    pub create_some: bool,
    #[arg(long = "create-range")]
    pub create_range: bool,
    #[arg(long)]
    pub interval: Option<i64>,
    #[arg(long)]
    pub disabled: Option<i64>,
    /// Do it (without: print what would be done).
    #[arg(long)]
    pub confirm: bool,
    /// Go on when the proxy or sentinel does not answer; remove a lock or restore while a
    /// dashboard answers.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub offline: bool,
    #[arg(short = 'g', long)]
    pub gid: Option<i64>,
    #[arg(long)]
    pub sid: Option<i64>,
    #[arg(long)]
    pub beg: Option<i64>,
    #[arg(long)]
    pub end: Option<i64>,
    #[arg(long = "gid-from")]
    pub gid_from: Option<i64>,
    #[arg(long = "gid-to")]
    pub gid_to: Option<i64>,
    #[arg(long = "num-slots")]
    pub num_slots: Option<i64>,
    /// A server, sentinel or proxy admin address.
    #[arg(short = 'x', long)]
    pub addr: Option<String>,
    /// A proxy token.
    #[arg(short = 't', long)]
    pub token: Option<String>,
    /// A proxy id.
    #[arg(long)]
    pub pid: Option<i64>,
    #[arg(long)]
    pub datacenter: Option<String>,

    // Proxy actions.
    #[arg(long)]
    pub start: bool,
    #[arg(long = "reset-stats")]
    pub reset_stats: bool,
    #[arg(long)]
    pub forcegc: bool,
    /// Fill the proxy's slots from a []Slot JSON file.
    #[arg(long, value_name = "FILE")]
    pub fillslots: Option<String>,
    /// With --fillslots: lock every slot.
    #[arg(long)]
    pub locked: bool,

    // Coordinator actions.
    /// Delete the product's dashboard lock.
    #[arg(long = "remove-lock")]
    pub remove_lock: bool,
    /// Print the product's slots, groups and proxies.
    #[arg(long = "config-dump")]
    pub config_dump: bool,
    /// With --config-dump: the Codis 2 tree under /zk/codis/db_<product>.
    #[arg(short = '1')]
    pub v1: bool,
    /// Convert a Codis 2 dump (--config-dump -1) to a Codis 3 config.
    #[arg(long = "config-convert", value_name = "FILE")]
    pub config_convert: Option<String>,
    /// Write a Codis 3 config (--config-dump) into an empty product.
    #[arg(long = "config-restore", value_name = "FILE")]
    pub config_restore: Option<String>,
    /// Every product with its dashboard's address.
    #[arg(long = "dashboard-list")]
    pub dashboard_list: bool,
}

fn need<T: Clone>(v: &Option<T>, flag: &str) -> Result<T, AdminError> {
    v.clone()
        .ok_or_else(|| AdminError::Usage(format!("missing --{flag}")))
}

/// 4-space-indented JSON, as Go's `json.MarshalIndent(v, "", "    ")`.
pub(crate) fn pretty(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8(out).unwrap_or_default()
}

fn ok_json() -> Result<String, AdminError> {
    Ok(pretty(&Value::String("OK".into())))
}

/// Checks that `addr` looks like `HOST:PORT`.
fn check_addr(flag: &str, addr: &str) -> Result<(), AdminError> {
    let valid = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid {
        Ok(())
    } else {
        Err(AdminError::Usage(format!(
            "bad --{flag} address '{addr}': want HOST:PORT"
        )))
    }
}

/// Runs one codis-admin invocation; returns what to print.
///
/// # Errors
/// See [`AdminError`].
pub async fn run(a: &AdminArgs) -> Result<String, AdminError> {
    let targets = [a.dashboard.is_some(), a.proxy.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if targets > 1 {
        return Err(AdminError::Usage(
            "give only one of --dashboard, --proxy".into(),
        ));
    }
    if let Some(level) = &a.log_level
        && codis_host::logging::parse_log_level(level).is_none()
    {
        return Err(AdminError::Usage(format!(
            "invalid log level '{level}', expected ERROR, WARN, WARNING, INFO, DEBUG or NONE"
        )));
    }
    if let Some(addr) = &a.dashboard {
        check_addr("dashboard", addr)?;
        return dashboard(a, &Api::new("dashboard", addr)).await;
    }
    if let Some(addr) = &a.proxy {
        check_addr("proxy", addr)?;
        return proxy(a, &Api::new("proxy", addr)).await;
    }
    if let Some(file) = &a.config_convert {
        let v1: Value = read_json_file(file)?;
        let v3 = store::convert_v1(&v1)?;
        return Ok(pretty(&serde_json::to_value(&v3).unwrap_or_default()));
    }
    coordinator(a).await
}

fn read_json_file<T: DeserializeOwned>(file: &str) -> Result<T, AdminError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| AdminError::File(format!("read {file}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| AdminError::File(format!("decode {file}: {e}")))
}

/// The root cause of a transport failure, e.g. "connection refused".
fn root_cause(reason: &str) -> String {
    let last = reason.rsplit(": ").next().unwrap_or(reason).trim();
    let last = last.split(" (os error").next().unwrap_or(last).to_string();
    let mut chars = last.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => reason.to_string(),
    }
}

/// The HTTP API of one dashboard or proxy, with errors that name it.
#[derive(Debug)]
struct Api {
    http: HttpClient,
    kind: &'static str,
    addr: String,
}

impl Api {
    fn new(kind: &'static str, addr: &str) -> Api {
        Api {
            http: HttpClient::new(),
            kind,
            addr: addr.to_string(),
        }
    }

    fn error(&self, e: RpcError) -> AdminError {
        let (kind, addr) = (self.kind, self.addr.clone());
        match e {
            RpcError::Transport { reason, .. } => AdminError::Unreachable {
                kind,
                addr,
                reason: root_cause(&reason),
            },
            RpcError::Remote { cause, .. } => AdminError::Remote { kind, addr, cause },
            RpcError::Status { url, status } => AdminError::Unexpected {
                kind,
                addr,
                detail: format!(
                    "HTTP {status} from {}: is it a codis-{kind}?",
                    url.split_once(&self.addr).map_or(url.as_str(), |(_, p)| p)
                ),
            },
            RpcError::Json { url, reason } => AdminError::Unexpected {
                kind,
                addr,
                detail: format!(
                    "bad JSON from {}: {reason}",
                    url.split_once(&self.addr).map_or(url.as_str(), |(_, p)| p)
                ),
            },
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AdminError> {
        debug!(target: "codis_admin", "GET {} {path}", self.addr);
        let url = format!("http://{}{path}", self.addr);
        self.http
            .call::<(), T>(reqwest::Method::GET, &url, None, None)
            .await
            .map_err(|e| self.error(e))
    }

    async fn put(&self, path: &str, body: Option<&Value>) -> Result<Value, AdminError> {
        debug!(target: "codis_admin", "PUT {} {path}", self.addr);
        let url = format!("http://{}{path}", self.addr);
        self.http
            .call::<Value, Value>(reqwest::Method::PUT, &url, body, None)
            .await
            .map_err(|e| self.error(e))
    }
}

async fn dashboard(a: &AdminArgs, api: &Api) -> Result<String, AdminError> {
    let model: Value = api.get("/api/topom/model").await?;
    let Some(product) = model["product_name"].as_str().map(str::to_string) else {
        return Err(AdminError::Unexpected {
            kind: "dashboard",
            addr: api.addr.clone(),
            detail: "its model has no product_name: is it a codis-dashboard?".into(),
        });
    };
    let x = dashboard_xauth(&product);
    api.get::<Value>(&format!("/api/topom/xping/{x}")).await?;
    let put = |route: String| async move {
        api.put(&format!("/api/topom/{route}"), None).await?;
        ok_json()
    };
    let flag = |b: bool| i64::from(b);
    if a.shutdown {
        return put(format!("shutdown/{x}")).await;
    }
    if a.reload {
        return put(format!("reload/{x}")).await;
    }
    if let Some(level) = &a.log_level {
        return put(format!("loglevel/{x}/{level}")).await;
    }
    if a.create_group {
        return put(format!("group/create/{x}/{}", need(&a.gid, "gid")?)).await;
    }
    if a.remove_group {
        return put(format!("group/remove/{x}/{}", need(&a.gid, "gid")?)).await;
    }
    if a.resync_group {
        return if a.all {
            put(format!("group/resync-all/{x}")).await
        } else {
            put(format!("group/resync/{x}/{}", need(&a.gid, "gid")?)).await
        };
    }
    if a.group_add {
        let (gid, addr) = (need(&a.gid, "gid")?, need(&a.addr, "addr")?);
        return match &a.datacenter {
            Some(dc) => put(format!("group/add/{x}/{gid}/{addr}/{dc}")).await,
            None => put(format!("group/add/{x}/{gid}/{addr}")).await,
        };
    }
    if a.group_del {
        let (gid, addr) = (need(&a.gid, "gid")?, need(&a.addr, "addr")?);
        return put(format!("group/del/{x}/{gid}/{addr}")).await;
    }
    if a.promote_server {
        let (gid, addr) = (need(&a.gid, "gid")?, need(&a.addr, "addr")?);
        put(format!("group/promote/{x}/{gid}/{addr}")).await?;
        // Codis prints the group status after a promotion.
        let stats: Value = api.get(&format!("/api/topom/stats/{x}")).await?;
        return Ok(if a.json {
            pretty(&status::group_status_json(&stats))
        } else {
            status::group_status_table(&stats)
        });
    }
    if a.replica_groups {
        if a.enable == a.disable {
            return Err(AdminError::Usage("give one of --enable, --disable".into()));
        }
        return if a.all {
            put(format!("group/replica-groups-all/{x}/{}", flag(a.enable))).await
        } else {
            let (gid, addr) = (need(&a.gid, "gid")?, need(&a.addr, "addr")?);
            put(format!(
                "group/replica-groups/{x}/{gid}/{addr}/{}",
                flag(a.enable)
            ))
            .await
        };
    }
    if a.sync_action {
        let addr = need(&a.addr, "addr")?;
        return match (a.create, a.remove) {
            (true, false) => put(format!("group/action/create/{x}/{addr}")).await,
            (false, true) => put(format!("group/action/remove/{x}/{addr}")).await,
            _ => Err(AdminError::Usage("give one of --create, --remove".into())),
        };
    }
    if a.create_proxy || a.online_proxy {
        let verb = if a.create_proxy { "create" } else { "online" };
        let addr = need(&a.addr, "addr")?;
        check_addr("addr", &addr)?;
        return put(format!("proxy/{verb}/{x}/{addr}")).await;
    }
    if a.remove_proxy || a.reinit_proxy {
        let tokens = match proxy_tokens(a, api, &x, &product).await {
            Ok(tokens) => tokens,
            // Codis walks the product's proxies: with --force an unknown one is no error,
            // nothing is done and nothing printed.
            Err(AdminError::Invalid(_)) if a.force => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        for t in &tokens {
            if a.remove_proxy {
                put(format!("proxy/remove/{x}/{t}/{}", flag(a.force))).await?;
            } else {
                put(format!("proxy/reinit/{x}/{t}")).await?;
            }
        }
        return ok_json();
    }
    if a.slots_assign {
        let (beg, end) = (need(&a.beg, "beg")?, need(&a.end, "end")?);
        let gid = if a.offline { 0 } else { need(&a.gid, "gid")? };
        let body: Vec<SlotMapping> = (beg..=end)
            .map(|id| SlotMapping {
                id,
                group_id: gid,
                ..SlotMapping::default()
            })
            .collect();
        let body = serde_json::to_value(&body).unwrap_or_default();
        if !a.confirm {
            return Ok(pretty(&body));
        }
        let route = if a.offline {
            format!("/api/topom/slots/assign/{x}/offline")
        } else {
            format!("/api/topom/slots/assign/{x}")
        };
        api.put(&route, Some(&body)).await?;
        return ok_json();
    }
    if a.slot_action {
        let route = if let Some(us) = a.interval {
            format!("slots/action/interval/{x}/{us}")
        } else if let Some(v) = a.disabled {
            format!("slots/action/disabled/{x}/{v}")
        } else if a.create_some {
            format!(
                "slots/action/create-some/{x}/{}/{}/{}",
                need(&a.gid_from, "gid-from")?,
                need(&a.gid_to, "gid-to")?,
                need(&a.num_slots, "num-slots")?
            )
        } else if a.create_range {
            format!(
                "slots/action/create-range/{x}/{}/{}/{}",
                need(&a.beg, "beg")?,
                need(&a.end, "end")?,
                need(&a.gid, "gid")?
            )
        } else if a.create {
            format!(
                "slots/action/create/{x}/{}/{}",
                need(&a.sid, "sid")?,
                need(&a.gid, "gid")?
            )
        } else if a.remove {
            format!("slots/action/remove/{x}/{}", need(&a.sid, "sid")?)
        } else {
            return Err(AdminError::Usage(
                "give one of --create, --remove, --create-some, --create-range, --interval, \
                 --disabled"
                    .into(),
            ));
        };
        return put(route).await;
    }
    if a.rebalance {
        let plan = api
            .put(
                &format!("/api/topom/slots/rebalance/{x}/{}", flag(a.confirm)),
                None,
            )
            .await?;
        return Ok(if a.json {
            pretty(&plan)
        } else {
            rebalance_text(&plan)
        });
    }
    if a.sentinel_add {
        return put(format!("sentinels/add/{x}/{}", need(&a.addr, "addr")?)).await;
    }
    if a.sentinel_del {
        let addr = need(&a.addr, "addr")?;
        return put(format!("sentinels/del/{x}/{addr}/{}", flag(a.force))).await;
    }
    if a.sentinel_resync {
        return put(format!("sentinels/resync-all/{x}")).await;
    }
    if a.slots_status {
        if a.json {
            let slots: Value = api.get(&format!("/api/topom/slots/{x}")).await?;
            return Ok(pretty(&slots));
        }
        let stats: Value = api.get(&format!("/api/topom/stats/{x}")).await?;
        return Ok(status::slots_status_table(&stats));
    }
    if a.proxy_status || a.group_status {
        let stats: Value = api.get(&format!("/api/topom/stats/{x}")).await?;
        return Ok(match (a.proxy_status, a.json) {
            (true, true) => pretty(&status::proxy_status_json(&stats)),
            (true, false) => status::proxy_status_table(&stats),
            (false, true) => pretty(&status::group_status_json(&stats)),
            (false, false) => status::group_status_table(&stats),
        });
    }
    let overview: Value = api.get("/topom").await?;
    if a.list_group {
        return Ok(pretty(&overview["stats"]["group"]["models"]));
    }
    if a.list_proxy {
        return Ok(pretty(&overview["stats"]["proxy"]["models"]));
    }
    match a.part.as_deref() {
        None => Ok(pretty(&overview)),
        Some(p @ ("config" | "model" | "stats")) => Ok(pretty(&overview[p])),
        Some(p @ ("slots" | "group" | "proxy")) => Ok(pretty(&overview["stats"][p])),
        Some(other) => Err(AdminError::Usage(format!(
            "unknown part '{other}' (want config, model, stats, slots, group or proxy)"
        ))),
    }
}

/// The proxies `--remove-proxy` / `--reinit-proxy` act on: by `--token`, `--pid` (proxy id),
/// `--addr` (admin address; asked of the proxy itself when the product does not list it, as
/// Codis does) or `--all` (reinit only). [`AdminError::Invalid`] when the product has no
/// such proxy (with `--force`, also when the proxy at `--addr` does not answer).
async fn proxy_tokens(
    a: &AdminArgs,
    api: &Api,
    x: &str,
    product: &str,
) -> Result<Vec<String>, AdminError> {
    let stats: Value = api.get(&format!("/api/topom/stats/{x}")).await?;
    let models = stats["proxy"]["models"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let token_of = |p: &Value| p["token"].as_str().unwrap_or_default().to_string();
    if a.all {
        if a.remove_proxy {
            return Err(AdminError::Usage(
                "--all goes with --reinit-proxy only; remove proxies one by one".into(),
            ));
        }
        return Ok(models.iter().map(token_of).collect());
    }
    let not_found =
        |what: String| AdminError::Invalid(format!("product '{product}' has no proxy with {what}"));
    if let Some(t) = &a.token {
        return models
            .iter()
            .find(|p| p["token"] == t.as_str())
            .map(|p| vec![token_of(p)])
            .ok_or_else(|| not_found(format!("token {t}")));
    }
    if let Some(id) = a.pid {
        return models
            .iter()
            .find(|p| p["id"].as_i64() == Some(id))
            .map(|p| vec![token_of(p)])
            .ok_or_else(|| not_found(format!("id {id}")));
    }
    if let Some(addr) = &a.addr {
        check_addr("addr", addr)?;
        if let Some(p) = models.iter().find(|p| p["admin_addr"] == addr.as_str()) {
            return Ok(vec![token_of(p)]);
        }
        let proxy = Api::new("proxy", addr);
        let token = match proxy.get::<Value>("/api/proxy/model").await {
            Ok(model) => token_of(&model),
            Err(_) if a.force => return Err(not_found(format!("admin address {addr}"))),
            Err(e) => return Err(e),
        };
        if models.iter().any(|p| p["token"] == token.as_str()) {
            return Ok(vec![token]);
        }
        return Err(not_found(format!("admin address {addr}")));
    }
    Err(AdminError::Usage(
        "give one of --token, --pid, --addr (or --all with --reinit-proxy)".into(),
    ))
}

/// Codis's rebalance output: `[%04d,%04d] => gid` per run of consecutive slots, then `done`,
/// or `nothing changes`.
pub fn rebalance_text(plan: &Value) -> String {
    let mut moves: Vec<(i64, i64)> = plan
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    if moves.is_empty() {
        return "nothing changes".into();
    }
    moves.sort_unstable();
    let mut out = String::new();
    let mut run = (moves[0].0, moves[0].0, moves[0].1);
    for &(sid, gid) in &moves[1..] {
        if sid == run.1 + 1 && gid == run.2 {
            run.1 = sid;
        } else {
            out.push_str(&format!("[{:04},{:04}] => {}\n", run.0, run.1, run.2));
            run = (sid, sid, gid);
        }
    }
    out.push_str(&format!("[{:04},{:04}] => {}\ndone", run.0, run.1, run.2));
    out
}

async fn proxy(a: &AdminArgs, api: &Api) -> Result<String, AdminError> {
    let mutation = a.start
        || a.shutdown
        || a.reset_stats
        || a.forcegc
        || a.log_level.is_some()
        || a.fillslots.is_some();
    if !mutation {
        // Reads need no xauth: Codis xpings before mutations only.
        let overview: Value = api.get("/proxy").await?;
        return match a.part.as_deref() {
            None => Ok(pretty(&overview)),
            Some(p @ ("config" | "model" | "stats" | "slots")) => Ok(pretty(&overview[p])),
            Some(other) => Err(AdminError::Usage(format!(
                "unknown part '{other}' (want config, model, stats or slots)"
            ))),
        };
    }
    // The slots file is checked before anything is sent.
    let slots = match &a.fillslots {
        Some(file) => {
            let mut slots: Vec<Slot> = read_json_file(file)?;
            for s in &mut slots {
                if !(0..MAX_SLOT_NUM as i64).contains(&s.id) {
                    return Err(AdminError::Invalid(format!(
                        "{file}: invalid slot id = {}",
                        s.id
                    )));
                }
                if a.locked {
                    s.locked = true;
                }
            }
            Some(serde_json::to_value(&slots).unwrap_or_default())
        }
        None => None,
    };
    let model: Value = api.get("/api/proxy/model").await?;
    let (Some(product), Some(token)) = (model["product_name"].as_str(), model["token"].as_str())
    else {
        return Err(AdminError::Unexpected {
            kind: "proxy",
            addr: api.addr.clone(),
            detail: "its model has no product_name or token: is it a codis-proxy?".into(),
        });
    };
    let x = proxy_xauth(product, &a.auth, token);
    match api.get::<Value>(&format!("/api/proxy/xping/{x}")).await {
        Ok(_) => {}
        Err(AdminError::Remote { addr, cause, .. }) => {
            return Err(AdminError::Auth { addr, cause });
        }
        Err(e) => return Err(e),
    }
    let put = |route: String, body: Option<Value>| async move {
        api.put(&format!("/api/proxy/{route}"), body.as_ref())
            .await?;
        ok_json()
    };
    if a.start {
        return put(format!("start/{x}"), None).await;
    }
    if a.shutdown {
        return put(format!("shutdown/{x}"), None).await;
    }
    if a.reset_stats {
        return put(format!("stats/reset/{x}"), None).await;
    }
    if a.forcegc {
        return put(format!("forcegc/{x}"), None).await;
    }
    if let Some(level) = &a.log_level {
        return put(format!("loglevel/{x}/{level}"), None).await;
    }
    put(format!("fillslots/{x}"), slots).await
}

async fn coordinator(a: &AdminArgs) -> Result<String, AdminError> {
    let (name, addr) = match (&a.zookeeper, &a.etcd, &a.filesystem) {
        (Some(z), None, None) => ("zookeeper", z),
        (None, Some(e), None) => ("etcd", e),
        (None, None, Some(f)) => ("filesystem", f),
        (None, None, None) => {
            return Err(AdminError::Usage(
                "give one of --dashboard, --proxy, --zookeeper, --etcd, --filesystem \
                 (codis-admin --help lists the commands)"
                    .into(),
            ));
        }
        _ => {
            return Err(AdminError::Usage(
                "give only one of --zookeeper, --etcd, --filesystem".into(),
            ));
        }
    };
    let product = || -> Result<String, AdminError> {
        let p = need(&a.product, "product")?;
        if !codis_model::proxy::is_valid_product_name(&p) {
            return Err(AdminError::Usage(format!("invalid product = {p}")));
        }
        Ok(p)
    };
    if !(a.remove_lock || a.config_dump || a.config_restore.is_some() || a.dashboard_list) {
        return Err(AdminError::Usage(
            "give one of --remove-lock, --config-dump, --config-restore, --dashboard-list".into(),
        ));
    }
    // Check the arguments before connecting, so a usage error never waits on a coordinator.
    let product = if a.dashboard_list {
        String::new()
    } else {
        product()?
    };
    let restore = match &a.config_restore {
        Some(file) => {
            let config: store::ConfigV3 = read_json_file(file)?;
            store::validate_v3(&config)?;
            Some(config)
        }
        None => None,
    };
    debug!(target: "codis_admin", "connect {name} {addr}");
    let c = codis_coordinator::connect(name, addr, &a.coordinator_auth, Duration::from_secs(10))?;
    let out = coordinator_command(a, &c, &product, restore).await;
    let _ = c.close().await;
    out
}

async fn coordinator_command(
    a: &AdminArgs,
    c: &std::sync::Arc<dyn codis_coordinator::Coordinator>,
    product: &str,
    restore: Option<store::ConfigV3>,
) -> Result<String, AdminError> {
    let refuse_if_locked = || async {
        if a.force {
            return Ok(());
        }
        match store::live_lock_holder(c, product).await? {
            Some(t) => Err(AdminError::LockHeld {
                product: product.to_string(),
                addr: t.admin_addr,
                pid: t.pid,
            }),
            None => Ok(()),
        }
    };
    if a.remove_lock {
        refuse_if_locked().await?;
        c.delete(&codis_coordinator::paths::topom_path(product))
            .await?;
        return ok_json();
    }
    if a.config_dump {
        return Ok(if a.v1 {
            pretty(&store::dump_v1(c, product).await?)
        } else {
            let v3 = store::dump_v3(c, product).await?;
            pretty(&serde_json::to_value(&v3).unwrap_or_default())
        });
    }
    if let Some(config) = restore {
        if !a.confirm {
            return Ok(pretty(&serde_json::to_value(&config).unwrap_or_default()));
        }
        refuse_if_locked().await?;
        store::restore_v3(c, product, &config).await?;
        return ok_json();
    }
    Ok(pretty(&store::dashboard_list(c).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalance_ranges() {
        let plan = serde_json::json!({"512": 2, "513": 2, "514": 2, "1000": 3, "7": 2});
        assert_eq!(
            rebalance_text(&plan),
            "[0007,0007] => 2\n[0512,0514] => 2\n[1000,1000] => 3\ndone"
        );
        assert_eq!(rebalance_text(&serde_json::json!({})), "nothing changes");
    }

    #[test]
    fn codis_flags_parse() {
        let a = AdminArgs::try_parse_from([
            "codis-admin",
            "--dashboard=127.0.0.1:18080",
            "--slot-action",
            "--create-range",
            "--beg=0",
            "--end=511",
            "--gid=2",
        ])
        .unwrap();
        assert!(a.slot_action && a.create_range);
        assert_eq!((a.beg, a.end, a.gid), (Some(0), Some(511), Some(2)));
        let a = AdminArgs::try_parse_from(["codis-admin", "--proxy=p:11080", "stats"]).unwrap();
        assert_eq!(a.part.as_deref(), Some("stats"));
        let a = AdminArgs::try_parse_from([
            "codis-admin",
            "-v",
            "--config-dump",
            "--product=p",
            "--zookeeper=z:2181",
            "-1",
        ])
        .unwrap();
        assert!(a.verbose && a.config_dump && a.v1);
    }

    #[test]
    fn addresses_and_causes() {
        assert!(check_addr("dashboard", "127.0.0.1:18080").is_ok());
        assert!(check_addr("dashboard", "[::1]:18080").is_ok());
        assert!(check_addr("dashboard", "codis125:18080").is_ok());
        for bad in ["127.0.0.1", ":18080", "h:0", "h:99999", "h:x", "http://h:1"] {
            assert!(check_addr("dashboard", bad).is_err(), "{bad}");
        }
        assert_eq!(
            root_cause(
                "error sending request for url (http://127.0.0.1:1/api/topom/model): client \
                 error (Connect): tcp connect error: Connection refused (os error 111)"
            ),
            "connection refused"
        );
    }
}
