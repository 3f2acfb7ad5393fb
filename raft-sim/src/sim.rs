//! Randomized, seeded runs of a [`Cluster`]: everything that happens is drawn
//! from one seed, so a failing run replays exactly.
//!
//! A run has two phases. In the **fault phase** clients propose while nodes
//! crash and restart (losing unflushed writes), pause and resume (SIGSTOP),
//! links are cut symmetrically or one way, and the network drops,
//! duplicates, delays (now and then by many terms) and so reorders messages,
//! and replays some after restarts. Every node's clock runs at its own rate
//! within the drift bound ([`crate::clock`]). Then everything **heals**:
//! paused nodes resume, crashed nodes restart, links are restored, the
//! network turns reliable, and the run must show **liveness**: a leader is
//! elected and a new proposal commits within [`LIVENESS_TICKS`] ticks.
//! Safety is checked after every step of both; linearizability of the
//! clients' history when the fault phase ends and when the run ends.

use crate::checker::Violation;
use crate::clock::Clocks;
use crate::cluster::{ClientEvent, Cluster};
use crate::disk::DiskModel;
use crate::kv;
use crate::linearizability::{self, Event, History, KeyCounts, Op, Outcome as OpOutcome, Verdict};
use crate::net::NetModel;
use bytes::Bytes;
use raft_core::{Config, EntryPayload, LogId, Membership, NodeId, ReadMode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Ticks the healed cluster has to elect a leader and commit a proposal.
pub const LIVENESS_TICKS: u64 = 300;
/// Clients propose only while the leader has fewer uncommitted entries than
/// this, as a runtime bounds its queue of pending proposals. Without it, a
/// run with tiny message budgets on a slow network would be offered more load
/// than it can replicate, and no bound on recovery time could hold.
pub const MAX_UNCOMMITTED: u64 = 32;

mod options;
pub use options::{SimOptions, FINE_TICK, LONG_DELAY_TICKS, TICK};

/// How a run ended badly.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The step at which it was detected.
    pub step: u64,
    /// What went wrong.
    pub violation: Violation,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {}\n  replay: cargo run -p raft-sim --release -- replay {}",
            self.seed, self.step, self.violation, self.seed
        )
    }
}

/// What a successful run did, for summaries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Entries committed.
    pub committed: u64,
    /// Ticks from the heal to the first commit after it.
    pub recovery_ticks: u64,
    /// The highest term reached.
    pub max_term: u64,
    /// Keys whose histories the linearizability checker searched, over the
    /// run's checks, and on how many it gave up (never counted as a pass).
    pub linearizability: KeyCounts,
}

/// The linearizability checker's search budget per key and check.
pub const SEARCH_BUDGET: usize = 200_000;
/// A run fails if the checker gave up on more than this fraction of its key
/// checks: a history the checker cannot judge is not a pass.
pub const MAX_GAVE_UP_PER_RUN: f64 = 0.25;
/// A sweep fails if the checker gave up on more than this fraction of all
/// its key checks.
pub const MAX_GAVE_UP_PER_SWEEP: f64 = 0.001;

/// Clients issuing operations concurrently.
const CLIENTS: u64 = 4;
/// Keys the clients use: few, so that operations contend.
const KEYS: u64 = 3;

/// An operation a client waits on.
#[derive(Debug, Clone, Copy)]
struct PendingOp {
    op: Op,
    node: NodeId,
    invoke: u64,
    /// A put's log position; a read's id.
    id: LogId,
}

/// One seeded run.
#[derive(Debug)]
pub struct Simulation {
    options: SimOptions,
    rng: ChaCha8Rng,
    cluster: Cluster,
    /// For each node: the time it comes back up, if down.
    down_until: Vec<Option<u64>>,
    /// For each node: the time it resumes, if paused.
    paused_until: Vec<Option<u64>>,
    clocks: Clocks,
    next_command: u64,
    step: u64,
    clients: Vec<Option<PendingOp>>,
    history: History,
    checked: KeyCounts,
}

impl Simulation {
    /// Sets up the run for `options`.
    pub fn new(options: SimOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let options_ = options.clone();
        let config = move |id| Config {
            pre_vote: options_.pre_vote,
            check_quorum: options_.check_quorum,
            max_entries_per_msg: options_.max_entries_per_msg,
            max_inflight_msgs: options_.max_inflight_msgs,
            snapshot_threshold: options_.snapshot_threshold,
            snapshot_keep_entries: options_.snapshot_keep_entries,
            snapshot_chunk_bytes: options_.snapshot_chunk_bytes,
            lease_reads: options_.lease_reads,
            max_clock_drift_ticks: options_.max_clock_drift_ticks,
            election_timeout_max: options_.election_timeout_max,
            ..Config::new(id)
        };
        let total = options.nodes + options.spares;
        let disks = (1..=total).map(|id| (id, Default::default())).collect();
        let initial = Membership::new(1..=options.nodes, []);
        let mut cluster = Cluster::with_membership(disks, initial, config, rng.random());
        cluster.panic_on_violation = false;
        cluster.defer_ready = options.batch_ready;
        cluster.net = Some(NetModel::new(
            ChaCha8Rng::seed_from_u64(rng.random()),
            options.drop_rate,
            options.duplicate_rate,
            options.max_delay,
        ));
        cluster.disk = Some(DiskModel {
            rng: ChaCha8Rng::seed_from_u64(rng.random()),
            max_latency: options.max_disk_latency,
        });
        if let Some(net) = &mut cluster.net {
            net.long_delay_rate = options.long_delay_rate;
            net.long_delay = LONG_DELAY_TICKS * options.tick_steps;
            net.remember_rate = options.replay_rate;
        }
        let election_timeout_min = Config::new(1).election_timeout_min;
        let drift = options.max_clock_drift_ticks;
        let tick = options.tick_steps;
        let clocks = Clocks::new(&mut rng, total, tick, election_timeout_min, drift, options.clock_skew);
        Self {
            down_until: vec![None; total as usize],
            paused_until: vec![None; total as usize],
            clocks,
            options,
            rng,
            cluster,
            next_command: 0,
            step: 0,
            clients: vec![None; CLIENTS as usize],
            history: History::new(),
            checked: KeyCounts::default(),
        }
    }

    /// Records a trace of every event (for replays).
    pub fn enable_trace(&mut self) {
        self.cluster.enable_trace_with_deliveries();
    }

    /// The cluster, for inspection after a run.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Runs the fault phase, heals, and checks liveness. The clients'
    /// history is checked for linearizability when the fault phase ends and
    /// again when the run ends, however it ends: a run that fails for
    /// liveness still reports a stale read, and a safety violation is
    /// reported first.
    pub fn run(&mut self) -> Result<Outcome, Failure> {
        let result = self.run_phases();
        if result.as_ref().is_err_and(|f| f.violation.property != "Liveness") {
            return result;
        }
        for client in 0..self.clients.len() {
            self.complete(client, OpOutcome::Unknown);
        }
        let history = std::mem::take(&mut self.history);
        let checked = self.check_linearizable(&history);
        self.history = history;
        checked?;
        let counts = self.checked;
        if counts.gave_up as f64 > MAX_GAVE_UP_PER_RUN * counts.checked as f64 {
            return Err(self.failure(Violation {
                property: "Linearizability checked",
                detail: format!(
                    "the checker gave up on {} of {} key histories (at most {MAX_GAVE_UP_PER_RUN} may be unjudged)",
                    counts.gave_up, counts.checked
                ),
            }));
        }
        result.map(|outcome| Outcome { linearizability: counts, ..outcome })
    }

    fn run_phases(&mut self) -> Result<Outcome, Failure> {
        while self.step < self.options.fault_steps {
            self.fault_step();
            self.advance()?;
        }
        self.check_fault_phase()?;
        self.heal();
        let healed_at = self.step;
        let deadline = healed_at + LIVENESS_TICKS * self.options.tick_steps;
        let probe = self.command(true);
        let mut accepted_in_term = None;
        while self.step < deadline {
            if let Some(leader) = self.cluster.leader() {
                // Propose once per term, retrying while the leader refuses
                // (during a leadership transfer, say).
                let term = self.cluster.node(leader).term();
                if accepted_in_term != Some(term) && self.cluster.propose(leader, probe.clone()).is_some() {
                    accepted_in_term = Some(term);
                }
            }
            self.advance()?;
            let committed = self.cluster.committed();
            if committed.iter().rev().any(|e| matches!(&e.payload, EntryPayload::Command(c) if *c == probe)) {
                let committed = self.cluster.committed();
                let max_term = self
                    .cluster
                    .ids()
                    .iter()
                    .filter_map(|&id| self.cluster.try_node(id))
                    .map(|r| r.term())
                    .max();
                return Ok(Outcome {
                    committed: committed.len() as u64,
                    recovery_ticks: (self.step - healed_at) / self.options.tick_steps,
                    max_term: max_term.unwrap_or(0),
                    linearizability: KeyCounts::default(),
                });
            }
        }
        Err(self.failure(Violation {
            property: "Liveness",
            detail: format!(
                "no proposal committed within {LIVENESS_TICKS} ticks of healing (leader: {:?})",
                self.cluster.leader()
            ),
        }))
    }

    fn failure(&self, violation: Violation) -> Failure {
        Failure { seed: self.options.seed, step: self.step, violation }
    }

    /// A unique command; probes are marked so the liveness check can find them.
    fn command(&mut self, probe: bool) -> Bytes {
        self.next_command += 1;
        let tag: &[u8] = if probe { b"probe" } else { b"cmd" };
        Bytes::from([tag, &self.next_command.to_be_bytes()].concat())
    }

    /// One unit of time: due writes complete, due messages arrive, nodes tick.
    fn advance(&mut self) -> Result<(), Failure> {
        self.step += 1;
        self.cluster.now = self.step;
        let ids = self.cluster.ids();
        for &id in &ids {
            self.cluster.flush_due(id);
        }
        self.cluster.deliver_due();
        for &id in &ids {
            if self.clocks.ticks_at(id, self.step) {
                self.cluster.tick(id);
            }
        }
        self.cluster.drain_all();
        self.observe_clients();
        if self.step % 100 == 0 {
            self.cluster.check_durable();
        }
        match self.cluster.violation() {
            Some(v) => Err(self.failure(v.clone())),
            None => Ok(()),
        }
    }

    /// Faults and client load for one step of the fault phase.
    fn fault_step(&mut self) {
        let n = self.options.nodes + self.options.spares;
        for i in 0..n as usize {
            let id = i as NodeId + 1;
            match self.down_until[i] {
                Some(t) if t <= self.step => {
                    self.down_until[i] = None;
                    self.cluster.restart(id);
                }
                None if self.rng.random_bool(self.options.crash_rate) => {
                    if self.paused_until[i].take().is_some() {
                        self.clocks.forget_pause(id, self.step);
                    }
                    self.cluster.crash(id);
                    let ticks = self.rng.random_range(1..40);
                    self.down_until[i] = Some(self.step + ticks * self.options.tick_steps);
                }
                _ => {}
            }
        }
        self.pause_step(n);
        if self.rng.random_bool(self.options.partition_rate) {
            self.repartition();
        }
        if self.rng.random_bool(self.options.churn_rate) {
            self.churn();
        }
        if self.rng.random_bool(self.options.churn_rate / 2.0) {
            if let Some(leader) = self.cluster.leader() {
                let target = self.rng.random_range(1..=n);
                let _ = self.cluster.transfer_leadership(leader, target);
            }
        }
        // Background load: commands the store ignores, for replication to carry.
        if self.rng.random_bool(self.options.propose_rate) {
            let target = self.cluster.leader().unwrap_or_else(|| self.rng.random_range(1..=n));
            let backlog =
                self.cluster.try_node(target).map_or(0, |r| r.log().last_index() - r.log().committed());
            if backlog < MAX_UNCOMMITTED {
                let command = self.command(false);
                self.cluster.propose(target, command);
            }
        }
        // Clients whose history is checked for linearizability.
        for client in 0..CLIENTS as usize {
            if self.clients[client].is_none() && self.rng.random_bool(self.options.client_rate) {
                self.invoke(client, n);
            }
        }
    }

    /// Pauses and resumes nodes, and changes clock rates.
    fn pause_step(&mut self, n: u64) {
        for i in 0..n as usize {
            if self.paused_until[i].is_some_and(|t| t <= self.step) {
                self.resume(i as NodeId + 1);
            }
        }
        if self.rng.random_bool(self.options.rate_change_rate) {
            let id = self.rng.random_range(1..=n);
            let period = self.clocks.change_rate(&mut self.rng, id);
            self.cluster.note(|| format!("n{id} now ticks every {period} steps"));
        }
        if !self.rng.random_bool(self.options.pause_rate) {
            return;
        }
        let leader = self.cluster.leader().filter(|_| self.rng.random_bool(0.5));
        let id = leader.unwrap_or_else(|| self.rng.random_range(1..=n));
        if self.paused_until[id as usize - 1].is_some() || !self.cluster.is_up(id) {
            return;
        }
        let (min, max) = (Config::new(id).election_timeout_min, self.options.election_timeout_max);
        // Half the leader pauses outlast the election timeout: the classic
        // lease-read failure, a leader that resumes after another was elected.
        let ticks = if leader.is_some() && self.rng.random_bool(0.5) {
            self.rng.random_range(max..=3 * max)
        } else {
            self.rng.random_range(1..=min)
        };
        self.paused_until[id as usize - 1] = Some(self.step + ticks * self.options.tick_steps);
        self.clocks.pause(id);
        self.cluster.pause(id);
    }

    /// Resumes node `id`: first the ticks its clock counted while it was
    /// stopped, then the messages that arrived meanwhile.
    fn resume(&mut self, id: NodeId) {
        self.paused_until[id as usize - 1] = None;
        let missed = self.clocks.resume(id, self.step);
        self.cluster.resume(id, missed);
    }

    /// Client `client` starts a put (at the leader, mostly) or a read (at any
    /// node: ReadIndex, or a lease read at a leader with leases on).
    fn invoke(&mut self, client: usize, nodes: u64) {
        let key = self.rng.random_range(0..KEYS);
        self.next_command += 1;
        let value = self.next_command;
        let leader = self.cluster.leader();
        if self.rng.random_bool(0.6) {
            let node = leader
                .filter(|_| self.rng.random_bool(0.9))
                .unwrap_or_else(|| self.rng.random_range(1..=nodes));
            let backlog =
                self.cluster.try_node(node).map_or(0, |r| r.log().last_index() - r.log().committed());
            if backlog >= MAX_UNCOMMITTED {
                return;
            }
            if let Some(id) = self.cluster.propose(node, kv::put(key, value)) {
                let op = Op::Put { key, value };
                self.clients[client] = Some(PendingOp { op, node, invoke: self.step, id });
            }
        } else {
            // At any node: a follower asks its leader for the read index (or
            // for the lease) and serves the read itself.
            let node = self.rng.random_range(1..=nodes);
            let lease = self.options.lease_reads && self.rng.random_bool(0.5);
            let mode = if lease { ReadMode::Lease } else { ReadMode::ReadIndex };
            if self.cluster.read_index(node, value, mode).is_ok() {
                let op = Op::Get { key };
                self.clients[client] =
                    Some(PendingOp { op, node, invoke: self.step, id: LogId::new(0, value) });
            }
        }
    }

    /// Completes client operations from what the cluster did this step.
    fn observe_clients(&mut self) {
        for event in self.cluster.take_events() {
            for client in 0..self.clients.len() {
                let Some(pending) = self.clients[client] else { continue };
                let outcome = match (&event, pending.op) {
                    (ClientEvent::Applied { node, entry }, Op::Put { .. })
                        if *node == pending.node && entry.index == pending.id.index =>
                    {
                        // Another entry at its index means it was overwritten: never applied.
                        if entry.term == pending.id.term {
                            OpOutcome::PutOk
                        } else {
                            OpOutcome::Failed
                        }
                    }
                    (ClientEvent::ReadReady { node, ctx }, Op::Get { key })
                        if *node == pending.node && *ctx == pending.id.index =>
                    {
                        OpOutcome::GetOk(self.cluster.kv(*node).get(key))
                    }
                    _ => continue,
                };
                self.complete(client, outcome);
            }
        }
        for client in 0..self.clients.len() {
            let Some(pending) = self.clients[client] else { continue };
            let timeout = self.options.client_timeout;
            if !self.cluster.is_up(pending.node) || self.step - pending.invoke > timeout {
                self.complete(client, OpOutcome::Unknown);
            }
        }
    }

    fn complete(&mut self, client: usize, outcome: OpOutcome) {
        let Some(pending) = self.clients[client].take() else { return };
        let event = Event {
            client: client as u64,
            op: pending.op,
            invoke: pending.invoke,
            complete: self.step,
            outcome,
        };
        self.history.record(event);
    }

    /// The history of the fault phase must be linearizable on its own,
    /// with the operations still open then counted as unknown (a prefix of a
    /// linearizable history is; checking it alone is a second chance where
    /// the whole history is too long to search).
    fn check_fault_phase(&mut self) -> Result<(), Failure> {
        let mut history = self.history.clone();
        for (client, pending) in self.clients.iter().enumerate() {
            let Some(pending) = pending else { continue };
            let event = Event {
                client: client as u64,
                op: pending.op,
                invoke: pending.invoke,
                complete: self.step,
                outcome: OpOutcome::Unknown,
            };
            history.record(event);
        }
        self.check_linearizable(&history)
    }

    /// `history` must be linearizable (checked per key); keys the search
    /// gave up on are counted.
    fn check_linearizable(&mut self, history: &History) -> Result<(), Failure> {
        let (verdict, counts) = linearizability::check_counted(history, SEARCH_BUDGET);
        self.checked.checked += counts.checked;
        self.checked.gave_up += counts.gave_up;
        match verdict {
            Verdict::NotLinearizable { key, explanation } => Err(self.failure(Violation {
                property: "Linearizability",
                detail: format!("key {key}: {explanation}"),
            })),
            Verdict::Linearizable | Verdict::GaveUp { .. } => Ok(()),
        }
    }

    /// Asks the leader for a random membership change: add, promote, demote
    /// or remove a node, or replace a voter with a learner. Many are refused
    /// (a change in flight, a learner not caught up); that is part of the test.
    fn churn(&mut self) {
        let Some(leader) = self.cluster.leader() else { return };
        let m = self.cluster.node(leader).membership().clone();
        let all: Vec<NodeId> = (1..=self.options.nodes + self.options.spares).collect();
        let pick = |rng: &mut ChaCha8Rng, from: Vec<NodeId>| -> Option<NodeId> {
            (!from.is_empty()).then(|| from[rng.random_range(0..from.len())])
        };
        let outsiders: Vec<NodeId> = all.iter().copied().filter(|&id| !m.contains(id)).collect();
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let (mut next_voters, mut next_learners) = (m.voters.clone(), m.learners.clone());
        match self.rng.random_range(0..6) {
            0 => next_learners.extend(pick(&mut self.rng, outsiders)),
            1 => {
                let Some(x) = pick(&mut self.rng, learners) else { return };
                next_learners.remove(&x);
                next_voters.insert(x);
            }
            2 if voters.len() > 1 => {
                let Some(x) = pick(&mut self.rng, voters) else { return };
                next_voters.remove(&x);
            }
            3 if voters.len() > 1 => {
                let Some(x) = pick(&mut self.rng, voters) else { return };
                next_voters.remove(&x);
                next_learners.insert(x);
            }
            4 => {
                let (Some(out), Some(x)) = (pick(&mut self.rng, voters), pick(&mut self.rng, learners))
                else {
                    return;
                };
                next_voters.remove(&out);
                next_learners.remove(&x);
                next_voters.insert(x);
            }
            _ => {
                let Some(x) = pick(&mut self.rng, learners) else { return };
                next_learners.remove(&x);
            }
        }
        let _ = self.cluster.change_membership(leader, next_voters, next_learners);
    }

    /// Heals the old partition and, most of the time, makes a new one.
    fn repartition(&mut self) {
        self.cluster.heal();
        let ids = self.cluster.ids();
        let leader = self.cluster.leader();
        if let Some(leader) =
            leader.filter(|_| self.options.tick_steps == FINE_TICK && self.rng.random_bool(0.8))
        {
            // An isolated leader, whose lease the others' election races.
            let rest: Vec<_> = ids.iter().copied().filter(|&id| id != leader).collect();
            self.cluster.partition(&[leader], &rest);
            return;
        }
        match self.rng.random_range(0..4) {
            0 => {} // stay healed
            1 => {
                // One way: a random set of directed links fails.
                for &a in &ids {
                    for &b in &ids {
                        if a != b && self.rng.random_bool(0.3) {
                            self.cluster.cut_link(a, b);
                        }
                    }
                }
            }
            _ => {
                // A symmetric split into two sides.
                let (a, b): (Vec<_>, Vec<_>) = ids.iter().partition(|_| self.rng.random_bool(0.5));
                self.cluster.partition(&a, &b);
            }
        }
        let drop_rate = if self.rng.random_bool(0.5) { self.options.drop_rate } else { 0.0 };
        if let Some(net) = &mut self.cluster.net {
            net.drop_rate = drop_rate;
        }
    }

    /// Ends the fault phase: everything restarts and the network turns reliable.
    fn heal(&mut self) {
        for i in 0..self.paused_until.len() {
            if self.paused_until[i].is_some() {
                self.resume(i as NodeId + 1);
            }
        }
        for i in 0..self.down_until.len() {
            if self.down_until[i].take().is_some() {
                self.cluster.restart(i as NodeId + 1);
            }
        }
        self.cluster.heal();
        if let Some(net) = &mut self.cluster.net {
            net.drop_rate = 0.0;
            net.duplicate_rate = 0.0;
            net.max_delay = net.max_delay.min(5);
            net.long_delay_rate = 0.0;
            net.remember_rate = 0.0;
            net.forget();
        }
    }
}

/// Runs seed `seed` with the options it stands for.
pub fn run_seed(seed: u64) -> Result<Outcome, Failure> {
    Simulation::new(SimOptions::from_seed(seed)).run()
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// The seeds that failed, in no particular order.
    pub failures: Vec<Failure>,
    /// Threads used.
    pub threads: usize,
    /// Over the passing runs: key histories checked for linearizability,
    /// and how many of those the checker gave up on.
    pub linearizability: KeyCounts,
}

impl SweepReport {
    /// Whether the checker gave up on more than [`MAX_GAVE_UP_PER_SWEEP`] of
    /// the sweep's key checks: then the sweep judged too little to pass.
    pub fn gave_up_too_often(&self) -> bool {
        let counts = self.linearizability;
        counts.gave_up as f64 > MAX_GAVE_UP_PER_SWEEP * counts.checked as f64
    }
}

/// Runs every seed in `seeds` on every available core, calling `on_failure`
/// for each one that fails (from the thread that ran it).
pub fn sweep(seeds: std::ops::Range<u64>, on_failure: impl Fn(&Failure) + Sync) -> SweepReport {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(seeds.start);
    let report = std::sync::Mutex::new(SweepReport::default());
    let lock = || report.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                match run_seed(seed) {
                    Ok(outcome) => {
                        let mut report = lock();
                        report.linearizability.checked += outcome.linearizability.checked;
                        report.linearizability.gave_up += outcome.linearizability.gave_up;
                    }
                    Err(failure) => {
                        on_failure(&failure);
                        lock().failures.push(failure);
                    }
                }
            });
        }
    });
    let mut report = report.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    report.threads = threads;
    report
}
