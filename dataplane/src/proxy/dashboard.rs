//! Going online through a dashboard, as `codis-proxy --dashboard=ADDR` does: ask the
//! dashboard for its model (to check the product), then ask it to take this proxy online
//! (`PUT /api/topom/proxy/online/<dashboard xauth>/<our admin addr>`); the dashboard then
//! fills our slots and calls our `/api/proxy/start`.
//!
//! The coordinator modes (`--zookeeper`, `--etcd`, `--filesystem`) find the dashboard
//! address in `/codis3/<product>/topom` and then do the same; [`online_with_topom_reader`]
//! runs that loop given a way to read the node.

use std::future::Future;
use std::time::Duration;

use super::auth::dashboard_xauth;
use super::rpc::{HttpClient, RpcError, encode_path_segment};

/// Errors of going online.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The dashboard serves another product: retrying cannot help.
    #[error("unexpected product name: dashboard {dashboard} serves '{got}', we are '{want}'")]
    WrongProduct {
        /// The dashboard.
        dashboard: String,
        /// Its product.
        got: String,
        /// Ours.
        want: String,
    },
    /// Every try failed; holds the last error.
    #[error("online proxy failed after {tries} tries: {last}")]
    GaveUp {
        /// Tries made.
        tries: u32,
        /// The last failure.
        last: String,
    },
}

/// The dashboard model (`GET /api/topom/model`, also the `/codis3/<product>/topom` node).
pub use codis_model::topom::Topom as TopomModel;

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Number of tries (Codis: 10 with a dashboard, 30 with a coordinator).
    pub tries: u32,
    /// Pause between tries (Codis: 3 s).
    pub delay: Duration,
}

impl RetryPolicy {
    /// `--dashboard`: 10 tries, 3 s apart.
    pub const DASHBOARD: RetryPolicy = RetryPolicy {
        tries: 10,
        delay: Duration::from_secs(3),
    };
    /// Coordinator modes: 30 tries, 3 s apart.
    pub const COORDINATOR: RetryPolicy = RetryPolicy {
        tries: 30,
        delay: Duration::from_secs(3),
    };
}

/// One attempt: fetch the dashboard's model, check its product, ask it to take us online.
///
/// # Errors
/// [`DashboardError::WrongProduct`] (fatal) or the call's error as text (worth a retry).
async fn online_once(
    client: &HttpClient,
    dashboard: &str,
    product_name: &str,
    admin_addr: &str,
) -> Result<(), Result<DashboardError, String>> {
    let model: TopomModel = client
        .get_json(&format!("http://{dashboard}/api/topom/model"))
        .await
        .map_err(|e: RpcError| Err(format!("rpc fetch model failed: {e}")))?;
    if model.product_name != product_name {
        return Err(Ok(DashboardError::WrongProduct {
            dashboard: dashboard.to_string(),
            got: model.product_name,
            want: product_name.to_string(),
        }));
    }
    let url = format!(
        "http://{dashboard}/api/topom/proxy/online/{}/{}",
        dashboard_xauth(product_name),
        encode_path_segment(admin_addr)
    );
    client
        .put_json::<()>(&url, None)
        .await
        .map_err(|e| Err(format!("rpc online proxy failed: {e}")))
}

/// `--dashboard`: tries to go online through `dashboard` (`host:port`) up to
/// `policy.tries` times, `policy.delay` apart. Stops early, successfully, when `done()`
/// turns true (the proxy went online some other way or was closed).
///
/// # Errors
/// [`DashboardError::WrongProduct`] at once, or [`DashboardError::GaveUp`]. Codis panics
/// (exits) on either.
pub async fn online_with_dashboard(
    client: &HttpClient,
    dashboard: &str,
    product_name: &str,
    admin_addr: &str,
    policy: RetryPolicy,
    done: impl Fn() -> bool,
) -> Result<(), DashboardError> {
    let mut last = String::from("not tried");
    for i in 0..policy.tries {
        if done() {
            return Ok(());
        }
        if i > 0 {
            tokio::time::sleep(policy.delay).await;
            if done() {
                return Ok(());
            }
        }
        match online_once(client, dashboard, product_name, admin_addr).await {
            Ok(()) => {
                tracing::warn!(dashboard, "rpc online proxy seems OK");
                return Ok(());
            }
            Err(Ok(fatal)) => return Err(fatal),
            Err(Err(e)) => {
                tracing::warn!(dashboard, try_no = i + 1, error = %e, "online proxy failed, will retry");
                last = e;
            }
        }
    }
    Err(DashboardError::GaveUp {
        tries: policy.tries,
        last,
    })
}

/// Coordinator modes: up to `policy.tries` times, `policy.delay` apart, reads the topom
/// node with `read_topom` (`Ok(None)` when it does not exist yet) and, if a dashboard is
/// there, tries once to go online through it.
///
/// # Errors
/// As [`online_with_dashboard`].
pub async fn online_with_topom_reader<F, Fut>(
    client: &HttpClient,
    product_name: &str,
    admin_addr: &str,
    policy: RetryPolicy,
    mut read_topom: F,
    done: impl Fn() -> bool,
) -> Result<(), DashboardError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<TopomModel>, String>>,
{
    let mut last = String::from("not tried");
    for i in 0..policy.tries {
        if i > 0 {
            tokio::time::sleep(policy.delay).await;
        }
        if done() {
            return Ok(());
        }
        match read_topom().await {
            Err(e) => {
                tracing::warn!(error = %e, "load & decode topom failed");
                last = e;
            }
            Ok(None) => last = "no dashboard registered".to_string(),
            Ok(Some(topom)) => {
                match online_once(client, &topom.admin_addr, product_name, admin_addr).await {
                    Ok(()) => {
                        tracing::warn!(dashboard = %topom.admin_addr, "rpc online proxy seems OK");
                        return Ok(());
                    }
                    Err(Ok(fatal)) => return Err(fatal),
                    Err(Err(e)) => {
                        tracing::warn!(error = %e, "online proxy failed, will retry");
                        last = e;
                    }
                }
            }
        }
    }
    Err(DashboardError::GaveUp {
        tries: policy.tries,
        last,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::TcpListener;

    use super::*;
    use crate::proxy::admin::tests::{read_request, write_response};

    const FAST: RetryPolicy = RetryPolicy {
        tries: 3,
        delay: Duration::from_millis(10),
    };

    fn topom(product: &str) -> String {
        format!(
            r#"{{"token":"t","start_time":"s","admin_addr":"127.0.0.1:18080","product_name":"{product}","pid":1,"pwd":"/","sys":"Linux"}}"#
        )
    }

    /// A fake dashboard answering `responses` in order (status, body), one per connection;
    /// returns the request lines it saw.
    fn fake_dashboard(
        listener: TcpListener,
        responses: Vec<(u16, String)>,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in responses {
                let (mut s, _) = listener.accept().await.unwrap();
                seen.push(read_request(&mut s).await.request_line);
                write_response(&mut s, status, &body).await;
            }
            seen
        })
    }

    #[tokio::test]
    async fn goes_online() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fake_dashboard(listener, vec![(200, topom("demo")), (200, "\"OK\"".into())]);
        let client = HttpClient::new();
        online_with_dashboard(&client, &addr, "demo", "10.0.0.1:11080", FAST, || false)
            .await
            .unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen[0], "GET /api/topom/model HTTP/1.1");
        assert_eq!(
            seen[1],
            format!(
                "PUT /api/topom/proxy/online/{}/10.0.0.1:11080 HTTP/1.1",
                dashboard_xauth("demo")
            )
        );
    }

    #[tokio::test]
    async fn retries_after_remote_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let err = r#"{"Cause":"proxy-x already exists","Stack":[]}"#.to_string();
        let server = fake_dashboard(
            listener,
            vec![
                (200, topom("demo")),
                (800, err),
                (200, topom("demo")),
                (200, "\"OK\"".into()),
            ],
        );
        let client = HttpClient::new();
        online_with_dashboard(&client, &addr, "demo", "h:1", FAST, || false)
            .await
            .unwrap();
        assert_eq!(server.await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn wrong_product_is_fatal() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fake_dashboard(listener, vec![(200, topom("other"))]);
        let client = HttpClient::new();
        let err = online_with_dashboard(&client, &addr, "demo", "h:1", FAST, || false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DashboardError::WrongProduct { ref got, .. } if got == "other"),
            "{err}"
        );
        assert_eq!(server.await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn gives_up_with_the_last_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let err = r#"{"Cause":"bad","Stack":[]}"#.to_string();
        let server = fake_dashboard(
            listener,
            vec![(800, err.clone()), (800, err.clone()), (800, err)],
        );
        let client = HttpClient::new();
        let e = online_with_dashboard(&client, &addr, "demo", "h:1", FAST, || false)
            .await
            .unwrap_err();
        assert!(matches!(e, DashboardError::GaveUp { tries: 3, .. }));
        assert!(e.to_string().contains("[Remote Error] bad"), "{e}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_dashboard_and_early_stop() {
        // A port nobody listens on: bind, read it, close.
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let client = HttpClient::new();
        let e = online_with_dashboard(&client, &addr, "demo", "h:1", FAST, || false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("rpc fetch model failed"), "{e}");
        // Already online: returns at once without calling.
        online_with_dashboard(&client, &addr, "demo", "h:1", FAST, || true)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn through_the_coordinator() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = fake_dashboard(listener, vec![(200, topom("demo")), (200, "\"OK\"".into())]);
        let reads = Arc::new(AtomicUsize::new(0));
        let r = reads.clone();
        let client = HttpClient::new();
        online_with_topom_reader(
            &client,
            "demo",
            "h:1",
            FAST,
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let addr = addr.clone();
                async move {
                    if n == 0 {
                        Ok(None)
                    } else {
                        Ok(Some(TopomModel {
                            admin_addr: addr,
                            ..TopomModel::default()
                        }))
                    }
                }
            },
            || false,
        )
        .await
        .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(server.await.unwrap().len(), 2);
    }

    #[test]
    fn topom_model_json() {
        let m: TopomModel = serde_json::from_str(&topom("demo")).unwrap();
        assert_eq!(m.product_name, "demo");
        assert_eq!(m.admin_addr, "127.0.0.1:18080");
    }
}
