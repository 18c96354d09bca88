//! `codis-server`: a Redis 7 compatible server whose keyspace is split into 1024 Codis slots.
//!
//! Starts like redis-server: `codis-server [redis.conf] [--port 6380 --key value ...]`.

use std::path::PathBuf;
use std::process::ExitCode;

use dataplane::alloc::CountingAlloc;
use dataplane::config::Config;
use dataplane::server::{Shared, aof, persist, run};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const USAGE: &str = "Usage: codis-server [/path/to/redis.conf] [options] [-]
       codis-server -v or --version
       codis-server -h or --help
       codis-server --test-config [/path/to/redis.conf] [options]

Examples:
       codis-server (run the server with default config)
       codis-server /etc/redis/6379.conf
       codis-server --port 7777
       codis-server /etc/myredis.conf --loglevel verbose --maxmemory 1gb";

fn main() -> ExitCode {
    dataplane::alloc::tune_for_server();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "codis-server v={} (redis_version={}) rust",
            env!("CARGO_PKG_VERSION"),
            dataplane::server::REDIS_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let test_config = if let Some(i) = args.iter().position(|a| a == "--test-config") {
        args.remove(i);
        true
    } else {
        false
    };
    let mut config = Config::default();
    let mut config_file = None;
    let mut warnings = Vec::new();
    if let Some(first) = args.first().filter(|a| !a.starts_with("--")).cloned() {
        args.remove(0);
        let path = PathBuf::from(&first);
        match config.load_file(&path) {
            Ok(w) => warnings.extend(w),
            Err(e) => {
                eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
                return ExitCode::from(1);
            }
        }
        config_file = std::fs::canonicalize(&path).ok();
    }
    match config.apply_args(&args) {
        Ok(w) => warnings.extend(w),
        Err(e) => {
            eprintln!("*** FATAL CONFIG ERROR ***\n{e}");
            return ExitCode::from(1);
        }
    }
    if test_config {
        println!("Configuration test passed");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Err(e) = std::env::set_current_dir(&config.dir) {
        tracing::error!(error = %e, dir = %config.dir, "can't chdir");
        return ExitCode::from(1);
    }
    // `dir` is now the working directory; keep it absolute so `dir`/`dbfilename` stays right.
    if let Ok(cwd) = std::env::current_dir() {
        config.dir = cwd.display().to_string();
    }
    if !config.pidfile.is_empty()
        && let Err(e) = std::fs::write(&config.pidfile, format!("{}\n", std::process::id()))
    {
        tracing::warn!(error = %e, "failed to write pidfile");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("can't start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let pidfile = config.pidfile.clone();
    let code = rt.block_on(async move {
        let backlog = config
            .get("tcp-backlog")
            .and_then(|v| v.parse().ok())
            .unwrap_or(511);
        let addrs: Vec<String> = config
            .bind
            .iter()
            .map(|b| format!("{b}:{}", config.port))
            .collect();
        let mut listener = None;
        for a in &addrs {
            match dataplane::server::bind_listener(a, backlog) {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) => tracing::warn!(addr = %a, error = %e, "could not bind"),
            }
        }
        let Some(listener) = listener else {
            tracing::error!("failed listening on {addrs:?}");
            return ExitCode::from(1);
        };
        let shared = Shared::new(config, config_file);
        if let Err(e) = load_data(&shared) {
            tracing::error!(error = %e, "Fatal error loading the DB. Exiting.");
            eprintln!("Fatal error loading the DB: {e}. Exiting.");
            return ExitCode::from(1);
        }
        tracing::info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "Ready to accept connections"
        );
        let s2 = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s2.request_shutdown();
        });
        #[cfg(unix)]
        {
            let s3 = shared.clone();
            tokio::spawn(async move {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    term.recv().await;
                    s3.request_shutdown();
                }
            });
        }
        run(listener, shared.clone()).await;
        // SIGTERM/SIGINT: save as Redis does when `save` points are configured (SHUTDOWN
        // already decided for itself).
        let mut store = shared.store.lock();
        aof::shutdown(&mut store);
        if !store.persist.shutdown_handled && !persist::save_points(&store.config).is_empty() {
            persist::cancel_bgsave(&mut store);
            tracing::warn!("Saving the final RDB snapshot before exiting.");
            if let Err(e) = persist::save_sync(&mut store) {
                tracing::error!(error = %e, "Error trying to save the DB");
            }
        }
        drop(store);
        tracing::info!("server is now ready to exit, bye bye...");
        ExitCode::SUCCESS
    });
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

/// Loads the dataset at start: the AOF when `appendonly yes` (then opens it for appending),
/// else the RDB file. Beyond Redis, turning `appendonly` on over an existing RDB file with
/// no AOF yet loads the RDB file (Redis would start empty) and makes it the first base.
fn load_data(shared: &std::sync::Arc<Shared>) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let aof_on = aof::configured(&shared.store.lock().config);
    let mut upgrade = false;
    let mut from_aof = false;
    if aof_on && let Some(l) = aof::load::load(shared)? {
        tracing::info!(
            files = l.files,
            commands = l.commands,
            rdb_keys = l.rdb_keys,
            secs = t0.elapsed().as_secs_f64(),
            "DB loaded from append only file"
        );
        upgrade = l.upgrade;
        from_aof = true;
    }
    let mut store = shared.store.lock();
    if !from_aof && let Some(info) = persist::load(&mut store)? {
        tracing::info!(
            keys = info.keys_loaded,
            expired = info.keys_expired,
            secs = t0.elapsed().as_secs_f64(),
            "DB loaded from disk"
        );
    }
    if aof_on {
        aof::open_at_start(&mut store, upgrade)?;
    }
    Ok(())
}

fn init_logging(config: &Config) {
    let level = match config.loglevel.as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if config.logfile.is_empty() {
        builder.init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                eprintln!("can't open the log file {}: {e}", config.logfile);
                builder.init();
            }
        }
    }
}
