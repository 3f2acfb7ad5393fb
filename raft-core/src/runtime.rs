//! The tokio runtime (feature `runtime`): drives a [`RawNode`] through a
//! [`LogStore`], a [`Transport`] and a [`StateMachine`], and gives users a
//! small handle, [`Raft`].
//!
//! Three tasks, no shared locks:
//! - the **core task** owns the `RawNode`: it ticks it, steps inbound
//!   messages, takes requests from handles, and hands each `Ready`'s parts to
//!   the other tasks, sending its immediate messages itself;
//! - the **writer task** owns durability: it takes every write queued while
//!   the previous one ran, merges them ([`LogWrite::merge`]) into one store
//!   write (group commit: one sync for many proposals), then sends the
//!   messages that waited on it and reports the write persisted. The leader's
//!   own write thus runs in parallel with replication;
//! - the **applier task** owns the state machine: it applies committed
//!   entries, answers proposals, serves reads once applied far enough, and
//!   builds snapshots when asked.
//!
//! A storage error stops the node: every waiting request fails with
//! [`RaftError::Storage`] rather than run on a broken disk.

use crate::{
    Config, Entry, EntryPayload, Index, InitError, LogId, LogStore, LogWrite, Membership,
    MembershipChangeError, Message, NodeId, RawNode, ReadMode, Role, Snapshot, SnapshotMeta, StorageError,
    Term, TransferError,
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

/// The application's replicated state machine.
pub trait StateMachine: Send + 'static {
    /// What clients propose; encoded into log entries with bincode.
    type Command: Serialize + DeserializeOwned + Send + 'static;
    /// What applying a command returns to its proposer.
    type Response: Send + 'static;

    /// Applies a committed command. Called in log order, once per entry.
    fn apply(&mut self, entry: LogId, command: Self::Command) -> Self::Response;

    /// The state machine's state as bytes, for a snapshot.
    fn snapshot(&self) -> Bytes;

    /// Replaces the state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;
}

/// A snapshot the state machine could not read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot restore the state machine: {0}")]
pub struct RestoreError(pub String);

/// Carries messages to peers.
pub trait Transport: Send + Sync + 'static {
    /// Queues `message` for `message.to`, in order per peer where it can. It
    /// must never block: when a peer's queue is full the message is dropped,
    /// and Raft retries.
    fn send(&self, message: Message);
}

/// Settings of the runtime (the protocol's are in [`Config`]).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long one tick of [`Config`]'s timeouts lasts.
    pub tick: Duration,
    /// Inbound messages queued before further ones are dropped.
    pub inbound_capacity: usize,
    /// Requests from handles queued before callers wait.
    pub request_capacity: usize,
}

impl Default for RuntimeConfig {
    /// Ticks of 10 ms (so elections after 100 to 200 ms with the default
    /// [`Config`]), and queues of 4096.
    fn default() -> Self {
        Self { tick: Duration::from_millis(10), inbound_capacity: 4096, request_capacity: 4096 }
    }
}

/// Why a request failed. Each variant says what the caller knows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RaftError {
    /// This node does not lead: retry at `leader`, if known. Nothing happened.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The proposal was definitely not applied: a new leader replaced it.
    #[error("the proposal was not applied")]
    NotApplied,
    /// The proposal may or may not have been applied (the node stopped, or a
    /// snapshot covered it, before its outcome was seen here).
    #[error("the outcome of the proposal is unknown")]
    OutcomeUnknown,
    /// The node is shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// The node stopped on a storage error.
    #[error("the node stopped on a storage error: {0}")]
    Storage(String),
    /// The command could not be encoded.
    #[error("the command could not be encoded: {0}")]
    Encode(String),
    /// A membership change was refused.
    #[error(transparent)]
    Membership(#[from] MembershipChangeError),
    /// A leadership transfer was refused.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The store could not be loaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state or the configuration is invalid.
    #[error(transparent)]
    Init(#[from] InitError),
    /// The state machine could not restore the stored snapshot.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Linearizable, confirmed by a heartbeat round (ReadIndex).
    Linearizable,
    /// Linearizable under the leader's lease (needs [`Config::lease_reads`]).
    Lease,
    /// Whatever this node has applied: fast, possibly stale.
    Stale,
}

/// What a node reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The highest index known committed.
    pub commit_index: Index,
    /// The last index in its log.
    pub last_log_index: Index,
    /// The last index its state machine applied.
    pub applied_index: Index,
    /// The configuration in force.
    pub membership: Membership,
}

type Reply<T> = oneshot::Sender<Result<T, RaftError>>;
type ReadJob<SM> = Box<dyn FnOnce(Result<&SM, RaftError>) + Send>;

/// The most inbound messages, or requests, the core task takes in one go
/// before it produces a `Ready` and looks at its other inputs.
const MAX_BATCH: usize = 1024;

/// Requests from handles to the core task.
enum Request<SM: StateMachine> {
    Propose(Bytes, Reply<SM::Response>),
    Read(ReadConsistency, ReadJob<SM>),
    ChangeMembership(Membership, Reply<LogId>),
    Transfer(NodeId, Reply<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Reports from the writer and applier tasks to the core task.
enum Event {
    Persisted(u64),
    Applied(Index),
    SnapshotBuilt(Snapshot),
    Failed(String),
}

/// Work for the applier task.
enum ApplyJob<SM: StateMachine> {
    Entries(Vec<(Entry, Option<Reply<SM::Response>>)>),
    Restore(Snapshot),
    Read(Index, ReadJob<SM>),
    BuildSnapshot,
}

/// A write for the writer task, with what waits on it.
struct WriteJob {
    number: u64,
    write: LogWrite,
    messages: Vec<Message>,
}

/// The handle to a running node. Cheap to clone; every clone talks to the
/// same node.
pub struct Raft<SM: StateMachine> {
    requests: mpsc::Sender<Request<SM>>,
    inbound: mpsc::Sender<Message>,
    metrics: watch::Receiver<Metrics>,
}

impl<SM: StateMachine> Clone for Raft<SM> {
    fn clone(&self) -> Self {
        Self { requests: self.requests.clone(), inbound: self.inbound.clone(), metrics: self.metrics.clone() }
    }
}

impl<SM: StateMachine> Raft<SM> {
    /// Starts a node: loads `store`, restores `state_machine` from the stored
    /// snapshot (it should start empty) and replays the log into it as the
    /// cluster commits it. `membership` is the initial configuration of a new
    /// cluster, ignored once the store holds a snapshot or configuration
    /// entries. Must be called within a tokio runtime.
    pub async fn start<S: LogStore, T: Transport>(
        config: Config,
        runtime: RuntimeConfig,
        membership: Membership,
        store: S,
        transport: T,
        mut state_machine: SM,
    ) -> Result<Self, StartError> {
        let stored = store.load().await?;
        if let Some(snapshot) = &stored.snapshot {
            state_machine.restore(&snapshot.data)?;
        }
        let applied = stored.snapshot.as_ref().map(|s| (s.meta.last, s.meta.membership.clone()));
        let seed = config.id
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let raw = RawNode::new(config, stored.into_initial_state(membership.clone()), seed)?;
        let store = Arc::new(store);
        let transport = Arc::new(transport);

        let (requests, request_rx) = mpsc::channel(runtime.request_capacity);
        let (inbound, inbound_rx) = mpsc::channel(runtime.inbound_capacity);
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (write_tx, write_rx) = mpsc::unbounded_channel();
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let (metrics_tx, metrics) = watch::channel(metrics_of(&raw, raw.log().applied()));

        let (last, membership) = applied.unwrap_or((LogId::default(), membership));
        let applier =
            Applier { state_machine, last, membership, store: store.clone(), events: event_tx.clone() };
        let applier = tokio::spawn(applier.run(apply_rx));
        let writer = tokio::spawn(run_writer(store, transport.clone(), write_rx, apply_tx.clone(), event_tx));
        let core = Core {
            raw,
            transport,
            writes: write_tx,
            apply: apply_tx,
            metrics: metrics_tx,
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            applied: 0,
        };
        tokio::spawn(core.run(runtime.tick, request_rx, inbound_rx, event_rx, writer, applier));
        Ok(Self { requests, inbound, metrics })
    }

    /// Hands a message from a peer to this node (transports call this). Never
    /// waits: when the inbound queue is full the message is dropped.
    pub fn receive(&self, message: Message) {
        let _ = self.inbound.try_send(message);
    }

    /// Proposes `command` and waits until it is applied, returning the state
    /// machine's response. Only the leader accepts proposals.
    pub async fn propose(&self, command: SM::Command) -> Result<SM::Response, RaftError> {
        let bytes = crate::codec::encode(&command).map_err(|e| RaftError::Encode(e.to_string()))?;
        let (reply, response) = oneshot::channel();
        self.request(Request::Propose(Bytes::from(bytes), reply)).await?;
        response.await.unwrap_or(Err(RaftError::OutcomeUnknown))
    }

    /// Runs `read` against the state machine once `consistency` allows.
    pub async fn read<R: Send + 'static>(
        &self,
        consistency: ReadConsistency,
        read: impl FnOnce(&SM) -> R + Send + 'static,
    ) -> Result<R, RaftError> {
        let (reply, response) = oneshot::channel();
        let job: ReadJob<SM> = Box::new(move |sm| {
            let _ = reply.send(sm.map(read));
        });
        self.request(Request::Read(consistency, job)).await?;
        response.await.unwrap_or(Err(RaftError::ShutDown))
    }

    /// Changes the voters and learners (see [`RawNode::change_membership`]);
    /// returns once the change has started.
    pub async fn change_membership(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<LogId, RaftError> {
        let (reply, response) = oneshot::channel();
        self.request(Request::ChangeMembership(Membership::new(voters, learners), reply)).await?;
        response.await.unwrap_or(Err(RaftError::ShutDown))
    }

    /// Starts handing leadership to `target`.
    pub async fn transfer_leadership(&self, target: NodeId) -> Result<(), RaftError> {
        let (reply, response) = oneshot::channel();
        self.request(Request::Transfer(target, reply)).await?;
        response.await.unwrap_or(Err(RaftError::ShutDown))
    }

    /// The node's latest metrics, and a way to wait for changes. Do not
    /// hold a borrow of them (including the guard `wait_for` returns) while
    /// the node runs: it blocks the node from publishing new ones.
    pub fn metrics(&self) -> watch::Receiver<Metrics> {
        self.metrics.clone()
    }

    /// Stops the node once every write it has acknowledged is durable.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.requests.send(Request::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    async fn request(&self, request: Request<SM>) -> Result<(), RaftError> {
        self.requests.send(request).await.map_err(|_| RaftError::ShutDown)
    }
}

fn metrics_of(raw: &RawNode, applied_index: Index) -> Metrics {
    Metrics {
        applied_index,
        id: raw.id(),
        role: raw.role(),
        term: raw.term(),
        leader: raw.leader(),
        commit_index: raw.log().committed(),
        last_log_index: raw.log().last_index(),
        membership: raw.membership().clone(),
    }
}

/// The core task's state.
struct Core<SM: StateMachine, T: Transport> {
    raw: RawNode,
    transport: Arc<T>,
    writes: mpsc::UnboundedSender<WriteJob>,
    apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    metrics: watch::Sender<Metrics>,
    /// Proposals made here, by index, with the term they were made in.
    proposals: BTreeMap<Index, (Term, Reply<SM::Response>)>,
    /// Linearizable reads waiting for their read state.
    reads: HashMap<u64, ReadJob<SM>>,
    next_read: u64,
    /// What the applier last reported applied.
    applied: Index,
}

impl<SM: StateMachine, T: Transport> Core<SM, T> {
    async fn run(
        mut self,
        tick: Duration,
        mut requests: mpsc::Receiver<Request<SM>>,
        mut inbound: mpsc::Receiver<Message>,
        mut events: mpsc::UnboundedReceiver<Event>,
        writer: tokio::task::JoinHandle<()>,
        applier: tokio::task::JoinHandle<()>,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure = None;
        let shutdown = loop {
            tokio::select! {
                _ = ticker.tick() => self.raw.tick(),
                Some(message) = inbound.recv() => {
                    // A refused message changes nothing; peers cannot hurt us.
                    let _ = self.raw.step(message);
                    // Batch what is queued, but never so much that requests,
                    // ticks and completions wait behind a busy network.
                    for _ in 0..MAX_BATCH {
                        let Ok(message) = inbound.try_recv() else { break };
                        let _ = self.raw.step(message);
                    }
                }
                request = requests.recv() => {
                    let Some(request) = request else { break None };
                    if let Some(done) = self.handle(request) {
                        break Some(done);
                    }
                    // Batch queued requests into one Ready.
                    let mut done = None;
                    for _ in 0..MAX_BATCH {
                        let Ok(request) = requests.try_recv() else { break };
                        if let Some(d) = self.handle(request) {
                            done = Some(d);
                            break;
                        }
                    }
                    if done.is_some() {
                        break done;
                    }
                }
                Some(event) = events.recv() => match event {
                    Event::Persisted(number) => self.raw.on_persisted(number),
                    Event::Applied(index) => self.applied = index,
                    Event::SnapshotBuilt(snapshot) => {
                        let _ = self.raw.on_snapshot_built(snapshot);
                    }
                    Event::Failed(error) => {
                        failure = Some(error);
                        break None;
                    }
                },
            }
            self.process_ready();
        };
        let error = match failure {
            Some(error) => RaftError::Storage(error),
            None => RaftError::ShutDown,
        };
        // From here on handles are refused at once, before anything reports
        // the node stopped: no request can slip in and go unanswered.
        requests.close();
        self.fail_all(&error);
        // Let the writer finish what was acknowledged, then the applier.
        drop(self.writes);
        let _ = writer.await;
        drop(self.apply);
        let _ = applier.await;
        while let Ok(request) = requests.try_recv() {
            fail_request(request, &error);
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Handles one request; returns the shutdown responder if it asks to stop.
    fn handle(&mut self, request: Request<SM>) -> Option<oneshot::Sender<()>> {
        match request {
            Request::Propose(command, reply) => match self.raw.propose(command) {
                Ok(id) => {
                    self.proposals.insert(id.index, (id.term, reply));
                }
                Err(crate::ProposeError::NotLeader { leader }) => {
                    let _ = reply.send(Err(RaftError::NotLeader { leader }));
                }
                Err(crate::ProposeError::TransferInProgress { .. }) => {
                    let _ = reply.send(Err(RaftError::NotLeader { leader: None }));
                }
            },
            Request::Read(ReadConsistency::Stale, job) => {
                let _ = self.apply.send(ApplyJob::Read(0, job));
            }
            Request::Read(consistency, job) => {
                let mode =
                    if consistency == ReadConsistency::Lease { ReadMode::Lease } else { ReadMode::ReadIndex };
                self.next_read += 1;
                match self.raw.read_index(self.next_read, mode) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, job);
                    }
                    Err(_) => job(Err(RaftError::NotLeader { leader: self.raw.leader() })),
                }
            }
            Request::ChangeMembership(target, reply) => {
                let result = self.raw.change_membership(target.voters, target.learners);
                let _ = reply.send(result.map_err(RaftError::from));
            }
            Request::Transfer(target, reply) => {
                let _ = reply.send(self.raw.transfer_leadership(target).map_err(RaftError::from));
            }
            Request::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Hands everything the node produced to the tasks that act on it.
    fn process_ready(&mut self) {
        while self.raw.has_ready() {
            let ready = self.raw.ready();
            for message in ready.messages {
                self.transport.send(message);
            }
            if let Some(snapshot) = &ready.snapshot {
                // Proposals the snapshot covers were decided elsewhere, unseen here.
                let covered: Vec<Index> =
                    self.proposals.range(..=snapshot.meta.last.index).map(|(&i, _)| i).collect();
                for index in covered {
                    if let Some((_, reply)) = self.proposals.remove(&index) {
                        let _ = reply.send(Err(RaftError::OutcomeUnknown));
                    }
                }
            }
            let write = LogWrite {
                hard_state: ready.hard_state,
                snapshot: ready.snapshot,
                entries: ready.entries,
                purge_to: ready.purge_to,
            };
            let job = WriteJob { number: ready.number, write, messages: ready.persisted_messages };
            let _ = self.writes.send(job);
            if !ready.committed_entries.is_empty() {
                let entries = ready.committed_entries.into_iter().map(|entry| {
                    let reply = self.proposals.remove(&entry.index).and_then(|(term, reply)| {
                        if term == entry.term {
                            Some(reply)
                        } else {
                            let _ = reply.send(Err(RaftError::NotApplied));
                            None
                        }
                    });
                    (entry, reply)
                });
                let _ = self.apply.send(ApplyJob::Entries(entries.collect()));
            }
            for state in ready.read_states {
                if let Some(job) = self.reads.remove(&state.ctx) {
                    let _ = self.apply.send(ApplyJob::Read(state.index, job));
                }
            }
            if ready.request_snapshot {
                let _ = self.apply.send(ApplyJob::BuildSnapshot);
            }
            if ready.soft_state.is_some() {
                // Reads waiting on a leadership that changed may never be confirmed.
                let leader = self.raw.leader();
                for (_, job) in self.reads.drain() {
                    job(Err(RaftError::NotLeader { leader }));
                }
            }
        }
        // Updated in place: this runs after every input, and rebuilding the
        // metrics would clone the membership each time.
        let (raw, applied) = (&self.raw, self.applied);
        self.metrics.send_if_modified(|metrics| {
            let before =
                (metrics.role, metrics.term, metrics.leader, metrics.commit_index, metrics.last_log_index);
            (metrics.role, metrics.term, metrics.leader) = (raw.role(), raw.term(), raw.leader());
            (metrics.commit_index, metrics.last_log_index) = (raw.log().committed(), raw.log().last_index());
            let mut changed = before
                != (metrics.role, metrics.term, metrics.leader, metrics.commit_index, metrics.last_log_index)
                || metrics.applied_index != applied;
            metrics.applied_index = applied;
            if metrics.membership != *raw.membership() {
                metrics.membership = raw.membership().clone();
                changed = true;
            }
            changed
        });
    }

    fn fail_all(&mut self, error: &RaftError) {
        let unknown = if *error == RaftError::ShutDown { RaftError::OutcomeUnknown } else { error.clone() };
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(unknown.clone()));
        }
        for (_, job) in self.reads.drain() {
            job(Err(error.clone()));
        }
    }
}

fn fail_request<SM: StateMachine>(request: Request<SM>, error: &RaftError) {
    match request {
        Request::Propose(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Read(_, job) => job(Err(error.clone())),
        Request::ChangeMembership(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Transfer(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Request::Shutdown(done) => {
            let _ = done.send(());
        }
    }
}

/// The writer task: group commit, then release what waited on the write.
async fn run_writer<S: LogStore, T: Transport, SM: StateMachine>(
    store: Arc<S>,
    transport: Arc<T>,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    apply: mpsc::UnboundedSender<ApplyJob<SM>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut pending = Vec::new();
    while let Some(job) = jobs.recv().await {
        pending.push(job);
        while let Ok(job) = jobs.try_recv() {
            pending.push(job);
        }
        // Merge consecutive writes; a snapshot starts a new write.
        let mut batches: Vec<(LogWrite, Vec<WriteJob>)> = Vec::new();
        for mut job in pending.drain(..) {
            let write = std::mem::take(&mut job.write);
            match batches.last_mut() {
                Some((merged, jobs)) => match merged.merge(write) {
                    None => jobs.push(job),
                    Some(write) => batches.push((write, vec![job])),
                },
                None => batches.push((write, vec![job])),
            }
        }
        for (write, jobs) in batches {
            let snapshot = write.snapshot.clone();
            if !write.is_empty() {
                if let Err(error) = store.write(write).await {
                    let _ = events.send(Event::Failed(error.to_string()));
                    return;
                }
            }
            if let Some(snapshot) = snapshot {
                let _ = apply.send(ApplyJob::Restore(snapshot));
            }
            let last = jobs.last().map_or(0, |j| j.number);
            for job in jobs {
                for message in job.messages {
                    transport.send(message);
                }
            }
            let _ = events.send(Event::Persisted(last));
        }
    }
}

/// The applier task's state.
struct Applier<SM: StateMachine, S: LogStore> {
    state_machine: SM,
    /// The last entry applied.
    last: LogId,
    /// The configuration as of `last`.
    membership: Membership,
    store: Arc<S>,
    events: mpsc::UnboundedSender<Event>,
}

impl<SM: StateMachine, S: LogStore> Applier<SM, S> {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<ApplyJob<SM>>) {
        // Reads waiting for the state machine to catch up, by index.
        let mut waiting: BTreeMap<Index, Vec<ReadJob<SM>>> = BTreeMap::new();
        while let Some(job) = jobs.recv().await {
            match job {
                ApplyJob::Entries(entries) => {
                    for (entry, reply) in entries {
                        self.apply(entry, reply);
                    }
                }
                ApplyJob::Restore(snapshot) => {
                    if let Err(error) = self.state_machine.restore(&snapshot.data) {
                        let _ = self.events.send(Event::Failed(error.to_string()));
                        return;
                    }
                    self.last = snapshot.meta.last;
                    self.membership = snapshot.meta.membership;
                }
                ApplyJob::Read(index, job) => waiting.entry(index).or_default().push(job),
                ApplyJob::BuildSnapshot => {
                    if self.last.index == 0 {
                        continue;
                    }
                    let meta = SnapshotMeta { last: self.last, membership: self.membership.clone() };
                    let snapshot = Snapshot { meta, data: self.state_machine.snapshot() };
                    match self.store.save_snapshot(snapshot.clone()).await {
                        Ok(()) => {
                            let _ = self.events.send(Event::SnapshotBuilt(snapshot));
                        }
                        Err(error) => {
                            let _ = self.events.send(Event::Failed(error.to_string()));
                            return;
                        }
                    }
                }
            }
            let _ = self.events.send(Event::Applied(self.last.index));
            let ready: Vec<Index> = waiting.range(..=self.last.index).map(|(&i, _)| i).collect();
            for index in ready {
                for job in waiting.remove(&index).unwrap_or_default() {
                    job(Ok(&self.state_machine));
                }
            }
        }
        for job in waiting.into_values().flatten() {
            job(Err(RaftError::ShutDown));
        }
    }

    fn apply(&mut self, entry: Entry, reply: Option<Reply<SM::Response>>) {
        if entry.index <= self.last.index {
            return; // covered by a restored snapshot
        }
        self.last = entry.log_id();
        match entry.payload {
            EntryPayload::Command(bytes) => match crate::codec::decode(&bytes) {
                Ok(command) => {
                    let response = self.state_machine.apply(self.last, command);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(response));
                    }
                }
                Err(error) => {
                    // Every node skips it alike, so states stay equal.
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(RaftError::Encode(error.to_string())));
                    }
                }
            },
            EntryPayload::Membership(membership) => self.membership = membership,
            EntryPayload::Blank => {}
        }
    }
}

/// An in-process network for tests and benchmarks: every node's transport
/// delivers straight into the other nodes' inbound queues, with fault hooks
/// (cut links, isolate a node, heal).
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    inner: std::sync::Arc<std::sync::Mutex<NetworkInner>>,
}

#[derive(Default)]
struct NetworkInner {
    nodes: std::collections::HashMap<crate::NodeId, Box<dyn Fn(crate::Message) + Send + Sync>>,
    cut: std::collections::HashSet<(crate::NodeId, crate::NodeId)>,
}

impl InProcessNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects node `id`: messages to it are handed to `deliver` (usually
    /// [`Raft::receive`] of its handle).
    pub fn connect(&self, id: crate::NodeId, deliver: impl Fn(crate::Message) + Send + Sync + 'static) {
        self.lock().nodes.insert(id, Box::new(deliver));
    }

    /// Disconnects node `id` (as when it stops); messages to it are dropped.
    pub fn disconnect(&self, id: crate::NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// The transport node `id` sends through.
    pub fn transport(&self, id: crate::NodeId) -> InProcessTransport {
        InProcessTransport { network: self.clone(), from: id }
    }

    /// Drops everything between `id` and every other node, both ways.
    pub fn isolate(&self, id: crate::NodeId) {
        let mut inner = self.lock();
        let others: Vec<crate::NodeId> = inner.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            inner.cut.insert((id, other));
            inner.cut.insert((other, id));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One node's side of an [`InProcessNetwork`].
pub struct InProcessTransport {
    network: InProcessNetwork,
    from: crate::NodeId,
}

impl Transport for InProcessTransport {
    fn send(&self, message: crate::Message) {
        let inner = self.network.lock();
        if inner.cut.contains(&(self.from, message.to)) {
            return;
        }
        if let Some(deliver) = inner.nodes.get(&message.to) {
            deliver(message);
        }
    }
}
