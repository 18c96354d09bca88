//! Writing values in RDB object encoding, choosing the encodings Redis 7.0 itself would use.

use super::{Limits, intset, listpack, lzf, types};
use crate::store::{HashValue, ListValue, SetValue, Value, ZSet};
use crate::util::number::{fmt_double, parse_i64};

/// Elements at least this long get a quicklist node of their own (Redis's `packed_threshold`).
const PACKED_THRESHOLD: usize = 1 << 30;
/// Node size limits for negative `list-max-listpack-size` values -1..-5.
const NODE_SIZE_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Largest node a positive (count) fill may grow to.
const NODE_SIZE_SAFETY_LIMIT: usize = 8192;
/// Growth Redis assumes for an element's header and backlen when filling a node.
const ENTRY_OVERHEAD_ESTIMATE: usize = 8;
/// Quicklist node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Appends RDB-encoded data to a buffer.
#[derive(Debug)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
    /// LZF-compress strings longer than 20 bytes when it saves space (`rdbcompression yes`).
    pub compress: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty writer with compression on (Redis's default).
    pub fn new() -> Self {
        Writer {
            buf: Vec::new(),
            compress: true,
        }
    }

    /// Writes a length: 6 bits, 14 bits, or a marker byte and 32 / 64 bits big-endian.
    pub fn write_len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0x81);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Writes a string as Redis does: short canonical integers that fit 32 bits as integer
    /// encodings, long compressible strings LZF-compressed, anything else raw.
    pub fn write_string(&mut self, s: &[u8]) {
        if s.len() <= 11
            && let Some(v) = parse_i64(s)
            && self.write_int_encoded(v)
        {
            return;
        }
        if self.compress
            && s.len() > 20
            && let Some(c) = lzf::compress(s, s.len() - 4)
        {
            self.buf.push(0xc0 | types::ENC_LZF);
            self.write_len(c.len() as u64);
            self.write_len(s.len() as u64);
            self.buf.extend_from_slice(&c);
            return;
        }
        self.write_len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    /// Writes an integer as an 8/16/32-bit string encoding; false when it does not fit.
    fn write_int_encoded(&mut self, v: i64) -> bool {
        if let Ok(b) = i8::try_from(v) {
            self.buf.push(0xc0 | types::ENC_INT8);
            self.buf.push(b as u8);
        } else if let Ok(h) = i16::try_from(v) {
            self.buf.push(0xc0 | types::ENC_INT16);
            self.buf.extend_from_slice(&h.to_le_bytes());
        } else if let Ok(w) = i32::try_from(v) {
            self.buf.push(0xc0 | types::ENC_INT32);
            self.buf.extend_from_slice(&w.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    /// Writes a double as 8 bytes little-endian.
    pub fn write_binary_double(&mut self, d: f64) {
        self.buf.extend_from_slice(&d.to_le_bytes());
    }

    /// Writes a value's type byte and its encoding.
    pub fn write_object(&mut self, v: &Value, lim: &Limits) {
        match v {
            Value::Str(s) => {
                self.buf.push(types::STRING);
                self.write_string(s);
            }
            Value::List(l) => self.write_list(l, lim),
            Value::Set(s) => self.write_set(s, lim),
            Value::Hash(h) => self.write_hash(h, lim),
            Value::ZSet(z) => self.write_zset(z, lim),
        }
    }

    /// A list as a quicklist of listpack nodes, split where Redis would split a list built by
    /// pushing its elements at the tail.
    fn write_list(&mut self, l: &ListValue, lim: &Limits) {
        enum Node<'a> {
            Packed(listpack::Writer),
            Plain(&'a [u8]),
        }
        let fill = lim.list_max_listpack_size;
        let mut nodes: Vec<Node<'_>> = Vec::new();
        for e in l.iter() {
            if e.len() >= PACKED_THRESHOLD {
                nodes.push(Node::Plain(e));
                continue;
            }
            match nodes.last_mut() {
                Some(Node::Packed(w)) if node_allows_insert(w, fill, e.len()) => w.push(e),
                _ => {
                    let mut w = listpack::Writer::new();
                    w.push(e);
                    nodes.push(Node::Packed(w));
                }
            }
        }
        self.buf.push(types::LIST_QUICKLIST_2);
        self.write_len(nodes.len() as u64);
        for n in nodes {
            match n {
                Node::Plain(e) => {
                    self.write_len(CONTAINER_PLAIN);
                    self.write_string(e);
                }
                Node::Packed(w) => {
                    self.write_len(CONTAINER_PACKED);
                    self.write_string(&w.finish());
                }
            }
        }
    }

    /// A set as an intset when small and all integers, else as a plain set.
    fn write_set(&mut self, s: &SetValue, lim: &Limits) {
        if !s.hashtable && s.len() <= lim.set_max_intset_entries {
            let ints: Option<Vec<i64>> = s.iter().map(|m| parse_i64(m)).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                self.buf.push(types::SET_INTSET);
                self.write_string(&intset::encode(&ints));
                return;
            }
        }
        self.buf.push(types::SET);
        self.write_len(s.len() as u64);
        for m in s.iter() {
            self.write_string(m);
        }
    }

    /// A hash as a listpack when small, else as field/value pairs.
    fn write_hash(&mut self, h: &HashValue, lim: &Limits) {
        let small = !h.hashtable
            && h.len() <= lim.hash_max_listpack_entries
            && h.iter().all(|(k, v)| {
                k.len() <= lim.hash_max_listpack_value && v.len() <= lim.hash_max_listpack_value
            });
        if small {
            let mut w = listpack::Writer::new();
            for (k, v) in h.iter() {
                w.push(k);
                w.push(v);
            }
            self.buf.push(types::HASH_LISTPACK);
            self.write_string(&w.finish());
        } else {
            self.buf.push(types::HASH);
            self.write_len(h.len() as u64);
            for (k, v) in h.iter() {
                self.write_string(k);
                self.write_string(v);
            }
        }
    }

    /// A sorted set as a listpack of (member, score) when small, else as members with binary
    /// scores from the highest to the lowest (Redis walks its skiplist backwards).
    fn write_zset(&mut self, z: &ZSet, lim: &Limits) {
        let small = !z.skiplist
            && z.len() <= lim.zset_max_listpack_entries
            && z.dict
                .keys()
                .all(|m| m.len() <= lim.zset_max_listpack_value);
        if small {
            let mut w = listpack::Writer::new();
            for (member, score) in z.iter() {
                w.push(member);
                w.push(&score_string(score));
            }
            self.buf.push(types::ZSET_LISTPACK);
            self.write_string(&w.finish());
        } else {
            self.buf.push(types::ZSET_2);
            self.write_len(z.len() as u64);
            let ordered: Vec<(&[u8], f64)> = z.iter().collect();
            for (member, score) in ordered.into_iter().rev() {
                self.write_string(member);
                self.write_binary_double(score);
            }
        }
    }
}

/// Whether Redis 7.0 would append an element of `sz` bytes to a quicklist node.
fn node_allows_insert(node: &listpack::Writer, fill: i64, sz: usize) -> bool {
    // Redis over-estimates the entry's growth (header and backlen) as 8 bytes.
    let new_sz = node.bytes() + sz + ENTRY_OVERHEAD_ESTIMATE;
    if fill < 0 {
        let level = ((-fill - 1) as usize).min(NODE_SIZE_LEVELS.len() - 1);
        new_sz <= NODE_SIZE_LEVELS[level]
    } else {
        let max_count = fill.max(1) as usize;
        new_sz <= NODE_SIZE_SAFETY_LIMIT && node.count() < max_count
    }
}

/// A score as Redis stores it in a listpack: integral values in a safe range as integers,
/// others with 17 significant digits.
pub fn score_string(d: f64) -> Vec<u8> {
    if d.is_finite()
        && d != 0.0
        && d > -4_503_599_627_370_495.0
        && d < 4_503_599_627_370_496.0
        && d == (d as i64) as f64
    {
        return itoa::Buffer::new().format(d as i64).as_bytes().to_vec();
    }
    fmt_double(d).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let mut w = Writer::new();
        w.write_len(63);
        w.write_len(64);
        w.write_len(16383);
        w.write_len(16384);
        w.write_len(1 << 32);
        assert_eq!(
            w.buf,
            vec![
                63, 0x40, 64, 0x7f, 0xff, 0x80, 0, 0, 0x40, 0, 0x81, 0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn strings() {
        let enc = |s: &[u8]| {
            let mut w = Writer::new();
            w.write_string(s);
            w.buf
        };
        assert_eq!(enc(b"12"), vec![0xc0, 12]);
        assert_eq!(enc(b"-129"), vec![0xc1, 0x7f, 0xff]);
        assert_eq!(enc(b"100000"), vec![0xc2, 0xa0, 0x86, 1, 0]);
        assert_eq!(enc(b"012"), vec![3, b'0', b'1', b'2']);
        assert_eq!(enc(b"4294967296"), b"\x0a4294967296".to_vec());
        let long = enc(&[b'a'; 100]);
        assert_eq!(long[0], 0xc3);
    }

    #[test]
    fn scores() {
        assert_eq!(score_string(1.0), b"1");
        assert_eq!(score_string(-0.0), b"-0");
        assert_eq!(score_string(0.0), b"0");
        assert_eq!(score_string(0.1), b"0.10000000000000001");
        assert_eq!(score_string(f64::INFINITY), b"inf");
        assert_eq!(score_string(1e20), b"1e+20");
    }
}
