//! Reading values in RDB object encoding: every type and encoding Redis 7.0 loads, except
//! streams and module types.

use std::borrow::Cow;

use super::listpack::Elem;
use super::{Error, Limits, intset, listpack, lzf, types, ziplist};
use crate::store::{HashValue, ListValue, SetValue, SmallBytes, Value, ZSet};
use crate::util::number::{parse_f64, parse_i64};

/// The most elements reserved ahead for a collection read from untrusted bytes.
const MAX_PRESIZE: usize = 1 << 16;

/// A sorted set whose members add up to this many bytes is never a listpack.
const LISTPACK_SAFE_SIZE: usize = 1 << 30;

type Result<T> = std::result::Result<T, Error>;

/// Reads RDB-encoded data from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The longest string LZF data may declare.
    max_string: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            max_string: usize::MAX,
        }
    }

    /// Refuses compressed strings declaring more than `n` bytes (`proto-max-bulk-len`).
    pub fn max_string(mut self, n: usize) -> Self {
        self.max_string = n;
        self
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Eof)?;
        let s = self.data.get(self.pos..end).ok_or(Error::Eof)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// Reads a length or a special-encoding marker: returns (value, is_encoding).
    pub fn read_len_or_enc(&mut self) -> Result<(u64, bool)> {
        let b = self.read_u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.read_u8()? as u64, false),
            2 => match b {
                0x80 => (
                    u32::from_be_bytes(self.take(4)?.try_into().unwrap()) as u64,
                    false,
                ),
                0x81 => (u64::from_be_bytes(self.take(8)?.try_into().unwrap()), false),
                _ => return Err(Error::Corrupt("unknown length encoding")),
            },
            _ => ((b & 0x3f) as u64, true),
        })
    }

    /// Reads a plain length.
    pub fn read_len(&mut self) -> Result<u64> {
        match self.read_len_or_enc()? {
            (n, false) => Ok(n),
            _ => Err(Error::Corrupt("unexpected string encoding")),
        }
    }

    /// Reads a string in any encoding (raw, integer, LZF).
    pub fn read_string(&mut self) -> Result<Cow<'a, [u8]>> {
        let (n, enc) = self.read_len_or_enc()?;
        if !enc {
            return Ok(Cow::Borrowed(
                self.take(usize::try_from(n).map_err(|_| Error::Eof)?)?,
            ));
        }
        let v: i64 = match n as u8 {
            types::ENC_INT8 => self.read_u8()? as i8 as i64,
            types::ENC_INT16 => i16::from_le_bytes(self.take(2)?.try_into().unwrap()) as i64,
            types::ENC_INT32 => i32::from_le_bytes(self.take(4)?.try_into().unwrap()) as i64,
            types::ENC_LZF => {
                let clen = self.read_len()? as usize;
                let len = self.read_len()? as usize;
                let data = self.take(clen)?;
                if len == 0 {
                    return Err(Error::Corrupt("empty LZF string"));
                }
                if len > self.max_string {
                    return Err(Error::Corrupt("string longer than proto-max-bulk-len"));
                }
                let out = lzf::decompress(data, len).ok_or(Error::Corrupt("invalid LZF data"))?;
                return Ok(Cow::Owned(out));
            }
            _ => return Err(Error::Corrupt("unknown string encoding")),
        };
        Ok(Cow::Owned(
            itoa::Buffer::new().format(v).as_bytes().to_vec(),
        ))
    }

    /// Reads a double written as 8 bytes little-endian.
    pub fn read_binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// Reads a double written as text with a length byte (253 nan, 254 +inf, 255 -inf).
    pub fn read_string_double(&mut self) -> Result<f64> {
        let n = self.read_u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.take(n as usize)?;
                parse_f64(s).ok_or(Error::Corrupt("invalid double"))
            }
        }
    }

    /// Reads a value of the given type (the type byte was already read).
    pub fn read_object(&mut self, ty: u8, lim: &Limits) -> Result<Value> {
        let v = match ty {
            types::STRING => Value::Str(SmallBytes::from(self.read_string()?.into_owned())),
            types::LIST => {
                let n = self.read_count()?;
                let mut l = ListValue::with_capacity(self.cap(n));
                for _ in 0..n {
                    l.push_back(self.read_member()?);
                }
                Value::List(crate::store::CowArc::new(l))
            }
            types::LIST_ZIPLIST => {
                let blob = self.read_string()?;
                let items = ziplist::decode(&blob).ok_or(Error::Corrupt("invalid ziplist"))?;
                Value::List(crate::store::CowArc::new(
                    items.iter().map(elem_bytes).collect(),
                ))
            }
            types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
                let nodes = self.read_count()?;
                let mut l = ListValue::new();
                for _ in 0..nodes {
                    let container = if ty == types::LIST_QUICKLIST_2 {
                        self.read_len()?
                    } else {
                        2
                    };
                    let blob = self.read_string()?;
                    match container {
                        1 => l.push_back(SmallBytes::from(&blob[..])),
                        2 => {
                            let items = if ty == types::LIST_QUICKLIST {
                                ziplist::decode(&blob).ok_or(Error::Corrupt("invalid ziplist"))?
                            } else {
                                listpack::decode(&blob).ok_or(Error::Corrupt("invalid listpack"))?
                            };
                            l.extend(items.iter().map(elem_bytes));
                        }
                        _ => return Err(Error::Corrupt("unknown quicklist container")),
                    }
                }
                Value::List(crate::store::CowArc::new(l))
            }
            types::SET => {
                let n = self.read_count()?;
                let mut s = SetValue::default();
                s.reserve(self.cap(n));
                let mut ints = n <= lim.set_max_intset_entries as u64;
                for _ in 0..n {
                    let m = self.read_member()?;
                    ints = ints && parse_i64(&m).is_some();
                    if !s.insert(m) {
                        return Err(Error::Corrupt("duplicate set member"));
                    }
                }
                if ints {
                    // An intset keeps its members sorted.
                    s.sort_by_cached_key(|m| parse_i64(m).unwrap_or(0));
                }
                s.hashtable = !ints;
                Value::Set(crate::store::CowArc::new(s))
            }
            types::SET_INTSET => {
                let blob = self.read_string()?;
                let ints = intset::decode(&blob).ok_or(Error::Corrupt("invalid intset"))?;
                let mut s = SetValue::default();
                for i in &ints {
                    s.insert(SmallBytes::new(itoa::Buffer::new().format(*i).as_bytes()));
                }
                s.hashtable = ints.len() > lim.set_max_intset_entries;
                Value::Set(crate::store::CowArc::new(s))
            }
            types::ZSET | types::ZSET_2 => {
                let n = self.read_count()?;
                let mut z = ZSet::default();
                z.dict.reserve(self.cap(n));
                let (mut maxlen, mut total) = (0usize, 0usize);
                for _ in 0..n {
                    let m = self.read_string()?;
                    let score = if ty == types::ZSET_2 {
                        self.read_binary_double()?
                    } else {
                        self.read_string_double()?
                    };
                    if score.is_nan() {
                        return Err(Error::Corrupt("NaN score"));
                    }
                    maxlen = maxlen.max(m.len());
                    total += m.len();
                    if !z.insert(&m, score) {
                        return Err(Error::Corrupt("duplicate sorted set member"));
                    }
                }
                z.skiplist = !(z.len() <= lim.zset_max_listpack_entries
                    && maxlen <= lim.zset_max_listpack_value
                    && total < LISTPACK_SAFE_SIZE);
                Value::ZSet(crate::store::CowArc::new(z))
            }
            types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
                let blob = self.read_string()?;
                let items = if ty == types::ZSET_ZIPLIST {
                    ziplist::decode(&blob).ok_or(Error::Corrupt("invalid ziplist"))?
                } else {
                    listpack::decode(&blob).ok_or(Error::Corrupt("invalid listpack"))?
                };
                if items.len() % 2 != 0 {
                    return Err(Error::Corrupt("odd sorted set listpack"));
                }
                let mut z = ZSet::default();
                for pair in items.chunks_exact(2) {
                    let score = match pair[1] {
                        Elem::Int(i) => i as f64,
                        Elem::Str(s) => parse_f64(s).ok_or(Error::Corrupt("invalid score"))?,
                    };
                    if !z.insert(&pair[0].to_vec(), score) {
                        return Err(Error::Corrupt("duplicate sorted set member"));
                    }
                }
                z.skiplist = z.len() > lim.zset_max_listpack_entries;
                Value::ZSet(crate::store::CowArc::new(z))
            }
            types::HASH => {
                let n = self.read_count()?;
                let mut h = HashValue::default();
                h.reserve(self.cap(n));
                let mut big = n > lim.hash_max_listpack_entries as u64;
                for _ in 0..n {
                    let f = self.read_member()?;
                    let v = self.read_member()?;
                    big = big
                        || f.len() > lim.hash_max_listpack_value
                        || v.len() > lim.hash_max_listpack_value;
                    if h.insert(f, v).is_some() {
                        return Err(Error::Corrupt("duplicate hash field"));
                    }
                }
                h.hashtable = big;
                Value::Hash(crate::store::CowArc::new(h))
            }
            types::HASH_ZIPMAP => {
                let blob = self.read_string()?;
                let pairs =
                    ziplist::decode_zipmap(&blob).ok_or(Error::Corrupt("invalid zipmap"))?;
                let pairs: Vec<(SmallBytes, SmallBytes)> = pairs
                    .into_iter()
                    .map(|(f, v)| (SmallBytes::new(f), SmallBytes::new(v)))
                    .collect();
                hash_from_pairs(pairs, lim, true)?
            }
            types::HASH_ZIPLIST | types::HASH_LISTPACK => {
                let blob = self.read_string()?;
                let items = if ty == types::HASH_ZIPLIST {
                    ziplist::decode(&blob).ok_or(Error::Corrupt("invalid ziplist"))?
                } else {
                    listpack::decode(&blob).ok_or(Error::Corrupt("invalid listpack"))?
                };
                if items.len() % 2 != 0 {
                    return Err(Error::Corrupt("odd hash listpack"));
                }
                let pairs = items
                    .chunks_exact(2)
                    .map(|p| (elem_bytes(&p[0]), elem_bytes(&p[1])))
                    .collect();
                // Redis 7.0 converts old ziplists that exceed the limits, but keeps a listpack
                // as it is.
                hash_from_pairs(pairs, lim, ty == types::HASH_ZIPLIST)?
            }
            other => return Err(Error::UnsupportedType(other)),
        };
        if v.is_empty() {
            return Err(Error::Corrupt("empty key"));
        }
        Ok(v)
    }

    /// Reads an element count (a collection must not be empty).
    fn read_count(&mut self) -> Result<u64> {
        match self.read_len()? {
            0 => Err(Error::Corrupt("empty key")),
            n => Ok(n),
        }
    }

    fn read_member(&mut self) -> Result<SmallBytes> {
        Ok(match self.read_string()? {
            Cow::Borrowed(b) => SmallBytes::new(b),
            Cow::Owned(v) => SmallBytes::from_vec(v),
        })
    }

    /// A capacity to reserve for `n` elements: no more than the input could hold (each
    /// element takes at least one byte), and no more than [`MAX_PRESIZE`] (a reserved element
    /// costs tens of bytes, so a 16 MB payload declaring 2^40 fields would otherwise reserve
    /// about a gigabyte before its first field fails to parse); a bigger collection grows.
    fn cap(&self, n: u64) -> usize {
        (n as usize)
            .min(self.data.len() - self.pos)
            .min(MAX_PRESIZE)
    }
}

fn elem_bytes(e: &Elem<'_>) -> SmallBytes {
    match e {
        Elem::Str(s) => SmallBytes::new(s),
        Elem::Int(_) => SmallBytes::from_vec(e.to_vec()),
    }
}

fn hash_from_pairs(
    pairs: Vec<(SmallBytes, SmallBytes)>,
    lim: &Limits,
    convert: bool,
) -> Result<Value> {
    let mut h = HashValue::default();
    let mut maxlen = 0;
    for (f, v) in pairs {
        maxlen = maxlen.max(f.len()).max(v.len());
        if h.insert(f, v).is_some() {
            return Err(Error::Corrupt("duplicate hash field"));
        }
    }
    h.hashtable = convert
        && (h.len() > lim.hash_max_listpack_entries || maxlen > lim.hash_max_listpack_value);
    Ok(Value::Hash(crate::store::CowArc::new(h)))
}
