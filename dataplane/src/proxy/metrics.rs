//! Metrics of the proxy: the three push exporters of Codis (JSON overview, InfluxDB,
//! statsd), the Prometheus text served at `/metrics`, and the process figures that go into
//! `stats.rusage` and `stats.runtime`.
//!
//! Exporters run as tokio tasks. Each waits its period (at least 1 s) between reports and,
//! after a failed report, also waits an exponential back-off of 1 s, 2 s, ... 15 s, reset by
//! the next success. They stop when the shutdown signal turns `true`.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use codis_model::proxy::{RawUsage, RuntimeStats, Rusage, STATS_RUNTIME, Stats};
use hyper::Method;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::admin::{AdminApi, overview};
use super::config::{ProxyConfig, TimeSize};
use super::rpc::{HttpClient, basic_auth, encode_query_value};

/// Smallest report period.
const MIN_PERIOD: Duration = Duration::from_secs(1);
/// Back-off after a failed report: from 1 s, doubling, up to 15 s.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Largest statsd datagram (fits an Ethernet MTU, as Codis's statsd client does).
const STATSD_MAX_PACKET: usize = 1432;

/// Errors of one report.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The HTTP call failed.
    #[error(transparent)]
    Rpc(#[from] super::rpc::RpcError),
    /// InfluxDB answered with an error status.
    #[error("influxdb write failed: [{status}] {body}")]
    Influx {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The statsd server address or socket failed.
    #[error("statsd {addr}: {source}")]
    Statsd {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Starts the exporters the config enables (`metrics_report_server`,
/// `metrics_report_influxdb_server`, `metrics_report_statsd_server`); returns their tasks.
pub fn spawn_exporters(
    config: &ProxyConfig,
    api: Arc<dyn AdminApi>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let client = HttpClient::new();
    if !config.metrics_report_server.is_empty() {
        let server = config.metrics_report_server.clone();
        let (api, client) = (api.clone(), client.clone());
        tasks.push(spawn_reporter(
            "json",
            config.metrics_report_period,
            shutdown.clone(),
            move || {
                let (api, client, server) = (api.clone(), client.clone(), server.clone());
                async move { report_json(&client, &server, api.as_ref()).await }
            },
        ));
    }
    if !config.metrics_report_influxdb_server.is_empty() {
        let target = InfluxTarget::from_config(config);
        let (api, client) = (api.clone(), client.clone());
        let period = config.metrics_report_influxdb_period;
        tasks.push(spawn_reporter(
            "influxdb",
            period,
            shutdown.clone(),
            move || {
                let (api, client, target) = (api.clone(), client.clone(), target.clone());
                async move { report_influxdb(&client, &target, api.as_ref()).await }
            },
        ));
    }
    if !config.metrics_report_statsd_server.is_empty() {
        let server = config.metrics_report_statsd_server.clone();
        let prefix = config.metrics_report_statsd_prefix.clone();
        let socket: Arc<tokio::sync::Mutex<Option<UdpSocket>>> = Arc::default();
        let period = config.metrics_report_statsd_period;
        tasks.push(spawn_reporter("statsd", period, shutdown, move || {
            let (api, server, prefix, socket) =
                (api.clone(), server.clone(), prefix.clone(), socket.clone());
            async move {
                let mut guard = socket.lock().await;
                let sock = match guard.take() {
                    Some(sock) => sock,
                    None => statsd_socket(&server).await?,
                };
                let result = report_statsd(&sock, &prefix, api.as_ref()).await;
                // Keep the socket only while it works; otherwise re-resolve next time.
                if result.is_ok() {
                    *guard = Some(sock);
                }
                result
            }
        }));
    }
    tasks
}

/// Runs `report` every `period` (at least 1 s) until shutdown, backing off after failures.
pub fn spawn_reporter<F, Fut>(
    name: &'static str,
    period: TimeSize,
    mut shutdown: watch::Receiver<bool>,
    mut report: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), MetricsError>> + Send + 'static,
{
    let period = period.get().max(MIN_PERIOD);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = BACKOFF_MIN;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait_for(|down| *down) => break,
            }
            match report().await {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    tracing::warn!(exporter = name, error = %e, "report metrics failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|down| *down) => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        tracing::debug!(exporter = name, "metrics exporter stopped");
    })
}

/// POSTs the overview (runtime stats, no slots) to `server` as JSON.
///
/// # Errors
/// [`MetricsError::Rpc`].
pub async fn report_json(
    client: &HttpClient,
    server: &str,
    api: &dyn AdminApi,
) -> Result<(), MetricsError> {
    let doc = overview(api, STATS_RUNTIME);
    client.post_json(server, &doc).await?;
    Ok(())
}

/// Where and how to write InfluxDB points.
#[derive(Debug, Clone)]
pub struct InfluxTarget {
    /// `<scheme>://<host:port>/write?db=<database>&precision=ns`.
    pub url: String,
    /// `Basic ...` header when a username is set.
    pub authorization: Option<String>,
}

impl InfluxTarget {
    /// Builds the write URL from `metrics_report_influxdb_*`. As Codis's client does, the
    /// path of the server URL is replaced by `/write`, and credentials go in a Basic
    /// `Authorization` header (InfluxDB 1.x also accepts them there; they stay out of URLs
    /// and access logs).
    pub fn from_config(config: &ProxyConfig) -> Self {
        let server = config.metrics_report_influxdb_server.trim_end_matches('/');
        let base = match server.find("://") {
            Some(i) => {
                let rest = &server[i + 3..];
                let host_end = rest.find('/').unwrap_or(rest.len());
                format!("{}{}", &server[..i + 3], &rest[..host_end])
            }
            None => format!("http://{}", server.split('/').next().unwrap_or(server)),
        };
        let url = format!(
            "{base}/write?db={}&precision=ns",
            encode_query_value(&config.metrics_report_influxdb_database)
        );
        let authorization = (!config.metrics_report_influxdb_username.is_empty()).then(|| {
            basic_auth(
                &config.metrics_report_influxdb_username,
                &config.metrics_report_influxdb_password,
            )
        });
        InfluxTarget { url, authorization }
    }
}

/// Writes one `codis_usage` point to InfluxDB.
///
/// # Errors
/// [`MetricsError::Rpc`] or [`MetricsError::Influx`] for a status other than 200/204.
pub async fn report_influxdb(
    client: &HttpClient,
    target: &InfluxTarget,
    api: &dyn AdminApi,
) -> Result<(), MetricsError> {
    let model = api.model();
    let stats = api.stats(STATS_RUNTIME);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = influx_line(&model, &stats, now.as_nanos());
    let (status, body) = client
        .send(
            Method::POST,
            &target.url,
            Some((line.into_bytes(), "text/plain; charset=utf-8")),
            target.authorization.as_deref(),
        )
        .await?;
    if status.as_u16() == 200 || status.as_u16() == 204 {
        Ok(())
    } else {
        Err(MetricsError::Influx {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// A field value of the usage point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// An integer (`<n>i` in line protocol).
    Int(i64),
    /// A float.
    Float(f64),
}

/// The usage fields Codis reports to InfluxDB and statsd, sorted by name (InfluxDB's order).
/// Runtime figures are 0 when `stats.runtime` is absent.
pub fn usage_fields(stats: &Stats) -> Vec<(&'static str, FieldValue)> {
    let rt = stats.runtime.clone().unwrap_or_default();
    let int = FieldValue::Int;
    vec![
        ("ops_fails", int(stats.ops.fails)),
        ("ops_qps", int(stats.ops.qps)),
        ("ops_redis_errors", int(stats.ops.redis.errors)),
        ("ops_total", int(stats.ops.total)),
        ("runtime_gc_num", int(i64::from(rt.gc.num))),
        ("runtime_gc_total_pausems", int(rt.gc.total_pausems as i64)),
        ("runtime_num_cgo_call", int(rt.num_cgo_call)),
        ("runtime_num_goroutines", int(rt.num_goroutines)),
        ("runtime_num_mem_offheap", int(rt.mem_offheap)),
        ("runtime_num_procs", int(rt.num_procs)),
        ("rusage_cpu", FieldValue::Float(stats.rusage.cpu)),
        ("rusage_mem", int(stats.rusage.mem)),
        ("sessions_alive", int(stats.sessions.alive)),
        ("sessions_total", int(stats.sessions.total)),
    ]
}

/// Escapes a tag key or value of InfluxDB line protocol.
fn influx_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The line-protocol point Codis writes: measurement `codis_usage`, tags `admin_addr,
/// hostname, product_name, proxy_addr, token` (sorted, empty ones left out), the
/// [`usage_fields`], and a nanosecond timestamp.
pub fn influx_line(model: &codis_model::proxy::Proxy, stats: &Stats, unix_nanos: u128) -> String {
    let mut line = String::from("codis_usage");
    for (k, v) in [
        ("admin_addr", &model.admin_addr),
        ("hostname", &model.hostname),
        ("product_name", &model.product_name),
        ("proxy_addr", &model.proxy_addr),
        ("token", &model.token),
    ] {
        if !v.is_empty() {
            let _ = write!(line, ",{k}={}", influx_escape(v));
        }
    }
    for (i, (k, v)) in usage_fields(stats).into_iter().enumerate() {
        line.push(if i == 0 { ' ' } else { ',' });
        let _ = match v {
            FieldValue::Int(n) => write!(line, "{k}={n}i"),
            FieldValue::Float(f) => write!(line, "{k}={f}"),
        };
    }
    let _ = write!(line, " {unix_nanos}");
    line.push('\n');
    line
}

/// A UDP socket connected to the statsd server.
async fn statsd_socket(server: &str) -> Result<UdpSocket, MetricsError> {
    let err = |source| MetricsError::Statsd {
        addr: server.to_string(),
        source,
    };
    let target = tokio::net::lookup_host(server)
        .await
        .map_err(err)?
        .next()
        .ok_or_else(|| err(std::io::Error::other("no address")))?;
    let local: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(err)?;
    sock.connect(target).await.map_err(err)?;
    Ok(sock)
}

/// The statsd gauge lines Codis sends: `<prefix>.<product>.<admin>.<proxy>.<field>:<v>|g`,
/// with `.` and `:` in the addresses replaced by `_` (an empty prefix leaves a leading dot).
pub fn statsd_lines(prefix: &str, model: &codis_model::proxy::Proxy, stats: &Stats) -> Vec<String> {
    let clean = |s: &str| s.replace(['.', ':'], "_");
    let base = format!(
        "{prefix}.{}.{}.{}",
        model.product_name,
        clean(&model.admin_addr),
        clean(&model.proxy_addr)
    );
    usage_fields(stats)
        .into_iter()
        .map(|(k, v)| match v {
            FieldValue::Int(n) => format!("{base}.{k}:{n}|g"),
            FieldValue::Float(f) => format!("{base}.{k}:{f}|g"),
        })
        .collect()
}

/// Sends the gauges, packed into datagrams of at most 1432 bytes (fits an Ethernet MTU).
///
/// # Errors
/// [`MetricsError::Statsd`].
pub async fn report_statsd(
    sock: &UdpSocket,
    prefix: &str,
    api: &dyn AdminApi,
) -> Result<(), MetricsError> {
    let model = api.model();
    let stats = api.stats(STATS_RUNTIME);
    let addr = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut packet = String::new();
    for line in statsd_lines(prefix, &model, &stats) {
        if !packet.is_empty() && packet.len() + 1 + line.len() > STATSD_MAX_PACKET {
            sock.send(packet.as_bytes())
                .await
                .map_err(|source| MetricsError::Statsd {
                    addr: addr.clone(),
                    source,
                })?;
            packet.clear();
        }
        if !packet.is_empty() {
            packet.push('\n');
        }
        packet.push_str(&line);
    }
    if !packet.is_empty() {
        sock.send(packet.as_bytes())
            .await
            .map_err(|source| MetricsError::Statsd { addr, source })?;
    }
    Ok(())
}

/// Reads one per-command counter.
type CmdField = fn(&codis_model::proxy::OpStats) -> i64;

/// Escapes a Prometheus label value.
fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the stats in the Prometheus text exposition format (version 0.0.4). Per-command
/// series appear when `stats.ops.cmd` is filled (stats flag 1).
pub fn render_prometheus(stats: &Stats) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    let b = |v: bool| if v { "1".to_string() } else { "0".to_string() };
    metric(
        "codis_proxy_online",
        "gauge",
        "1 when the proxy is online.",
        b(stats.online),
    );
    metric(
        "codis_proxy_closed",
        "gauge",
        "1 when the proxy is closing.",
        b(stats.closed),
    );
    metric(
        "codis_proxy_ops_total",
        "counter",
        "Requests decoded from clients.",
        stats.ops.total.to_string(),
    );
    metric(
        "codis_proxy_ops_fails_total",
        "counter",
        "Requests that failed in the proxy.",
        stats.ops.fails.to_string(),
    );
    metric(
        "codis_proxy_ops_redis_errors_total",
        "counter",
        "Error replies delivered to clients.",
        stats.ops.redis.errors.to_string(),
    );
    metric(
        "codis_proxy_ops_qps",
        "gauge",
        "Requests in the last second.",
        stats.ops.qps.to_string(),
    );
    metric(
        "codis_proxy_sessions_total",
        "counter",
        "Client sessions accepted.",
        stats.sessions.total.to_string(),
    );
    metric(
        "codis_proxy_sessions_alive",
        "gauge",
        "Client sessions open.",
        stats.sessions.alive.to_string(),
    );
    metric(
        "codis_proxy_rusage_mem_bytes",
        "gauge",
        "Resident set size.",
        stats.rusage.mem.to_string(),
    );
    metric(
        "codis_proxy_rusage_cpu_ratio",
        "gauge",
        "CPU use over the last second (1 = one core).",
        stats.rusage.cpu.to_string(),
    );
    metric(
        "codis_proxy_sentinel_switched",
        "gauge",
        "1 when a sentinel switched a master since the last slot fill.",
        b(stats.sentinels.switched),
    );
    metric(
        "codis_proxy_backend_primary_only",
        "gauge",
        "1 when replicas are never read.",
        b(stats.backend.primary_only),
    );

    if !stats.ops.cmd.is_empty() {
        let per_cmd: [(&str, &str, CmdField); 4] = [
            ("codis_proxy_cmd_calls_total", "Calls per command.", |c| {
                c.calls
            }),
            (
                "codis_proxy_cmd_usecs_total",
                "Microseconds spent per command.",
                |c| c.usecs,
            ),
            (
                "codis_proxy_cmd_fails_total",
                "Failed calls per command.",
                |c| c.fails,
            ),
            (
                "codis_proxy_cmd_redis_errors_total",
                "Error replies per command.",
                |c| c.redis_errtype,
            ),
        ];
        for (name, help, get) in per_cmd {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for c in &stats.ops.cmd {
                let _ = writeln!(
                    out,
                    "{name}{{opstr=\"{}\"}} {}",
                    prom_label(&c.opstr),
                    get(c)
                );
            }
        }
    }
    out
}

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: i64 = 100;

/// Reads this process's `/proc/self/stat` (CPU times, threads, virtual size) and
/// `/proc/self/status` (resident size). `None` when `/proc` is unavailable.
pub fn read_raw_usage() -> Option<RawUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_raw_usage(&stat, &status)
}

fn parse_raw_usage(stat: &str, status: &str) -> Option<RawUsage> {
    // The command name (field 2) may contain spaces and parentheses: start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let tick_ns = 1_000_000_000 / CLOCK_TICKS;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    Some(RawUsage {
        utime: field(14)? * tick_ns,
        stime: field(15)? * tick_ns,
        cutime: field(16)? * tick_ns,
        cstime: field(17)? * tick_ns,
        num_threads: field(20)?,
        vm_size: field(23)?,
        vm_rss: rss_kb * 1024,
    })
}

/// Samples the process's resource use once a second, as Codis does, so that stats can
/// report `rusage` (CPU over the last second, RSS) without blocking.
#[derive(Debug, Default)]
pub struct UsageSampler {
    last: Mutex<Rusage>,
}

impl UsageSampler {
    /// Starts sampling in a tokio task until shutdown. The first sample is taken at once
    /// (CPU 0), the next after one second.
    pub fn spawn(mut shutdown: watch::Receiver<bool>) -> Arc<UsageSampler> {
        let sampler = Arc::new(UsageSampler::default());
        let weak = Arc::downgrade(&sampler);
        *sampler.last.lock() = sample(None, Duration::ZERO);
        tokio::spawn(async move {
            let mut prev = (read_raw_usage(), tokio::time::Instant::now());
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
                let Some(sampler) = weak.upgrade() else { break };
                let elapsed = prev.1.elapsed();
                let now = sample(prev.0.as_ref(), elapsed);
                prev = (now.raw.clone(), tokio::time::Instant::now());
                *sampler.last.lock() = now;
            }
        });
        sampler
    }

    /// The latest sample, for `stats.rusage`.
    pub fn rusage(&self) -> Rusage {
        self.last.lock().clone()
    }
}

/// One usage sample; CPU is the CPU time used since `prev` over the wall time `elapsed`.
fn sample(prev: Option<&RawUsage>, elapsed: Duration) -> Rusage {
    let raw = read_raw_usage();
    let cpu = match (prev, &raw) {
        (Some(p), Some(r)) if !elapsed.is_zero() => {
            let total = |u: &RawUsage| u.utime + u.stime + u.cutime + u.cstime;
            (total(r) - total(p)).max(0) as f64 / elapsed.as_nanos() as f64
        }
        _ => 0.0,
    };
    Rusage {
        now: super::auth::now_go_string(),
        cpu,
        mem: raw.as_ref().map_or(0, |r| r.vm_rss),
        raw,
    }
}

/// `stats.runtime` for a Rust process: `alloc_bytes` (from the counting allocator,
/// [`crate::alloc::allocated_bytes`]) as general and heap alloc/inuse, the resident size as
/// `sys`, tokio's worker threads as `num_procs` and live tasks as `num_goroutines`; Go-only
/// figures (GC, cgo, off-heap, lookups) are 0.
pub fn runtime_stats(alloc_bytes: u64) -> RuntimeStats {
    let mut rt = RuntimeStats::default();
    let rss = read_raw_usage().map_or(0, |r| r.vm_rss.max(0) as u64);
    rt.general.alloc = alloc_bytes;
    rt.general.sys = rss;
    rt.heap.alloc = alloc_bytes;
    rt.heap.inuse = alloc_bytes;
    rt.heap.sys = rss;
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let m = handle.metrics();
        rt.num_procs = m.num_workers() as i64;
        rt.num_goroutines = m.num_alive_tasks() as i64;
    } else {
        rt.num_procs = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    }
    rt
}

#[cfg(test)]
mod tests;
