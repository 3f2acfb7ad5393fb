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

mod core;
mod io;
mod network;

use self::core::Core;
use io::{run_writer, Applier};
pub use network::{InProcessNetwork, InProcessTransport};

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
