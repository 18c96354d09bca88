//! Loading a Codis config file (`proxy.toml`, `dashboard.toml`): the one error type, TOML over
//! the defaults (`#[serde(default)]` structs), and the keys the file has that the config does
//! not know (reported, then ignored, as Codis does).

use std::path::Path;

use serde::de::DeserializeOwned;

/// Errors of loading or checking a config. Messages name the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("can't read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML could not be parsed or a value has the wrong type or syntax.
    #[error("can't parse config file {path}: {source}")]
    Parse {
        /// The file (`<text>` when parsing a string).
        path: String,
        /// toml's error, which shows the line and the key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range (Codis's message: `invalid <key>`).
    #[error("invalid {key}{}", if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    Invalid {
        /// The key.
        key: &'static str,
        /// More detail, may be empty.
        reason: String,
    },
    /// `product_name` does not match `^\w[\w\.\-]*$`.
    #[error("bad product name = {0}")]
    BadProductName(String),
}

/// Parses TOML text (`path` names it in errors) into a config.
///
/// # Errors
/// [`ConfigError::Parse`].
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_string(),
        source,
    })
}

/// Reads a config file; returns the config and the file's text.
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`].
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<(T, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = parse_toml(&text, &path.display().to_string())?;
    Ok((config, text))
}

/// Top-level keys of `text` that are not in `known`. Empty when the text is not valid TOML.
pub fn unknown_keys(text: &str, known: &[String]) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    table
        .keys()
        .filter(|k| !known.contains(k))
        .cloned()
        .collect()
}
