//! The `codis-proxy` command line, with Codis 3.2's flags (including the underscores of
//! `--product_name`, `--product_auth` and `--session_auth`), and the helpers `main` needs
//! around it: applying the flags onto the config, log levels, `--ulimit`, the pid file and
//! the `--fillslots` file.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Parser};
use tracing::level_filters::LevelFilter;

use super::config::{ConfigError, ProxyConfig};

/// Errors of the command-line helpers.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--ulimit`: the open-files limit is lower than asked.
    #[error("ulimit too small: {current}, should be at least {wanted}")]
    UlimitTooSmall {
        /// `ulimit -n` now.
        current: u64,
        /// `--ulimit`.
        wanted: u64,
    },
    /// `--ulimit`: the limit could not be read.
    #[error("can't read the open files limit: {0}")]
    UlimitUnknown(String),
    /// The `--fillslots` file could not be read.
    #[error("load slots from file {path} failed: {source}")]
    SlotsRead {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `--fillslots` file is not a JSON array of slots.
    #[error("decode slots from json {path} failed: {source}")]
    SlotsDecode {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// `codis-proxy`'s arguments.
///
/// `codis-proxy [--ncpu=N [--max-ncpu=MAX]] [--config=CONF] [--log=FILE] [--log-level=LEVEL]
/// [--host-admin=ADDR] [--host-proxy=ADDR] [--dashboard=ADDR | --zookeeper=ADDR
/// [--zookeeper-auth=USR:PWD] | --etcd=ADDR [--etcd-auth=USR:PWD] | --filesystem=ROOT |
/// --fillslots=FILE] [--ulimit=NLIMIT] [--pidfile=FILE] [--product_name=NAME]
/// [--product_auth=AUTH] [--session_auth=AUTH]`, `codis-proxy --default-config`,
/// `codis-proxy --version`.
#[derive(Debug, Clone, Default, PartialEq, Parser)]
#[command(
    name = "codis-proxy",
    about = "Codis proxy: routes Redis commands to codis-servers by slot.",
    disable_version_flag = true,
    group(ArgGroup::new("online").multiple(false).args(
        ["dashboard", "zookeeper", "etcd", "filesystem", "fillslots"]
    ))
)]
pub struct ProxyArgs {
    /// Number of worker threads (default: 4, as Codis, but never more than the CPUs).
    #[arg(long, value_name = "N")]
    pub ncpu: Option<usize>,
    /// Upper bound for the worker threads (default: max(ncpu, number of CPUs)).
    #[arg(long = "max-ncpu", value_name = "MAX", requires = "ncpu")]
    pub max_ncpu: Option<usize>,
    /// Configuration file (proxy.toml).
    #[arg(short = 'c', long, value_name = "CONF")]
    pub config: Option<PathBuf>,
    /// Log to this file, rotated daily (`<FILE>.YYYY-MM-DD`).
    #[arg(short = 'l', long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log level: ERROR, WARN (or WARNING), INFO, DEBUG or NONE; default INFO.
    #[arg(long = "log-level", value_name = "LEVEL", value_parser = parse_log_level_arg)]
    pub log_level: Option<LevelFilter>,
    /// Admin address to advertise instead of the bound one.
    #[arg(long = "host-admin", value_name = "ADDR")]
    pub host_admin: Option<String>,
    /// Proxy address to advertise instead of the bound one.
    #[arg(long = "host-proxy", value_name = "ADDR")]
    pub host_proxy: Option<String>,
    /// Go online through this dashboard (`host:port`).
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Find the dashboard in this ZooKeeper, then go online through it.
    #[arg(long, value_name = "ADDR")]
    pub zookeeper: Option<String>,
    /// ZooKeeper digest auth, `user:password`.
    #[arg(
        long = "zookeeper-auth",
        value_name = "USR:PWD",
        requires = "zookeeper",
        conflicts_with_all = ["dashboard", "etcd", "filesystem", "fillslots"]
    )]
    pub zookeeper_auth: Option<String>,
    /// Find the dashboard in this etcd, then go online through it.
    #[arg(long, value_name = "ADDR")]
    pub etcd: Option<String>,
    /// etcd auth, `user:password`.
    #[arg(
        long = "etcd-auth",
        value_name = "USR:PWD",
        requires = "etcd",
        conflicts_with_all = ["dashboard", "zookeeper", "filesystem", "fillslots"]
    )]
    pub etcd_auth: Option<String>,
    /// Find the dashboard in this filesystem coordinator root, then go online through it.
    #[arg(long, value_name = "ROOT")]
    pub filesystem: Option<PathBuf>,
    /// Standalone: fill the slots from this JSON file ([]Slot) and go online.
    #[arg(long, value_name = "FILE")]
    pub fillslots: Option<PathBuf>,
    /// Refuse to start if `ulimit -n` is below this.
    #[arg(long, value_name = "NLIMIT")]
    pub ulimit: Option<u64>,
    /// Write the pid to this file (removed on exit).
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Override `product_name`.
    #[arg(long = "product_name", value_name = "NAME")]
    pub product_name: Option<String>,
    /// Override `product_auth`.
    #[arg(long = "product_auth", value_name = "AUTH")]
    pub product_auth: Option<String>,
    /// Override `session_auth`.
    #[arg(long = "session_auth", value_name = "AUTH")]
    pub session_auth: Option<String>,
    /// Print the default proxy.toml and exit.
    #[arg(long = "default-config", exclusive = true)]
    pub default_config: bool,
    /// Print the version and exit.
    #[arg(long, exclusive = true)]
    pub version: bool,
}

/// How the proxy goes online (the mutually exclusive flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineMode {
    /// No flag: wait for a dashboard to call `/api/proxy/start`.
    Manual,
    /// `--dashboard`: register with this dashboard.
    Dashboard(String),
    /// `--zookeeper`/`--etcd`/`--filesystem`: read the dashboard address from
    /// `/codis3/<product>/topom` in this coordinator, then register with it.
    Coordinator {
        /// `zookeeper`, `etcd` or `filesystem`.
        name: &'static str,
        /// Address list or root directory.
        addr: String,
        /// `user:password` or empty.
        auth: String,
    },
    /// `--fillslots`: fill the slots from this file and start, without a dashboard.
    FillSlots(PathBuf),
}

impl ProxyArgs {
    /// The online mode chosen by the flags.
    pub fn online_mode(&self) -> OnlineMode {
        if let Some(d) = &self.dashboard {
            return OnlineMode::Dashboard(d.clone());
        }
        if let Some(addr) = &self.zookeeper {
            let auth = self.zookeeper_auth.clone().unwrap_or_default();
            return OnlineMode::Coordinator {
                name: "zookeeper",
                addr: addr.clone(),
                auth,
            };
        }
        if let Some(addr) = &self.etcd {
            let auth = self.etcd_auth.clone().unwrap_or_default();
            return OnlineMode::Coordinator {
                name: "etcd",
                addr: addr.clone(),
                auth,
            };
        }
        if let Some(root) = &self.filesystem {
            return OnlineMode::Coordinator {
                name: "filesystem",
                addr: root.display().to_string(),
                auth: String::new(),
            };
        }
        if let Some(file) = &self.fillslots {
            return OnlineMode::FillSlots(file.clone());
        }
        OnlineMode::Manual
    }

    /// Worker threads: `--ncpu`; by default Codis's 4, capped at the number of CPUs (each
    /// worker is a busy thread of its own: more workers than cores only adds switches).
    pub fn ncpu(&self) -> usize {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        self.ncpu.unwrap_or(4.min(cpus)).max(1)
    }

    /// Upper bound of worker threads: max(ncpu, `--max-ncpu` or the number of CPUs).
    pub fn max_ncpu(&self) -> usize {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        self.ncpu().max(self.max_ncpu.unwrap_or(cpus))
    }

    /// Applies the flags that override the config (`--host-admin`, `--host-proxy`,
    /// `--product_name`, `--product_auth`, `--session_auth`), then validates it.
    ///
    /// # Errors
    /// What [`ProxyConfig::validate`] says, e.g. for a bad `--product_name`.
    pub fn apply_to(&self, config: &mut ProxyConfig) -> Result<(), ConfigError> {
        let set = |field: &mut String, flag: &Option<String>, name: &str, secret: bool| {
            if let Some(v) = flag {
                *field = v.clone();
                if secret {
                    tracing::warn!("option --{name} = <hidden>");
                } else {
                    tracing::warn!("option --{name} = {v}");
                }
            }
        };
        set(
            &mut config.host_admin,
            &self.host_admin,
            "host-admin",
            false,
        );
        set(
            &mut config.host_proxy,
            &self.host_proxy,
            "host-proxy",
            false,
        );
        set(
            &mut config.product_name,
            &self.product_name,
            "product_name",
            false,
        );
        set(
            &mut config.product_auth,
            &self.product_auth,
            "product_auth",
            true,
        );
        set(
            &mut config.session_auth,
            &self.session_auth,
            "session_auth",
            true,
        );
        config.validate()
    }

    /// The config to run with: the defaults, or `--config`'s file over them, then the flags.
    ///
    /// # Errors
    /// File, parse and validation errors.
    pub fn load_config(&self) -> Result<ProxyConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ProxyConfig::load_file(path)?,
            None => ProxyConfig::default(),
        };
        self.apply_to(&mut config)?;
        Ok(config)
    }
}

/// The version reported by `--version` and the overview's `version`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " @codis-rs");

/// The build description reported by `--version` and the overview's `compile`.
pub fn compile_info() -> String {
    format!(
        "codis-rs dataplane by rustc, {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// What `codis-proxy --version` prints (two lines, like Codis: `version: ...`, `compile: ...`).
pub fn version_text() -> String {
    format!("version: {VERSION}\ncompile: {}", compile_info())
}

pub use codis_host::logging::parse_log_level;

fn parse_log_level_arg(s: &str) -> Result<LevelFilter, String> {
    parse_log_level(s).ok_or_else(|| {
        format!("invalid log level '{s}', expected ERROR, WARN, WARNING, INFO, DEBUG or NONE")
    })
}

/// The soft limit of open files of this process (`ulimit -n`), from `/proc/self/limits`.
fn open_files_limit() -> Result<u64, CliError> {
    let limits = std::fs::read_to_string("/proc/self/limits")
        .map_err(|e| CliError::UlimitUnknown(e.to_string()))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| CliError::UlimitUnknown("no 'Max open files' line".into()))?;
    let soft = line["Max open files".len()..]
        .split_whitespace()
        .next()
        .unwrap_or("");
    if soft == "unlimited" {
        return Ok(u64::MAX);
    }
    soft.parse()
        .map_err(|_| CliError::UlimitUnknown(format!("bad value '{soft}'")))
}

/// `--ulimit=N`: fails unless the open-files limit is at least `wanted`.
///
/// # Errors
/// [`CliError::UlimitTooSmall`] or [`CliError::UlimitUnknown`].
pub fn check_ulimit(wanted: u64) -> Result<(), CliError> {
    let current = open_files_limit()?;
    if current < wanted {
        return Err(CliError::UlimitTooSmall { current, wanted });
    }
    Ok(())
}

/// Reads a `--fillslots` file: a JSON array of slots.
///
/// # Errors
/// [`CliError::SlotsRead`] or [`CliError::SlotsDecode`].
pub fn load_slots_file(path: &Path) -> Result<Vec<codis_model::proxy::Slot>, CliError> {
    let text = std::fs::read(path).map_err(|source| CliError::SlotsRead {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| CliError::SlotsDecode {
        path: path.display().to_string(),
        source,
    })
}

pub use codis_host::PidFile;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ProxyArgs, clap::Error> {
        ProxyArgs::try_parse_from(std::iter::once("codis-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn no_args() {
        let a = parse(&[]).unwrap();
        assert_eq!(a, ProxyArgs::default());
        assert_eq!(a.online_mode(), OnlineMode::Manual);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap();
        assert_eq!(a.ncpu(), 4.min(cpus));
        assert!(a.max_ncpu() >= a.ncpu());
    }

    #[test]
    fn typical_command_line() {
        let a = parse(&[
            "--ncpu=8",
            "--max-ncpu",
            "16",
            "-c",
            "proxy.toml",
            "-l",
            "proxy.log",
            "--log-level=warning",
            "--host-admin=10.0.0.1:11080",
            "--host-proxy=10.0.0.1:19000",
            "--dashboard=10.0.0.2:18080",
            "--ulimit=1024",
            "--pidfile=proxy.pid",
            "--product_name=prod",
            "--product_auth=pa",
            "--session_auth=sa",
        ])
        .unwrap();
        assert_eq!(a.ncpu(), 8);
        assert_eq!(a.max_ncpu(), 16);
        assert_eq!(a.config.as_deref(), Some(Path::new("proxy.toml")));
        assert_eq!(a.log.as_deref(), Some(Path::new("proxy.log")));
        assert_eq!(a.log_level, Some(LevelFilter::WARN));
        assert_eq!(a.ulimit, Some(1024));
        assert_eq!(a.pidfile.as_deref(), Some(Path::new("proxy.pid")));
        assert_eq!(
            a.online_mode(),
            OnlineMode::Dashboard("10.0.0.2:18080".into())
        );

        let mut config = ProxyConfig::default();
        a.apply_to(&mut config).unwrap();
        assert_eq!(config.host_admin, "10.0.0.1:11080");
        assert_eq!(config.host_proxy, "10.0.0.1:19000");
        assert_eq!(config.product_name, "prod");
        assert_eq!(config.product_auth, "pa");
        assert_eq!(config.session_auth, "sa");
    }

    #[test]
    fn coordinator_modes() {
        let a = parse(&["--zookeeper=127.0.0.1:2181", "--zookeeper-auth=u:p"]).unwrap();
        assert_eq!(
            a.online_mode(),
            OnlineMode::Coordinator {
                name: "zookeeper",
                addr: "127.0.0.1:2181".into(),
                auth: "u:p".into()
            }
        );
        let a = parse(&["--etcd", "127.0.0.1:2379"]).unwrap();
        assert_eq!(
            a.online_mode(),
            OnlineMode::Coordinator {
                name: "etcd",
                addr: "127.0.0.1:2379".into(),
                auth: String::new()
            }
        );
        let a = parse(&["--filesystem=/tmp/codis"]).unwrap();
        assert_eq!(
            a.online_mode(),
            OnlineMode::Coordinator {
                name: "filesystem",
                addr: "/tmp/codis".into(),
                auth: String::new()
            }
        );
        let a = parse(&["--fillslots=slots.json"]).unwrap();
        assert_eq!(a.online_mode(), OnlineMode::FillSlots("slots.json".into()));
    }

    #[test]
    fn online_modes_are_exclusive() {
        for args in [
            &["--dashboard=a:1", "--zookeeper=b:2"][..],
            &["--etcd=a:1", "--filesystem=/x"],
            &["--fillslots=f", "--dashboard=a:1"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
    }

    #[test]
    fn dependent_flags() {
        assert!(parse(&["--zookeeper-auth=u:p"]).is_err());
        assert!(parse(&["--etcd-auth=u:p", "--zookeeper=a:1"]).is_err());
        assert!(parse(&["--max-ncpu=4"]).is_err());
    }

    #[test]
    fn exclusive_commands() {
        assert!(parse(&["--default-config"]).unwrap().default_config);
        assert!(parse(&["--version"]).unwrap().version);
        assert!(parse(&["--default-config", "-c", "x.toml"]).is_err());
        assert!(parse(&["--version", "--ncpu=2"]).is_err());
    }

    #[test]
    fn bad_values() {
        assert!(parse(&["--log-level=TRACE"]).is_err());
        assert!(parse(&["--ncpu=x"]).is_err());
        assert!(parse(&["--ulimit=-1"]).is_err());
        // Codis spells these with underscores; the dashed forms do not exist.
        assert!(parse(&["--product-name=x"]).is_err());
    }

    #[test]
    fn bad_product_name_override_is_rejected() {
        let a = parse(&["--product_name=bad name"]).unwrap();
        let mut config = ProxyConfig::default();
        let err = a.apply_to(&mut config).unwrap_err();
        assert_eq!(err.to_string(), "bad product name = bad name");
    }

    #[test]
    fn load_config_from_file_then_flags() {
        let dir = std::env::temp_dir().join(format!("codis-proxy-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(
            &file,
            "product_name = \"from-file\"\nproxy_max_clients = 7\n",
        )
        .unwrap();
        let a = parse(&["-c", file.to_str().unwrap(), "--session_auth=s"]).unwrap();
        let c = a.load_config().unwrap();
        assert_eq!(c.product_name, "from-file");
        assert_eq!(c.proxy_max_clients, 7);
        assert_eq!(c.session_auth, "s");
        let a = parse(&["-c", file.to_str().unwrap(), "--product_name=flag"]).unwrap();
        assert_eq!(a.load_config().unwrap().product_name, "flag");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_lines() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("version: "));
        assert!(lines[1].starts_with("compile: "));
    }

    #[test]
    fn log_levels() {
        assert_eq!(parse_log_level("info"), Some(LevelFilter::INFO));
        assert_eq!(parse_log_level("Warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_log_level("WARN"), Some(LevelFilter::WARN));
        assert_eq!(parse_log_level("error"), Some(LevelFilter::ERROR));
        assert_eq!(parse_log_level("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_log_level("none"), Some(LevelFilter::OFF));
        assert_eq!(parse_log_level("trace"), None);
    }

    #[test]
    fn ulimit_check() {
        check_ulimit(1).unwrap();
        let err = check_ulimit(u64::MAX - 1);
        assert!(matches!(err, Err(CliError::UlimitTooSmall { .. }) | Ok(())));
    }

    #[test]
    fn slots_file_and_pidfile() {
        let dir = std::env::temp_dir().join(format!("codis-proxy-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let slots = dir.join("slots.json");
        std::fs::write(
            &slots,
            r#"[{"id":0,"backend_addr":"127.0.0.1:6379"},{"id":1}]"#,
        )
        .unwrap();
        let loaded = load_slots_file(&slots).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].backend_addr, "127.0.0.1:6379");
        std::fs::write(&slots, "{").unwrap();
        assert!(matches!(
            load_slots_file(&slots),
            Err(CliError::SlotsDecode { .. })
        ));
        assert!(matches!(
            load_slots_file(&dir.join("none")),
            Err(CliError::SlotsRead { .. })
        ));

        let pid_path = dir.join("proxy.pid");
        let pid = PidFile::create(&pid_path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&pid_path).unwrap(),
            std::process::id().to_string()
        );
        assert!(pid.path().is_absolute());
        drop(pid);
        assert!(!pid_path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
