//! Closed-loop clients: each picks an operation, a node and a way to ask
//! from its own seeded stream, waits for the outcome, records it, and goes
//! again until the fault phase ends.

use crate::cluster::Cluster;
use crate::kv::Put;
use raft_core::runtime::{RaftError, ReadConsistency};
use raft_core::NodeId;
use raft_sim::linearizability::{Event, Op, Outcome};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Registers clients use: few, so that operations on each one overlap.
pub const KEYS: u64 = 5;

/// How long a client waits for an outcome before it gives up on it (a put
/// it gave up on may still apply: its outcome is unknown).
const PATIENCE: Duration = Duration::from_secs(2);

/// Client histories, shared by every client of a run.
pub type Histories = Arc<Mutex<Vec<Event>>>;

/// How one client goes about its operations.
pub struct Client {
    /// Its number (in the history and the trace).
    pub id: u64,
    /// Its choices.
    pub rng: ChaCha8Rng,
    /// Where it records what it did.
    pub history: Histories,
}

impl Client {
    /// A client drawing from `seed`.
    pub fn new(id: u64, seed: u64, history: Histories) -> Self {
        Self { id, rng: ChaCha8Rng::seed_from_u64(seed), history }
    }

    /// Runs operations until `until`.
    pub async fn run(mut self, cluster: Arc<Cluster>, until: Instant) {
        while Instant::now() < until {
            let target = self.pick_node(&cluster);
            if cluster.node(target).is_some() {
                let key = self.rng.random_range(0..KEYS);
                if self.rng.random_bool(0.5) {
                    self.put(&cluster, target, key).await;
                } else {
                    self.get(&cluster, target, key).await;
                }
            }
            let think = self.rng.random_range(0..20);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
    }

    /// The leader half the time (if one is known), any node otherwise.
    fn pick_node(&mut self, cluster: &Cluster) -> NodeId {
        let ids = cluster.ids();
        let any = *ids.choose(&mut self.rng).unwrap_or(&1);
        if self.rng.random_bool(0.5) {
            cluster.leader().map_or(any, |(id, _)| id)
        } else {
            any
        }
    }

    async fn put(&mut self, cluster: &Cluster, target: NodeId, key: u64) {
        let Some(raft) = cluster.node(target) else { return };
        let put = Put { key, value: cluster.next_value() };
        let forward = self.rng.random_bool(0.5);
        let invoke = cluster.now();
        let result = tokio::time::timeout(PATIENCE, async {
            if forward {
                raft.propose_or_forward(put).await
            } else {
                raft.propose(put).await
            }
        })
        .await;
        let complete = cluster.now();
        let (outcome, said) = match result {
            Err(_) => (Outcome::Unknown, "gave up".to_string()),
            Ok(Ok(index)) => (Outcome::PutOk, format!("ok at {index}")),
            Ok(Err(error)) => (put_outcome(&error), error.to_string()),
        };
        let how = if forward { "propose_or_forward" } else { "propose" };
        cluster.trace.log(format_args!(
            "client {} put {}={} at node {target} ({how}) [{invoke}, {complete}]: {outcome:?} ({said})",
            self.id, put.key, put.value
        ));
        let op = Op::Put { key, value: put.value };
        self.record(Event { client: self.id, op, invoke, complete, outcome });
    }

    async fn get(&mut self, cluster: &Cluster, target: NodeId, key: u64) {
        let Some(raft) = cluster.node(target) else { return };
        let lease = cluster.params.lease_reads && self.rng.random_bool(0.5);
        let consistency = if lease { ReadConsistency::Lease } else { ReadConsistency::Linearizable };
        let invoke = cluster.now();
        let result = tokio::time::timeout(PATIENCE, raft.read(consistency, move |kv| kv.get(key))).await;
        let complete = cluster.now();
        let (outcome, said) = match result {
            Ok(Ok(value)) => (Outcome::GetOk(value), String::new()),
            Ok(Err(error)) => (Outcome::Failed, error.to_string()),
            Err(_) => (Outcome::Failed, "gave up".to_string()),
        };
        cluster.trace.log(format_args!(
            "client {} get {key} at node {target} ({consistency:?}) [{invoke}, {complete}]: {outcome:?} {said}",
            self.id
        ));
        self.record(Event { client: self.id, op: Op::Get { key }, invoke, complete, outcome });
    }

    fn record(&self, event: Event) {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }
}

/// What an error tells a client about its put. Only the errors the runtime
/// documents as "nothing happened" count as failed; anything else may have
/// been applied.
pub fn put_outcome(error: &RaftError) -> Outcome {
    match error {
        RaftError::NotLeader { .. } | RaftError::NotApplied | RaftError::ShutDown | RaftError::Encode(_) => {
            Outcome::Failed
        }
        _ => Outcome::Unknown,
    }
}
