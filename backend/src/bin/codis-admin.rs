//! `codis-admin`: Codis 3.2's command line over a dashboard (`--dashboard`), a proxy
//! (`--proxy`) or the coordinator (`--zookeeper`, `--etcd`, `--filesystem`).
//!
//! Output goes to stdout; a failure is one line on stderr (`codis-admin: ...`) with exit code
//! 1, or 2 for a usage error (clap's errors included).

use std::process::ExitCode;

use backend::admin::{AdminArgs, run};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// clap's error as one line: its first line without `error: `, and its tip if it has one.
fn usage_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match lines.find(|l| l.starts_with("tip: ")) {
        Some(tip) => format!("{first} ({tip})"),
        None => first.to_string(),
    }
}

fn main() -> ExitCode {
    let args = match AdminArgs::try_parse() {
        Ok(args) => args,
        // --help (and help shown for missing arguments) go to stdout as clap prints them.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("codis-admin: {}", usage_line(&e));
            return ExitCode::from(2);
        }
    };
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
            // Nothing at all when there is nothing to say (`--force` on an unknown proxy).
            if !out.is_empty() {
                println!("{out}");
            }
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
