//! `Raft::read` promises that a read that timed out never runs: a read that
//! waited past its deadline (here: queued at a paused node) must not run once
//! the node takes it up. Found by review (issue 10); it ran before the fix.

mod common;

use common::*;
use raft_core::runtime::{InProcessNetwork, RaftError, ReadConsistency};
use raft_storage_mem::MemLogStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::test(start_paused = true)]
async fn a_read_that_timed_out_never_runs() {
    let net = InProcessNetwork::new();
    let node = start_with(&net, config(1), &[1], MemLogStore::new()).await;
    leader(std::slice::from_ref(&node)).await;
    assert_eq!(within("a proposal", node.propose(set("a", "1"))).await, Ok(None));
    for consistency in [ReadConsistency::Linearizable, ReadConsistency::Stale] {
        let ran = Arc::new(AtomicBool::new(false));
        node.pause();
        let flag = ran.clone();
        let outcome = within(
            "a read at a paused node",
            node.read(consistency, move |_| flag.store(true, Ordering::SeqCst)),
        )
        .await;
        assert_eq!(outcome, Err(RaftError::Timeout), "{consistency:?}");
        node.resume();
        // A later read is taken up after the timed-out one (one queue), so
        // once it is served, the timed-out one was dealt with.
        let later = within("a later read", node.read(consistency, |_| ())).await;
        assert_eq!(later, Ok(()));
        assert!(
            !ran.load(Ordering::SeqCst),
            "{consistency:?}: a read that timed out ran after its caller was told Timeout"
        );
    }
    within("a shutdown", node.shutdown()).await;
}
