//! A node whose store fails stops, and tells every caller why in a typed
//! error: which store call failed, and the store's own error, to match on.
//! A restart may take the failed node's inbox straight back.

mod common;

use async_trait::async_trait;
use common::{config, set, within};
use raft_core::runtime::{
    Failure, InProcessNetwork, Inbox, Raft, RaftError, ReadConsistency, RuntimeConfig, StateMachine,
    StoreCall,
};
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

/// Starts a one-node cluster on `store`, `inbox` and `state_machine`, and
/// waits until it leads.
async fn start_alone<SM: StateMachine>(
    store: &Breakable,
    inbox: &Inbox,
    state_machine: SM,
) -> Result<Raft<SM>, raft_core::runtime::StartError> {
    let net = InProcessNetwork::new();
    let node = Raft::start(
        config(1),
        RuntimeConfig::default(),
        Membership::new([1], []),
        store.clone(),
        net.transport(1),
        inbox.clone(),
        state_machine,
    )
    .await?;
    let mut metrics = node.metrics();
    within("an election", metrics.wait_for(|m| m.role == Role::Leader)).await.expect("running");
    Ok(node)
}

/// Asserts that `outcome` is the failure of a store write that said "the
/// disk is gone".
fn assert_write_failed<T: std::fmt::Debug>(outcome: Result<T, RaftError>) {
    let Err(RaftError::Failed(failure)) = &outcome else {
        panic!("a caller learns that the node failed, and why: {outcome:?}");
    };
    assert!(matches!(failure, Failure::Store { call: StoreCall::Write, .. }), "{failure:?}");
    let Some(StorageError::Io(io)) = failure.storage_error() else {
        panic!("the store's own error is kept: {failure:?}");
    };
    assert_eq!(io.to_string(), "the disk is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_node_with_the_stores_own_error() {
    let store = Breakable::default();
    let node: Raft<MemKv> =
        start_alone(&store, &Inbox::default(), MemKv::default()).await.expect("the node starts");
    within("a proposal", node.propose(set("a", "1"))).await.expect("applied");

    store.broken.store(true, Ordering::SeqCst);
    let interrupted = within("a proposal on a broken disk", node.propose(set("b", "2"))).await;
    let later = within("a request after the failure", node.propose(set("c", "3"))).await;
    for outcome in [interrupted, later] {
        assert_write_failed(outcome);
    }
}

/// The caller that saw the failure restarts the node at once, on the same
/// inbox: the failed node is stopping, so the restart waits for it to hand
/// the inbox back rather than refuse it as in use. (On a current-thread
/// runtime, a task told of the failure runs before the failed node's
/// applier and core task finish.)
#[tokio::test(flavor = "current_thread")]
async fn a_node_restarted_right_after_it_failed_takes_its_inbox_back() {
    let caller = tokio::spawn(async {
        let (store, inbox) = (Breakable::default(), Inbox::default());
        let node: Raft<MemKv> = start_alone(&store, &inbox, MemKv::default()).await.expect("the node starts");
        within("a proposal", node.propose(set("a", "1"))).await.expect("applied");
        store.broken.store(true, Ordering::SeqCst);
        assert_write_failed(within("a proposal on a broken disk", node.propose(set("b", "2"))).await);
        store.broken.store(false, Ordering::SeqCst);
        let restarted = within("a restart", start_alone(&store, &inbox, MemKv::default())).await;
        let node = restarted.expect("a failed node's inbox is free for its restart");
        let read = node.read(ReadConsistency::Linearizable, |kv| kv.get("a").map(String::from));
        assert_eq!(within("a read", read).await, Ok(Some("1".into())));
        within("a shutdown", node.shutdown()).await;
    });
    caller.await.expect("the caller's checks pass");
}
