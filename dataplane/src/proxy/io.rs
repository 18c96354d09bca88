//! Sockets of the proxy: client connections over TCP or a unix socket (`proto_type`), and the
//! reads and writes that sessions and backend connections do on them.
//!
//! A read that returns fewer bytes than there was room for has drained the socket, so the
//! readiness is cleared right away instead of learning it from one more `read` that fails
//! with `EAGAIN`: one system call less per request on every connection. The buffer is only
//! grown once the socket is readable, so idle clients cost no read buffer.

use std::future::Future;
use std::io;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Smallest free space offered to a read.
const READ_CHUNK: usize = 16 * 1024;

/// What [`read_some`] and [`write_all`] need from a socket.
pub trait Socket {
    /// Waits until readable.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    /// Reads what is there without waiting.
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Forgets the readiness (the socket was drained).
    fn clear_readable(&self);
    /// Waits until writable.
    fn writable(&self) -> impl Future<Output = io::Result<()>>;
    /// Writes what fits without waiting.
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;
    /// Writes what it can of `bufs` in order, without waiting.
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
}

fn would_block<T>() -> io::Result<T> {
    Err(io::Error::from(io::ErrorKind::WouldBlock))
}

macro_rules! socket_impl {
    ($t:ty) => {
        impl Socket for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> {
                <$t>::readable(self)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$t>::try_read_buf(self, buf)
            }
            fn clear_readable(&self) {
                let _ = self.try_io(Interest::READABLE, would_block::<()>);
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> {
                <$t>::writable(self)
            }
            fn try_write(&self, data: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, data)
            }
            fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
        }
    };
}

socket_impl!(TcpStream);
socket_impl!(UnixStream);

/// A client connection: TCP or unix socket.
#[derive(Debug)]
pub enum ClientStream {
    /// `proto_type` tcp, tcp4, tcp6.
    Tcp(TcpStream),
    /// `proto_type` unix.
    Unix(UnixStream),
}

impl Socket for ClientStream {
    async fn readable(&self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.readable().await,
            ClientStream::Unix(s) => s.readable().await,
        }
    }
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.try_read_buf(buf),
            ClientStream::Unix(s) => s.try_read_buf(buf),
        }
    }
    fn clear_readable(&self) {
        match self {
            ClientStream::Tcp(s) => Socket::clear_readable(s),
            ClientStream::Unix(s) => Socket::clear_readable(s),
        }
    }
    async fn writable(&self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.writable().await,
            ClientStream::Unix(s) => s.writable().await,
        }
    }
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.try_write(data),
            ClientStream::Unix(s) => s.try_write(data),
        }
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.try_write_vectored(bufs),
            ClientStream::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}

impl ClientStream {
    /// Registers an accepted socket with the current thread's runtime.
    pub fn from_std(s: StdClient) -> io::Result<Self> {
        Ok(match s {
            StdClient::Tcp(s) => {
                let s = TcpStream::from_std(s)?;
                let _ = s.set_nodelay(true);
                ClientStream::Tcp(s)
            }
            StdClient::Unix(s) => ClientStream::Unix(UnixStream::from_std(s)?),
        })
    }

    /// Stops sending (the client sees the end of the stream once it has read everything).
    pub fn shutdown_write(&self) {
        let r = match self {
            ClientStream::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            ClientStream::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
        };
        let _ = r;
    }
}

/// An accepted socket on its way to a worker thread.
#[derive(Debug)]
pub enum StdClient {
    /// TCP.
    Tcp(std::net::TcpStream),
    /// Unix socket.
    Unix(std::os::unix::net::UnixStream),
}

/// The proxy's listener for clients.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket, removed when dropped.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr` for `proto_type` (`tcp`, `tcp4`, `tcp6` or `unix`; a stale unix socket
    /// file is replaced).
    pub async fn bind(proto: &str, addr: &str) -> io::Result<Listener> {
        match proto {
            "tcp" | "tcp4" | "tcp6" => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            "unix" => {
                let path = PathBuf::from(addr);
                if std::os::unix::net::UnixStream::connect(&path).is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(Listener::Unix(UnixListener::bind(&path)?, path))
            }
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("proto_type '{other}' is not supported (use tcp, tcp4, tcp6 or unix)"),
            )),
        }
    }

    /// The bound address, as Codis renders it (the path for a unix socket).
    pub fn local_addr(&self) -> io::Result<String> {
        match self {
            Listener::Tcp(l) => Ok(l.local_addr()?.to_string()),
            Listener::Unix(_, path) => Ok(path.display().to_string()),
        }
    }

    /// Accepts a client, as a std socket for a worker thread.
    pub async fn accept(&self) -> io::Result<StdClient> {
        match self {
            Listener::Tcp(l) => Ok(StdClient::Tcp(l.accept().await?.0.into_std()?)),
            Listener::Unix(l, _) => Ok(StdClient::Unix(l.accept().await?.0.into_std()?)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

/// Waits until `sock` has data, then appends what it has to `buf`; `Ok(0)` at end of stream.
pub async fn read_some(sock: &impl Socket, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        sock.readable().await?;
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let room = buf.capacity() - buf.len();
        match sock.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && n < room {
                    // Drained: clear the readiness without another system call.
                    sock.clear_readable();
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `data` to `sock`.
pub async fn write_all(sock: &impl Socket, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match sock.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `pieces`, in order, with `writev` (at most 1024 slices a call, Linux's
/// `IOV_MAX`).
pub async fn write_all_pieces(sock: &impl Socket, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = pieces.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut rest: &mut [io::IoSlice<'_>] = &mut slices;
    io::IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match sock.try_write_vectored(&rest[..rest.len().min(1024)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
