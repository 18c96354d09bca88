//! `proxy.toml`: every key of Codis 3.2's proxy config with its default, the byte-size and
//! duration syntaxes Codis uses (`"128kb"`, `"30s"`), validation, the commented default file
//! printed by `--default-config`, and the JSON form shown in the overview (secrets removed).

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use codis_host::config::ConfigError;
pub use codis_model::units::{ByteSize, TimeSize};

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;

/// The proxy's configuration: every key of Codis 3.2's `proxy.toml`, with Codis's defaults.
///
/// Field order is Codis's (it is the order of the overview's `config` JSON). `product_auth`,
/// `session_auth` and `metrics_report_influxdb_password` are read from TOML but never
/// serialized; `host_admin`/`host_proxy` come only from the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    /// Network of the proxy listener: `tcp`, `tcp4`, `tcp6`, `unix` or `unixpacket`.
    pub proto_type: String,
    /// Address of the RESP listener (a path for unix sockets).
    pub proxy_addr: String,
    /// Address of the admin HTTP listener (tcp only).
    pub admin_addr: String,

    /// `--host-proxy`: address to advertise instead of the bound proxy address.
    #[serde(skip)]
    pub host_proxy: String,
    /// `--host-admin`: address to advertise instead of the bound admin address.
    #[serde(skip)]
    pub host_admin: String,

    /// Jodis coordinator kind: `zookeeper` or `etcd` (empty: no jodis).
    pub jodis_name: String,
    /// Jodis coordinator address(es).
    pub jodis_addr: String,
    /// Jodis coordinator auth, `user:password`.
    pub jodis_auth: String,
    /// Jodis session timeout / etcd TTL.
    pub jodis_timeout: TimeSize,
    /// Register under Codis 2's path (`/zk/codis/db_<product>/proxy/<token>`).
    pub jodis_compatible: bool,

    /// Product (cluster) name.
    pub product_name: String,
    /// Password of the codis-servers; also keys the proxy xauth. Never serialized.
    #[serde(skip_serializing)]
    pub product_auth: String,
    /// Password clients must give with AUTH. Never serialized.
    #[serde(skip_serializing)]
    pub session_auth: String,

    /// Datacenter of this proxy (replica preference).
    pub proxy_datacenter: String,
    /// Maximum number of alive client sessions.
    pub proxy_max_clients: usize,
    /// Go off-heap cap (kept for compatibility; unused by a Rust proxy).
    pub proxy_max_offheap_size: ByteSize,
    /// Go GC ballast (kept for compatibility; unused by a Rust proxy).
    pub proxy_heap_placeholder: ByteSize,

    /// Keepalive PING period of backend connections (0 disables; at least 1 s).
    pub backend_ping_period: TimeSize,
    /// Backend socket receive buffer.
    pub backend_recv_bufsize: ByteSize,
    /// Backend read deadline.
    pub backend_recv_timeout: TimeSize,
    /// Backend socket send buffer.
    pub backend_send_bufsize: ByteSize,
    /// Backend write deadline.
    pub backend_send_timeout: TimeSize,
    /// Maximum in-flight requests per backend connection.
    pub backend_max_pipeline: usize,
    /// Ignore replica groups (always read from masters).
    pub backend_primary_only: bool,
    /// Connections per master per database.
    pub backend_primary_parallel: usize,
    /// Connections per replica per database.
    pub backend_replica_parallel: usize,
    /// TCP keepalive of backend connections (0 disables).
    pub backend_keepalive_period: TimeSize,
    /// Number of databases on the backends (SELECT range).
    pub backend_number_databases: u32,

    /// Client socket receive buffer.
    pub session_recv_bufsize: ByteSize,
    /// Client idle timeout (0 disables).
    pub session_recv_timeout: TimeSize,
    /// Client socket send buffer.
    pub session_send_bufsize: ByteSize,
    /// Client write deadline.
    pub session_send_timeout: TimeSize,
    /// Maximum queued requests per session.
    pub session_max_pipeline: usize,
    /// TCP keepalive of client connections (0 disables).
    pub session_keepalive_period: TimeSize,
    /// Close the client on a failed request instead of replying an error.
    pub session_break_on_failure: bool,
    /// A subscriber whose pushes not yet written reach this is disconnected (Redis's
    /// `client-output-buffer-limit pubsub` hard limit; 0 disables).
    pub session_max_pubsub_output: ByteSize,

    /// URL the JSON overview is POSTed to (empty: off).
    pub metrics_report_server: String,
    /// Period of the JSON report.
    pub metrics_report_period: TimeSize,
    /// InfluxDB base URL (empty: off).
    pub metrics_report_influxdb_server: String,
    /// Period of the InfluxDB report.
    pub metrics_report_influxdb_period: TimeSize,
    /// InfluxDB user.
    pub metrics_report_influxdb_username: String,
    /// InfluxDB password. Never serialized.
    #[serde(skip_serializing)]
    pub metrics_report_influxdb_password: String,
    /// InfluxDB database.
    pub metrics_report_influxdb_database: String,
    /// statsd `host:port` (empty: off).
    pub metrics_report_statsd_server: String,
    /// Period of the statsd report.
    pub metrics_report_statsd_period: TimeSize,
    /// Prefix of the statsd gauge names.
    pub metrics_report_statsd_prefix: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            proto_type: "tcp4".into(),
            proxy_addr: "0.0.0.0:19000".into(),
            admin_addr: "0.0.0.0:11080".into(),
            host_proxy: String::new(),
            host_admin: String::new(),
            jodis_name: String::new(),
            jodis_addr: String::new(),
            jodis_auth: String::new(),
            jodis_timeout: TimeSize::from_secs(20),
            jodis_compatible: false,
            product_name: "codis-demo".into(),
            product_auth: String::new(),
            session_auth: String::new(),
            proxy_datacenter: String::new(),
            proxy_max_clients: 1000,
            proxy_max_offheap_size: ByteSize(1024 * MB),
            proxy_heap_placeholder: ByteSize(256 * MB),
            backend_ping_period: TimeSize::from_secs(5),
            backend_recv_bufsize: ByteSize(128 * KB),
            backend_recv_timeout: TimeSize::from_secs(30),
            backend_send_bufsize: ByteSize(128 * KB),
            backend_send_timeout: TimeSize::from_secs(30),
            backend_max_pipeline: 20480,
            backend_primary_only: false,
            backend_primary_parallel: 1,
            backend_replica_parallel: 1,
            backend_keepalive_period: TimeSize::from_secs(75),
            backend_number_databases: 16,
            session_recv_bufsize: ByteSize(128 * KB),
            session_recv_timeout: TimeSize::from_secs(30 * 60),
            session_send_bufsize: ByteSize(64 * KB),
            session_send_timeout: TimeSize::from_secs(30),
            session_max_pipeline: 10000,
            session_keepalive_period: TimeSize::from_secs(75),
            session_break_on_failure: false,
            session_max_pubsub_output: ByteSize(32 * MB),
            metrics_report_server: String::new(),
            metrics_report_period: TimeSize::from_secs(1),
            metrics_report_influxdb_server: String::new(),
            metrics_report_influxdb_period: TimeSize::from_secs(1),
            metrics_report_influxdb_username: String::new(),
            metrics_report_influxdb_password: String::new(),
            metrics_report_influxdb_database: String::new(),
            metrics_report_statsd_server: String::new(),
            metrics_report_statsd_period: TimeSize::from_secs(1),
            metrics_report_statsd_prefix: String::new(),
        }
    }
}

/// Keys that are read from TOML but never serialized (so not found by [`ProxyConfig::keys`]).
const SECRET_KEYS: [&str; 3] = [
    "product_auth",
    "session_auth",
    "metrics_report_influxdb_password",
];

impl ProxyConfig {
    /// Parses TOML text over the defaults and validates the result. Unknown keys are ignored
    /// (as Codis does) but reported by [`ProxyConfig::unknown_keys`].
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for bad TOML or values, else what [`ProxyConfig::validate`] says.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, "<text>")
    }

    /// Reads a `proxy.toml` file over the defaults and validates the result.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] or a validation error.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let (config, text): (ProxyConfig, String) = codis_host::config::read_toml(path)?;
        config.validate()?;
        for key in Self::unknown_keys(&text) {
            tracing::warn!(key = %key, file = %path.display(), "unknown key in proxy config, ignored");
        }
        Ok(config)
    }

    fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: ProxyConfig = codis_host::config::parse_toml(text, path)?;
        config.validate()?;
        Ok(config)
    }

    /// Every config key, in Codis's order.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(ProxyConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.extend(SECRET_KEYS.iter().map(|k| k.to_string()));
        keys
    }

    /// Top-level keys of `text` that are not config keys (typos, keys of another Codis
    /// component). Empty when the text is not valid TOML.
    pub fn unknown_keys(text: &str) -> Vec<String> {
        codis_host::config::unknown_keys(text, &Self::keys())
    }

    /// Checks what Codis checks, naming the key at fault.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] or [`ConfigError::BadProductName`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if !["tcp", "tcp4", "tcp6", "unix", "unixpacket"].contains(&self.proto_type.as_str()) {
            return invalid("proto_type", "expected tcp, tcp4, tcp6, unix or unixpacket");
        }
        if self.proxy_addr.is_empty() {
            return invalid("proxy_addr", "empty");
        }
        if self.admin_addr.is_empty() {
            return invalid("admin_addr", "empty");
        }
        if !self.jodis_name.is_empty() && self.jodis_addr.is_empty() {
            return invalid("jodis_addr", "empty while jodis_name is set");
        }
        if !self.jodis_addr.is_empty()
            && !["zookeeper", "zk", "etcd"].contains(&self.jodis_name.as_str())
        {
            return invalid(
                "jodis_name",
                "expected zookeeper or etcd when jodis_addr is set",
            );
        }
        if self.product_name.is_empty() {
            return invalid("product_name", "empty");
        }
        if !codis_model::proxy::is_valid_product_name(&self.product_name) {
            return Err(ConfigError::BadProductName(self.product_name.clone()));
        }
        if self.backend_number_databases < 1 {
            return invalid("backend_number_databases", "must be at least 1");
        }
        // Sizes and periods are unsigned types here, so "no negative values" holds by
        // construction: a negative value is already a parse error naming the key.
        Ok(())
    }

    /// The config as the overview's `config` JSON: every key in Codis's order, sizes and
    /// durations as strings, without `product_auth`, `session_auth` and
    /// `metrics_report_influxdb_password`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The commented `proxy.toml` printed by `codis-proxy --default-config`; it parses to
/// [`ProxyConfig::default`].
pub fn default_config_text() -> &'static str {
    DEFAULT_CONFIG
}

const DEFAULT_CONFIG: &str = r#"# codis-proxy configuration (Codis 3.2 compatible keys).
#
# Sizes are written like "128kb" (units b, k/kb, m/mb, g/gb, t/tb, p/pb, lowercase, 1024-based).
# Durations are written like "30s", "500ms", "30m", "1m30s"; a bare number means seconds.

# Product (cluster) this proxy belongs to. Letters, digits, '_', '.', '-'.
product_name = "codis-demo"
# Password of the codis-servers. The proxy sends AUTH with it on every backend connection,
# and it is part of the secret the dashboard uses to call this proxy's admin API.
product_auth = ""

# Password clients must send with AUTH before any other command (empty: no password).
# It is independent of product_auth.
session_auth = ""

# Admin HTTP listener (tcp only).
admin_addr = "0.0.0.0:11080"

# Client listener. proto_type is one of "tcp", "tcp4", "tcp6", "unix", "unixpacket";
# for unix sockets proxy_addr is a path.
proto_type = "tcp4"
proxy_addr = "0.0.0.0:19000"

# Jodis: register this proxy in a coordinator so that clients can discover it.
#   jodis_name: "zookeeper" or "etcd" (empty: no registration)
#   jodis_addr: coordinator address(es); jodis_auth: "user:password" if needed
#   jodis_timeout: session timeout (zookeeper) or TTL (etcd)
#   The node is /jodis/<product_name>/proxy-<token>, or with jodis_compatible = true the
#   Codis 2 path /zk/codis/db_<product_name>/proxy/<token>.
jodis_name = ""
jodis_addr = ""
jodis_auth = ""
jodis_timeout = "20s"
jodis_compatible = false

# Datacenter of this proxy; replicas in the same datacenter are preferred for reads.
proxy_datacenter = ""

# Maximum number of client connections open at once.
proxy_max_clients = 1000

# Memory settings of the Go proxy; accepted for compatibility, not used.
proxy_max_offheap_size = "1024mb"
proxy_heap_placeholder = "256mb"

# Idle backend connections are PINGed at this period, which also detects a backend that
# recovered from MASTERDOWN/LOADING. (0 disables)
backend_ping_period = "5s"

# Backend socket buffers and read/write timeouts.
backend_recv_bufsize = "128kb"
backend_recv_timeout = "30s"
backend_send_bufsize = "128kb"
backend_send_timeout = "30s"

# Maximum requests in flight on one backend connection.
backend_max_pipeline = 20480

# Never read from replicas, even when the dashboard sends replica groups.
backend_primary_only = false

# Connections per backend server and database, to masters and to replicas.
backend_primary_parallel = 1
backend_replica_parallel = 1

# TCP keepalive period of backend connections. (0 disables)
backend_keepalive_period = "75s"

# Number of databases of the backends: clients may SELECT 0 to this number - 1.
backend_number_databases = 16

# Client socket buffers. A client that sends nothing for session_recv_timeout is
# disconnected. (0 disables)
session_recv_bufsize = "128kb"
session_recv_timeout = "30m"
session_send_bufsize = "64kb"
session_send_timeout = "30s"

# Maximum requests a client may queue; a client pipelining more is disconnected, so keep
# this above the largest pipeline your clients send.
session_max_pipeline = 10000

# TCP keepalive period of client connections. (0 disables)
session_keepalive_period = "75s"

# On a failed request, close the client connection instead of replying with an error.
session_break_on_failure = false

# A subscriber that does not read its messages is disconnected once this much is queued for
# it, as Redis's client-output-buffer-limit pubsub hard limit. (0 disables)
session_max_pubsub_output = "32mb"

# POST the JSON overview to this URL (for example http://localhost:28000) every period.
metrics_report_server = ""
metrics_report_period = "1s"

# Write usage points to InfluxDB (for example http://localhost:8086) every period.
metrics_report_influxdb_server = ""
metrics_report_influxdb_period = "1s"
metrics_report_influxdb_username = ""
metrics_report_influxdb_password = ""
metrics_report_influxdb_database = ""

# Send usage gauges to statsd (for example localhost:8125) every period.
metrics_report_statsd_server = ""
metrics_report_statsd_period = "1s"
metrics_report_statsd_prefix = ""
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_text_parses_to_defaults() {
        let parsed = ProxyConfig::from_toml_str(default_config_text()).unwrap();
        assert_eq!(parsed, ProxyConfig::default());
        assert!(ProxyConfig::unknown_keys(default_config_text()).is_empty());
        // Every key is in the file.
        let table: toml::Table = default_config_text().parse().unwrap();
        for key in ProxyConfig::keys() {
            assert!(
                table.contains_key(&key),
                "{key} missing from the default file"
            );
        }
        assert_eq!(table.len(), ProxyConfig::keys().len());
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(
            ProxyConfig::from_toml_str("").unwrap(),
            ProxyConfig::default()
        );
    }

    #[test]
    fn overrides_and_integer_forms() {
        let text = r#"
            product_name = "prod-1"
            product_auth = "secret"
            proxy_max_clients = 50
            backend_ping_period = 0
            session_recv_timeout = 3600
            jodis_timeout = 1.5
            backend_recv_bufsize = 4096
            session_send_bufsize = "1mb"
            metrics_report_period = "1m30s"
            unknown_key = 1
        "#;
        let c = ProxyConfig::from_toml_str(text).unwrap();
        assert_eq!(c.product_name, "prod-1");
        assert_eq!(c.product_auth, "secret");
        assert_eq!(c.proxy_max_clients, 50);
        assert!(c.backend_ping_period.is_zero());
        assert_eq!(c.session_recv_timeout.get(), Duration::from_secs(3600));
        assert_eq!(c.jodis_timeout.get(), Duration::from_millis(1500));
        assert_eq!(c.backend_recv_bufsize, ByteSize(4096));
        assert_eq!(c.session_send_bufsize, ByteSize(1 << 20));
        assert_eq!(c.metrics_report_period.get(), Duration::from_secs(90));
        assert_eq!(c.admin_addr, "0.0.0.0:11080");
        assert_eq!(
            ProxyConfig::unknown_keys(text),
            vec!["unknown_key".to_string()]
        );
    }

    #[test]
    fn parse_errors_name_the_key() {
        for (text, key) in [
            ("backend_recv_bufsize = \"12XB\"", "backend_recv_bufsize"),
            ("session_recv_timeout = \"-5s\"", "session_recv_timeout"),
            ("proxy_max_clients = -1", "proxy_max_clients"),
            ("backend_ping_period = -1", "backend_ping_period"),
            ("backend_primary_only = \"yes\"", "backend_primary_only"),
        ] {
            let err = ProxyConfig::from_toml_str(text).unwrap_err();
            assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn validation() {
        let check = |text: &str, want: &str| {
            let err = ProxyConfig::from_toml_str(text).unwrap_err();
            assert!(err.to_string().starts_with(want), "{text}: {err}");
        };
        check("proto_type = \"\"", "invalid proto_type");
        check("proto_type = \"udp\"", "invalid proto_type");
        check("proxy_addr = \"\"", "invalid proxy_addr");
        check("admin_addr = \"\"", "invalid admin_addr");
        check("product_name = \"\"", "invalid product_name");
        check("product_name = \"a b\"", "bad product name = a b");
        check("jodis_name = \"zookeeper\"", "invalid jodis_addr");
        check("jodis_addr = \"127.0.0.1:2181\"", "invalid jodis_name");
        check(
            "backend_number_databases = 0",
            "invalid backend_number_databases",
        );
        let ok = "jodis_name = \"etcd\"\njodis_addr = \"127.0.0.1:2379\"";
        assert!(ProxyConfig::from_toml_str(ok).is_ok());
    }

    #[test]
    fn json_hides_secrets_and_keeps_order() {
        let c = ProxyConfig {
            product_auth: "pa".into(),
            session_auth: "sa".into(),
            metrics_report_influxdb_password: "ip".into(),
            jodis_auth: "user:pw".into(),
            host_admin: "h:1".into(),
            ..ProxyConfig::default()
        };
        let json = c.to_json();
        let map = json.as_object().unwrap();
        for hidden in SECRET_KEYS {
            assert!(!map.contains_key(hidden), "{hidden}");
        }
        assert!(!map.contains_key("host_admin"));
        assert_eq!(map["jodis_auth"], "user:pw");
        assert_eq!(map["jodis_timeout"], "20s");
        assert_eq!(map["proxy_max_offheap_size"], "1gb");
        assert_eq!(map["session_recv_timeout"], "30m");
        assert_eq!(map["backend_number_databases"], 16);
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(
            &keys[..4],
            ["proto_type", "proxy_addr", "admin_addr", "jodis_name"]
        );
        assert_eq!(keys.last(), Some(&"metrics_report_statsd_prefix"));
        let text = serde_json::to_string(&json).unwrap();
        for secret in ["\"pa\"", "\"sa\"", "\"ip\""] {
            assert!(!text.contains(secret));
        }
    }

    #[test]
    fn json_of_zero_values() {
        let c = ProxyConfig {
            backend_ping_period: TimeSize::default(),
            proxy_heap_placeholder: ByteSize(0),
            ..ProxyConfig::default()
        };
        let json = c.to_json();
        assert_eq!(json["backend_ping_period"], "0");
        assert_eq!(json["proxy_heap_placeholder"], "0");
    }
}
