//! Closed-loop load: `clients` tasks, each with one operation outstanding,
//! until a budget of operations is spent or a duration has passed; latencies
//! of the operations that succeeded go into HDR histograms (one per client,
//! merged at the end, so recording never contends).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a measurement ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Until {
    /// After this long (operations under way are finished).
    Elapsed(Duration),
    /// After this many operations in all, shared among the clients.
    Operations(u64),
}

/// What one measurement saw.
pub struct Outcome {
    /// Operations that succeeded.
    pub operations: u64,
    /// Operations that failed (not counted in the latencies).
    pub errors: u64,
    /// The first failure, to show what went wrong.
    pub first_error: Option<String>,
    /// From the first operation started to the last finished.
    pub elapsed: Duration,
    /// Latencies of the successful operations, in nanoseconds.
    pub latencies: Histogram<u64>,
}

impl Outcome {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The latency at `quantile`, in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.latencies.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The figures of this measurement, named for `Report`.
    pub fn report(&self, workload: Workload) -> Report {
        Report {
            workload,
            operations: self.operations,
            errors: self.errors,
            seconds: self.elapsed.as_secs_f64(),
            ops_per_sec: self.rate(),
            p50_us: self.quantile_us(0.5),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: self.latencies.max() as f64 / 1000.0,
            latency_cdf: CDF_QUANTILES.iter().map(|&q| [q, self.quantile_us(q)]).collect(),
            group_commit: None,
        }
    }
}

/// The quantiles a [`Report`]'s latency CDF gives: deciles for its body,
/// then ever finer steps into the tail, where the differences are.
pub const CDF_QUANTILES: [f64; 19] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999,
    1.0,
];

/// What was measured against what: the fields of the `--json` line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `inproc`, `raft-kv` or `etcd`.
    pub system: String,
    /// Members of the in-process cluster (0 for a cluster reached over HTTP).
    pub members: u64,
    /// `mem` or `rocksdb` in process; empty over HTTP.
    pub storage: String,
    /// `inproc`, `tcp` or `quic` in process; empty over HTTP.
    pub transport: String,
    /// Concurrent clients (over HTTP: connections).
    pub clients: usize,
    /// Bytes of each value written.
    pub payload: usize,
    /// Percent of operations that are reads.
    pub read_percent: u8,
}

/// The result of one run: what the last line of output says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was measured.
    #[serde(flatten)]
    pub workload: Workload,
    /// Operations that succeeded.
    pub operations: u64,
    /// Operations that failed.
    pub errors: u64,
    /// How long the measurement took.
    pub seconds: f64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Slowest operation, microseconds.
    pub max_us: f64,
    /// The latency distribution: `[quantile, microseconds]` at each of
    /// [`CDF_QUANTILES`] (empty in lines written before it existed).
    #[serde(default)]
    pub latency_cdf: Vec<[f64; 2]>,
    /// Against a running raft-kv: how many proposals the leader made
    /// durable per log write (group commit), from its `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_commit: Option<crate::target::GroupCommit>,
}

impl Report {
    /// The result line: `result: R ops/s  p50 A us  p99 B us  p99.9 C us  (...)`.
    pub fn line(&self) -> String {
        let group_commit = match &self.group_commit {
            Some(g) => format!(", {:.1} proposals per leader log write", g.proposals_per_write),
            None => String::new(),
        };
        format!(
            "result: {:.0} ops/s  p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  ({} ops, {} errors, {:.2} s{group_commit})",
            self.ops_per_sec,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.operations,
            self.errors,
            self.seconds
        )
    }

    /// The `--json` line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }
}

/// Whether a client's `n`-th operation (from 0) is a read, for reads making
/// `read_percent` of all: spread evenly (at 50, every other one; at 90, nine
/// in every ten), the same in every run.
pub fn is_read(read_percent: u8, n: u64) -> bool {
    let p = u64::from(read_percent.min(100));
    (n.wrapping_mul(p)) % 100 < p
}

/// The 16-byte key of a client's `n`-th operation: every client writes keys
/// of its own, and every write a new key.
pub fn key(client: usize, n: u64) -> String {
    format!("{:06x}{:010x}", client & 0xff_ffff, n & 0xff_ffff_ffff)
}

/// Runs `clients` closed loops of `op(client, n)` (`n`: the client's
/// operation count so far) until `until`, printing progress to stderr every
/// `progress` if given. An operation's `Err` is counted, not retried.
pub async fn closed_loop<F, Fut>(clients: usize, until: Until, progress: Option<Duration>, op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(match until {
        Until::Operations(n) => n,
        Until::Elapsed(_) => u64::MAX,
    }));
    let done = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (op, stop, budget, done, first_error) =
            (op.clone(), stop.clone(), budget.clone(), done.clone(), first_error.clone());
        tasks.spawn(async move {
            let mut latencies = client_histogram();
            let (mut n, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed)
                && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
            {
                let began = Instant::now();
                match op(client, n).await {
                    Ok(()) => {
                        let _ = latencies.record(began.elapsed().as_nanos() as u64);
                    }
                    Err(why) => {
                        errors += 1;
                        first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
                    }
                }
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            (n - errors, errors, latencies)
        });
    }
    let reporter =
        progress.filter(|p| !p.is_zero()).map(|every| tokio::spawn(report_progress(every, done, started)));
    if let Until::Elapsed(duration) = until {
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut outcome = Outcome {
        operations: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: merged_histogram(),
    };
    while let Some(result) = tasks.join_next().await {
        let (ok, errors, latencies) = result.expect("a client ran");
        outcome.operations += ok;
        outcome.errors += errors;
        for bucket in latencies.iter_recorded() {
            let _ =
                outcome.latencies.record_n(bucket.value_iterated_to(), u64::from(bucket.count_at_value()));
        }
    }
    outcome.elapsed = started.elapsed();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    outcome.first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    outcome
}

/// The lowest latency a histogram tells apart from zero: 1 us, in ns.
/// Latencies are kept to three significant digits above 2 ms and to the
/// microsecond below.
const LOWEST_NS: u64 = 1_000;
/// The highest latency a histogram holds before it grows (10 ms).
const FIRST_HIGHEST_NS: u64 = 10_000_000;

/// One client's histogram: `u32` counts from 1 us, growing past 10 ms only
/// if a latency needs it. About 24 KiB, where `Histogram::<u64>::new(3)`
/// (counts of every nanosecond) grew to about 120 KiB: with 256 clients the
/// smaller ones stay in the cache, and recording a latency was 6 % of the
/// load generator's CPU time in a profile, most of it waiting on memory.
fn client_histogram() -> Histogram<u32> {
    let mut histogram = Histogram::new_with_bounds(LOWEST_NS, FIRST_HIGHEST_NS, 3).expect("valid bounds");
    histogram.auto(true);
    histogram
}

/// The histogram the clients' are merged into (`u64` counts: a long run
/// may hold more than 2^32 operations).
fn merged_histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(LOWEST_NS, FIRST_HIGHEST_NS, 3).expect("valid bounds");
    histogram.auto(true);
    histogram
}

async fn report_progress(every: Duration, done: Arc<AtomicU64>, started: Instant) {
    let mut last = (0u64, Instant::now());
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let (now, count) = (Instant::now(), done.load(Ordering::Relaxed));
        let recent = (count - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
        eprintln!(
            "progress: {:.0} s, {count} ops, {:.0} ops/s over the last {:.0} s",
            started.elapsed().as_secs_f64(),
            recent,
            every.as_secs_f64()
        );
        last = (count, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_histograms_grow_and_merge_without_losing_latencies() {
        let mut client = client_histogram();
        // 1 us to 20 ms: past the first highest value, so it must grow.
        for us in 1..=20_000u64 {
            client.record(us * 1_000).unwrap();
        }
        let mut merged = merged_histogram();
        for bucket in client.iter_recorded() {
            merged.record_n(bucket.value_iterated_to(), u64::from(bucket.count_at_value())).unwrap();
        }
        assert_eq!(merged.len(), 20_000);
        let p50 = merged.value_at_quantile(0.5) as f64;
        assert!((p50 - 10e6).abs() / 10e6 < 0.002, "p50 {p50} ns");
        assert!((20_000_000..=20_020_000).contains(&merged.max()), "max {} ns", merged.max());
        assert!(merged.min() <= 1_000, "min {} ns", merged.min());
    }

    #[test]
    fn reads_are_the_asked_share_and_spread() {
        for p in [0u8, 1, 25, 50, 90, 100] {
            let reads = (0..1000).filter(|&n| is_read(p, n)).count();
            assert_eq!(reads, usize::from(p) * 10, "{p} %");
        }
        assert_eq!((0..4).map(|n| is_read(50, n)).collect::<Vec<_>>(), [true, false, true, false]);
    }

    #[test]
    fn keys_are_16_bytes_and_distinct_per_client_and_operation() {
        assert_eq!(key(255, 7), "0000ff0000000007");
        let keys: std::collections::BTreeSet<String> =
            (0..300).flat_map(|c| (0..50).map(move |n| key(c, n))).collect();
        assert_eq!(keys.len(), 300 * 50);
        assert!(keys.iter().all(|k| k.len() == 16));
    }
}
