//! Merging the sub-replies of a split multi-key command (MGET, MSET, DEL, EXISTS, ...), and
//! the replies of the groups to a SCRIPT / FUNCTION command sent to every group.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::backend::{Pending, Reply};
use super::command::{BroadcastKind, SplitKind};
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

/// How the parts of a request are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    /// A multi-key command split by key (parts carry key positions).
    Split(SplitKind),
    /// One request sent to every group's master (parts carry no positions).
    Broadcast(BroadcastKind),
}

/// A split request waiting for all its parts.
#[derive(Debug)]
pub struct Merge {
    /// How to combine the parts.
    pub kind: MergeKind,
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
        let kind = match self.kind {
            MergeKind::Split(kind) => kind,
            MergeKind::Broadcast(kind) => return merge_broadcast(kind, &replies),
        };
        // A failure of the proxy, then an error reply, wins over everything.
        if let Some(r) = replies.iter().find(|r| r.failed) {
            return r.clone();
        }
        match kind {
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

fn is_error(r: &Reply) -> bool {
    r.failed || r.bytes.first() == Some(&b'-')
}

/// Combines the replies of every group's master to one SCRIPT / FUNCTION request (in the
/// order of the masters' addresses).
pub fn merge_broadcast(kind: BroadcastKind, replies: &[Reply]) -> Reply {
    let Some(first) = replies.first() else {
        return Reply::response_error("slot is not ready, may be offline");
    };
    match kind {
        BroadcastKind::OneSucceeded => {
            if let Some(ok) = replies.iter().find(|r| !is_error(r)) {
                return ok.clone();
            }
            replies
                .iter()
                .find(|r| !r.bytes.starts_with(b"-NOTBUSY"))
                .unwrap_or(first)
                .clone()
        }
        BroadcastKind::AllSucceeded => {
            if let Some(e) = replies.iter().find(|r| is_error(r)) {
                return e.clone();
            }
            if replies.iter().all(|r| r.bytes == first.bytes) {
                return first.clone();
            }
            Reply::request_error("the groups answered differently, run it again")
        }
        BroadcastKind::LogicalAnd => {
            if let Some(e) = replies.iter().find(|r| is_error(r)) {
                return e.clone();
            }
            let mut all: Option<Vec<bool>> = None;
            for r in replies {
                let Some(items) = array_items(&r.bytes) else {
                    return Reply::response_error("bad script exists reply from backend");
                };
                let mut flags = Vec::with_capacity(items.len());
                for i in &items {
                    match int_reply(i) {
                        Some(n) => flags.push(n != 0),
                        None => {
                            return Reply::response_error("bad script exists reply from backend");
                        }
                    }
                }
                all = Some(match all {
                    None => flags,
                    Some(prev) if prev.len() == flags.len() => {
                        prev.iter().zip(&flags).map(|(a, b)| *a && *b).collect()
                    }
                    Some(_) => {
                        return Reply::response_error("bad script exists reply from backend");
                    }
                });
            }
            let all = all.unwrap_or_default();
            let mut out = BytesMut::new();
            out.extend_from_slice(format!("*{}\r\n", all.len()).as_bytes());
            for f in all {
                out.extend_from_slice(if f { b":1\r\n" } else { b":0\r\n" });
            }
            Reply::data(out.freeze())
        }
        BroadcastKind::Stats => {
            let idle = |r: &Reply| {
                r.bytes
                    .windows(20)
                    .any(|w| w == b"running_script\r\n$-1\r" || w == b"running_script\r\n*-1\r")
            };
            replies
                .iter()
                .find(|r| !is_error(r) && !idle(r))
                .or_else(|| replies.iter().find(|r| !is_error(r)))
                .unwrap_or(first)
                .clone()
        }
        BroadcastKind::First => first.clone(),
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
            kind: MergeKind::Split(SplitKind::Mget),
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
            kind: MergeKind::Split(SplitKind::Sum),
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
            kind: MergeKind::Split(SplitKind::Mset),
            nkeys: 2,
            parts: vec![Part {
                pending: done(b"-ERR x\r\n"),
                positions: vec![0],
            }],
            failed: None,
        };
        assert_eq!(&m.merge().bytes[..], b"-ERR x\r\n");
    }

    fn replies(v: &[&'static [u8]]) -> Vec<Reply> {
        v.iter()
            .map(|b| Reply::data(Bytes::from_static(b)))
            .collect()
    }

    #[test]
    fn broadcast_replies_combine() {
        use BroadcastKind::*;
        let m = |k, v: &[&'static [u8]]| merge_broadcast(k, &replies(v)).bytes;
        let sha = &b"$3\r\nabc\r\n"[..];
        assert_eq!(m(AllSucceeded, &[sha, sha]), sha);
        assert_eq!(m(AllSucceeded, &[sha, b"-ERR x\r\n"]), &b"-ERR x\r\n"[..]);
        assert!(m(AllSucceeded, &[sha, b"$3\r\nabd\r\n"]).starts_with(b"-ERR handle request"));
        assert_eq!(
            m(
                LogicalAnd,
                &[b"*3\r\n:1\r\n:1\r\n:0\r\n", b"*3\r\n:1\r\n:0\r\n:0\r\n"]
            ),
            &b"*3\r\n:1\r\n:0\r\n:0\r\n"[..]
        );
        assert!(m(LogicalAnd, &[b"*1\r\n:1\r\n", b"*2\r\n:1\r\n:0\r\n"]).starts_with(b"-"));
        let notbusy = &b"-NOTBUSY No scripts in execution right now.\r\n"[..];
        assert_eq!(m(OneSucceeded, &[notbusy, b"+OK\r\n"]), &b"+OK\r\n"[..]);
        assert_eq!(m(OneSucceeded, &[notbusy, notbusy]), notbusy);
        assert_eq!(
            m(OneSucceeded, &[notbusy, b"-UNKILLABLE x\r\n"]),
            &b"-UNKILLABLE x\r\n"[..]
        );
        let idle = &b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*0\r\n"[..];
        let busy = &b"*4\r\n$14\r\nrunning_script\r\n*0\r\n$7\r\nengines\r\n*0\r\n"[..];
        assert_eq!(m(Stats, &[idle, busy]), busy);
        assert_eq!(m(Stats, &[idle, idle]), idle);
        assert_eq!(m(First, &[sha, b"$1\r\nx\r\n"]), sha);
    }
}
