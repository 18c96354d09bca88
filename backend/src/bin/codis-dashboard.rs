//! `codis-dashboard`: owns one product line's cluster state in a coordinator and serves
//! Codis 3.2's dashboard API. Flags and `dashboard.toml` keys are Codis's.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use backend::dashboard::api::{AppState, LogLevelSetter};
use backend::dashboard::cli::{DashboardArgs, VERSION, compile_info};
use backend::dashboard::config::default_config_text;
use backend::dashboard::topom::COORDINATOR_TIMEOUT;
use backend::dashboard::{Topom, identity, serve, take_lock};
use clap::Parser;
use codis_host::logging::{self, parse_log_level};
use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    let args = DashboardArgs::parse();
    if args.default_config {
        print!("{}", default_config_text());
        return ExitCode::SUCCESS;
    }
    if args.check_config {
        return match args.load_config() {
            Ok(c) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&c.to_json()).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("codis-dashboard: bad config: {e}");
                ExitCode::from(1)
            }
        };
    }
    if args.version {
        println!("version: {VERSION}\ncompile: {}", compile_info());
        return ExitCode::SUCCESS;
    }
    let level = match args.log_level.as_deref().map(parse_log_level) {
        None => LevelFilter::INFO,
        Some(Some(l)) => l,
        Some(None) => {
            eprintln!(
                "codis-dashboard: invalid --log-level, expected ERROR, WARN, INFO, DEBUG or NONE"
            );
            return ExitCode::from(2);
        }
    };
    let handle = logging::init(args.log.clone(), level);
    let setter: LogLevelSetter = Arc::new(move |text: &str| {
        let level = parse_log_level(text).ok_or_else(|| format!("invalid log level '{text}'"))?;
        handle.set(level)
    });
    match start(args, setter) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("codis-dashboard: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn start(args: DashboardArgs, set_log_level: LogLevelSetter) -> anyhow::Result<()> {
    let config = args.load_config().context("bad config")?;
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
        let listener = tokio::net::TcpListener::bind(&config.admin_addr)
            .await
            .with_context(|| format!("listen on admin_addr {}", config.admin_addr))?;
        let bound = listener.local_addr()?.to_string();
        let model = identity(
            &config.product_name,
            &bound,
            args.host_admin.as_deref().unwrap_or(""),
        )?;
        let coordinator = codis_coordinator::connect(
            &config.coordinator_name,
            &config.coordinator_addr,
            &config.coordinator_auth,
            COORDINATOR_TIMEOUT,
        )?;
        tracing::info!(
            admin = %model.admin_addr,
            product = %config.product_name,
            coordinator = %config.coordinator_name,
            addr = %config.coordinator_addr,
            "codis-dashboard starting"
        );
        let topom = Topom::new(config, coordinator, model);
        take_lock(&topom, args.remove_lock, args.lock_retries).await?;
        // Load the model once so a bad coordinator tree is reported at start.
        topom.lock().await?.context().await?;
        let state = AppState {
            topom: topom.clone(),
            set_log_level,
            version: VERSION.to_string(),
            compile: compile_info(),
        };
        let closer = topom.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("signal received: closing");
            if let Err(e) = closer.close().await {
                tracing::error!(error = %e, "close failed");
            }
        });
        tracing::info!(xauth = %topom.xauth, "codis-dashboard online");
        serve(state, listener).await?;
        topom.close().await?;
        tracing::info!("codis-dashboard closed");
        anyhow::Ok(())
    })
}
