//! A node whose store fails stops, and tells every caller why in a typed
//! error: which store call failed, and the store's own error, to match on.
//! So does a node whose applier dies: every caller waiting then, wherever
//! it waits (at the core, in the applier's queue, for a change to commit),
//! hears the same failure, and a restart may take the inbox straight back.

mod common;

use async_trait::async_trait;
use common::{config, set, within};
use raft_core::runtime::{
    Failure, InProcessNetwork, Inbox, Raft, RaftError, ReadConsistency, RestoreError, RuntimeConfig,
    StateMachine, StoreCall, Task, TaskEnd,
};
use raft_core::{
    Entry, Index, LogId, LogStore, LogWrite, Membership, Role, Snapshot, SnapshotData, StorageError,
    StoredState,
};
use raft_storage_mem::{MemKv, MemLogStore};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;

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

/// A membership change is answered at once (its entry is appended), then
/// waits for its entry to commit: a failure meanwhile is what it returns,
/// not a plain "shut down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_waiting_to_commit_hears_why_the_node_failed() {
    let store = Breakable::default();
    let node: Raft<MemKv> =
        start_alone(&store, &Inbox::default(), MemKv::default()).await.expect("the node starts");
    // Committed in its term, the leader may change the configuration.
    within("a proposal", node.propose(set("a", "1"))).await.expect("applied");
    store.broken.store(true, Ordering::SeqCst);
    assert_write_failed(within("a membership change", node.add_learner(2, None, false)).await);
    assert_write_failed(within("a request after the failure", node.trigger_snapshot()).await);
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

/// A state machine whose `Arm` command, once applied, tells the test it is
/// applying it, waits to be released, then panics: the applier dies with
/// requests queued behind it.
struct Bomb {
    entered: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum BombCommand {
    Arm,
    Noop,
}

impl StateMachine for Bomb {
    type Command = BombCommand;
    type Response = ();

    fn apply(&mut self, _: LogId, command: BombCommand) {
        if let BombCommand::Arm = command {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
            }
            let _ = self.release.lock().unwrap().recv();
            panic!("the state machine blew up (on purpose, for this test)");
        }
    }

    fn snapshot(&self) -> SnapshotData {
        bytes::Bytes::new().into()
    }

    fn restore(&mut self, _: &SnapshotData) -> Result<(), RestoreError> {
        Ok(())
    }
}

/// Polls `future` once, so that it sends its request, and hands it back.
async fn sent<F: Future>(future: F) -> std::pin::Pin<Box<F>> {
    let mut future = Box::pin(future);
    std::future::poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending(), "the request waits for its answer");
        Poll::Ready(())
    })
    .await;
    future
}

/// A stale read and a snapshot request wait in the applier's queue when
/// the applier panics: they hear that the applier panicked, as every later
/// request does, rather than "shut down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_at_an_applier_that_panics_hear_that_it_did() {
    let (entered, applying) = tokio::sync::oneshot::channel();
    let (release, released) = mpsc::channel();
    let bomb = Bomb { entered: Mutex::new(Some(entered)), release: Mutex::new(released) };
    let node = start_alone(&Breakable::default(), &Inbox::default(), bomb).await.expect("the node starts");
    let armed = tokio::spawn({
        let node = node.clone();
        async move { node.propose(BombCommand::Arm).await }
    });
    within("the applier taking the command", applying).await.expect("the command is applied");
    // Both go to the applier's queue as the core takes them, in order; the
    // transfer's refusal comes from the core after it took both.
    let read = sent(node.read(ReadConsistency::Stale, |_| ())).await;
    let snapshot = sent(node.trigger_snapshot()).await;
    let refused = within("a refused transfer", node.transfer_leadership(99)).await;
    assert!(refused.is_err(), "node 99 is no member: {refused:?}");
    release.send(()).expect("the applier waits");

    let panicked = RaftError::Failed(Failure::TaskEnded { task: Task::Applier, end: TaskEnd::Panicked });
    assert_eq!(within("the queued read", read).await, Err(panicked.clone()));
    assert_eq!(within("the queued snapshot", snapshot).await, Err(panicked.clone()));
    assert_eq!(within("a later proposal", node.propose(BombCommand::Noop)).await, Err(panicked));
    let armed = within("the proposal that blew up", armed).await.expect("the task completes");
    assert!(matches!(armed, Err(RaftError::OutcomeUnknown | RaftError::Failed(_))), "{armed:?}");
}
