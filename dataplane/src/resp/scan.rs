//! Finds where one complete RESP2/RESP3 value ends, without decoding it.
//!
//! The proxy forwards replies as raw bytes: it only needs to know where each reply ends so it
//! can hand the right bytes to the right client. [`ReplyScanner`] is resumable: a reply that
//! arrives in many reads (a long array, a big bulk) is scanned once, not once per read.

/// Why no reply could be delimited.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not RESP.
    Invalid(String),
}

/// A resumable scanner of RESP values; keep one per connection.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    /// Where scanning resumes inside the current value.
    pos: usize,
    /// Elements still expected at each open aggregate level (innermost last).
    pending: Vec<u64>,
    /// Bytes the buffer must hold to complete the bulk string being read (0: unknown).
    need: usize,
}

impl ReplyScanner {
    /// A scanner with nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Length of the complete value at the start of `buf`. Between an `Incomplete` result and
    /// the next call the caller must only append to `buf`; after a success the caller removes
    /// the returned number of bytes from the front.
    ///
    /// # Errors
    /// [`ScanError::Incomplete`] when the value is not all there, [`ScanError::Invalid`] when the
    /// bytes are not RESP (the stream cannot be trusted any more).
    pub fn scan(&mut self, buf: &[u8]) -> Result<usize, ScanError> {
        self.need = 0;
        loop {
            let pos = self.pos;
            if pos >= buf.len() {
                return Err(ScanError::Incomplete);
            }
            // A line ends at the first CR, which must be followed by LF (as hiredis reads).
            let Some(off) = memchr::memchr(b'\r', &buf[pos..]) else {
                if buf.len() - pos > 64 * 1024 {
                    return Err(self.invalid("line too long"));
                }
                return Err(ScanError::Incomplete);
            };
            let cr = pos + off;
            if cr + 1 >= buf.len() {
                return Err(ScanError::Incomplete);
            }
            if cr == pos || buf[cr + 1] != b'\n' {
                return Err(self.invalid("line not ended by CRLF"));
            }
            let line = &buf[pos + 1..cr];
            let after = cr + 2;
            match buf[pos] {
                b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => self.pos = after,
                b'$' | b'=' | b'!' => {
                    let n = self.length(line)?;
                    if n < 0 {
                        self.pos = after;
                    } else {
                        let end = after + n as usize + 2;
                        if buf.len() < end {
                            self.need = end;
                            return Err(ScanError::Incomplete);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(self.invalid("bulk not ended by CRLF"));
                        }
                        self.pos = end;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = self.length(line)?;
                    self.pos = after;
                    if n > 0 {
                        let n = n as u64;
                        let items = if matches!(buf[pos], b'%' | b'|') {
                            n * 2
                        } else {
                            n
                        };
                        // An attribute (`|`) precedes the value it describes: one more item.
                        let items = if buf[pos] == b'|' { items + 1 } else { items };
                        self.pending.push(items);
                        continue;
                    }
                }
                other => return Err(self.invalid(&format!("unexpected type byte {other:#04x}"))),
            }
            // One item finished: close every aggregate it completes.
            loop {
                match self.pending.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(len);
                    }
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.pending.pop();
                    }
                }
            }
        }
    }

    /// After an `Incomplete` inside a bulk string: the buffer length that completes it (the
    /// reader can make room for a big value at once); 0 otherwise.
    pub fn needed(&self) -> usize {
        self.need
    }

    fn length(&mut self, line: &[u8]) -> Result<i64, ScanError> {
        match crate::util::number::parse_i64(line) {
            Some(n) if n >= -1 => Ok(n),
            _ => Err(self.invalid("bad length")),
        }
    }

    fn invalid(&mut self, why: &str) -> ScanError {
        self.pos = 0;
        self.pending.clear();
        ScanError::Invalid(why.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(bytes: &[u8]) -> usize {
        ReplyScanner::new().scan(bytes).unwrap()
    }

    /// Inside a bulk string the scanner tells how long the buffer must be to complete it,
    /// nested in an array too; otherwise it does not know.
    #[test]
    fn needed_is_the_length_that_completes_the_bulk_being_read() {
        let reply = b"*2\r\n:1\r\n$10\r\n0123456789\r\n";
        let mut s = ReplyScanner::new();
        for cut in 0..reply.len() {
            assert_eq!(s.scan(&reply[..cut]), Err(ScanError::Incomplete));
            let want = if cut >= 13 { reply.len() } else { 0 };
            assert_eq!(s.needed(), want, "cut at {cut}");
        }
        assert_eq!(s.scan(reply), Ok(reply.len()));
        assert_eq!(s.needed(), 0);
    }

    #[test]
    fn simple_values() {
        assert_eq!(scan_all(b"+OK\r\nrest"), 5);
        assert_eq!(scan_all(b"-ERR x\r\n"), 8);
        assert_eq!(scan_all(b":12\r\n"), 5);
        assert_eq!(scan_all(b"$3\r\nabc\r\n"), 9);
        assert_eq!(scan_all(b"$-1\r\n"), 5);
        assert_eq!(scan_all(b"*-1\r\n"), 5);
        assert_eq!(scan_all(b"*0\r\n"), 4);
        assert_eq!(scan_all(b"_\r\n"), 3);
    }

    #[test]
    fn nested_arrays_and_maps() {
        let v = b"*2\r\n*2\r\n:1\r\n$1\r\na\r\n%1\r\n+k\r\n*1\r\n:2\r\nX";
        assert_eq!(scan_all(v), v.len() - 1);
    }

    #[test]
    fn resumes_byte_by_byte() {
        let v = b"*3\r\n$5\r\nhello\r\n*2\r\n:1\r\n:2\r\n$-1\r\n";
        let mut s = ReplyScanner::new();
        for end in 0..v.len() {
            assert_eq!(s.scan(&v[..end]), Err(ScanError::Incomplete), "at {end}");
        }
        assert_eq!(s.scan(v), Ok(v.len()));
        // Ready for the next value.
        assert_eq!(s.scan(b":1\r\n"), Ok(4));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            ReplyScanner::new().scan(b"hello\r\n"),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(
            ReplyScanner::new().scan(b"$3\r\nabcd\r\n"),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(
            ReplyScanner::new().scan(b"*x\r\n"),
            Err(ScanError::Invalid(_))
        ));
    }
}
