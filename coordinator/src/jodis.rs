//! Jodis: a proxy's ephemeral registration, kept alive for as long as the proxy runs.
//!
//! Java clients (Jodis) find proxies by listing `/jodis/<product>` (or the Codis 2 path with
//! `jodis_compatible`). The proxy creates its node there as an ephemeral node; when the node
//! disappears (session or lease lost, node deleted) it is created again, retrying with a delay
//! that doubles from 1 s up to 30 s while creation fails. `close()` deletes the node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize as _;

use crate::{Backend, Coordinator, Error, Result, connect};

/// First retry delay after a failed registration.
const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A running jodis registration. Dropping it without [`Jodis::close`] stops the task and
/// drops the client (the node then goes with the session or the lease).
#[derive(Debug)]
pub struct Jodis {
    path: String,
    client: Arc<dyn Coordinator>,
    registered: Arc<AtomicBool>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Jodis {
    /// Connects to the coordinator (`jodis_name`, `jodis_addr`, `jodis_auth`,
    /// `jodis_timeout`) and starts keeping the ephemeral node `path` with `data` (see
    /// [`jodis_data`]) alive in a background task. Registration failures are retried, not
    /// returned.
    ///
    /// # Errors
    /// The [`connect`] errors, and [`Error::Unsupported`] for the filesystem, which has no
    /// ephemeral nodes.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(
        name: &str,
        addr: &str,
        auth: &str,
        timeout: Duration,
        path: &str,
        data: Vec<u8>,
    ) -> Result<Jodis> {
        crate::check_node_path(path)?;
        if Backend::from_name(name)? == Backend::Filesystem {
            return Err(Error::Unsupported(Backend::Filesystem.name()));
        }
        let client = connect(name, addr, auth, timeout)?;
        let registered = Arc::new(AtomicBool::new(false));
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(keep_registered(
            Arc::clone(&client),
            path.to_owned(),
            data,
            Arc::clone(&registered),
            stop,
        ));
        Ok(Jodis {
            path: path.to_owned(),
            client,
            registered,
            shutdown,
            task: Some(task),
        })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the node currently exists as far as this registration knows.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }

    /// Stops the registration, deletes the node and closes the client.
    ///
    /// The node is deleted even when the task had not yet seen its creation succeed: the path
    /// holds this proxy's token, so no one else's node can be there.
    ///
    /// # Errors
    /// The delete or close error; the node then still goes with the session or lease.
    pub async fn close(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.registered.store(false, Ordering::Release);
        let deleted = self.client.delete(&self.path).await;
        match &deleted {
            Ok(()) => tracing::info!(path = %self.path, "jodis: node removed"),
            Err(err) => {
                tracing::warn!(path = %self.path, error = %err, "jodis: removing node failed");
            }
        }
        let closed = self.client.close().await;
        deleted.and(closed)
    }
}

impl Drop for Jodis {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The registration loop: create, wait until the node is gone, create again; back off while
/// creation fails.
async fn keep_registered(
    client: Arc<dyn Coordinator>,
    path: String,
    data: Vec<u8>,
    registered: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut delay = MIN_RETRY_DELAY;
    loop {
        let created = tokio::select! {
            _ = stop.changed() => return,
            created = client.create_ephemeral(&path, &data) => created,
        };
        match created {
            Ok(gone) => {
                registered.store(true, Ordering::Release);
                tracing::info!(path, backend = %client.backend(), "jodis: node registered");
                delay = MIN_RETRY_DELAY;
                tokio::select! {
                    _ = stop.changed() => return,
                    () = gone => {}
                }
                registered.store(false, Ordering::Release);
                tracing::warn!(path, "jodis: node lost, registering again");
            }
            Err(err) => {
                tracing::warn!(path, error = %err, retry_in = ?delay, "jodis: registering node failed");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// The node data Codis's proxy registers: `{"addr", "admin", "start", "state": "online",
/// "token"}` as JSON indented with 4 spaces, keys sorted (Go marshals a map that way).
pub fn jodis_data(proxy_addr: &str, admin_addr: &str, start_time: &str, token: &str) -> Vec<u8> {
    let fields = BTreeMap::from([
        ("addr", proxy_addr),
        ("admin", admin_addr),
        ("start", start_time),
        ("state", "online"),
        ("token", token),
    ]);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // A map of strings into a Vec cannot fail to serialize.
    if fields.serialize(&mut serializer).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_codis_shaped() {
        let data = jodis_data("h:19000", "h:11080", "2026-01-01", "abc");
        let text = String::from_utf8(data).unwrap();
        assert_eq!(
            text,
            "{\n    \"addr\": \"h:19000\",\n    \"admin\": \"h:11080\",\n    \"start\": \"2026-01-01\",\n    \"state\": \"online\",\n    \"token\": \"abc\"\n}"
        );
    }

    #[tokio::test]
    async fn filesystem_is_refused() {
        let err = Jodis::start(
            "fs",
            "/tmp",
            "",
            Duration::ZERO,
            "/jodis/x/proxy-1",
            Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Unsupported("filesystem")), "{err}");
    }
}
