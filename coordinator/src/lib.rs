//! Clients of the Codis coordinator (ZooKeeper, etcd or a local directory) behind one trait, the
//! Codis 3.2 path layout, and jodis registration.
//!
//! codis-proxy (jodis), codis-dashboard, codis-fe and codis-admin all reach the coordinator
//! through [`connect`], which returns an `Arc<dyn Coordinator>`. The crate depends on tokio,
//! zookeeper-client and reqwest only: never on axum or sqlx, so the proxy can use it.
//!
//! # Layout
//! - `lib.rs`: the [`Coordinator`] trait, [`Backend`], [`connect`], [`EphemeralWatch`] and the
//!   helpers every backend shares (path validation, the operation timeout).
//! - `error.rs`: [`Error`], the one error enum.
//! - [`paths`]: Codis's node paths (`/codis3/<product>/...`, `/jodis/<product>/...`) and the
//!   product-name check.
//! - `zookeeper.rs`: [`ZkCoordinator`] (zookeeper-client, re-dialled when the session ends).
//! - `etcd.rs`: [`EtcdCoordinator`] (etcd v3 through its JSON gateway; leases for ephemerals).
//! - `filesystem.rs`: [`FsCoordinator`] (one file per node under a root directory).
//! - [`jodis`]: [`Jodis`], which keeps a proxy's ephemeral registration alive.
//!
//! # Semantics shared by every backend (those of Codis's `models.Client`)
//! - `create` fails with [`Error::NodeExists`]; `update` creates or replaces; `delete` of a
//!   missing node succeeds.
//! - `read(path, must)` gives `None` for a missing node unless `must`; `list(path, must)` gives
//!   the sorted full paths of the direct children (empty for a missing node unless `must`).
//! - Parent nodes are created as needed.
//! - Every operation is bounded by [`operation_timeout`]`(timeout)` (local filesystem: 10 s): an
//!   unreachable coordinator gives [`Error::Timeout`] (or a connection error), never a hang.

mod error;
mod etcd;
mod filesystem;
pub mod jodis;
pub mod paths;
mod zookeeper;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use error::{Error, Result};
pub use etcd::EtcdCoordinator;
pub use filesystem::FsCoordinator;
pub use jodis::Jodis;
pub use zookeeper::ZkCoordinator;

/// The session timeout (ZooKeeper) and lease TTL (etcd) used when the caller passes zero, as
/// Codis does.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound of one operation, whatever the session timeout: the dashboard runs with a 60 s
/// session, but an admin request must not wait that long for a dead coordinator.
pub const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound applied to each operation of a client created with `timeout`.
pub fn operation_timeout(timeout: Duration) -> Duration {
    effective_timeout(timeout).min(MAX_OPERATION_TIMEOUT)
}

/// `timeout`, or [`DEFAULT_TIMEOUT`] when it is zero.
pub(crate) fn effective_timeout(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        timeout
    }
}

/// The coordinator kinds Codis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Apache ZooKeeper (`zk`, `zookeeper`).
    Zookeeper,
    /// etcd v3 (`etcd`).
    Etcd,
    /// A local directory (`fs`, `filesystem`); no ephemeral nodes.
    Filesystem,
}

impl Backend {
    /// Parses Codis's coordinator names (`coordinator_name`, `jodis_name`, `--zookeeper` ...).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for anything else.
    pub fn from_name(name: &str) -> Result<Backend> {
        match name {
            "zk" | "zookeeper" => Ok(Backend::Zookeeper),
            "etcd" => Ok(Backend::Etcd),
            "fs" | "filesystem" => Ok(Backend::Filesystem),
            _ => Err(Error::InvalidName(name.to_owned())),
        }
    }

    /// The canonical name, as used in logs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Zookeeper => "zookeeper",
            Backend::Etcd => "etcd",
            Backend::Filesystem => "filesystem",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection to the coordinator. Used as `Arc<dyn Coordinator>`; see the crate docs for the
/// semantics every implementation follows.
#[async_trait::async_trait]
pub trait Coordinator: Send + Sync + fmt::Debug {
    /// Which kind of coordinator this is.
    fn backend(&self) -> Backend;

    /// Creates a persistent node (and its missing parents).
    ///
    /// # Errors
    /// [`Error::NodeExists`] if the node is already there; backend errors; [`Error::Timeout`].
    async fn create(&self, path: &str, data: &[u8]) -> Result<()>;

    /// Creates or replaces a persistent node (and its missing parents).
    ///
    /// # Errors
    /// Backend errors; [`Error::Timeout`].
    async fn update(&self, path: &str, data: &[u8]) -> Result<()>;

    /// Deletes a node; a missing node is not an error. As in Codis, ZooKeeper refuses to delete
    /// a node with children, etcd deletes the key alone, the filesystem deletes recursively.
    ///
    /// # Errors
    /// Backend errors; [`Error::Timeout`].
    async fn delete(&self, path: &str) -> Result<()>;

    /// Reads a node's data: `None` when it does not exist and `must` is false.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist and `must` is true; backend errors.
    async fn read(&self, path: &str, must: bool) -> Result<Option<Vec<u8>>>;

    /// The full paths of the node's direct children, sorted; empty when the node does not exist
    /// and `must` is false.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist and `must` is true; backend errors.
    async fn list(&self, path: &str, must: bool) -> Result<Vec<String>>;

    /// Creates a node that lives as long as this client: it goes away when the client is
    /// closed or dropped, or when the session (ZooKeeper) or lease (etcd) is lost. The returned
    /// [`EphemeralWatch`] resolves once the node is gone (or can no longer be vouched for).
    ///
    /// # Errors
    /// [`Error::NodeExists`]; [`Error::Unsupported`] on the filesystem; backend errors.
    async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<EphemeralWatch>;

    /// Closes the client: ephemeral nodes are removed and later operations fail with
    /// [`Error::Closed`]. Closing twice is fine.
    ///
    /// # Errors
    /// Backend errors while removing ephemeral nodes (they expire anyway).
    async fn close(&self) -> Result<()>;
}

/// Opens a coordinator client the way Codis's `models.NewClient` does.
///
/// - `name`: `zk`/`zookeeper`, `etcd`, `fs`/`filesystem`.
/// - `addr`: comma-separated `host:port` list (ZooKeeper ensemble, etcd endpoints with or
///   without `http://`), or the root directory for the filesystem.
/// - `auth`: empty, or `user:password` (ZooKeeper digest, etcd user); ignored by the filesystem.
/// - `timeout`: ZooKeeper session timeout / etcd lease TTL (zero means [`DEFAULT_TIMEOUT`]);
///   each operation is bounded by [`operation_timeout`]`(timeout)`.
///
/// Only the arguments are checked here; the network is first used by the first operation (and
/// again after a lost session), so a coordinator that is down at start-up is reported by the
/// operations, with a clear error, rather than here.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::InvalidAddr`], [`Error::InvalidAuth`].
pub fn connect(
    name: &str,
    addr: &str,
    auth: &str,
    timeout: Duration,
) -> Result<Arc<dyn Coordinator>> {
    let backend = Backend::from_name(name)?;
    if addr.trim().is_empty() {
        return Err(Error::InvalidAddr(addr.to_owned()));
    }
    Ok(match backend {
        Backend::Zookeeper => Arc::new(ZkCoordinator::new(addr, auth, timeout)?),
        Backend::Etcd => Arc::new(EtcdCoordinator::new(addr, auth, timeout)?),
        Backend::Filesystem => Arc::new(FsCoordinator::new(addr)?),
    })
}

/// Resolves when an ephemeral node created by [`Coordinator::create_ephemeral`] is gone:
/// deleted, its session or lease lost, or its client closed.
#[derive(Debug)]
pub struct EphemeralWatch(tokio::sync::oneshot::Receiver<()>);

impl EphemeralWatch {
    /// A watch and the sender whose drop (or send) fires it. Backends keep the sender in the
    /// task that watches the node.
    pub(crate) fn new() -> (tokio::sync::oneshot::Sender<()>, EphemeralWatch) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, EphemeralWatch(rx))
    }
}

impl Future for EphemeralWatch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Sent or dropped: either way the node can no longer be vouched for.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Splits `user:password`; empty means no auth.
pub(crate) fn parse_auth(auth: &str) -> Result<Option<(String, String)>> {
    if auth.is_empty() {
        return Ok(None);
    }
    match auth.split_once(':') {
        Some((user, password)) if !user.is_empty() => {
            Ok(Some((user.to_owned(), password.to_owned())))
        }
        _ => Err(Error::InvalidAuth),
    }
}

/// Checks that `path` is absolute and clean: `/`, or `/seg/seg` with no empty, `.` or `..`
/// segment. Every backend maps paths the same way, so a path valid for one is valid for all
/// (and cannot escape the filesystem root).
pub(crate) fn check_path(path: &str) -> Result<()> {
    let invalid = || Error::InvalidPath(path.to_owned());
    if path == "/" {
        return Ok(());
    }
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    if path.contains('\0')
        || rest
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid());
    }
    Ok(())
}

/// Like [`check_path`], and refuses the root, which no backend can write.
pub(crate) fn check_node_path(path: &str) -> Result<()> {
    check_path(path)?;
    if path == "/" {
        return Err(Error::InvalidPath(path.to_owned()));
    }
    Ok(())
}

/// The parent of a checked, non-root path (`/a/b` → `/a`, `/a` → `/`).
pub(crate) fn parent_path(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `dir/name`, without doubling the slash for the root.
pub(crate) fn child_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Runs one operation under the timeout bound, turning the elapsed bound into
/// [`Error::Timeout`].
pub(crate) async fn bounded<T>(
    backend: Backend,
    op: &'static str,
    path: &str,
    after: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            backend: backend.name(),
            op,
            path: path.to_owned(),
            after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in ["/", "/a", "/codis3/demo/slots/slot-0001", "/a.b/c-d"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/..", "/a\0",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_node_path("/").is_err());
        assert_eq!(parent_path("/a/b"), "/a");
        assert_eq!(parent_path("/a"), "/");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn names_and_auth() {
        assert_eq!(Backend::from_name("zk").unwrap(), Backend::Zookeeper);
        assert_eq!(Backend::from_name("zookeeper").unwrap(), Backend::Zookeeper);
        assert_eq!(Backend::from_name("etcd").unwrap(), Backend::Etcd);
        assert_eq!(Backend::from_name("fs").unwrap(), Backend::Filesystem);
        assert_eq!(
            Backend::from_name("filesystem").unwrap(),
            Backend::Filesystem
        );
        assert!(matches!(
            Backend::from_name("consul"),
            Err(Error::InvalidName(_))
        ));
        assert_eq!(parse_auth("").unwrap(), None);
        assert_eq!(
            parse_auth("u:p:q").unwrap(),
            Some(("u".into(), "p:q".into()))
        );
        assert_eq!(parse_auth("u:").unwrap(), Some(("u".into(), String::new())));
        assert!(parse_auth(":p").is_err());
        assert!(parse_auth("nouser").is_err());
        assert_eq!(operation_timeout(Duration::ZERO), DEFAULT_TIMEOUT);
        assert_eq!(
            operation_timeout(Duration::from_secs(60)),
            MAX_OPERATION_TIMEOUT
        );
        assert_eq!(
            operation_timeout(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
