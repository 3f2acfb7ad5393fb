//! A cluster of [`RawNode`]s wired to a model of disks and a network, driven
//! one input at a time. Scripted scenario tests drive it by hand;
//! [`crate::Simulation`] drives it at random from a seed.
//!
//! **Disks.** Every `Ready` becomes a pending write on its node's disk. A
//! write becomes durable only when the driver flushes it (in order); then its
//! `persisted_messages` are released and the node hears `on_persisted`. A
//! crash loses every pending write, and the messages waiting on it.
//!
//! **Network.** Messages wait in flight until delivered, each with a delivery
//! time; the driver decides delays, loss and duplication. A cut link drops
//! what crosses it, in one direction or both.
//!
//! Every input is followed by the [`Checker`]s; the first violation is kept
//! and, in scripted use, fails the test at once.

use crate::checker::{Checker, Violation};
use crate::disk::{Disk, DiskModel, PendingWrite};
use crate::kv::KvStore;
use crate::net::{NetModel, Wire};
use crate::trace::{self, Trace};
use bytes::Bytes;
use raft_core::{
    Config, Entry, LogId, Membership, Message, MessageBody, NodeId, RawNode, ReadState, Ready, Role,
    Snapshot, SnapshotData, SnapshotMeta,
};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

mod faults;

/// One simulated node: its disk survives crashes, everything else does not.
#[derive(Debug)]
pub struct SimNode {
    /// The running node; `None` while crashed.
    pub raft: Option<RawNode>,
    /// Durable state.
    pub disk: Disk,
    pending: VecDeque<PendingWrite>,
    config: Config,
    incarnation: u64,
    /// The state machine (volatile: rebuilt from the log after a restart).
    pub kv: KvStore,
    /// Confirmed reads waiting for the state machine to catch up.
    reads: Vec<ReadState>,
    /// How this node encodes its state machine into snapshot bytes.
    /// Its own encoding ([`KvStore::encode_for`]) unless set.
    encode: Option<fn(&KvStore) -> SnapshotData>,
}

/// Something a client of the cluster can observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Node `node` applied `entry`.
    Applied {
        /// The node.
        node: NodeId,
        /// The entry.
        entry: Entry,
    },
    /// Read `ctx` may now be served from node `node`'s state machine.
    ReadReady {
        /// The node.
        node: NodeId,
        /// The read's id.
        ctx: u64,
    },
}

/// Counters for scenario assertions.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Messages delivered.
    pub delivered: u64,
    /// AppendEntries refused by the consistency check.
    pub append_conflicts: u64,
}

/// Nodes, disks, network and checkers.
#[derive(Debug)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, SimNode>,
    initial: Membership,
    wire: Wire,
    /// Nodes paused (alive, but neither ticking nor receiving).
    paused: BTreeSet<NodeId>,
    cut: HashSet<(NodeId, NodeId)>,
    /// Logical time, advanced by the driver.
    pub now: u64,
    /// Per-message delays, loss and duplication are drawn from this, if set;
    /// otherwise messages are delivered in send order with no loss.
    pub net: Option<NetModel>,
    /// How long a write takes to become durable is drawn from this, if set;
    /// otherwise writes wait for an explicit flush.
    pub disk: Option<DiskModel>,
    checker: Checker,
    violation: Option<Violation>,
    /// Scripted use: a violation panics at once with its description.
    pub panic_on_violation: bool,
    /// Let inputs accumulate and take `Ready`s only at [`Cluster::drain_all`],
    /// as a runtime that steps several messages before each `ready()` would.
    pub defer_ready: bool,
    dirty: BTreeSet<NodeId>,
    trace: Option<Trace>,
    seed: u64,
    /// Counters.
    pub stats: Stats,
    events: Vec<ClientEvent>,
}

impl Cluster {
    /// A cluster of voters `1..=n` with default configurations, as in a new
    /// deployment: empty logs, term 0.
    pub fn new(n: u64) -> Self {
        Self::with_config(n, Config::new)
    }

    /// A cluster of voters `1..=n`, each configured by `config(id)`.
    pub fn with_config(n: u64, config: impl Fn(NodeId) -> Config) -> Self {
        let disks = (1..=n).map(|id| (id, Disk::default())).collect();
        Self::with_disks(disks, config, 0)
    }

    /// A cluster restarted from the given disks (voters are the disks' ids):
    /// how scenario tests set up the logs of the paper's figures.
    pub fn with_disks(disks: BTreeMap<NodeId, Disk>, config: impl Fn(NodeId) -> Config, seed: u64) -> Self {
        let initial = Membership::new(disks.keys().copied(), []);
        Self::with_membership(disks, initial, config, seed)
    }

    /// A cluster whose initial configuration is `initial`; nodes with a disk
    /// but outside it are spares, which a membership change can add.
    pub fn with_membership(
        disks: BTreeMap<NodeId, Disk>,
        initial: Membership,
        config: impl Fn(NodeId) -> Config,
        seed: u64,
    ) -> Self {
        let nodes = disks
            .into_iter()
            .map(|(id, disk)| {
                (
                    id,
                    SimNode {
                        raft: None,
                        disk,
                        pending: VecDeque::new(),
                        config: config(id),
                        incarnation: 0,
                        kv: KvStore::default(),
                        reads: Vec::new(),
                        encode: None,
                    },
                )
            })
            .collect();
        let mut cluster = Self {
            nodes,
            initial,
            wire: Wire::default(),
            paused: BTreeSet::new(),
            cut: HashSet::new(),
            now: 0,
            net: None,
            disk: None,
            checker: Checker::default(),
            violation: None,
            panic_on_violation: true,
            defer_ready: false,
            dirty: Default::default(),
            trace: None,
            seed,
            stats: Stats::default(),
            events: Vec::new(),
        };
        for id in cluster.ids() {
            cluster.restart(id);
        }
        cluster
    }

    /// Starts recording a trace (see [`crate::trace`]): first each node's
    /// state, then one line per message sent, durable write, commit-index
    /// advance, role change, snapshot and driver action. Deliveries are
    /// left out: without a network model they follow the send order.
    pub fn enable_trace(&mut self) {
        self.start_trace(false);
    }

    /// Like [`Cluster::enable_trace`], and every delivery too: for runs
    /// whose network reorders messages.
    pub fn enable_trace_with_deliveries(&mut self) {
        self.start_trace(true);
    }

    fn start_trace(&mut self, deliveries: bool) {
        let nodes = self.nodes.iter().map(|(&id, n)| (id, n.raft.as_ref()));
        self.trace = Some(Trace::start(self.now, deliveries, nodes));
    }

    /// The trace recorded so far.
    pub fn trace(&self) -> &[String] {
        self.trace.as_ref().map_or(&[], |t| t.lines())
    }

    /// Adds a line to the trace (if tracing): what the driver did.
    pub fn note(&mut self, event: impl FnOnce() -> String) {
        self.log_event(event);
    }

    fn log_event(&mut self, event: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(self.now, event());
        }
    }

    /// Records node `id`'s commit index, if tracing and it moved.
    fn log_commit(&mut self, id: NodeId) {
        let commit = self.try_node(id).map(|r| r.log().committed());
        if let (Some(trace), Some(commit)) = (&mut self.trace, commit) {
            trace.commit(self.now, id, commit);
        }
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// A running node. Panics if it is down: scripted tests ask only for live nodes.
    pub fn node(&self, id: NodeId) -> &RawNode {
        self.try_node(id).unwrap_or_else(|| panic!("node {id} is down"))
    }

    /// A running node, if it is up.
    pub fn try_node(&self, id: NodeId) -> Option<&RawNode> {
        self.nodes.get(&id).and_then(|n| n.raft.as_ref())
    }

    /// A node's durable state.
    pub fn disk(&self, id: NodeId) -> &Disk {
        &self.nodes[&id].disk
    }

    /// Whether a node is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.try_node(id).is_some()
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The checkers' record of committed entries.
    pub fn committed(&self) -> &[Entry] {
        self.checker.committed()
    }

    /// The live leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.raft.as_ref().map(|r| (id, r)))
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(id, _)| id)
    }

    fn record(&mut self, result: Result<(), Violation>) {
        if let Err(v) = result {
            if self.panic_on_violation {
                panic!("{v}");
            }
            if self.violation.is_none() {
                self.log_event(|| format!("VIOLATION {v}"));
                self.violation = Some(v);
            }
        }
    }

    /// Gives node `id` an input, then processes everything it produces.
    fn input(&mut self, id: NodeId, f: impl FnOnce(&mut RawNode)) {
        if self.paused.contains(&id) {
            return; // a stopped process does nothing
        }
        let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else { return };
        f(raft);
        if self.defer_ready {
            // Check now all the same, so no transient state escapes the checkers.
            let check = self.checker.on_step(id, raft);
            self.record(check);
            self.dirty.insert(id);
        } else {
            self.drain(id);
        }
    }

    /// Takes the `Ready`s of every node that had input since the last call.
    pub fn drain_all(&mut self) {
        while let Some(id) = self.dirty.pop_first() {
            self.drain(id);
        }
    }

    /// Takes every `Ready` a node has and acts on it, checking as it goes.
    fn drain(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).expect("known node");
            let Some(raft) = node.raft.as_mut() else { return };
            let step_check = self.checker.on_step(id, raft);
            if !raft.has_ready() {
                self.record(step_check);
                return;
            }
            let ready = raft.ready();
            let prev_term = ready.entries.first().and_then(|e| raft.log().term(e.index - 1)).unwrap_or(0);
            self.record(step_check);
            if let Some(soft) = &ready.soft_state {
                let term = self.node(id).term();
                let leader = soft.leader.map_or_else(|| "-".to_string(), |l| l.to_string());
                self.log_event(|| format!("n{id} role={:?} term={term} leader={leader}", soft.role));
            }
            self.log_commit(id);
            let write_check = self.checker.on_write(id, prev_term, &ready.entries);
            self.record(write_check);
            for entry in &ready.entries {
                if let raft_core::EntryPayload::Membership(next) = &entry.payload {
                    let raft = self.try_node(id).expect("running");
                    let previous = raft.log().memberships().at(entry.index - 1).clone();
                    let (index, term) = (entry.index, entry.term);
                    self.log_event(|| {
                        format!("n{id} writes config {index}@{term}: {}", trace::membership(next))
                    });
                    let check = self.checker.on_membership(&previous, next);
                    self.record(check);
                }
            }
            self.process_ready(id, ready);
        }
    }

    fn process_ready(&mut self, id: NodeId, ready: Ready) {
        for message in ready.messages {
            self.send(message);
        }
        let apply_check = self.checker.on_apply(id, &ready.committed_entries);
        self.record(apply_check);
        let node = self.nodes.get_mut(&id).expect("known node");
        for entry in &ready.committed_entries {
            node.kv.apply(entry);
            self.events.push(ClientEvent::Applied { node: id, entry: entry.clone() });
            let check = self.checker.on_state(id, entry.index, &node.kv);
            if let Err(v) = check {
                self.record(Err(v));
                return;
            }
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        if ready.request_snapshot {
            if let Some(last) = Self::build_snapshot(id, node) {
                self.log_event(|| format!("n{id} snapshot built {}", trace::log_id(last)));
            }
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.reads.extend(ready.read_states);
        let applied = node.kv.applied();
        let (ready_reads, waiting): (Vec<_>, Vec<_>) = node.reads.drain(..).partition(|r| r.index <= applied);
        node.reads = waiting;
        for r in &ready_reads {
            self.log_event(|| format!("n{id} read ctx={} ready index={}", r.ctx, r.index));
        }
        self.events.extend(ready_reads.into_iter().map(|r| ClientEvent::ReadReady { node: id, ctx: r.ctx }));
        let latency = self.disk.as_mut().map_or(0, |d| d.rng.random_range(1..=d.max_latency.max(1)));
        let ready_at = self.now + latency;
        let node = self.nodes.get_mut(&id).expect("known node");
        let ready_at = node.pending.back().map_or(ready_at, |w| w.ready_at.max(ready_at));
        node.pending.push_back(PendingWrite {
            number: ready.number,
            hard_state: ready.hard_state,
            snapshot: ready.snapshot,
            entries: ready.entries,
            purge_to: ready.purge_to,
            messages: ready.persisted_messages,
            ready_at,
        });
    }

    /// Snapshots node's state machine as a runtime would: made durable first,
    /// then handed to the node, which compacts its log. Returns where it ends.
    fn build_snapshot(id: NodeId, node: &mut SimNode) -> Option<LogId> {
        let raft = node.raft.as_mut()?;
        let applied = node.kv.applied();
        let term = raft.log().term(applied).filter(|_| applied > 0)?;
        let meta = SnapshotMeta {
            last: LogId::new(term, applied),
            membership: raft.log().memberships().at(applied).clone(),
        };
        let data = node.encode.map_or_else(|| node.kv.encode_for(id), |encode| encode(&node.kv));
        let meta_last = meta.last;
        let snapshot = Snapshot { meta, data };
        node.disk.snapshot = Some(snapshot.clone());
        raft.on_snapshot_built(snapshot).expect("a snapshot of applied state is accepted");
        Some(meta_last)
    }

    /// Puts a message on the wire (or drops it, if its link is cut).
    fn send(&mut self, message: Message) {
        if self.cut.contains(&(message.from, message.to)) {
            self.log_event(|| format!("{} (cut)", trace::message(&message)));
            return;
        }
        let delays = match &mut self.net {
            Some(net) => net.delays(&message),
            None => vec![0],
        };
        self.log_event(|| trace::sent(&message, &delays));
        for delay in delays {
            self.wire.push(self.now + delay, message.clone());
        }
    }

    /// Completes the oldest pending write of node `id`: it becomes durable,
    /// its held messages are sent, and the node is told.
    pub fn flush_one(&mut self, id: NodeId) -> bool {
        if self.paused.contains(&id) {
            return false; // it would hear of the write only on resuming
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        let Some(write) = node.pending.pop_front() else { return false };
        if let Err(e) = node.disk.check_write(write.snapshot.as_ref(), &write.entries) {
            // What a real store answers; the node stops on it, as a runtime does.
            let v = Violation { property: "Disk writes are contiguous", detail: e.to_string() };
            self.record(Err(v));
            self.crash(id);
            return true;
        }
        // A committed entry can leave a disk only when the disk's log is
        // rewritten: check durability right after every such write.
        let rewrites = write.snapshot.is_some()
            || write
                .entries
                .first()
                .is_some_and(|e| node.disk.entries.last().is_some_and(|l| e.index <= l.index));
        if let Some(hs) = write.hard_state {
            node.disk.hard_state = hs;
            let vote = hs.vote.map_or_else(|| "-".to_string(), |v| v.to_string());
            self.log_event(|| format!("n{id} hard-state term={} vote={vote}", hs.term));
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some(install) = write.snapshot {
            // Durable now: the state machine is restored from it.
            let Some(kv) = KvStore::restore(&install.snapshot.data) else {
                let detail = format!("node {id}'s snapshot at {:?} does not decode", install.last());
                self.record(Err(Violation { property: "Snapshot install", detail }));
                self.crash(id);
                return true;
            };
            node.kv = kv.clone();
            let last = install.last();
            node.disk.install(install);
            self.log_event(|| format!("n{id} snapshot install {}", trace::log_id(last)));
            let check = self.checker.on_snapshot_install(id, last.index, &kv);
            self.record(check);
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        if self.trace.is_some() && !write.entries.is_empty() {
            let line = trace::persisted(id, &write.entries, &node.disk.entries);
            self.log_event(|| line);
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.disk.append(write.entries);
        if let Some(index) = write.purge_to {
            node.disk.entries.retain(|e| e.index > index);
            self.log_event(|| format!("n{id} purge ..={index}"));
        }
        if rewrites {
            self.check_durable();
            self.check_disk_agrees(id);
        }
        for message in write.messages {
            self.send(message);
        }
        self.input(id, |raft| raft.on_persisted(write.number));
        true
    }

    /// Checks that node `id`'s disk holds its core's log, if every write the
    /// core issued is durable and it has nothing unwritten (a snapshot
    /// install once left the disk keeping entries the core dropped).
    fn check_disk_agrees(&mut self, id: NodeId) {
        let node = &self.nodes[&id];
        let Some(raft) = node.raft.as_ref().filter(|r| node.pending.is_empty() && !r.has_ready()) else {
            return;
        };
        if let Some(detail) = node.disk.disagreement(raft.log()) {
            let detail = format!("node {id}: {detail}");
            self.record(Err(Violation { property: "A disk holds its core's log", detail }));
        }
    }

    /// Completes the pending writes of node `id` that are due by now.
    pub fn flush_due(&mut self, id: NodeId) {
        while self.nodes[&id].pending.front().is_some_and(|w| w.ready_at <= self.now) {
            if !self.flush_one(id) {
                return;
            }
        }
    }

    /// Delivers one message, if its recipient is up and the link not cut.
    fn deliver(&mut self, message: Message) {
        if self.cut.contains(&(message.from, message.to)) {
            self.log_event(|| format!("drop {} (cut)", trace::message(&message)));
            return;
        }
        if !self.is_up(message.to) {
            self.log_event(|| format!("drop {} (n{} down)", trace::message(&message), message.to));
            return;
        }
        if self.paused.contains(&message.to) {
            self.log_event(|| format!("hold {} (n{} paused)", trace::message(&message), message.to));
            self.wire.hold(message); // read once the node resumes
            return;
        }
        // Through the wire format, as every transport carries it: a message
        // the codec cannot carry is a violation, not a silent pass (its
        // decode limit once refused well-formed catch-up batches).
        let wired =
            raft_core::codec::encode(&message).and_then(|bytes| raft_core::codec::decode::<Message>(&bytes));
        let message = match wired {
            Ok(decoded) => decoded,
            Err(e) => {
                let detail = format!("{}: {e}", trace::message(&message));
                self.record(Err(Violation { property: "Messages survive the wire codec", detail }));
                return;
            }
        };
        self.stats.delivered += 1;
        if matches!(
            message.body,
            MessageBody::AppendEntriesResponse(raft_core::AppendEntriesResponse::Conflict { .. })
        ) {
            self.stats.append_conflicts += 1;
        }
        if self.trace.as_ref().is_some_and(|t| t.deliveries) {
            self.log_event(|| format!("deliver {}", trace::message(&message)));
        }
        let to = message.to;
        let mut result = Ok(());
        self.input(to, |raft| {
            if let Err(e) = raft.step(message) {
                result =
                    Err(Violation { property: "No step errors between honest nodes", detail: e.to_string() });
            }
        });
        self.record(result);
    }

    /// Delivers every message due by now, in order of delivery time.
    pub fn deliver_due(&mut self) {
        while let Some(message) = self.wire.pop_due(self.now) {
            self.deliver(message.message);
        }
    }

    /// Makes node `id` encode its snapshots with `encode` (for example
    /// [`KvStore::encode_descending`]): nodes then hold different bytes for
    /// the same state, as with a state machine that encodes a hash map.
    pub fn set_snapshot_encoding(&mut self, id: NodeId, encode: fn(&KvStore) -> SnapshotData) {
        self.nodes.get_mut(&id).expect("known node").encode = Some(encode);
    }

    /// Scripted use: puts `message` on the wire as if `message.from` had sent
    /// it, to play a faulty or hostile peer. It is delivered like any other.
    pub fn inject(&mut self, message: Message) {
        self.log_event(|| format!("inject {}", trace::message(&message)));
        self.send(message);
    }

    /// Ticks node `id` once.
    pub fn tick(&mut self, id: NodeId) {
        self.input(id, RawNode::tick);
    }

    /// Proposes a command at node `id`; returns its log id if `id` leads.
    pub fn propose(&mut self, id: NodeId, command: impl Into<Bytes>) -> Option<LogId> {
        let mut result = None;
        let command = command.into();
        self.log_event(|| format!("n{id} propose len={}", command.len()));
        self.input(id, |raft| result = raft.propose(command).ok());
        if result.is_none() {
            self.log_event(|| format!("n{id} propose refused"));
        }
        result
    }

    /// Asks node `id` to hand leadership to `target`.
    pub fn transfer_leadership(
        &mut self,
        id: NodeId,
        target: NodeId,
    ) -> Result<(), raft_core::TransferError> {
        self.log_event(|| format!("n{id} transfers leadership to n{target}"));
        let mut result = Err(raft_core::TransferError::NotLeader { leader: None });
        self.input(id, |raft| result = raft.transfer_leadership(target));
        result
    }

    /// Asks node `id` for a linearizable read `ctx`; a [`ClientEvent::ReadReady`]
    /// says when it may be served.
    pub fn read_index(
        &mut self,
        id: NodeId,
        ctx: u64,
        mode: raft_core::ReadMode,
    ) -> Result<(), raft_core::ReadError> {
        let mut result = Err(raft_core::ReadError::NoLeader);
        self.log_event(|| format!("n{id} read ctx={ctx} {mode:?}"));
        self.input(id, |raft| result = raft.read_index(ctx, mode));
        if let Err(e) = &result {
            self.log_event(|| format!("n{id} read ctx={ctx} refused: {e}"));
        }
        result
    }

    /// What clients could observe since the last call.
    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// Node `id`'s state machine.
    pub fn kv(&self, id: NodeId) -> &KvStore {
        &self.nodes[&id].kv
    }

    /// Makes node `id` campaign now.
    pub fn campaign(&mut self, id: NodeId) {
        self.log_event(|| format!("n{id} campaigns"));
        self.input(id, RawNode::campaign);
    }

    /// Whether messages or writes remain (other than those of paused nodes,
    /// which wait for them to resume).
    pub fn is_quiet(&self) -> bool {
        self.wire.is_empty()
            && self.nodes.iter().all(|(id, n)| n.pending.is_empty() || self.paused.contains(id))
    }

    /// Scripted use: delivers every message and completes every write until
    /// nothing is left (ticks do not advance).
    pub fn stabilize(&mut self) {
        self.stabilize_dropping(|_| false);
    }

    /// Scripted use: like [`Cluster::stabilize`], but every message for which
    /// `lost` holds is dropped instead of delivered.
    pub fn stabilize_dropping(&mut self, mut lost: impl FnMut(&Message) -> bool) {
        for _ in 0..10_000 {
            if self.is_quiet() {
                return;
            }
            self.flush_all();
            for message in self.wire.take_all() {
                if lost(&message.message) {
                    self.log_event(|| format!("lose {}", trace::message(&message.message)));
                } else {
                    self.deliver(message.message);
                }
            }
        }
        panic!("the cluster did not stabilize");
    }

    /// Scripted use: delivers the messages now in flight, once, without
    /// completing any write (so responses that wait on a write stay held).
    pub fn deliver_in_flight(&mut self) {
        for message in self.wire.take_all() {
            self.deliver(message.message);
        }
    }

    /// Scripted use: completes every pending write of every node.
    pub fn flush_all(&mut self) {
        for id in self.ids() {
            while self.flush_one(id) {}
        }
    }

    /// The messages on the wire.
    pub fn in_flight(&self) -> impl Iterator<Item = &Message> {
        self.wire.iter()
    }

    /// Scripted use: ticks node `id` `n` times, stabilizing after each tick.
    pub fn tick_n(&mut self, id: NodeId, n: u64) {
        for _ in 0..n {
            self.now += 1;
            self.tick(id);
            self.stabilize();
        }
    }

    /// Scripted use: ticks every live node `n` times, stabilizing after each round.
    pub fn tick_all(&mut self, n: u64) {
        for _ in 0..n {
            self.now += 1;
            for id in self.ids() {
                self.tick(id);
            }
            self.stabilize();
        }
    }

    /// Checks that every committed entry is durable on a quorum.
    pub fn check_durable(&mut self) {
        let disks: BTreeMap<NodeId, &Disk> = self.nodes.iter().map(|(&id, n)| (id, &n.disk)).collect();
        let committed = self.checker.committed().len() as u64;
        // Configurations newer than the committed one, in running logs and on
        // disks (a crashed leader's C_new may still decide after it restarts).
        let in_logs = self
            .nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .flat_map(|r| r.log().memberships().entries().iter())
            .filter(|(index, _)| *index > committed)
            .map(|(_, m)| m.clone());
        let on_disks = self
            .nodes
            .values()
            .flat_map(|n| n.disk.entries.iter().filter(move |e| e.index > committed))
            .filter_map(|e| match &e.payload {
                raft_core::EntryPayload::Membership(m) => Some((**m).clone()),
                _ => None,
            });
        let newer: Vec<Membership> = in_logs.chain(on_disks).collect();
        let result = self.checker.check_durable(&self.initial, &newer, &disks);
        self.record(result);
    }

    /// Asks node `id` to change the membership.
    pub fn change_membership(
        &mut self,
        id: NodeId,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<LogId, raft_core::MembershipChangeError> {
        let (voters, learners) = (voters.into_iter().collect(), learners.into_iter().collect());
        self.log_event(|| format!("n{id} changes membership to voters {voters:?} learners {learners:?}"));
        let mut result = Err(raft_core::MembershipChangeError::NotLeader { leader: None });
        self.input(id, |raft| result = raft.change_membership(voters, learners));
        result
    }

    /// The terms of a node's log, from index 1: a compact picture of it.
    pub fn log_terms(&self, id: NodeId) -> Vec<u64> {
        let log = self.node(id).log();
        (log.first_index()..=log.last_index()).filter_map(|i| log.term(i)).collect()
    }
}
