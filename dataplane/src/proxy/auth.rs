//! Codis's identities and secrets as the proxy uses them: the proxy *token* (stable per host
//! and listeners), its *xauth* secret that appears in admin URLs, and the addresses a proxy
//! advertises. The hashing lives in [`codis_model::auth`] (see its module doc for the token
//! and xauth rules), the host facts in [`codis_host`]; both are re-exported here.

pub use codis_host::{
    HostError, advertised_addr, hardware_addrs, hostname, is_global_unicast, now_go_string, token,
    uname_a,
};
pub use codis_model::auth::{dashboard_xauth, proxy_xauth, token_with_macs, xauth};

use super::config::ProxyConfig;

/// A proxy's token: segments product name, proxy listener address and admin listener
/// address, both *as bound* (`listener.local_addr().to_string()`, e.g. `0.0.0.0:19000`,
/// `[::]:11080`, or the socket path for unix listeners).
pub fn proxy_token(product_name: &str, proxy_bound: &str, admin_bound: &str) -> String {
    token(&[product_name, proxy_bound, admin_bound])
}

/// What a proxy is: its model (as registered and served by `/proxy/model`) and its xauth.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The model: token, start time, advertised addresses, host facts.
    pub model: codis_model::proxy::Proxy,
    /// The proxy's xauth (checked on every `/api/proxy/...` call).
    pub xauth: String,
}

/// Builds the proxy's identity once both listeners are bound, as Codis does at start:
/// advertised addresses, token, xauth, jodis path, pid, working directory, `uname -a`,
/// host name, datacenter and start time.
///
/// `proxy_bound` / `admin_bound` are the listeners' addresses as bound
/// (`local_addr().to_string()`, or the socket path).
///
/// # Errors
/// See [`advertised_addr`].
pub fn proxy_identity(
    config: &ProxyConfig,
    proxy_bound: &str,
    admin_bound: &str,
) -> Result<Identity, HostError> {
    let proxy_addr = advertised_addr(&config.proto_type, proxy_bound, &config.host_proxy)?;
    let admin_addr = advertised_addr("tcp", admin_bound, &config.host_admin)?;
    let token = proxy_token(&config.product_name, proxy_bound, admin_bound);
    let xauth = proxy_xauth(&config.product_name, &config.product_auth, &token);
    let jodis_path = if config.jodis_addr.is_empty() {
        String::new()
    } else {
        codis_model::proxy::jodis_path(&config.product_name, &token, config.jodis_compatible)
    };
    let model = codis_model::proxy::Proxy {
        id: 0,
        token,
        start_time: now_go_string(),
        admin_addr,
        proto_type: config.proto_type.clone(),
        proxy_addr,
        jodis_path,
        product_name: config.product_name.clone(),
        pid: i64::from(std::process::id()),
        pwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        sys: uname_a(),
        hostname: hostname(),
        datacenter: config.proxy_datacenter.clone(),
    };
    Ok(Identity { model, xauth })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_on_this_host() {
        let a = proxy_token("p", "0.0.0.0:19000", "0.0.0.0:11080");
        let b = proxy_token("p", "0.0.0.0:19000", "0.0.0.0:11080");
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert_ne!(a, proxy_token("p", "0.0.0.0:19001", "0.0.0.0:11080"));
    }

    #[test]
    fn identity() {
        let config = ProxyConfig {
            product_name: "demo".into(),
            product_auth: "pw".into(),
            proxy_datacenter: "dc1".into(),
            jodis_name: "zookeeper".into(),
            jodis_addr: "127.0.0.1:1".into(),
            host_admin: "127.0.0.1:11080".into(),
            ..ProxyConfig::default()
        };
        let id = proxy_identity(&config, "127.0.0.1:19000", "0.0.0.0:11080").unwrap();
        let m = &id.model;
        assert_eq!(
            m.token,
            proxy_token("demo", "127.0.0.1:19000", "0.0.0.0:11080")
        );
        assert_eq!(id.xauth, proxy_xauth("demo", "pw", &m.token));
        assert_eq!(m.proxy_addr, "127.0.0.1:19000");
        assert_eq!(m.admin_addr, "127.0.0.1:11080");
        assert_eq!(m.proto_type, "tcp4");
        assert_eq!(m.jodis_path, format!("/jodis/demo/proxy-{}", m.token));
        assert_eq!(m.datacenter, "dc1");
        assert_eq!(m.pid, i64::from(std::process::id()));
        assert!(m.start_time.ends_with(" +0000 UTC"));
        assert_eq!(m.hostname, hostname());
    }
}
