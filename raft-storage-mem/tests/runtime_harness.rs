//! The shared runtime harness (`raft_core::testing`) never takes a stopped
//! node for a live one: a node that led when it stopped keeps reporting
//! itself leader in its last metrics, and must not be returned as the
//! leader (a test would then ask a dead node, or pass on a stale state).

mod common;

use common::{config, within};
use raft_core::runtime::{InProcessNetwork, Inbox, Raft, RuntimeConfig};
use raft_core::{Membership, Role};
use raft_storage_mem::{MemKv, MemLogStore};
use std::time::Duration;

#[tokio::test]
#[should_panic(expected = "every node stopped")]
async fn waiting_for_a_leader_among_stopped_nodes_fails_at_once() {
    let net = InProcessNetwork::new();
    let node: Raft<MemKv> = Raft::start(
        config(1),
        RuntimeConfig::default(),
        Membership::new([1], []),
        MemLogStore::new(),
        net.transport(1),
        Inbox::default(),
        MemKv::default(),
    )
    .await
    .expect("the node starts");
    let mut metrics = node.metrics();
    within("an election", metrics.wait_for(|m| m.role == Role::Leader)).await.expect("running");
    within("a shutdown", node.shutdown()).await;
    assert_eq!(node.metrics().borrow().role, Role::Leader, "the last metrics of a leader that stopped");
    let leader = raft_core::testing::wait_for_leader([&node], Duration::from_secs(5)).await;
    panic!("a stopped node was taken for the leader: {leader}");
}
