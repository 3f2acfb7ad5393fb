//! The protocol state every role shares ([`Core`]), and how a role's handler
//! asks for another role ([`Transition`], [`Campaign`]).
//!
//! The role handlers (`election.rs`, `replication.rs`, `read.rs`,
//! `snapshot_transfer.rs`) take a `&mut Core`; `node.rs` owns the role and
//! applies their transitions. Nothing here knows which role the node is in.
//! `Core` holds protocol state; what it produces for the caller waits in its
//! [`Outbox`] (`outbox.rs`) until `RawNode::ready` drains it, and which
//! message waits for which write is its [`DurabilityGate`]'s business
//! (`durability.rs`).
//!
//! Invariants of [`Core`]:
//! - `vote`, when set, is a vote cast in `term` (a new term clears it:
//!   [`Core::set_term`]);
//! - `leader == Some(id)` exactly when the node is leader of `term` (the
//!   role in `node.rs` and this field change together, in
//!   `RawNode::transition`);
//! - `quorum` is the quorum rule of the configuration in force, the latest
//!   in the log ([`Core::refresh_membership`] keeps them in step);
//! - every change of `term` or `vote` marks the hard state dirty, so the next
//!   `Ready` carries it and messages that depend on it wait until it is
//!   durable.

use crate::durability::DurabilityGate;
use crate::outbox::Outbox;
use crate::quorum::JointConfig;
use crate::rng::Rng;
use crate::{
    Config, Entry, EntryPayload, HardState, Index, LogId, Message, MessageBody, NodeId, RaftLog, Role,
    Snapshot, SoftState, Term, MAX_TERM,
};

/// How a round of votes starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Campaign {
    /// Ask whether a quorum would vote, without changing any term.
    PreVote,
    /// Ask for votes in a new term.
    Election,
    /// Ask for votes in a new term because the leader handed over leadership.
    Transfer,
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
    /// The current term: changed only by [`Core::set_term`] and
    /// [`Core::start_election_term`], which also mark the hard state dirty.
    term: Term,
    /// The vote cast in `term`: changed only with the term, or by
    /// [`Core::vote_for`].
    vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The quorum rule of the configuration in force, kept in step with the log.
    pub(crate) quorum: JointConfig,
    pub(crate) membership_version: u64,
    /// Ticks since the election timer was last reset; on a leader, ticks since
    /// the last check-quorum round.
    pub(crate) election_elapsed: u64,
    pub(crate) randomized_election_timeout: u64,
    pub(crate) rng: Rng,
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
    /// The applied index when a snapshot was last asked for.
    pub(crate) snapshot_requested_at: Option<Index>,
    /// Persist before send: which messages wait for which writes.
    pub(crate) gate: DurabilityGate,
    /// What the next `Ready` hands out besides writes and committed entries.
    pub(crate) outbox: Outbox,
}

impl Core {
    /// The state a node starts from: its durable term, vote, log and
    /// snapshot, an election timer drawn from `seed`.
    pub(crate) fn new(
        config: Config,
        hard_state: HardState,
        log: RaftLog,
        snapshot: Option<Snapshot>,
        seed: u64,
    ) -> Self {
        let config_lease_reads = config.lease_reads;
        let mut core = Core {
            id: config.id,
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            quorum: log.membership().quorum(),
            membership_version: log.membership_version(),
            log,
            election_elapsed: 0,
            randomized_election_timeout: 0,
            rng: Rng::new(seed),
            ticks: 0,
            // With leases in use, a restarted node may have promised a leader
            // not to vote before it crashed: it keeps that promise.
            ticks_since_leader: (config_lease_reads && hard_state.term > 0).then_some(0),
            snapshot_checksum: snapshot.as_ref().map_or(0, |s| s.data.crc32()),
            snapshot,
            snapshot_requested_at: None,
            gate: DurabilityGate::new(),
            outbox: Outbox::new(SoftState { leader: None, role: Role::Follower }),
        };
        core.reset_election_timer();
        core
    }

    /// The current term.
    pub(crate) fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub(crate) fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// Moves to a later `term` with no vote yet (no-op for the current one).
    pub(crate) fn set_term(&mut self, term: Term) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_changed();
        }
    }

    /// Starts the next term as its candidate: the term goes up by one and
    /// this node votes for itself.
    pub(crate) fn start_election_term(&mut self) {
        self.set_term(self.term + 1);
        self.vote_for(self.id);
    }

    /// Casts this term's vote for `id`.
    pub(crate) fn vote_for(&mut self, id: NodeId) {
        self.vote = Some(id);
        self.hard_state_changed();
    }
    /// Queues a message stamped with the current term.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    /// Queues a message, holding it until this `Ready`'s writes are durable
    /// if the gate says it must wait (see `durability.rs`).
    pub(crate) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let held = self.gate.must_hold(&body);
        self.outbox.send(Message { from: self.id, to, term, body }, held);
    }

    /// Whether to ask for a snapshot now (once per threshold's worth of
    /// applied entries).
    pub(crate) fn wants_snapshot(&mut self) -> bool {
        let applied = self.log.applied();
        let since = self.snapshot_requested_at.unwrap_or(self.log.snapshot().index);
        if applied.saturating_sub(since) >= self.config.snapshot_threshold {
            self.snapshot_requested_at = Some(applied);
            true
        } else {
            false
        }
    }

    /// Makes `snapshot` the latest one, the one sent to followers.
    pub(crate) fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot_checksum = snapshot.data.crc32();
        self.snapshot = Some(snapshot);
    }

    /// Marks the term or vote as changed, to be persisted with the next `Ready`.
    fn hard_state_changed(&mut self) {
        self.gate.hard_state_changed();
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

    /// Whether this node heard from a leader (of any term) fewer than
    /// `election_timeout_min` ticks ago, and so has promised it not to vote
    /// for anyone else: the promise leader leases rest on (see `read.rs`).
    pub(crate) fn in_promise(&self) -> bool {
        self.ticks_since_leader.is_some_and(|t| t < self.config.election_timeout_min)
    }

    /// How an election timeout starts a campaign: with a pre-vote round if
    /// configured.
    pub(crate) fn campaign_transition(&self) -> Transition {
        if self.config.pre_vote {
            Transition::PreCandidate
        } else {
            Transition::Candidate(Campaign::Election)
        }
    }

    /// The election timer on a node that is not leader.
    pub(crate) fn tick_election(&mut self) -> Option<Transition> {
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
