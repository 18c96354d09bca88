//! `codis-admin`: Codis 3.2's command line over a dashboard (`--dashboard`), a proxy
//! (`--proxy`) or the coordinator (`--zookeeper`, `--etcd`, `--filesystem`).
//!
//! Output goes to stdout; a failure is one line on stderr (`codis-admin: ...`) with exit code
//! 1, or 2 for a usage error.

use std::process::ExitCode;

use backend::admin::{AdminArgs, run};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = AdminArgs::parse();
    // `-v` shows each call made (Codis's debug logging); otherwise nothing but the result.
    let filter = if args.verbose {
        EnvFilter::new("codis_admin=debug")
    } else {
        EnvFilter::new("off")
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codis-admin: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(&args)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, whatever the remote cause contained.
            let line = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("codis-admin: {line}");
            ExitCode::from(e.exit_code())
        }
    }
}
