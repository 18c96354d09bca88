//! Starting real servers for tests: Debian's `redis-server` and our `codis-server`, each on a
#![allow(dead_code)]
//! free loopback port, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
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
        let dir = match self.name {
            "redis-server" => format!("codis-it-redis-{}", self.port),
            _ => format!("codis-it-codis-{}", self.port),
        };
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(dir));
    }
}

impl Server {
    /// Waits up to `timeout` for the process to exit on its own; its status if it did.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A directory of the test's own under the system temp dir
/// (`codis-it-<name>-<pid>`), emptied at creation and removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("codis-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound then released), never the same one twice in this process.
pub(crate) fn free_port() -> u16 {
    static ISSUED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut issued = ISSUED.lock().unwrap();
        if !issued.contains(&port) {
            issued.push(port);
            return port;
        }
    }
}

/// How a start attempt ended.
enum Ready {
    /// Our process answers on the port.
    Up,
    /// The port was taken by someone else between choosing and binding it: try another.
    PortTaken,
}

/// The `process_id` of the server answering on `port` (from INFO server), if it answers.
fn pid_on(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut header = String::new();
    r.read_line(&mut header).ok()?;
    let len: usize = header.trim_start_matches('$').trim().parse().ok()?;
    let mut body = vec![0u8; len + 2];
    r.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_ready(port: u16, child: &mut Child, what: &str) -> Ready {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            // Most likely another test's server bound the port first.
            return Ready::PortTaken;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    // Make sure the server answering is the one we started.
                    return if pid_on(port) == Some(child.id()) {
                        Ready::Up
                    } else {
                        Ready::PortTaken
                    };
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server on a fresh port with `build(port)`, retrying when the port turns out to be
/// taken by another process.
fn start(what: &'static str, build: impl Fn(u16) -> Command) -> Server {
    for _ in 0..10 {
        let port = free_port();
        let mut child = build(port).spawn().unwrap_or_else(|e| {
            panic!("cannot run {what} ({e}); install it: apt-get install -y redis-server")
        });
        match wait_ready(port, &mut child, what) {
            Ready::Up => {
                return Server {
                    port,
                    child,
                    name: what,
                };
            }
            Ready::PortTaken => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("{what}: no free port after 10 attempts");
}

/// Starts Debian's redis-server. Panics (never skips) when it is not installed.
pub(crate) fn start_redis(extra: &[&str]) -> Server {
    start("redis-server", |port| {
        // A directory of its own: a replica writes the RDB it receives there, and a
        // redis-server loads any dump.rdb it finds at start (found when a replica's RDB in
        // the shared temp dir leaked into every later redis-server).
        let dir = std::env::temp_dir().join(format!("codis-it-redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args([
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ])
        .args(["--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    })
}

/// Starts our codis-server, like redis-server above: in a directory of its own (removed on
/// drop) and with no `save` points; `extra` may override both (`--dir`, `--save`).
pub(crate) fn start_codis(extra: &[&str]) -> Server {
    start("codis-server", |port| {
        let dir = std::env::temp_dir().join(format!("codis-it-codis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_codis-server"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--loglevel",
            "warning",
            "--save",
            "",
        ])
        .args(["--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        cmd
    })
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

    /// A second handle on the same connection, for writing from another thread.
    pub(crate) fn try_clone_writer(&self) -> Client {
        Client {
            stream: BufReader::new(self.stream.get_ref().try_clone().unwrap()),
            buf: Vec::new(),
        }
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

    /// Reads one reply, giving up after `wait` (None: nothing complete came, or closed).
    pub(crate) fn read_reply_within(&mut self, wait: Duration) -> Option<(Frame, Vec<u8>)> {
        self.stream.get_ref().set_read_timeout(Some(wait)).unwrap();
        let r = self.read_reply();
        self.stream
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        r
    }

    pub(crate) fn cmd(&mut self, args: &[&[u8]]) -> (Frame, Vec<u8>) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.send_raw(&Self::encode(&args));
        self.read_reply().expect("connection closed")
    }

    /// Sends a command and reads its reply; None when the server is gone.
    pub(crate) fn try_cmd(&mut self, args: &[&[u8]]) -> Option<Frame> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.stream.get_mut().write_all(&Self::encode(&args)).ok()?;
        self.read_reply().map(|r| r.0)
    }

    /// Sends several commands in one write and reads their replies; None when the server
    /// is gone before all came back.
    pub(crate) fn try_pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Option<Vec<Frame>> {
        let bytes: Vec<u8> = cmds.iter().flat_map(|c| Self::encode(c)).collect();
        self.stream.get_mut().write_all(&bytes).ok()?;
        (0..cmds.len())
            .map(|_| self.read_reply().map(|r| r.0))
            .collect()
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

/// Sends `req` to `port` in 7,000-byte pieces with pauses (a big argument arrives over many
/// reads) while reading the replies slowly, 4 KiB at a time (the server's writes meet a full
/// socket buffer), until they end with `last`; returns every byte read.
pub(crate) fn dribble_and_read_slowly(port: u16, req: &[u8], last: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let req = req.to_vec();
    let writer = std::thread::spawn(move || {
        for piece in req.chunks(7_000) {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        s
    });
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !all.ends_with(last) {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} bytes", all.len());
        all.extend_from_slice(&buf[..n]);
        if all.len() % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    drop(writer.join().unwrap());
    all
}
