//! Host facts of a Codis process, the ones that need the OS: the hardware addresses a token
//! is made of, the host name, `uname -a`, the address a listener advertises and the current
//! time as Go prints it. Used by codis-proxy and codis-dashboard; no tokio. The hashing
//! itself (token, xauth) is [`codis_model::auth`].

pub mod config;
pub mod logging;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use codis_model::auth::token_with_macs;

/// Errors of working out the advertised addresses.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `proto_type` is not a network Codis knows.
    #[error("unknown network {0}")]
    UnknownNetwork(String),
    /// The address could not be used as an advertised address.
    #[error("resolve address '{addr}' failed: {reason}")]
    Resolve {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The pid file could not be written.
    #[error("write pidfile = '{path}' failed: {source}")]
    Pidfile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The token of a component on this host: [`token_with_macs`] with [`hardware_addrs`].
pub fn token(segs: &[&str]) -> String {
    token_with_macs(&hardware_addrs(), segs)
}

/// ARPHRD types of IP tunnels whose link-layer "address" is an IP address; Go skips it when
/// it has the length of that IP address. (`linux/if_arp.h`: TUNNEL, IPGRE, SIT; TUNNEL6,
/// IP6GRE.)
const TUNNEL4_TYPES: [u32; 3] = [768, 778, 776];
const TUNNEL6_TYPES: [u32; 2] = [769, 823];

/// Renders a link-layer address read from sysfs the way Go's `net.Interfaces()` reports it:
/// `None` for what Go leaves empty (no address, all zero bytes, an IP tunnel's IP address),
/// else lowercase two-digit hex bytes joined by `:`.
fn go_hardware_addr(sysfs_address: &str, arp_type: Option<u32>) -> Option<String> {
    let bytes: Vec<u8> = sysfs_address
        .trim()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if bytes.iter().all(|&b| b == 0) {
        return None;
    }
    if let Some(t) = arp_type
        && ((bytes.len() == 4 && TUNNEL4_TYPES.contains(&t))
            || (bytes.len() == 16 && TUNNEL6_TYPES.contains(&t)))
    {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The host's hardware addresses as Go's `net.Interfaces()` would give them (empty ones
/// left out), read from `/sys/class/net/*/address`, in no particular order. Empty when
/// sysfs is unavailable.
pub fn hardware_addrs() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let address = std::fs::read_to_string(path.join("address")).ok()?;
            let arp_type = std::fs::read_to_string(path.join("type"))
                .ok()
                .and_then(|t| t.trim().parse().ok());
            go_hardware_addr(&address, arp_type)
        })
        .collect()
}

/// The host name, as Go's `os.Hostname()` gives it on Linux (`/proc/sys/kernel/hostname`),
/// falling back to `uname -n`.
pub fn hostname() -> String {
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
    }
    command_output("uname", &["-n"]).unwrap_or_default()
}

/// The output of `uname -a` (kernel name, release, version, machine), empty when it cannot
/// be run.
pub fn uname_a() -> String {
    command_output("uname", &["-a"]).unwrap_or_default()
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Go's `net.IP.IsGlobalUnicast`: not unspecified, loopback, multicast, link-local or the
/// IPv4 broadcast address (private ranges count as global).
pub fn is_global_unicast(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// Global-unicast addresses the host name resolves to (Go's `HostIPs`), waiting at most
/// `timeout` for the resolver.
fn host_ips(hostname: &str, timeout: Duration) -> Vec<IpAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = hostname.to_string();
    std::thread::spawn(move || {
        let ips: Vec<IpAddr> = (name.as_str(), 0)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect())
            .unwrap_or_default();
        let _ = tx.send(ips);
    });
    let ips = rx.recv_timeout(timeout).unwrap_or_default();
    ips.into_iter()
        .filter(|ip| is_global_unicast(*ip))
        .collect()
}

/// Global-unicast addresses of the host's interfaces, in interface order (Go's
/// `InterfaceIPs`).
fn interface_ips() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .filter(|ip| is_global_unicast(*ip))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Resolves `host:port` (IP literal or name) to one socket address.
fn resolve(addr: &str) -> Result<SocketAddr, HostError> {
    let fail = |reason: String| HostError::Resolve {
        addr: addr.to_string(),
        reason,
    };
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    // Go accepts ":port" as the unspecified address.
    if let Some(port) = addr.strip_prefix(':') {
        let port = port.parse::<u16>().map_err(|e| fail(e.to_string()))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    addr.to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".to_string()))
}

/// The address to advertise for a listener, Codis's rule:
/// * unix networks: the override if given, else the bound path;
/// * with an override (`--host-admin`/`--host-proxy`): the override as written, provided it
///   resolves to a specified IP and a non-zero port;
/// * bound to a specified IP: the bound address;
/// * bound to an unspecified IP (`0.0.0.0`, `[::]`): `<hostname>:<port>` if the host name
///   resolves to a global-unicast IP, else `<first global-unicast interface IP>:<port>`.
///
/// # Errors
/// [`HostError::UnknownNetwork`] for a network other than tcp/tcp4/tcp6/unix/unixpacket,
/// [`HostError::Resolve`] when no usable address can be found.
pub fn advertised_addr(proto: &str, bound: &str, host_override: &str) -> Result<String, HostError> {
    match proto {
        "unix" | "unixpacket" => Ok(if host_override.is_empty() {
            bound
        } else {
            host_override
        }
        .to_string()),
        "tcp" | "tcp4" | "tcp6" => {
            let (addr, replace) = if host_override.is_empty() {
                (bound, true)
            } else {
                (host_override, false)
            };
            let sa = resolve(addr)?;
            let fail = |reason: &str| HostError::Resolve {
                addr: addr.to_string(),
                reason: reason.to_string(),
            };
            if sa.port() == 0 {
                return Err(fail("port is 0"));
            }
            if !sa.ip().is_unspecified() {
                return Ok(addr.to_string());
            }
            if !replace {
                return Err(fail("unspecified ip"));
            }
            let name = hostname();
            choose_advertised(
                sa.port(),
                &name,
                &host_ips(&name, Duration::from_millis(200)),
                &interface_ips(),
            )
            .ok_or_else(|| fail("no global unicast address found for this host"))
        }
        other => Err(HostError::UnknownNetwork(other.to_string())),
    }
}

/// The replacement of an unspecified bound IP (see [`advertised_addr`]), given the host name,
/// its global-unicast IPs and the interfaces' global-unicast IPs.
fn choose_advertised(
    port: u16,
    hostname: &str,
    host_ips: &[IpAddr],
    interface_ips: &[IpAddr],
) -> Option<String> {
    if !host_ips.is_empty() && !hostname.is_empty() {
        return Some(join_host_port(hostname, port));
    }
    interface_ips
        .first()
        .map(|ip| join_host_port(&ip.to_string(), port))
}

/// The current time in Go's `time.Time.String()` format (UTC).
pub fn now_go_string() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    codis_model::proxy::format_go_time(d.as_secs() as i64, d.subsec_nanos())
}

/// A pid file that is removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid (decimal, no newline, like Codis) to `path`, made absolute.
    ///
    /// # Errors
    /// [`HostError::Pidfile`].
    pub fn create(path: &Path) -> Result<Self, HostError> {
        let err = |source| HostError::Pidfile {
            path: path.display().to_string(),
            source,
        };
        let path = std::path::absolute(path).map_err(err)?;
        std::fs::write(&path, std::process::id().to_string()).map_err(err)?;
        Ok(PidFile { path })
    }

    /// Where the pid file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(error = %e, path = %self.path.display(), "remove pidfile failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_on_this_host() {
        let a = token(&["p", "0.0.0.0:19000", "0.0.0.0:11080"]);
        assert_eq!(
            a,
            token_with_macs(&hardware_addrs(), &["p", "0.0.0.0:19000", "0.0.0.0:11080"])
        );
        assert_eq!(a.len(), 32);
        assert_ne!(a, token(&["p", "0.0.0.0:19001", "0.0.0.0:11080"]));
    }

    #[test]
    fn hardware_addr_rendering() {
        assert_eq!(
            go_hardware_addr("02:FC:00:00:00:01\n", Some(1)).as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(go_hardware_addr("00:00:00:00:00:00\n", Some(772)), None);
        assert_eq!(go_hardware_addr("\n", Some(65534)), None);
        assert_eq!(go_hardware_addr("0a:00:00:01\n", Some(768)), None);
        assert_eq!(
            go_hardware_addr("0a:00:00:01\n", Some(1)).as_deref(),
            Some("0a:00:00:01")
        );
        assert_eq!(go_hardware_addr("garbage", None), None);
    }

    #[test]
    fn hardware_addrs_skip_loopback() {
        for mac in hardware_addrs() {
            assert_ne!(mac, "00:00:00:00:00:00");
            assert!(!mac.is_empty());
        }
    }

    #[test]
    fn global_unicast() {
        let yes = [
            "10.0.0.1",
            "192.168.1.2",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:10.1.2.3",
        ];
        let no = [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "169.254.1.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
        ];
        for ip in yes {
            assert!(is_global_unicast(ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!is_global_unicast(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn choose_advertised_rule() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            choose_advertised(19000, "host1", &[ip("10.0.0.5")], &[ip("10.0.0.6")]).as_deref(),
            Some("host1:19000")
        );
        assert_eq!(
            choose_advertised(19000, "host1", &[], &[ip("10.0.0.6"), ip("10.0.0.7")]).as_deref(),
            Some("10.0.0.6:19000")
        );
        assert_eq!(
            choose_advertised(11080, "h", &[], &[ip("2001:db8::5")]).as_deref(),
            Some("[2001:db8::5]:11080")
        );
        assert_eq!(choose_advertised(1, "h", &[], &[]), None);
    }

    #[test]
    fn advertised_addr_rules() {
        // A specified bound address is advertised as is.
        assert_eq!(
            advertised_addr("tcp4", "127.0.0.1:19000", "").unwrap(),
            "127.0.0.1:19000"
        );
        // The override wins, as written.
        assert_eq!(
            advertised_addr("tcp", "0.0.0.0:11080", "127.0.0.1:21080").unwrap(),
            "127.0.0.1:21080"
        );
        // An override must be usable.
        assert!(advertised_addr("tcp", "0.0.0.0:11080", "0.0.0.0:1").is_err());
        assert!(advertised_addr("tcp", "0.0.0.0:11080", "127.0.0.1:0").is_err());
        // Unix sockets keep their path.
        assert_eq!(
            advertised_addr("unix", "/tmp/p.sock", "").unwrap(),
            "/tmp/p.sock"
        );
        assert!(matches!(
            advertised_addr("udp", "0.0.0.0:1", ""),
            Err(HostError::UnknownNetwork(_))
        ));
        // Unspecified: replaced by something with the same port (host name or interface IP),
        // unless this sandbox has no global-unicast address at all.
        match advertised_addr("tcp4", "0.0.0.0:19000", "") {
            Ok(addr) => {
                assert!(addr.ends_with(":19000"), "{addr}");
                assert!(!addr.starts_with("0.0.0.0"), "{addr}");
            }
            Err(e) => assert!(e.to_string().contains("no global unicast"), "{e}"),
        }
    }
}
