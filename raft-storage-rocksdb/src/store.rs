//! The blocking core of the store: opening, and each operation as one
//! RocksDB batch. The async [`crate::RocksLogStore`] runs these on tokio's
//! blocking threads.
//!
//! Invariants:
//! - The log column family holds consecutive indexes `held.start..held.end`
//!   (empty: `0..0`); every operation keeps it so by range-deleting
//!   whatever would leave a gap, in the same batch as the change.
//! - `state` mirrors what the last committed batch made durable; it is
//!   changed only after the batch commits, under the lock that serialises
//!   writers, so a failed batch leaves it as it was.
//! - A snapshot record in the database always refers to a durable file.

use crate::layout::{self, *};
use crate::snapshot_file::{sync_dir, SnapshotDir};
use crate::{OpenError, RocksLogStoreOptions};
use raft_core::{
    codec, Entry, HardState, Index, LogAfterInstall, LogWrite, Snapshot, StorageError, StoredState,
};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, WriteBatch, WriteOptions, DB};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// An open store.
pub(crate) struct Core {
    db: DB,
    path: PathBuf,
    snapshots: SnapshotDir,
    write_options: WriteOptions,
    compact_after_purging: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The stored log indexes.
    held: Range<Index>,
    /// The snapshot the store holds.
    snapshot: Option<SnapshotRecord>,
    /// Entries purged since the purged range was last compacted.
    purged_since_compaction: u64,
}

impl State {
    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.last.index)
    }

    /// The last index of the log: the last stored entry, or the snapshot's.
    fn last_index(&self) -> Index {
        self.held.end.saturating_sub(1).max(self.snapshot_index())
    }
}

/// What a committed write leaves to do outside the writer lock.
#[derive(Debug, Default)]
pub(crate) struct AfterWrite {
    /// Compact the log's keys before this index.
    pub(crate) compact_before: Option<Index>,
}

impl Core {
    /// Opens or creates the store at `path`.
    pub(crate) fn open(path: &Path, options: &RocksLogStoreOptions) -> Result<Self, OpenError> {
        let db_path = path.join(DB_DIR);
        let fresh = check_directory(path, &db_path)?;
        let db_options = options.db_options();
        if !fresh {
            let families = DB::list_cf(&db_options, &db_path).map_err(|e| OpenError::NotOurs {
                path: path.to_owned(),
                reason: format!("its database cannot be read ({e})"),
            })?;
            // A first open that crashed before creating the column families
            // leaves only the default one (checked to be empty below).
            let half_created = families.iter().all(|f| f == rocksdb::DEFAULT_COLUMN_FAMILY_NAME);
            let missing = COLUMN_FAMILIES.iter().find(|name| !families.iter().any(|f| f == *name));
            if let Some(missing) =
                missing.filter(|_| !half_created || !default_is_empty(&db_options, &db_path))
            {
                return Err(OpenError::NotOurs {
                    path: path.to_owned(),
                    reason: format!("its database has no column family {missing}"),
                });
            }
        }
        let descriptors = [
            ColumnFamilyDescriptor::new(META_CF, options.small_options()),
            ColumnFamilyDescriptor::new(LOG_CF, options.log_options()),
            ColumnFamilyDescriptor::new(HARD_STATE_CF, options.small_options()),
        ];
        let db = DB::open_cf_descriptors(&db_options, &db_path, descriptors).map_err(rocks_error)?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.sync);
        let snapshots = SnapshotDir::open(path.join(SNAPSHOT_DIR)).map_err(StorageError::from)?;
        if fresh {
            sync_dir(path).map_err(StorageError::from)?;
        }
        let mut core = Self {
            db,
            path: path.to_owned(),
            snapshots,
            write_options,
            compact_after_purging: options.compact_after_purging,
            state: Mutex::new(State { held: 0..0, snapshot: None, purged_since_compaction: 0 }),
        };
        core.check_or_record_identity(options.cluster_id)?;
        let snapshot = core.read_snapshot_record()?;
        core.snapshots.clean(snapshot.as_ref().map(|s| s.file.as_str())).map_err(StorageError::from)?;
        let held = core.read_held()?;
        core.state = Mutex::new(State { held, snapshot, purged_since_compaction: 0 });
        Ok(core)
    }

    /// Checks the magic, the format versions and the cluster id, recording
    /// them (in one synced batch) if the store is new.
    fn check_or_record_identity(&self, cluster_id: u64) -> Result<(), OpenError> {
        let meta = self.cf(META_CF)?;
        let not_ours = |reason: &str| OpenError::NotOurs { path: self.path.clone(), reason: reason.into() };
        match self.db.get_cf(meta, MAGIC_KEY).map_err(rocks_error)? {
            Some(magic) if magic == MAGIC => {}
            Some(_) => return Err(not_ours("its database carries another magic")),
            None => {
                // Only a first open that crashed before recording its identity
                // leaves our column families without it, and then empty.
                let mut default = self.db.raw_iterator();
                default.seek_to_first();
                default.status().map_err(rocks_error)?;
                if default.valid()
                    || !self.is_empty(LOG_CF)?
                    || !self.is_empty(HARD_STATE_CF)?
                    || !self.is_empty(META_CF)?
                {
                    return Err(not_ours("its database holds data but no raft-storage-rocksdb magic"));
                }
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, FORMAT_KEY, [STORE_FORMAT_VERSION, codec::FORMAT_VERSION]);
                batch.put_cf(meta, CLUSTER_KEY, cluster_id.to_be_bytes());
                batch.put_cf(meta, MAGIC_KEY, MAGIC);
                let mut synced = WriteOptions::default();
                synced.set_sync(true);
                self.db.write_opt(batch, &synced).map_err(rocks_error)?;
            }
        }
        let format = self.db.get_cf(meta, FORMAT_KEY).map_err(rocks_error)?.unwrap_or_default();
        let [store_version, codec_version] = <[u8; 2]>::try_from(format.as_slice())
            .map_err(|_| StorageError::Corrupt(format!("format version record of {} bytes", format.len())))?;
        for (what, found, supported) in [
            ("store layout", store_version, STORE_FORMAT_VERSION),
            ("value codec", codec_version, codec::FORMAT_VERSION),
        ] {
            if found > supported {
                return Err(OpenError::NewerFormat { path: self.path.clone(), what, found, supported });
            }
            if found < supported {
                return Err(StorageError::Corrupt(format!("{what} version {found} never existed")).into());
            }
        }
        let found = self.db.get_cf(meta, CLUSTER_KEY).map_err(rocks_error)?.unwrap_or_default();
        let found = <[u8; 8]>::try_from(found.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StorageError::Corrupt(format!("cluster id record of {} bytes", found.len())))?;
        if found != cluster_id {
            return Err(OpenError::OtherCluster { path: self.path.clone(), expected: cluster_id, found });
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Corrupt(format!("column family {name} is missing")))
    }

    fn is_empty(&self, name: &str) -> Result<bool, StorageError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(name)?);
        iter.seek_to_first();
        iter.status().map_err(rocks_error)?;
        Ok(!iter.valid())
    }

    fn read_snapshot_record(&self) -> Result<Option<SnapshotRecord>, StorageError> {
        let bytes = self.db.get_cf(self.cf(META_CF)?, SNAPSHOT_KEY).map_err(rocks_error)?;
        bytes.map(|bytes| layout::decode(&bytes, "snapshot record")).transpose()
    }

    /// The stored range of the log, from its first and last keys.
    fn read_held(&self) -> Result<Range<Index>, StorageError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(LOG_CF)?);
        iter.seek_to_first();
        iter.status().map_err(rocks_error)?;
        let Some(first) = iter.key().map(index_of).transpose()? else { return Ok(0..0) };
        iter.seek_to_last();
        iter.status().map_err(rocks_error)?;
        let last = iter.key().map(index_of).transpose()?.unwrap_or(first);
        if last < first {
            return Err(StorageError::Corrupt(format!("log ends at {last} before it starts at {first}")));
        }
        Ok(first..last + 1)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StorageError> {
        // A panic while the lock was held may have left `state` out of step.
        self.state.lock().map_err(|_| StorageError::Corrupt("a writer panicked mid-write".into()))
    }

    /// Loads the hard state, the snapshot and the entries after it.
    pub(crate) fn load(&self) -> Result<StoredState, StorageError> {
        // Under the writer lock: one consistent view of all three.
        let _state = self.lock()?;
        let hard_state = match self.db.get_cf(self.cf(HARD_STATE_CF)?, HARD_STATE_KEY).map_err(rocks_error)? {
            Some(bytes) => layout::decode(&bytes, "hard state")?,
            None => HardState::default(),
        };
        let snapshot = self.read_snapshot_record()?.map(|record| self.snapshots.read(&record)).transpose()?;
        let after = snapshot.as_ref().map_or(0, |s| s.meta.last.index);
        let mut entries = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.cf(LOG_CF)?);
        iter.seek(log_key(after.saturating_add(1)));
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let index = index_of(key)?;
            if let Some(previous) = entries.last().map(|e: &Entry| e.index) {
                if index != previous + 1 {
                    return Err(StorageError::Corrupt(format!("the log skips from {previous} to {index}")));
                }
            }
            entries.push(decode_entry(index, value)?);
            iter.next();
        }
        iter.status().map_err(rocks_error)?;
        Ok(StoredState { hard_state, snapshot, entries })
    }

    /// Stored entries in `range`, within `max_bytes` (but at least one).
    pub(crate) fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let state = self.lock()?;
        let held = state.held.clone();
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if range.start < held.start || range.end > held.end {
            return Err(StorageError::Unavailable { requested: range, held });
        }
        let mut iter = self.db.raw_iterator_cf(self.cf(LOG_CF)?);
        drop(state);
        iter.seek(log_key(range.start));
        let mut out = Vec::new();
        let mut bytes = 0;
        for expected in range {
            iter.status().map_err(rocks_error)?;
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                return Err(StorageError::Corrupt(format!("entry {expected} is missing from the log")));
            };
            let index = index_of(key)?;
            if index != expected {
                return Err(StorageError::Corrupt(format!("entry {expected} is missing from the log")));
            }
            let entry = decode_entry(index, value)?;
            bytes += entry.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry);
            iter.next();
        }
        Ok(out)
    }

    /// Applies `write` in one synced batch: hard state, snapshot, entries,
    /// purge, in that order (contract rule 1).
    pub(crate) fn write(&self, write: LogWrite) -> Result<AfterWrite, StorageError> {
        let mut state = self.lock()?;
        let held = state.held.clone();

        // Check everything before changing anything (rule 2). What a
        // snapshot does to the log is the core's decision (rule 3).
        if let Some(first) = write.entries.first().map(|e| e.index) {
            let last = match &write.snapshot {
                Some(install) => match install.log {
                    LogAfterInstall::KeepSuffix => state.last_index().max(install.last().index),
                    LogAfterInstall::Discard => install.last().index,
                },
                None => state.last_index(),
            };
            if first > last.saturating_add(1) {
                return Err(StorageError::NotContiguous { first, last });
            }
            for pair in write.entries.windows(2) {
                if pair[1].index != pair[0].index + 1 {
                    return Err(StorageError::NotContiguous { first: pair[1].index, last: pair[0].index });
                }
            }
        }

        let mut new_snapshot = None;
        let (batch, held, purged) =
            self.batch_for(&write, held, &mut new_snapshot).inspect_err(|_| self.forget(&new_snapshot))?;
        // A failed commit may still be durable, so its snapshot file stays
        // (the next open removes it if nothing refers to it).
        self.db.write_opt(batch, &self.write_options).map_err(rocks_error)?;
        state.held = held;
        if let Some(record) = new_snapshot {
            // Only now that no durable record refers to the old file.
            if let Some(old) = state.snapshot.replace(record) {
                self.snapshots.remove(&old.file);
            }
        }
        state.purged_since_compaction += purged;
        let mut after = AfterWrite::default();
        if self.compact_after_purging > 0 && state.purged_since_compaction >= self.compact_after_purging {
            state.purged_since_compaction = 0;
            after.compact_before = Some(state.held.start.max(write.purge_to.unwrap_or(0).saturating_add(1)));
        }
        Ok(after)
    }

    /// The batch that applies `write` to a log holding `held`, the log's
    /// range after it, and how many entries it purges. A snapshot in the
    /// write is written to its file first; `new_snapshot` records it.
    fn batch_for(
        &self,
        write: &LogWrite,
        mut held: Range<Index>,
        new_snapshot: &mut Option<SnapshotRecord>,
    ) -> Result<(WriteBatch, Range<Index>, u64), StorageError> {
        let log = self.cf(LOG_CF)?;
        let mut batch = WriteBatch::default();
        if let Some(hard_state) = &write.hard_state {
            batch.put_cf(self.cf(HARD_STATE_CF)?, HARD_STATE_KEY, layout::encode(hard_state)?);
        }
        if let Some(install) = &write.snapshot {
            // The file is durable before the batch that refers to it.
            let record = new_snapshot.insert(self.snapshots.write(&install.snapshot)?);
            batch.put_cf(self.cf(META_CF)?, SNAPSHOT_KEY, layout::encode(record)?);
            let end = match install.log {
                // Whatever the snapshot's index, `held` stays one range.
                LogAfterInstall::KeepSuffix => {
                    install.last().index.saturating_add(1).max(held.start).min(held.end)
                }
                LogAfterInstall::Discard => held.end,
            };
            delete_range(&mut batch, log, held.start..end);
            held = end..held.end;
        }
        if let (Some(first), Some(last)) = (write.entries.first(), write.entries.last()) {
            let (first, last) = (first.index, last.index);
            if held.is_empty() || first < held.start || first > held.end {
                // No stored log, or the new entries start before it or after
                // a gap a snapshot covers: they replace all of it.
                delete_range(&mut batch, log, held.clone());
                held = first..first;
            } else {
                // A conflicting suffix, if any, goes.
                delete_range(&mut batch, log, first..held.end);
            }
            for entry in &write.entries {
                batch.put_cf(log, log_key(entry.index), layout::encode(entry)?);
            }
            held.end = last + 1;
        }
        let mut purged = 0;
        if let Some(purge_to) = write.purge_to {
            let end = purge_to.saturating_add(1).min(held.end);
            if end > held.start {
                delete_range(&mut batch, log, held.start..end);
                purged = end - held.start;
                held.start = end;
            }
        }
        if held.is_empty() {
            held = 0..0;
        }
        Ok((batch, held, purged))
    }

    /// Saves a snapshot this node built, leaving the log alone. An older
    /// snapshot than the stored one changes nothing.
    pub(crate) fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        let index = snapshot.meta.last.index;
        if index <= self.lock()?.snapshot_index() {
            return Ok(());
        }
        // The file, possibly large, is written outside the writer lock.
        let record = self.snapshots.write(&snapshot)?;
        let unused = Some(record.clone());
        let mut state = self.lock().inspect_err(|_| self.forget(&unused))?;
        if index <= state.snapshot_index() {
            // A newer one was saved meanwhile.
            self.forget(&unused);
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let value = layout::encode(&record).inspect_err(|_| self.forget(&unused))?;
        batch.put_cf(self.cf(META_CF).inspect_err(|_| self.forget(&unused))?, SNAPSHOT_KEY, value);
        // A failed commit may still be durable: its file stays (see `write`).
        self.db.write_opt(batch, &self.write_options).map_err(rocks_error)?;
        if let Some(old) = state.snapshot.replace(record) {
            self.snapshots.remove(&old.file);
        }
        Ok(())
    }

    /// Removes a snapshot file written for a batch that was never committed.
    fn forget(&self, record: &Option<SnapshotRecord>) {
        if let Some(record) = record {
            self.snapshots.remove(&record.file);
        }
    }

    /// Compacts the log's keys before `end`: the purged range, whose range
    /// tombstones and dead entries are then dropped from disk.
    pub(crate) fn compact_log_before(&self, end: Index) {
        if let Ok(log) = self.cf(LOG_CF) {
            self.db.compact_range_cf(log, None::<&[u8]>, Some(log_key(end)));
        }
    }
}

/// Whether the database at `path`, opened read-only so that a foreign one
/// is left untouched, holds nothing in its default column family.
fn default_is_empty(options: &rocksdb::Options, path: &Path) -> bool {
    let Ok(db) = DB::open_for_read_only(options, path, false) else { return false };
    let mut iter = db.raw_iterator();
    iter.seek_to_first();
    iter.status().is_ok() && !iter.valid()
}

fn delete_range(batch: &mut WriteBatch, log: &ColumnFamily, range: Range<Index>) {
    if !range.is_empty() {
        batch.delete_range_cf(log, log_key(range.start), log_key(range.end));
    }
}

fn decode_entry(index: Index, value: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = layout::decode(value, &format!("entry {index}"))?;
    if entry.index != index {
        return Err(StorageError::Corrupt(format!("entry {} stored under index {index}", entry.index)));
    }
    Ok(entry)
}

/// Checks that `path` is a new or empty directory (creating it if missing:
/// returns `true`) or holds our database (`false`).
fn check_directory(path: &Path, db_path: &Path) -> Result<bool, OpenError> {
    let not_ours = |reason: &str| OpenError::NotOurs { path: path.to_owned(), reason: reason.into() };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(StorageError::from)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(StorageError::from)?;
            }
            return Ok(true);
        }
        Err(e) => return Err(StorageError::from(e).into()),
        Ok(metadata) if !metadata.is_dir() => return Err(not_ours("it is not a directory")),
        Ok(_) => {}
    }
    if db_path.join("CURRENT").is_file() {
        return Ok(false);
    }
    // Empty, or what a first open that crashed before RocksDB wrote its
    // CURRENT file leaves: start afresh.
    for entry in std::fs::read_dir(path).map_err(StorageError::from)? {
        let name = entry.map_err(StorageError::from)?.file_name();
        if name != DB_DIR && name != SNAPSHOT_DIR {
            return Err(not_ours("it holds files but no raft-storage-rocksdb database"));
        }
    }
    Ok(true)
}
