//! A node whose store fails stops, and tells every caller why in a typed
//! error: which store call failed, and the store's own error, to match on.

mod common;

use async_trait::async_trait;
use common::{config, set, within};
use raft_core::runtime::{Failure, InProcessNetwork, Inbox, Raft, RaftError, RuntimeConfig, StoreCall};
use raft_core::{Entry, Index, LogStore, LogWrite, Membership, Role, Snapshot, StorageError, StoredState};
use raft_storage_mem::{MemKv, MemLogStore};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A memory store whose writes fail with an I/O error once `broken` is set.
#[derive(Clone, Default)]
struct Breakable {
    inner: MemLogStore,
    broken: Arc<AtomicBool>,
}

#[async_trait]
impl LogStore for Breakable {
    async fn load(&self) -> Result<StoredState, StorageError> {
        self.inner.load().await
    }

    async fn write(&self, write: LogWrite) -> Result<(), StorageError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StorageError::Io(std::io::Error::other("the disk is gone")));
        }
        self.inner.write(write).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn entries(&self, range: Range<Index>, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(range, max_bytes).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_node_with_the_stores_own_error() {
    let net = InProcessNetwork::new();
    let store = Breakable::default();
    let node: Raft<MemKv> = Raft::start(
        config(1),
        RuntimeConfig::default(),
        Membership::new([1], []),
        store.clone(),
        net.transport(1),
        Inbox::default(),
        MemKv::default(),
    )
    .await
    .expect("the node starts");
    let mut metrics = node.metrics();
    within("an election", metrics.wait_for(|m| m.role == Role::Leader)).await.expect("running");
    within("a proposal", node.propose(set("a", "1"))).await.expect("applied");

    store.broken.store(true, Ordering::SeqCst);
    let interrupted = within("a proposal on a broken disk", node.propose(set("b", "2"))).await;
    let later = within("a request after the failure", node.propose(set("c", "3"))).await;
    for outcome in [interrupted, later] {
        let Err(RaftError::Failed(failure)) = outcome else {
            panic!("a caller learns that the node failed, and why: {outcome:?}");
        };
        assert!(matches!(failure, Failure::Store { call: StoreCall::Write, .. }), "{failure:?}");
        let Some(StorageError::Io(io)) = failure.storage_error() else {
            panic!("the store's own error is kept: {failure:?}");
        };
        assert_eq!(io.to_string(), "the disk is gone");
    }
}
