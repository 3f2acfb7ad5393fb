//! One checker per safety property of Raft (Figure 3 of the paper), run after
//! every step of a simulation.
//!
//! The checks are incremental, so they stay cheap on long runs:
//! - **Election Safety**: at most one leader per term, recorded whenever a node
//!   is seen as leader.
//! - **Log Matching**: every entry a node writes is recorded by `(index, term)`
//!   with its payload and its predecessor's term; a second entry with the same
//!   `(index, term)` must agree on both. By induction on the index, that makes
//!   any two logs that share an entry identical up to it.
//! - **Leader Completeness**: a node seen as leader for the first time in a term
//!   must hold every entry known to be committed.
//! - **State Machine Safety**: every entry a node commits or applies must equal
//!   the entry committed at that index anywhere, and a node applies in order
//!   without gaps.
//! - **Apply only what is durable**: when a node crashes, everything it applied
//!   is on its disk.
//! - **Same state everywhere**: the state machine after applying an index is
//!   the same on every node, and a snapshot installed at an index restores
//!   exactly that state.
//! - **Durability of commitment**: every committed entry stays on durable
//!   disks that meet every quorum of every configuration that could still
//!   elect a leader (checked by [`Checker::check_durable`] after every write
//!   that rewrites a disk's log, the only way an entry can leave a disk, and
//!   every 100 steps), and a node's commit index never moves back while it
//!   runs.
//! - **Membership changes**: a leader never has more than one configuration
//!   change in flight, and every quorum of a configuration intersects every
//!   quorum of the configuration before it (checked by brute force over all
//!   subsets of members, not with the core's own quorum code), so no two
//!   disjoint majorities can ever decide.

use crate::disk::Disk;
use crate::kv::KvStore;
use raft_core::{Entry, EntryPayload, Index, Membership, NodeId, RawNode, Role, Term};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// A broken safety property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

fn violation(property: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// The checkers' memory of a run.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: HashMap<Term, NodeId>,
    entries: HashMap<(Index, Term), (Term, Entry)>,
    committed: Vec<Entry>,
    commit_seen: BTreeMap<NodeId, Index>,
    applied: BTreeMap<NodeId, Index>,
    /// The configuration of the latest committed configuration entry.
    committed_membership: Option<Membership>,
    /// Pairs of configurations already shown to have intersecting quorums.
    intersecting: std::collections::HashSet<(Membership, Membership)>,
    /// The state machine's fingerprint after applying each index.
    states: HashMap<Index, u64>,
}

impl Checker {
    /// Every entry committed anywhere so far, in log order from index 1.
    pub fn committed(&self) -> &[Entry] {
        &self.committed
    }

    /// Log Matching, for entries `node` is about to write after the entry of
    /// term `prev_term`.
    pub fn on_write(&mut self, node: NodeId, prev_term: Term, entries: &[Entry]) -> Result<(), Violation> {
        let mut prev_term = prev_term;
        for entry in entries {
            let key = (entry.index, entry.term);
            match self.entries.get(&key) {
                Some((seen_prev, seen)) if *seen_prev != prev_term || seen != entry => {
                    return violation(
                        "Log Matching",
                        format!(
                            "node {node} writes {entry:?} after term {prev_term}, but {seen:?} after term \
                             {seen_prev} exists with the same index and term"
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.entries.insert(key, (prev_term, entry.clone()));
                }
            }
            prev_term = entry.term;
        }
        Ok(())
    }

    /// Every quorum of `next` must intersect every quorum of `previous`, the
    /// configuration it follows in a log.
    pub fn on_membership(&mut self, previous: &Membership, next: &Membership) -> Result<(), Violation> {
        if previous.voters.is_empty() {
            // Nothing decides under a configuration without voters: the
            // empty one a joiner starts with, until its first entry arrives.
            return Ok(());
        }
        let key = (previous.clone(), next.clone());
        if self.intersecting.contains(&key) {
            return Ok(());
        }
        let members: Vec<NodeId> =
            previous.members().chain(next.members()).collect::<BTreeSet<_>>().into_iter().collect();
        if members.len() > 16 {
            return Ok(()); // too many subsets to enumerate; the simulator never gets here
        }
        let quorums = |m: &Membership| -> Vec<u32> {
            (0u32..1 << members.len()).filter(|&set| is_quorum(m, &members, set)).collect()
        };
        let (a, b) = (quorums(previous), quorums(next));
        for &qa in &a {
            if let Some(&qb) = b.iter().find(|&&qb| qa & qb == 0) {
                let names = |set: u32| -> Vec<NodeId> {
                    members
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| set & (1 << i) != 0)
                        .map(|(_, &id)| id)
                        .collect()
                };
                return violation(
                    "Quorum intersection",
                    format!(
                        "{:?} can decide under {previous:?} while the disjoint {:?} decides under {next:?}",
                        names(qa),
                        names(qb)
                    ),
                );
            }
        }
        self.intersecting.insert(key);
        Ok(())
    }

    /// Election Safety and Leader Completeness, and the commit-side of State
    /// Machine Safety, after any input to `node`.
    pub fn on_step(&mut self, node: NodeId, raft: &RawNode) -> Result<(), Violation> {
        if raft.role() == Role::Leader {
            match self.leaders.get(&raft.term()) {
                Some(&other) if other != node => {
                    return violation(
                        "Election Safety",
                        format!("nodes {other} and {node} are both leaders of term {}", raft.term()),
                    );
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(raft.term(), node);
                    self.check_leader_completeness(node, raft)?;
                }
            }
        }
        let commit = raft.log().committed();
        let seen = self.commit_seen.entry(node).or_insert(0);
        if commit < *seen {
            return violation(
                "Commit monotonicity",
                format!("node {node} commit index went from {seen} to {commit}"),
            );
        }
        if commit > *seen {
            let from = (*seen).min(self.committed.len() as Index) + 1;
            *seen = commit;
            for index in from.max(raft.log().first_index())..=commit {
                let Some(entry) = raft.log().entry(index) else {
                    return violation(
                        "State Machine Safety",
                        format!("node {node} has commit index {commit} but no entry {index}"),
                    );
                };
                self.observe_committed(node, entry)?;
            }
        }
        if raft.role() == Role::Leader {
            // Judged against what is committed anywhere: a new leader may not
            // yet know that its predecessor's last change committed.
            let committed = self.committed.len() as Index;
            let in_flight =
                raft.log().memberships().entries().iter().filter(|(index, _)| *index > committed).count();
            if in_flight > 1 {
                return violation(
                    "One membership change at a time",
                    format!("leader {node} has {in_flight} uncommitted configuration entries"),
                );
            }
        }
        Ok(())
    }

    fn check_leader_completeness(&self, node: NodeId, raft: &RawNode) -> Result<(), Violation> {
        for entry in &self.committed {
            if entry.index >= raft.log().first_index() && !raft.log().matches(entry.index, entry.term) {
                return violation(
                    "Leader Completeness",
                    format!(
                        "node {node} leads term {} without committed entry {:?} (it has term {:?} there)",
                        raft.term(),
                        entry.log_id(),
                        raft.log().term(entry.index)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Records a committed entry, or checks it against the one recorded.
    fn observe_committed(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        let known = self.committed.len() as Index;
        if entry.index <= known {
            let recorded = &self.committed[entry.index as usize - 1];
            if recorded != entry {
                return violation(
                    "State Machine Safety",
                    format!("node {node} commits {entry:?} where {recorded:?} was committed"),
                );
            }
        } else if entry.index == known + 1 {
            if let EntryPayload::Membership(m) = &entry.payload {
                self.committed_membership = Some((**m).clone());
            }
            self.committed.push(entry.clone());
        }
        Ok(())
    }

    /// State Machine Safety for entries `node` applies.
    pub fn on_apply(&mut self, node: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        for entry in entries {
            let applied = self.applied.entry(node).or_insert(0);
            if entry.index != *applied + 1 {
                return violation(
                    "State Machine Safety",
                    format!("node {node} applies index {} after {}", entry.index, applied),
                );
            }
            *applied = entry.index;
            self.observe_committed(node, entry)?;
        }
        Ok(())
    }

    /// State Machine Safety on states: the state after applying `index` is
    /// the same on every node.
    pub fn on_state(&mut self, node: NodeId, index: Index, kv: &KvStore) -> Result<(), Violation> {
        let fingerprint = kv.fingerprint();
        match self.states.get(&index) {
            Some(&seen) if seen != fingerprint => violation(
                "State Machine Safety",
                format!("node {node}'s state after applying {index} differs from another node's"),
            ),
            Some(_) => Ok(()),
            None => {
                self.states.insert(index, fingerprint);
                Ok(())
            }
        }
    }

    /// A node installed a snapshot at `index`: its restored state must equal
    /// every other node's state at that index, and applying resumes after it.
    pub fn on_snapshot_install(&mut self, node: NodeId, index: Index, kv: &KvStore) -> Result<(), Violation> {
        self.applied.insert(node, index);
        if kv.applied() != index {
            return violation(
                "Snapshot install",
                format!("node {node}'s snapshot at {index} restores state at {}", kv.applied()),
            );
        }
        self.on_state(node, index, kv).map_err(|v| Violation { property: "Snapshot install", ..v })
    }

    /// A node restarted with its state machine at `applied` (its snapshot's).
    pub fn on_restart(&mut self, node: NodeId, applied: Index) {
        self.applied.insert(node, applied);
    }

    /// A node crashes: everything it applied must be on its durable disk (a
    /// restarted node never finds its state machine ahead of its log). Then
    /// its volatile state is forgotten.
    pub fn on_crash(&mut self, node: NodeId, durable: Index) -> Result<(), Violation> {
        self.commit_seen.remove(&node);
        let applied = self.applied.remove(&node).unwrap_or(0);
        if applied > durable {
            return violation(
                "Apply only what is durable",
                format!("node {node} crashed having applied {applied} entries, {durable} of them durable"),
            );
        }
        Ok(())
    }

    /// Every committed entry is durable on nodes that meet every quorum of
    /// every configuration that could still elect a leader: the latest
    /// committed one (`initial` if none was committed yet) and any newer one
    /// in a log or on a disk. Then no leader can be elected without it.
    pub fn check_durable(
        &self,
        initial: &Membership,
        newer: &[Membership],
        disks: &BTreeMap<NodeId, &Disk>,
    ) -> Result<(), Violation> {
        let committed = self.committed_membership.as_ref().unwrap_or(initial);
        for entry in &self.committed {
            let holds = |id: &NodeId| disks.get(id).is_some_and(|disk| disk.holds(entry));
            for membership in std::iter::once(committed).chain(newer) {
                if !meets_every_quorum(membership, holds) {
                    let holders: Vec<NodeId> = disks.keys().copied().filter(holds).collect();
                    return violation(
                        "Durability of commitment",
                        format!(
                            "committed entry {:?} is durable only on {holders:?}, which misses a quorum of \
                             {membership:?}",
                            entry.log_id()
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Whether the nodes for which `holds` is true meet every quorum of `m`: they
/// leave too few voters of one half (both halves must agree in a joint
/// configuration) to make a majority without them.
fn meets_every_quorum(m: &Membership, holds: impl Fn(&NodeId) -> bool) -> bool {
    let blocks = |voters: &BTreeSet<NodeId>| {
        !voters.is_empty() && voters.iter().filter(|id| !holds(id)).count() <= voters.len() / 2
    };
    blocks(&m.voters) || blocks(&m.outgoing)
}

/// Whether the members in `set` (bits over `members`) form a quorum of `m`:
/// a majority of the voters, and of the outgoing voters too when joint.
fn is_quorum(m: &Membership, members: &[NodeId], set: u32) -> bool {
    let majority = |voters: &BTreeSet<NodeId>| {
        let have =
            members.iter().enumerate().filter(|(i, id)| set & (1 << i) != 0 && voters.contains(id)).count();
        voters.is_empty() || have > voters.len() / 2
    };
    majority(&m.voters) && majority(&m.outgoing)
}
