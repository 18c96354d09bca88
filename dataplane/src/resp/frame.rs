//! A reader of any complete RESP2/RESP3 value, used where we are the client: tests comparing
//! replies, and (later) the proxy and the migration client.

/// One RESP value. Aggregates hold their children; `raw` spans are not kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`
    Simple(Vec<u8>),
    /// `-text`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$n` bulk string, `=n` verbatim string (with its `txt:` prefix), or `(n` big number.
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`.
    Null,
    /// `*n`, `~n` (set) or `>n` (push); the first byte is kept to tell them apart.
    Array(u8, Vec<Frame>),
    /// `%n`: a map, stored flat (key, value, key, value ...).
    Map(Vec<Frame>),
    /// `,d`: a double, as text.
    Double(Vec<u8>),
    /// `#t` / `#f`
    Boolean(bool),
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes are needed.
    Incomplete,
    /// Not valid RESP.
    Invalid(String),
}

fn line(buf: &[u8], pos: usize) -> Result<(&[u8], usize), FrameError> {
    match memchr::memchr(b'\r', &buf[pos..]) {
        Some(off) if pos + off + 1 < buf.len() => Ok((&buf[pos..pos + off], pos + off + 2)),
        _ => Err(FrameError::Incomplete),
    }
}

fn int_of(s: &[u8]) -> Result<i64, FrameError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| FrameError::Invalid(format!("bad length {:?}", String::from_utf8_lossy(s))))
}

impl Frame {
    /// Reads the value at `buf[pos..]`; returns it and the position after it.
    ///
    /// # Errors
    /// [`FrameError::Incomplete`] if the value is not all there yet.
    pub fn parse(buf: &[u8], pos: usize) -> Result<(Frame, usize), FrameError> {
        if pos >= buf.len() {
            return Err(FrameError::Incomplete);
        }
        let kind = buf[pos];
        let (text, next) = line(buf, pos + 1)?;
        match kind {
            b'+' => Ok((Frame::Simple(text.to_vec()), next)),
            b'-' => Ok((Frame::Error(text.to_vec()), next)),
            b':' => Ok((Frame::Integer(int_of(text)?), next)),
            b',' => Ok((Frame::Double(text.to_vec()), next)),
            b'_' => Ok((Frame::Null, next)),
            b'#' => Ok((Frame::Boolean(text == b"t"), next)),
            b'$' | b'=' | b'(' | b'!' => {
                if kind == b'(' {
                    return Ok((Frame::Bulk(text.to_vec()), next));
                }
                let n = int_of(text)?;
                if n < 0 {
                    return Ok((Frame::Null, next));
                }
                let end = next + n as usize;
                if buf.len() < end + 2 {
                    return Err(FrameError::Incomplete);
                }
                let data = buf[next..end].to_vec();
                if kind == b'!' {
                    return Ok((Frame::Error(data), end + 2));
                }
                Ok((Frame::Bulk(data), end + 2))
            }
            b'*' | b'~' | b'>' | b'%' => {
                let n = int_of(text)?;
                if n < 0 {
                    return Ok((Frame::Null, next));
                }
                let count = if kind == b'%' {
                    2 * n as usize
                } else {
                    n as usize
                };
                let mut items = Vec::with_capacity(count.min(1024));
                let mut p = next;
                for _ in 0..count {
                    let (f, np) = Frame::parse(buf, p)?;
                    items.push(f);
                    p = np;
                }
                if kind == b'%' {
                    Ok((Frame::Map(items), p))
                } else {
                    Ok((Frame::Array(kind, items), p))
                }
            }
            other => Err(FrameError::Invalid(format!(
                "unknown type byte {:?}",
                other as char
            ))),
        }
    }

    /// Encodes the value back into RESP bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Frame::Double(d) => {
                out.push(b',');
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Bulk(d) => {
                out.extend_from_slice(format!("${}\r\n", d.len()).as_bytes());
                out.extend_from_slice(d);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Null => out.extend_from_slice(b"$-1\r\n"),
            Frame::Array(kind, items) => {
                out.push(*kind);
                out.extend_from_slice(format!("{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
            Frame::Map(items) => {
                out.extend_from_slice(format!("%{}\r\n", items.len() / 2).as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_incomplete() {
        let b = b"*3\r\n:1\r\n$2\r\nab\r\n%1\r\n+k\r\n,1.5\r\n";
        let (f, n) = Frame::parse(b, 0).unwrap();
        assert_eq!(n, b.len());
        let mut enc = Vec::new();
        f.encode(&mut enc);
        assert_eq!(&enc[..], &b[..]);
        for cut in 0..b.len() {
            assert_eq!(Frame::parse(&b[..cut], 0), Err(FrameError::Incomplete));
        }
    }
}
