//! Background freeing, as Redis's lazyfree thread: UNLINK of a big value and FLUSHDB /
//! FLUSHALL ASYNC hand what they remove to one dropper thread, so freeing millions of
//! allocations never happens under the store lock.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// A value with more elements than this is freed in the background by UNLINK (Redis's
/// `LAZYFREE_THRESHOLD`).
pub const THRESHOLD: usize = 64;

type Garbage = Box<dyn Send>;

static TX: OnceLock<Option<mpsc::Sender<Garbage>>> = OnceLock::new();
static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

fn sender() -> Option<&'static mpsc::Sender<Garbage>> {
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("codis-lazyfree".into())
            .spawn(move || {
                for g in rx {
                    drop(g);
                    PENDING.fetch_sub(1, Ordering::Relaxed);
                    FREED.fetch_add(1, Ordering::Relaxed);
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Drops `v` on the dropper thread (here if the thread could not start).
pub fn drop_later<T: Send + 'static>(v: T) {
    match sender() {
        Some(tx) => {
            PENDING.fetch_add(1, Ordering::Relaxed);
            if let Err(mpsc::SendError(g)) = tx.send(Box::new(v)) {
                PENDING.fetch_sub(1, Ordering::Relaxed);
                drop(g);
            }
        }
        None => drop(v),
    }
}

/// Objects handed over and not freed yet (INFO `lazyfree_pending_objects`).
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Objects freed by the dropper thread (INFO `lazyfreed_objects`).
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}
