//! A small JSON-over-HTTP client with Codis's conventions, used to call the dashboard and to
//! push metrics: 1 s connect timeout, 60 s for the whole call, JSON bodies indented with 4
//! spaces, and the remote error convention (HTTP status 800 or 1500 with
//! `{"Cause": ..., "Stack": ...}`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Connect timeout of every call (Codis: 1 s).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeout of a whole call, body included (Codis: 1 min).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body read.
const MAX_RESPONSE: usize = 64 << 20;

/// Errors of an HTTP call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The URL could not be parsed.
    #[error("bad url '{url}': {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("call {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The call took longer than [`CALL_TIMEOUT`].
    #[error("call {url} timed out")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The server answered with Codis's error convention (status 800 or 1500).
    #[error("[Remote Error] {cause}")]
    Remote {
        /// The HTTP status.
        status: u16,
        /// The `Cause` field.
        cause: String,
    },
    /// Any other non-success status.
    #[error("[{status}] {reason} - {url}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The canonical reason or the body.
        reason: String,
        /// The URL.
        url: String,
    },
    /// A JSON body could not be encoded or decoded.
    #[error("json of {url}: {source}")]
    Json {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// A Codis error body (`{"Cause": "...", "Stack": [...]}`).
#[derive(Debug, serde::Deserialize)]
struct RemoteError {
    #[serde(rename = "Cause", default)]
    cause: String,
}

/// Encodes a value as Codis does: JSON indented with 4 spaces.
pub fn to_json_pretty<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(out)
}

/// Percent-encodes one URL path segment (keeps unreserved characters and `:`, `@`, like Go's
/// `url.URL.EscapedPath`).
pub fn encode_path_segment(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Basic` authorization header value.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4 + 6);
    out.push_str("Basic ");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The HTTP client. Cheap to clone (connections are pooled and shared).
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with Codis's timeouts. Must be used inside a tokio runtime.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DIAL_TIMEOUT));
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        HttpClient { inner }
    }

    /// Sends one request and returns the status and the body.
    ///
    /// # Errors
    /// [`RpcError::BadUrl`], [`RpcError::Transport`] or [`RpcError::Timeout`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(Vec<u8>, &'static str)>,
        authorization: Option<&str>,
    ) -> Result<(StatusCode, Bytes), RpcError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| RpcError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(auth) = authorization {
            builder = builder.header(AUTHORIZATION, auth);
        }
        let payload = match body {
            Some((bytes, content_type)) => {
                builder = builder.header(CONTENT_TYPE, HeaderValue::from_static(content_type));
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(payload))
            .map_err(|e| RpcError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let transport = |reason: String| RpcError::Transport {
            url: url.to_string(),
            reason,
        };
        let call = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| RpcError::Timeout {
                url: url.to_string(),
            })?
    }

    /// Calls a Codis JSON API: sends `args` (if any) as indented JSON, and decodes a 200 body
    /// into `R`. Statuses 800 and 1500 become [`RpcError::Remote`] with the remote `Cause`.
    ///
    /// # Errors
    /// Transport errors, [`RpcError::Remote`], [`RpcError::Status`] or [`RpcError::Json`].
    pub async fn call_json<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        args: Option<&A>,
    ) -> Result<R, RpcError> {
        let json_err = |source| RpcError::Json {
            url: url.to_string(),
            source,
        };
        let body = match args {
            Some(a) => Some((to_json_pretty(a).map_err(json_err)?, "application/json")),
            None => None,
        };
        let (status, bytes) = self.send(method, url, body, None).await?;
        check_status(url, status, &bytes)?;
        serde_json::from_slice(&bytes).map_err(json_err)
    }

    /// `GET` a Codis JSON API.
    ///
    /// # Errors
    /// See [`HttpClient::call_json`].
    pub async fn get_json<R: DeserializeOwned>(&self, url: &str) -> Result<R, RpcError> {
        self.call_json::<(), R>(Method::GET, url, None).await
    }

    /// `PUT` to a Codis JSON API, ignoring the reply body (usually `"OK"`).
    ///
    /// # Errors
    /// See [`HttpClient::call_json`].
    pub async fn put_json<A: Serialize + ?Sized>(
        &self,
        url: &str,
        args: Option<&A>,
    ) -> Result<(), RpcError> {
        let json_err = |source| RpcError::Json {
            url: url.to_string(),
            source,
        };
        let body = match args {
            Some(a) => Some((to_json_pretty(a).map_err(json_err)?, "application/json")),
            None => None,
        };
        let (status, bytes) = self.send(Method::PUT, url, body, None).await?;
        check_status(url, status, &bytes)
    }

    /// `POST` a JSON document, ignoring the reply body.
    ///
    /// # Errors
    /// See [`HttpClient::call_json`].
    pub async fn post_json<A: Serialize + ?Sized>(
        &self,
        url: &str,
        args: &A,
    ) -> Result<(), RpcError> {
        let body = to_json_pretty(args).map_err(|source| RpcError::Json {
            url: url.to_string(),
            source,
        })?;
        let (status, bytes) = self
            .send(Method::POST, url, Some((body, "application/json")), None)
            .await?;
        check_status(url, status, &bytes)
    }
}

/// Maps a status to Codis's client behaviour: 200 is success, 800/1500 a remote error with
/// its `Cause`, anything else an error naming the status. (A 4-digit status such as 1500
/// cannot be parsed by hyper and arrives as a transport error; it is matched for clarity.)
fn check_status(url: &str, status: StatusCode, body: &[u8]) -> Result<(), RpcError> {
    match status.as_u16() {
        200 => Ok(()),
        code @ (800 | 1500) => {
            if body.is_empty() {
                return Err(RpcError::Remote {
                    status: code,
                    cause: "remote error is empty".into(),
                });
            }
            match serde_json::from_slice::<RemoteError>(body) {
                Ok(e) => Err(RpcError::Remote {
                    status: code,
                    cause: e.cause,
                }),
                Err(source) => Err(RpcError::Json {
                    url: url.to_string(),
                    source,
                }),
            }
        }
        code => Err(RpcError::Status {
            status: code,
            reason: status.canonical_reason().unwrap_or("").to_string(),
            url: url.to_string(),
        }),
    }
}

/// An error and its sources on one line (hyper's top-level errors say little alone).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_encoding() {
        assert_eq!(encode_path_segment("10.0.0.1:11080"), "10.0.0.1:11080");
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_query_value("db name&x"), "db%20name%26x");
    }

    #[test]
    fn basic_auth_encoding() {
        // printf 'user:pass' | base64 => dXNlcjpwYXNz
        assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
        // printf 'a:' | base64 => YTo=
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
        // printf 'ab:c' | base64 => YWI6Yw==
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn status_mapping() {
        assert!(check_status("u", StatusCode::OK, b"").is_ok());
        let e = check_status(
            "u",
            StatusCode::from_u16(800).unwrap(),
            br#"{"Cause":"boom","Stack":[]}"#,
        );
        assert!(matches!(e, Err(RpcError::Remote { status: 800, ref cause }) if cause == "boom"));
        let e = check_status("u", StatusCode::from_u16(800).unwrap(), b"");
        assert_eq!(
            e.unwrap_err().to_string(),
            "[Remote Error] remote error is empty"
        );
        let e = check_status("u", StatusCode::NOT_FOUND, b"");
        assert_eq!(e.unwrap_err().to_string(), "[404] Not Found - u");
    }

    #[test]
    fn pretty_json_uses_four_spaces() {
        let v = serde_json::json!({"a": [1]});
        assert_eq!(
            to_json_pretty(&v).unwrap(),
            b"{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
