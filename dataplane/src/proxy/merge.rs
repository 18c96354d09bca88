//! Merging the sub-replies of a split multi-key command (MGET, MSET, DEL, EXISTS, ...).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::backend::{Pending, Reply};
use super::command::SplitKind;
use crate::resp::scan::ReplyScanner;

/// One sub-request: its pending reply and the positions (in the original key order) of the
/// keys it carried.
#[derive(Debug)]
pub struct Part {
    /// The sub-request's reply.
    pub pending: Rc<Pending>,
    /// Key positions, in the order the sub-request listed them.
    pub positions: Vec<u32>,
}

/// A split request waiting for all its parts.
#[derive(Debug)]
pub struct Merge {
    /// How to combine the parts.
    pub kind: SplitKind,
    /// Number of keys of the original request.
    pub nkeys: usize,
    /// The sub-requests.
    pub parts: Vec<Part>,
    /// Set when the request failed before every part was sent.
    pub failed: Option<Reply>,
}

impl Merge {
    /// True when every part has its reply.
    pub fn is_ready(&self) -> bool {
        self.parts.iter().all(|p| p.pending.is_ready())
    }

    /// Combines the parts' replies into the client's reply.
    pub fn merge(&self) -> Reply {
        if let Some(f) = &self.failed {
            return f.clone();
        }
        let replies: Vec<Reply> = self
            .parts
            .iter()
            .map(|p| {
                p.pending
                    .peek()
                    .unwrap_or_else(|| Reply::response_error("lost"))
            })
            .collect();
        // A failure of the proxy, then an error reply, wins over everything.
        if let Some(r) = replies.iter().find(|r| r.failed) {
            return r.clone();
        }
        match self.kind {
            SplitKind::Mget => self.merge_mget(&replies),
            SplitKind::Mset => replies
                .iter()
                .find(|r| r.bytes.first() == Some(&b'-'))
                .cloned()
                .unwrap_or_else(|| Reply::data(Bytes::from_static(b"+OK\r\n"))),
            SplitKind::Sum => {
                let mut sum: i64 = 0;
                for r in &replies {
                    if r.bytes.first() == Some(&b'-') {
                        return r.clone();
                    }
                    match int_reply(&r.bytes) {
                        Some(n) => sum += n,
                        None => return Reply::response_error("bad integer reply from backend"),
                    }
                }
                Reply::data(Bytes::from(format!(":{sum}\r\n")))
            }
        }
    }

    fn merge_mget(&self, replies: &[Reply]) -> Reply {
        let mut slots: Vec<Option<Bytes>> = vec![None; self.nkeys];
        for (part, reply) in self.parts.iter().zip(replies) {
            let b = &reply.bytes;
            if b.first() == Some(&b'-') {
                return reply.clone();
            }
            let Some(items) = array_items(b) else {
                return Reply::response_error("bad mget reply from backend");
            };
            if items.len() != part.positions.len() {
                return Reply::response_error("bad mget reply from backend");
            }
            for (pos, item) in part.positions.iter().zip(items) {
                slots[*pos as usize] = Some(item);
            }
        }
        let mut out = BytesMut::new();
        out.extend_from_slice(format!("*{}\r\n", self.nkeys).as_bytes());
        for s in slots {
            match s {
                Some(b) => out.extend_from_slice(&b),
                None => return Reply::response_error("bad mget reply from backend"),
            }
        }
        Reply::data(out.freeze())
    }
}

/// The integer of a `:n` reply.
pub fn int_reply(b: &[u8]) -> Option<i64> {
    if b.first() != Some(&b':') || b.len() < 3 {
        return None;
    }
    crate::util::number::parse_i64(&b[1..b.len() - 2])
}

/// The raw items of an array reply (`*n` followed by n values).
pub fn array_items(b: &Bytes) -> Option<Vec<Bytes>> {
    if b.first() != Some(&b'*') {
        return None;
    }
    let nl = memchr::memchr(b'\n', b)?;
    let n: usize = std::str::from_utf8(&b[1..nl - 1]).ok()?.parse().ok()?;
    let mut items = Vec::with_capacity(n);
    let mut pos = nl + 1;
    let mut scanner = ReplyScanner::new();
    for _ in 0..n {
        let len = scanner.scan(&b[pos..]).ok()?;
        items.push(b.slice(pos..pos + len));
        pos += len;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Notify;

    fn done(bytes: &'static [u8]) -> Rc<Pending> {
        let p = Pending::new(Rc::new(Notify::new()));
        p.complete(Reply::data(Bytes::from_static(bytes)));
        p
    }

    #[test]
    fn mget_reorders_items() {
        let m = Merge {
            kind: SplitKind::Mget,
            nkeys: 3,
            parts: vec![
                Part {
                    pending: done(b"*2\r\n$1\r\na\r\n$-1\r\n"),
                    positions: vec![0, 2],
                },
                Part {
                    pending: done(b"*1\r\n$2\r\nbb\r\n"),
                    positions: vec![1],
                },
            ],
            failed: None,
        };
        assert!(m.is_ready());
        assert_eq!(
            &m.merge().bytes[..],
            b"*3\r\n$1\r\na\r\n$2\r\nbb\r\n$-1\r\n"
        );
    }

    #[test]
    fn sum_and_errors() {
        let m = Merge {
            kind: SplitKind::Sum,
            nkeys: 2,
            parts: vec![
                Part {
                    pending: done(b":1\r\n"),
                    positions: vec![0],
                },
                Part {
                    pending: done(b":2\r\n"),
                    positions: vec![1],
                },
            ],
            failed: None,
        };
        assert_eq!(&m.merge().bytes[..], b":3\r\n");
        let m = Merge {
            kind: SplitKind::Mset,
            nkeys: 2,
            parts: vec![Part {
                pending: done(b"-ERR x\r\n"),
                positions: vec![0],
            }],
            failed: None,
        };
        assert_eq!(&m.merge().bytes[..], b"-ERR x\r\n");
    }
}
