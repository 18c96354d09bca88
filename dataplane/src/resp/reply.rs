//! [`Out`]: the reply buffer command handlers write into, aware of the client's protocol
//! version (RESP2 or RESP3 after `HELLO 3`).
//!
//! Handlers write straight into the connection's output buffer, so a pipelined batch is
//! answered with one `write` and a reply costs no allocation of its own.

use std::sync::Arc;

use crate::util::number::fmt_double;

/// Values of at least this many bytes are not copied into the buffer of an [`Out`] that
/// shares big values (a connection's): the reply holds a reference and the connection
/// writes them in place (`writev`).
pub const SHARE_MIN: usize = 64 * 1024;

/// A RESP reply buffer.
#[derive(Debug, Default)]
pub struct Out {
    /// The encoded bytes waiting to be written to the socket (big shared values excepted,
    /// see [`Out::shared`]).
    pub buf: Vec<u8>,
    /// True after `HELLO 3`: maps, sets, doubles, nulls and pushes use RESP3 types.
    pub resp3: bool,
    /// When true, [`Out::bulk_shared`] keeps big values by reference instead of copying
    /// them. Only a connection's own buffer, written by [`Out::pieces`], sets it.
    pub share_big: bool,
    /// Big values kept by reference: each goes at its offset in `buf`, in order.
    shared: Vec<(usize, Arc<Vec<u8>>)>,
    /// Total bytes in `shared`.
    shared_len: usize,
}

impl Out {
    /// An empty RESP2 buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far (shared values included).
    pub fn len(&self) -> usize {
        self.buf.len() + self.shared_len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// True when some values are held by reference: the reply is then [`Out::pieces`], not
    /// `buf` alone.
    pub fn has_shared(&self) -> bool {
        !self.shared.is_empty()
    }

    /// The reply in order: slices of `buf` and the shared values between them.
    pub fn pieces(&self) -> Vec<std::io::IoSlice<'_>> {
        let mut v = Vec::with_capacity(self.shared.len() * 2 + 1);
        let mut at = 0;
        for (pos, data) in &self.shared {
            v.push(std::io::IoSlice::new(&self.buf[at..*pos]));
            v.push(std::io::IoSlice::new(data));
            at = *pos;
        }
        v.push(std::io::IoSlice::new(&self.buf[at..]));
        v
    }

    /// Empties the buffer (capacity kept) and drops the shared values (a list grown long,
    /// by an MGET of many big values, is let go).
    pub fn clear(&mut self) {
        self.buf.clear();
        if self.shared.capacity() > 1024 {
            self.shared = Vec::new();
        } else {
            self.shared.clear();
        }
        self.shared_len = 0;
    }

    fn line(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string (`+text`).
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error line. `msg` is the whole text after `-`, code included (`ERR ...`,
    /// `WRONGTYPE ...`); newlines are replaced by spaces as Redis does.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        for &b in msg.as_bytes() {
            self.buf
                .push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer (`:n`).
    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }

    /// A bulk string.
    pub fn bulk(&mut self, data: &[u8]) {
        // Room for the header, the data and the CRLF at once: a big value is copied once,
        // not once more when the CRLF would overflow a buffer grown to fit it.
        self.buf.reserve(data.len() + 24);
        self.line(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string held by reference-counted storage: a big one is not copied when this
    /// buffer shares big values.
    pub fn bulk_shared(&mut self, data: &Arc<Vec<u8>>) {
        if !self.share_big || data.len() < SHARE_MIN {
            return self.bulk(data);
        }
        self.line(b'$', data.len() as i64);
        self.shared.push((self.buf.len(), data.clone()));
        self.shared_len += data.len();
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer rendered as a bulk string (as Redis replies for e.g. `INCRBYFLOAT`).
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    /// A null bulk string: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// A null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    /// An array header of `n` elements; the caller then writes the elements.
    pub fn array(&mut self, n: usize) {
        self.line(b'*', n as i64);
    }

    /// A map header of `n` pairs: `%n` in RESP3, `*2n` in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.line(b'%', n as i64);
        } else {
            self.line(b'*', 2 * n as i64);
        }
    }

    /// A set header: `~n` in RESP3, `*n` in RESP2.
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.line(b'~', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    /// A push header (pub/sub messages): `>n` in RESP3, `*n` in RESP2.
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.line(b'>', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    /// A double: `,repr` in RESP3, a bulk string formatted like `%.17g` in RESP2.
    pub fn double(&mut self, d: f64) {
        let s = fmt_double(d);
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// A verbatim string (INFO, CLIENT LIST...): `=len\r\ntxt:...` in RESP3, bulk in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.line(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// An array of bulk strings.
    pub fn bulks<I, T>(&mut self, items: I)
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
        T: AsRef<[u8]>,
    {
        let it = items.into_iter();
        self.array(it.len());
        for x in it {
            self.bulk(x.as_ref());
        }
    }

    /// Raw, already encoded bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything written after `len` (a value of [`Out::len`], used to undo a
    /// partial reply).
    pub fn truncate(&mut self, len: usize) {
        // A shared value starting at or after `len` goes with what follows it.
        while let Some((pos, data)) = self.shared.last() {
            let starts_at = pos + self.shared_len - data.len();
            if starts_at < len {
                break;
            }
            self.shared_len -= data.len();
            self.shared.pop();
        }
        self.buf.truncate(len - self.shared_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A big shared value is kept by reference in a connection's buffer, in its place among
    /// the other replies; `len` and `truncate` count it; a buffer that does not share copies.
    #[test]
    fn big_shared_values_are_pieces_in_order() {
        let big = Arc::new(vec![b'x'; SHARE_MIN]);
        let small = Arc::new(b"abc".to_vec());
        let mut o = Out::new();
        o.share_big = true;
        o.int(1);
        o.bulk_shared(&big);
        o.bulk_shared(&small);
        let before = o.len();
        o.bulk_shared(&big);
        o.int(2);
        assert!(o.has_shared());
        let joined = |o: &Out| -> Vec<u8> { o.pieces().iter().flat_map(|p| p.to_vec()).collect() };
        let mut want = Out::new();
        want.int(1);
        want.bulk_shared(&big);
        want.bulk_shared(&small);
        assert!(!want.has_shared());
        let head = want.buf.clone();
        want.bulk_shared(&big);
        want.int(2);
        assert_eq!(joined(&o), want.buf);
        assert_eq!(o.len(), want.len());
        o.truncate(before);
        assert_eq!(joined(&o), head);
        assert_eq!(o.len(), head.len());
        o.clear();
        assert!(o.is_empty() && !o.has_shared());
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let mut o = Out::new();
        o.null();
        o.map(2);
        o.double(1.5);
        o.error("ERR a\r\nb");
        assert_eq!(o.buf, b"$-1\r\n*4\r\n$3\r\n1.5\r\n-ERR a  b\r\n");
        let mut o = Out {
            resp3: true,
            ..Out::new()
        };
        o.null();
        o.map(2);
        o.double(1.5);
        o.boolean(true);
        assert_eq!(o.buf, b"_\r\n%2\r\n,1.5\r\n#t\r\n");
    }
}
