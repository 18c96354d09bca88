//! `codis-fe`: the web console and REST API over every product line. Flags are Codis 3.2's
//! (spec §8) plus `--db` and `--admin-password`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backend::fe::auth::SessionPolicy;
use backend::fe::cli::FeArgs;
use backend::fe::products::{PollPolicy, Registry};
use backend::fe::{AppState, Settings, app, auth, db, spawn_upkeep};
use clap::Parser;
use codis_host::logging::{self, parse_log_level};
use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    let args = FeArgs::parse();
    if args.version {
        println!("version: {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let level = match args.log_level.as_deref().map(parse_log_level) {
        None => LevelFilter::INFO,
        Some(Some(l)) => l,
        Some(None) => {
            eprintln!("codis-fe: invalid --log-level, expected ERROR, WARN, INFO, DEBUG or NONE");
            return ExitCode::from(2);
        }
    };
    let _handle = logging::init(args.log.clone(), level);
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("codis-fe: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn start(args: FeArgs) -> anyhow::Result<()> {
    if !(args.poll_interval > 0.0 && args.poll_interval <= 3600.0) {
        anyhow::bail!("--poll-interval must be between 0 and 3600 seconds");
    }
    let _pidfile = args
        .pidfile
        .as_deref()
        .map(codis_host::PidFile::create)
        .transpose()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.ncpu {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let db_path = args.db_path();
        let pool = db::open(&db_path.to_string_lossy()).await?;
        let interrupted = backend::fe::close_interrupted_changes(&pool).await?;
        if interrupted > 0 {
            tracing::warn!("{interrupted} change(s) were running when codis-fe last stopped; marked interrupted in the audit history");
        }
        if let Some(pw) = auth::ensure_admin(&pool, args.admin_password.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("creating the admin account: {}", e.message))?
        {
            println!("codis-fe: created user admin with password {pw} (shown once; change it)");
        }
        let coordinator = match args.coordinator() {
            Some((name, addr, auth)) => Some(
                codis_coordinator::connect(name, &addr, &auth, Duration::ZERO)
                    .with_context(|| format!("coordinator {name} {addr}"))?,
            ),
            None => None,
        };
        let policy = PollPolicy {
            interval: Duration::from_secs_f64(args.poll_interval),
            ..PollPolicy::default()
        };
        let registry = Registry::new(pool.clone(), coordinator, args.dashboard_list.clone(), policy);
        registry.spawn_discovery();
        let state = AppState::new(
            pool,
            Arc::clone(&registry),
            Settings {
                session: SessionPolicy {
                    secure_cookie: args.secure_cookie,
                    ..SessionPolicy::default()
                },
                assets_dir: args.assets(),
            },
        );
        spawn_upkeep(&state);
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listen on {}", args.listen))?;
        tracing::info!(listen = %listener.local_addr()?, db = %db_path.display(), "codis-fe online");
        let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("install SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::warn!("signal received: closing");
            })
            .await?;
        anyhow::Ok(())
    })
}
