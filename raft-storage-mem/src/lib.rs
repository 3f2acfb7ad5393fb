//! # raft-storage-mem: an in-memory log store
//!
//! [`MemLogStore`] keeps a node's log, hard state and snapshot in memory.
//! "Durable" here means "visible to the next [`LogStore::load`] of any clone
//! of the store": clones share one state, so a test can drop a node and
//! start it again from the same store, as after a restart. Nothing survives
//! the process. Use it for tests, benchmarks and nodes whose state may be
//! rebuilt from the cluster; use `raft-storage-rocksdb` for durability.
//!
//! It keeps the full [`LogStore`] contract, checked by
//! `raft_core::testing::log_store_conformance`.

#![forbid(unsafe_code)]

use async_trait::async_trait;
use raft_core::{
    Entry, HardState, Index, LogAfterInstall, LogStore, LogWrite, Snapshot, SnapshotInstall, StorageError,
    StoredState,
};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// An in-memory [`LogStore`]. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// Consecutive entries; `entries[0].index` is wherever the log was last
    /// purged or reset.
    entries: VecDeque<Entry>,
}

impl Inner {
    fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.last.index)
    }

    fn last_index(&self) -> Index {
        self.entries.back().map_or(0, |e| e.index).max(self.snapshot_index())
    }

    fn position(&self, index: Index) -> Option<usize> {
        let first = self.entries.front()?.index;
        usize::try_from(index.checked_sub(first)?).ok().filter(|&p| p < self.entries.len())
    }

    fn held(&self) -> Range<Index> {
        match (self.entries.front(), self.entries.back()) {
            (Some(first), Some(last)) => first.index..last.index + 1,
            _ => 0..0,
        }
    }

    /// Checks a write against the stored log before changing anything.
    fn check(&self, write: &LogWrite) -> Result<(), StorageError> {
        let Some(first) = write.entries.first().map(|e| e.index) else { return Ok(()) };
        // Where the log ends once the write's snapshot (if any) is installed.
        let last = match &write.snapshot {
            Some(install) => match install.log {
                LogAfterInstall::KeepSuffix => self.last_index().max(install.last().index),
                LogAfterInstall::Discard => install.last().index,
            },
            None => self.last_index(),
        };
        if first > last.saturating_add(1) {
            return Err(StorageError::NotContiguous { first, last });
        }
        Ok(())
    }

    /// Installs a snapshot from the leader, doing to the log what the core
    /// decided (contract rule 3), whatever the stored entries say.
    fn install(&mut self, install: SnapshotInstall) {
        let last = install.last();
        match install.log {
            LogAfterInstall::KeepSuffix => self.entries.retain(|e| e.index > last.index),
            LogAfterInstall::Discard => self.entries.clear(),
        }
        self.snapshot = Some(install.snapshot);
    }

    fn append(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else { return };
        while self.entries.back().is_some_and(|e| e.index >= first) {
            self.entries.pop_back();
        }
        if self.entries.back().is_some_and(|e| e.index + 1 != first) {
            self.entries.clear();
        }
        self.entries.extend(entries);
    }
}

impl MemLogStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StorageError> {
        // A panic while the lock was held may have left a half-applied write.
        self.inner.lock().map_err(|_| StorageError::Corrupt("a writer panicked mid-write".into()))
    }
}

#[async_trait]
impl LogStore for MemLogStore {
    async fn load(&self) -> Result<StoredState, StorageError> {
        let inner = self.lock()?;
        let after = inner.snapshot_index();
        Ok(StoredState {
            hard_state: inner.hard_state,
            snapshot: inner.snapshot.clone(),
            entries: inner.entries.iter().filter(|e| e.index > after).cloned().collect(),
        })
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        let mut inner = self.lock()?;
        inner.check(&write)?;
        if let Some(hard_state) = write.hard_state {
            inner.hard_state = hard_state;
        }
        if let Some(install) = write.snapshot {
            inner.install(install);
        }
        inner.append(write.entries);
        if let Some(index) = write.purge_to {
            while inner.entries.front().is_some_and(|e| e.index <= index) {
                inner.entries.pop_front();
            }
        }
        Ok(())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        let mut inner = self.lock()?;
        if snapshot.meta.last.index > inner.snapshot_index() {
            inner.snapshot = Some(snapshot);
        }
        Ok(())
    }

    async fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock()?;
        let held = inner.held();
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if range.start < held.start || range.end > held.end {
            return Err(StorageError::Unavailable { requested: range, held });
        }
        let mut bytes = 0;
        let mut out = Vec::new();
        for index in range {
            let Some(entry) = inner.position(index).map(|p| &inner.entries[p]) else { break };
            bytes += entry.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }
}

/// A key-value map as a replicated state machine: for tests, examples and
/// benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemKv {
    data: std::collections::BTreeMap<String, String>,
}

/// What [`MemKv`] applies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Changes nothing (for benchmarks: an empty payload).
    Noop,
}

impl MemKv {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl raft_core::runtime::StateMachine for MemKv {
    type Command = KvCommand;
    /// The key's previous value.
    type Response = Option<String>;

    fn apply(&mut self, _entry: raft_core::LogId, command: KvCommand) -> Option<String> {
        match command {
            KvCommand::Set { key, value } => self.data.insert(key, value),
            KvCommand::Delete { key } => self.data.remove(&key),
            KvCommand::Noop => None,
        }
    }

    fn snapshot(&self) -> raft_core::SnapshotData {
        // Encoding a map of strings into memory cannot fail short of the
        // codec's per-value limit; an empty snapshot then restores to an
        // empty map, which the error log says.
        let mut writer = raft_core::SnapshotData::writer();
        if let Err(error) = raft_core::codec::encode_to_writer(&self.data, &mut writer) {
            tracing::error!(%error, "cannot encode the snapshot");
        }
        writer.finish()
    }

    fn restore(
        &mut self,
        snapshot: &raft_core::SnapshotData,
    ) -> Result<(), raft_core::runtime::RestoreError> {
        if snapshot.is_empty() {
            self.data.clear();
            return Ok(());
        }
        // The snapshot is the encoded map: its length, then its entries. It
        // is decoded entry by entry, each under the codec's per-value limit,
        // rather than as one value, which that limit would cap at 64 MiB
        // of state. A hostile length only runs the loop to the input's end.
        let fail = |e: raft_core::codec::CodecError| raft_core::runtime::RestoreError(e.to_string());
        let mut reader = snapshot.reader();
        let len: u64 = raft_core::codec::decode_from_reader(&mut reader).map_err(fail)?;
        let mut data = std::collections::BTreeMap::new();
        for _ in 0..len {
            let (key, value): (String, String) =
                raft_core::codec::decode_from_reader(&mut reader).map_err(fail)?;
            data.insert(key, value);
        }
        self.data = data;
        Ok(())
    }
}
