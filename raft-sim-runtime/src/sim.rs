//! One run from a seed: start a cluster, run clients against the nemesis,
//! heal, demand progress, restart every node at once, demand progress again,
//! read every register, and check what was seen. And the sweep over seeds.

use crate::client::{Client, Histories, KEYS};
use crate::cluster::{derive, Cluster, Params, Trace};
use crate::kv::Put;
use crate::nemesis;
use crate::net::NetStats;
use raft_core::runtime::{RaftError, ReadConsistency};
use raft_core::Index;
use raft_sim::linearizability::{self, Event, History, Op, Outcome, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long the cluster has to elect a leader and commit once healed.
pub(crate) const LIVENESS: Duration = Duration::from_secs(10);

/// The register the liveness probes write (no client uses it, so probes do
/// not enter the checked history).
const PROBE_KEY: u64 = KEYS;

/// What a run does, beyond what its seed decides.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How long clients run against the nemesis (simulated time).
    pub fault_time: Duration,
    /// How many clients run.
    pub clients: u64,
    /// Whether the nemesis injects faults at all.
    pub faults: bool,
    /// Print the trace as the run goes.
    pub echo: bool,
    /// Search configurations per key the linearizability checker may visit.
    pub budget: usize,
}

impl Default for SimOptions {
    /// Three simulated seconds of four clients under faults.
    fn default() -> Self {
        Self { fault_time: Duration::from_secs(3), clients: 4, faults: true, echo: false, budget: 200_000 }
    }
}

/// What a run that passed saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Every client operation, as the checker saw it.
    pub history: Vec<Event>,
    /// What happened, line by line.
    pub trace: Vec<String>,
    /// Puts acknowledged to clients.
    pub acknowledged: usize,
    /// Entries applied, summed over nodes and incarnations.
    pub applies: u64,
    /// What the network did.
    pub network: NetStats,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Whether the checker gave up on some key (the run is then unchecked
    /// for linearizability, not failed).
    pub gave_up: bool,
}

/// A run that failed a check, with how to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// Which check failed, and how.
    pub reason: String,
    /// What happened, line by line.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed: {}\n  replay: cargo run -p raft-sim-runtime --release -- replay {}",
            self.seed, self.reason, self.seed
        )
    }
}

/// The settings seed `seed` draws.
pub fn params(seed: u64) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(derive(seed, 0x9A4A));
    Params {
        nodes: if rng.random_bool(0.5) { 3 } else { 5 },
        lease_reads: rng.random_bool(0.5),
        snapshot_threshold: rng.random_range(16..128),
        max_write_latency: Duration::from_micros(rng.random_range(0..10_000)),
    }
}

/// Runs seed `seed` on a fresh single-threaded runtime with a paused clock.
pub fn run_seed(seed: u64, options: &SimOptions) -> Result<Report, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|error| Failure { seed, reason: format!("no runtime: {error}"), trace: Vec::new() })?;
    runtime.block_on(run(seed, options))
}

async fn run(seed: u64, options: &SimOptions) -> Result<Report, Failure> {
    let trace = Trace::new(options.echo);
    let params = params(seed);
    trace.log(format_args!("seed {seed}: {params:?}"));
    let cluster = Cluster::new(seed, params, trace.clone());
    let history: Histories = Arc::default();
    let outcome = phases(&cluster, options, &history).await;
    let events = history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let outcome = outcome.and_then(|()| check(&cluster, &events, options.budget));
    for (_, raft) in cluster.running() {
        raft.shutdown().await;
    }
    match outcome {
        Ok(gave_up) => Ok(Report {
            seed,
            acknowledged: events.iter().filter(|e| e.outcome == Outcome::PutOk).count(),
            history: events,
            trace: trace.lines(),
            applies: cluster.recorder.applies(),
            network: cluster.network.stats(),
            simulated: trace.elapsed(),
            gave_up,
        }),
        Err(reason) => {
            trace.log(format_args!("FAILED: {reason}"));
            Err(Failure { seed, reason, trace: trace.lines() })
        }
    }
}

/// The run's phases, up to the checks.
async fn phases(cluster: &Arc<Cluster>, options: &SimOptions, history: &Histories) -> Result<(), String> {
    for id in cluster.ids() {
        cluster.start(id).await?;
    }
    let until = Instant::now() + options.fault_time;
    let mut clients = Vec::new();
    for id in 0..options.clients {
        let client = Client::new(id, cluster.derive(0xC11E_0000 + id), history.clone());
        clients.push(tokio::spawn(client.run(cluster.clone(), until)));
    }
    if options.faults {
        nemesis::run(cluster.clone(), cluster.derive(0x4E4E), until).await;
    }
    for client in clients {
        client.await.map_err(|error| format!("a client panicked: {error}"))?;
    }
    nemesis::heal(cluster).await?;
    progress(cluster, "the faults healed").await?;

    // Every node down at once, then up from its disk alone: whatever was
    // acknowledged must still be there.
    for id in cluster.ids() {
        cluster.crash(id);
    }
    for id in cluster.ids() {
        cluster.start(id).await?;
    }
    progress(cluster, "a full restart").await?;
    final_reads(cluster, history).await?;
    check_states(cluster).await
}

/// Waits, at most [`LIVENESS`], for a leader to commit a put and every node
/// to apply it.
async fn progress(cluster: &Cluster, after: &str) -> Result<Index, String> {
    let deadline = Instant::now() + LIVENESS;
    let stuck = || format!("liveness: no progress within {LIVENESS:?} after {after}:{}", cluster.describe());
    loop {
        if Instant::now() >= deadline {
            return Err(stuck());
        }
        if let Some((leader, raft)) = cluster.leader() {
            let put = Put { key: PROBE_KEY, value: cluster.next_value() };
            let committed = tokio::time::timeout(Duration::from_millis(500), raft.propose(put)).await;
            if let Ok(Ok(index)) = committed {
                for (id, raft) in cluster.running() {
                    let mut metrics = raft.metrics();
                    let applied =
                        tokio::time::timeout_at(deadline, metrics.wait_for(|m| m.applied_index >= index));
                    if !matches!(applied.await, Ok(Ok(_))) {
                        return Err(format!("{}: node {id} did not apply index {index}", stuck()));
                    }
                }
                cluster.trace.log(format_args!("progress after {after}: leader {leader} committed {index}"));
                return Ok(index);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads every register at the leader after the full restart, into the
/// history: a lost acknowledged put shows as a stale value.
async fn final_reads(cluster: &Cluster, history: &Histories) -> Result<(), String> {
    let deadline = Instant::now() + LIVENESS;
    for key in 0..KEYS {
        loop {
            if Instant::now() >= deadline {
                return Err(format!("liveness: register {key} could not be read after a full restart"));
            }
            let Some((leader, raft)) = cluster.leader() else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let invoke = cluster.now();
            let read = raft.read(ReadConsistency::Linearizable, move |kv| kv.get(key)).await;
            let complete = cluster.now();
            if let Ok(value) = read {
                cluster.trace.log(format_args!("final read of {key} at leader {leader}: {value:?}"));
                let event = Event {
                    client: u64::MAX,
                    op: Op::Get { key },
                    invoke,
                    complete,
                    outcome: Outcome::GetOk(value),
                };
                history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
                break;
            }
        }
    }
    Ok(())
}

/// Every check of a finished run; whether linearizability was left
/// undecided.
fn check(cluster: &Cluster, events: &[Event], budget: usize) -> Result<bool, String> {
    if let Some(violation) = cluster.recorder.violations().into_iter().next() {
        return Err(violation);
    }
    let applied = cluster.recorder.applied_puts();
    for event in events {
        if let (Op::Put { key, value }, Outcome::PutOk) = (event.op, event.outcome) {
            if !applied.contains(&Put { key, value }) {
                return Err(format!(
                    "acknowledged put {key}={value} (client {}) was never applied",
                    event.client
                ));
            }
        }
    }
    let history: History = events.iter().copied().collect();
    match linearizability::check(&history, budget) {
        Verdict::Linearizable => Ok(false),
        Verdict::GaveUp { .. } => Ok(true),
        verdict @ Verdict::NotLinearizable { .. } => Err(verdict.to_string()),
    }
}

/// Checks that every running node's registers equal the one history's.
async fn check_states(cluster: &Cluster) -> Result<(), String> {
    for (id, raft) in cluster.running() {
        let (last, registers) = raft
            .read(ReadConsistency::Stale, |kv| (kv.last(), kv.registers().clone()))
            .await
            .map_err(|error: RaftError| format!("node {id} could not be read: {error}"))?;
        let replayed = cluster.recorder.replayed(last);
        if registers != replayed {
            return Err(format!(
                "node {id}'s registers at index {last} are {registers:?}, but the applied history gives {replayed:?}"
            ));
        }
    }
    Ok(())
}

/// Runs seeds `from..to`, calling `report` after each; returns the failures.
pub fn sweep(
    from: u64,
    to: u64,
    options: &SimOptions,
    mut report: impl FnMut(&Result<Report, Failure>),
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for seed in from..to {
        let outcome = run_seed(seed, options);
        report(&outcome);
        if let Err(failure) = outcome {
            failures.push(failure);
        }
    }
    failures
}
