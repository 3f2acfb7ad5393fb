//! Proposal throughput of a 3-node in-process cluster on the memory store,
//! with empty payloads, at 1, 64, 256 and 1024 concurrent proposers; and the
//! same request/response pattern against a bare echo task, as the baseline
//! of what this machine's tokio does in the same run.
//!
//! `cargo bench -p benches --bench propose`

use benches::Cluster;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_storage_mem::KvCommand;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const PROPOSERS: [u64; 4] = [1, 64, 256, 1024];

/// Runs `iters` operations spread over `concurrency` tasks; returns the time taken.
async fn spread<F, Fut>(iters: u64, concurrency: u64, op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let count = iters / concurrency + u64::from(task < iters % concurrency);
        let op = op.clone();
        tasks.spawn(async move {
            for _ in 0..count {
                op().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

fn propose(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("propose");
    group.throughput(Throughput::Elements(1)).sample_size(10).measurement_time(Duration::from_secs(5));

    // Baseline: one request/response round trip through a task, like a proposal without Raft.
    let echo = runtime.block_on(async {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<()>>(4096);
        tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(());
            }
        });
        tx
    });
    for concurrency in PROPOSERS {
        group.bench_with_input(
            BenchmarkId::new("echo_baseline", concurrency),
            &concurrency,
            |b, &concurrency| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let echo = echo.clone();
                    spread(iters, concurrency, move || {
                        let echo = echo.clone();
                        async move {
                            let (reply, done) = oneshot::channel();
                            let _ = echo.send(reply).await;
                            let _ = done.await;
                        }
                    })
                });
            },
        );
    }

    let cluster = runtime.block_on(Cluster::start(3));
    for concurrency in PROPOSERS {
        group.bench_with_input(
            BenchmarkId::new("three_nodes_mem", concurrency),
            &concurrency,
            |b, &concurrency| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let cluster = &cluster;
                    async move {
                        let leader = cluster.leader().await;
                        spread(iters, concurrency, move || {
                            let leader = leader.clone();
                            async move {
                                leader.propose(KvCommand::Noop).await.expect("a proposal commits");
                            }
                        })
                        .await
                    }
                });
            },
        );
    }
    runtime.block_on(cluster.shutdown());
    group.finish();
}

criterion_group!(benches, propose);
criterion_main!(benches);
