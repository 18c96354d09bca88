//! Request counters: totals, failures, error replies, and per-command calls and time.
//!
//! Each worker thread counts into its own [`LocalStats`] (no atomics on the request path) and
//! adds them to the shared [`Stats`] every 100 ms, as Codis flushes per-session counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::command;

/// Counters of one command.
#[derive(Debug, Default, Clone, Copy)]
pub struct CmdCounters {
    /// Requests.
    pub calls: u64,
    /// Total microseconds from receipt to reply.
    pub usecs: u64,
    /// Requests the proxy failed.
    pub fails: u64,
    /// Error replies delivered.
    pub redis_errors: u64,
}

impl CmdCounters {
    fn add(&mut self, o: &CmdCounters) {
        self.calls += o.calls;
        self.usecs += o.usecs;
        self.fails += o.fails;
        self.redis_errors += o.redis_errors;
    }
}

/// The proxy-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every decoded request.
    pub total: AtomicU64,
    /// Requests failed by the proxy, and session-level failures.
    pub fails: AtomicU64,
    /// Error replies delivered to clients.
    pub redis_errors: AtomicU64,
    /// Sessions accepted since start (or the last reset).
    pub sessions_total: AtomicU64,
    /// Sessions open now.
    pub sessions_alive: AtomicU64,
    /// Requests per second over the last second.
    pub qps: AtomicU64,
    /// Largest subscriber output (pushes queued and not yet written) any session reached.
    pub pubsub_output_peak: AtomicU64,
    /// Subscribers disconnected for reaching `session_max_pubsub_output`.
    pub pubsub_output_kills: AtomicU64,
    cmds: Mutex<CmdTable>,
}

#[derive(Debug, Default)]
struct CmdTable {
    known: Vec<CmdCounters>,
    unknown: HashMap<String, CmdCounters>,
}

/// One command's counters, for the stats API.
#[derive(Debug, Clone)]
pub struct CmdStat {
    /// Upper-case command name.
    pub opstr: String,
    /// Its counters.
    pub counters: CmdCounters,
}

impl Stats {
    /// Per-command counters of every command called at least once, sorted by name.
    pub fn commands(&self) -> Vec<CmdStat> {
        let t = self.cmds.lock();
        let table = command::table();
        let mut out: Vec<CmdStat> = t
            .known
            .iter()
            .enumerate()
            .filter(|(_, c)| c.calls > 0)
            .map(|(i, c)| CmdStat {
                opstr: table[i].name.to_string(),
                counters: *c,
            })
            .chain(t.unknown.iter().map(|(name, c)| CmdStat {
                opstr: name.clone(),
                counters: *c,
            }))
            .collect();
        out.sort_by(|a, b| a.opstr.cmp(&b.opstr));
        out
    }

    /// Zeroes the counters; `sessions.total` becomes the number of sessions alive.
    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.fails.store(0, Ordering::Relaxed);
        self.redis_errors.store(0, Ordering::Relaxed);
        self.qps.store(0, Ordering::Relaxed);
        let alive = self.sessions_alive.load(Ordering::Relaxed);
        self.sessions_total.store(alive, Ordering::Relaxed);
        let mut t = self.cmds.lock();
        t.known.clear();
        t.unknown.clear();
    }

    /// Adds a thread's counters and zeroes them.
    pub fn absorb(&self, local: &mut LocalStats) {
        if !local.dirty {
            return;
        }
        self.total.fetch_add(local.total, Ordering::Relaxed);
        self.fails.fetch_add(local.fails, Ordering::Relaxed);
        self.redis_errors
            .fetch_add(local.redis_errors, Ordering::Relaxed);
        let mut t = self.cmds.lock();
        if t.known.len() < local.known.len() {
            t.known.resize(local.known.len(), CmdCounters::default());
        }
        for (g, l) in t.known.iter_mut().zip(&local.known) {
            g.add(l);
        }
        for (name, l) in local.unknown.drain() {
            t.unknown.entry(name).or_default().add(&l);
        }
        drop(t);
        local.total = 0;
        local.fails = 0;
        local.redis_errors = 0;
        local
            .known
            .iter_mut()
            .for_each(|c| *c = CmdCounters::default());
        local.dirty = false;
    }
}

/// A worker thread's counters since the last flush.
#[derive(Debug)]
pub struct LocalStats {
    total: u64,
    fails: u64,
    redis_errors: u64,
    known: Vec<CmdCounters>,
    unknown: HashMap<String, CmdCounters>,
    dirty: bool,
}

impl Default for LocalStats {
    fn default() -> Self {
        LocalStats {
            total: 0,
            fails: 0,
            redis_errors: 0,
            known: vec![CmdCounters::default(); command::table().len()],
            unknown: HashMap::new(),
            dirty: false,
        }
    }
}

/// Identifies the command of a request for the counters.
#[derive(Debug, Clone)]
pub enum OpId {
    /// An entry of the command table.
    Known(usize),
    /// A name not in the table (upper-cased).
    Unknown(Box<str>),
}

impl LocalStats {
    /// Counts one answered request.
    pub fn record(&mut self, op: &OpId, usecs: u64, failed: bool, redis_error: bool) {
        self.total += 1;
        self.dirty = true;
        let c = match op {
            OpId::Known(i) => &mut self.known[*i],
            OpId::Unknown(name) => self.unknown.entry(name.to_string()).or_default(),
        };
        c.calls += 1;
        c.usecs += usecs;
        if failed {
            self.fails += 1;
            c.fails += 1;
        }
        if redis_error {
            self.redis_errors += 1;
            c.redis_errors += 1;
        }
    }

    /// Counts a session-level failure (protocol error, too many requests).
    pub fn session_failure(&mut self) {
        self.fails += 1;
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_and_resets() {
        let stats = Stats::default();
        let mut local = LocalStats::default();
        let get = command::lookup(b"GET").unwrap().index;
        local.record(&OpId::Known(get), 10, false, false);
        local.record(&OpId::Known(get), 30, false, true);
        local.record(&OpId::Unknown("FOO".into()), 5, true, true);
        stats.absorb(&mut local);
        assert_eq!(stats.total.load(Ordering::Relaxed), 3);
        assert_eq!(stats.fails.load(Ordering::Relaxed), 1);
        assert_eq!(stats.redis_errors.load(Ordering::Relaxed), 2);
        let cmds = stats.commands();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].opstr, "FOO");
        assert_eq!(cmds[1].opstr, "GET");
        assert_eq!(cmds[1].counters.calls, 2);
        assert_eq!(cmds[1].counters.usecs, 40);
        stats.absorb(&mut local);
        assert_eq!(
            stats.total.load(Ordering::Relaxed),
            3,
            "nothing counted twice"
        );
        stats.reset();
        assert!(stats.commands().is_empty());
    }
}
