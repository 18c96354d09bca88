//! Admin API tests against a real listener on 127.0.0.1:0 and a fake proxy. The fake and the
//! small HTTP helpers are shared with the metrics and dashboard tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use codis_model::proxy::{OpStats, Proxy, RuntimeStats, STATS_CMDS, STATS_RUNTIME};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

pub(crate) const XAUTH: &str = "0123456789abcdef0123456789abcdef";

/// A proxy core stand-in that records what the API asked of it.
#[derive(Debug, Default)]
pub(crate) struct FakeApi {
    pub(crate) closed: AtomicBool,
    pub(crate) started: AtomicUsize,
    pub(crate) resets: AtomicUsize,
    pub(crate) shutdowns: AtomicUsize,
    pub(crate) rewatches: AtomicUsize,
    pub(crate) slots: Mutex<Vec<Slot>>,
    pub(crate) sentinel: Mutex<Option<Sentinel>>,
    pub(crate) log_level: Mutex<String>,
    pub(crate) stats_flags: Mutex<Vec<u32>>,
    pub(crate) fail_fill: AtomicBool,
}

impl FakeApi {
    pub(crate) fn model_value() -> Proxy {
        Proxy {
            token: "tok".into(),
            start_time: "2017-03-08 11:58:36 +0000 UTC".into(),
            admin_addr: "10.0.0.1:11080".into(),
            proto_type: "tcp4".into(),
            proxy_addr: "10.0.0.1:19000".into(),
            product_name: "demo".into(),
            pid: 42,
            hostname: "host1".into(),
            ..Proxy::default()
        }
    }
}

impl AdminApi for FakeApi {
    fn model(&self) -> Proxy {
        Self::model_value()
    }
    fn config_json(&self) -> serde_json::Value {
        crate::proxy::config::ProxyConfig::default().to_json()
    }
    fn xauth(&self) -> String {
        XAUTH.to_string()
    }
    fn stats(&self, flags: u32) -> Stats {
        self.stats_flags.lock().push(flags);
        let mut s = Stats {
            online: self.started.load(Ordering::SeqCst) > 0,
            ..Stats::default()
        };
        s.closed = self.closed.load(Ordering::SeqCst);
        s.ops.total = 100;
        s.ops.fails = 3;
        s.ops.redis.errors = 2;
        s.ops.qps = 7;
        s.sessions.total = 9;
        s.sessions.alive = 4;
        s.rusage.mem = 1 << 20;
        s.rusage.cpu = 0.5;
        if flags & STATS_CMDS != 0 {
            s.ops.cmd = vec![
                OpStats {
                    opstr: "GET".into(),
                    calls: 60,
                    usecs: 600,
                    usecs_percall: 10,
                    fails: 1,
                    redis_errtype: 0,
                },
                OpStats {
                    opstr: "SET".into(),
                    calls: 40,
                    usecs: 800,
                    usecs_percall: 20,
                    fails: 2,
                    redis_errtype: 2,
                },
            ];
        }
        if flags & STATS_RUNTIME != 0 {
            s.runtime = Some(RuntimeStats {
                num_procs: 2,
                num_goroutines: 5,
                ..RuntimeStats::default()
            });
        }
        s
    }
    fn slots(&self) -> Vec<Slot> {
        self.slots.lock().clone()
    }
    fn fill_slots(
        &self,
        slots: Vec<Slot>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if self.fail_fill.load(Ordering::SeqCst) {
                return Err("use of invalid slot id".to_string());
            }
            self.slots.lock().extend(slots);
            Ok(())
        })
    }
    fn start(&self) -> Result<(), String> {
        self.started.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn reset_stats(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
    fn shutdown(&self) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        self.closed.store(true, Ordering::SeqCst);
    }
    fn set_log_level(&self, level: &str) -> Result<(), String> {
        *self.log_level.lock() = level.to_string();
        Ok(())
    }
    fn set_sentinels(&self, s: Sentinel) -> Result<(), String> {
        *self.sentinel.lock() = Some(s);
        Ok(())
    }
    fn rewatch_sentinels(&self) -> Result<(), String> {
        self.rewatches.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Real-IP: 1.2.3.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_response(&String::from_utf8(raw).unwrap())
}

fn parse_response(raw: &str) -> RawResponse {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A captured HTTP request.
#[derive(Debug)]
pub(crate) struct RawRequest {
    pub(crate) request_line: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

/// Reads one request from `stream` (headers, then Content-Length bytes of body).
pub(crate) async fn read_request(stream: &mut TcpStream) -> RawRequest {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request was complete");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    }
    RawRequest {
        request_line,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// Answers one request on `stream` with `status` and a JSON `body`, closing the connection.
pub(crate) async fn write_response(stream: &mut TcpStream, status: u16, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

struct Server {
    addr: SocketAddr,
    api: Arc<FakeApi>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = Arc::new(FakeApi::default());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, api.clone(), rx));
    Server {
        addr,
        api,
        stop,
        task,
    }
}

fn error_body(cause: &str) -> String {
    format!("{{\n    \"Cause\": \"{cause}\",\n    \"Stack\": []\n}}")
}

fn assert_json(r: &RawResponse) {
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
}

fn assert_error(r: &RawResponse, cause: &str) {
    assert_eq!(r.status, 800, "{r:?}");
    assert_json(r);
    assert_eq!(r.body, error_body(cause));
}

fn assert_ok(r: &RawResponse) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_json(r);
    assert_eq!(r.body, "\"OK\"");
}

#[tokio::test]
async fn public_routes() {
    let s = start().await;
    s.api.slots.lock().push(Slot {
        id: 5,
        backend_addr: "a:1".into(),
        ..Slot::default()
    });

    let r = http(s.addr, "GET", "/", None).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "/proxy");

    let r = http(s.addr, "GET", "/proxy", None).await;
    assert_eq!(r.status, 200);
    assert_json(&r);
    assert!(r.body.starts_with("{\n    \"version\": "), "{}", r.body);
    let o: Overview = serde_json::from_str(&r.body).unwrap();
    assert_eq!(o.version, cli::VERSION);
    assert_eq!(o.model, FakeApi::model_value());
    assert_eq!(o.stats.ops.cmd.len(), 2);
    assert!(o.stats.runtime.is_some());
    assert_eq!(o.slots.len(), 1);
    assert_eq!(o.config["product_name"], "codis-demo");
    assert!(o.config.get("product_auth").is_none());

    for path in ["/proxy/model", "/api/proxy/model"] {
        let r = http(s.addr, "GET", path, None).await;
        assert_eq!(r.status, 200);
        assert_json(&r);
        let m: Proxy = serde_json::from_str(&r.body).unwrap();
        assert_eq!(m, FakeApi::model_value());
        assert!(r.body.contains("\n    \"token\": \"tok\",\n"));
    }

    let r = http(s.addr, "GET", "/proxy/stats", None).await;
    let st: Stats = serde_json::from_str(&r.body).unwrap();
    assert_eq!(st.ops.total, 100);
    assert_eq!(st.ops.cmd.len(), 2);
    assert!(st.runtime.is_some());

    let r = http(s.addr, "GET", "/proxy/slots", None).await;
    assert_eq!(
        r.body,
        "[\n    {\n        \"id\": 5,\n        \"backend_addr\": \"a:1\"\n    }\n]"
    );

    let r = http(s.addr, "GET", "/nothing", None).await;
    assert_eq!(r.status, 404);
    let r = http(s.addr, "POST", "/proxy", None).await;
    assert_eq!(r.status, 404);
    let _ = s.stop.send(true);
    s.task.await.unwrap();
}

#[tokio::test]
async fn xauth_checks() {
    let s = start().await;
    assert_ok(&http(s.addr, "GET", &format!("/api/proxy/xping/{XAUTH}"), None).await);
    assert_error(
        &http(s.addr, "GET", "/api/proxy/xping/", None).await,
        ERR_MISSING_XAUTH,
    );
    assert_error(
        &http(s.addr, "GET", "/api/proxy/xping/bad", None).await,
        ERR_INVALID_XAUTH,
    );
    assert_error(
        &http(s.addr, "PUT", "/api/proxy/start/bad", None).await,
        ERR_INVALID_XAUTH,
    );
    assert_error(
        &http(s.addr, "GET", "/api/proxy/slots/bad", None).await,
        ERR_INVALID_XAUTH,
    );
    assert_error(
        &http(s.addr, "PUT", "/api/proxy/fillslots/bad", Some("[]")).await,
        ERR_INVALID_XAUTH,
    );
    // A GET of the reset route reads "reset" as the xauth, as in Codis.
    assert_error(
        &http(
            s.addr,
            "GET",
            &format!("/api/proxy/stats/reset/{XAUTH}"),
            None,
        )
        .await,
        ERR_INVALID_XAUTH,
    );
    assert_eq!(s.api.started.load(Ordering::SeqCst), 0);

    s.api.closed.store(true, Ordering::SeqCst);
    assert_error(
        &http(s.addr, "GET", &format!("/api/proxy/xping/{XAUTH}"), None).await,
        ERR_CLOSED_PROXY,
    );
    assert_error(
        &http(s.addr, "GET", "/api/proxy/xping/bad", None).await,
        ERR_CLOSED_PROXY,
    );
    // Unauthenticated routes still answer.
    assert_eq!(http(s.addr, "GET", "/proxy/model", None).await.status, 200);
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn stats_flags() {
    let s = start().await;
    let r = http(s.addr, "GET", &format!("/api/proxy/stats/{XAUTH}"), None).await;
    let st: Stats = serde_json::from_str(&r.body).unwrap();
    assert!(st.ops.cmd.is_empty() && st.runtime.is_none());
    assert!(!r.body.contains("\"cmd\"") && !r.body.contains("\"runtime\""));

    let r = http(s.addr, "GET", &format!("/api/proxy/stats/{XAUTH}/1"), None).await;
    let st: Stats = serde_json::from_str(&r.body).unwrap();
    assert_eq!(st.ops.cmd[0].opstr, "GET");
    assert!(st.runtime.is_none());

    let r = http(s.addr, "GET", &format!("/api/proxy/stats/{XAUTH}/5"), None).await;
    let st: Stats = serde_json::from_str(&r.body).unwrap();
    assert!(!st.ops.cmd.is_empty() && st.runtime.is_some());

    let r = http(s.addr, "GET", &format!("/api/proxy/stats/{XAUTH}/x"), None).await;
    assert_error(&r, "strconv.Atoi: parsing \\\"x\\\": invalid syntax");
    assert_eq!(*s.api.stats_flags.lock(), vec![0, 1, 5]);

    let r = http(s.addr, "GET", &format!("/api/proxy/slots/{XAUTH}"), None).await;
    assert_eq!(r.body, "[]");
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn mutations() {
    let s = start().await;
    let put = |path: String, body: Option<&'static str>| {
        let addr = s.addr;
        async move { http(addr, "PUT", &path, body).await }
    };
    assert_ok(&put(format!("/api/proxy/start/{XAUTH}"), None).await);
    assert_eq!(s.api.started.load(Ordering::SeqCst), 1);
    assert_ok(&put(format!("/api/proxy/stats/reset/{XAUTH}"), None).await);
    assert_eq!(s.api.resets.load(Ordering::SeqCst), 1);
    assert_ok(&put(format!("/api/proxy/forcegc/{XAUTH}"), None).await);

    assert_ok(&put(format!("/api/proxy/loglevel/{XAUTH}/warn"), None).await);
    assert_eq!(*s.api.log_level.lock(), "warn");
    assert_error(
        &put(format!("/api/proxy/loglevel/{XAUTH}/loud"), None).await,
        "invalid loglevel",
    );
    assert_error(
        &put(format!("/api/proxy/loglevel/{XAUTH}/"), None).await,
        "missing loglevel",
    );

    let slots = r#"[{"id": 1, "backend_addr": "127.0.0.1:6379", "backend_addr_group_id": 1},
                    {"id": 2, "locked": true, "forward_method": 1}]"#;
    assert_ok(&put(format!("/api/proxy/fillslots/{XAUTH}"), Some(slots)).await);
    {
        let got = s.api.slots.lock();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].backend_addr, "127.0.0.1:6379");
        assert!(got[1].locked);
        assert_eq!(got[1].forward_method, 1);
    }
    let r = put(format!("/api/proxy/fillslots/{XAUTH}"), Some("{\"id\": 1}")).await;
    assert_eq!(r.status, 800);
    assert!(r.body.contains("decode json body failed"), "{}", r.body);
    let r = put(format!("/api/proxy/fillslots/{XAUTH}"), Some("[{")).await;
    assert_eq!(r.status, 800);
    assert!(r.body.contains("decode json body failed"), "{}", r.body);
    s.api.fail_fill.store(true, Ordering::SeqCst);
    assert_error(
        &put(format!("/api/proxy/fillslots/{XAUTH}"), Some("[]")).await,
        "use of invalid slot id",
    );

    let sentinel = r#"{"servers": ["127.0.0.1:26379"], "out_of_sync": true}"#;
    assert_ok(&put(format!("/api/proxy/sentinels/{XAUTH}"), Some(sentinel)).await);
    assert_eq!(
        *s.api.sentinel.lock(),
        Some(Sentinel {
            servers: vec!["127.0.0.1:26379".into()],
            out_of_sync: true
        })
    );
    let r = put(format!("/api/proxy/sentinels/{XAUTH}"), Some("nope")).await;
    assert_eq!(r.status, 800);
    assert_ok(&put(format!("/api/proxy/sentinels/{XAUTH}/rewatch"), None).await);
    assert_eq!(s.api.rewatches.load(Ordering::SeqCst), 1);

    assert_eq!(
        put(format!("/api/proxy/unknown/{XAUTH}"), None)
            .await
            .status,
        404
    );

    assert_ok(&put(format!("/api/proxy/shutdown/{XAUTH}"), None).await);
    assert_eq!(s.api.shutdowns.load(Ordering::SeqCst), 1);
    assert_error(
        &put(format!("/api/proxy/start/{XAUTH}"), None).await,
        ERR_CLOSED_PROXY,
    );
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let s = start().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "PUT /api/proxy/fillslots/{XAUTH} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n[",
        MAX_BODY + 1
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let r = parse_response(std::str::from_utf8(&buf[..n]).unwrap());
    assert_error(&r, &format!("request body is larger than {MAX_BODY} bytes"));
    assert!(s.api.slots.lock().is_empty());
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn metrics_text() {
    let s = start().await;
    let r = http(s.addr, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    assert!(
        r.body
            .contains("# TYPE codis_proxy_ops_total counter\ncodis_proxy_ops_total 100\n")
    );
    assert!(r.body.contains("codis_proxy_sessions_alive 4\n"));
    assert!(r.body.contains("codis_proxy_online 0\n"));
    assert!(
        r.body
            .contains("codis_proxy_cmd_calls_total{opstr=\"GET\"} 60\n")
    );
    assert!(
        r.body
            .contains("codis_proxy_cmd_redis_errors_total{opstr=\"SET\"} 2\n")
    );
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn keep_alive_and_percent_decoding() {
    let s = start().await;
    // Two requests on one connection.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET /api/proxy/xping/{XAUTH} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/proxy/xping/%30{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                &XAUTH[1..]
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let s = start().await;
    assert_eq!(http(s.addr, "GET", "/proxy/model", None).await.status, 200);
    s.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .unwrap()
        .unwrap();
    // The listener is gone.
    assert!(TcpStream::connect(s.addr).await.is_err());
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b"), "a b");
    assert_eq!(percent_decode("10.0.0.1%3A80"), "10.0.0.1:80");
    assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
}
