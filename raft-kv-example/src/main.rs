//! The `raft-kv` binary: a node, a local cluster supervisor, certificates,
//! and the client verbs.

#![forbid(unsafe_code)]

use clap::Parser;
use raft_kv_example::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Err(error) = raft_kv_example::cli::apply_config_file(&args) {
        eprintln!("error: --config: {error}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(&args);
    let is_server = matches!(cli.command, Command::Node(_) | Command::Cluster(_));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if is_server { "info" } else { "warn" }));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => match raft_kv_example::node::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error}");
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            },
            Command::Cluster(args) => match raft_kv_example::cluster::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            },
            Command::Certs(args) => match raft_kv_example::cluster::certs(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            },
            verb => ExitCode::from(raft_kv_example::client::run(verb).await as u8),
        }
    });
    // Dropping the runtime would wait for its blocking threads, and one may
    // never finish: the read of standard input behind
    // `--exit-on-stdin-close` blocks while the supervisor holds the pipe
    // open, so a node that stopped on a storage error would hang here,
    // alive, after saying it exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
