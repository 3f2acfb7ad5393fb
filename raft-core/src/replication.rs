//! Log replication (section 5.3) and commitment (section 5.4.2).
//!
//! The leader keeps a [`Progress`] per follower. It probes one message at a
//! time until it finds where the follower's log matches its own, using the
//! follower's conflict hint to skip a whole term per round trip, then streams
//! entries optimistically (pipelining) within a bounded in-flight window, with
//! at most `max_entries_per_msg` entries and `max_bytes_per_msg` bytes a
//! message. Proposals made between two [`crate::RawNode::ready`] calls go out
//! together, one message per follower.
//!
//! An entry is committed once a quorum stores it durably and it is of the
//! leader's own term; earlier entries become committed only through it
//! (Figure 8). The leader's own log counts only up to what is durable, so it
//! can write its log in parallel with its followers.

use crate::errors::{MembershipChangeError, TransferError};
use crate::mutation::{mutated, Mutation};
use crate::protocol::{Core, Transition};
use crate::quorum::VoteResult;
use crate::read::ReadQueue;
use crate::{
    AppendEntries, AppendEntriesResponse, EntryPayload, Heartbeat, Index, InstallSnapshotResponse, LogId,
    Membership, MembershipError, MessageBody, NodeId, Progress, ProgressState,
};
use std::collections::BTreeMap;

/// Heartbeat responses without progress, with appends outstanding, after which
/// the leader assumes those appends were lost and probes again.
const STALLED_HEARTBEATS: u32 = 3;

/// The state only a leader has.
#[derive(Debug)]
pub(crate) struct Leader {
    /// Every other member's progress, voters and learners alike.
    progress: BTreeMap<NodeId, Progress>,
    /// Ticks since the last heartbeat.
    heartbeat_elapsed: u64,
    /// Entries were proposed since the last broadcast.
    broadcast_pending: bool,
    /// The index of this leader's first entry. Until it commits, this leader
    /// cannot know whether a configuration change is in flight.
    term_start: Index,
    /// A leadership transfer in progress.
    transfer: Option<Transfer>,
    /// Reads waiting for this leader to confirm it leads.
    reads: ReadQueue,
    /// TimeoutNow went out this term: its target may be elected whatever the
    /// followers' leases say, so lease reads are off until the term ends.
    lease_revoked: bool,
}

/// A leadership transfer in progress.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    /// The node leadership is handed to.
    target: NodeId,
    /// Ticks since it started; it is abandoned after an election timeout.
    elapsed: u64,
    /// TimeoutNow has been sent.
    sent: bool,
}

impl Leader {
    /// Takes leadership: every follower starts in Probe just past our last
    /// entry, and we append a blank entry of our term so that earlier entries
    /// can be committed (section 5.4.2) and reads can be served.
    pub(crate) fn start(core: &mut Core) -> Self {
        core.leader = Some(core.id);
        core.election_elapsed = 0;
        let mut leader = Self {
            progress: BTreeMap::new(),
            heartbeat_elapsed: 0,
            broadcast_pending: false,
            term_start: core.log.last_index() + 1,
            transfer: None,
            reads: ReadQueue::default(),
            lease_revoked: false,
        };
        leader.reconcile_progress(core);
        core.append_new(EntryPayload::Blank);
        leader.broadcast_append(core, true);
        leader.maybe_commit(core);
        leader
    }

    /// Tracks progress for exactly the members of the configuration in force:
    /// new members start in Probe just past our log, departed ones are dropped.
    pub(crate) fn reconcile_progress(&mut self, core: &Core) {
        let membership = core.log.membership();
        self.progress.retain(|&id, _| membership.contains(id));
        let next = core.log.last_index() + 1;
        for id in membership.members().filter(|&id| id != core.id) {
            self.progress.entry(id).or_insert_with(|| Progress::new(next, core.config.max_inflight_msgs));
        }
    }

    /// Validates a membership change and appends its first entry.
    pub(crate) fn change_membership(
        &mut self,
        core: &mut Core,
        target: Membership,
    ) -> Result<LogId, MembershipChangeError> {
        if target.voters.is_empty() {
            return Err(MembershipError::NoVoters.into());
        }
        target.validate()?;
        if self.transfer.is_some() {
            return Err(MembershipChangeError::TransferInProgress);
        }
        let memberships = core.log.memberships();
        let current = memberships.current();
        if current.is_joint()
            || memberships.current_index() > core.log.committed()
            || core.log.committed() < self.term_start
        {
            return Err(MembershipChangeError::ChangeInProgress);
        }
        let last_index = core.log.last_index();
        for &node in target.voters.difference(&current.voters) {
            if node == core.id || current.outgoing.contains(&node) {
                continue;
            }
            let Some(pr) = self.progress.get(&node).filter(|_| current.is_learner(node)) else {
                return Err(MembershipChangeError::NotALearner { node });
            };
            if !caught_up(core, pr) {
                return Err(MembershipChangeError::NotCaughtUp {
                    node,
                    match_index: pr.match_index(),
                    last_index,
                });
            }
        }
        let target = target.inherit_addresses(current);
        let direct = target.voters == current.voters || mutated(Mutation::SkipJointConsensus);
        let entry = if direct { target } else { current.enter_joint(&target) };
        Ok(self.append_membership(core, entry))
    }

    /// Appends a configuration entry; it is in force from now on.
    fn append_membership(&mut self, core: &mut Core, membership: Membership) -> LogId {
        let id = self.propose(core, EntryPayload::Membership(Box::new(membership)));
        if core.refresh_membership() {
            self.reconcile_progress(core);
        }
        id
    }

    /// Finishes a membership change once its entry commits: a joint
    /// configuration is left by appending the new one; a leader that is not a
    /// voter of the committed configuration steps down.
    pub(crate) fn advance_membership(&mut self, core: &mut Core) -> Option<Transition> {
        let memberships = core.log.memberships();
        if memberships.current_index() > core.log.committed() {
            return None;
        }
        let current = memberships.current();
        if current.is_joint() {
            let next = current.leave_joint();
            self.append_membership(core, next);
            None
        } else if !current.is_voter(core.id) {
            Some(Transition::Follower { term: core.term(), leader: None })
        } else {
            None
        }
    }

    /// Every other member's replication progress.
    pub(crate) fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// Whether proposals or reads are waiting to be sent.
    pub(crate) fn has_pending_work(&self) -> bool {
        self.broadcast_pending || self.reads.has_unassigned()
    }

    /// Registers a read from `origin` (this node, or a follower asking).
    /// During a leadership transfer no lease is trusted: the target may be
    /// elected at once.
    pub(crate) fn read(&mut self, core: &mut Core, ctx: u64, origin: NodeId, lease: bool) {
        let own_term_committed = core.log.committed() >= self.term_start;
        let lease = lease && self.transfer.is_none() && !self.lease_revoked;
        self.reads.register(core, ctx, origin, lease, own_term_committed);
    }

    /// Appends a new entry; it is sent at the next [`Leader::flush_broadcast`],
    /// batched with every other proposal made before it.
    pub(crate) fn propose(&mut self, core: &mut Core, payload: EntryPayload) -> LogId {
        self.broadcast_pending = true;
        core.append_new(payload)
    }

    /// Sends what was proposed since the last call, and starts a read round
    /// for the reads registered since the last one.
    pub(crate) fn flush_broadcast(&mut self, core: &mut Core) {
        if self.broadcast_pending {
            self.broadcast_pending = false;
            self.broadcast_append(core, false);
        }
        if self.reads.start_round(core) {
            self.broadcast_heartbeat(core);
            // A quorum of one (this node) confirms at once.
            self.reads.confirm(core);
        }
    }

    /// The node leadership is being handed to, if a transfer is in progress.
    pub(crate) fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.target)
    }

    /// Starts handing leadership to `target`.
    pub(crate) fn transfer_leadership(
        &mut self,
        core: &mut Core,
        target: NodeId,
    ) -> Result<(), TransferError> {
        if target == core.id {
            return Ok(());
        }
        let membership = core.log.membership();
        if !membership.contains(target) {
            return Err(TransferError::UnknownNode(target));
        }
        if !membership.voters.contains(&target) {
            return Err(TransferError::NotAVoter(target));
        }
        self.transfer = Some(Transfer { target, elapsed: 0, sent: false });
        self.reads.end_lease();
        if !self.maybe_send_timeout_now(core) {
            if let Some(pr) = self.progress.get_mut(&target) {
                // Re-sync from what it is known to hold now, rather than wait
                // for heartbeats to notice appends lost in flight.
                pr.become_probe();
                send_appends(core, target, pr, false);
            }
        }
        Ok(())
    }

    /// Tells the transfer target to campaign once its log matches ours.
    fn maybe_send_timeout_now(&mut self, core: &mut Core) -> bool {
        let Some(transfer) = &mut self.transfer else { return false };
        let caught_up =
            self.progress.get(&transfer.target).is_some_and(|pr| pr.match_index() == core.log.last_index());
        if caught_up && !transfer.sent {
            transfer.sent = true;
            self.lease_revoked = true;
            core.send(transfer.target, MessageBody::TimeoutNow);
        }
        caught_up
    }

    /// Heartbeats, and the check-quorum round once per minimum election timeout.
    pub(crate) fn tick(&mut self, core: &mut Core) -> Option<Transition> {
        if let Some(transfer) = &mut self.transfer {
            transfer.elapsed += 1;
            if transfer.elapsed >= core.config.election_timeout_min {
                self.transfer = None;
            }
        }
        self.heartbeat_elapsed += 1;
        core.election_elapsed += 1;
        if core.election_elapsed >= core.config.election_timeout_min {
            core.election_elapsed = 0;
            if core.config.check_quorum && !self.quorum_active(core) {
                return Some(Transition::Follower { term: core.term(), leader: None });
            }
        }
        if self.heartbeat_elapsed >= core.config.heartbeat_interval {
            self.heartbeat_elapsed = 0;
            self.count_caught_up_rounds(core);
            self.broadcast_heartbeat(core);
        }
        None
    }

    /// Whether a quorum of voters was heard from since the last round; resets
    /// the record for the next round.
    fn quorum_active(&mut self, core: &Core) -> bool {
        let active = core.quorum.vote_result(|id| {
            Some(id == core.id || self.progress.get(&id).is_some_and(|pr| pr.recent_active))
        });
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        active == VoteResult::Won
    }

    /// One round of the learners' catch-up check: a member within the
    /// configured lag of our log gains a round, one behind it starts over.
    fn count_caught_up_rounds(&mut self, core: &Core) {
        let last_index = core.log.last_index();
        for pr in self.progress.values_mut() {
            if pr.answered_this_round
                && pr.match_index().saturating_add(core.config.learner_catch_up_lag) >= last_index
            {
                pr.caught_up_rounds = pr.caught_up_rounds.saturating_add(1);
            } else {
                pr.caught_up_rounds = 0;
            }
            pr.answered_this_round = false;
        }
    }

    /// Handles a message of the current term addressed to the leader.
    pub(crate) fn step(&mut self, core: &mut Core, from: NodeId, body: MessageBody) -> Option<Transition> {
        match body {
            MessageBody::AppendEntriesResponse(response) => self.handle_append_response(core, from, response),
            MessageBody::HeartbeatResponse(response) => {
                self.handle_heartbeat_response(core, from);
                self.reads.on_answer(core, from, response.round);
            }
            MessageBody::ReadIndex(request) => self.read(core, request.ctx, from, request.lease),
            MessageBody::InstallSnapshotResponse(response) => {
                self.handle_snapshot_response(core, from, response)
            }
            // Stale election traffic; another leader in our term cannot exist.
            _ => {}
        }
        None
    }

    /// Our own log became durable further: it may complete a quorum.
    pub(crate) fn on_persisted(&mut self, core: &mut Core) {
        if self.maybe_commit(core) {
            self.broadcast_append(core, true);
        }
    }

    fn handle_append_response(&mut self, core: &mut Core, from: NodeId, response: AppendEntriesResponse) {
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.answered_this_round = true;
        match response {
            AppendEntriesResponse::Success { match_index } => {
                // A follower cannot hold entries we never had: ignore a bogus claim.
                if match_index > core.log.last_index() {
                    return;
                }
                if pr.maybe_update(match_index) {
                    if pr.state() == ProgressState::Probe {
                        pr.become_replicate();
                    }
                    if self.transfer_target() == Some(from) {
                        self.maybe_send_timeout_now(core);
                    }
                    if self.maybe_commit(core) {
                        self.broadcast_append(core, true);
                        return;
                    }
                }
                if let Some(pr) = self.progress.get_mut(&from) {
                    // If it missed the last commit broadcast, tell it now.
                    let stale_commit = pr.commit_sent < core.log.committed().min(pr.match_index());
                    send_appends(core, from, pr, stale_commit);
                }
            }
            AppendEntriesResponse::Conflict { rejected_index, hint_index, hint_term } => {
                // Skip back over our entries of terms the follower lacks.
                let match_hint = if hint_term > 0 {
                    core.log.find_conflict_by_term(hint_index, hint_term).0
                } else {
                    hint_index
                };
                if pr.maybe_decr_to(rejected_index, match_hint) {
                    if pr.state() == ProgressState::Replicate {
                        pr.become_probe();
                    }
                    send_appends(core, from, pr, true);
                }
            }
        }
    }

    fn handle_snapshot_response(&mut self, core: &mut Core, from: NodeId, response: InstallSnapshotResponse) {
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.answered_this_round = true;
        let ProgressState::Snapshot { pending_index } = pr.state() else {
            if response.installed && response.last.index <= core.log.last_index() {
                pr.maybe_update(response.last.index);
            }
            return;
        };
        if response.last.index != pending_index {
            return; // about an earlier snapshot
        }
        if response.installed {
            pr.maybe_update(pending_index);
            pr.become_probe();
            send_appends(core, from, pr, true);
            if self.transfer_target() == Some(from) {
                self.maybe_send_timeout_now(core);
            }
        } else if response.next_offset != pr.snapshot_offset {
            // Progress (or, if lower, the follower started over): one chunk
            // answers one chunk, so a single stream is ever in flight. An
            // answer repeating the offset (to a duplicate chunk) sends nothing.
            pr.snapshot_offset = response.next_offset;
            pr.stalled_heartbeats = 0;
            send_snapshot_chunk(core, from, pr);
        }
    }

    fn handle_heartbeat_response(&mut self, core: &mut Core, from: NodeId) {
        if self.transfer.is_some_and(|t| t.target == from && t.sent) {
            // The target answered as our follower, so it knows us as its
            // leader now; a TimeoutNow that reached it before it did (it had
            // just restarted, say) was ignored. Another one is harmless: it
            // campaigns once, and the lease is revoked for this term already.
            core.send(from, MessageBody::TimeoutNow);
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.answered_this_round = true;
        pr.probe_sent = false;
        if matches!(pr.state(), ProgressState::Snapshot { .. }) {
            // A chunk may have been lost: after a few heartbeats without
            // progress, resend from what the follower acknowledged.
            pr.stalled_heartbeats += 1;
            if pr.stalled_heartbeats >= STALLED_HEARTBEATS {
                pr.stalled_heartbeats = 0;
                send_snapshot_chunk(core, from, pr);
            }
            return;
        }
        if pr.match_index() >= core.log.last_index() {
            return;
        }
        if pr.state() == ProgressState::Replicate && !pr.inflights.is_empty() {
            pr.stalled_heartbeats += 1;
            if pr.stalled_heartbeats >= STALLED_HEARTBEATS {
                pr.become_probe();
            }
        }
        // A probing follower behind us is probed again even when we have
        // nothing new: its last probe (or the answer) may have been lost,
        // and a probe sent past our last index is empty, so waiting for new
        // entries would leave an idle cluster's new learner behind forever.
        let probing = pr.state() == ProgressState::Probe;
        send_appends(core, from, pr, probing);
    }

    /// Advances the commit index to the highest index a quorum stores
    /// durably, if that entry is of our term (Figure 8).
    fn maybe_commit(&mut self, core: &mut Core) -> bool {
        let persisted = core.log.persisted();
        let index = core.quorum.committed_index(|id| {
            if id == core.id {
                Some(persisted)
            } else {
                self.progress.get(&id).map(Progress::match_index)
            }
        });
        let of_our_term =
            core.log.term(index) == Some(core.term()) || mutated(Mutation::CommitEarlierTermByCount);
        if index > core.log.committed() && of_our_term {
            core.log.commit_to(index);
            if core.log.committed() >= self.term_start {
                self.reads.release_held(core);
            }
            true
        } else {
            false
        }
    }

    /// Sends every follower what it is missing; with `send_if_empty`, also
    /// those that miss nothing, to tell them the new commit index.
    fn broadcast_append(&mut self, core: &mut Core, send_if_empty: bool) {
        for (&id, pr) in self.progress.iter_mut() {
            send_appends(core, id, pr, send_if_empty);
        }
    }

    fn broadcast_heartbeat(&mut self, core: &mut Core) {
        let committed = core.log.committed();
        for (&id, pr) in self.progress.iter_mut() {
            let commit = committed.min(pr.match_index());
            pr.commit_sent = pr.commit_sent.max(commit);
            core.send(id, MessageBody::Heartbeat(Heartbeat { commit, round: self.reads.round() }));
        }
    }
}

/// Sends a follower appends: one probe in Probe state, or, in Replicate,
/// messages until it has everything or the in-flight window is full.
fn send_appends(core: &mut Core, to: NodeId, pr: &mut Progress, send_if_empty: bool) {
    let mut send_if_empty = send_if_empty;
    while !pr.is_paused() {
        let prev_log_index = pr.next_index() - 1;
        let Some(prev_log_term) = core.log.term(prev_log_index) else {
            // The entries this follower needs were compacted away: send the
            // snapshot instead.
            if let Some(snapshot) = &core.snapshot {
                pr.become_snapshot(snapshot.meta.last.index);
                pr.snapshot_offset = 0;
                send_snapshot_chunk(core, to, pr);
            }
            return;
        };
        if pr.next_index() > core.log.last_index() && !send_if_empty {
            return; // nothing new for this follower
        }
        let entries = core.log.entries_from(
            pr.next_index(),
            core.config.max_entries_per_msg,
            core.config.max_bytes_per_msg,
        );
        if entries.is_empty() && !send_if_empty {
            return;
        }
        send_if_empty = false;
        match (pr.state(), entries.last()) {
            (ProgressState::Replicate, Some(last)) => {
                pr.optimistic_update(last.index);
                pr.inflights.add(last.index);
            }
            (ProgressState::Probe, _) => pr.probe_sent = true,
            _ => {}
        }
        let more = pr.state() == ProgressState::Replicate && !entries.is_empty();
        let leader_commit = core.log.committed();
        pr.commit_sent = pr.commit_sent.max(leader_commit);
        core.send(
            to,
            MessageBody::AppendEntries(AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            }),
        );
        if !more {
            return;
        }
    }
}

/// Sends the chunk of the snapshot that starts at the follower's
/// acknowledged offset; if the leader has taken a newer snapshot since, starts
/// over with that one.
fn send_snapshot_chunk(core: &mut Core, to: NodeId, pr: &mut Progress) {
    let ProgressState::Snapshot { pending_index } = pr.state() else { return };
    let Some(snapshot) = &core.snapshot else { return };
    if snapshot.meta.last.index != pending_index {
        pr.become_probe();
        send_appends(core, to, pr, true);
        return;
    }
    let chunk = crate::snapshot_transfer::chunk(
        snapshot,
        core.snapshot_checksum,
        pr.snapshot_offset,
        core.config.snapshot_chunk_bytes,
    );
    core.send(to, MessageBody::InstallSnapshot(Box::new(chunk)));
}

/// Whether a learner may be promoted: within the configured lag of the
/// leader's log, having answered for the configured number of rounds.
pub(crate) fn caught_up(core: &Core, pr: &Progress) -> bool {
    pr.match_index().saturating_add(core.config.learner_catch_up_lag) >= core.log.last_index()
        && pr.caught_up_rounds >= core.config.learner_catch_up_rounds
}
