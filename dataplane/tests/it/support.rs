//! Starting real servers for tests: Debian's `redis-server` and our `codis-server`, each on a
#![allow(dead_code)]
//! free loopback port, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::resp::frame::{Frame, FrameError};

/// A server process on 127.0.0.1, killed on drop.
pub(crate) struct Server {
    pub(crate) port: u16,
    child: Child,
    pub(crate) name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_ready(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before accepting connections: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts Debian's redis-server. Panics (never skips) when it is not installed.
pub(crate) fn start_redis(extra: &[&str]) -> Server {
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args([
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--dir",
        std::env::temp_dir().to_str().unwrap(),
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run redis-server ({e}); install it: apt-get install -y redis-server")
    });
    wait_ready(port, &mut child, "redis-server");
    Server {
        port,
        child,
        name: "redis",
    }
}

/// Starts our codis-server.
pub(crate) fn start_codis(extra: &[&str]) -> Server {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codis-server"))
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--loglevel",
            "warning",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn codis-server");
    wait_ready(port, &mut child, "codis-server");
    Server {
        port,
        child,
        name: "codis",
    }
}

/// A blocking RESP client that keeps raw reply bytes.
pub(crate) struct Client {
    stream: BufReader<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    pub(crate) fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            stream: BufReader::new(s),
            buf: Vec::new(),
        }
    }

    /// Encodes a command as a multibulk request.
    pub(crate) fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one reply; returns it parsed and as raw bytes. None if the connection closed.
    pub(crate) fn read_reply(&mut self) -> Option<(Frame, Vec<u8>)> {
        loop {
            match Frame::parse(&self.buf, 0) {
                Ok((f, n)) => {
                    let raw: Vec<u8> = self.buf.drain(..n).collect();
                    return Some((f, raw));
                }
                Err(FrameError::Incomplete) => {}
                Err(FrameError::Invalid(e)) => panic!(
                    "invalid reply: {e}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            let chunk = self.stream.fill_buf().ok()?;
            if chunk.is_empty() {
                return None;
            }
            let n = chunk.len();
            self.buf.extend_from_slice(chunk);
            self.stream.consume(n);
        }
    }

    pub(crate) fn cmd(&mut self, args: &[&[u8]]) -> (Frame, Vec<u8>) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.send_raw(&Self::encode(&args));
        self.read_reply().expect("connection closed")
    }

    /// Runs a command given as a string split on spaces.
    pub(crate) fn run(&mut self, line: &str) -> Frame {
        let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        self.cmd(&args).0
    }
}

/// Escapes reply bytes for readable failure messages.
pub(crate) fn show(raw: &[u8]) -> String {
    raw.escape_ascii().to_string()
}
