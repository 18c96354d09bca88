//! Socket reads and writes for sessions and backend connections.
//!
//! A read that returns fewer bytes than there was room for has drained the socket, so the
//! readiness is cleared right away instead of learning it from one more `read` that fails
//! with `EAGAIN`: one system call less per request on every connection. The buffer is only
//! grown once the socket is readable, so idle clients cost no read buffer.

use std::io;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Smallest free space offered to a read.
const READ_CHUNK: usize = 16 * 1024;

/// Waits until `sock` has data, then appends what it has to `buf`; `Ok(0)` at end of stream.
pub async fn read_some(sock: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
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
                    let _ = sock.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `data` to `sock`.
pub async fn write_all(sock: &TcpStream, mut data: &[u8]) -> io::Result<()> {
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
