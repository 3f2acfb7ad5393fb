//! [`RawNode`]: one Raft node as a deterministic state machine.
//!
//! The node owns the protocol state and nothing else: no clock (the caller
//! calls [`RawNode::tick`]), no network (messages come in through
//! [`RawNode::step`] and go out in a [`Ready`]), no disk (writes go out in a
//! [`Ready`] and come back through [`RawNode::on_persisted`]), no global
//! randomness (the election timeout is drawn from an RNG the caller seeds).
//! Given the same inputs it produces the same outputs, which is what lets the
//! simulator replay any run from its seed.
//!
//! The state shared by every role lives in [`Core`]; what only one role needs
//! lives in that role's type ([`Leader`], [`Candidate`]), so a leader-only
//! operation cannot be called on a follower. A role's handlers return a
//! [`Transition`] rather than changing role themselves; [`RawNode`] applies it.

use crate::election::{Campaign, Candidate};
use crate::mutation::{mutated, Mutation};
use crate::quorum::JointConfig;
use crate::replication::{self, Leader};
use crate::rng::Rng;
use crate::snapshot_transfer::IncomingSnapshot;
use crate::{
    Config, ConfigError, Entry, EntryPayload, HardState, Index, LogError, LogId, Membership, MembershipError,
    Message, MessageBody, NodeId, RaftLog, ReadIndexRequest, ReadState, Role, Snapshot, SoftState, Term,
    MAX_TERM,
};
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};
use thiserror::Error;

/// What a node starts from: the state its storage holds (all of it empty for a
/// brand-new node).
#[derive(Debug, Clone, Default)]
pub struct InitialState {
    /// The persisted term and vote.
    pub hard_state: HardState,
    /// The latest snapshot, if any: the log starts after it.
    pub snapshot: Option<Snapshot>,
    /// The initial configuration of a new cluster (ignored when there is a
    /// snapshot: its metadata carries the configuration). Configuration
    /// entries in `entries` override it.
    pub membership: Membership,
    /// The log entries after the snapshot, in order.
    pub entries: Vec<Entry>,
}

/// Why a node could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InitError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The stored log breaks an invariant.
    #[error("stored log is inconsistent: {0}")]
    Log(#[from] LogError),
    /// The stored log holds an entry from a term later than the stored term:
    /// the hard state was not persisted before the entries were.
    #[error("stored entry {index} has term {entry_term}, later than the stored term {term}")]
    EntryFromTheFuture {
        /// The entry's index.
        index: Index,
        /// The entry's term.
        entry_term: Term,
        /// The persisted term.
        term: Term,
    },
    /// The stored configuration is invalid.
    #[error("stored membership is invalid: {0}")]
    Membership(#[from] MembershipError),
    /// The stored term exceeds [`MAX_TERM`]: the storage is corrupt.
    #[error("stored term {0} exceeds MAX_TERM")]
    TermTooLarge(Term),
}

/// Why a message was refused. The node's state is unchanged by a refused message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The message claims to come from this node itself.
    #[error("message claims to come from this node")]
    FromSelf,
    /// The message breaks the protocol's rules on its face.
    #[error("malformed {kind} from {from}: {reason}")]
    Malformed {
        /// The sender.
        from: NodeId,
        /// The message kind.
        kind: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A leader asked this node to rewrite committed entries.
    #[error("append from {from} rejected: {source}")]
    Log {
        /// The sender.
        from: NodeId,
        /// The log's objection.
        source: LogError,
    },
}

/// Why a proposal was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals. `leader` is the leader this node
    /// knows of, if any, so the client can retry there.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The leader is handing leadership to `target` and accepts no proposals
    /// until that ends; retry at the new leader.
    #[error("leadership is being transferred to node {target}")]
    TransferInProgress {
        /// The node leadership is being handed to.
        target: NodeId,
    },
}

/// Why a snapshot handed to [`RawNode::on_snapshot_built`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The snapshot claims entries that were not handed out for applying.
    #[error("snapshot covers index {index}, but only {applied} was applied")]
    NotApplied {
        /// The snapshot's last index.
        index: Index,
        /// This node's applied index.
        applied: Index,
    },
    /// The snapshot's last entry is not the entry this log holds there.
    #[error("snapshot ends at {last:?}, but the log has term {term:?} there")]
    WrongTerm {
        /// The snapshot's last entry.
        last: LogId,
        /// The term in the log.
        term: Option<Term>,
    },
}

/// How a read is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: a heartbeat round confirms leadership. Always safe.
    ReadIndex,
    /// Served at once while the leader's lease holds (falls back to
    /// ReadIndex otherwise). Needs [`Config::lease_reads`]; safe only under the
    /// clock-drift bound [`Config::max_clock_drift_ticks`].
    Lease,
}

/// Why a read could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// No leader is known to ask.
    #[error("no leader is known")]
    NoLeader,
    /// A lease read was asked for but lease reads are off.
    #[error("lease reads are disabled (Config::lease_reads)")]
    LeaseReadsDisabled,
}

/// Why a leadership transfer could not start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader hands over leadership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The target is not a member of the cluster.
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(NodeId),
    /// The target does not vote (a learner, or leaving the configuration),
    /// so it cannot be elected.
    #[error("node {0} is not a voter")]
    NotAVoter(NodeId),
}

/// Why a membership change was refused. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipChangeError {
    /// Only the leader changes the membership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// A change is still in flight (or this leader has not yet committed an
    /// entry of its term, so it cannot know whether one is): one at a time.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The target configuration is invalid.
    #[error("invalid target membership: {0}")]
    Invalid(#[from] MembershipError),
    /// Leadership is being handed over; change the membership at the new leader.
    #[error("leadership is being transferred")]
    TransferInProgress,
    /// The target must be a plain configuration; the leader builds the
    /// joint one itself.
    #[error("the target of a membership change must not be a joint configuration")]
    JointTarget,
    /// A new voter must first join as a learner and catch up.
    #[error("node {node} must join as a learner and catch up before it can vote")]
    NotALearner {
        /// The node.
        node: NodeId,
    },
    /// A learner is too far behind to be promoted yet; promoting it would
    /// weaken availability. Retry once it has caught up.
    #[error("learner {node} has not caught up (match {match_index}, leader's last index {last_index})")]
    NotCaughtUp {
        /// The learner.
        node: NodeId,
        /// What it has.
        match_index: Index,
        /// What the leader has.
        last_index: Index,
    },
}

/// Everything a node asks its caller to do, produced by [`RawNode::ready`].
///
/// The contract, in order (see the crate documentation for why):
/// 1. Send [`Ready::messages`] at any time, even before anything is written.
/// 2. Durably write [`Ready::hard_state`] and [`Ready::entries`] (removing any
///    stored entry at or after the first new entry's index first). The hard
///    state must be durable no later than the entries (write it first, or
///    both atomically): an entry of a term the disk does not know is refused at
///    restart. Writes of successive `Ready`s must become durable in the order
///    they were produced.
/// 3. Once this `Ready`'s writes and those of every earlier `Ready` are
///    durable, send [`Ready::persisted_messages`] and call
///    [`RawNode::on_persisted`] with [`Ready::number`].
/// 4. Apply [`Ready::committed_entries`] to the state machine, in order. They
///    are committed and already durable on this node.
#[derive(Debug, Default)]
#[must_use = "a Ready must be persisted, sent and applied"]
pub struct Ready {
    /// Identifies this batch for [`RawNode::on_persisted`]; increases by one per call.
    pub number: u64,
    /// The term and vote to persist, if they changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist. Any stored entry at or after `entries[0].index`
    /// must be removed first: the leader has replaced it.
    pub entries: Vec<Entry>,
    /// Messages that depend on nothing unpersisted: send them right away.
    pub messages: Vec<Message>,
    /// Messages that may only be sent once this batch is durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads that have become safe: serve each once the state machine has
    /// applied its `index` (see [`RawNode::read_index`]).
    pub read_states: Vec<ReadState>,
    /// A snapshot from the leader to install, as part of this batch's write:
    /// save it, apply the log rule to stored entries (if the stored entry at
    /// `meta.last.index` has term `meta.last.term`, keep the entries after it;
    /// otherwise remove them all), and once that is durable, restore the state
    /// machine from it. No entry after it is handed out for applying before
    /// this batch is reported persisted.
    pub snapshot: Option<Snapshot>,
    /// Stored entries up to and including this index may be purged: a
    /// durable snapshot covers them.
    pub purge_to: Option<Index>,
    /// Enough has been applied since the last snapshot: build one of the
    /// state machine and hand it to [`RawNode::on_snapshot_built`].
    pub request_snapshot: bool,
    /// The role and leader, if they changed since the last `Ready`.
    pub soft_state: Option<SoftState>,
}

impl Ready {
    /// Whether this batch holds nothing to write to durable storage.
    pub fn is_write_empty(&self) -> bool {
        self.hard_state.is_none() && self.entries.is_empty()
    }
}

/// The role-specific state of a node.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(Candidate),
    Candidate(Candidate),
    Leader(Leader),
}

/// A change of role that a handler asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Become a follower of `leader` in `term` (at least the current term).
    Follower { term: Term, leader: Option<NodeId> },
    /// Start a pre-vote round.
    PreCandidate,
    /// Start an election in the next term.
    Candidate(Campaign),
    /// Take leadership of the current term.
    Leader,
}

/// The state every role shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The quorum rule of the configuration in force, kept in step with the log.
    pub(crate) quorum: JointConfig,
    membership_version: u64,
    /// Ticks since the election timer was last reset; on a leader, ticks since
    /// the last check-quorum round.
    pub(crate) election_elapsed: u64,
    randomized_election_timeout: u64,
    rng: Rng,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    /// Reads confirmed since the last `Ready`.
    pub(crate) read_states: Vec<ReadState>,
    /// Ticks since this node started: the clock of lease reads.
    pub(crate) ticks: u64,
    /// Ticks since this node last heard from a leader of any term (`None`
    /// if never): while below the minimum election timeout, it refuses to
    /// vote, whatever happened to its term since. That promise is what leader
    /// leases rest on.
    pub(crate) ticks_since_leader: Option<u64>,
    /// The latest snapshot, built here or received: what a leader sends to
    /// followers that need entries it has compacted away.
    pub(crate) snapshot: Option<Snapshot>,
    /// The CRC-32 of `snapshot`'s bytes (0 without one), computed once per
    /// snapshot rather than once per chunk sent.
    pub(crate) snapshot_checksum: u32,
    /// A snapshot being received from the leader, chunk by chunk.
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// A received snapshot for the caller to install.
    pub(crate) snapshot_to_install: Option<Snapshot>,
    /// Log entries up to here may be purged from storage.
    purge_to: Option<Index>,
    /// The applied index when a snapshot was last asked for.
    snapshot_requested_at: Option<Index>,
    durability: Durability,
}

/// Bookkeeping for the persist-before-send rule.
#[derive(Debug)]
struct Durability {
    /// The number the next `Ready` gets.
    next_ready: u64,
    /// Every `Ready` up to this number is durable.
    persisted_ready: u64,
    /// The term or vote changed since the last `Ready`.
    hard_state_dirty: bool,
    /// The last `Ready` that carried a hard state.
    last_hard_state_ready: u64,
    /// `Ready`s carrying entries that are not yet durable, with their last entry.
    pending_writes: VecDeque<(u64, LogId)>,
    /// The soft state last reported.
    reported: SoftState,
}

impl Core {
    /// Queues a message stamped with the current term.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    /// Queues a message, holding it until the next write is durable if it
    /// depends on state not yet on disk. A leader's replication messages, a
    /// heartbeat response and a pre-vote request depend only on the term being
    /// durable (so a slow disk does not silence a follower toward its leader);
    /// the other responses vouch for the responder's log or vote, so they
    /// always wait.
    pub(crate) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let term_durable = self.hard_state_durable();
        let independent = matches!(
            body,
            MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::HeartbeatResponse(_)
                | MessageBody::TimeoutNow
                | MessageBody::ReadIndex(_)
                | MessageBody::ReadIndexResponse(_)
                | MessageBody::InstallSnapshot(_)
                | MessageBody::PreVote(_)
        ) || (mutated(Mutation::AckBeforePersist)
            && matches!(body, MessageBody::AppendEntriesResponse(_)));
        let message = Message { from: self.id, to, term, body };
        if independent && term_durable {
            self.messages.push(message);
        } else {
            self.persisted_messages.push(message);
        }
    }

    /// The log was truncated from `index`: writes still in flight can make
    /// durable at most what precedes it. Without this, a write of entries that
    /// were since replaced, and then appended again, could report them
    /// durable while the write that removes them is still pending.
    pub(crate) fn log_truncated(&mut self, index: Index) {
        let kept = index - 1;
        let kept = LogId::new(self.log.term(kept).unwrap_or_default(), kept);
        for (_, last) in self.durability.pending_writes.iter_mut() {
            if last.index > kept.index {
                *last = kept;
            }
        }
    }

    /// Whether to ask for a snapshot now (once per threshold's worth of
    /// applied entries).
    fn wants_snapshot(&mut self) -> bool {
        let applied = self.log.applied();
        let since = self.snapshot_requested_at.unwrap_or(self.log.snapshot().index);
        if applied.saturating_sub(since) >= self.config.snapshot_threshold {
            self.snapshot_requested_at = Some(applied);
            true
        } else {
            false
        }
    }

    /// A snapshot is being installed: nothing after it may be applied before
    /// the state machine is restored from it, that is, before the snapshot's
    /// own write is durable. Writes already in flight therefore report
    /// nothing; the snapshot's write reports, on their behalf, every entry
    /// handed to storage before it (writes complete in order).
    pub(crate) fn hold_writes_for_snapshot(&mut self) {
        for (_, last) in self.durability.pending_writes.iter_mut() {
            *last = LogId::default();
        }
    }

    /// Makes `snapshot` the latest one, the one sent to followers.
    pub(crate) fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot_checksum = snapshot.data.crc32();
        self.snapshot = Some(snapshot);
    }

    /// Whether the current term and vote are on disk.
    pub(crate) fn hard_state_durable(&self) -> bool {
        !self.durability.hard_state_dirty
            && self.durability.persisted_ready >= self.durability.last_hard_state_ready
    }

    /// Marks the term or vote as changed, to be persisted with the next `Ready`.
    pub(crate) fn hard_state_changed(&mut self) {
        self.durability.hard_state_dirty = true;
    }

    /// Restarts the election timer with a fresh random timeout in
    /// `[election_timeout_min, election_timeout_max)`.
    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let span = self.config.election_timeout_max - self.config.election_timeout_min;
        self.randomized_election_timeout = self.config.election_timeout_min + self.rng.below(span);
    }

    /// Whether this node may campaign: a voter of the configuration in force
    /// may; so may a voter of the configuration before it while that one is
    /// not known to be committed, since the cluster may still need it to
    /// commit the change that removes it (thesis section 4.2.2; its own vote
    /// does not count then, only the new configuration's voters do).
    pub(crate) fn promotable(&self) -> bool {
        if self.term >= MAX_TERM {
            return false;
        }
        if self.quorum.contains(self.id) {
            return true;
        }
        let memberships = self.log.memberships();
        let current = memberships.current_index();
        current > self.log.committed() && current > 0 && memberships.at(current - 1).is_voter(self.id)
    }

    /// Brings the quorum rule in step with the configuration in the log.
    /// Returns whether it changed.
    pub(crate) fn refresh_membership(&mut self) -> bool {
        if self.membership_version == self.log.membership_version() {
            return false;
        }
        self.membership_version = self.log.membership_version();
        self.quorum = self.log.membership().quorum();
        true
    }

    /// Whether this node believes a leader is live and so ignores requests to
    /// vote in a newer term (leader stickiness, thesis section 4.2.3). A
    /// follower is in lease while it heard from its leader within the minimum
    /// election timeout; a leader is, when check-quorum makes it step down as
    /// soon as it loses its quorum.
    pub(crate) fn in_lease(&self, role: &RoleState) -> bool {
        match role {
            RoleState::Leader(_) => self.config.check_quorum,
            _ => self.in_promise(),
        }
    }

    /// Whether this node heard from a leader (of any term) fewer than
    /// `election_timeout_min` ticks ago, and so has promised it not to vote
    /// for anyone else: the promise leader leases rest on (see `read.rs`).
    pub(crate) fn in_promise(&self) -> bool {
        self.ticks_since_leader.is_some_and(|t| t < self.config.election_timeout_min)
    }

    /// How an election timeout starts a campaign: with a pre-vote round if
    /// configured.
    fn campaign_transition(&self) -> Transition {
        if self.config.pre_vote {
            Transition::PreCandidate
        } else {
            Transition::Candidate(Campaign::Election)
        }
    }

    /// The election timer on a node that is not leader.
    fn tick_election(&mut self) -> Option<Transition> {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            Some(self.campaign_transition())
        } else {
            None
        }
    }

    /// Appends an entry of the current term to the leader's log.
    pub(crate) fn append_new(&mut self, payload: EntryPayload) -> LogId {
        let id = LogId::new(self.term, self.log.last_index() + 1);
        self.log.append(Entry { term: id.term, index: id.index, payload });
        id
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote }
    }
}

/// One Raft node, driven by its caller. See the crate documentation for the
/// usage contract.
#[derive(Debug)]
pub struct RawNode {
    core: Core,
    role: RoleState,
}

impl RawNode {
    /// Creates a node from its configuration and stored state. `seed` seeds the
    /// RNG that draws election timeouts: give each node its own (for example
    /// from the OS in production, from the simulator's seed in tests).
    pub fn new(config: Config, state: InitialState, seed: u64) -> Result<Self, InitError> {
        config.validate()?;
        if state.hard_state.term > MAX_TERM {
            return Err(InitError::TermTooLarge(state.hard_state.term));
        }
        state.membership.validate()?;
        let log = match &state.snapshot {
            Some(snapshot) => {
                RaftLog::restore(snapshot.meta.last, snapshot.meta.membership.clone(), state.entries)?
            }
            None => RaftLog::restore(LogId::default(), state.membership, state.entries)?,
        };
        log.membership().validate()?;
        if log.last_term() > state.hard_state.term {
            return Err(InitError::EntryFromTheFuture {
                index: log.last_index(),
                entry_term: log.last_term(),
                term: state.hard_state.term,
            });
        }
        let config_lease_reads = config.lease_reads;
        let mut core = Core {
            id: config.id,
            config,
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            leader: None,
            quorum: log.membership().quorum(),
            membership_version: log.membership_version(),
            log,
            election_elapsed: 0,
            randomized_election_timeout: 0,
            rng: Rng::new(seed),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            ticks: 0,
            // With leases in use, a restarted node may have promised a leader
            // not to vote before it crashed: it keeps that promise.
            ticks_since_leader: (config_lease_reads && state.hard_state.term > 0).then_some(0),
            snapshot_checksum: state.snapshot.as_ref().map_or(0, |s| s.data.crc32()),
            snapshot: state.snapshot,
            incoming_snapshot: None,
            snapshot_to_install: None,
            purge_to: None,
            snapshot_requested_at: None,
            durability: Durability {
                next_ready: 1,
                persisted_ready: 0,
                hard_state_dirty: false,
                last_hard_state_ready: 0,
                pending_writes: VecDeque::new(),
                reported: SoftState { leader: None, role: Role::Follower },
            },
        };
        core.reset_election_timer();
        Ok(Self { core, role: RoleState::Follower })
    }

    /// Advances logical time by one tick: followers and candidates count toward
    /// their election timeout, a leader toward its next heartbeat and
    /// check-quorum round.
    pub fn tick(&mut self) {
        self.core.ticks += 1;
        if let Some(ticks) = &mut self.core.ticks_since_leader {
            *ticks = ticks.saturating_add(1);
        }
        let transition = match &mut self.role {
            RoleState::Leader(leader) => leader.tick(&mut self.core),
            _ => self.core.tick_election(),
        };
        self.transition(transition);
        self.after_input();
    }

    /// Starts an election now, as if the election timeout had elapsed (with a
    /// pre-vote round first if configured). Does nothing on a leader or a
    /// learner. Other nodes still ignore it while they hear from a leader; and
    /// with lease reads on, forcing elections by other means than
    /// [`RawNode::transfer_leadership`] voids the leader's lease assumption.
    pub fn campaign(&mut self) {
        if self.core.promotable() && !matches!(self.role, RoleState::Leader(_)) {
            let transition = self.core.campaign_transition();
            self.transition(Some(transition));
        }
    }

    /// Proposes a command. On the leader, appends it to the log and returns
    /// its log id: it will come out of [`Ready::committed_entries`] once
    /// committed, or never, if a new leader overwrites it.
    pub fn propose(&mut self, command: Bytes) -> Result<LogId, ProposeError> {
        match &mut self.role {
            RoleState::Leader(leader) => match leader.transfer_target() {
                Some(target) => Err(ProposeError::TransferInProgress { target }),
                None => Ok(leader.propose(&mut self.core, EntryPayload::Command(command))),
            },
            _ => Err(ProposeError::NotLeader { leader: self.core.leader }),
        }
    }

    /// Asks for a linearizable read, identified by `ctx` (the caller's own
    /// id for it). When it is safe, [`Ready::read_states`] hands back
    /// `ReadState { ctx, index }`: serve the read from the state machine once
    /// it has applied `index`. On a follower, the leader is asked.
    ///
    /// A read whose node loses leadership (or whose leader does) before it is
    /// confirmed is never answered: when [`Ready::soft_state`] reports a
    /// change, retry the reads still waiting. Stale reads need no call at all:
    /// read the local state machine.
    pub fn read_index(&mut self, ctx: u64, mode: ReadMode) -> Result<(), ReadError> {
        let lease = mode == ReadMode::Lease;
        if lease && !self.core.config.lease_reads {
            return Err(ReadError::LeaseReadsDisabled);
        }
        match &mut self.role {
            RoleState::Leader(leader) => {
                let me = self.core.id;
                leader.read(&mut self.core, ctx, me, lease)
            }
            _ => match self.core.leader {
                Some(leader) => {
                    self.core.send(leader, MessageBody::ReadIndex(ReadIndexRequest { ctx, lease }))
                }
                None => return Err(ReadError::NoLeader),
            },
        }
        Ok(())
    }

    /// Takes a snapshot of the state machine that the caller built (asked
    /// for by [`Ready::request_snapshot`], or on its own initiative) and has
    /// made durable. Its `last` must be an applied entry of this log. The log
    /// is then compacted up to `snapshot_keep_entries` before it, and
    /// [`Ready::purge_to`] tells storage what it may drop. A snapshot no newer
    /// than the current one is ignored.
    pub fn on_snapshot_built(&mut self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        let core = &mut self.core;
        let last = snapshot.meta.last;
        if core.snapshot.as_ref().is_some_and(|s| s.meta.last.index >= last.index) || last.index == 0 {
            return Ok(());
        }
        if last.index > core.log.applied() {
            return Err(SnapshotError::NotApplied { index: last.index, applied: core.log.applied() });
        }
        if core.log.term(last.index).is_some_and(|t| t != last.term) {
            return Err(SnapshotError::WrongTerm { last, term: core.log.term(last.index) });
        }
        core.set_snapshot(snapshot);
        let purge = last.index.saturating_sub(core.config.snapshot_keep_entries);
        if core.log.compact_to(purge) {
            core.purge_to = Some(purge);
        }
        Ok(())
    }

    /// Hands leadership to `target` (thesis section 3.10): the leader stops
    /// accepting proposals, brings the target's log up to date, and tells it
    /// to campaign at once. If the target has not taken over within an
    /// election timeout, the transfer is abandoned and the leader carries on.
    /// Asking for this node itself does nothing.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), TransferError> {
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(TransferError::NotLeader { leader: self.core.leader });
        };
        leader.transfer_leadership(&mut self.core, target)
    }

    /// Handles a message from a peer. A message that is malformed (or
    /// addressed elsewhere) is refused with an error and changes nothing. An
    /// append that would rewrite committed entries ([`StepError::Log`]) is
    /// refused too, after the node has adopted the sender's term and leader as
    /// any message of a newer term makes it.
    ///
    /// Terms first (Figure 2): a message from a newer term makes this node a
    /// follower in that term, except that a pre-vote request (and its granted
    /// response) never changes anyone's term, and a node in lease ignores
    /// (pre-)vote requests for newer terms altogether. A message from an older
    /// term is answered with this node's term, so a stale leader or candidate
    /// learns of it and steps down, and is otherwise ignored.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        let result = self.step_inner(message);
        self.after_input();
        result
    }

    fn step_inner(&mut self, message: Message) -> Result<(), StepError> {
        if let MessageBody::Forward(_) = message.body {
            return Ok(()); // the runtime's business, not the protocol's
        }
        self.validate(&message)?;
        let Message { from, term, .. } = message;
        if term > self.core.term {
            match &message.body {
                MessageBody::PreVote(request) | MessageBody::Vote(request)
                    if !request.leadership_transfer && self.core.in_lease(&self.role) =>
                {
                    return Ok(());
                }
                MessageBody::PreVote(_) => {}
                MessageBody::PreVoteResponse(response) if response.granted => {}
                MessageBody::AppendEntries(_) | MessageBody::Heartbeat(_) => {
                    self.transition(Some(Transition::Follower { term, leader: Some(from) }));
                }
                _ => self.transition(Some(Transition::Follower { term, leader: None })),
            }
        } else if term < self.core.term {
            let reply = match message.body {
                MessageBody::AppendEntries(_) | MessageBody::Heartbeat(_) => {
                    Some(MessageBody::HeartbeatResponse(crate::HeartbeatResponse::default()))
                }
                MessageBody::PreVote(_) => {
                    Some(MessageBody::PreVoteResponse(crate::VoteResponse { granted: false }))
                }
                MessageBody::Vote(_) => {
                    Some(MessageBody::VoteResponse(crate::VoteResponse { granted: false }))
                }
                _ => None,
            };
            if let Some(body) = reply {
                self.core.send(from, body);
            }
            return Ok(());
        }

        let transition = match message.body {
            MessageBody::PreVote(request) => {
                crate::election::handle_vote_request(&mut self.core, from, term, request, true);
                None
            }
            MessageBody::Vote(request) => {
                crate::election::handle_vote_request(&mut self.core, from, term, request, false);
                None
            }
            body => self.step_role(from, term, body)?,
        };
        self.transition(transition);
        Ok(())
    }

    /// Changes the cluster's membership to `voters` and `learners` (thesis
    /// 4.3): through a joint configuration when the voters change, which the
    /// leader leaves on its own once it commits. Returns the id of the entry
    /// that starts the change. New voters must be learners that have caught
    /// up (see [`Config::learner_catch_up_lag`]); one change at a time.
    pub fn change_membership(
        &mut self,
        voters: BTreeSet<NodeId>,
        learners: BTreeSet<NodeId>,
    ) -> Result<LogId, MembershipChangeError> {
        self.reconfigure(Membership::new(voters, learners))
    }

    /// Like [`RawNode::change_membership`], to the plain configuration
    /// `target`, which may record members' addresses; members it gives no
    /// address keep the one the current configuration has.
    pub fn reconfigure(&mut self, target: Membership) -> Result<LogId, MembershipChangeError> {
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(MembershipChangeError::NotLeader { leader: self.core.leader });
        };
        if target.is_joint() || !target.learners_next.is_empty() {
            return Err(MembershipChangeError::JointTarget);
        }
        let result = leader.change_membership(&mut self.core, target);
        self.after_input();
        result
    }

    /// Follows up on any input: keeps the quorum rule in step with the log's
    /// configuration and lets a leader finish a membership change (leave the
    /// joint configuration, or step down once a configuration without it is
    /// committed).
    fn after_input(&mut self) {
        let changed = self.core.refresh_membership();
        if let RoleState::Leader(leader) = &mut self.role {
            if changed {
                leader.reconcile_progress(&self.core);
            }
            let transition = leader.advance_membership(&mut self.core);
            self.transition(transition);
        }
    }

    /// Dispatches a message of the current term to the role's handler.
    fn step_role(
        &mut self,
        from: NodeId,
        term: Term,
        body: MessageBody,
    ) -> Result<Option<Transition>, StepError> {
        let core = &mut self.core;
        match (&mut self.role, body) {
            (RoleState::Leader(leader), body) => Ok(leader.step(core, from, body)),
            (RoleState::PreCandidate(candidate), MessageBody::PreVoteResponse(response)) => {
                Ok(candidate.record_pre_vote(core, from, term, response))
            }
            (RoleState::Candidate(candidate), MessageBody::VoteResponse(response)) => {
                Ok(candidate.record_vote(core, from, response))
            }
            // Only the leader may hand over leadership: a transfer election
            // overrides the other voters' promises (leader stickiness), which
            // the leader alone can release, having given up its lease.
            (RoleState::Follower, MessageBody::TimeoutNow)
                if core.leader == Some(from) && core.promotable() =>
            {
                Ok(Some(Transition::Candidate(Campaign::Transfer)))
            }
            (RoleState::Follower, MessageBody::ReadIndexResponse(state)) if core.leader == Some(from) => {
                core.read_states.push(state);
                Ok(None)
            }
            (
                role,
                body @ (MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::InstallSnapshot(_)),
            ) => {
                // A leader exists in our term: a (pre-)candidate concedes.
                if !matches!(role, RoleState::Follower) {
                    *role = RoleState::Follower;
                    core.reset_election_timer();
                }
                core.leader = Some(from);
                replication::follower_step(core, from, body)
                    .map_err(|source| StepError::Log { from, source })?;
                Ok(None)
            }
            // Stale responses to an earlier role, and messages a follower never expects.
            _ => Ok(None),
        }
    }

    /// Refuses messages that are malformed on their face, before any state changes.
    fn validate(&self, message: &Message) -> Result<(), StepError> {
        if message.to != self.core.id {
            return Err(StepError::WrongRecipient { to: message.to, me: self.core.id });
        }
        if message.from == self.core.id {
            return Err(StepError::FromSelf);
        }
        let malformed =
            |reason| StepError::Malformed { from: message.from, kind: message.body.kind(), reason };
        if message.term > MAX_TERM {
            return Err(malformed("term exceeds MAX_TERM"));
        }
        if let MessageBody::InstallSnapshot(chunk) = &message.body {
            let last = chunk.meta.last;
            if last.term > message.term {
                return Err(malformed("snapshot's last term exceeds the leader's term"));
            }
            if last.index >= Index::MAX / 2 {
                return Err(malformed("snapshot's last index is out of range"));
            }
            if chunk.meta.membership.validate().is_err() || chunk.meta.membership.voters.is_empty() {
                return Err(malformed("snapshot's configuration is invalid"));
            }
            let end = chunk.offset.checked_add(chunk.data.len() as u64);
            if end.is_none_or(|end| end > self.core.config.max_snapshot_bytes)
                || chunk.total_len > self.core.config.max_snapshot_bytes
            {
                return Err(malformed("snapshot exceeds max_snapshot_bytes"));
            }
            if end.is_none_or(|end| end > chunk.total_len) {
                return Err(malformed("snapshot chunk ends past the snapshot's length"));
            }
        }
        if let MessageBody::PreVote(request) | MessageBody::Vote(request) = &message.body {
            if request.last_log_term > message.term {
                return Err(malformed("candidate's last log term exceeds the term it campaigns in"));
            }
        }
        if let MessageBody::AppendEntries(append) = &message.body {
            let prev = LogId::new(append.prev_log_term, append.prev_log_index);
            let mut previous = prev;
            for entry in &append.entries {
                if previous.index == Index::MAX || entry.index != previous.index + 1 {
                    return Err(malformed("entries are not consecutive after prev_log_index"));
                }
                if entry.term < previous.term || entry.term > message.term {
                    return Err(malformed("entry terms decrease or exceed the leader's term"));
                }
                previous = entry.log_id();
            }
            if append.prev_log_term > message.term {
                return Err(malformed("prev_log_term exceeds the leader's term"));
            }
        }
        Ok(())
    }

    /// Applies a role change asked for by a handler.
    fn transition(&mut self, transition: Option<Transition>) {
        let Some(transition) = transition else { return };
        match transition {
            Transition::Follower { term, leader } => self.become_follower(term, leader),
            Transition::PreCandidate => {
                let (candidate, next) = Candidate::start(&mut self.core, Campaign::PreVote);
                self.role = RoleState::PreCandidate(candidate);
                self.transition(next);
            }
            Transition::Candidate(campaign) => {
                self.core.term += 1;
                self.core.vote = Some(self.core.id);
                self.core.hard_state_changed();
                let (candidate, next) = Candidate::start(&mut self.core, campaign);
                self.role = RoleState::Candidate(candidate);
                self.transition(next);
            }
            Transition::Leader => {
                self.role = RoleState::Leader(Leader::start(&mut self.core));
            }
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        debug_assert!(term >= self.core.term);
        let was_follower = matches!(self.role, RoleState::Follower);
        if term > self.core.term {
            self.core.term = term;
            self.core.vote = None;
            self.core.hard_state_changed();
        }
        self.core.leader = leader;
        self.role = RoleState::Follower;
        // Figure 2: a follower's timer restarts when it hears from a leader
        // or grants a vote (election.rs), not when it merely adopts the term
        // of a candidate it may refuse. Otherwise candidates whose logs can
        // never win keep restarting the timer of the one node that can.
        if leader.is_some() || !was_follower {
            self.core.reset_election_timer();
        }
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let core = &self.core;
        core.durability.hard_state_dirty
            || core.log.has_unstable()
            || core.log.has_applicable()
            || !core.messages.is_empty()
            || !core.persisted_messages.is_empty()
            || !core.read_states.is_empty()
            || core.snapshot_to_install.is_some()
            || core.purge_to.is_some()
            || self.soft_state() != core.durability.reported
            || matches!(&self.role, RoleState::Leader(leader) if leader.has_pending_work())
    }

    /// Collects what the caller must persist, send and apply; see [`Ready`]
    /// for the contract.
    pub fn ready(&mut self) -> Ready {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.flush_broadcast(&mut self.core);
        }
        let soft_state = self.soft_state();
        let core = &mut self.core;
        let number = core.durability.next_ready;
        core.durability.next_ready += 1;

        let hard_state = if core.durability.hard_state_dirty {
            core.durability.hard_state_dirty = false;
            core.durability.last_hard_state_ready = number;
            Some(core.hard_state())
        } else {
            None
        };
        let snapshot = core.snapshot_to_install.take();
        if snapshot.is_some() {
            let stored = core.log.stored_last();
            core.durability.pending_writes.push_back((number, stored));
        }
        let entries = core.log.take_unstable();
        if let Some(last) = entries.last() {
            core.durability.pending_writes.push_back((number, last.log_id()));
        }
        let committed_entries = core.log.take_applicable();
        let request_snapshot = core.wants_snapshot();
        let reported = std::mem::replace(&mut core.durability.reported, soft_state);
        Ready {
            number,
            hard_state,
            entries,
            messages: std::mem::take(&mut core.messages),
            persisted_messages: std::mem::take(&mut core.persisted_messages),
            committed_entries,
            read_states: std::mem::take(&mut core.read_states),
            snapshot,
            purge_to: core.purge_to.take(),
            request_snapshot,
            soft_state: (reported != soft_state).then_some(soft_state),
        }
    }

    /// Reports that the writes of `Ready` number `number`, and of every
    /// earlier one, are durable. A leader counts its own log toward a quorum
    /// only from here on, which is what lets it write in parallel with
    /// replicating. Stale or unknown numbers are ignored.
    pub fn on_persisted(&mut self, number: u64) {
        let durability = &mut self.core.durability;
        if number <= durability.persisted_ready || number >= durability.next_ready {
            return;
        }
        durability.persisted_ready = number;
        while let Some(&(ready, last)) = durability.pending_writes.front() {
            if ready > number {
                break;
            }
            durability.pending_writes.pop_front();
            self.core.log.persisted_to(last);
        }
        let transition = match &mut self.role {
            RoleState::Leader(leader) => {
                leader.on_persisted(&mut self.core);
                None
            }
            // A candidate's own vote counts once it is durable.
            RoleState::Candidate(candidate) => candidate.outcome(&self.core),
            _ => None,
        };
        self.transition(transition);
        self.after_input();
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.core.term
    }

    /// The candidate voted for in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.core.vote
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The leader this node knows of in the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.core.leader
    }

    /// The role and leader together.
    pub fn soft_state(&self) -> SoftState {
        SoftState { leader: self.core.leader, role: self.role() }
    }

    /// The log, read-only.
    pub fn log(&self) -> &RaftLog {
        &self.core.log
    }

    /// The last entry the latest snapshot covers (index 0: none). The log
    /// may keep entries before it (see [`Config::snapshot_keep_entries`]).
    pub fn snapshot_last(&self) -> LogId {
        self.core.snapshot.as_ref().map_or(self.core.log.snapshot(), |s| s.meta.last)
    }

    /// The configuration in force (the last one in the log, committed or not).
    pub fn membership(&self) -> &Membership {
        self.core.log.membership()
    }

    /// On the leader, whether `peer` has caught up enough to be promoted
    /// from learner to voter (see [`Config::learner_catch_up_lag`]); `None`
    /// elsewhere, or for an unknown peer.
    pub fn caught_up(&self, peer: NodeId) -> Option<bool> {
        match &self.role {
            RoleState::Leader(leader) => {
                leader.progress().get(&peer).map(|pr| crate::replication::caught_up(&self.core, pr))
            }
            _ => None,
        }
    }

    /// The leader's view of every follower's replication progress; `None` on
    /// a node that is not the leader.
    pub fn progress(&self) -> Option<&std::collections::BTreeMap<NodeId, crate::Progress>> {
        match &self.role {
            RoleState::Leader(leader) => Some(leader.progress()),
            _ => None,
        }
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.core.config
    }
}
