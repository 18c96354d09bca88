//! RDB files as Redis 7.0 writes and reads them (RDB version 10).
//!
//! Layout: `REDIS0010`, AUX fields, then per non-empty database `SELECTDB` and `RESIZEDB`,
//! its keys (an optional `EXPIRETIME_MS`, then type byte, key, value — the value exactly as
//! in a DUMP payload), `EOF`, and the CRC-64 of everything before it (zero when
//! `rdbchecksum no`). Values reuse [`Writer::write_object`] and [`Reader::read_object`]: there
//! is one encoder.
//!
//! The writer is split in two so a background save can serialise key records under the store
//! lock (into a `Vec<u8>`) and do the file I/O outside it: [`write_slot`] appends the records
//! of one slot table, [`FileWriter`] frames them and keeps the checksum.

use std::io::Write;

use super::{Error, Limits, Reader, Writer, crc64};
use crate::store::{SlotTable, SmallBytes, Value};

/// RDB opcodes (the byte that precedes a key's type byte or replaces it).
pub mod opcode {
    /// A function library (Redis 7.0 GA).
    pub const FUNCTION2: u8 = 245;
    /// A function library (Redis 7.0 release candidates).
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time of the next key (seconds).
    pub const IDLE: u8 = 248;
    /// LFU frequency of the next key.
    pub const FREQ: u8 = 249;
    /// An auxiliary field: two strings.
    pub const AUX: u8 = 250;
    /// Hash table sizes of the current database.
    pub const RESIZEDB: u8 = 251;
    /// Expiry of the next key, unix milliseconds (u64 LE).
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expiry of the next key, unix seconds (u32 LE; old files).
    pub const EXPIRETIME: u8 = 253;
    /// Database selector.
    pub const SELECTDB: u8 = 254;
    /// End of file.
    pub const EOF: u8 = 255;
}

/// The magic string that opens every RDB file.
pub const MAGIC: &[u8] = b"REDIS";

/// Why an RDB file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file does not start with `REDIS` and a 4-digit version.
    #[error("wrong signature trying to load DB from file")]
    Signature,
    /// A version newer than we read.
    #[error("can't handle RDB format version {0}")]
    Version(u32),
    /// Malformed or truncated content.
    #[error("short read or corrupt data at offset {offset}: {source}")]
    Data {
        /// Byte offset where reading failed.
        offset: usize,
        /// The decoding error.
        #[source]
        source: Error,
    },
    /// The CRC-64 at the end does not match the content.
    #[error("wrong RDB checksum (expected {expected:016x}, got {actual:016x})")]
    Checksum {
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum of the content.
        actual: u64,
    },
    /// Something this server cannot load (modules, functions, streams).
    #[error("unsupported RDB content at offset {offset}: {what}")]
    Unsupported {
        /// Byte offset of the item.
        offset: usize,
        /// What it is.
        what: String,
    },
    /// A SELECTDB beyond `databases`.
    #[error(
        "FATAL: data file was created with a Redis server configured to handle more than {0} databases"
    )]
    TooManyDbs(usize),
}

/// Appends one key record: optional `EXPIRETIME_MS`, type byte, key, value.
pub fn write_key(w: &mut Writer, key: &[u8], value: &Value, expire_ms: Option<u64>, lim: &Limits) {
    if let Some(at) = expire_ms {
        w.buf.push(opcode::EXPIRETIME_MS);
        w.buf.extend_from_slice(&at.to_le_bytes());
    }
    // The record is [type][key][value] but the type is only known once the value's encoding
    // is chosen: write [key][type][value], then rotate the type byte to the front (a move of
    // the key's bytes only).
    let start = w.buf.len();
    w.write_string(key);
    let key_end = w.buf.len();
    w.write_object(value, lim);
    w.buf[start..=key_end].rotate_right(1);
}

/// Appends the records of every key of a slot table; returns how many keys were written.
pub fn write_slot(w: &mut Writer, t: &SlotTable, lim: &Limits) -> usize {
    for (k, e) in t.keys.iter() {
        let exp = if t.expires.is_empty() {
            None
        } else {
            t.expires.get(k.as_ref()).copied()
        };
        write_key(w, k, &e.value, exp, lim);
    }
    t.keys.len()
}

/// The AUX fields Redis 7.0 writes at the start of a file (no replication info).
pub fn aux_fields(used_mem: u64, ctime_secs: u64) -> Vec<(&'static str, String)> {
    vec![
        ("redis-ver", crate::server::REDIS_VERSION.to_string()),
        ("redis-bits", (usize::BITS).to_string()),
        ("ctime", ctime_secs.to_string()),
        ("used-mem", used_mem.to_string()),
        ("aof-base", "0".to_string()),
    ]
}

/// Writes an RDB file to `out`, keeping the running CRC-64.
#[derive(Debug)]
pub struct FileWriter<W: Write> {
    out: W,
    crc: u64,
    checksum: bool,
}

impl<W: Write> FileWriter<W> {
    /// A writer over `out`; `checksum` false writes a zero checksum (`rdbchecksum no`).
    pub fn new(out: W, checksum: bool) -> Self {
        FileWriter {
            out,
            crc: 0,
            checksum,
        }
    }

    /// Writes the magic, the version and the AUX fields.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn header(&mut self, aux: &[(&str, String)]) -> std::io::Result<()> {
        let mut w = Writer::new();
        w.buf.extend_from_slice(MAGIC);
        w.buf
            .extend_from_slice(format!("{:04}", super::RDB_VERSION).as_bytes());
        for (k, v) in aux {
            w.buf.push(opcode::AUX);
            w.write_string(k.as_bytes());
            w.write_string(v.as_bytes());
        }
        self.raw(&w.buf)
    }

    /// Writes one `FUNCTION2` record per library (its code), as Redis 7 does right after the
    /// AUX fields.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn functions(&mut self, codes: &[Vec<u8>]) -> std::io::Result<()> {
        let mut w = Writer::new();
        for code in codes {
            w.buf.push(opcode::FUNCTION2);
            w.write_string(code);
        }
        self.raw(&w.buf)
    }

    /// Writes bytes as they are (key records from [`write_slot`]).
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        if self.checksum {
            self.crc = crc64::crc64(self.crc, b);
        }
        self.out.write_all(b)
    }

    /// Opens a database: `SELECTDB id`, `RESIZEDB keys expires`.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn select_db(&mut self, id: usize, keys: usize, expires: usize) -> std::io::Result<()> {
        let mut w = Writer::new();
        w.buf.push(opcode::SELECTDB);
        w.write_len(id as u64);
        w.buf.push(opcode::RESIZEDB);
        w.write_len(keys as u64);
        w.write_len(expires as u64);
        self.raw(&w.buf)
    }

    /// Writes `EOF` and the checksum; returns the output.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.raw(&[opcode::EOF])?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        Ok(self.out)
    }
}

/// What loading a file found besides the keys.
#[derive(Debug, Default, Clone)]
pub struct LoadInfo {
    /// Keys handed to the callback.
    pub keys_loaded: u64,
    /// Keys skipped because their TTL had passed.
    pub keys_expired: u64,
    /// AUX fields, in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of `data` the RDB image took (an AOF with an RDB preamble continues there).
    pub consumed: usize,
    /// The code of every function library (`FUNCTION2` records), in file order.
    pub functions: Vec<Vec<u8>>,
}

/// One key read from a file.
#[derive(Debug)]
pub struct LoadedKey {
    /// Database index.
    pub db: usize,
    /// The key.
    pub key: SmallBytes,
    /// The value.
    pub value: Value,
    /// Absolute expiry, unix ms.
    pub expire_ms: Option<u64>,
}

/// Reads a whole RDB file held in memory, calling `f` for each key that has not expired at
/// `now_ms`. The checksum is verified first (a stored zero means "not computed", as Redis
/// treats it), so nothing is handed to `f` from a file whose checksum is wrong.
///
/// # Errors
/// See [`FileError`]; `databases` bounds SELECTDB.
pub fn load(
    data: &[u8],
    lim: &Limits,
    databases: usize,
    now_ms: u64,
    mut f: impl FnMut(LoadedKey),
) -> Result<LoadInfo, FileError> {
    if data.len() < 9 || &data[..5] != MAGIC {
        return Err(FileError::Signature);
    }
    let version: u32 = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(FileError::Signature)?;
    if version < 1 || version > super::RDB_VERSION as u32 {
        return Err(FileError::Version(version));
    }
    // Find the end first and check the checksum, so a damaged file loads nothing.
    let mut r = Reader::new(&data[9..]).max_string(lim.max_string_len);
    let data_err = |r: &Reader<'_>, e: Error| FileError::Data {
        offset: 9 + r.position(),
        source: e,
    };
    let mut info = LoadInfo::default();
    let mut keys: Vec<LoadedKey> = Vec::new();
    let mut db = 0usize;
    let mut expire: Option<u64> = None;
    loop {
        let at = 9 + r.position();
        let op = r.read_u8().map_err(|e| data_err(&r, e))?;
        match op {
            opcode::EOF => break,
            opcode::SELECTDB => {
                let id = r.read_len().map_err(|e| data_err(&r, e))? as usize;
                if id >= databases {
                    return Err(FileError::TooManyDbs(databases));
                }
                db = id;
            }
            opcode::RESIZEDB => {
                r.read_len().map_err(|e| data_err(&r, e))?;
                r.read_len().map_err(|e| data_err(&r, e))?;
            }
            opcode::EXPIRETIME_MS => {
                let b = read_n::<8>(&mut r).map_err(|e| data_err(&r, e))?;
                expire = Some(u64::from_le_bytes(b));
            }
            opcode::EXPIRETIME => {
                let b = read_n::<4>(&mut r).map_err(|e| data_err(&r, e))?;
                expire = Some(u32::from_le_bytes(b) as u64 * 1000);
            }
            opcode::IDLE => {
                r.read_len().map_err(|e| data_err(&r, e))?;
            }
            opcode::FREQ => {
                r.read_u8().map_err(|e| data_err(&r, e))?;
            }
            opcode::AUX => {
                let k = r.read_string().map_err(|e| data_err(&r, e))?.into_owned();
                let v = r.read_string().map_err(|e| data_err(&r, e))?.into_owned();
                info.aux.push((k, v));
            }
            opcode::MODULE_AUX => {
                return Err(FileError::Unsupported {
                    offset: at,
                    what: "module auxiliary data (modules are not supported)".into(),
                });
            }
            opcode::FUNCTION2 => {
                let code = r.read_string().map_err(|e| data_err(&r, e))?.into_owned();
                info.functions.push(code);
            }
            opcode::FUNCTION_PRE_GA => {
                return Err(FileError::Unsupported {
                    offset: at,
                    what: "a function library in the format of Redis 7.0's release \
                           candidates (save it again with Redis 7.0 GA or later)"
                        .into(),
                });
            }
            ty => {
                let key = r.read_string().map_err(|e| data_err(&r, e))?;
                let key = SmallBytes::new(&key);
                let value = r.read_object(ty, lim).map_err(|e| match e {
                    Error::UnsupportedType(t) => FileError::Unsupported {
                        offset: at,
                        what: format!(
                            "key {:?} has object type {t} ({})",
                            String::from_utf8_lossy(&key),
                            type_name(t)
                        ),
                    },
                    e => data_err(&r, e),
                })?;
                let expire_ms = expire.take();
                if expire_ms.is_some_and(|at| at <= now_ms) {
                    info.keys_expired += 1;
                    continue;
                }
                keys.push(LoadedKey {
                    db,
                    key,
                    value,
                    expire_ms,
                });
            }
        }
    }
    let end = 9 + r.position();
    info.consumed = if version >= 5 { end + 8 } else { end };
    if version >= 5 {
        let stored = data
            .get(end..end + 8)
            .ok_or(FileError::Data {
                offset: end,
                source: Error::Eof,
            })?
            .try_into()
            .map(u64::from_le_bytes)
            .expect("8 bytes");
        if stored != 0 {
            let actual = crc64::crc64(0, &data[..end]);
            if actual != stored {
                return Err(FileError::Checksum {
                    expected: stored,
                    actual,
                });
            }
        }
    }
    info.keys_loaded = keys.len() as u64;
    for k in keys {
        f(k);
    }
    Ok(info)
}

fn read_n<const N: usize>(r: &mut Reader<'_>) -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    for x in &mut b {
        *x = r.read_u8()?;
    }
    Ok(b)
}

fn type_name(t: u8) -> &'static str {
    match t {
        super::types::MODULE | super::types::MODULE_2 => "module",
        super::types::STREAM_LISTPACKS | super::types::STREAM_LISTPACKS_2 | 21 => "stream",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, SmallBytes};

    fn file_of(db: &Db, checksum: bool) -> Vec<u8> {
        let lim = Limits::default();
        let mut f = FileWriter::new(Vec::new(), checksum);
        f.header(&aux_fields(1, 2)).unwrap();
        f.select_db(db.id, db.len(), db.expires_len()).unwrap();
        let mut w = Writer::new();
        for s in 0..codis_model::MAX_SLOT_NUM {
            write_slot(&mut w, db.slot(s), &lim);
        }
        f.raw(&w.buf).unwrap();
        f.finish().unwrap()
    }

    fn sample() -> Db {
        let mut db = Db::new(3);
        db.set(b"a", Value::Str(SmallBytes::new(b"1")));
        db.set(b"long", Value::Str(SmallBytes::new(&[b'x'; 200])));
        db.set(b"ttl", Value::Str(SmallBytes::new(b"v")));
        db.set_expire(b"ttl", u64::MAX / 2);
        db.set(b"gone", Value::Str(SmallBytes::new(b"v")));
        db.set_expire(b"gone", 1);
        db
    }

    #[test]
    fn function_records_round_trip() {
        let mut f = FileWriter::new(Vec::new(), true);
        f.header(&aux_fields(1, 2)).unwrap();
        let codes = vec![b"#!lua name=a\n".to_vec(), vec![b'x'; 300]];
        f.functions(&codes).unwrap();
        let data = f.finish().unwrap();
        let info = load(&data, &Limits::default(), 16, 1000, |_| {}).unwrap();
        assert_eq!(info.functions, codes);
        assert_eq!(info.keys_loaded, 0);
    }

    #[test]
    fn round_trip() {
        for checksum in [true, false] {
            let data = file_of(&sample(), checksum);
            assert!(data.starts_with(b"REDIS0010\xfa\x09redis-ver"));
            let mut got = Vec::new();
            let info = load(&data, &Limits::default(), 16, 1000, |k| got.push(k)).unwrap();
            assert_eq!(info.keys_loaded, 3);
            assert_eq!(info.keys_expired, 1);
            assert!(got.iter().all(|k| k.db == 3));
            let ttl = got.iter().find(|k| &k.key[..] == b"ttl").unwrap();
            assert_eq!(ttl.expire_ms, Some(u64::MAX / 2));
            assert_eq!(info.aux[0].0, b"redis-ver");
        }
    }

    #[test]
    fn damage_is_reported() {
        let data = file_of(&sample(), true);
        // Truncated anywhere: an error, never a panic.
        for n in 0..data.len() {
            assert!(load(&data[..n], &Limits::default(), 16, 0, |_| {}).is_err());
        }
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        assert!(load(&bad, &Limits::default(), 16, 0, |_| {}).is_err());
        assert!(matches!(
            load(b"REDIS0011\xff", &Limits::default(), 16, 0, |_| {}),
            Err(FileError::Version(11))
        ));
        assert!(matches!(
            load(&data, &Limits::default(), 2, 0, |_| {}),
            Err(FileError::TooManyDbs(2))
        ));
    }
}
