//! The `codis-fe` command line: Codis 3.2's flags (spec §8) plus `--db`, `--admin-password`
//! and polling settings.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};

/// `codis-fe [--ncpu=N] [--log=FILE] [--log-level=LEVEL] [--assets-dir=PATH] [--pidfile=FILE]
/// (--dashboard-list=FILE | --zookeeper=ADDR [--zookeeper-auth=U:P] | --etcd=ADDR
/// [--etcd-auth=U:P] | --filesystem=ROOT) --listen=ADDR [--db=PATH]`.
#[derive(Debug, Clone, Default, PartialEq, Parser)]
#[command(
    name = "codis-fe",
    about = "Codis web console and REST API over every product line.",
    disable_version_flag = true,
    group(ArgGroup::new("coordinator").multiple(false).args(["zookeeper", "etcd", "filesystem"]))
)]
pub struct FeArgs {
    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub ncpu: Option<usize>,
    /// Log to this file, rotated daily.
    #[arg(short = 'l', long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log level: ERROR, WARN, INFO, DEBUG or NONE; default INFO.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The UI's files (default: `assets` beside the binary, else `static/` of the source tree).
    #[arg(long = "assets-dir", value_name = "PATH")]
    pub assets_dir: Option<PathBuf>,
    /// Write the pid to this file (removed at exit).
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// A JSON file `[{"name": P, "dashboard": ADDR}]` listing product lines.
    #[arg(short = 'd', long = "dashboard-list", value_name = "FILE")]
    pub dashboard_list: Option<PathBuf>,
    /// Find product lines in this ZooKeeper ensemble.
    #[arg(long, value_name = "ADDR")]
    pub zookeeper: Option<String>,
    /// ZooKeeper digest `user:password`.
    #[arg(
        long = "zookeeper-auth",
        value_name = "USER:PASSWORD",
        default_value = ""
    )]
    pub zookeeper_auth: String,
    /// Find product lines in this etcd.
    #[arg(long, value_name = "ADDR")]
    pub etcd: Option<String>,
    /// etcd `user:password`.
    #[arg(long = "etcd-auth", value_name = "USER:PASSWORD", default_value = "")]
    pub etcd_auth: String,
    /// Find product lines in this coordinator folder.
    #[arg(long, value_name = "ROOT")]
    pub filesystem: Option<String>,
    /// Listen address for the UI and the API.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub listen: String,
    /// The SQLite database (users, audit history, settings); default `codis-fe.db` in the
    /// filesystem coordinator's folder, else in the working directory.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Password of the `admin` account created on first start (else one is generated and
    /// printed once).
    #[arg(
        long = "admin-password",
        env = "CODIS_FE_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Seconds between two polls of one dashboard.
    #[arg(long = "poll-interval", value_name = "SECONDS", default_value_t = 2.0)]
    pub poll_interval: f64,
    /// Mark the session cookie Secure (the fe is reached over HTTPS through a proxy).
    #[arg(long = "secure-cookie")]
    pub secure_cookie: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

impl FeArgs {
    /// The coordinator to discover product lines in: (name, addr, auth).
    pub fn coordinator(&self) -> Option<(&'static str, String, String)> {
        if let Some(a) = &self.zookeeper {
            Some(("zookeeper", a.clone(), self.zookeeper_auth.clone()))
        } else if let Some(a) = &self.etcd {
            Some(("etcd", a.clone(), self.etcd_auth.clone()))
        } else {
            self.filesystem
                .as_ref()
                .map(|a| ("filesystem", a.clone(), String::new()))
        }
    }

    /// The database path.
    pub fn db_path(&self) -> PathBuf {
        if let Some(p) = &self.db {
            return p.clone();
        }
        match &self.filesystem {
            Some(root) => PathBuf::from(root).join("codis-fe.db"),
            None => PathBuf::from("codis-fe.db"),
        }
    }

    /// The assets folder.
    pub fn assets(&self) -> PathBuf {
        if let Some(a) = &self.assets_dir {
            return a.clone();
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
            && dir.join("assets").join("index.html").is_file()
        {
            return dir.join("assets");
        }
        PathBuf::from("static")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codis_flags_parse() {
        let a = FeArgs::try_parse_from([
            "codis-fe",
            "--ncpu=2",
            "--log=fe.log",
            "--log-level=WARN",
            "--assets-dir=/x",
            "--pidfile=/p",
            "--zookeeper=127.0.0.1:2181",
            "--zookeeper-auth=u:p",
            "--listen=127.0.0.1:9090",
        ])
        .unwrap();
        assert_eq!(a.coordinator().unwrap().0, "zookeeper");
        assert_eq!(a.listen, "127.0.0.1:9090");
        assert!(
            FeArgs::try_parse_from(["codis-fe", "--zookeeper=a", "--filesystem=/b"]).is_err(),
            "one coordinator at most"
        );
        let b = FeArgs::try_parse_from(["codis-fe", "--filesystem=/tmp/c"]).unwrap();
        assert_eq!(b.db_path(), PathBuf::from("/tmp/c/codis-fe.db"));
    }
}
