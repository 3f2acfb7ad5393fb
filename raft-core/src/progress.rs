//! Per-follower replication progress, as the leader tracks it.
//!
//! This module owns the leader's view of one follower: how much of the log
//! it is known to hold, what to send it next, and how fast. It decides
//! nothing by itself; the leader feeds it responses and asks whether it may
//! send.
//!
//! Invariants:
//! - `match_index < next_index`, i.e. `next_index` lies in
//!   `match_index + 1 ..= last_index + 1`. Every transition preserves this,
//!   which is why those two fields are only reachable through methods.
//! - [`Inflights`] never holds more than its capacity.
//!
//! Responses can arrive late, duplicated or reordered, so every update rule
//! first checks whether the response is stale and ignores it if so. Indexes
//! reported by peers may be arbitrary, so arithmetic on them saturates.

use std::collections::VecDeque;

use crate::Index;

/// A bounded FIFO of the last log index of each AppendEntries in flight.
///
/// Bounding it caps how far ahead of the follower's acknowledgements the
/// leader may run in [`ProgressState::Replicate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflights {
    // Grows lazily rather than reserving `cap` up front, so a huge configured
    // capacity costs nothing until it is actually used.
    buf: VecDeque<Index>,
    cap: usize,
}

impl Inflights {
    /// An empty window holding at most `cap` messages. A `cap` of 0 is
    /// treated as 1, since a window that is always full would stall the
    /// follower forever.
    pub fn new(cap: usize) -> Self {
        Self { buf: VecDeque::new(), cap: cap.max(1) }
    }

    /// Records a message whose last entry is `last_index`. Messages must be
    /// added in ascending order of `last_index`, and only when not full.
    /// Returns false, and records nothing, if the window is already full.
    pub fn add(&mut self, last_index: Index) -> bool {
        debug_assert!(!self.is_full(), "sent to a follower with a full window");
        if self.is_full() {
            return false;
        }
        self.buf.push_back(last_index);
        true
    }

    /// Frees every message whose last index is at most `index`, because the
    /// follower has acknowledged up to there.
    ///
    /// Stops at the first larger entry: if entries were ever out of order,
    /// this over-counts what is in flight, which only slows sending down.
    pub fn free_to(&mut self, index: Index) {
        while self.buf.front().is_some_and(|&last| last <= index) {
            self.buf.pop_front();
        }
    }

    /// Frees the oldest message, so that a heartbeat response can unblock a
    /// full window even without a matching append response.
    pub fn free_first_one(&mut self) {
        self.buf.pop_front();
    }

    /// Whether no more messages may be sent.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.cap
    }

    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets every message in flight.
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// Maximum number of messages in flight.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

/// How the leader is currently replicating to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log diverges, so it
    /// sends one append at a time and waits for the answer.
    Probe,
    /// The follower is known to match up to `match_index`, so the leader
    /// streams appends optimistically, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot, which is being sent; appends wait.
    Snapshot {
        /// Last log index covered by the snapshot being sent.
        pending_index: Index,
    },
}

/// The leader's view of one follower's log.
///
/// Invariant: `match_index < next_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    match_index: Index,
    next_index: Index,
    state: ProgressState,
    /// In [`ProgressState::Probe`]: a probe is in flight, so sending pauses
    /// until its response or a heartbeat response. Set by the leader when it
    /// sends a probe.
    pub probe_sent: bool,
    /// Appends in flight in [`ProgressState::Replicate`]. The leader adds to
    /// it after each send.
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round. Starts true so that a
    /// newly added follower is not counted as dead before it could answer.
    pub recent_active: bool,
    /// Heartbeat responses received in [`ProgressState::Replicate`] while
    /// appends were outstanding and `match_index` did not move. Appends can
    /// be lost, and in Replicate nothing else would notice, so the leader
    /// falls back to Probe once this reaches a threshold.
    pub stalled_heartbeats: u32,
    /// The highest commit index sent to the follower. A follower that was
    /// paused when the commit index last advanced is told on its next ack.
    pub commit_sent: Index,
    /// Consecutive heartbeat rounds in which the follower answered and was
    /// within the configured lag of the leader's log: what a learner needs
    /// for promotion. A peer that never answers never counts, however short
    /// the log.
    pub caught_up_rounds: u32,
    /// The follower answered since the last catch-up round.
    pub answered_this_round: bool,
    /// In [`ProgressState::Snapshot`]: the snapshot bytes the follower has
    /// acknowledged; sending resumes from here.
    pub snapshot_offset: u64,
}

impl Progress {
    /// A follower in Probe state that is known to hold nothing, to which
    /// the leader will first send from `next_index` (0 is treated as 1).
    pub fn new(next_index: Index, max_inflight: usize) -> Self {
        Self {
            match_index: 0,
            next_index: next_index.max(1),
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: true,
            stalled_heartbeats: 0,
            commit_sent: 0,
            caught_up_rounds: 0,
            answered_this_round: false,
            snapshot_offset: 0,
        }
    }

    /// Highest index known to be replicated on the follower.
    pub fn match_index(&self) -> Index {
        self.match_index
    }

    /// Index of the next entry to send.
    pub fn next_index(&self) -> Index {
        self.next_index
    }

    /// Current replication state.
    pub fn state(&self) -> ProgressState {
        self.state
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.stalled_heartbeats = 0;
        self.inflights.reset();
    }

    /// Falls back to probing from just after the last known match.
    ///
    /// After a snapshot, the follower holds at least the snapshot, so
    /// probing resumes after it rather than re-sending what it covered.
    pub fn become_probe(&mut self) {
        let after_match = self.match_index.saturating_add(1);
        self.next_index = match self.state {
            ProgressState::Snapshot { pending_index } => after_match.max(pending_index.saturating_add(1)),
            _ => after_match,
        };
        self.reset_state(ProgressState::Probe);
    }

    /// Starts streaming appends from just after the last known match.
    pub fn become_replicate(&mut self) {
        self.next_index = self.match_index.saturating_add(1);
        self.reset_state(ProgressState::Replicate);
    }

    /// Pauses appends while a snapshot up to `snapshot_index` is sent.
    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.reset_state(ProgressState::Snapshot { pending_index: snapshot_index });
    }

    /// Handles a successful append response acknowledging `n`. Returns
    /// whether `match_index` advanced; a stale response leaves it alone.
    ///
    /// `n == Index::MAX` is ignored: no log can reach it, and accepting it
    /// would leave no room for `next_index` above `match_index`.
    pub fn maybe_update(&mut self, n: Index) -> bool {
        if n == Index::MAX {
            return false;
        }
        let updated = n > self.match_index;
        if updated {
            self.match_index = n;
            self.stalled_heartbeats = 0;
        }
        self.next_index = self.next_index.max(n.saturating_add(1));
        self.probe_sent = false;
        self.inflights.free_to(n);
        updated
    }

    /// Handles a rejected append. `rejected` is the `prev_log_index` the
    /// follower refused and `match_hint` the leader's guess of the last
    /// index that may still match. Returns false if the rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: Index, match_hint: Index) -> bool {
        if self.state == ProgressState::Replicate {
            // Everything up to match_index is known to be there, so a
            // rejection at or below it can only be an old, reordered one.
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index.saturating_add(1);
            return true;
        }
        // Only one probe is outstanding, at next_index - 1; a rejection of
        // any other index answers an earlier probe.
        if self.next_index.checked_sub(1) != Some(rejected) {
            return false;
        }
        self.next_index = rejected.min(match_hint.saturating_add(1)).max(self.match_index.saturating_add(1));
        self.probe_sent = false;
        true
    }

    /// Moves `next_index` past entries just sent up to `last_sent`, without
    /// waiting for the acknowledgement. Used in Replicate.
    ///
    /// Never moves `next_index` to or below `match_index`.
    pub fn optimistic_update(&mut self, last_sent: Index) {
        debug_assert!(last_sent >= self.match_index, "sent below the match");
        self.next_index = last_sent.saturating_add(1).max(self.match_index.saturating_add(1));
    }

    /// Whether the leader must hold off sending appends to this follower.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn progress(match_index: Index, next_index: Index, state: ProgressState) -> Progress {
        let mut pr = Progress::new(next_index, 4);
        pr.match_index = match_index;
        pr.state = state;
        pr
    }

    #[test]
    fn new_starts_probing() {
        let pr = Progress::new(5, 3);
        assert_eq!((pr.match_index(), pr.next_index()), (0, 5));
        assert_eq!(pr.state(), ProgressState::Probe);
        assert!(!pr.is_paused());
        assert!(pr.recent_active);
        assert_eq!(pr.inflights.capacity(), 3);
        assert_eq!(Progress::new(0, 0).next_index(), 1);
        assert_eq!(Inflights::new(0).capacity(), 1);
    }

    #[test]
    fn become_probe_resumes_after_match() {
        let mut pr = progress(3, 8, ProgressState::Replicate);
        pr.inflights.add(7);
        pr.stalled_heartbeats = 2;
        pr.become_probe();
        assert_eq!(pr.state(), ProgressState::Probe);
        assert_eq!(pr.next_index(), 4);
        assert!(pr.inflights.is_empty());
        assert_eq!(pr.stalled_heartbeats, 0);
    }

    #[test]
    fn become_probe_after_snapshot_skips_what_it_covered() {
        let mut pr = progress(3, 4, ProgressState::Snapshot { pending_index: 10 });
        pr.become_probe();
        assert_eq!(pr.next_index(), 11);

        // The follower already got further than the snapshot.
        let mut pr = progress(12, 13, ProgressState::Snapshot { pending_index: 10 });
        pr.become_probe();
        assert_eq!(pr.next_index(), 13);
    }

    #[test]
    fn become_replicate_and_snapshot() {
        let mut pr = progress(3, 8, ProgressState::Probe);
        pr.probe_sent = true;
        pr.become_replicate();
        assert_eq!((pr.state(), pr.next_index()), (ProgressState::Replicate, 4));
        assert!(!pr.is_paused());

        pr.inflights.add(5);
        pr.become_snapshot(20);
        assert_eq!(pr.state(), ProgressState::Snapshot { pending_index: 20 });
        assert!(pr.inflights.is_empty());
        assert!(pr.is_paused());
    }

    #[test]
    fn maybe_update_advances_and_ignores_stale() {
        let mut pr = progress(3, 6, ProgressState::Replicate);
        pr.inflights.add(4);
        pr.inflights.add(5);
        pr.stalled_heartbeats = 2;
        assert!(pr.maybe_update(4));
        assert_eq!((pr.match_index(), pr.next_index()), (4, 6));
        assert_eq!(pr.inflights.len(), 1);
        assert_eq!(pr.stalled_heartbeats, 0);

        // Stale: match and next stay put.
        assert!(!pr.maybe_update(2));
        assert_eq!((pr.match_index(), pr.next_index()), (4, 6));

        // Ahead of what we thought we sent: next follows.
        assert!(pr.maybe_update(9));
        assert_eq!((pr.match_index(), pr.next_index()), (9, 10));
        assert!(pr.inflights.is_empty());
    }

    #[test]
    fn maybe_update_unpauses_probe() {
        let mut pr = progress(3, 4, ProgressState::Probe);
        pr.probe_sent = true;
        assert!(pr.is_paused());
        assert!(!pr.maybe_update(3));
        assert!(!pr.is_paused());
    }

    #[test]
    fn maybe_update_rejects_max_index() {
        let mut pr = progress(3, 4, ProgressState::Replicate);
        assert!(!pr.maybe_update(Index::MAX));
        assert_eq!((pr.match_index(), pr.next_index()), (3, 4));
        assert!(pr.maybe_update(Index::MAX - 1));
        assert_eq!(pr.next_index(), Index::MAX);
    }

    #[test]
    fn maybe_decr_to_in_replicate() {
        let mut pr = progress(5, 10, ProgressState::Replicate);
        // At or below the match: stale.
        assert!(!pr.maybe_decr_to(5, 5));
        assert!(!pr.maybe_decr_to(3, 0));
        assert_eq!(pr.next_index(), 10);
        // Above the match: rewind to just after it, regardless of the hint.
        assert!(pr.maybe_decr_to(8, 7));
        assert_eq!(pr.next_index(), 6);
    }

    #[test]
    fn maybe_decr_to_in_probe() {
        let mut pr = progress(0, 10, ProgressState::Probe);
        pr.probe_sent = true;
        // Not the probe we have outstanding: stale.
        assert!(!pr.maybe_decr_to(5, 2));
        assert!(!pr.maybe_decr_to(10, 2));
        assert_eq!(pr.next_index(), 10);
        assert!(pr.is_paused());

        // The hint lets us skip straight past the divergence.
        assert!(pr.maybe_decr_to(9, 2));
        assert_eq!(pr.next_index(), 3);
        assert!(!pr.is_paused());

        // A hint above the rejected index does not move next forward.
        assert!(pr.maybe_decr_to(2, 50));
        assert_eq!(pr.next_index(), 2);
    }

    #[test]
    fn maybe_decr_to_never_goes_below_match() {
        let mut pr = progress(4, 8, ProgressState::Probe);
        assert!(pr.maybe_decr_to(7, 0));
        assert_eq!(pr.next_index(), 5);
        // Hints near Index::MAX must not overflow.
        let mut pr = progress(0, 3, ProgressState::Probe);
        assert!(pr.maybe_decr_to(2, Index::MAX));
        assert_eq!(pr.next_index(), 2);
    }

    #[test]
    fn maybe_decr_to_in_snapshot_uses_probe_rules() {
        let mut pr = progress(0, 6, ProgressState::Snapshot { pending_index: 9 });
        assert!(!pr.maybe_decr_to(2, 1));
        assert!(pr.maybe_decr_to(5, 1));
        assert_eq!(pr.next_index(), 2);
    }

    #[test]
    fn optimistic_update_moves_next() {
        let mut pr = progress(3, 4, ProgressState::Replicate);
        pr.optimistic_update(9);
        assert_eq!(pr.next_index(), 10);
        pr.optimistic_update(Index::MAX);
        assert_eq!(pr.next_index(), Index::MAX);
    }

    #[test]
    fn paused_in_replicate_when_window_full() {
        let mut pr = progress(0, 1, ProgressState::Replicate);
        for i in 1..=4 {
            assert!(!pr.is_paused());
            assert!(pr.inflights.add(i));
        }
        assert!(pr.is_paused());
        pr.inflights.free_first_one();
        assert!(!pr.is_paused());
    }

    #[test]
    fn inflights_free_to() {
        let mut inf = Inflights::new(5);
        for i in [2, 4, 6, 8] {
            assert!(inf.add(i));
        }
        inf.free_to(1);
        assert_eq!(inf.len(), 4);
        inf.free_to(5);
        assert_eq!(inf.len(), 2);
        inf.free_to(Index::MAX);
        assert!(inf.is_empty());
        inf.free_first_one();
        assert!(inf.is_empty());
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "full window"))]
    fn inflights_add_when_full_is_refused() {
        let mut inf = Inflights::new(1);
        assert!(inf.add(1));
        assert!(!inf.add(2));
        assert_eq!(inf.len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Update(Index),
        Decr(Index, Index),
        Probe,
        Replicate,
        Snapshot(Index),
        Optimistic(Index),
        Send,
        HeartbeatResponse,
    }

    fn index() -> impl Strategy<Value = Index> {
        prop_oneof![8 => 0..40u64, 1 => Just(Index::MAX), 1 => Just(Index::MAX - 1)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            index().prop_map(Op::Update),
            (index(), index()).prop_map(|(r, h)| Op::Decr(r, h)),
            // Decrements that hit the outstanding probe, not just stale ones.
            index().prop_map(|h| Op::Decr(Index::MAX, h)),
            Just(Op::Probe),
            Just(Op::Replicate),
            index().prop_map(Op::Snapshot),
            (0..5u64).prop_map(Op::Optimistic),
            Just(Op::Send),
            Just(Op::HeartbeatResponse),
        ]
    }

    proptest! {
        #[test]
        fn match_stays_below_next(
            start in 1..20u64, ops in prop::collection::vec(op(), 0..60),
        ) {
            let mut pr = Progress::new(start, 3);
            for op in ops {
                match op {
                    Op::Update(n) => { pr.maybe_update(n); }
                    // Index::MAX stands for "the probe currently outstanding".
                    Op::Decr(Index::MAX, hint) => {
                        pr.maybe_decr_to(pr.next_index() - 1, hint);
                    }
                    Op::Decr(rejected, hint) => { pr.maybe_decr_to(rejected, hint); }
                    Op::Probe => pr.become_probe(),
                    Op::Replicate => pr.become_replicate(),
                    Op::Snapshot(i) => pr.become_snapshot(i),
                    Op::Optimistic(extra) => {
                        pr.optimistic_update((pr.next_index() - 1).saturating_add(extra));
                    }
                    Op::Send => {
                        if !pr.is_paused() {
                            if pr.state() == ProgressState::Probe {
                                pr.probe_sent = true;
                            } else {
                                pr.inflights.add(pr.next_index());
                            }
                        }
                    }
                    Op::HeartbeatResponse => pr.inflights.free_first_one(),
                }
                prop_assert!(
                    pr.match_index() < pr.next_index(),
                    "match {} next {} after {:?}", pr.match_index(), pr.next_index(), pr
                );
                prop_assert!(pr.inflights.len() <= pr.inflights.capacity());
            }
        }

        #[test]
        fn inflights_match_vec_model(
            cap in 1..6usize,
            ops in prop::collection::vec((0..3u8, 0..10u64), 0..80),
        ) {
            let mut inf = Inflights::new(cap);
            let mut model: Vec<Index> = Vec::new();
            let mut last = 0;
            for (kind, arg) in ops {
                match kind {
                    0 if model.len() < cap => {
                        last += arg;
                        prop_assert!(inf.add(last));
                        model.push(last);
                    }
                    0 => {}
                    1 => {
                        let to = last.saturating_sub(arg);
                        inf.free_to(to);
                        model.retain(|&i| i > to);
                    }
                    _ => {
                        inf.free_first_one();
                        if !model.is_empty() {
                            model.remove(0);
                        }
                    }
                }
                prop_assert_eq!(inf.buf.iter().copied().collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(inf.len(), model.len());
                prop_assert_eq!(inf.is_empty(), model.is_empty());
                prop_assert_eq!(inf.is_full(), model.len() == cap);
            }
        }
    }
}
