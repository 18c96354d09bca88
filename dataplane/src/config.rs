//! codis-server configuration: the `redis.conf` keys that matter, with Redis's names, defaults
//! and units, read from a file and from `--key value` arguments, and changed at run time by
//! CONFIG SET.

use std::path::Path;

/// The eviction policy (`maxmemory-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Refuse writes when over the limit.
    NoEviction,
    /// Evict the least recently used key.
    AllKeysLru,
    /// Evict the least frequently used key.
    AllKeysLfu,
    /// Evict a random key.
    AllKeysRandom,
    /// Evict the least recently used key with a TTL.
    VolatileLru,
    /// Evict the least frequently used key with a TTL.
    VolatileLfu,
    /// Evict a random key with a TTL.
    VolatileRandom,
    /// Evict the key with a TTL that expires first.
    VolatileTtl,
}

impl EvictionPolicy {
    const ALL: [(&'static str, EvictionPolicy); 8] = [
        ("noeviction", EvictionPolicy::NoEviction),
        ("allkeys-lru", EvictionPolicy::AllKeysLru),
        ("allkeys-lfu", EvictionPolicy::AllKeysLfu),
        ("allkeys-random", EvictionPolicy::AllKeysRandom),
        ("volatile-lru", EvictionPolicy::VolatileLru),
        ("volatile-lfu", EvictionPolicy::VolatileLfu),
        ("volatile-random", EvictionPolicy::VolatileRandom),
        ("volatile-ttl", EvictionPolicy::VolatileTtl),
    ];

    /// Parses a policy name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, p)| *p)
    }

    /// The policy's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .unwrap_or("noeviction")
    }

    /// True for the LFU policies.
    pub fn is_lfu(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }
}

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// TCP port.
    pub port: u16,
    /// Password clients must send with AUTH (empty: none).
    pub requirepass: String,
    /// Password used to authenticate to a master.
    pub masterauth: String,
    /// Number of databases.
    pub databases: usize,
    /// Working directory.
    pub dir: String,
    /// Pid file to write (empty: none).
    pub pidfile: String,
    /// Log file (empty: stdout).
    pub logfile: String,
    /// debug, verbose, notice or warning.
    pub loglevel: String,
    /// Maximum number of clients.
    pub maxclients: usize,
    /// Idle client timeout in seconds (0: never).
    pub timeout: u64,
    /// TCP keepalive in seconds.
    pub tcp_keepalive: u64,
    /// Background cycle frequency.
    pub hz: u32,
    /// Memory limit in bytes (0: none).
    pub maxmemory: u64,
    /// Eviction policy.
    pub maxmemory_policy: EvictionPolicy,
    /// Keys sampled per eviction.
    pub maxmemory_samples: usize,
    /// Microseconds above which a command is logged (negative: off).
    pub slowlog_log_slower_than: i64,
    /// Slow log length.
    pub slowlog_max_len: usize,
    /// Longest bulk string a client may send.
    pub proto_max_bulk_len: u64,
    /// Largest query buffer per client.
    pub client_query_buffer_limit: u64,
    /// Latency monitor threshold in ms (0: off).
    pub latency_monitor_threshold: u64,
    /// `busy-reply-threshold` (alias `lua-time-limit`): ms a script runs before other
    /// clients get `-BUSY` (0: at once).
    pub busy_reply_threshold: u64,
    /// LFU counter log factor.
    pub lfu_log_factor: u32,
    /// LFU decay time in minutes.
    pub lfu_decay_time: u32,
    /// Entries above which a hash stops being a listpack.
    pub hash_max_listpack_entries: usize,
    /// Value length above which a hash stops being a listpack.
    pub hash_max_listpack_value: usize,
    /// Entries above which a set of integers stops being an intset.
    pub set_max_intset_entries: usize,
    /// Entries above which a sorted set stops being a listpack.
    pub zset_max_listpack_entries: usize,
    /// Member length above which a sorted set stops being a listpack.
    pub zset_max_listpack_value: usize,
    /// List node size (listpack-size).
    pub list_max_listpack_size: i64,
    /// `min-replicas-to-write` (0: off); typed because every write checks it.
    pub min_replicas_to_write: u64,
    /// `min-replicas-max-lag`, seconds.
    pub min_replicas_max_lag: u64,
    /// Keys accepted but not acted on, kept so CONFIG GET answers them.
    pub passive: std::collections::BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut passive = std::collections::BTreeMap::new();
        for (k, v) in [
            ("daemonize", "no"),
            ("protected-mode", "no"),
            ("appendonly", "no"),
            ("appendfsync", "everysec"),
            ("appendfilename", "appendonly.aof"),
            ("appenddirname", "appendonlydir"),
            ("aof-load-truncated", "yes"),
            ("aof-use-rdb-preamble", "yes"),
            ("aof-rewrite-incremental-fsync", "yes"),
            ("aof-timestamp-enabled", "no"),
            ("no-appendfsync-on-rewrite", "no"),
            ("auto-aof-rewrite-percentage", "100"),
            ("auto-aof-rewrite-min-size", "67108864"),
            ("stop-writes-on-bgsave-error", "yes"),
            ("replica-serve-stale-data", "yes"),
            ("save", "3600 1 300 100 60 10000"),
            ("dbfilename", "dump.rdb"),
            ("rdbcompression", "yes"),
            ("rdbchecksum", "yes"),
            ("notify-keyspace-events", ""),
            ("replica-read-only", "yes"),
            ("replica-priority", "100"),
            ("replicaof", ""),
            ("tcp-backlog", "511"),
            ("supervised", "no"),
            ("lazyfree-lazy-eviction", "no"),
            ("lazyfree-lazy-expire", "no"),
            ("lazyfree-lazy-server-del", "no"),
            ("lazyfree-lazy-user-del", "no"),
            ("repl-backlog-size", "1048576"),
            ("activerehashing", "yes"),
        ] {
            passive.insert(k.to_string(), v.to_string());
        }
        // Connection threads: one per core but one by default, leaving a core to the kernel's
        // network stack and neighbours (measured best on 2 cores with the load generator on the
        // same machine). Redis's default is 1: it runs everything on its main thread.
        {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            passive.insert(
                "io-threads".to_string(),
                cores.saturating_sub(1).max(1).to_string(),
            );
        }
        Config {
            bind: vec!["0.0.0.0".into()],
            port: 6379,
            requirepass: String::new(),
            masterauth: String::new(),
            databases: 16,
            dir: ".".into(),
            pidfile: String::new(),
            logfile: String::new(),
            loglevel: "notice".into(),
            maxclients: 10000,
            timeout: 0,
            tcp_keepalive: 300,
            hz: 10,
            maxmemory: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            maxmemory_samples: 5,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            latency_monitor_threshold: 0,
            busy_reply_threshold: 5000,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            // Debian's 7.0.15 build (our reference) defaults to 512.
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            passive,
        }
    }
}

/// Parses a memory size as Redis's `memtoull`: `100`, `1k`, `1kb`, `5mb`, `2gb` (units are
/// case-insensitive; `k` is 1000 and `kb` 1024). An empty number is 0 and a number too large
/// saturates, as Redis accepts both; signs, spaces and fractions are refused.
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = l.strip_suffix("kb") {
        (n, 1024)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1024 * 1024)
    } else if let Some(n) = l.strip_suffix("gb") {
        (n, 1024 * 1024 * 1024)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1000 * 1000)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1000 * 1000 * 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (l.as_str(), 1)
    };
    if !num.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for c in num.bytes() {
        v = v.saturating_mul(10).saturating_add((c - b'0') as u64);
    }
    Some(v.saturating_mul(mul))
}

/// Redis's old names for replication settings.
fn alias(name: &str) -> &str {
    match name {
        "slave-priority" => "replica-priority",
        "slave-read-only" => "replica-read-only",
        "slaveof" => "replicaof",
        "slave-serve-stale-data" => "replica-serve-stale-data",
        "min-slaves-to-write" => "min-replicas-to-write",
        "min-slaves-max-lag" => "min-replicas-max-lag",
        "lua-time-limit" => "busy-reply-threshold",
        other => other,
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

/// Names CONFIG GET knows, in the order it lists them.
pub const KNOWN: &[&str] = &[
    "bind",
    "port",
    "requirepass",
    "masterauth",
    "databases",
    "dir",
    "pidfile",
    "logfile",
    "loglevel",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "hz",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "latency-monitor-threshold",
    "busy-reply-threshold",
    "lfu-log-factor",
    "lfu-decay-time",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "hash-max-ziplist-entries",
    "hash-max-ziplist-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "zset-max-ziplist-entries",
    "zset-max-ziplist-value",
    "list-max-listpack-size",
    "list-max-ziplist-size",
    "min-replicas-to-write",
    "min-replicas-max-lag",
];

impl Config {
    /// Reads a `redis.conf` file. Unknown keys produce warnings, returned to the caller.
    ///
    /// # Errors
    /// The file cannot be read, or a known key has a bad value.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("can't open config file '{}': {e}", path.display()))?;
        let mut warnings = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(words) = crate::resp::request::split_args(line.as_bytes()) else {
                return Err(format!("line {}: unbalanced quotes", n + 1));
            };
            let words: Vec<String> = words
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            if words.is_empty() {
                continue;
            }
            if let Some(w) = self
                .apply(&words[0], &words[1..])
                .map_err(|e| format!("line {}: '{}': {e}", n + 1, line))?
            {
                warnings.push(format!("line {}: {w}", n + 1));
            }
        }
        Ok(warnings)
    }

    /// Applies `--key value ...` arguments, as redis-server accepts after the config file.
    ///
    /// # Errors
    /// A known key has a bad value.
    pub fn apply_args(&mut self, args: &[String]) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let Some(name) = args[i].strip_prefix("--") else {
                return Err(format!("unexpected argument '{}'", args[i]));
            };
            let mut vals = Vec::new();
            i += 1;
            while i < args.len() && !args[i].starts_with("--") {
                vals.push(args[i].clone());
                i += 1;
            }
            if let Some(w) = self.apply(name, &vals)? {
                warnings.push(w);
            }
        }
        Ok(warnings)
    }

    /// Applies one directive from a file or the command line. Returns a warning for keys
    /// that are unknown.
    fn apply(&mut self, name: &str, vals: &[String]) -> Result<Option<String>, String> {
        let name = name.to_ascii_lowercase();
        if name == "bind" {
            if vals.is_empty() {
                return Err("wrong number of arguments".into());
            }
            self.bind = vals
                .iter()
                .map(|v| v.trim_start_matches('-').to_string())
                .collect();
            return Ok(None);
        }
        let val = vals.join(" ");
        match self.set(&name, &val) {
            Ok(()) => Ok(None),
            Err(SetError::Unknown) => {
                self.passive.insert(name.clone(), val);
                Ok(Some(format!("unknown config key '{name}' ignored")))
            }
            Err(SetError::Invalid(e)) => Err(e),
        }
    }

    /// The value of a parameter as CONFIG GET shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = alias(name);
        Some(match name {
            "bind" => self.bind.join(" "),
            "port" => self.port.to_string(),
            "requirepass" => self.requirepass.clone(),
            "masterauth" => self.masterauth.clone(),
            "databases" => self.databases.to_string(),
            "dir" => std::fs::canonicalize(&self.dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| self.dir.clone()),
            "pidfile" => self.pidfile.clone(),
            "logfile" => self.logfile.clone(),
            "loglevel" => self.loglevel.clone(),
            "maxclients" => self.maxclients.to_string(),
            "timeout" => self.timeout.to_string(),
            "tcp-keepalive" => self.tcp_keepalive.to_string(),
            "hz" => self.hz.to_string(),
            "maxmemory" => self.maxmemory.to_string(),
            "maxmemory-policy" => self.maxmemory_policy.name().to_string(),
            "maxmemory-samples" => self.maxmemory_samples.to_string(),
            "slowlog-log-slower-than" => self.slowlog_log_slower_than.to_string(),
            "slowlog-max-len" => self.slowlog_max_len.to_string(),
            "proto-max-bulk-len" => self.proto_max_bulk_len.to_string(),
            "client-query-buffer-limit" => self.client_query_buffer_limit.to_string(),
            "latency-monitor-threshold" => self.latency_monitor_threshold.to_string(),
            "busy-reply-threshold" => self.busy_reply_threshold.to_string(),
            "lfu-log-factor" => self.lfu_log_factor.to_string(),
            "lfu-decay-time" => self.lfu_decay_time.to_string(),
            "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
                self.hash_max_listpack_entries.to_string()
            }
            "hash-max-listpack-value" | "hash-max-ziplist-value" => {
                self.hash_max_listpack_value.to_string()
            }
            "set-max-intset-entries" => self.set_max_intset_entries.to_string(),
            "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
                self.zset_max_listpack_entries.to_string()
            }
            "zset-max-listpack-value" | "zset-max-ziplist-value" => {
                self.zset_max_listpack_value.to_string()
            }
            "list-max-listpack-size" | "list-max-ziplist-size" => {
                self.list_max_listpack_size.to_string()
            }
            "min-replicas-to-write" => self.min_replicas_to_write.to_string(),
            "min-replicas-max-lag" => self.min_replicas_max_lag.to_string(),
            other => return self.passive.get(other).cloned(),
        })
    }

    /// Every parameter name CONFIG GET can match.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = KNOWN.iter().map(|s| s.to_string()).collect();
        v.extend(self.passive.keys().cloned());
        v
    }

    /// Changes a parameter (CONFIG SET, config file, arguments), validating the value as
    /// Redis 7.0 does (same ranges, same error texts).
    ///
    /// # Errors
    /// [`SetError::Unknown`] for a name we do not know, [`SetError::Invalid`] for a bad value.
    pub fn set(&mut self, name: &str, val: &str) -> Result<(), SetError> {
        const INT_MAX: i64 = i32::MAX as i64;
        const LLONG_MAX: i64 = i64::MAX;
        /// An integer config: Redis's strict `string2ll`, then its range check.
        fn int(v: &str, lo: i64, hi: i64) -> Result<i64, SetError> {
            let n = crate::util::number::parse_i64(v.as_bytes()).ok_or_else(|| {
                SetError::Invalid("argument couldn't be parsed into an integer".into())
            })?;
            if n < lo || n > hi {
                return Err(SetError::Invalid(format!(
                    "argument must be between {lo} and {hi} inclusive"
                )));
            }
            Ok(n)
        }
        /// A memory config (`1gb`, `100mb`...), then its range check.
        fn mem(v: &str, lo: u64, hi: u64) -> Result<u64, SetError> {
            let n = parse_memory(v)
                .ok_or_else(|| SetError::Invalid("argument must be a memory value".into()))?;
            if n < lo || n > hi {
                return Err(SetError::Invalid(format!(
                    "argument must be between {lo} and {hi} inclusive"
                )));
            }
            Ok(n)
        }
        const MIB: u64 = 1024 * 1024;
        let llmax = LLONG_MAX as u64;
        let name = alias(name);
        match name {
            "replica-priority" => {
                int(val, 0, INT_MAX)?;
                self.passive.insert(name.into(), val.to_string());
            }
            "replicaof" => {
                // "host port" (at start only; REPLICAOF changes it at run time).
                let w: Vec<&str> = val.split_whitespace().collect();
                let ok = w.is_empty() || (w.len() == 2 && w[1].parse::<u16>().is_ok());
                if !ok {
                    return Err(SetError::Invalid("replicaof expects <host> <port>".into()));
                }
                self.passive.insert(name.into(), w.join(" "));
            }
            "port" => self.port = int(val, 0, 65535)? as u16,
            "requirepass" => self.requirepass = val.to_string(),
            "masterauth" => self.masterauth = val.to_string(),
            "databases" => self.databases = int(val, 1, INT_MAX)? as usize,
            "dir" => self.dir = val.to_string(),
            "pidfile" => self.pidfile = val.to_string(),
            "logfile" => self.logfile = val.to_string(),
            "loglevel" => {
                let l = val.to_ascii_lowercase();
                if !["debug", "verbose", "notice", "warning"].contains(&l.as_str()) {
                    return Err(SetError::Invalid("argument(s) must be one of the following: debug, verbose, notice, warning".into()));
                }
                self.loglevel = l;
            }
            "maxclients" => self.maxclients = int(val, 1, u32::MAX as i64)? as usize,
            "timeout" => self.timeout = int(val, 0, INT_MAX)? as u64,
            "tcp-keepalive" => self.tcp_keepalive = int(val, 0, INT_MAX)? as u64,
            // Redis accepts any non-negative value and clamps it to 1..=500.
            "hz" => self.hz = int(val, 0, INT_MAX)?.clamp(1, 500) as u32,
            "maxmemory" => self.maxmemory = mem(val, 0, u64::MAX)?,
            "maxmemory-policy" => {
                self.maxmemory_policy = EvictionPolicy::parse(val.trim()).ok_or_else(|| {
                    SetError::Invalid("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction".into())
                })?
            }
            "maxmemory-samples" => self.maxmemory_samples = int(val, 1, INT_MAX)? as usize,
            "slowlog-log-slower-than" => self.slowlog_log_slower_than = int(val, -1, LLONG_MAX)?,
            "slowlog-max-len" => self.slowlog_max_len = int(val, 0, LLONG_MAX)? as usize,
            "proto-max-bulk-len" => self.proto_max_bulk_len = mem(val, MIB, llmax)?,
            "client-query-buffer-limit" => self.client_query_buffer_limit = mem(val, MIB, llmax)?,
            "latency-monitor-threshold" => {
                self.latency_monitor_threshold = int(val, 0, LLONG_MAX)? as u64
            }
            "busy-reply-threshold" => self.busy_reply_threshold = int(val, 0, LLONG_MAX)? as u64,
            "lfu-log-factor" => self.lfu_log_factor = int(val, 0, INT_MAX)? as u32,
            "lfu-decay-time" => self.lfu_decay_time = int(val, 0, INT_MAX)? as u32,
            "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
                self.hash_max_listpack_entries = int(val, 0, LLONG_MAX)? as usize
            }
            "hash-max-listpack-value" | "hash-max-ziplist-value" => {
                self.hash_max_listpack_value = mem(val, 0, llmax)? as usize
            }
            "set-max-intset-entries" => {
                self.set_max_intset_entries = int(val, 0, LLONG_MAX)? as usize
            }
            "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
                self.zset_max_listpack_entries = int(val, 0, LLONG_MAX)? as usize
            }
            "zset-max-listpack-value" | "zset-max-ziplist-value" => {
                self.zset_max_listpack_value = mem(val, 0, llmax)? as usize
            }
            "list-max-listpack-size" | "list-max-ziplist-size" => {
                self.list_max_listpack_size = int(val, i32::MIN as i64, INT_MAX)?
            }
            "appendfsync" => {
                if crate::server::aof::Fsync::parse(val).is_none() {
                    return Err(SetError::Invalid(
                        "argument(s) must be one of the following: always, everysec, no".into(),
                    ));
                }
                self.passive.insert(name.into(), val.to_ascii_lowercase());
            }
            "min-replicas-to-write" => self.min_replicas_to_write = int(val, 0, INT_MAX)? as u64,
            "min-replicas-max-lag" => self.min_replicas_max_lag = int(val, 0, INT_MAX)? as u64,
            "auto-aof-rewrite-percentage" => {
                int(val, 0, INT_MAX)?;
                self.passive.insert(name.into(), val.to_string());
            }
            "auto-aof-rewrite-min-size" => {
                let n = mem(val, 0, llmax)?;
                self.passive.insert(name.into(), n.to_string());
            }
            "appendfilename" | "appenddirname" => {
                // Redis's `pathIsBaseName` check: a plain file name.
                if val.is_empty() || val.contains('/') || val == "." || val == ".." {
                    return Err(SetError::Invalid(format!("{name} can't be a path, just a filename")));
                }
                self.passive.insert(name.into(), val.to_string());
            }
            "save" => {
                // Pairs of "<seconds> <changes>", or empty to disable (kept, not acted on).
                let words: Vec<&str> = val.split_whitespace().collect();
                let valid = words.len().is_multiple_of(2)
                    && words
                        .iter()
                        .all(|w| crate::util::number::parse_i64(w.as_bytes()).is_some_and(|n| n >= 0));
                if !valid {
                    return Err(SetError::Invalid("Invalid save parameters".into()));
                }
                self.passive.insert("save".into(), words.join(" "));
            }
            other => {
                if let Some(v) = self.passive.get_mut(other) {
                    // A passive boolean keeps Redis's yes/no validation.
                    if v == "yes" || v == "no" {
                        let l = val.to_ascii_lowercase();
                        if l != "yes" && l != "no" {
                            return Err(SetError::Invalid("argument must be 'yes' or 'no'".into()));
                        }
                        *v = l;
                    } else {
                        *v = val.to_string();
                    }
                } else {
                    return Err(SetError::Unknown);
                }
            }
        }
        Ok(())
    }

    /// `yes`/`no` rendering helper for passive boolean keys.
    pub fn yes_no(b: bool) -> String {
        yes_no(b)
    }
}

/// Why CONFIG SET refused a value.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// No such parameter.
    Unknown,
    /// The value is invalid; the text says why.
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_args() {
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("2GB"), Some(2 << 30));
        let mut c = Config::default();
        let w = c
            .apply_args(&[
                "--port".into(),
                "6380".into(),
                "--no-such".into(),
                "x".into(),
            ])
            .unwrap();
        assert_eq!(c.port, 6380);
        assert_eq!(w.len(), 1);
        assert!(
            c.apply_args(&["--maxmemory".into(), "lots".into()])
                .is_err()
        );
    }
}
