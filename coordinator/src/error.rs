//! The one error type of the crate.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a coordinator operation, `connect` or a jodis registration can fail with.
///
/// Messages are lowercase and name the backend, the operation and the path, so that a log line
/// or an HTTP error body is enough to tell what went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `connect` was given a name other than `zk`, `zookeeper`, `etcd`, `fs`, `filesystem`.
    #[error("invalid coordinator name = {0:?} (want zk, zookeeper, etcd, fs or filesystem)")]
    InvalidName(String),
    /// `connect` was given an empty address.
    #[error("invalid coordinator address = {0:?}")]
    InvalidAddr(String),
    /// The auth string is not `user:password` with a non-empty user.
    #[error("invalid coordinator auth (want user:password)")]
    InvalidAuth,
    /// A node path that is not absolute and clean (`/a/b`, no `.`/`..`/empty segments).
    #[error("invalid coordinator path {0:?}")]
    InvalidPath(String),
    /// A product name that does not match `^\w[\w\.\-]*$`.
    #[error("invalid product name {0:?}")]
    InvalidProduct(String),
    /// `create` (or `create_ephemeral`) found the node already there.
    #[error("node {0} already exists")]
    NodeExists(String),
    /// `read`/`list` with `must = true` found no node.
    #[error("node {0} not found")]
    NotFound(String),
    /// The operation did not finish in time: the coordinator is unreachable or too slow.
    #[error("{backend}: {op} {path} timed out after {after:?} (is the coordinator reachable?)")]
    Timeout {
        /// Backend name (`zookeeper`, `etcd`, `filesystem`).
        backend: &'static str,
        /// The operation (`create`, `read`, ...).
        op: &'static str,
        /// The node path.
        path: String,
        /// The bound that elapsed.
        after: Duration,
    },
    /// The backend has no ephemeral nodes (the filesystem), so jodis cannot use it.
    #[error("{0}: ephemeral nodes are not supported")]
    Unsupported(&'static str),
    /// The client was closed with `close()`.
    #[error("use of closed {0} client")]
    Closed(&'static str),
    /// The filesystem root is being used by another client at this very moment.
    #[error("filesystem: {} is locked by another client", .0.display())]
    Locked(PathBuf),
    /// A filesystem call failed.
    #[error("filesystem: {op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The node path (or the file, for the lock and temp files).
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// ZooKeeper answered with an error, or the session could not be established.
    #[error("zookeeper: {op} {path}: {source}")]
    Zookeeper {
        /// The operation.
        op: &'static str,
        /// The node path (the address list for `connect`).
        path: String,
        /// The cause.
        #[source]
        source: zookeeper_client::Error,
    },
    /// An HTTP request to etcd failed (connection refused, timeout, bad body).
    #[error("etcd: {op} {path}: {}", causes(.source))]
    EtcdHttp {
        /// The operation.
        op: &'static str,
        /// The node path.
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// etcd answered with an error (or with a body we could not understand).
    #[error("etcd: {op} {path}: {message}")]
    Etcd {
        /// The operation.
        op: &'static str,
        /// The node path.
        path: String,
        /// etcd's message (`etcdserver: ...`) or a description of the unexpected reply.
        message: String,
    },
}

/// An error and its causes on one line (`error sending request: connection refused`): reqwest's
/// own message alone does not say why the request failed.
fn causes(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        line.push_str(": ");
        line.push_str(&err.to_string());
        cause = err.source();
    }
    line
}

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
