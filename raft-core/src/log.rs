//! The core's view of the replicated log.
//!
//! The core holds the entries after the last snapshot in memory (payloads are
//! reference-counted [`bytes::Bytes`], so handing them to messages and to the
//! state machine does not copy them); snapshots and compaction bound how much
//! that is. Storage is told what to write through [`crate::Ready`].
//!
//! Invariants, with `snapshot` the last entry the snapshot covers:
//! - `entries[i].index == snapshot.index + 1 + i`, and terms never decrease;
//! - `snapshot.index <= applied <= committed <= last_index`;
//! - `persisted <= last_index`: entries up to `persisted` are durable here;
//! - entries from `unstable_from` on have not yet been handed to storage.

use crate::membership::MembershipLog;
use crate::mutation::{mutated, Mutation};
use crate::{Entry, EntryPayload, Index, LogAfterInstall, LogId, Membership, Term};
use std::collections::VecDeque;
use thiserror::Error;

/// The replicated log as the core sees it.
#[derive(Debug, Clone)]
pub struct RaftLog {
    snapshot: LogId,
    entries: VecDeque<Entry>,
    committed: Index,
    persisted: Index,
    applied: Index,
    unstable_from: Index,
    memberships: MembershipLog,
    /// Bumped whenever the configuration in force changes.
    membership_version: u64,
}

/// A log that breaks the invariants, or an append that would rewrite committed
/// history.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    /// An entry does not follow its predecessor's index.
    #[error("entry at position {position} has index {found}, expected {expected}")]
    NotContiguous {
        /// Where in the batch.
        position: usize,
        /// The index it should have had.
        expected: Index,
        /// The index it has.
        found: Index,
    },
    /// An entry's term is lower than its predecessor's.
    #[error("entry {index} has term {term}, below its predecessor's term {previous}")]
    TermDecreases {
        /// The entry's index.
        index: Index,
        /// Its term.
        term: Term,
        /// The predecessor's term.
        previous: Term,
    },
    /// Accepting the entries would replace a committed entry: a leader that
    /// asks for this violates Leader Completeness.
    #[error("entry {index} conflicts with committed history (commit index {committed})")]
    ConflictsWithCommitted {
        /// The first conflicting index.
        index: Index,
        /// This node's commit index.
        committed: Index,
    },
}

impl RaftLog {
    /// A log restored from storage: everything in it is durable.
    pub(crate) fn restore(
        snapshot: LogId,
        membership: Membership,
        entries: Vec<Entry>,
    ) -> Result<Self, LogError> {
        check_run(snapshot, &entries)?;
        let last = entries.last().map_or(snapshot.index, |e| e.index);
        let mut log = Self {
            snapshot,
            entries: VecDeque::with_capacity(entries.len()),
            committed: snapshot.index,
            persisted: last,
            applied: snapshot.index,
            unstable_from: last + 1,
            memberships: MembershipLog::new(snapshot.index, membership),
            membership_version: 0,
        };
        for entry in entries {
            log.push(entry);
        }
        Ok(log)
    }

    /// The configuration in force: the last one in the log.
    pub fn membership(&self) -> &Membership {
        self.memberships.current()
    }

    /// The configuration entries in the log, with the one before them.
    pub fn memberships(&self) -> &MembershipLog {
        &self.memberships
    }

    /// Changes whenever the configuration in force changes.
    /// A number that changes whenever the configuration in force may have
    /// (an entry carrying one appended or truncated, a snapshot installed).
    pub fn membership_version(&self) -> u64 {
        self.membership_version
    }

    /// Appends an entry, recording it if it holds a configuration.
    fn push(&mut self, entry: Entry) {
        if let EntryPayload::Membership(m) = &entry.payload {
            self.memberships.push(entry.index, (**m).clone());
            self.membership_version += 1;
        }
        self.entries.push_back(entry);
    }

    /// The first index held in memory (one past the snapshot).
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// The index of the last entry (the snapshot's, if the log is empty).
    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as Index
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    /// The id of the last entry.
    pub fn last_log_id(&self) -> LogId {
        LogId::new(self.last_term(), self.last_index())
    }

    /// The snapshot's last entry: what the log was compacted up to.
    pub fn snapshot(&self) -> LogId {
        self.snapshot
    }

    /// The highest index known to be committed.
    pub fn committed(&self) -> Index {
        self.committed
    }

    /// The highest index durable on this node.
    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// The highest index handed to the application to apply.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The term of the entry at `index`, if this log knows it (it is in memory
    /// or is the snapshot's last entry). Index 0 has term 0.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is in memory.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether the log has the entry `(index, term)`.
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at `(last_term, last_index)` is at least as up to
    /// date as this one (section 5.4.1): the later last term wins, and with
    /// equal terms the longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The last index at or before `index` whose term is at most `term`, with
    /// that term: the backtracking hint. Terms never decrease along the log, so
    /// this is a binary search. Below the in-memory range it answers the
    /// snapshot's id, whose entries are committed and so match any leader's.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let index = index.min(self.last_index());
        if index <= self.snapshot.index {
            return (index, if index == self.snapshot.index { self.snapshot.term } else { 0 });
        }
        // Entries in memory at or before `index`: positions 0..end.
        let end = (index - self.snapshot.index) as usize;
        let position = partition_point(&self.entries, end, |e| e.term <= term);
        if position == 0 {
            (self.snapshot.index, self.snapshot.term)
        } else {
            let entry = &self.entries[position - 1];
            (entry.index, entry.term)
        }
    }

    /// Up to `max_entries` entries from `from` on, within `max_bytes` (the first
    /// entry is always included, however large, so progress is possible).
    pub fn entries_from(&self, from: Index, max_entries: usize, max_bytes: u64) -> Vec<Entry> {
        let Some(start) = from.checked_sub(self.first_index()) else {
            return Vec::new();
        };
        let Ok(start) = usize::try_from(start) else {
            return Vec::new();
        };
        // Count first, then clone into a vector of the right size: this runs
        // for every message the leader sends.
        let start = start.min(self.entries.len());
        let (mut bytes, mut count) = (0, 0);
        for entry in self.entries.range(start..) {
            bytes += entry.size();
            if count == max_entries || (count > 0 && bytes > max_bytes) {
                break;
            }
            count += 1;
        }
        let mut out = Vec::with_capacity(count);
        out.extend(self.entries.range(start..start + count).cloned());
        out
    }

    /// Appends an entry the leader created. Its index must be `last_index + 1`.
    pub(crate) fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        debug_assert!(entry.term >= self.last_term());
        self.push(entry);
    }

    /// Merges entries from the leader that follow `(prev)`, which the caller
    /// has checked matches. Entries already present are kept; the first
    /// conflicting one and everything after it is replaced (section 5.3).
    /// Returns the index the log was truncated from, if it was.
    pub(crate) fn append_after(
        &mut self,
        prev: LogId,
        entries: Vec<Entry>,
    ) -> Result<Option<Index>, LogError> {
        check_run(prev, &entries)?;
        let Some(conflict) = entries.iter().position(|e| !self.matches(e.index, e.term)) else {
            return Ok(None);
        };
        let first_new = entries[conflict].index;
        let mut truncated = None;
        if first_new <= self.last_index() {
            if first_new <= self.committed {
                return Err(LogError::ConflictsWithCommitted { index: first_new, committed: self.committed });
            }
            self.truncate_from(first_new);
            truncated = Some(first_new);
        }
        for entry in entries.into_iter().skip(conflict) {
            self.push(entry);
        }
        Ok(truncated)
    }

    /// Drops every entry from `index` on.
    fn truncate_from(&mut self, index: Index) {
        let keep = (index - self.first_index()) as usize;
        self.entries.truncate(keep);
        if self.memberships.truncate_from(index) {
            self.membership_version += 1;
        }
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// Raises the commit index to `index` (never lowers it, never past the log).
    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Records that the entry `id` and all before it are durable, unless the
    /// entry was replaced since that write was issued.
    pub(crate) fn persisted_to(&mut self, id: LogId) {
        if id.index > self.persisted && self.matches(id.index, id.term) {
            self.persisted = id.index;
        }
    }

    /// Drops the entries up to and including `index` (covered by a snapshot),
    /// if they are all applied. Returns whether anything was dropped.
    pub(crate) fn compact_to(&mut self, index: Index) -> bool {
        if index <= self.snapshot.index || index > self.applied {
            return false;
        }
        let Some(term) = self.term(index) else { return false };
        let count = (index - self.snapshot.index) as usize;
        self.entries.drain(..count);
        self.snapshot = LogId::new(term, index);
        self.memberships.compact_to(index);
        true
    }

    /// Installs a snapshot received from the leader (section 7): if the log
    /// holds the snapshot's last entry, the entries after it are kept;
    /// otherwise the whole log is discarded. Everything up to the snapshot is
    /// then committed and, once the caller restores it, applied.
    ///
    /// Returns what storage must do to its log for it to hold what this log
    /// now holds: storage does not decide by itself, since what it stores
    /// may differ from this log (a suffix truncated here and not yet
    /// rewritten). It keeps its entries after the snapshot only if this log
    /// keeps its suffix and every entry up to the snapshot's last index was
    /// already handed to storage; otherwise storage discards its entries
    /// and the write's entries carry the whole suffix kept here.
    pub(crate) fn install_snapshot(&mut self, meta: &crate::SnapshotMeta) -> LogAfterInstall {
        let last = meta.last;
        let keep_suffix = self.matches(last.index, last.term);
        let stored_keeps_suffix = keep_suffix
            && (self.unstable_from > last.index || mutated(Mutation::SnapshotKeepsSuffixNotYetStored));
        if keep_suffix {
            let count = last.index.saturating_sub(self.snapshot.index) as usize;
            self.entries.drain(..count.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        self.snapshot = last;
        self.memberships.reset(last.index, meta.membership.clone());
        for entry in &self.entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                self.memberships.push(entry.index, (**m).clone());
            }
        }
        self.membership_version += 1;
        self.committed = self.committed.max(last.index);
        self.applied = self.applied.max(last.index);
        // Storage keeps its suffix: what follows it is still to be written.
        // Storage discards its log: all of the suffix kept here is.
        // (Only a mutated build keeps the suffix with `unstable_from` at or
        // below the snapshot: nothing up to it is written after it.)
        self.unstable_from =
            if stored_keeps_suffix { self.unstable_from.max(last.index + 1) } else { last.index + 1 };
        // Nothing after the snapshot is applied before the snapshot itself is
        // durable and restored (its write reports it persisted).
        self.persisted = self.persisted.min(last.index);
        if mutated(Mutation::SnapshotAlwaysKeepsStoredSuffix) {
            return LogAfterInstall::KeepSuffix;
        }
        if stored_keeps_suffix && !mutated(Mutation::SnapshotAlwaysDiscardsStoredLog) {
            LogAfterInstall::KeepSuffix
        } else {
            LogAfterInstall::Discard
        }
    }

    /// Hands out the entries not yet given to storage.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let entries = self.entries_from(self.unstable_from, usize::MAX, u64::MAX);
        self.unstable_from = self.last_index() + 1;
        entries
    }

    /// The last entry already given to storage (or the snapshot's).
    pub(crate) fn stored_last(&self) -> LogId {
        let index = self.unstable_from - 1;
        LogId::new(self.term(index).unwrap_or(self.snapshot.term), index)
    }

    /// Whether some entries have not yet been given to storage.
    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The highest index that may be applied: committed, and durable here (so
    /// that a restarted node never finds its state machine ahead of its log).
    fn applicable(&self) -> Index {
        if mutated(Mutation::ApplyBeforePersist) {
            return self.committed;
        }
        self.committed.min(self.persisted)
    }

    /// Whether committed entries are waiting to be applied.
    pub(crate) fn has_applicable(&self) -> bool {
        self.applicable() > self.applied
    }

    /// Hands out the committed entries not yet applied, marking them applied.
    pub(crate) fn take_applicable(&mut self) -> Vec<Entry> {
        let to = self.applicable();
        if to <= self.applied {
            return Vec::new();
        }
        let count = (to - self.applied) as usize;
        let entries = self.entries_from(self.applied + 1, count, u64::MAX);
        self.applied = to;
        entries
    }
}

/// Checks that `entries` is a run following `prev`: consecutive indexes and
/// terms that never decrease.
fn check_run(prev: LogId, entries: &[Entry]) -> Result<(), LogError> {
    let mut previous = prev;
    for (position, entry) in entries.iter().enumerate() {
        let expected = previous.index.saturating_add(1);
        if entry.index != expected || previous.index == Index::MAX {
            return Err(LogError::NotContiguous { position, expected, found: entry.index });
        }
        if entry.term < previous.term {
            return Err(LogError::TermDecreases {
                index: entry.index,
                term: entry.term,
                previous: previous.term,
            });
        }
        previous = entry.log_id();
    }
    Ok(())
}

/// The number of leading positions in `entries[..end]` for which `pred` holds,
/// given that it holds on a prefix and fails after it.
fn partition_point(entries: &VecDeque<Entry>, end: usize, pred: impl Fn(&Entry) -> bool) -> usize {
    let (mut lo, mut hi) = (0, end.min(entries.len()));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(&entries[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryPayload;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { index, term, payload: EntryPayload::Blank }
    }

    /// A log with the given terms at indexes 1, 2, ...
    fn log(terms: &[Term]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(i, &t)| entry(i as Index + 1, t)).collect();
        RaftLog::restore(LogId::default(), Membership::default(), entries).unwrap()
    }

    #[test]
    fn restore_rejects_gaps_and_decreasing_terms() {
        let gap = RaftLog::restore(LogId::default(), Membership::default(), vec![entry(1, 1), entry(3, 1)]);
        assert!(matches!(gap, Err(LogError::NotContiguous { expected: 2, found: 3, .. })));
        let down = RaftLog::restore(LogId::default(), Membership::default(), vec![entry(1, 2), entry(2, 1)]);
        assert!(matches!(down, Err(LogError::TermDecreases { index: 2, .. })));
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let l = log(&[1, 1, 2, 2, 2, 4, 4, 5]);
        assert_eq!(l.find_conflict_by_term(8, 3), (5, 2));
        assert_eq!(l.find_conflict_by_term(8, 5), (8, 5));
        assert_eq!(l.find_conflict_by_term(4, 1), (2, 1));
        assert_eq!(l.find_conflict_by_term(8, 0), (0, 0));
        assert_eq!(l.find_conflict_by_term(100, 4), (7, 4));
    }

    #[test]
    fn find_conflict_by_term_agrees_with_linear_scan() {
        let terms = [1, 1, 1, 3, 3, 4, 6, 6, 6, 6, 7];
        let l = log(&terms);
        for index in 0..=13 {
            for term in 0..=8 {
                let mut i = index.min(terms.len() as Index);
                while i > 0 && terms[i as usize - 1] > term {
                    i -= 1;
                }
                let t = if i == 0 { 0 } else { terms[i as usize - 1] };
                assert_eq!(l.find_conflict_by_term(index, term), (i, t), "({index}, {term})");
            }
        }
    }

    #[test]
    fn append_after_keeps_matching_entries_and_truncates_conflicts() {
        let mut l = log(&[1, 1, 2, 2]);
        l.take_unstable();
        // Entries already present: nothing changes, nothing becomes unstable.
        l.append_after(LogId::new(1, 1), vec![entry(2, 1), entry(3, 2)]).unwrap();
        assert_eq!(l.last_index(), 4);
        assert!(!l.has_unstable());
        // A conflict at 3 replaces 3 and 4.
        l.append_after(LogId::new(1, 2), vec![entry(3, 3)]).unwrap();
        assert_eq!((l.last_index(), l.last_term()), (3, 3));
        assert_eq!(l.persisted(), 2);
        assert_eq!(l.take_unstable(), vec![entry(3, 3)]);
    }

    #[test]
    fn append_after_refuses_to_rewrite_committed_entries() {
        let mut l = log(&[1, 1, 2]);
        l.commit_to(3);
        let err = l.append_after(LogId::new(1, 1), vec![entry(2, 3)]).unwrap_err();
        assert_eq!(err, LogError::ConflictsWithCommitted { index: 2, committed: 3 });
        assert_eq!(l.last_log_id(), LogId::new(2, 3));
    }

    #[test]
    fn entries_from_respects_budgets_but_always_makes_progress() {
        let l = log(&[1, 1, 1, 1]);
        assert_eq!(l.entries_from(2, 2, u64::MAX).len(), 2);
        assert_eq!(l.entries_from(1, 10, 1).len(), 1);
        assert_eq!(l.entries_from(1, 10, 48).len(), 2);
        assert!(l.entries_from(5, 10, u64::MAX).is_empty());
        assert!(l.entries_from(0, 10, u64::MAX).is_empty());
    }

    #[test]
    fn only_durable_committed_entries_are_applicable() {
        let mut l = log(&[1]);
        l.append(entry(2, 1));
        l.append(entry(3, 1));
        l.commit_to(3);
        assert_eq!(l.take_applicable().len(), 1);
        l.persisted_to(LogId::new(1, 3));
        assert_eq!(l.take_applicable(), vec![entry(2, 1), entry(3, 1)]);
        assert!(!l.has_applicable());
    }

    #[test]
    fn a_stale_persist_report_for_a_replaced_entry_is_ignored() {
        let mut l = log(&[1]);
        l.append(entry(2, 1));
        l.append_after(LogId::new(1, 1), vec![entry(2, 2)]).unwrap();
        l.persisted_to(LogId::new(1, 2));
        assert_eq!(l.persisted(), 1);
        l.persisted_to(LogId::new(2, 2));
        assert_eq!(l.persisted(), 2);
    }

    fn meta(index: Index, term: Term) -> crate::SnapshotMeta {
        crate::SnapshotMeta { last: LogId::new(term, index), membership: Membership::default() }
    }

    /// The stored log keeps its suffix only where this log keeps the same
    /// one: storage does not decide from what it stores (section 7).
    #[test]
    fn install_snapshot_tells_storage_what_becomes_of_its_log() {
        // Everything stored; the snapshot matches: storage keeps 3.., as here.
        let mut l = log(&[1, 1, 1, 1]);
        assert_eq!(l.install_snapshot(&meta(2, 1)), LogAfterInstall::KeepSuffix);
        assert_eq!(l.last_log_id(), LogId::new(1, 4));
        assert!(!l.has_unstable(), "the kept suffix is stored already");

        // Stored 1..=3 of term 1; 2 replaced here by (2,2), not yet written.
        // A snapshot at the stored (2,1): this log is discarded, so is the
        // stored one, though its entry at 2 matches the snapshot.
        let mut l = log(&[1, 1, 1]);
        l.append_after(LogId::new(1, 1), vec![entry(2, 2)]).unwrap();
        assert_eq!(l.install_snapshot(&meta(2, 1)), LogAfterInstall::Discard);
        assert_eq!(l.last_index(), 2);
        assert!(l.take_unstable().is_empty());

        // The same, with the snapshot at the unwritten (2,2): this log keeps
        // its suffix (3,2), all unwritten; the stored (3,1) must go though
        // the stored entry at 2 does not match.
        let mut l = log(&[1, 1, 1]);
        l.append_after(LogId::new(1, 1), vec![entry(2, 2), entry(3, 2)]).unwrap();
        assert_eq!(l.install_snapshot(&meta(2, 2)), LogAfterInstall::Discard);
        assert_eq!(l.take_unstable(), vec![entry(3, 2)], "the write carries the whole kept suffix");

        // Stored 1..=2, 3 appended here and unwritten, a snapshot at 2:
        // storage keeps nothing after 2 but what the write adds.
        let mut l = log(&[1, 1]);
        l.append(entry(3, 1));
        assert_eq!(l.install_snapshot(&meta(2, 1)), LogAfterInstall::KeepSuffix);
        assert_eq!(l.take_unstable(), vec![entry(3, 1)]);
    }
}
