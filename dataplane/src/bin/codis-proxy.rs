//! `codis-proxy`: clients connect to it as to one Redis; it routes every request by slot to
//! the codis-server that owns it. Flags and `proxy.toml` keys are Codis 3.2's.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dataplane::alloc::CountingAlloc;
use std::sync::Arc;
use std::time::Duration;

use dataplane::proxy::admin::{self, AdminApi};
use dataplane::proxy::auth::proxy_identity;
use dataplane::proxy::cli::{OnlineMode, PidFile, ProxyArgs, check_ulimit, load_slots_file};
use dataplane::proxy::config::{ProxyConfig, default_config_text};
use dataplane::proxy::control::Control;
use dataplane::proxy::core::{CoreConfig, Proxy, run};
use dataplane::proxy::dashboard::{
    RetryPolicy, TopomModel, online_with_dashboard, online_with_topom_reader,
};
use dataplane::proxy::io::Listener;
use dataplane::proxy::logging::{self, LevelHandle};
use dataplane::proxy::metrics::spawn_exporters;
use dataplane::proxy::rpc::HttpClient;
use tracing::level_filters::LevelFilter;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    dataplane::alloc::tune_for_server();
    let args = ProxyArgs::parse();
    if args.default_config {
        print!("{}", default_config_text());
        return ExitCode::SUCCESS;
    }
    if args.version {
        print!("{}", dataplane::proxy::cli::version_text());
        return ExitCode::SUCCESS;
    }
    let level = logging::init(
        args.log.clone(),
        args.log_level.unwrap_or(LevelFilter::INFO),
    );
    match start(args, level) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("codis-proxy: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn start(args: ProxyArgs, level: LevelHandle) -> anyhow::Result<()> {
    if let Some(n) = args.ulimit {
        check_ulimit(n)?;
    }
    let config = args.load_config().context("bad config")?;
    let _pidfile = args.pidfile.as_deref().map(PidFile::create).transpose()?;
    let threads = args.ncpu();
    let core = CoreConfig::from_config(&config, threads);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = Listener::bind(&config.proto_type, &config.proxy_addr)
            .await
            .with_context(|| format!("listen on proxy_addr {}", config.proxy_addr))?;
        let admin_listener = tokio::net::TcpListener::bind(&config.admin_addr)
            .await
            .with_context(|| format!("listen on admin_addr {}", config.admin_addr))?;
        let identity = proxy_identity(
            &config,
            &listener.local_addr()?,
            &admin_listener.local_addr()?.to_string(),
        )?;
        tracing::info!(
            proxy = %identity.model.proxy_addr,
            admin = %identity.model.admin_addr,
            token = %identity.model.token,
            threads,
            "proxy listening"
        );
        let proxy = Proxy::new(core);
        let control = Control::new(
            proxy.clone(),
            config.clone(),
            identity.model.clone(),
            identity.xauth,
            Some(level),
        );
        let api: Arc<dyn AdminApi> = control.clone();
        tokio::spawn(admin::serve(admin_listener, api.clone(), proxy.closing()));
        let _exporters = spawn_exporters(&config, api.clone(), proxy.closing());
        go_online(
            args.online_mode(),
            &config,
            &identity.model.admin_addr,
            &control,
        )
        .await?;
        let c2 = control.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::warn!("signal received, closing the proxy");
            c2.close().await;
        });
        run(listener, proxy).await;
        control.close().await;
        tracing::warn!("proxy is closed");
        anyhow::Ok(())
    })
}

/// Starts the proxy the way the flags say: from a slots file, through a dashboard (given, or
/// found in the coordinator), or by waiting for a dashboard to call `/api/proxy/start`.
async fn go_online(
    mode: OnlineMode,
    config: &ProxyConfig,
    admin_addr: &str,
    control: &Arc<Control>,
) -> anyhow::Result<()> {
    let proxy = control.proxy().clone();
    let done = {
        let p = proxy.clone();
        move || p.is_online() || p.is_closed()
    };
    let product = config.product_name.clone();
    let admin_addr = admin_addr.to_string();
    match mode {
        OnlineMode::FillSlots(path) => {
            let slots = load_slots_file(&path)?;
            proxy.router.fill(&slots).await?;
            control.start().map_err(anyhow::Error::msg)?;
            tracing::info!(slots = slots.len(), "slots filled from file, proxy online");
        }
        OnlineMode::Manual => tracing::info!("waiting for a dashboard to start the proxy"),
        OnlineMode::Dashboard(dashboard) => {
            let c = control.clone();
            tokio::spawn(async move {
                let client = HttpClient::new();
                let res = online_with_dashboard(
                    &client,
                    &dashboard,
                    &product,
                    &admin_addr,
                    RetryPolicy::DASHBOARD,
                    done,
                )
                .await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "going online failed, closing");
                    c.close().await;
                }
            });
        }
        OnlineMode::Coordinator { name, addr, auth } => {
            let coord = codis_coordinator::connect(name, &addr, &auth, Duration::from_secs(60))?;
            let c = control.clone();
            tokio::spawn(async move {
                let client = HttpClient::new();
                let path = codis_coordinator::paths::topom_path(&product);
                let read = || {
                    let (coord, path) = (coord.clone(), path.clone());
                    async move {
                        match coord.read(&path, false).await {
                            Ok(Some(b)) => serde_json::from_slice::<TopomModel>(&b)
                                .map(Some)
                                .map_err(|e| format!("decode {path}: {e}")),
                            Ok(None) => Ok(None),
                            Err(e) => Err(format!("read {path}: {e}")),
                        }
                    }
                };
                let res = online_with_topom_reader(
                    &client,
                    &product,
                    &admin_addr,
                    RetryPolicy::COORDINATOR,
                    read,
                    done,
                )
                .await;
                let _ = coord.close().await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "going online failed, closing");
                    c.close().await;
                }
            });
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
