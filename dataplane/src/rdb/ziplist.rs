//! Decoders for the encodings older RDB versions used, which Redis 7 still loads: ziplists
//! (small lists, hashes, sorted sets and quicklist nodes before Redis 7) and zipmaps (small
//! hashes before Redis 2.6).

use super::listpack::Elem;

/// Decodes and validates a ziplist: header (total bytes u32 LE, tail offset u32 LE, count u16
/// LE), entries (previous entry length, encoding, data), 0xFF.
pub fn decode(zl: &[u8]) -> Option<Vec<Elem<'_>>> {
    if zl.len() < 11 {
        return None;
    }
    let total = u32::from_le_bytes(zl[..4].try_into().ok()?) as usize;
    let tail = u32::from_le_bytes(zl[4..8].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(zl[8..10].try_into().ok()?) as usize;
    if total != zl.len() || zl[total - 1] != 0xff || tail >= total {
        return None;
    }
    let mut out = Vec::with_capacity(count.min(zl.len()));
    let mut p = 10;
    let mut prev_len = 0usize;
    while zl[p] != 0xff {
        let start = p;
        // Length of the previous entry: 1 byte, or 0xFE and 4 bytes.
        let prev = if zl[p] < 254 {
            p += 1;
            zl[p - 1] as usize
        } else if zl[p] == 254 {
            let v = u32::from_le_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?) as usize;
            p += 5;
            v
        } else {
            return None;
        };
        if prev != prev_len {
            return None;
        }
        let b = *zl.get(p)?;
        let elem = match b >> 6 {
            0 => {
                let n = (b & 0x3f) as usize;
                p += 1;
                let s = zl.get(p..p + n)?;
                p += n;
                Elem::Str(s)
            }
            1 => {
                let n = (((b & 0x3f) as usize) << 8) | *zl.get(p + 1)? as usize;
                p += 2;
                let s = zl.get(p..p + n)?;
                p += n;
                Elem::Str(s)
            }
            2 => {
                let n = u32::from_be_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                p += 5;
                let s = zl.get(p..p.checked_add(n)?)?;
                p += n;
                Elem::Str(s)
            }
            _ => {
                let (v, size) = match b {
                    0xc0 => (
                        i16::from_le_bytes(zl.get(p + 1..p + 3)?.try_into().ok()?) as i64,
                        2,
                    ),
                    0xd0 => (
                        i32::from_le_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?) as i64,
                        4,
                    ),
                    0xe0 => (
                        i64::from_le_bytes(zl.get(p + 1..p + 9)?.try_into().ok()?),
                        8,
                    ),
                    0xf0 => {
                        let s = zl.get(p + 1..p + 4)?;
                        ((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64, 3)
                    }
                    0xfe => (zl.get(p + 1).map(|&x| x as i8 as i64)?, 1),
                    0xf1..=0xfd => ((b & 0x0f) as i64 - 1, 0),
                    _ => return None,
                };
                p += 1 + size;
                Elem::Int(v)
            }
        };
        if p >= total {
            return None;
        }
        prev_len = p - start;
        out.push(elem);
    }
    if p != total - 1 || (count != 65535 && count != out.len()) {
        return None;
    }
    Some(out)
}

/// Decodes a zipmap into (field, value) pairs: a count byte, then for each pair the field
/// length and bytes, the value length, a "free" byte count, the value bytes and the free
/// bytes; 0xFF ends it. Lengths are one byte, or 254 followed by a u32.
pub fn decode_zipmap(zm: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    fn len_at(zm: &[u8], p: &mut usize) -> Option<Option<usize>> {
        let b = *zm.get(*p)?;
        match b {
            255 => Some(None),
            254 => {
                let v = u32::from_le_bytes(zm.get(*p + 1..*p + 5)?.try_into().ok()?) as usize;
                *p += 5;
                Some(Some(v))
            }
            _ => {
                *p += 1;
                Some(Some(b as usize))
            }
        }
    }
    let mut p = 1;
    let mut out = Vec::new();
    while let Some(klen) = len_at(zm, &mut p)? {
        let key = zm.get(p..p.checked_add(klen)?)?;
        p += klen;
        let vlen = len_at(zm, &mut p)??;
        let free = *zm.get(p)? as usize;
        p += 1;
        let val = zm.get(p..p.checked_add(vlen)?)?;
        p += vlen + free;
        out.push((key, val));
    }
    if p != zm.len() - 1 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ziplist (test helper: the server never writes ziplists).
    pub(crate) fn build(items: &[Elem<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for it in items {
            let start = body.len();
            tail = 10 + start;
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(254);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match it {
                Elem::Str(s) if s.len() < 64 => body.push(s.len() as u8),
                Elem::Str(s) if s.len() < 16384 => {
                    body.push(0x40 | (s.len() >> 8) as u8);
                    body.push(s.len() as u8);
                }
                Elem::Str(s) => {
                    body.push(0x80);
                    body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                }
                Elem::Int(v) if (0..=12).contains(v) => body.push(0xf1 + *v as u8),
                Elem::Int(v) if i8::try_from(*v).is_ok() => {
                    body.push(0xfe);
                    body.push(*v as i8 as u8);
                }
                Elem::Int(v) if i16::try_from(*v).is_ok() => {
                    body.push(0xc0);
                    body.extend_from_slice(&(*v as i16).to_le_bytes());
                }
                Elem::Int(v) if (-8_388_608..=8_388_607).contains(v) => {
                    body.push(0xf0);
                    body.extend_from_slice(&(*v as i32).to_le_bytes()[..3]);
                }
                Elem::Int(v) if i32::try_from(*v).is_ok() => {
                    body.push(0xd0);
                    body.extend_from_slice(&(*v as i32).to_le_bytes());
                }
                Elem::Int(v) => {
                    body.push(0xe0);
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
            if let Elem::Str(s) = it {
                body.extend_from_slice(s);
            }
            prev = body.len() - start;
        }
        let mut zl = Vec::new();
        zl.extend_from_slice(&((body.len() + 11) as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xff);
        zl
    }

    /// Builds a zipmap (test helper).
    pub(crate) fn build_zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut zm = vec![pairs.len().min(254) as u8];
        let len = |zm: &mut Vec<u8>, n: usize| {
            if n < 254 {
                zm.push(n as u8);
            } else {
                zm.push(254);
                zm.extend_from_slice(&(n as u32).to_le_bytes());
            }
        };
        for (k, v) in pairs {
            len(&mut zm, k.len());
            zm.extend_from_slice(k);
            len(&mut zm, v.len());
            zm.push(2); // two free bytes, skipped by readers
            zm.extend_from_slice(v);
            zm.extend_from_slice(b"..");
        }
        zm.push(255);
        zm
    }

    #[test]
    fn ziplist_roundtrip() {
        let big = vec![b'q'; 20000];
        let mid = vec![b'm'; 300];
        let items = vec![
            Elem::Str(b""),
            Elem::Str(b"a\x00\r\n"),
            Elem::Int(0),
            Elem::Int(12),
            Elem::Int(13),
            Elem::Int(-128),
            Elem::Int(1000),
            Elem::Int(-8_000_000),
            Elem::Int(2_000_000_000),
            Elem::Int(i64::MIN),
            Elem::Str(&mid),
            Elem::Str(&big),
            Elem::Int(5),
        ];
        let zl = build(&items);
        assert_eq!(decode(&zl).unwrap(), items);
        let mut bad = zl.clone();
        bad[10] = 3; // wrong prevlen of the first entry
        assert!(decode(&bad).is_none());
        assert!(decode(&zl[..zl.len() - 1]).is_none());
    }

    #[test]
    fn zipmap_roundtrip() {
        let long = vec![b'l'; 400];
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"f", b"v"), (b"", b"x\x00"), (&long, b"1")];
        let zm = build_zipmap(&pairs);
        assert_eq!(decode_zipmap(&zm).unwrap(), pairs);
        assert!(decode_zipmap(&zm[..zm.len() - 1]).is_none());
    }
}
