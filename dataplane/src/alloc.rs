//! A global allocator wrapper that counts live heap bytes, so `used_memory` (INFO, MEMORY,
//! `maxmemory` eviction) reports what the process really allocated.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The allocator underneath: mimalloc, as Redis ships jemalloc (glibc's malloc and free
/// were 8% of a script benchmark's time; Lua allocates through here too, via mlua). Built
/// without transparent huge pages (the `no_thp` feature) and tuned by [`tune_for_server`]:
/// with its defaults, 1,000,000 small keys took 177 MiB of RSS (redis-server: 115 MiB).
use mimalloc::MiMalloc as System;

/// mimalloc's version this crate builds ([`tune_for_server`]'s option number is its).
const MIMALLOC_VERSION: i32 = 30302;
/// `mi_option_purge_delay` in that version's `mi_option_t` (the bindings do not name it).
const MI_OPTION_PURGE_DELAY: i32 = 15;
/// See [`tune_for_server`].
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Memory mimalloc frees goes back to the system after 100 ms instead of its default 1 s
/// (1,000,000 small keys: about 118 MiB of RSS instead of 135 MiB). Not at once: with no
/// delay every big value's buffer was a fresh mapping with its page faults (2,000 GETs of a
/// 4 MiB value took 11.5 s instead of 4.4 s). Does nothing (and says so) if the linked
/// mimalloc is not the version the option number was read from. Call first thing in `main`.
#[allow(unsafe_code)]
pub fn tune_for_server() {
    // SAFETY: both only read or store an option value; mimalloc reads it at its next purge.
    unsafe {
        if libmimalloc_sys::mi_version() == MIMALLOC_VERSION {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        } else {
            eprintln!("mimalloc is not version {MIMALLOC_VERSION}: its purge delay is left as is");
        }
    }
}

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes allocated minus bytes freed by this thread (may go negative).
    static THREAD: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn thread_add(n: isize) {
    let _ = THREAD.try_with(|c| c.set(c.get().wrapping_add(n)));
}

/// Bytes allocated minus bytes freed by the calling thread so far: the difference of two
/// readings is what the code between them allocated (how much a background save's
/// copy-on-write keeps, exactly, under the store lock).
pub fn thread_allocated() -> isize {
    THREAD.try_with(|c| c.get()).unwrap_or(0)
}

/// mimalloc plus a counter of live bytes. Install it in a binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
#[derive(Debug)]
pub struct CountingAlloc;

/// MEMORY PURGE: mimalloc frees what it holds for the calling thread and returns free
/// memory to the system now.
#[allow(unsafe_code)]
pub fn purge() {
    // SAFETY: `mi_collect` only walks mimalloc's own structures; it may run on any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Bytes currently allocated through [`CountingAlloc`] (0 when it is not installed).
pub fn allocated_bytes() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to `System` with the same arguments and only adds bookkeeping
// on a relaxed atomic counter, so the `GlobalAlloc` contract is `System`'s. A relaxed counter is
// enough: the figure is a statistic, not a synchronisation point. Measured cost: one
// uncontended `lock xadd` plus a thread-local add per allocation.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            thread_add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        thread_add(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            thread_add(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            thread_add(new_size as isize - layout.size() as isize);
        }
        p
    }
}
