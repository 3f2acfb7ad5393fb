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

/// How a [`Broken`] store breaks the contract, to show the suite catches it.
#[derive(Clone, Copy, Default)]
enum Flaw {
    /// It forgets the hard state.
    #[default]
    ForgetsHardState,
    /// It decides from its own log what a leader's snapshot keeps (the
    /// stored entry at the snapshot's index matches: keep the entries after
    /// it), instead of doing what the core decided.
    DecidesFromDisk,
}

/// The memory store with one [`Flaw`].
#[derive(Clone, Default)]
struct Broken {
    store: MemLogStore,
    flaw: Flaw,
}

#[async_trait::async_trait]
impl raft_core::LogStore for Broken {
    async fn load(&self) -> Result<raft_core::StoredState, raft_core::StorageError> {
        let mut state = self.store.load().await?;
        if let Flaw::ForgetsHardState = self.flaw {
            state.hard_state = Default::default();
        }
        Ok(state)
    }
    async fn write(&self, mut write: raft_core::LogWrite) -> Result<(), raft_core::StorageError> {
        if let (Flaw::DecidesFromDisk, Some(install)) = (self.flaw, &mut write.snapshot) {
            let last = install.last();
            let stored = self.store.entries(last.index..last.index + 1, u64::MAX).await;
            let matches = stored.is_ok_and(|e| e.first().is_some_and(|e| e.term == last.term));
            install.log = if matches {
                raft_core::LogAfterInstall::KeepSuffix
            } else {
                raft_core::LogAfterInstall::Discard
            };
        }
        self.store.write(write).await
    }
    async fn save_snapshot(&self, snapshot: raft_core::Snapshot) -> Result<(), raft_core::StorageError> {
        self.store.save_snapshot(snapshot).await
    }
    async fn entries(
        &self,
        range: std::ops::Range<u64>,
        max_bytes: u64,
    ) -> Result<Vec<raft_core::Entry>, raft_core::StorageError> {
        self.store.entries(range, max_bytes).await
    }
}

struct BrokenHarness(Flaw);

#[async_trait::async_trait]
impl LogStoreHarness for BrokenHarness {
    type Store = Broken;
    async fn create(&mut self) -> Broken {
        Broken { store: MemLogStore::new(), flaw: self.0 }
    }
    async fn reopen(&mut self, store: Broken) -> Broken {
        store
    }
}

#[tokio::test]
#[should_panic(expected = "the hard state must load back")]
async fn the_suite_catches_a_store_that_forgets_the_hard_state() {
    log_store_conformance(&mut BrokenHarness(Flaw::ForgetsHardState)).await;
}

#[tokio::test]
#[should_panic(expected = "after a snapshot that discards the log, entries must follow the snapshot")]
async fn the_suite_catches_a_store_that_decides_a_snapshot_install_from_its_own_log() {
    log_store_conformance(&mut BrokenHarness(Flaw::DecidesFromDisk)).await;
}
