//! `raft-load`: a closed-loop load generator. It starts an in-process
//! cluster on the memory store, runs `--proposers` concurrent clients
//! against its leader for `--seconds`, and prints the throughput and latency
//! percentiles, next to a baseline measured in the same run: the same
//! clients doing a request/response round trip through one task, without
//! Raft. Ratios to that baseline are what compare across machines.
//!
//! ```text
//! cargo run --release -p benches --bin raft-load -- --proposers 256 --seconds 5
//! ```

use benches::Cluster;
use clap::Parser;
use hdrhistogram::Histogram;
use raft_storage_mem::KvCommand;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Parser, Debug)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (Timber)"), about = "Closed-loop proposal load against an in-process Raft cluster")]
struct Args {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients, each with one proposal outstanding.
    #[arg(long, default_value_t = 256)]
    proposers: usize,
    /// How long each measurement runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes of value per proposal (0: an empty command).
    #[arg(long, default_value_t = 0)]
    payload: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Stop after this many operations in all instead of after `--seconds`
    /// (for profilers that count instructions, such as callgrind).
    #[arg(long)]
    operations: Option<u64>,
    /// Skip the echo baseline.
    #[arg(long)]
    no_baseline: bool,
}

/// What one measurement saw.
struct Outcome {
    operations: u64,
    elapsed: Duration,
    latencies: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        let us = |q: f64| self.latencies.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{name:<14} {:>12.0} ops/s   p50 {:>8.1} us   p99 {:>8.1} us   p99.9 {:>8.1} us   ({} ops in {:.2} s)",
            self.rate(),
            us(0.5),
            us(0.99),
            us(0.999),
            self.operations,
            self.elapsed.as_secs_f64()
        );
    }
}

/// When a measurement ends.
#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    Operations(u64),
}

/// Runs `clients` closed loops of `op` until `until`.
async fn closed_loop<F, Fut>(clients: usize, until: Until, op: F) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(match until {
        Until::Operations(n) => n,
        Until::Elapsed(_) => u64::MAX,
    }));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (op, stop, budget) = (op.clone(), stop.clone(), budget.clone());
        tasks.spawn(async move {
            let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed)
                && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
            {
                let began = Instant::now();
                op(client).await;
                let _ = latencies.record(began.elapsed().as_nanos() as u64);
                n += 1;
            }
            (n, latencies)
        });
    }
    if let Until::Elapsed(duration) = until {
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut outcome = Outcome {
        operations: 0,
        elapsed: Duration::ZERO,
        latencies: Histogram::new(3).expect("a histogram"),
    };
    while let Some(result) = tasks.join_next().await {
        let (n, latencies) = result.expect("a client ran");
        outcome.operations += n;
        let _ = outcome.latencies.add(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let until = match args.operations {
        Some(n) => Until::Operations(n),
        None => Until::Elapsed(Duration::from_secs_f64(args.seconds)),
    };
    println!(
        "{} nodes, {} proposers, {} B payloads, {} threads, {:.1} s per measurement",
        args.nodes, args.proposers, args.payload, args.threads, args.seconds
    );
    runtime.block_on(async {
        let baseline = if args.no_baseline {
            None
        } else {
            let (tx, mut rx) = mpsc::channel::<oneshot::Sender<()>>(4096);
            tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let _ = reply.send(());
                }
            });
            let outcome = closed_loop(args.proposers, until, move |_| {
                let tx = tx.clone();
                async move {
                    let (reply, done) = oneshot::channel();
                    let _ = tx.send(reply).await;
                    let _ = done.await;
                }
            })
            .await;
            outcome.print("echo_baseline");
            Some(outcome.rate())
        };

        let cluster = Cluster::start(args.nodes).await;
        let leader = cluster.leader().await;
        let value = "x".repeat(args.payload);
        let outcome = closed_loop(args.proposers, until, move |client| {
            let leader = leader.clone();
            let command = if value.is_empty() {
                KvCommand::Noop
            } else {
                KvCommand::Set { key: format!("k{client}"), value: value.clone() }
            };
            async move {
                // A failed proposal (a leader change) counts as an operation
                // too; with a stable in-process cluster there are none.
                let _ = leader.propose(command).await;
            }
        })
        .await;
        outcome.print("raft");
        if let Some(baseline) = baseline {
            println!("ratio raft / echo_baseline: {:.3}", outcome.rate() / baseline);
        }
        cluster.shutdown().await;
    });
}
