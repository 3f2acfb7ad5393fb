//! The durable log store a runtime writes through: the [`LogStore`] trait,
//! what one durable write carries ([`LogWrite`]), and what a store loads at
//! start ([`StoredState`]).
//!
//! **The contract every implementation keeps** (checked by the conformance
//! suite in `raft_core::testing`, feature `testing`):
//! 1. [`LogStore::write`] returns only once everything in the write is
//!    durable (survives a crash or power loss), and applies its parts in
//!    order: hard state, snapshot, entries, purge. Writes become durable in
//!    the order they were made.
//! 2. Entries replace any stored entry at or after the first new index; a
//!    write whose first entry would leave a gap after the stored log is
//!    refused with [`StorageError::NotContiguous`] and changes nothing.
//! 3. A snapshot in a write is one received from a leader, handed over as a
//!    [`SnapshotInstall`] that says what becomes of the stored log: with
//!    [`LogAfterInstall::Discard`] every stored entry is removed; with
//!    [`LogAfterInstall::KeepSuffix`] the stored entries up to and including
//!    the snapshot's last index are removed and those after it are kept as
//!    they are. The store follows that decision and never makes its own
//!    from the entries it holds: the core made it by section 7's rule on
//!    its in-memory log, which may differ from the stored one (an entry
//!    replaced in memory and not yet written), and a store that decided
//!    from its disk could keep entries the core dropped.
//!    A snapshot the node built itself goes through
//!    [`LogStore::save_snapshot`], which leaves the entries alone and never
//!    replaces a snapshot covering as much or more.
//! 4. [`LogStore::load`] returns exactly what was durably written: the hard
//!    state, the latest snapshot, and the consecutive entries after it.
//! 5. No method panics on what it reads back: corrupt data is a
//!    [`StorageError::Corrupt`], and a node that sees a storage error stops
//!    rather than run on a broken disk.

use crate::{Entry, HardState, Index, InitialState, LogId, Membership, Snapshot};
use async_trait::async_trait;
use std::ops::Range;
use thiserror::Error;

/// What a store holds, loaded when a node starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    /// The last durable term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// The stored entries after the snapshot, consecutive.
    pub entries: Vec<Entry>,
}

impl StoredState {
    /// The node's starting state; `membership` is the initial configuration
    /// of a new cluster (ignored once a snapshot carries one).
    pub fn into_initial_state(self, membership: Membership) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            membership,
            entries: self.entries,
        }
    }
}

/// A snapshot received from the leader, to install as part of a write
/// (contract rule 3), with the core's decision on the stored log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInstall {
    /// The snapshot to save as the store's latest.
    pub snapshot: Snapshot,
    /// What becomes of the stored entries.
    pub log: LogAfterInstall,
}

impl SnapshotInstall {
    /// The last entry the snapshot covers.
    pub fn last(&self) -> LogId {
        self.snapshot.meta.last
    }
}

/// What installing a leader's snapshot does to the stored log: decided by
/// the core (section 7's rule, applied to its in-memory log), carried out by
/// the store as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAfterInstall {
    /// Remove every stored entry. The core discarded its log, or keeps a
    /// suffix none of which was written yet (the write's entries carry it).
    Discard,
    /// Remove the stored entries up to and including the snapshot's last
    /// index and keep those after it: the core keeps them, and every one it
    /// keeps from before this write was already handed to storage. The core
    /// asks this only when the stored entry at the snapshot's last index
    /// (by the writes it issued) has the snapshot's term.
    KeepSuffix,
}

/// One durable write: what a [`crate::Ready`] asks to persist, or several
/// merged into one so that a single sync covers them (group commit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogWrite {
    /// The term and vote to store.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader, to install as it says (rule 3
    /// above).
    pub snapshot: Option<SnapshotInstall>,
    /// Entries to store, replacing any from the first one's index on.
    pub entries: Vec<Entry>,
    /// Stored entries up to here may be removed.
    pub purge_to: Option<Index>,
}

impl LogWrite {
    /// Whether the write changes nothing.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.purge_to.is_none()
    }

    /// Folds `later` into this write, so that applying the result equals
    /// applying this write and then `later`, and returns `None`. A later
    /// snapshot cannot be folded behind this write's entries or snapshot (a
    /// write installs its snapshot before its entries, and its log decision
    /// is about the log as the earlier write leaves it): then `later` is
    /// handed back, to be written next.
    pub fn merge(&mut self, later: LogWrite) -> Option<LogWrite> {
        if later.snapshot.is_some() && (!self.entries.is_empty() || self.snapshot.is_some()) {
            return Some(later);
        }
        if later.hard_state.is_some() {
            self.hard_state = later.hard_state;
        }
        if later.snapshot.is_some() {
            self.snapshot = later.snapshot;
        }
        if let Some(first) = later.entries.first().map(|e| e.index) {
            self.entries.retain(|e| e.index < first);
            self.entries.extend(later.entries);
        }
        self.purge_to = self.purge_to.max(later.purge_to);
        None
    }
}

/// Why a store could not do what it was asked.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The device failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// What was read back is not what was written.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Appending these entries would leave a gap in the log.
    #[error("entry {first} does not follow the stored log, which ends at {last}")]
    NotContiguous {
        /// The first entry of the write.
        first: Index,
        /// The last stored index (or the snapshot's).
        last: Index,
    },
    /// Entries were asked for that the store does not hold.
    #[error("entries {requested:?} are not stored (the store holds {held:?})")]
    Unavailable {
        /// What was asked for.
        requested: Range<Index>,
        /// What is held.
        held: Range<Index>,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// A durable store for one node's log, hard state and snapshots. See the
/// module documentation for the contract.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Loads what the store holds.
    async fn load(&self) -> Result<StoredState, StorageError>;

    /// Durably applies `write` (all of it, or on error nothing observable
    /// beyond what a crash at that point could leave).
    async fn write(&self, write: LogWrite) -> Result<(), StorageError>;

    /// Durably saves a snapshot this node built of its state machine,
    /// leaving the stored entries alone. A snapshot that covers no more than
    /// the stored one is ignored: the applier may finish building one after
    /// a newer snapshot from the leader was installed.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError>;

    /// The stored entries in `range`, at most `max_bytes` of them by
    /// [`Entry::size`], but always the first if there is one.
    async fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EntryPayload, SnapshotMeta};

    fn entries(indexes: Range<Index>, term: u64) -> Vec<Entry> {
        indexes.map(|index| Entry { index, term, payload: EntryPayload::Blank }).collect()
    }

    #[test]
    fn merged_writes_equal_writing_them_in_turn() {
        let mut write = LogWrite { entries: entries(1..6, 1), ..Default::default() };
        let later = LogWrite {
            hard_state: Some(HardState { term: 2, vote: Some(3) }),
            entries: entries(4..8, 2),
            purge_to: Some(2),
            ..Default::default()
        };
        assert_eq!(write.merge(later), None);
        let expected: Vec<Entry> = entries(1..4, 1).into_iter().chain(entries(4..8, 2)).collect();
        assert_eq!(write.entries, expected);
        assert_eq!(write.hard_state, Some(HardState { term: 2, vote: Some(3) }));
        assert_eq!(write.purge_to, Some(2));
    }

    #[test]
    fn a_snapshot_is_not_merged_behind_entries() {
        let snapshot = Snapshot {
            meta: SnapshotMeta { last: LogId::new(1, 5), membership: Membership::new([1], []) },
            data: Default::default(),
        };
        let snapshot = SnapshotInstall { snapshot, log: LogAfterInstall::KeepSuffix };
        let mut write = LogWrite { entries: entries(1..3, 1), ..Default::default() };
        let later = LogWrite { snapshot: Some(snapshot.clone()), ..Default::default() };
        assert_eq!(write.merge(later.clone()), Some(later.clone()));
        let mut empty = LogWrite { hard_state: Some(HardState::default()), ..Default::default() };
        assert_eq!(empty.merge(later), None);
        assert_eq!(empty.snapshot, Some(snapshot));
    }
}
