//! The filesystem coordinator: Codis's `fs` backend, for a single host.
//!
//! Root directory `R` (the coordinator address):
//! - the value of node `P` is the file `R/data/P` (so `R/data/codis3/<product>/topom`);
//! - writes go to a fresh temp file in `R/temp` (`<unixtime>.<pid>-<nanos>-<n>`), then are
//!   renamed over the target, so a reader never sees half a value;
//! - every operation holds an exclusive `flock` on `R/data.lck` (content `{"pid":..,"now":..}`)
//!   for its duration; another client's operation is waited for up to 250 ms, after which the
//!   caller gets [`Error::Locked`] rather than waiting on a stuck holder;
//! - listings are sorted; there are no ephemeral nodes ([`Error::Unsupported`]).
//!
//! File I/O runs on tokio's blocking pool, bounded like every other backend's operations.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    Backend, Coordinator, EphemeralWatch, Error, Result, bounded, check_node_path, check_path,
    child_path,
};

/// Bound of one filesystem operation (local I/O; only a hung disk or NFS would reach it).
const FS_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A coordinator stored in a local directory. See the module docs for the layout.
#[derive(Debug)]
pub struct FsCoordinator {
    dirs: Arc<Dirs>,
    closed: AtomicBool,
}

/// The three locations under the root.
#[derive(Debug)]
struct Dirs {
    data: PathBuf,
    temp: PathBuf,
    lock: PathBuf,
    /// Operations of one client wait for each other; only other clients (processes) are
    /// refused by the non-blocking `flock`.
    serial: std::sync::Mutex<()>,
}

impl FsCoordinator {
    /// A client of the directory `root` (made absolute; created on first write).
    ///
    /// # Errors
    /// [`Error::Io`] if the current directory is needed and unknown.
    pub fn new(root: &str) -> Result<FsCoordinator> {
        let root = std::path::absolute(root).map_err(|source| Error::Io {
            op: "open",
            path: root.to_owned(),
            source,
        })?;
        Ok(FsCoordinator {
            dirs: Arc::new(Dirs {
                data: root.join("data"),
                temp: root.join("temp"),
                lock: root.join("data.lck"),
                serial: std::sync::Mutex::new(()),
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// The lock file, `R/data.lck` (other processes hold it while they operate).
    pub fn lock_file(&self) -> &Path {
        &self.dirs.lock
    }

    /// Runs `f` on the blocking pool with the root locked, after the closed and path checks.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        path: &str,
        f: impl FnOnce(&Dirs, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(Backend::Filesystem.name()));
        }
        let dirs = Arc::clone(&self.dirs);
        let owned = path.to_owned();
        let join_path = path.to_owned();
        let work = async move {
            tokio::task::spawn_blocking(move || {
                let _serial = dirs
                    .serial
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _lock = RootLock::acquire(&dirs.lock)?;
                f(&dirs, &owned)
            })
            .await
            .map_err(|join| Error::Io {
                op,
                path: join_path,
                source: io::Error::other(join),
            })?
        };
        bounded(Backend::Filesystem, op, path, FS_OPERATION_TIMEOUT, work).await
    }
}

impl Dirs {
    /// `R/data/<path>`; `path` is checked (absolute, no `..`), so it stays under `R/data`.
    fn real(&self, path: &str) -> PathBuf {
        self.data.join(path.trim_start_matches('/'))
    }

    /// Writes `data` to a temp file, then renames it to the node's file.
    fn write(&self, op: &'static str, path: &str, data: &[u8], must_be_new: bool) -> Result<()> {
        let io_err = |source| Error::Io {
            op,
            path: path.to_owned(),
            source,
        };
        let real = self.real(path);
        if must_be_new && fs::symlink_metadata(&real).is_ok() {
            return Err(Error::NodeExists(path.to_owned()));
        }
        if let Some(parent) = real.parent() {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        fs::create_dir_all(&self.temp).map_err(io_err)?;
        let temp = self.temp.join(temp_name());
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            fs::rename(&temp, &real)
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_err(err));
        }
        Ok(())
    }
}

/// A unique temp file name: `<unixtime>.<pid>-<nanos>-<n>` (Codis uses `<unixtime>.<random>`).
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.{}-{}-{n}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos()
    )
}

/// How long an operation waits for another client's lock before failing with `Locked`.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// The exclusive lock on `R/data.lck`, held for one operation.
///
/// `flock` (what `File::try_lock` uses on Unix) belongs to the open file description, so two
/// clients in one process exclude each other exactly like two processes do.
struct RootLock(File);

impl RootLock {
    fn acquire(lock: &Path) -> Result<RootLock> {
        let io_err = |source| Error::Io {
            op: "lock",
            path: lock.display().to_string(),
            source,
        };
        if let Some(dir) = lock.parent() {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock)
            .map_err(io_err)?;
        // A few hundred milliseconds of retries ride out another client's single operation
        // (a codis-fe listing products while the dashboard writes); a holder stuck longer
        // than that still fails the caller fast.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => return Err(Error::Locked(lock.to_owned())),
                Err(TryLockError::Error(err)) => return Err(io_err(err)),
            }
        }
        // Who holds the lock, for an operator looking at a stuck root. Failing to write it does
        // not matter: the lock itself is what counts.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let owner = format!("{{\"pid\":{},\"now\":{now}}}", std::process::id());
        if let Err(err) = file
            .set_len(0)
            .and_then(|()| file.write_all(owner.as_bytes()))
        {
            tracing::warn!(error = %err, lock = %lock.display(), "filesystem: writing lock owner failed");
        }
        Ok(RootLock(file))
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        // Empty file = nobody inside; closing the file would release the lock anyway.
        let _ = self.0.set_len(0);
        let _ = self.0.unlock();
    }
}

#[async_trait::async_trait]
impl Coordinator for FsCoordinator {
    fn backend(&self) -> Backend {
        Backend::Filesystem
    }

    async fn create(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        let data = data.to_vec();
        self.run("create", path, move |dirs, path| {
            dirs.write("create", path, &data, true)
        })
        .await
    }

    async fn update(&self, path: &str, data: &[u8]) -> Result<()> {
        check_node_path(path)?;
        let data = data.to_vec();
        self.run("update", path, move |dirs, path| {
            dirs.write("update", path, &data, false)
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_node_path(path)?;
        self.run("delete", path, |dirs, path| {
            let real = dirs.real(path);
            // Recursive, like Codis's `os.RemoveAll`.
            let removed = match fs::symlink_metadata(&real) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&real),
                Ok(_) => fs::remove_file(&real),
                Err(err) => Err(err),
            };
            match removed {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(Error::Io {
                    op: "delete",
                    path: path.to_owned(),
                    source,
                }),
            }
        })
        .await
    }

    async fn read(&self, path: &str, must: bool) -> Result<Option<Vec<u8>>> {
        check_path(path)?;
        self.run("read", path, move |dirs, path| {
            match fs::read(dirs.real(path)) {
                Ok(data) => Ok(Some(data)),
                Err(err) if err.kind() == io::ErrorKind::NotFound && !must => Ok(None),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    Err(Error::NotFound(path.to_owned()))
                }
                Err(source) => Err(Error::Io {
                    op: "read",
                    path: path.to_owned(),
                    source,
                }),
            }
        })
        .await
    }

    async fn list(&self, path: &str, must: bool) -> Result<Vec<String>> {
        check_path(path)?;
        self.run("list", path, move |dirs, path| {
            let io_err = |source| Error::Io {
                op: "list",
                path: path.to_owned(),
                source,
            };
            let entries = match fs::read_dir(dirs.real(path)) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound && !must => return Ok(Vec::new()),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::NotFound(path.to_owned()));
                }
                Err(err) => return Err(io_err(err)),
            };
            let mut children = Vec::new();
            for entry in entries {
                let name = entry.map_err(io_err)?.file_name();
                children.push(child_path(path, &name.to_string_lossy()));
            }
            children.sort();
            Ok(children)
        })
        .await
    }

    async fn create_ephemeral(&self, path: &str, _data: &[u8]) -> Result<EphemeralWatch> {
        check_node_path(path)?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(Backend::Filesystem.name()));
        }
        Err(Error::Unsupported(Backend::Filesystem.name()))
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
