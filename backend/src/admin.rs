//! codis-admin: Codis 3.2's command line over a dashboard, a proxy or the coordinator
//! (spec §7). Every call prints 4-space-indented JSON (or Codis's text lines) and fails with
//! the remote `Cause`.
//!
//! Supported: the dashboard's overview parts and every mutation of §7 (groups, servers,
//! proxies, slots, actions, rebalance, sentinels, shutdown, reload, log level); the proxy's
//! overview parts, `--start`, `--shutdown`, `--log-level`, `--reset-stats`, `--forcegc`,
//! `--fillslots`; the coordinator's `--remove-lock`, `--config-dump` and `--dashboard-list`.

use std::time::Duration;

use clap::Parser;
use codis_model::auth::{dashboard_xauth, proxy_xauth};
use codis_model::topom::{SlotMapping, Topom};
use serde_json::Value;

use crate::proxy_client::{HttpClient, RpcError};

/// Errors of codis-admin.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A remote call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The coordinator failed.
    #[error("coordinator: {0}")]
    Coordinator(#[from] codis_coordinator::Error),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or parsed.
    #[error("{0}")]
    File(String),
}

/// `codis-admin` arguments (Codis's long flags; `-x` addr, `-t` token, `-g` gid, `-a` auth).
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "codis-admin",
    about = "Codis admin: drive a dashboard, a proxy or the coordinator.",
    disable_version_flag = true
)]
pub struct AdminArgs {
    /// Dashboard admin address.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Proxy admin address.
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

    // Dashboard actions.
    #[arg(long)]
    pub shutdown: bool,
    #[arg(long)]
    pub reload: bool,
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[arg(long = "list-group")]
    pub list_group: bool,
    #[arg(long = "list-proxy")]
    pub list_proxy: bool,
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
    #[arg(long)]
    pub confirm: bool,
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
    #[arg(short = 'x', long)]
    pub addr: Option<String>,
    #[arg(short = 't', long)]
    pub token: Option<String>,
    #[arg(long)]
    pub datacenter: Option<String>,

    // Proxy actions.
    #[arg(long)]
    pub start: bool,
    #[arg(long = "reset-stats")]
    pub reset_stats: bool,
    #[arg(long)]
    pub forcegc: bool,
    #[arg(long, value_name = "FILE")]
    pub fillslots: Option<String>,

    // Coordinator actions.
    #[arg(long = "remove-lock")]
    pub remove_lock: bool,
    #[arg(long = "config-dump")]
    pub config_dump: bool,
    #[arg(long = "dashboard-list")]
    pub dashboard_list: bool,
}

fn need<T: Clone>(v: &Option<T>, flag: &str) -> Result<T, AdminError> {
    v.clone()
        .ok_or_else(|| AdminError::Usage(format!("missing --{flag}")))
}

fn pretty(v: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// Runs one codis-admin invocation; returns what to print.
///
/// # Errors
/// The remote `Cause`, a coordinator error, or a usage error.
pub async fn run(a: &AdminArgs) -> Result<String, AdminError> {
    let http = HttpClient::new();
    if let Some(addr) = &a.dashboard {
        return dashboard(a, &http, addr).await;
    }
    if let Some(addr) = &a.proxy {
        return proxy(a, &http, addr).await;
    }
    coordinator(a).await
}

async fn get(http: &HttpClient, url: &str) -> Result<Value, AdminError> {
    Ok(http
        .call::<(), Value>(reqwest::Method::GET, url, None, None)
        .await?)
}

async fn put(http: &HttpClient, url: &str, body: Option<&Value>) -> Result<Value, AdminError> {
    Ok(http
        .call::<Value, Value>(reqwest::Method::PUT, url, body, None)
        .await?)
}

async fn dashboard(a: &AdminArgs, http: &HttpClient, addr: &str) -> Result<String, AdminError> {
    let base = format!("http://{addr}");
    let model: Topom = serde_json::from_value(get(http, &format!("{base}/api/topom/model")).await?)
        .map_err(|e| AdminError::Usage(format!("bad model from {addr}: {e}")))?;
    let x = dashboard_xauth(&model.product_name);
    get(http, &format!("{base}/api/topom/xping/{x}")).await?;
    let api = |route: String| format!("{base}/api/topom/{route}");
    let flag = |b: bool| i64::from(b);
    let ok = |v: Value| Ok(pretty(&v));
    if a.shutdown {
        return ok(put(http, &api(format!("shutdown/{x}")), None).await?);
    }
    if a.reload {
        return ok(put(http, &api(format!("reload/{x}")), None).await?);
    }
    if let Some(level) = &a.log_level {
        return ok(put(http, &api(format!("loglevel/{x}/{level}")), None).await?);
    }
    if a.create_group {
        return ok(put(
            http,
            &api(format!("group/create/{x}/{}", need(&a.gid, "gid")?)),
            None,
        )
        .await?);
    }
    if a.remove_group {
        return ok(put(
            http,
            &api(format!("group/remove/{x}/{}", need(&a.gid, "gid")?)),
            None,
        )
        .await?);
    }
    if a.resync_group {
        let route = if a.all {
            format!("group/resync-all/{x}")
        } else {
            format!("group/resync/{x}/{}", need(&a.gid, "gid")?)
        };
        return ok(put(http, &api(route), None).await?);
    }
    if a.group_add {
        let (gid, addr) = (need(&a.gid, "gid")?, need(&a.addr, "addr")?);
        let route = match &a.datacenter {
            Some(dc) => format!("group/add/{x}/{gid}/{addr}/{dc}"),
            None => format!("group/add/{x}/{gid}/{addr}"),
        };
        return ok(put(http, &api(route), None).await?);
    }
    if a.group_del {
        let route = format!(
            "group/del/{x}/{}/{}",
            need(&a.gid, "gid")?,
            need(&a.addr, "addr")?
        );
        return ok(put(http, &api(route), None).await?);
    }
    if a.promote_server {
        let route = format!(
            "group/promote/{x}/{}/{}",
            need(&a.gid, "gid")?,
            need(&a.addr, "addr")?
        );
        return ok(put(http, &api(route), None).await?);
    }
    if a.replica_groups {
        if a.enable == a.disable {
            return Err(AdminError::Usage("give one of --enable, --disable".into()));
        }
        let route = if a.all {
            format!("group/replica-groups-all/{x}/{}", flag(a.enable))
        } else {
            format!(
                "group/replica-groups/{x}/{}/{}/{}",
                need(&a.gid, "gid")?,
                need(&a.addr, "addr")?,
                flag(a.enable)
            )
        };
        return ok(put(http, &api(route), None).await?);
    }
    if a.sync_action {
        let addr = need(&a.addr, "addr")?;
        let route = match (a.create, a.remove) {
            (true, false) => format!("group/action/create/{x}/{addr}"),
            (false, true) => format!("group/action/remove/{x}/{addr}"),
            _ => return Err(AdminError::Usage("give one of --create, --remove".into())),
        };
        return ok(put(http, &api(route), None).await?);
    }
    if a.create_proxy || a.online_proxy {
        let verb = if a.create_proxy { "create" } else { "online" };
        return ok(put(
            http,
            &api(format!("proxy/{verb}/{x}/{}", need(&a.addr, "addr")?)),
            None,
        )
        .await?);
    }
    if a.remove_proxy || a.reinit_proxy {
        let stats = get(http, &format!("{base}/api/topom/stats/{x}")).await?;
        let models = stats["proxy"]["models"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tokens: Vec<String> = models
            .iter()
            .filter(|p| {
                a.all
                    || a.token.as_deref().is_some_and(|t| p["token"] == t)
                    || a.addr.as_deref().is_some_and(|ad| p["admin_addr"] == ad)
            })
            .filter_map(|p| p["token"].as_str().map(str::to_string))
            .collect();
        if tokens.is_empty() {
            return Err(AdminError::Usage(
                "no such proxy (give --token, --addr or --all)".into(),
            ));
        }
        for t in &tokens {
            let route = if a.remove_proxy {
                format!("proxy/remove/{x}/{t}/{}", flag(a.force))
            } else {
                format!("proxy/reinit/{x}/{t}")
            };
            put(http, &api(route), None).await?;
        }
        return ok(Value::String("OK".into()));
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
            return ok(body);
        }
        let route = if a.offline {
            format!("slots/assign/{x}/offline")
        } else {
            format!("slots/assign/{x}")
        };
        return ok(put(http, &api(route), Some(&body)).await?);
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
                "give one of --create, --remove, --create-some, --create-range, --interval, --disabled".into(),
            ));
        };
        return ok(put(http, &api(route), None).await?);
    }
    if a.rebalance {
        let plan = put(
            http,
            &api(format!("slots/rebalance/{x}/{}", flag(a.confirm))),
            None,
        )
        .await?;
        return Ok(rebalance_text(&plan));
    }
    if a.sentinel_add {
        return ok(put(
            http,
            &api(format!("sentinels/add/{x}/{}", need(&a.addr, "addr")?)),
            None,
        )
        .await?);
    }
    if a.sentinel_del {
        let route = format!(
            "sentinels/del/{x}/{}/{}",
            need(&a.addr, "addr")?,
            flag(a.force)
        );
        return ok(put(http, &api(route), None).await?);
    }
    if a.sentinel_resync {
        return ok(put(http, &api(format!("sentinels/resync-all/{x}")), None).await?);
    }
    let overview = get(http, &format!("{base}/topom")).await?;
    if a.list_group {
        return ok(overview["stats"]["group"]["models"].clone());
    }
    if a.list_proxy {
        return ok(overview["stats"]["proxy"]["models"].clone());
    }
    match a.part.as_deref() {
        None => ok(overview),
        Some("config" | "model" | "stats") => {
            ok(overview[a.part.as_deref().unwrap_or_default()].clone())
        }
        Some("slots") => ok(overview["stats"]["slots"].clone()),
        Some("group") => ok(overview["stats"]["group"].clone()),
        Some("proxy") => ok(overview["stats"]["proxy"].clone()),
        Some(other) => Err(AdminError::Usage(format!("unknown part '{other}'"))),
    }
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

async fn proxy(a: &AdminArgs, http: &HttpClient, addr: &str) -> Result<String, AdminError> {
    let base = format!("http://{addr}");
    let model = get(http, &format!("{base}/api/proxy/model")).await?;
    let product = model["product_name"].as_str().unwrap_or_default();
    let token = model["token"].as_str().unwrap_or_default();
    let x = proxy_xauth(product, &a.auth, token);
    get(http, &format!("{base}/api/proxy/xping/{x}")).await?;
    let api = |route: &str| format!("{base}/api/proxy/{route}/{x}");
    let ok = |v: Value| Ok(pretty(&v));
    if a.start {
        return ok(put(http, &api("start"), None).await?);
    }
    if a.shutdown {
        return ok(put(http, &api("shutdown"), None).await?);
    }
    if a.reset_stats {
        return ok(put(http, &format!("{base}/api/proxy/stats/reset/{x}"), None).await?);
    }
    if a.forcegc {
        return ok(put(http, &api("forcegc"), None).await?);
    }
    if let Some(level) = &a.log_level {
        return ok(put(
            http,
            &format!("{base}/api/proxy/loglevel/{x}/{level}"),
            None,
        )
        .await?);
    }
    if let Some(file) = &a.fillslots {
        let text = std::fs::read_to_string(file)
            .map_err(|e| AdminError::File(format!("read {file}: {e}")))?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| AdminError::File(format!("decode {file}: {e}")))?;
        return ok(put(http, &api("fillslots"), Some(&body)).await?);
    }
    let overview = get(http, &format!("{base}/proxy")).await?;
    match a.part.as_deref() {
        None => ok(overview),
        Some(p @ ("config" | "model" | "stats" | "slots")) => ok(overview[p].clone()),
        Some(other) => Err(AdminError::Usage(format!("unknown part '{other}'"))),
    }
}

async fn coordinator(a: &AdminArgs) -> Result<String, AdminError> {
    let (name, addr) = match (&a.zookeeper, &a.etcd, &a.filesystem) {
        (Some(z), None, None) => ("zookeeper", z),
        (None, Some(e), None) => ("etcd", e),
        (None, None, Some(f)) => ("filesystem", f),
        _ => {
            return Err(AdminError::Usage(
                "give one of --dashboard, --proxy, --zookeeper, --etcd, --filesystem".into(),
            ));
        }
    };
    let c = codis_coordinator::connect(name, addr, &a.coordinator_auth, Duration::from_secs(10))?;
    let product = || need(&a.product, "product");
    let paths = codis_coordinator::paths::topom_path;
    let out = if a.remove_lock {
        c.delete(&paths(&product()?)).await?;
        pretty(&Value::String("OK".into()))
    } else if a.config_dump {
        let p = product()?;
        let read_all = |dir: String| {
            let c = c.clone();
            async move {
                let mut items = Vec::new();
                for path in c.list(&dir, false).await? {
                    if let Some(data) = c.read(&path, false).await? {
                        items.push(serde_json::from_slice::<Value>(&data).unwrap_or(Value::Null));
                    }
                }
                Ok::<_, AdminError>(items)
            }
        };
        let slots = read_all(codis_coordinator::paths::slots_dir(&p)).await?;
        let groups = read_all(codis_coordinator::paths::group_dir(&p)).await?;
        let proxies = read_all(codis_coordinator::paths::proxy_dir(&p)).await?;
        if groups.is_empty() && proxies.is_empty() {
            return Err(AdminError::Usage(format!(
                "product '{p}' has no group and no proxy"
            )));
        }
        let mut all: Vec<Value> = (0..codis_model::MAX_SLOT_NUM as i64)
            .map(|id| serde_json::json!({"id": id, "group_id": 0, "action": {}}))
            .collect();
        for s in slots {
            if let Some(i) = s["id"].as_u64().and_then(|i| usize::try_from(i).ok())
                && i < all.len()
            {
                all[i] = s;
            }
        }
        pretty(&serde_json::json!({"slots": all, "group": groups, "proxy": proxies}))
    } else if a.dashboard_list {
        let mut list = Vec::new();
        for path in c.list(codis_coordinator::paths::CODIS_DIR, false).await? {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            let dashboard = match c.read(&paths(&name), false).await? {
                Some(data) => serde_json::from_slice::<Topom>(&data)
                    .map(|t| t.admin_addr)
                    .unwrap_or_default(),
                None => String::new(),
            };
            list.push(serde_json::json!({"name": name, "dashboard": dashboard}));
        }
        pretty(&Value::Array(list))
    } else {
        return Err(AdminError::Usage(
            "give one of --remove-lock, --config-dump, --dashboard-list".into(),
        ));
    };
    let _ = c.close().await;
    Ok(out)
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
    }
}
