//! `dashboard.toml`: every key of Codis 3.2's dashboard config with its default, validation,
//! the commented default file printed by `--default-config`, and the JSON form shown in the
//! overview (`product_auth` removed; `coordinator_auth` kept, as Codis does).

use std::path::Path;

use codis_model::proxy::forward_method;
use codis_model::units::{ByteSize, TimeSize};
use serde::{Deserialize, Serialize};

pub use codis_host::config::ConfigError;

/// The dashboard config. Field order is Codis's (the overview's `config` JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DashboardConfig {
    /// `zookeeper`/`zk`, `etcd` or `filesystem`/`fs`.
    pub coordinator_name: String,
    /// ZooKeeper ensemble / etcd endpoints (comma separated), or the filesystem root.
    pub coordinator_addr: String,
    /// `user:password` for the coordinator (shown in the overview, as in Codis).
    pub coordinator_auth: String,
    /// Admin HTTP listener.
    pub admin_addr: String,
    /// Product (cluster) name.
    pub product_name: String,
    /// Password of the codis-servers; never serialized.
    #[serde(skip_serializing)]
    pub product_auth: String,
    /// `sync` or `semi-async`.
    pub migration_method: String,
    /// Slots migrated at once (one per group pair at most).
    pub migration_parallel_slots: i64,
    /// Semi-async: unacknowledged chunks in flight.
    pub migration_async_maxbulks: i64,
    /// Semi-async: bytes in flight.
    pub migration_async_maxbytes: ByteSize,
    /// Semi-async: keys per batch.
    pub migration_async_numkeys: i64,
    /// Timeout of one migration call.
    pub migration_timeout: TimeSize,
    /// Timeout of a sentinel conversation.
    pub sentinel_client_timeout: TimeSize,
    /// `SENTINEL MONITOR` quorum.
    pub sentinel_quorum: i64,
    /// `parallel-syncs`.
    pub sentinel_parallel_syncs: i64,
    /// `down-after-milliseconds`.
    pub sentinel_down_after: TimeSize,
    /// `failover-timeout`.
    pub sentinel_failover_timeout: TimeSize,
    /// `notification-script`.
    pub sentinel_notification_script: String,
    /// `client-reconfig-script`.
    pub sentinel_client_reconfig_script: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            coordinator_name: "filesystem".into(),
            coordinator_addr: "/tmp/codis".into(),
            coordinator_auth: String::new(),
            admin_addr: "0.0.0.0:18080".into(),
            product_name: "codis-demo".into(),
            product_auth: String::new(),
            migration_method: "semi-async".into(),
            migration_parallel_slots: 100,
            migration_async_maxbulks: 200,
            migration_async_maxbytes: ByteSize(32 << 20),
            migration_async_numkeys: 500,
            migration_timeout: TimeSize::from_secs(30),
            sentinel_client_timeout: TimeSize::from_secs(10),
            sentinel_quorum: 2,
            sentinel_parallel_syncs: 1,
            sentinel_down_after: TimeSize::from_secs(30),
            sentinel_failover_timeout: TimeSize::from_secs(300),
            sentinel_notification_script: String::new(),
            sentinel_client_reconfig_script: String::new(),
        }
    }
}

impl DashboardConfig {
    /// Parses TOML text over the defaults and validates it.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or a validation error.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, "<text>")
    }

    /// Reads a `dashboard.toml` over the defaults and validates it; unknown keys are logged.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] or a validation error.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let (config, text): (DashboardConfig, String) = codis_host::config::read_toml(path)?;
        config.validate()?;
        for key in codis_host::config::unknown_keys(&text, &Self::keys()) {
            tracing::warn!(key = %key, file = %path.display(), "unknown key in dashboard config, ignored");
        }
        Ok(config)
    }

    fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: DashboardConfig = codis_host::config::parse_toml(text, path)?;
        config.validate()?;
        Ok(config)
    }

    /// Every config key.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(DashboardConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.push("product_auth".into());
        keys
    }

    /// Checks what Codis checks: names, addresses, every number and duration > 0.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if codis_coordinator::Backend::from_name(&self.coordinator_name).is_err() {
            return invalid(
                "coordinator_name",
                "expected zookeeper, zk, etcd, filesystem or fs",
            );
        }
        if self.coordinator_addr.is_empty() {
            return invalid("coordinator_addr", "empty");
        }
        if self.admin_addr.is_empty() {
            return invalid("admin_addr", "empty");
        }
        if !codis_model::proxy::is_valid_product_name(&self.product_name) {
            return invalid("product_name", "must match ^\\w[\\w\\.\\-]*$");
        }
        if forward_method::parse(&self.migration_method).is_none() {
            return invalid("migration_method", "expected sync or semi-async");
        }
        let positive: [(&'static str, i64); 6] = [
            ("migration_parallel_slots", self.migration_parallel_slots),
            ("migration_async_maxbulks", self.migration_async_maxbulks),
            ("migration_async_numkeys", self.migration_async_numkeys),
            ("sentinel_quorum", self.sentinel_quorum),
            ("sentinel_parallel_syncs", self.sentinel_parallel_syncs),
            (
                "migration_async_maxbytes",
                i64::try_from(self.migration_async_maxbytes.as_u64()).unwrap_or(i64::MAX),
            ),
        ];
        for (key, value) in positive {
            if value <= 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        let durations: [(&'static str, TimeSize); 4] = [
            ("migration_timeout", self.migration_timeout),
            ("sentinel_client_timeout", self.sentinel_client_timeout),
            ("sentinel_down_after", self.sentinel_down_after),
            ("sentinel_failover_timeout", self.sentinel_failover_timeout),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return invalid(key, "must be greater than 0");
            }
        }
        Ok(())
    }

    /// The forwarding method every Slot gets (`forward_method`).
    pub fn forward_method(&self) -> i64 {
        forward_method::parse(&self.migration_method).unwrap_or(forward_method::SEMI_ASYNC)
    }

    /// The overview's `config` JSON: every key but `product_auth`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The commented `dashboard.toml` printed by `codis-dashboard --default-config`; it parses to
/// [`DashboardConfig::default`].
pub fn default_config_text() -> &'static str {
    DEFAULT_CONFIG
}

const DEFAULT_CONFIG: &str = r#"# codis-dashboard configuration (Codis 3.2 compatible keys).
#
# Sizes are written like "32mb"; durations like "30s", "5m".

# Where the cluster state lives: "zookeeper" (or "zk"), "etcd", or "filesystem" (or "fs").
# coordinator_addr is the ZooKeeper ensemble / etcd endpoints ("host1:2181,host2:2181"), or
# the root folder for the filesystem. coordinator_auth is "user:password" when needed.
coordinator_name = "filesystem"
coordinator_addr = "/tmp/codis"
coordinator_auth = ""

# Product (cluster) name and the password of its codis-servers.
product_name = "codis-demo"
product_auth = ""

# Admin HTTP listener (the API codis-fe, codis-admin and the proxies call).
admin_addr = "0.0.0.0:18080"

# How slots migrate: "sync" (the proxy moves a key before touching it) or "semi-async"
# (the proxy wraps requests in SLOTSMGRT-EXEC-WRAPPER on the source).
migration_method = "semi-async"
# At most this many slots migrate at once (never two of the same group).
migration_parallel_slots = 100
# Semi-async limits: chunks and bytes in flight, keys per batch.
migration_async_maxbulks = 200
migration_async_maxbytes = "32mb"
migration_async_numkeys = 500
# Timeout of one migration call.
migration_timeout = "30s"

# redis-sentinel settings applied with SENTINEL MONITOR / SET.
sentinel_client_timeout = "10s"
sentinel_quorum = 2
sentinel_parallel_syncs = 1
sentinel_down_after = "30s"
sentinel_failover_timeout = "5m"
sentinel_notification_script = ""
sentinel_client_reconfig_script = ""
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_parses_to_defaults() {
        assert_eq!(
            DashboardConfig::from_toml_str(default_config_text()).unwrap(),
            DashboardConfig::default()
        );
    }

    #[test]
    fn overrides_and_errors_name_the_key() {
        let c = DashboardConfig::from_toml_str(
            "coordinator_name = \"zk\"\ncoordinator_addr = \"a:2181,b:2181\"\nmigration_method = \"SYNC\"\nmigration_timeout = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(c.coordinator_name, "zk");
        assert_eq!(c.forward_method(), forward_method::SYNC);
        assert_eq!(c.migration_timeout.get().as_secs(), 60);
        for (text, key) in [
            ("coordinator_name = \"consul\"", "coordinator_name"),
            ("migration_method = \"fast\"", "migration_method"),
            ("migration_parallel_slots = 0", "migration_parallel_slots"),
            ("sentinel_down_after = \"0s\"", "sentinel_down_after"),
            ("product_name = \"a b\"", "product_name"),
        ] {
            let err = DashboardConfig::from_toml_str(text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        assert!(DashboardConfig::from_toml_str("migration_async_numkeys = \"x\"").is_err());
    }

    #[test]
    fn json_hides_product_auth_only() {
        let c = DashboardConfig {
            product_auth: "secret".into(),
            coordinator_auth: "u:p".into(),
            ..DashboardConfig::default()
        };
        let json = c.to_json();
        assert!(json.get("product_auth").is_none());
        assert_eq!(json["coordinator_auth"], "u:p");
        assert_eq!(json["migration_async_maxbytes"], "32mb");
        assert_eq!(json["sentinel_failover_timeout"], "5m");
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[0], "coordinator_name");
    }
}
