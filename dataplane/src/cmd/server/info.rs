//! INFO [section ...]: Redis 7.0's sections and field names, filled from our counters.
//! Fields we have no equivalent for (forks, AOF, replication backlog, allocator internals)
//! are reported with the value an idle Redis without persistence shows.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::super::{CmdResult, Ctx, registry};
use super::{bytes_human, rss_bytes, used_and_peak};

/// Every section, in the order INFO prints them.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "migration",
];

/// Sections of `INFO` / `INFO default`.
const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// INFO [section ...]: `default` (also no argument), `all`, `everything`, or section names,
/// case-insensitive; unknown names are ignored. Sections always come in Redis's order.
pub(super) fn info(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut want = [false; SECTIONS.len()];
    let mut select = |names: &[&str]| {
        for n in names {
            if let Some(i) = SECTIONS.iter().position(|s| s == n) {
                want[i] = true;
            }
        }
    };
    if args.len() == 1 {
        select(DEFAULT);
    }
    for a in &args[1..] {
        let name = String::from_utf8_lossy(a).to_ascii_lowercase();
        match name.as_str() {
            "default" => select(DEFAULT),
            "all" | "everything" => select(SECTIONS),
            other => select(&[other]),
        }
    }
    let mut text = String::new();
    for (i, name) in SECTIONS.iter().enumerate() {
        if !want[i] {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(ctx, name, &mut text);
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// `uname -sr` plus the architecture, as Redis's `os` field.
fn os_name() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let sys = read("/proc/sys/kernel/ostype");
    let sys = if sys.is_empty() {
        std::env::consts::OS.to_string()
    } else {
        sys
    };
    format!(
        "{sys} {} {}",
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

/// User and system CPU seconds of the process, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / 100.0;
    (tick(11), tick(12))
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn section(ctx: &mut Ctx<'_>, name: &str, t: &mut String) {
    macro_rules! field {
        ($($arg:tt)*) => {{
            let _ = write!(t, $($arg)*);
            t.push_str("\r\n");
        }};
    }
    if name == "memory" || name == "persistence" {
        ctx.store.settle_snapshot();
    }
    let store = &*ctx.store;
    let shared = ctx.shared;
    match name {
        "server" => {
            let uptime = shared.started.elapsed().as_secs();
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            field!("# Server");
            field!("redis_version:{}", crate::server::REDIS_VERSION);
            field!("redis_git_sha1:00000000");
            field!("redis_git_dirty:0");
            field!("redis_build_id:0");
            field!("redis_mode:standalone");
            field!("os:{}", os_name());
            field!("arch_bits:{}", usize::BITS);
            field!("monotonic_clock:POSIX clock_gettime");
            field!("multiplexing_api:epoll");
            field!("atomicvar_api:c11-builtin");
            field!("gcc_version:0.0.0");
            field!("process_id:{}", std::process::id());
            field!("process_supervised:no");
            field!("run_id:{}", shared.run_id);
            field!("tcp_port:{}", shared.port.load(Ordering::Relaxed));
            field!("server_time_usec:{now_us}");
            field!("uptime_in_seconds:{uptime}");
            field!("uptime_in_days:{}", uptime / 86400);
            field!("hz:{}", store.config.hz);
            field!("configured_hz:{}", store.config.hz);
            field!("lru_clock:{}", store.lru_clock);
            field!("executable:{}", shared.executable);
            field!(
                "config_file:{}",
                shared
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            field!("io_threads_active:0");
        }
        "clients" => {
            let (connected, blocked) = {
                let clients = shared.clients.lock();
                let blocked = clients
                    .values()
                    .filter(|c| c.blocked.load(Ordering::Relaxed))
                    .count();
                (clients.len(), blocked)
            };
            field!("# Clients");
            field!("connected_clients:{connected}");
            field!("cluster_connections:0");
            field!("maxclients:{}", store.config.maxclients);
            field!("client_recent_max_input_buffer:0");
            field!("client_recent_max_output_buffer:0");
            field!("blocked_clients:{blocked}");
            field!("tracking_clients:0");
            field!("clients_in_timeout_table:0");
        }
        "memory" => {
            let (used, peak) = used_and_peak();
            let (used, peak) = (used as u64, peak as u64);
            let rss = rss_bytes();
            let sysmem = total_system_memory();
            let ratio = if used > 0 {
                rss as f64 / used as f64
            } else {
                0.0
            };
            field!("# Memory");
            field!("used_memory:{used}");
            field!("used_memory_human:{}", bytes_human(used));
            field!("used_memory_rss:{rss}");
            field!("used_memory_rss_human:{}", bytes_human(rss));
            field!("used_memory_peak:{peak}");
            field!("used_memory_peak_human:{}", bytes_human(peak));
            field!(
                "used_memory_peak_perc:{:.2}%",
                if peak > 0 {
                    used as f64 * 100.0 / peak as f64
                } else {
                    0.0
                }
            );
            field!("used_memory_overhead:0");
            field!("used_memory_startup:0");
            field!("used_memory_dataset:{used}");
            field!("used_memory_dataset_perc:100.00%");
            field!("allocator_allocated:{used}");
            field!("allocator_active:{used}");
            field!("allocator_resident:{rss}");
            field!("total_system_memory:{sysmem}");
            field!("total_system_memory_human:{}", bytes_human(sysmem));
            field!("used_memory_lua:0");
            field!("used_memory_vm_eval:0");
            field!("used_memory_lua_human:0B");
            field!("used_memory_scripts_eval:0");
            field!("number_of_cached_scripts:0");
            field!("number_of_functions:0");
            field!("number_of_libraries:0");
            field!("used_memory_vm_functions:0");
            field!("used_memory_vm_total:0");
            field!("used_memory_vm_total_human:0B");
            field!("used_memory_functions:0");
            field!("used_memory_scripts:0");
            field!("used_memory_scripts_human:0B");
            field!("maxmemory:{}", store.config.maxmemory);
            field!("maxmemory_human:{}", bytes_human(store.config.maxmemory));
            field!("maxmemory_policy:{}", store.config.maxmemory_policy.name());
            field!("mem_fragmentation_ratio:{ratio:.2}");
            field!("mem_fragmentation_bytes:{}", rss as i64 - used as i64);
            field!(
                "mem_not_counted_for_evict:{}",
                store.not_counted_for_evict()
            );
            field!("mem_replication_backlog:0");
            field!("mem_total_replication_buffers:0");
            field!("mem_clients_slaves:0");
            field!("mem_clients_normal:0");
            field!("mem_cluster_links:0");
            field!("mem_aof_buffer:{}", store.aof.buffered_bytes());
            field!("mem_allocator:mimalloc");
            field!("active_defrag_running:0");
            field!(
                "lazyfree_pending_objects:{}",
                crate::store::lazyfree::pending()
            );
            field!("lazyfreed_objects:{}", crate::store::lazyfree::freed());
        }
        "persistence" => crate::server::persist::info(store, t),
        "stats" => {
            let st = &store.stats;
            let (hits, misses, expired) = store.dbs.iter().fold((0, 0, 0), |a, d| {
                (a.0 + d.hits, a.1 + d.misses, a.2 + d.expired)
            });
            let (channels, patterns) = shared.pubsub.lock().counts();
            field!("# Stats");
            field!("total_connections_received:{}", st.connections_received);
            field!("total_commands_processed:{}", st.total_commands);
            field!("instantaneous_ops_per_sec:{}", st.instantaneous_ops);
            field!(
                "total_net_input_bytes:{}",
                shared.net_input.load(Ordering::Relaxed)
            );
            field!(
                "total_net_output_bytes:{}",
                shared.net_output.load(Ordering::Relaxed)
            );
            field!("total_net_repl_input_bytes:0");
            field!("total_net_repl_output_bytes:0");
            field!("instantaneous_input_kbps:0.00");
            field!("instantaneous_output_kbps:0.00");
            field!("instantaneous_input_repl_kbps:0.00");
            field!("instantaneous_output_repl_kbps:0.00");
            field!("rejected_connections:{}", st.rejected_connections);
            field!("sync_full:{}", store.repl.sync_full);
            field!("sync_partial_ok:{}", store.repl.sync_partial_ok);
            field!("sync_partial_err:{}", store.repl.sync_partial_err);
            field!("expired_keys:{expired}");
            field!("expired_stale_perc:{:.2}", st.expired_stale_perc);
            field!("expired_time_cap_reached_count:0");
            field!("expire_cycle_cpu_milliseconds:0");
            field!("evicted_keys:{}", st.evicted_keys);
            field!("evicted_clients:0");
            field!("total_eviction_exceeded_time:0");
            field!("current_eviction_exceeded_time:0");
            field!("keyspace_hits:{hits}");
            field!("keyspace_misses:{misses}");
            field!("pubsub_channels:{channels}");
            field!("pubsub_patterns:{patterns}");
            field!("pubsubshard_channels:0");
            field!("latest_fork_usec:0");
            field!("total_forks:0");
            field!("migrate_cached_sockets:0");
            field!("slave_expires_tracked_keys:0");
            field!("active_defrag_hits:0");
            field!("active_defrag_misses:0");
            field!("active_defrag_key_hits:0");
            field!("active_defrag_key_misses:0");
            field!("total_active_defrag_time:0");
            field!("current_active_defrag_time:0");
            field!("tracking_total_keys:0");
            field!("tracking_total_items:0");
            field!("tracking_total_prefixes:0");
            field!("unexpected_error_replies:0");
            field!("total_error_replies:{}", st.total_error_replies);
            field!("dump_payload_sanitizations:0");
            field!("total_reads_processed:0");
            field!("total_writes_processed:0");
            field!("io_threaded_reads_processed:0");
            field!("io_threaded_writes_processed:0");
            field!("reply_buffer_shrinks:0");
            field!("reply_buffer_expands:0");
        }
        "replication" => crate::server::repl::info(store, t),
        "cpu" => {
            let (user, sys) = cpu_times();
            field!("# CPU");
            field!("used_cpu_sys:{sys:.6}");
            field!("used_cpu_user:{user:.6}");
            field!("used_cpu_sys_children:0.000000");
            field!("used_cpu_user_children:0.000000");
            field!("used_cpu_sys_main_thread:{sys:.6}");
            field!("used_cpu_user_main_thread:{user:.6}");
        }
        "modules" => field!("# Modules"),
        "commandstats" => {
            field!("# Commandstats");
            let reg = registry();
            for (id, st) in store.cmdstats.iter().enumerate() {
                if st.calls == 0 && st.rejected == 0 && st.failed == 0 {
                    continue;
                }
                let per_call = if st.calls > 0 {
                    st.usec as f64 / st.calls as f64
                } else {
                    0.0
                };
                field!(
                    "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                    reg.commands[id].name,
                    st.calls,
                    st.usec,
                    st.rejected,
                    st.failed
                );
            }
        }
        "errorstats" => {
            field!("# Errorstats");
            for (code, n) in &store.errorstats {
                field!("errorstat_{code}:count={n}");
            }
        }
        "latencystats" => field!("# Latencystats"),
        "cluster" => {
            field!("# Cluster");
            field!("cluster_enabled:0");
        }
        "keyspace" => {
            field!("# Keyspace");
            for d in store.dbs.iter().filter(|d| !d.is_empty()) {
                field!(
                    "db{}:keys={},expires={},avg_ttl=0",
                    d.id,
                    d.len(),
                    d.expires_len()
                );
            }
        }
        "migration" => t.push_str(&crate::cmd::migrate_async::info_section(store)),
        _ => {}
    }
}
