//! LZF compression, the format Redis uses for compressed strings in RDB data.
//!
//! The compressor follows the classic liblzf "very fast" parameters Redis builds with
//! (16-bit hash table, two hash updates after each back reference), so that our DUMP of a
//! compressible value comes out byte for byte as Redis's. Any LZF stream is accepted by the
//! decompressor.
//!
//! Format: a control byte `c`; `c < 32` is a literal run of `c + 1` bytes that follow; otherwise
//! `c >> 5` is the match length minus 2 (7: one more length byte follows, added) and
//! `(c & 31) << 8 | next byte` is the distance minus 1 back into the output.

use std::cell::RefCell;

/// log2 of the hash table size.
const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
/// Longest literal run.
const MAX_LIT: usize = 1 << 5;
/// Farthest back reference + 1.
const MAX_OFF: usize = 1 << 13;
/// Longest back reference.
const MAX_REF: usize = (1 << 8) + (1 << 3);

thread_local! {
    /// Hash table reused across calls: each slot holds `generation << 32 | position`, so a new
    /// call starts with an (logically) empty table without clearing 64K slots.
    static TABLE: RefCell<(u32, Vec<u64>)> = RefCell::new((0, vec![0; HSIZE]));
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input`; returns None when the result would not fit in `out_len` bytes (Redis
/// asks for at least 4 bytes of gain: `out_len = input.len() - 4`).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let (generation, table) = &mut *t;
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            table.iter_mut().for_each(|s| *s = 0);
            *generation = 1;
        }
        compress_with(input, out_len, *generation, table)
    })
}

fn compress_with(
    input: &[u8],
    out_len: usize,
    generation: u32,
    htab: &mut [u64],
) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || out_len == 0 {
        return None;
    }
    let tag = (generation as u64) << 32;
    // A slot of another generation reads as position 0, which never matches (as a zeroed table).
    let get = |htab: &[u64], i: usize| -> usize {
        let v = htab[i];
        if v >> 32 == generation as u64 {
            (v & 0xffff_ffff) as usize
        } else {
            0
        }
    };
    // Slack so the few unchecked writes (as in the C original) never index out of bounds.
    let mut out = vec![0u8; out_len + 8];
    let mut ip = 0usize;
    let mut op = 1usize; // room for the first literal run's control byte
    let mut lit = 0usize;
    let frst = |p: usize| ((input[p] as u32) << 8) | input.get(p + 1).copied().unwrap_or(0) as u32;
    let mut hval = frst(0);
    while ip + 2 < in_len {
        hval = (hval << 8) | input[ip + 2] as u32;
        let slot = idx(hval);
        let r = get(htab, slot);
        htab[slot] = tag | ip as u64;
        if r < ip
            && ip - r - 1 < MAX_OFF
            && r > 0
            && input[r + 2] == input[ip + 2]
            && input[r] == input[ip]
            && input[r + 1] == input[ip + 1]
        {
            let off = ip - r - 1;
            let maxlen = (in_len - ip - 2).min(MAX_REF);
            if op + 3 + 1 >= out_len && op - usize::from(lit == 0) + 3 + 1 >= out_len {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // close the literal run
            op -= usize::from(lit == 0); // drop it if empty
            let mut len = 2usize;
            let mut done = false;
            if maxlen > 16 {
                // The first 16 bytes are compared without the length cap, as the unrolled loop
                // of the reference implementation does (it may run up to 2 bytes past maxlen).
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // the match length minus 2, as encoded
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start a new literal run
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            ip -= 2;
            hval = frst(ip);
            hval = (hval << 8) | input[ip + 2] as u32;
            htab[idx(hval)] = tag | ip as u64;
            ip += 1;
            hval = (hval << 8) | input[ip + 2] as u32;
            htab[idx(hval)] = tag | ip as u64;
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// The most output one input byte can produce: a 3-byte back reference copies 264 bytes.
pub const MAX_EXPANSION: usize = MAX_REF / 3;

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
///
/// `out_len` comes from untrusted data: a length `input` cannot expand to is refused before
/// anything is allocated, so the buffer never exceeds [`MAX_EXPANSION`] times the input; an
/// allocation the system refuses is a failure too, not an abort.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return None;
    }
    let mut out = Vec::new();
    out.try_reserve_exact(out_len).ok()?;
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if ip + n > input.len() || out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + n]);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip)? as usize;
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(ip)? as usize + 1;
            ip += 1;
            len += 2;
            if back > out.len() || out.len() + len > out_len {
                return None;
            }
            // Byte by byte: the source may overlap what is being written (runs).
            let start = out.len() - back;
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    if out.len() == out_len {
        Some(out)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        if let Some(c) = compress(data, data.len() + 64) {
            assert_eq!(decompress(&c, data.len()).as_deref(), Some(data));
        }
    }

    #[test]
    fn roundtrips() {
        roundtrip(b"a");
        roundtrip(b"ab");
        roundtrip(b"abc");
        roundtrip(&[b'x'; 1000]);
        roundtrip(b"hello hello hello hello hello world world world");
        let mut v = Vec::new();
        for i in 0..5000u32 {
            v.extend_from_slice(&(i.wrapping_mul(2654435761) % 97).to_le_bytes());
        }
        roundtrip(&v);
        let pseudo: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect();
        roundtrip(&pseudo);
    }

    #[test]
    fn known_encoding() {
        // 'a' literal, then a run referencing it.
        let c = compress(&[b'a'; 30], 26).unwrap();
        assert_eq!(decompress(&c, 30).unwrap(), vec![b'a'; 30]);
        assert!(c.len() < 10);
    }

    #[test]
    fn incompressible_refused() {
        let data: Vec<u8> = (0u8..=255).collect();
        assert!(compress(&data, data.len() - 4).is_none());
    }

    #[test]
    fn corrupt_input_rejected() {
        assert!(decompress(&[0x20, 0x00], 5).is_none()); // reference before start
        assert!(decompress(&[0x05, b'a'], 6).is_none()); // truncated literal
        assert!(decompress(&[0x00, b'a'], 2).is_none()); // wrong length
        assert_eq!(decompress(&[0x00, b'a', 0x20, 0x00], 4).unwrap(), b"aaaa");
    }
}
