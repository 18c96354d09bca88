//! `codis-admin`: Codis 3.2's command line over a dashboard (`--dashboard`), a proxy
//! (`--proxy`) or the coordinator (`--zookeeper`, `--etcd`, `--filesystem`).

use std::process::ExitCode;

use backend::admin::{AdminArgs, AdminError, run};
use clap::Parser;

fn main() -> ExitCode {
    let args = AdminArgs::parse();
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
        Err(e @ AdminError::Usage(_)) => {
            eprintln!("codis-admin: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("codis-admin: {e}");
            ExitCode::from(1)
        }
    }
}
