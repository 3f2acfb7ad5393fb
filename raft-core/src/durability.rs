//! The durability gate: persist before you send what depends on it.
//!
//! Raft's safety rests on promises a node makes on the wire: a vote grant
//! promises not to vote for anyone else in that term, an acknowledgement of
//! entries promises they survive a crash. A promise sent before the state it
//! rests on is durable can be forgotten in a crash and broken after restart.
//! This module is the one place that decides when a message may leave, and
//! the one place that learns when writes became durable.
//!
//! # What the gate guarantees
//!
//! A message that vouches for state ([`vouches_for_durable_state`]: a vote
//! request or grant, an acknowledgement of appended entries or of a
//! snapshot) leaves only in [`crate::Ready::persisted_messages`], that is,
//! only once every write handed out in that `Ready` and before it is
//! durable; by then the write it depends on, issued no later, is too. Every
//! other message waits the same way while the current term or vote is not
//! yet durable (a message carries the term, and a node must never speak in a
//! term it may forget); once the term is durable they go out at once in
//! [`crate::Ready::messages`], so a slow disk does not silence a leader toward
//! its followers, nor a follower's heartbeat answers toward its leader.
//!
//! In the other direction, [`DurabilityGate::persisted`] tells the log how
//! far it is durable, one pending write at a time (`RaftLog::persisted_to`), which is what a leader's own vote in the commit quorum and a
//! node's applying wait for. Two events rewrite what a pending write may
//! report:
//! - a truncation ([`DurabilityGate::log_truncated`]): a write issued before
//!   it can make durable at most the prefix the truncation kept; without
//!   this, entries that were replaced and then appended again could be
//!   reported durable while the write that removes the old ones is pending;
//! - a snapshot install ([`DurabilityGate::hold_for_snapshot`]): nothing
//!   after the snapshot may be applied before the state machine is restored
//!   from it, so writes in flight report nothing and the snapshot's own write
//!   reports, on their behalf, everything handed to storage before it.
//!
//! # What it cannot see
//!
//! - Whether the caller keeps its side: sends `persisted_messages` only after
//!   the write, completes writes in `Ready` order, and reports
//!   [`crate::RawNode::on_persisted`] truthfully. The gate trusts all three.
//! - Which write a held message depends on: it holds every vouching message
//!   until its whole `Ready` is durable, a coarser rule than needed (a
//!   message queued after the write it depends on was handed out still waits
//!   for the next `Ready`'s write too).
//! - A message's content: it classifies by kind, so a refusal to append
//!   (which promises nothing) waits like an acknowledgement.
//! - What the core never queues: the runtime's forwarded client requests
//!   ([`crate::runtime::Envelope::Forward`]) are no messages of the
//!   protocol's, and travel outside the gate.
//!
//! # Who asks the gate
//!
//! Every use of persist-before-send goes through one of these calls, so this
//! list is the whole rule's footprint:
//! - `Core::send_with_term` asks [`DurabilityGate::must_hold`] for every
//!   message the core queues, and puts it in the outbox's matching queue;
//! - `Candidate::outcome` (`election.rs`) asks
//!   [`DurabilityGate::hard_state_durable`]: a candidate whose own vote is a
//!   quorum (a single voter) leads only once that vote is durable;
//! - `RawNode::ready` opens each `Ready` ([`DurabilityGate::open_ready`]) and
//!   records its snapshot's and entries' writes ([`DurabilityGate::write_issued`]);
//! - `RawNode::on_persisted` reports them ([`DurabilityGate::persisted`]),
//!   which moves the log's durable index: what a leader counts for itself
//!   (`Leader::on_persisted`) and what may be applied
//!   (`RaftLog::take_applicable`, committed and durable here);
//! - the follower's `handle_append` ([`DurabilityGate::log_truncated`]) and
//!   `handle_install_snapshot` ([`DurabilityGate::hold_for_snapshot`]) lower
//!   what pending writes may report.

use crate::mutation::{mutated, Mutation};
use crate::{Index, LogId, MessageBody, RaftLog};
use std::collections::VecDeque;

/// Whether a message of this kind vouches for the sender's durable state,
/// and so may leave only once the writes before it are durable.
///
/// The match is exhaustive on purpose: a new kind of message must be
/// classified here before the crate compiles.
pub(crate) fn vouches_for_durable_state(body: &MessageBody) -> bool {
    match body {
        // "I voted for myself in this term": a candidate that forgets its
        // own vote could grant it to another in the same term.
        MessageBody::Vote(_) => true,
        // A grant is a promise for the whole term.
        MessageBody::VoteResponse(_) => true,
        // Promises nothing, but judges the candidate against our log,
        // entries not yet durable included: held with the other answers
        // about our log, so that none runs ahead of what survives a crash.
        MessageBody::PreVoteResponse(_) => true,
        // "These entries are on my disk": the leader counts them toward commit.
        MessageBody::AppendEntriesResponse(_) => true,
        // "This snapshot is on my disk": the leader moves past it.
        MessageBody::InstallSnapshotResponse(_) => true,
        // A pre-vote changes nobody's state and promises nothing.
        MessageBody::PreVote(_) => false,
        // The leader's own messages vouch for its log only as far as the
        // followers' acknowledgements do, and it counts itself only once
        // durable (see `DurabilityGate::persisted`).
        MessageBody::AppendEntries(_)
        | MessageBody::InstallSnapshot(_)
        | MessageBody::Heartbeat(_)
        | MessageBody::TimeoutNow
        | MessageBody::ReadIndexResponse(_) => false,
        // Liveness and reads: they report nothing about the sender's log or vote.
        MessageBody::HeartbeatResponse(_) | MessageBody::ReadIndex(_) => false,
    }
}

/// A write handed out in a `Ready` that is not yet reported durable.
#[derive(Debug, Clone, Copy)]
struct PendingWrite {
    /// The `Ready` that carried it.
    ready: u64,
    /// The last entry it makes durable, as far as is known now (lowered by
    /// truncations and snapshot installs).
    last: LogId,
}

/// Bookkeeping for the persist-before-send rule (see the module docs for
/// what it guarantees).
///
/// Invariants:
/// - `persisted_ready < next_ready`, and `last_hard_state_ready <
///   next_ready`: only a `Ready` handed out can be durable or carry the
///   hard state;
/// - `pending_writes` is ordered by `Ready` number, and every number in it
///   lies in `persisted_ready + 1 .. next_ready`: a write leaves the queue
///   exactly when its `Ready` is reported durable;
/// - the term and vote are durable exactly when they are not dirty and the
///   `Ready` that last carried them is durable
///   ([`DurabilityGate::hard_state_durable`]).
#[derive(Debug)]
pub(crate) struct DurabilityGate {
    /// The number the next `Ready` gets.
    next_ready: u64,
    /// Every `Ready` up to this number is durable.
    persisted_ready: u64,
    /// The term or vote changed since the last `Ready`.
    hard_state_dirty: bool,
    /// The last `Ready` that carried a hard state.
    last_hard_state_ready: u64,
    /// Writes of entries (or of a snapshot) not yet durable, oldest first.
    pending_writes: VecDeque<PendingWrite>,
}

impl DurabilityGate {
    /// The gate of a node that starts from storage: everything is durable.
    pub(crate) fn new() -> Self {
        Self {
            next_ready: 1,
            persisted_ready: 0,
            hard_state_dirty: false,
            last_hard_state_ready: 0,
            pending_writes: VecDeque::new(),
        }
    }

    /// Marks the term or vote as changed, to be persisted with the next `Ready`.
    pub(crate) fn hard_state_changed(&mut self) {
        self.hard_state_dirty = true;
    }

    /// Whether the term or vote changed since the last `Ready`.
    pub(crate) fn hard_state_dirty(&self) -> bool {
        self.hard_state_dirty
    }

    /// Whether the current term and vote are on disk.
    pub(crate) fn hard_state_durable(&self) -> bool {
        !self.hard_state_dirty && self.persisted_ready >= self.last_hard_state_ready
    }

    /// Whether a message with `body`, queued now, must wait for this
    /// `Ready`'s writes: when it vouches for durable state, or when the term
    /// it carries may not be durable yet.
    pub(crate) fn must_hold(&self, body: &MessageBody) -> bool {
        let vouches = vouches_for_durable_state(body)
            && !(mutated(Mutation::AckBeforePersist)
                && matches!(body, MessageBody::AppendEntriesResponse(_)));
        vouches || !self.hard_state_durable()
    }

    /// Opens the next `Ready`: returns its number, and whether it carries
    /// the hard state (which is then no longer dirty).
    pub(crate) fn open_ready(&mut self) -> (u64, bool) {
        let number = self.next_ready;
        self.next_ready += 1;
        let carries_hard_state = std::mem::replace(&mut self.hard_state_dirty, false);
        if carries_hard_state {
            self.last_hard_state_ready = number;
        }
        (number, carries_hard_state)
    }

    /// Records that `Ready` number `ready` (the one just opened) hands
    /// storage a write that makes the log durable up to `last`.
    pub(crate) fn write_issued(&mut self, ready: u64, last: LogId) {
        debug_assert!(ready > self.persisted_ready && ready < self.next_ready);
        debug_assert!(self.pending_writes.back().is_none_or(|w| w.ready <= ready));
        self.pending_writes.push_back(PendingWrite { ready, last });
    }

    /// The log was truncated from `index`: writes still in flight can make
    /// durable at most what precedes it (the entry `log` now holds there).
    pub(crate) fn log_truncated(&mut self, index: Index, log: &RaftLog) {
        let kept = index - 1;
        let kept = LogId::new(log.term(kept).unwrap_or_default(), kept);
        for write in self.pending_writes.iter_mut() {
            if write.last.index > kept.index {
                write.last = kept;
            }
        }
    }

    /// A snapshot is being installed: writes already in flight report
    /// nothing; the snapshot's own write (recorded when its `Ready` is
    /// opened) reports, on their behalf, every entry handed to storage
    /// before it, since writes complete in order.
    pub(crate) fn hold_for_snapshot(&mut self) {
        for write in self.pending_writes.iter_mut() {
            write.last = LogId::default();
        }
    }

    /// The writes of `Ready` number `number`, and of every earlier one, are
    /// durable: hands `made_durable` what each pending write of them made
    /// durable, oldest first. Returns false, changing nothing, for a number
    /// already reported or never handed out.
    pub(crate) fn persisted(&mut self, number: u64, mut made_durable: impl FnMut(LogId)) -> bool {
        if number <= self.persisted_ready || number >= self.next_ready {
            return false;
        }
        self.persisted_ready = number;
        while let Some(write) = self.pending_writes.front().copied() {
            if write.ready > number {
                break;
            }
            self.pending_writes.pop_front();
            made_durable(write.last);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, InstallSnapshot,
        InstallSnapshotResponse, ReadIndexRequest, ReadState, VoteRequest, VoteResponse,
    };

    /// One row per message kind: whether it vouches for durable state.
    #[test]
    fn which_messages_vouch_for_durable_state() {
        let vote = VoteRequest { last_log_index: 0, last_log_term: 0, leadership_transfer: false };
        let granted = VoteResponse { granted: true };
        let append =
            AppendEntries { prev_log_index: 0, prev_log_term: 0, entries: Vec::new(), leader_commit: 0 };
        let heartbeat = Heartbeat { commit: 0, round: 1 };
        let chunk = InstallSnapshot {
            meta: crate::SnapshotMeta::default(),
            offset: 0,
            data: bytes::Bytes::new(),
            done: true,
            total_len: 0,
            checksum: 0,
        };
        let installed = InstallSnapshotResponse { last: LogId::default(), next_offset: 0, installed: true };
        let rows: Vec<(MessageBody, bool)> = vec![
            (MessageBody::PreVote(vote), false),
            (MessageBody::PreVoteResponse(granted), true),
            (MessageBody::Vote(vote), true),
            (MessageBody::VoteResponse(granted), true),
            (MessageBody::AppendEntries(append), false),
            (MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index: 1 }), true),
            (MessageBody::Heartbeat(heartbeat), false),
            (MessageBody::HeartbeatResponse(HeartbeatResponse::default()), false),
            (MessageBody::TimeoutNow, false),
            (MessageBody::ReadIndex(ReadIndexRequest { ctx: 1, lease: false }), false),
            (MessageBody::ReadIndexResponse(ReadState { ctx: 1, index: 1 }), false),
            (MessageBody::InstallSnapshot(Box::new(chunk)), false),
            (MessageBody::InstallSnapshotResponse(installed), true),
        ];
        for (body, vouches) in rows {
            assert_eq!(vouches_for_durable_state(&body), vouches, "{}", body.kind());
        }
    }

    #[test]
    fn every_message_waits_while_the_term_is_not_durable() {
        let mut gate = DurabilityGate::new();
        let heartbeat = MessageBody::Heartbeat(Heartbeat { commit: 0, round: 1 });
        assert!(!gate.must_hold(&heartbeat));
        gate.hard_state_changed();
        assert!(gate.must_hold(&heartbeat), "dirty: not yet in any Ready");
        let (number, carries) = gate.open_ready();
        assert!(carries);
        assert!(gate.must_hold(&heartbeat), "handed out, not yet durable");
        assert!(gate.persisted(number, |_| {}));
        assert!(!gate.must_hold(&heartbeat));
        let ack = MessageBody::AppendEntriesResponse(AppendEntriesResponse::Success { match_index: 1 });
        assert!(gate.must_hold(&ack), "an acknowledgement always waits");
    }

    #[test]
    fn a_write_reports_at_most_what_a_later_truncation_or_snapshot_kept() {
        let mut gate = DurabilityGate::new();
        let (first, _) = gate.open_ready();
        gate.write_issued(first, LogId::new(1, 5));
        let (second, _) = gate.open_ready();
        gate.write_issued(second, LogId::new(1, 7));
        let log = RaftLog::restore(LogId::default(), crate::Membership::new([1], []), Vec::new())
            .expect("an empty log");
        gate.log_truncated(1, &log);
        let mut reported = Vec::new();
        assert!(gate.persisted(first, |last| reported.push(last)));
        assert_eq!(reported, [LogId::default()]);
        gate.hold_for_snapshot();
        assert!(gate.persisted(second, |last| reported.push(last)));
        assert_eq!(reported, [LogId::default(), LogId::default()]);
        assert!(!gate.persisted(second, |_| {}), "a number already reported changes nothing");
        assert!(!gate.persisted(second + 1, |_| {}), "a number never handed out changes nothing");
    }
}
