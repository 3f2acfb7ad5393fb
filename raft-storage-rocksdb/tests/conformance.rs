//! The RocksDB store keeps the whole `LogStore` contract.

use raft_core::testing::{log_store_conformance, LogStoreHarness};
use raft_storage_rocksdb::{RocksLogStore, RocksLogStoreOptions};
use tempfile::TempDir;

/// Each store in its own directory, kept until the suite ends.
#[derive(Default)]
struct Harness {
    dirs: Vec<TempDir>,
}

#[async_trait::async_trait]
impl LogStoreHarness for Harness {
    type Store = RocksLogStore;

    async fn create(&mut self) -> RocksLogStore {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = RocksLogStore::open(dir.path().join("store"), RocksLogStoreOptions::new(1)).await;
        self.dirs.push(dir);
        store.expect("a new store opens")
    }

    /// Closed, then opened again from its directory.
    async fn reopen(&mut self, store: RocksLogStore) -> RocksLogStore {
        let path = store.path().to_owned();
        store.close().await;
        RocksLogStore::open(path, RocksLogStoreOptions::new(1)).await.expect("the store reopens")
    }
}

#[tokio::test]
async fn the_rocksdb_store_conforms() {
    log_store_conformance(&mut Harness::default()).await;
}
