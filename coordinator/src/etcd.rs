//! The etcd coordinator: etcd v3 through its JSON gateway (`POST /v3/...` on the client port),
//! with reqwest. No gRPC stack, no protoc.
//!
//! - Keys are Codis's paths as they are (`/codis3/demo/topom`). v3 has no directories: `list`
//!   is a prefix range over `path/` reduced to the direct children, and parents need no
//!   creating.
//! - `create` is a transaction on `create_revision == 0`; `update` a plain put.
//! - Ephemeral nodes are put with a lease whose TTL is the caller's timeout. A task per node
//!   renews the lease every TTL/2 and checks that the key is still there; when either fails for
//!   good the node's [`EphemeralWatch`] fires. `close()` (or drop) revokes the leases, which
//!   deletes the keys at once.
//! - Auth `user:password`: a token from `/v3/auth/authenticate`, sent as the `Authorization`
//!   header and fetched again when etcd says it is no longer valid.
//! - Endpoints (`host:port,...`) get `http://` when they have no scheme; a request that cannot
//!   connect moves on to the next endpoint. Each HTTP request is bounded by 5 s, and each
//!   operation by [`crate::operation_timeout`].
//!
//! Gateway quirks handled here: keys and values are base64; int64 fields come as JSON strings;
//! fields at their default value are left out (a failed transaction has no `succeeded`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{
    Backend, Coordinator, EphemeralWatch, Error, Result, bounded, check_node_path, check_path,
    child_path, effective_timeout, operation_timeout, parse_auth,
};

/// Bound of one HTTP request (Codis: `HeaderTimeoutPerRequest`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An etcd v3 client. See the module docs.
#[derive(Debug)]
pub struct EtcdCoordinator {
    api: Arc<Api>,
    ttl: Duration,
    op_timeout: Duration,
    /// Leases of the ephemeral nodes created by this client, with their keep-alive tasks.
    leases: Mutex<Vec<Lease>>,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Lease {
    id: i64,
    keeper: tokio::task::JoinHandle<()>,
}

/// The HTTP side: endpoints, credentials and the JSON calls.
#[derive(Debug)]
struct Api {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// Index of the endpoint that answered last; requests start there.
    current: AtomicUsize,
    auth: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl EtcdCoordinator {
    /// A client of the endpoints `addr` (`host:port[,host:port...]`); see [`crate::connect`].
    /// Nothing is sent until the first operation.
    ///
    /// # Errors
    /// [`Error::InvalidAddr`], [`Error::InvalidAuth`], [`Error::EtcdHttp`] if the HTTP client
    /// cannot be built.
    pub fn new(addr: &str, auth: &str, timeout: Duration) -> Result<EtcdCoordinator> {
        let endpoints: Vec<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = e.trim_end_matches('/');
                if e.contains("://") {
                    e.to_owned()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(Error::InvalidAddr(addr.to_owned()));
        }
        let auth = parse_auth(auth)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| Error::EtcdHttp {
                op: "connect",
                path: addr.to_owned(),
                source,
            })?;
        Ok(EtcdCoordinator {
            api: Arc::new(Api {
                http,
                endpoints,
                current: AtomicUsize::new(0),
                auth,
                token: Mutex::new(None),
            }),
            ttl: effective_timeout(timeout),
            op_timeout: operation_timeout(timeout),
            leases: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(Backend::Etcd.name()));
        }
        Ok(())
    }

    fn take_leases(&self) -> Vec<Lease> {
        std::mem::take(&mut *self.leases.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for EtcdCoordinator {
    fn drop(&mut self) {
        let leases = self.take_leases();
        for lease in &leases {
            lease.keeper.abort();
        }
        // Best effort: revoke now if a runtime is around, else the leases expire after the TTL.
        if !leases.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let api = Arc::clone(&self.api);
            runtime.spawn(async move {
                for lease in leases {
                    let _ = api.revoke(lease.id).await;
                }
            });
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The end of the prefix range: the prefix with its last byte incremented (`/a/` → `/a0`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// An int64 the gateway sent as a string (or, to be lenient, as a number); missing means 0.
fn int64(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RangeReply {
    kvs: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TxnReply {
    succeeded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LeaseReply {
    #[serde(rename = "ID")]
    id: Value,
    #[serde(rename = "TTL")]
    ttl: Value,
}

/// One message of the keep-alive stream: `{"result":{..}}` or `{"error":{..}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeepAliveReply {
    result: Option<LeaseReply>,
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthReply {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorReply {
    error: String,
    message: String,
}

/// Any successful reply whose content does not matter.
#[derive(Debug, Default, Deserialize)]
struct Ignored {}

impl Api {
    /// POSTs `body` to `api` on the first endpoint that accepts a connection.
    async fn post(
        &self,
        api: &str,
        body: &Value,
        token: Option<&str>,
    ) -> std::result::Result<(reqwest::StatusCode, Vec<u8>), reqwest::Error> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut i = 0;
        loop {
            let k = (start + i) % n;
            let mut request = self
                .http
                .post(format!("{}{api}", self.endpoints[k]))
                .json(body);
            if let Some(token) = token {
                request = request.header("Authorization", token);
            }
            match request.send().await {
                Ok(response) => {
                    self.current.store(k, Ordering::Relaxed);
                    let status = response.status();
                    return Ok((status, response.bytes().await?.to_vec()));
                }
                Err(err) if (err.is_connect() || err.is_timeout()) && i + 1 < n => i += 1,
                Err(err) => return Err(err),
            }
        }
    }

    /// Calls `api` and decodes the (first line of the) reply, authenticating when configured.
    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        api: &str,
        body: Value,
    ) -> Result<T> {
        let mut fresh_token = false;
        loop {
            let token = match &self.auth {
                Some(_) => Some(self.token(op, path, fresh_token).await?),
                None => None,
            };
            let (status, reply) =
                self.post(api, &body, token.as_deref())
                    .await
                    .map_err(|source| Error::EtcdHttp {
                        op,
                        path: path.to_owned(),
                        source,
                    })?;
            // Streaming replies (keep-alive) are newline-delimited; one request, one message.
            let line = reply
                .split(|&b| b == b'\n')
                .find(|l| !l.is_empty())
                .unwrap_or(b"{}");
            if status.is_success() {
                return serde_json::from_slice(line).map_err(|err| Error::Etcd {
                    op,
                    path: path.to_owned(),
                    message: format!(
                        "unexpected reply ({err}): {}",
                        String::from_utf8_lossy(line)
                    ),
                });
            }
            let message = match serde_json::from_slice::<ErrorReply>(line) {
                Ok(e) if !e.message.is_empty() => e.message,
                Ok(e) if !e.error.is_empty() => e.error,
                _ => format!("http {status}: {}", String::from_utf8_lossy(line)),
            };
            if token.is_some() && !fresh_token && message.contains("invalid auth token") {
                fresh_token = true;
                continue;
            }
            return Err(Error::Etcd {
                op,
                path: path.to_owned(),
                message,
            });
        }
    }

    /// The cached auth token, or a new one when there is none or `renew` is set.
    async fn token(&self, op: &'static str, path: &str, renew: bool) -> Result<String> {
        if !renew
            && let Some(token) = self
                .token
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        {
            return Ok(token);
        }
        let Some((user, password)) = &self.auth else {
            return Ok(String::new());
        };
        let body = json!({ "name": user, "password": password });
        let (status, reply) = self
            .post("/v3/auth/authenticate", &body, None)
            .await
            .map_err(|source| Error::EtcdHttp {
                op,
                path: path.to_owned(),
                source,
            })?;
        let line = reply
            .split(|&b| b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap_or(b"{}");
        let token = match serde_json::from_slice::<AuthReply>(line) {
            Ok(auth) if status.is_success() && !auth.token.is_empty() => auth.token,
            _ => {
                let message = serde_json::from_slice::<ErrorReply>(line)
                    .map(|e| e.message)
                    .unwrap_or_default();
                return Err(Error::Etcd {
                    op,
                    path: path.to_owned(),
                    message: format!("authentication as {user:?} failed: {message}"),
                });
            }
        };
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    async fn range(&self, op: &'static str, path: &str) -> Result<Option<Vec<u8>>> {
        let reply: RangeReply = self
            .call(
                op,
                path,
                "/v3/kv/range",
                json!({ "key": b64(path.as_bytes()) }),
            )
            .await?;
        match reply.kvs.first() {
            None => Ok(None),
            Some(kv) => BASE64
                .decode(&kv.value)
                .map(Some)
                .map_err(|err| Error::Etcd {
                    op,
                    path: path.to_owned(),
                    message: format!("bad base64 value: {err}"),
                }),
        }
    }

    /// Puts `path` only if it does not exist, with `lease` when non-zero.
    async fn put_new(&self, op: &'static str, path: &str, data: &[u8], lease: i64) -> Result<()> {
        let key = b64(path.as_bytes());
        let mut put = json!({ "key": key, "value": b64(data) });
        if lease != 0 {
            put["lease"] = json!(lease.to_string());
        }
        let body = json!({
            "compare": [{ "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0" }],
            "success": [{ "request_put": put }],
        });
        let reply: TxnReply = self.call(op, path, "/v3/kv/txn", body).await?;
        if reply.succeeded {
            Ok(())
        } else {
            Err(Error::NodeExists(path.to_owned()))
        }
    }

    async fn grant(&self, path: &str, ttl: Duration) -> Result<i64> {
        let body = json!({ "TTL": ttl.as_secs().max(1).to_string() });
        let reply: LeaseReply = self
            .call("create_ephemeral", path, "/v3/lease/grant", body)
            .await?;
        match int64(&reply.id) {
            0 => Err(Error::Etcd {
                op: "create_ephemeral",
                path: path.to_owned(),
                message: "lease grant returned no id".to_owned(),
            }),
            id => Ok(id),
        }
    }

    /// Renews the lease: `Ok(false)` when etcd no longer knows it.
    async fn keep_alive(&self, id: i64, path: &str) -> Result<bool> {
        let body = json!({ "ID": id.to_string() });
        let reply: KeepAliveReply = self
            .call("keepalive", path, "/v3/lease/keepalive", body)
            .await?;
        if let Some(error) = reply.error {
            return Err(Error::Etcd {
                op: "keepalive",
                path: path.to_owned(),
                message: error.to_string(),
            });
        }
        Ok(reply.result.is_some_and(|r| int64(&r.ttl) > 0))
    }

    async fn revoke(&self, id: i64) -> Result<()> {
        let body = json!({ "ID": id.to_string() });
        match self
            .call::<Ignored>("revoke", "", "/v3/lease/revoke", body)
            .await
        {
            Err(Error::Etcd { message, .. }) if message.contains("lease not found") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// Keeps lease `id` of the ephemeral node `path` alive; returns (dropping `gone`, which fires
/// the node's watch) once the lease is lost, the key is gone, or renewals failed for a TTL.
async fn keep_ephemeral(
    api: Arc<Api>,
    id: i64,
    path: String,
    ttl: Duration,
    gone: tokio::sync::oneshot::Sender<()>,
) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 2).await;
        let renewed = match api.keep_alive(id, &path).await {
            Ok(true) => api
                .range("keepalive", &path)
                .await
                .map(|value| value.is_some()),
            other => other,
        };
        match renewed {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    path,
                    lease = id,
                    "etcd: ephemeral node or its lease is gone"
                );
                let _ = api.revoke(id).await;
                break;
            }
            Err(err) if last_renewed.elapsed() >= ttl => {
                tracing::warn!(path, lease = id, error = %err, "etcd: lease not renewed in time");
                break;
            }
            Err(err) => {
                tracing::debug!(path, lease = id, error = %err, "etcd: lease renewal failed")
            }
        }
    }
    drop(gone);
}

#[async_trait::async_trait]
impl Coordinator for EtcdCoordinator {
    fn backend(&self) -> Backend {
        Backend::Etcd
    }

    async fn create(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        self.check_open()?;
        bounded(
            Backend::Etcd,
            "create",
            path,
            self.op_timeout,
            self.api.put_new("create", path, data, 0),
        )
        .await
    }

    async fn update(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        self.check_open()?;
        let body = json!({ "key": b64(path.as_bytes()), "value": b64(data) });
        let put = self.api.call::<Ignored>("update", path, "/v3/kv/put", body);
        bounded(Backend::Etcd, "update", path, self.op_timeout, put)
            .await
            .map(|_| ())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_node_path(path)?;
        self.check_open()?;
        let body = json!({ "key": b64(path.as_bytes()) });
        let delete = self
            .api
            .call::<Ignored>("delete", path, "/v3/kv/deleterange", body);
        bounded(Backend::Etcd, "delete", path, self.op_timeout, delete)
            .await
            .map(|_| ())
    }

    async fn read(&self, path: &str, must: bool) -> Result<Option<Vec<u8>>> {
        check_path(path)?;
        self.check_open()?;
        match bounded(
            Backend::Etcd,
            "read",
            path,
            self.op_timeout,
            self.api.range("read", path),
        )
        .await?
        {
            None if must => Err(Error::NotFound(path.to_owned())),
            value => Ok(value),
        }
    }

    async fn list(&self, path: &str, must: bool) -> Result<Vec<String>> {
        check_path(path)?;
        self.check_open()?;
        bounded(Backend::Etcd, "list", path, self.op_timeout, async {
            let prefix = if path == "/" {
                "/".to_owned()
            } else {
                format!("{path}/")
            };
            let body = json!({
                "key": b64(prefix.as_bytes()),
                "range_end": b64(&prefix_end(&prefix)),
                "keys_only": true,
            });
            let reply: RangeReply = self.api.call("list", path, "/v3/kv/range", body).await?;
            // Every descendant comes back; keep the first segment after the prefix.
            let mut children = std::collections::BTreeSet::new();
            for kv in &reply.kvs {
                let key = BASE64.decode(&kv.key).unwrap_or_default();
                let key = String::from_utf8_lossy(&key);
                if let Some(rest) = key.strip_prefix(prefix.as_str())
                    && let Some(name) = rest.split('/').next()
                    && !name.is_empty()
                {
                    children.insert(child_path(path, name));
                }
            }
            // No children: the node may still exist as a plain key (a leaf).
            if children.is_empty() && must && self.api.range("list", path).await?.is_none() {
                return Err(Error::NotFound(path.to_owned()));
            }
            Ok(children.into_iter().collect())
        })
        .await
    }

    async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<EphemeralWatch> {
        check_node_path(path)?;
        self.check_open()?;
        let op = "create_ephemeral";
        let id = bounded(Backend::Etcd, op, path, self.op_timeout, async {
            let id = self.api.grant(path, self.ttl).await?;
            if let Err(err) = self.api.put_new(op, path, data, id).await {
                let _ = self.api.revoke(id).await;
                return Err(err);
            }
            Ok(id)
        })
        .await?;
        let (gone, watch) = EphemeralWatch::new();
        let keeper = tokio::spawn(keep_ephemeral(
            Arc::clone(&self.api),
            id,
            path.to_owned(),
            self.ttl,
            gone,
        ));
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        leases.retain(|lease| !lease.keeper.is_finished());
        leases.push(Lease { id, keeper });
        Ok(watch)
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let leases = self.take_leases();
        let revoke_all = async {
            let mut result = Ok(());
            for lease in leases {
                lease.keeper.abort();
                if let Err(err) = self.api.revoke(lease.id).await {
                    result = Err(err);
                }
            }
            result
        };
        bounded(Backend::Etcd, "close", "", self.op_timeout, revoke_all).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/a/"), b"/a0");
        assert_eq!(prefix_end("/"), b"0");
        assert_eq!(int64(&json!("42")), 42);
        assert_eq!(int64(&json!(7)), 7);
        assert_eq!(int64(&Value::Null), 0);
    }

    #[test]
    fn endpoints_get_a_scheme() {
        let c = EtcdCoordinator::new("127.0.0.1:1, http://h:2/ ,", "", Duration::ZERO).unwrap();
        assert_eq!(c.api.endpoints, ["http://127.0.0.1:1", "http://h:2"]);
        assert!(EtcdCoordinator::new(" , ", "", Duration::ZERO).is_err());
    }
}
