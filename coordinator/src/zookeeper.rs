//! The ZooKeeper coordinator (zookeeper-client).
//!
//! - Address: the ensemble as `host:port,host:port`.
//! - Auth `user:password`: the session adds digest auth, and nodes get ACLs for that identity
//!   only (ZooKeeper's `auth` scheme, which the server expands to the session's digest id):
//!   directories all permissions, leaves admin|read|write. Without auth, the same permissions
//!   for `world:anyone`. These are Codis's ACLs.
//! - Parents are created as persistent directories (empty data) on create/update.
//! - Session: one per client, with the caller's timeout. The library reconnects by itself while
//!   the session is alive (connection loss); once the session is over (expired, closed, auth
//!   failed) the next operation dials a new one, at least 1 s after the previous dial. Ephemeral
//!   nodes belong to the session: they go when it ends, when `close()` is called or when the
//!   client is dropped.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use crate::{
    Backend, Coordinator, EphemeralWatch, Error, Result, bounded, check_node_path, check_path,
    child_path, effective_timeout, operation_timeout, parent_path, parse_auth,
};

/// Minimum spacing of two dials, as in Codis.
const REDIAL_INTERVAL: Duration = Duration::from_secs(1);

/// A ZooKeeper ensemble client. See the module docs.
#[derive(Debug)]
pub struct ZkCoordinator {
    cluster: String,
    auth: Option<(String, String)>,
    session_timeout: Duration,
    op_timeout: Duration,
    dir_acls: Vec<zk::Acl>,
    leaf_acls: Vec<zk::Acl>,
    /// The current session. An async mutex: dialling happens under it, so concurrent
    /// operations share one new session instead of each dialling their own.
    session: tokio::sync::Mutex<Session>,
}

#[derive(Debug, Default)]
struct Session {
    client: Option<Arc<zk::Client>>,
    dialed_at: Option<Instant>,
    closed: bool,
}

impl ZkCoordinator {
    /// A client of the ensemble `cluster` (`host:port[,host:port...]`); see [`crate::connect`].
    /// Nothing is dialled until the first operation.
    ///
    /// # Errors
    /// [`Error::InvalidAuth`], [`Error::InvalidAddr`].
    pub fn new(cluster: &str, auth: &str, timeout: Duration) -> Result<ZkCoordinator> {
        let cluster = cluster.trim();
        if cluster.is_empty() {
            return Err(Error::InvalidAddr(cluster.to_owned()));
        }
        let auth = parse_auth(auth)?;
        let id = if auth.is_some() {
            zk::AuthId::new("auth", "")
        } else {
            zk::AuthId::anyone()
        };
        let leaf = zk::Permission::ADMIN | zk::Permission::READ | zk::Permission::WRITE;
        Ok(ZkCoordinator {
            cluster: cluster.to_owned(),
            auth,
            session_timeout: effective_timeout(timeout),
            op_timeout: operation_timeout(timeout),
            dir_acls: vec![zk::Acl::new(zk::Permission::ALL, id.clone())],
            leaf_acls: vec![zk::Acl::new(leaf, id)],
            session: tokio::sync::Mutex::new(Session::default()),
        })
    }

    /// The live session's client, dialling a new session if there is none or it has ended.
    async fn client(&self) -> Result<Arc<zk::Client>> {
        let mut session = self.session.lock().await;
        if session.closed {
            return Err(Error::Closed(Backend::Zookeeper.name()));
        }
        if let Some(client) = &session.client {
            if !client.state().is_terminated() {
                return Ok(Arc::clone(client));
            }
            tracing::warn!(cluster = %self.cluster, state = ?client.state(),
                "zookeeper: session ended, dialling a new one");
        }
        session.client = None;
        if let Some(at) = session.dialed_at {
            tokio::time::sleep(REDIAL_INTERVAL.saturating_sub(at.elapsed())).await;
        }
        session.dialed_at = Some(Instant::now());
        let mut connector = zk::Client::connector().with_session_timeout(self.session_timeout);
        if let Some((user, password)) = &self.auth {
            connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
        }
        let client = connector
            .connect(&self.cluster)
            .await
            .map_err(|source| Error::Zookeeper {
                op: "connect",
                path: self.cluster.clone(),
                source,
            })?;
        tracing::info!(cluster = %self.cluster, session = %client.session_id(), "zookeeper: session established");
        let client = Arc::new(client);
        session.client = Some(Arc::clone(&client));
        Ok(client)
    }

    fn dir_options(&self) -> zk::CreateOptions<'_> {
        zk::CreateMode::Persistent.with_acls(zk::Acls::new(&self.dir_acls))
    }

    fn leaf_options(&self, mode: zk::CreateMode) -> zk::CreateOptions<'_> {
        mode.with_acls(zk::Acls::new(&self.leaf_acls))
    }

    /// Creates the parents of `path` as directories.
    async fn mkdir_parent(&self, client: &zk::Client, op: &'static str, path: &str) -> Result<()> {
        let parent = parent_path(path);
        if parent == "/" {
            return Ok(());
        }
        client
            .mkdir(parent, &self.dir_options())
            .await
            .map_err(|e| fail(op, parent, e))
    }

    /// Creates `path` (with its parents) as a `mode` leaf.
    async fn create_leaf(
        &self,
        client: &zk::Client,
        op: &'static str,
        path: &str,
        data: &[u8],
        mode: zk::CreateMode,
    ) -> Result<()> {
        self.mkdir_parent(client, op, path).await?;
        client
            .create(path, data, &self.leaf_options(mode))
            .await
            .map_err(|e| fail(op, path, e))?;
        Ok(())
    }
}

/// Maps a zookeeper-client error; "node exists" becomes [`Error::NodeExists`].
fn fail(op: &'static str, path: &str, source: zk::Error) -> Error {
    match source {
        zk::Error::NodeExists => Error::NodeExists(path.to_owned()),
        source => Error::Zookeeper {
            op,
            path: path.to_owned(),
            source,
        },
    }
}

/// Watches `path` until it is deleted or the session ends; data changes re-arm the watch.
/// The task holds the client weakly so that it never keeps a closed client's session alive.
fn spawn_watch(
    client: &Arc<zk::Client>,
    path: String,
    watcher: zk::OneshotWatcher,
) -> EphemeralWatch {
    let (gone, watch) = EphemeralWatch::new();
    let client: Weak<zk::Client> = Arc::downgrade(client);
    tokio::spawn(async move {
        let mut watcher = watcher;
        loop {
            let event = watcher.changed().await;
            if event.event_type == zk::EventType::NodeDataChanged
                && let Some(client) = client.upgrade()
                && let Ok((Some(_), next)) = client.check_and_watch_stat(&path).await
            {
                watcher = next;
                continue;
            }
            tracing::info!(path, event = ?event.event_type, state = ?event.session_state,
                "zookeeper: ephemeral node gone");
            break;
        }
        drop(gone);
    });
    watch
}

#[async_trait::async_trait]
impl Coordinator for ZkCoordinator {
    fn backend(&self) -> Backend {
        Backend::Zookeeper
    }

    async fn create(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        bounded(Backend::Zookeeper, "create", path, self.op_timeout, async {
            let client = self.client().await?;
            self.create_leaf(&client, "create", path, data, zk::CreateMode::Persistent)
                .await
        })
        .await
    }

    async fn update(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        bounded(Backend::Zookeeper, "update", path, self.op_timeout, async {
            let client = self.client().await?;
            match client.set_data(path, data, None).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(fail("update", path, e)),
            }
            match self
                .create_leaf(&client, "update", path, data, zk::CreateMode::Persistent)
                .await
            {
                // Someone created it in between: overwrite, as an upsert should.
                Err(Error::NodeExists(_)) => {
                    client
                        .set_data(path, data, None)
                        .await
                        .map_err(|e| fail("update", path, e))?;
                    Ok(())
                }
                other => other,
            }
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_node_path(path)?;
        bounded(Backend::Zookeeper, "delete", path, self.op_timeout, async {
            let client = self.client().await?;
            match client.delete(path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                Err(e) => Err(fail("delete", path, e)),
            }
        })
        .await
    }

    async fn read(&self, path: &str, must: bool) -> Result<Option<Vec<u8>>> {
        check_path(path)?;
        bounded(Backend::Zookeeper, "read", path, self.op_timeout, async {
            let client = self.client().await?;
            match client.get_data(path).await {
                Ok((data, _)) => Ok(Some(data)),
                Err(zk::Error::NoNode) if !must => Ok(None),
                Err(zk::Error::NoNode) => Err(Error::NotFound(path.to_owned())),
                Err(e) => Err(fail("read", path, e)),
            }
        })
        .await
    }

    async fn list(&self, path: &str, must: bool) -> Result<Vec<String>> {
        check_path(path)?;
        bounded(Backend::Zookeeper, "list", path, self.op_timeout, async {
            let client = self.client().await?;
            match client.list_children(path).await {
                Ok(names) => {
                    let mut children: Vec<String> =
                        names.iter().map(|name| child_path(path, name)).collect();
                    children.sort();
                    Ok(children)
                }
                Err(zk::Error::NoNode) if !must => Ok(Vec::new()),
                Err(zk::Error::NoNode) => Err(Error::NotFound(path.to_owned())),
                Err(e) => Err(fail("list", path, e)),
            }
        })
        .await
    }

    async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<EphemeralWatch> {
        check_node_path(path)?;
        bounded(
            Backend::Zookeeper,
            "create_ephemeral",
            path,
            self.op_timeout,
            async {
                let client = self.client().await?;
                let op = "create_ephemeral";
                self.create_leaf(&client, op, path, data, zk::CreateMode::Ephemeral)
                    .await?;
                let (_, watcher) = client
                    .check_and_watch_stat(path)
                    .await
                    .map_err(|e| fail(op, path, e))?;
                Ok(spawn_watch(&client, path.to_owned(), watcher))
            },
        )
        .await
    }

    async fn close(&self) -> Result<()> {
        let mut session = self.session.lock().await;
        session.closed = true;
        // Dropping the last handle closes the session; its ephemeral nodes go with it.
        session.client = None;
        Ok(())
    }
}
