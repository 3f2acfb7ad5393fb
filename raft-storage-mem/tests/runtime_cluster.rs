//! Clusters on the tokio runtime, with the in-memory store and state machine
//! over the in-process network. Every wait is on a condition with a generous
//! deadline; no sleep decides a verdict.

mod common;

use common::*;
use raft_core::runtime::{InProcessNetwork, Raft, RaftError, ReadConsistency};
use raft_core::{Config, Membership, NodeId, Role};
use raft_storage_mem::{KvCommand, MemKv, MemLogStore};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_elects_replicates_reads_and_survives_its_leader() {
    let net = InProcessNetwork::new();
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], stores[id as usize - 1].clone()).await);
    }
    let l = leader(&nodes).await;
    assert_eq!(within("the first proposal", nodes[l].propose(set("a", "1"))).await, Ok(None));
    let mut proposals = tokio::task::JoinSet::new();
    for i in 0..100 {
        let node = nodes[l].clone();
        proposals.spawn(async move { node.propose(set(&format!("k{i}"), "v")).await });
    }
    while let Some(result) = within("a proposal", proposals.join_next()).await {
        assert_eq!(result.expect("the task completes"), Ok(None));
    }
    let value = read(&nodes[l], ReadConsistency::Linearizable, |kv| kv.get("a").map(String::from)).await;
    assert_eq!(value, Ok(Some("1".into())));
    // A follower serves a linearizable read after asking the leader.
    let follower = (l + 1) % 3;
    let value = read(&nodes[follower], ReadConsistency::Linearizable, |kv| kv.len()).await;
    assert_eq!(value, Ok(101));
    // Followers refuse proposals, naming the leader.
    let refused = within("a refused proposal", nodes[follower].propose(set("b", "2"))).await;
    assert!(matches!(refused, Err(RaftError::NotLeader { .. })), "{refused:?}");

    // The leader stops; the others elect a new one, which has every entry.
    within("the leader's shutdown", nodes[l].shutdown()).await;
    net.disconnect(l as NodeId + 1);
    let rest: Vec<Raft<MemKv>> =
        nodes.iter().enumerate().filter(|(i, _)| *i != l).map(|(_, n)| n.clone()).collect();
    let new = leader(&rest).await;
    assert_eq!(
        within("a proposal at the new leader", rest[new].propose(set("a", "2"))).await,
        Ok(Some("1".into()))
    );
    let value =
        read(&rest[new], ReadConsistency::Linearizable, |kv| (kv.get("a").map(String::from), kv.len())).await;
    assert_eq!(value, Ok((Some("2".into()), 101)));

    // The old leader restarts from its store and catches up.
    let old = start_with(&net, config(l as NodeId + 1), &[1, 2, 3], stores[l].clone()).await;
    let target = rest[new].metrics().borrow().commit_index;
    let mut metrics = old.metrics();
    // (`wait_for` returns a guard on the metrics: drop it at once, or the
    // node cannot publish new ones.)
    let caught_up = tokio::time::timeout(DEADLINE, async {
        metrics.wait_for(|m| m.applied_index >= target).await.is_ok()
    });
    assert_eq!(caught_up.await, Ok(true), "the restarted node caught up");
    let value = read(&old, ReadConsistency::Stale, |kv| kv.get("a").map(String::from)).await;
    assert_eq!(value, Ok(Some("2".into())));
    for node in rest.iter().chain([&old]) {
        within("a shutdown", node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_while_the_log_was_compacted_catches_up_by_snapshot() {
    let net = InProcessNetwork::new();
    let config = |id| Config {
        snapshot_threshold: 50,
        snapshot_keep_entries: 10,
        snapshot_chunk_bytes: 64,
        ..config(id)
    };
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], stores[id as usize - 1].clone()).await);
    }
    let l = leader(&nodes).await;
    let lagging = (l + 1) % 3;
    net.isolate(lagging as NodeId + 1);
    for i in 0..300 {
        within("a proposal", nodes[l].propose(set(&format!("k{}", i % 40), &i.to_string())))
            .await
            .expect("committed");
    }
    let leader_snapshot =
        within("loading", raft_core::LogStore::load(&stores[l])).await.expect("load").snapshot;
    assert!(
        leader_snapshot.is_some_and(|s| s.meta.last.index > 200),
        "the leader took snapshots and compacted"
    );

    net.heal();
    let target = nodes[l].metrics().borrow().commit_index;
    applied(&nodes[lagging], target).await;
    let theirs = read(&nodes[lagging], ReadConsistency::Stale, |kv| kv.clone()).await;
    let ours = read(&nodes[l], ReadConsistency::Linearizable, |kv| kv.clone()).await;
    assert_eq!(theirs, ours, "the follower's state equals the leader's");
    let stored = within("loading", raft_core::LogStore::load(&stores[lagging])).await.expect("load");
    assert!(stored.snapshot.is_some(), "the follower installed a snapshot");
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfer_and_membership_change_through_the_handle() {
    let net = InProcessNetwork::new();
    let stores: Vec<MemLogStore> = (0..4).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=4u64 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], stores[id as usize - 1].clone()).await);
    }
    // Requests go to whoever leads at the time, as a client's would.
    let l = leader(&nodes).await;
    within("a proposal", nodes[l].propose(set("a", "1"))).await.expect("committed");
    within("adding a learner", nodes[l].change_membership([1, 2, 3], [4])).await.expect("the learner joins");

    // Node 4 replaces node 3 once it has caught up for enough rounds.
    let expected = Membership::new([1, 2, 4], []);
    within("promoting the learner", async {
        loop {
            let l = leader(&nodes).await;
            match nodes[l].change_membership([1, 2, 4], []).await {
                Ok(_) => return,
                // Not caught up for enough heartbeat rounds yet, or leadership
                // moved: keep the cluster working, then retry at the leader.
                Err(RaftError::Membership(_) | RaftError::NotLeader { .. }) => {
                    let _ = nodes[l].propose(KvCommand::Noop).await;
                }
                Err(other) => panic!("{other}"),
            }
        }
    })
    .await;
    let mut metrics = nodes[3].metrics();
    let settled = within("leaving the joint configuration", async {
        metrics.wait_for(|m| m.membership == expected).await.is_ok()
    });
    assert!(settled.await);

    // Leadership moves to the new voter. Asked of whoever leads; if that
    // node stops leading first, ask the next one.
    within("node 4 taking over", async {
        loop {
            let l = leader(&nodes).await;
            if l == 3 {
                return;
            }
            let _ = nodes[l].transfer_leadership(4).await;
            let mut metrics = nodes[3].metrics();
            let outcome = async { metrics.wait_for(|m| m.role == Role::Leader).await.is_ok() };
            if tokio::time::timeout(Duration::from_secs(2), outcome).await == Ok(true) {
                return;
            }
        }
    })
    .await;
    let value = read(&nodes[3], ReadConsistency::Linearizable, |kv| kv.get("a").map(String::from)).await;
    assert_eq!(value, Ok(Some("1".into())));
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_serve_every_read_consistency() {
    let net = InProcessNetwork::new();
    let config = |id| Config { lease_reads: true, ..config(id) };
    let mut nodes = Vec::new();
    for id in 1..=5u64 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3, 4, 5], MemLogStore::new()).await);
    }
    let l = leader(&nodes).await;
    within("a proposal", nodes[l].propose(set("x", "1"))).await.expect("committed");
    let get = |kv: &MemKv| kv.get("x").map(String::from);
    for consistency in [ReadConsistency::Linearizable, ReadConsistency::Lease] {
        let value = read(&nodes[l], consistency, get).await;
        assert_eq!(value, Ok(Some("1".into())), "{consistency:?}");
    }
    for follower in (0..5).filter(|&i| i != l) {
        let value = read(&nodes[follower], ReadConsistency::Linearizable, get).await;
        assert_eq!(value, Ok(Some("1".into())), "follower {}", follower + 1);
    }
    // A stale read answers at once with whatever the node has applied.
    let stale = read(&nodes[(l + 1) % 5], ReadConsistency::Stale, |kv| kv.len()).await;
    assert!(matches!(stale, Ok(0 | 1)), "{stale:?}");
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_what_was_acknowledged_and_refuses_what_comes_after() {
    let net = InProcessNetwork::new();
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start_with(&net, config(id), &[1, 2, 3], stores[id as usize - 1].clone()).await);
    }
    let l = leader(&nodes).await;
    for i in 0..20 {
        within("a proposal", nodes[l].propose(set(&format!("k{i}"), "v"))).await.expect("committed");
    }
    let acknowledged = nodes[l].metrics().borrow().commit_index;
    for node in &nodes {
        within("a shutdown", node.shutdown()).await;
    }
    assert_eq!(within("a late proposal", nodes[l].propose(set("late", "v"))).await, Err(RaftError::ShutDown));
    assert_eq!(read(&nodes[l], ReadConsistency::Stale, |kv| kv.len()).await, Err(RaftError::ShutDown));
    // Every acknowledged entry is in the leader's store, and a majority's.
    let mut holding = 0;
    for store in &stores {
        let stored = within("loading", raft_core::LogStore::load(store)).await.expect("load");
        if stored.entries.last().is_some_and(|e| e.index >= acknowledged) {
            holding += 1;
        }
    }
    assert!(holding >= 2, "acknowledged entries are on {holding} of 3 stores");
}
