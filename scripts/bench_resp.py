"""RESP client helpers shared by the benchmark scripts' Python parts (run from the repo
root: `sys.path.insert(0, "scripts"); from bench_resp import conn, enc, read`)."""
import socket


def conn(port):
    """A connection to 127.0.0.1:port and a buffered reader on it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")


def enc(*args):
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read(f):
    """Reads one reply: ints, bytes, lists, None; an error reply raises."""
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b":"):
        return int(rest) if t == b":" else rest
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t in (b"$", b"="):
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read(f) for _ in range(n)]
    raise RuntimeError("bad reply %r" % line)
