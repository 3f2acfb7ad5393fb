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
//! The state shared by every role lives in `Core` (`protocol.rs`); what only
//! one role needs lives in that role's type ([`Follower`], [`Candidate`],
//! [`Leader`]), so a leader-only operation cannot be called on a follower.
//! [`RawNode::ready`] drains what the handlers queued in `Core`'s outbox
//! (`outbox.rs`); [`RawNode::on_persisted`] tells the durability gate
//! (`durability.rs`) which writes are durable. A role's handlers
//! return a `Transition` rather than changing role themselves; [`RawNode`]
//! applies it.

use crate::election::Candidate;
use crate::errors::{
    InitError, MembershipChangeError, ProposeError, ReadError, SnapshotError, StepError, TransferError,
};
use crate::follower::Follower;
use crate::protocol::{Campaign, Core, Transition};
use crate::replication::Leader;
use crate::{
    Config, Entry, EntryPayload, HardState, Index, LogId, Membership, Message, MessageBody, NodeId, RaftLog,
    ReadIndexRequest, ReadState, Role, Snapshot, SnapshotInstall, SoftState, Term, MAX_TERM,
};
use bytes::Bytes;
use std::collections::BTreeSet;

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
    /// A snapshot from the leader to install, as part of this batch's write
    /// (before [`Ready::entries`]): save it, do to the stored entries what
    /// its [`SnapshotInstall::log`] says (the node decided by section 7's
    /// rule on its own log, which may differ from the stored one: do not
    /// decide again from what is stored), and once that is durable, restore
    /// the state machine from it. No entry after it is handed out for
    /// applying before this batch is reported persisted.
    pub snapshot: Option<SnapshotInstall>,
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
    Follower(Follower),
    /// A pre-candidate keeps the follower it was: a pre-vote does not leave
    /// the term, and if the term's leader is heard from again the node
    /// resumes following it, a snapshot transfer included.
    PreCandidate(Candidate, Follower),
    Candidate(Candidate),
    Leader(Leader),
}

impl RoleState {
    /// Takes the follower state a next follower role continues with: a
    /// follower's or pre-candidate's own (still in its term), else a fresh one.
    fn take_follower(&mut self) -> Follower {
        match self {
            RoleState::Follower(follower) | RoleState::PreCandidate(_, follower) => std::mem::take(follower),
            RoleState::Candidate(_) | RoleState::Leader(_) => Follower::new(),
        }
    }
}

/// One Raft node, driven by its caller. See the crate documentation for the
/// usage contract.
#[derive(Debug)]
pub struct RawNode {
    core: Core,
    role: RoleState,
}

/// Refuses a command of `len` bytes whose entry would be larger than one
/// message may carry (see [`RawNode::propose`]).
pub(crate) fn command_fits(len: usize) -> Result<(), ProposeError> {
    let size = crate::types::ENTRY_HEADER_BYTES.saturating_add(len as u64);
    if size > crate::MAX_MESSAGE_BYTES {
        return Err(ProposeError::CommandTooLarge { size, max: crate::MAX_MESSAGE_BYTES });
    }
    Ok(())
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
        // Index arithmetic (`last + 1`) must never overflow: a stored log
        // is held to the bound a peer's snapshot is (`RawNode::step`).
        let stored_last = state.entries.last().map(|e| e.index);
        let stored_last = stored_last.max(state.snapshot.as_ref().map(|s| s.meta.last.index));
        if let Some(index) = stored_last.filter(|&index| index >= Index::MAX / 2) {
            return Err(InitError::IndexTooLarge(index));
        }
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
        let core = Core::new(config, state.hard_state, log, state.snapshot, seed);
        Ok(Self { core, role: RoleState::Follower(Follower::new()) })
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
    ///
    /// A command whose entry would exceed [`crate::MAX_MESSAGE_BYTES`] is
    /// refused ([`ProposeError::CommandTooLarge`]): an entry is sent whole,
    /// one message at least, and a message over a transport's frame limit
    /// never arrives, so replication would stop at it for good.
    pub fn propose(&mut self, command: Bytes) -> Result<LogId, ProposeError> {
        command_fits(command.len())?;
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
            core.outbox.purge_to(purge);
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
        self.validate(&message)?;
        let Message { from, term, .. } = message;
        if term > self.core.term() {
            match &message.body {
                MessageBody::PreVote(request) | MessageBody::Vote(request)
                    if !request.leadership_transfer && self.in_lease() =>
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
        } else if term < self.core.term() {
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
            (RoleState::PreCandidate(candidate, _), MessageBody::PreVoteResponse(response)) => {
                Ok(candidate.record_pre_vote(core, from, term, response))
            }
            (RoleState::Candidate(candidate), MessageBody::VoteResponse(response)) => {
                Ok(candidate.record_vote(core, from, response))
            }
            // Only the leader may hand over leadership: a transfer election
            // overrides the other voters' promises (leader stickiness), which
            // the leader alone can release, having given up its lease.
            (RoleState::Follower(_), MessageBody::TimeoutNow)
                if core.leader == Some(from) && core.promotable() =>
            {
                Ok(Some(Transition::Candidate(Campaign::Transfer)))
            }
            (RoleState::Follower(_), MessageBody::ReadIndexResponse(state)) if core.leader == Some(from) => {
                core.outbox.read_ready(state);
                Ok(None)
            }
            (
                role,
                body @ (MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::InstallSnapshot(_)),
            ) => {
                // A leader exists in our term: a (pre-)candidate concedes.
                if !matches!(role, RoleState::Follower(_)) {
                    core.reset_election_timer();
                }
                let mut follower = role.take_follower();
                core.leader = Some(from);
                let stepped = follower.step(core, from, body);
                *role = RoleState::Follower(follower);
                stepped.map_err(|source| StepError::Log { from, source })?;
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

    /// Whether this node believes a leader is live and so ignores requests to
    /// vote in a newer term (leader stickiness, thesis section 4.2.3). A
    /// follower is in lease while it heard from its leader within the minimum
    /// election timeout; a leader is, when check-quorum makes it step down as
    /// soon as it loses its quorum.
    fn in_lease(&self) -> bool {
        match self.role {
            RoleState::Leader(_) => self.core.config.check_quorum,
            _ => self.core.in_promise(),
        }
    }

    /// Applies a role change asked for by a handler.
    fn transition(&mut self, transition: Option<Transition>) {
        let Some(transition) = transition else { return };
        match transition {
            Transition::Follower { term, leader } => self.become_follower(term, leader),
            Transition::PreCandidate => {
                let follower = self.role.take_follower();
                let (candidate, next) = Candidate::start(&mut self.core, Campaign::PreVote);
                self.role = RoleState::PreCandidate(candidate, follower);
                self.transition(next);
            }
            Transition::Candidate(campaign) => {
                self.core.start_election_term();
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
        debug_assert!(term >= self.core.term());
        let was_follower = matches!(self.role, RoleState::Follower(_));
        self.core.set_term(term);
        self.core.leader = leader;
        self.role = RoleState::Follower(self.role.take_follower());
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
        core.gate.hard_state_dirty()
            || core.log.has_unstable()
            || core.log.has_applicable()
            || !core.outbox.is_empty(self.soft_state())
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
        let (number, carries_hard_state) = core.gate.open_ready();
        let mut ready =
            Ready { number, hard_state: carries_hard_state.then(|| core.hard_state()), ..Ready::default() };
        core.outbox.drain_into(&mut ready, soft_state);
        // Storage writes the snapshot, then the entries (the usage
        // contract's order); the gate reports writes in the order issued.
        if ready.snapshot.is_some() {
            core.gate.write_issued(number, core.log.stored_last());
        }
        ready.entries = core.log.take_unstable();
        if let Some(last) = ready.entries.last() {
            core.gate.write_issued(number, last.log_id());
        }
        ready.committed_entries = core.log.take_applicable();
        ready.request_snapshot = core.wants_snapshot();
        ready
    }

    /// Reports that the writes of `Ready` number `number`, and of every
    /// earlier one, are durable. A leader counts its own log toward a quorum
    /// only from here on, which is what lets it write in parallel with
    /// replicating. Stale or unknown numbers are ignored.
    pub fn on_persisted(&mut self, number: u64) {
        let Core { gate, log, .. } = &mut self.core;
        if !gate.persisted(number, |last| log.persisted_to(last)) {
            return;
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
        self.core.term()
    }

    /// The candidate voted for in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.core.vote()
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower(_) => Role::Follower,
            RoleState::PreCandidate(..) => Role::PreCandidate,
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
