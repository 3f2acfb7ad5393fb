//! What a node reports about itself: a [`watch`](tokio::sync::watch) of
//! [`Metrics`] for programs, and counters and histograms for monitoring.
//!
//! The counters and histograms go through the [`metrics`](https://docs.rs/metrics)
//! facade, so any exporter (Prometheus, StatsD, ...) the application
//! installs receives them; without one they cost an atomic add. Each carries
//! a `node` label with the node's id:
//!
//! | name | kind | what |
//! |---|---|---|
//! | `raft_proposals_total` | counter | proposals this node accepted as leader |
//! | `raft_proposals_forwarded_total` | counter | proposals this node forwarded to its leader |
//! | `raft_messages_sent_total` | counter | messages handed to the transport |
//! | `raft_messages_received_total` | counter | messages received from peers |
//! | `raft_role_changes_total` | counter | changes of role or term |
//! | `raft_log_writes_total` | counter | durable writes (each one sync) |
//! | `raft_log_write_entries` | histogram | entries per durable write (group commit) |
//! | `raft_log_write_seconds` | histogram | time each durable write took |
//! | `raft_entries_applied_total` | counter | entries applied to the state machine |
//! | `raft_snapshots_built_total` | counter | snapshots built of the state machine |

use crate::{Index, LogId, Membership, NodeId, RawNode, Role, Term};
use metrics::{counter, histogram, Counter, Histogram};
use std::collections::BTreeMap;

/// What a node reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The highest index known committed.
    pub commit_index: Index,
    /// The last index in its log.
    pub last_log_index: Index,
    /// The last index its state machine applied.
    pub applied_index: Index,
    /// The last entry its latest snapshot covers (index 0: none).
    pub snapshot: LogId,
    /// The configuration in force.
    pub membership: Membership,
    /// The index of the entry that carries [`Metrics::membership`] (0 for
    /// the initial configuration); it is committed once `commit_index`
    /// reaches it.
    pub membership_index: Index,
    /// On a leader, each peer's replication progress; empty otherwise.
    pub replication: BTreeMap<NodeId, Replication>,
    /// The log's configuration version [`Metrics::membership`] was taken at.
    membership_version: u64,
}

/// How far a leader has replicated its log to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// The last index known to be stored on the peer.
    pub match_index: Index,
    /// How many entries of the leader's log the peer lacks.
    pub lag: Index,
    /// Whether the leader would promote the peer from learner to voter now
    /// (see [`crate::Config::learner_catch_up_rounds`]).
    pub caught_up: bool,
}

impl Metrics {
    pub(super) fn of(raw: &RawNode, applied_index: Index) -> Self {
        let mut metrics = Self {
            id: raw.id(),
            role: raw.role(),
            term: raw.term(),
            leader: raw.leader(),
            commit_index: 0,
            last_log_index: 0,
            applied_index,
            snapshot: LogId::default(),
            membership: raw.membership().clone(),
            membership_index: 0,
            replication: BTreeMap::new(),
            membership_version: raw.log().membership_version(),
        };
        metrics.refresh(raw, applied_index);
        metrics
    }

    /// Brings the metrics up to date in place (this runs after every input,
    /// so it clones the membership only when it changed); returns whether
    /// anything changed.
    pub(super) fn refresh(&mut self, raw: &RawNode, applied_index: Index) -> bool {
        let log = raw.log();
        let before = self.scalars();
        (self.role, self.term, self.leader) = (raw.role(), raw.term(), raw.leader());
        (self.commit_index, self.last_log_index, self.applied_index) =
            (log.committed(), log.last_index(), applied_index);
        self.snapshot = raw.snapshot_last();
        self.membership_index = log.memberships().current_index();
        let mut changed = before != self.scalars();
        // Compared by version: comparing configurations after every input
        // showed in profiles.
        if self.membership_version != log.membership_version() {
            self.membership_version = log.membership_version();
            if self.membership != *raw.membership() {
                self.membership = raw.membership().clone();
                changed = true;
            }
        }
        changed | self.refresh_replication(raw)
    }

    /// The plain values, compared to tell whether anything changed.
    fn scalars(&self) -> (Role, Term, Option<NodeId>, Index, Index, Index, LogId, Index) {
        (
            self.role,
            self.term,
            self.leader,
            self.commit_index,
            self.last_log_index,
            self.applied_index,
            self.snapshot,
            self.membership_index,
        )
    }

    fn refresh_replication(&mut self, raw: &RawNode) -> bool {
        let Some(progress) = raw.progress() else {
            let changed = !self.replication.is_empty();
            self.replication.clear();
            return changed;
        };
        let last = raw.log().last_index();
        let mut changed =
            self.replication.len() != progress.len() - usize::from(progress.contains_key(&self.id));
        if changed {
            self.replication.clear();
        }
        for (&peer, pr) in progress {
            if peer == self.id {
                continue;
            }
            let now = Replication {
                match_index: pr.match_index(),
                lag: last.saturating_sub(pr.match_index()),
                caught_up: raw.caught_up(peer).unwrap_or(false),
            };
            if self.replication.insert(peer, now) != Some(now) {
                changed = true;
            }
        }
        changed
    }
}

/// The node's counters and histograms, registered once (see the module
/// documentation for their names).
#[derive(Clone)]
pub(super) struct Counters {
    pub proposals: Counter,
    pub forwarded: Counter,
    pub messages_sent: Counter,
    pub messages_received: Counter,
    pub role_changes: Counter,
    pub log_writes: Counter,
    pub log_write_entries: Histogram,
    pub log_write_seconds: Histogram,
    pub entries_applied: Counter,
    pub snapshots_built: Counter,
}

impl Counters {
    pub(super) fn new(id: NodeId) -> Self {
        let node = id.to_string();
        Self {
            proposals: counter!("raft_proposals_total", "node" => node.clone()),
            forwarded: counter!("raft_proposals_forwarded_total", "node" => node.clone()),
            messages_sent: counter!("raft_messages_sent_total", "node" => node.clone()),
            messages_received: counter!("raft_messages_received_total", "node" => node.clone()),
            role_changes: counter!("raft_role_changes_total", "node" => node.clone()),
            log_writes: counter!("raft_log_writes_total", "node" => node.clone()),
            log_write_entries: histogram!("raft_log_write_entries", "node" => node.clone()),
            log_write_seconds: histogram!("raft_log_write_seconds", "node" => node.clone()),
            entries_applied: counter!("raft_entries_applied_total", "node" => node.clone()),
            snapshots_built: counter!("raft_snapshots_built_total", "node" => node),
        }
    }
}
