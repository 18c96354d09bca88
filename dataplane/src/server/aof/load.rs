//! Loading the append-only file at start (`appendonly yes`).
//!
//! The files come from the manifest (base, then increments), or from an old single
//! `appendonly.aof` in `dir` (Redis before 7, Codis 3.2's redis 3.2), which `open_at_start`
//! then moves into the AOF directory. A file that starts with `REDIS` is an RDB image,
//! possibly followed by commands (the RDB preamble); the rest is RESP arrays, replayed
//! through the normal dispatcher by a client that propagates nothing.
//!
//! As Redis: only the last file may end in a torn record (a command cut short, or a MULTI
//! without its EXEC). With `aof-load-truncated yes` (the default) the file is cut back to
//! the last complete command and the server starts; with `no` it refuses to start. Anything
//! else that is not a command is a fatal format error, and so is an unknown command.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::AofError;
use crate::cmd::{Ctx, execute, registry};
use crate::rdb::{Limits, file};
use crate::resp::reply::Out;
use crate::resp::request::{self, Request, RequestParser};
use crate::server::Shared;
use crate::server::client::{Client, ClientInfo};
use crate::store::now_ms;

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The data came from an old single-file AOF (to move into the AOF directory).
    pub upgrade: bool,
    /// Files read.
    pub files: usize,
    /// Commands replayed.
    pub commands: u64,
    /// Keys read from RDB images.
    pub rdb_keys: u64,
    /// A torn tail was cut off: the file and the bytes removed.
    pub truncated: Option<(PathBuf, u64)>,
}

enum End {
    Complete,
    /// Torn: the offset of the end of the last complete command.
    Torn(u64),
}

/// Loads the AOF into the (empty) store. None: there is no AOF.
///
/// # Errors
/// A file is missing, unreadable, malformed or truncated where that is not allowed.
pub fn load(shared: &Arc<Shared>) -> Result<Option<Loaded>, AofError> {
    let (dir, name, data_dir, truncated_ok) = {
        let s = shared.store.lock();
        (
            super::dir(&s.config),
            super::filename(&s.config),
            PathBuf::from(&s.config.dir),
            crate::server::persist::flag(&s.config, "aof-load-truncated"),
        )
    };
    let mut loaded = Loaded::default();
    let files: Vec<PathBuf> = match super::read_manifest(&dir, &name)? {
        Some(m) => m.replay_order().iter().map(|e| dir.join(&e.name)).collect(),
        None => {
            let old = data_dir.join(&name);
            if !old.exists() {
                return Ok(None);
            }
            loaded.upgrade = true;
            vec![old]
        }
    };
    let info = Arc::new(ClientInfo::new(0, "aof-loading".into(), String::new()));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut client = Client::new(info, tx);
    client.is_master = true;
    client.authenticated = true;
    for (i, path) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        if !path.exists() {
            return Err(AofError::Load(format!(
                "The AOF file {} doesn't exist",
                path.display()
            )));
        }
        client.db = 0;
        client.multi = None;
        match load_file(shared, &mut client, path, &mut loaded)? {
            End::Complete => {}
            End::Torn(valid) => {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                if !last {
                    return Err(AofError::Load(format!(
                        "Fatal error: the truncated file {} is not the last file",
                        path.display()
                    )));
                }
                if !truncated_ok {
                    return Err(AofError::Load(format!(
                        "Unexpected end of file reading the append only file {}. You can: \
                         1) Make a backup of your AOF file, then use ./redis-check-aof --fix \
                         <filename.manifest>. 2) Alternatively you can set the \
                         'aof-load-truncated' configuration option to yes and restart the server.",
                        path.display()
                    )));
                }
                tracing::warn!(
                    file = %path.display(),
                    "!!! Warning: short read while loading the AOF file !!!"
                );
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(valid))
                    .map_err(super::io("can't truncate the AOF", path))?;
                tracing::warn!(
                    file = %path.display(),
                    valid_bytes = valid,
                    removed = size - valid,
                    "AOF loaded anyway because aof-load-truncated is enabled"
                );
                loaded.truncated = Some((path.clone(), size - valid));
            }
        }
        loaded.files += 1;
    }
    let mut s = shared.store.lock();
    s.dirty = 0;
    s.persist.last_load_keys_loaded = s.total_keys() as u64;
    Ok(Some(loaded))
}

fn bad_format(path: &Path, at: u64) -> AofError {
    AofError::Load(format!(
        "Bad file format reading the append only file {} (at byte {at}): make a backup of \
         your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
        path.display()
    ))
}

fn load_file(
    shared: &Arc<Shared>,
    client: &mut Client,
    path: &Path,
    loaded: &mut Loaded,
) -> Result<End, AofError> {
    let mut f = std::fs::File::open(path).map_err(super::io("can't open the AOF", path))?;
    let mut head = [0u8; 5];
    let n = read_full(&mut f, &mut head).map_err(super::io("can't read the AOF", path))?;
    if n == 5 && &head == b"REDIS" {
        let data = std::fs::read(path).map_err(super::io("can't read the AOF", path))?;
        let consumed = {
            let mut s = shared.store.lock();
            let lim = Limits::from_config(&s.config);
            let n = s.dbs.len();
            let dbs = &mut s.dbs;
            let info = file::load(&data, &lim, n, now_ms(), |k| {
                let db = &mut dbs[k.db];
                db.set(&k.key, k.value);
                if let Some(at) = k.expire_ms {
                    db.set_expire(&k.key, at);
                }
            })
            .map_err(|e| AofError::Load(format!("{}: bad RDB preamble: {e}", path.display())))?;
            crate::server::persist::load_libraries(&mut s, &info.functions).map_err(|e| {
                AofError::Load(format!("{}: bad RDB preamble: {e}", path.display()))
            })?;
            loaded.rdb_keys += info.keys_loaded;
            info.consumed
        };
        let rest = &data[consumed.min(data.len())..];
        return replay(shared, client, path, rest, consumed as u64, loaded);
    }
    let chained = Read::chain(std::io::Cursor::new(head[..n].to_vec()), f);
    replay(shared, client, path, chained, 0, loaded)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Replays the commands read from `src`, whose first byte is at file offset `start`.
fn replay(
    shared: &Arc<Shared>,
    client: &mut Client,
    path: &Path,
    mut src: impl Read,
    start: u64,
    loaded: &mut Loaded,
) -> Result<End, AofError> {
    const CHUNK: usize = 1 << 20;
    let lim = request::Limits {
        max_bulk_len: usize::MAX / 2,
        authenticated: true,
    };
    let mut rd = BytesMut::with_capacity(CHUNK);
    let mut parser = RequestParser::new();
    let mut out = Out::new();
    // File offset of rd[0]; end of the last command outside a MULTI block.
    let mut off = start;
    let mut valid = start;
    let mut eof = false;
    loop {
        if !eof {
            let len = rd.len();
            rd.resize(len + CHUNK, 0);
            let n = src
                .read(&mut rd[len..])
                .map_err(super::io("can't read the AOF", path))?;
            rd.truncate(len + n);
            eof = n == 0;
        }
        let mut pos = 0;
        {
            let mut store = shared.store.lock();
            let mut argv: Vec<&[u8]> = Vec::new();
            while pos < rd.len() {
                if rd[pos] != b'*' {
                    return Err(bad_format(path, off + pos as u64));
                }
                let consumed = match parser.parse(&rd[pos..], &lim) {
                    Ok(Request::Multibulk { consumed }) => consumed,
                    Err(request::ParseError::Incomplete) => break,
                    _ => return Err(bad_format(path, off + pos as u64)),
                };
                argv.clear();
                argv.extend(parser.spans().iter().map(|&(s, e)| &rd[pos + s..pos + e]));
                let Some(name) = argv.first() else {
                    return Err(bad_format(path, off + pos as u64));
                };
                if registry().lookup(name).is_none() {
                    return Err(AofError::Load(format!(
                        "Unknown command '{}' reading the append only file {}",
                        String::from_utf8_lossy(name),
                        path.display()
                    )));
                }
                out.buf.clear();
                let mut ctx = Ctx {
                    store: &mut store,
                    client: &mut *client,
                    out: &mut out,
                    shared,
                    now_ms: now_ms(),
                };
                execute(&mut ctx, &argv);
                client.action = None;
                loaded.commands += 1;
                pos += consumed;
                if client.multi.is_none() {
                    valid = off + pos as u64;
                }
            }
        }
        rd.advance(pos);
        off += pos as u64;
        if eof {
            if !rd.is_empty() || client.multi.is_some() {
                return Ok(End::Torn(valid));
            }
            return Ok(End::Complete);
        }
    }
}
