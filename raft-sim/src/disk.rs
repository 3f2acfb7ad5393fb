//! The simulated disk: what a node has durably written ([`Disk`]), the writes
//! it has issued that are not durable yet, and how long they take
//! ([`DiskModel`]).
//!
//! The disk keeps the [`raft_core::LogStore`] contract the real stores keep
//! (`raft-core/src/storage.rs`): a write's parts apply in order (hard state,
//! snapshot, entries, purge), and a write whose first entry would leave a gap
//! after the stored log is refused with [`StorageError::NotContiguous`] and
//! changes nothing. The simulator reports such a refusal as a violation: a
//! real node would stop on it, so a core that asks for one has a bug, and
//! the disk must never quietly repair it.

use raft_core::{
    Entry, HardState, InitialState, LogAfterInstall, LogId, Membership, Message, RaftLog, Snapshot,
    SnapshotInstall, StorageError,
};
use rand_chacha::ChaCha8Rng;

/// A write issued by a node and not yet durable.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub(crate) number: u64,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<SnapshotInstall>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) purge_to: Option<u64>,
    pub(crate) messages: Vec<Message>,
    /// When the simulator lets it complete.
    pub(crate) ready_at: u64,
}

/// What a node has on disk.
#[derive(Debug, Default, Clone)]
pub struct Disk {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// The durable log: consecutive entries, from index 1 or from where it
    /// was last purged.
    pub entries: Vec<Entry>,
}

/// How long simulated writes take to become durable.
#[derive(Debug, Clone)]
pub struct DiskModel {
    /// The source of latencies.
    pub rng: ChaCha8Rng,
    /// Latencies are uniform in `1..=max_latency` steps.
    pub max_latency: u64,
}

impl Disk {
    /// A disk holding a log with the given terms at indexes 1, 2, ... (one
    /// blank entry each) and the given current term: how scenario tests draw
    /// the logs of the paper's figures.
    pub fn with_terms(term: u64, log_terms: &[u64]) -> Self {
        let entries = log_terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry { index: i as u64 + 1, term: t, payload: raft_core::EntryPayload::Blank })
            .collect();
        Self { hard_state: HardState { term, vote: None }, snapshot: None, entries }
    }

    /// The stored entry at `index`.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let first = self.entries.first()?.index;
        self.entries.get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    /// The last index the disk covers, by entry or by snapshot.
    pub fn last_index(&self) -> u64 {
        let snapshot = self.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        self.entries.last().map_or(snapshot, |e| e.index.max(snapshot))
    }

    /// Whether the disk holds `entry`: stored, or covered by the snapshot.
    pub fn holds(&self, entry: &Entry) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.meta.last.index >= entry.index)
            || self.entry(entry.index) == Some(entry)
    }

    /// Checks a write as a real [`raft_core::LogStore`] does before changing
    /// anything: its first entry must not leave a gap after the log as it
    /// will be once the write's snapshot (if any) is installed.
    pub(crate) fn check_write(
        &self,
        snapshot: Option<&SnapshotInstall>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let Some(first) = entries.first().map(|e| e.index) else { return Ok(()) };
        let last = match snapshot {
            Some(s) if s.log == LogAfterInstall::Discard => s.last().index,
            Some(s) => self.last_index().max(s.last().index),
            None => self.last_index(),
        };
        if first > last.saturating_add(1) {
            return Err(StorageError::NotContiguous { first, last });
        }
        Ok(())
    }

    /// Appends entries checked by [`Disk::check_write`], replacing any stored
    /// from the first new index on. Entries left behind a snapshot that the
    /// new ones do not follow are dropped: the snapshot covers them.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else { return };
        self.entries.retain(|e| e.index < first);
        if self.entries.last().is_some_and(|e| e.index + 1 != first) {
            debug_assert!(self.snapshot.as_ref().is_some_and(|s| s.meta.last.index + 1 >= first));
            self.entries.clear();
        }
        self.entries.extend(entries);
    }

    /// Saves a snapshot received from the leader, keeping the stored entries
    /// after it only if the core said so (contract rule 3): like a real
    /// store, the disk never decides from the entries it holds.
    pub(crate) fn install(&mut self, install: SnapshotInstall) {
        match install.log {
            LogAfterInstall::KeepSuffix => {
                let last = install.last().index;
                self.entries.retain(|e| e.index > last);
            }
            LogAfterInstall::Discard => self.entries.clear(),
        }
        self.snapshot = Some(install.snapshot);
    }

    /// How this disk's log after the core's snapshot differs from `log`,
    /// the core's, if it does. Once every write the core issued is durable
    /// and it holds nothing unwritten, the two must be the same: otherwise a
    /// restart loads entries the core had dropped, or lacks ones it kept.
    pub(crate) fn disagreement(&self, log: &RaftLog) -> Option<String> {
        let after = log.snapshot().index;
        let on_disk: Vec<LogId> =
            self.entries.iter().filter(|e| e.index > after).map(Entry::log_id).collect();
        let in_core = log.entries_from(log.first_index(), usize::MAX, u64::MAX);
        let in_core: Vec<LogId> = in_core.iter().map(Entry::log_id).collect();
        let show =
            |ids: &[LogId]| ids.iter().map(|&id| crate::trace::log_id(id)).collect::<Vec<_>>().join(" ");
        (on_disk != in_core).then(|| {
            format!(
                "after {}: disk [{}], core [{}]",
                crate::trace::log_id(log.snapshot()),
                show(&on_disk),
                show(&in_core)
            )
        })
    }

    /// What a node restarts from; `membership` is its initial configuration
    /// (ignored once a snapshot carries one).
    pub(crate) fn initial_state(&self, membership: Membership) -> InitialState {
        let after = self.snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            membership,
            entries: self.entries.iter().filter(|e| e.index > after).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{EntryPayload, SnapshotMeta};

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to).map(|index| Entry { index, term: 1, payload: EntryPayload::Blank }).collect()
    }

    #[test]
    fn a_write_that_leaves_a_gap_is_refused_as_a_real_store_refuses_it() {
        let disk = Disk { entries: entries(1, 3), ..Disk::default() };
        assert!(disk.check_write(None, &entries(4, 5)).is_ok());
        assert!(disk.check_write(None, &entries(2, 5)).is_ok(), "overwriting a suffix is fine");
        let gap = disk.check_write(None, &entries(5, 6));
        assert!(matches!(gap, Err(StorageError::NotContiguous { first: 5, last: 3 })), "{gap:?}");
        // A snapshot in the same write moves the end of the log first.
        let snapshot = |index, log| SnapshotInstall {
            snapshot: Snapshot {
                meta: SnapshotMeta { last: LogId::new(2, index), membership: Membership::default() },
                data: Default::default(),
            },
            log,
        };
        let discard = |index| snapshot(index, LogAfterInstall::Discard);
        assert!(disk.check_write(Some(&discard(9)), &entries(10, 11)).is_ok());
        assert!(disk.check_write(Some(&discard(9)), &entries(11, 11)).is_err());
        // The core's decision, not the stored entry at 2, sets where the log ends.
        let keep = snapshot(2, LogAfterInstall::KeepSuffix);
        assert!(disk.check_write(Some(&keep), &entries(4, 4)).is_ok());
        assert!(disk.check_write(Some(&discard(2)), &entries(4, 4)).is_err());
    }
}
