//! Parsing of client requests: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`GET k\r\n`), with Redis's limits and error texts.
//!
//! Arguments of a multibulk request are not copied: the parser records `(start, end)` spans
//! into the caller's buffer. The parser is resumable: when a request is incomplete it keeps the
//! spans it has found, so a huge request arriving in many reads is scanned once, not once per
//! read. A declared length is only checked against the limits; nothing is allocated from it.

/// Longest header or inline line accepted before the newline arrives (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;

/// Limits applied while parsing, as in Redis's config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest bulk string a client may send.
    pub max_bulk_len: usize,
    /// False while `requirepass` is set and the client has not authenticated: Redis then
    /// refuses multibulk lengths above 10 and bulk lengths above 16 KiB.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// A complete request found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A multibulk request; its arguments are [`RequestParser::spans`] into the buffer.
    Multibulk {
        /// Bytes of the buffer this request used.
        consumed: usize,
    },
    /// An inline request, whose arguments had to be unquoted into owned buffers.
    Inline {
        /// Bytes of the buffer this request used.
        consumed: usize,
        /// The arguments.
        args: Vec<Vec<u8>>,
    },
    /// An empty request (`*0`, `*-1` or a blank line): nothing to run.
    Empty {
        /// Bytes of the buffer this request used.
        consumed: usize,
    },
}

/// Why no request could be taken from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed.
    Incomplete,
    /// The client broke the protocol; the text follows `ERR Protocol error: ` and the
    /// connection must be closed after replying.
    Protocol(String),
}

/// A resumable request parser; keep one per connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    spans: Vec<(usize, usize)>,
    /// Number of bulk strings the multibulk header announced (0 when not inside one).
    expected: usize,
    /// Where parsing resumes inside the current request.
    pos: usize,
    /// Bytes the buffer must hold to complete the bulk string being read (0: unknown).
    need: usize,
}

fn protocol<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Protocol(msg.into()))
}

/// Parses a decimal integer as Redis's `string2ll` does (no spaces, no `+`, no leading zeros).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    crate::util::number::parse_i64(s)
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// The argument spans of the last [`Request::Multibulk`] returned.
    pub fn spans(&self) -> &[(usize, usize)] {
        &self.spans
    }

    /// True when part of a multibulk request has been parsed and more bytes are awaited.
    pub fn in_progress(&self) -> bool {
        self.expected > 0
    }

    /// After an `Incomplete` inside a bulk string: the buffer length that completes it (the
    /// caller can make room for a big argument at once, as Redis does); 0 otherwise.
    pub fn needed(&self) -> usize {
        self.need
    }

    /// Parses the request at the start of `buf`. Between an `Incomplete` result and the next
    /// call, the caller must only append to the buffer.
    ///
    /// # Errors
    /// [`ParseError::Incomplete`] when more bytes are needed, [`ParseError::Protocol`] when the
    /// bytes are not a valid request.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Request, ParseError> {
        self.need = 0;
        if self.expected == 0 {
            self.spans.clear();
            self.pos = 0;
            if buf.is_empty() {
                return Err(ParseError::Incomplete);
            }
            if buf[0] != b'*' {
                return parse_inline(buf);
            }
            let Some(cr) = memchr::memchr(b'\r', buf) else {
                if buf.len() > INLINE_MAX_SIZE {
                    return protocol("too big mbulk count string");
                }
                return Err(ParseError::Incomplete);
            };
            if cr + 1 >= buf.len() {
                return Err(ParseError::Incomplete);
            }
            let count = match parse_i64(&buf[1..cr]) {
                Some(n) if n <= i32::MAX as i64 => n,
                _ => return protocol("invalid multibulk length"),
            };
            if count > 10 && !limits.authenticated {
                return protocol("unauthenticated multibulk length");
            }
            if count <= 0 {
                return Ok(Request::Empty { consumed: cr + 2 });
            }
            self.expected = count as usize;
            self.pos = cr + 2;
        }
        while self.spans.len() < self.expected {
            let p = self.pos;
            if p >= buf.len() {
                return Err(ParseError::Incomplete);
            }
            let Some(off) = memchr::memchr(b'\r', &buf[p..]) else {
                if buf.len() - p > INLINE_MAX_SIZE {
                    return self.fail("too big bulk count string");
                }
                return Err(ParseError::Incomplete);
            };
            let cr = p + off;
            if cr + 1 >= buf.len() {
                return Err(ParseError::Incomplete);
            }
            if buf[p] != b'$' {
                let got = buf[p] as char;
                return self.fail(format!("expected '$', got '{got}'"));
            }
            let len = match parse_i64(&buf[p + 1..cr]) {
                Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len as u64 => n as usize,
                _ => return self.fail("invalid bulk length"),
            };
            if len > 16 * 1024 && !limits.authenticated {
                return self.fail("unauthenticated bulk length");
            }
            let start = cr + 2;
            if buf.len() < start + len + 2 {
                self.need = start + len + 2;
                return Err(ParseError::Incomplete);
            }
            self.spans.push((start, start + len));
            self.pos = start + len + 2;
        }
        self.expected = 0;
        Ok(Request::Multibulk { consumed: self.pos })
    }

    fn fail<T>(&mut self, msg: impl Into<String>) -> Result<T, ParseError> {
        self.expected = 0;
        self.spans.clear();
        protocol(msg)
    }
}

fn parse_inline(buf: &[u8]) -> Result<Request, ParseError> {
    // Redis looks for the newline with `strchr`, which stops at a NUL byte: an inline request
    // with a NUL before its newline never completes (until it is too big). One search for the
    // first of the two keeps this linear in the line (searching the whole buffer for a NUL
    // first made a pipeline of inline requests quadratic; found by fuzzing).
    let nl = match memchr::memchr2(b'\n', 0, buf) {
        Some(i) if buf[i] == b'\n' => Some(i),
        _ => None,
    };
    let Some(nl) = nl else {
        if buf.len() > INLINE_MAX_SIZE {
            return protocol("too big inline request");
        }
        return Err(ParseError::Incomplete);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    match split_args(line) {
        Some(args) if args.is_empty() => Ok(Request::Empty { consumed: nl + 1 }),
        Some(args) => Ok(Request::Inline {
            consumed: nl + 1,
            args,
        }),
        None => protocol("unbalanced quotes in request"),
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a line into arguments as Redis's `sdssplitargs` does: whitespace separates,
/// `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` understands `\'`.
/// Returns `None` on unbalanced quotes (or a closing quote not followed by a space).
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Redis splits a C string: a NUL byte ends the line (found by fuzzing: without this, a NUL
    // after an argument produced empty arguments forever).
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && let (Some(h), Some(l)) = (hex_val(line[i + 2]), hex_val(line[i + 3]))
                {
                    cur.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(cur);
    }
}

/// Appends `args` as a RESP array of bulk strings (a request as clients send it; what the
/// parser reads): the replication and AOF streams, the proxy's backend requests, the
/// migration clients.
pub fn encode_command(out: &mut impl bytes::BufMut, args: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.put_u8(b'*');
    out.put_slice(n.format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.put_slice(n.format(a.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// Like [`encode_command`], and records where each argument lies in `out` (offsets from the
/// start of `out`), as [`RequestParser::spans`] would after parsing it back.
pub fn encode_command_spans(
    out: &mut bytes::BytesMut,
    args: &[&[u8]],
    spans: &mut Vec<(usize, usize)>,
) {
    let mut n = itoa::Buffer::new();
    spans.clear();
    out.extend_from_slice(b"*");
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.extend_from_slice(b"$");
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        let start = out.len();
        out.extend_from_slice(a);
        spans.push((start, out.len()));
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(p: &RequestParser, buf: &[u8]) -> Vec<Vec<u8>> {
        p.spans().iter().map(|&(s, e)| buf[s..e].to_vec()).collect()
    }

    #[test]
    fn multibulk_whole_and_split() {
        let req = b"*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n";
        let mut p = RequestParser::new();
        let r = p.parse(req, &Limits::default()).unwrap();
        assert_eq!(
            r,
            Request::Multibulk {
                consumed: req.len()
            }
        );
        assert_eq!(args_of(&p, req), vec![b"GET".to_vec(), b"a\0b".to_vec()]);
        for cut in 0..req.len() {
            let mut p = RequestParser::new();
            assert_eq!(
                p.parse(&req[..cut], &Limits::default()),
                Err(ParseError::Incomplete)
            );
            let r = p.parse(req, &Limits::default()).unwrap();
            assert_eq!(
                r,
                Request::Multibulk {
                    consumed: req.len()
                }
            );
            assert_eq!(args_of(&p, req).len(), 2);
        }
    }

    /// Inside a bulk string the parser tells how long the buffer must be to complete it;
    /// before its header is whole, and once the request is parsed, it does not know.
    #[test]
    fn needed_is_the_length_that_completes_the_bulk_being_read() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n";
        let l = Limits {
            authenticated: true,
            ..Limits::default()
        };
        let mut p = RequestParser::new();
        for cut in 0..req.len() {
            assert_eq!(p.parse(&req[..cut], &l), Err(ParseError::Incomplete));
            let want = match cut {
                // Inside `SET`, inside `k`, inside the value (headers whole).
                8..=12 => 13,
                17..=19 => 20,
                25.. => req.len(),
                _ => 0,
            };
            assert_eq!(p.needed(), want, "cut at {cut}");
        }
        assert!(p.parse(req, &l).is_ok());
        assert_eq!(p.needed(), 0);
    }

    #[test]
    fn encoded_spans_are_the_parsed_spans() {
        let args: [&[u8]; 3] = [b"SET", b"k\r\n", b""];
        let mut out = bytes::BytesMut::new();
        let mut spans = Vec::new();
        encode_command_spans(&mut out, &args, &mut spans);
        let mut p = RequestParser::new();
        let r = p.parse(&out, &Limits::default()).unwrap();
        assert_eq!(
            r,
            Request::Multibulk {
                consumed: out.len()
            }
        );
        assert_eq!(p.spans(), &spans[..]);
    }

    /// Redis 7.0 takes the two bytes after a header's CR, and after a bulk's payload, as the
    /// line end without looking at them; so does the parser (the differential test
    /// `protocol::malformed_requests_match_redis` compares with redis-server).
    #[test]
    fn line_ends_are_not_checked_as_by_redis() {
        let req = b"*2\rX$3\rXGET!!$1\r\nk\n\n";
        let mut p = RequestParser::new();
        let r = p.parse(req, &Limits::default()).unwrap();
        assert_eq!(
            r,
            Request::Multibulk {
                consumed: req.len()
            }
        );
        assert_eq!(args_of(&p, req), vec![b"GET".to_vec(), b"k".to_vec()]);
    }

    #[test]
    fn protocol_errors() {
        let l = Limits::default();
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"*x\r\n", &l),
            Err(ParseError::Protocol("invalid multibulk length".into()))
        );
        assert_eq!(
            p.parse(b"*1\r\n+x\r\n", &l),
            Err(ParseError::Protocol("expected '$', got '+'".into()))
        );
        assert_eq!(
            p.parse(b"*1\r\n$1073741824\r\n", &l),
            Err(ParseError::Protocol("invalid bulk length".into()))
        );
        assert_eq!(p.parse(b"*0\r\n", &l), Ok(Request::Empty { consumed: 4 }));
        let big = vec![b'a'; INLINE_MAX_SIZE + 1];
        assert_eq!(
            p.parse(&big, &l),
            Err(ParseError::Protocol("too big inline request".into()))
        );
    }

    #[test]
    fn inline_nul_before_newline_waits() {
        let mut p = RequestParser::new();
        let l = Limits::default();
        assert_eq!(p.parse(b"PING\0\r\n", &l), Err(ParseError::Incomplete));
        assert_eq!(
            p.parse(b"PING\r\n\0", &l),
            Ok(Request::Inline {
                consumed: 6,
                args: vec![b"PING".to_vec()]
            })
        );
        let mut big = b"PING\0".to_vec();
        big.resize(INLINE_MAX_SIZE + 2, b'\n');
        assert_eq!(
            p.parse(&big, &l),
            Err(ParseError::Protocol("too big inline request".into()))
        );
    }

    #[test]
    fn inline_quotes() {
        let mut p = RequestParser::new();
        let r = p
            .parse(b"set \"a\\x00b\\n\" 'it\\'s'\r\n", &Limits::default())
            .unwrap();
        assert_eq!(
            r,
            Request::Inline {
                consumed: 24,
                args: vec![b"set".to_vec(), b"a\0b\n".to_vec(), b"it's".to_vec()]
            }
        );
        assert_eq!(
            p.parse(b"get \"abc\r\n", &Limits::default()),
            Err(ParseError::Protocol("unbalanced quotes in request".into()))
        );
        assert_eq!(
            p.parse(b"\r\n", &Limits::default()),
            Ok(Request::Empty { consumed: 2 })
        );
    }
}
