//! `codis-proxy`: clients connect to it as to one Redis; it routes every request by slot to
//! the codis-server that owns it. Flags and `proxy.toml` keys are Codis 3.2's.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dataplane::alloc::CountingAlloc;
use dataplane::proxy::cli::{OnlineMode, PidFile, ProxyArgs, check_ulimit, load_slots_file};
use dataplane::proxy::config::default_config_text;
use dataplane::proxy::core::{CoreConfig, Proxy, run};
use dataplane::proxy::logging;
use tracing::level_filters::LevelFilter;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let args = ProxyArgs::parse();
    if args.default_config {
        print!("{}", default_config_text());
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("version: codis-rs {}", env!("CARGO_PKG_VERSION"));
        println!("compile: rust");
        return ExitCode::SUCCESS;
    }
    let _level = logging::init(args.log.clone(), args.log_level.unwrap_or(LevelFilter::INFO));
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("codis-proxy: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn start(args: ProxyArgs) -> anyhow::Result<()> {
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
        let listener = bind(&config.proto_type, &config.proxy_addr).await?;
        tracing::info!(addr = %config.proxy_addr, threads, "proxy listening");
        let proxy = Proxy::new(core);
        match args.online_mode() {
            OnlineMode::FillSlots(path) => {
                let slots = load_slots_file(&path)?;
                proxy.router.fill(&slots).await?;
                proxy.start().map_err(anyhow::Error::msg)?;
                tracing::info!(slots = slots.len(), "slots filled from file, proxy online");
            }
            OnlineMode::Manual => tracing::info!("waiting for a dashboard to start the proxy"),
            other => anyhow::bail!("online mode {other:?} is not available in this build yet"),
        }
        let p2 = proxy.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::warn!("signal received, closing the proxy");
            p2.close();
        });
        run(listener, proxy).await;
        anyhow::Ok(())
    })
}

async fn bind(proto: &str, addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match proto {
        "tcp" | "tcp4" | "tcp6" => {}
        other => anyhow::bail!("proto_type '{other}' is not supported (use tcp, tcp4 or tcp6)"),
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))
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
