//! `cluster-bench`: closed-loop load against an in-process Raft cluster, a
//! running `raft-kv` cluster (`--target`) or etcd (`--etcd`); the last line
//! gives operations per second and p50, p99 and p99.9 latency.
//!
//! ```text
//! cargo run --release -p benches --bin cluster-bench -- --members 3 --clients 256 --ops 1000000
//! cluster-bench --target http://127.0.0.1:8001,http://127.0.0.1:8002 --clients 64 --payload 64 --seconds 10
//! cluster-bench --etcd http://127.0.0.1:2379 --clients 64 --payload 64 --reads 50 --json
//! cluster-bench --floors --dir /var/lib/data
//! ```

fn main() -> std::process::ExitCode {
    benches::cli::main()
}
