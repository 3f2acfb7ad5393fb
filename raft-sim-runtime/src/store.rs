//! The simulated disk: [`MemLogStore`] behind a seeded write latency.
//!
//! A write (or snapshot save) waits a random while before it lands in the
//! store and returns, so that writes queue behind each other (the writer's
//! group commit merges them) and a crash can strike while one is under way:
//! [`raft_core::runtime::Raft::crash`] aborts the writer at that wait, and
//! the write never lands. What the store holds after a crash is therefore
//! exactly what it acknowledged, plus nothing.

use async_trait::async_trait;
use raft_core::{Entry, Index, LogStore, LogWrite, Snapshot, StorageError, StoredState};
use raft_storage_mem::MemLogStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One node's disk, surviving its crashes (clones share it).
#[derive(Clone)]
pub struct SimStore {
    store: MemLogStore,
    rng: Arc<Mutex<ChaCha8Rng>>,
    max_latency: Duration,
}

impl SimStore {
    /// An empty disk whose writes take up to `max_latency`, drawn from `seed`.
    pub fn new(seed: u64, max_latency: Duration) -> Self {
        Self {
            store: MemLogStore::new(),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
            max_latency,
        }
    }

    async fn latency(&self) {
        let latency = {
            let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rng.random_range(Duration::ZERO..=self.max_latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

#[async_trait]
impl LogStore for SimStore {
    async fn load(&self) -> Result<StoredState, StorageError> {
        self.store.load().await
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        self.latency().await;
        self.store.write(write).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.latency().await;
        self.store.save_snapshot(snapshot).await
    }

    async fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.store.entries(range, max_bytes).await
    }
}
