//! # raft-storage-rocksdb: the durable log store
//!
//! [`RocksLogStore`] keeps a node's Raft log, hard state (term and vote) and
//! latest snapshot on disk: the log and the hard state in their own RocksDB
//! column families, the snapshot in a file beside the database. It keeps
//! the whole [`LogStore`] contract of `raft-core`, checked by
//! `raft_core::testing::log_store_conformance`.
//!
//! ```no_run
//! use raft_core::{Entry, EntryPayload, HardState, LogStore, LogWrite};
//! use raft_storage_rocksdb::{RocksLogStore, RocksLogStoreOptions};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Created on first open, for cluster 7; refused later for any other cluster.
//! let store = RocksLogStore::open("/var/lib/my-node/raft", RocksLogStoreOptions::new(7)).await?;
//! let stored = store.load().await?; // what survived the last run
//! let next = stored.entries.last().map_or(1, |e| e.index + 1);
//! store
//!     .write(LogWrite {
//!         hard_state: Some(HardState { term: 1, vote: Some(1) }),
//!         entries: vec![Entry { term: 1, index: next, payload: EntryPayload::Blank }],
//!         ..Default::default()
//!     })
//!     .await?; // returns once both are synced to disk
//! store.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## What is durable when
//!
//! - [`LogStore::write`] turns the whole [`LogWrite`] (hard state, snapshot,
//!   entries, purge) into **one** RocksDB write batch, written to the WAL and
//!   synced (`fdatasync`) before it returns. When it returns `Ok`, all of it
//!   survives a process crash, a kernel crash and a power loss (as far as the
//!   device honours flushes); if the process dies earlier, after a restart
//!   the write is there entirely or not at all. The runtime merges queued
//!   writes into one (group commit), so one sync covers many proposals.
//! - [`LogStore::save_snapshot`] and a snapshot in a write first write the
//!   snapshot file under a temporary name, sync it, rename it, and sync the
//!   directory; only then does the batch that refers to it commit. A file
//!   nothing refers to (a crash in between) and temporary files are deleted
//!   at the next open, a superseded file once the batch replacing it is
//!   durable. A file whose checksum does not match is never loaded.
//! - Truncating a conflicting suffix and purging a compacted prefix are range
//!   deletes inside the same batch: no scan, and atomic with the write they
//!   belong to. The space purged entries took is reclaimed by compacting the
//!   purged range in the background every
//!   [`RocksLogStoreOptions::compact_after_purging`] entries.
//! - Writes are synced only with the default
//!   [`RocksLogStoreOptions::sync_writes`]`(true)`; `false` is for
//!   measurements.
//!
//! The crate's crash test kills a writing process with SIGKILL at random
//! moments and checks that every acknowledged write is there after a
//! restart. That tests process crashes, where the operating system's page
//! cache survives; it cannot show what a power loss does, which rests on
//! the syncs above and on the device.
//!
//! ## Opening
//!
//! [`RocksLogStore::open`] creates a missing (or empty) directory and records
//! the store's magic, format versions and cluster id in it. It refuses, with
//! an [`OpenError`], a directory holding anything else
//! ([`OpenError::NotOurs`]), a store of another cluster
//! ([`OpenError::OtherCluster`]), and one written by a newer version of this
//! crate ([`OpenError::NewerFormat`]). Values read back that do not decode
//! are a [`StorageError::Corrupt`]: the node stops rather than run on, or
//! silently drop, damaged data.
//!
//! ## Threads
//!
//! RocksDB calls block, so every operation runs on tokio's blocking thread
//! pool (`spawn_blocking`); the store must be used inside a tokio runtime.
//! Writes (and snapshot saves) are serialised: each is durable before the
//! next begins, so writes become durable in the order they were made.

#![forbid(unsafe_code)]

mod layout;
mod options;
mod snapshot_file;
mod store;

pub use layout::STORE_FORMAT_VERSION;
pub use options::RocksLogStoreOptions;

use async_trait::async_trait;
use raft_core::{Entry, Index, LogStore, LogWrite, Snapshot, StorageError, StoredState};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use store::Core;
use thiserror::Error;
use tokio::task::JoinHandle;

/// A durable [`LogStore`] on RocksDB. See the crate documentation for what
/// is durable when.
pub struct RocksLogStore {
    core: Arc<Core>,
    path: PathBuf,
    /// The background compaction of a purged range, if one was started.
    compaction: Mutex<Option<JoinHandle<()>>>,
}

/// Why a store could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The directory holds something other than a store of this crate.
    #[error("{path} is not a raft-storage-rocksdb store: {reason}")]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The store belongs to another cluster.
    #[error("the store at {path} belongs to cluster {found}, not {expected}")]
    OtherCluster {
        /// The directory.
        path: PathBuf,
        /// The cluster id in the options.
        expected: u64,
        /// The cluster id the store recorded when it was created.
        found: u64,
    },
    /// The store was written in a format newer than this build reads.
    #[error("the store at {path} has {what} version {found}; this build reads up to {supported}")]
    NewerFormat {
        /// The directory.
        path: PathBuf,
        /// Which format: the store layout or the value codec.
        what: &'static str,
        /// The version the store recorded.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// The store could not be read, or what it holds is corrupt.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl RocksLogStore {
    /// Opens the store at `path`, creating it if the directory is missing or
    /// empty. See the crate documentation for what is refused.
    pub async fn open(path: impl AsRef<Path>, options: RocksLogStoreOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_owned();
        let opening = path.clone();
        let core = tokio::task::spawn_blocking(move || Core::open(&opening, &options))
            .await
            .map_err(join_error)??;
        Ok(Self { core: Arc::new(core), path, compaction: Mutex::new(None) })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for background work (a compaction of purged entries) to end and
    /// closes the database. Dropping the store closes it too, once such work
    /// ends; close it this way before opening the same directory again.
    pub async fn close(self) {
        let running = self.compaction.lock().ok().and_then(|mut slot| slot.take());
        if let Some(compaction) = running {
            let _ = compaction.await;
        }
    }

    /// Runs `operation` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Core) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || operation(&core)).await.map_err(join_error)?
    }

    /// Starts compacting the log before `end`, unless a compaction runs.
    fn compact_in_background(&self, end: Index) {
        let Ok(mut slot) = self.compaction.lock() else { return };
        if slot.as_ref().is_some_and(|running| !running.is_finished()) {
            return;
        }
        let core = Arc::clone(&self.core);
        *slot = Some(tokio::task::spawn_blocking(move || core.compact_log_before(end)));
    }
}

impl std::fmt::Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore").field("path", &self.path).finish_non_exhaustive()
    }
}

#[async_trait]
impl LogStore for RocksLogStore {
    async fn load(&self) -> Result<StoredState, StorageError> {
        self.blocking(Core::load).await
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        let after = self.blocking(move |core| core.write(write)).await?;
        if let Some(end) = after.compact_before {
            self.compact_in_background(end);
        }
        Ok(())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.blocking(move |core| core.save_snapshot(snapshot)).await
    }

    async fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.blocking(move |core| core.entries(range, max_bytes)).await
    }
}

/// A blocking task that did not finish: the runtime is shutting down, or
/// the task panicked (which the store's code never does on bad input).
fn join_error(error: tokio::task::JoinError) -> StorageError {
    if error.is_cancelled() {
        StorageError::Closed
    } else {
        StorageError::Io(std::io::Error::other(format!("a storage task failed: {error}")))
    }
}
