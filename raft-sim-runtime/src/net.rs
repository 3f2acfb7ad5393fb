//! The simulated network: a seeded [`Transport`] that loses, delays (and so
//! reorders), duplicates and partitions messages, delivered by one task.
//!
//! Every decision (lost or not, how late, duplicated or not) is drawn from
//! one ChaCha stream seeded by the run, in the order messages are sent. On a
//! single-threaded runtime that order is itself deterministic, so a seed
//! fixes every delivery. Raft-core's own [`raft_core::runtime::InProcessNetwork`]
//! is not used: its loss is drawn from a counter shared by every run, not from
//! the seed, and its delays spawn a task per message.

use raft_core::runtime::{Envelope, Inbox, Transport};
use raft_core::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the network currently does to messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Each message is lost with this probability.
    pub loss: f64,
    /// Each message that is not lost is delivered twice with this probability.
    pub duplicate: f64,
    /// Delivery takes between `delay.0` and `delay.1`, drawn per message.
    pub delay: (Duration, Duration),
    /// Links cut, as (from, to): nothing sent from `from` reaches `to`.
    pub cut: BTreeSet<(NodeId, NodeId)>,
}

impl Faults {
    /// A healthy network: nothing lost, 1 to 3 ms per message.
    pub fn healthy() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            delay: (Duration::from_millis(1), Duration::from_millis(3)),
            cut: BTreeSet::new(),
        }
    }
}

/// Counts of what the network did, for the trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost (by loss or a cut link at send or delivery time, or
    /// because their receiver was down).
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages handed to a receiver.
    pub delivered: u64,
}

struct State {
    rng: ChaCha8Rng,
    faults: Faults,
    /// Receivers that are up.
    nodes: BTreeMap<NodeId, Inbox>,
    /// Messages in flight, by delivery time and send order.
    in_flight: BTreeMap<(Instant, u64), Envelope>,
    sequence: u64,
    stats: NetStats,
}

/// The network shared by every node of a run. Cheap to clone.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl SimNetwork {
    /// A healthy network drawing from `seed`; starts its delivery task (call
    /// within the run's runtime).
    pub fn start(seed: u64) -> Self {
        let state = State {
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: Faults::healthy(),
            nodes: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            sequence: 0,
            stats: NetStats::default(),
        };
        let network = Self { state: Arc::new(Mutex::new(state)), wake: Arc::new(Notify::new()) };
        tokio::spawn(network.clone().deliver());
        network
    }

    /// Delivers messages to `id` in `inbox` (its running node's) from now on.
    pub fn connect(&self, id: NodeId, inbox: Inbox) {
        self.lock().nodes.insert(id, inbox);
    }

    /// Stops delivering to `id` (it crashed): its messages are dropped.
    pub fn disconnect(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// The transport node `id` sends through.
    pub fn transport(&self, id: NodeId) -> SimTransport {
        SimTransport { network: self.clone(), from: id }
    }

    /// Replaces what the network does to messages.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// What the network does to messages now.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, from: NodeId, envelope: Envelope) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.stats.sent += 1;
        let faults = &state.faults;
        if faults.cut.contains(&(from, envelope.to())) || state.rng.random_bool(faults.loss) {
            state.stats.dropped += 1;
            return;
        }
        let copies = if state.rng.random_bool(faults.duplicate) { 2 } else { 1 };
        state.stats.duplicated += copies - 1;
        let (low, high) = faults.delay;
        let now = Instant::now();
        for _ in 0..copies {
            let delay = state.rng.random_range(low..=high.max(low));
            state.sequence += 1;
            state.in_flight.insert((now + delay, state.sequence), envelope.clone());
        }
        drop(guard);
        self.wake.notify_one();
    }

    /// The delivery task: hands each message over when its time comes, unless
    /// its link was cut meanwhile or its receiver is down.
    async fn deliver(self) {
        loop {
            let (due, next) = {
                let mut state = self.lock();
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some(entry) = state.in_flight.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let envelope = entry.remove();
                    let (from, to) = (envelope.from(), envelope.to());
                    let receiver = state.nodes.get(&to).cloned();
                    match receiver.filter(|_| !state.faults.cut.contains(&(from, to))) {
                        Some(receiver) => {
                            state.stats.delivered += 1;
                            due.push((receiver, envelope));
                        }
                        None => state.stats.dropped += 1,
                    }
                }
                (due, state.in_flight.keys().next().map(|&(at, _)| at))
            };
            for (receiver, envelope) in due {
                receiver.deliver(envelope);
            }
            match next {
                Some(at) => {
                    // Biased: a fixed order of branches, so the run stays
                    // deterministic (tokio picks randomly otherwise).
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// One node's side of the [`SimNetwork`].
pub struct SimTransport {
    network: SimNetwork,
    from: NodeId,
}

impl Transport for SimTransport {
    fn send(&self, envelope: Envelope) {
        self.network.send(self.from, envelope);
    }
}
