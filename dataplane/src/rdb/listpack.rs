//! Listpacks: the compact sequence encoding Redis 7 uses for small hashes, sorted sets and list
//! nodes. Layout: total bytes (u32 LE), element count (u16 LE, 65535 = unknown), entries, 0xFF.
//! Each entry is an encoding byte (with the integer or the string length), the data, and the
//! entry's own length written backwards ("backlen") so the list can be walked from the end.

use crate::util::number::parse_i64;

/// An element read from a listpack (or ziplist): integers are kept as such.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elem<'a> {
    /// A string element.
    Str(&'a [u8]),
    /// An integer element.
    Int(i64),
}

impl Elem<'_> {
    /// The element as Redis returns it to clients (integers in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).as_bytes().to_vec(),
        }
    }

    /// Length of the element as a string.
    pub fn str_len(&self) -> usize {
        match self {
            Elem::Str(s) => s.len(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).len(),
        }
    }
}

/// Size of an empty listpack (header and terminator).
pub const EMPTY_SIZE: usize = 7;

/// Builds a listpack by appending elements.
#[derive(Debug, Clone)]
pub struct Writer {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty listpack.
    pub fn new() -> Self {
        Writer {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Number of elements appended.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Size in bytes the finished listpack would have.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends an element; strings that are canonical integers are stored as integers, as
    /// Redis does.
    pub fn push(&mut self, s: &[u8]) {
        match parse_i64(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    /// Appends an integer element with the smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            self.buf.push(0xc0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xf1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            self.buf.push(0xf2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            self.buf.push(0xf3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    /// Appends a string element as a string (no integer detection).
    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let n = s.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.push(0xe0 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.end_entry(start);
    }

    fn end_entry(&mut self, start: usize) {
        let l = self.buf.len() - start;
        let mut tmp = [0u8; 5];
        let n = encode_backlen(l, &mut tmp);
        self.buf.extend_from_slice(&tmp[..n]);
        self.count += 1;
    }

    /// The finished listpack bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Writes the backwards-readable length of an entry; returns the number of bytes used.
fn encode_backlen(l: usize, out: &mut [u8; 5]) -> usize {
    let n = if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    };
    // Most significant group first; every byte but the first has the high bit set.
    for (i, slot) in out.iter_mut().take(n).enumerate() {
        let shift = 7 * (n - 1 - i);
        let group = ((l >> shift) & 127) as u8;
        *slot = if i == 0 { group } else { group | 128 };
    }
    n
}

/// Decodes and validates a listpack; None when malformed.
pub fn decode(lp: &[u8]) -> Option<Vec<Elem<'_>>> {
    if lp.len() < EMPTY_SIZE {
        return None;
    }
    let total = u32::from_le_bytes(lp[..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(lp[4..6].try_into().ok()?) as usize;
    if total != lp.len() || lp[total - 1] != 0xff {
        return None;
    }
    let mut out = Vec::with_capacity(count.min(lp.len()));
    let mut p = 6;
    while p < total - 1 {
        let start = p;
        let b = lp[p];
        let elem = if b & 0x80 == 0 {
            p += 1;
            Elem::Int(b as i64)
        } else if b & 0xc0 == 0x80 {
            let n = (b & 0x3f) as usize;
            p += 1;
            let s = lp.get(p..p + n)?;
            p += n;
            Elem::Str(s)
        } else if b & 0xe0 == 0xc0 {
            let u = (((b & 0x1f) as i64) << 8) | *lp.get(p + 1)? as i64;
            p += 2;
            Elem::Int(if u >= 1 << 12 { u - (1 << 13) } else { u })
        } else if b & 0xf0 == 0xe0 {
            let n = (((b & 0x0f) as usize) << 8) | *lp.get(p + 1)? as usize;
            p += 2;
            let s = lp.get(p..p + n)?;
            p += n;
            Elem::Str(s)
        } else {
            match b {
                0xf0 => {
                    let n = u32::from_le_bytes(lp.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                    p += 5;
                    let s = lp.get(p..p.checked_add(n)?)?;
                    p += n;
                    Elem::Str(s)
                }
                0xf1 => {
                    let v = i16::from_le_bytes(lp.get(p + 1..p + 3)?.try_into().ok()?);
                    p += 3;
                    Elem::Int(v as i64)
                }
                0xf2 => {
                    let s = lp.get(p + 1..p + 4)?;
                    // Sign-extend 24 bits.
                    let v = i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8;
                    p += 4;
                    Elem::Int(v as i64)
                }
                0xf3 => {
                    let v = i32::from_le_bytes(lp.get(p + 1..p + 5)?.try_into().ok()?);
                    p += 5;
                    Elem::Int(v as i64)
                }
                0xf4 => {
                    let v = i64::from_le_bytes(lp.get(p + 1..p + 9)?.try_into().ok()?);
                    p += 9;
                    Elem::Int(v)
                }
                _ => return None,
            }
        };
        let mut tmp = [0u8; 5];
        let n = encode_backlen(p - start, &mut tmp);
        if lp.get(p..p + n)? != &tmp[..n] {
            return None;
        }
        p += n;
        out.push(elem);
    }
    if p != total - 1 || (count != 65535 && count != out.len()) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_encodings() {
        let long = vec![b'z'; 5000];
        let mid = vec![b'y'; 300];
        let items: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-1".to_vec(),
            b"-4096".to_vec(),
            b"4095".to_vec(),
            b"-32768".to_vec(),
            b"32767".to_vec(),
            b"8388607".to_vec(),
            b"-8388608".to_vec(),
            b"2147483647".to_vec(),
            b"-2147483648".to_vec(),
            b"9223372036854775807".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"007".to_vec(),
            b"a\x00b\r\n".to_vec(),
            mid.clone(),
            long.clone(),
        ];
        let mut w = Writer::new();
        for i in &items {
            w.push(i);
        }
        let lp = w.finish();
        let got: Vec<Vec<u8>> = decode(&lp).unwrap().iter().map(|e| e.to_vec()).collect();
        assert_eq!(got, items);
    }

    #[test]
    fn exact_bytes() {
        let mut w = Writer::new();
        w.push(b"a");
        w.push(b"1");
        w.push(b"-1");
        let lp = w.finish();
        assert_eq!(
            lp,
            vec![15, 0, 0, 0, 3, 0, 0x81, b'a', 2, 1, 1, 0xdf, 0xff, 2, 0xff]
        );
    }

    #[test]
    fn backlen_encoding() {
        let mut b = [0u8; 5];
        assert_eq!(encode_backlen(127, &mut b), 1);
        assert_eq!(b[0], 127);
        assert_eq!(encode_backlen(128, &mut b), 2);
        assert_eq!(&b[..2], &[1, 128]);
        assert_eq!(encode_backlen(5005, &mut b), 2);
        assert_eq!(&b[..2], &[(5005 >> 7) as u8, (5005 & 127) as u8 | 128]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(b"").is_none());
        assert!(decode(&[7, 0, 0, 0, 0, 0, 0xfe]).is_none());
        assert!(decode(&[8, 0, 0, 0, 1, 0, 0x85, 0xff]).is_none());
        assert_eq!(decode(&[7, 0, 0, 0, 0, 0, 0xff]).unwrap().len(), 0);
    }
}
