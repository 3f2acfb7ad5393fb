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
//! **Lease reads** (opt-in, [`crate::Config::lease_reads`]). Followers that
//! answered a heartbeat ignore vote requests for `election_timeout_min` ticks
//! from when they heard it (leader stickiness), so for that long no other
//! leader can be elected. A leader whose heartbeat, sent at tick `t`, was
//! answered by a quorum may serve reads at once until tick
//! `t + election_timeout_min - max_clock_drift_ticks`. This assumes that no
//! node's clock runs faster than another's by more than `max_clock_drift_ticks`
//! over an election timeout, and that check-quorum is on; a violated bound can
//! return stale data. Without a valid lease the read falls back to ReadIndex.
//!
//! Invariant: rounds are numbered from 1 and strictly increase; every read in
//! `in_rounds` belongs to a round at most `round`.

use crate::mutation::{mutated, Mutation};
use crate::node::Core;
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
            let expires =
                (sent + core.config.election_timeout_min).saturating_sub(core.config.max_clock_drift_ticks);
            self.lease_until = self.lease_until.max(expires);
        }
    }
}

/// Hands a confirmed read to whoever asked.
fn respond(core: &mut Core, read: PendingRead) {
    let state = ReadState { ctx: read.ctx, index: read.index };
    if read.origin == core.id {
        core.read_states.push(state);
    } else {
        core.send(read.origin, MessageBody::ReadIndexResponse(state));
    }
}
