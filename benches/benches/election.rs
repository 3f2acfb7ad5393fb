//! Elections: the time from a leader's loss to a new leader whose first
//! write has committed, as a distribution over many trials, beside the
//! election timeout configured in the same run (the floor: no follower
//! campaigns before its timeout has passed since it last heard the leader).
//!
//! - In logical time: three `RawNode`s driven by hand (`benches::hand`), 200
//!   trials from different seeds, counted in ticks.
//! - On the runtime: three in-process nodes on the memory store
//!   (`benches::Cluster`, 10 ms ticks), 50 trials, in wall time.
//!
//! Not a criterion benchmark (criterion reports one central estimate, and
//! this is a distribution): `cargo bench -p benches --bench election`, or
//! `-- --trials N`. The last line is JSON, for scripts.

use benches::hand::HandCluster;
use benches::Cluster;
use bytes::Bytes;
use raft_core::{Config, Role};
use raft_storage_mem::KvCommand;
use std::time::{Duration, Instant};

/// Ticks (after the leader's loss) to give up on a trial: far beyond any
/// election timeout, so only a protocol that cannot elect reaches it.
const MAX_TICKS: u64 = 10_000;
/// Wall time to give up on a runtime trial, for the same reason.
const TRIAL_DEADLINE: Duration = Duration::from_secs(30);

fn main() {
    let trials = std::env::args()
        .skip_while(|a| a != "--trials")
        .nth(1)
        .map(|n| n.parse::<usize>().expect("--trials takes a number"));
    let config = Config::new(1);
    let ticks = in_ticks(&config, trials.unwrap_or(200));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let wall = runtime.block_on(on_runtime(trials.unwrap_or(50)));
    let tick_ms = 10.0;
    let (min, max) = (config.election_timeout_min, config.election_timeout_max);
    println!("election timeout: {min} to {max} ticks (on the runtime, {tick_ms} ms a tick)");
    println!("{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}", "", "trials", "min", "p50", "p90", "p99", "max");
    print_row("logical (ticks)", &ticks);
    print_row("runtime (ms)", &wall);
    print_row("runtime (ticks of 10 ms)", &wall.iter().map(|ms| ms / tick_ms).collect::<Vec<_>>());
    println!(
        "{{\"election_timeout_ticks\":[{min},{max}],\"logical_ticks\":{},\"runtime_ms\":{}}}",
        json(&ticks),
        json(&wall)
    );
}

/// Ticks from the leader's loss to the first write of its successor being
/// applied on that successor, one trial per seed.
fn in_ticks(config: &Config, trials: usize) -> Vec<f64> {
    let payload = Bytes::new();
    (0..trials as u64)
        .map(|seed| {
            let mut cluster = HandCluster::new(3, config, seed);
            cluster.elect_first();
            cluster.propose(1, 1, &payload);
            cluster.crash(1);
            for tick in 1..=MAX_TICKS {
                cluster.tick();
                cluster.run();
                if let Some(leader) = cluster.leader() {
                    let before = cluster.applied(leader);
                    cluster.propose(leader, 1, &payload);
                    if cluster.applied(leader) > before {
                        return tick as f64;
                    }
                }
            }
            panic!("seed {seed}: no new leader committed a write within {MAX_TICKS} ticks");
        })
        .collect()
}

/// Milliseconds from the leader's shutdown to a write committed by another
/// node, one fresh cluster a trial.
async fn on_runtime(trials: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(trials);
    for trial in 0..trials {
        let cluster = Cluster::start(3).await;
        let old = cluster.leader().await;
        old.propose(KvCommand::Noop).await.expect("the first leader commits");
        old.shutdown().await;
        let started = Instant::now();
        let survivors: Vec<_> = cluster
            .nodes
            .iter()
            .filter(|n| n.metrics().borrow().id != old.metrics().borrow().id)
            .cloned()
            .collect();
        loop {
            assert!(
                started.elapsed() < TRIAL_DEADLINE,
                "trial {trial}: no new leader within {TRIAL_DEADLINE:?}"
            );
            let leader = survivors.iter().find(|n| n.metrics().borrow().role == Role::Leader);
            if let Some(leader) = leader {
                if leader.propose(KvCommand::Noop).await.is_ok() {
                    break;
                }
                continue;
            }
            // Wait for either survivor's state to change (with a deadline,
            // so a change missed between the check and the wait costs 10 ms).
            let (mut a, mut b) = (survivors[0].metrics(), survivors[1].metrics());
            let _ = tokio::time::timeout(Duration::from_millis(10), async {
                tokio::select! {
                    _ = a.changed() => {}
                    _ = b.changed() => {}
                }
            })
            .await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        cluster.shutdown().await;
    }
    times
}

/// The order statistics of one set of trials.
struct Summary {
    trials: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Self {
            trials: sorted.len(),
            min: at(0.0),
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
            max: at(100.0),
        }
    }
}

fn print_row(name: &str, values: &[f64]) {
    let s = Summary::of(values);
    println!(
        "{name:<28} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        s.trials, s.min, s.p50, s.p90, s.p99, s.max
    );
}

fn json(values: &[f64]) -> String {
    let s = Summary::of(values);
    format!(
        "{{\"trials\":{},\"min\":{:.1},\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1},\"max\":{:.1}}}",
        s.trials, s.min, s.p50, s.p90, s.p99, s.max
    )
}
