//! `maxmemory` eviction with Redis's policies, and the LRU/LFU clocks.
//!
//! As in Redis, eviction is approximate: each round samples `maxmemory-samples` keys from
//! random slots and evicts the best candidate for the policy, until memory is under the limit.

use std::sync::atomic::{AtomicU32, Ordering};

use rand::Rng;

use super::{Store, now_ms};
use crate::config::EvictionPolicy;

/// The LFU field of a key just written: counter 5 (Redis's `LFU_INIT_VAL`) stamped now.
pub fn lfu_init() -> u32 {
    (now_minutes() << 8) | 5
}

/// The LRU clock: seconds, 24 bits, as Redis's `LRU_CLOCK()`.
pub fn lru_clock_now() -> u32 {
    ((now_ms() / 1000) & 0xff_ffff) as u32
}

fn now_minutes() -> u32 {
    ((now_ms() / 60_000) & 0xffff) as u32
}

/// Idle seconds of an entry stamped with `lru` at clock `clock` (OBJECT IDLETIME).
pub fn idle_secs(lru: u32, clock: u32) -> u64 {
    if clock >= lru {
        (clock - lru) as u64
    } else {
        (clock as u64 + 0xff_ffff) - lru as u64
    }
}

/// `lfu-log-factor` and `lfu-decay-time`, as [`Store::sync_clock`] last copied them.
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Sets the LFU parameters every counter update and OBJECT FREQ use.
pub fn set_lfu_params(log_factor: u32, decay_minutes: u32) {
    LFU_LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    LFU_DECAY_TIME.store(decay_minutes, Ordering::Relaxed);
}

/// Decays and increments an LFU field on access (`lfu-log-factor`, `lfu-decay-time`).
pub fn lfu_touch(field: u32) -> u32 {
    let counter = lfu_decayed(field);
    let counter = lfu_log_incr(counter);
    (now_minutes() << 8) | counter as u32
}

/// The LFU counter after time decay: one less per `lfu-decay-time` minutes since the last
/// access, none when it is 0 (OBJECT FREQ shows it).
pub fn lfu_decayed(field: u32) -> u8 {
    let counter = (field & 0xff) as u8;
    let period = LFU_DECAY_TIME.load(Ordering::Relaxed);
    if period == 0 {
        return counter;
    }
    let ldt = field >> 8;
    let now = now_minutes();
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    counter.saturating_sub((elapsed / period).min(255) as u8)
}

fn lfu_log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let r: f64 = rand::rng().random();
    let base = (counter as f64 - 5.0).max(0.0);
    let factor = LFU_LOG_FACTOR.load(Ordering::Relaxed) as f64;
    let p = 1.0 / (base * factor + 1.0);
    if r < p { counter + 1 } else { counter }
}

/// Result of trying to get under `maxmemory`.
#[derive(Debug, PartialEq, Eq)]
pub enum EvictOutcome {
    /// Memory is under the limit (or no limit).
    Ok,
    /// Over the limit and nothing can be evicted: refuse the write.
    Oom,
}

impl Store {
    /// Evicts keys until the memory counted for eviction (`usage()`, the allocator's
    /// figure, minus [`Store::not_counted_for_evict`]) is at most `maxmemory`.
    pub fn evict_to_fit(&mut self, usage: impl Fn() -> usize) -> EvictOutcome {
        let max = self.config.maxmemory as usize;
        if max == 0 || usage() <= max {
            return EvictOutcome::Ok;
        }
        // What writers let go of since the last check is only the save's now.
        self.settle_snapshot();
        if usage().saturating_sub(self.not_counted_for_evict()) <= max {
            return EvictOutcome::Ok;
        }
        let policy = self.config.maxmemory_policy;
        if policy == EvictionPolicy::NoEviction {
            return EvictOutcome::Oom;
        }
        let mut rounds = 0;
        while usage().saturating_sub(self.not_counted_for_evict()) > max {
            rounds += 1;
            if rounds > 100_000 || !self.evict_one(policy) {
                return EvictOutcome::Oom;
            }
            self.stats.evicted_keys += 1;
            // An evicted key the save still holds frees nothing: count it as the save's.
            self.settle_snapshot();
        }
        EvictOutcome::Ok
    }

    /// Evicts one key chosen by `policy` from a sample; false if no candidate exists.
    fn evict_one(&mut self, policy: EvictionPolicy) -> bool {
        let volatile = matches!(
            policy,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        );
        let samples = self.config.maxmemory_samples.max(1);
        let clock = self.lru_clock;
        let mut rng = rand::rng();
        // (score: higher is a better victim, db, key)
        let mut best: Option<(u64, usize, super::SmallBytes)> = None;
        for db_idx in 0..self.dbs.len() {
            let db = &self.dbs[db_idx];
            let pool = if volatile { db.expires_len() } else { db.len() };
            if pool == 0 {
                continue;
            }
            let mut taken = 0;
            let mut tries = 0;
            while taken < samples && tries < samples * 64 {
                tries += 1;
                let slot = rng.random_range(0..codis_model::MAX_SLOT_NUM);
                let t = db.slot(slot);
                let n = if volatile {
                    t.expires.len()
                } else {
                    t.keys.len()
                };
                if n == 0 {
                    continue;
                }
                let i = rng.random_range(0..n);
                let (key, exp) = if volatile {
                    let (k, at) = t.expires.get_index(i).expect("in range");
                    (k, Some(*at))
                } else {
                    (t.keys.get_index(i).expect("in range").0, None)
                };
                let Some(entry) = t.keys.get(key.as_bytes()) else {
                    continue;
                };
                taken += 1;
                let score = match policy {
                    EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => {
                        idle_secs(entry.lru, clock)
                    }
                    EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => {
                        255 - lfu_decayed(entry.lru) as u64
                    }
                    EvictionPolicy::VolatileTtl => u64::MAX - exp.unwrap_or(u64::MAX),
                    _ => rng.random::<u32>() as u64,
                };
                if best.as_ref().is_none_or(|b| score >= b.0) {
                    best = Some((score, db_idx, key.clone()));
                }
            }
        }
        match best {
            Some((_, db_idx, key)) => {
                self.dbs[db_idx].remove(&key);
                self.dbs[db_idx].note_removed(&key);
                true
            }
            None => false,
        }
    }
}
