//! Codis 3.2's node paths (spec §2) and the product-name rule.
//!
//! ```text
//! /codis3/<product>/topom                 dashboard lock + Topom JSON
//! /codis3/<product>/slots/slot-%04d       SlotMapping
//! /codis3/<product>/group/group-%04d      Group
//! /codis3/<product>/proxy/proxy-<token>   Proxy
//! /codis3/<product>/sentinel              Sentinel
//! /jodis/<product>/proxy-<token>          jodis registration (ephemeral)
//! /zk/codis/db_<product>/proxy/<token>    jodis registration with jodis_compatible = true
//! ```
//!
//! The helpers do not check the product name; call [`validate_product`] where it comes from
//! user input.

use crate::{Error, Result};

/// Root of every Codis 3 product.
pub const CODIS_DIR: &str = "/codis3";

/// Root of the jodis registrations.
pub const JODIS_DIR: &str = "/jodis";

/// Checks a product name against Codis's `^\w[\w\.\-]*$` (`\w` = ASCII letter, digit or `_`).
///
/// # Errors
/// [`Error::InvalidProduct`].
pub fn validate_product(product: &str) -> Result<()> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = product.bytes();
    let valid = bytes.next().is_some_and(word) && bytes.all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidProduct(product.to_owned()))
    }
}

/// `/codis3/<product>`.
pub fn product_dir(product: &str) -> String {
    format!("{CODIS_DIR}/{product}")
}

/// `/codis3/<product>/topom`: the dashboard's lock and description.
pub fn topom_path(product: &str) -> String {
    format!("{CODIS_DIR}/{product}/topom")
}

/// `/codis3/<product>/slots`.
pub fn slots_dir(product: &str) -> String {
    format!("{CODIS_DIR}/{product}/slots")
}

/// `/codis3/<product>/slots/slot-%04d`.
pub fn slot_path(product: &str, slot: u32) -> String {
    format!("{CODIS_DIR}/{product}/slots/slot-{slot:04}")
}

/// `/codis3/<product>/group`.
pub fn group_dir(product: &str) -> String {
    format!("{CODIS_DIR}/{product}/group")
}

/// `/codis3/<product>/group/group-%04d`.
pub fn group_path(product: &str, group: u32) -> String {
    format!("{CODIS_DIR}/{product}/group/group-{group:04}")
}

/// `/codis3/<product>/proxy`.
pub fn proxy_dir(product: &str) -> String {
    format!("{CODIS_DIR}/{product}/proxy")
}

/// `/codis3/<product>/proxy/proxy-<token>`.
pub fn proxy_path(product: &str, token: &str) -> String {
    format!("{CODIS_DIR}/{product}/proxy/proxy-{token}")
}

/// `/codis3/<product>/sentinel`.
pub fn sentinel_path(product: &str) -> String {
    format!("{CODIS_DIR}/{product}/sentinel")
}

/// `/jodis/<product>/proxy-<token>`.
pub fn jodis_path(product: &str, token: &str) -> String {
    format!("{JODIS_DIR}/{product}/proxy-{token}")
}

/// `/zk/codis/db_<product>/proxy/<token>` (Codis 2 clients; no `proxy-` prefix, as in Codis).
pub fn jodis_compat_path(product: &str, token: &str) -> String {
    format!("/zk/codis/db_{product}/proxy/{token}")
}

/// The proxy's jodis path given `jodis_compatible`.
pub fn proxy_jodis_path(product: &str, token: &str, compatible: bool) -> String {
    if compatible {
        jodis_compat_path(product, token)
    } else {
        jodis_path(product, token)
    }
}

/// The last segment of a path, e.g. the product name in an entry of `list("/codis3")`.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names() {
        for ok in ["demo", "_", "a.b-c_d", "9x", "codis-demo.1"] {
            assert!(validate_product(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "-a", "a/b", "a b", "é", "a:b", "a\0"] {
            assert!(validate_product(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layout() {
        assert_eq!(product_dir("demo"), "/codis3/demo");
        assert_eq!(topom_path("demo"), "/codis3/demo/topom");
        assert_eq!(slots_dir("demo"), "/codis3/demo/slots");
        assert_eq!(slot_path("demo", 7), "/codis3/demo/slots/slot-0007");
        assert_eq!(slot_path("demo", 1023), "/codis3/demo/slots/slot-1023");
        assert_eq!(group_dir("demo"), "/codis3/demo/group");
        assert_eq!(group_path("demo", 12), "/codis3/demo/group/group-0012");
        assert_eq!(proxy_dir("demo"), "/codis3/demo/proxy");
        assert_eq!(proxy_path("demo", "ab12"), "/codis3/demo/proxy/proxy-ab12");
        assert_eq!(sentinel_path("demo"), "/codis3/demo/sentinel");
        assert_eq!(jodis_path("demo", "ab12"), "/jodis/demo/proxy-ab12");
        assert_eq!(
            jodis_compat_path("demo", "ab12"),
            "/zk/codis/db_demo/proxy/ab12"
        );
        assert_eq!(
            proxy_jodis_path("demo", "t", true),
            "/zk/codis/db_demo/proxy/t"
        );
        assert_eq!(proxy_jodis_path("demo", "t", false), "/jodis/demo/proxy-t");
        assert_eq!(base_name("/codis3/demo"), "demo");
    }
}
