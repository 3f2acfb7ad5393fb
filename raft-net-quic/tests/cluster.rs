//! A 3-node cluster on the tokio runtime over QUIC on loopback: it elects,
//! replicates, survives its leader's crash, and the old leader, restarted
//! from its store on a new port, catches up. Every wait is on a condition
//! with a generous deadline; no sleep decides a verdict.

mod common;

use common::{addr, bind, ca, config, within, DEADLINE};
use raft_core::runtime::{Raft, RaftError, ReadConsistency, RuntimeConfig};
use raft_core::{Config, Membership, NodeId};
use raft_net_quic::QuicTransport;
use raft_net_tls::ClusterCa;
use raft_storage_mem::{KvCommand, MemKv, MemLogStore};

use raft_core::testing::runtime_config as raft_config;

fn set(key: &str, value: &str) -> KvCommand {
    KvCommand::Set { key: key.into(), value: value.into() }
}

/// A running node: its handle and its transport.
struct Node {
    raft: Raft<MemKv>,
    transport: QuicTransport,
}

impl Node {
    /// Stops the node as a crash would, from the cluster's point of view:
    /// the runtime shuts down, the transport closes, the handle is gone.
    async fn crash(self) {
        within("a shutdown", self.raft.shutdown()).await;
        self.transport.close();
    }
}

/// Binds node `id`'s transport (peers are told later) and starts it on `store`.
async fn start(ca: &ClusterCa, id: NodeId, store: MemLogStore) -> Node {
    start_with(ca, raft_config(id), store).await
}

/// [`start`] with a protocol configuration of its own.
async fn start_with(ca: &ClusterCa, raft_config: Config, store: MemLogStore) -> Node {
    let (transport, inbox) = bind(ca, raft_config.id, config()).await;
    let membership = Membership::new([1, 2, 3], []);
    let raft = Raft::start(
        raft_config,
        RuntimeConfig::default(),
        membership,
        store,
        transport.clone(),
        inbox,
        MemKv::default(),
    )
    .await
    .expect("the node starts");
    Node { raft, transport }
}

/// Tells every node in `nodes` every other's address.
fn introduce(nodes: &[&Node]) {
    for a in nodes {
        for b in nodes {
            a.transport.set_peer(b.transport.id(), addr(&b.transport));
        }
    }
}

/// Waits until one of `nodes` leads, and returns its position.
async fn leader(nodes: &[&Node]) -> usize {
    raft_core::testing::wait_for_leader(nodes.iter().map(|n| &n.raft), DEADLINE).await
}

/// Proposes at whoever leads among `nodes`, retrying where a client would
/// (the leader changed under it).
async fn propose(nodes: &[&Node], command: KvCommand) -> Option<String> {
    let rafts = nodes.iter().map(|n| &n.raft);
    match raft_core::testing::propose_at_leader(rafts, command, DEADLINE).await {
        Ok(previous) => previous,
        Err(other) => panic!("the proposal failed: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_quic_elects_replicates_and_survives_its_leader() {
    let ca = ca();
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start(&ca, id, stores[id as usize - 1].clone()).await);
    }
    introduce(&nodes.iter().collect::<Vec<_>>());

    assert_eq!(propose(&nodes.iter().collect::<Vec<_>>(), set("a", "1")).await, None);
    let l = leader(&nodes.iter().collect::<Vec<_>>()).await;
    let mut proposals = tokio::task::JoinSet::new();
    for i in 0..100 {
        let node = nodes[l].raft.clone();
        proposals.spawn(async move { node.propose(set(&format!("k{i}"), "v")).await });
    }
    let mut committed = 0;
    while let Some(result) = within("a proposal", proposals.join_next()).await {
        // A leader change on a loaded machine may refuse some; none may fail otherwise.
        match result.expect("the task completes") {
            Ok(None) => committed += 1,
            Err(RaftError::NotLeader { .. } | RaftError::NotApplied) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert!(committed > 0, "proposals commit over QUIC");
    // Every node applies what the leader committed.
    let target = nodes[l].raft.metrics().borrow().commit_index;
    raft_core::testing::wait_all_applied(nodes.iter().map(|n| &n.raft), target, DEADLINE).await;

    // The leader crashes; the others elect a new one, which has every entry.
    let old_id = l as NodeId + 1;
    let old = nodes.remove(l);
    old.crash().await;
    let rest: Vec<&Node> = nodes.iter().collect();
    assert_eq!(propose(&rest, set("a", "2")).await, Some("1".into()));
    let new = leader(&rest).await;
    let value = within(
        "a read",
        rest[new].raft.read(ReadConsistency::Linearizable, |kv| (kv.get("a").map(String::from), kv.len())),
    )
    .await;
    assert_eq!(value, Ok((Some("2".into()), committed + 1)));

    // The old leader restarts from its store, on a new port, and catches up.
    let restarted = start(&ca, old_id, stores[old_id as usize - 1].clone()).await;
    nodes.push(restarted);
    introduce(&nodes.iter().collect::<Vec<_>>());
    let target = rest_commit(&nodes, old_id);
    let mut metrics = nodes.last().unwrap().raft.metrics();
    let caught_up = tokio::time::timeout(DEADLINE, async {
        metrics.wait_for(|m| m.applied_index >= target).await.is_ok()
    });
    assert_eq!(caught_up.await, Ok(true), "the restarted node caught up");
    let value = within(
        "a stale read",
        nodes.last().unwrap().raft.read(ReadConsistency::Stale, |kv| kv.get("a").map(String::from)),
    )
    .await;
    assert_eq!(value, Ok(Some("2".into())));
    for node in nodes {
        node.crash().await;
    }
}

/// The highest commit index among the nodes other than `except`.
fn rest_commit(nodes: &[Node], except: NodeId) -> u64 {
    raft_core::testing::max_commit_index(nodes.iter().filter(|n| n.transport.id() != except).map(|n| &n.raft))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_down_while_the_log_was_compacted_catches_up_by_snapshot_over_quic() {
    let ca = ca();
    // Small snapshots in small chunks: many chunk streams.
    let config = |id| Config {
        snapshot_threshold: 50,
        snapshot_keep_entries: 10,
        snapshot_chunk_bytes: 64,
        ..raft_config(id)
    };
    let stores: Vec<MemLogStore> = (0..3).map(|_| MemLogStore::new()).collect();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start_with(&ca, config(id), stores[id as usize - 1].clone()).await);
    }
    introduce(&nodes.iter().collect::<Vec<_>>());
    propose(&nodes.iter().collect::<Vec<_>>(), set("a", "1")).await;

    // A follower goes down; the others go on, snapshot and compact.
    let l = leader(&nodes.iter().collect::<Vec<_>>()).await;
    let lagging = (l + 1) % 3;
    let lagging_id = nodes[lagging].transport.id();
    nodes.remove(lagging).crash().await;
    let rest: Vec<&Node> = nodes.iter().collect();
    for i in 0..300 {
        propose(&rest, set(&format!("k{}", i % 40), &i.to_string())).await;
    }
    let l = leader(&rest).await;
    let leader_id = rest[l].transport.id();
    let snapshot = within("loading", raft_core::LogStore::load(&stores[leader_id as usize - 1]))
        .await
        .expect("load")
        .snapshot;
    assert!(snapshot.is_some_and(|s| s.meta.last.index > 200), "the leader took snapshots and compacted");

    // It comes back (new port) and must install the leader's snapshot.
    nodes.push(start_with(&ca, config(lagging_id), stores[lagging_id as usize - 1].clone()).await);
    introduce(&nodes.iter().collect::<Vec<_>>());
    let target = rest_commit(&nodes, lagging_id);
    let mut metrics = nodes.last().unwrap().raft.metrics();
    let caught_up =
        within("catching up", async { metrics.wait_for(|m| m.applied_index >= target).await.is_ok() });
    assert!(caught_up.await, "the follower caught up");
    let stored =
        within("loading", raft_core::LogStore::load(&stores[lagging_id as usize - 1])).await.expect("load");
    assert!(stored.snapshot.is_some(), "the follower installed a snapshot");
    let theirs =
        within("a stale read", nodes.last().unwrap().raft.read(ReadConsistency::Stale, |kv| kv.clone()))
            .await;
    let l = leader(&nodes.iter().collect::<Vec<_>>()).await;
    let ours = within("a read", nodes[l].raft.read(ReadConsistency::Linearizable, |kv| kv.clone())).await;
    assert_eq!(theirs, ours, "the follower's state equals the leader's");
    for node in nodes {
        node.crash().await;
    }
}
