//! Quorum arithmetic: which log index a set of voters has committed and
//! whether an election has been decided.
//!
//! This module owns the voter sets only; it never sees messages or progress.
//! Callers pass closures that look a voter up in whatever state they keep,
//! which keeps the rules here pure and testable in isolation.
//!
//! Invariants:
//! - A voter set never contains duplicates (it is a `BTreeSet`), so counting
//!   members is counting distinct nodes.
//! - An empty [`MajorityConfig`] agrees to everything: it commits
//!   `Index::MAX` and wins every vote. That makes it the neutral element of
//!   [`JointConfig`], so a non-joint configuration is just a joint one whose
//!   outgoing half is empty, decided by the incoming half alone.

use std::collections::BTreeSet;

use crate::{Index, NodeId};

/// Voter sets up to this size are sorted on the stack; real clusters are
/// almost always this small, so `committed_index` does not allocate.
const STACK_VOTERS: usize = 7;

/// Outcome of counting votes in an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: the missing votes could still swing it either way.
    Pending,
    /// A majority can no longer be reached, whatever the missing votes say.
    Lost,
    /// A majority has granted the vote.
    Won,
}

/// A set of voters that decides by simple majority.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// Builds a configuration from the given voters; duplicates collapse.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self { voters: voters.into_iter().collect() }
    }

    /// The voters, in ascending order.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// Whether `id` is a voter.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The voters, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().copied()
    }

    /// Number of voters that make up a majority.
    pub fn majority(&self) -> usize {
        self.len() / 2 + 1
    }

    /// The largest index acknowledged by a majority of voters.
    ///
    /// A voter for which `match_index` returns `None` has acknowledged
    /// nothing and counts as 0. An empty configuration returns `Index::MAX`,
    /// so that it never holds back the other half of a [`JointConfig`].
    pub fn committed_index(&self, match_index: impl Fn(NodeId) -> Option<Index>) -> Index {
        let n = self.len();
        if n == 0 {
            return Index::MAX;
        }
        let mut stack = [0; STACK_VOTERS];
        let mut heap;
        let acked: &mut [Index] = if n <= STACK_VOTERS {
            &mut stack[..n]
        } else {
            heap = vec![0; n];
            &mut heap
        };
        for (slot, id) in acked.iter_mut().zip(self.iter()) {
            *slot = match_index(id).unwrap_or(0);
        }
        acked.sort_unstable_by(|a, b| b.cmp(a));
        // Sorted descending, the entry at n/2 is the (n/2+1)-th largest: that
        // voter and every one before it, a majority, have reached it.
        acked[n / 2]
    }

    /// Tallies an election. `vote` returns `Some(granted)` for voters that
    /// have answered and `None` for those that have not.
    ///
    /// An empty configuration wins, for the same reason it commits
    /// `Index::MAX`.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0, 0);
        for id in self.iter() {
            match vote(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let majority = self.majority();
        if granted >= majority {
            VoteResult::Won
        } else if granted + missing < majority {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

/// A configuration that may be in the middle of a membership change.
///
/// During a joint phase every decision needs a majority of both the incoming
/// and the outgoing voters, so neither old nor new members can act alone.
/// Outside a joint phase the outgoing half is empty and, being the neutral
/// element, leaves every decision to the incoming half.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct JointConfig {
    incoming: MajorityConfig,
    outgoing: MajorityConfig,
}

impl JointConfig {
    /// A non-joint configuration made of `incoming` alone.
    pub fn new(incoming: MajorityConfig) -> Self {
        Self { incoming, outgoing: MajorityConfig::default() }
    }

    /// A joint configuration; an empty `outgoing` makes it non-joint.
    pub fn joint(incoming: MajorityConfig, outgoing: MajorityConfig) -> Self {
        Self { incoming, outgoing }
    }

    /// The configuration being moved to (or the only one, if not joint).
    pub fn incoming(&self) -> &MajorityConfig {
        &self.incoming
    }

    /// The configuration being moved away from; empty if not joint.
    pub fn outgoing(&self) -> &MajorityConfig {
        &self.outgoing
    }

    /// Whether a membership change is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Every voter of either half, ascending and without duplicates.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.incoming.voters.union(&self.outgoing.voters).copied()
    }

    /// The largest index committed by both halves.
    ///
    /// Returns `Index::MAX` if both halves are empty; callers should never
    /// run with no voters at all.
    pub fn committed_index(&self, match_index: impl Fn(NodeId) -> Option<Index>) -> Index {
        let incoming = self.incoming.committed_index(&match_index);
        let outgoing = self.outgoing.committed_index(&match_index);
        incoming.min(outgoing)
    }

    /// Tallies an election, which must be won in both halves.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(&vote);
        let outgoing = self.outgoing.vote_result(&vote);
        match (incoming, outgoing) {
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn cfg(ids: &[NodeId]) -> MajorityConfig {
        MajorityConfig::new(ids.iter().copied())
    }

    fn lookup<T: Copy>(m: &BTreeMap<NodeId, T>) -> impl Fn(NodeId) -> Option<T> + '_ {
        move |id| m.get(&id).copied()
    }

    fn acks(pairs: &[(NodeId, Index)]) -> BTreeMap<NodeId, Index> {
        pairs.iter().copied().collect()
    }

    fn votes(pairs: &[(NodeId, bool)]) -> BTreeMap<NodeId, bool> {
        pairs.iter().copied().collect()
    }

    /// Reference: try every index anyone could have committed and keep the
    /// largest one that a majority has reached.
    fn naive_committed(c: &MajorityConfig, m: &BTreeMap<NodeId, Index>) -> Index {
        if c.is_empty() {
            return Index::MAX;
        }
        let matched: Vec<Index> = c.iter().map(|id| m.get(&id).copied().unwrap_or(0)).collect();
        let majority = c.len() / 2 + 1;
        std::iter::once(0)
            .chain(matched.iter().copied())
            .filter(|&i| matched.iter().filter(|&&m| m >= i).count() >= majority)
            .max()
            .unwrap_or(0)
    }

    fn naive_vote(c: &MajorityConfig, v: &BTreeMap<NodeId, bool>) -> VoteResult {
        let n = c.len();
        let yes = c.iter().filter(|id| v.get(id) == Some(&true)).count();
        let no = c.iter().filter(|id| v.get(id) == Some(&false)).count();
        if 2 * yes > n {
            VoteResult::Won
        } else if 2 * (n - no) <= n {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    #[test]
    fn majority_sizes() {
        let sizes: Vec<usize> = (0..=5).map(|n| cfg(&(1..=n).collect::<Vec<_>>()).majority()).collect();
        assert_eq!(sizes, [1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn committed_index_basic() {
        assert_eq!(cfg(&[]).committed_index(|_| Some(3)), Index::MAX);
        assert_eq!(cfg(&[1]).committed_index(|_| Some(7)), 7);
        assert_eq!(cfg(&[1]).committed_index(|_| None), 0);
        // Two voters need both.
        assert_eq!(cfg(&[1, 2]).committed_index(lookup(&acks(&[(1, 5), (2, 3)]))), 3);
        assert_eq!(cfg(&[1, 2, 3]).committed_index(lookup(&acks(&[(1, 5), (2, 3)]))), 3);
        assert_eq!(cfg(&[1, 2, 3]).committed_index(lookup(&acks(&[(1, 5)]))), 0);
        let four = acks(&[(1, 9), (2, 8), (3, 2), (4, 1)]);
        assert_eq!(cfg(&[1, 2, 3, 4]).committed_index(lookup(&four)), 2);
        let five = acks(&[(1, 9), (2, 8), (3, 7), (4, 1)]);
        assert_eq!(cfg(&[1, 2, 3, 4, 5]).committed_index(lookup(&five)), 7);
    }

    #[test]
    fn committed_index_large_config_uses_heap_path() {
        let ids: Vec<NodeId> = (1..=9).collect();
        // Match index equals the id: the 5th largest of 1..=9 is 5.
        assert_eq!(cfg(&ids).committed_index(Some), 5);
    }

    #[test]
    fn vote_result_basic() {
        use VoteResult::*;
        assert_eq!(cfg(&[]).vote_result(|_| None), Won);
        assert_eq!(cfg(&[1]).vote_result(|_| None), Pending);
        assert_eq!(cfg(&[1]).vote_result(|_| Some(true)), Won);
        assert_eq!(cfg(&[1]).vote_result(|_| Some(false)), Lost);
        let two = cfg(&[1, 2]);
        assert_eq!(two.vote_result(lookup(&votes(&[(1, true)]))), Pending);
        assert_eq!(two.vote_result(lookup(&votes(&[(1, false)]))), Lost);
        let three = cfg(&[1, 2, 3]);
        assert_eq!(three.vote_result(lookup(&votes(&[(1, true)]))), Pending);
        assert_eq!(three.vote_result(lookup(&votes(&[(1, true), (2, true)]))), Won);
        assert_eq!(three.vote_result(lookup(&votes(&[(1, false), (2, false)]))), Lost);
        let four = cfg(&[1, 2, 3, 4]);
        assert_eq!(four.vote_result(lookup(&votes(&[(1, true), (2, true)]))), Pending);
        assert_eq!(four.vote_result(lookup(&votes(&[(1, false), (2, false)]))), Lost);
        let five = cfg(&[1, 2, 3, 4, 5]);
        let v = votes(&[(1, true), (2, true), (3, false), (4, false)]);
        assert_eq!(five.vote_result(lookup(&v)), Pending);
        let v = votes(&[(1, true), (2, false), (3, false), (4, false)]);
        assert_eq!(five.vote_result(lookup(&v)), Lost);
    }

    #[test]
    fn joint_overlapping_halves() {
        let j = JointConfig::joint(cfg(&[1, 2, 3]), cfg(&[2, 3, 4]));
        assert!(j.is_joint());
        assert!(j.contains(1) && j.contains(4) && !j.contains(5));
        assert_eq!(j.ids().collect::<Vec<_>>(), [1, 2, 3, 4]);
        // {1,2} commit 9 in incoming, but outgoing only has 4 at 9.
        let m = acks(&[(1, 9), (2, 9), (3, 1), (4, 9)]);
        assert_eq!(j.committed_index(lookup(&m)), 9);
        let m = acks(&[(1, 9), (2, 5), (3, 1), (4, 9)]);
        assert_eq!(j.committed_index(lookup(&m)), 5);
        let won_in_one = votes(&[(1, true), (2, true), (4, false), (3, false)]);
        assert_eq!(j.vote_result(lookup(&won_in_one)), VoteResult::Lost);
        let won_both = votes(&[(2, true), (3, true)]);
        assert_eq!(j.vote_result(lookup(&won_both)), VoteResult::Won);
        let pending = votes(&[(1, true), (2, true)]);
        assert_eq!(j.vote_result(lookup(&pending)), VoteResult::Pending);
    }

    #[test]
    fn joint_disjoint_halves() {
        let j = JointConfig::joint(cfg(&[1, 2, 3]), cfg(&[4, 5, 6]));
        assert_eq!(j.ids().count(), 6);
        let m = acks(&[(1, 9), (2, 9), (4, 3), (5, 3)]);
        assert_eq!(j.committed_index(lookup(&m)), 3);
        let v = votes(&[(1, true), (2, true), (4, true)]);
        assert_eq!(j.vote_result(lookup(&v)), VoteResult::Pending);
        let v = votes(&[(1, true), (2, true), (4, true), (5, true)]);
        assert_eq!(j.vote_result(lookup(&v)), VoteResult::Won);
    }

    #[test]
    fn joint_with_empty_halves() {
        let j = JointConfig::new(cfg(&[1, 2, 3]));
        assert!(!j.is_joint());
        let m = acks(&[(1, 4), (2, 4)]);
        assert_eq!(j.committed_index(lookup(&m)), 4);
        assert_eq!(j.vote_result(|id| Some(id != 3)), VoteResult::Won);

        // An empty incoming half is equally neutral.
        let j = JointConfig::joint(cfg(&[]), cfg(&[1, 2, 3]));
        assert_eq!(j.committed_index(lookup(&m)), 4);

        let empty = JointConfig::default();
        assert_eq!(empty.committed_index(|_| None), Index::MAX);
        assert_eq!(empty.vote_result(|_| None), VoteResult::Won);
        assert_eq!(empty.ids().count(), 0);
    }

    fn voters() -> impl Strategy<Value = MajorityConfig> {
        prop::collection::btree_set(0..12u64, 0..9).prop_map(MajorityConfig::new)
    }

    fn match_indexes() -> impl Strategy<Value = BTreeMap<NodeId, Index>> {
        let index = prop_oneof![8 => 0..20u64, 1 => Just(Index::MAX)];
        prop::collection::btree_map(0..12u64, index, 0..12)
    }

    fn vote_map() -> impl Strategy<Value = BTreeMap<NodeId, bool>> {
        prop::collection::btree_map(0..12u64, any::<bool>(), 0..12)
    }

    proptest! {
        #[test]
        fn committed_index_matches_naive(c in voters(), m in match_indexes()) {
            prop_assert_eq!(c.committed_index(lookup(&m)), naive_committed(&c, &m));
        }

        #[test]
        fn vote_result_matches_naive(c in voters(), v in vote_map()) {
            let expected = if c.is_empty() { VoteResult::Won } else { naive_vote(&c, &v) };
            prop_assert_eq!(c.vote_result(lookup(&v)), expected);
        }

        #[test]
        fn joint_committed_is_min_of_naive_halves(
            inc in voters(), out in voters(), m in match_indexes(),
        ) {
            let expected = naive_committed(&inc, &m).min(naive_committed(&out, &m));
            let j = JointConfig::joint(inc, out);
            prop_assert_eq!(j.committed_index(lookup(&m)), expected);
        }

        #[test]
        fn joint_vote_needs_both_halves(inc in voters(), out in voters(), v in vote_map()) {
            let halves = [&inc, &out].map(|c| {
                if c.is_empty() { VoteResult::Won } else { naive_vote(c, &v) }
            });
            let expected = if halves.contains(&VoteResult::Lost) {
                VoteResult::Lost
            } else if halves == [VoteResult::Won; 2] {
                VoteResult::Won
            } else {
                VoteResult::Pending
            };
            let j = JointConfig::joint(inc, out);
            prop_assert_eq!(j.vote_result(lookup(&v)), expected);
        }

        #[test]
        fn joint_ids_is_sorted_union(inc in voters(), out in voters()) {
            let expected: Vec<NodeId> = inc.voters().union(out.voters()).copied().collect();
            let j = JointConfig::joint(inc, out);
            prop_assert_eq!(j.ids().collect::<Vec<_>>(), expected);
        }

        #[test]
        fn committed_index_is_monotone(
            c in voters(), mut m in match_indexes(), pick in any::<prop::sample::Index>(), bump in 0..20u64,
        ) {
            prop_assume!(!c.is_empty());
            let before = c.committed_index(lookup(&m));
            let id = *pick.get(&c.iter().collect::<Vec<_>>());
            let slot = m.entry(id).or_insert(0);
            *slot = slot.saturating_add(bump);
            prop_assert!(c.committed_index(lookup(&m)) >= before);
        }
    }
}
