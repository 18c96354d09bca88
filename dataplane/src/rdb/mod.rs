//! Redis's serialization format: DUMP/RESTORE payloads and RDB files ([`file`]).
//!
//! [`Writer`] encodes values the way Redis 7.0 does (same encodings, same LZF compression), so
//! a DUMP of ours matches Redis's byte for byte for values Redis would encode the same way.
//! [`Reader`] loads every type and encoding Redis 7.0 loads except streams and modules.
//!
//! A DUMP payload is: type byte, encoded value, RDB version (u16 LE), CRC-64 (u64 LE) of
//! everything before it.

pub mod crc64;
pub mod file;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod read;
pub mod write;
pub mod ziplist;

pub use read::Reader;
pub use write::Writer;

use crate::config::Config;
use crate::store::Value;

/// The RDB version Redis 7.0 writes; payloads of later versions are refused.
pub const RDB_VERSION: u16 = 10;

/// Object type bytes and string encodings.
pub mod types {
    /// String.
    pub const STRING: u8 = 0;
    /// List as a sequence of strings.
    pub const LIST: u8 = 1;
    /// Set as a sequence of strings.
    pub const SET: u8 = 2;
    /// Sorted set with scores as text.
    pub const ZSET: u8 = 3;
    /// Hash as field/value strings.
    pub const HASH: u8 = 4;
    /// Sorted set with binary scores.
    pub const ZSET_2: u8 = 5;
    /// Module value (not supported).
    pub const MODULE: u8 = 6;
    /// Module value, version 2 (not supported).
    pub const MODULE_2: u8 = 7;
    /// Hash as a zipmap.
    pub const HASH_ZIPMAP: u8 = 9;
    /// List as a ziplist.
    pub const LIST_ZIPLIST: u8 = 10;
    /// Set as an intset.
    pub const SET_INTSET: u8 = 11;
    /// Sorted set as a ziplist.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Hash as a ziplist.
    pub const HASH_ZIPLIST: u8 = 13;
    /// List as a quicklist of ziplists.
    pub const LIST_QUICKLIST: u8 = 14;
    /// Stream (not supported).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Hash as a listpack.
    pub const HASH_LISTPACK: u8 = 16;
    /// Sorted set as a listpack.
    pub const ZSET_LISTPACK: u8 = 17;
    /// List as a quicklist of listpack (or plain) nodes.
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Stream, version 2 (not supported).
    pub const STREAM_LISTPACKS_2: u8 = 19;

    /// String encoding: 8-bit integer.
    pub const ENC_INT8: u8 = 0;
    /// String encoding: 16-bit integer.
    pub const ENC_INT16: u8 = 1;
    /// String encoding: 32-bit integer.
    pub const ENC_INT32: u8 = 2;
    /// String encoding: LZF-compressed.
    pub const ENC_LZF: u8 = 3;
}

/// Why data could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The data ended early.
    #[error("unexpected end of data")]
    Eof,
    /// Malformed data.
    #[error("corrupt data: {0}")]
    Corrupt(&'static str),
    /// A type we do not load (streams, modules, unknown).
    #[error("unsupported object type {0}")]
    UnsupportedType(u8),
}

/// The encoding thresholds (from the config) that decide between compact and large
/// encodings when writing, and the flags set on loaded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_max_listpack_value: usize,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size`.
    pub list_max_listpack_size: i64,
    /// `proto-max-bulk-len`: the longest string a load may decompress (no command can make a
    /// longer one).
    pub max_string_len: usize,
}

impl Limits {
    /// The thresholds of a config.
    pub fn from_config(c: &Config) -> Self {
        Limits {
            hash_max_listpack_entries: c.hash_max_listpack_entries,
            hash_max_listpack_value: c.hash_max_listpack_value,
            set_max_intset_entries: c.set_max_intset_entries,
            zset_max_listpack_entries: c.zset_max_listpack_entries,
            zset_max_listpack_value: c.zset_max_listpack_value,
            list_max_listpack_size: c.list_max_listpack_size,
            max_string_len: usize::try_from(c.proto_max_bulk_len).unwrap_or(usize::MAX),
        }
    }
}

impl Default for Limits {
    /// Redis's defaults.
    fn default() -> Self {
        Limits {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            max_string_len: 512 << 20,
        }
    }
}

/// Serializes a value as a DUMP payload.
pub fn dump_payload(v: &Value, lim: &Limits) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_object(v, lim);
    let mut buf = w.buf;
    buf.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Checks a DUMP payload's footer: an RDB version we can read and a matching CRC-64.
pub fn verify_payload(p: &[u8]) -> bool {
    if p.len() < 10 {
        return false;
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return false;
    }
    let crc = u64::from_le_bytes(footer[2..10].try_into().expect("8 bytes"));
    crc64::crc64(0, &p[..p.len() - 8]) == crc
}

/// Loads the value of a DUMP payload (whose footer [`verify_payload`] accepted).
pub fn restore_payload(p: &[u8], lim: &Limits) -> Result<Value, Error> {
    let mut r = Reader::new(p).max_string(lim.max_string_len);
    let ty = r.read_u8()?;
    r.read_object(ty, lim)
}

#[cfg(test)]
mod tests;
