//! `RuntimeConfig::read_timeout` holds end to end (issue 10, bug 4): a read
//! whose read index has arrived, but which the state machine has not yet
//! applied, fails in time instead of waiting for the applier.

mod common;

use common::*;
use raft_core::runtime::{
    InProcessNetwork, Raft, RaftError, ReadConsistency, RestoreError, RuntimeConfig, StateMachine,
};
use raft_core::{LogId, Membership};
use raft_storage_mem::MemLogStore;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A state machine whose `apply` blocks while its gate is closed: an
/// applier that lags (a slow state machine) without end.
struct Stuck {
    applied: u64,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl StateMachine for Stuck {
    type Command = bool;
    type Response = ();

    fn apply(&mut self, _entry: LogId, block: bool) {
        if block {
            let (open, changed) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
        }
        self.applied += 1;
    }

    fn snapshot(&self) -> raft_core::SnapshotData {
        raft_core::SnapshotData::new()
    }

    fn restore(&mut self, _snapshot: &raft_core::SnapshotData) -> Result<(), RestoreError> {
        Ok(())
    }
}

/// Opens the gate when dropped, so a failing test unblocks the applier (and
/// its runtime can shut down) instead of hanging.
struct Opener(Arc<(Mutex<bool>, Condvar)>);

impl Drop for Opener {
    fn drop(&mut self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        changed.notify_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waiting_for_a_stuck_applier_times_out() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let opener = Opener(gate.clone());
    let net = InProcessNetwork::new();
    let runtime = RuntimeConfig { read_timeout: Duration::from_millis(300), ..RuntimeConfig::default() };
    let node = Raft::start(
        config(1),
        runtime,
        Membership::new([1], []),
        MemLogStore::new(),
        net.transport(1),
        raft_core::runtime::Inbox::default(),
        Stuck { applied: 0, gate: gate.clone() },
    )
    .await
    .expect("the node starts");
    raft_core::testing::wait_for_leader(std::slice::from_ref(&node), DEADLINE).await;
    // The leader's first entry is applied: what commits next is ours.
    let mut metrics = node.metrics();
    let settled = within(
        "the first entry",
        metrics.wait_for(|m| m.commit_index > 0 && m.applied_index == m.commit_index),
    );
    let before = settled.await.expect("running").commit_index;
    // The applier blocks in this entry; it is committed, so the read index
    // of every read after it lies beyond what is applied.
    let blocked = tokio::spawn({
        let node = node.clone();
        async move { node.propose(true).await }
    });
    within("the blocking entry commits", metrics.wait_for(|m| m.commit_index > before))
        .await
        .expect("running");
    drop(metrics);
    // A linearizable read gets its read index at once, then waits for the
    // applier; a stale one waits behind the entry in the applier's queue.
    for consistency in [ReadConsistency::Linearizable, ReadConsistency::Stale] {
        let read = within("a read behind a stuck applier", node.read(consistency, |sm| sm.applied)).await;
        assert_eq!(read, Err(RaftError::Timeout), "{consistency:?}");
    }
    // Once the state machine moves on, reads are served again.
    drop(opener);
    assert_eq!(within("the blocking proposal", blocked).await.expect("the task completes"), Ok(()));
    let read = within("a read", node.read(ReadConsistency::Linearizable, |sm| sm.applied)).await;
    assert!(matches!(read, Ok(n) if n >= 1), "{read:?}");
    within("a shutdown", node.shutdown()).await;
}
