//! The in-memory store keeps the whole `LogStore` contract.

use raft_core::testing::{log_store_conformance, LogStoreHarness};
use raft_storage_mem::MemLogStore;

struct Harness;

#[async_trait::async_trait]
impl LogStoreHarness for Harness {
    type Store = MemLogStore;

    async fn create(&mut self) -> MemLogStore {
        MemLogStore::new()
    }

    /// A clone shares the state, as a reopened store shares the disk.
    async fn reopen(&mut self, store: MemLogStore) -> MemLogStore {
        let reopened = store.clone();
        drop(store);
        reopened
    }
}

#[tokio::test]
async fn the_memory_store_conforms() {
    log_store_conformance(&mut Harness).await;
}

/// A store that forgets the hard state, to show the suite catches it.
#[derive(Clone, Default)]
struct Forgetful(MemLogStore);

#[async_trait::async_trait]
impl raft_core::LogStore for Forgetful {
    async fn load(&self) -> Result<raft_core::StoredState, raft_core::StorageError> {
        let mut state = self.0.load().await?;
        state.hard_state = Default::default();
        Ok(state)
    }
    async fn write(&self, write: raft_core::LogWrite) -> Result<(), raft_core::StorageError> {
        self.0.write(write).await
    }
    async fn save_snapshot(&self, snapshot: raft_core::Snapshot) -> Result<(), raft_core::StorageError> {
        self.0.save_snapshot(snapshot).await
    }
    async fn entries(
        &self,
        range: std::ops::Range<u64>,
        max_bytes: u64,
    ) -> Result<Vec<raft_core::Entry>, raft_core::StorageError> {
        self.0.entries(range, max_bytes).await
    }
}

struct ForgetfulHarness;

#[async_trait::async_trait]
impl LogStoreHarness for ForgetfulHarness {
    type Store = Forgetful;
    async fn create(&mut self) -> Forgetful {
        Forgetful::default()
    }
    async fn reopen(&mut self, store: Forgetful) -> Forgetful {
        store
    }
}

#[tokio::test]
#[should_panic(expected = "the hard state must load back")]
async fn the_suite_catches_a_store_that_forgets_the_hard_state() {
    log_store_conformance(&mut ForgetfulHarness).await;
}

/// A store that decides from its own log what a leader's snapshot keeps
/// (the stored entry at the snapshot's index matches: keep the entries after
/// it), instead of doing what the core decided: the suite must catch it.
#[derive(Clone, Default)]
struct DecidesFromDisk(MemLogStore);

#[async_trait::async_trait]
impl raft_core::LogStore for DecidesFromDisk {
    async fn load(&self) -> Result<raft_core::StoredState, raft_core::StorageError> {
        self.0.load().await
    }
    async fn write(&self, mut write: raft_core::LogWrite) -> Result<(), raft_core::StorageError> {
        if let Some(install) = &mut write.snapshot {
            let last = install.last();
            let stored = self.0.entries(last.index..last.index + 1, u64::MAX).await;
            let matches = stored.is_ok_and(|e| e.first().is_some_and(|e| e.term == last.term));
            install.log = if matches {
                raft_core::LogAfterInstall::KeepSuffix
            } else {
                raft_core::LogAfterInstall::Discard
            };
        }
        self.0.write(write).await
    }
    async fn save_snapshot(&self, snapshot: raft_core::Snapshot) -> Result<(), raft_core::StorageError> {
        self.0.save_snapshot(snapshot).await
    }
    async fn entries(
        &self,
        range: std::ops::Range<u64>,
        max_bytes: u64,
    ) -> Result<Vec<raft_core::Entry>, raft_core::StorageError> {
        self.0.entries(range, max_bytes).await
    }
}

struct DecidesFromDiskHarness;

#[async_trait::async_trait]
impl LogStoreHarness for DecidesFromDiskHarness {
    type Store = DecidesFromDisk;
    async fn create(&mut self) -> DecidesFromDisk {
        DecidesFromDisk::default()
    }
    async fn reopen(&mut self, store: DecidesFromDisk) -> DecidesFromDisk {
        store
    }
}

#[tokio::test]
#[should_panic(expected = "after a snapshot that discards the log, entries must follow the snapshot")]
async fn the_suite_catches_a_store_that_decides_a_snapshot_install_from_its_own_log() {
    log_store_conformance(&mut DecidesFromDiskHarness).await;
}
