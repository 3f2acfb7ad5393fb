//! Writes a cluster CA and node certificates for a local cluster.
//!
//! `cargo run -p raft-net-tls --example gen-certs -- <dir> <cluster> <node id>...`
//!
//! For example `-- certs demo 1 2 3` writes `certs/ca.pem`,
//! `certs/ca-key.pem`, and `certs/node-<id>.pem` with `certs/node-<id>-key.pem`
//! for nodes 1, 2 and 3, valid for a year.

use raft_net_tls::{generate_cluster_files, Validity};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen-certs <dir> <cluster> <node id>...";
    let [dir, cluster, nodes @ ..] = &args[..] else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let nodes: Result<Vec<u64>, _> = nodes.iter().map(|n| n.parse::<u64>()).collect();
    let nodes = match nodes {
        Ok(nodes) if !nodes.is_empty() => nodes,
        _ => {
            eprintln!("node ids must be numbers, at least one\n{usage}");
            return ExitCode::from(2);
        }
    };
    match generate_cluster_files(&PathBuf::from(dir), cluster, &nodes, Validity::days_from_now(365)) {
        Ok(paths) => {
            for (node, paths) in nodes.iter().zip(paths) {
                println!("node {node}: {}, {}", paths.node_cert.display(), paths.node_key.display());
            }
            println!("CA: {dir}/ca.pem (keep {dir}/ca-key.pem off the nodes)");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gen-certs: {error}");
            ExitCode::FAILURE
        }
    }
}
