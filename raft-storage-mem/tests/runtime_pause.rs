//! The pause hook (`Raft::pause`, feature `testing`): a paused node acts on
//! nothing, under tokio's paused clock and on a current-thread runtime, and
//! takes up its backlog on resume. Verdicts rest on conditions and on
//! virtual time, never on a sleep.

mod common;

use common::*;
use raft_core::runtime::{InProcessNetwork, ReadConsistency};
use raft_core::Role;
use raft_storage_mem::MemLogStore;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_paused_leader_acts_on_nothing_until_resumed() {
    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], MemLogStore::new()).await);
    }
    let l = leader(&nodes).await;
    assert_eq!(within("the first proposal", nodes[l].propose(set("a", "1"))).await, Ok(None));
    let before = nodes[l].metrics().borrow().clone();

    nodes[l].pause();
    // The request queues; nothing of it happens while the node is paused,
    // however long (virtual) time runs on.
    let proposal = tokio::spawn({
        let node = nodes[l].clone();
        async move { node.propose(set("a", "2")).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!proposal.is_finished(), "a paused node answered a proposal");
    let during = nodes[l].metrics().borrow().clone();
    assert_eq!(
        (during.term, during.role, during.commit_index),
        (before.term, before.role, before.commit_index)
    );
    // The others, not hearing from it, elected a leader of a later term.
    let others: Vec<_> = nodes.iter().enumerate().filter(|(i, _)| *i != l).map(|(_, n)| n.clone()).collect();
    let new = leader(&others).await;
    assert!(others[new].metrics().borrow().term > before.term);

    nodes[l].resume();
    // It takes up its backlog: it hears of the new term, steps down, and the
    // proposal it held gets a definite answer (a new leader replaced it).
    let mut metrics = nodes[l].metrics();
    within("the old leader steps down", metrics.wait_for(|m| m.role != Role::Leader)).await.expect("running");
    drop(metrics);
    let outcome = within("the held proposal", proposal).await.expect("the task completes");
    assert!(outcome.is_err(), "the proposal of a deposed leader succeeded: {outcome:?}");
    // And it works again: a read through it sees what the new leader holds.
    let value = read(&nodes[l], ReadConsistency::Linearizable, |kv| kv.get("a").map(String::from)).await;
    assert_eq!(value, Ok(Some("1".into())));
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}

#[tokio::test(start_paused = true)]
async fn pausing_twice_and_resuming_a_running_node_change_nothing() {
    let net = InProcessNetwork::new();
    let node = start_with(&net, config(1), &[1], MemLogStore::new()).await;
    leader(std::slice::from_ref(&node)).await;
    node.resume();
    assert_eq!(within("a proposal", node.propose(set("a", "1"))).await, Ok(None));
    node.pause();
    node.pause();
    let proposal = tokio::spawn({
        let node = node.clone();
        async move { node.propose(set("a", "2")).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!proposal.is_finished(), "a paused node answered a proposal");
    node.resume();
    let outcome = within("the held proposal", proposal).await.expect("the task completes");
    assert_eq!(outcome, Ok(Some("1".into())));
    within("a shutdown", node.shutdown()).await;
}
