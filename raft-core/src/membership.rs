//! Cluster membership: who votes, who only learns, and the joint
//! configurations that carry the cluster from one to the other (section 6;
//! thesis section 4.3).
//!
//! A configuration travels in the log as an entry and takes effect on each
//! node as soon as that entry is in its log, committed or not; if the entry is
//! truncated away, the previous configuration in the log applies again. The
//! log therefore keeps the list of configuration entries it holds
//! ([`MembershipLog`]), and the node's configuration is always the last of them.
//!
//! Invariants of a [`Membership`]: learners are disjoint from both voter sets;
//! `outgoing` is empty unless the configuration is joint.

use crate::quorum::{JointConfig, MajorityConfig};
use crate::{Index, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// A cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The voters: in a joint configuration, those of the new configuration.
    pub voters: BTreeSet<NodeId>,
    /// In a joint configuration, the voters of the old configuration: every
    /// decision then needs a majority of both. Empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but neither vote nor count toward quorums.
    pub learners: BTreeSet<NodeId>,
    /// In a joint configuration, outgoing voters that become learners when it
    /// ends (they vote in the outgoing half until then). Empty otherwise.
    pub learners_next: BTreeSet<NodeId>,
    /// Where members can be reached, for those whose address is known. The
    /// protocol does not read them: they travel with the configuration so
    /// that every node (and its transport) learns a new member's address
    /// from the log, and a client told "not leader" learns where the leader
    /// is.
    pub addresses: BTreeMap<NodeId, String>,
}

/// A membership that breaks its invariants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipError {
    /// A node is listed as voter and learner at once.
    #[error("node {0} is both a voter and a learner")]
    VoterAndLearner(NodeId),
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    ZeroId,
    /// A configuration with members but no voters can never decide anything.
    #[error("a configuration needs at least one voter")]
    NoVoters,
    /// A learner-to-be of a joint configuration is not an outgoing-only voter.
    #[error("node {0} cannot become a learner when the joint configuration ends")]
    BadLearnerNext(NodeId),
}

impl Membership {
    /// A plain (non-joint) configuration.
    pub fn new(voters: impl IntoIterator<Item = NodeId>, learners: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            outgoing: BTreeSet::new(),
            learners: learners.into_iter().collect(),
            learners_next: BTreeSet::new(),
            addresses: BTreeMap::new(),
        }
    }

    /// This configuration with `address` recorded for member `id`.
    pub fn with_address(mut self, id: NodeId, address: impl Into<String>) -> Self {
        self.addresses.insert(id, address.into());
        self
    }

    /// The address recorded for `id`, if any.
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    /// This configuration with the addresses `older` knew filled in for its
    /// members that have none of their own, and addresses of non-members
    /// dropped: a new configuration inherits what the cluster knew.
    pub fn inherit_addresses(mut self, older: &Membership) -> Self {
        for (&id, address) in &older.addresses {
            self.addresses.entry(id).or_insert_with(|| address.clone());
        }
        let members: BTreeSet<NodeId> = self.members().collect();
        self.addresses.retain(|id, _| members.contains(id));
        self
    }

    /// Checks the invariants.
    pub fn validate(&self) -> Result<(), MembershipError> {
        if let Some(&id) =
            self.learners.iter().find(|id| self.voters.contains(id) || self.outgoing.contains(id))
        {
            return Err(MembershipError::VoterAndLearner(id));
        }
        if self.members().any(|id| id == 0) {
            return Err(MembershipError::ZeroId);
        }
        if self.voters.is_empty() && !self.learners.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if let Some(&id) =
            self.learners_next.iter().find(|id| !self.outgoing.contains(id) || self.voters.contains(id))
        {
            return Err(MembershipError::BadLearnerNext(id));
        }
        Ok(())
    }

    /// Whether decisions need majorities of two configurations.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes (in either configuration, when joint).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Whether `id` is a member at all.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Whether `id` is a learner (and not, in a joint configuration, still a voter).
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// Every member, voters first, each once, in id order within each group.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let voters: BTreeSet<NodeId> = self.voters.union(&self.outgoing).copied().collect();
        voters.into_iter().chain(self.learners.iter().copied())
    }

    /// The quorum rule of this configuration.
    pub fn quorum(&self) -> JointConfig {
        JointConfig::joint(
            MajorityConfig::new(self.voters.clone()),
            MajorityConfig::new(self.outgoing.clone()),
        )
    }

    /// The joint configuration that moves from `self` to the plain
    /// configuration `target`. Voters being demoted to learners stay voters of
    /// the outgoing half until the change completes.
    pub fn enter_joint(&self, target: &Membership) -> Membership {
        let outgoing = self.voters.clone();
        let (learners_next, learners) = target.learners.iter().partition(|id| outgoing.contains(id));
        let joint = Membership {
            voters: target.voters.clone(),
            outgoing,
            learners,
            learners_next,
            addresses: target.addresses.clone(),
        };
        joint.inherit_addresses(self)
    }

    /// The plain configuration a joint one ends in.
    pub fn leave_joint(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            outgoing: BTreeSet::new(),
            learners: self.learners.union(&self.learners_next).copied().collect(),
            learners_next: BTreeSet::new(),
            addresses: BTreeMap::new(),
        }
        .inherit_addresses(self)
    }
}

/// The configurations in the in-memory log, with the one in force before them
/// (from the snapshot, or the initial configuration).
#[derive(Debug, Clone, Default)]
pub struct MembershipLog {
    base: (Index, Membership),
    entries: Vec<(Index, Membership)>,
}

impl MembershipLog {
    /// Starts from the configuration in force at `index`.
    pub fn new(index: Index, membership: Membership) -> Self {
        Self { base: (index, membership), entries: Vec::new() }
    }

    /// The configuration in force: the last one in the log.
    pub fn current(&self) -> &Membership {
        &self.entries.last().unwrap_or(&self.base).1
    }

    /// The configuration entries in the log, in order.
    pub fn entries(&self) -> &[(Index, Membership)] {
        &self.entries
    }

    /// The index of the entry that holds the current configuration.
    pub fn current_index(&self) -> Index {
        self.entries.last().unwrap_or(&self.base).0
    }

    /// The last configuration at or before `index` (the committed one, given
    /// the commit index).
    pub fn at(&self, index: Index) -> &Membership {
        &self.entries.iter().rev().find(|(i, _)| *i <= index).unwrap_or(&self.base).1
    }

    /// Records a configuration entry appended at `index`.
    pub(crate) fn push(&mut self, index: Index, membership: Membership) {
        self.entries.push((index, membership));
    }

    /// Forgets configuration entries at or after `index` (truncated away).
    /// Returns whether the current configuration changed.
    pub(crate) fn truncate_from(&mut self, index: Index) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(i, _)| *i < index);
        self.entries.len() != before
    }

    /// The log was compacted up to `index`: the last configuration at or
    /// before it becomes the base.
    pub(crate) fn compact_to(&mut self, index: Index) {
        if let Some(pos) = self.entries.iter().rposition(|(i, _)| *i <= index) {
            self.base = self.entries[pos].clone();
            self.entries.drain(..=pos);
        }
    }

    /// Starts over from a snapshot's configuration.
    pub(crate) fn reset(&mut self, index: Index, membership: Membership) {
        self.base = (index, membership);
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_take_effect_when_appended_and_roll_back_when_truncated() {
        let mut log = MembershipLog::new(0, Membership::new([1, 2, 3], []));
        log.push(5, Membership::new([1, 2, 3], [4]));
        log.push(8, Membership::new([1, 2, 4], []));
        assert_eq!(log.current(), &Membership::new([1, 2, 4], []));
        assert_eq!(log.at(7), &Membership::new([1, 2, 3], [4]));
        assert!(log.truncate_from(8));
        assert_eq!(log.current_index(), 5);
        assert!(!log.truncate_from(9));
        assert_eq!(log.current(), &Membership::new([1, 2, 3], [4]));
        log.compact_to(6);
        assert_eq!(log.at(0), &Membership::new([1, 2, 3], [4]), "the base moves up to the compaction point");
        log.reset(10, Membership::new([7], []));
        assert_eq!((log.current_index(), log.current()), (10, &Membership::new([7], [])));
    }

    #[test]
    fn joint_configuration_keeps_demoted_voters_voting_until_it_ends() {
        let old = Membership::new([1, 2, 3], [4]);
        let target = Membership::new([2, 3, 4], [1]);
        let joint = old.enter_joint(&target);
        assert_eq!(joint.voters, [2, 3, 4].into());
        assert_eq!(joint.outgoing, [1, 2, 3].into());
        assert!(joint.learners.is_empty(), "1 is still an outgoing voter");
        assert_eq!(joint.learners_next, [1].into());
        assert_eq!(joint.validate(), Ok(()));
        assert_eq!(joint.leave_joint(), target);
    }

    #[test]
    fn addresses_follow_the_members_through_a_joint_change() {
        let current = Membership::new([1, 2, 3], [])
            .with_address(1, "a:1")
            .with_address(2, "a:2")
            .with_address(3, "a:3");
        let target = Membership::new([1, 2, 4], []).with_address(4, "a:4").with_address(2, "b:2");
        let joint = current.enter_joint(&target);
        let expected: Vec<(NodeId, &str)> = vec![(1, "a:1"), (2, "b:2"), (3, "a:3"), (4, "a:4")];
        assert_eq!(joint.addresses.iter().map(|(&id, a)| (id, a.as_str())).collect::<Vec<_>>(), expected);
        let done = joint.leave_joint();
        assert_eq!(done.address(3), None, "a removed member's address is dropped");
        assert_eq!((done.address(2), done.address(4)), (Some("b:2"), Some("a:4")));
    }

    #[test]
    fn invalid_memberships_are_typed_errors() {
        assert_eq!(Membership::new([1, 2], [2]).validate(), Err(MembershipError::VoterAndLearner(2)));
        assert_eq!(Membership::new([0], []).validate(), Err(MembershipError::ZeroId));
        assert_eq!(Membership::new([], [3]).validate(), Err(MembershipError::NoVoters));
    }
}
