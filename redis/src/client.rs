//! A small RESP2 client: the dashboard talks to codis-servers (INFO, SLOTSINFO,
//! SLOTSMGRTTAGSLOT[-ASYNC], SLAVEOF ...) and to sentinels with it. One request at a time,
//! every call bounded by a timeout; [`RedisClient::send`] and [`RedisClient::read_push`] serve
//! subscriptions.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are refused (an INFO or a SENTINEL reply is a few KiB).
const MAX_REPLY: usize = 64 << 20;

/// Errors of talking to a Redis-protocol server.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting, reading or writing failed.
    #[error("redis {addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("redis {addr}: timed out after {after:?}")]
    Timeout {
        /// The server.
        addr: String,
        /// The bound.
        after: Duration,
    },
    /// The server answered with an error reply.
    #[error("redis {addr}: {message}")]
    Reply {
        /// The server.
        addr: String,
        /// The error text (`ERR ...`).
        message: String,
    },
    /// The reply was not valid RESP, or not of the expected shape.
    #[error("redis {addr}: bad reply: {what}")]
    Protocol {
        /// The server.
        addr: String,
        /// What was wrong.
        what: String,
    },
}

/// A decoded RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` (None for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for `*-1`).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The text of a status or bulk reply.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Status(s) => Some(s.clone()),
            Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The integer of an integer reply (or of a bulk holding digits).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The items of an array reply.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// A flat `[k1, v1, k2, v2 ...]` array as a map (SENTINEL masters entries).
    pub fn as_pairs(&self) -> Option<BTreeMap<String, String>> {
        let items = self.as_array()?;
        let mut map = BTreeMap::new();
        for pair in items.chunks(2) {
            if let [k, v] = pair {
                map.insert(k.as_text()?, v.as_text()?);
            }
        }
        Some(map)
    }
}

/// Parses one reply from the front of `buf`: `Ok(None)` when incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
        let end = buf.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[..end], end + 2))
    }
    fn int(text: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad integer {:?}", String::from_utf8_lossy(text)))
    }
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some((text, used)) = line(&buf[1..]) else {
        return Ok(None);
    };
    let used = used + 1;
    let lossy = || String::from_utf8_lossy(text).into_owned();
    match kind {
        b'+' => Ok(Some((Value::Status(lossy()), used))),
        b'-' => Ok(Some((Value::Error(lossy()), used))),
        b':' => Ok(Some((Value::Int(int(text)?), used))),
        b'$' => {
            let n = int(text)?;
            if n < 0 {
                return Ok(Some((Value::Bulk(None), used)));
            }
            let n = usize::try_from(n).map_err(|e| e.to_string())?;
            if n > MAX_REPLY {
                return Err(format!("bulk of {n} bytes"));
            }
            if buf.len() < used + n + 2 {
                return Ok(None);
            }
            Ok(Some((
                Value::Bulk(Some(buf[used..used + n].to_vec())),
                used + n + 2,
            )))
        }
        b'*' => {
            let n = int(text)?;
            if n < 0 {
                return Ok(Some((Value::Array(None), used)));
            }
            let mut items = Vec::with_capacity(usize::try_from(n.min(1024)).unwrap_or(0));
            let mut at = used;
            for _ in 0..n {
                match parse(&buf[at..])? {
                    Some((v, len)) => {
                        items.push(v);
                        at += len;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        other => Err(format!("unexpected type byte {other:#04x}")),
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// One connection to a Redis-protocol server.
#[derive(Debug)]
pub struct RedisClient {
    addr: String,
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl RedisClient {
    /// Connects (within `timeout`) and sends `AUTH auth` when `auth` is not empty.
    ///
    /// # Errors
    /// I/O errors, [`RedisError::Timeout`], or the AUTH error.
    pub async fn connect(addr: &str, auth: &str, timeout: Duration) -> Result<Self, RedisError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RedisError::Timeout {
                addr: addr.to_string(),
                after: timeout,
            })?
            .map_err(|source| RedisError::Io {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut client = RedisClient {
            addr: addr.to_string(),
            stream,
            buf: BytesMut::with_capacity(4096),
            timeout,
        };
        if !auth.is_empty() {
            client.call(&[b"AUTH", auth.as_bytes()]).await?;
        }
        Ok(client)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Changes the bound of later calls.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends one command and reads its reply; an error reply is returned as a value.
    ///
    /// # Errors
    /// I/O, timeout or protocol errors.
    pub async fn request(&mut self, args: &[&[u8]]) -> Result<Value, RedisError> {
        let mut out = Vec::new();
        encode(args, &mut out);
        self.exchange(&out, 1).await.map(|mut v| v.remove(0))
    }

    /// Sends several commands at once and reads their replies, in order.
    ///
    /// # Errors
    /// I/O, timeout or protocol errors.
    pub async fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Value>, RedisError> {
        let mut out = Vec::new();
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            encode(&args, &mut out);
        }
        self.exchange(&out, cmds.len()).await
    }

    /// Writes `out` and reads `replies` replies, all within the timeout.
    async fn exchange(&mut self, out: &[u8], replies: usize) -> Result<Vec<Value>, RedisError> {
        let timeout = self.timeout;
        let addr = self.addr.clone();
        tokio::time::timeout(timeout, async {
            self.stream
                .write_all(out)
                .await
                .map_err(|source| RedisError::Io {
                    addr: addr.clone(),
                    source,
                })?;
            let mut got = Vec::with_capacity(replies);
            for _ in 0..replies {
                got.push(self.read_reply().await?);
            }
            Ok(got)
        })
        .await
        .map_err(|_| RedisError::Timeout {
            addr: self.addr.clone(),
            after: timeout,
        })?
    }

    /// Sends one command without reading a reply (SUBSCRIBE).
    ///
    /// # Errors
    /// I/O errors or the timeout.
    pub async fn send(&mut self, args: &[&[u8]]) -> Result<(), RedisError> {
        let mut out = Vec::new();
        encode(args, &mut out);
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.stream.write_all(&out))
            .await
            .map_err(|_| RedisError::Timeout {
                addr: self.addr.clone(),
                after: timeout,
            })?
            .map_err(|source| RedisError::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Waits (without a timeout) for the next value the server pushes (a pub/sub message).
    ///
    /// # Errors
    /// I/O or protocol errors.
    pub async fn read_push(&mut self) -> Result<Value, RedisError> {
        self.read_reply().await
    }

    /// Like [`RedisClient::request`], turning an error reply into [`RedisError::Reply`].
    ///
    /// # Errors
    /// As `request`, plus [`RedisError::Reply`].
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, RedisError> {
        match self.request(args).await? {
            Value::Error(message) => Err(RedisError::Reply {
                addr: self.addr.clone(),
                message,
            }),
            v => Ok(v),
        }
    }

    /// `INFO [section]` as a map of its `key:value` lines.
    ///
    /// # Errors
    /// As [`RedisClient::call`].
    pub async fn info(
        &mut self,
        section: Option<&str>,
    ) -> Result<BTreeMap<String, String>, RedisError> {
        let v = match section {
            Some(s) => self.call(&[b"INFO", s.as_bytes()]).await?,
            None => self.call(&[b"INFO"]).await?,
        };
        let text = v
            .as_text()
            .ok_or_else(|| self.protocol("INFO is not a bulk string"))?;
        Ok(parse_info(&text))
    }

    /// A protocol error about this server.
    pub fn protocol(&self, what: &str) -> RedisError {
        RedisError::Protocol {
            addr: self.addr.clone(),
            what: what.to_string(),
        }
    }

    async fn read_reply(&mut self) -> Result<Value, RedisError> {
        loop {
            match parse(&self.buf) {
                Ok(Some((v, used))) => {
                    self.buf.advance(used);
                    return Ok(v);
                }
                Ok(None) => {}
                Err(what) => return Err(self.protocol(&what)),
            }
            if self.buf.len() > MAX_REPLY {
                return Err(self.protocol("reply too large"));
            }
            self.buf.reserve(16 * 1024);
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| RedisError::Io {
                    addr: self.addr.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(RedisError::Io {
                    addr: self.addr.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ),
                });
            }
        }
    }
}

/// The `key:value` lines of an INFO reply (section headers and blank lines skipped).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_waits_for_more() {
        let (v, n) = parse(b"*3\r\n:1\r\n$3\r\nabc\r\n*-1\r\nXX")
            .unwrap()
            .unwrap();
        assert_eq!(n, 22);
        assert_eq!(
            v,
            Value::Array(Some(vec![
                Value::Int(1),
                Value::Bulk(Some(b"abc".to_vec())),
                Value::Array(None)
            ]))
        );
        assert_eq!(parse(b"$5\r\nab").unwrap(), None);
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(parse(b"+OK").unwrap(), None);
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        let (e, _) = parse(b"-ERR no\r\n").unwrap().unwrap();
        assert_eq!(e, Value::Error("ERR no".into()));
    }

    #[test]
    fn info_and_pairs() {
        let m = parse_info(
            "# Server\r\nredis_version:7.0.15\r\nrole:master\r\n\r\ndb0:keys=1,expires=0\r\n",
        );
        assert_eq!(m["redis_version"], "7.0.15");
        assert_eq!(m["db0"], "keys=1,expires=0");
        let pairs = Value::Array(Some(vec![
            Value::Bulk(Some(b"name".to_vec())),
            Value::Bulk(Some(b"p-1".to_vec())),
        ]))
        .as_pairs()
        .unwrap();
        assert_eq!(pairs["name"], "p-1");
    }
}
