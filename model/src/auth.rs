//! Codis's token and xauth hashing: pure functions, no I/O, so the web UI (wasm32) can compute
//! the dashboard xauth too. The host facts a token needs (hardware addresses) are gathered by
//! the `codis-host` crate.
//!
//! * token = lowercase hex MD5 of `Codis-Token@[<mac> <mac> ...]` followed by `-{<seg>}` per
//!   segment. The MACs are every non-empty hardware address of the host, sorted, written the
//!   way Go's `HardwareAddr.String()` does and joined like Go's `%v` of a `[]string`.
//! * xauth = hex of the first 16 bytes of SHA-256 over `Codis-XAuth` followed by `-[<seg>]`
//!   per segment. A proxy's segments are product name, product auth and token; a dashboard's
//!   only the product name.

use md5::{Digest as _, Md5};
use sha2::Sha256;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The token of a component, from the given hardware addresses (already in Go's rendering,
/// any order) and segments. See the module doc.
pub fn token_with_macs(macs: &[String], segs: &[&str]) -> String {
    let mut macs: Vec<&str> = macs
        .iter()
        .map(String::as_str)
        .filter(|m| !m.is_empty())
        .collect();
    macs.sort_unstable();
    let mut text = format!("Codis-Token@[{}]", macs.join(" "));
    for seg in segs {
        text.push_str("-{");
        text.push_str(seg);
        text.push('}');
    }
    hex(&Md5::digest(text.as_bytes()))
}

/// The xauth secret of the given segments. See the module doc.
pub fn xauth(segs: &[&str]) -> String {
    let mut text = String::from("Codis-XAuth");
    for seg in segs {
        text.push_str("-[");
        text.push_str(seg);
        text.push(']');
    }
    hex(&Sha256::digest(text.as_bytes())[..16])
}

/// A proxy's xauth: segments product name, product auth, proxy token.
pub fn proxy_xauth(product_name: &str, product_auth: &str, token: &str) -> String {
    xauth(&[product_name, product_auth, token])
}

/// A dashboard's xauth: the product name only (Codis does not include the product auth, so
/// anyone who knows the product name can call the dashboard).
pub fn dashboard_xauth(product_name: &str) -> String {
    xauth(&[product_name])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected digests computed independently with Python's hashlib, e.g.
    // python3 -c 'import hashlib; print(hashlib.md5(b"Codis-Token@[]-{codis-demo}-{0.0.0.0:11080}").hexdigest())'

    #[test]
    fn token_of_known_input() {
        let macs = vec![
            "aa:bb:cc:dd:ee:ff".to_string(),
            "02:42:ac:11:00:02".to_string(),
        ];
        // "Codis-Token@[02:42:ac:11:00:02 aa:bb:cc:dd:ee:ff]-{codis-demo}-{0.0.0.0:19000}-{[::]:11080}"
        assert_eq!(
            token_with_macs(&macs, &["codis-demo", "0.0.0.0:19000", "[::]:11080"]),
            "846a5a8473d4f0ec6eb2072947d33346"
        );
        // No MACs at all renders "[]".
        assert_eq!(
            token_with_macs(&[], &["codis-demo", "0.0.0.0:11080"]),
            "6b759fd842a5c7a16d6e12df1bf98ae5"
        );
        // Empty entries are skipped like Go does.
        assert_eq!(
            token_with_macs(&[String::new()], &["codis-demo", "0.0.0.0:11080"]),
            "6b759fd842a5c7a16d6e12df1bf98ae5"
        );
    }

    #[test]
    fn xauth_of_known_input() {
        // "Codis-XAuth-[codis-demo]-[]-[tok123]"
        assert_eq!(
            proxy_xauth("codis-demo", "", "tok123"),
            "659144e1ed774e5059d7551594e665e1"
        );
        assert_eq!(
            proxy_xauth("codis-demo", "pass", "0123456789abcdef0123456789abcdef"),
            "c8bc9e2f09972c2fedd18bf5b88fe708"
        );
        // "Codis-XAuth-[codis-demo]"
        assert_eq!(
            dashboard_xauth("codis-demo"),
            "95b62887719520f17e312eaa76d28f2b"
        );
        assert_eq!(xauth(&[]), "f7b2b2c3b6d3bf653b5cc104d905c2c3");
    }
}
