//! The `codis-dashboard` command line, with Codis 3.2's flags (including the underscores of
//! `--product_name` and `--product_auth`), applied over `dashboard.toml`.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use super::config::{ConfigError, DashboardConfig};

/// `codis-dashboard [--ncpu=N] [--config=CONF] [--log=FILE] [--log-level=LEVEL]
/// [--host-admin=ADDR] [--pidfile=FILE] [--zookeeper=ADDR|--etcd=ADDR|--filesystem=ROOT]
/// [--product_name=NAME] [--product_auth=AUTH] [--remove-lock]`,
/// `codis-dashboard --default-config`, `codis-dashboard --version`.
#[derive(Debug, Clone, Default, PartialEq, Parser)]
#[command(
    name = "codis-dashboard",
    about = "Codis dashboard: owns one product's groups, proxies, slots and migrations.",
    disable_version_flag = true,
    group(ArgGroup::new("coordinator").multiple(false).args(["zookeeper", "etcd", "filesystem"]))
)]
pub struct DashboardArgs {
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub ncpu: Option<usize>,
    /// Configuration file (dashboard.toml).
    #[arg(short = 'c', long, value_name = "CONF")]
    pub config: Option<PathBuf>,
    /// Log to this file, rotated daily (`<FILE>.YYYY-MM-DD`).
    #[arg(short = 'l', long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log level: ERROR, WARN (or WARNING), INFO, DEBUG or NONE; default INFO.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Admin address to advertise instead of the bound one.
    #[arg(long = "host-admin", value_name = "ADDR")]
    pub host_admin: Option<String>,
    /// Write the pid to this file (removed at exit).
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Use this ZooKeeper ensemble (`host1:2181,host2:2181`) as the coordinator.
    #[arg(long, value_name = "ADDR")]
    pub zookeeper: Option<String>,
    /// Use this etcd (v3) as the coordinator.
    #[arg(long, value_name = "ADDR")]
    pub etcd: Option<String>,
    /// Use this folder as the coordinator.
    #[arg(long, value_name = "ROOT")]
    pub filesystem: Option<String>,
    /// Product name (overrides the config).
    #[arg(long = "product_name", value_name = "NAME")]
    pub product_name: Option<String>,
    /// Password of the codis-servers (overrides the config).
    #[arg(long = "product_auth", value_name = "AUTH")]
    pub product_auth: Option<String>,
    /// Delete the product's dashboard lock before taking it (after a crash).
    #[arg(long = "remove-lock")]
    pub remove_lock: bool,
    /// Beyond Codis: how many times (2 s apart) to try the lock before giving up.
    #[arg(long = "lock-retries", value_name = "N", default_value_t = 16)]
    pub lock_retries: u32,
    /// Print the default config and exit.
    #[arg(long = "default-config")]
    pub default_config: bool,
    /// Check the config (file and flags), print it as the overview shows it, and exit
    /// (status 1 when it is invalid).
    #[arg(long = "check-config")]
    pub check_config: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

impl DashboardArgs {
    /// The config file (or the defaults) with the flags applied, validated.
    ///
    /// # Errors
    /// What loading or validation says.
    pub fn load_config(&self) -> Result<DashboardConfig, ConfigError> {
        let mut c = match &self.config {
            Some(path) => DashboardConfig::load_file(path)?,
            None => DashboardConfig::default(),
        };
        if let Some(addr) = &self.zookeeper {
            c.coordinator_name = "zookeeper".into();
            c.coordinator_addr = addr.clone();
        }
        if let Some(addr) = &self.etcd {
            c.coordinator_name = "etcd".into();
            c.coordinator_addr = addr.clone();
        }
        if let Some(root) = &self.filesystem {
            c.coordinator_name = "filesystem".into();
            c.coordinator_addr = root.clone();
        }
        if let Some(p) = &self.product_name {
            c.product_name = p.clone();
        }
        if let Some(a) = &self.product_auth {
            c.product_auth = a.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

/// The version reported by `--version` and the overview.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " @codis-rs");

/// The build description reported by `--version` and the overview.
pub fn compile_info() -> String {
    format!(
        "codis-rs backend by rustc, {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DashboardArgs, clap::Error> {
        DashboardArgs::try_parse_from(
            std::iter::once("codis-dashboard").chain(args.iter().copied()),
        )
    }

    #[test]
    fn codis_flags_override_the_file() {
        let a = parse(&[
            "--zookeeper=a:2181,b:2181",
            "--product_name=p1",
            "--product_auth=x",
            "--remove-lock",
        ])
        .unwrap();
        let c = a.load_config().unwrap();
        assert_eq!(c.coordinator_name, "zookeeper");
        assert_eq!(c.coordinator_addr, "a:2181,b:2181");
        assert_eq!(c.product_name, "p1");
        assert_eq!(c.product_auth, "x");
        assert!(a.remove_lock);
        assert!(parse(&["--zookeeper=a", "--etcd=b"]).is_err());
        assert!(
            parse(&["--product_name=bad name"])
                .unwrap()
                .load_config()
                .is_err()
        );
    }
}
