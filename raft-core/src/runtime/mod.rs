//! The tokio runtime (feature `runtime`): drives a [`RawNode`] through a
//! [`LogStore`], a [`Transport`] and a [`StateMachine`], and gives users a
//! small handle, [`Raft`].
//!
//! It is a feature that is off by default rather than a crate of its own.
//! It drives `RawNode` only through its public API and could move out; it
//! stays because one dependency keeps the protocol and its runtime at one
//! version, and because the deliberately broken builds (`--cfg
//! raft_mutation`, the `mutation` module) break both
//! through one switch. Off by default, because `raft-core` without it is what
//! a sans-I/O crate promises: no tokio, tracing or metrics in the dependency
//! tree of a user who brings their own runtime, or of the simulator.
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
//! The core's ticks are owed by the clock, not counted ([`RuntimeConfig::tick`]):
//! before the core task acts on any input it delivers every tick due by then,
//! so a lease read is checked against the real time elapsed, read after the
//! read was taken from its queue.
//!
//! A storage error stops the node: every waiting request fails with
//! [`RaftError::Failed`] (its [`Failure`] says which call failed and how)
//! rather than run on a broken disk.
//!
//! What the runtime sends and receives through its transport is an
//! [`Envelope`]: a protocol [`Message`] ([`Envelope::Raft`]), stepped into
//! the `RawNode`, or a client request a follower forwards to its leader
//! ([`Raft::propose_or_forward`]) and its answer ([`Envelope::Forward`]),
//! which the runtime handles itself, the protocol never seeing it; the
//! leader answers those from the applier task. What the node reports about
//! itself (a watch, counters and histograms, tracing) is described in
//! [`metrics`].

use crate::{
    Config, Entry, EntryPayload, Index, LogId, LogStore, LogWrite, Membership, MembershipChangeError,
    Message, NodeId, RawNode, ReadError, ReadMode, Role, Snapshot, SnapshotData, SnapshotMeta, Term,
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

mod clock;
mod core;
mod envelope;
mod error;
mod forward;
mod inbox;
mod inputs;
mod io;
pub mod metrics;
mod network;
mod pause;

use self::core::{Driver, DriverLinks};
use self::metrics::Counters;
use self::pause::{PauseGate, PauseSwitch};
pub use envelope::{Envelope, Forward, ForwardOutcome, Forwarded};
pub use error::{Failure, RaftError, StartError, StoreCall, Task, TaskEnd};
pub use inbox::{Inbox, DEFAULT_INBOX_BYTES, DEFAULT_INBOX_CAPACITY};
use inputs::Inputs;
use io::{run_writer, Applier};
pub use metrics::{Metrics, Replication};
pub use network::{InProcessNetwork, InProcessTransport};

/// The application's replicated state machine.
pub trait StateMachine: Send + 'static {
    /// What clients propose; encoded into log entries with bincode.
    type Command: Serialize + DeserializeOwned + Send + 'static;
    /// What applying a command returns to its proposer (encoded when the
    /// proposal was forwarded from another node).
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// Applies a committed command. Called in log order, once per entry.
    fn apply(&mut self, entry: LogId, command: Self::Command) -> Self::Response;

    /// The state machine's state as bytes, for a snapshot. Write it through
    /// [`SnapshotData::writer`] (an [`std::io::Write`]), which cuts it into
    /// pieces, so a large state never needs one buffer of its size; a small
    /// one may simply return `bytes.into()`.
    fn snapshot(&self) -> SnapshotData;

    /// Replaces the state with a snapshot's. Read it through
    /// [`SnapshotData::reader`] (an [`std::io::Read`] and
    /// [`std::io::BufRead`]); its pieces are not cut where the ones
    /// `snapshot` wrote were (a follower's are the chunks it received).
    fn restore(&mut self, snapshot: &SnapshotData) -> Result<(), RestoreError>;
}

/// A snapshot the state machine could not read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot restore the state machine: {0}")]
pub struct RestoreError(pub String);

/// Carries [`Envelope`]s to peers. What peers send goes the other way, into
/// the [`Inbox`] the transport was bound to before the node started.
pub trait Transport: Send + Sync + 'static {
    /// Queues `envelope` for [`Envelope::to`], in order per peer where it
    /// can, and delivers it to that peer's inbox as it was sent (both kinds:
    /// a transport does not look inside but for [`Envelope::to`],
    /// [`Envelope::from`] and [`Envelope::kind`]). It must never block: when
    /// a peer's queue is full the envelope is dropped: Raft retries its
    /// messages, and the caller of a lost forward hears that its outcome is
    /// unknown once [`RuntimeConfig::forward_timeout`] passes.
    fn send(&self, envelope: Envelope);

    /// Told the members' addresses whenever the configuration in force
    /// changes (see [`Membership::addresses`]), so that a transport can reach
    /// members added later. Does nothing by default.
    fn update_addresses(&self, addresses: &BTreeMap<NodeId, String>) {
        let _ = addresses;
    }
}

/// Settings of the runtime (the protocol's are in [`Config`]).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long one tick of [`Config`]'s timeouts lasts (zero counts as
    /// 1 ms). Ticks are derived from tokio's monotonic clock, not counted as
    /// timer firings: a node that stalled (stopped, swapped out, busy) takes
    /// every tick it missed before it acts on anything, so that timeouts and
    /// the leader's lease ([`Config::lease_reads`]) run in real time.
    pub tick: Duration,
    /// Requests from handles queued before callers wait.
    pub request_capacity: usize,
    /// How long a proposal forwarded to the leader may go unanswered before
    /// its caller is told the outcome is unknown; and how long a node that
    /// no longer leads keeps its own undecided proposals waiting while it
    /// hears from no leader (it may have been removed without learning it).
    pub forward_timeout: Duration,
    /// How long a read may take, from the call of [`Raft::read`] to its
    /// running against the state machine, before it fails with
    /// [`RaftError::Timeout`] (its request or answer may have been lost, the
    /// leader cannot reach a quorum, or the state machine lags far behind).
    pub read_timeout: Duration,
    /// Seeds the node's randomness (its election timeouts, and where its
    /// request ids start). `None` seeds it from the wall clock, so that
    /// nodes started together still draw different timeouts; a simulator
    /// passes a seed to make runs replayable.
    pub rng_seed: Option<u64>,
}

impl Default for RuntimeConfig {
    /// Ticks of 10 ms (so elections after 100 to 200 ms with the default
    /// [`Config`]), a request queue of 4096, 10 s for forwarded proposals and 5 s for
    /// reads, randomness seeded from the clock.
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(10),
            request_capacity: 4096,
            forward_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(5),
            rng_seed: None,
        }
    }
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

type Reply<T> = oneshot::Sender<Result<T, RaftError>>;
type ReadJob<SM> = Box<dyn FnOnce(Result<&SM, RaftError>) + Send>;

/// Who waits for a proposal's outcome: a caller on this node, or a node that
/// forwarded it here.
enum Responder<R> {
    Local(Reply<R>),
    Remote { node: NodeId, id: u64 },
}

/// The most inbound messages, or requests, the core task takes in one go
/// before it produces a `Ready` and looks at its other inputs.
const MAX_BATCH: usize = 1024;

/// What a starting node recovered from its store ([`Raft::start`]).
struct Recovered<SM> {
    raw: RawNode,
    /// The last entry the state machine holds (its snapshot's).
    last: LogId,
    /// The configuration as of `last`.
    membership: Membership,
    seed: u64,
    state_machine: SM,
}

/// Requests from handles to the core task.
enum Request<SM: StateMachine> {
    Propose {
        command: Bytes,
        forward: bool,
        reply: Reply<SM::Response>,
    },
    /// A read, with the instant its caller gives up.
    Read(ReadConsistency, tokio::time::Instant, ReadJob<SM>),
    Reconfigure(MembershipChange, Reply<LogId>),
    Transfer(NodeId, Reply<()>),
    Snapshot(Reply<LogId>),
    Shutdown(oneshot::Sender<()>),
}

/// A membership change, relative to the configuration in force when the
/// leader gets to it.
enum MembershipChange {
    /// Exactly these voters and learners.
    Set { voters: BTreeSet<NodeId>, learners: BTreeSet<NodeId> },
    /// One more learner (at `address`, if given).
    AddLearner { id: NodeId, address: Option<String> },
    /// Without this member.
    Remove(NodeId),
}

/// Reports from the writer and applier tasks to the core task.
enum Event {
    Persisted(u64),
    Applied(Index),
    SnapshotBuilt(Snapshot),
    Failed(Failure),
}

/// Work for the applier task.
enum ApplyJob<SM: StateMachine> {
    Entries(Vec<(Entry, Option<Responder<SM::Response>>)>),
    Restore(Snapshot),
    /// Serve a read once applied up to the index, unless its deadline
    /// passes first.
    Read(Index, tokio::time::Instant, ReadJob<SM>),
    BuildSnapshot(Option<Reply<LogId>>),
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
    metrics: watch::Receiver<Metrics>,
    /// Why the node stopped, if it failed (set once, before requests are
    /// refused).
    failure: Arc<std::sync::OnceLock<Failure>>,
    /// How long a read may take, end to end.
    read_timeout: Duration,
    /// Marks the inbox's reader as stopping, for [`Raft::crash`].
    #[cfg(feature = "testing")]
    release: inbox::InboxRelease,
    /// The node's tasks (core, writer, applier), for [`Raft::crash`].
    #[cfg(feature = "testing")]
    tasks: Arc<[tokio::task::AbortHandle; 3]>,
    /// Pauses and resumes the node's tasks (feature `testing`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pause: PauseSwitch,
}

impl<SM: StateMachine> Clone for Raft<SM> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            metrics: self.metrics.clone(),
            failure: self.failure.clone(),
            #[cfg(feature = "testing")]
            release: self.release.clone(),
            read_timeout: self.read_timeout,
            #[cfg(feature = "testing")]
            tasks: self.tasks.clone(),
            pause: self.pause.clone(),
        }
    }
}

impl<SM: StateMachine> Raft<SM> {
    /// Starts a node: loads `store`, restores `state_machine` from the stored
    /// snapshot (it should start empty) and replays the log into it as the
    /// cluster commits it. Must be called within a tokio runtime.
    ///
    /// `membership` initializes a new cluster: start every founding member
    /// with the same configuration (with its members' addresses, if the
    /// transport needs them), and one of them is elected. It is ignored once
    /// the store holds a snapshot or configuration entries, so restarts may
    /// pass it again. A node that joins an existing cluster later starts
    /// with `Membership::default()` (no members: it never campaigns) and is
    /// added by the leader with [`Raft::add_learner`].
    ///
    /// The node sends through `transport` and reads what peers send from
    /// `inbox`, the one the transport was bound to (see [`Inbox`]): every
    /// transport is set up the same way, the inbox first. An inbox that a
    /// running node reads is refused ([`StartError::InboxInUse`]); once that
    /// node stops, a restart may take it up again. A restart while it is
    /// still stopping (right after [`Raft::crash`], or after a caller heard
    /// [`RaftError::Failed`]) waits until it has.
    pub async fn start<S: LogStore, T: Transport>(
        config: Config,
        runtime: RuntimeConfig,
        membership: Membership,
        store: S,
        transport: T,
        inbox: Inbox,
        state_machine: SM,
    ) -> Result<Self, StartError> {
        let inbox = inbox.take().await.ok_or(StartError::InboxInUse)?;
        let recovered = Self::recover(config, &runtime, membership, &store, state_machine).await?;
        Ok(Self::spawn(recovered, runtime, store, transport, inbox))
    }

    /// Starts the node's three tasks (the core task, the log writer and
    /// the applier) on what it recovered, and returns its handle.
    fn spawn<S: LogStore, T: Transport>(
        recovered: Recovered<SM>,
        runtime: RuntimeConfig,
        store: S,
        transport: T,
        inbox: inbox::InboxReader,
    ) -> Self {
        let Recovered { raw, last, membership, seed, state_machine } = recovered;
        let id = raw.id();
        let span = tracing::info_span!("raft", node = id);
        let counters = Counters::new(id);
        let store = Arc::new(store);
        let transport = Arc::new(transport);
        transport.update_addresses(&raw.membership().addresses);

        let (requests, request_rx) = mpsc::channel(runtime.request_capacity);
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (write_tx, write_rx) = mpsc::unbounded_channel();
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let (metrics_tx, metrics) = watch::channel(Metrics::of(&raw, raw.log().applied()));

        let (pause, gate) = PauseSwitch::new();
        let applier = Applier {
            id,
            state_machine,
            last,
            membership,
            store: store.clone(),
            transport: transport.clone(),
            events: event_tx.clone(),
            counters: counters.clone(),
            gate: gate.clone(),
        };
        let applier = tokio::spawn(tracing::Instrument::instrument(applier.run(apply_rx), span.clone()));
        let writer = run_writer(
            store,
            transport.clone(),
            write_rx,
            apply_tx.clone(),
            event_tx,
            counters.clone(),
            gate.clone(),
        );
        let writer = tokio::spawn(tracing::Instrument::instrument(writer, span.clone()));
        let failure = Arc::new(std::sync::OnceLock::new());
        let links = DriverLinks {
            writes: write_tx,
            apply: apply_tx,
            metrics: metrics_tx,
            counters,
            failure: failure.clone(),
            gate,
        };
        let core = Driver::new(raw, transport, links, &runtime, seed);
        let inputs = Inputs::new(request_rx, inbox, event_rx, writer, applier);
        #[cfg(feature = "testing")]
        let (release, [writer, applier]) = (inputs.inbox.release(), inputs.abort_handles());
        let core = tokio::spawn(tracing::Instrument::instrument(core.run(runtime.tick, inputs), span));
        #[cfg(feature = "testing")]
        let tasks = Arc::new([core.abort_handle(), writer, applier]);
        #[cfg(not(feature = "testing"))]
        drop(core); // detached: the task runs on
        Self {
            requests,
            metrics,
            failure,
            #[cfg(feature = "testing")]
            release,
            #[cfg(feature = "testing")]
            tasks,
            read_timeout: runtime.read_timeout,
            pause,
        }
    }

    /// What a node starts from: its store's durable state, with the state
    /// machine restored from the store's snapshot.
    async fn recover<S: LogStore>(
        config: Config,
        runtime: &RuntimeConfig,
        membership: Membership,
        store: &S,
        mut state_machine: SM,
    ) -> Result<Recovered<SM>, StartError> {
        let stored = store.load().await?;
        if let Some(snapshot) = &stored.snapshot {
            state_machine.restore(&snapshot.data)?;
        }
        let applied = stored.snapshot.as_ref().map(|s| (s.meta.last, s.meta.membership.clone()));
        let seed = config.id
            ^ runtime.rng_seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        let raw = RawNode::new(config, stored.into_initial_state(membership.clone()), seed)?;
        let (last, membership) = applied.unwrap_or((LogId::default(), membership));
        Ok(Recovered { raw, last, membership, seed, state_machine })
    }

    /// Freezes the node as SIGSTOP would (feature `testing`, for fault
    /// tests): until [`Raft::resume`], its core task, log writer and applier
    /// process nothing. Requests, inbound messages and the tasks' reports to
    /// each other queue (inbound messages beyond
    /// the [`Inbox`]'s capacity are dropped, and callers wait once
    /// [`RuntimeConfig::request_capacity`] requests queue), and time goes on:
    /// timers that fall due meanwhile are seen late, on resume. An input a
    /// task has already begun to act on completes (on a current-thread
    /// runtime none is ever half done), as a system call in progress would.
    ///
    /// The tasks wait on a channel, never blocking their thread, so this
    /// works on a current-thread runtime and under tokio's paused test clock
    /// (`#[tokio::test(start_paused = true)]`), whose auto-advance sees the
    /// paused tasks as idle. Pausing a paused node does nothing. If every
    /// handle is dropped while the node is paused, it resumes, since nothing
    /// else could resume it.
    #[cfg(feature = "testing")]
    pub fn pause(&self) {
        self.pause.set(true);
    }

    /// Lets a node paused by [`Raft::pause`] take up its backlog: each task
    /// goes on with the input it held, then what queued (feature `testing`).
    /// Resuming a running node does nothing.
    #[cfg(feature = "testing")]
    pub fn resume(&self) {
        self.pause.set(false);
    }

    /// Proposes `command` and waits until it is applied, returning the state
    /// machine's response. Only the leader accepts proposals: elsewhere the
    /// error names the leader (see [`Raft::propose_or_forward`]). A command
    /// that encodes to more than one message carries (about
    /// [`crate::MAX_MESSAGE_BYTES`]) is refused with [`RaftError::Encode`].
    pub async fn propose(&self, command: SM::Command) -> Result<SM::Response, RaftError> {
        self.propose_with(command, false).await
    }

    /// Like [`Raft::propose`], but a follower that knows the leader forwards
    /// the proposal to it and relays the outcome, so the caller need not
    /// find the leader itself. The forward is sent once and never retried (a
    /// retry could apply the command twice): if it or its answer is lost, the
    /// caller hears [`RaftError::OutcomeUnknown`] after
    /// [`RuntimeConfig::forward_timeout`].
    ///
    /// **At most once, over any transport.** A forward is stamped with the
    /// follower's term and is valid only at the leader of that term, which
    /// proposes the first copy it receives and drops later ones. Anywhere
    /// else (a follower, the leader of a later term, that leader after a
    /// restart: a node never leads the same term twice, since it leads only
    /// once its term and vote are durable) a copy is refused, never
    /// proposed. So a transport that duplicates messages, or redelivers them
    /// after a reconnect, cannot make a forward apply twice. A refusal is
    /// definite ([`RaftError::NotLeader`], [`RaftError::NotApplied`]) when
    /// the refusing node can tell that no copy was taken, and
    /// [`RaftError::OutcomeUnknown`] when it cannot (a copy reaching a
    /// leader that restarted since, or one older than the last 4096 it took
    /// from that follower).
    ///
    /// This is at most once per forward, not exactly once per command: a
    /// caller that retries after `OutcomeUnknown` makes a new proposal, which
    /// may apply the command again. Exactly-once retries need the state
    /// machine's help: client sessions (a client id and sequence number in
    /// each command, and each client's last response kept in the replicated
    /// state), as the KV node's are.
    pub async fn propose_or_forward(&self, command: SM::Command) -> Result<SM::Response, RaftError> {
        self.propose_with(command, true).await
    }

    async fn propose_with(&self, command: SM::Command, forward: bool) -> Result<SM::Response, RaftError> {
        let bytes = crate::codec::encode(&command).map_err(|e| RaftError::Encode(e.to_string()))?;
        // Before it is forwarded too: a forward too large for a frame is lost.
        crate::node::command_fits(bytes.len()).map_err(|e| RaftError::Encode(e.to_string()))?;
        let (reply, response) = oneshot::channel();
        self.request(Request::Propose { command: Bytes::from(bytes), forward, reply }).await?;
        response.await.unwrap_or(Err(RaftError::OutcomeUnknown))
    }

    /// Runs `read` against the state machine once `consistency` allows.
    /// Fails with [`RaftError::Timeout`] if it has not run within
    /// [`RuntimeConfig::read_timeout`] of this call, wherever it waited (for
    /// room in the request queue, for its confirmation, or for the state
    /// machine to apply up to its read index); a read that timed out never
    /// runs.
    pub async fn read<R: Send + 'static>(
        &self,
        consistency: ReadConsistency,
        read: impl FnOnce(&SM) -> R + Send + 'static,
    ) -> Result<R, RaftError> {
        let deadline = tokio::time::Instant::now() + self.read_timeout;
        let (reply, response) = oneshot::channel();
        let job: ReadJob<SM> = Box::new(move |sm| {
            let _ = reply.send(sm.map(read));
        });
        let read = async {
            self.request(Request::Read(consistency, deadline, job)).await?;
            self.answer(response).await
        };
        tokio::time::timeout_at(deadline, read).await.unwrap_or(Err(RaftError::Timeout))
    }

    /// Changes the voters and learners (see [`RawNode::change_membership`]):
    /// a new voter must first have joined as a learner and caught up. Asked
    /// of the leader; returns once the change is complete (the joint
    /// configuration, if one was needed, left and the final configuration
    /// committed), with the id of the entry that started it.
    pub async fn change_membership(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Result<LogId, RaftError> {
        let change = MembershipChange::Set {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
        };
        self.reconfigure(change).await
    }

    /// Adds node `id` as a learner (reachable at `address`, which the
    /// configuration carries to every member's transport), and returns once
    /// that configuration is committed. With `wait_caught_up`, it returns
    /// only once the leader would promote the learner (its log within
    /// [`Config::learner_catch_up_lag`] of the leader's, answering, for
    /// [`Config::learner_catch_up_rounds`] heartbeat rounds), ready for
    /// [`Raft::change_membership`]. Asked of the leader.
    pub async fn add_learner(
        &self,
        id: NodeId,
        address: Option<String>,
        wait_caught_up: bool,
    ) -> Result<LogId, RaftError> {
        let started = self.reconfigure(MembershipChange::AddLearner { id, address }).await?;
        if wait_caught_up {
            self.wait_for_metrics(|m| {
                if m.role != Role::Leader {
                    return Some(Err(RaftError::NotLeader { leader: m.leader, address: leader_address(m) }));
                }
                let caught_up = m.replication.get(&id).is_some_and(|r| r.caught_up);
                caught_up.then_some(Ok(()))
            })
            .await?;
        }
        Ok(started)
    }

    /// Removes node `id`, voter or learner, from the cluster; returns once
    /// the change is complete. A leader that removes itself steps down once
    /// the change commits, and is sent no more of the log: the proposals it
    /// took after the change that were not committed by then end in
    /// [`RaftError::OutcomeUnknown`] (the remaining members may still commit
    /// them).
    pub async fn remove_node(&self, id: NodeId) -> Result<LogId, RaftError> {
        self.reconfigure(MembershipChange::Remove(id)).await
    }

    async fn reconfigure(&self, change: MembershipChange) -> Result<LogId, RaftError> {
        let (reply, response) = oneshot::channel();
        self.request(Request::Reconfigure(change, reply)).await?;
        let started = self.answer(response).await?;
        // Complete once a plain configuration at or after the change's entry
        // is committed in the same term. If the term moves on, or this node
        // stops leading, first, the change may or may not survive.
        self.wait_for_metrics(|m| {
            let done = m.term == started.term
                && !m.membership.is_joint()
                && m.membership_index >= started.index
                && m.commit_index >= m.membership_index;
            if done {
                Some(Ok(started))
            } else if m.term != started.term || m.role != Role::Leader {
                Some(Err(RaftError::OutcomeUnknown))
            } else {
                None
            }
        })
        .await
    }

    /// Starts handing leadership to `target`.
    pub async fn transfer_leadership(&self, target: NodeId) -> Result<(), RaftError> {
        let (reply, response) = oneshot::channel();
        self.request(Request::Transfer(target, reply)).await?;
        self.answer(response).await
    }

    /// Builds a snapshot of the state machine now (rather than after
    /// [`Config::snapshot_threshold`] entries), saves it, and compacts the
    /// log behind it; returns the last entry it covers (index 0, and no
    /// snapshot, if nothing was applied yet).
    pub async fn trigger_snapshot(&self) -> Result<LogId, RaftError> {
        let (reply, response) = oneshot::channel();
        self.request(Request::Snapshot(reply)).await?;
        self.answer(response).await
    }

    /// The node's latest metrics, and a way to wait for changes. Do not
    /// hold a borrow of them (including the guard `wait_for` returns) while
    /// the node runs: it blocks the node from publishing new ones.
    pub fn metrics(&self) -> watch::Receiver<Metrics> {
        let mut metrics = self.metrics.clone();
        metrics.mark_unchanged();
        metrics
    }

    /// Stops the node once every write it has acknowledged is durable, and
    /// returns once it has stopped (whichever handle asked). Dropping every
    /// handle does not stop it: call this.
    pub async fn shutdown(&self) {
        let mut running = self.metrics.clone();
        let (done, finished) = oneshot::channel();
        if self.requests.send(Request::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
        // The core task drops the metrics sender as it finishes.
        while running.changed().await.is_ok() {}
    }

    /// Stops the node as a crash would (feature `testing`, for simulators):
    /// its tasks are aborted at their next await, so a store write under way
    /// but not yet returned is never acknowledged, nothing more is sent or
    /// applied, and waiting callers are not answered (their proposals end in
    /// [`RaftError::OutcomeUnknown`], reads in [`RaftError::ShutDown`]).
    /// Restart it with [`Raft::start`] on the same store.
    #[cfg(feature = "testing")]
    pub fn crash(&self) {
        // Its inbox comes free once the aborted core task is dropped; a
        // restart asked for before then waits for that.
        self.release.stopping();
        for task in self.tasks.iter() {
            task.abort();
        }
    }

    async fn request(&self, request: Request<SM>) -> Result<(), RaftError> {
        // A closed queue means the core task has left its loop, after it
        // recorded any failure.
        self.requests.send(request).await.map_err(|_| self.stopped_error())
    }

    /// The answer to a request; but if its reply was dropped unanswered (a
    /// task that held it ended) or said "shut down" (the applier says so to
    /// the reads it holds as it stops, whatever stopped the node), why the
    /// node stopped. The core task records a failure before it finishes, so
    /// waiting for it to finish tells a failure (an applier that panicked
    /// with the request in its queue, a store that failed while a read
    /// waited to be applied) from a shutdown or a crash.
    async fn answer<R>(&self, reply: oneshot::Receiver<Result<R, RaftError>>) -> Result<R, RaftError> {
        match reply.await {
            Ok(Err(RaftError::ShutDown)) | Err(_) => {
                let mut running = self.metrics.clone();
                while running.changed().await.is_ok() {}
                Err(self.stopped_error())
            }
            Ok(answer) => answer,
        }
    }

    /// Why a node that has stopped did: its failure, if it failed.
    fn stopped_error(&self) -> RaftError {
        match self.failure.get() {
            Some(failure) => RaftError::Failed(failure.clone()),
            None => RaftError::ShutDown,
        }
    }

    /// Waits until `decide` returns an outcome for the metrics.
    async fn wait_for_metrics<R>(
        &self,
        mut decide: impl FnMut(&Metrics) -> Option<Result<R, RaftError>>,
    ) -> Result<R, RaftError> {
        let mut metrics = self.metrics.clone();
        loop {
            // Decide on a clone-free borrow, released before awaiting.
            if let Some(outcome) = decide(&metrics.borrow_and_update()) {
                return outcome;
            }
            if metrics.changed().await.is_err() {
                return Err(self.stopped_error());
            }
        }
    }
}

/// The address of the leader `metrics` names, if the configuration has it.
fn leader_address(metrics: &Metrics) -> Option<String> {
    metrics.leader.and_then(|l| metrics.membership.address(l)).map(String::from)
}
