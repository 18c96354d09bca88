//! The dashboard's client of a codis-proxy's admin API (`/api/proxy/...`, spec §5.6):
//! model, xping, fillslots, start, stats, sentinels, shutdown. Codis's rules: 800 and 1500
//! are remote errors whose body is `{"Cause": ...}`; 1 s to connect.

use std::time::Duration;

use codis_model::auth::proxy_xauth;
use codis_model::proxy::{Proxy, Sentinel, Slot, Stats};
use codis_model::topom::RemoteError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Errors of calling a proxy (or another dashboard) over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The request could not be sent or its answer read.
    #[error("call {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The remote side answered with an error (`Cause`).
    #[error("{cause}")]
    Remote {
        /// The URL.
        url: String,
        /// The remote `Cause`.
        cause: String,
    },
    /// An unexpected HTTP status.
    #[error("call {url} failed: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body was not the expected JSON.
    #[error("call {url}: bad JSON: {reason}")]
    Json {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Calls to one kind of Codis HTTP API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with Codis's timeouts (1 s to connect, 60 s per call).
    pub fn new() -> Self {
        let inner = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .unwrap_or_default();
        HttpClient { inner }
    }

    /// Sends a request with an optional JSON body and decodes a 200 reply.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&A>,
        timeout: Option<Duration>,
    ) -> Result<R, RpcError> {
        let mut req = self.inner.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let transport = |e: reqwest::Error| RpcError::Transport {
            url: url.to_string(),
            reason: error_chain(&e),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport)?;
        match status {
            200 => serde_json::from_slice(&bytes).map_err(|e| RpcError::Json {
                url: url.to_string(),
                reason: e.to_string(),
            }),
            800 | 1500 => {
                let cause = serde_json::from_slice::<RemoteError>(&bytes)
                    .map(|e| e.cause)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
                Err(RpcError::Remote {
                    url: url.to_string(),
                    cause,
                })
            }
            status => Err(RpcError::Status {
                url: url.to_string(),
                status,
            }),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The admin API of one proxy.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    http: HttpClient,
    addr: String,
    xauth: String,
}

impl ProxyClient {
    /// A client of the proxy at `admin_addr` whose token is `token`.
    pub fn new(http: HttpClient, admin_addr: &str, product: &str, auth: &str, token: &str) -> Self {
        ProxyClient {
            http,
            addr: admin_addr.to_string(),
            xauth: proxy_xauth(product, auth, token),
        }
    }

    /// `GET /api/proxy/model` of any address (no xauth needed).
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn model_of(http: &HttpClient, admin_addr: &str) -> Result<Proxy, RpcError> {
        let url = format!("http://{admin_addr}/api/proxy/model");
        http.call::<(), Proxy>(reqwest::Method::GET, &url, None, None)
            .await
    }

    fn url(&self, route: &str) -> String {
        format!("http://{}/api/proxy/{route}/{}", self.addr, self.xauth)
    }

    /// `GET /api/proxy/xping/:xauth`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn xping(&self) -> Result<(), RpcError> {
        self.http
            .call::<(), String>(reqwest::Method::GET, &self.url("xping"), None, None)
            .await
            .map(drop)
    }

    /// `PUT /api/proxy/fillslots/:xauth`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn fill_slots(&self, slots: &[Slot]) -> Result<(), RpcError> {
        self.http
            .call::<_, String>(
                reqwest::Method::PUT,
                &self.url("fillslots"),
                Some(slots),
                None,
            )
            .await
            .map(drop)
    }

    /// `PUT /api/proxy/start/:xauth`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn start(&self) -> Result<(), RpcError> {
        self.http
            .call::<(), String>(reqwest::Method::PUT, &self.url("start"), None, None)
            .await
            .map(drop)
    }

    /// `PUT /api/proxy/sentinels/:xauth`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn set_sentinels(&self, sentinel: &Sentinel) -> Result<(), RpcError> {
        self.http
            .call::<_, String>(
                reqwest::Method::PUT,
                &self.url("sentinels"),
                Some(sentinel),
                None,
            )
            .await
            .map(drop)
    }

    /// `PUT /api/proxy/shutdown/:xauth`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn shutdown(&self) -> Result<(), RpcError> {
        self.http
            .call::<(), String>(reqwest::Method::PUT, &self.url("shutdown"), None, None)
            .await
            .map(drop)
    }

    /// `GET /api/proxy/stats/:xauth` (simple stats), bounded by `timeout`.
    ///
    /// # Errors
    /// See [`RpcError`].
    pub async fn stats(&self, timeout: Duration) -> Result<Stats, RpcError> {
        self.http
            .call::<(), Stats>(
                reqwest::Method::GET,
                &self.url("stats"),
                None,
                Some(timeout),
            )
            .await
    }
}
