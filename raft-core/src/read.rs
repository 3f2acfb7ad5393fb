//! Linearizable reads without writing to the log (thesis section 6.4).
//!
//! **ReadIndex.** A read is registered at the leader's current commit index.
//! The leader then confirms that it still leads: reads registered since the
//! last round join the next *read round*, whose number rides on the next
//! heartbeat; once a quorum has answered a heartbeat of that round (or a later
//! one), no other leader can have committed anything the read would miss, so
//! it is released as a [`ReadState`]. The caller serves it once its state
//! machine has applied `index`. Concurrent reads share a round: one heartbeat
//! exchange confirms them all. A new leader holds reads back until it has
//! committed an entry of its own term, since until then its commit index may
//! lag what was committed before it.
//!
//! **Follower reads.** A follower asks its leader for a read index and serves
//! the read itself once it has applied that far.
//!
//! **Lease reads** (opt-in, [`crate::Config::lease_reads`]). A follower
//! that heard from a leader refuses to vote for anyone else while fewer than
//! `election_timeout_min` of its ticks have passed since (leader stickiness,
//! counted by `ticks_since_leader`, whatever happens to its term meanwhile):
//! that is its *promise*. A leader whose heartbeat, sent when its tick count
//! was `t`, was answered by a quorum knows that each of those followers made
//! the promise after `t`, so no other leader can be elected before the first
//! promise ends. It serves reads at once while its tick count is below
//! `t + L`, with the lease length
//!
//! ```text
//! L = election_timeout_min - 1 - max_clock_drift_ticks
//! ```
//!
//! [`crate::Config::validate`] refuses lease reads when `L < 1`, and when
//! `max_clock_drift_ticks` is 0 (no two real clocks run at exactly the same
//! rate). Without a valid lease a read falls back to ReadIndex.
//!
//! *The drift model.* A node's clock may run slower than another's by at
//! most `max_clock_drift_ticks` ticks per `election_timeout_min` ticks: for
//! the tick periods `P_i` of the nodes (the real time between two of their
//! ticks, taken over any election timeout),
//!
//! ```text
//! max P / min P <= election_timeout_min / (election_timeout_min - max_clock_drift_ticks)
//! ```
//!
//! *Why `L` is safe under it.* Write `min` for `election_timeout_min`, `d`
//! for the drift bound, `P_l` and `P_f` for the leader's and a follower's
//! tick periods, and `s` for the real time the heartbeat was sent.
//!
//! - The lease ends at the leader's `L`-th tick after the send: the count is
//!   `t` from its last tick, which came at or before `s`, so its `L`-th tick
//!   after the send comes at most `L * P_l` after `s`.
//! - The follower received the heartbeat at some `r >= s` and reset
//!   `ticks_since_leader` to 0. Its next tick may come right after `r`; its
//!   promise ends at its `min`-th tick, which is then `(min - 1) * P_f` after
//!   its first, so no earlier than `r + (min - 1) * P_f >= s + (min - 1) * P_f`.
//!   (Tick quantization costs one whole tick on each side: the leader's
//!   count may have just advanced before the send, the follower's may
//!   advance just after the receipt.)
//! - So the lease ends first if `L * P_l <= (min - 1) * P_f`, that is if
//!   `L <= (min - 1) * P_f / P_l`. Under the drift model `P_f / P_l >= (min - d) / min`,
//!   and `(min - 1)(min - d) / min = min - 1 - d + d / min >= min - 1 - d = L`.
//!
//! Before this bound the lease was `min - d`: with `d = 0` it outlived the
//! promise by up to a tick at equal clock rates, and with `d = 1` a leader
//! clock slower than a follower's by any amount could be enough (9 leader
//! ticks against 9 follower periods), far within the documented bound. The
//! other parts of the argument, checked in the code: the leader records `t`
//! when it starts a read round, in
//! [`crate::RawNode::ready`], before the caller can send the heartbeat (a
//! later send only shortens the lease in real time); a follower resets
//! `ticks_since_leader` on every message of its leader before it answers; a
//! restarted node with leases on keeps the promise it may have made before
//! it crashed (it refuses votes for `min` ticks from its start); a
//! follower refuses votes within its promise even in a term it adopted
//! meanwhile (from a stray reply of a newer term), not only requests of
//! newer terms; a node
//! votes for itself only when its election timer fires, which cannot happen
//! within its promise (the timer is reset whenever `ticks_since_leader` is,
//! and fires after at least `min` ticks), or when its caller forces it with
//! [`crate::RawNode::campaign`], which voids the lease (documented there);
//! and a leader with check-quorum votes for nobody. A transfer of leadership
//! ends the lease first, since TimeoutNow releases the followers' promise.
//!
//! *What the caller must provide.* The core trusts its caller's ticks. A
//! caller that stalls (a paused process, a long garbage collection, a
//! suspended VM) must, before it gives the node any other input, deliver the
//! ticks it missed as measured by a monotonic clock; otherwise the stalled
//! leader's clock has run arbitrarily slow and its lease is not safe.
//!
//! Invariant: rounds are numbered from 1 and strictly increase; every read in
//! `in_rounds` belongs to a round at most `round`.

use crate::mutation::{mutated, Mutation};
use crate::protocol::Core;
use crate::{Index, MessageBody, NodeId, ReadState};
use std::collections::{BTreeMap, VecDeque};

/// A read waiting for confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingRead {
    ctx: u64,
    /// The node that asked: this one, or a follower.
    origin: NodeId,
    index: Index,
}

/// The leader's reads waiting to be confirmed, and its lease.
#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// The latest read round started.
    round: u64,
    /// Reads registered since `round` started.
    unassigned: Vec<PendingRead>,
    /// Reads waiting for a quorum to answer their round.
    in_rounds: VecDeque<(u64, PendingRead)>,
    /// Reads made before this leader committed an entry of its term.
    before_commit: Vec<(u64, NodeId, bool)>,
    /// The latest round each follower has answered.
    answered: BTreeMap<NodeId, u64>,
    /// When each round's first heartbeat went out, in ticks, for the lease.
    sent_at: VecDeque<(u64, u64)>,
    /// Lease reads may be served until this tick (exclusive).
    lease_until: u64,
}

impl ReadQueue {
    /// Whether reads wait for a round to start.
    pub(crate) fn has_unassigned(&self) -> bool {
        !self.unassigned.is_empty()
    }

    /// Gives up the lease (a leadership transfer may elect another leader at once).
    pub(crate) fn end_lease(&mut self) {
        self.lease_until = 0;
        self.sent_at.clear();
    }

    /// The round heartbeats carry now.
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    /// Registers a read from `origin` (this node or a follower).
    /// `own_term_committed` says whether this leader has committed an entry of
    /// its term yet.
    pub(crate) fn register(
        &mut self,
        core: &mut Core,
        ctx: u64,
        origin: NodeId,
        lease: bool,
        own_term_committed: bool,
    ) {
        if !own_term_committed {
            self.before_commit.push((ctx, origin, lease));
            return;
        }
        let index = core.log.committed();
        let unconfirmed = mutated(Mutation::ReadWithoutQuorum);
        if unconfirmed || (lease && core.config.lease_reads && core.ticks < self.lease_until) {
            respond(core, PendingRead { ctx, origin, index });
            return;
        }
        self.unassigned.push(PendingRead { ctx, origin, index });
    }

    /// Registers the reads held back until this leader committed an entry of its term.
    pub(crate) fn release_held(&mut self, core: &mut Core) {
        for (ctx, origin, lease) in std::mem::take(&mut self.before_commit) {
            self.register(core, ctx, origin, lease, true);
        }
    }

    /// Starts a new round if reads are waiting for one. Returns whether it did:
    /// the caller then sends heartbeats carrying [`ReadQueue::round`].
    pub(crate) fn start_round(&mut self, core: &Core) -> bool {
        if self.unassigned.is_empty() {
            return false;
        }
        self.round += 1;
        let round = self.round;
        self.in_rounds.extend(self.unassigned.drain(..).map(|read| (round, read)));
        self.sent_at.push_back((round, core.ticks));
        true
    }

    /// Records a follower's answer to a heartbeat of `round` and releases
    /// every read a quorum has now confirmed.
    pub(crate) fn on_answer(&mut self, core: &mut Core, from: NodeId, round: u64) {
        let answered = self.answered.entry(from).or_insert(0);
        *answered = (*answered).max(round.min(self.round));
        self.confirm(core);
    }

    /// Releases the reads of every round a quorum has answered, and extends
    /// the lease from the latest such round's sending time.
    pub(crate) fn confirm(&mut self, core: &mut Core) {
        let confirmed = core.quorum.committed_index(|id| {
            if id == core.id {
                Some(self.round)
            } else {
                Some(self.answered.get(&id).copied().unwrap_or(0))
            }
        });
        while let Some(&(round, read)) = self.in_rounds.front() {
            if round > confirmed {
                break;
            }
            self.in_rounds.pop_front();
            respond(core, read);
        }
        while let Some(&(round, sent)) = self.sent_at.front() {
            if round > confirmed {
                break;
            }
            self.sent_at.pop_front();
            self.lease_until = self.lease_until.max(sent.saturating_add(lease_ticks(&core.config)));
        }
    }
}

/// The lease's length `L`, in the leader's ticks from the sending of a
/// confirmed heartbeat (see the module documentation for why it is safe).
fn lease_ticks(config: &crate::Config) -> u64 {
    let promise = config.election_timeout_min.saturating_sub(1);
    if mutated(Mutation::LeaseOneTickTooLong) {
        return config.election_timeout_min.saturating_sub(config.max_clock_drift_ticks);
    }
    promise.saturating_sub(config.max_clock_drift_ticks)
}

/// Hands a confirmed read to whoever asked.
fn respond(core: &mut Core, read: PendingRead) {
    let state = ReadState { ctx: read.ctx, index: read.index };
    if read.origin == core.id {
        core.outbox.read_ready(state);
    } else {
        core.send(read.origin, MessageBody::ReadIndexResponse(state));
    }
}
